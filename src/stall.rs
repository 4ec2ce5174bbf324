//! The event loop's own waits failing: `rt_sigtimedwait` answering an error or returning before
//! its deadline, `waitpid` failing or answering "no children" while a child is known to run.
//!
//! Pure bookkeeping, fed with made-up instants in the tests. A failure is retried `RETRY`
//! later: a reap that failed would otherwise wait for the next SIGCHLD, which may never come.

use std::time::{Duration, Instant};

/// How soon a failed wait is tried again.
pub const RETRY: Duration = Duration::from_millis(10);

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
        s.failed("ECHILD".into(), t0 + ms(10));
        assert_eq!(s.retry_at(t0 + ms(10)), Some(t0 + ms(10) + RETRY));
        s.ok();
        assert_eq!(s.retry_at(t0 + ms(600)), None);
    }
}
