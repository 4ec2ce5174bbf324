//! The event loop's own waits failing: `rt_sigtimedwait` answering an error or returning before
//! its deadline, `waitpid` failing or answering "no children" while a child is known to run.
//!
//! Pure bookkeeping, fed with made-up instants in the tests. One failure is retried `RETRY`
//! later: a reap that failed would otherwise wait for the next SIGCHLD, which may never come.
//! Failures without a success in between for `GIVE_UP_AFTER` mean the loop cannot keep its
//! promises (no signal taken is no drain, no reap is no exit status): the supervisor then ends
//! the app's tree and exits 2, rather than spinning or waiting for ever.

use std::time::{Duration, Instant};

/// How soon a failed wait is tried again; also the pause that keeps a failing loop from spinning.
pub const RETRY: Duration = Duration::from_millis(10);

/// How long a wait may keep failing before vigil gives up.
pub const GIVE_UP_AFTER: Duration = Duration::from_millis(500);

/// One of the loop's waits: since when it has failed, and how.
#[derive(Debug, Default, Clone)]
pub struct Stall {
    since: Option<Instant>,
    error: String,
}

impl Stall {
    /// The wait failed at `now` with `error`.
    pub fn failed(&mut self, error: String, now: Instant) {
        self.since.get_or_insert(now);
        self.error = error;
    }

    /// The wait did what it is for.
    pub fn ok(&mut self) {
        self.since = None;
    }

    /// When to try again, while failing.
    pub fn retry_at(&self, now: Instant) -> Option<Instant> {
        self.since.map(|_| now + RETRY)
    }

    /// The last error and how long the wait has failed, once that is `GIVE_UP_AFTER` or more.
    pub fn given_up(&self, now: Instant) -> Option<(&str, Duration)> {
        let failing = now.saturating_duration_since(self.since?);
        (failing >= GIVE_UP_AFTER).then_some((self.error.as_str(), failing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_failure_is_retried_and_forgotten() {
        let t0 = Instant::now();
        let mut s = Stall::default();
        assert_eq!(s.retry_at(t0), None);
        s.failed("ECHILD".into(), t0);
        assert_eq!(s.retry_at(t0), Some(t0 + RETRY));
        assert_eq!(s.given_up(t0 + ms(499)), None);
        s.ok();
        assert_eq!(s.retry_at(t0 + ms(600)), None);
        assert_eq!(s.given_up(t0 + ms(600)), None);
    }

    #[test]
    fn failures_without_a_success_give_up_from_the_first() {
        let t0 = Instant::now();
        let mut s = Stall::default();
        for n in 0..50 {
            s.failed(format!("EINVAL {n}"), t0 + ms(10 * n));
        }
        assert_eq!(s.given_up(t0 + ms(499)), None);
        assert_eq!(s.given_up(t0 + ms(500)), Some(("EINVAL 49", ms(500))));
        s.ok();
        s.failed("again".into(), t0 + ms(700));
        assert_eq!(s.given_up(t0 + ms(1000)), None, "the count restarts");
    }
}
