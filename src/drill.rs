//! `vigil drill`: the supervisor run as usual, with the platform's SIGTERM sent by vigil itself
//! once the app is ready, and a verdict at the end.
//!
//! Pure logic, like `drain.rs`: the supervisor asks what to do at an `Instant`, and hands over the
//! facts at the end to build the report.

use crate::cli::DrillConfig;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long before the platform's budget ends the drain must be over: the platform's own
/// SIGKILL and a loaded node's scheduling need the room.
pub const MARGIN: Duration = Duration::from_millis(500);

/// The longest the SIGTERM waits for the app to accept the held connections.
pub const HOLD_WAIT: Duration = Duration::from_secs(2);

/// How often the supervisor looks whether it has.
const HOLD_POLL: Duration = Duration::from_millis(10);

/// What the supervisor should do for the drill now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Wait,
    /// The app is ready and `--hold` asks for connections: open them now; the SIGTERM follows
    /// once the app has accepted them (`accepted`) or `HOLD_WAIT` has passed.
    Hold,
    /// The app is ready: send the SIGTERM.
    Signal,
    /// The app was not ready in time, or exited first: stop what is left anyway, the verdict is
    /// already `fail`.
    GiveUp,
}

/// The limits the verdict holds the run to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Without a probe: ready this long after the spawn.
    pub after: Duration,
    /// With a probe: give up this long after the spawn.
    pub grace: Duration,
    /// The platform's grace period (`--budget`).
    pub budget: Duration,
    /// vigil's own deadline (`--drain-timeout`).
    pub drain_timeout: Duration,
    /// `--hold N`.
    pub hold: u32,
}

impl Limits {
    pub fn new(d: &DrillConfig, grace: Duration, drain_timeout: Duration) -> Limits {
        Limits {
            after: d.after,
            grace,
            budget: d.budget,
            drain_timeout,
            hold: d.hold,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Drill {
    limits: Limits,
    has_probe: bool,
    /// When vigil started: the hooks' time counts toward `ready_s`.
    started_at: Instant,
    /// When the app was spawned; None while the hooks run.
    spawned_at: Option<Instant>,
    ready_at: Option<Instant>,
    signal_at: Option<Instant>,
    /// The probe did not pass within `--startup-grace`.
    never_ready: bool,
    /// The app exited before it was ready: no drain happened.
    exited_early: bool,
    /// `--hold`: how many connections were open at the SIGTERM, and why not all.
    held: Option<(usize, Option<String>)>,
    /// While the held connections wait to be accepted: when to look again.
    hold_poll: Option<Instant>,
    accepted: bool,
}

/// Facts the supervisor collects by the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// vigil's exit status (after `--success-exit`).
    pub exit_status: u8,
    /// The signal that killed the app, if one did (`SIGSEGV`).
    pub app_signal: Option<&'static str>,
    /// The app exited by itself before any SIGKILL (false: killed at the deadline).
    pub app_exited_itself: bool,
    pub forced_kill: bool,
    pub app_uid: u32,
    /// Processes still alive when vigil was done.
    pub leftover: usize,
    pub finished_at: Instant,
}

impl Drill {
    pub fn new(limits: Limits, has_probe: bool, started_at: Instant) -> Drill {
        Drill {
            limits,
            has_probe,
            started_at,
            spawned_at: None,
            ready_at: None,
            signal_at: None,
            never_ready: false,
            exited_early: false,
            held: None,
            hold_poll: None,
            accepted: false,
        }
    }

    /// The app was spawned at `at`: `--after` and `--startup-grace` count from here.
    pub fn spawned(&mut self, at: Instant) {
        self.spawned_at = Some(at);
    }

    /// `--hold`: `open` connections were opened (`why`: the first failure, if any).
    pub fn held(&mut self, open: usize, why: Option<String>) {
        self.accepted |= open == 0;
        self.held = Some((open, why));
    }

    /// Whether the held connections are open and wait for the app to accept them.
    pub fn holding(&self) -> bool {
        self.held.is_some() && self.signal_at.is_none() && !self.accepted
    }

    /// The app has accepted the held connections: the SIGTERM can go.
    pub fn accepted(&mut self) {
        self.accepted = true;
    }

    /// When `step` next needs to run without being woken, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        if self.signal_at.is_some() {
            return None;
        }
        if self.ready_at.is_some() {
            return self.hold_poll;
        }
        Some(
            self.spawned_at?
                + if self.has_probe {
                    self.limits.grace
                } else {
                    self.limits.after
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
        if let Some(ready_at) = self.ready_at {
            // Holding: the SIGTERM once the connections are the app's, or the app is gone.
            if !app_running {
                self.exited_early = true;
            } else if !self.accepted && now < ready_at + HOLD_WAIT {
                self.hold_poll = Some((now + HOLD_POLL).min(ready_at + HOLD_WAIT));
                return Step::Wait;
            }
            self.hold_poll = None;
            self.signal_at = Some(now);
            return if app_running {
                Step::Signal
            } else {
                Step::GiveUp
            };
        }
        let is_ready = app_running
            && if self.has_probe {
                ready
            } else {
                now >= spawned_at + self.limits.after
            };
        if is_ready {
            self.ready_at = Some(now);
            if self.limits.hold > 0 {
                self.hold_poll = Some(now + HOLD_POLL);
                return Step::Hold;
            }
            self.signal_at = Some(now);
            return Step::Signal;
        }
        let too_late = self.has_probe && now >= spawned_at + self.limits.grace;
        if !app_running || too_late {
            self.exited_early = !app_running;
            self.never_ready = app_running;
            self.signal_at = Some(now);
            return Step::GiveUp;
        }
        Step::Wait
    }

    /// The report: one JSON object, `verdict` pass or fail with `reasons`.
    pub fn report(&self, o: &Outcome) -> Value {
        let l = &self.limits;
        let mut reasons: Vec<String> = Vec::new();
        if self.exited_early {
            reasons.push(exited_early(o, self.ready_at.is_some()));
        }
        if self.never_ready {
            reasons.push("never ready: the probe did not pass within --startup-grace".into());
        }
        if o.app_uid == 0 {
            reasons.push("ran as root: set --user or VIGIL_USER".into());
        }
        // From the SIGTERM to the end; none when the app was gone before it.
        let drain = match self.signal_at {
            Some(at) if !self.exited_early => Some(o.finished_at.saturating_duration_since(at)),
            _ => None,
        };
        if drain.is_some() && !self.never_ready {
            if !o.app_exited_itself {
                reasons.push(format!(
                    "ignored SIGTERM: the app was killed at the drain timeout ({}s)",
                    l.drain_timeout.as_secs_f64()
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
        let room = l.budget.saturating_sub(MARGIN);
        if let Some(d) = drain.filter(|d| *d > room) {
            reasons.push(format!(
                "over budget: the drain took {}s, more than --budget {}s minus 0.5 s; the platform SIGKILLs at the budget",
                round(d),
                l.budget.as_secs_f64()
            ));
        }
        if l.drain_timeout + MARGIN > l.budget {
            reasons.push(format!(
                "--drain-timeout {}s + 0.5 s exceeds --budget {}s: the platform would SIGKILL vigil before its own deadline (set it to {}s or less)",
                l.drain_timeout.as_secs_f64(),
                l.budget.as_secs_f64(),
                room.as_secs_f64()
            ));
        }
        if let Some((open, why)) = self.held.as_ref().filter(|(n, _)| *n < l.hold as usize) {
            let why = why.as_deref().unwrap_or("refused");
            reasons.push(format!(
                "--hold {}: only {open} connection(s) could be opened: {why}",
                l.hold
            ));
        }
        if o.leftover > 0 {
            reasons.push(format!(
                "{} processes were still alive at the end",
                o.leftover
            ));
        }
        let mut v = json!({
            "ready_s": self.ready_at.map(|r| round(r.saturating_duration_since(self.started_at))),
            "drain_s": drain.map(round),
            "forced_kill": o.forced_kill,
            "exit_status": o.exit_status,
            "app_uid": o.app_uid,
            "leftover": o.leftover,
            "budget_s": l.budget.as_secs_f64(),
            "verdict": if reasons.is_empty() { "pass" } else { "fail" },
        });
        if let Some((open, _)) = &self.held {
            v["held"] = json!(open);
        }
        if !reasons.is_empty() {
            v["reasons"] = json!(reasons);
        }
        v
    }
}

/// Seconds, to the millisecond.
fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The reason for an app that was gone before it was ready (`ready`: before the SIGTERM),
/// with its status.
fn exited_early(o: &Outcome, ready: bool) -> String {
    let how = match o.app_signal {
        Some(sig) => format!("was killed by {sig} (status {})", o.exit_status),
        None => format!("exited with status {}", o.exit_status),
    };
    let hint = if o.exit_status == 0 && o.app_signal.is_none() {
        ": a server must stay in the foreground (nginx: daemon off;)"
    } else {
        ": its own output above says why"
    };
    let when = if ready {
        "before the drill's SIGTERM"
    } else {
        "before it was ready"
    };
    format!("the app {how} {when}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn limits(after: u64, grace: u64) -> Limits {
        Limits {
            after: ms(after),
            grace: ms(grace),
            budget: ms(10_000),
            drain_timeout: ms(9000),
            hold: 0,
        }
    }

    /// A drill whose app was spawned at `t0`, right as vigil started.
    fn spawned(after: u64, grace: u64, has_probe: bool, t0: Instant) -> Drill {
        let mut d = Drill::new(limits(after, grace), has_probe, t0);
        d.spawned(t0);
        d
    }

    fn outcome(t: Instant) -> Outcome {
        Outcome {
            exit_status: 0,
            app_signal: None,
            app_exited_itself: true,
            forced_kill: false,
            app_uid: 65534,
            leftover: 0,
            finished_at: t,
        }
    }

    fn reasons_of(r: &Value) -> Vec<String> {
        serde_json::from_value(r["reasons"].clone()).unwrap_or_default()
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
        let r = d.report(&outcome(t0 + ms(2250)));
        assert_eq!(r["verdict"], "pass");
        assert_eq!(r["ready_s"], 2.0);
        assert_eq!(r["drain_s"], 0.25);
        assert_eq!(r["budget_s"], 10.0);
        assert!(r.get("reasons").is_none() && r.get("held").is_none());
    }

    #[test]
    fn nothing_happens_before_the_spawn_and_the_hooks_count_toward_ready_s() {
        let t0 = Instant::now();
        let mut d = Drill::new(limits(500, 5000), false, t0);
        assert_eq!(d.deadline(), None, "no deadline while the hooks run");
        assert_eq!(d.step(t0 + ms(900), false, true), Step::Wait);
        d.spawned(t0 + ms(1000));
        assert_eq!(d.deadline(), Some(t0 + ms(1500)));
        assert_eq!(d.step(t0 + ms(1499), false, true), Step::Wait);
        assert_eq!(d.step(t0 + ms(1500), false, true), Step::Signal);
        let r = d.report(&outcome(t0 + ms(1600)));
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
        let r = d.report(&outcome(t0 + ms(5100)));
        assert_eq!(r["verdict"], "fail");
        let reasons = reasons_of(&r);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("never ready"), "{reasons:?}");
        assert_eq!(r["ready_s"], Value::Null);
        assert_eq!(r["drain_s"], 0.1, "the app was stopped: a drain");
    }

    #[test]
    fn an_app_that_exits_before_ready_fails_with_its_status_and_no_drain() {
        let t0 = Instant::now();
        for probe in [false, true] {
            let mut d = spawned(2000, 5000, probe, t0);
            assert_eq!(d.step(t0 + ms(100), false, false), Step::GiveUp);
            let r = d.report(&Outcome {
                exit_status: 3,
                ..outcome(t0 + ms(150))
            });
            assert_eq!(r["verdict"], "fail");
            assert_eq!(r["drain_s"], Value::Null, "{r}");
            assert_eq!(r["ready_s"], Value::Null, "{r}");
            let reasons = reasons_of(&r);
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            assert!(
                reasons[0].contains("exited with status 3 before it was ready"),
                "{reasons:?}"
            );
        }
        let mut d = spawned(2000, 5000, false, t0);
        d.step(t0, false, false);
        let r = d.report(&Outcome {
            exit_status: 139,
            app_signal: Some("SIGSEGV"),
            ..outcome(t0)
        });
        let reasons = reasons_of(&r);
        assert!(
            reasons[0].contains("killed by SIGSEGV (status 139)"),
            "{reasons:?}"
        );
        let r = d.report(&outcome(t0));
        assert!(reasons_of(&r)[0].contains("foreground"), "{r}");
    }

    fn reasons(o: Outcome) -> Vec<String> {
        let t0 = Instant::now();
        let mut d = spawned(0, 5000, false, t0);
        assert_eq!(d.step(t0, false, true), Step::Signal);
        reasons_of(&d.report(&o))
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

    #[test]
    fn the_budget_holds_the_drain_and_the_drain_timeout() {
        let t0 = Instant::now();
        let run = |budget: u64, timeout: u64, drain: u64| {
            let l = Limits {
                budget: ms(budget),
                drain_timeout: ms(timeout),
                ..limits(0, 5000)
            };
            let mut d = Drill::new(l, false, t0);
            d.spawned(t0);
            d.step(t0, false, true);
            d.report(&outcome(t0 + ms(drain)))
        };
        // 9.5 s is the last drain that fits a 10 s budget.
        assert_eq!(run(10_000, 9000, 9500)["verdict"], "pass");
        let r = run(10_000, 9000, 9501);
        let reasons = reasons_of(&r);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with("over budget: the drain took 9.501s"),
            "{r}"
        );
        // The app: VIGIL_DRAIN_TIMEOUT=20, a clean exit 11 s after SIGTERM.
        let r = run(10_000, 20_000, 11_005);
        let reasons = reasons_of(&r);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("11.005s"), "{reasons:?}");
        assert!(reasons[1].starts_with("--drain-timeout 20s + 0.5 s exceeds --budget 10s"));
        // A fast app still fails when vigil's own deadline does not fit.
        let r = run(10_000, 9501, 100);
        assert_eq!(reasons_of(&r).len(), 1, "{r}");
        assert_eq!(run(30_000, 20_000, 11_005)["budget_s"], 30.0);
        assert_eq!(run(30_000, 20_000, 11_005)["verdict"], "pass");
    }

    #[test]
    fn hold_reports_what_it_held() {
        let t0 = Instant::now();
        let l = Limits {
            hold: 2,
            ..limits(0, 5000)
        };
        let mut d = Drill::new(l, false, t0);
        d.spawned(t0);
        assert_eq!(d.step(t0, false, true), Step::Hold);
        d.held(2, None);
        assert!(d.holding());
        assert_eq!(d.deadline(), Some(t0 + ms(10)), "polls the accept queue");
        assert_eq!(d.step(t0 + ms(10), true, true), Step::Wait);
        d.accepted();
        assert_eq!(d.step(t0 + ms(20), true, true), Step::Signal);
        assert!(!d.holding() && d.deadline().is_none());
        let r = d.report(&outcome(t0 + ms(120)));
        assert_eq!(r["verdict"], "pass", "{r}");
        assert_eq!(r["held"], 2, "{r}");
        assert_eq!(
            r["ready_s"], 0.0,
            "ready when the probe passed, not after the hold"
        );
        assert_eq!(r["drain_s"], 0.1, "from the SIGTERM");
        d.held(1, Some("connect 127.0.0.1:1: refused".into()));
        let r = d.report(&outcome(t0));
        let reasons = reasons_of(&r);
        assert!(reasons[0].starts_with("--hold 2: only 1 connection"), "{r}");
    }

    #[test]
    fn hold_gives_up_waiting_for_the_accept() {
        let t0 = Instant::now();
        let l = Limits {
            hold: 1,
            ..limits(0, 5000)
        };
        let mut d = Drill::new(l, false, t0);
        d.spawned(t0);
        assert_eq!(d.step(t0, false, true), Step::Hold);
        d.held(1, None);
        assert_eq!(d.step(t0 + HOLD_WAIT - ms(1), true, true), Step::Wait);
        assert_eq!(d.deadline(), Some(t0 + HOLD_WAIT));
        assert_eq!(d.step(t0 + HOLD_WAIT, true, true), Step::Signal);
        // Nothing held (refused): no wait.
        let mut d = Drill::new(l, false, t0);
        d.spawned(t0);
        d.step(t0, false, true);
        d.held(0, Some("refused".into()));
        assert_eq!(d.step(t0, true, true), Step::Signal);
        // The app exits while the connections wait.
        let mut d = Drill::new(l, false, t0);
        d.spawned(t0);
        d.step(t0, false, true);
        d.held(1, None);
        assert_eq!(d.step(t0 + ms(5), true, false), Step::GiveUp);
        let r = d.report(&outcome(t0 + ms(5)));
        assert!(
            reasons_of(&r)[0].contains("before the drill's SIGTERM"),
            "{r}"
        );
        assert_eq!(r["drain_s"], Value::Null);
    }
}
