//! One run of the fault matrix (`fault_matrix.rs`): the fixture, the life the test puts vigil
//! through, what the trace and the log say, and the verdict against the contract.

use crate::faults::{BUSYBOX, Fault, STRACE_SLACK, Traced, When, traced};
use crate::util::{ANY_PORT, CEILING, Mode, ProcRef, poll_until, secs, stat, vigil};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The drain timeout of every run.
pub(crate) const DRAIN: f64 = 1.0;

/// More trace lines than this in one run: something retried without pause (a normal run has a
/// few thousand).
pub(crate) const SPIN_CALLS: usize = 50_000;

/// Memory: an allocation that fails aborts Rust's std (`handle_alloc_error`), and std's own
/// start (the main thread's signal stack) and musl's (its TLS) cannot run without memory.
pub(crate) const MEMORY: &[&str] = &["mmap", "munmap", "mprotect", "brk"];

/// The longest vigil, its hooks and the app may take to come up under strace, and the longest
/// the test waits past a bound before it calls vigil hung.
pub(crate) const UP_CEILING: Duration = Duration::from_secs(5);

/// How long an exited orphan may stay a zombie before that counts as not reaped.
pub(crate) const REAP_BOUND: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Probe {
    Tcp,
    Http,
    Exec,
}

/// A 200 for every request on a port of its own, the target of the tcp and http probes.
pub(crate) fn probe_server() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the probe target");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
                });
            }
        });
        port
    })
}

/// The app: see the module comment.
pub(crate) const APP: &str = "(trap - USR1; trap '' TERM; exec /bin/busybox sleep 1001) & \
    (trap '' TERM; exec /bin/busybox setsid /bin/busybox sleep 1002) & \
    (/bin/busybox sleep 0.3 &); trap '' USR1; exec /bin/busybox sleep 1000";

/// The start-up hooks of every run: a seed that prints one variable, one pre-start script (in
/// the tests' own temporary dir, readable by 65534), and a post-stop.
pub(crate) fn hooks() -> [String; 6] {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-hooks");
    let script = dir.join("10-ready");
    if !script.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&dir).expect("hooks dir");
        let tmp = dir.join(format!(".10-ready.{}", std::process::id()));
        std::fs::write(&tmp, format!("#!{BUSYBOX} sh\nexit 0\n")).expect("write the hook");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&tmp, &script).expect("place the hook");
    }
    [
        "--env-from".into(),
        format!("{BUSYBOX} echo SEEDED=1"),
        "--pre-start".into(),
        dir.to_string_lossy().into_owned(),
        "--post-stop".into(),
        format!("{BUSYBOX} true"),
    ]
}

pub(crate) fn args(probe: Probe) -> Vec<String> {
    let port = probe_server();
    let probe = match probe {
        Probe::Tcp => ["--probe-tcp".to_string(), format!("127.0.0.1:{port}")],
        Probe::Http => [
            "--probe-http".to_string(),
            format!("http://127.0.0.1:{port}/"),
        ],
        Probe::Exec => ["--probe-exec".to_string(), format!("{BUSYBOX} true")],
    };
    let mut a: Vec<String> = [
        "--user",
        "65534:65534",
        "--health-listen",
        ANY_PORT,
        "--probe-interval",
        "0.1",
        "--drain-timeout",
    ]
    .map(String::from)
    .to_vec();
    a.push(DRAIN.to_string());
    a.extend(probe);
    a.extend(hooks());
    a.extend(["--", BUSYBOX, "sh", "-c", APP].map(String::from));
    a
}

/// The shipped binary: the static release build (built once, as for the runc tests).
pub(crate) fn binary() -> Option<&'static str> {
    match crate::runc::static_vigil() {
        Ok(p) => p.to_str(),
        Err(why) => {
            crate::util::require(false, why);
            None
        }
    }
}

/// What one run showed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// vigil's exit status (128 + signal when killed).
    pub(crate) code: Option<i32>,
    /// The app ran (it was seen as `sleep 1000`).
    pub(crate) ran: bool,
    /// vigil exited before the test's SIGTERM.
    pub(crate) early: bool,
    /// Seconds from SIGTERM until vigil was gone.
    pub(crate) drain: Option<f64>,
    /// Calls that got the fault.
    pub(crate) injected: usize,
    /// Lines in strace's trace: every call of vigil's, and as PID 1 the app's.
    pub(crate) calls: usize,
    /// The distinct warn and error messages vigil logged.
    pub(crate) said: BTreeSet<String>,
    /// Processes left behind once vigil was gone (as a subreaper), described.
    pub(crate) left: Option<String>,
    /// Whether the forwarded SIGUSR1 reached the app's group, when vigil lived to get it.
    pub(crate) forwarded: Option<bool>,
    /// A limitation documented in RELIABILITY.md that this run ran into (not counted broken).
    pub(crate) known: Option<&'static str>,
    /// Invariants broken.
    pub(crate) broken: Vec<String>,
    /// For a broken run: the ends of stderr and of the trace.
    pub(crate) detail: String,
}

impl Outcome {
    /// A short cell for the matrix.
    pub(crate) fn cell(&self) -> String {
        if !self.broken.is_empty() {
            return "**FAIL**".into();
        }
        if self.injected == 0 {
            return "–".into();
        }
        if let Some(known) = self.known {
            return known.into();
        }
        let code = self.code.map_or("?".into(), |c| c.to_string());
        // Where vigil ended: after the test's SIGTERM (nothing said), or before it, at start-up
        // or later.
        let how = if self.drain.is_some() {
            ""
        } else if !self.ran {
            "start"
        } else {
            "early"
        };
        let warn = if self.said.is_empty() { "" } else { "w" };
        let spin = if self.calls > SPIN_CALLS { "s" } else { "" };
        format!("{code}{how}{warn}{spin}")
    }
}

/// Where each line of the trace came from: `pid syscall(` at the start of a line.
pub(crate) fn calls_by_tcb(trace: &str) -> BTreeMap<(i32, String), usize> {
    let mut counts = BTreeMap::new();
    for line in trace.lines() {
        let mut it = line.splitn(2, ' ');
        let (Some(pid), Some(rest)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(open) = rest.find('(') else { continue };
        let name = &rest[..open];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        *counts.entry((pid, name.to_string())).or_insert(0) += 1;
    }
    counts
}

/// vigil's exit as the trace shows it: the first pid's `+++ exited with N +++` or `+++ killed
/// by SIGX +++` (128 + X).
pub(crate) fn exit_in_trace(trace: &str) -> Option<i32> {
    let first: i32 = trace.split_whitespace().next()?.parse().ok()?;
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix("+++ ") else {
            continue;
        };
        if pid.parse() != Ok(first) {
            continue;
        }
        if let Some(n) = rest.strip_prefix("exited with ") {
            return n.split_whitespace().next()?.parse().ok();
        }
        if let Some(sig) = rest.strip_prefix("killed by ") {
            let name = sig.split_whitespace().next()?;
            let sig: Signal = name.parse().ok()?;
            return Some(128 + sig as i32);
        }
    }
    None
}

/// The processes of the app (host pids), by their command lines.
pub(crate) fn find_cmd(pids: &[i32], arg: &str) -> Option<ProcRef> {
    pids.iter().copied().find_map(|p| {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
        let words: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        (words.get(1) == Some(&&b"sleep"[..]) && words.get(2) == Some(&arg.as_bytes()))
            .then(|| ProcRef::of(p))
            .flatten()
    })
}

/// One run: `fault` in `mode` with a `probe`.
pub(crate) fn run(bin: &str, mode: Mode, fault: &Fault, probe: Probe, event_loop: bool) -> Outcome {
    let b = vigil(&args(probe)).program(bin);
    let t = traced(b, mode, fault);
    let mut out = Outcome::default();
    let bound = secs(DRAIN + 0.5 + STRACE_SLACK);
    // Up: the app and its helpers, or vigil gone.
    let mut procs = None;
    poll_until(UP_CEILING, || {
        let tree = t.v().tree();
        if let (Some(app), Some(f), Some(e)) = (
            find_cmd(&tree, "1000"),
            find_cmd(&tree, "1001"),
            find_cmd(&tree, "1002"),
        ) {
            procs = Some((app, f, e));
            return true;
        }
        exit_in_trace(&t.trace()).is_some()
    });
    let me = t.v().running().filter(ProcRef::alive);
    out.ran = procs.is_some() || !t.v().logs_with("app spawned").is_empty();
    if let Some(me) = me {
        if let Some((app, f, _)) = procs {
            life(me, app, f, &mut out);
        }
        // The drain, even when the app never came up as planned (a fault in it as PID 1).
        if me.alive() {
            drain(me, &mut out, bound, event_loop);
        } else {
            out.early = true;
        }
    } else if procs.is_some() {
        out.early = true;
    }
    let gone = poll_until(bound + UP_CEILING, || {
        t.v().running().is_none_or(|p| !p.alive())
    });
    if !gone {
        out.broken.push("still running: hung".into());
    }
    let v = t.v();
    let survivors = || -> Vec<i32> {
        v.survivors()
            .into_iter()
            .filter(|&p| stat(p).is_some_and(|s| s.comm != "strace"))
            .collect()
    };
    // A process SIGKILLed just before vigil's exit (its last sweep, or the kernel's as PID 1
    // goes) may still be on its way out: give it a moment.
    poll_until(secs(1.0), || survivors().is_empty());
    let left = survivors();
    if !left.is_empty() {
        out.left = Some(v.describe(&left));
    }
    poll_until(secs(2.0), || exit_in_trace(&t.trace()).is_some());
    out.code = exit_in_trace(&t.trace());
    out.injected = t.injected();
    out.calls = t.trace().lines().count();
    judge(&t, &mut out, fault, event_loop);
    if !out.broken.is_empty() {
        let trace = t.trace();
        let tail: Vec<&str> = trace.lines().rev().take(25).collect::<Vec<_>>();
        let stderr = t.v().stderr();
        let err_tail: Vec<&String> = stderr.iter().rev().take(15).collect();
        out.detail = format!(
            "--- stderr (last lines, newest first):\n{}\n--- trace (last lines, newest first):\n{}",
            err_tail
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            tail.join("\n")
        );
    }
    out
}

/// The running part: reaping, health, forwarding, the drain.
pub(crate) fn life(me: ProcRef, app: ProcRef, f: ProcRef, out: &mut Outcome) {
    // No orphan stays a zombie: O exits 0.3 s in; watch for a while after that.
    let mut zombie_since: BTreeMap<i32, Instant> = BTreeMap::new();
    let watch_until = Instant::now() + secs(0.8);
    while Instant::now() < watch_until && me.alive() {
        for p in crate::util::descendants(me.pid) {
            if stat(p).is_some_and(|s| s.ppid == me.pid && s.state == 'Z') {
                zombie_since.entry(p).or_insert_with(Instant::now);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for (&p, &since) in &zombie_since {
        let reaped = poll_until(
            (since + REAP_BOUND).saturating_duration_since(Instant::now()),
            || !stat(p).is_some_and(|s| s.ppid == me.pid && s.state == 'Z'),
        );
        if !reaped && me.alive() {
            out.broken
                .push(format!("orphan {p} not reaped within {REAP_BOUND:?}"));
        }
    }
    if let Some(port) = crate::util::listening_port(me.pid) {
        for path in ["/readyz", "/metrics"] {
            let _ = http_get(port, path, secs(1.0));
        }
    }
    if !me.alive() {
        return;
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(me.pid), Signal::SIGUSR1);
    let reached = poll_until(secs(2.0), || !f.alive());
    if me.alive() && app.alive() {
        out.forwarded = Some(reached);
    }
}

/// SIGTERM: vigil is gone within `bound`.
pub(crate) fn drain(me: ProcRef, out: &mut Outcome, bound: Duration, event_loop: bool) {
    let t0 = Instant::now();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(me.pid), Signal::SIGTERM);
    let gone = poll_until(bound + UP_CEILING, || !me.alive());
    let took = t0.elapsed();
    out.drain = Some(took.as_secs_f64());
    if !gone || took > bound {
        out.broken.push(format!(
            "gone {:.3} s after SIGTERM (bound {:.1} s){}",
            took.as_secs_f64(),
            bound.as_secs_f64(),
            if event_loop { " [event loop]" } else { "" }
        ));
    }
}

/// The exit statuses of every traced process but vigil: as PID 1, the app and the hooks are
/// traced to their end.
pub(crate) fn tracee_exits(trace: &str) -> BTreeSet<i64> {
    let first = trace.split_whitespace().next();
    trace
        .lines()
        .filter(|l| l.split_whitespace().next() != first)
        .filter_map(|l| {
            let rest = l.split_once("+++ ")?.1;
            if let Some(n) = rest.strip_prefix("exited with ") {
                return n.split_whitespace().next()?.parse().ok();
            }
            let sig: Signal = rest
                .strip_prefix("killed by ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some(128 + sig as i64)
        })
        .collect()
}

/// The exit status and the log against the contract.
pub(crate) fn judge(t: &Traced, out: &mut Outcome, fault: &Fault, event_loop: bool) {
    let v = t.v();
    let stderr = v.stderr();
    let trace = t.trace();
    let crashed = matches!(out.code, Some(134 | 139 | 101))
        || trace.contains("--- SIGSEGV")
        || trace.contains("--- SIGABRT");
    // Limitations of Rust's std and musl, not of vigil's code (RELIABILITY.md): out of memory,
    // std's assert that closing a directory never fails, and its start-up's SIGPIPE setting.
    let said = |what: &str| stderr.iter().any(|l| l.contains(what));
    let std_asserts = (fault.syscalls == "close" && said("unexpected error during closedir"))
        || (fault.syscalls == "rt_sigaction" && said("signal(libc::SIGPIPE, handler)"));
    if crashed && (MEMORY.contains(&fault.syscalls.as_str()) || std_asserts) {
        out.known = Some("abort");
        out.broken.clear();
        return;
    }
    if stderr.iter().any(|l| l.contains("panicked")) || crashed {
        out.broken.push("panic or abort".into());
    }
    for l in v.logs() {
        if (l["level"] == "warn" || l["level"] == "error")
            && let Some(m) = l["msg"].as_str()
        {
            out.said.insert(m.to_string());
        }
    }
    // What every run says: the loopback listener, E's forced kill, the skipped post-stop.
    for expected in [
        "health listener is loopback only",
        "forced kill",
        "post-stop skipped",
    ] {
        out.said.remove(expected);
    }
    let always = matches!(fault.when, When::From(_));
    // A fault in kill itself: the signal it carried may be lost; every other one still goes.
    let in_kill = fault.syscalls == "kill";
    if out.forwarded == Some(false) && !in_kill {
        out.broken
            .push("SIGUSR1 did not reach the app's group".into());
    }
    // Refused as a subreaper, vigil's orphans go to the real init: out of its reach (contract).
    // A subreaper finds what left the app's group in /proc: with /proc unreadable it cannot.
    let proc_unreadable = t.mode == Mode::Subreaper
        && always
        && ["open", "read", "getdents64"].contains(&fault.syscalls.as_str());
    let out_of_reach =
        out.said.contains("not a child subreaper") || (in_kill && always) || proc_unreadable;
    if let Some(left) = &out.left
        && !out_of_reach
    {
        out.broken.push(format!("left behind: {left}"));
    }
    let Some(code) = out.code else {
        out.broken.push("no exit status".into());
        return;
    };
    // A failing write may take the one error line with it.
    let writes_fail = fault.syscalls == "write";
    // The app's status from vigil's log, or (as PID 1, when the log is lost) from the trace.
    let app_statuses: BTreeSet<i64> = v
        .logs_with("app exited")
        .first()
        .and_then(|l| l["status"].as_i64())
        .into_iter()
        .chain(tracee_exits(&trace))
        .collect();
    // A hook that failed stops the start with its own status (contract, "Start-up hooks").
    let hook_status = v.logs().iter().find_map(|l| {
        let stopped =
            l["msg"] == "hook failed: the app is not started" || l["msg"] == "hook failed to start";
        stopped.then(|| l["status"].as_i64().or(l["code"].as_i64()))?
    });
    let gave_up = event_loop && always && code == 2;
    if !out.ran {
        let errors = v.logs().iter().filter(|l| l["level"] == "error").count();
        let ok = match code {
            c if hook_status == Some(i64::from(c)) => true,
            c if app_statuses.contains(&i64::from(c)) => true,
            2 => errors == 1 || writes_fail || gave_up,
            126 | 127 => fault.syscalls == "execve",
            _ => false,
        };
        if !ok {
            out.broken
                .push(format!("exit {code} without the app running"));
        }
        return;
    }
    let fine = if out.early {
        // Only the app's own end (a fault that reached it) or the event loop giving up.
        app_statuses.contains(&i64::from(code)) || gave_up
    } else {
        matches!(code, 143 | 137) || gave_up
    };
    if !fine {
        let when = if out.early {
            "before SIGTERM"
        } else {
            "after SIGTERM"
        };
        out.broken.push(format!("exit {code} {when}"));
    }
}

/// Per syscall, the most calls one of vigil's threads (or a child before its exec) made in an
/// uninjected run as a subreaper, and the probe kind of that run: the baseline for `when=N` and
/// the inventory.
pub(crate) fn baseline(bin: &str) -> BTreeMap<String, (usize, Probe)> {
    static BASE: OnceLock<BTreeMap<String, (usize, Probe)>> = OnceLock::new();
    BASE.get_or_init(|| {
        // A fault that never comes: strace counts, nothing is injected.
        let fault = Fault::new("getpid", "EPERM", When::Nth(65535));
        let mut most: BTreeMap<String, (usize, Probe)> = BTreeMap::new();
        for probe in [Probe::Tcp, Probe::Http, Probe::Exec] {
            let b = vigil(&args(probe)).program(bin);
            let mut t = traced(b, Mode::Subreaper, &fault);
            let tree_up = poll_until(CEILING, || find_cmd(&t.v().tree(), "1002").is_some());
            assert!(tree_up, "baseline: the app did not start\n{}", t.v().dump());
            let f = find_cmd(&t.v().tree(), "1001").expect("F");
            std::thread::sleep(Duration::from_millis(800));
            if let Some(port) = crate::util::listening_port(t.v().pid()) {
                let _ = http_get(port, "/readyz", secs(1.0));
            }
            t.v().signal(Signal::SIGUSR1);
            poll_until(secs(2.0), || !f.alive());
            t.v().signal(Signal::SIGTERM);
            t.v_mut().wait_gone(CEILING);
            poll_until(secs(2.0), || exit_in_trace(&t.trace()).is_some());
            assert_eq!(exit_in_trace(&t.trace()), Some(143), "{}", t.v().dump());
            for ((_, name), n) in calls_by_tcb(&t.trace()) {
                let m = most.entry(name).or_insert((0, probe));
                if n > m.0 {
                    *m = (n, probe);
                }
            }
        }
        most
    })
    .clone()
}

/// `GET path` on 127.0.0.1:`port`, HTTP/1.0: the status code and the body, or why not. Every
/// step has `timeout`, so a health server that a fault stopped cannot hang the test.
pub(crate) fn http_get(port: u16, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&got).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((code, body.to_string()))
}
