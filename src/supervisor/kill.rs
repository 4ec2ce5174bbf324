//! Signals to everything left: the drain's SIGTERM to leftovers and the SIGKILL sweeps.

use super::{Mode, SWEEP_EVERY, Supervisor};
use crate::log;
use crate::procs;
use crate::sig::Sig;
use crate::sys::kill;
use serde_json::json;
use std::time::{Duration, Instant};

/// The most one subreaper sweep spends rescanning /proc for processes forked during it.
const SWEEP_BUDGET: Duration = Duration::from_millis(50);
impl Supervisor {
    /// SIGTERM or SIGKILL to everything left: as PID 1 every process in the namespace; as a
    /// subreaper the app's group and our own descendants, never anything outside them.
    pub(super) fn signal_everything(&self, sig: Sig) {
        if self.mode == Mode::Pid1 {
            match kill(-1, sig.raw()) {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(errno) => not_delivered(sig, "pid", -1, errno),
            }
            return;
        }
        match kill(-self.app.as_raw(), sig.raw()) {
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(errno) => not_delivered(sig, "pgid", self.app.as_raw(), errno),
        }
        // A process can fork between the /proc scan and its signal; scan again until a pass
        // finds nobody new (a SIGKILLed process cannot fork any more, so this converges).
        let mut signalled: Vec<i32> = Vec::new();
        let until = Instant::now() + SWEEP_BUDGET;
        while Instant::now() < until {
            let fresh: Vec<i32> = procs::descendants()
                .into_iter()
                .filter(|pid| !signalled.contains(pid))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for pid in fresh {
                match kill(pid, sig.raw()) {
                    Ok(()) | Err(nix::Error::ESRCH) => {}
                    Err(errno) => not_delivered(sig, "pid", pid, errno),
                }
                signalled.push(pid);
            }
        }
    }

    /// A SIGKILL sweep can miss a process forked during it (even `kill(-1)` is not atomic
    /// against fork); sweep again until nothing is left or the reap grace is over.
    pub(super) fn sweep_after_kill(&mut self) {
        if !self.drain.killed() || !self.children_left {
            return;
        }
        let now = Instant::now();
        if self.last_sweep.is_some_and(|at| now >= at + SWEEP_EVERY) {
            self.signal_everything(Sig::KILL);
            self.last_sweep = Some(now);
        }
    }
}

pub(super) fn not_delivered(sig: Sig, target: &str, id: i32, errno: nix::Error) {
    let fields = [
        ("signal", json!(sig.name())),
        (target, json!(id)),
        ("error", json!(errno.desc())),
    ];
    if errno == nix::Error::ESRCH {
        // Nobody left in the group: not a problem, just a fact.
        log::debug("signal not delivered", &fields);
    } else {
        log::warn("signal not delivered", &fields);
    }
}
