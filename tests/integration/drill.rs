//! `vigil drill` (issue 7): each verdict and each reason, as PID 1 and as a subreaper.
//!
//! Every run checks the report's shape: the last stdout line is one JSON object with the
//! contract's fields (`reasons` exactly when the verdict is `fail`), the app's own lines come
//! before it, every stderr line is one of vigil's JSON log lines, and the exit status is 0 on
//! pass, 1 on fail. Apps send their stderr to /dev/null, so stderr is vigil's alone.
//!
//! Reasons are free text: a test asserts how many there are and a word that names the failure.

use crate::util::{
    CEILING, LOOP, Mode, SLACK, Scratch, Vigil, closed_port, instant_of_wall, is_root, poll_until,
    require, rfc3339_secs, secs, term_ignorer, vigil, vigil_command, watch,
};
use serde_json::Value;
use std::process::Stdio;
use std::time::Instant;

both_modes!(
    pass,
    fail_ran_as_root,
    fail_ignored_term,
    fail_left_processes,
    fail_exited_nonzero,
    success_exit_covers_term,
    fail_never_ready_probe,
    fail_exited_before_ready,
    fail_command_not_found,
    pass_with_probe,
);

/// Options that make the app non-root: `--user nobody` when the test is root (otherwise the
/// test's own user already is not).
pub(crate) fn non_root() -> Vec<&'static str> {
    if is_root() {
        vec!["--user", "nobody"]
    } else {
        Vec::new()
    }
}

/// The uid the app runs as with [`non_root`].
pub(crate) fn non_root_uid() -> u64 {
    if is_root() {
        65534
    } else {
        u64::from(nix::unistd::geteuid().as_raw())
    }
}

/// An app that prints `app ready`, and on SIGTERM prints `app TERM <wall clock>` and exits
/// with `code`.
fn trapping_app(code: i32) -> String {
    format!(
        "exec 2>/dev/null; trap 'echo app TERM $(date +%s.%N); exit {code}' TERM; echo app ready; {LOOP}"
    )
}

/// One finished drill.
pub(crate) struct Drilled {
    pub code: i32,
    pub stdout: Vec<String>,
    pub report: Value,
    /// Processes of the app still running once vigil was gone (subreaper mode can tell).
    pub survivors: Vec<i32>,
    /// When the test started vigil and when it saw it gone.
    pub started: Instant,
    pub gone: Instant,
    pub dump: String,
}

impl Drilled {
    pub fn reasons(&self) -> Vec<String> {
        self.report["reasons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r.as_str().expect("a reason is a string").to_lowercase())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn f64(&self, key: &str) -> f64 {
        self.report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {}", self.report))
    }

    /// When the app printed `app TERM <wall clock>`, as an `Instant`.
    pub fn app_termed(&self) -> Instant {
        let wall: f64 = self
            .stdout
            .iter()
            .find_map(|l| l.strip_prefix("app TERM "))
            .unwrap_or_else(|| panic!("the app never got SIGTERM\n{}", self.dump))
            .trim()
            .parse()
            .expect("a time");
        instant_of_wall(wall)
    }

    /// Asserts a `fail` with exactly one reason, which contains one of `words`.
    pub fn assert_one_reason(&self, words: &[&str]) {
        assert_eq!(self.report["verdict"], "fail", "{}", self.dump);
        assert_eq!(self.code, 1, "exit status on fail\n{}", self.dump);
        let reasons = self.reasons();
        assert_eq!(reasons.len(), 1, "{reasons:?}\n{}", self.dump);
        assert!(
            words.iter().any(|w| reasons[0].contains(w)),
            "reason {:?} names none of {words:?}",
            reasons[0]
        );
    }
}

/// Starts `vigil drill ARGS` in `mode`; returns it and when the test started it.
pub(crate) fn start_drill(mode: Mode, args: &[&str]) -> (Vigil, Instant) {
    let all: Vec<&str> = std::iter::once("drill")
        .chain(args.iter().copied())
        .collect();
    let started = Instant::now();
    (vigil(&all).start(mode), started)
}

/// Runs `vigil drill ARGS` in `mode` to the end and checks the shape of what it printed.
pub(crate) fn drill(mode: Mode, args: &[&str]) -> Drilled {
    let (v, started) = start_drill(mode, args);
    finish(v, started)
}

/// Waits for the drill to end, checks the shape of what it printed, and prints the report as a
/// sample (`cargo test -- --nocapture`).
pub(crate) fn finish(mut v: Vigil, started: Instant) -> Drilled {
    // Only once vigil has run can "not found" mean "gone" (not "not exec'd yet").
    v.wait_for_log("vigil starting", |_| true, CEILING);
    let gone = v.wait_gone(CEILING);
    let survivors = v.survivors();
    let left: Vec<_> = survivors
        .iter()
        .map(|&p| {
            (
                crate::util::stat(p),
                std::fs::read_to_string(format!("/proc/{p}/cmdline")),
            )
        })
        .collect();
    let code = v.wait_exit(CEILING).code;
    let (stdout, stderr, dump) = (v.stdout(), v.stderr(), v.dump());

    for line in &stderr {
        let log: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line:?}\n{dump}"));
        for key in ["ts", "level", "msg"] {
            assert!(log[key].is_string(), "no {key} in {line}");
        }
    }
    assert!(!stderr.is_empty(), "vigil logged nothing\n{dump}");
    let last = stdout
        .last()
        .unwrap_or_else(|| panic!("nothing on stdout\n{dump}"));
    let report: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last stdout line is not JSON ({e}): {last:?}\n{dump}"));
    assert!(report.is_object(), "{report}");
    for line in &stdout[..stdout.len() - 1] {
        assert!(
            serde_json::from_str::<Value>(line).is_err(),
            "more than one report: {line}\n{dump}"
        );
    }

    let fields = [
        "ready_s",
        "drain_s",
        "forced_kill",
        "exit_status",
        "app_uid",
        "leftover",
        "budget_s",
        "verdict",
    ];
    let missing: Vec<&str> = fields
        .into_iter()
        .filter(|k| report.get(k).is_none())
        .collect();
    assert!(missing.is_empty(), "the report lacks {missing:?}: {report}");
    let verdict = report["verdict"].as_str().unwrap_or_default();
    assert!(verdict == "pass" || verdict == "fail", "verdict: {report}");
    // Seconds, or null for a step that never happened (never ready, never signalled).
    for key in ["ready_s", "drain_s"] {
        assert!(
            report[key].is_null() || report[key].as_f64().is_some_and(|s| s >= 0.0),
            "{key}: {report}"
        );
    }
    assert!(report["forced_kill"].is_boolean(), "forced_kill: {report}");
    assert!(report["exit_status"].is_u64(), "exit_status: {report}");
    assert!(report["app_uid"].is_u64(), "app_uid: {report}");
    assert!(report["budget_s"].as_f64().is_some(), "budget_s: {report}");
    assert_eq!(report["leftover"], 0, "leftover: {report}");
    match verdict {
        "pass" => {
            assert_eq!(code, 0, "exit status on pass\n{dump}");
            let none = report
                .get("reasons")
                .is_none_or(|r| r.as_array().is_some_and(Vec::is_empty));
            assert!(none, "reasons on a pass: {report}");
        }
        _ => {
            assert_eq!(code, 1, "exit status on fail\n{dump}");
            let reasons = report["reasons"].as_array().cloned().unwrap_or_default();
            assert!(!reasons.is_empty(), "a fail without reasons: {report}");
            assert!(reasons.iter().all(Value::is_string), "{report}");
        }
    }
    assert!(survivors.is_empty(), "left behind: {left:?}\n{dump}");
    eprintln!(
        "SAMPLE {}: exit {code}, {report}",
        std::thread::current().name().unwrap_or("drill")
    );
    Drilled {
        code,
        stdout,
        report,
        survivors,
        started,
        gone,
        dump,
    }
}

pub(crate) fn args<'a>(opts: &[&'a str], app: &'a str) -> Vec<&'a str> {
    let mut v: Vec<&str> = non_root();
    v.extend_from_slice(opts);
    v.extend_from_slice(&["--", "sh", "-c", app]);
    v
}

/// An app that traps TERM and exits 0, as nobody: `pass`. SIGTERM comes `--after` seconds after
/// the spawn, never sooner; the app's lines come before the report.
fn pass(mode: Mode) {
    let app = trapping_app(0);
    let d = drill(
        mode,
        &args(&["--after", "0.3", "--drain-timeout", "2"], &app),
    );
    assert_eq!(d.report["verdict"], "pass", "{}", d.dump);
    assert_eq!(d.code, 0);
    assert_eq!(d.report["forced_kill"], false);
    assert_eq!(d.report["exit_status"], 0);
    assert_eq!(d.report["app_uid"].as_u64(), Some(non_root_uid()));
    assert_eq!(d.report["leftover"], 0);
    let ready = d.f64("ready_s");
    assert!((0.3..3.0).contains(&ready), "ready_s {ready}");
    let drain = d.f64("drain_s");
    assert!(drain < 2.0, "drain_s {drain}: not within the drain timeout");
    assert!(
        d.app_termed() >= d.started + secs(0.3),
        "SIGTERM came before --after"
    );
    assert_eq!(d.report["budget_s"], 10.0, "the default budget");
    let n = d.stdout.len();
    assert!(n >= 4, "{:?}", d.stdout);
    assert_eq!(d.stdout[0], "app ready");
    assert!(d.stdout[n - 3].starts_with("app TERM "), "{:?}", d.stdout);
    assert_eq!(
        d.stdout[n - 2],
        "",
        "the newline vigil writes before the report"
    );
}

/// The same app as root: `fail`, the one reason being root.
fn fail_ran_as_root(mode: Mode) {
    if !require(is_root(), "needs root to run the app as root") {
        return;
    }
    let app = trapping_app(0);
    let opts = [
        "--after",
        "0.3",
        "--drain-timeout",
        "2",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let d = drill(mode, &opts);
    d.assert_one_reason(&["root"]);
    assert_eq!(d.report["app_uid"], 0);
    assert_eq!(d.report["exit_status"], 0);
    assert_eq!(d.report["forced_kill"], false);
    assert!(d.report["ready_s"].as_f64().is_some_and(|s| s >= 0.3));
}

/// An app that ignores SIGTERM is killed at `--drain-timeout 0.5`: `fail`, forced_kill, 137.
/// Not killed before the timeout, everything gone by timeout + 0.5 s.
fn fail_ignored_term(mode: Mode) {
    let app = format!("exec 2>/dev/null; {}", term_ignorer());
    let (mut v, started) = start_drill(
        mode,
        &args(&["--after", "0.3", "--drain-timeout", "0.5"], &app),
    );
    v.wait_for_line("ready", CEILING);
    let app_proc = v.app();
    let me = v.proc();
    let seen = watch(&[app_proc], CEILING, || !me.alive());
    let gone = v.wait_gone(CEILING);
    // Logged just before vigil reads the clock its deadline counts from (the "drain started"
    // line comes after that read, so a stall between the two would make a correct kill look
    // early). The log's clock has millisecond steps.
    let sending = v.wait_for_log("drill: sending SIGTERM", |_| true, CEILING);
    let ts = sending["ts"].as_str().expect("ts");
    let t0 = instant_of_wall(rfc3339_secs(ts)) - secs(0.001);
    let dead = seen[0].first_dead.expect("the app died");
    assert!(
        dead >= t0 + secs(0.5),
        "the app was killed {:?} after the drill's SIGTERM, before the timeout",
        dead.saturating_duration_since(t0)
    );
    assert!(gone <= t0 + secs(1.0) + SLACK, "vigil took {:?}", gone - t0);

    let d = finish(v, started);
    d.assert_one_reason(&["term", "kill"]);
    assert_eq!(d.report["forced_kill"], true, "{}", d.report);
    assert_eq!(d.report["exit_status"], 137, "{}", d.report);
    let drain = d.f64("drain_s");
    // The contract's deadline (timeout + 0.5 s), with room for a loaded machine.
    assert!((0.5..=1.0 + 0.5).contains(&drain), "drain_s {drain}");
}

/// The app exits 0 on SIGTERM but its background child ignores it and has to be killed at the
/// timeout: `fail`, forced_kill, the app's own status 0, nothing left over.
fn fail_left_processes(mode: Mode) {
    let app = format!(
        "exec 2>/dev/null; (trap '' TERM; {LOOP}) & trap 'echo app TERM $(date +%s.%N); exit 0' TERM; echo app ready; {LOOP}"
    );
    let d = drill(
        mode,
        &args(&["--after", "0.3", "--drain-timeout", "0.5"], &app),
    );
    d.assert_one_reason(&["process", "left"]);
    assert_eq!(d.report["forced_kill"], true, "{}", d.report);
    assert_eq!(d.report["exit_status"], 0, "{}", d.report);
    assert_eq!(d.report["leftover"], 0, "{}", d.report);
    let drain = d.f64("drain_s");
    // The contract's deadline (timeout + 0.5 s), with room for a loaded machine.
    assert!((0.5..=1.0 + 0.5).contains(&drain), "drain_s {drain}");
    assert!(d.survivors.is_empty());
}

/// An app that exits 3 on SIGTERM: `fail`, exit_status 3.
fn fail_exited_nonzero(mode: Mode) {
    let app = trapping_app(3);
    let d = drill(
        mode,
        &args(&["--after", "0.3", "--drain-timeout", "2"], &app),
    );
    d.assert_one_reason(&["status", "exit", "non-zero", "3"]);
    assert_eq!(d.report["exit_status"], 3, "{}", d.report);
    assert_eq!(d.report["forced_kill"], false, "{}", d.report);
}

/// An app killed by SIGTERM (status 143): `fail` without `--success-exit 143`, `pass` with it.
fn success_exit_covers_term(mode: Mode) {
    let app = "exec 2>/dev/null; echo app ready; exec sleep 30";
    let d = drill(
        mode,
        &args(&["--after", "0.3", "--drain-timeout", "2"], app),
    );
    d.assert_one_reason(&["143", "status", "exit"]);
    assert_eq!(d.report["exit_status"], 143, "{}", d.report);
    assert_eq!(d.report["forced_kill"], false, "{}", d.report);

    let opts = [
        "--after",
        "0.3",
        "--drain-timeout",
        "2",
        "--success-exit",
        "143",
    ];
    let d = drill(mode, &args(&opts, app));
    assert_eq!(d.report["verdict"], "pass", "{}", d.dump);
    assert_eq!(d.code, 0);
    assert_eq!(d.report["exit_status"], 0, "{}", d.report);
    assert_eq!(d.report["forced_kill"], false, "{}", d.report);
}

/// A probe that never passes: the drill gives up after `--startup-grace` (never sooner), stops
/// the app anyway, and fails with ready_s null.
fn fail_never_ready_probe(mode: Mode) {
    let (_held, port) = closed_port();
    let closed = format!("127.0.0.1:{port}");
    let app = trapping_app(0);
    let opts = [
        "--probe-tcp",
        &closed,
        "--startup-grace",
        "0.5",
        "--probe-interval",
        "0.1",
        "--drain-timeout",
        "2",
    ];
    let d = drill(mode, &args(&opts, &app));
    d.assert_one_reason(&["ready"]);
    assert!(d.report["ready_s"].is_null(), "{}", d.report);
    assert_eq!(d.report["forced_kill"], false, "{}", d.report);
    assert!(
        d.app_termed() >= d.started + secs(0.5),
        "the drill gave up before --startup-grace"
    );
    assert!(
        d.gone - d.started < secs(0.5) + secs(5.0),
        "took {:?}",
        d.gone - d.started
    );
}

/// An app that exits before `--after`, or before its probe passes: `fail` with one reason that
/// gives its status, and `drain_s` null, since no drain happened (it was 0.0 and a generic
/// "never ready").
fn fail_exited_before_ready(mode: Mode) {
    let (_held, port) = closed_port();
    let closed = format!("127.0.0.1:{port}");
    let cases: [(&[&str], &str, &str); 3] = [
        (
            &["--after", "1"],
            "exit 0",
            "exited with status 0 before it was ready",
        ),
        (
            &["--after", "1"],
            "exit 3",
            "exited with status 3 before it was ready",
        ),
        (
            &["--probe-tcp", &closed, "--startup-grace", "5"],
            "kill -SEGV $$",
            "killed by sigsegv (status 139) before it was ready",
        ),
    ];
    for (opts, end, want) in cases {
        let app = format!("exec 2>/dev/null; echo app bye; {end}");
        let d = drill(mode, &args(opts, &app));
        d.assert_one_reason(&[want]);
        assert!(d.report["ready_s"].is_null(), "{}", d.report);
        assert!(d.report["drain_s"].is_null(), "{}", d.report);
        assert_eq!(d.stdout[0], "app bye");
        assert!(
            d.gone - d.started < secs(4.0),
            "{end}: waited for --after or --startup-grace: {:?}",
            d.gone - d.started
        );
    }
}

/// A command that cannot be run: `fail` with exit status 127, and still the whole report.
fn fail_command_not_found(mode: Mode) {
    let mut all = non_root();
    all.extend(["--after", "0.3", "--", "/nonexistent/app"]);
    let d = drill(mode, &all);
    assert_eq!(d.report["verdict"], "fail", "{}", d.dump);
    assert_eq!(d.report["exit_status"], 127, "{}", d.report);
    assert!(d.report["ready_s"].is_null(), "{}", d.report);
}

/// A probe that passes: ready as soon as it does (not after `--after 5`), then `pass`. The probe
/// checks a file the app creates once its TERM trap is set, as a real app's port opens only once
/// it can serve (and stop).
fn pass_with_probe(mode: Mode) {
    let dir = Scratch::new();
    let marker = dir.p("up");
    let probe = format!("test -f {marker}");
    let app = format!(
        "exec 2>/dev/null; trap 'echo app TERM $(date +%s.%N); exit 0' TERM; echo app ready; touch {marker}; {LOOP}"
    );
    let opts = [
        "--probe-exec",
        &probe,
        "--probe-interval",
        "0.1",
        "--after",
        "5",
        "--drain-timeout",
        "2",
    ];
    let d = drill(mode, &args(&opts, &app));
    assert_eq!(d.report["verdict"], "pass", "{}", d.dump);
    let ready = d.f64("ready_s");
    assert!(
        ready < 3.0,
        "ready_s {ready}: waited for --after, not the probe"
    );
    assert!(
        d.gone - d.started < secs(4.0),
        "took {:?}",
        d.gone - d.started
    );
    assert!(d.stdout[1].starts_with("app TERM "), "{:?}", d.stdout);
}

/// Usage errors exit 2 with one line on stderr, nothing on stdout, and start nothing.
#[test]
fn usage_errors() {
    let dir = Scratch::new();
    let marker = dir.p("started");
    let touch = format!("touch {marker}");
    let sh = ["--", "sh", "-c", touch.as_str()];
    let with_app = |opts: &[&'static str]| [opts, &sh[..]].concat();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--bogus"],
        with_app(&["--bogus"]),
        with_app(&["--after", "soon"]),
        vec!["--after", "1"],
        with_app(&["--budget", "0.5"]),
        with_app(&["--budget=x"]),
        // --hold needs somewhere to connect: a tcp or http probe, or --hold-target.
        with_app(&["--hold", "1"]),
        with_app(&["--hold", "1", "--probe-exec", "true"]),
        with_app(&["--hold-target", "127.0.0.1:1"]),
        with_app(&["--hold", "x", "--hold-target", "127.0.0.1:1"]),
        with_app(&["--report", "/nonexistent/dir/report.json"]),
    ];
    for case in cases {
        let mut cmd = vigil_command();
        cmd.arg("drill").args(&case);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("VIGIL_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil drill");
        let exited = poll_until(CEILING, || child.try_wait().ok().flatten().is_some());
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vigil drill {case:?} still running after {CEILING:?}");
        }
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "vigil drill {case:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "vigil drill {case:?} printed to stdout"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "vigil drill {case:?}: {stderr:?}"
        );
        assert!(
            !std::path::Path::new(&marker).exists(),
            "{case:?} started the app"
        );
    }
}
