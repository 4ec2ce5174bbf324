//! The whole lifecycle in one place: start, run, drain, exit.
//!
//! Start-up can fail (`?`, exit 2, nothing spawned). Once the app runs, nothing leaves the loop as
//! an error: every failure is logged and the loop carries on, because PID 1 must not die early.

use crate::catch_up::CatchUp;
use crate::checker::{Checker, ProbeChildren};
use crate::cli::Config;
use crate::drain::{Action, Drain, Trigger};
use crate::drill::{self, Drill, Outcome};
use crate::error::Error;
use crate::health;
use crate::log::{self, Lazy};
use crate::privileges;
use crate::procs;
use crate::reaper;
use crate::signals::{FORWARDED, Signals};
use crate::spawn;
use crate::status::{App, Shared, Status};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, getegid, geteuid, getpid};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

/// How often vigil re-sweeps after the SIGKILL, for processes forked mid-sweep.
const SWEEP_EVERY: Duration = Duration::from_millis(20);
/// The most one subreaper sweep spends rescanning /proc for processes forked during it.
const SWEEP_BUDGET: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// PID 1 of a pid namespace: `kill(-1, ...)` reaches everything but us.
    Pid1,
    /// Anywhere else: PR_SET_CHILD_SUBREAPER, and only our own tree is ours to signal.
    Subreaper,
}

pub struct Supervisor {
    config: Config,
    signals: Signals,
    mode: Mode,
    status: Shared,
    probe_children: ProbeChildren,
    app: Pid,
    app_status: Option<i32>,
    drain: Drain,
    children_left: bool,
    last_sweep: Option<Instant>,
    gave_up: bool,
    /// Whether the app was reaped before any SIGKILL was sent.
    app_exited_itself: bool,
    /// `vigil drill`: vigil sends the SIGTERM itself and reports.
    drill: Option<Drill>,
    /// The bookkeeping a forward's fast path owes (see `run`).
    catch_up: CatchUp,
}

/// Runs `vigil [OPTIONS] -- COMMAND` and returns vigil's exit status.
pub fn run(config: Config) -> u8 {
    run_with(config, None)
}

/// Runs `vigil drill`: as `run`, with vigil's own SIGTERM once the app is ready (`after`
/// seconds after the spawn without a probe), and the report as the last line on stdout.
/// Returns 0 on pass, 1 on fail.
pub fn drill(config: Config, after: Duration) -> u8 {
    run_with(config, Some(after))
}

fn run_with(config: Config, drill_after: Option<Duration>) -> u8 {
    log::init(config.log_format, config.log_level);
    match Supervisor::start(config, drill_after) {
        Ok(Ok(mut sup)) => sup.run(),
        Ok(Err(code)) if drill_after.is_some() => {
            let report = json!({
                "ready_s": null,
                "drain_s": null,
                "forced_kill": false,
                "exit_status": code,
                "app_uid": geteuid().as_raw(),
                "leftover": procs::descendants().len(),
                "verdict": "fail",
                "reasons": [format!("the app failed to start (status {code})")],
            });
            let _ = writeln!(std::io::stdout(), "{report}");
            exiting(1)
        }
        Ok(Err(code)) => exiting(code),
        Err(e) => {
            log::error(&e.to_string(), &[]);
            Error::EXIT_STATUS
        }
    }
}

impl Supervisor {
    /// Everything up to and including the spawn. `Ok(Err(code))`: the app could not be
    /// executed (127/126), which is the app's failure, not vigil's.
    fn start(
        config: Config,
        drill_after: Option<Duration>,
    ) -> Result<Result<Supervisor, u8>, Error> {
        // Block signals first: before any thread exists, and before anything can send them.
        let signals = Signals::block()?;
        let mode = if getpid().as_raw() == 1 {
            Mode::Pid1
        } else {
            nix::sys::prctl::set_child_subreaper(true).map_err(|errno| Error::Startup {
                op: "become a child subreaper",
                errno,
            })?;
            Mode::Subreaper
        };
        let creds = match &config.user {
            Some(spec) => Some((spec, privileges::lookup(spec)?)),
            None => None,
        };
        let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
        let status = Shared::new(Status::new(
            config.probe.as_ref().map(|p| p.kind()),
            config.probe_failures,
        ));
        // Bind while still root (a low port may need it), then give root up for good.
        let listener = config.health_listen.map(health::bind).transpose()?;
        if let Some((spec, c)) = &creds {
            privileges::drop_to(spec, c)?;
        }
        // Everything that can refuse to start has run: from here on, every line is an event.
        log::info(
            "vigil starting",
            &[
                ("version", json!(env!("CARGO_PKG_VERSION"))),
                ("pid", json!(getpid().as_raw())),
                (
                    "mode",
                    json!(if mode == Mode::Pid1 {
                        "pid1"
                    } else {
                        "subreaper"
                    }),
                ),
                ("uid", json!(uid)),
                ("gid", json!(gid)),
            ],
        );
        if let Some((spec, c)) = &creds {
            log::info(
                "privileges dropped",
                &[
                    ("user", json!(spec.to_string())),
                    ("uid", json!(c.uid)),
                    ("gid", json!(c.gid)),
                    ("groups", json!(c.groups)),
                ],
            );
        }
        if geteuid().is_root() {
            log::warn(
                "running as root",
                &[(
                    "hint",
                    json!("set --user or VIGIL_USER: the platform requires non-root"),
                )],
            );
        }
        if let Some(listener) = listener {
            health::start(listener, status.clone())?;
        }

        let home = creds.as_ref().map(|(_, c)| c.home.as_str());
        let command: Vec<String> = config
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let app = match spawn::spawn_app(&config.command, home) {
            Ok(pid) => Pid::from_raw(pid),
            Err(e) => {
                let code = spawn::exec_failure_code(&e);
                log::error(
                    "app failed to start",
                    &[
                        ("command", json!(command)),
                        ("error", json!(e.to_string())),
                        ("code", json!(code)),
                    ],
                );
                return Ok(Err(code));
            }
        };
        log::info(
            "app spawned",
            &[
                ("pid", json!(app.as_raw())),
                ("pgid", json!(app.as_raw())),
                ("command", json!(command)),
            ],
        );
        status.update(|s| {
            s.app = App::Running;
            s.ready_once = config.probe.is_none();
        });
        let probe_children = ProbeChildren::default();
        if let Some(spec) = config.probe.clone() {
            // Only the drill needs waking on each result; a plain run reads the status lazily.
            let waker = drill_after.map(|_| signals.waker());
            Checker::new(&config, spec, status.clone(), probe_children.clone(), waker).start();
        }
        let drain = Drain::new(config.drain_timeout, config.drain_delay, config.stop_signal);
        let drill = drill_after.map(|after| {
            Drill::new(
                after,
                config.startup_grace,
                config.probe.is_some(),
                Instant::now(),
            )
        });
        Ok(Ok(Supervisor {
            config,
            signals,
            mode,
            status,
            probe_children,
            app,
            app_status: None,
            drain,
            children_left: true,
            last_sweep: None,
            gave_up: false,
            app_exited_itself: false,
            drill,
            catch_up: CatchUp::default(),
        }))
    }

    /// The loop: deadline, wait, dispatch, reap, act on what is due, maybe finish.
    ///
    /// A forwarded signal takes a fast path: the kill, then straight back to the wait. The
    /// bookkeeping it skips (its log line, other pending signals, the reap) is paid by the
    /// next pass, within `catch_up::WITHIN` (see there).
    fn run(&mut self) -> u8 {
        loop {
            let wake_at = self.next_deadline();
            match self.signals.wait(wake_at) {
                Some(sig) if FORWARDED.contains(&sig) => {
                    self.forward(sig, "forward");
                    let signals = &mut self.signals;
                    if self
                        .catch_up
                        .forwarded(Instant::now(), |d| signals.wake_in(d))
                    {
                        continue;
                    }
                }
                Some(sig) => self.on_signal(sig),
                None => {}
            }
            if self.catch_up.settle() {
                self.signals.disarm(); // the reap below covers a SIGCHLD lost with its signal
            }
            // Everything else pending, so a flood of one signal cannot starve another: the
            // kernel always hands out the lowest pending signal first.
            for sig in self.signals.pending() {
                self.on_signal(sig);
            }
            self.reap();
            self.drill_step();
            let due = self.drain.due(Instant::now());
            self.act(&due);
            self.sweep_after_kill();
            if let Some(code) = self.finished() {
                return exiting(self.report(code));
            }
            // Whatever this pass deferred (the drain's forward) is written before vigil waits.
            log::flush();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sweep = match (self.drain.killed(), self.last_sweep) {
            (true, Some(at)) if self.children_left => Some(at + SWEEP_EVERY),
            _ => None,
        };
        let drill = self.drill.as_ref().and_then(Drill::deadline);
        [
            self.drain.next_deadline(),
            sweep,
            drill,
            self.catch_up.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// `vigil drill`: once the app is ready (or can no longer be), drain as the platform would.
    fn drill_step(&mut self) {
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
                self.on_signal(Signal::SIGTERM);
            }
        }
    }

    /// For a drill, prints the report and turns `code` into the verdict's status.
    fn report(&self, code: u8) -> u8 {
        let Some(drill) = &self.drill else {
            return code;
        };
        let outcome = Outcome {
            exit_status: code,
            app_exited_itself: self.app_exited_itself,
            forced_kill: self.drain.killed(),
            app_uid: geteuid().as_raw(),
            leftover: procs::descendants().len(),
            finished_at: Instant::now(),
        };
        let report = drill.report(&outcome, self.config.drain_timeout);
        let pass = report["verdict"] == "pass";
        log::info("drill finished", &[("verdict", report["verdict"].clone())]);
        let _ = writeln!(std::io::stdout(), "{report}");
        if pass { 0 } else { 1 }
    }

    fn on_signal(&mut self, sig: Signal) {
        let now = Instant::now();
        match sig {
            Signal::SIGTERM | Signal::SIGINT => {
                let trigger = if sig == Signal::SIGTERM {
                    Trigger::Term
                } else {
                    Trigger::Int
                };
                let actions = self.drain.on_signal(trigger, now);
                self.act(&actions);
            }
            s if FORWARDED.contains(&s) => self.forward(s, "forward"),
            // SIGCHLD: the reap that follows every wake-up handles it. SIGTTIN/SIGTTOU: only
            // blocked, so a background vigil writing to the terminal is never stopped.
            _ => {}
        }
    }

    fn act(&mut self, actions: &[Action]) {
        for action in actions {
            match *action {
                Action::Started(trigger) => {
                    self.status.update(|s| s.draining = true);
                    let signal = if trigger == Trigger::Term {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    log::info(
                        "drain started",
                        &[
                            ("signal", json!(signal)),
                            ("delay_s", json!(self.config.drain_delay.as_secs_f64())),
                            ("timeout_s", json!(self.config.drain_timeout.as_secs_f64())),
                        ],
                    );
                }
                Action::Forward(sig) => self.forward(sig, "drain"),
                Action::DeadlineMoved => {
                    log::info("drain deadline moved", &[("signal", json!("SIGINT"))])
                }
                Action::TermLeftovers => {
                    self.signal_everything(Signal::SIGTERM);
                    let count = procs::descendants().len();
                    log::info("terminating leftovers", &[("count", json!(count))]);
                }
                Action::KillAll => {
                    // The signal first, the /proc walk for the log line after: the deadline is
                    // the promise, the count is only a fact.
                    self.signal_everything(Signal::SIGKILL);
                    self.last_sweep = Some(Instant::now());
                    let remaining = procs::descendants().len();
                    log::warn("forced kill", &[("remaining", json!(remaining))]);
                }
                Action::GiveUp => self.gave_up = true,
            }
        }
    }

    /// Sends `sig` to the app's process group (its pgid is its pid).
    fn forward(&self, sig: Signal, reason: &'static str) {
        // Read before the kill: on another CPU the app's handler can run before killpg returns.
        let at = SystemTime::now();
        match killpg(self.app, sig) {
            // Written once vigil has waited again (`run`), stamped with the time of the kill.
            Ok(()) => log::later(
                at,
                log::Level::Info,
                "signal forwarded",
                [
                    ("signal", Lazy::Str(sig.as_str())),
                    ("pgid", Lazy::Int(self.app.as_raw().into())),
                    ("reason", Lazy::Str(reason)),
                ],
            ),
            Err(errno) => not_delivered(sig, "pgid", self.app.as_raw(), errno),
        }
    }

    /// SIGTERM or SIGKILL to everything left: as PID 1 every process in the namespace; as a
    /// subreaper the app's group and our own descendants, never anything outside them.
    fn signal_everything(&self, sig: Signal) {
        if self.mode == Mode::Pid1 {
            match kill(Pid::from_raw(-1), sig) {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(errno) => not_delivered(sig, "pid", -1, errno),
            }
            return;
        }
        match killpg(self.app, sig) {
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
                match kill(Pid::from_raw(pid), sig) {
                    Ok(()) | Err(nix::Error::ESRCH) => {}
                    Err(errno) => not_delivered(sig, "pid", pid, errno),
                }
                signalled.push(pid);
            }
        }
    }

    /// A SIGKILL sweep can miss a process forked during it (even `kill(-1)` is not atomic
    /// against fork); sweep again until nothing is left or the reap grace is over.
    fn sweep_after_kill(&mut self) {
        if !self.drain.killed() || !self.children_left {
            return;
        }
        let now = Instant::now();
        if self.last_sweep.is_some_and(|at| now >= at + SWEEP_EVERY) {
            self.signal_everything(Signal::SIGKILL);
            self.last_sweep = Some(now);
        }
    }

    /// Collects every exited child: the app's status is kept, orphans are logged at debug.
    fn reap(&mut self) {
        let reaped = reaper::reap();
        self.children_left = reaped.children_left;
        let mut app_exited = false;
        for (pid, status) in reaped.exited {
            if pid == self.app.as_raw() {
                self.app_status = Some(status);
                self.app_exited_itself = !self.drain.killed();
                app_exited = true;
                self.status.update(|s| s.app = App::Exited);
                let mut fields = vec![
                    ("pid", json!(pid)),
                    ("status", json!(reaper::exit_code(status))),
                ];
                match reaper::term_signal(status) {
                    Some(sig) => fields.push(("signal", json!(signal_name(sig)))),
                    None => fields.push(("code", json!(reaper::exit_code(status)))),
                }
                log::info("app exited", &fields);
            } else if self.probe_children.deliver(pid, status) {
                continue;
            } else if log::enabled(log::Level::Debug) {
                log::debug(
                    "orphan reaped",
                    &[
                        ("pid", json!(pid)),
                        ("status", json!(reaper::exit_code(status))),
                    ],
                );
            }
        }
        if app_exited {
            let actions = self.drain.on_app_exit(Instant::now(), self.children_left);
            self.act(&actions);
        }
    }

    /// Vigil's exit status once there is nothing left to wait for.
    fn finished(&self) -> Option<u8> {
        let done = self.gave_up || (self.app_status.is_some() && !self.children_left);
        if !done {
            return None;
        }
        // An app never reaped by the end was SIGKILLed with the rest: 128 + 9.
        let code = self.app_status.map_or(128 + 9, reaper::exit_code);
        Some(reaper::reported(code, &self.config.success_exit))
    }
}

fn exiting(code: u8) -> u8 {
    log::info("exiting", &[("code", json!(code))]);
    log::flush(); // lines below the log level are dropped, but a deferred one never is
    code
}

fn not_delivered(sig: Signal, target: &str, id: i32, errno: nix::Error) {
    let fields = [
        ("signal", json!(sig.as_str())),
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

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| format!("SIG{sig}"), |s| s.as_str().to_string())
}
