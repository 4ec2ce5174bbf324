//! The only unsafe code in vigil: system calls nix cannot make for us.
//!
//! - `waitpid` returning the raw status: nix turns the status into a `Signal` and fails on
//!   real-time signals, after the child is already reaped, so its status would be lost.
//! - `rt_sigprocmask`, `rt_sigtimedwait` and `kill` with the kernel's signal numbers and its
//!   64-bit mask: nix's `Signal` has no real-time signals, and the C libraries refuse 32 to 34
//!   in a `sigset_t` (musl's `sigaddset`) or strip them, so these go to the kernel directly.
//! - fork and exec of the app, the hooks and the exec probes (`spawn`): std's `Command` reports
//!   a failed fork and a failed exec as the same error, panics when reading the child's report
//!   fails, and answers a failed exec by waiting for the child itself, which on the checker's
//!   thread races the supervisor's `waitpid(-1)`.
//! - `prctl(PR_CAPBSET_DROP)`: nix wraps other prctls, not this one.
#![allow(unsafe_code)]

use nix::fcntl::OFlag;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

/// One `waitpid(-1, WNOHANG)`. `Ok(Some((pid, status)))` for a reaped child, `Ok(None)` when
/// children exist but none has exited, `Err(ECHILD)` when there are no children at all.
pub fn wait_any_nohang() -> io::Result<Option<(i32, i32)>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid, writable c_int for the duration of the call; waitpid has
        // no other memory preconditions.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return Ok(None),
            p if p > 0 => return Ok(Some((p, status))),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// The kernel's signal set is 64 bits on every Linux architecture; `rt_*` calls take its size.
const MASK_SIZE: usize = std::mem::size_of::<u64>();

// `rt_sigtimedwait` takes the kernel's 64-bit timespec, which is libc's only on 64-bit targets.
const _: () = assert!(std::mem::size_of::<libc::timespec>() == 16);

/// Adds `mask` (bit n-1 for signal n) to this thread's blocked signals.
pub fn block_signals(mask: u64) -> Result<(), nix::Error> {
    // SAFETY: `mask` is a valid u64 for the duration of the call and MASK_SIZE is its size, the
    // kernel's sigset size; a null old-set pointer is allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            MASK_SIZE,
        )
    };
    nix::Error::result(ret).map(drop)
}

/// What `rt_sigtimedwait` says about a signal it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    /// `si_code`: SI_USER, SI_QUEUE, SI_TKILL for a process's kill, SI_KERNEL, ...
    pub code: i32,
    /// `si_pid`, as seen in vigil's pid namespace (0 for a sender outside it); only meaningful
    /// for SI_USER, SI_QUEUE and SI_TKILL.
    pub pid: i32,
}

/// One `rt_sigtimedwait` on `mask` (already blocked): the signal taken from the pending set,
/// `Ok(None)` when `timeout` passed first or a stop/continue or tracer interrupted the wait, and
/// an error only for what valid arguments never cause. `timeout: None` waits for as long as it
/// takes.
pub fn sigtimedwait(mask: u64, timeout: Option<Duration>) -> io::Result<Option<SigInfo>> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i32::MAX.into()),
        // Below 1e9 by construction, so it fits every c_long.
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: an all-zero siginfo_t is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `mask`, `info` and `ts` are valid for the duration of the call, `info` writable
    // and of the kernel's siginfo size (128 bytes); a null timeout means no timeout.
    let sig = unsafe {
        libc::syscall(
            libc::SYS_rt_sigtimedwait,
            &mask as *const u64,
            &mut info as *mut libc::siginfo_t,
            ts_ptr,
            MASK_SIZE,
        )
    };
    if sig > 0 {
        return Ok(Some(SigInfo {
            signo: sig as i32,
            code: info.si_code,
            // SAFETY: the kernel filled `info`; si_pid is at the same offset for every si_code
            // that has a sender (and reads as whatever the kernel wrote, or 0, for the rest).
            pid: unsafe { info.si_pid() },
        }));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Ok(None),
        _ => Err(err),
    }
}

/// Drops `cap` from this thread's capability bounding set: EPERM without CAP_SETPCAP, EINVAL
/// past the kernel's last capability.
pub fn capbset_drop(cap: u32) -> nix::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes one integer argument and reads or writes no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    nix::errno::Errno::result(r).map(drop)
}

/// `kill(pid, sig)` with the kernel's numbers: `pid` negative for a process group, -1 for
/// everything; `sig` may be a real-time signal.
pub fn kill(pid: i32, sig: i32) -> Result<(), nix::Error> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let ret = unsafe { libc::kill(pid, sig) };
    nix::Error::result(ret).map(drop)
}

/// Sends `sig` (any number) to the calling thread, as the kernel numbers it.
#[cfg(test)]
pub fn raise(sig: i32) {
    // SAFETY: getpid, gettid and tgkill take integers and touch no memory of ours.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig);
    }
}

/// The kernel's `struct sigaction` where it has `sa_restorer` (x86_64, aarch64).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Sets `sig` to SIG_DFL, 32 to 34 included (the C libraries refuse those; an inherited
/// SIG_IGN would otherwise survive exec).
///
/// # Safety
/// Only between fork and exec or on a thread that owns signal handling: it is one system call.
unsafe fn default_action(sig: i32) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let act = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: `act` is a valid kernel sigaction for the duration of the call, a null old
        // action is allowed, and MASK_SIZE is the kernel's sigset size.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &act as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                MASK_SIZE,
            );
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    // SAFETY: signal(2) with SIG_DFL installs no handler; a reserved signal answers EINVAL.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// How a child is set up between fork and exec.
pub struct Child<'a> {
    /// The program, looked up in PATH as a shell would, and its arguments.
    pub argv: &'a [OsString],
    /// `KEY=VALUE` entries, when the environment is not vigil's own.
    pub env: Option<Vec<OsString>>,
    /// Where the child's stdout goes instead of vigil's own (the seed's pipe).
    pub stdout: Option<RawFd>,
    /// stdin, stdout and stderr on /dev/null (the exec probes) rather than vigil's own.
    pub null_stdio: bool,
    /// Make the child's group the foreground group of the terminal on stdin.
    pub take_terminal: bool,
}

/// Where a child that did not exec failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// vigil's own part: a pipe, the fork, the child's process group or stdio.
    Setup,
    /// The exec itself.
    Exec,
}

/// A spawn that did not end in an exec. `pid` is the child, when one was forked: it exits (127
/// or 126) right after its report, and is the caller's to collect.
#[derive(Debug)]
pub struct SpawnError {
    pub stage: Stage,
    pub error: io::Error,
    pub pid: Option<i32>,
}

fn setup_error(error: impl Into<io::Error>) -> SpawnError {
    SpawnError {
        stage: Stage::Setup,
        error: error.into(),
        pid: None,
    }
}

fn cstrings(items: &[OsString]) -> Result<Vec<CString>, SpawnError> {
    items
        .iter()
        .map(|s| CString::new(s.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| setup_error(io::Error::from_raw_os_error(libc::EINVAL)))
}

/// A null-terminated array of pointers into `strings`, which must outlive it.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Forks and execs `child` in a process group of its own, with an empty signal mask and every
/// catchable signal at its default (vigil blocks every signal it can, and Rust's runtime
/// ignores SIGPIPE: both would pass through exec). A child that cannot exec writes where it
/// failed and its errno to a close-on-exec pipe and exits, 127 or 126 as a shell would; nothing
/// here waits for it. Everything the child needs is built before the fork, so between fork and
/// exec it only makes system calls. `forked` gets the pid as soon as there is one, before the
/// wait for the child's report (a lock taken for the fork can be let go there).
pub fn spawn(child: &Child, forked: impl FnOnce(i32)) -> Result<i32, SpawnError> {
    let argv = cstrings(child.argv)?;
    if argv.is_empty() {
        return Err(SpawnError {
            stage: Stage::Exec,
            error: io::Error::from_raw_os_error(libc::ENOENT),
            pid: None,
        });
    }
    let argv_ptrs = pointers(&argv);
    let env = child.env.as_deref().map(cstrings).transpose()?;
    let env_ptrs = env.as_deref().map(pointers);
    let null: Option<OwnedFd> = child
        .null_stdio
        .then(|| {
            let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC;
            nix::fcntl::open("/dev/null", flags, nix::sys::stat::Mode::empty())
        })
        .transpose()
        .map_err(setup_error)?;
    let (report_r, report_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(setup_error)?;
    let setup = InChild {
        argv: argv_ptrs.as_ptr(),
        env: env_ptrs.as_ref().map(|e| e.as_ptr()),
        null: null.as_ref().map(|fd| fd.as_raw_fd()),
        stdout: child.stdout,
        take_terminal: child.take_terminal,
        report: report_w.as_raw_fd(),
    };
    // SAFETY: vigil has other threads, so the child may only make async-signal-safe calls until
    // it execs or exits: `in_child` makes nothing but system calls, on memory built above that
    // stays valid in the child's copy.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(setup_error(io::Error::last_os_error()));
    }
    if pid == 0 {
        in_child(&setup);
    }
    forked(pid);
    drop(report_w);
    match read_report(&report_r) {
        None => Ok(pid),
        Some((stage, errno)) => Err(SpawnError {
            stage,
            error: io::Error::from_raw_os_error(errno),
            pid: Some(pid),
        }),
    }
}

/// Collects `pid`, a child that failed to exec and is exiting: on the supervisor's thread only,
/// the one that reaps. A wait that fails leaves it to the reaper.
pub fn reap_failed(pid: i32) {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of each call.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// The child's report: nothing (EOF) when its exec succeeded. A read that fails cannot tell,
/// and counts as started: the child's exit status (127 or 126) still says what happened.
fn read_report(fd: &OwnedFd) -> Option<(Stage, i32)> {
    let mut buf = [0u8; 5];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(5) => {
                let stage = if buf[0] == 1 {
                    Stage::Setup
                } else {
                    Stage::Exec
                };
                let errno = i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]);
                return Some((stage, errno));
            }
            Err(nix::Error::EINTR) => {}
            _ => return None,
        }
    }
}

/// Raw pointers and fds for the child, all valid until `spawn` returns.
struct InChild {
    argv: *const *const libc::c_char,
    env: Option<*const *const libc::c_char>,
    null: Option<RawFd>,
    stdout: Option<RawFd>,
    take_terminal: bool,
    report: RawFd,
}

/// The child between fork and exec: system calls only, no allocation, no lock.
fn in_child(s: &InChild) -> ! {
    // SAFETY: every call below is async-signal-safe (setpgid, raw rt_sigprocmask and
    // rt_sigaction, signal, getpgrp, tcsetpgrp, dup2, execvp(e), write, _exit) and reads only
    // memory built before the fork. A failed terminal hand-off (no controlling terminal) is not
    // an error: the app runs without it. SIGTTOU would stop a background process calling
    // tcsetpgrp, so it is ignored around the call (tini does the same).
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            fail(s.report, Stage::Setup);
        }
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            MASK_SIZE,
        );
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                default_action(sig);
            }
        }
        if s.take_terminal {
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
        }
        let stdio = [0, 1, 2].map(|target| (s.null, target));
        let stdout = [(s.stdout, libc::STDOUT_FILENO)];
        for (from, to) in stdio.iter().chain(&stdout) {
            let Some(from) = *from else { continue };
            while libc::dup2(from, *to) < 0 {
                if *libc::__errno_location() != libc::EINTR {
                    fail(s.report, Stage::Setup);
                }
            }
        }
        match s.env {
            Some(env) => libc::execvpe(*s.argv, s.argv, env),
            None => libc::execvp(*s.argv, s.argv),
        };
        fail(s.report, Stage::Exec)
    }
}

/// Reports `stage` and errno to the parent and exits: 127 when nothing was found, 126 else.
fn fail(report: RawFd, stage: Stage) -> ! {
    // SAFETY: errno is this thread's; write(2) and _exit(2) are async-signal-safe and `msg`
    // lives on this stack.
    unsafe {
        let errno = *libc::__errno_location();
        let e = errno.to_ne_bytes();
        let tag = if stage == Stage::Setup { 1 } else { 2 };
        let msg = [tag, e[0], e[1], e[2], e[3]];
        libc::write(report, msg.as_ptr().cast(), msg.len());
        let not_found = stage == Stage::Exec && matches!(errno, libc::ENOENT | libc::ENOTDIR);
        libc::_exit(if not_found { 127 } else { 126 })
    }
}
