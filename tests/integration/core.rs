//! Exit statuses, how the app is spawned (signal state, process group, file descriptors, the
//! terminal), signal forwarding, idleness and the shape of vigil's log lines.

use crate::util::{
    ANY_PORT, CEILING, Mode, Scratch, can_unshare, context_switches, fds, is_root, poll_until,
    printer, require, run, secs, status_hex, vigil, wait_until,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::time::Instant;

both_modes!(
    exit_code,
    killed_by_signal,
    command_not_found,
    not_executable,
    success_exit_after_sigterm,
    app_signal_state,
    inherited_ignores_are_reset,
    app_process_group,
    only_given_fds,
    forwarding,
    forwarded_line_keeps_its_place,
    drain_forward_line_is_not_held,
    forwarded_line_is_stamped_at_the_kill,
    forwarding_logged_at_debug,
    tty_foreground,
    logs_are_json,
);

fn exit_code(mode: Mode) {
    let mut v = vigil(&["--", "sh", "-c", "exit 7"]).start(mode);
    assert_eq!(v.wait_exit(CEILING).code, 7, "{}", v.dump());
    let exited = v.logs_with("app exited");
    assert_eq!(exited.len(), 1, "{}", v.dump());
    assert_eq!(exited[0]["status"], 7);
    assert_eq!(exited[0]["code"], 7);
    assert_eq!(v.logs_with("exiting")[0]["code"], 7, "{}", v.dump());
}

fn killed_by_signal(mode: Mode) {
    let mut v = vigil(&["--", "sh", "-c", "kill -USR2 $$"]).start(mode);
    assert_eq!(v.wait_exit(CEILING).code, 128 + 12, "{}", v.dump());
    let exited = &v.logs_with("app exited")[0];
    assert_eq!(exited["status"], 140, "{}", v.dump());
    assert_eq!(exited["signal"], "SIGUSR2", "{}", v.dump());
}

fn command_not_found(mode: Mode) {
    for cmd in ["no-such-command-for-vigil", "/nonexistent/dir/cmd"] {
        let mut v = vigil(&["--", cmd, "arg"]).start(mode);
        assert_eq!(v.wait_exit(CEILING).code, 127, "{cmd}: {}", v.dump());
        let failed = v.logs_with("app failed to start");
        assert_eq!(failed.len(), 1, "{cmd}: {}", v.dump());
        assert_eq!(failed[0]["level"], "error");
        assert_eq!(failed[0]["code"], 127);
        assert_eq!(failed[0]["command"], json!([cmd, "arg"]));
        assert!(failed[0]["error"].is_string(), "{}", v.dump());
        assert!(v.logs_with("app spawned").is_empty(), "{}", v.dump());
        assert_eq!(v.logs_with("exiting")[0]["code"], 127, "{}", v.dump());
    }
}

fn not_executable(mode: Mode) {
    let s = Scratch::new();
    std::fs::write(s.path("script"), "#!/bin/sh\necho should not run\n").expect("write");
    // Mode 0644 (no x bit at all), and a directory: both are "found but not executable".
    for cmd in [s.p("script"), s.p("")] {
        let mut v = vigil(&["--", cmd.as_str()]).start(mode);
        assert_eq!(v.wait_exit(CEILING).code, 126, "{cmd}: {}", v.dump());
        let failed = v.logs_with("app failed to start");
        assert_eq!(failed.len(), 1, "{cmd}: {}", v.dump());
        assert_eq!(failed[0]["code"], 126);
        assert!(v.stdout().is_empty(), "{}", v.dump());
    }
}

fn success_exit_after_sigterm(mode: Mode) {
    for (flags, want) in [(&["--success-exit", "143"][..], 0), (&[][..], 143)] {
        let mut args = vec!["--drain-timeout", "5"];
        args.extend(flags);
        args.extend(["--", "sleep", "100"]);
        let mut v = vigil(&args).start(mode);
        assert!(v.app().alive());
        let t0 = v.signal(Signal::SIGTERM);
        let exit = v.wait_exit(CEILING);
        assert_eq!(exit.code, want, "{flags:?}: {}", v.dump());
        assert!(exit.at - t0 < secs(2.0), "{}", v.dump());
        let exited = &v.logs_with("app exited")[0];
        assert_eq!(exited["signal"], "SIGTERM", "{}", v.dump());
        assert_eq!(exited["status"], 143, "{}", v.dump());
        assert_eq!(v.logs_with("exiting")[0]["code"], want, "{}", v.dump());
    }
}

/// `--success-exit` for codes and signals, the env list, and the flags replacing the env list.
#[test]
fn success_exit_codes() {
    let cases: &[(&[&str], Option<&str>, &str, i32)] = &[
        (&[], None, "exit 3", 3),
        (&["--success-exit", "3"], None, "exit 3", 0),
        (&["--success-exit", "3"], None, "exit 4", 4),
        (
            &["--success-exit", "3", "--success-exit", "4"],
            None,
            "exit 4",
            0,
        ),
        (&["--success-exit", "140"], None, "kill -USR2 $$", 0),
        (&[], Some("3,4"), "exit 3", 0),
        (&[], Some("3,4"), "exit 4", 0),
        (&[], Some("3,4"), "exit 5", 5),
        (&["--success-exit", "5"], Some("3,4"), "exit 4", 4),
        (&["--success-exit", "5"], Some("3,4"), "exit 5", 0),
    ];
    for &(flags, env, script, want) in cases {
        let mut args = flags.to_vec();
        args.extend(["--", "sh", "-c", script]);
        let mut b = vigil(&args);
        if let Some(list) = env {
            b = b.env("VIGIL_SUCCESS_EXIT", list);
        }
        let (code, _, err) = run(b, Mode::Subreaper);
        assert_eq!(
            code, want,
            "{flags:?} VIGIL_SUCCESS_EXIT={env:?} {script:?}\n{err:?}"
        );
    }
}

/// The app's ignored signals, all 64: vigil resets even 32 to 34, which the C libraries keep
/// for their threads and refuse to touch, with the raw system call (this test's own
/// environment may hand them down ignored).
fn ignored(pid: i32) -> u64 {
    status_hex(pid, "SigIgn")
}

/// The app is a plain `sleep` (no shell in between), so its /proc status is what vigil gave it.
fn app_signal_state(mode: Mode) {
    let v = vigil(&["--", "sleep", "100"]).start(mode);
    let app = v.app();
    assert_eq!(app.stat().comm, "sleep");
    assert_eq!(app.stat().ppid, v.pid(), "the app is vigil's child");
    assert_eq!(
        status_hex(app.pid, "SigBlk"),
        0,
        "blocked signals in the app"
    );
    assert_eq!(ignored(app.pid), 0, "ignored signals in the app");
}

/// vigil itself starts with signals ignored (as `nohup` or a careless parent leaves them); the
/// app still gets default dispositions.
fn inherited_ignores_are_reset(mode: Mode) {
    if !require(
        can_unshare(),
        "the namespace's first shell sets the ignores",
    ) {
        return;
    }
    let v = vigil(&["--", "sleep", "100"])
        .setup("trap '' HUP USR1 PIPE TTIN TTOU 34 50 64")
        .start(mode);
    let app = v.app();
    assert_eq!(app.stat().comm, "sleep");
    assert_eq!(
        ignored(app.pid),
        0,
        "vigil passed its inherited SIG_IGN dispositions on to the app (SigIgn of the app)"
    );
    assert_eq!(status_hex(app.pid, "SigBlk"), 0);
}

fn app_process_group(mode: Mode) {
    let v = vigil(&["--", "sleep", "100"]).start(mode);
    let app = v.app();
    let st = app.stat();
    assert_eq!(st.pgrp, app.pid, "the app leads its own process group");
    assert_ne!(st.pgrp, v.proc().stat().pgrp, "not vigil's group");
    let spawned = &v.logs_with("app spawned")[0];
    assert_eq!(spawned["pgid"], spawned["pid"], "{}", v.dump());
    assert_eq!(spawned["command"], json!(["sleep", "100"]), "{}", v.dump());
}

/// The test process's own descriptors above 2 without close-on-exec (a test runner may leave
/// some open): every child inherits them, vigil included.
fn inherited_fds() -> Vec<i32> {
    fds(std::process::id() as i32)
        .into_iter()
        .filter(|&fd| fd > 2)
        .filter(|&fd| {
            let info =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
                .is_some_and(|flags| flags & i64::from(libc::O_CLOEXEC) == 0)
        })
        .collect()
}

/// Close-on-exec: the app holds 0, 1, 2 and the fd 5 vigil itself was given, nothing of vigil's
/// own (its health socket, signal pipes, ...). Its stdout and stderr are vigil's, untouched.
fn only_given_fds(mode: Mode) {
    if !require(can_unshare(), "the namespace's first shell opens fd 5") {
        return;
    }
    let v = vigil(&["--health-listen", ANY_PORT, "--", "sleep", "100"])
        .setup("exec 5</dev/null")
        .start(mode);
    let app = v.app();
    let link = |pid: i32, fd: i32| {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut given = inherited_fds();
    given.extend([0, 1, 2, 5]);
    given.sort_unstable();
    given.dedup();
    let held = fds(app.pid);
    let what: Vec<String> = held
        .iter()
        .map(|&fd| format!("{fd} -> {}", link(app.pid, fd)))
        .collect();
    assert_eq!(held, given, "the app's open fds: {what:?}");
    assert_eq!(link(app.pid, 5), "/dev/null");
    let me = v.pid();
    assert_eq!(
        link(app.pid, 1),
        link(me, 1),
        "app stdout is vigil's stdout"
    );
    assert_eq!(
        link(app.pid, 2),
        link(me, 2),
        "app stderr is vigil's stderr"
    );
    let vigil_sockets = fds(me)
        .into_iter()
        .filter(|&fd| link(me, fd).starts_with("socket:"))
        .count();
    assert!(
        vigil_sockets >= 1,
        "vigil holds its health socket (else this test shows nothing)"
    );
}

/// Every forwarded signal reaches the app and a second member of its process group. The second
/// member is started with `env --default-signal`, as a background job of a non-interactive shell
/// otherwise has INT and QUIT ignored and cannot trap them. At the default level a forward
/// writes no line; at debug each has one.
fn forwarding(mode: Mode) {
    forwarding_at(mode, false);
}

fn forwarding_logged_at_debug(mode: Mode) {
    forwarding_at(mode, true);
}

fn forwarding_at(mode: Mode, debug: bool) {
    let app = format!(
        "env --default-signal=INT,QUIT sh -c '{}' & {}",
        printer("B", &[]),
        printer("A", &[])
    );
    let level = if debug { "debug" } else { "info" };
    let v = vigil(&["--log-level", level, "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("A ready", CEILING);
    v.wait_for_line("B ready", CEILING);
    let pgid = v.wait_for_log("app spawned", |_| true, CEILING)["pgid"].clone();
    for (sig, name) in [
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGWINCH, "WINCH"),
        (Signal::SIGCONT, "CONT"),
        (Signal::SIGPWR, "PWR"),
    ] {
        v.signal(sig);
        v.wait_for_line(&format!("A {name}"), CEILING);
        v.wait_for_line(&format!("B {name}"), CEILING);
        if debug {
            let line = v.wait_for_log(
                "signal forwarded",
                |l| l["signal"] == format!("SIG{name}").as_str(),
                CEILING,
            );
            assert_eq!(line["reason"], "forward", "{line}");
            assert_eq!(line["pgid"], pgid, "{line}");
            assert_eq!(line["level"], "debug", "{line}");
        }
    }
    assert!(v.proc().alive(), "vigil still runs");
    if !debug {
        // A forward outside a drain is logged at debug only: at info it writes nothing.
        assert!(v.logs_with("signal forwarded").is_empty(), "{}", v.dump());
    }
    assert!(v.logs_with("drain started").is_empty(), "{}", v.dump());
    assert!(
        !v.stdout()
            .iter()
            .any(|l| l.ends_with(" TERM") || l.ends_with(" INT")),
        "{}",
        v.dump()
    );
}

/// At debug, a forward's log line comes before the lines of what happened next, and no line's
/// `ts` goes backwards (all lines here come from vigil's main thread).
fn forwarded_line_keeps_its_place(mode: Mode) {
    let app = "trap 'echo usr1' USR1; trap : USR2; trap 'echo term; exit 0' TERM; echo ready; \
               while :; do sleep 0.05; done";
    let mut v = vigil(&["--log-level", "debug", "--", "sh", "-c", app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let t0 = v.signal(Signal::SIGUSR1);
    v.wait_for_log("signal forwarded", |l| l["signal"] == "SIGUSR1", CEILING);
    let alone = t0.elapsed();
    v.wait_for_line("usr1", CEILING);
    v.signal(Signal::SIGUSR2);
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    let logs = v.logs();
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        logs.iter()
            .position(pred)
            .unwrap_or_else(|| panic!("missing line\n{}", v.dump()))
    };
    let usr2 = at(&|l| l["msg"] == "signal forwarded" && l["signal"] == "SIGUSR2");
    let drain = at(&|l| l["msg"] == "drain started");
    let term = at(&|l| l["msg"] == "signal forwarded" && l["signal"] == "SIGTERM");
    let exited = at(&|l| l["msg"] == "app exited");
    assert!(
        usr2 < drain && drain < term && term < exited,
        "{}",
        v.dump()
    );
    assert_eq!(logs[term]["reason"], "drain");
    let ts: Vec<&str> = logs.iter().filter_map(|l| l["ts"].as_str()).collect();
    assert_eq!(ts.len(), logs.len());
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    assert!(
        alone < secs(1.0),
        "the line came {alone:?} after the signal"
    );
    eprintln!(
        "FIGURE forwarded_line_keeps_its_place/{}: a lone forward's line written {:.1} ms after \
         the signal (the test polls every few ms)",
        mode.name(),
        alone.as_secs_f64() * 1e3
    );
}

/// The drain's own forward (SIGTERM on to the app once the delay is over) is logged before
/// vigil waits again, not held until the next event: here that would be the deadline, 3 s on.
fn drain_forward_line_is_not_held(mode: Mode) {
    let app = "trap '' TERM; echo ready; exec sleep 100";
    let flags = ["--drain-delay", "0.5", "--drain-timeout", "3"];
    let mut v = vigil(&[&flags[..], &["--", "sh", "-c", app]].concat()).start(mode);
    v.wait_for_line("ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    v.wait_for_log("signal forwarded", |l| l["reason"] == "drain", CEILING);
    let took = t0.elapsed();
    // Ctrl-C after the drain began moves the deadline to now: the test need not wait 3 s.
    v.signal(Signal::SIGINT);
    assert_eq!(v.wait_exit(CEILING).code, 137, "{}", v.dump());
    assert!(
        took >= secs(0.5),
        "forwarded before the delay was over: {took:?}"
    );
    assert!(
        took < secs(1.5),
        "the drain's forward was logged {took:?} after SIGTERM"
    );
}

/// A forward's line (at debug) carries the time of the kill, read before it: its `ts`
/// is no later than the moment the app's handler ran (perl, clock read in the handler, printed
/// in vigil's own format so the two compare as strings).
fn forwarded_line_is_stamped_at_the_kill(mode: Mode) {
    // Integer seconds and microseconds: a float time can round down across a millisecond.
    let app = r#"use POSIX qw(strftime); use Time::HiRes qw(gettimeofday); $| = 1;
        $SIG{USR1} = sub { my ($s, $us) = gettimeofday;
            print strftime("got %Y-%m-%dT%H:%M:%S", gmtime($s)),
                sprintf(".%03dZ
", int($us / 1000)) };
        $SIG{TERM} = sub { exit 0 }; print "ready
"; sleep 1 while 1;"#;
    let mut v = vigil(&["--log-level", "debug", "--", "perl", "-e", app]).start(mode);
    v.wait_for_line("ready", CEILING);
    for i in 0..40 {
        v.signal(Signal::SIGUSR1);
        let (mut got, mut lines) = (Vec::new(), Vec::new());
        wait_until("the handler's time and vigil's line", CEILING, || {
            got = v
                .stdout()
                .into_iter()
                .filter_map(|l| l.strip_prefix("got ").map(String::from))
                .collect();
            lines = v.logs_with("signal forwarded");
            got.len() > i && lines.len() > i
        });
        let ts = lines[i]["ts"].as_str().expect("ts");
        assert!(
            ts <= got[i].as_str(),
            "stamped {ts}, after the handler ran at {}",
            got[i]
        );
    }
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// With a terminal on stdin, the app's group is the terminal's foreground group: it reads from
/// the terminal without being stopped, and Ctrl-C reaches it.
fn tty_foreground(mode: Mode) {
    // The app ends as a plain `sleep`: a shell's own SIGINT handling races a Ctrl-C.
    let script = "echo pid $$; read line; echo got $line; exec sleep 100";
    let mut v = vigil(&["--", "sh", "-c", script]).tty().start(mode);
    let app = v.wait_for_pid_line("pid ");
    let fg = poll_until(secs(5.0), || {
        let st = app.stat();
        st.tpgid == st.pgrp
    });
    let st = app.stat();
    assert_eq!(st.pgrp, app.pid, "the app leads its own group");
    assert!(
        fg,
        "terminal foreground group {} is not the app's group {}",
        st.tpgid, st.pgrp
    );
    v.keys(b"hello\n");
    v.wait_for_line("got hello", CEILING);
    assert_ne!(app.stat().state, 'T', "the app was stopped");
    app.wait_exec("sleep");
    v.keys(b"\x03");
    let exit = v.wait_exit(CEILING);
    assert_eq!(
        exit.code,
        130,
        "Ctrl-C kills the app with SIGINT\n{}",
        v.dump()
    );
}

fn is_rfc3339_ms(ts: &str) -> bool {
    let b = ts.as_bytes();
    let pattern = b"dddd-dd-ddTdd:dd:dd.dddZ";
    b.len() == pattern.len()
        && b.iter().zip(pattern).all(|(&c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

fn logs_are_json(mode: Mode) {
    let mut v = vigil(&["--", "sh", "-c", "exit 0"]).start(mode);
    assert_eq!(v.wait_exit(CEILING).code, 0);
    let lines = v.stderr();
    assert!(!lines.is_empty(), "vigil logs something");
    let mut logs = Vec::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let ts = v["ts"].as_str().unwrap_or_else(|| panic!("no ts: {line}"));
        assert!(is_rfc3339_ms(ts), "ts {ts:?} is not RFC 3339 UTC ms");
        assert!(
            ["error", "warn", "info", "debug"].contains(&v["level"].as_str().unwrap_or("")),
            "{line}"
        );
        assert!(v["msg"].is_string(), "{line}");
        logs.push(v);
    }
    let at = |msg: &str| {
        logs.iter()
            .position(|l| l["msg"] == msg)
            .unwrap_or_else(|| panic!("no {msg:?} line in {lines:#?}"))
    };
    let starting = &logs[at("vigil starting")];
    assert_eq!(starting["version"], env!("CARGO_PKG_VERSION"), "{starting}");
    assert_eq!(starting["mode"], mode.name(), "{starting}");
    assert!(starting["pid"].is_number(), "{starting}");
    if mode == Mode::Pid1 {
        assert_eq!(starting["pid"], 1, "{starting}");
    } else {
        assert_ne!(starting["pid"], 1, "{starting}");
    }
    if is_root() {
        assert_eq!(starting["uid"], 0, "{starting}");
        assert_eq!(starting["gid"], 0, "{starting}");
    }
    assert!(at("vigil starting") < at("app spawned"));
    assert!(at("app spawned") < at("app exited"));
    assert_eq!(
        at("exiting"),
        logs.len() - 1,
        "\"exiting\" is the last line"
    );
    assert_eq!(logs[at("exiting")]["code"], 0);
    assert_eq!(
        logs[at("app spawned")]["command"],
        json!(["sh", "-c", "exit 0"])
    );
}

#[test]
fn log_format_text() {
    for b in [
        vigil(&["--log-format", "text", "--", "sh", "-c", "exit 0"]),
        vigil(&["--", "sh", "-c", "exit 0"]).env("VIGIL_LOG_FORMAT", "text"),
    ] {
        let (code, _, err) = run(b, Mode::Subreaper);
        assert_eq!(code, 0);
        assert!(err.iter().any(|l| l.contains("vigil starting")), "{err:#?}");
        for line in &err {
            assert!(
                serde_json::from_str::<Value>(line).is_err(),
                "a JSON line with --log-format text: {line}"
            );
        }
    }
}

#[test]
fn log_level_filters() {
    let (code, _, err) = run(
        vigil(&["--log-level", "error", "--", "sh", "-c", "exit 0"]),
        Mode::Subreaper,
    );
    assert_eq!(code, 0);
    assert!(err.is_empty(), "--log-level error printed {err:#?}");

    let (_, _, err) = run(
        vigil(&["--", "sh", "-c", "exit 0"]).env("VIGIL_LOG_LEVEL", "warn"),
        Mode::Subreaper,
    );
    for line in &err {
        let v: Value = serde_json::from_str(line).expect("json");
        assert!(v["level"] == "warn" || v["level"] == "error", "{line}");
    }
    if is_root() {
        assert!(
            err.iter().any(|l| l.contains("running as root")),
            "{err:#?}"
        );
    }
}

/// Takes 10 s: vigil with an idle app does not wake up at all (no periodic timer, no polling):
/// the context switches of all its threads stay the same.
#[test]
fn idle_vigil_does_not_wake() {
    let mode = if can_unshare() {
        Mode::Pid1
    } else {
        Mode::Subreaper
    };
    let v = vigil(&["--", "sleep", "100"]).start(mode);
    v.app();
    let pid = v.pid();
    // Let vigil reach its blocking wait: no change for 300 ms in a row.
    let mut last = (context_switches(pid), Instant::now());
    wait_until("vigil settles", CEILING, || {
        let now = context_switches(pid);
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() >= secs(0.3)
    });
    let before = context_switches(pid);
    let woke = poll_until(secs(10.0), || context_switches(pid) != before);
    let after = context_switches(pid);
    assert!(
        !woke,
        "vigil woke up while idle: {before} -> {after} context switches"
    );
}
