//! Signals: the set vigil handles, and one blocking wait for them that says who sent each.
//!
//! Every signal but SIGKILL and SIGSTOP is blocked and taken with `rt_sigtimedwait`, one system
//! call from the signal to vigil's next step, as in tini, but with a timeout that is the next
//! deadline or none at all (tini wakes every second), so an idle vigil makes no wake-ups. A
//! blocked signal is never acted on by default, so no catchable signal stops or kills vigil,
//! PID 1 or not; real faults still kill (the kernel unblocks a fault it raises). The mask is set
//! on the main thread before any other thread or the app exists: threads inherit it, and the
//! spawn gives the app an empty mask. Blocked signals are queued even for PID 1, which the kernel
//! otherwise spares from default actions. Nothing is ever set to SIG_IGN, since the app would
//! inherit that. Another thread wakes the loop by sending vigil a SIGCHLD: the loop's answer
//! to one (reap, then look at every deadline and the status again) is exactly a wake-up, and a
//! stray one costs a `waitpid` that finds nothing.
//!
//! The C libraries refuse to put 32 to 34 in a `sigset_t` (their threads use them), so the set
//! is the kernel's own 64-bit mask, handed to the raw system calls (`sys.rs`). Blocking those
//! three is safe because vigil changes ids (which broadcasts them to threads) only before it
//! starts any thread.

use crate::error::Error;
use crate::log;
use crate::sig::Sig;
use crate::sys;
use nix::unistd::getpid;
use serde_json::json;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Everything vigil blocks and takes: all but SIGKILL and SIGSTOP, which cannot be blocked.
/// SIGTTIN/SIGTTOU/SIGTSTP included: once the app owns the terminal, vigil is a background
/// process and a log write must not stop it (tini ignores them for the same reason; blocking
/// keeps the app's dispositions default).
fn handled() -> u64 {
    !(Sig::KILL.bit() | Sig::STOP.bit())
}

/// Blocks the handled set again on this thread: first thing on each thread vigil starts, and
/// on the main thread once those are started. Threads inherit vigil's mask, but the C libraries
/// unblock their own signals behind its back: glibc and musl in every thread they start (32,
/// 33), musl in the main thread when it starts its first (33, 34). One of those arriving then
/// would kill vigil (as a subreaper: PID 1 is spared default actions). A failure leaves the
/// thread as it was.
pub fn block_again() {
    let _ = sys::block_signals(handled());
}

/// A signal taken from the pending set, and whether another process sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub sig: Sig,
    /// Sent with kill(2), sigqueue or tgkill by a process other than vigil. False for what the
    /// kernel raised for vigil itself (`si_code` SI_KERNEL or a fault, timer or I/O code: a
    /// terminal's SIGTTOU or SIGHUP) and for what vigil's own actions sent it (SIGPIPE and
    /// SIGXFSZ from its own write come as SI_USER with vigil's pid): those are never forwarded.
    pub sent: bool,
}

impl Taken {
    fn of(info: sys::SigInfo, me: i32) -> Option<Taken> {
        let by_process = matches!(info.code, libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL);
        Some(Taken {
            sig: Sig::new(info.signo)?,
            sent: by_process && info.pid != me,
        })
    }
}

/// The blocked set, waited on by the supervisor loop.
pub struct Signals {
    set: u64,
    /// vigil's own pid, as `si_pid` shows it (1 as PID 1).
    me: i32,
    /// How the last `wait` failed, if it did.
    failure: Cell<Option<String>>,
}

/// A handle threads use to wake the supervisor loop.
#[derive(Debug, Clone, Copy)]
pub struct Waker;

impl Waker {
    pub fn wake(&self) {
        // Sending ourselves a signal cannot fail in a way worth reporting.
        let _ = sys::kill(getpid().as_raw(), Sig::CHLD.raw());
    }
}

impl Signals {
    /// Blocks the handled set on this thread. Call before any thread exists.
    pub fn block() -> Result<Signals, Error> {
        let set = handled();
        sys::block_signals(set).map_err(|errno| Error::Startup {
            op: "block signals",
            errno,
        })?;
        Ok(Signals {
            set,
            me: getpid().as_raw(),
            failure: Cell::new(None),
        })
    }

    pub fn waker(&self) -> Waker {
        Waker
    }

    /// Blocks until a signal arrives (a thread's wake-up is a SIGCHLD) or `deadline` passes;
    /// returns the signal taken, if any. One system call, no periodic wake-ups.
    pub fn wait(&self, deadline: Option<Instant>) -> Option<Taken> {
        // The kernel's timer never fires early and counts from after this `now`, so after a
        // timeout the deadline has passed and the loop does not spin.
        let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
        let got = sys::sigtimedwait(self.set, timeout);
        // Nothing taken before the deadline: a stop and continue, a tracer, or a kernel that
        // answers EAGAIN early. Once is nothing; on and on, the loop cannot wait (the supervisor
        // gives up, `stall.rs`), and the pause keeps it from spinning meanwhile.
        let early = matches!(got, Ok(None)) && deadline.is_none_or(|at| Instant::now() < at);
        self.failure.set(match &got {
            Err(e) => Some(e.to_string()),
            Ok(None) if early => Some("returned before its deadline".to_string()),
            _ => None,
        });
        if early {
            std::thread::sleep(Duration::from_millis(10));
        }
        let info = checked(got)?;
        Taken::of(info, self.me)
    }

    /// How the last [`Signals::wait`] failed: an error, or no signal before its deadline.
    pub fn failure(&self) -> Option<String> {
        self.failure.take()
    }

    /// Takes every signal pending right now without blocking, each at most once, lowest first.
    /// Usually one system call that finds nothing.
    pub fn pending(&self) -> Vec<Taken> {
        let mut left = self.set;
        let mut got = Vec::new();
        while let Some(info) = checked(sys::sigtimedwait(left, Some(Duration::ZERO))) {
            let Some(taken) = Taken::of(info, self.me) else {
                break;
            };
            left &= !taken.sig.bit();
            got.push(taken);
        }
        got
    }
}

/// A wait's result; an error valid arguments never cause is logged once and slowed to one
/// try per 10 ms, so even then the loop keeps reaping and meeting deadlines without spinning.
fn checked<T>(got: std::io::Result<Option<T>>) -> Option<T> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static SAID: AtomicBool = AtomicBool::new(false);
    got.unwrap_or_else(|e| {
        if !SAID.swap(true, Ordering::Relaxed) {
            log::error(
                "waiting for signals failed",
                &[("error", json!(e.to_string()))],
            );
        }
        std::thread::sleep(Duration::from_millis(10));
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(n: i32) -> Sig {
        Sig::new(n).unwrap()
    }

    /// Signals raised on this test thread only (the mask is per thread): pending ones come out
    /// lowest first, each once, real-time ones included, and a passed deadline does not block.
    /// `raise` is this process signalling itself: never `sent`.
    #[test]
    fn pending_and_wait() {
        let s = Signals::block().expect("block");
        assert!(s.pending().is_empty());
        for n in [12, 10, 10, 1, 64, 34, 34] {
            sys::raise(n);
        }
        let got: Vec<Sig> = s.pending().into_iter().map(|t| t.sig).collect();
        assert_eq!(got, [sig(1), sig(10), sig(12), sig(34), sig(64)]);
        // A queued real-time signal comes once per send: the second 34 is still there.
        assert_eq!(
            s.pending().into_iter().map(|t| t.sig).collect::<Vec<_>>(),
            [sig(34)]
        );
        assert!(s.pending().is_empty());
        assert_eq!(s.wait(Some(Instant::now())), None);
        sys::raise(15);
        assert_eq!(
            s.wait(None),
            Some(Taken {
                sig: Sig::TERM,
                sent: false
            })
        );
        let t0 = Instant::now();
        assert_eq!(s.wait(Some(t0 + Duration::from_millis(30))), None);
        assert!(t0.elapsed() >= Duration::from_millis(30), "woke early");
    }

    #[test]
    fn who_sent_it() {
        let info = |code, pid| sys::SigInfo {
            signo: 13,
            code,
            pid,
        };
        let me = 1;
        let sent = |code, pid| Taken::of(info(code, pid), me).map(|t| t.sent);
        assert_eq!(sent(libc::SI_USER, 42), Some(true), "kill(2)");
        assert_eq!(
            sent(libc::SI_USER, 0),
            Some(true),
            "kill(2) from outside the namespace"
        );
        assert_eq!(sent(libc::SI_QUEUE, 42), Some(true), "sigqueue");
        assert_eq!(sent(libc::SI_TKILL, 42), Some(true), "tgkill");
        assert_eq!(
            sent(libc::SI_USER, me),
            Some(false),
            "SIGPIPE from vigil's own write"
        );
        assert_eq!(
            sent(libc::SI_KERNEL, 0),
            Some(false),
            "a terminal's SIGTTOU"
        );
        assert_eq!(
            sent(1, 42),
            Some(false),
            "a kernel code (POLL_IN, CLD_EXITED, ...)"
        );
        assert_eq!(sent(-2, 0), Some(false), "SI_TIMER");
        assert_eq!(
            Taken::of(
                sys::SigInfo {
                    signo: 0,
                    code: 0,
                    pid: 2
                },
                me
            ),
            None
        );
    }

    #[test]
    fn everything_catchable_is_handled() {
        let set = handled();
        for n in 1..=64 {
            let blocked = set & sig(n).bit() != 0;
            assert_eq!(blocked, n != 9 && n != 19, "signal {n}");
        }
    }
}
