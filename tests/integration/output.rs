//! vigil's own output never stops it (contract, "What vigil does" 8): with stderr a pipe that
//! nobody reads (a log collector that stopped), forwarding, reaping and the drain deadline hold,
//! lines are dropped and counted, and the app's stdio is never made non-blocking.

use crate::util::{CEILING, Mode, SLACK, descendants, secs, stat, vigil, wait_until};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

both_modes!(
    stalled_stderr_stops_neither_reaping_nor_the_drain,
    dropped_lines_are_counted_once_the_reader_is_back,
);

/// The kernel function a process sleeps in, from /proc/<pid>/wchan ("" when running).
fn wchan(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

/// The first process under vigil whose command is `comm`.
fn find(vigil_pid: i32, comm: &str) -> i32 {
    let mut pid = 0;
    wait_until(&format!("{comm} is running"), CEILING, || {
        pid = descendants(vigil_pid)
            .into_iter()
            .find(|&p| stat(p).is_some_and(|s| s.comm == comm))
            .unwrap_or(0);
        pid != 0
    });
    pid
}

/// Waits until `pid` is blocked writing to a full pipe.
fn wait_blocked_on_pipe(pid: i32) {
    wait_until("the writer is blocked on the full pipe", CEILING, || {
        wchan(pid).contains("pipe_write")
    });
}

/// The issue's repro: the app fills the shared stderr pipe and keeps an orphan factory going
/// while vigil logs every reap (debug). vigil never sleeps in the pipe, keeps reaping, and on
/// SIGTERM the app gets its signal and vigil is gone long before the deadline. Before the fix
/// vigil hung in `anon_pipe_write` for good and the orphans piled up as zombies.
fn stalled_stderr_stops_neither_reaping_nor_the_drain(mode: Mode) {
    // perl, not sh: a shell whose foreground child dies of a signal says so on stderr, and
    // would block on the full pipe itself. The orphan factory's own stderr is /dev/null.
    let app = r#"$SIG{TERM} = sub { exit 0 };
        if (!fork) { open(STDOUT, ">&", \*STDERR); exec "yes", "x" }
        if (!fork) { exec "sh", "-c", "exec 2>/dev/null; while :; do (sleep 0 &); sleep 0.005; done" }
        sleep 1 while 1;"#;
    let mut v = vigil(&[
        "--log-level",
        "debug",
        "--drain-timeout",
        "3",
        "--",
        "perl",
        "-e",
        app,
    ])
    .stall_stderr()
    .start(mode);
    let me = v.pid();
    let yes = find(me, "yes");
    wait_blocked_on_pipe(yes);
    // For a second of stalled output: vigil is never in a pipe write, and keeps reaping.
    let mut most_zombies = 0;
    let end = Instant::now() + secs(1.0);
    while Instant::now() < end {
        let w = wchan(me);
        assert!(!w.contains("pipe_write"), "vigil blocked in {w}");
        let zombies = descendants(me)
            .into_iter()
            .filter(|&p| stat(p).is_some_and(|s| s.state == 'Z' && s.ppid == me))
            .count();
        most_zombies = most_zombies.max(zombies);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(most_zombies < 50, "{most_zombies} zombies waited for vigil");
    let t0 = v.signal(Signal::SIGTERM);
    let gone = v.wait_gone(CEILING);
    assert!(
        gone - t0 < secs(3.5) + SLACK,
        "vigil took {:?} to exit",
        gone - t0
    );
    v.release_stderr();
    // The app's TERM handler ran (exit 0, not 143 or a SIGKILL's 137).
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    assert!(v.survivors().is_empty(), "{}", v.describe(&v.survivors()));
    eprintln!(
        "FIGURE stalled_stderr/{}: SIGTERM to exit {:.0} ms with stderr stalled; at most \
         {most_zombies} zombies at a time",
        mode.name(),
        (gone - t0).as_secs_f64() * 1e3
    );
}

/// Lines vigil could not write while the pipe was full are counted, and one warn line reports
/// the count once the reader is back, even if vigil has nothing else to say by then. The app's
/// stderr file description stays blocking.
fn dropped_lines_are_counted_once_the_reader_is_back(mode: Mode) {
    const FORWARDS: usize = 10;
    // The filler ignores USR1, which reaches the app's whole group.
    let app = r#"$| = 1; $SIG{USR1} = sub { print "usr1\n" }; $SIG{TERM} = sub { exit 0 };
        if (!fork) { $SIG{USR1} = "IGNORE"; open(STDOUT, ">&", \*STDERR);
                     exec "sh", "-c", "yes x | head -c 2000000" }
        print "ready\n"; sleep 1 while 1;"#;
    let mut v = vigil(&["--log-level", "debug", "--", "perl", "-e", app])
        .stall_stderr()
        .start(mode);
    v.wait_for_line("ready", CEILING);
    let head = find(v.pid(), "head");
    wait_blocked_on_pipe(head);
    let flags = std::fs::read_to_string(format!("/proc/{head}/fdinfo/2")).expect("fdinfo");
    let flags = flags
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|f| u32::from_str_radix(f.trim(), 8).expect("octal flags"))
        .expect("flags");
    assert_eq!(
        flags & libc::O_NONBLOCK as u32,
        0,
        "the app's stderr is non-blocking"
    );
    // Each forward is a debug line that cannot be written.
    for i in 1..=FORWARDS {
        v.signal(Signal::SIGUSR1);
        wait_until("the app got USR1", CEILING, || {
            v.stdout().iter().filter(|l| *l == "usr1").count() >= i
        });
    }
    v.release_stderr();
    let report = v.wait_for_log("log lines dropped", |_| true, CEILING);
    assert_eq!(report["level"], "warn", "{report}");
    let count = report["count"].as_u64().expect("count");
    assert!(count >= FORWARDS as u64, "{report}");
    assert!(
        report["total"].as_u64().expect("total") >= count,
        "{report}"
    );
    // Written after the report: the line of each forward that was dropped never shows up.
    assert!(
        v.logs_with("signal forwarded").len() < FORWARDS,
        "{}",
        v.dump()
    );
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}
