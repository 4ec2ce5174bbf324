//! The fault matrix (issue 17): every system call vigil makes, each errno the kernel really
//! returns for it at vigil's call sites, injected once (`when=1`), on the Nth call (`when=N`)
//! and always (`when=1+`), as PID 1 and as a subreaper, with the invariants checked in every run.
//!
//! The binary is the static release build (musl, `panic = "abort"`), the one that ships: no
//! dynamic loader makes calls of its own, and a panic is an abort. Each run is one whole life:
//! start-up (dropping to 65534), an `--env-from` seed and a `--pre-start` hook, the spawn, a
//! health client, a probe (tcp, http or exec, in turn), an orphan to reap, a forwarded SIGUSR1,
//! and a drain whose leftover ignores SIGTERM and is SIGKILLed at the deadline (so the
//! `--post-stop` is skipped). The app (static busybox):
//!
//! - the app itself, `sleep 1000`: ignores USR1, dies of TERM (so vigil's status is 143);
//! - F, `sleep 1001` in the app's group: ignores TERM, dies of USR1 (the forward's witness);
//! - E, `sleep 1002` in a session of its own: ignores TERM, killed at the deadline;
//! - O, `sleep 0.3`, orphaned at once: must be reaped.
//!
//! Checked in every run: no panic or abort; an exit before the test's SIGTERM only as a start-up
//! failure (2, or 126/127 for a failed exec) or after the app itself died, with nothing of it
//! left; no orphan left a zombie; SIGUSR1 reaches F; after SIGTERM vigil is gone within the
//! bound, with the app's status (143; 137 if the fault kept the app from its SIGTERM) and nothing
//! left behind. A fault injected always into the event loop's own waits (`rt_sigtimedwait`,
//! `wait4`) may end vigil early, but only with status 2, the app's tree gone, within the drain
//! timeout plus the bound.
//!
//! `when=N` counts per thread and per process, as strace does: N is half the most calls of that
//! syscall any one of vigil's threads made in an uninjected run (the `baseline`), so it lands
//! mid-life. CI runs a sample: each syscall once per mode, the errno and the `when` rotating with
//! the syscall's place in the table (`FAULTS_SEED=n` turns the rotation). `FAULTS_FULL=1` runs
//! every cell; `FAULTS_ONLY=read,write` only those syscalls; `FAULTS_REPORT=path` writes the
//! matrix as markdown; `FAULTS_JOBS` runs (default 2) at once.

use crate::fault_run::{Outcome, Probe, baseline, binary, run};
use crate::faults::{Fault, When, have_strace};
use crate::util::{Mode, can_unshare};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

/// A system call vigil makes, and what the kernel can answer it where vigil makes it.
struct Call {
    name: &'static str,
    errnos: &'static [&'static str],
    /// The event loop's own wait: an injection here every time may end vigil (status 2).
    event_loop: bool,
    /// The probe kinds whose runs make this call (all three when empty).
    probes: &'static [Probe],
}

const fn call(name: &'static str, errnos: &'static [&'static str]) -> Call {
    Call {
        name,
        errnos,
        event_loop: false,
        probes: &[],
    }
}

const fn event_loop(name: &'static str, errnos: &'static [&'static str]) -> Call {
    Call {
        name,
        errnos,
        event_loop: true,
        probes: &[],
    }
}

const fn probing(
    name: &'static str,
    errnos: &'static [&'static str],
    probes: &'static [Probe],
) -> Call {
    Call {
        name,
        errnos,
        event_loop: false,
        probes,
    }
}

/// Errnos that only ever come once in a while, never on every call: EINTR needs a signal
/// handler to run during each call (vigil blocks the signals it handles), and EBUSY from dup2 is
/// a race with a concurrent open (musl's dup2 retries it itself). Injected once and on the Nth
/// call, not always: a retry is the right answer, and "always" would be an endless stream of
/// signals or a race that never ends.
const TRANSIENT: &[&str] = &["EINTR", "EBUSY"];

/// Every system call seen in vigil's threads and in its children before their exec (the
/// `inventory` test keeps this list and the calls vigil makes the same), with the errnos the
/// kernel can answer that call with.
const CALLS: &[Call] = &[
    // The event loop.
    event_loop("rt_sigtimedwait", &["EINTR", "EAGAIN", "EINVAL"]),
    event_loop("wait4", &["ECHILD", "EINTR", "EINVAL"]),
    call("kill", &["ESRCH", "EPERM"]),
    call("rt_sigprocmask", &["EINVAL"]),
    call("rt_sigaction", &["EINVAL"]),
    // Processes and threads.
    call("fork", &["EAGAIN", "ENOMEM"]),
    call("clone", &["EAGAIN", "ENOMEM"]),
    call("execve", &["ENOENT", "EACCES", "ENOMEM", "EIO"]),
    call("setpgid", &["EPERM", "EACCES"]),
    call("prctl", &["EINVAL", "EPERM"]),
    call("sigaltstack", &["ENOMEM", "EPERM"]),
    call("clock_nanosleep", &["EINTR"]),
    // Memory.
    call("mmap", &["ENOMEM", "EAGAIN"]),
    call("munmap", &["ENOMEM"]),
    call("mprotect", &["ENOMEM", "EACCES"]),
    call("brk", &["ENOMEM"]),
    // Files and descriptors.
    call("open", &["EMFILE", "ENFILE", "EACCES", "ENOENT", "EINTR"]),
    call("read", &["EIO", "EINTR", "EAGAIN"]),
    call("write", &["EPIPE", "EIO", "EAGAIN", "ENOSPC", "EINTR"]),
    call("close", &["EIO", "EINTR"]),
    call("fstat", &["ENOMEM", "EIO"]),
    call("fcntl", &["EMFILE", "EINVAL"]),
    call("ioctl", &["ENOTTY", "EIO"]),
    call("getdents64", &["ENOENT", "EIO"]),
    call("stat", &["EACCES", "ENOENT", "ENOMEM"]),
    call("access", &["EACCES", "ENOENT"]),
    call("poll", &["EINTR", "ENOMEM"]),
    call("pipe2", &["EMFILE", "ENFILE"]),
    probing("dup2", &["EBUSY", "EINTR", "EMFILE"], &[Probe::Exec]),
    // Sockets.
    call("socket", &["EMFILE", "ENFILE", "EACCES", "ENOBUFS"]),
    call("bind", &["EADDRINUSE", "EACCES"]),
    call("listen", &["EADDRINUSE"]),
    call("setsockopt", &["ENOMEM", "EINVAL"]),
    call("getsockname", &["ENOBUFS"]),
    call(
        "accept4",
        &[
            "EMFILE",
            "ENFILE",
            "ECONNABORTED",
            "EAGAIN",
            "EINTR",
            "ENOBUFS",
            "EPERM",
        ],
    ),
    probing(
        "connect",
        &[
            "ECONNREFUSED",
            "ETIMEDOUT",
            "ENETUNREACH",
            "EINTR",
            "EAGAIN",
        ],
        &[Probe::Tcp, Probe::Http],
    ),
    call("sendto", &["EPIPE", "ECONNRESET", "EAGAIN", "EINTR"]),
    call("recvfrom", &["ECONNRESET", "EAGAIN", "EINTR", "ENOMEM"]),
    // The drop to --user.
    call("setgroups", &["EPERM", "EINVAL"]),
    call("setgid", &["EPERM", "EINVAL"]),
    call("setuid", &["EPERM", "EAGAIN"]),
    call("fchown", &["EPERM", "EROFS"]),
];

/// Calls that have no error to give (or none vigil's code could see), so nothing is injected.
const CANNOT_FAIL: &[(&str, &str)] = &[
    (
        "futex",
        "an injected error skips the call, and for FUTEX_WAKE that is a lost wake-up the kernel \
         never causes (a wake on a valid word cannot fail): the waiter sleeps for ever; waits \
         answer EINTR, EAGAIN and ETIMEDOUT spuriously, which musl and std retry",
    ),
    ("getpid", "always succeeds"),
    ("gettid", "always succeeds"),
    ("getuid", "always succeeds"),
    ("geteuid", "always succeeds"),
    ("getgid", "always succeeds"),
    ("getegid", "always succeeds"),
    ("set_tid_address", "always succeeds"),
    (
        "arch_prctl",
        "musl's start, before main: a failure is no program at all",
    ),
    ("exit", "does not return"),
    ("exit_group", "does not return"),
    ("rt_sigreturn", "does not return to a caller"),
];

/// Per syscall: the most calls in one thread, and the probe kind of that run.
type Baseline = BTreeMap<String, (usize, Probe)>;

/// The `when` values of a cell: once, the Nth (when the call is made more than once), always.
fn whens(most: usize) -> Vec<When> {
    let n = (most / 2).max(1) as u32;
    let mut w = vec![When::Nth(1)];
    if n > 1 {
        w.push(When::Nth(n));
    }
    w.push(When::From(1));
    w
}

/// A planned run.
#[derive(Clone, Debug)]
struct Case {
    mode: Mode,
    call: usize,
    errno: &'static str,
    when: When,
    probe: Probe,
}

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The cells of a syscall: each errno with each `when`, but a transient errno never always.
fn cells(c: &Call, most: &Baseline) -> Vec<(&'static str, When)> {
    let w = whens(most.get(c.name).map_or(1, |m| m.0));
    c.errnos
        .iter()
        .flat_map(|&errno| w.iter().map(move |&when| (errno, when)))
        .filter(|(errno, when)| !(TRANSIENT.contains(errno) && matches!(when, When::From(_))))
        .collect()
}

/// Every cell in both modes (FAULTS_FULL=1), or the sample: each syscall once per mode, the cell
/// rotating with the syscall's place in the table and the seed, plus the event loop's "always".
fn plan(most: &Baseline) -> Vec<Case> {
    let full = std::env::var("FAULTS_FULL").as_deref() == Ok("1");
    let seed = env_num("FAULTS_SEED", 0);
    let only = std::env::var("FAULTS_ONLY").unwrap_or_default();
    let all = [Probe::Tcp, Probe::Http, Probe::Exec];
    let mut cases = Vec::new();
    for (i, c) in CALLS.iter().enumerate() {
        if !only.is_empty() && !only.split(',').any(|n| n == c.name) {
            continue;
        }
        let cells = cells(c, most);
        let kinds = if c.probes.is_empty() {
            &all[..]
        } else {
            c.probes
        };
        for mode in [Mode::Pid1, Mode::Subreaper] {
            for (k, &(errno, when)) in cells.iter().enumerate() {
                let sampled = (i + seed) % cells.len() == k
                    || (c.event_loop && matches!(when, When::From(_)));
                // The Nth call comes in the kind of run that made it N times or more.
                let probe = match (when, most.get(c.name)) {
                    (When::Nth(n), Some(&(_, kind))) if n > 1 => kind,
                    _ => kinds[(i + k + seed) % kinds.len()],
                };
                if full || sampled {
                    cases.push(Case {
                        mode,
                        call: i,
                        errno,
                        when,
                        probe,
                    });
                }
            }
        }
    }
    cases
}

/// The matrix as markdown: a row per syscall and errno, a column per `when`, each cell "PID 1 /
/// subreaper".
fn report(results: &[(Case, Outcome)], most: &Baseline) -> String {
    let mut rows: BTreeMap<(usize, &str), BTreeMap<String, [String; 2]>> = BTreeMap::new();
    for (case, out) in results {
        let col = match case.when {
            When::Nth(1) => "when=1".to_string(),
            When::Nth(_) => "when=N".to_string(),
            When::From(_) => "when=1+".to_string(),
        };
        let cell = rows
            .entry((case.call, case.errno))
            .or_default()
            .entry(col)
            .or_default();
        cell[usize::from(case.mode == Mode::Subreaper)] = out.cell();
    }
    let mut md = String::from(
        "| syscall | N | errno | when=1 | when=N | when=1+ |\n|---|---|---|---|---|---|\n",
    );
    for ((call, errno), cols) in rows {
        let c = &CALLS[call];
        let n = (most.get(c.name).map_or(1, |m| m.0) / 2).max(1);
        let show = |k: &str| {
            cols.get(k)
                .map_or("".to_string(), |[a, b]| format!("{a} / {b}"))
        };
        md.push_str(&format!(
            "| {} | {n} | {errno} | {} | {} | {} |\n",
            c.name,
            show("when=1"),
            show("when=N"),
            show("when=1+")
        ));
    }
    md
}

/// The matrix runs its strace'd vigils two at a time for about 100 s: beside the rest of the
/// suite it loads a 2-core machine enough to push the timing tests past their bounds (seen in
/// CI dry runs while it ran). So it runs on its own, with `FAULTS=1`, as `.ci/run` does after
/// the suite; in a plain `cargo test` it says so and passes.
fn on_its_own(test: &str) -> bool {
    let on = std::env::var("FAULTS").as_deref() == Ok("1");
    if !on {
        eprintln!(
            "NOTE fault_matrix::{test}: runs on its own: FAULTS=1 cargo test --test integration fault_matrix::"
        );
    }
    on
}

/// Every syscall vigil makes is in the matrix, or listed as one that cannot fail.
#[test]
fn inventory() {
    if !on_its_own("inventory")
        || !have_strace()
        || !crate::util::require(can_unshare(), "needs root and unshare")
    {
        return;
    }
    let Some(bin) = binary() else { return };
    let most = baseline(bin);
    let listed: BTreeSet<&str> = CALLS
        .iter()
        .map(|c| c.name)
        .chain(CANNOT_FAIL.iter().map(|(n, _)| *n))
        .collect();
    let missing: Vec<&String> = most
        .keys()
        .filter(|n| !listed.contains(n.as_str()))
        .collect();
    let stale: Vec<&str> = CALLS
        .iter()
        .map(|c| c.name)
        .filter(|n| !most.contains_key(*n))
        .collect();
    let counts: BTreeMap<&str, usize> = most.iter().map(|(n, m)| (n.as_str(), m.0)).collect();
    eprintln!("FIGURE inventory: {} syscalls: {counts:?}", most.len());
    assert!(
        missing.is_empty(),
        "vigil makes system calls the fault matrix does not inject: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "the fault matrix injects system calls vigil no longer makes: {stale:?}"
    );
}

/// The matrix: see the module comment.
#[test]
fn matrix() {
    if !on_its_own("matrix")
        || !have_strace()
        || !crate::util::require(can_unshare(), "needs root and unshare")
    {
        return;
    }
    let Some(bin) = binary() else { return };
    let started = Instant::now();
    let most = baseline(bin);
    let cases = plan(&most);
    let jobs = env_num("FAULTS_JOBS", 2).max(1);
    let queue = Mutex::new(cases.clone().into_iter().enumerate().collect::<Vec<_>>());
    let results: Mutex<Vec<(Case, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let Some((_, case)) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    let c = &CALLS[case.call];
                    let fault = Fault::new(c.name, case.errno, case.when);
                    let out = run(bin, case.mode, &fault, case.probe, c.event_loop);
                    eprintln!(
                        "FAULT {:?} {fault} probe={:?}: {} code={:?} drain={:?} injected={} calls={} said={:?} {}",
                        case.mode,
                        case.probe,
                        out.cell(),
                        out.code,
                        out.drain.map(|d| (d * 1000.0).round() / 1000.0),
                        out.injected,
                        out.calls,
                        out.said,
                        out.broken.join("; ")
                    );
                    if !out.detail.is_empty() {
                        eprintln!("{}", out.detail);
                    }
                    results.lock().expect("results").push((case, out));
                }
            });
        }
    });
    let results = results.into_inner().expect("results");
    let md = report(&results, &most);
    if let Ok(path) = std::env::var("FAULTS_REPORT") {
        std::fs::write(&path, &md).expect("write the report");
    }
    let broken: Vec<String> = results
        .iter()
        .filter(|(_, o)| !o.broken.is_empty())
        .map(|(c, o)| {
            let call = &CALLS[c.call];
            format!(
                "{:?} {}:{}:when={}: {}",
                c.mode,
                call.name,
                c.errno,
                c.when,
                o.broken.join("; ")
            )
        })
        .collect();
    let drains: Vec<f64> = results
        .iter()
        .filter(|(_, o)| o.known.is_none())
        .filter_map(|(_, o)| o.drain)
        .collect();
    let worst = drains.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "FIGURE fault_matrix: {} runs ({} cells of {} syscalls) in {:.0} s, {} jobs; drain after SIGTERM at most {worst:.3} s; {} broken",
        results.len(),
        results.len() / 2,
        CALLS.len(),
        started.elapsed().as_secs_f64(),
        jobs,
        broken.len()
    );
    assert!(broken.is_empty(), "{}\n\n{md}", broken.join("\n"));
}
