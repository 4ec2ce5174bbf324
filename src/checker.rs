//! The checker thread: runs the configured probe every `--probe-interval` and records the result
//! in the shared status, which the health endpoints read. It stops for good when a drain starts
//! or the app exits: an app that is shutting down fails its probe by design (postgres logs a FATAL
//! line for each one), and liveness must hold until it is gone.
//!
//! Exec probes are children of vigil, and only the supervisor reaps (a `Child::wait` here would
//! race its `waitpid(-1)` and get ECHILD). So the checker registers the pid in `ProbeChildren`
//! while still holding the lock it took for the fork, and the supervisor hands the status over
//! when it reaps that pid. On timeout the probe's whole process group is killed.

use crate::cli::Config;
use crate::log;
use crate::metrics::{self, Outcome};
use crate::probe::{self, ProbeSpec};
use crate::reaper;
use crate::signals::Waker;
use crate::status::{App, Shared};
use crate::sys;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Probe pid -> its wait status, once reaped. A BTreeMap: a HashMap seeds itself from the
/// kernel's random numbers, and std panics when getrandom fails; PID 1 needs no randomness.
type Statuses = BTreeMap<i32, Option<i32>>;

/// Exec probe children and, once reaped, their wait status.
#[derive(Debug, Clone, Default)]
pub struct ProbeChildren(Arc<(Mutex<Statuses>, Condvar)>);

impl ProbeChildren {
    fn lock(&self) -> MutexGuard<'_, Statuses> {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns `child` and registers it before the supervisor can reap it (one that failed to
    /// exec too, so it is not taken for an orphan). The lock is held from before the fork until
    /// the pid is in, and no longer: the child's report is read without it, so the supervisor
    /// never waits on a spawn.
    fn spawn(&self, child: &sys::Child) -> Result<i32, sys::SpawnError> {
        let mut map = self.lock();
        sys::spawn(child, move |pid| {
            map.insert(pid, None);
        })
    }

    /// Whether an exec probe is running (a child the supervisor is to reap).
    pub fn any(&self) -> bool {
        self.lock().values().any(Option::is_none)
    }

    /// Called by the supervisor for every reaped pid: true if it was a probe's.
    pub fn deliver(&self, pid: i32, status: i32) -> bool {
        let mut map = self.lock();
        match map.get_mut(&pid) {
            Some(slot) => {
                *slot = Some(status);
                self.0.1.notify_all();
                true
            }
            None => false,
        }
    }

    /// Waits for `pid`'s status until `deadline`; the pid is forgotten once it is returned.
    fn wait(&self, pid: i32, deadline: Instant) -> Option<i32> {
        let mut map = self.lock();
        loop {
            if let Some(Some(status)) = map.get(&pid) {
                let status = *status;
                map.remove(&pid);
                return Some(status);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            map = match self.0.1.wait_timeout(map, left) {
                Ok((m, _)) => m,
                Err(p) => p.into_inner().0,
            };
        }
    }

    fn forget(&self, pid: i32) {
        self.lock().remove(&pid);
    }
}

/// Exec probes start a process each: before the first pass they run no more often than this,
/// whatever `--startup-interval` says.
const EXEC_STARTUP_FLOOR: Duration = Duration::from_millis(500);

/// What the checker needs, copied out of the configuration.
pub struct Checker {
    pub spec: ProbeSpec,
    pub timeout: Duration,
    pub cadence: Cadence,
    pub status: Shared,
    pub children: ProbeChildren,
    /// Woken after every result (the drill waits for readiness).
    pub waker: Option<Waker>,
}

impl Checker {
    pub fn new(
        config: &Config,
        spec: ProbeSpec,
        status: Shared,
        children: ProbeChildren,
        waker: Option<Waker>,
    ) -> Checker {
        let startup = match spec {
            ProbeSpec::Exec { .. } => config.startup_interval.max(EXEC_STARTUP_FLOOR),
            _ => config.startup_interval,
        };
        Checker {
            spec,
            timeout: config.probe_timeout,
            cadence: Cadence::new(
                startup,
                config.probe_interval,
                Instant::now() + config.startup_grace,
            ),
            status,
            children,
            waker,
        }
    }

    /// Starts the thread. Failing to start it leaves vigil running without probes, logged.
    pub fn start(self) {
        let spawned = std::thread::Builder::new()
            .name("checker".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                crate::signals::block_again();
                self.run()
            });
        if let Err(e) = spawned {
            log::error(
                "probe checker not started",
                &[("error", json!(e.to_string()))],
            );
        }
    }

    fn run(mut self) {
        let kind = self.spec.kind();
        loop {
            let status = self.status.get();
            if status.app == App::Exited || status.draining {
                return;
            }
            let started = Instant::now();
            let result = self.probe_once();
            metrics::probed(outcome(&result), started.elapsed());
            let now = Instant::now();
            let in_grace = self.cadence.in_grace(now);
            let ok = result.is_ok();
            let counted = self.cadence.record(ok, now);
            let (mut before, mut draining) = (None, false);
            self.status.update(|s| {
                before = s.probe.as_ref().and_then(|p| p.ok);
                draining = s.draining;
                s.record_probe(ok, !counted);
            });
            if draining {
                return;
            }
            match (&result, before) {
                (Ok(detail), Some(false) | None) => log::info(
                    "probe passing",
                    &[("kind", json!(kind)), ("detail", json!(detail))],
                ),
                (Err(why), Some(true)) => log::warn(
                    "probe failing",
                    &[("kind", json!(kind)), ("error", json!(why))],
                ),
                (Err(why), None) => log::info(
                    "probe not passing yet",
                    &[
                        ("kind", json!(kind)),
                        ("error", json!(why)),
                        ("in_grace", json!(in_grace)),
                    ],
                ),
                _ => log::debug("probe result", &[("kind", json!(kind)), ("ok", json!(ok))]),
            }
            if let Some(w) = &self.waker {
                w.wake();
            }
            let next = self.cadence.next(started);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }

    fn probe_once(&self) -> Result<String, String> {
        match &self.spec {
            ProbeSpec::Exec { argv } => self.exec(argv),
            other => probe::check(other, self.timeout),
        }
    }

    /// Runs the exec probe as vigil's (already dropped) user, in its own process group, with
    /// no stdio of its own: its output would otherwise interleave with the app's every interval.
    fn exec(&self, argv: &[String]) -> Result<String, String> {
        let prog = argv.first().ok_or("empty command")?;
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let child = sys::Child {
            argv: &argv,
            env: None,
            stdout: None,
            null_stdio: true,
            take_terminal: false,
        };
        let deadline = Instant::now() + self.timeout;
        let pid = match self.children.spawn(&child) {
            Ok(pid) => pid,
            Err(e) => {
                // Its status (127 or 126) says no more than the error; collect it all the same.
                if let Some(pid) = e.pid
                    && self.children.wait(pid, deadline).is_none()
                {
                    self.children.forget(pid);
                }
                return Err(format!("cannot run {prog}: {}", e.error));
            }
        };
        match self.children.wait(pid, deadline) {
            Some(status) => match reaper::exit_code(status) {
                0 => Ok("exit 0".into()),
                code => Err(format!("exit {code}")),
            },
            None => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                // Give the reaper a moment to collect it, so it is not logged as an orphan.
                if self
                    .children
                    .wait(pid, Instant::now() + Duration::from_secs(1))
                    .is_none()
                {
                    self.children.forget(pid);
                }
                Err(probe::TIMED_OUT.into())
            }
        }
    }
}

/// How a probe's result counts in `/metrics`.
fn outcome(result: &Result<String, String>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(why) if why == probe::TIMED_OUT => Outcome::Timeout,
        Err(_) => Outcome::Fail,
    }
}

/// When probes run, and which failures count against liveness: every `--startup-interval` until
/// the first pass, so readiness follows an app within about that interval of it answering, then
/// every `--probe-interval` (an idle vigil wakes only for those). Before the first pass, a failure
/// outside the startup grace counts only if the last counted one is a probe interval old, so the
/// faster start-up probing never fails liveness sooner than `--probe-failures` intervals would.
#[derive(Debug, Clone)]
pub struct Cadence {
    startup: Duration,
    interval: Duration,
    grace_end: Instant,
    passed: bool,
    last_counted: Option<Instant>,
}

impl Cadence {
    pub fn new(startup: Duration, interval: Duration, grace_end: Instant) -> Cadence {
        Cadence {
            startup: startup.min(interval),
            interval,
            grace_end,
            passed: false,
            last_counted: None,
        }
    }

    pub fn in_grace(&self, now: Instant) -> bool {
        now < self.grace_end
    }

    /// Records a result at `now`; true when a failure counts against liveness.
    pub fn record(&mut self, ok: bool, now: Instant) -> bool {
        if ok {
            self.passed = true;
        }
        if ok || self.passed {
            return true;
        }
        if self.in_grace(now) {
            return false;
        }
        let due = self
            .last_counted
            .is_none_or(|at| now.saturating_duration_since(at) >= self.interval);
        if due {
            self.last_counted = Some(now);
        }
        due
    }

    /// When the probe after one that started at `started` is due.
    pub fn next(&self, started: Instant) -> Instant {
        started
            + if self.passed {
                self.interval
            } else {
                self.startup
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn startup_interval_until_the_first_pass() {
        let t0 = Instant::now();
        let mut c = Cadence::new(ms(100), ms(5000), t0 + ms(60_000));
        assert_eq!(c.next(t0), t0 + ms(100));
        assert!(!c.record(false, t0 + ms(100)), "in the grace");
        assert_eq!(c.next(t0 + ms(100)), t0 + ms(200));
        c.record(true, t0 + ms(200));
        assert_eq!(
            c.next(t0 + ms(200)),
            t0 + ms(5200),
            "then the probe interval"
        );
        c.record(false, t0 + ms(5200));
        assert_eq!(
            c.next(t0 + ms(5200)),
            t0 + ms(10_200),
            "a later failure changes nothing"
        );
    }

    #[test]
    fn startup_interval_is_never_slower_than_the_probe_interval() {
        let t0 = Instant::now();
        let c = Cadence::new(ms(100), ms(50), t0);
        assert_eq!(c.next(t0), t0 + ms(50));
    }

    #[test]
    fn failures_before_the_first_pass_count_once_an_interval() {
        let t0 = Instant::now();
        let mut c = Cadence::new(ms(100), ms(1000), t0);
        let counted: Vec<u64> = (0..35)
            .map(|i| i * 100)
            .filter(|&at| c.record(false, t0 + ms(at)))
            .collect();
        assert_eq!(counted, [0, 1000, 2000, 3000]);
    }

    #[test]
    fn after_a_pass_every_failure_counts() {
        let t0 = Instant::now();
        let mut c = Cadence::new(ms(100), ms(1000), t0 + ms(60_000));
        assert!(c.record(true, t0));
        assert!(c.record(false, t0 + ms(1000)), "even in the grace");
        assert!(c.record(false, t0 + ms(2000)));
    }
}
