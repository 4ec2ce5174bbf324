//! The drain as pure deadline logic: given what happened and the time, what is due.
//!
//! No clocks are read and no signals sent here; the supervisor feeds in events with an `Instant`
//! and carries out the returned actions. Tests drive it with made-up instants.
//!
//! Timeline of a drain (contract, "What vigil does" 6):
//! first drain signal at t0 -> readiness fails; at t0 + delay it goes on to the app (SIGTERM as
//! the stop signal's first step, any other as itself); each later stop step at its time after
//! that first forward while the app runs; at t0 + timeout whatever is left gets SIGKILL; by
//! t0 + timeout + `REAP_GRACE` vigil is gone. When the app exits, whatever it left gets SIGTERM
//! at once: during a drain with the drain's deadline, otherwise (7) with a deadline of its own.
//!
//! Under a peer's name (contract, "Drop-in names") there may be no drain deadline at all, as
//! with tini and dumb-init: the app then has as long as it takes, and only what it leaves behind
//! once it is gone gets the default drain timeout, so a leftover that ignores SIGTERM cannot hold the
//! container forever (the peers exit at once and leave it to the kernel).

use crate::cli::DEFAULT_DRAIN_TIMEOUT as DEFAULT_TIMEOUT;
use crate::sig::Sig;
use crate::sigflags::{SignalConfig, StopSignal};
use std::time::{Duration, Instant};

/// After the SIGKILL, how long vigil waits to reap before exiting anyway: a killed process
/// dies only once it is scheduled, which on a loaded machine takes a while. Leaves 0.1 s of the
/// contract's 0.5 s for the exit itself.
pub const REAP_GRACE: Duration = Duration::from_millis(400);

/// What the supervisor must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Log that the drain began with this signal (readiness fails from here on).
    Started(Sig),
    /// Send this signal to the app, then SIGCONT to the same target, as the drain's step
    /// `step` (1: the drain's forward or a repeat of it; 2 and on: `--stop-signal`'s later ones).
    Forward { sig: Sig, step: usize },
    /// A SIGINT during the drain moved the deadline to now.
    DeadlineMoved,
    /// The app exited with processes left: SIGTERM them all. `draining`: during a drain (else
    /// the app exited on its own).
    TermLeftovers { draining: bool },
    /// The deadline passed: SIGKILL everything that is left.
    KillAll,
    /// Stop waiting and exit.
    GiveUp,
}

#[derive(Debug, Clone)]
pub struct Drain {
    /// None: no deadline while the app runs.
    timeout: Option<Duration>,
    delay: Duration,
    stop: StopSignal,
    /// What goes out in place of a drain signal (`SignalConfig::drain_rewrite`).
    rewrite: Vec<(Sig, Option<Sig>)>,
    /// `SignalConfig::forward_only`: no SIGINT ends the drain.
    forward_only: bool,
    started: Option<Instant>,
    /// The drain's forward, held back by the delay: when, and the signal vigil was sent.
    forward_at: Option<(Instant, Sig)>,
    /// When the drain's first forward went out: the later stop steps count from there.
    forwarded_at: Option<Instant>,
    /// How many of the later stop steps have gone out.
    steps_sent: usize,
    app_gone: bool,
    kill_at: Option<Instant>,
    killed_at: Option<Instant>,
}

impl Drain {
    pub fn new(timeout: Option<Duration>, delay: Duration, signals: &SignalConfig) -> Drain {
        Drain {
            timeout,
            delay,
            stop: signals.stop_signal.clone(),
            rewrite: signals.drain_rewrite.clone(),
            forward_only: signals.forward_only,
            started: None,
            forward_at: None,
            forwarded_at: None,
            steps_sent: 0,
            app_gone: false,
            kill_at: None,
            killed_at: None,
        }
    }

    /// Whether a drain has started (readiness fails).
    pub fn draining(&self) -> bool {
        self.started.is_some()
    }

    /// When everything left will be SIGKILLed, if that is set and has not happened yet.
    pub fn kill_at(&self) -> Option<Instant> {
        self.kill_at.filter(|_| self.killed_at.is_none())
    }

    pub fn killed(&self) -> bool {
        self.killed_at.is_some()
    }

    /// A drain signal reached vigil (or a SIGINT during a drain).
    pub fn on_signal(&mut self, sig: Sig, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.killed_at.is_some() {
            return out;
        }
        if self.started.is_none() {
            self.started = Some(now);
            out.push(Action::Started(sig));
            if let Some(timeout) = self.timeout {
                let deadline = now + timeout;
                self.kill_at = Some(self.kill_at.map_or(deadline, |k| k.min(deadline)));
            }
            if self.delay.is_zero() {
                out.extend(self.forward(sig, now));
            } else {
                self.forward_at = Some((now + self.delay, sig));
            }
        } else if sig == Sig::INT && !self.forward_only {
            // Ctrl-C twice: stop waiting.
            self.kill_at = Some(now);
            out.push(Action::DeadlineMoved);
        } else if self.forward_at.is_none() {
            // A repeated drain signal is passed on once the delay is over, and moves no deadline.
            out.extend(self.forward(sig, now));
        }
        out.extend(self.due(now));
        out
    }

    /// The drain's forward of `sig`: its drain rewrite if it has one (None: nothing goes out),
    /// else SIGTERM becomes the stop signal and any other goes as itself.
    fn forward(&mut self, sig: Sig, now: Instant) -> Option<Action> {
        self.forwarded_at.get_or_insert(now);
        let to = match self.rewrite.iter().find(|&&(from, _)| from == sig) {
            Some(&(_, to)) => to,
            None if sig == Sig::TERM => Some(self.stop.first),
            None => Some(sig),
        };
        to.map(|sig| Action::Forward { sig, step: 1 })
    }

    /// The app was reaped. `children_left` says whether anything else still runs.
    /// Returns `GiveUp` when there is nothing left to wait for.
    pub fn on_app_exit(&mut self, now: Instant, children_left: bool) -> Vec<Action> {
        self.app_gone = true;
        if !children_left {
            return vec![Action::GiveUp];
        }
        if self.killed_at.is_some() {
            return Vec::new();
        }
        if self.kill_at.is_none() {
            self.kill_at = Some(now + self.timeout.unwrap_or(DEFAULT_TIMEOUT));
        }
        vec![Action::TermLeftovers {
            draining: self.draining(),
        }]
    }

    /// The next later stop step and when it is due, while the app runs and nothing was killed.
    fn next_step(&self) -> Option<(Instant, Sig)> {
        if self.app_gone || self.killed_at.is_some() {
            return None;
        }
        let &(after, sig) = self.stop.later.get(self.steps_sent)?;
        Some((self.forwarded_at? + after, sig))
    }

    /// Everything due at `now`, in order.
    pub fn due(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some((at, sig)) = self.forward_at
            && now >= at
            && self.killed_at.is_none()
        {
            self.forward_at = None;
            out.extend(self.forward(sig, now));
        }
        while let Some((at, sig)) = self.next_step()
            && now >= at
        {
            self.steps_sent += 1;
            out.push(Action::Forward {
                sig,
                step: self.steps_sent + 1,
            });
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
        [forward, self.next_step().map(|(at, _)| at), kill]
            .into_iter()
            .flatten()
            .min()
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
        let signals = SignalConfig::default();
        (
            Drain::new(Some(ms(timeout)), ms(delay), &signals),
            Instant::now(),
        )
    }

    fn stepped(timeout: u64, delay: u64, spec: &str) -> (Drain, Instant) {
        let signals = SignalConfig {
            stop_signal: StopSignal::parse(spec).unwrap(),
            ..SignalConfig::default()
        };
        (
            Drain::new(Some(ms(timeout)), ms(delay), &signals),
            Instant::now(),
        )
    }

    /// As under a peer's name: no deadline, every SIGINT passed on, and `rewrite` (dumb-init's
    /// `-r` for the drain signals).
    fn peer(rewrite: &[(Sig, Option<Sig>)]) -> (Drain, Instant) {
        let signals = SignalConfig {
            drain_rewrite: rewrite.to_vec(),
            forward_only: true,
            ..SignalConfig::default()
        };
        (Drain::new(None, ms(0), &signals), Instant::now())
    }

    fn fwd(sig: Sig) -> Action {
        Forward { sig, step: 1 }
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
            d.on_signal(Sig::TERM, t0),
            [Started(Sig::TERM), fwd(Sig::TERM)]
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
        assert_eq!(d.on_signal(Sig::TERM, t0), [Started(Sig::TERM)]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(3000)));
        assert!(d.due(t0 + ms(2999)).is_empty());
        // A repeated SIGTERM during the delay changes nothing.
        assert!(d.on_signal(Sig::TERM, t0 + ms(1000)).is_empty());
        assert_eq!(d.due(t0 + ms(3000)), [fwd(Sig::TERM)]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(9000)));
        // After the delay a repeated SIGTERM is forwarded, and the deadline stays.
        assert_eq!(d.on_signal(Sig::TERM, t0 + ms(5000)), [fwd(Sig::TERM)]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(9000)));
    }

    #[test]
    fn stop_signal_replaces_term_only() {
        let (mut d, t0) = stepped(9000, 0, "QUIT");
        assert_eq!(d.on_signal(Sig::TERM, t0)[1], fwd(Sig::QUIT));
        assert_eq!(d.on_signal(Sig::TERM, t0 + ms(1))[0], fwd(Sig::QUIT));
        let (mut d, t0) = stepped(9000, 0, "QUIT");
        assert_eq!(d.on_signal(Sig::INT, t0)[1], fwd(Sig::INT));
        // Another drain signal (`--drain-signals`) goes on as itself, and so does a repeat.
        let (mut d, t0) = stepped(9000, 0, "USR1");
        assert_eq!(
            d.on_signal(Sig::QUIT, t0),
            [Started(Sig::QUIT), fwd(Sig::QUIT)]
        );
        assert_eq!(d.on_signal(Sig::QUIT, t0 + ms(5)), [fwd(Sig::QUIT)]);
    }

    /// `TERM,INT@2,QUIT@5` with a 1 s delay: the steps count from the forward at t0 + 1 s.
    #[test]
    fn later_steps_follow_the_first_forward() {
        let (mut d, t0) = stepped(9000, 1000, "TERM,INT@2,QUIT@5");
        assert_eq!(d.on_signal(Sig::TERM, t0), [Started(Sig::TERM)]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(1000)));
        assert_eq!(d.due(t0 + ms(1000)), [fwd(Sig::TERM)]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(3000)));
        assert!(d.due(t0 + ms(2999)).is_empty());
        let int = Forward {
            sig: Sig::INT,
            step: 2,
        };
        assert_eq!(d.due(t0 + ms(3000)), [int]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(6000)));
        // A repeated SIGTERM is the first step again and moves no later one.
        assert_eq!(d.on_signal(Sig::TERM, t0 + ms(4000)), [fwd(Sig::TERM)]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(6000)));
        let quit = Forward {
            sig: Sig::QUIT,
            step: 3,
        };
        assert_eq!(d.due(t0 + ms(6500)), [quit]);
        assert_eq!(d.next_deadline(), Some(t0 + ms(9000)));
        assert_eq!(d.due(t0 + ms(9000)), [KillAll]);
    }

    /// A late wake-up sends every step that is due, in order, and the kill after them.
    #[test]
    fn overdue_steps_go_out_in_order() {
        let (mut d, t0) = stepped(3000, 0, "TERM,INT@1,QUIT@2");
        d.on_signal(Sig::TERM, t0);
        assert_eq!(
            d.due(t0 + ms(3000)),
            [
                Forward {
                    sig: Sig::INT,
                    step: 2
                },
                Forward {
                    sig: Sig::QUIT,
                    step: 3
                },
                KillAll
            ]
        );
    }

    #[test]
    fn no_step_once_the_app_is_gone_or_killed() {
        let (mut d, t0) = stepped(9000, 0, "TERM,INT@2");
        d.on_signal(Sig::TERM, t0);
        d.on_app_exit(t0 + ms(500), true);
        assert_eq!(d.next_deadline(), Some(t0 + ms(9000)));
        assert!(d.due(t0 + ms(2000)).is_empty());
        let (mut d, t0) = stepped(9000, 0, "TERM,INT@2");
        d.on_signal(Sig::TERM, t0);
        assert_eq!(
            d.on_signal(Sig::INT, t0 + ms(100)),
            [DeadlineMoved, KillAll]
        );
        assert_eq!(d.due(t0 + ms(2000)), [GiveUp], "no step after the kill");
    }

    /// A drain started by SIGINT forwards SIGINT, and the later steps still follow it.
    #[test]
    fn steps_follow_any_first_forward() {
        let (mut d, t0) = stepped(9000, 0, "TERM,QUIT@1");
        assert_eq!(
            d.on_signal(Sig::INT, t0),
            [Started(Sig::INT), fwd(Sig::INT)]
        );
        assert_eq!(
            d.due(t0 + ms(1000)),
            [Forward {
                sig: Sig::QUIT,
                step: 2
            }]
        );
    }

    #[test]
    fn second_sigint_kills_now() {
        let (mut d, t0) = drain(9000, 2000);
        d.on_signal(Sig::INT, t0);
        assert_eq!(
            d.on_signal(Sig::INT, t0 + ms(100)),
            [DeadlineMoved, KillAll]
        );
        // The held-back forward is dropped once everything is killed.
        assert_eq!(d.next_deadline(), Some(t0 + ms(100) + REAP_GRACE));
        assert!(d.on_signal(Sig::TERM, t0 + ms(150)).is_empty());
    }

    #[test]
    fn sigint_after_another_drain_signal_also_kills_now() {
        for first in [Sig::TERM, Sig::QUIT] {
            let (mut d, t0) = drain(9000, 0);
            d.on_signal(first, t0);
            assert_eq!(d.on_signal(Sig::INT, t0 + ms(10)), [DeadlineMoved, KillAll]);
        }
    }

    #[test]
    fn app_exit_with_nothing_left_ends_at_once() {
        let (mut d, t0) = drain(9000, 0);
        assert_eq!(d.on_app_exit(t0, false), [GiveUp]);
        d.on_signal(Sig::TERM, t0);
        assert_eq!(d.on_app_exit(t0, false), [GiveUp]);
    }

    #[test]
    fn app_exit_on_its_own_terms_leftovers_then_kills_at_timeout() {
        let (mut d, t0) = drain(2000, 0);
        assert_eq!(d.on_app_exit(t0, true), [TermLeftovers { draining: false }]);
        assert!(!d.draining());
        assert_eq!(d.next_deadline(), Some(t0 + ms(2000)));
        assert_eq!(d.due(t0 + ms(2000)), [KillAll]);
    }

    /// Leftovers of a drain get SIGTERM at once, and the drain's deadline stays.
    #[test]
    fn app_exit_during_drain_terms_leftovers_at_once() {
        let (mut d, t0) = drain(2000, 0);
        d.on_signal(Sig::TERM, t0);
        assert_eq!(
            d.on_app_exit(t0 + ms(500), true),
            [TermLeftovers { draining: true }]
        );
        assert_eq!(d.next_deadline(), Some(t0 + ms(2000)));
        // Not again after the kill.
        assert_eq!(d.due(t0 + ms(2000)), [KillAll]);
        assert!(d.on_app_exit(t0 + ms(2100), true).is_empty());
    }

    #[test]
    fn sigterm_after_app_exit_never_extends_the_deadline() {
        let (mut d, t0) = drain(2000, 0);
        d.on_app_exit(t0, true);
        d.on_signal(Sig::TERM, t0 + ms(1500));
        assert_eq!(d.next_deadline(), Some(t0 + ms(2000)));
    }

    #[test]
    fn zero_timeout_kills_at_once() {
        let (mut d, t0) = drain(0, 0);
        assert_eq!(
            d.on_signal(Sig::TERM, t0),
            [Started(Sig::TERM), fwd(Sig::TERM), KillAll]
        );
    }

    /// tini's and dumb-init's way: SIGTERM is passed on and nothing is ever killed while the
    /// app runs, however long it takes.
    #[test]
    fn no_deadline_kills_nothing_while_the_app_runs() {
        let (mut d, t0) = peer(&[]);
        assert_eq!(
            d.on_signal(Sig::TERM, t0),
            [Started(Sig::TERM), fwd(Sig::TERM)]
        );
        assert_eq!(d.next_deadline(), None);
        assert!(d.due(t0 + ms(3_600_000)).is_empty());
        assert!(!d.killed());
    }

    /// With no drain deadline, a second SIGINT is forwarded like any repeated drain signal.
    #[test]
    fn no_deadline_forwards_a_second_sigint() {
        let (mut d, t0) = peer(&[]);
        assert_eq!(
            d.on_signal(Sig::INT, t0),
            [Started(Sig::INT), fwd(Sig::INT)]
        );
        assert_eq!(d.on_signal(Sig::INT, t0 + ms(10)), [fwd(Sig::INT)]);
        assert_eq!(d.on_signal(Sig::TERM, t0 + ms(20)), [fwd(Sig::TERM)]);
        assert_eq!(d.next_deadline(), None);
    }

    /// What the app leaves gets SIGTERM, then the default timeout, even with no drain deadline.
    #[test]
    fn no_deadline_still_bounds_the_leftovers() {
        let (mut d, t0) = peer(&[]);
        d.on_signal(Sig::TERM, t0);
        let t1 = t0 + ms(60_000);
        assert_eq!(d.on_app_exit(t1, true), [TermLeftovers { draining: true }]);
        assert_eq!(d.next_deadline(), Some(t1 + DEFAULT_TIMEOUT));
        let (mut d, t0) = peer(&[]);
        assert_eq!(d.on_app_exit(t0, true), [TermLeftovers { draining: false }]);
        assert_eq!(d.due(t0 + DEFAULT_TIMEOUT), [KillAll]);
    }

    /// dumb-init's `-r 15:3 -r 2:0`: SIGTERM goes on as SIGQUIT, SIGINT not at all, and the
    /// drain still starts (and, with a deadline, would still kill).
    #[test]
    fn drain_rewrites_replace_the_forward() {
        let (mut d, t0) = peer(&[(Sig::TERM, Some(Sig::QUIT)), (Sig::INT, None)]);
        assert_eq!(d.on_signal(Sig::INT, t0), [Started(Sig::INT)]);
        assert!(d.draining());
        assert_eq!(d.on_signal(Sig::TERM, t0 + ms(5)), [fwd(Sig::QUIT)]);
        assert!(d.on_signal(Sig::INT, t0 + ms(6)).is_empty());
        let signals = SignalConfig {
            drain_rewrite: vec![(Sig::TERM, None)],
            ..SignalConfig::default()
        };
        let mut d = Drain::new(Some(ms(1000)), ms(0), &signals);
        assert_eq!(d.on_signal(Sig::TERM, t0), [Started(Sig::TERM)]);
        assert_eq!(d.due(t0 + ms(1000)), [KillAll]);
    }
}
