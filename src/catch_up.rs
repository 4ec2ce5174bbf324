//! The forward's fast path and the catch-up it owes (pure: instants in, decisions out).
//!
//! After a forwarded signal the supervisor goes straight back to the wait, so on a one-CPU
//! container the app's handler runs before vigil's bookkeeping (the `signal forwarded` line,
//! other pending signals, the reap). That bookkeeping is owed for at most `WITHIN`: a pass pays
//! it at the next wake-up that is not a forward, at a one-shot timer armed by the first forward
//! of a window, or, under a flood of forwards, at the first forward after `WITHIN` has passed.
//! The last rule is what keeps SIGTERM from waiting behind a flood of lower-numbered signals:
//! the kernel always hands out the lowest pending one first.

use std::time::{Duration, Instant};

/// The longest a forward's bookkeeping waits behind it.
pub const WITHIN: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
pub struct CatchUp {
    /// When the owed pass is due, if one is owed.
    due: Option<Instant>,
    /// Whether a timer (not the wait's own deadline) wakes the loop for it.
    timed: bool,
}

impl CatchUp {
    /// A forward took the fast path at `now`. `arm` sets the wake-up timer for `WITHIN` and says
    /// whether it could; it runs for the first forward of a window only. True: go straight back
    /// to the wait. False: the window is over, run the pass now.
    pub fn forwarded(&mut self, now: Instant, arm: impl FnOnce(Duration) -> bool) -> bool {
        let due = match self.due {
            Some(due) => due,
            None => {
                self.timed = arm(WITHIN);
                *self.due.insert(now + WITHIN)
            }
        };
        now < due
    }

    /// A pass runs and pays what was owed. True when a timer may still be armed: the caller
    /// disarms it (and reaps, which the pass does anyway).
    pub fn settle(&mut self) -> bool {
        let timed = self.due.take().is_some() && self.timed;
        self.timed = false;
        timed
    }

    /// The deadline the wait must keep itself: only when no timer could be armed.
    pub fn deadline(&self) -> Option<Instant> {
        self.due.filter(|_| !self.timed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_window_arms_once_and_then_falls_through_to_the_pass() {
        let t0 = Instant::now();
        let mut c = CatchUp::default();
        let armed = std::cell::Cell::new(0);
        let arm = |d: Duration| {
            assert_eq!(d, WITHIN);
            armed.set(armed.get() + 1);
            true
        };
        assert!(c.forwarded(t0, arm), "the first forward waits");
        assert!(
            c.forwarded(t0 + ms(5), arm),
            "so does one inside the window"
        );
        assert!(c.forwarded(t0 + WITHIN - ms(1), arm));
        assert_eq!(armed.get(), 1, "one timer per window");
        assert_eq!(
            c.deadline(),
            None,
            "the timer wakes the loop, not a timeout"
        );
        // A flood: the forward at the end of the window runs the pass itself.
        assert!(!c.forwarded(t0 + WITHIN, arm));
        assert!(!c.forwarded(t0 + ms(90), arm));
        assert!(c.settle(), "the timer may still be armed");
        assert!(!c.settle(), "nothing owed twice");
        // The next forward opens a new window with a new timer.
        assert!(c.forwarded(t0 + ms(100), arm));
        assert_eq!(armed.get(), 2);
    }

    #[test]
    fn without_a_timer_the_wait_keeps_the_deadline() {
        let t0 = Instant::now();
        let mut c = CatchUp::default();
        assert!(c.forwarded(t0, |_| false));
        assert_eq!(c.deadline(), Some(t0 + WITHIN));
        assert!(c.forwarded(t0 + ms(19), |_| panic!("armed twice")));
        assert!(!c.settle(), "no timer to disarm");
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn an_early_pass_closes_the_window() {
        let t0 = Instant::now();
        let mut c = CatchUp::default();
        assert!(c.forwarded(t0, |_| true));
        // A SIGCHLD (say) wakes the loop 2 ms later: the pass pays, the timer is disarmed.
        assert!(c.settle());
        assert_eq!(c.deadline(), None);
        let mut armed = false;
        assert!(c.forwarded(t0 + ms(3), |_| {
            armed = true;
            true
        }));
        assert!(armed, "a new window after the pass");
    }
}
