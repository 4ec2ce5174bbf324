//! The shared state the health endpoints answer from: phase, app liveness, the last probe.
//!
//! The supervisor and the probe checker write it; the health thread reads a copy. Lock, copy,
//! unlock: the lock is never held across I/O.

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
    Running,
    Exited,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub app: App,
    pub draining: bool,
    /// Whether the app has been ready (probe passed, or no probe) at least once.
    pub ready_once: bool,
}

impl Status {
    pub fn phase(&self) -> Phase {
        match self.app {
            App::NotStarted => Phase::Starting,
            App::Exited => Phase::Exited,
            App::Running if self.draining => Phase::Draining,
            App::Running if self.ready_once => Phase::Running,
            App::Running => Phase::Starting,
        }
    }
}

/// A handle shared by the supervisor and the health threads.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Status>>);

impl Shared {
    pub fn new() -> Shared {
        Shared(Arc::new(Mutex::new(Status {
            app: App::NotStarted,
            draining: false,
            ready_once: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        // A poisoned lock only means another thread panicked mid-update (it cannot: panics
        // abort); the data is still the best we have.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self) -> Status {
        self.lock().clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases() {
        let s = |app, draining, ready_once| {
            Status {
                app,
                draining,
                ready_once,
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
}
