//! `vigil drill`: the supervisor run as usual, with the platform's SIGTERM sent by vigil itself
//! once the app is ready, and a verdict at the end.
//!
//! Pure logic, like `drain.rs`: the supervisor asks what to do at an `Instant`, and hands over the
//! facts at the end to build the report.

use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// What the supervisor should do for the drill now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Wait,
    /// The app is ready: send the SIGTERM.
    Signal,
    /// The app was not ready in time: stop it anyway, the verdict is already `fail`.
    GiveUp,
}

#[derive(Debug, Clone)]
pub struct Drill {
    /// Without a probe: ready this long after the spawn.
    after: Duration,
    /// With a probe: give up this long after the spawn.
    grace: Duration,
    has_probe: bool,
    /// When vigil started: the hooks' time counts toward `ready_s`.
    started_at: Instant,
    /// When the app was spawned; None while the hooks run.
    spawned_at: Option<Instant>,
    ready_at: Option<Instant>,
    signal_at: Option<Instant>,
    never_ready: bool,
}

/// Facts the supervisor collects by the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// vigil's exit status (after `--success-exit`).
    pub exit_status: u8,
    /// The app exited by itself before any SIGKILL (false: killed at the deadline).
    pub app_exited_itself: bool,
    pub forced_kill: bool,
    pub app_uid: u32,
    /// Processes still alive when vigil was done.
    pub leftover: usize,
    pub finished_at: Instant,
}

impl Drill {
    pub fn new(after: Duration, grace: Duration, has_probe: bool, started_at: Instant) -> Drill {
        Drill {
            after,
            grace,
            has_probe,
            started_at,
            spawned_at: None,
            ready_at: None,
            signal_at: None,
            never_ready: false,
        }
    }

    /// The app was spawned at `at`: `--after` and `--startup-grace` count from here.
    pub fn spawned(&mut self, at: Instant) {
        self.spawned_at = Some(at);
    }

    /// When `step` next needs to run without being woken, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        if self.signal_at.is_some() {
            return None;
        }
        Some(
            self.spawned_at?
                + if self.has_probe {
                    self.grace
                } else {
                    self.after
                },
        )
    }

    /// `ready`: the health status says ready; `app_running`: the app has not exited.
    pub fn step(&mut self, now: Instant, ready: bool, app_running: bool) -> Step {
        let Some(spawned_at) = self.spawned_at else {
            return Step::Wait;
        };
        if self.signal_at.is_some() {
            return Step::Wait;
        }
        let is_ready = app_running
            && if self.has_probe {
                ready
            } else {
                now >= spawned_at + self.after
            };
        if is_ready {
            self.ready_at = Some(now);
            self.signal_at = Some(now);
            return Step::Signal;
        }
        let too_late = self.has_probe && now >= spawned_at + self.grace;
        if !app_running || too_late {
            self.never_ready = true;
            self.signal_at = Some(now);
            return Step::GiveUp;
        }
        Step::Wait
    }

    /// The report: one JSON object, `verdict` pass or fail with `reasons`.
    pub fn report(&self, o: &Outcome, drain_timeout: Duration) -> Value {
        let mut reasons: Vec<String> = Vec::new();
        if self.never_ready {
            reasons.push(if self.has_probe {
                "never ready: the probe did not pass within --startup-grace (or the app exited first)".into()
            } else {
                "never ready: the app exited before --after".into()
            });
        }
        if o.app_uid == 0 {
            reasons.push("ran as root: set --user or VIGIL_USER".into());
        }
        if !self.never_ready {
            if !o.app_exited_itself {
                reasons.push(format!(
                    "ignored SIGTERM: the app was killed at the drain timeout ({}s)",
                    drain_timeout.as_secs_f64()
                ));
            } else if o.forced_kill {
                reasons.push("left processes that had to be killed at the drain timeout".into());
            }
            if o.app_exited_itself && o.exit_status != 0 {
                reasons.push(format!(
                    "exited with status {} on SIGTERM (see --success-exit)",
                    o.exit_status
                ));
            }
        }
        if o.leftover > 0 {
            reasons.push(format!(
                "{} processes were still alive at the end",
                o.leftover
            ));
        }
        let secs = |a: Instant, b: Instant| {
            (b.saturating_duration_since(a).as_secs_f64() * 1000.0).round() / 1000.0
        };
        let mut v = json!({
            "ready_s": self.ready_at.map(|r| secs(self.started_at, r)),
            "drain_s": self.signal_at.map(|s| secs(s, o.finished_at)),
            "forced_kill": o.forced_kill,
            "exit_status": o.exit_status,
            "app_uid": o.app_uid,
            "leftover": o.leftover,
            "verdict": if reasons.is_empty() { "pass" } else { "fail" },
        });
        if !reasons.is_empty() {
            v["reasons"] = json!(reasons);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A drill whose app was spawned at `t0`, right as vigil started.
    fn spawned(after: u64, grace: u64, has_probe: bool, t0: Instant) -> Drill {
        let mut d = Drill::new(ms(after), ms(grace), has_probe, t0);
        d.spawned(t0);
        d
    }

    fn outcome(t: Instant) -> Outcome {
        Outcome {
            exit_status: 0,
            app_exited_itself: true,
            forced_kill: false,
            app_uid: 65534,
            leftover: 0,
            finished_at: t,
        }
    }

    #[test]
    fn without_probe_signals_after_the_wait() {
        let t0 = Instant::now();
        let mut d = spawned(2000, 60_000, false, t0);
        assert_eq!(d.deadline(), Some(t0 + ms(2000)));
        assert_eq!(d.step(t0 + ms(1999), false, true), Step::Wait);
        assert_eq!(d.step(t0 + ms(2000), false, true), Step::Signal);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.step(t0 + ms(2100), false, true), Step::Wait, "once only");
        let r = d.report(&outcome(t0 + ms(2250)), ms(9000));
        assert_eq!(r["verdict"], "pass");
        assert_eq!(r["ready_s"], 2.0);
        assert_eq!(r["drain_s"], 0.25);
        assert!(r.get("reasons").is_none());
    }

    #[test]
    fn nothing_happens_before_the_spawn_and_the_hooks_count_toward_ready_s() {
        let t0 = Instant::now();
        let mut d = Drill::new(ms(500), ms(5000), false, t0);
        assert_eq!(d.deadline(), None, "no deadline while the hooks run");
        assert_eq!(d.step(t0 + ms(900), false, true), Step::Wait);
        d.spawned(t0 + ms(1000));
        assert_eq!(d.deadline(), Some(t0 + ms(1500)));
        assert_eq!(d.step(t0 + ms(1499), false, true), Step::Wait);
        assert_eq!(d.step(t0 + ms(1500), false, true), Step::Signal);
        let r = d.report(&outcome(t0 + ms(1600)), ms(9000));
        assert_eq!(r["ready_s"], 1.5, "{r}");
        assert_eq!(r["drain_s"], 0.1, "{r}");
    }

    #[test]
    fn with_probe_signals_when_ready_or_gives_up() {
        let t0 = Instant::now();
        let mut d = spawned(2000, 5000, true, t0);
        assert_eq!(d.deadline(), Some(t0 + ms(5000)));
        assert_eq!(d.step(t0 + ms(3000), false, true), Step::Wait);
        assert_eq!(d.step(t0 + ms(3100), true, true), Step::Signal);

        let mut d = spawned(2000, 5000, true, t0);
        assert_eq!(d.step(t0 + ms(5000), false, true), Step::GiveUp);
        let r = d.report(&outcome(t0 + ms(5100)), ms(9000));
        assert_eq!(r["verdict"], "fail");
        assert!(r["reasons"][0].as_str().unwrap().starts_with("never ready"));
        assert_eq!(r["ready_s"], Value::Null);
    }

    #[test]
    fn an_app_that_exits_before_ready_fails() {
        let t0 = Instant::now();
        let mut d = spawned(2000, 5000, false, t0);
        assert_eq!(d.step(t0 + ms(100), false, false), Step::GiveUp);
        let r = d.report(&outcome(t0 + ms(100)), ms(9000));
        assert_eq!(r["verdict"], "fail");
    }

    fn reasons(o: Outcome) -> Vec<String> {
        let t0 = Instant::now();
        let mut d = spawned(0, 5000, false, t0);
        assert_eq!(d.step(t0, false, true), Step::Signal);
        let r = d.report(&o, ms(1000));
        serde_json::from_value(r["reasons"].clone()).unwrap_or_default()
    }

    #[test]
    fn each_failure_has_its_reason() {
        let t = Instant::now();
        assert!(reasons(outcome(t)).is_empty());
        let root = reasons(Outcome {
            app_uid: 0,
            ..outcome(t)
        });
        assert!(root[0].starts_with("ran as root"), "{root:?}");
        let killed = reasons(Outcome {
            app_exited_itself: false,
            forced_kill: true,
            exit_status: 137,
            ..outcome(t)
        });
        assert_eq!(killed.len(), 1);
        assert!(killed[0].starts_with("ignored SIGTERM"), "{killed:?}");
        let leftovers = reasons(Outcome {
            forced_kill: true,
            ..outcome(t)
        });
        assert!(leftovers[0].starts_with("left processes"), "{leftovers:?}");
        let nonzero = reasons(Outcome {
            exit_status: 143,
            ..outcome(t)
        });
        assert!(
            nonzero[0].starts_with("exited with status 143"),
            "{nonzero:?}"
        );
        let alive = reasons(Outcome {
            leftover: 2,
            ..outcome(t)
        });
        assert!(alive[0].starts_with("2 processes"), "{alive:?}");
    }
}
