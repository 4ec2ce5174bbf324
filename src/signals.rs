//! Signals: the set vigil handles, one blocking wait for them, and signal-name parsing.
//!
//! Every handled signal is blocked and taken with `sigtimedwait`, one system call from the
//! signal to vigil's next step, as in tini, but with a timeout that is the next deadline or none
//! at all (tini wakes every second), so an idle vigil makes no wake-ups. The mask is set on the
//! main thread before any other thread or the app exists: threads inherit it, and the spawn
//! gives the app an empty mask. Blocked signals are queued even for PID 1, which the kernel
//! otherwise spares from default actions. Nothing is ever set to SIG_IGN, since the app would
//! inherit that. Another thread wakes the loop by sending vigil a SIGCHLD: the loop's answer
//! to one (reap, then look at every deadline and the status again) is exactly a wake-up, and a
//! stray one costs a `waitpid` that finds nothing.

use crate::error::Error;
use crate::log;
use crate::sys;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::unistd::getpid;
use serde_json::json;
use std::time::{Duration, Instant};

/// Passed on to the app's process group as they come (contract, "What vigil does" 5).
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGPWR,
];

/// Everything vigil blocks and reads. SIGTTIN/SIGTTOU are only blocked: once the app owns the
/// terminal, vigil is a background process and a log write must not stop it (tini ignores
/// them for the same reason; blocking keeps the app's dispositions default).
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGCHLD,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        set.add(s);
    }
    set
}

/// The blocked set, waited on by the supervisor loop.
pub struct Signals {
    set: SigSet,
}

/// A handle threads use to wake the supervisor loop.
#[derive(Debug, Clone, Copy)]
pub struct Waker;

impl Waker {
    pub fn wake(&self) {
        // Sending ourselves a signal cannot fail in a way worth reporting.
        let _ = kill(getpid(), Signal::SIGCHLD);
    }
}

impl Signals {
    /// Blocks the handled set on this thread. Call before any thread exists.
    pub fn block() -> Result<Signals, Error> {
        let set = handled();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|errno| {
            Error::Startup {
                op: "block signals",
                errno,
            }
        })?;
        Ok(Signals { set })
    }

    pub fn waker(&self) -> Waker {
        Waker
    }

    /// Blocks until a signal arrives (a thread's wake-up is a SIGCHLD) or `deadline` passes;
    /// returns the signal taken, if any. One system call, no periodic wake-ups.
    pub fn wait(&self, deadline: Option<Instant>) -> Option<Signal> {
        // The kernel's timer never fires early and counts from after this `now`, so after a
        // timeout the deadline has passed and the loop does not spin.
        let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
        let n = checked(sys::sigtimedwait(self.set.as_ref(), timeout))?;
        Signal::try_from(n).ok()
    }

    /// Takes every signal pending right now without blocking, each at most once, lowest first.
    /// Usually one system call that finds nothing.
    pub fn pending(&self) -> Vec<Signal> {
        let mut left = self.set;
        let mut got = Vec::new();
        while let Some(n) = checked(sys::sigtimedwait(left.as_ref(), Some(Duration::ZERO))) {
            let Ok(sig) = Signal::try_from(n) else { break };
            left.remove(sig);
            got.push(sig);
        }
        got
    }
}

/// A wait's result; an error valid arguments never cause is logged once and slowed to one
/// try per 10 ms, so even then the loop keeps reaping and meeting deadlines without spinning.
fn checked(got: std::io::Result<Option<i32>>) -> Option<i32> {
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

/// `TERM`, `SIGTERM`, `term` or `15`. Signal 0 is not a signal.
pub fn parse(s: &str) -> Result<Signal, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return match Signal::try_from(n) {
            Ok(sig) => Ok(sig),
            Err(_) => Err("not a signal number".into()),
        };
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| "unknown signal name (e.g. TERM, QUIT, SIGINT, 3)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse("SIGQUIT"), Ok(Signal::SIGQUIT));
        assert_eq!(parse("quit"), Ok(Signal::SIGQUIT));
        assert_eq!(parse("sigusr1"), Ok(Signal::SIGUSR1));
        assert_eq!(parse("3"), Ok(Signal::SIGQUIT));
        assert_eq!(parse("15"), Ok(Signal::SIGTERM));
        assert_eq!(parse("WINCH"), Ok(Signal::SIGWINCH));
        for bad in ["0", "65", "-1", "FOO", "SIG", "", "SIGSIGTERM", "TERM2"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for n in 1..=31 {
            assert!(parse(&n.to_string()).is_ok(), "{n}");
        }
    }

    /// Signals raised on this test thread only (the mask is per thread): pending ones come out
    /// lowest first, each once, and a passed deadline does not block.
    #[test]
    fn pending_and_wait() {
        use nix::sys::signal::raise;
        let s = Signals::block().expect("block");
        assert!(s.pending().is_empty());
        for sig in [
            Signal::SIGUSR2,
            Signal::SIGUSR1,
            Signal::SIGUSR1,
            Signal::SIGHUP,
        ] {
            raise(sig).expect("raise");
        }
        assert_eq!(
            s.pending(),
            [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2]
        );
        assert!(s.pending().is_empty());
        assert_eq!(s.wait(Some(Instant::now())), None);
        raise(Signal::SIGTERM).expect("raise");
        assert_eq!(s.wait(None), Some(Signal::SIGTERM));
        let t0 = Instant::now();
        assert_eq!(s.wait(Some(t0 + Duration::from_millis(30))), None);
        assert!(t0.elapsed() >= Duration::from_millis(30), "woke early");
    }

    #[test]
    fn every_forwarded_signal_is_handled() {
        let set = handled();
        for s in FORWARDED {
            assert!(set.contains(s));
        }
        assert!(set.contains(Signal::SIGCHLD));
        assert!(!set.contains(Signal::SIGKILL));
        assert!(!set.contains(Signal::SIGPIPE));
    }
}
