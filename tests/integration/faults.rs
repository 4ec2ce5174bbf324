//! Fault injection: vigil under `strace -f -e inject=SYSCALL:error=ERRNO:when=...`, as PID 1 and
//! as a subreaper, and the regression tests of what the matrix (`fault_matrix.rs`) found.
//!
//! As a subreaper, strace starts vigil (`strace -f -b execve -- vigil ...`): strace's own start
//! is never injected, and every child vigil forks is traced up to its exec (vigil's own code
//! between fork and exec), then let go, so the app and the exec probes run untouched.
//!
//! As PID 1 strace cannot start vigil: it forks two test children of its own first, and the first
//! process of a pid namespace is its init, so vigil would come third. So the namespace's PID 1 is
//! `flock -F LOCK vigil ...`, waiting for a lock the test holds; strace attaches to it from
//! outside the namespace (`-p`), and the test lets go of the lock: flock takes it, and execs vigil
//! as PID 1, traced from its first instruction. Two differences follow. strace detaches on the
//! first exec it sees after `-p`, which would be vigil's, so `-b execve` is not used and the app
//! and probes are traced (and injected) too: the fixtures are static busybox, which makes few
//! calls. And flock's own last calls (the restarted `flock`, `rt_sigaction`, `execve`) are
//! counted in vigil's main thread: `when=` is shifted by one for those, and an `execve` fault is
//! limited to the app's path (`-P`). flock's lock fd is inherited by vigil and the app.
//!
//! strace's trace goes to a file; with `-q` it writes nothing to vigil's stderr unless strace
//! itself fails.

use crate::util::{Builder, Vigil};
use crate::util::{
    CEILING, Mode, SLACK, Scratch, ns_pid_of, poll_until, secs, stat, term_ignorer, vigil,
    wait_until,
};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

both_modes!(
    fork_failure_is_a_startup_error,
    exec_probe_that_cannot_run_fails_without_a_panic,
    a_failed_reap_is_retried,
    the_event_loop_gives_up_when_its_waits_keep_failing,
    a_stuck_probe_spawn_does_not_stall_the_supervisor,
    a_failed_poll_does_not_lose_the_seed,
    no_randomness_needed,
    a_failing_poll_does_not_spin_the_health_server
);

/// Debian's busybox-static: no dynamic loader, so a traced app makes few calls.
pub const BUSYBOX: &str = "/bin/busybox";

/// Which calls of a syscall get the fault, in strace's counting (per thread and per process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Only the Nth call (`when=N`).
    Nth(u32),
    /// The Nth and every later call (`when=N+`).
    From(u32),
}

impl When {
    fn shifted(self, by: u32) -> When {
        match self {
            When::Nth(n) => When::Nth(n + by),
            When::From(n) => When::From(n + by),
        }
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            When::Nth(n) => write!(f, "{n}"),
            When::From(n) => write!(f, "{n}+"),
        }
    }
}

/// One injected fault: these syscalls fail with `errno` on the calls `when` picks.
#[derive(Clone, Debug)]
pub struct Fault {
    /// strace's names, comma-separated (`clone,clone3,fork,vfork`).
    pub syscalls: String,
    pub errno: &'static str,
    pub when: When,
}

/// The calls flock makes in vigil's process, after strace attached and before vigil runs.
const TRAMPOLINE_CALLS: [&str; 3] = ["flock", "rt_sigaction", "execve"];

impl Fault {
    pub fn new(syscalls: &str, errno: &'static str, when: When) -> Fault {
        Fault {
            syscalls: syscalls.to_string(),
            errno,
            when,
        }
    }

    /// strace's arguments for this fault in `mode`.
    fn strace_args(&self, mode: Mode) -> Vec<String> {
        let mut when = self.when;
        let mut args = Vec::new();
        if mode == Mode::Pid1 {
            let names: Vec<&str> = self.syscalls.split(',').collect();
            if names.iter().all(|n| TRAMPOLINE_CALLS.contains(n)) {
                when = when.shifted(1);
            }
            if names.contains(&"execve") {
                // Only the app's own exec (busybox), never flock's exec of vigil.
                args.extend(["-P".to_string(), BUSYBOX.to_string()]);
                when = self.when;
            }
        }
        let spec = format!("inject={}:error={}:when={when}", self.syscalls, self.errno);
        args.extend(["-e".to_string(), spec]);
        args
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:when={}", self.syscalls, self.errno, self.when)
    }
}

/// Whether strace can run here; skips (see [`crate::util::require`]) if not.
pub fn have_strace() -> bool {
    let ok = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    crate::util::require(
        ok,
        "needs strace (Debian package strace) for fault injection",
    ) && crate::util::require(
        std::path::Path::new(BUSYBOX).exists(),
        "needs a static busybox (Debian package busybox-static)",
    )
}

/// A vigil running under strace; dropping it kills the lot, strace last.
pub struct Traced {
    v: Option<Vigil>,
    /// As PID 1: strace, attached from outside the namespace.
    tracer: Option<Child>,
    /// strace's trace.
    pub trace: PathBuf,
    pub mode: Mode,
    _scratch: Scratch,
}

impl Traced {
    pub fn v(&self) -> &Vigil {
        self.v.as_ref().expect("vigil")
    }

    pub fn v_mut(&mut self) -> &mut Vigil {
        self.v.as_mut().expect("vigil")
    }

    /// strace's trace so far.
    pub fn trace(&self) -> String {
        std::fs::read_to_string(&self.trace).unwrap_or_default()
    }

    /// How many calls got the fault.
    pub fn injected(&self) -> usize {
        self.trace().matches("(INJECTED)").count()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        drop(self.v.take());
        if let Some(mut t) = self.tracer.take() {
            if t.try_wait().ok().flatten().is_none() {
                let _ = kill(Pid::from_raw(t.id() as i32), Signal::SIGKILL);
            }
            let _ = t.wait();
        }
    }
}

/// Starts `b` in `mode` under strace with `fault`.
pub fn traced(b: Builder, mode: Mode, fault: &Fault) -> Traced {
    let scratch = Scratch::new();
    let trace = scratch.path("strace");
    let trace_arg = trace.to_string_lossy().into_owned();
    let mut strace: Vec<String> = ["strace", "-f", "-o", &trace_arg]
        .map(String::from)
        .to_vec();
    strace.extend(fault.strace_args(mode));
    if mode == Mode::Subreaper {
        strace.extend(["-q", "-b", "execve", "--"].map(String::from));
        let wrap: Vec<&str> = strace.iter().map(String::as_str).collect();
        let v = b.wrap(&wrap).start(mode);
        return Traced {
            v: Some(v),
            tracer: None,
            trace,
            mode,
            _scratch: scratch,
        };
    }
    let lock_path = scratch.path("lock");
    let file = std::fs::File::create(&lock_path).expect("create the lock file");
    let lock = Flock::lock(file, FlockArg::LockExclusive).expect("take the lock");
    let lock_arg = lock_path.to_string_lossy().into_owned();
    let v = b.wrap(&["flock", "-F", &lock_arg]).start(mode);
    // flock, as the namespace's PID 1, blocked in flock(2) (73 on x86_64).
    let mut pid = None;
    wait_until("flock waits for the lock as PID 1", CEILING, || {
        pid = v.tree().into_iter().find(|&p| {
            stat(p).is_some_and(|s| s.comm == "flock")
                && ns_pid_of(p) == Some(1)
                && std::fs::read_to_string(format!("/proc/{p}/syscall"))
                    .is_ok_and(|s| s.starts_with("73 "))
        });
        pid.is_some()
    });
    let pid = pid.expect("found");
    let said = scratch.path("strace.err");
    strace.extend(["-p".to_string(), pid.to_string()]);
    let tracer = Command::new(&strace[0])
        .args(&strace[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&said).expect("strace's stderr"))
        .spawn()
        .expect("start strace");
    // "Process N attached" comes once strace has seized and interrupted it: from here every
    // call it makes is traced, whenever it wakes.
    let attached = poll_until(CEILING, || {
        std::fs::read_to_string(&said).is_ok_and(|s| s.contains("attached"))
    });
    assert!(attached, "strace did not attach to flock (pid {pid})");
    drop(lock);
    Traced {
        v: Some(v),
        tracer: Some(tracer),
        trace,
        mode,
        _scratch: scratch,
    }
}

/// vigil's stderr without strace's own complaints (strace shares it as a subreaper).
pub fn vigil_stderr(v: &Vigil) -> Vec<String> {
    v.stderr()
        .into_iter()
        .filter(|l| !l.starts_with("strace: "))
        .collect()
}

/// With every fork failing (EAGAIN, as at a pids.max limit; or ENOMEM on the first), vigil cannot
/// start the app: that is its own start-up error, exit 2 with one error line, not the 126 of an
/// app that cannot be executed. Before, vigil said `app failed to start ... Resource temporarily
/// unavailable` and exited 126.
fn fork_failure_is_a_startup_error(mode: Mode) {
    if !have_strace() {
        return;
    }
    for (errno, when) in [("EAGAIN", When::From(1)), ("ENOMEM", When::Nth(1))] {
        let fault = Fault::new("clone,clone3,fork,vfork", errno, when);
        let b = vigil(&["--", BUSYBOX, "sh", "-c", "exit 0"]);
        let mut t = traced(b, mode, &fault);
        let code = t.v_mut().wait_exit(CEILING).code;
        let v = t.v();
        assert_eq!(code, 2, "{fault}: {}", v.dump());
        assert!(
            t.injected() >= 1,
            "{fault}: nothing injected\n{}",
            t.trace()
        );
        let errors: Vec<_> = v
            .logs()
            .into_iter()
            .filter(|l| l["level"] == "error")
            .collect();
        assert_eq!(errors.len(), 1, "{fault}: {}", v.dump());
        assert_eq!(errors[0]["msg"], "unable to start the app", "{}", errors[0]);
        let want = std::io::Error::from_raw_os_error(if errno == "EAGAIN" { 11 } else { 12 });
        assert_eq!(errors[0]["error"], want.to_string(), "{}", errors[0]);
        assert!(
            v.logs_with("app failed to start").is_empty(),
            "{}",
            v.dump()
        );
        assert!(v.logs_with("app spawned").is_empty(), "{}", v.dump());
        assert_eq!(vigil_stderr(v).len(), v.logs().len(), "{}", v.dump());
    }
}

/// An exec probe whose command cannot be run is a failing probe, every interval. Before, std's
/// spawn answered the failed exec by waiting for the child itself, on the checker thread, while
/// the supervisor's `waitpid(-1)` reaped it too: when the supervisor won, std panicked ("wait()
/// should either return Ok or panic") and the checker thread died, which in the release build
/// (`panic = "abort"`) takes vigil and the container with it.
fn exec_probe_that_cannot_run_fails_without_a_panic(mode: Mode) {
    let app = term_ignorer();
    let args = [
        "--log-level",
        "debug",
        "--probe-exec",
        "/nonexistent/probe",
        "--probe-interval",
        "0.02",
        "--startup-interval",
        "0.02",
        "--drain-timeout",
        "1",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let mut v = vigil(&args).start(mode);
    v.wait_for_line("ready", CEILING);
    // The first result is logged at info, every later one at debug.
    let probes = poll_until(CEILING, || v.logs_with("probe result").len() >= 50);
    let panicked: Vec<String> = v
        .stderr()
        .into_iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panicked.is_empty(), "{panicked:?}\n{}", v.dump());
    assert!(probes, "fewer than 50 probes\n{}", v.dump());
    let first = v.wait_for_log("probe not passing yet", |_| true, CEILING);
    assert_eq!(
        first["error"], "cannot run /nonexistent/probe: No such file or directory (os error 2)",
        "{first}"
    );
    assert!(v.logs_with("orphan reaped").is_empty(), "{}", v.dump());
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 137, "{}", v.dump());
}

/// A `waitpid` that fails once (ECHILD, EINVAL) is tried again 10 ms later. Before, the pass
/// ended as if there were no children, the SIGCHLD that woke it was spent, and an app that had
/// exited was never reaped: vigil waited for a signal that never came.
fn a_failed_reap_is_retried(mode: Mode) {
    if !have_strace() {
        return;
    }
    for errno in ["ECHILD", "EINVAL"] {
        let fault = Fault::new("wait4", errno, When::Nth(1));
        let b = vigil(&["--", BUSYBOX, "sh", "-c", "exit 3"]);
        let mut t = traced(b, mode, &fault);
        let code = t.v_mut().wait_exit(CEILING).code;
        assert_eq!(code, 3, "{fault}: {}", t.v().dump());
        assert_eq!(t.injected(), 1, "{fault}: {}", t.trace());
        let exited = t.v().logs_with("app exited");
        assert_eq!(exited.len(), 1, "{fault}: {}", t.v().dump());
    }
}

/// What strace adds to the contract's times: every system call of vigil's stops in strace twice,
/// on a loaded 2-core machine. The largest seen is in RELIABILITY.md ("Fault injection").
pub const STRACE_SLACK: f64 = 1.5;

/// A wait of the event loop's own that fails every time cannot keep vigil's promises: with
/// `rt_sigtimedwait` failing no signal is taken (no drain), with `waitpid` failing nothing is
/// reaped (no exit status). vigil neither spins nor hangs: it logs, kills the app's tree and
/// exits 2, within the drain timeout plus 0.5 s of starting (plus strace's cost). Before, a
/// failing `rt_sigtimedwait` was retried every 10 ms for ever (EINVAL) or in a busy loop that
/// never slept (EAGAIN), and a failing `waitpid` left every child unreaped; vigil stayed until
/// killed, its SIGTERM never taken.
fn the_event_loop_gives_up_when_its_waits_keep_failing(mode: Mode) {
    if !have_strace() {
        return;
    }
    // An orphan that exits at once: a reap is due from the start.
    let app = "trap '' TERM; (/bin/busybox sleep 0.1 &); exec /bin/busybox sleep 1000";
    for (call, errno) in [
        ("rt_sigtimedwait", "EINVAL"),
        ("rt_sigtimedwait", "EAGAIN"),
        ("wait4", "EINVAL"),
        ("wait4", "ECHILD"),
    ] {
        let fault = Fault::new(call, errno, When::From(1));
        let b = vigil(&["--drain-timeout", "1", "--", BUSYBOX, "sh", "-c", app]);
        let mut t = traced(b, mode, &fault);
        let seen = t.v().proc();
        let t0 = std::time::Instant::now();
        let app = wait_app(&t, "1000");
        let gone = poll_until(CEILING, || !seen.alive());
        let took = t0.elapsed();
        assert!(gone, "{fault}: vigil still runs\n{}", t.v().dump());
        let bound = secs(1.0 + 0.5 + STRACE_SLACK) + SLACK;
        assert!(
            took <= bound,
            "{fault}: gone after {took:?}\n{}",
            t.v().dump()
        );
        if let Some(app) = app {
            assert!(!app.alive(), "{fault}: the app outlived vigil");
        }
        let left = t.v().survivors();
        let left: Vec<i32> = left
            .into_iter()
            .filter(|&p| stat(p).is_some_and(|s| s.comm != "strace"))
            .collect();
        assert!(left.is_empty(), "{fault}: {}", t.v().describe(&left));
        let code = t.v_mut().wait_exit(CEILING).code;
        let v = t.v();
        assert_eq!(code, 2, "{fault}: {}", v.dump());
        let failed = v.wait_for_log("event loop failed", |_| true, CEILING);
        assert_eq!(failed["level"], "error", "{failed}");
        let want = if call == "wait4" { "waitpid" } else { call };
        assert_eq!(failed["call"], want, "{failed}");
        // No spin: a try every 10 ms or so, not a busy loop.
        let tries = t.trace().matches(&format!("{call}(")).count();
        assert!(tries < 400, "{fault}: {tries} calls of {call}");
    }
}

/// An exec probe's spawn that never hears from its child (here strace skips the checker's first
/// close, so the parent keeps the report pipe's write end and never reads its end) stalls the
/// checker only. Before, the checker held the probe table's lock across the whole spawn, and
/// the supervisor, reaping the probe, waited on that lock for ever: no signal taken, no drain.
fn a_stuck_probe_spawn_does_not_stall_the_supervisor(mode: Mode) {
    if !have_strace() {
        return;
    }
    let fault = Fault::new("close", "EIO", When::Nth(1));
    let probe = format!("{BUSYBOX} true");
    let args = [
        "--probe-exec",
        &probe,
        "--probe-interval",
        "0.05",
        "--startup-interval",
        "0.05",
        "--drain-timeout",
        "1",
        "--",
        BUSYBOX,
        "sleep",
        "1000",
    ];
    let mut t = traced(vigil(&args), mode, &fault);
    let app = wait_app(&t, "1000").expect("the app runs");
    // Probes run (or the checker is stuck): a few intervals either way.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = t.v().signal(Signal::SIGTERM);
    let gone = t.v_mut().wait_gone(CEILING);
    let bound = secs(1.0 + 0.5 + STRACE_SLACK) + SLACK;
    assert!(
        gone - t0 <= bound,
        "gone after {:?}\n{}",
        gone - t0,
        t.v().dump()
    );
    assert!(!app.alive());
    let code = t.v_mut().wait_exit(CEILING).code;
    assert_eq!(code, 143, "{}", t.v().dump());
}

/// A poll that fails once (ENOMEM) in the thread reading the `--env-from` seed is tried again.
/// Before, the reader gave up and closed the pipe: the seed died of SIGPIPE (exit 141, the start
/// stopped) or what it had written was lost, and the app ran without its variables.
fn a_failed_poll_does_not_lose_the_seed(mode: Mode) {
    if !have_strace() {
        return;
    }
    let fault = Fault::new("poll", "ENOMEM", When::Nth(1));
    let seed = format!("{BUSYBOX} sh -c 'sleep 0.2; echo SEEDED=yes'");
    let args = [
        "--env-from",
        &seed,
        "--",
        BUSYBOX,
        "sh",
        "-c",
        "echo \"seeded $SEEDED\"",
    ];
    let mut t = traced(vigil(&args), mode, &fault);
    let code = t.v_mut().wait_exit(CEILING).code;
    assert_eq!(code, 0, "{}", t.v().dump());
    assert!(t.injected() >= 1, "{}", t.trace());
    assert_eq!(t.v().stdout(), ["seeded yes"], "{}", t.v().dump());
}

/// vigil needs no random numbers, so a getrandom that fails (EAGAIN before the entropy pool is
/// ready, with GRND_NONBLOCK; ENOSYS on an old kernel) changes nothing. Before, the table of
/// running exec probes was a HashMap, which seeds itself from getrandom: std panicked ("failed to
/// generate random data") and vigil aborted at start-up.
fn no_randomness_needed(mode: Mode) {
    if !have_strace() {
        return;
    }
    let fault = Fault::new("getrandom", "EAGAIN", When::From(1));
    let probe = format!("{BUSYBOX} true");
    let args = ["--probe-exec", &probe, "--", BUSYBOX, "sh", "-c", "exit 5"];
    let mut t = traced(vigil(&args), mode, &fault);
    let code = t.v_mut().wait_exit(CEILING).code;
    assert_eq!(code, 5, "{}", t.v().dump());
    assert!(t.injected() >= 1, "{}", t.trace());
}

/// A poll that keeps failing (ENOMEM) in the health server is retried every 10 ms, not in a
/// busy loop. Before, the server went straight back to poll: 22,000-26,000 calls a second under
/// strace, a core burnt for as long as the kernel refused.
fn a_failing_poll_does_not_spin_the_health_server(mode: Mode) {
    if !have_strace() {
        return;
    }
    let fault = Fault::new("poll", "ENOMEM", When::From(1));
    let args = [
        "--health-listen",
        crate::util::ANY_PORT,
        "--",
        BUSYBOX,
        "sleep",
        "1000",
    ];
    let mut t = traced(vigil(&args), mode, &fault);
    let app = wait_app(&t, "1000").expect("the app runs");
    std::thread::sleep(Duration::from_millis(1000));
    t.v().signal(Signal::SIGTERM);
    assert_eq!(t.v_mut().wait_exit(CEILING).code, 143, "{}", t.v().dump());
    assert!(!app.alive());
    let polls = t.trace().matches("poll(").count();
    assert!(polls < 1000, "{polls} polls in about a second");
}

/// The app (`busybox sleep <arg>`) once it runs, or None if it never did.
fn wait_app(t: &Traced, arg: &str) -> Option<crate::util::ProcRef> {
    let mut found = None;
    poll_until(secs(5.0), || {
        found = t.v().tree().into_iter().find_map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let want = format!("{BUSYBOX}\0sleep\0{arg}\0");
            (cmd == want.as_bytes())
                .then(|| crate::util::ProcRef::of(p))
                .flatten()
        });
        found.is_some()
    });
    found
}
