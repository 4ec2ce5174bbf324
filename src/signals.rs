//! Signals: the set vigil handles, one blocking wait on a signalfd, and signal-name parsing.
//!
//! Like catatonit (and unlike tini's one-second `sigtimedwait`), every handled signal is blocked
//! and read from a signalfd, polled with a timeout that is the next deadline or none at all, so
//! an idle vigil makes no wake-ups. The mask is set on the main thread before any other thread or
//! the app exists: threads inherit it, and std's `Command` gives the app an empty mask. Blocked
//! signals are queued even for PID 1, which the kernel otherwise spares from default actions.
//! Nothing is ever set to SIG_IGN, since the app would inherit that.

use crate::error::Error;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

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

/// The signalfd plus a wake-up socket other threads can write to.
pub struct Signals {
    fd: SignalFd,
    wake_rx: UnixStream,
    wake_tx: UnixStream,
}

/// A handle threads use to wake the supervisor loop.
#[derive(Debug)]
pub struct Waker(UnixStream);

impl Waker {
    pub fn wake(&self) {
        // A full socket already means "wake up"; nothing else can go wrong worth reporting.
        let _ = (&self.0).write(&[1]);
    }
}

impl Signals {
    /// Blocks the handled set on this thread and opens the signalfd. Call before any thread.
    pub fn block() -> Result<Signals, Error> {
        let set = handled();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|errno| {
            Error::Startup {
                op: "block signals",
                errno,
            }
        })?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|errno| Error::Startup {
                op: "create signalfd",
                errno,
            })?;
        let (wake_rx, wake_tx) = UnixStream::pair().map_err(|e| Error::Startup {
            op: "create wake-up socket",
            errno: io_errno(&e),
        })?;
        for s in [&wake_rx, &wake_tx] {
            s.set_nonblocking(true).map_err(|e| Error::Startup {
                op: "create wake-up socket",
                errno: io_errno(&e),
            })?;
        }
        Ok(Signals {
            fd,
            wake_rx,
            wake_tx,
        })
    }

    pub fn waker(&self) -> Option<Waker> {
        self.wake_tx.try_clone().ok().map(Waker)
    }

    /// Blocks until a signal arrives, a thread wakes us, or `deadline` passes; returns the
    /// signals read (possibly none). One `poll`, no periodic wake-ups.
    pub fn wait(&self, deadline: Option<Instant>) -> Vec<Signal> {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(at) => {
                // Round up so we never wake a hair early and spin.
                let left = at.saturating_duration_since(Instant::now());
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [
            PollFd::new(self.fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN),
        ];
        // EINTR cannot happen with everything blocked; after any return the loop looks at the
        // clock and the children again.
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        // On a poll error, look at both: reading a non-blocking fd costs one EAGAIN at worst.
        let polled = poll(&mut fds, timeout).is_ok();
        let (signal_ready, wake_ready) = (!polled || ready(&fds[0]), !polled || ready(&fds[1]));
        if wake_ready {
            let mut buf = [0u8; 64];
            while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        }
        let mut got = Vec::new();
        if signal_ready {
            while let Ok(Some(info)) = self.fd.read_signal() {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    got.push(sig);
                }
            }
        }
        got
    }
}

fn io_errno(e: &std::io::Error) -> nix::Error {
    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
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
