//! The only unsafe code in vigil: four libc calls nix cannot make for us.
//!
//! - `waitpid` returning the raw status: nix turns the status into a `Signal` and fails on
//!   real-time signals, after the child is already reaped, so its status would be lost.
//! - `sigtimedwait`: nix has only `sigwait`, which cannot time out.
//! - the app's signal reset and terminal hand-off, between fork and exec.
//! - `prctl(PR_CAPBSET_DROP)`: nix wraps other prctls, not this one.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
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

/// One `sigtimedwait` on `set` (already blocked): the signal number taken from the pending set,
/// `Ok(None)` when `timeout` passed first or a stop/continue or tracer interrupted the wait, and
/// an error only for what valid arguments never cause. `timeout: None` waits for as long as it
/// takes.
pub fn sigtimedwait(set: &libc::sigset_t, timeout: Option<Duration>) -> io::Result<Option<i32>> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i32::MAX.into()),
        // Below 1e9 by construction, so it fits every c_long.
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `set` and `ts` are valid for the duration of the call; a null siginfo pointer is
    // allowed (the number is the return value) and a null timeout means no timeout.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), ts_ptr) };
    if sig > 0 {
        return Ok(Some(sig));
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

/// Gives the app a clean signal state, and the terminal when it is to have it.
///
/// Runs in the forked child, after std has put it in its own process group. vigil blocks the
/// signals it handles, and Rust's runtime ignores SIGPIPE; both would be inherited through exec
/// (std's posix_spawn path was seen passing vigil's mask on), so the mask is emptied and every
/// catchable signal set back to its default here. With `take_terminal`, the app's group becomes
/// the foreground group of the terminal on stdin; SIGTTOU would stop a background process
/// calling tcsetpgrp, so it is ignored around the call (tini does the same). A failed hand-off
/// (no controlling terminal, say) is not an error: the app just runs without it.
pub fn reset_child_signals(cmd: &mut Command, take_terminal: bool) {
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // functions may be called: sigemptyset, sigprocmask, signal(2), getpgrp and tcsetpgrp (an
    // ioctl) all are. It allocates nothing, takes no locks, and `set` lives on its own stack.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            for sig in 1..libc::SIGRTMAX() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    // Signals the C library reserves answer EINVAL; nothing to undo there.
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            if take_terminal {
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
            Ok(())
        });
    }
}
