//! What runs in front, one at a time: the seed, the pre-start hooks, the app, the post-stop.
//!
//! `hooks.rs` decides what is next; this carries it out with the supervisor's own machinery.
//! The process in front is `self.app` while it runs, so a forwarded signal, a drain's stop
//! signal and its SIGKILL reach a hook exactly as they would the app, and the one reaper
//! collects it and whatever it left.

use super::Supervisor;
use crate::cli::Config;
use crate::error::Error;
use crate::hooks::seed::{self, Reader};
use crate::hooks::{self, Ended, Hook, Kind, Sequence, Step, World};
use crate::log;
use crate::procs;
use crate::reaper;
use crate::sig::Sig;
use crate::spawn::{self, SpawnError};
use crate::status::App;
use crate::sys::kill;
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::ffi::OsString;
use std::time::Instant;

/// Who is in front before anything has been spawned: above any pid_max (at most 2^22), so a
/// signal forwarded to it reaches no one.
pub(super) const NOBODY: Pid = Pid::from_raw(i32::MAX);

/// The hooks' order, and what every process in front is started with.
pub(super) struct Front {
    pub(super) seq: Sequence,
    /// HOME of the `--user`, if any.
    home: Option<String>,
    /// The seed's variables, given to every later hook and the app.
    env: Vec<(OsString, OsString)>,
    seed: Option<Reader>,
    /// The running hook's command and start, for its exit line.
    current: Option<(Vec<OsString>, Instant)>,
}

impl Front {
    /// Lists `--pre-start` (it must exist or be missing; an unreadable one stops the start, as
    /// the image expects its hooks to run) and logs what will and will not run.
    pub(super) fn new(config: &Config, home: Option<String>) -> Result<Front, Error> {
        let h = &config.hooks;
        let mut start: Vec<Hook> = h
            .env_from
            .iter()
            .map(|argv| Hook::new(Kind::EnvFrom, argv))
            .collect();
        if let Some(dir) = &h.pre_start {
            let shown = dir.to_string_lossy();
            match hooks::scan(dir) {
                Ok(Some(scan)) => {
                    for (path, why) in &scan.skipped {
                        let path = path.to_string_lossy();
                        log::debug(
                            "pre-start entry skipped",
                            &[("path", json!(path)), ("reason", json!(why))],
                        );
                    }
                    log::info(
                        "pre-start hooks",
                        &[("dir", json!(shown)), ("count", json!(scan.run.len()))],
                    );
                    start.extend(scan.run.into_iter().map(|p| Hook {
                        kind: Kind::PreStart,
                        argv: vec![p.into_os_string()],
                    }));
                }
                Ok(None) => log::warn(
                    "pre-start directory missing",
                    &[
                        ("dir", json!(shown)),
                        ("hint", json!("no pre-start hook runs")),
                    ],
                ),
                Err(e) => {
                    return Err(Error::bad(
                        "--pre-start",
                        &shown,
                        format!("cannot be listed: {e}"),
                    ));
                }
            }
        }
        let post_stop = h
            .post_stop
            .as_ref()
            .map(|argv| Hook::new(Kind::PostStop, argv));
        Ok(Front {
            seq: Sequence::new(start, post_stop, h.pre_start_timeout, h.post_stop_timeout),
            home,
            env: Vec::new(),
            seed: None,
            current: None,
        })
    }
}

impl Supervisor {
    /// Starts what is next in front and stops a hook that ran out of time, until nothing more
    /// is due now.
    pub(super) fn front_step(&mut self) {
        loop {
            let now = Instant::now();
            let Some(step) = self.front.seq.next(now, self.world()) else {
                return;
            };
            match step {
                Step::Spawn(hook) => self.spawn_hook(hook, now),
                Step::App => self.start_app(now),
                Step::KillGroup(pid) => {
                    let timeout = self.config.hooks.pre_start_timeout.as_secs_f64();
                    let hook = self.front.seq.running().map(|(_, kind)| kind.name());
                    let fields = [
                        ("hook", json!(hook)),
                        ("pid", json!(pid)),
                        ("timeout_s", json!(timeout)),
                    ];
                    log::error("hook timed out", &fields);
                    let _ = kill(-pid, Sig::KILL.raw());
                }
                Step::KillAll => {
                    self.signal_everything(Sig::KILL);
                    let count = procs::hit();
                    log::warn(
                        "post-stop over: killing what is left",
                        &[("count", json!(count))],
                    );
                }
                Step::SkipPostStop => log::warn(
                    "post-stop skipped",
                    &[(
                        "reason",
                        json!("everything was killed at the drain deadline"),
                    )],
                ),
            }
        }
    }

    /// When `front_step` is next due without a signal.
    pub(super) fn front_deadline(&self) -> Option<Instant> {
        self.front.seq.deadline(self.drain_deadline())
    }

    fn world(&self) -> World {
        World {
            draining: self.drain.draining(),
            killed: self.drain.killed(),
            ended: self.app_status.is_some() || self.front.seq.stopped().is_some(),
            children_left: self.children_left,
            kill_at: self.drain_deadline(),
        }
    }

    /// The platform's deadline, once it has asked vigil to stop: the post-stop never runs past
    /// it. (Leftovers of an app that exited on its own have a deadline too, but no one waits on
    /// the container then.)
    fn drain_deadline(&self) -> Option<Instant> {
        self.drain.kill_at().filter(|_| self.drain.draining())
    }

    fn spawn_hook(&mut self, hook: Hook, now: Instant) {
        let capture = hook.kind == Kind::EnvFrom;
        let command = shown(&hook.argv);
        let name = json!(hook.kind.name());
        match spawn::spawn_front(
            &hook.argv,
            self.front.home.as_deref(),
            &self.front.env,
            capture,
        ) {
            Ok(spawned) => {
                let pid = spawned.pid;
                self.app = Pid::from_raw(pid);
                self.unreaped = Some(pid);
                self.front.seq.spawned(hook.kind, pid, now);
                self.front.current = Some((hook.argv, now));
                let fields = [("hook", name), ("pid", json!(pid)), ("pgid", json!(pid))];
                log::info(
                    "hook started",
                    &[&fields[..], &[("command", command)]].concat(),
                );
                if hook.kind != Kind::PostStop {
                    self.status.update(|s| s.app = App::Hooks);
                }
                if let Some(out) = spawned.stdout {
                    match Reader::start(out) {
                        Ok(reader) => self.front.seed = Some(reader),
                        Err(e) => {
                            log::error(
                                "env-from output cannot be read",
                                &[("error", json!(e.to_string()))],
                            );
                            let _ = kill(-self.app.as_raw(), Sig::KILL.raw());
                        }
                    }
                }
            }
            Err(e) => {
                // A failed exec is the hook's 127 or 126; a failed fork, vigil's own 2.
                let (code, e) = match e {
                    SpawnError::Exec(e) => (spawn::exec_failure_code(&e), e),
                    SpawnError::Setup(e) => (Error::EXIT_STATUS, e),
                };
                let fields = [
                    ("hook", name),
                    ("command", command),
                    (
                        "error",
                        json!(spawn::failure_reason(&hook.argv, &self.front.env, &e)),
                    ),
                    ("code", json!(code)),
                ];
                self.front.seq.spawn_failed(hook.kind, code);
                if hook.kind == Kind::PostStop {
                    log::warn("hook failed to start", &fields);
                } else {
                    log::error("hook failed to start", &fields);
                    self.start_stopped(true);
                }
            }
        }
    }

    /// Every start-up hook passed: spawn the app, and with it the probes and the drill's clock.
    fn start_app(&mut self, now: Instant) {
        let home = self.front.home.clone();
        let (command, leave_cwd) = (&self.config.command, self.config.leave_cwd);
        match super::start::spawn(command, home.as_deref(), &self.front.env, leave_cwd) {
            Ok(app) => {
                self.app = app;
                self.unreaped = Some(app.as_raw());
                let ready_once = self.config.probe.is_none();
                self.status.update(|s| {
                    s.app = App::Running;
                    s.ready_once = ready_once;
                });
                self.start_checker();
                if let Some(drill) = self.drill.as_mut() {
                    drill.spawned(now);
                }
            }
            Err(code) => {
                self.front.seq.stop(code);
                self.start_stopped(true);
            }
        }
    }

    /// A reaped child: true if it was the hook in front (then handled here).
    pub(super) fn on_hook_exit(&mut self, pid: i32, status: i32) -> bool {
        let draining = self.drain.draining();
        let Some(ended) = self.front.seq.exited(pid, status, draining) else {
            return false;
        };
        let (argv, since) = self
            .front
            .current
            .take()
            .unwrap_or((Vec::new(), Instant::now()));
        let mut fields = vec![
            ("pid", json!(pid)),
            ("command", shown(&argv)),
            (
                "duration_s",
                json!((since.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
            ),
        ];
        if let Some(sig) = reaper::term_signal(status) {
            fields.push(("signal", json!(super::signal_name(sig))));
        }
        let out = self.front.seed.take().map(Reader::finish);
        match ended {
            Ended::Passed(kind) => {
                fields.insert(0, ("hook", json!(kind.name())));
                fields.push(("status", json!(0)));
                log::info("hook exited", &fields);
                if let Some(out) = out {
                    self.apply_seed(out);
                }
            }
            Ended::Stopped { kind, code } => {
                fields.insert(0, ("hook", json!(kind.name())));
                fields.push(("status", json!(code)));
                if draining {
                    log::info("hook exited: drain, the app is not started", &fields);
                } else {
                    log::error("hook failed: the app is not started", &fields);
                }
                self.start_stopped(false);
            }
            Ended::PostStop { code } => {
                fields.insert(0, ("hook", json!(Kind::PostStop.name())));
                fields.push(("status", json!(code)));
                let level = if code == 0 {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                log::log(level, "hook exited", &fields);
            }
        }
        true
    }

    /// The seed exited 0: its variables join the environment of everything started later.
    /// A malformed line stops the start with 2, naming the line, never its text.
    fn apply_seed(&mut self, out: Result<Vec<u8>, seed::Malformed>) {
        match out.and_then(|bytes| seed::parse(&bytes)) {
            Ok(vars) => {
                let keys: Vec<Value> = vars
                    .iter()
                    .map(|(k, _)| json!(k.to_string_lossy()))
                    .collect();
                log::info("environment seeded", &[("keys", json!(keys))]);
                self.front.env.extend(vars);
            }
            Err(malformed) => {
                log::error(
                    "env-from output malformed: the app is not started",
                    &malformed.fields(),
                );
                self.front.seq.stop(Error::EXIT_STATUS);
                self.start_stopped(false);
            }
        }
    }

    /// The start stopped before the app: whatever the hooks left gets the app's leftovers'
    /// treatment (SIGTERM, SIGKILL at the drain timeout). `refresh`: reap first, outside a reap
    /// pass, so vigil knows whether anything is left.
    fn start_stopped(&mut self, refresh: bool) {
        if refresh {
            self.reap();
        }
        self.status.update(|s| s.app = App::Exited);
        let actions = self.drain.on_app_exit(Instant::now(), self.children_left);
        self.act(&actions);
    }
}

fn shown(argv: &[OsString]) -> Value {
    json!(argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>())
}
