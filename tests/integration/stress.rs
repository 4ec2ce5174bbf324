//! Storms and faults: 10,000 orphans, 10,000 signals, processes that escape the app's group,
//! daemons, forks during the drain, SIGTERM at awkward moments, a health flood, a tiny fd limit,
//! a non-root vigil, and closed output. Each case is bounded and checks that nothing is lost:
//! the exit status, no process left, no zombie, every log line a whole JSON object.
//!
//! Each prints a `FIGURE <case>: ...` line (run with `--nocapture`) for RELIABILITY.md.

use crate::util::{
    ANY_PORT, CEILING, LOOP, Mode, ProcRef, SLACK, Scratch, Vigil, descendants, poll_until,
    printer, require, secs, sleep_until, stat, status_field, term_ignorer, vigil, wait_exec_probe,
    wait_until, zombies,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

both_modes!(
    orphans_10k,
    signal_burst_10k,
    usr1_flood_cannot_starve_term,
    setsid_escape_ignoring_term,
    setpgid_escape_after_app_exit,
    double_fork_daemon,
    fork_storm_during_drain,
    term_during_startup,
    term_right_after_exec,
    term_during_drain_delay,
    term_while_exec_probe_runs,
    health_flood_during_drain,
    tiny_fd_limit,
    started_as_non_root,
    app_closes_its_output,
    vigil_output_closed,
);

// ---------------------------------------------------------------------------------------------
// Helpers shared with security.rs

/// `GET path` on 127.0.0.1:port with `Connection: close`: the status code, or None when the
/// server could not be reached or answered nothing.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, secs(2.0)).ok()?;
    s.set_read_timeout(Some(secs(3.0))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Prefixed to shell fixtures: the shell's own complaints ("Terminated") go nowhere, so stderr
/// holds only vigil's lines.
pub const QUIET: &str = "exec 2>/dev/null; ";

/// Every stderr line is one JSON object with string `ts`, `level` and `msg`; returns the count.
pub fn assert_logs_valid(v: &Vigil) -> usize {
    let lines = v.stderr();
    for l in &lines {
        let j: Value = serde_json::from_str(l)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l:?}\n{}", short_dump(v)));
        for k in ["ts", "level", "msg"] {
            assert!(j[k].is_string(), "no {k} in {l}");
        }
    }
    lines.len()
}

/// The last lines of stdout and stderr, for failure messages of tests with huge logs.
pub fn short_dump(v: &Vigil) -> String {
    let tail = |lines: Vec<String>| {
        let from = lines.len().saturating_sub(40);
        lines[from..].join("\n")
    };
    format!(
        "--- stdout (tail):\n{}\n--- stderr (tail):\n{}\n---",
        tail(v.stdout()),
        tail(v.stderr())
    )
}

/// vigil's peak resident set, from `VmHWM` in /proc/<pid>/status (e.g. "2345 kB").
pub fn peak_rss_kib(pid: i32) -> u64 {
    status_field(pid, "VmHWM")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Waits until vigil is gone, asserts nothing it was responsible for is left, and returns
/// (when it was seen gone, its exit status).
fn finish(v: &mut Vigil, ceiling: Duration) -> (Instant, i32) {
    let gone = v.wait_gone(ceiling);
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {left:?}\n{}", short_dump(v));
    let code = v.wait_exit(CEILING).code;
    (gone, code)
}

/// Waits until the app is vigil's only child (every orphan reaped) and nothing below vigil is a
/// zombie.
fn wait_only_app_left(v: &Vigil, app: ProcRef, ceiling: Duration) {
    let me = v.pid();
    let (mut children, mut z) = (Vec::new(), Vec::new());
    let ok = poll_until(ceiling, || {
        let below = descendants(me);
        children = below
            .iter()
            .copied()
            .filter(|&p| stat(p).is_some_and(|s| s.ppid == me))
            .collect();
        z = zombies(&below);
        children == vec![app.pid] && z.is_empty()
    });
    assert!(
        ok,
        "vigil's children {children:?} (the app is {}), zombies {z:?}\n{}",
        app.pid,
        short_dump(v)
    );
}

/// Milliseconds since midnight UTC of a log line's `ts` (`2026-11-22T00:29:35.811Z`).
fn ts_ms(line: &Value) -> i64 {
    let ts = line["ts"].as_str().expect("ts");
    let time = ts.get(11..23).expect("hh:mm:ss.mmm");
    let n = |r: std::ops::Range<usize>| time[r].parse::<i64>().expect("digits");
    ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12)
}

/// Milliseconds from the first log line with `from` to the first with `to`, by vigil's own
/// clock: under a fork storm the test itself is starved, vigil's timestamps are not.
fn log_gap_ms(v: &Vigil, from: &str, to: &str) -> i64 {
    let at = |msg: &str| {
        ts_ms(
            v.logs_with(msg)
                .first()
                .unwrap_or_else(|| panic!("no {msg:?} line")),
        )
    };
    (at(to) - at(from)).rem_euclid(86_400_000)
}

/// perl forks fast and calls setpgid; skip (see [`require`]) without it.
fn has_perl() -> bool {
    require(
        std::path::Path::new("/usr/bin/perl").exists(),
        "needs /usr/bin/perl for its fork and setpgid fixtures",
    )
}

fn count_lines(v: &Vigil, needle: &str) -> usize {
    v.stderr().iter().filter(|l| l.contains(needle)).count()
}

/// How many lines vigil said it dropped (a reader slower than a burst of lines).
fn dropped(v: &Vigil) -> usize {
    v.logs_with("log lines dropped")
        .iter()
        .map(|l| l["count"].as_u64().expect("count") as usize)
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Orphans and signals

const ORPHANS: usize = 10_000;

/// The storms (10,000 orphans, 800 forks in a drain) fork thousands of processes each: one at a
/// time, so that they neither measure each other nor run out of pids together (pid_max may be
/// 32,768). Tests that time /proc scans (`reaping::reaps_orphans`) take it too.
pub static STORM: Mutex<()> = Mutex::new(());

/// A perl parent forks 10,000 children that exit at once, and exits without waiting: 10,000
/// orphans (most already zombies) land on vigil in one go. Each is reaped and logged at debug,
/// exactly once; then the drain ends as usual.
fn orphans_10k(mode: Mode) {
    if !has_perl() {
        return;
    }
    let _storm = STORM.lock().unwrap_or_else(|p| p.into_inner());
    let factory = format!(
        "perl -e 'use POSIX; $| = 1; my $n = 0; for (1..{ORPHANS}) {{ my $p = fork; last unless defined $p; POSIX::_exit(0) unless $p; $n++ }} print \"spawned $n\\n\"'"
    );
    let script = format!("{factory}; exec sleep 100");
    let mut v = vigil(&["--log-level", "debug", "--", "sh", "-c", &script]).start(mode);
    let spawned = v.wait_for_prefix("spawned ", secs(30.0));
    assert_eq!(
        spawned,
        ORPHANS.to_string(),
        "fork failed part way (out of pids?)"
    );
    let t0 = Instant::now();
    let app = v.app();
    let mut reaped = 0;
    let done = poll_until(secs(30.0), || {
        reaped = count_lines(&v, "\"orphan reaped\"") + dropped(&v);
        reaped >= ORPHANS
    });
    assert!(
        done,
        "{reaped} of {ORPHANS} orphans reaped\n{}",
        short_dump(&v)
    );
    let took = t0.elapsed();
    wait_only_app_left(&v, app, CEILING);
    let rss = peak_rss_kib(v.pid());
    v.signal(Signal::SIGTERM);
    let (_, code) = finish(&mut v, CEILING);
    assert_eq!(code, 128 + 15, "{}", short_dump(&v));
    let lines = assert_logs_valid(&v);
    // A burst can outrun the test's reader: vigil then drops lines rather than wait, and says
    // how many (every line here is an orphan's).
    let logged: Vec<i64> = v
        .logs_with("orphan reaped")
        .iter()
        .map(|l| l["pid"].as_i64().expect("pid"))
        .collect();
    let unique: std::collections::HashSet<&i64> = logged.iter().collect();
    assert_eq!(unique.len(), logged.len(), "an orphan logged twice");
    let dropped = dropped(&v);
    assert_eq!(
        logged.len() + dropped,
        ORPHANS,
        "each orphan logged (or dropped) once"
    );
    assert_eq!(v.logs_with("exiting").len(), 1);
    eprintln!(
        "FIGURE orphans_10k/{}: {ORPHANS} orphans reaped and logged {:.2} s after the factory \
         exited ({dropped} lines dropped while the test's reader lagged); vigil peak RSS {rss} \
         KiB; {lines} log lines, all JSON; exit 143",
        mode.name(),
        took.as_secs_f64()
    );
}

const SIGNALS: usize = 10_000;

/// A thread sending `sig` to `pid` as fast as it can, until stopped or dropped (so it never
/// outlives the test's hold on the pid: declare it after the `Vigil` it floods).
struct Flood {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<u64>>,
}

impl Flood {
    fn start(pid: i32, sig: Signal) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) && kill(Pid::from_raw(pid), sig).is_ok() {
                sent += 1;
            }
            sent
        });
        Flood {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the flood; how many signals it sent.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// SIGUSR1 sent without pause from two threads cannot keep a SIGTERM waiting. The kernel hands
/// out the lowest pending signal first (USR1 is 10, TERM 15), so after each wait vigil takes
/// every other pending signal once, lowest first. The test checks the flood really keeps USR1
/// pending in vigil (`ShdPnd`). It cannot force a starvation: on this machine a loop without
/// that sweep also got the TERM through, since USR1 is not pending at every single wait;
/// `signals::tests::pending_and_wait` covers the sweep itself.
fn usr1_flood_cannot_starve_term(mode: Mode) {
    // The app ignores USR1 (and so does the sleep it starts); TERM ends it cleanly.
    let app = "trap '' USR1; trap 'echo term; exit 0' TERM; echo ready; sleep 1000 & wait";
    let mut v = vigil(&["--log-level", "warn", "--", "sh", "-c", app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let flood: Vec<Flood> = (0..2)
        .map(|_| Flood::start(v.pid(), Signal::SIGUSR1))
        .collect();
    let usr1 = 1u64 << (Signal::SIGUSR1 as u32 - 1);
    let (mut looks, mut pending) = (0, 0);
    let until = Instant::now() + secs(0.2);
    while Instant::now() < until {
        let shd = status_field(v.pid(), "ShdPnd").expect("ShdPnd");
        if u64::from_str_radix(&shd, 16).expect("hex") & usr1 != 0 {
            pending += 1;
        }
        looks += 1;
        thread::sleep(Duration::from_millis(2));
    }
    assert!(
        pending * 5 >= looks,
        "the flood kept USR1 pending in only {pending} of {looks} looks: not a flood"
    );
    let t0 = v.signal(Signal::SIGTERM);
    v.wait_for_line("term", CEILING);
    let took = t0.elapsed();
    let sent: u64 = flood.into_iter().map(Flood::stop).sum();
    let (_, code) = finish(&mut v, CEILING);
    assert_eq!(code, 0, "{}", short_dump(&v));
    assert!(took < secs(1.0), "SIGTERM reached the app after {took:?}");
    eprintln!(
        "FIGURE usr1_flood_cannot_starve_term/{}: {sent} SIGUSR1 sent by 2 threads, USR1 pending \
         in {pending} of {looks} looks; SIGTERM reached the app {:.1} ms after it was sent; exit 0",
        mode.name(),
        took.as_secs_f64() * 1e3
    );
}

/// 10,000 SIGUSR1 sent to vigil as fast as the test can: vigil survives, forwards (signals
/// coalesce, so at least one and at most 10,000 arrive), still forwards afterwards, and exits
/// with the app's status once SIGTERM comes.
fn signal_burst_10k(mode: Mode) {
    // The sleep the app waits on ignores USR1 and HUP (set before it is started).
    let app = "exec 2>/dev/null; trap '' USR1 HUP; sleep 1000 & s=$!; n=0; trap 'n=$((n+1))' USR1; \
               trap 'echo hup $n' HUP; trap 'echo count $n; exit 0' TERM; echo ready; \
               while :; do wait $s; done";
    // At debug, so every forward is logged and counted (at info forwards write nothing).
    let mut v = vigil(&["--log-level", "debug", "--", "sh", "-c", app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let pid = Pid::from_raw(v.pid());
    let t0 = Instant::now();
    for i in 0..SIGNALS {
        kill(pid, Signal::SIGUSR1).unwrap_or_else(|e| panic!("signal {i}: vigil is gone: {e}"));
    }
    let burst = t0.elapsed();
    // Forwarding still works: HUP reaches the app, after every USR1 it got.
    v.signal(Signal::SIGHUP);
    let counted: usize = v
        .wait_for_prefix("hup ", CEILING)
        .trim()
        .parse()
        .expect("a count");
    let rss = peak_rss_kib(v.pid());
    v.signal(Signal::SIGTERM);
    let (_, code) = finish(&mut v, CEILING);
    assert_eq!(code, 0, "{}", short_dump(&v));
    let last: usize = v
        .wait_for_prefix("count ", CEILING)
        .trim()
        .parse()
        .expect("a count");
    assert_logs_valid(&v);
    let forwarded = v
        .logs_with("signal forwarded")
        .iter()
        .filter(|l| l["signal"] == "SIGUSR1")
        .count();
    assert!((1..=SIGNALS).contains(&forwarded), "{forwarded} forwarded");
    // USR1s still pending when HUP came are read with it and forwarded after it (lower numbers
    // first), so the count the app printed at the HUP may be short of the final one, even 0.
    assert!(
        last >= 1 && counted <= last && last <= forwarded,
        "{counted} {last}"
    );
    eprintln!(
        "FIGURE signal_burst_10k/{}: {SIGNALS} SIGUSR1 sent in {:.2} s; vigil forwarded {forwarded} \
         (the rest coalesced in the kernel), the app counted {counted}; HUP still forwarded; \
         peak RSS {rss} KiB; exit 0",
        mode.name(),
        burst.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Processes that leave the app's group

/// The app and a child that called setsid (its own session and group) both ignore SIGTERM:
/// the forwarded SIGTERM cannot reach the escapee, the deadline's SIGKILL does, on time.
fn setsid_escape_ignoring_term(mode: Mode) {
    let app = format!(
        "{QUIET}trap '' TERM; setsid sh -c 'echo escaped $$; exec sleep 100' & echo ready; {LOOP}"
    );
    let mut v = vigil(&["--drain-timeout", "1", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let app = v.app();
    let escaped = v.wait_for_pid_line("escaped ");
    escaped.wait_exec("sleep");
    assert_ne!(
        escaped.stat().pgrp,
        app.pid,
        "the escapee left the app's group"
    );
    assert_eq!(escaped.stat().pgrp, escaped.pid);
    let t0 = v.signal(Signal::SIGTERM);
    let seen = crate::util::watch(&[app, escaped], CEILING, || !v.proc().alive());
    let (gone, code) = finish(&mut v, CEILING);
    for (what, w) in ["app", "escapee"].iter().zip(&seen) {
        let dead = w.first_dead.expect("seen dead");
        assert!(
            dead >= t0 + secs(1.0),
            "{what} killed {:?} early",
            t0 + secs(1.0) - dead
        );
    }
    assert!(gone <= t0 + secs(1.5) + SLACK, "{:?}", gone - t0);
    assert_eq!(code, 137, "{}", short_dump(&v));
    assert_logs_valid(&v);
    assert_eq!(v.logs_with("forced kill").len(), 1);
    eprintln!(
        "FIGURE setsid_escape_ignoring_term/{}: escapee (own session) killed at the deadline; \
         vigil gone {:.3} s after SIGTERM (timeout 1 s); exit 137; nothing left",
        mode.name(),
        (gone - t0).as_secs_f64()
    );
}

/// A child calls setpgid to leave the app's group and ignores SIGTERM; the app (perl) exits 0
/// as soon as the child has left: the leftover gets SIGTERM (ignored), then SIGKILL at the
/// drain timeout, and vigil exits with the app's 0.
fn setpgid_escape_after_app_exit(mode: Mode) {
    if !has_perl() {
        return;
    }
    let app = "$| = 1; pipe(R, W) or die; my $p = fork // die; if (!$p) { close R; \
               setpgrp(0, 0); $SIG{TERM} = 'IGNORE'; print \"escaped $$\\n\"; close W; \
               sleep 100; exit 0 } close W; <R>; exit 0";
    let mut v = vigil(&["--drain-timeout", "1", "--", "perl", "-e", app]).start(mode);
    let escaped = v.wait_for_pid_line("escaped ");
    let exited = v.wait_for_log("app exited", |_| true, CEILING);
    let t0 = Instant::now();
    assert_eq!(exited["code"], 0, "{exited}");
    assert_eq!(
        escaped.stat().pgrp,
        escaped.pid,
        "the child leads its own group"
    );
    let (gone, code) = finish(&mut v, CEILING);
    assert!(!escaped.alive());
    assert!(gone <= t0 + secs(1.5) + SLACK, "{:?}", gone - t0);
    assert_eq!(code, 0, "the app's status, though a leftover was killed");
    assert_logs_valid(&v);
    assert_eq!(v.logs_with("terminating leftovers").len(), 1);
    assert_eq!(v.logs_with("forced kill").len(), 1);
    eprintln!(
        "FIGURE setpgid_escape_after_app_exit/{}: leftover in its own group ignored SIGTERM, \
         SIGKILLed at the timeout; vigil gone {:.3} s after the test saw the app exit; exit 0",
        mode.name(),
        (gone - t0).as_secs_f64()
    );
}

/// The app double-forks a daemon (which then runs under vigil, not under the app) and exits 3:
/// the daemon gets SIGTERM at once and dies of it, long before the deadline; status 3.
fn double_fork_daemon(mode: Mode) {
    // The daemon reports through a pipe the app reads, so the app exits only once the daemon
    // has left its session; fd 3 is the original stdout.
    let app = format!(
        "{QUIET}exec 3>&1; ( setsid sh -c 'echo daemon $$ >&3; echo up; exec sleep 100 >&- 3>&-' & ) \
         | head -n 1 >/dev/null; exit 3"
    );
    let mut v = vigil(&["--drain-timeout", "5", "--", "sh", "-c", &app]).start(mode);
    // The daemon may be gone before the test looks it up: its namespace pid is enough.
    v.wait_for_prefix("daemon ", CEILING);
    let exited = v.wait_for_log("app exited", |_| true, CEILING);
    let t0 = Instant::now();
    assert_eq!(exited["code"], 3, "{exited}");
    let (gone, code) = finish(&mut v, CEILING);
    assert_eq!(code, 3, "{}", short_dump(&v));
    // SIGTERM did it: far inside the 5 s drain timeout, and no forced kill.
    assert!(gone <= t0 + secs(2.0), "{:?}", gone - t0);
    assert!(v.logs_with("forced kill").is_empty(), "{}", short_dump(&v));
    // Logged once; its count is taken after the SIGTERM, when the daemon may be gone already.
    v.wait_for_log("terminating leftovers", |l| l["count"].is_u64(), CEILING);
    assert_logs_valid(&v);
    eprintln!(
        "FIGURE double_fork_daemon/{}: daemon re-parented to vigil, SIGTERMed when the app \
         exited; vigil gone {:.3} s after the test saw the app exit (timeout 5 s); exit 3",
        mode.name(),
        (gone - t0).as_secs_f64()
    );
}

/// On SIGTERM the app forks 800 sleeps, half of them leaving its group with setsid, and keeps
/// running: at the deadline all of them are SIGKILLed and reaped, on time.
fn fork_storm_during_drain(mode: Mode) {
    let _storm = STORM.lock().unwrap_or_else(|p| p.into_inner());
    let app = format!(
        "{QUIET}trap 'i=0; while [ $i -lt 400 ]; do setsid sleep 30 & sleep 30 & i=$((i+1)); \
         done; echo forked' TERM; echo ready; {LOOP}"
    );
    let mut v = vigil(&["--drain-timeout", "2", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    let me = v.pid();
    let mut peak = 0;
    poll_until(secs(1.9), || {
        peak = peak.max(descendants(me).len());
        false
    });
    let (gone, code) = finish(&mut v, CEILING);
    let forked = v.stdout().iter().any(|l| l == "forked");
    let events = storm_events(&v);
    assert!(
        gone >= t0 + secs(2.0),
        "gone {:?} early",
        t0 + secs(2.0) - gone
    );
    // The storm loads the machine and starves the test too: vigil's own clock gives the exact
    // figures, the test's observation a loose ceiling.
    let kill_ms = log_gap_ms(&v, "drain started", "forced kill");
    let exit_ms = log_gap_ms(&v, "drain started", "exiting");
    assert!(kill_ms >= 2000, "killed at {kill_ms} ms\n{events}");
    assert!(
        exit_ms <= 2500 + SLACK.as_millis() as i64,
        "exiting at {exit_ms} ms\n{events}"
    );
    assert!(
        gone <= t0 + secs(2.5) + secs(2.0),
        "gone {:?} after SIGTERM\n{events}",
        gone - t0
    );
    assert_eq!(code, 137, "{}", short_dump(&v));
    assert_logs_valid(&v);
    let killed = v.logs_with("forced kill")[0]["remaining"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        forked || peak > 100 || killed >= 100,
        "the app hardly forked: peak {peak}, {killed} at the forced kill\n{events}"
    );
    eprintln!(
        "FIGURE fork_storm_during_drain/{}: the app forked {} during the drain (up to {peak} \
         processes below vigil, {killed} hit by the SIGKILL); by vigil's clock SIGKILL at \
         {kill_ms} ms and exit at {exit_ms} ms after the drain began (timeout 2 s); the test saw \
         it gone {:.3} s after SIGTERM; exit 137; nothing left",
        mode.name(),
        if forked { "all 800" } else { "until killed" },
        (gone - t0).as_secs_f64()
    );
}

/// vigil's log without the (many) orphan lines.
fn storm_events(v: &Vigil) -> String {
    let lines: Vec<String> = v
        .stderr()
        .into_iter()
        .filter(|l| !l.contains("\"orphan reaped\""))
        .collect();
    lines.join("\n")
}

/// Repro, not run by default (`-- --ignored fork_storm_unbounded`): on SIGTERM the app forks
/// as fast as it can until the deadline. On a loaded 2-core machine vigil missed the deadline
/// by seconds: the SIGKILL came 2-7 s after SIGTERM with a 1 s timeout (see RELIABILITY.md).
#[test]
#[ignore]
fn fork_storm_unbounded() {
    let _storm = STORM.lock().unwrap_or_else(|p| p.into_inner());
    for mode in [Mode::Pid1, Mode::Subreaper] {
        if !crate::util::mode_supported(mode) {
            continue;
        }
        let app = format!(
            "{QUIET}trap 'while :; do setsid sleep 30 & sleep 30 & done' TERM; echo ready; {LOOP}"
        );
        let mut v = vigil(&["--drain-timeout", "1", "--", "sh", "-c", &app]).start(mode);
        v.wait_for_line("ready", CEILING);
        let t0 = v.signal(Signal::SIGTERM);
        let (gone, code) = finish(&mut v, CEILING);
        let events = storm_events(&v);
        let kill_ms = log_gap_ms(&v, "drain started", "forced kill");
        let exit_ms = log_gap_ms(&v, "drain started", "exiting");
        eprintln!(
            "fork_storm_unbounded/{}: SIGKILL at {kill_ms} ms, exit at {exit_ms} ms by vigil's \
             clock; gone {:?} after SIGTERM as the test saw it",
            mode.name(),
            gone - t0
        );
        assert!(
            exit_ms <= 1500,
            "{}: exit at {exit_ms} ms\n{events}",
            mode.name()
        );
        assert_eq!(code, 137);
    }
}

// ---------------------------------------------------------------------------------------------
// SIGTERM at awkward moments

/// SIGTERM while vigil is still starting: blocked signals are set first thing, then a 20 MB
/// /etc/passwd makes the `--user` lookup slow, and SIGTERM arrives during it, before the app
/// exists. The SIGTERM is kept and starts the drain as soon as the app is spawned.
fn term_during_startup(mode: Mode) {
    if !crate::util::require_root() {
        return;
    }
    let mut passwd = String::with_capacity(24 << 20);
    for i in 0..200_000 {
        passwd.push_str(&format!(
            "user{i}:x:{}:100::/home/user{i}:/bin/sh\n",
            100_000 + i
        ));
    }
    passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    let app = "echo ready; exec sleep 100";
    let b = vigil(&[
        "--user",
        "nobody",
        "--drain-timeout",
        "2",
        "--",
        "sh",
        "-c",
        app,
    ])
    .etc(&passwd, "nogroup:x:65534:\n");
    let mut v = b.start(mode);
    // Once SIGTERM is in vigil's blocked set (bit 14 of SigBlk) it is kept, not discarded or
    // fatal: before that, the kernel's default applies (see `term_right_after_exec`).
    let me = v.pid();
    wait_until("vigil has blocked SIGTERM", CEILING, || {
        crate::util::status_hex(me, "SigBlk") & (1 << (Signal::SIGTERM as u32 - 1)) != 0
    });
    // "vigil starting" is logged after the lookup, before the spawn: not there yet means the
    // app does not exist yet.
    let early = v.logs_with("vigil starting").is_empty();
    let t0 = v.signal(Signal::SIGTERM);
    wait_until("start-up is over", CEILING, || {
        !v.logs_with("vigil starting").is_empty()
    });
    let lookup = t0.elapsed();
    let (gone, code) = finish(&mut v, CEILING);
    assert!(
        early,
        "SIGTERM came too late to test the start-up window\n{}",
        short_dump(&v)
    );
    assert!(gone <= t0 + secs(2.5) + SLACK, "{:?}", gone - t0);
    assert_eq!(
        code,
        128 + 15,
        "the app got the SIGTERM\n{}",
        short_dump(&v)
    );
    assert_logs_valid(&v);
    let msgs: Vec<String> = v.logs().iter().map(|l| l["msg"].to_string()).collect();
    let spawned = msgs
        .iter()
        .position(|m| m == "\"app spawned\"")
        .expect("spawned");
    let drain = msgs
        .iter()
        .position(|m| m == "\"drain started\"")
        .expect("drain");
    assert!(spawned < drain, "{msgs:?}");
    eprintln!(
        "FIGURE term_during_startup/{}: SIGTERM during a slow --user lookup (200,000-line \
         passwd, {:.3} s still to go), before the spawn; drain began right after the spawn; \
         vigil gone {:.3} s after SIGTERM; exit 143",
        mode.name(),
        lookup.as_secs_f64(),
        (gone - t0).as_secs_f64()
    );
}

/// SIGTERM as soon as the vigil process exists (found by spinning on /proc, not the 10 ms
/// poll). Either it lands before vigil has blocked signals, where the kernel's default
/// applies (a subreaper dies of it; PID 1 of a namespace discards it, as for any init), or
/// after, and drains. Every outcome is sane: no app left behind, no hang.
fn term_right_after_exec(mode: Mode) {
    let mut v = vigil(&["--drain-timeout", "2", "--", "sh", "-c", "exec sleep 100"]).start(mode);
    let end = Instant::now() + CEILING;
    let pid = loop {
        let found = v
            .tree()
            .into_iter()
            .find(|&p| stat(p).is_some_and(|s| s.comm == "vigil" && s.state != 'Z'));
        if let Some(p) = found {
            break p;
        }
        assert!(Instant::now() < end, "vigil never started\n{}", v.dump());
        std::hint::spin_loop();
    };
    let me = ProcRef::of(pid).expect("vigil");
    let t0 = Instant::now();
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("kill");
    // A PID 1 that had not blocked SIGTERM yet never saw it: it runs the app as if nothing
    // happened. Then the platform's next SIGTERM (here the test's) drains.
    let lost = mode == Mode::Pid1
        && !poll_until(secs(1.0), || {
            !v.logs_with("drain started").is_empty() || !me.alive()
        });
    if lost {
        v.wait_for_log("app spawned", |_| true, CEILING);
        v.signal(Signal::SIGTERM);
    }
    let (gone, code) = finish(&mut v, CEILING);
    let spawned = !v.logs_with("app spawned").is_empty();
    let outcome = match (lost, spawned) {
        (true, _) => "lost before the mask (PID 1 discards it), second SIGTERM drained",
        (false, true) => "drained",
        (false, false) => "vigil died of it before the mask, nothing spawned",
    };
    assert_eq!(code, 128 + 15, "{outcome}\n{}", short_dump(&v));
    if !lost {
        assert!(gone <= t0 + secs(2.5) + SLACK, "{:?}", gone - t0);
    }
    eprintln!(
        "FIGURE term_right_after_exec/{}: {outcome}; exit 143; nothing left",
        mode.name()
    );
}

/// Signals during the drain delay: /readyz fails at once while /livez holds, a SIGUSR1 is
/// still forwarded, a second SIGTERM is held back, and the app gets SIGTERM no earlier than
/// the delay.
fn term_during_drain_delay(mode: Mode) {
    let app = format!("{QUIET}{}", printer("app", &["TERM"]));
    let mut v = vigil(&[
        "--log-level",
        "debug",
        "--health-listen",
        ANY_PORT,
        "--drain-delay",
        "1",
        "--drain-timeout",
        "3",
        "--",
        "sh",
        "-c",
        &app,
    ])
    .start(mode);
    let port = v.health_port();
    v.wait_for_line("app ready", CEILING);
    wait_until("ready", CEILING, || {
        http_status(port, "/readyz") == Some(200)
    });
    let t0 = v.signal(Signal::SIGTERM);
    wait_until("readiness fails", secs(0.9), || {
        http_status(port, "/readyz") == Some(503)
    });
    assert_eq!(
        http_status(port, "/livez"),
        Some(200),
        "liveness holds in the delay"
    );
    sleep_until(t0 + secs(0.3));
    v.signal(Signal::SIGUSR1);
    // Forwarded at once, not held until the delay is over: checked below on the order of the
    // app's lines and of vigil's, not on the test's clock.
    v.wait_for_line("app USR1", CEILING);
    sleep_until(t0 + secs(0.5));
    v.signal(Signal::SIGTERM);
    let mut term_at = None;
    poll_until(CEILING, || {
        let seen = v.stdout().iter().any(|l| l == "app TERM");
        if seen {
            term_at = Some(Instant::now());
        }
        seen
    });
    let term_at = term_at.expect("the app got SIGTERM");
    let (gone, code) = finish(&mut v, CEILING);
    assert!(
        term_at >= t0 + secs(1.0),
        "SIGTERM {:?} early",
        t0 + secs(1.0) - term_at
    );
    assert!(
        term_at <= t0 + secs(2.0),
        "{:?}\n{}",
        term_at - t0,
        short_dump(&v)
    );
    assert_eq!(code, 0, "{}", short_dump(&v));
    assert!(gone <= t0 + secs(3.5) + SLACK);
    let out = v.stdout();
    let at = |line: &str| out.iter().position(|l| l == line);
    assert!(
        at("app USR1") < at("app TERM"),
        "USR1 was held back: {out:?}"
    );
    let forwarded = v.logs_with("signal forwarded");
    let ts_of = |sig: &str| {
        forwarded
            .iter()
            .find(|l| l["signal"] == sig)
            .and_then(|l| l["ts"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("{sig} not forwarded\n{}", short_dump(&v)))
    };
    assert!(ts_of("SIGUSR1") < ts_of("SIGTERM"), "{}", short_dump(&v));
    assert_eq!(
        v.stdout().iter().filter(|l| *l == "app TERM").count(),
        1,
        "the app exits on the first"
    );
    assert_logs_valid(&v);
    eprintln!(
        "FIGURE term_during_drain_delay/{}: readiness 503 at once, USR1 forwarded during the \
         delay, second SIGTERM held; the app saw SIGTERM {:.3} s after the first (delay 1 s); \
         exit 0",
        mode.name(),
        (term_at - t0).as_secs_f64()
    );
}

/// SIGTERM while an exec probe (`sleep 1`, in its own group) runs: the app drains, the probe
/// finishes or is killed, its status is taken by the checker (not logged as an orphan), and
/// vigil is gone well before the deadline.
fn term_while_exec_probe_runs(mode: Mode) {
    let mut v = vigil(&[
        "--probe-exec",
        "sleep 1",
        "--probe-interval",
        "0.2",
        "--probe-timeout",
        "5",
        "--drain-timeout",
        "3",
        "--log-level",
        "debug",
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 100",
    ])
    .start(mode);
    v.wait_for_line("ready", CEILING);
    let app = v.app();
    let me = v.pid();
    let probe = wait_exec_probe(me, app.pid, "sleep");
    let probe = ProcRef::of(probe).expect("running");
    let probe_ns = crate::util::ns_pid_of(probe.pid);
    let t0 = v.signal(Signal::SIGTERM);
    let (gone, code) = finish(&mut v, CEILING);
    assert!(!probe.alive());
    assert_eq!(code, 128 + 15, "{}", short_dump(&v));
    assert!(gone <= t0 + secs(1.5) + SLACK, "{:?}", gone - t0);
    let as_orphan = v
        .logs_with("orphan reaped")
        .into_iter()
        .filter(|l| l["pid"].as_i64().map(|p| p as i32) == probe_ns)
        .count();
    assert_eq!(as_orphan, 0, "the probe's status went to the checker");
    assert_logs_valid(&v);
    eprintln!(
        "FIGURE term_while_exec_probe_runs/{}: SIGTERM mid-probe; vigil gone {:.3} s later \
         (probe 1 s, timeout 3 s); exit 143; nothing left",
        mode.name(),
        (gone - t0).as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Health under load, fd limits, users, closed output

/// When a request was sent, when its answer came, and its status code (None: no answer).
type Answer = (Instant, Instant, Option<u16>);

/// Eight clients hammer /readyz and 300 idle connections sit on the listener while the drain
/// runs: readiness answers 503 once draining, and the deadline holds to the millisecond budget.
fn health_flood_during_drain(mode: Mode) {
    let mut v = vigil(&[
        "--health-listen",
        ANY_PORT,
        "--drain-timeout",
        "1",
        "--",
        "sh",
        "-c",
        &format!("{QUIET}{}", term_ignorer()),
    ])
    .start(mode);
    let port = v.health_port();
    v.wait_for_line("ready", CEILING);
    wait_until("ready", CEILING, || {
        http_status(port, "/readyz") == Some(200)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, answers) = (Arc::clone(&stop), Arc::clone(&answers));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let code = http_status(port, "/readyz");
                    answers
                        .lock()
                        .expect("answers")
                        .push((sent, Instant::now(), code));
                }
            })
        })
        .collect();
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let t0 = v.signal(Signal::SIGTERM);
    let (gone, code) = finish(&mut v, CEILING);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    drop(idle);
    assert!(gone >= t0 + secs(1.0), "{:?} early", t0 + secs(1.0) - gone);
    assert!(gone <= t0 + secs(1.5) + SLACK, "{:?}", gone - t0);
    assert_eq!(code, 137, "{}", short_dump(&v));
    let answers = answers.lock().expect("answers");
    let served = answers.iter().filter(|(_, _, c)| c.is_some()).count();
    // Once a 503 has come back, no request sent after it is answered 200 (when the first 503
    // comes is vigil's promptness, checked by `health::readiness_fails_at_sigterm`).
    let first_503 = answers
        .iter()
        .filter(|(sent, _, c)| *sent >= t0 && *c == Some(503))
        .map(|(_, got, _)| *got)
        .min()
        .expect("a 503 after the SIGTERM");
    assert!(first_503 < gone, "the first 503 came after vigil was gone");
    let late_ok = answers
        .iter()
        .filter(|(sent, _, c)| *sent >= first_503 && *c == Some(200))
        .count();
    assert_eq!(late_ok, 0, "readiness 200 after a 503 in the drain");
    assert_logs_valid(&v);
    eprintln!(
        "FIGURE health_flood_during_drain/{}: {served} /readyz answers ({} requests) from 8 \
         clients plus 300 idle connections; none 200 after the SIGTERM; vigil gone {:.3} s after \
         SIGTERM (timeout 1 s); exit 137",
        mode.name(),
        answers.len(),
        (gone - t0).as_secs_f64()
    );
}

/// `ulimit -n 16`: vigil still runs the app, serves health (also after 40 connections have
/// exhausted its descriptors), and drains.
fn tiny_fd_limit(mode: Mode) {
    let app = format!("{QUIET}{}", printer("app", &["TERM"]));
    let mut v = vigil(&[
        "--health-listen",
        ANY_PORT,
        "--drain-timeout",
        "2",
        "--",
        "sh",
        "-c",
        &app,
    ])
    .setup("ulimit -n 16")
    .start(mode);
    let port = v.health_port();
    v.wait_for_line("app ready", CEILING);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", v.pid())).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("nofile");
    assert!(line.split_whitespace().any(|w| w == "16"), "{line}");
    wait_until("live", CEILING, || http_status(port, "/livez") == Some(200));
    let idle: Vec<TcpStream> = (0..40)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let held = idle.len();
    // Out of descriptors, the server sheds the oldest connection for each new one.
    let t_flood = Instant::now();
    wait_until("health answers under the flood", CEILING, || {
        http_status(port, "/livez") == Some(200)
    });
    let answered_in = t_flood.elapsed();
    drop(idle);
    wait_until("health answers after it", CEILING, || {
        http_status(port, "/readyz") == Some(200)
    });
    v.signal(Signal::SIGTERM);
    let (_, code) = finish(&mut v, CEILING);
    assert_eq!(code, 0, "{}", short_dump(&v));
    v.wait_for_line("app TERM", CEILING);
    assert_logs_valid(&v);
    eprintln!(
        "FIGURE tiny_fd_limit/{}: nofile 16; {held} idle connections opened; /livez answered \
         {:.3} s into the flood; drained, exit 0",
        mode.name(),
        answered_in.as_secs_f64()
    );
}

/// vigil started as uid 65534 (setpriv, no capabilities): reaps, serves health and drains.
fn started_as_non_root(mode: Mode) {
    if !crate::util::require_root() {
        return;
    }
    let app = format!(
        "{QUIET}sh -c 'i=0; while [ $i -lt 50 ]; do sleep 0.1 & i=$((i+1)); done'; {}",
        printer("app", &["TERM"])
    );
    let mut v = vigil(&[
        "--health-listen",
        ANY_PORT,
        "--drain-timeout",
        "2",
        "--",
        "sh",
        "-c",
        &app,
    ])
    .started_as_nobody()
    .start(mode);
    let port = v.health_port();
    v.wait_for_line("app ready", CEILING);
    let app_proc = v.app();
    assert_eq!(crate::util::status_ids(v.pid(), "Uid"), vec![65534; 4]);
    assert_eq!(crate::util::status_hex(v.pid(), "CapEff"), 0);
    wait_until("live", CEILING, || http_status(port, "/livez") == Some(200));
    wait_only_app_left(&v, app_proc, CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    let (gone, code) = finish(&mut v, CEILING);
    assert_eq!(code, 0, "{}", short_dump(&v));
    assert!(gone <= t0 + secs(2.5) + SLACK);
    assert_logs_valid(&v);
    assert!(v.logs_with("running as root").is_empty());
    eprintln!(
        "FIGURE started_as_non_root/{}: uid 65534, no capabilities; 50 orphans reaped, health \
         200, drained {:.3} s after SIGTERM; exit 0",
        mode.name(),
        (gone - t0).as_secs_f64()
    );
}

/// The app closes its stdout and stderr, then writes to them: nothing changes for vigil.
fn app_closes_its_output(mode: Mode) {
    let app = format!(
        "trap 'exit 7' TERM; trap : USR1; echo ready; exec >&- 2>&-; echo lost; echo lost >&2; {LOOP}"
    );
    let mut v = vigil(&["--log-level", "debug", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let app_proc = v.app();
    wait_until("the app closed its output", CEILING, || {
        crate::util::fds(app_proc.pid)
            .iter()
            .all(|&fd| fd != 1 && fd != 2)
    });
    v.signal(Signal::SIGUSR1);
    v.wait_for_log("signal forwarded", |l| l["signal"] == "SIGUSR1", CEILING);
    v.signal(Signal::SIGTERM);
    let (_, code) = finish(&mut v, CEILING);
    assert_eq!(code, 7, "{}", short_dump(&v));
    assert!(!v.stdout().iter().any(|l| l.contains("lost")));
    assert_logs_valid(&v);
    assert_eq!(v.logs_with("exiting").len(), 1, "the log is complete");
    eprintln!(
        "FIGURE app_closes_its_output/{}: exit 7, log complete",
        mode.name()
    );
}

/// vigil's own stdout and stderr are closed (`>&- 2>&-`): every log write fails, and vigil
/// carries on: the app runs, health answers, the drain works. The test watches marker files.
fn vigil_output_closed(mode: Mode) {
    let s = Scratch::new();
    let (ready, term) = (s.p("ready"), s.p("term"));
    let app = format!("trap 'touch {term}; exit 0' TERM; touch {ready}; {LOOP}");
    let mut v = vigil(&[
        "--health-listen",
        ANY_PORT,
        "--probe-exec",
        "true",
        "--probe-interval",
        "0.2",
        "--drain-timeout",
        "2",
        "--",
        "sh",
        "-c",
        &app,
    ])
    .setup("exec >&- 2>&-")
    .start(mode);
    let port = v.health_port();
    wait_until("the app runs", CEILING, || s.path("ready").exists());
    let me = v.pid();
    let fds = crate::util::fds(me);
    wait_until("ready", CEILING, || {
        http_status(port, "/readyz") == Some(200)
    });
    let t0 = v.signal(Signal::SIGTERM);
    let (gone, code) = finish(&mut v, CEILING);
    assert!(s.path("term").exists(), "the app got SIGTERM");
    assert_eq!(code, 0);
    assert!(gone <= t0 + secs(2.5) + SLACK);
    assert!(v.stderr().is_empty() && v.stdout().is_empty());
    eprintln!(
        "FIGURE vigil_output_closed/{}: vigil ran with fds {fds:?} (1 and 2 closed at start); \
         health 200, exec probe passing, drained {:.3} s after SIGTERM; exit 0",
        mode.name(),
        (gone - t0).as_secs_f64()
    );
}
