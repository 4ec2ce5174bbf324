#!/usr/bin/env python3
"""vigil side by side with tini-static, tini, dumb-init and catatonit, all in one run.

Run through `bench/run`, which builds vigil and bench/out/benchapp first. Python 3 stdlib only.

Every process this harness starts is recorded by pid and ended by that pid (SIGTERM, then SIGKILL)
on every path, including errors and Ctrl-C. The harness is also a child subreaper, so anything an
init leaves behind is re-parented to it and ended by pid as well; nothing is ever killed by name.
"""

import argparse
import ctypes
import datetime
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/ when chart.py is imported

import health_bench  # noqa: E402  (bench/, beside this file)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
BUSYBOX = "/bin/busybox"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
PID1 = [UNSHARE, "--pid", "--fork", "--mount-proc", "--kill-child"]

NAMES = ["vigil", "tini-static", "tini", "dumb-init", "catatonit"]
# A second vigil in the forwarding runs: how far two runs of the same binary differ.
CONTROL = "vigil (2nd)"
PEERS = NAMES[1:]


def inits(vigil):
    """name -> (binary, argv prefix as a subreaper, argv prefix as PID 1)."""
    return {
        "vigil": (vigil, [vigil, "--"], [vigil, "--"]),
        # tini needs -s to reap as a subreaper; as PID 1 it reaps without it.
        "tini-static": ("/usr/bin/tini-static", ["/usr/bin/tini-static", "-s", "--"],
                        ["/usr/bin/tini-static", "--"]),
        "tini": ("/usr/bin/tini", ["/usr/bin/tini", "-s", "--"], ["/usr/bin/tini", "--"]),
        # dumb-init never becomes a subreaper; it runs the app in a new session and forwards to
        # its process group. Fine for everything but orphans, which run as PID 1 for all inits.
        "dumb-init": ("/usr/bin/dumb-init", ["/usr/bin/dumb-init"], ["/usr/bin/dumb-init"]),
        # catatonit makes itself a subreaper when it is not PID 1.
        "catatonit": ("/usr/bin/catatonit", ["/usr/bin/catatonit", "--"],
                      ["/usr/bin/catatonit", "--"]),
    }


# ---------------------------------------------------------------------------------------------
# Process bookkeeping: every pid we start, ended by pid.

LIVE = {}  # pid -> description, for processes that are our own children
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_NULL = None


def spawn(argv, stdout=None, stderr=None, what=None, stdin=None):
    """posix_spawn (vfork + exec) with stdin, stdout and stderr on the given fds (default
    /dev/null)."""
    global _NULL
    if _NULL is None:
        _NULL = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_DUP2, _NULL if stdin is None else stdin, 0),
               (os.POSIX_SPAWN_DUP2, _NULL if stdout is None else stdout, 1),
               (os.POSIX_SPAWN_DUP2, _NULL if stderr is None else stderr, 2)]
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    LIVE[pid] = what or argv[0]
    return pid


def wait(pid, timeout=None, pidfd=None):
    """waitpid, blocking; with a timeout, wait on a pidfd (no polling: the wake-up is the exit
    itself) and return None if the process is still running when it expires."""
    if timeout is not None:
        fd = os.pidfd_open(pid) if pidfd is None else pidfd
        try:
            if not select.select([fd], [], [], timeout)[0]:
                return None
        finally:
            if pidfd is None:
                os.close(fd)
    _, st = os.waitpid(pid, 0)
    LIVE.pop(pid, None)
    return st


def end(pid, grace=2.0):
    """SIGTERM, then SIGKILL after `grace`, then reap: only for our own child `pid`."""
    if pid not in LIVE:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    st = wait(pid, grace)
    if st is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        st = wait(pid)
    return st


def proc_table():
    """(pid, ppid, state) of every process in /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        out.append((int(name), int(rest[1]), rest[0]))
    return out


def sweep():
    """End (by pid) and reap anything re-parented to us, the subreaper: leftovers of an init."""
    me = os.getpid()
    for pid, ppid, _state in proc_table():
        if ppid == me and pid not in LIVE:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        LIVE.pop(pid, None)


def end_everything():
    for pid in list(LIVE):
        end(pid, grace=0.5)
    sweep()


def read_line(fd, timeout):
    """Read one '\\n'-terminated line from a raw fd, byte by byte (the rest stays in the pipe)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no line within {timeout}s (got {buf!r})")
        b = os.read(fd, 1)
        if not b:
            raise EOFError(f"pipe closed (got {buf!r})")
        buf += b
    return buf.decode()


def read_exact(fd, n, timeout):
    buf = b""
    deadline = time.monotonic() + timeout
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"no data within {timeout}s")
        b = os.read(fd, n - len(buf))
        if not b:
            raise EOFError("pipe closed")
        buf += b
    return buf


def proc_status(pid):
    """VmRSS/VmHWM (kB) of the process, and context switches summed over all its threads."""
    out = {"VmRSS": None, "VmHWM": None, "RssAnon": None, "RssFile": None, "ctxt": 0,
           "threads": 0, "run_ns": 0, "wait_ns": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        out["ctxt"] += int(line.split()[1])
        except OSError:
            continue
        out["threads"] += 1
        try:  # time on a CPU, time runnable but waiting for one (ns)
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run, wait_, _ = f.read().split()
            out["run_ns"] += int(run)
            out["wait_ns"] += int(wait_)
        except (OSError, ValueError):
            pass
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Listener:
    """A TCP listener in a thread of this process: the target of vigil's --probe-tcp."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def http_get(port, path="/healthz", timeout=1.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def health_args(health_port, probe_port):
    return ["--health-listen", f"127.0.0.1:{health_port}", "--probe-tcp",
            f"127.0.0.1:{probe_port}", "--probe-interval", "5"]


def start_vigil_health(vigil, app, listener, logname):
    """Start vigil with the health server and a 5 s tcp probe; return (pid, port, note).
    pid is None (and note says why) when this vigil does not serve /healthz."""
    port = free_port()
    logfd = os.open(os.path.join(OUT, logname), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pid = spawn([vigil, *health_args(port, listener.port), "--", *app], stderr=logfd,
                    what="vigil+health")
    finally:
        os.close(logfd)
    deadline = time.monotonic() + 3.0
    note = "no answer on /healthz within 3 s"
    while time.monotonic() < deadline:
        st = wait(pid, 0)
        if st is not None:
            return None, port, f"vigil exited with status {os.waitstatus_to_exitcode(st)}"
        try:
            status, body = http_get(port)
            return pid, port, f"/healthz answered {status}: {body[:120].decode('utf-8', 'replace')}"
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
    end(pid)
    return None, port, note


# ---------------------------------------------------------------------------------------------
# Measurements


def elf_linkage(path):
    """'static' or 'dynamic' (has a PT_INTERP program header); static-pie counts as static."""
    with open(path, "rb") as f:
        head = f.read(64)
        if not head.startswith(b"\x7fELF"):
            return "not ELF"
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        if int.from_bytes(table[i * phentsize:i * phentsize + 4], "little") == 3:
            return "dynamic"
    return "static"


def measure_sizes(bins):
    return {n: {"bytes": os.path.getsize(b), "linkage": elf_linkage(b)} for n, b in bins.items()}


def measure_startup(prefixes, rounds, base_prefix=()):
    """Median wall time of `busybox true` directly and under each init, interleaved in a random
    order each round so load on the machine hits every variant alike."""
    variants = {"direct": [*base_prefix, BUSYBOX, "true"]}
    for n, p in prefixes.items():
        variants[n] = [*base_prefix, *p, BUSYBOX, "true"]
    samples = {k: [] for k in variants}
    failed = {}
    order = list(variants)
    for r in range(rounds + 5):  # 5 warm-up rounds, discarded
        random.shuffle(order)
        for k in order:
            if k in failed:
                continue
            t0 = time.monotonic_ns()
            pid = spawn(variants[k])
            st = wait(pid)
            t1 = time.monotonic_ns()
            if os.waitstatus_to_exitcode(st) != 0:
                failed[k] = f"exit status {os.waitstatus_to_exitcode(st)}"
                continue
            if r >= 5:
                samples[k].append(t1 - t0)
    med = {k: statistics.median(v) / 1000 for k, v in samples.items() if v}
    out = {}
    for n in prefixes:
        if n in failed or "direct" not in med:
            out[n] = {"error": failed.get(n, "direct run failed")}
        else:
            out[n] = {"overhead_us": med[n] - med["direct"], "median_us": med[n],
                      "direct_us": med["direct"], "runs": len(samples[n])}
    return out


def measure_hooks(vigil, rounds):
    """Start-up cost of vigil's hooks: `vigil -- busybox true` beside the same with an empty
    `--pre-start` directory and with a trivial seed (`--env-from 'busybox echo A=1'`), each the
    median of `rounds` runs interleaved as in measure_startup; the cost is the difference to plain
    vigil's median."""
    empty = os.path.join(OUT, "pre-start-empty")
    os.makedirs(empty, exist_ok=True)
    for name in os.listdir(empty):
        os.unlink(os.path.join(empty, name))
    variants = {
        "plain": [vigil, "--"],
        "empty_pre_start": [vigil, "--pre-start", empty, "--"],
        "trivial_seed": [vigil, "--env-from", f"{BUSYBOX} echo A=1", "--"],
    }
    got = measure_startup(variants, rounds)
    out = {"runs": rounds}
    for k, v in got.items():
        out[k] = v
        if k != "plain" and "median_us" in v and "median_us" in got["plain"]:
            out[k]["cost_us"] = v["median_us"] - got["plain"]["median_us"]
    return out


def hooks_cell(R, key):
    h = R.get("hooks", {}).get(key, {})
    if "cost_us" not in h:
        return "n/a"
    return f"+{fmt_us(h['cost_us'])} ({fmt_us(h['median_us'])} in all)"


def measure_idle(prefixes, vigil, seconds):
    """Idle RSS and wake-ups of every init at once, app `busybox sleep 1000`, plus vigil with the
    health server and a 5 s tcp probe. All run side by side over the same window."""
    app = [BUSYBOX, "sleep", "1000"]
    pids, out = {}, {}
    listener = Listener()
    try:
        for n, p in prefixes.items():
            pids[n] = spawn([*p, *app], what=n)
        hpid, _hport, hnote = start_vigil_health(vigil, app, listener, "vigil-health-idle.log")
        out["vigil+health"] = {"note": hnote}
        if hpid is not None:
            pids["vigil+health"] = hpid
        time.sleep(1.0)
        for n, pid in pids.items():
            st = wait(pid, 0)
            if st is not None:
                out[n] = {"error": f"exited early, status {os.waitstatus_to_exitcode(st)}"}
        live = {n: pid for n, pid in pids.items() if pid in LIVE}
        first = {n: proc_status(pid) for n, pid in live.items()}
        probes_before = listener.accepted
        time.sleep(seconds)
        last = {n: proc_status(pid) for n, pid in live.items()}
        probes = listener.accepted - probes_before
        for n in live:
            d = last[n]["ctxt"] - first[n]["ctxt"]
            out.setdefault(n, {}).update({
                "rss_kib": first[n]["VmRSS"], "rss_end_kib": last[n]["VmRSS"],
                "rss_anon_kib": first[n]["RssAnon"], "rss_file_kib": first[n]["RssFile"],
                "ctxt_delta": d, "wakeups_per_s": d / seconds, "threads": last[n]["threads"],
                "seconds": seconds})
        if "vigil+health" in live:
            out["vigil+health"]["probes_seen"] = probes
    finally:
        for pid in pids.values():
            end(pid)
        listener.close()
        sweep()
    return out


def measure_sigterm(prefixes, runs):
    """SIGTERM to the init -> the init has exited (waitpid returned), CLOCK_MONOTONIC around
    os.kill and os.waitpid, when the app (benchapp wait: default SIGTERM action) dies at once."""
    app = [os.path.join(OUT, "benchapp"), "wait"]
    samples = {n: [] for n in prefixes}
    errors = {}
    order = list(prefixes)
    for _ in range(runs):
        random.shuffle(order)
        for n in order:
            if n in errors:
                continue
            r, w = os.pipe2(os.O_CLOEXEC)
            pid = spawn([*prefixes[n], *app], stdout=w, what=n)
            os.close(w)
            try:
                app_pid = int(read_line(r, 5.0).split()[1])
                pidfd = os.pidfd_open(pid)
                try:
                    t0 = time.monotonic_ns()
                    os.kill(pid, signal.SIGTERM)
                    st = wait(pid, 5.0, pidfd)
                    t1 = time.monotonic_ns()
                finally:
                    os.close(pidfd)
                if st is None:
                    errors[n] = "did not exit within 5 s of SIGTERM"
                else:
                    samples[n].append(t1 - t0)
                # The app must be gone too; kill it by pid only if it is still ours.
                if app_pid_alive_under_us(app_pid):
                    os.kill(app_pid, signal.SIGKILL)
            except (TimeoutError, EOFError, ValueError, IndexError) as e:
                errors[n] = f"app did not start: {e}"
            finally:
                os.close(r)
                end(pid)
                sweep()
    out = {}
    for n in prefixes:
        if samples[n]:
            out[n] = {"median_us": statistics.median(samples[n]) / 1000,
                      "max_us": max(samples[n]) / 1000, "runs": len(samples[n])}
        if n in errors:
            out.setdefault(n, {})["error"] = errors[n]
    return out


def app_pid_alive_under_us(pid):
    """True if pid is alive and re-parented to us (the subreaper), so it is ours to kill."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    rest = stat[stat.rfind(")") + 2:].split()
    return int(rest[1]) == os.getpid() and rest[0] != "Z"


def task_cpu_ns(pid):
    """CPU time (user + system) the task has run, from /proc/PID/schedstat, in ns."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


class OwnCpuCgroup:
    """A fresh cpu cgroup (v1 `cpu` hierarchy, or v2 with the cpu controller on) holding this
    process and everything it starts inside the `with`, as a container's processes would be.

    Why: with CONFIG_SCHED_AUTOGROUP on, every session in the root group is its own scheduling
    group. dumb-init puts its app in a new session (setsid), so after the kill that app's group
    is run ahead of the harness's, and it looks ~1.3 µs faster on one CPU than every other init
    (`dumb-init -c`, no setsid, measures like the rest). Autogroup does not apply outside the
    root group, so in here, as in a pod, no init gets that head start. `path` is None when no
    such cgroup could be made (the run then says so)."""

    def __init__(self):
        self.path = self.home = None

    @staticmethod
    def where(v2):
        """This process's cgroup path in the cpu hierarchy (v1) or the unified one (v2)."""
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if (v2 and ctrls == "") or (not v2 and "cpu" in ctrls.split(",")):
                    return path.lstrip("/")
        return None

    def __enter__(self):
        for root, v2 in (("/sys/fs/cgroup/cpu", False), ("/sys/fs/cgroup", True)):
            try:
                here = self.where(v2)
                if here is None:
                    continue
                home = os.path.join(root, here)
                if v2:
                    with open(os.path.join(home, "cgroup.subtree_control")) as f:
                        if "cpu" not in f.read().split():
                            continue
                elif not os.path.exists(os.path.join(home, "cpu.shares")):
                    continue
                path = os.path.join(home, f"vigil-bench-{os.getpid()}")
                os.mkdir(path)
                self.path, self.home = path, home
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                return self
            except OSError:
                self.__exit__()
        return self

    def __exit__(self, *exc):
        if self.path is None:
            return False
        try:
            with open(os.path.join(self.home, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            os.rmdir(self.path)
        except OSError as e:
            log(f"warning: could not remove cgroup {self.path}: {e}")
        self.path = None
        return False


def fwd_runs(R):
    """The two forwarding runs: (results key, where it ran)."""
    n = R.get("machine", {}).get("nproc")
    return (("forward", f"on {n} CPUs" if n else "on all CPUs"), ("forward_pinned", "on one CPU"))


def forwarding_rounds_note(R):
    """How the forwarding ranking moves from round to round within this run, per sink."""
    paras = []
    for metric, where in fwd_runs(R):
        rounds = R.get(metric, {}).get("rounds") or []
        for sink in SINKS:
            parts = []
            for rr in rounds:
                r = rr.get(sink, {})
                peers = [(r[n], n) for n in PEERS if r.get(n) is not None]
                if r.get("vigil") is None or not peers:
                    continue
                b, bn = min(peers)
                c = r.get(CONTROL)
                parts.append(f"{r['vigil'] / b:.2f}× {bn}"
                             + (f" (2nd vigil {c / b:.2f}×)" if c else ""))
            if parts:
                paras.append(f"{where[0].upper()}{where[1:]}, {SINK_LABEL[sink]}: "
                             f"{'; '.join(parts)}")
    if not paras:
        return ""
    fp = R.get("forward_pinned", {}).get("pipe", {})
    cpu = [(fp[n]["cpu_us_per_signal"], n) for n in PEERS if "cpu_us_per_signal" in fp.get(n, {})]
    extra = ""
    if cpu and "cpu_us_per_signal" in fp.get("vigil", {}):
        lo, ln = min(cpu)
        extra = (f" Per forward vigil makes four system calls (sigtimedwait, kill, a sigtimedwait "
                 f"that finds nothing pending, wait4 WNOHANG), tini three (sigtimedwait, kill, "
                 f"wait4), dumb-init and catatonit two (sigtimedwait or a signalfd read, kill); "
                 f"at its default level vigil writes no log line for a forward outside a drain. "
                 f"Its CPU time per forward on one CPU with a drained pipe is "
                 f"{fp['vigil']['cpu_us_per_signal'] - lo:+.1f} µs from {ln}'s, the lowest.")
    return ("Forwarding, round by round (vigil's median over the best peer's in the same round): "
            + ". ".join(paras) + ". The targets above are judged on the pooled samples; a ratio "
            "that crosses 1.00 between rounds is a tie this machine cannot break." + extra)


def pinned_cgroup_note(R):
    fp = R.get("forward_pinned", {})
    if fp.get("cgroup"):
        return f"`{fp['cgroup']}`, removed after"
    if fp.get("autogroup"):
        return "**none could be made here, and autogroup is on: dumb-init's row is flattered**"
    return "none could be made here; autogroup is off, so it makes no difference"


def autogroup():
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() == "1"
    except OSError:
        return None


# vigil's forwarding median may be this many times the best peer's (issue 15).
FWD_LIMIT = 1.1
SINKS = ("null", "pipe")  # each init's stderr in the forwarding rows: /dev/null, a drained pipe
SINK_LABEL = {"null": "stderr /dev/null", "pipe": "stderr a drained pipe"}


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def measure_forwarding(variants, count, cpu=None, tag=""):
    """SIGUSR1 to the init -> the app's handler ran, both stamps CLOCK_MONOTONIC: taken here just
    before kill(2) and in benchapp's handler. `variants` maps (init, sink) to the init's argv
    prefix; sink "null" puts the init's stderr (and so its app's) on /dev/null, "pipe" on a pipe
    that a `benchapp drain` process reads and copies to bench/out/fwd-stderr-*.log, as a
    container runtime's log collector reads PID 1's stderr. All variants run side by side and
    the signals interleave in a fresh random order each time. With `cpu`, the harness, every
    init, app and drainer run on that one CPU. Each init's own CPU time per forward (schedstat)
    and the lines it wrote to a drained pipe during the measured signals are reported too."""
    app = [os.path.join(OUT, "benchapp"), "sig"]
    drainer = [os.path.join(OUT, "benchapp"), "drain"]
    procs, out, drains = {}, {}, {}
    cpu0, size0 = {}, {}
    mask = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # inherited by everything spawned below
    try:
        for key, p in variants.items():
            n, sink = key
            errfd = None
            if sink == "pipe":
                path = os.path.join(OUT, f"fwd-stderr-{slug(n)}{tag}.log")
                logfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                dr, errfd = os.pipe2(os.O_CLOEXEC)
                dpid = spawn(drainer, stdin=dr, stdout=logfd, what=f"drain {n}")
                os.close(dr)
                drains[key] = (dpid, logfd, path)
            r, w = os.pipe2(os.O_CLOEXEC)
            pid = spawn([*p, *app], stdout=w, stderr=errfd, what=n)
            os.close(w)
            if errfd is not None:
                os.close(errfd)  # the init and its app hold the write end; EOF when both are gone
            procs[key] = (pid, r)
        for key, (pid, r) in list(procs.items()):
            try:
                read_line(r, 5.0)
            except (TimeoutError, EOFError) as e:
                out[key] = {"error": f"app did not start: {e}"}
        live = [k for k in procs if k not in out]
        samples = {k: [] for k in live}
        for i in range(count + 5):  # 5 warm-up signals each, discarded
            random.shuffle(live)
            if i == 5:
                time.sleep(0.05)  # settle: the drainers have copied whatever came so far
                cpu0 = {k: task_cpu_ns(procs[k][0]) for k in live}
                size0 = {k: os.fstat(d[1]).st_size for k, d in drains.items()}
            for k in list(live):
                pid, r = procs[k]
                t0 = time.monotonic_ns()
                os.kill(pid, signal.SIGUSR1)
                try:
                    t1 = int.from_bytes(read_exact(r, 8, 2.0), sys.byteorder, signed=True)
                except (TimeoutError, EOFError) as e:
                    out[k] = {"error": f"signal {i} not delivered: {e}"}
                    live.remove(k)
                    continue
                if i >= 5:
                    samples[k].append(t1 - t0)
        time.sleep(0.05)  # the same settle at the end, for the CPU time and the drainers
        for k, s in samples.items():
            if k not in out and s:
                out[k] = {"median_us": statistics.median(s) / 1000, "max_us": max(s) / 1000,
                          "p90_us": sorted(s)[int(len(s) * 0.9) - 1] / 1000, "signals": len(s),
                          "samples_ns": s}
                if k in cpu0:
                    spent = task_cpu_ns(procs[k][0]) - cpu0[k]
                    out[k]["cpu_us_per_signal"] = spent / len(s) / 1000
                if k in drains and k in size0:
                    with open(drains[k][2], "rb") as f:
                        f.seek(size0[k])
                        text = f.read(os.fstat(drains[k][1]).st_size - size0[k])
                    out[k]["stderr_lines"] = text.count(b"\n")
                    out[k]["stderr_bytes"] = len(text)
                    out[k]["stderr_first"] = text.split(b"\n")[0][:200].decode("utf-8", "replace")
    finally:
        for pid, r in procs.values():
            end(pid)
            os.close(r)
        sweep()  # anything left holding a pipe's write end is gone now: the drainers see EOF
        for dpid, logfd, _path in drains.values():
            if dpid in LIVE and wait(dpid, 5.0) is None:  # sweep() may have reaped it
                end(dpid)
            os.close(logfd)
        os.sched_setaffinity(0, mask)
    return out


def measure_forwarding_rounds(prefixes, count, rounds, cpu=None):
    """`rounds` runs of measure_forwarding, each with fresh processes, every init in `prefixes`
    once per sink (SINKS); the samples of all rounds pooled per init and sink, plus each round's
    own medians (to show how far a single round's ranking moves). The result is keyed by sink,
    then init."""
    variants = {(n, sink): p for sink in SINKS for n, p in prefixes.items()}
    tag = "-1cpu" if cpu is not None else "-2cpu"
    runs = [measure_forwarding(variants, count, cpu=cpu, tag=tag) for _ in range(rounds)]
    out = {"rounds": [{sink: {n: r[(n, sink)].get("median_us") for n, s in r if s == sink}
                       for sink in SINKS} for r in runs]}
    for sink in SINKS:
        out[sink] = {}
        for n in prefixes:
            key = (n, sink)
            good = [r[key] for r in runs if "samples_ns" in r.get(key, {})]
            if not good:
                out[sink][n] = {"error": next((r[key]["error"] for r in runs
                                               if "error" in r.get(key, {})), "no samples")}
                continue
            pooled = sorted(x for g in good for x in g["samples_ns"])
            d = {"median_us": statistics.median(pooled) / 1000, "max_us": pooled[-1] / 1000,
                 "p90_us": pooled[int(len(pooled) * 0.9) - 1] / 1000, "signals": len(pooled),
                 "rounds": len(good)}
            if all("cpu_us_per_signal" in g for g in good):
                d["cpu_us_per_signal"] = statistics.mean(g["cpu_us_per_signal"] for g in good)
            if all("stderr_lines" in g for g in good):
                d["stderr_lines"] = sum(g["stderr_lines"] for g in good)
                d["stderr_bytes"] = sum(g["stderr_bytes"] for g in good)
                d["stderr_first"] = next((g["stderr_first"] for g in good if g["stderr_lines"]),
                                         "")
            out[sink][n] = d
    return out


def measure_orphans(pid1_prefixes, counts, reps):
    """Each init as PID 1 of a fresh pid namespace (unshare); benchapp makes N orphans that are
    zombies when re-parented, and reports how long until the init reaped them all, and how many
    were left (and in state Z) after 20 s."""
    app = [os.path.join(OUT, "benchapp"), "orphans"]
    out = {n: {} for n in pid1_prefixes}
    for count in counts:
        runs = {n: [] for n in pid1_prefixes}
        order = list(pid1_prefixes)
        for _ in range(reps):
            random.shuffle(order)
            for n in order:
                r, w = os.pipe2(os.O_CLOEXEC)
                pid = spawn([*PID1, *pid1_prefixes[n], *app, str(count)], stdout=w,
                            what=f"unshare {n}")
                os.close(w)
                try:
                    line = read_line(r, 60.0)
                    kv = dict(x.split("=") for x in line.split()[1:])
                    runs[n].append({k: int(v) for k, v in kv.items()})
                except (TimeoutError, EOFError, ValueError) as e:
                    runs[n].append({"error": str(e)})
                finally:
                    os.close(r)
                    # SIGKILL to unshare takes the namespace's PID 1 (--kill-child) and so the
                    # whole namespace with it; normally everything has exited by now.
                    if wait(pid, 10.0) is None:
                        os.kill(pid, signal.SIGKILL)
                        wait(pid)
                    sweep()
        for n, rs in runs.items():
            good = [x for x in rs if "error" not in x]
            if not good:
                out[n][str(count)] = {"error": rs[0].get("error", "no runs")}
                continue
            out[n][str(count)] = {
                "reap_ms": statistics.median(x["reap_ns"] for x in good) / 1e6,
                "reap_ms_max": max(x["reap_ns"] for x in good) / 1e6,
                "left": max(x["left"] for x in good),
                "zombies": max(x["zombies"] for x in good),
                "made": min(x["made"] for x in good), "runs": len(good)}
    return out


def parse_wrk_time(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", s)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def measure_healthz(vigil, seconds, path="/healthz"):
    """wrk -t1 -c50 --latency on `path` of vigil (health server + 5 s tcp probe), sampling
    vigil's VmRSS every 50 ms while it runs."""
    wrk = shutil.which("wrk")
    if not wrk:
        return {"error": "wrk not installed"}
    listener = Listener()
    app = [BUSYBOX, "sleep", "1000"]
    pid = None
    try:
        pid, port, note = start_vigil_health(vigil, app, listener, "vigil-health-wrk.log")
        if pid is None:
            return {"error": "not supported", "note": note}
        idle = proc_status(pid)
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        samples, stop = [], threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    samples.append(proc_status(pid)["VmRSS"])
                except OSError:
                    return
                stop.wait(0.05)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        cmd = [wrk, "-t1", "-c50", f"-d{seconds}s", "--latency",
               f"http://127.0.0.1:{port}{path}"]
        wpid_r, wpid_w = os.pipe2(os.O_CLOEXEC)
        wpid = spawn(cmd, stdout=wpid_w, stderr=wpid_w, what="wrk")
        os.close(wpid_w)
        text = b""
        while True:
            chunk = os.read(wpid_r, 65536)
            if not chunk:
                break
            text += chunk
        os.close(wpid_r)
        wst = wait(wpid, seconds + 30)
        if wst is None:
            end(wpid)
        stop.set()
        t.join()
        after = proc_status(pid)
        text = text.decode("utf-8", "replace")
        res = {"command": " ".join(["wrk", *cmd[1:]]), "raw": text, "note": note,
               "rss_idle_kib": idle["VmRSS"], "rss_load_median_kib":
               statistics.median(samples) if samples else None,
               "rss_load_max_kib": max(samples) if samples else None,
               "hwm_kib": after["VmHWM"], "threads": after["threads"], "load_before": load,
               "cpu_ms": (after["run_ns"] - idle["run_ns"]) / 1e6,
               "runqueue_wait_ms": (after["wait_ns"] - idle["wait_ns"]) / 1e6}
        m = re.search(r"Requests/sec:\s+([\d.]+)", text)
        res["rps"] = float(m.group(1)) if m else None
        m = re.search(r"^\s+99%\s+(\S+)", text, re.M)
        res["p99_ms"] = parse_wrk_time(m.group(1)) if m else None
        m = re.search(r"^\s+50%\s+(\S+)", text, re.M)
        res["p50_ms"] = parse_wrk_time(m.group(1)) if m else None
        m = re.search(r"(\d+) requests in", text)
        res["requests"] = int(m.group(1)) if m else None
        m = re.search(r"Socket errors: (.*)", text)
        res["socket_errors"] = m.group(1).strip() if m else "none"
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        res["non_2xx"] = int(m.group(1)) if m else 0
        if res["rps"] is None:
            res["error"] = "wrk gave no result"
        return res
    finally:
        if pid is not None:
            end(pid)
        listener.close()
        sweep()


# Release binaries (scripts/release's dist/): Docker TARGETARCH name -> what runs it here.
RELEASE_RUNNERS = {"arm64": ["qemu-aarch64-static"]}


def release_binaries(dist):
    """arch -> path of every dist/vigil-linux-ARCH (not the SBOMs or sums)."""
    out = {}
    for name in sorted(os.listdir(dist)):
        if name.startswith("vigil-linux-") and "." not in name:
            out[name[len("vigil-linux-"):]] = os.path.join(dist, name)
    return out


def measure_release(dist, rounds, idle_s):
    """Each release binary: size beside tini-static and catatonit, its --version line, start-up
    overhead and idle RSS as a subreaper, a foreign one under its emulator (informational: the
    emulator's own start and memory count)."""
    peers = {n: os.path.getsize(p) for n, p in (("tini-static", "/usr/bin/tini-static"),
                                                ("catatonit", "/usr/bin/catatonit"))}
    out = {"dist": dist, "peers": peers, "bins": {}}
    prefixes = {}
    for arch, path in release_binaries(dist).items():
        runner = [shutil.which(w) or w for w in RELEASE_RUNNERS.get(arch, [])]
        d = out["bins"][arch] = {"bytes": os.path.getsize(path), "linkage": elf_linkage(path),
                                 "runner": " ".join(os.path.basename(w) for w in runner)}
        if runner and not os.access(runner[0], os.X_OK):
            d["error"] = f"no {runner[0]}"
            continue
        try:
            d["version"] = subprocess.run([*runner, path, "--version"], capture_output=True,
                                          text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            d["error"] = str(e)
            continue
        prefixes[arch] = [*runner, path, "--"]
    for arch, v in measure_startup(prefixes, rounds).items():
        out["bins"][arch]["startup"] = v
    pids = {}
    try:
        for arch, p in prefixes.items():
            pids[arch] = spawn([*p, BUSYBOX, "sleep", "1000"], what=f"release {arch}")
        time.sleep(1.0 + idle_s)
        for arch, pid in pids.items():
            st = wait(pid, 0)
            if st is None:
                out["bins"][arch]["rss_kib"] = proc_status(pid)["VmRSS"]
            else:
                out["bins"][arch]["idle_error"] = f"exited, status {os.waitstatus_to_exitcode(st)}"
    finally:
        for pid in pids.values():
            end(pid)
        sweep()
    return out


def release_markdown(RR):
    """The release binaries' table (a section of BENCHMARKS.md), as lines."""
    ts, cat = RR["peers"]["tini-static"], RR["peers"]["catatonit"]
    L = ["## Release binaries\n",
         f"`scripts/release` builds in `{os.path.relpath(RR['dist'], ROOT)}/`, measured beside "
         f"tini-static ({ts:,} B) and catatonit ({cat:,} B). Start-up overhead (`busybox true`, "
         f"as a subreaper, median) and idle RSS (app `busybox sleep`) of a foreign binary are "
         f"measured under its emulator and are informational: they include the emulator's own "
         f"start-up and memory.\n",
         "| binary | `--version` | bytes | × tini-static | × catatonit | runs under | start-up "
         "overhead | idle RSS, KiB |",
         "|---|---|---|---|---|---|---|---|"]
    for arch, d in RR["bins"].items():
        b = d["bytes"]
        L.append(f"| vigil-linux-{arch} ({d['linkage']}) | {d.get('version', d.get('error', 'n/a'))} "
                 f"| {b:,} | {b / ts:.3f}× | {b / cat:.3f}× | {d['runner'] or 'native'} "
                 f"| {cell(d.get('startup'), 'overhead_us', fmt_us)} "
                 f"| {fmt_int(d['rss_kib']) if d.get('rss_kib') else d.get('idle_error', 'n/a')} |")
    L.append("")
    return L


def size_breakdown(path):
    """Sections of the stripped-equivalent binary and code/data by crate from an unstripped build
    of the same release profile (symbols only; the layout is otherwise identical)."""
    out = {"binary": path}
    sec = subprocess.run(["size", "-A", "-d", path], capture_output=True, text=True, check=True)
    sections = {}
    for line in sec.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    out["sections"] = sections
    nm = subprocess.run(["nm", "-S", "--size-sort", "-C", "--defined-only", path],
                        capture_output=True, text=True, check=True)
    crates, symbols = {}, []
    for line in nm.stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4:
            continue
        size, kind, name = int(parts[1], 16), parts[2], parts[3]
        if kind in "bB":  # .bss takes no file space
            continue
        crates[crate_of(name)] = crates.get(crate_of(name), 0) + size
        symbols.append((size, name))
    out["crates"] = dict(sorted(crates.items(), key=lambda kv: -kv[1]))
    out["backtrace_bytes"] = sum(sz for sz, nm_ in symbols if is_backtrace(nm_))
    out["symbol_bytes"] = sum(sz for sz, _ in symbols)
    out["top_symbols"] = sorted(symbols, reverse=True)[:15]
    return out


BACKTRACE_CRATES = ("gimli", "addr2line", "rustc_demangle", "miniz_oxide", "object", "libunwind")


def is_backtrace(name):
    """std's backtrace printer and unwinder: what a panic message with RUST_BACKTRACE pulls in.
    (__rust_begin_short_backtrace is a thread's entry with its body inlined: not counted.)"""
    if "__rust_begin_short_backtrace" in name:
        return False
    return (crate_of(name) in BACKTRACE_CRATES or "backtrace" in name
            or name.startswith(("_Unwind", "__unw_", "unw_")))


def crate_of(name):
    n = name.lstrip("<&*")
    # C++ (libunwind): a return type comes before the qualified name.
    m = re.match(r"^(?:[A-Za-z_][\w]* )+(?=[A-Za-z_][\w]*::)", n)
    if m:
        n = n[m.end():]
    for prefix in ("dyn ", "mut ", "const "):
        if n.startswith(prefix):
            n = n[len(prefix):].lstrip("<&*")
    if "::" not in n:
        if n.startswith(("_ZN", "_R")):
            return "rust (undemangled)"
        return "C: musl libc / compiler-builtins"
    head = n.split("::", 1)[0]
    if head.startswith("_"):
        return "rust (undemangled)"
    return head


# ---------------------------------------------------------------------------------------------
# Report


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"nproc": len(os.sched_getaffinity(0)), "model": model, "kernel": os.uname().release,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_start": load}


def versions(vigil):
    def run(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
            return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else "?"
        except (OSError, subprocess.SubprocessError):
            return "?"
    out = {"vigil": run([vigil, "--version"])}
    for pkg, names in (("tini", ["tini", "tini-static"]), ("dumb-init", ["dumb-init"]),
                       ("catatonit", ["catatonit"])):
        v = run(["dpkg-query", "-W", "-f", "${Version}", pkg])
        for n in names:
            out[n] = f"{v}"
    out["busybox"] = run([BUSYBOX]).split(" multi-call")[0]
    commit = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml",
                            "Cargo.lock"], capture_output=True, text=True).stdout.strip()
    out["commit"] = commit + (" + uncommitted changes in src/" if dirty else "")
    return out


def fmt_int(v):
    return f"{v:,}"


def fmt_us(v):
    return f"{v:,.1f} µs" if abs(v) < 10000 else f"{v / 1000:,.2f} ms"


def cell(d, key, fmt, fallback="n/a"):
    if d is None:
        return fallback
    if key in d and d[key] is not None:
        return fmt(d[key])
    return f"n/a ({d['error']})" if "error" in d else fallback


def fwd_signals(q, metric):
    """How many signals per init and sink the forwarding run `metric` pools."""
    if metric == "forward_pinned":
        return q.get("fwd_pinned_signals", 1000) * q.get("fwd_pinned_rounds", 1)
    return q.get("fwd_signals", 200) * q.get("fwd_rounds", 1)


def build_table(R):
    """Rows of (label, {init: text})."""
    rows = []
    q = R["params"]

    rows.append(("stripped binary size, bytes",
                 {n: f"{fmt_int(R['size'][n]['bytes'])} ({R['size'][n]['linkage']})" for n in NAMES}))
    rows.append((f"start-up overhead, `busybox true`, as subreaper (median of {q['startup_runs']})",
                 {n: cell(R["startup"].get(n), "overhead_us", fmt_us) for n in NAMES}))
    rows.append((f"start-up overhead as PID 1 under unshare, informational (median of "
                 f"{q['startup_pid1_runs']})",
                 {n: cell(R["startup_pid1"].get(n), "overhead_us", fmt_us) for n in NAMES}))
    if "hooks" in R:
        n_hooks = R["hooks"]["runs"]
        rows.append((f"start-up cost of an empty `--pre-start` dir over plain vigil (median of "
                     f"{n_hooks})", {n: (hooks_cell(R, "empty_pre_start") if n == "vigil" else "—")
                                     for n in NAMES}))
        rows.append((f"start-up cost of a trivial `--env-from` seed, `busybox echo A=1` (median "
                     f"of {n_hooks})", {n: (hooks_cell(R, "trivial_seed") if n == "vigil" else "—")
                                        for n in NAMES}))
    rows.append(("idle RSS, app `busybox sleep`, KiB",
                 {n: cell(R["idle"].get(n), "rss_kib", fmt_int) for n in NAMES}))
    rows.append(("… of which anonymous / file-backed, KiB",
                 {n: (f"{R['idle'][n]['rss_anon_kib']:,} / {R['idle'][n]['rss_file_kib']:,}"
                      if R["idle"].get(n, {}).get("rss_anon_kib") is not None else "n/a")
                  for n in NAMES}))
    h = R["idle"].get("vigil+health", {})
    hs = cell(h, "rss_kib", fmt_int) if "rss_kib" in h else "n/a (not supported)"
    rows.append(("idle RSS with health + tcp probe every 5 s, KiB",
                 {n: (hs if n == "vigil" else "—") for n in NAMES}))
    rows.append((f"idle wake-ups/s over {q['idle_s']} s (ctxt switches, all threads)",
                 {n: cell(R["idle"].get(n), "wakeups_per_s", lambda v: f"{v:.2f}") for n in NAMES}))
    hw = (cell(h, "wakeups_per_s", lambda v: f"{v:.2f}") if "wakeups_per_s" in h
          else "n/a (not supported)")
    rows.append((f"idle wake-ups/s with health + 5 s tcp probe",
                 {n: (hw if n == "vigil" else "—") for n in NAMES}))
    rows.append((f"SIGTERM → init exited, app dies at once (median of {q['term_runs']})",
                 {n: cell(R["sigterm"].get(n), "median_us", fmt_us) for n in NAMES}))
    for metric, where in fwd_runs(R):
        f = R.get(metric, {})
        npin = fwd_signals(q, metric)
        for sink in SINKS:
            d = f.get(sink, {})
            label = ("stderr /dev/null" if sink == "null"
                     else "stderr a pipe drained by a reader (the container case)")
            rows.append((f"signal forwarding {where}, kill → app handler, median of {npin:,}: "
                         f"{label}", {n: cell(d.get(n), "median_us", fmt_us) for n in NAMES}))
            rows.append((f"… p90 / max, {SINK_LABEL[sink]}",
                         {n: (f"{fmt_us(d[n]['p90_us'])} / {fmt_us(d[n]['max_us'])}"
                              if "p90_us" in d.get(n, {}) else "n/a") for n in NAMES}))
    fp = R.get("forward_pinned", {})

    def cpu(n):
        v = [fp.get(s, {}).get(n, {}).get("cpu_us_per_signal") for s in SINKS]
        return " / ".join("n/a" if x is None else fmt_us(x) for x in v)

    rows.append(("init CPU time per forwarded signal, on one CPU (user + kernel), stderr "
                 "/dev/null / drained pipe", {n: cpu(n) for n in NAMES}))

    def lines(n):
        got = [R.get(m, {}).get("pipe", {}).get(n, {}) for m, _ in fwd_runs(R)]
        if not all("stderr_lines" in g for g in got):
            return "n/a"
        return (f"{sum(g['stderr_lines'] for g in got):,} "
                f"({sum(g['stderr_bytes'] for g in got):,} B)")

    total = sum(fwd_signals(q, m) for m, _ in fwd_runs(R))
    rows.append((f"lines the init wrote to its drained stderr pipe during those {total:,} "
                 f"forwards (bytes)", {n: lines(n) for n in NAMES}))
    for c in q["orphan_counts"]:
        def orph(d, c=c):
            x = (d or {}).get(str(c))
            if not x:
                return "n/a"
            if "error" in x:
                return f"n/a ({x['error']})"
            return f"{x['reap_ms']:.1f} ms, {x['zombies']} zombies" + (
                f", {x['left']} left" if x["left"] != x["zombies"] else "")
        rows.append((f"{c:,} orphans (as PID 1): time to reap all, zombies left (median of "
                     f"{q['orphan_reps']})", {n: orph(R["orphans"].get(n)) for n in NAMES}))
    w = R["healthz"]
    na = "n/a (not supported)"
    ok = "error" not in w

    def only_vigil(text):
        return {n: (text if n == "vigil" else "—") for n in NAMES}

    rows.append((f"/healthz, wrk -t1 -c50 -d{q['wrk_s']}s: requests/s",
                 only_vigil(f"{w['rps']:,.0f}" if ok else na)))
    rows.append(("/healthz p99 latency",
                 only_vigil(f"{w['p99_ms']:.3f} ms" if ok and w.get("p99_ms") is not None else na)))
    rows.append(("vigil RSS under /healthz load (peak VmHWM), KiB",
                 only_vigil(fmt_int(w["hwm_kib"]) if ok else na)))
    rows.extend(health_bench.rows(R, only_vigil))
    return rows


def targets(R):
    """(target, vigil value, reference, ratio text, PASS/MISS/TIE/n/a)."""
    out = []

    def add(name, value, ref, ratio, ok):
        if not isinstance(ok, str):
            ok = "n/a" if ok is None else ("PASS" if ok else "MISS")
        out.append((name, value, ref, ratio, ok))

    vs = R["size"]["vigil"]["bytes"]
    ts = R["size"]["tini-static"]["bytes"]
    add("binary size ≤ 0.7× tini-static", f"{vs:,} B", f"tini-static {ts:,} B (limit {int(ts * 0.7):,} B)",
        f"{vs / ts:.2f}× tini-static", vs <= 0.7 * ts)

    def best(metric, key):
        vals = [(R[metric][n][key], n) for n in PEERS if key in R[metric].get(n, {})]
        return min(vals) if vals else (None, None)

    v = R["idle"].get("vigil", {}).get("rss_kib")
    b, bn = best("idle", "rss_kib")
    add("idle RSS without health ≤ smallest peer's", f"{v:,} KiB" if v else "n/a",
        f"{bn} {b:,} KiB" if b else "n/a", f"{v / b:.2f}×" if v and b else "n/a",
        (v <= b) if v and b else None)

    def versus(label, d, key, factor):
        """vigil against the best peer in `d` (init -> figures), the limit `factor` × that."""
        v = d.get("vigil", {}).get(key)
        vals = [(d[n][key], n) for n in PEERS if key in d.get(n, {})]
        b, bn = min(vals) if vals else (None, None)
        ratio = f"{v / b:.2f}×" if v is not None and b and b > 0 else "n/a"
        ref = f"{bn} {fmt_us(b)}" if b is not None else "n/a"
        c = d.get(CONTROL, {}).get(key)
        ok = (v <= factor * b) if v is not None and b is not None else None
        if c is not None:
            ref += f"; the 2nd vigil in the same run: {fmt_us(c)}"
            # Over the limit by no more than two runs of the same binary differ: this run
            # cannot tell the two apart.
            if ok is False and v - factor * b <= abs(v - c):
                ok = "TIE"
        limit = "best peer's" if factor == 1 else f"{factor:g}× best peer's"
        add(f"{label} ≤ {limit}", fmt_us(v) if v is not None else "n/a", ref, ratio, ok)

    versus("start-up overhead", R.get("startup", {}), "overhead_us", 1)
    for metric, where in fwd_runs(R):
        for sink in ("pipe", "null"):
            versus(f"forwarding {where}, {SINK_LABEL[sink]}, median",
                   R.get(metric, {}).get(sink, {}), "median_us", FWD_LIMIT)

    d = R["idle"].get("vigil", {})
    add("zero idle wake-ups without a probe",
        f"{d['ctxt_delta']} in {d['seconds']} s" if "ctxt_delta" in d else "n/a", "0", "—",
        d["ctxt_delta"] == 0 if "ctxt_delta" in d else None)

    t = R["sigterm"].get("vigil", {}).get("median_us")
    add("SIGTERM → exit < 1 ms, app exits at once", fmt_us(t) if t is not None else "n/a",
        "1 ms", f"{t / 1000:.2f}× the limit" if t is not None else "n/a",
        t < 1000 if t is not None else None)

    zs = [(c, x) for c, x in R["orphans"].get("vigil", {}).items()]
    okz = all("error" not in x and x["left"] == 0 for _, x in zs) if zs else None
    add("no zombies left at any orphan count",
        ", ".join(f"{int(c):,}: {x.get('left', '?')} left" for c, x in zs) or "n/a", "0", "—", okz)

    w = R["healthz"]
    h = R["idle"].get("vigil+health", {})
    if "error" in w:
        for name in ("/healthz p99 < 2 ms", "RSS under /healthz load < 2 MB"):
            add(name, "n/a (not supported)", "", "", None)
    else:
        p = w.get("p99_ms")
        add("/healthz p99 < 2 ms", f"{p:.3f} ms" if p is not None else "n/a", "2 ms",
            f"{p / 2:.2f}× the limit" if p is not None else "n/a",
            (p < 2) if p is not None else None)
        add("RSS under /healthz load < 2 MB", f"{w['hwm_kib']:,} KiB (peak)", "2,048 KiB",
            f"{w['hwm_kib'] / 2048:.2f}× the limit", w["hwm_kib"] < 2048)
    if "wakeups_per_s" in h:
        add("idle with a 5 s tcp probe < 1 wake-up/s", f"{h['wakeups_per_s']:.2f}/s", "1/s",
            f"{h['wakeups_per_s']:.2f}×", h["wakeups_per_s"] < 1)
    else:
        add("idle with a 5 s tcp probe < 1 wake-up/s", "n/a (not supported)", "", "", None)
    health_bench.targets(R, add)
    return out


def text_table(rows):
    headers = ["", *NAMES]
    body = [[label.replace("`", ""), *[vals[n] for n in NAMES]] for label, vals in rows]
    widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)


def markdown(R, rows, tg, chart_rel):
    m = R["machine"]
    v = R["versions"]
    q = R["params"]
    L = []
    L.append("# Benchmarks: vigil beside tini, dumb-init and catatonit\n")
    L.append(f"Written by `bench/run`; every figure below comes from one run of `{R['command']}` "
             f"on {m['date']}. Regenerate it with the same command; do not edit by hand.\n")
    L.append(f"![vigil and its peers, lower is better]({chart_rel})\n")
    L.append("## Results\n")
    L.append("| | " + " | ".join(NAMES) + " |")
    L.append("|---|" + "---|" * len(NAMES))
    for label, vals in rows:
        L.append(f"| {label} | " + " | ".join(vals[n] for n in NAMES) + " |")
    L.append("")
    L.append("## Targets (ratios to the best peer in this same run)\n")
    L.append("| target | vigil | reference | ratio | result |")
    L.append("|---|---|---|---|---|")
    for t in tg:
        L.append("| " + " | ".join(t) + " |")
    L.append("")
    passed = sum(1 for t in tg if t[4] == "PASS")
    missed = [t[0] for t in tg if t[4] == "MISS"]
    tied = [t[0] for t in tg if t[4] == "TIE"]
    na = [t[0] for t in tg if t[4] == "n/a"]
    L.append(f"{passed} of {len(tg)} targets pass." + (f" Missed: {'; '.join(missed)}." if missed else "")
             + (f" Tied (vigil behind the best peer by no more than its two same-binary runs "
                f"differ, so this run cannot order them): {'; '.join(tied)}." if tied else "")
             + (f" Not measurable in this build: {'; '.join(na)}." if na else ""))
    L.append("")
    if R.get("release"):
        L.extend(release_markdown(R["release"]))
    note = forwarding_rounds_note(R)
    if note:
        L.append(note)
        L.append("")
    if R.get("breakdown"):
        B = R["breakdown"]
        L.append("## Where vigil's bytes go\n")
        L.append("From an unstripped build of the same release profile (`CARGO_PROFILE_RELEASE_STRIP=false`, "
                 "own target dir under bench/out; the code is identical, only the symbol table is kept). "
                 "Sections (bytes):\n")
        L.append("| section | bytes |")
        L.append("|---|---|")
        for s in (".text", ".rodata", ".eh_frame", ".eh_frame_hdr", ".gcc_except_table", ".rela.dyn",
                  ".data.rel.ro", ".data", ".got"):
            if s in B["sections"]:
                L.append(f"| {s} | {B['sections'][s]:,} |")
        L.append("")
        L.append(f"Of {B['symbol_bytes']:,} bytes with a symbol, {B['backtrace_bytes']:,} are std's "
                 "backtrace symbolizer and unwinder (gimli, addr2line, rustc_demangle, miniz_oxide, "
                 "libunwind, std::backtrace_rs), linked by std's default panic hook even with "
                 "`panic = \"abort\"`. By crate (after LTO, inlined code counts toward the function "
                 "it was inlined into):\n")
        L.append("| crate | bytes |")
        L.append("|---|---|")
        for c, b in list(B["crates"].items())[:12]:
            L.append(f"| {c} | {b:,} |")
        L.append("")
        L.append("Largest symbols:\n")
        L.append("| bytes | symbol |")
        L.append("|---|---|")
        for size, name in B["top_symbols"][:12]:
            short = (name if len(name) < 110 else name[:107] + "...").replace("|", "\\|")
            L.append(f"| {size:,} | `{short}` |")
        L.append("")
        L.append("`bench/size-variants` rebuilds the same source with settings Cargo.toml does not use "
                 "(opt-level z, non-PIE, nightly `-Z build-std`, `-C panic=immediate-abort`), each in "
                 "its own target dir, and prints each size as a ratio to tini-static: it shows what "
                 "bounds the size target.\n")
    L.append("## Machine\n")
    L.append(f"- CPU: {m['model']}, nproc {m['nproc']}")
    L.append(f"- kernel {m['kernel']}; load average at start {m['load_start']}, at end {m['load_end']} "
             "(the machine is shared: compare ratios within this run, not absolute figures across runs)")
    L.append(f"- date {m['date']}")
    L.append(f"- vigil: `{v['vigil']}` at commit {v['commit']}, built with "
             + os.environ.get("VIGIL_BUILD", "`cargo build --release --target x86_64-unknown-linux-musl`"))
    L.append(f"- peers, Debian packages: tini {v['tini']} (/usr/bin/tini and /usr/bin/tini-static), "
             f"dumb-init {v['dumb-init']}, catatonit {v['catatonit']}")
    L.append(f"- app for start-up and idle rows: `{BUSYBOX}` ({v['busybox']}, static)")
    L.append(f"- command: `{R['command']}` (harness wall time {R['elapsed_s']:.0f} s)")
    if R.get("load_warning"):
        L.append(f"- **{R['load_warning']}**")
    L.append("")
    L.append("## How each row is measured\n")
    L.append(
        "- **Inits as run.** Except for the PID 1 rows, every init runs directly under the harness "
        "(not as PID 1), as a child subreaper: vigil and catatonit make themselves subreapers, tini "
        "gets `-s`, dumb-init takes no flag (it never becomes a subreaper, which does not matter "
        "for those rows). Every init's stderr goes to /dev/null, except in the forwarding rows "
        "marked drained pipe. vigil logs at its default level, `info`: a signal forwarded outside "
        "a drain writes no line, each drain step and every start and exit writes one.")
    L.append(
        f"- **Start-up overhead**: wall time of `posix_spawn` + `waitpid` of `busybox true` under the "
        f"init minus the same run directly, each the median of {q['startup_runs']} runs; the six "
        f"variants run interleaved in a fresh random order every round (after 5 discarded warm-up "
        f"rounds) so machine noise hits them alike. The PID 1 row repeats this with "
        f"`unshare --pid --fork --mount-proc --kill-child` in front of both the direct run and each "
        f"init ({q['startup_pid1_runs']} runs); unshare's own cost is in both and cancels out, but "
        f"creating and tearing down the pid and mount namespaces takes milliseconds and varies by "
        f"about as much as the differences between inits, so that row is informational and the "
        f"start-up target is judged on the subreaper row.")
    L.append(
        f"- **Idle RSS and wake-ups**: all inits started side by side with `busybox sleep 1000`, "
        f"settled 1 s, then VmRSS from /proc/PID/status and voluntary + nonvoluntary context "
        f"switches summed over /proc/PID/task/*/status, sampled again after {q['idle_s']} s. "
        f"VmRSS counts shared library pages of the dynamic inits (tini, dumb-init). vigil with "
        f"health runs `--health-listen 127.0.0.1:PORT --probe-tcp 127.0.0.1:PORT2 --probe-interval 5`; "
        f"PORT2 is a listener thread in the harness that accepts and closes.")
    L.append(
        f"- **SIGTERM → exit**: app `benchapp wait` (default SIGTERM action, so it dies at once); "
        f"once it has printed its ready line, the harness takes CLOCK_MONOTONIC, sends SIGTERM to "
        f"the init and takes it again when waitpid on the init returns; median of {q['term_runs']} "
        f"per init, interleaved. tini without -g forwards to the child only, which is all there is.")
    L.append(
        f"- **Signal forwarding**: app `benchapp sig` records CLOCK_MONOTONIC in its SIGUSR1 handler "
        f"and writes it to a pipe; the harness takes CLOCK_MONOTONIC just before kill(2) on the init. "
        f"Every init runs twice side by side, once with its stderr (and so its app's) on /dev/null "
        f"and once on a pipe that a reader drains, as a container runtime's log collector reads "
        f"PID 1's stderr (`benchapp drain`: read(2) 64 KiB at a time, copied to a file under "
        f"bench/out); the signals interleave across all of them in a fresh random order, one at a "
        f"time, after 5 warm-ups each, and each round starts fresh processes; the samples of all "
        f"rounds are pooled. A second vigil runs in every round, on both sinks, as a same-binary "
        f"control: the gap between the two vigils is how far apart two equal inits can land, and "
        f"a miss by no more than that gap is a TIE. vigil forwards to the app's process group, "
        f"dumb-init to the child's session group, tini and catatonit to the child. The Python side "
        f"adds the same few µs to every init. **On {m['nproc']} CPUs** ({q.get('fwd_rounds', 1)} "
        f"rounds of {q['fwd_signals']} signals per init and sink) nothing is pinned: the drainer "
        f"can run on another CPU, as a collector would. On this 2-vCPU virtual machine that run mostly "
        f"measures the hypervisor: a kill that wakes an idle vCPU costs 20-30 µs, one that finds it "
        f"busy a few, so each init's samples fall into two clusters and a median can jump between "
        f"them from round to round. **On one CPU** ({q.get('fwd_pinned_rounds', 1)} rounds of "
        f"{q.get('fwd_pinned_signals', 1000):,} signals per init and sink) the harness, every init, "
        f"app and drainer are pinned to one CPU (sched_setaffinity, inherited): no cross-CPU "
        f"wake-up, so the latency is the kernel's signal path plus each init's own work between the "
        f"two kills. Both runs happen in a cpu cgroup of their own ({pinned_cgroup_note(R)}), as "
        f"a container's processes would: in the root group the kernel's autogroup gives every "
        f"session its own scheduling group, and dumb-init's app, the only one in a session of its "
        f"own (setsid), then runs ahead of the harness after the kill and looks about 1.3 µs "
        f"faster on one CPU than every other init, `dumb-init -c` (no setsid) included; measured while "
        f"tuning, it has nothing to do with the init. The CPU row is each init's own run time per "
        f"forwarded signal on one CPU (/proc/PID/schedstat, user + kernel, between two 50 ms "
        f"settles). The lines row counts what each init wrote to its drained pipe between the "
        f"warm-up and the last signal, both runs and all rounds together; start-up and exit lines "
        f"are outside that window.")
    L.append(
        f"- **Orphans**: every init as PID 1 of a fresh pid namespace "
        f"(`unshare --pid --fork --mount-proc --kill-child INIT benchapp orphans N`; tini without -s, "
        f"as PID 1 needs none). benchapp forks a middle process that forks N children which exit at "
        f"once; the middle waits (WNOWAIT) until all N are zombies and exits, so the init inherits "
        f"N zombies in one go with coalesced SIGCHLDs. benchapp then polls kill(pid, 0) until every "
        f"one is gone (reaped by the init) and reports the time from the middle's exit and how many "
        f"were left, and in state Z, after 20 s. Median of {q['orphan_reps']} runs per count.")
    L.append(
        f"- **/healthz**: vigil with health and a 5 s tcp probe, app `busybox sleep 1000`, then "
        f"`wrk -t1 -c50 -d{q['wrk_s']}s --latency http://127.0.0.1:PORT/healthz` over loopback; "
        f"vigil's VmRSS sampled every 50 ms during the run and VmHWM (peak) read at the end. A vigil "
        f"that does not answer /healthz within 3 s of starting gets \"n/a (not supported)\".")
    L.extend(health_bench.how(R))
    L.append("")
    w = R["healthz"]
    if "raw" in w:
        L.append(f"During the wrk run vigil's threads were on a CPU for {w['cpu_ms']:,.0f} ms and "
                 f"runnable but waiting for a CPU for {w['runqueue_wait_ms']:,.0f} ms "
                 f"(/proc/PID/task/*/schedstat); load average just before: {w['load_before']}. "
                 f"Socket errors: {w['socket_errors']}; non-2xx answers: {w['non_2xx']}.\n")
        L.append("wrk's own output:\n")
        L.append("```")
        L.append(w["raw"].rstrip())
        L.append("```")
        L.append("")
    elif "note" in w:
        L.append(f"/healthz: n/a (not supported): {w['note']}.\n")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vigil", help="the vigil binary to measure (required unless --report-only)")
    ap.add_argument("--quick", action="store_true", help="fewer iterations, shorter windows")
    ap.add_argument("--breakdown", help="unstripped vigil for the size breakdown")
    ap.add_argument("--release", help="scripts/release's dist/: a row per release binary")
    ap.add_argument("--release-only", action="store_true",
                    help="measure only the --release rows, print them, write nothing")
    ap.add_argument("--command", default="bench/run")
    ap.add_argument("--markdown", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--chart", default=os.path.join(HERE, "chart.png"))
    ap.add_argument("--only", choices=["hooks"],
                    help="measure only this part and print it as JSON; no report is written")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: rewrite the report and chart from bench/out/results.json")
    a = ap.parse_args()
    if a.report_only:
        with open(os.path.join(OUT, "results.json")) as f:
            R = json.load(f)
        write_report(R, a)
        return
    if a.release_only:
        if not a.release:
            ap.error("--release-only needs --release DIR")
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        try:
            rr = measure_release(os.path.abspath(a.release), 60 if a.quick else 300,
                                 5 if a.quick else 10)
        finally:
            end_everything()
        print("\n".join(release_markdown(rr)))
        return
    if not a.vigil:
        ap.error("--vigil is required")

    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # A background job of a non-interactive shell starts with SIGINT ignored; take it anyway.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    os.makedirs(OUT, exist_ok=True)
    vigil = os.path.abspath(a.vigil)
    if a.only == "hooks":
        try:
            print(json.dumps(measure_hooks(vigil, 100), indent=1))
        finally:
            end_everything()
        return
    I = inits(vigil)
    sub = {n: I[n][1] for n in NAMES}
    pid1 = {n: I[n][2] for n in NAMES}
    q = {"startup_runs": 60 if a.quick else 300, "startup_pid1_runs": 20 if a.quick else 100,
         "idle_s": 5 if a.quick else 10, "term_runs": 15 if a.quick else 50,
         "fwd_signals": 200, "fwd_rounds": 3, "fwd_pinned_signals": 1000,
         "fwd_pinned_rounds": 2 if a.quick else 5, "orphan_counts": [2000, 10000],
         "orphan_reps": 1 if a.quick else 3,
         "wrk_s": 5 if a.quick else 10, "hooks_runs": 30 if a.quick else 100,
         **health_bench.params(a.quick)}
    R = {"params": q, "command": a.command}
    t_start = time.monotonic()
    try:
        R["machine"] = machine()
        load1 = float(R["machine"]["load_start"].split()[0])
        if load1 > R["machine"]["nproc"]:
            R["load_warning"] = (f"load average {load1:.1f} on {R['machine']['nproc']} CPUs when "
                                 "the run started: other work competed for the CPUs, so latency "
                                 "tails and absolute times are inflated")
            log("warning: " + R["load_warning"])
        R["versions"] = versions(vigil)
        R["size"] = measure_sizes({n: I[n][0] for n in NAMES})
        log("start-up overhead (subreaper)")
        R["startup"] = measure_startup(sub, q["startup_runs"])
        log("start-up overhead (PID 1 under unshare)")
        R["startup_pid1"] = measure_startup(pid1, q["startup_pid1_runs"], base_prefix=PID1)
        log("start-up cost of the hooks")
        R["hooks"] = measure_hooks(vigil, q["hooks_runs"])
        log(f"idle RSS and wake-ups over {q['idle_s']} s")
        R["idle"] = measure_idle(sub, vigil, q["idle_s"])
        log("SIGTERM to exit")
        R["sigterm"] = measure_sigterm(sub, q["term_runs"])
        # Both sinks, with a second vigil as a same-binary control (see markdown()), in a cpu
        # cgroup of their own as a container's processes would be (see OwnCpuCgroup).
        fwd = dict(sub, **{CONTROL: sub["vigil"]})
        cpu = max(os.sched_getaffinity(0))
        with OwnCpuCgroup() as cg:
            log(f"signal forwarding latency on {R['machine']['nproc']} CPUs, cgroup {cg.path}")
            R["forward"] = measure_forwarding_rounds(fwd, q["fwd_signals"], q["fwd_rounds"])
            log(f"signal forwarding latency, everything on CPU {cpu}, cgroup {cg.path}")
            R["forward_pinned"] = measure_forwarding_rounds(
                fwd, q["fwd_pinned_signals"], q["fwd_pinned_rounds"], cpu)
            R["forward"]["cgroup"] = R["forward_pinned"]["cgroup"] = cg.path
        R["forward_pinned"]["cpu"] = cpu
        R["forward"]["autogroup"] = R["forward_pinned"]["autogroup"] = autogroup()
        log("orphans")
        R["orphans"] = measure_orphans(pid1, q["orphan_counts"], q["orphan_reps"])
        log("/healthz under wrk")
        R["healthz"] = measure_healthz(vigil, q["wrk_s"])
        R["health"] = health_bench.measure_all(sys.modules[__name__], vigil, q)
        if a.breakdown:
            R["breakdown"] = size_breakdown(a.breakdown)
        if a.release:
            log("release binaries")
            R["release"] = measure_release(os.path.abspath(a.release), q["startup_runs"],
                                           q["idle_s"])
    finally:
        end_everything()
    with open("/proc/loadavg") as f:
        R["machine"]["load_end"] = " ".join(f.read().split()[:3])
    R["elapsed_s"] = time.monotonic() - t_start

    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(R, f, indent=1, default=str)
    write_report(R, a)


def write_report(R, a):
    rows = build_table(R)
    tg = targets(R)
    print()
    print(text_table(rows))
    print()
    for t in tg:
        print(f"{t[4]:5} {t[0]}: {t[1]}" + (f" (reference {t[2]}; {t[3]})" if t[2] else ""))
    chart_note = ""
    try:
        sys.path.insert(0, HERE)
        import chart
        chart.render(R, tg, a.chart)
        chart_rel = os.path.relpath(a.chart, os.path.dirname(os.path.abspath(a.markdown)))
    except Exception as e:  # the table matters more than the picture
        chart_rel = os.path.relpath(a.chart, os.path.dirname(os.path.abspath(a.markdown)))
        chart_note = f"chart not written: {e!r}"
        log(chart_note)
    with open(a.markdown, "w") as f:
        f.write(markdown(R, rows, tg, chart_rel))
    print()
    print(f"wrote {os.path.relpath(a.markdown, ROOT)} and {os.path.relpath(a.chart, ROOT)}"
          + (f" ({chart_note})" if chart_note else "") + f" in {R['elapsed_s']:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        end_everything()
        sys.exit(130)
