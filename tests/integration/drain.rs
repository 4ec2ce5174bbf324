//! The drain: the deadline from the first SIGTERM/SIGINT, the drain delay, the stop signal, a
//! second Ctrl-C, repeated SIGTERMs, and leftovers after the app has exited.
//!
//! Timing: the test takes its clock just before it signals vigil, so "nothing killed before the
//! timeout" is an exact lower bound. Upper bounds are the contract's (timeout + 0.5 s) plus
//! [`SLACK`] for the test's own polling.

use crate::util::{
    CEILING, LOOP, Mode, ProcRef, SLACK, Scratch, instant_of_wall, printer, require, secs,
    sleep_until, term_ignorer, vigil, wall_now, watch,
};
use nix::sys::signal::Signal;
use std::time::Instant;

both_modes!(
    deadline_kills_term_ignorer,
    prompt_exit,
    drain_delay,
    stop_signal,
    sigint_is_forwarded_as_int,
    second_sigint_moves_deadline,
    repeated_sigterm_is_forwarded,
    app_exits_during_drain,
    leftover_gets_term_after_app_exit,
    leftover_ignoring_term_is_killed,
);

/// Asserts `w` (a [`watch`] of one process) died no earlier than `not_before` (and that the
/// watch really saw it alive shortly before that) and no later than `not_after`.
fn assert_died_between(what: &str, w: crate::util::Watch, not_before: Instant, not_after: Instant) {
    let dead = w
        .first_dead
        .unwrap_or_else(|| panic!("{what} was never seen dead"));
    assert!(
        dead >= not_before,
        "{what} was killed {:?} too early",
        not_before - dead
    );
    let alive = w.last_alive.expect("seen alive");
    assert!(
        alive + secs(0.1) >= not_before,
        "{what}: the watch was not looking just before the deadline (last alive {:?} before it)",
        not_before - alive
    );
    assert!(
        dead <= not_after,
        "{what} was still there {:?} after the latest allowed",
        dead - not_after
    );
}

/// The app ignores SIGTERM: it is alive until the timeout, then everything is SIGKILLed, vigil
/// exits 137 by timeout + 0.5 s, and nothing is left.
fn deadline_kills_term_ignorer(mode: Mode) {
    let mut v = vigil(&["--drain-timeout", "1", "--", "sh", "-c", &term_ignorer()]).start(mode);
    v.wait_for_line("ready", CEILING);
    let app = v.app();
    let tree: Vec<ProcRef> = crate::util::descendants(v.pid())
        .into_iter()
        .filter_map(ProcRef::of)
        .collect();
    let t0 = v.signal(Signal::SIGTERM);
    let me = v.proc();
    let seen = watch(&[app], CEILING, || !me.alive());
    let gone = v.wait_gone(CEILING);
    assert_died_between("the app", seen[0], t0 + secs(1.0), t0 + secs(1.5) + SLACK);
    assert!(
        gone <= t0 + secs(1.5) + SLACK,
        "vigil exited {:?} after SIGTERM",
        gone - t0
    );
    let left: Vec<_> = tree.iter().filter(|p| p.alive()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(v.wait_exit(CEILING).code, 137, "{}", v.dump());

    let started = &v.logs_with("drain started")[0];
    assert_eq!(started["signal"], "SIGTERM", "{started}");
    assert_eq!(started["timeout_s"].as_f64(), Some(1.0), "{started}");
    assert_eq!(started["delay_s"].as_f64(), Some(0.0), "{started}");
    let forced = v.logs_with("forced kill");
    assert_eq!(forced.len(), 1, "{}", v.dump());
    assert_eq!(forced[0]["level"], "warn");
    assert!(forced[0]["remaining"].as_u64() >= Some(1), "{}", forced[0]);
    let exited = &v.logs_with("app exited")[0];
    assert_eq!(exited["signal"], "SIGKILL", "{exited}");
    assert_eq!(exited["status"], 137, "{exited}");
    assert_eq!(v.logs_with("exiting")[0]["code"], 137);
}

/// An app that exits at once on SIGTERM: vigil exits 0 well before the 5 s timeout.
fn prompt_exit(mode: Mode) {
    let app = printer("A", &["TERM"]);
    let mut v = vigil(&["--drain-timeout", "5", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("A ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 0, "{}", v.dump());
    assert!(
        exit.at - t0 < secs(2.0),
        "took {:?}\n{}",
        exit.at - t0,
        v.dump()
    );
    assert!(v.stdout().contains(&"A TERM".to_string()));
    let fwd = v.wait_for_log("signal forwarded", |_| true, CEILING);
    assert_eq!(fwd["signal"], "SIGTERM", "{fwd}");
    assert_eq!(fwd["reason"], "drain", "{fwd}");
    let started = &v.logs_with("drain started")[0];
    assert_eq!(started["timeout_s"].as_f64(), Some(5.0), "{started}");
    assert_eq!(v.logs_with("app exited")[0]["code"], 0);
    assert!(v.logs_with("forced kill").is_empty(), "{}", v.dump());
}

/// `--drain-delay 0.5`: the app gets SIGTERM no earlier than 0.5 s after vigil did, even when a
/// second SIGTERM arrives during the delay. The app prints the time it got it.
fn drain_delay(mode: Mode) {
    let app = format!("trap 'echo TERM $(date +%s.%N); exit 0' TERM; echo ready; {LOOP}");
    let args = [
        "--drain-delay",
        "0.5",
        "--drain-timeout",
        "2",
        "--",
        "sh",
        "-c",
    ];
    let mut v = vigil(&[&args[..], &[app.as_str()]].concat()).start(mode);
    v.wait_for_line("ready", CEILING);
    let wall0 = wall_now();
    let t0 = v.signal(Signal::SIGTERM);
    let started = v.wait_for_log("drain started", |_| true, CEILING);
    assert_eq!(started["delay_s"].as_f64(), Some(0.5), "{started}");
    assert_eq!(started["timeout_s"].as_f64(), Some(2.0), "{started}");
    let t1 = v.signal(Signal::SIGTERM);
    let at: f64 = v
        .wait_for_prefix("TERM ", CEILING)
        .trim()
        .parse()
        .expect("a timestamp");
    assert!(
        at - wall0 >= 0.5,
        "the app got SIGTERM {:.3} s after vigil",
        at - wall0
    );
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 0, "{}", v.dump());
    assert!(exit.at <= t0 + secs(2.5) + SLACK);
    assert!(
        t1 - t0 < secs(0.5),
        "the second SIGTERM came after the delay: this run shows nothing about it"
    );
}

/// `--stop-signal`: a SIGTERM to vigil reaches the app as that signal, however it is spelled.
fn stop_signal(mode: Mode) {
    let spellings: &[(&str, &str, &str)] = match mode {
        Mode::Pid1 => &[("--stop-signal", "QUIT", "QUIT")],
        Mode::Subreaper => &[
            ("--stop-signal", "SIGQUIT", "QUIT"),
            ("--stop-signal", "10", "USR1"),
            ("VIGIL_STOP_SIGNAL", "QUIT", "QUIT"),
        ],
    };
    for &(key, value, name) in spellings {
        let app = printer("A", &[name]);
        let b = if key.starts_with("--") {
            vigil(&[key, value, "--drain-timeout", "5", "--", "sh", "-c", &app])
        } else {
            vigil(&["--drain-timeout", "5", "--", "sh", "-c", &app]).env(key, value)
        };
        let mut v = b.start(mode);
        v.wait_for_line("A ready", CEILING);
        v.signal(Signal::SIGTERM);
        assert_eq!(v.wait_exit(CEILING).code, 0, "{key} {value}: {}", v.dump());
        let out = v.stdout();
        assert!(out.contains(&format!("A {name}")), "{key} {value}: {out:?}");
        assert!(
            !out.contains(&"A TERM".to_string()),
            "{key} {value}: {out:?}"
        );
        let fwd = &v.logs_with("signal forwarded")[0];
        assert_eq!(fwd["signal"], format!("SIG{name}").as_str(), "{fwd}");
        assert_eq!(fwd["reason"], "drain", "{fwd}");
        assert_eq!(v.logs_with("drain started")[0]["signal"], "SIGTERM");
    }
}

/// SIGINT starts a drain too and reaches the app as SIGINT, whatever `--stop-signal` says.
fn sigint_is_forwarded_as_int(mode: Mode) {
    let app = printer("A", &["INT"]);
    let mut v = vigil(&["--stop-signal", "QUIT", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("A ready", CEILING);
    v.signal(Signal::SIGINT);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    let out = v.stdout();
    assert!(out.contains(&"A INT".to_string()), "{out:?}");
    assert!(
        !out.iter().any(|l| l == "A QUIT" || l == "A TERM"),
        "{out:?}"
    );
    assert_eq!(v.logs_with("drain started")[0]["signal"], "SIGINT");
    let fwd = &v.logs_with("signal forwarded")[0];
    assert_eq!(fwd["signal"], "SIGINT", "{fwd}");
    assert_eq!(fwd["reason"], "drain", "{fwd}");
}

/// Ctrl-C twice: the second SIGINT moves the deadline to now.
fn second_sigint_moves_deadline(mode: Mode) {
    let app = format!("trap '' INT TERM; echo ready; {LOOP}");
    let mut v = vigil(&["--drain-timeout", "5", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let app = v.app();
    let t0 = v.signal(Signal::SIGINT);
    v.wait_for_log("signal forwarded", |l| l["reason"] == "drain", CEILING);
    assert!(app.alive(), "the app ignores SIGINT");
    let t1 = v.signal(Signal::SIGINT);
    let exit = v.wait_exit(CEILING);
    assert!(
        exit.at <= t1 + secs(0.5) + SLACK,
        "vigil exited {:?} after the second SIGINT",
        exit.at - t1
    );
    assert!(t1 - t0 < secs(4.0), "the natural deadline was near anyway");
    assert_eq!(exit.code, 137, "{}", v.dump());
    let moved = v.logs_with("drain deadline moved");
    assert_eq!(moved.len(), 1, "{}", v.dump());
    assert_eq!(moved[0]["signal"], "SIGINT");
}

/// A second SIGTERM is forwarded again and does not move the deadline.
fn repeated_sigterm_is_forwarded(mode: Mode) {
    let app = format!("n=0; trap 'n=$((n+1)); echo TERM $n' TERM; echo ready; {LOOP}");
    let mut v = vigil(&["--drain-timeout", "2", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    v.wait_for_line("TERM 1", CEILING);
    // Late enough that a deadline restarted by this signal (t1 + 2 s) is past t0 + 2.5 s + SLACK,
    // early enough that the app has a second to print before the SIGKILL.
    sleep_until(t0 + secs(1.0));
    let t1 = v.signal(Signal::SIGTERM);
    let exit = v.wait_exit(CEILING);
    assert!(
        v.stdout().contains(&"TERM 2".to_string()),
        "the second SIGTERM was not forwarded\n{}",
        v.dump()
    );
    assert_eq!(exit.code, 137, "{}", v.dump());
    assert!(
        exit.at >= t0 + secs(2.0),
        "killed {:?} after the first SIGTERM",
        exit.at - t0
    );
    assert!(
        exit.at <= t0 + secs(2.5) + SLACK,
        "vigil exited {:?} after the first SIGTERM ({:?} after the second): the deadline moved",
        exit.at - t0,
        exit.at - t1
    );
    let fwd = v.logs_with("signal forwarded");
    assert_eq!(fwd.len(), 2, "{}", v.dump());
    assert!(
        fwd.iter()
            .all(|l| l["signal"] == "SIGTERM" && l["reason"] == "drain")
    );
}

/// The app exits 0 at once on SIGTERM, leaving two children that ignore it: one in the app's
/// group, one in a session of its own. vigil waits for them until the deadline, kills them, and
/// still reports the app's 0.
fn app_exits_during_drain(mode: Mode) {
    let child = |tag: &str| {
        format!(
            "trap '' TERM; echo {tag} \\$\\$; {}",
            LOOP.replace('$', "\\$")
        )
    };
    let app = format!(
        "sh -c \"{}\" & setsid sh -c \"{}\" & trap 'exit 0' TERM; echo ready; {LOOP}",
        child("in-group"),
        child("new-session"),
    );
    let mut v = vigil(&["--drain-timeout", "1", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let kids = [
        v.wait_for_pid_line("in-group "),
        v.wait_for_pid_line("new-session "),
    ];
    let t0 = v.signal(Signal::SIGTERM);
    let me = v.proc();
    let seen = watch(&kids, CEILING, || !me.alive());
    let gone = v.wait_gone(CEILING);
    let exited = v.wait_for_log("app exited", |_| true, CEILING);
    assert_eq!(exited["code"], 0, "{exited}");
    for (name, w) in ["in-group child", "new-session child"].iter().zip(seen) {
        assert_died_between(name, w, t0 + secs(1.0), t0 + secs(1.5) + SLACK);
    }
    assert!(
        gone <= t0 + secs(1.5) + SLACK,
        "vigil exited {:?} after SIGTERM",
        gone - t0
    );
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(
        v.wait_exit(CEILING).code,
        0,
        "the app's own status\n{}",
        v.dump()
    );
    assert_eq!(v.logs_with("forced kill").len(), 1, "{}", v.dump());
}

/// The app exits on its own (5), leaving a child that exits on SIGTERM: vigil sends it SIGTERM
/// and exits with 5 at once, not at the drain timeout.
fn leftover_gets_term_after_app_exit(mode: Mode) {
    let s = Scratch::new();
    let mark = s.p("trapped");
    let app = format!(
        "sh -c \"trap 'echo leftover got TERM; exit 0' TERM; touch {mark}; \
         while :; do sleep 0.2 & wait \\$!; done\" & \
         while [ ! -e {mark} ]; do sleep 0.01; done; exit 5"
    );
    let mut v = vigil(&["--drain-timeout", "5", "--", "sh", "-c", &app]).start(mode);
    let exited = v.wait_for_log("app exited", |_| true, CEILING);
    let seen = Instant::now();
    assert_eq!(exited["code"], 5, "{exited}");
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 5, "{}", v.dump());
    assert!(
        exit.at - seen < secs(2.0),
        "vigil waited {:?} after the app exited",
        exit.at - seen
    );
    assert!(
        v.stdout().contains(&"leftover got TERM".to_string()),
        "{}",
        v.dump()
    );
    let term = v.logs_with("terminating leftovers");
    assert_eq!(term.len(), 1, "{}", v.dump());
    assert!(term[0]["count"].as_u64() >= Some(1), "{}", term[0]);
    assert!(v.logs_with("forced kill").is_empty(), "{}", v.dump());
}

/// The app exits 0 on its own, leaving a child that ignores SIGTERM: it is SIGKILLed at the drain
/// timeout counted from the app's exit, and vigil exits 0.
fn leftover_ignoring_term_is_killed(mode: Mode) {
    let s = Scratch::new();
    let mark = s.p("trapped");
    let app = format!(
        "sh -c \"trap '' TERM; echo leftover \\$\\$; touch {mark}; {}\" & \
         while [ ! -e {mark} ]; do sleep 0.01; done; echo exiting $(date +%s.%N); exit 0",
        LOOP.replace('$', "\\$")
    );
    let mut v = vigil(&["--drain-timeout", "1", "--", "sh", "-c", &app]).start(mode);
    let leftover = v.wait_for_pid_line("leftover ");
    let me = v.proc();
    let seen = watch(&[leftover], CEILING, || !me.alive());
    let gone = v.wait_gone(CEILING);
    let wall: f64 = v
        .wait_for_prefix("exiting ", CEILING)
        .trim()
        .parse()
        .expect("a timestamp");
    let app_exit = instant_of_wall(wall);
    // The app exits just after it printed the time: a few ms of allowance on the late side.
    let late = secs(1.5) + SLACK + secs(0.05);
    assert_died_between(
        "the leftover",
        seen[0],
        app_exit + secs(1.0),
        app_exit + late,
    );
    assert!(
        gone <= app_exit + late,
        "vigil exited {:?} after the app",
        gone - app_exit
    );
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    assert_eq!(
        v.logs_with("terminating leftovers").len(),
        1,
        "{}",
        v.dump()
    );
    assert_eq!(v.logs_with("forced kill").len(), 1, "{}", v.dump());
}

/// `VIGIL_DRAIN_TIMEOUT` alone sets the timeout.
#[test]
fn drain_timeout_from_env() {
    let mut v = vigil(&["--", "sh", "-c", &term_ignorer()])
        .env("VIGIL_DRAIN_TIMEOUT", "1")
        .subreaper();
    v.wait_for_line("ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 137, "{}", v.dump());
    assert!(exit.at >= t0 + secs(1.0), "{:?}", exit.at - t0);
    assert!(exit.at <= t0 + secs(1.5) + SLACK, "{:?}", exit.at - t0);
}

/// As a subreaper, vigil never touches a process outside its tree, even one in its own process
/// group (the holder shell's background `sleep`): not at the forced kill, not when it terminates
/// leftovers.
#[test]
fn outside_process_is_untouched() {
    if !require(crate::util::can_unshare(), "needs unshare for the holder") {
        return;
    }
    let leftover = format!(
        "setsid sh -c \"trap '' TERM; {}\" &",
        LOOP.replace('$', "\\$")
    );
    let scenarios = [
        // a drain: the forced kill at the deadline
        (format!("{leftover} {}", term_ignorer()), true, 137),
        // the app exits on its own: leftovers get SIGTERM, then SIGKILL
        (
            format!("{leftover} echo ready; sleep 0.2; exit 3"),
            false,
            3,
        ),
    ];
    for (app, drain, want) in scenarios {
        let mut v = vigil(&["--drain-timeout", "1", "--", "sh", "-c", &app])
            .setup("sleep 1000 & echo outside $!")
            .subreaper();
        let outside = v.wait_for_pid_line("outside ");
        v.wait_for_line("ready", CEILING);
        if drain {
            v.signal(Signal::SIGTERM);
        }
        v.wait_gone(CEILING);
        assert!(
            outside.alive(),
            "vigil killed a process outside its tree\n{}",
            v.dump()
        );
        assert_eq!(v.survivors(), vec![outside.pid], "{}", v.dump());
        assert_eq!(v.wait_exit(CEILING).code, want, "{}", v.dump());
        assert_eq!(v.logs_with("forced kill").len(), 1, "{}", v.dump());
    }
}
