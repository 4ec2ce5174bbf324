//! `vigil drill` inside the loop: the held connections and the SIGTERM once the app is ready,
//! and the report at the end.

use super::Supervisor;
use crate::cli::DrillConfig;
use crate::drill::{self, Outcome};
use crate::error::Error;
use crate::listen;
use crate::log;
use crate::probe;
use crate::procs;
use crate::reaper;
use crate::sig::Sig;
use nix::unistd::geteuid;
use serde_json::{Value, json};
use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long `--hold` may take to open all its connections (the app is ready: they are quick).
const HOLD_TIMEOUT: Duration = Duration::from_secs(2);

/// What the drill does outside the verdict's logic: the connections it holds and the report file.
#[derive(Debug, Default)]
pub(super) struct DrillIo {
    /// `--hold N` to (host, port).
    hold: Option<(u32, String, u16)>,
    held: Vec<TcpStream>,
    /// `--report FILE`, opened at start-up while vigil may still be root.
    report: Option<(PathBuf, File)>,
    budget_s: f64,
}

impl DrillIo {
    /// Opens the report file now, before the `--user` drop, so a path only root may write works
    /// and a bad one stops the start (exit 2) before anything runs.
    pub(super) fn open(d: &DrillConfig) -> Result<DrillIo, Error> {
        let report = match &d.report {
            Some(path) => {
                let file = File::create(path).map_err(|e| {
                    Error::bad(
                        "--report",
                        &path.to_string_lossy(),
                        format!("cannot open: {e}"),
                    )
                })?;
                Some((path.clone(), file))
            }
            None => None,
        };
        let hold = d
            .hold_target
            .clone()
            .filter(|_| d.hold > 0)
            .map(|(host, port)| (d.hold, host, port));
        Ok(DrillIo {
            hold,
            held: Vec::new(),
            report,
            budget_s: d.budget.as_secs_f64(),
        })
    }
}

impl Supervisor {
    /// `vigil drill`: once the app is ready (or can no longer be), drain as the platform would.
    pub(super) fn drill_step(&mut self) {
        let Some(drill) = self.drill.as_mut() else {
            return;
        };
        let status = self.status.get();
        let running = self.app_status.is_none();
        if drill.holding() {
            let port = self.drill_io.hold.as_ref().map_or(0, |(_, _, port)| *port);
            // No listener here (a remote target): nothing to wait for.
            if listen::backlog(port).unwrap_or(0) == 0 {
                drill.accepted();
            }
        }
        match drill.step(Instant::now(), status.ready(), running) {
            drill::Step::Wait => {}
            drill::Step::Hold => self.hold(),
            step => {
                let ready = step == drill::Step::Signal;
                log::info("drill: sending SIGTERM", &[("ready", json!(ready))]);
                self.drain_on(Sig::TERM);
            }
        }
    }

    /// `--hold N`: opens the idle connections, kept until vigil is done. The SIGTERM waits until
    /// the app has accepted them (`listen::backlog`), at most `drill::HOLD_WAIT`.
    fn hold(&mut self) {
        let Some((n, host, port)) = self.drill_io.hold.clone() else {
            return;
        };
        let deadline = Instant::now() + HOLD_TIMEOUT;
        let mut why = None;
        for _ in 0..n {
            match probe::connect(&host, port, deadline) {
                Ok(stream) => self.drill_io.held.push(stream),
                Err(e) => {
                    why = Some(e);
                    break;
                }
            }
        }
        let open = self.drill_io.held.len();
        let mut fields = vec![
            ("count", json!(open)),
            ("target", json!(format!("{host}:{port}"))),
        ];
        match &why {
            Some(e) => {
                fields.push(("error", json!(e)));
                log::warn("drill: connections not all held", &fields);
            }
            None => log::info("drill: holding connections", &fields),
        }
        if let Some(drill) = self.drill.as_mut() {
            drill.held(open, why);
        }
    }

    /// For a drill, prints the report and turns `code` into the verdict's status.
    pub(super) fn report(&mut self, code: u8) -> u8 {
        let Some(drill) = &self.drill else {
            return code;
        };
        let report = if self.front.seq.stopped().is_some() {
            failed_start(code, self.drill_io.budget_s)
        } else {
            let outcome = Outcome {
                exit_status: code,
                app_signal: self
                    .app_status
                    .and_then(reaper::term_signal)
                    .map(super::signal_name),
                app_exited_itself: self.app_exited_itself,
                forced_kill: self.drain.killed(),
                app_uid: geteuid().as_raw(),
                leftover: procs::descendants().len(),
                finished_at: Instant::now(),
            };
            drill.report(&outcome)
        };
        self.emit(&report)
    }

    /// The report: on stdout after a newline, so an app's unterminated last line cannot run
    /// into it, and to `--report FILE`. Returns 0 on pass, else 1.
    fn emit(&mut self, report: &Value) -> u8 {
        self.drill_io.held.clear();
        log::info("drill finished", &[("verdict", report["verdict"].clone())]);
        let _ = write!(std::io::stdout(), "\n{report}\n");
        if let Some((path, file)) = self.drill_io.report.as_mut()
            && let Err(e) = writeln!(file, "{report}")
        {
            log::error(
                "drill: cannot write the report",
                &[
                    ("path", json!(path.to_string_lossy())),
                    ("error", json!(e.to_string())),
                ],
            );
        }
        if report["verdict"] == "pass" { 0 } else { 1 }
    }
}

/// The drill's report when the app never ran: a hook failed (`code`: its status) or the app
/// could not be executed (127 or 126).
fn failed_start(code: u8, budget_s: f64) -> Value {
    json!({
        "ready_s": null,
        "drain_s": null,
        "forced_kill": false,
        "exit_status": code,
        "app_uid": geteuid().as_raw(),
        "leftover": procs::descendants().len(),
        "budget_s": budget_s,
        "verdict": "fail",
        "reasons": [format!("the app failed to start (status {code}): it could not be executed, or a hook failed")],
    })
}
