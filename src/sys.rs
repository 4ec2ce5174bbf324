//! The only unsafe code in vigil: two libc calls nix cannot make for us.
//!
//! - `waitpid` returning the raw status: nix turns the status into a `Signal` and fails on
//!   real-time signals, after the child is already reaped, so its status would be lost.
//! - the app's signal reset and terminal hand-off, between fork and exec.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

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
