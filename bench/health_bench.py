#!/usr/bin/env python3
"""The health rows of bench/run: readiness lag, /metrics under load, RSS while /metrics is scraped.

bench.py imports this module and passes itself as `b`, so every process started here goes
through its bookkeeping (spawn, ended by pid). On its own, for these rows only:

    python3 bench/health_bench.py --vigil PATH [--quick]

prints the figures as JSON (needs wrk for the /metrics load row). Python 3 stdlib only.
"""

import json
import os
import random
import socket
import statistics
import sys
import threading
import time

HTTP_200 = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class LateListener:
    """A port bound from the start but listening only from `listen()`: an app that takes a while
    to start. For "http" a thread answers 200 to every request once it listens."""

    def __init__(self, kind):
        self.kind = kind
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = None

    def listen(self):
        self.sock.listen(64)
        at = time.monotonic()
        if self.kind == "http":
            self.thread = threading.Thread(target=self._serve, daemon=True)
            self.thread.start()
        return at

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(1.0)
                buf = b""
                while b"\r\n\r\n" not in buf and len(buf) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                conn.sendall(HTTP_200)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def readyz(port):
    """The status of GET /readyz, or None while nothing answers."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1.0)
    except OSError:
        return None
    try:
        s.settimeout(1.0)
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = s.recv(64)
        return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else None
    except (OSError, ValueError):
        return None
    finally:
        s.close()


def one_start(b, vigil, kind):
    """Starts vigil with the default 5 s probe interval against a port that listens 0.2-0.6 s
    after vigil answers /readyz 503; returns seconds from listen() to the first /readyz 200."""
    target = LateListener(kind)
    port = b.free_port()
    probe = (["--probe-tcp", f"127.0.0.1:{target.port}"] if kind == "tcp"
             else ["--probe-http", f"http://127.0.0.1:{target.port}/ready"])
    pid = b.spawn([vigil, "--health-listen", f"127.0.0.1:{port}", *probe, "--",
                   b.BUSYBOX, "sleep", "1000"], what=f"vigil readiness {kind}")
    try:
        deadline = time.monotonic() + 5.0
        while readyz(port) != 503:
            if time.monotonic() > deadline or b.wait(pid, 0) is not None:
                raise RuntimeError("vigil did not answer /readyz 503 within 5 s")
            time.sleep(0.005)
        # Off the probe schedule: a random moment after the first probes have failed.
        time.sleep(random.uniform(0.2, 0.6))
        listening = target.listen()
        deadline = listening + 15.0
        while readyz(port) != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("/readyz not 200 within 15 s of the app listening")
            time.sleep(0.002)
        return time.monotonic() - listening
    finally:
        b.end(pid)
        target.close()


def measure_readiness(b, vigil, starts):
    """Readiness lag for tcp and http probes: median, p90 and max over `starts` starts."""
    out = {}
    for kind in ("tcp", "http"):
        try:
            lags = [one_start(b, vigil, kind) for _ in range(starts)]
        except RuntimeError as e:
            out[kind] = {"error": str(e)}
            continue
        lags.sort()
        out[kind] = {"starts": starts, "median_ms": statistics.median(lags) * 1e3,
                     "p90_ms": lags[int(0.9 * (len(lags) - 1))] * 1e3, "max_ms": lags[-1] * 1e3,
                     "min_ms": lags[0] * 1e3}
    return out


def measure_metrics_rss(b, vigil, seconds):
    """vigil with health and a 5 s tcp probe, /metrics scraped once a second for `seconds`:
    VmRSS at the first and last scrape, the largest seen, and VmHWM at the end."""
    listener = b.Listener()
    pid = None
    try:
        pid, port, note = b.start_vigil_health(vigil, [b.BUSYBOX, "sleep", "1000"], listener,
                                               "vigil-metrics-rss.log")
        if pid is None:
            return {"error": "not supported", "note": note}
        rss, sizes = [], []
        for i in range(seconds + 1):
            status, body = b.http_get(port, "/metrics")
            if status != 200:
                return {"error": f"/metrics answered {status}"}
            sizes.append(len(body))
            rss.append(b.proc_status(pid)["VmRSS"])
            if i < seconds:
                time.sleep(1.0)
        after = b.proc_status(pid)
        # VmHWM is synced from per-thread counters lazily: it can trail a VmRSS read before it.
        return {"scrapes": len(rss), "rss_first_kib": rss[0], "rss_last_kib": rss[-1],
                "peak_kib": max(max(rss), after["VmHWM"]),
                "body_bytes": statistics.median(sizes)}
    finally:
        if pid is not None:
            b.end(pid)
        listener.close()
        b.sweep()


def measure_all(b, vigil, q):
    R = {}
    b.log(f"readiness lag, {q['ready_starts']} starts each for tcp and http")
    R["readiness"] = measure_readiness(b, vigil, q["ready_starts"])
    b.log("/metrics under wrk")
    R["metrics_wrk"] = b.measure_healthz(vigil, q["wrk_s"], path="/metrics")
    b.log(f"RSS with /metrics scraped every second for {q['metrics_rss_s']} s")
    R["metrics_rss"] = measure_metrics_rss(b, vigil, q["metrics_rss_s"])
    return R


def params(quick):
    return {"ready_starts": 20, "metrics_rss_s": 10 if quick else 30}


# ---------------------------------------------------------------------------------------------
# Report: rows, targets and how they are measured, for bench.py's table and BENCHMARKS.md


def rows(R, only_vigil):
    H = R.get("health", {})
    q = R["params"]
    out = []
    na = "n/a (not supported)"
    for kind in ("tcp", "http"):
        d = H.get("readiness", {}).get(kind, {})
        text = (f"{d['median_ms']:.0f} ms / {d['max_ms']:.0f} ms" if "median_ms" in d
                else f"n/a ({d.get('error', 'not measured')})")
        out.append((f"app listening → /readyz 200, {kind} probe, median / max of "
                    f"{q.get('ready_starts', 20)} starts", only_vigil(text)))
    w = H.get("metrics_wrk", {})
    ok = "rps" in w and w["rps"] is not None
    out.append((f"/metrics, wrk -t1 -c50 -d{q['wrk_s']}s: requests/s",
                only_vigil(f"{w['rps']:,.0f}" if ok else na)))
    out.append(("/metrics p50 / p99 latency",
                only_vigil(f"{w['p50_ms']:.3f} ms / {w['p99_ms']:.3f} ms"
                           if ok and w.get("p99_ms") is not None else na)))
    m = H.get("metrics_rss", {})
    out.append((f"vigil RSS, /metrics scraped every second for {q.get('metrics_rss_s', 30)} s: "
                "first / last / peak, KiB",
                only_vigil(f"{m['rss_first_kib']:,} / {m['rss_last_kib']:,} / {m['peak_kib']:,}"
                           if "peak_kib" in m else na)))
    return out


def targets(R, add):
    H = R.get("health", {})
    for kind in ("tcp", "http"):
        d = H.get("readiness", {}).get(kind, {})
        v = d.get("median_ms")
        add(f"readiness lag, {kind} probe, median ≤ 150 ms",
            f"{v:.0f} ms" if v is not None else "n/a", "150 ms",
            f"{v / 150:.2f}× the limit" if v is not None else "n/a",
            (v <= 150) if v is not None else None)


def how(R):
    q = R["params"]
    return [
        f"- **Readiness lag**: vigil with `--health-listen` and a tcp or http probe at the default "
        f"`--probe-interval` (5 s) and `--startup-interval` (0.1 s), app `busybox sleep 1000`, "
        f"probing a port the harness has bound but not yet listened on. Once /readyz answers 503, "
        f"the harness waits a random 0.2-0.6 s (off the probe schedule), calls listen(2) (and, for "
        f"http, answers 200 from a thread), and polls /readyz every 2 ms until it is 200: the time "
        f"from listen(2) to that answer, {q.get('ready_starts', 20)} fresh starts per kind.",
        f"- **/metrics under load**: as the /healthz row, with "
        f"`wrk -t1 -c50 -d{q['wrk_s']}s --latency http://127.0.0.1:PORT/metrics`: every answer "
        f"renders the exposition (about "
        f"{R.get('health', {}).get('metrics_rss', {}).get('body_bytes', 0):,.0f} bytes).",
        f"- **RSS with /metrics scraped**: the same vigil, one GET /metrics a second for "
        f"{q.get('metrics_rss_s', 30)} s (a Prometheus scrape interval, shortened); VmRSS at the "
        f"first and the last scrape; the peak is the largest VmRSS seen or VmHWM at the end.",
    ]


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench as b
    b._libc.prctl(b.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    os.makedirs(b.OUT, exist_ok=True)
    q = dict(params(a.quick), wrk_s=5 if a.quick else 10)
    vigil = os.path.abspath(a.vigil)
    try:
        R = measure_all(b, vigil, q)
        # The reference bench.py measures in its own row: /healthz under the same load, now.
        b.log("/healthz under wrk, for reference")
        R["healthz_wrk"] = b.measure_healthz(vigil, q["wrk_s"])
    finally:
        b.end_everything()
    for w in (R["metrics_wrk"], R["healthz_wrk"]):
        w.pop("raw", None)
    print(json.dumps(R, indent=1, default=str))


if __name__ == "__main__":
    main()
