//! The whole lifecycle in one place: start, run, drain, exit.
//!
//! Start-up can fail (`?`, exit 2, nothing spawned). Once the app runs, nothing leaves the loop as
//! an error: every failure is logged and the loop carries on, because PID 1 must not die early.
//!
//! Beside it: `start` (everything up to the first spawn), `front` (the hooks and the app, one
//! after another, in front), `kill` (signals to everything left) and `verdict` (`vigil drill`'s
//! SIGTERM and report).

mod front;
mod kill;
mod start;
mod verdict;

use crate::checker::ProbeChildren;
use crate::cli::{Config, DrillConfig};
use crate::drain::{Action, Drain};
use crate::drill::Drill;
use crate::error::Error;
use crate::log;
use crate::metrics;
use crate::procs;
use crate::reaper;
use crate::sig::Sig;
use crate::signals::{Signals, Taken};
use crate::sink;
use crate::stall::Stall;
use crate::status::{App, Shared};
use crate::sys;
use kill::not_delivered;
use nix::unistd::Pid;
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};

/// How often vigil re-sweeps after the SIGKILL, for processes forked mid-sweep.
const SWEEP_EVERY: Duration = Duration::from_millis(20);

/// While log lines are dropped and not yet reported, how often vigil tries to report them.
const DROPPED_RETRY: Duration = Duration::from_millis(250);

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
    /// The drill's held connections and report file.
    drill_io: verdict::DrillIo,
    /// The hooks around the app (`--env-from`, `--pre-start`, `--post-stop`).
    front: front::Front,
    /// `rt_sigtimedwait` failing: no signal can be taken.
    wait_stall: Stall,
    /// `waitpid` failing: the reap is retried until it works.
    reap_stall: Stall,
    /// The hook or app last started in front, until it is reaped: a child known to run.
    unreaped: Option<i32>,
}

/// Runs `vigil [OPTIONS] -- COMMAND` and returns vigil's exit status.
pub fn run(config: Config) -> u8 {
    run_with(config, None)
}

/// Runs `vigil drill`: as `run`, with vigil's own SIGTERM once the app is ready (`--after`
/// seconds after the spawn without a probe), and the report as the last line on stdout.
/// Returns 0 on pass, 1 on fail.
pub fn drill(config: Config, drill: DrillConfig) -> u8 {
    run_with(config, Some(drill))
}

fn run_with(config: Config, drill: Option<DrillConfig>) -> u8 {
    log::init(config.log_format, config.log_level);
    match Supervisor::start(config, drill) {
        Ok(mut sup) => sup.run(),
        Err(e) => {
            log::error(&e.to_string(), &[]);
            Error::EXIT_STATUS
        }
    }
}

impl Supervisor {
    /// The loop: maybe finish, deadline, wait, dispatch, reap, act on what is due, start what
    /// is next in front (a hook or the app).
    fn run(&mut self) -> u8 {
        loop {
            // First, so that a start that stopped before anything ran (a failed fork) ends here
            // rather than in a wait for a signal that never comes.
            if let Some(code) = self.finished() {
                return exiting(self.report(code));
            }
            let wake_at = self.next_deadline();
            // A wake-up by a deadline reaps too; a forward alone does not (one system call less
            // on the signal path: a child's exit always comes with a SIGCHLD of its own).
            let first = self.signals.wait(wake_at);
            match self.signals.failure() {
                Some(e) => self.wait_stall.failed(e, Instant::now()),
                None => self.wait_stall.ok(),
            }
            let mut chld = first.is_none_or(|t| t.sig == Sig::CHLD);
            if let Some(taken) = first {
                self.on_signal(taken);
            }
            // Everything else pending, so a flood of one signal cannot starve another: the
            // kernel always hands out the lowest pending signal first.
            for taken in self.signals.pending() {
                chld |= taken.sig == Sig::CHLD;
                self.on_signal(taken);
            }
            if chld {
                self.reap();
            }
            if let Some(code) = self.stalled() {
                return exiting(code);
            }
            self.drill_step();
            let due = self.drain.due(Instant::now());
            self.act(&due);
            self.front_step();
            self.sweep_after_kill();
            log::report_dropped();
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
            self.front_deadline(),
            self.reap_stall.retry_at(Instant::now()),
            // Lines were dropped on a stalled stderr: look again for the reader now and then.
            sink::owed().then(|| Instant::now() + DROPPED_RETRY),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A signal vigil took: a drain signal (or a SIGINT during a drain) drives the drain, what
    /// another process sent is passed on, and the rest (SIGCHLD, a wake-up; what the kernel or
    /// vigil's own writes raised for vigil) is dropped without a word: a line about a SIGPIPE
    /// from a write to a closed stderr would raise the next one.
    fn on_signal(&mut self, taken: Taken) {
        let sig = taken.sig;
        if self.config.signals.drain_signals.contains(&sig) || self.int_ends_drain(sig) {
            self.drain_on(sig);
        } else if self.passes_on(taken) {
            self.pass_on(sig);
        } else if taken.sent && sig.libc_reserved() {
            log::debug(
                "signal not forwarded",
                &[
                    ("signal", json!(sig.name())),
                    ("reason", json!("reserved for the C library")),
                ],
            );
        }
    }

    /// A drain signal, from the platform or from `vigil drill`.
    fn drain_on(&mut self, sig: Sig) {
        let actions = self.drain.on_signal(sig, Instant::now());
        self.act(&actions);
    }

    /// Whether `taken` is forwarded as it comes (contract, "What vigil does" 5): sent by
    /// another process, and neither a drain signal nor vigil's own.
    fn passes_on(&self, taken: Taken) -> bool {
        let sig = taken.sig;
        taken.sent
            && sig != Sig::CHLD
            && !sig.libc_reserved()
            && !self.config.signals.drain_signals.contains(&sig)
            && !self.int_ends_drain(sig)
    }

    /// A SIGINT during a drain moves the deadline to now, even when SIGINT is not one of the
    /// drain signals; not under a peer's name, where every SIGINT is passed on.
    fn int_ends_drain(&self, sig: Sig) -> bool {
        sig == Sig::INT && self.drain.draining() && !self.config.signals.forward_only
    }

    /// Forwards `sig` after `--rewrite`.
    fn pass_on(&self, sig: Sig) {
        match self.config.signals.forwarded_as(sig) {
            Some(to) => self.forward(to),
            None => log::debug(
                "signal dropped",
                &[
                    ("signal", json!(sig.name())),
                    ("reason", json!("--rewrite")),
                ],
            ),
        }
    }

    fn act(&mut self, actions: &[Action]) {
        for action in actions {
            match *action {
                Action::Started(sig) => {
                    self.status.update(|s| s.draining = true);
                    log::info(
                        "drain started",
                        &[
                            ("signal", json!(sig.name())),
                            ("delay_s", json!(self.config.drain_delay.as_secs_f64())),
                            (
                                "timeout_s",
                                json!(self.config.drain_timeout.map(|t| t.as_secs_f64())),
                            ),
                        ],
                    );
                }
                Action::Forward { sig, step } => self.drain_step(sig, step),
                Action::DeadlineMoved => {
                    log::info("drain deadline moved", &[("signal", json!("SIGINT"))])
                }
                // The signal first, the /proc walk for the log line after (the deadline is the
                // promise, the count only a fact), counting zombies: a process the signal killed
                // on another CPU is one by now, and vigil has not reaped since.
                Action::TermLeftovers { draining } => {
                    self.signal_everything(Sig::TERM);
                    leftovers_termed(procs::hit(), draining);
                }
                Action::KillAll => {
                    self.signal_everything(Sig::KILL);
                    self.last_sweep = Some(Instant::now());
                    let remaining = procs::hit();
                    log::warn("forced kill", &[("remaining", json!(remaining))]);
                }
                Action::GiveUp => self.gave_up = true,
            }
        }
    }

    /// Sends `sig` to the app's process group (its pgid is its pid), or to the app alone with
    /// `--single-child`. Logged at debug only (contract, "Log lines"), so a forward costs no
    /// write at the default level; the drain's own steps are at info (`drain_step`).
    fn forward(&self, sig: Sig) {
        let Some((target, field)) = self.target() else {
            return;
        };
        // Read before the kill: on another CPU the app's handler can run before kill returns.
        let at = log::enabled(log::Level::Debug).then(SystemTime::now);
        match sys::kill(target, sig.raw()) {
            Ok(()) => {
                metrics::forwarded(sig.raw());
                if let Some(at) = at {
                    let fields = [
                        ("signal", json!(sig.name())),
                        (field, json!(self.app.as_raw())),
                        ("reason", json!("forward")),
                    ];
                    log::log_at(at, log::Level::Debug, "signal forwarded", &fields);
                }
            }
            Err(errno) => not_delivered(sig, field, self.app.as_raw(), errno),
        }
    }

    /// One step of the drain (1: its forward; 2 and on: `--stop-signal`'s later steps): `sig`,
    /// then SIGCONT to the same target, so a stopped app can act on it (not after the forward
    /// under a peer's name). The step is logged at info; its SIGCONT only if it fails.
    fn drain_step(&self, sig: Sig, step: usize) {
        let Some((target, field)) = self.target() else {
            return;
        };
        let at = SystemTime::now();
        match sys::kill(target, sig.raw()) {
            Ok(()) => {
                let fields = [
                    ("signal", json!(sig.name())),
                    (field, json!(self.app.as_raw())),
                    ("reason", json!("drain")),
                    ("step", json!(step)),
                ];
                log::log_at(at, log::Level::Info, "signal forwarded", &fields);
            }
            Err(errno) => not_delivered(sig, field, self.app.as_raw(), errno),
        }
        // Under a peer's name the forward is only that, as with tini and dumb-init.
        if step == 1 && self.config.signals.forward_only {
            return;
        }
        if let Err(errno) = sys::kill(target, Sig::CONT.raw()) {
            not_delivered(Sig::CONT, field, self.app.as_raw(), errno);
        }
    }

    /// Where forwarded and stop signals go: the app's group (`kill(-pgid)`), or with
    /// `--single-child` the app alone; and the log field that names it. None once a single
    /// app was reaped: its pid may belong to another process by now.
    fn target(&self) -> Option<(i32, &'static str)> {
        if !self.config.signals.single_child {
            Some((-self.app.as_raw(), "pgid"))
        } else if self.app_status.is_none() {
            Some((self.app.as_raw(), "pid"))
        } else {
            None
        }
    }

    /// Collects every exited child: the app's status is kept, orphans are logged at debug.
    /// When the loop's own waits have failed for `stall::GIVE_UP_AFTER` (no signal can be taken,
    /// so no drain; or no child reaped, so no exit status), ends the app's tree and returns 2.
    fn stalled(&mut self) -> Option<u8> {
        let now = Instant::now();
        let (call, error, failing) = [
            ("rt_sigtimedwait", &self.wait_stall),
            ("waitpid", &self.reap_stall),
        ]
        .into_iter()
        .find_map(|(call, s)| s.given_up(now).map(|(e, d)| (call, e.to_string(), d)))?;
        log::error(
            "event loop failed",
            &[
                ("call", json!(call)),
                ("error", json!(error)),
                ("failing_s", json!(failing.as_secs_f64())),
                (
                    "hint",
                    json!("vigil cannot take signals or reap: everything is killed, exit 2"),
                ),
            ],
        );
        self.signal_everything(Sig::KILL);
        Some(Error::EXIT_STATUS)
    }

    /// Collects every exited child. A pass that failed, or found no children at all while one
    /// is known to run (children leave only through this reap), is tried again shortly: the
    /// SIGCHLD that woke it is spent.
    fn reap(&mut self) {
        let reaped = reaper::reap();
        metrics::reaped(reaped.exited.len());
        let expected = self.unreaped.is_some() || self.probe_children.any();
        let lost = match reaped.error {
            Some(e) => Some(e),
            None if !reaped.children_left && reaped.exited.is_empty() && expected => {
                Some(std::io::Error::from_raw_os_error(libc::ECHILD).to_string())
            }
            None => None,
        };
        match lost {
            Some(e) => self.reap_stall.failed(e, Instant::now()),
            None => {
                self.reap_stall.ok();
                self.children_left = reaped.children_left;
            }
        }
        let mut app_exited = false;
        for (pid, status) in reaped.exited {
            if self.unreaped == Some(pid) {
                self.unreaped = None;
            }
            if self.on_hook_exit(pid, status) {
                continue;
            } else if pid == self.app.as_raw() {
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
            } else {
                self.orphan_reaped(pid, status);
            }
        }
        if app_exited {
            let actions = self.drain.on_app_exit(Instant::now(), self.children_left);
            self.act(&actions);
        }
    }

    /// A reaped orphan is a debug line, or a warn line under tini's `-w`.
    fn orphan_reaped(&self, pid: i32, status: i32) {
        let level = if self.config.reap_warnings {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        if log::enabled(level) {
            let fields = [
                ("pid", json!(pid)),
                ("status", json!(reaper::exit_code(status))),
            ];
            log::log(level, "orphan reaped", &fields);
        }
    }

    /// Vigil's exit status once there is nothing left to wait for.
    fn finished(&self) -> Option<u8> {
        let stopped = self.front.seq.stopped();
        let ended = self.app_status.is_some() || stopped.is_some();
        let done = self.gave_up || (ended && !self.children_left);
        if !done || self.front.seq.holds_exit() {
            return None;
        }
        // The start stopped before the app: a hook's status, never --success-exit'ed.
        if let Some(code) = stopped {
            return Some(code);
        }
        // An app never reaped by the end was SIGKILLed with the rest: 128 + 9.
        let code = self.app_status.map_or(128 + 9, reaper::exit_code);
        Some(reaper::reported(code, &self.config.success_exit))
    }
}

fn exiting(code: u8) -> u8 {
    log::info("exiting", &[("code", json!(code))]);
    code
}

fn signal_name(sig: i32) -> &'static str {
    Sig::new(sig).map_or("SIG?", Sig::name)
}

/// The line for leftovers just sent SIGTERM: after a drain a fact; after the app exited on
/// its own a warning, since the app most likely went to the background.
fn leftovers_termed(count: usize, draining: bool) {
    if draining {
        log::info("terminating leftovers", &[("count", json!(count))]);
        return;
    }
    let hint = format!(
        "the app exited but {count} process(es) it started still run: it may have daemonized \
         (run it in the foreground: nginx needs `daemon off;`, redis `--daemonize no`)"
    );
    log::warn(
        "terminating leftovers",
        &[("count", json!(count)), ("hint", json!(hint))],
    );
}
