//! The shared state the health endpoints answer from: app, drain, the last probe.
//!
//! The supervisor and the probe checker write it; the health thread reads a copy. Lock, copy,
//! unlock: the lock is never held across I/O, and the log line for a health change is written
//! after the lock is released.

use crate::log;
use serde_json::json;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Running,
    Draining,
    Exited,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Exited => "exited",
        }
    }
}

/// Where the app is in its life, as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    NotStarted,
    /// The start-up hooks (`--env-from`, `--pre-start`) run before it.
    Hooks,
    Running,
    Exited,
}

/// What the checker knows of the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub kind: &'static str,
    /// None before the first probe has finished.
    pub ok: Option<bool>,
    /// Failures in a row, as they happened.
    pub consecutive_failures: u32,
    /// Failures in a row that count against liveness (not those in the startup grace).
    pub counted_failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub app: App,
    pub draining: bool,
    /// Whether the app has been ready (probe passed, or no probe) at least once.
    pub ready_once: bool,
    pub probe: Option<ProbeState>,
    /// `--probe-failures`.
    pub failure_threshold: u32,
}

impl Status {
    pub fn new(probe_kind: Option<&'static str>, failure_threshold: u32) -> Status {
        Status {
            app: App::NotStarted,
            draining: false,
            ready_once: false,
            probe: probe_kind.map(|kind| ProbeState {
                kind,
                ok: None,
                consecutive_failures: 0,
                counted_failures: 0,
            }),
            failure_threshold,
        }
    }

    pub fn phase(&self) -> Phase {
        match self.app {
            App::NotStarted | App::Hooks => Phase::Starting,
            App::Exited => Phase::Exited,
            App::Running if self.draining => Phase::Draining,
            App::Running if self.ready_once => Phase::Running,
            App::Running => Phase::Starting,
        }
    }

    /// `/livez`: the start-up hooks run, or the app runs and the probe has not failed
    /// `--probe-failures` times in a row. A drain does not fail liveness: a restart must not
    /// race the shutdown, and a slow seed must not get the container restarted.
    pub fn live(&self) -> bool {
        let probe_ok = self
            .probe
            .as_ref()
            .is_none_or(|p| p.counted_failures < self.failure_threshold);
        self.app == App::Hooks || (self.app == App::Running && probe_ok)
    }

    /// `/readyz`: the app runs, the last probe passed (or there is none), no drain has started.
    pub fn ready(&self) -> bool {
        self.app == App::Running
            && !self.draining
            && self.probe.as_ref().is_none_or(|p| p.ok == Some(true))
    }

    /// Records one probe result. `in_grace`: within `--startup-grace` of the spawn. A result
    /// that arrives once a drain has started is dropped: an app that closes its listener as it
    /// stops (nginx, postgres, gunicorn, a JVM) must not fail liveness mid-drain, or the platform
    /// restarts it instead of letting it finish.
    pub fn record_probe(&mut self, ok: bool, in_grace: bool) {
        let ready_once = self.ready_once;
        let Some(p) = self.probe.as_mut().filter(|_| !self.draining) else {
            return;
        };
        p.ok = Some(ok);
        if ok {
            p.consecutive_failures = 0;
            p.counted_failures = 0;
            self.ready_once = true;
        } else {
            p.consecutive_failures = p.consecutive_failures.saturating_add(1);
            // Failures before the first success and inside the grace do not count at all.
            if ready_once || !in_grace {
                p.counted_failures = p.counted_failures.saturating_add(1);
            }
        }
    }

    /// The JSON body of an endpoint whose verdict is `ok`.
    pub fn body(&self, ok: bool) -> String {
        let mut v = json!({
            "status": if ok { "ok" } else { "fail" },
            "phase": self.phase().as_str(),
        });
        if let Some(p) = &self.probe {
            v["probe"] = json!({
                "kind": p.kind,
                "ok": p.ok,
                "consecutive_failures": p.consecutive_failures,
            });
        }
        v.to_string()
    }
}

/// A handle shared by the supervisor and the health threads.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Status>>);

impl Shared {
    pub fn new(status: Status) -> Shared {
        Shared(Arc::new(Mutex::new(status)))
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        // Poisoning needs a panic while locked, and panics abort; the data is usable anyway.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self) -> Status {
        self.lock().clone()
    }

    /// Changes the status and logs once if liveness, readiness or the phase changed.
    pub fn update(&self, f: impl FnOnce(&mut Status)) -> Status {
        let (before, after) = {
            let mut s = self.lock();
            let before = s.clone();
            f(&mut s);
            (before, s.clone())
        };
        let key = |s: &Status| (s.live(), s.ready(), s.phase());
        if key(&before) != key(&after) {
            log::info(
                "health changed",
                &[
                    ("live", json!(after.live())),
                    ("ready", json!(after.ready())),
                    ("phase", json!(after.phase().as_str())),
                ],
            );
        }
        after
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn running(probe: Option<&'static str>) -> Status {
        let mut s = Status::new(probe, 3);
        s.app = App::Running;
        s.ready_once = probe.is_none();
        s
    }

    #[test]
    fn phases() {
        let s = |app, draining, ready_once| {
            Status {
                app,
                draining,
                ready_once,
                ..Status::new(None, 3)
            }
            .phase()
        };
        assert_eq!(s(App::NotStarted, false, false), Phase::Starting);
        assert_eq!(s(App::NotStarted, true, false), Phase::Starting);
        assert_eq!(s(App::Running, false, false), Phase::Starting);
        assert_eq!(s(App::Running, false, true), Phase::Running);
        assert_eq!(s(App::Running, true, true), Phase::Draining);
        assert_eq!(s(App::Running, true, false), Phase::Draining);
        assert_eq!(s(App::Exited, true, true), Phase::Exited);
        assert_eq!(s(App::Exited, false, false), Phase::Exited);
        assert_eq!(Phase::Draining.as_str(), "draining");
    }

    #[test]
    fn no_probe_follows_the_app_and_the_drain() {
        let mut s = running(None);
        assert!(s.live() && s.ready());
        s.draining = true;
        assert!(s.live() && !s.ready(), "a drain fails readiness only");
        s.app = App::Exited;
        assert!(!s.live() && !s.ready());
        assert!(!Status::new(None, 3).live());
        // The hooks before the app (contract: /livez 200, /readyz 503, phase starting).
        let mut hooks = Status::new(Some("tcp"), 3);
        hooks.app = App::Hooks;
        assert!(hooks.live() && !hooks.ready());
        assert_eq!(hooks.phase(), Phase::Starting);
    }

    #[test]
    fn probe_threshold_and_readiness() {
        let mut s = running(Some("tcp"));
        assert!(!s.ready(), "not ready before the first probe");
        assert!(s.live());
        s.record_probe(true, true);
        assert!(s.ready() && s.live() && s.phase() == Phase::Running);
        s.record_probe(false, false);
        assert!(!s.ready() && s.live());
        s.record_probe(false, false);
        assert!(s.live());
        s.record_probe(false, false);
        assert!(!s.live(), "third failure in a row fails liveness");
        s.record_probe(true, false);
        assert!(s.live() && s.ready());
    }

    #[test]
    fn startup_grace_does_not_count_failures() {
        let mut s = running(Some("http"));
        for _ in 0..10 {
            s.record_probe(false, true);
        }
        assert!(
            s.live(),
            "failures in the grace before a success do not count"
        );
        assert_eq!(s.probe.as_ref().unwrap().consecutive_failures, 10);
        assert_eq!(s.phase(), Phase::Starting);
        s.record_probe(false, false);
        s.record_probe(false, false);
        assert!(s.live());
        s.record_probe(false, false);
        assert!(!s.live(), "after the grace they count");
    }

    #[test]
    fn after_a_success_the_grace_is_over() {
        let mut s = running(Some("exec"));
        s.record_probe(true, true);
        for _ in 0..3 {
            s.record_probe(false, true);
        }
        assert!(!s.live());
    }

    #[test]
    fn a_drain_freezes_the_probe() {
        let mut s = running(Some("tcp"));
        s.record_probe(true, false);
        s.record_probe(false, false);
        s.draining = true;
        let before = s.probe.clone();
        for _ in 0..5 {
            s.record_probe(false, false);
        }
        assert_eq!(
            s.probe, before,
            "results after the drain started are dropped"
        );
        assert!(s.live() && !s.ready());
    }

    #[test]
    fn bodies() {
        let s = running(None);
        let v: Value = serde_json::from_str(&s.body(true)).unwrap();
        assert_eq!(v, json!({"status": "ok", "phase": "running"}));
        let mut s = running(Some("tcp"));
        let v: Value = serde_json::from_str(&s.body(false)).unwrap();
        assert_eq!(
            v["probe"],
            json!({"kind": "tcp", "ok": null, "consecutive_failures": 0})
        );
        assert_eq!(v["phase"], "starting");
        s.record_probe(false, false);
        s.draining = true;
        let v: Value = serde_json::from_str(&s.body(false)).unwrap();
        assert_eq!(v["status"], "fail");
        assert_eq!(v["phase"], "draining");
        assert_eq!(
            v["probe"],
            json!({"kind": "tcp", "ok": false, "consecutive_failures": 1})
        );
    }
}
