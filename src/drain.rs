//! The drain as pure deadline logic: given what happened and the time, what is due.
//!
//! No clocks are read and no signals sent here; the supervisor feeds in events with an `Instant`
//! and carries out the returned actions. Tests drive it with made-up instants.
//!
//! Timeline of a drain (contract, "What vigil does" 6):
//! first SIGTERM/SIGINT at t0 -> readiness fails; at t0 + delay the signal goes on to the app's
//! group; at t0 + timeout whatever is left gets SIGKILL; by t0 + timeout + `REAP_GRACE` vigil is
//! gone. When the app exits on its own (7), leftovers get SIGTERM and the same timeout.

use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// After the SIGKILL, how long vigil waits to reap before exiting anyway: a killed process
/// dies only once it is scheduled, which on a loaded machine takes a while. Leaves 0.1 s of the
/// contract's 0.5 s for the exit itself.
pub const REAP_GRACE: Duration = Duration::from_millis(400);

/// What started a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Term,
    Int,
}

/// What the supervisor must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Log that the drain began (readiness fails from here on).
    Started(Trigger),
    /// Send this signal to the app's process group, as part of the drain.
    Forward(Signal),
    /// A second SIGINT moved the deadline to now.
    DeadlineMoved,
    /// The app exited on its own with processes left: SIGTERM them all.
    TermLeftovers,
    /// The deadline passed: SIGKILL everything that is left.
    KillAll,
    /// Stop waiting and exit.
    GiveUp,
}

#[derive(Debug, Clone)]
pub struct Drain {
    timeout: Duration,
    delay: Duration,
    stop_signal: Signal,
    started: Option<Instant>,
    /// A forward held back by the drain delay.
    forward_at: Option<(Instant, Signal)>,
    kill_at: Option<Instant>,
    killed_at: Option<Instant>,
}

impl Drain {
    pub fn new(timeout: Duration, delay: Duration, stop_signal: Signal) -> Drain {
        Drain {
            timeout,
            delay,
            stop_signal,
            started: None,
            forward_at: None,
            kill_at: None,
            killed_at: None,
        }
    }

    /// Whether a drain has started (readiness fails).
    #[cfg(test)]
    pub fn draining(&self) -> bool {
        self.started.is_some()
    }

    pub fn killed(&self) -> bool {
        self.killed_at.is_some()
    }

    /// A SIGTERM or SIGINT reached vigil.
    pub fn on_signal(&mut self, trigger: Trigger, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.killed_at.is_some() {
            return out;
        }
        let signal = match trigger {
            Trigger::Term => self.stop_signal,
            Trigger::Int => Signal::SIGINT,
        };
        if self.started.is_none() {
            self.started = Some(now);
            out.push(Action::Started(trigger));
            let deadline = now + self.timeout;
            self.kill_at = Some(self.kill_at.map_or(deadline, |k| k.min(deadline)));
            if self.delay.is_zero() {
                out.push(Action::Forward(signal));
            } else {
                self.forward_at = Some((now + self.delay, signal));
            }
        } else if trigger == Trigger::Int {
            // Ctrl-C twice: stop waiting.
            self.kill_at = Some(now);
            out.push(Action::DeadlineMoved);
        } else if self.forward_at.is_none() {
            // A repeated SIGTERM is passed on once the delay is over, and moves no deadline.
            out.push(Action::Forward(signal));
        }
        out.extend(self.due(now));
        out
    }

    /// The app was reaped. `children_left` says whether anything else still runs.
    /// Returns `GiveUp` when there is nothing left to wait for.
    pub fn on_app_exit(&mut self, now: Instant, children_left: bool) -> Vec<Action> {
        if !children_left {
            return vec![Action::GiveUp];
        }
        if self.kill_at.is_none() {
            self.kill_at = Some(now + self.timeout);
            return vec![Action::TermLeftovers];
        }
        Vec::new()
    }

    /// Everything due at `now`, in order.
    pub fn due(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some((at, sig)) = self.forward_at
            && now >= at
            && self.killed_at.is_none()
        {
            self.forward_at = None;
            out.push(Action::Forward(sig));
        }
        match (self.kill_at, self.killed_at) {
            (Some(at), None) if now >= at => {
                self.killed_at = Some(now);
                self.forward_at = None;
                out.push(Action::KillAll);
            }
            (_, Some(at)) if now >= at + REAP_GRACE => out.push(Action::GiveUp),
            _ => {}
        }
        out
    }

    /// When `due` next has something to do, or None: then only a signal can wake us.
    pub fn next_deadline(&self) -> Option<Instant> {
        let forward = self.forward_at.map(|(at, _)| at);
        let kill = match self.killed_at {
            Some(at) => Some(at + REAP_GRACE),
            None => self.kill_at,
        };
        match (forward, kill) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(timeout: u64, delay: u64) -> (Drain, Instant) {
        (
            Drain::new(ms(timeout), ms(delay), Signal::SIGTERM),
            Instant::now(),
        )
    }

    #[test]
    fn idle_has_no_deadline() {
        let (d, t0) = drain(9000, 0);
        assert_eq!(d.next_deadline(), None);
        assert!(!d.draining());
        let mut d = d;
        assert!(d.due(t0 + ms(100_000)).is_empty());
    }

    #[test]
    fn term_without_delay_forwards_at_once_and_kills_at_timeout() {
        let (mut d, t0) = drain(1000, 0);
        assert_eq!(
            d.on_signal(Trigger::Term, t0),
            [Started(Trigger::Term), Forward(Signal::SIGTERM)]
        );
        assert!(d.draining());
        assert_eq!(d.next_deadline(), Some(t0 + ms(1000)));
        assert!(
            d.due(t0 + ms(999)).is_empty(),
            "nothing is killed before the timeout"
        );
        assert_eq!(d.due(t0 + ms(1000)), [KillAll]);
        assert!(d.killed());
        assert_eq!(d.next_deadline(), Some(t0 + ms(1000) + REAP_GRACE));
        assert!(d.due(t0 + ms(1399)).is_empty());
        assert_eq!(d.due(t0 + ms(1400)), [GiveUp]);
        assert!(REAP_GRACE < ms(500));
    }

    #[test]
    fn delay_holds_the_forward_back() {
        let (mut d, t0) = drain(9000, 3000);
        assert_eq!(d.on_signal(Trigger::Term, t0), [Started(Trigger::Term)]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(3000)));
        assert!(d.due(t0 + ms(2999)).is_empty());
        // A repeated SIGTERM during the delay changes nothing.
        assert!(d.on_signal(Trigger::Term, t0 + ms(1000)).is_empty());
        assert_eq!(d.due(t0 + ms(3000)), [Forward(Signal::SIGTERM)]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(9000)));
        // After the delay a repeated SIGTERM is forwarded, and the deadline stays.
        assert_eq!(
            d.on_signal(Trigger::Term, t0 + ms(5000)),
            [Forward(Signal::SIGTERM)]
        );
        assert_eq!(d.next_deadline(), Some(t0 + ms(9000)));
    }

    #[test]
    fn stop_signal_replaces_term_but_not_int() {
        let t0 = Instant::now();
        let mut d = Drain::new(ms(9000), ms(0), Signal::SIGQUIT);
        assert_eq!(d.on_signal(Trigger::Term, t0)[1], Forward(Signal::SIGQUIT));
        let mut d = Drain::new(ms(9000), ms(0), Signal::SIGQUIT);
        assert_eq!(d.on_signal(Trigger::Int, t0)[1], Forward(Signal::SIGINT));
    }

    #[test]
    fn second_sigint_kills_now() {
        let (mut d, t0) = drain(9000, 2000);
        d.on_signal(Trigger::Int, t0);
        assert_eq!(
            d.on_signal(Trigger::Int, t0 + ms(100)),
            [DeadlineMoved, KillAll]
        );
        // The held-back forward is dropped once everything is killed.
        assert_eq!(d.next_deadline(), Some(t0 + ms(100) + REAP_GRACE));
        assert!(d.on_signal(Trigger::Term, t0 + ms(150)).is_empty());
    }

    #[test]
    fn sigint_after_sigterm_also_kills_now() {
        let (mut d, t0) = drain(9000, 0);
        d.on_signal(Trigger::Term, t0);
        assert_eq!(
            d.on_signal(Trigger::Int, t0 + ms(10)),
            [DeadlineMoved, KillAll]
        );
    }

    #[test]
    fn app_exit_with_nothing_left_ends_at_once() {
        let (mut d, t0) = drain(9000, 0);
        assert_eq!(d.on_app_exit(t0, false), [GiveUp]);
        d.on_signal(Trigger::Term, t0);
        assert_eq!(d.on_app_exit(t0, false), [GiveUp]);
    }

    #[test]
    fn app_exit_on_its_own_terms_leftovers_then_kills_at_timeout() {
        let (mut d, t0) = drain(2000, 0);
        assert_eq!(d.on_app_exit(t0, true), [TermLeftovers]);
        assert!(!d.draining());
        assert_eq!(d.next_deadline(), Some(t0 + ms(2000)));
        assert_eq!(d.due(t0 + ms(2000)), [KillAll]);
    }

    #[test]
    fn app_exit_during_drain_keeps_the_same_deadline() {
        let (mut d, t0) = drain(2000, 0);
        d.on_signal(Trigger::Term, t0);
        assert!(d.on_app_exit(t0 + ms(500), true).is_empty());
        assert_eq!(d.next_deadline(), Some(t0 + ms(2000)));
    }

    #[test]
    fn sigterm_after_app_exit_never_extends_the_deadline() {
        let (mut d, t0) = drain(2000, 0);
        d.on_app_exit(t0, true);
        d.on_signal(Trigger::Term, t0 + ms(1500));
        assert_eq!(d.next_deadline(), Some(t0 + ms(2000)));
    }

    #[test]
    fn zero_timeout_kills_at_once() {
        let (mut d, t0) = drain(0, 0);
        assert_eq!(
            d.on_signal(Trigger::Term, t0),
            [Started(Trigger::Term), Forward(Signal::SIGTERM), KillAll]
        );
    }
}
