//! The health server and probes (issue 3): every row of the endpoint table, IPv4 and IPv6
//! listeners, the listener kept from the app, readiness during the drain delay, the phases, each
//! probe kind passing and failing, the failure threshold and startup grace, `vigil probe`, and
//! abusive clients that must not hurt the supervisor.
//!
//! The test talks HTTP/1.1 through a plain `TcpStream` and reads whole answers (by
//! `Content-Length`). Probe targets are servers inside the test. Waits poll with ceilings; the
//! only sleeps pace an abusive client (one byte a second).

use crate::util::{
    CEILING, LOOP, Mode, ProcRef, SLACK, Scratch, can_unshare, closed_port, descendants,
    instant_of_wall, poll_until, require, secs, socket_fds, stat, status_field, tcp_listeners,
    term_ignorer, vigil, vigil_command, wait_until, zombies,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

both_modes!(
    endpoint_table,
    phases,
    readiness_fails_at_sigterm,
    listener_not_inherited,
    exec_probe_pass_and_fail,
    exec_probe_timeout_kills_its_group,
    abuse_does_not_hurt,
);

pub(crate) const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const ANY4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const ANY6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// An app that keeps its stderr to itself (so every stderr line is vigil's), prints `ready`, and
/// exits 0 on SIGTERM after printing `TERM <wall clock>`.
pub(crate) fn polite_app() -> String {
    format!("exec 2>/dev/null; trap 'echo TERM $(date +%s.%N); exit 0' TERM; echo ready; {LOOP}")
}

/// The mode for tests where PID 1 and subreaper do not differ: PID 1 where this machine can.
pub(crate) fn one_mode() -> Mode {
    if can_unshare() {
        Mode::Pid1
    } else {
        Mode::Subreaper
    }
}

// ---------------------------------------------------------------------------------------------
// An HTTP/1.1 client

/// One answer: status code, head as text, body as declared by `Content-Length` (nothing for
/// `HEAD`), and whatever else came before the server closed.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) code: u16,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
    trailing: Vec<u8>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self:?}"))
    }
}

fn io_err(what: &str) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `METHOD PATH HTTP/1.1` with `Connection: close`; reads the whole answer.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<Resp> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    exchange(s, addr, method, path, timeout)
}

/// [`request`] on a connected stream.
fn exchange(
    mut s: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<Resp> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: vigil-tests\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = read_answer(&mut s, method == "HEAD")?;
    // Connection: close: nothing may follow (for HEAD: no body at all).
    s.set_read_timeout(Some(secs(0.5)))?;
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => resp.trailing.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(resp)
}

/// Reads one answer: its head, and its body by `Content-Length` (none if `head_only`).
fn read_answer(s: &mut TcpStream, head_only: bool) -> std::io::Result<Resp> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(io_err("answer head over 64 KiB"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io_err("closed before the end of the answer head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let code = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io_err(&format!("not an HTTP/1.1 status line: {head:?}")))?;
    let mut resp = Resp {
        code,
        head,
        body: Vec::new(),
        trailing: buf[end..].to_vec(),
    };
    if !head_only {
        let len: usize = resp
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| io_err(&format!("no Content-Length: {:?}", resp.head)))?;
        while resp.trailing.len() < len {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(io_err("closed before the end of the body"));
            }
            resp.trailing.extend_from_slice(&chunk[..n]);
        }
        resp.body = resp.trailing.drain(..len).collect();
    }
    Ok(resp)
}

/// `request` that fails the test on an I/O error.
pub(crate) fn req(addr: SocketAddr, method: &str, path: &str) -> Resp {
    request(addr, method, path, secs(3.0))
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> Resp {
    req(addr, "GET", path)
}

/// Polls `GET path` until `pred` holds for an answer; returns that answer.
pub(crate) fn wait_for_answer(
    addr: SocketAddr,
    path: &str,
    what: &str,
    pred: impl Fn(&Resp) -> bool,
) -> Resp {
    let mut last = None;
    let ok = poll_until(CEILING, || {
        let r = get(addr, path);
        let hit = pred(&r);
        last = Some(r);
        hit
    });
    let last = last.expect("at least one answer");
    assert!(
        ok,
        "timed out waiting until {what} on {path}; last answer: {last:?}"
    );
    last
}

/// After a SIGTERM at `t0` with a drain delay: the first `/readyz` 503, which must come at once,
/// within `within` (less than the drain delay, when the app would have its SIGTERM).
fn readiness_fails_at_once(addr: SocketAddr, t0: Instant, within: Duration) -> Resp {
    let mut failed = None;
    poll_until(within, || {
        let r = request(addr, "GET", "/readyz", secs(1.0));
        let at = t0.elapsed();
        failed = r.ok().filter(|r| r.code == 503 && at < within);
        failed.is_some()
    });
    failed.unwrap_or_else(|| panic!("/readyz did not fail within {within:?} of SIGTERM"))
}

pub(crate) fn body_of(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Asserts the answer's code and its body's `status` and `phase`.
fn assert_answer(r: &Resp, code: u16, phase: &str, what: &str) {
    assert_eq!(r.code, code, "{what}: {r:?}");
    assert!(r.trailing.is_empty(), "{what}: bytes after the body: {r:?}");
    let v = r.json();
    let status = if code == 200 { "ok" } else { "fail" };
    assert_eq!(v["status"], status, "{what}: {}", body_of(r));
    assert_eq!(v["phase"], phase, "{what}: {}", body_of(r));
}

/// Asserts a `HEAD` answer: the code, and no body.
fn assert_head(addr: SocketAddr, path: &str, code: u16) {
    let r = req(addr, "HEAD", path);
    assert_eq!(r.code, code, "HEAD {path}: {r:?}");
    assert!(
        r.body.is_empty() && r.trailing.is_empty(),
        "HEAD {path} has a body: {r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Starting vigil with a health listener

/// A port that was free a moment ago on `ip`.
pub(crate) fn free_port_on(ip: IpAddr) -> u16 {
    let l = TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// vigil with `--health-listen <listen>:<free port>` plus `args` (options, `--`, command),
/// started once the app is spawned (the listener is bound and served before the spawn). Returns
/// vigil and the port. Another process may take the port between the test's probe and vigil's
/// bind: vigil then exits 2 ("cannot bind") and the test tries another port.
fn start_health(mode: Mode, listen: IpAddr, args: &[&str]) -> (crate::util::Vigil, u16) {
    start_health_setup(mode, listen, "", args)
}

/// `start_health` with `setup` (shell, run before vigil; none if empty).
fn start_health_setup(
    mode: Mode,
    listen: IpAddr,
    setup: &str,
    args: &[&str],
) -> (crate::util::Vigil, u16) {
    for _ in 0..5 {
        let port = free_port_on(listen);
        let addr = SocketAddr::new(listen, port).to_string();
        let all: Vec<&str> = ["--health-listen", addr.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let b = vigil(&all);
        let v = if setup.is_empty() { b } else { b.setup(setup) }.start(mode);
        let mut lost = false;
        let started = poll_until(CEILING, || {
            lost = v.stderr().iter().any(|l| l.contains("cannot bind"));
            lost || !v.logs_with("app spawned").is_empty()
        });
        assert!(started, "the app was not spawned\n{}", v.dump());
        if !lost {
            return (v, port);
        }
    }
    panic!("no free port for the health listener after 5 tries");
}

pub(crate) fn at(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// Whether the test can use IPv6 loopback here.
fn ipv6_works() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

// ---------------------------------------------------------------------------------------------
// Probe targets inside the test

/// A TCP port that accepts (and drops) every connection, counting them.
pub(crate) struct TcpTarget {
    pub(crate) addr: SocketAddr,
    pub(crate) accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpTarget {
    pub(crate) fn new() -> TcpTarget {
        TcpTarget::on(TcpListener::bind("127.0.0.1:0").expect("bind"))
    }

    /// Accepts on a listener the test made itself.
    pub(crate) fn on(l: TcpListener) -> TcpTarget {
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (Arc::clone(&accepted), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok(_) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TcpTarget {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TcpTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the test's HTTP server answers.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    Status(u16),
    /// 200 when the request head has each of these header lines (exactly, after a CRLF), 401
    /// when it does not.
    Requires(&'static [&'static str]),
    /// Accepts, reads, never answers (holds the connection until the server stops).
    Silent,
    /// Answers one byte every 50 ms, forever (the status line never ends).
    Trickle,
    /// Answers 1 MiB without a line break.
    Flood,
}

/// A tiny HTTP server that records each request head it gets.
pub(crate) struct HttpServer {
    pub(crate) addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub(crate) fn new(answer: Answer) -> HttpServer {
        HttpServer::on(TcpListener::bind("127.0.0.1:0").expect("bind"), answer)
    }

    /// Serves on a listener the test made itself.
    pub(crate) fn on(l: TcpListener, answer: Answer) -> HttpServer {
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(secs(2.0)));
                let _ = s.set_write_timeout(Some(secs(2.0)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while find(&buf, b"\r\n\r\n").is_none() && buf.len() < 64 * 1024 {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                log.lock()
                    .expect("requests")
                    .push(String::from_utf8_lossy(&buf).into_owned());
                match answer {
                    Answer::Status(code) => {
                        let _ = write!(
                            s,
                            "HTTP/1.1 {code} Test\r\nLocation: /elsewhere\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                        );
                    }
                    Answer::Requires(lines) => {
                        let head = String::from_utf8_lossy(&buf);
                        let all = lines.iter().all(|l| head.contains(&format!("\r\n{l}\r\n")));
                        let code = if all { 200 } else { 401 };
                        let _ = write!(
                            s,
                            "HTTP/1.1 {code} Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                        );
                    }
                    Answer::Silent => held.push(s),
                    Answer::Trickle => {
                        let halt = Arc::clone(&halt);
                        thread::spawn(move || {
                            while !halt.load(Ordering::Relaxed) && s.write_all(b"H").is_ok() {
                                thread::sleep(Duration::from_millis(50));
                            }
                        });
                    }
                    Answer::Flood => {
                        thread::spawn(move || {
                            let _ = s.write_all(&vec![b'x'; 1 << 20]);
                        });
                    }
                }
            }
        });
        HttpServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `probe` object of an answer's body.
pub(crate) fn probe_of(r: &Resp) -> Value {
    let v = r.json();
    assert!(v["probe"].is_object(), "no probe object: {}", body_of(r));
    v["probe"].clone()
}

fn failures_of(r: &Resp) -> u64 {
    probe_of(r)["consecutive_failures"]
        .as_u64()
        .unwrap_or_else(|| panic!("consecutive_failures is not a count: {}", body_of(r)))
}

// ---------------------------------------------------------------------------------------------
// The endpoint table

/// Every row of the table while the app runs and during the drain delay (readiness failing,
/// liveness not), GET and HEAD, 404 for other paths, 405 for other methods.
fn endpoint_table(mode: Mode) {
    let app = polite_app();
    let args = [
        "--drain-delay",
        "3",
        "--drain-timeout",
        "6",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (mut v, port) = start_health(mode, V4, &args);
    let addr = at(V4, port);
    v.wait_for_line("ready", CEILING);

    let check_rest = |draining: bool| {
        for path in [
            "/",
            "/nope",
            "/healthz/",
            "/livez/x",
            "/readyzz",
            "/HEALTHZ",
        ] {
            assert_eq!(get(addr, path).code, 404, "GET {path}");
            assert_head(addr, path, 404);
        }
        for path in ["/livez", "/readyz", "/healthz"] {
            for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
                let r = req(addr, method, path);
                assert_eq!(r.code, 405, "{method} {path} (draining: {draining}): {r:?}");
            }
        }
    };

    for path in ["/livez", "/readyz", "/healthz"] {
        let r = get(addr, path);
        assert_answer(&r, 200, "running", &format!("GET {path}"));
        assert_eq!(
            r.header("Content-Length").map(|l| l.parse::<usize>().ok()),
            Some(Some(r.body.len()))
        );
        assert_head(addr, path, 200);
    }
    check_rest(false);

    let t0 = v.signal(Signal::SIGTERM);
    let r = readiness_fails_at_once(addr, t0, secs(1.5));
    assert_answer(&r, 503, "draining", "GET /readyz while draining");
    assert_answer(
        &get(addr, "/healthz"),
        503,
        "draining",
        "GET /healthz while draining",
    );
    assert_answer(
        &get(addr, "/livez"),
        200,
        "draining",
        "GET /livez while draining",
    );
    assert_head(addr, "/readyz", 503);
    assert_head(addr, "/healthz", 503);
    assert_head(addr, "/livez", 200);
    check_rest(true);
    // All of that happened within the drain delay: the app has not had its SIGTERM yet.
    assert!(
        !v.stdout().iter().any(|l| l.starts_with("TERM")),
        "the checks took longer than the drain delay ({:?})\n{}",
        t0.elapsed(),
        v.dump()
    );
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 0, "{}", v.dump());
    assert!(
        exit.at >= t0 + secs(3.0),
        "vigil exited before the drain delay"
    );
}

/// The phases starting -> running -> draining -> exited, as bodies show them and as the log has
/// them. The exec probe holds its first run until the test says so (`ok` is null until then);
/// a TERM-ignoring leftover keeps vigil up after the app exits, so `exited` can be seen.
fn phases(mode: Mode) {
    let s = Scratch::new();
    let (go, ok) = (s.p("go"), s.p("ok"));
    std::fs::write(
        s.path("probe.sh"),
        format!("while [ ! -f {go} ]; do sleep 0.02; done\n[ -f {ok} ]\n"),
    )
    .expect("write probe.sh");
    let probe = format!("sh {}", s.p("probe.sh"));
    let app = format!(
        "exec 2>/dev/null; (trap '' TERM; {LOOP}) & trap 'echo TERM; exit 0' TERM; echo ready; {LOOP}"
    );
    let args = [
        "--probe-exec",
        &probe,
        "--probe-timeout",
        "8",
        "--probe-interval",
        "0.1",
        "--drain-delay",
        "1",
        "--drain-timeout",
        "4",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (mut v, port) = start_health(mode, V4, &args);
    let addr = at(V4, port);
    v.wait_for_line("ready", CEILING);

    // Starting: the first probe has not finished.
    let r = get(addr, "/livez");
    assert_answer(&r, 200, "starting", "/livez before the first probe");
    assert_eq!(
        probe_of(&r),
        json!({"kind": "exec", "ok": null, "consecutive_failures": 0}),
        "{}",
        body_of(&r)
    );
    let r = get(addr, "/readyz");
    assert_answer(&r, 503, "starting", "/readyz before the first probe");
    assert_eq!(probe_of(&r)["ok"], Value::Null);
    assert_head(addr, "/healthz", 503);

    // Running: the probe passes.
    std::fs::write(&ok, "").expect("touch ok");
    std::fs::write(&go, "").expect("touch go");
    let r = wait_for_answer(addr, "/readyz", "the probe passes", |r| r.code == 200);
    assert_answer(&r, 200, "running", "/readyz once the probe passed");
    assert_eq!(
        probe_of(&r),
        json!({"kind": "exec", "ok": true, "consecutive_failures": 0})
    );
    assert_answer(&get(addr, "/livez"), 200, "running", "/livez running");

    // Draining.
    let t0 = v.signal(Signal::SIGTERM);
    let r = readiness_fails_at_once(addr, t0, secs(0.8));
    assert_answer(&r, 503, "draining", "/readyz draining");
    assert_answer(&get(addr, "/healthz"), 503, "draining", "/healthz draining");
    assert_answer(&get(addr, "/livez"), 200, "draining", "/livez draining");

    // Exited: the app is gone, the leftover keeps vigil up until the deadline.
    v.wait_for_line("TERM", CEILING);
    let r = wait_for_answer(addr, "/livez", "liveness fails", |r| r.code == 503);
    assert_answer(&r, 503, "exited", "/livez after the app exited");
    assert_answer(&get(addr, "/readyz"), 503, "exited", "/readyz exited");
    assert!(
        t0.elapsed() < secs(4.0),
        "the checks ran past the drain deadline"
    );
    let exit = v.wait_exit(CEILING);
    assert_eq!(
        exit.code,
        0,
        "the app exited 0; only a leftover was killed\n{}",
        v.dump()
    );

    let mut seen: Vec<String> = Vec::new();
    for l in v.logs_with("health changed") {
        let phase = l["phase"].as_str().expect("phase").to_string();
        if seen.last() != Some(&phase) {
            seen.push(phase);
        }
    }
    assert_eq!(
        seen,
        ["starting", "running", "draining", "exited"],
        "{}",
        v.dump()
    );
}

/// Readiness fails the moment SIGTERM arrives, well within `--drain-delay`; liveness stays 200
/// (the probe passing) until the app has its SIGTERM at the end of the delay.
fn readiness_fails_at_sigterm(mode: Mode) {
    let target = TcpTarget::new();
    let app = polite_app();
    let probe = target.addr.to_string();
    let args = [
        "--probe-tcp",
        &probe,
        "--probe-interval",
        "0.1",
        "--drain-delay",
        "1",
        "--drain-timeout",
        "3",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (mut v, port) = start_health(mode, V4, &args);
    let addr = at(V4, port);
    v.wait_for_line("ready", CEILING);
    wait_for_answer(addr, "/readyz", "ready", |r| r.code == 200);

    let t0 = v.signal(Signal::SIGTERM);
    let r = readiness_fails_at_once(addr, t0, secs(0.8));
    let failed_at = Instant::now();
    assert_answer(&r, 503, "draining", "/readyz after SIGTERM");

    // Until the app gets its SIGTERM, every /livez is 200 and every /readyz 503.
    let mut answers: Vec<(Instant, &str, u16)> = Vec::new();
    let app_term = poll_until(CEILING, || {
        for path in ["/livez", "/readyz"] {
            if let Ok(r) = request(addr, "GET", path, secs(2.0)) {
                answers.push((Instant::now(), path, r.code));
            }
        }
        v.stdout().iter().any(|l| l.starts_with("TERM "))
    });
    assert!(app_term, "the app never got SIGTERM\n{}", v.dump());
    let wall: f64 = v
        .wait_for_prefix("TERM ", CEILING)
        .trim()
        .parse()
        .expect("a time");
    let termed = instant_of_wall(wall);
    assert!(
        termed >= t0 + secs(1.0),
        "the app got SIGTERM {:?} after vigil, before the drain delay",
        termed - t0
    );
    assert!(
        failed_at < termed,
        "readiness failed only {:?} after SIGTERM, after the drain delay",
        failed_at - t0
    );
    let before: Vec<_> = answers.iter().filter(|(t, _, _)| *t < termed).collect();
    for (t, path, code) in &before {
        let want = if *path == "/livez" { 200 } else { 503 };
        assert_eq!(*code, want, "{path} {:?} after SIGTERM", *t - t0);
    }
    let late_live = before
        .iter()
        .filter(|(t, p, _)| *p == "/livez" && *t >= t0 + secs(0.5))
        .count();
    assert!(
        late_live >= 3,
        "too few /livez answers late in the drain delay ({late_live})"
    );
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 0, "{}", v.dump());
    assert!(exit.at <= t0 + secs(3.5) + SLACK);
}

// ---------------------------------------------------------------------------------------------
// Listeners

/// `127.0.0.1:P`, `[::1]:P`, `0.0.0.0:P` and `[::]:P` all serve; `[::]` serves IPv4 too unless
/// the system binds IPv6 sockets v6-only.
#[test]
fn listen_addresses() {
    if !require(ipv6_works(), "IPv6 loopback (::1) is not available") {
        return;
    }
    let v6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    let any6: Vec<IpAddr> = if v6only { vec![V6] } else { vec![V6, V4] };
    let cases: [(IpAddr, Vec<IpAddr>); 4] = [
        (V4, vec![V4]),
        (V6, vec![V6]),
        (ANY4, vec![V4]),
        (ANY6, any6),
    ];
    for (listen, connects) in cases {
        let app = polite_app();
        let (mut v, port) = start_health(one_mode(), listen, &["--", "sh", "-c", &app]);
        let listening = v.wait_for_log("health listening", |_| true, CEILING);
        assert_eq!(
            listening["addr"],
            SocketAddr::new(listen, port).to_string(),
            "{listening}"
        );
        for ip in connects {
            let url = format!("http://{}/healthz", at(ip, port));
            assert_eq!(probe_cmd(&[&url]).0, 0, "vigil probe {url}");
            for path in ["/livez", "/readyz", "/healthz"] {
                assert_answer(
                    &get(at(ip, port), path),
                    200,
                    "running",
                    &format!("{listen} via {ip}"),
                );
            }
        }
        v.signal(Signal::SIGTERM);
        assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    }
}

/// The app (a child of vigil) does not hold the listener: none of its descriptors is the socket
/// vigil listens on.
fn listener_not_inherited(mode: Mode) {
    let app = format!("exec 2>/dev/null; echo ready; {LOOP}");
    let (v, port) = start_health(mode, ANY4, &["--", "sh", "-c", &app]);
    v.wait_for_line("ready", CEILING);
    let (_, socket) = tcp_listeners("/proc/net")
        .into_iter()
        .find(|(p, _)| *p == port)
        .expect("the listener is in /proc/net/tcp");
    assert!(
        socket_fds(v.pid()).contains(&socket),
        "vigil holds {socket} (else this test shows nothing): {:?}",
        socket_fds(v.pid())
    );
    let app = v.app();
    assert_eq!(app.stat().ppid, v.pid(), "the app is vigil's child");
    let held = socket_fds(app.pid);
    assert!(
        !held.contains(&socket),
        "the app holds the listener: {held:?}"
    );
    assert!(
        held.is_empty(),
        "the app holds sockets it was not given: {held:?}"
    );
    assert_eq!(get(at(V4, port), "/healthz").code, 200);
}

/// With `--user nobody`, the listener is bound before the drop (a port below 1024, which nobody
/// could not bind) and the exec probe runs as nobody (it passes only as uid 65534).
#[test]
fn listener_bound_before_drop_and_probe_runs_as_user() {
    if !require(crate::util::is_root(), "needs root to drop to nobody") {
        return;
    }
    let unprivileged = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    let low = (900..1000).find(|&p| TcpListener::bind((V4, p)).is_ok());
    if !require(
        unprivileged > 1000 && low.is_some(),
        "needs privileged low ports (ip_unprivileged_port_start > 1000) and a free one",
    ) {
        return;
    }
    let port = low.expect("a free low port");
    let s = Scratch::new();
    std::fs::write(s.path("uid.sh"), "[ \"$(id -u)\" = 65534 ]\n").expect("write uid.sh");
    let probe = format!("sh {}", s.p("uid.sh"));
    let listen = format!("127.0.0.1:{port}");
    let app = polite_app();
    let args = [
        "--user",
        "nobody",
        "--health-listen",
        &listen,
        "--probe-exec",
        &probe,
        "--probe-interval",
        "0.1",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let mut v = vigil(&args).start(one_mode());
    v.wait_for_line("ready", CEILING);
    let r = wait_for_answer(at(V4, port), "/readyz", "the probe passes", |r| {
        r.code == 200 || probe_of(r)["ok"] == json!(false)
    });
    assert_eq!(
        r.code,
        200,
        "the exec probe did not run as nobody: {}",
        body_of(&r)
    );
    assert_eq!(
        crate::util::status_ids(v.pid(), "Uid"),
        [65534; 4],
        "vigil dropped root too"
    );
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

// ---------------------------------------------------------------------------------------------
// Probes

#[test]
fn tcp_probe_passing() {
    let target = TcpTarget::new();
    let probe = target.addr.to_string();
    let app = polite_app();
    let args = [
        "--probe-tcp",
        &probe,
        "--probe-interval",
        "0.1",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (v, port) = start_health(one_mode(), V4, &args);
    let addr = at(V4, port);
    let r = wait_for_answer(addr, "/readyz", "the probe passes", |r| r.code == 200);
    assert_answer(&r, 200, "running", "/readyz");
    assert_eq!(
        probe_of(&r),
        json!({"kind": "tcp", "ok": true, "consecutive_failures": 0})
    );
    assert_answer(&get(addr, "/livez"), 200, "running", "/livez");
    // Several more probes pass: logged once, not every interval.
    let n = target.accepted.load(Ordering::Relaxed);
    wait_until("five more probes", CEILING, || {
        target.accepted.load(Ordering::Relaxed) >= n + 5
    });
    assert_eq!(v.logs_with("probe passing").len(), 1, "{}", v.dump());
    let changes = v.logs_with("health changed");
    assert_eq!(changes.len(), 2, "spawned, then ready: {}", v.dump());
}

#[test]
fn tcp_probe_failing() {
    let (_held, port) = closed_port();
    let closed = format!("127.0.0.1:{port}");
    let app = polite_app();
    let args = [
        "--probe-tcp",
        &closed,
        "--probe-interval",
        "0.1",
        "--startup-grace",
        "0",
        "--probe-failures",
        "2",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (v, port) = start_health(one_mode(), V4, &args);
    let addr = at(V4, port);
    let r = wait_for_answer(addr, "/livez", "liveness fails", |r| r.code == 503);
    assert_answer(&r, 503, "starting", "/livez");
    let p = probe_of(&r);
    assert_eq!(
        (p["kind"].clone(), p["ok"].clone()),
        (json!("tcp"), json!(false))
    );
    assert!(failures_of(&r) >= 2, "{}", body_of(&r));
    assert_answer(&get(addr, "/readyz"), 503, "starting", "/readyz");
    assert!(v.logs_with("probe passing").is_empty(), "{}", v.dump());
}

/// An http probe passes on 200 and on 3xx; it sends `User-Agent: vigil/...` and `Host`.
#[test]
fn http_probe_passing() {
    for code in [200, 302] {
        let server = HttpServer::new(Answer::Status(code));
        let url = server.url("/ready?x=1");
        let app = polite_app();
        let args = [
            "--probe-http",
            &url,
            "--probe-interval",
            "0.2",
            "--",
            "sh",
            "-c",
            &app,
        ];
        let (v, port) = start_health(one_mode(), V4, &args);
        let addr = at(V4, port);
        let r = wait_for_answer(addr, "/readyz", "the probe passes", |r| r.code == 200);
        assert_eq!(
            probe_of(&r),
            json!({"kind": "http", "ok": true, "consecutive_failures": 0}),
            "HTTP {code}"
        );
        let reqs = server.requests();
        let first = reqs.first().expect("the probe sent a request");
        assert!(
            first.starts_with("GET /ready?x=1 HTTP/1.1\r\n"),
            "{first:?}"
        );
        let headers: Vec<(String, String)> = first
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        assert!(
            header("user-agent").is_some_and(|ua| ua.starts_with("vigil/")),
            "{first:?}"
        );
        assert_eq!(header("host"), Some(&server.addr.to_string()), "{first:?}");
        drop(v);
    }
}

/// An http probe fails on a 500, on a refused connection, and on a server slower than
/// `--probe-timeout` (never sooner than the timeout).
#[test]
fn http_probe_failing() {
    let five = HttpServer::new(Answer::Status(500));
    let silent = HttpServer::new(Answer::Silent);
    let (_held, port) = closed_port();
    let refused = format!("http://127.0.0.1:{port}/");
    let cases = [
        ("500", five.url("/healthz")),
        ("refused", refused),
        ("slow", silent.url("/healthz")),
    ];
    for (what, url) in cases {
        let app = polite_app();
        let args = [
            "--probe-http",
            &url,
            "--probe-timeout",
            "0.3",
            "--probe-interval",
            "0.2",
            "--",
            "sh",
            "-c",
            &app,
        ];
        let t_start = Instant::now();
        let (v, port) = start_health(one_mode(), V4, &args);
        let addr = at(V4, port);
        let r = wait_for_answer(addr, "/readyz", "the probe has failed", |r| {
            r.code == 503 && probe_of(r)["ok"] == json!(false)
        });
        assert_eq!(probe_of(&r)["kind"], "http", "{what}");
        assert!(failures_of(&r) >= 1, "{what}: {}", body_of(&r));
        if what == "slow" {
            assert!(
                t_start.elapsed() >= secs(0.3),
                "a slow server failed the probe before --probe-timeout"
            );
            assert!(
                !silent.requests().is_empty(),
                "the probe reached the slow server"
            );
        }
        let failing = v.wait_for_log("probe not passing yet", |_| true, CEILING);
        assert_eq!(failing["kind"], "http", "{what}: {failing}");
        drop(v);
    }
}

/// `--probe-exec true` passes, `--probe-exec false` fails (and with `--probe-failures 1` and no
/// grace, fails liveness). Exec probes are reaped by the supervisor in either mode.
fn exec_probe_pass_and_fail(mode: Mode) {
    let app = polite_app();
    let args = [
        "--probe-exec",
        "true",
        "--probe-interval",
        "0.1",
        "--log-level",
        "debug",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (v, port) = start_health(mode, V4, &args);
    let r = wait_for_answer(at(V4, port), "/readyz", "the probe passes", |r| {
        r.code == 200
    });
    assert_eq!(
        probe_of(&r),
        json!({"kind": "exec", "ok": true, "consecutive_failures": 0})
    );
    // Many probes later, none of them stays a zombie.
    wait_until("five exec probes ran", CEILING, || {
        v.logs_with("probe result").len() >= 5
    });
    let reaped = poll_until(secs(1.0), || zombies(&descendants(v.pid())).is_empty());
    assert!(reaped, "exec probes left zombies\n{}", v.dump());
    drop(v);

    let args = [
        "--probe-exec",
        "false",
        "--probe-interval",
        "0.1",
        "--probe-failures",
        "1",
        "--startup-grace",
        "0",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (v, port) = start_health(mode, V4, &args);
    let r = wait_for_answer(at(V4, port), "/livez", "liveness fails", |r| r.code == 503);
    let p = probe_of(&r);
    assert_eq!(
        (p["kind"].clone(), p["ok"].clone()),
        (json!("exec"), json!(false))
    );
    assert_eq!(get(at(V4, port), "/readyz").code, 503);
    assert!(v.logs_with("probe passing").is_empty(), "{}", v.dump());
}

/// An exec probe slower than `--probe-timeout` fails no sooner than the timeout and far sooner
/// than it would end, and leaves none of its processes behind: neither `sleep 5` itself nor a
/// `sleep 5` under a shell (the probe's process group is killed).
fn exec_probe_timeout_kills_its_group(mode: Mode) {
    let s = Scratch::new();
    std::fs::write(s.path("slow.sh"), "sleep 5\necho done\n").expect("write slow.sh");
    let script = format!("sh {}", s.p("slow.sh"));
    for probe in ["sleep 5", script.as_str()] {
        // The app has no `sleep` of its own, so every `sleep` under vigil is the probe's.
        let app = "exec 2>/dev/null; echo ready; exec tail -f /dev/null";
        let args = [
            "--probe-exec",
            probe,
            "--probe-timeout",
            "0.3",
            "--probe-interval",
            "30",
            "--",
            "sh",
            "-c",
            app,
        ];
        let t_start = Instant::now();
        let (v, port) = start_health(mode, V4, &args);
        let sleeps = || -> Vec<ProcRef> {
            descendants(v.pid())
                .into_iter()
                .filter(|&p| stat(p).is_some_and(|s| s.comm == "sleep"))
                .filter_map(ProcRef::of)
                .filter(ProcRef::alive)
                .collect()
        };
        // Best effort: the probe lives for 0.3 s, which a loaded machine may not give the test.
        let mut seen = Vec::new();
        poll_until(CEILING, || {
            let new: Vec<ProcRef> = sleeps().into_iter().filter(|p| !seen.contains(p)).collect();
            seen.extend(new);
            !v.logs_with("probe not passing yet").is_empty()
        });
        if seen.is_empty() {
            eprintln!("NOTE {probe}: the test did not catch the probe running");
        }
        let r = wait_for_answer(at(V4, port), "/readyz", "the probe timed out", |r| {
            probe_of(r)["ok"] == json!(false)
        });
        let failed = t_start.elapsed();
        assert_eq!(r.code, 503);
        assert!(failed >= secs(0.3), "{probe}: failed after {failed:?}");
        assert!(failed < secs(3.0), "{probe}: failed only after {failed:?}");
        // Gone and reaped: a killed `sleep` re-parented to vigil is a zombie for a moment.
        let gone = poll_until(secs(1.0), || {
            seen.iter().all(|p| !p.alive())
                && sleeps().is_empty()
                && zombies(&descendants(v.pid())).is_empty()
        });
        assert!(
            gone,
            "{probe}: the timed-out probe left {:?} (zombies: {:?})\n{}",
            sleeps(),
            zombies(&descendants(v.pid())),
            v.dump()
        );
        let why = v.wait_for_log("probe not passing yet", |_| true, CEILING);
        assert_eq!(why["kind"], "exec", "{why}");
        assert_eq!(why["error"], "timed out", "{why}");
        drop(v);
    }
}

/// `--probe-failures 2`: after a first success, one failure fails readiness but not liveness;
/// the second in a row fails liveness. Each change is logged once, not every interval. The
/// startup grace (60 s by default) no longer applies once the probe has passed.
#[test]
fn probe_failure_threshold() {
    let s = Scratch::new();
    let ok = s.p("ok");
    std::fs::write(&ok, "").expect("touch ok");
    let probe = format!("test -f {ok}");
    let app = polite_app();
    let args = [
        "--probe-exec",
        &probe,
        "--probe-interval",
        "0.4",
        "--probe-failures",
        "2",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (v, port) = start_health(one_mode(), V4, &args);
    let addr = at(V4, port);
    wait_for_answer(addr, "/readyz", "the probe passes", |r| r.code == 200);

    std::fs::remove_file(&ok).expect("rm ok");
    let mut one_failure_live = false;
    let mut reached = None;
    let done = poll_until(CEILING, || {
        let r = get(addr, "/livez");
        let n = failures_of(&r);
        let want = if n < 2 { 200 } else { 503 };
        assert_eq!(
            r.code,
            want,
            "/livez with {n} failures in a row: {}",
            body_of(&r)
        );
        if n == 1 {
            one_failure_live = true;
            assert_eq!(
                get(addr, "/readyz").code,
                503,
                "one failure fails readiness"
            );
        }
        // One interval after the change, its log line is surely written.
        if n >= 3 {
            reached.get_or_insert(v.logs_with("health changed").len());
        }
        n >= 6
    });
    assert!(done, "the probe did not keep failing\n{}", v.dump());
    assert!(
        one_failure_live,
        "never saw the state after exactly one failure"
    );
    let changes_at_threshold = reached.expect("liveness failed");
    assert_eq!(
        v.logs_with("health changed").len(),
        changes_at_threshold,
        "health changes logged while nothing changed\n{}",
        v.dump()
    );
    assert_eq!(v.logs_with("probe failing").len(), 1, "{}", v.dump());

    std::fs::write(&ok, "").expect("touch ok");
    let r = wait_for_answer(addr, "/livez", "the probe passes again", |r| {
        failures_of(r) == 0 && r.code == 200
    });
    assert_eq!(probe_of(&r)["ok"], json!(true));
    assert_eq!(get(addr, "/readyz").code, 200);
    wait_until("the recovery is logged", CEILING, || {
        v.logs_with("probe passing").len() == 2
    });
}

/// `--startup-grace 1.5`: failures before the first success keep /livez 200 for the grace, even
/// past the threshold; after the grace they count.
#[test]
fn startup_grace() {
    let s = Scratch::new();
    let probe = format!("test -f {}", s.p("never"));
    let app = polite_app();
    let args = [
        "--probe-exec",
        &probe,
        "--probe-interval",
        "0.1",
        "--probe-failures",
        "2",
        "--startup-grace",
        "1.5",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let t_start = Instant::now();
    let (v, port) = start_health(one_mode(), V4, &args);
    let addr = at(V4, port);
    let mut live_past_threshold = false;
    let mut failed_at = None;
    poll_until(CEILING, || {
        let r = get(addr, "/livez");
        let now = Instant::now();
        if r.code == 200 && failures_of(&r) >= 3 {
            live_past_threshold = true;
        }
        if r.code == 503 {
            failed_at = Some(now);
        }
        failed_at.is_some()
    });
    let failed_at = failed_at.unwrap_or_else(|| panic!("/livez never failed\n{}", v.dump()));
    assert!(
        live_past_threshold,
        "never saw /livez 200 with failures past the threshold in the grace"
    );
    assert!(
        failed_at >= t_start + secs(1.5),
        "/livez failed {:?} after the start, inside the grace",
        failed_at - t_start
    );
    assert!(
        failed_at <= t_start + secs(1.5 + 2.0),
        "/livez failed only {:?} after the start",
        failed_at - t_start
    );
}

// ---------------------------------------------------------------------------------------------
// vigil probe

/// Runs `vigil probe ARGS` with a ceiling: (exit code, how long it took, stderr).
fn probe_cmd(args: &[&str]) -> (i32, Duration, String) {
    let mut cmd = vigil_command();
    cmd.arg("probe").args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("VIGIL_") {
            cmd.env_remove(key);
        }
    }
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil probe");
    let mut status = None;
    poll_until(CEILING, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let took = t.elapsed();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("vigil probe {args:?} still running after {CEILING:?}");
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status.code().expect("an exit code"), took, err)
}

#[test]
fn probe_subcommand_exit_codes() {
    let ok = HttpServer::new(Answer::Status(200));
    let moved = HttpServer::new(Answer::Status(301));
    let down = HttpServer::new(Answer::Status(503));
    let silent = HttpServer::new(Answer::Silent);
    let tcp = TcpTarget::new();
    let (_held, closed) = closed_port();
    let cases: Vec<(Vec<String>, i32)> = vec![
        (vec![ok.url("/healthz")], 0),
        (vec![moved.url("/")], 0),
        (vec![down.url("/healthz")], 1),
        (vec![format!("http://127.0.0.1:{closed}/healthz")], 1),
        (vec![format!("tcp://{}", tcp.addr)], 0),
        (vec![format!("tcp://127.0.0.1:{closed}")], 1),
        (vec!["ftp://x".into()], 2),
        (vec!["http://".into()], 2),
        (vec!["tcp://127.0.0.1".into()], 2),
        (vec!["127.0.0.1:80".into()], 2),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = probe_cmd(&args);
        assert_eq!(code, want, "vigil probe {args:?}: stderr {err:?}");
        if want == 2 {
            assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
        }
    }
    assert!(
        ok.requests()[0].contains("User-Agent: vigil/"),
        "{:?}",
        ok.requests()
    );

    // Each fails (exit 1) no sooner than its timeout, if it waits for one, and within a bound.
    let trickle = HttpServer::new(Answer::Trickle);
    let flood = HttpServer::new(Answer::Flood);
    let (silent_url, trickle_url, flood_url) =
        (silent.url("/healthz"), trickle.url("/"), flood.url("/"));
    let timeouts: [(&str, &[&str], Option<f64>, Duration); 4] = [
        // Accepts and never answers: exit 1 at the timeout, not sooner, not much later.
        (
            "silent",
            &[&silent_url, "--timeout", "0.3"],
            Some(0.3),
            secs(1.0) + SLACK,
        ),
        // Trickles an endless status line: the deadline covers the read too.
        (
            "trickle",
            &[&trickle_url, "--timeout", "0.5"],
            Some(0.5),
            secs(1.5) + SLACK,
        ),
        // 1 MiB without a line break: refused at the size cap, long before the timeout.
        ("flood", &[&flood_url, "--timeout", "5"], None, secs(4.0)),
        // The default timeout is 1 s.
        ("default", &[&silent_url], Some(1.0), secs(2.0) + SLACK),
    ];
    for (what, args, floor, ceiling) in timeouts {
        let (code, took, err) = probe_cmd(args);
        assert_eq!(code, 1, "{what}: {err}");
        if let Some(floor) = floor {
            assert!(
                took >= secs(floor),
                "{what}: gave up after {took:?}, before the timeout"
            );
        }
        assert!(took < ceiling, "{what}: took {took:?}, bound {ceiling:?}");
    }
}

/// `vigil probe` against vigil's own endpoints, as a HEALTHCHECK uses it: 0 while ready, 1 once
/// a drain has started, 1 for a path that does not exist.
#[test]
fn probe_subcommand_against_vigil() {
    let app = polite_app();
    let args = [
        "--drain-delay",
        "2",
        "--drain-timeout",
        "4",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (mut v, port) = start_health(one_mode(), V4, &args);
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let livez = format!("http://127.0.0.1:{port}/livez");
    assert_eq!(probe_cmd(&[&healthz]).0, 0, "{}", v.dump());
    assert_eq!(probe_cmd(&[&format!("http://127.0.0.1:{port}/nope")]).0, 1);
    assert_eq!(probe_cmd(&[&format!("tcp://127.0.0.1:{port}")]).0, 0);
    let t0 = v.signal(Signal::SIGTERM);
    readiness_fails_at_once(at(V4, port), t0, secs(1.5));
    assert_eq!(probe_cmd(&[&healthz]).0, 1, "draining");
    assert_eq!(probe_cmd(&[&livez]).0, 0, "live while draining");
    assert!(
        !v.stdout().iter().any(|l| l.starts_with("TERM")),
        "the checks ran past the drain delay ({:?})",
        t0.elapsed()
    );
    assert_eq!(v.wait_exit(CEILING).code, 0);
}

// ---------------------------------------------------------------------------------------------
// Abusive clients

/// What a client saw before vigil closed the connection (or the test gave up).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The first line of an answer, and whether the socket was closed after it.
    Answer(String),
    Closed,
    StillOpen,
}

/// Reads until the connection closes or `within` passes; returns the status line if any came.
fn read_outcome(s: &mut TcpStream, within: Duration) -> Seen {
    let end = Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Seen::StillOpen;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Seen::StillOpen;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    match buf.split(|&b| b == b'\n').next().filter(|l| !l.is_empty()) {
        Some(line) => Seen::Answer(String::from_utf8_lossy(line).trim_end().to_string()),
        None => Seen::Closed,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, secs(3.0)).expect("connect to vigil")
}

/// A silent client: connected, never sends. vigil closes it within a few seconds.
fn silent_client(mut s: TcpStream) -> Duration {
    let t = Instant::now();
    let seen = read_outcome(&mut s, secs(8.0));
    assert_eq!(seen, Seen::Closed, "a silent client");
    t.elapsed()
}

/// One byte a second of a valid request: never answered 200, closed before it could finish.
fn slow_client(mut s: TcpStream, stop: &AtomicBool) -> Seen {
    let head = b"GET /healthz HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n\r\n";
    for &byte in head {
        if stop.load(Ordering::Relaxed) {
            return Seen::StillOpen;
        }
        if s.write_all(&[byte]).is_err() {
            return read_outcome(&mut s, secs(1.0));
        }
        match read_outcome(&mut s, secs(1.0)) {
            Seen::StillOpen => {}
            seen => return seen,
        }
    }
    read_outcome(&mut s, secs(1.0))
}

/// A 1 MiB request head, written from a second thread (vigil may stop reading): 431 or closed.
fn huge_head(mut s: TcpStream) -> Seen {
    let mut w = s.try_clone().expect("clone");
    let writer = thread::spawn(move || {
        let _ = w.set_write_timeout(Some(secs(5.0)));
        let mut head = b"GET /healthz HTTP/1.1\r\nX-Pad: ".to_vec();
        head.resize(1 << 20, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        let _ = w.write_all(&head);
    });
    let seen = read_outcome(&mut s, secs(6.0));
    drop(s);
    let _ = writer.join();
    seen
}

/// Binary garbage that ends like a request head: 400 or closed.
fn garbage(mut s: TcpStream, seed: u64) -> Seen {
    let mut x = seed | 1;
    let mut bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    bytes.extend_from_slice(b"\r\n\r\n");
    let _ = s.write_all(&bytes);
    read_outcome(&mut s, secs(5.0))
}

/// Why `seen` is not a refusal (one of `codes`, or a closed socket), if it is not.
fn not_refused(seen: &Seen, codes: &[&str]) -> Option<String> {
    match seen {
        Seen::Closed => None,
        Seen::Answer(line)
            if codes
                .iter()
                .any(|c| line.starts_with(&format!("HTTP/1.1 {c}"))) =>
        {
            None
        }
        Seen::Answer(line) => Some(format!("answered {line:?}")),
        Seen::StillOpen => Some("vigil kept the connection open".into()),
    }
}

fn assert_refused(seen: &Seen, codes: &[&str], what: &str) {
    if let Some(why) = not_refused(seen, codes) {
        panic!("{what}: {why}");
    }
}

fn vm_rss_kb(pid: i32) -> u64 {
    status_field(pid, "VmRSS")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Each abusive client alone: the silent one is closed, the slow one never gets a 200, a 1 MiB
/// head gets 431 or a closed socket, garbage gets 400 or a closed socket. vigil still answers.
#[test]
fn abusive_clients_one_by_one() {
    let app = polite_app();
    let (mut v, port) = start_health(one_mode(), V4, &["--", "sh", "-c", &app]);
    let addr = at(V4, port);
    let closed_after = silent_client(connect(addr));
    assert!(
        closed_after < secs(5.0),
        "a silent client held for {closed_after:?}"
    );
    let stop = AtomicBool::new(false);
    let seen = slow_client(connect(addr), &stop);
    assert_refused(&seen, &["408", "400"], "a slow client");
    assert_refused(&huge_head(connect(addr)), &["431", "400"], "a 1 MiB head");
    for seed in [1, 2, 3] {
        assert_refused(&garbage(connect(addr), seed), &["400"], "binary garbage");
    }
    assert!(v.proc().alive(), "vigil died\n{}", v.dump());
    assert_answer(&get(addr, "/healthz"), 200, "running", "after the abuse");
    eprintln!(
        "FIGURE abusive_clients_one_by_one: a silent client was closed after {closed_after:?}"
    );
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// The soft and hard open-file limits of the test process, from `/proc/self/limits`.
fn nofile() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}

/// Raises the test's soft open-file limit towards `want` (with util-linux `prlimit`, so the test
/// needs no unsafe code); returns the soft limit.
fn raise_nofile(want: u64) -> u64 {
    let (soft, hard) = nofile();
    if soft >= want {
        return soft;
    }
    let _ = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={}:{hard}", want.min(hard)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    nofile().0
}

/// The two abuse tests (PID 1 and subreaper) would only measure each other on a small machine.
static ABUSE: Mutex<()> = Mutex::new(());

/// vigil's connection cap and the grace a new connection gets before a newer one may push it
/// out, as in `src/health.rs`.
const MAX_CONNS: usize = 1024;
const GRACE: Duration = Duration::from_millis(100);

/// The open-file limit under which the fd limit, not `MAX_CONNS`, caps vigil's connections.
const FEW_FDS: &str = "ulimit -n 64";

/// Whether vigil can be started under a limit of its own (the `setup` shell runs in a new
/// namespace); skips (see [`require`]) without `unshare`.
fn can_limit_vigil() -> bool {
    require(can_unshare(), "a limit for vigil alone needs unshare")
}

/// vigil with health on `127.0.0.1:<port>` and the polite app, once the app is ready; `setup`
/// (shell) runs before it. Returns vigil, the health address and the sockets vigil holds idle.
fn health_server(setup: &str) -> (crate::util::Vigil, SocketAddr, usize) {
    let (v, port) = start_health_setup(one_mode(), V4, setup, &["--", "sh", "-c", &polite_app()]);
    v.wait_for_line("ready", CEILING);
    let idle = socket_fds(v.pid()).len();
    (v, at(V4, port), idle)
}

/// How many connections vigil holds at most: opens `offered` silent ones, waits until the number
/// it holds has stayed the same for three graces, then closes them and waits until vigil has
/// let go of them all.
fn slots(addr: SocketAddr, pid: i32, idle: usize, offered: usize) -> usize {
    let flood: Vec<TcpStream> = (0..offered).map(|_| connect(addr)).collect();
    let held = steady_hold(pid, idle);
    drop(flood);
    wait_until("vigil lets go", CEILING, || socket_fds(pid).len() <= idle);
    held
}

/// Waits until the number of connections vigil holds (beyond `idle` sockets) is above 0 and
/// has stayed the same for three graces; returns it.
fn steady_hold(pid: i32, idle: usize) -> usize {
    let (mut last, mut since) = (0, Instant::now());
    wait_until("vigil holds a steady number", CEILING, || {
        let held = socket_fds(pid).len().saturating_sub(idle);
        if held != last {
            (last, since) = (held, Instant::now());
        }
        held > 0 && since.elapsed() >= GRACE * 3
    });
    last
}

/// Up to 10 rounds, until 3 are judged: every one of `slots` is held by a silent client past its
/// grace; a good client connects, then `slots + 100` more silent ones (enough to push out every
/// one held, the good client included, if nothing protected it), and 30 ms after connecting it
/// sends its request: it must get its 200. A round where the test itself took longer than half
/// the grace to speak proves nothing and is run again. Returns when each judged client spoke.
fn good_client_is_answered(addr: SocketAddr, pid: i32, idle: usize, slots: usize) -> Vec<Duration> {
    let mut judged = Vec::new();
    for _ in 0..10 {
        let mut silent: Vec<TcpStream> = (0..slots).map(|_| connect(addr)).collect();
        wait_until("vigil holds every slot", CEILING, || {
            socket_fds(pid).len() >= idle + slots
        });
        thread::sleep(GRACE + Duration::from_millis(50));
        let t = Instant::now();
        let good = connect(addr);
        // From four threads: the flood must be in before the good client speaks.
        let more = slots + 100;
        thread::scope(|sc| {
            let openers: Vec<_> = (0..4)
                .map(|k| {
                    sc.spawn(move || {
                        (k..more)
                            .step_by(4)
                            .map(|_| connect(addr))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for o in openers {
                silent.extend(o.join().expect("opener"));
            }
        });
        crate::util::sleep_until(t + Duration::from_millis(30));
        let spoke = t.elapsed();
        let answer = exchange(good, addr, "GET", "/livez", secs(3.0));
        if spoke < GRACE / 2 {
            match answer {
                Ok(r) => assert_eq!(r.code, 200, "{r:?}"),
                Err(e) => panic!("a client that spoke {spoke:?} after connecting got: {e}"),
            }
            judged.push(spoke);
        }
        drop(silent);
        wait_until("vigil closes the flood", CEILING, || {
            socket_fds(pid).len() <= idle
        });
        if judged.len() == 3 {
            break;
        }
    }
    assert!(
        !judged.is_empty(),
        "the test never opened {} connections within {:?}: too loaded to judge",
        slots + 100,
        GRACE / 2
    );
    judged
}

/// A client whose request is on its way is answered, not pushed out by the connections that
/// arrive after it (`good_client_is_answered`, with all 1,024 slots). Before the grace, vigil
/// reset it once as many newer ones had come (6 of 6 tries).
#[test]
fn a_client_is_not_pushed_out_before_it_speaks() {
    let _serial = ABUSE.lock().unwrap_or_else(|p| p.into_inner());
    let limit = raise_nofile(4096);
    if !require(limit >= 4096, "needs an open-file limit of 4096") {
        return;
    }
    let (mut v, addr, idle) = health_server("");
    let judged = good_client_is_answered(addr, v.pid(), idle, MAX_CONNS);
    eprintln!("FIGURE a_client_is_not_pushed_out_before_it_speaks: spoke after {judged:?}");
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// The same when the fd limit is what caps the connections (`ulimit -n 64`): running out of
/// fds, vigil used to drop the oldest connection at once, grace or not.
#[test]
fn a_client_is_not_pushed_out_when_out_of_fds() {
    let _serial = ABUSE.lock().unwrap_or_else(|p| p.into_inner());
    if !can_limit_vigil() {
        return;
    }
    let (mut v, addr, idle) = health_server(FEW_FDS);
    let pid = v.pid();
    let slots = slots(addr, pid, idle, 200);
    assert!((20..64).contains(&slots), "vigil held {slots} connections");
    let judged = good_client_is_answered(addr, pid, idle, slots);
    eprintln!(
        "FIGURE a_client_is_not_pushed_out_when_out_of_fds: {slots} slots; spoke after {judged:?}"
    );
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// A cap learned from running out of fds is not for ever: under `ulimit -n 64` vigil holds
/// what fits (57 here) of 200 silent connections; once its soft limit is raised to 512 (prlimit
/// on vigil), it holds 200 of a second flood of 200.
#[test]
fn fd_cap_grows_back_when_fds_free_up() {
    let _serial = ABUSE.lock().unwrap_or_else(|p| p.into_inner());
    // The soft limit only: raising a hard limit needs CAP_SYS_RESOURCE.
    if !can_limit_vigil() {
        return;
    }
    let (mut v, addr, idle) = health_server("ulimit -Sn 64");
    let pid = v.pid();
    let flood: Vec<TcpStream> = (0..200).map(|_| connect(addr)).collect();
    let last = steady_hold(pid, idle);
    assert!(
        last < 64,
        "vigil held {last} connections under ulimit -n 64"
    );
    let raised = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg("--nofile=512:")
        .status()
        .expect("prlimit");
    assert!(raised.success(), "prlimit failed");
    // Silent clients that vigil has let go of are closed by now: a second flood, of 200.
    let second: Vec<TcpStream> = (0..200).map(|_| connect(addr)).collect();
    let mut held = 0;
    let grew = poll_until(CEILING, || {
        held = held.max(socket_fds(pid).len().saturating_sub(idle));
        held >= 200
    });
    assert!(
        grew,
        "vigil held at most {held} connections after its limit was raised"
    );
    drop((flood, second));
    eprintln!("FIGURE fd_cap_grows_back_when_fds_free_up: {last} held at 64 fds, then {held}");
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// `GET /livez` on a keep-alive connection; the status code.
fn keep_alive_get(s: &mut TcpStream) -> std::io::Result<u16> {
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")?;
    read_answer(s, false).map(|r| r.code)
}

/// Busy keep-alive clients in every slot do not lock a new client out: the grace runs from the
/// accept and an answer ends it, it is never renewed. Every slot is held by a keep-alive client
/// asking every 20 ms; a new client gets its 200 within 1 s. (With the grace renewed at each
/// answer the new client waited in the backlog until it gave up.)
#[test]
fn keep_alive_clients_cannot_lock_out_a_new_one() {
    let _serial = ABUSE.lock().unwrap_or_else(|p| p.into_inner());
    if !can_limit_vigil() {
        return;
    }
    let (mut v, addr, idle) = health_server(FEW_FDS);
    let pid = v.pid();
    let slots = slots(addr, pid, idle, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let busy = {
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        let mut conns: Vec<TcpStream> = (0..slots).map(|_| connect(addr)).collect();
        thread::spawn(move || {
            for c in &conns {
                let _ = c.set_read_timeout(Some(secs(1.0)));
            }
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                // A connection vigil let go of is dropped; the rest keep asking.
                conns.retain_mut(|c| keep_alive_get(c).is_ok_and(|code| code == 200));
                answered.fetch_add(conns.len(), Ordering::Relaxed);
                crate::util::sleep_until(t + Duration::from_millis(20));
            }
        })
    };
    wait_until("every keep-alive client answered", CEILING, || {
        answered.load(Ordering::Relaxed) >= slots * 3
    });
    let t = Instant::now();
    let answer = exchange(connect(addr), addr, "GET", "/livez", secs(3.0));
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = busy.join();
    match answer {
        Ok(r) => assert_eq!(r.code, 200, "{r:?}"),
        Err(e) => panic!("a new client among {slots} busy keep-alive ones got: {e}"),
    }
    assert!(took < secs(1.0), "a new client waited {took:?}");
    eprintln!(
        "FIGURE keep_alive_clients_cannot_lock_out_a_new_one: {slots} slots; answered in {took:?}"
    );
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// Everything at once: 1,500 concurrent silent connections (topped up as vigil sheds them), a
/// slow client, 1 MiB heads and garbage in a loop. Meanwhile a well-behaved client gets its 200
/// within 1 s every time, vigil's RSS stays under 16 MB, vigil keeps running, and a SIGTERM drain
/// (app ignoring TERM, `--drain-timeout 1`) still ends by 1.5 s.
fn abuse_does_not_hurt(mode: Mode) {
    let _serial = ABUSE.lock().unwrap_or_else(|p| p.into_inner());
    let limit = raise_nofile(4096);
    let flood_size: usize = if limit >= 2000 {
        1500
    } else {
        eprintln!("NOTE abuse_does_not_hurt: RLIMIT_NOFILE is {limit}; fewer connections");
        limit.saturating_sub(200) as usize
    };
    let app = format!("exec 2>/dev/null; {}", term_ignorer());
    let (mut v, port) = start_health(mode, V4, &["--drain-timeout", "1", "--", "sh", "-c", &app]);
    let addr = at(V4, port);
    v.wait_for_line("ready", CEILING);
    let vigil_pid = v.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let bad_answers: Arc<Mutex<Vec<String>>> = Arc::default();
    let peak_open = Arc::new(AtomicUsize::new(0));
    let flood_total = Arc::new(AtomicUsize::new(0));
    let mut abusers: Vec<JoinHandle<()>> = Vec::new();

    // The flood: four threads open `flood_size` connections between them, and every half second
    // open again as many as vigil has closed (it holds 1,024 and sheds the oldest beyond, once
    // past its grace): bursts of up to 1,500 concurrent connections. Several threads, so that a dropped SYN (1 s until
    // the retry) holds up only a quarter of a burst.
    let open_now = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak_open));
        let (total, now) = (Arc::clone(&flood_total), Arc::clone(&open_now));
        abusers.push(thread::spawn(move || {
            let mut open: Vec<TcpStream> = Vec::new();
            let mut probe = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                let before = open.len();
                open.retain(
                    |s| matches!(s.peek(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock),
                );
                now.fetch_sub(before - open.len(), Ordering::Relaxed);
                let mut refused = 0;
                while open.len() < flood_size / 4 && refused < 5 && !stop.load(Ordering::Relaxed) {
                    match TcpStream::connect_timeout(&addr, secs(0.5)) {
                        Ok(s) if s.set_nonblocking(true).is_ok() => {
                            open.push(s);
                            total.fetch_add(1, Ordering::Relaxed);
                            let n = now.fetch_add(1, Ordering::Relaxed) + 1;
                            peak.fetch_max(n, Ordering::Relaxed);
                        }
                        _ => refused += 1,
                    }
                }
                thread::sleep(Duration::from_millis(500));
            }
        }));
    }
    // The slow client, over and over.
    {
        let (stop, bad) = (Arc::clone(&stop), Arc::clone(&bad_answers));
        abusers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(s) = TcpStream::connect_timeout(&addr, secs(1.0)) else {
                    continue;
                };
                let seen = slow_client(s, &stop);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(why) = not_refused(&seen, &["408", "400"]) {
                    bad.lock().expect("bad").push(format!("slow client: {why}"));
                }
            }
        }));
    }
    // 1 MiB heads and garbage, over and over.
    {
        let (stop, bad) = (Arc::clone(&stop), Arc::clone(&bad_answers));
        abusers.push(thread::spawn(move || {
            let mut seed = 7;
            while !stop.load(Ordering::Relaxed) {
                seed += 1;
                let huge = TcpStream::connect_timeout(&addr, secs(1.0)).map(huge_head);
                let junk = TcpStream::connect_timeout(&addr, secs(1.0)).map(|s| garbage(s, seed));
                for (what, seen, codes) in [
                    ("1 MiB head", huge, &["431", "400"][..]),
                    ("garbage", junk, &["400"][..]),
                ] {
                    if let Some(why) = seen.ok().and_then(|seen| not_refused(&seen, codes)) {
                        bad.lock().expect("bad").push(format!("{what}: {why}"));
                    }
                }
            }
        }));
    }

    // Meanwhile: a well-behaved client every 100 ms for 4 s, and vigil's memory.
    let mut worst = Duration::ZERO;
    let mut connecting = Duration::ZERO;
    let mut slow = 0;
    let mut peak_rss = 0;
    let mut answered = 0;
    let end = Instant::now() + secs(4.0);
    while Instant::now() < end {
        let t = Instant::now();
        let r = TcpStream::connect_timeout(&addr, secs(3.0)).and_then(|s| {
            connecting = connecting.max(t.elapsed());
            exchange(s, addr, "GET", "/healthz", secs(3.0))
        });
        let took = t.elapsed();
        match r {
            Ok(r) => assert_eq!(r.code, 200, "a good client under abuse: {r:?}"),
            Err(e) => panic!("a good client under abuse got no answer in {took:?}: {e}"),
        }
        answered += 1;
        worst = worst.max(took);
        if took >= secs(1.0) {
            slow += 1;
        }
        peak_rss = peak_rss.max(vm_rss_kb(vigil_pid));
        crate::util::sleep_until(t + secs(0.1));
    }
    assert!(v.proc().alive(), "vigil died under abuse\n{}", v.dump());

    // A drain under abuse still ends on time.
    let t0 = v.signal(Signal::SIGTERM);
    let gone = v.wait_gone(CEILING);
    stop.store(true, Ordering::Relaxed);
    for a in abusers {
        let _ = a.join();
    }
    let drain = gone - t0;
    let peak = peak_open.load(Ordering::Relaxed);
    let total = flood_total.load(Ordering::Relaxed);
    eprintln!(
        "FIGURE abuse_does_not_hurt::{}: {answered} good requests, slowest {worst:?} (slowest \
         connect {connecting:?}, {slow} over 1 s); vigil VmRSS peak {peak_rss} kB; flood peak \
         {peak} open connections ({total} in all); drain took {drain:?}",
        mode.name()
    );
    assert!(
        worst < secs(1.0),
        "a good client waited {worst:?} under abuse ({slow} of {answered} requests over 1 s; the \
         slowest connect took {connecting:?})"
    );
    assert!(peak_rss > 0, "could not read vigil's VmRSS");
    assert!(
        peak_rss < 16 * 1024,
        "vigil's VmRSS reached {peak_rss} kB under abuse"
    );
    // vigil holds 1,024 connections and sheds the oldest: the flood must have pushed it
    // well past that, and opened `flood_size` connections in all.
    assert!(
        peak >= flood_size / 2 && total >= flood_size,
        "the flood held at most {peak} connections at once, {total} in all"
    );
    let bad = bad_answers.lock().expect("bad").clone();
    assert!(bad.is_empty(), "abusive clients got answers: {bad:?}");
    assert!(drain >= secs(1.0), "vigil exited {drain:?} after SIGTERM");
    assert!(
        drain <= secs(1.5) + SLACK * 2,
        "the drain took {drain:?} under abuse"
    );
    assert_eq!(v.wait_exit(CEILING).code, 137, "{}", v.dump());
    assert!(
        !v.stderr().iter().any(|l| l.contains("panick")),
        "{}",
        v.dump()
    );
}
