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
