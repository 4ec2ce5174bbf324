//! Reaping: orphans re-parented to vigil are reaped promptly, as PID 1 and as a subreaper, after
//! a negative control shows the fixture leaves zombies without a reaper (tini's reaping stages).

use crate::util::{CEILING, Mode, descendants, secs, stat, vigil, wait_until, zombies};
use std::collections::HashMap;
use std::time::Instant;

both_modes!(reaps_orphans);

const ORPHANS: usize = 20;

/// A shell that starts `ORPHANS` short sleeps in the background and exits at once: the sleeps
/// become orphans. They last 0.5 s so that, even on a loaded machine, the factory has exited (and
/// cannot reap them itself) before they do.
fn orphan_factory() -> String {
    format!("i=0; while [ $i -lt {ORPHANS} ]; do sleep 0.5 & i=$((i+1)); done")
}

/// Without a reaper the fixture leaves zombies: here PID 1 of the namespace is a `sleep`, which
/// never waits.
#[test]
fn negative_control_leaves_zombies() {
    if !crate::util::mode_supported(Mode::Pid1) {
        return;
    }
    let script = format!("sh -c '{}'; echo spawned; exec sleep 5", orphan_factory());
    let v = vigil(&["-c", &script]).program("sh").pid1();
    v.wait_for_line("spawned", CEILING);
    let mut found = 0;
    let done = crate::util::poll_until(secs(3.0), || {
        found = zombies(&v.tree()).len();
        found == ORPHANS
    });
    assert!(
        done,
        "expected {ORPHANS} zombies without a reaper, saw {found}"
    );
}

/// Under vigil no zombie lingers, and each reaped orphan is logged at debug.
fn reaps_orphans(mode: Mode) {
    // Its /proc scans time the zombies: not while a storm fills the process table.
    let _storm = crate::stress::STORM
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let script = format!("sh -c '{}'; echo spawned; exec sleep 100", orphan_factory());
    let v = vigil(&["--log-level", "debug", "--", "sh", "-c", &script]).start(mode);
    v.wait_for_line("spawned", CEILING);
    let app = v.app();
    let me = v.pid();
    // How long each zombie was seen as one.
    let mut first_seen: HashMap<i32, Instant> = HashMap::new();
    let mut longest = secs(0.0);
    wait_until("every orphan is reaped", secs(5.0), || {
        let below = descendants(me);
        let z = zombies(&below);
        let now = Instant::now();
        for &p in &z {
            first_seen.entry(p).or_insert(now);
        }
        for (p, t) in &first_seen {
            if !z.contains(p) {
                longest = longest.max(now - *t);
            }
        }
        first_seen.retain(|p, _| z.contains(p));
        below == vec![app.pid] && z.is_empty()
    });
    assert!(
        longest < secs(0.5),
        "a zombie stayed {longest:?} before vigil reaped it"
    );
    assert_eq!(stat(app.pid).map(|s| s.comm), Some("sleep".to_string()));
    wait_until("every orphan is logged", CEILING, || {
        v.logs_with("orphan reaped").len() >= ORPHANS
    });
    for line in v.logs_with("orphan reaped") {
        assert_eq!(line["level"], "debug", "{line}");
        assert!(line["pid"].is_number(), "{line}");
        assert_eq!(line["status"], 0, "{line}");
    }
}

/// At the default level (info) reaped orphans are not logged.
#[test]
fn orphans_not_logged_at_info() {
    let script = format!("sh -c '{}'; echo spawned; exec sleep 100", orphan_factory());
    let v = vigil(&["--", "sh", "-c", &script]).subreaper();
    v.wait_for_line("spawned", CEILING);
    let app = v.app();
    let me = v.pid();
    wait_until("every orphan is reaped", secs(5.0), || {
        descendants(me) == vec![app.pid]
    });
    assert!(v.logs_with("orphan reaped").is_empty(), "{}", v.dump());
    assert!(
        v.logs().iter().all(|l| l["level"] != "debug"),
        "{}",
        v.dump()
    );
}

/// Where PR_SET_CHILD_SUBREAPER is refused (qemu-user answers EINVAL; here strace injects that
/// answer into vigil's first prctl), vigil warns and runs on: the app gets forwarded signals,
/// a drain's SIGTERM and, when it ignores that, the SIGKILL at the deadline; its status is
/// vigil's. Before, vigil exited 2 ("unable to become a child subreaper").
#[test]
fn subreaper_refused_still_supervises() {
    let strace = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !crate::util::require(strace, "needs strace to refuse the subreaper") {
        return;
    }
    let refuse = [
        "strace",
        "-o",
        "/dev/null",
        "-e",
        "inject=prctl:error=EINVAL:when=1",
    ];
    let app = "trap 'echo got-hup' HUP; trap 'echo got-term; exit 7' TERM; echo ready; \
               while :; do sleep 1 & wait $!; done";
    let mut v = vigil(&["--", "sh", "-c", app]).wrap(&refuse).subreaper();
    v.wait_for_line("ready", CEILING);
    let warn = v.wait_for_log("not a child subreaper", |_| true, CEILING);
    assert_eq!(warn["level"], "warn", "{warn}");
    assert_eq!(warn["error"], "Invalid argument", "{warn}");
    let starting = &v.logs_with("vigil starting")[0];
    assert_eq!(starting["mode"], "parent", "{starting}");
    v.signal(nix::sys::signal::Signal::SIGHUP);
    v.wait_for_line("got-hup", CEILING);
    v.signal(nix::sys::signal::Signal::SIGTERM);
    v.wait_for_line("got-term", CEILING);
    v.wait_gone(CEILING);
    // Not a subreaper, vigil cannot wait for the app's group (a `sleep` that got the TERM with
    // it) to be gone: on a loaded machine one may still be dying as vigil exits.
    let gone = crate::util::poll_until(secs(2.0), || v.survivors().is_empty());
    assert!(gone, "{}", v.describe(&v.survivors()));
    assert_eq!(v.wait_exit(CEILING).code, 7, "{}", v.dump());

    let app = crate::util::term_ignorer();
    let mut v = vigil(&["--drain-timeout", "1", "--", "sh", "-c", &app])
        .wrap(&refuse)
        .subreaper();
    v.wait_for_line("ready", CEILING);
    v.wait_for_log("not a child subreaper", |_| true, CEILING);
    let t0 = v.signal(nix::sys::signal::Signal::SIGTERM);
    let gone = v.wait_gone(CEILING);
    assert!(gone >= t0 + secs(1.0), "{:?}", gone - t0);
    assert!(
        gone <= t0 + secs(1.5) + crate::util::SLACK,
        "{:?}",
        gone - t0
    );
    assert!(v.survivors().is_empty(), "{}", v.describe(&v.survivors()));
    assert_eq!(v.wait_exit(CEILING).code, 137, "{}", v.dump());
    eprintln!(
        "FIGURE subreaper_refused_still_supervises: PR_SET_CHILD_SUBREAPER refused (EINVAL): \
         warn, status 7 passed on, HUP forwarded, drain SIGKILL after {:?}",
        gone - t0
    );
}
