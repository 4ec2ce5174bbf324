//! `vigil drill` inside the loop: the SIGTERM once the app is ready, and the report at the end.

use super::Supervisor;
use crate::drill::{self, Outcome};
use crate::log;
use crate::procs;
use crate::sig::Sig;
use nix::unistd::geteuid;
use serde_json::json;
use std::io::Write;
use std::time::Instant;
impl Supervisor {
    /// `vigil drill`: once the app is ready (or can no longer be), drain as the platform would.
    pub(super) fn drill_step(&mut self) {
        let Some(drill) = self.drill.as_mut() else {
            return;
        };
        let status = self.status.get();
        let running = self.app_status.is_none();
        match drill.step(Instant::now(), status.ready(), running) {
            drill::Step::Wait => {}
            step => {
                let ready = step == drill::Step::Signal;
                log::info("drill: sending SIGTERM", &[("ready", json!(ready))]);
                self.drain_on(Sig::TERM);
            }
        }
    }

    /// For a drill, prints the report and turns `code` into the verdict's status.
    pub(super) fn report(&self, code: u8) -> u8 {
        let Some(drill) = &self.drill else {
            return code;
        };
        if self.front.seq.stopped().is_some() {
            return failed_start(code);
        }
        let outcome = Outcome {
            exit_status: code,
            app_exited_itself: self.app_exited_itself,
            forced_kill: self.drain.killed(),
            app_uid: geteuid().as_raw(),
            leftover: procs::descendants().len(),
            finished_at: Instant::now(),
        };
        let report = drill.report(
            &outcome,
            self.config
                .drain_timeout
                .unwrap_or(crate::cli::DEFAULT_DRAIN_TIMEOUT),
        );
        let pass = report["verdict"] == "pass";
        log::info("drill finished", &[("verdict", report["verdict"].clone())]);
        let _ = writeln!(std::io::stdout(), "{report}");
        if pass { 0 } else { 1 }
    }
}

/// The drill's report when the app never ran: a hook failed (`code`: its status) or the app
/// could not be executed (127 or 126); returns 1.
pub(super) fn failed_start(code: u8) -> u8 {
    let report = json!({
        "ready_s": null,
        "drain_s": null,
        "forced_kill": false,
        "exit_status": code,
        "app_uid": geteuid().as_raw(),
        "leftover": procs::descendants().len(),
        "verdict": "fail",
        "reasons": [format!("the app failed to start (status {code}): it could not be executed, or a hook failed")],
    });
    let _ = writeln!(std::io::stdout(), "{report}");
    1
}
