//! Start-up: everything up to the first process in front (a hook, or the app itself).

use super::front::{Front, NOBODY};
use super::verdict::DrillIo;
use super::{Mode, Supervisor};
use crate::checker::{Checker, ProbeChildren};
use crate::cli::{self, Config, DrillConfig};
use crate::drain::Drain;
use crate::drill::{Drill, Limits};
use crate::envvars;
use crate::error::{Error, Warning};
use crate::health;
use crate::log;
use crate::metrics;
use crate::privileges::{self, Credentials, Dropped, UserSpec};
use crate::sig::Sig;
use crate::signals::Signals;
use crate::spawn::{self, SpawnError};
use crate::status::{Shared, Status};
use nix::unistd::{Pid, getegid, geteuid, getpid};
use serde_json::json;
use std::ffi::OsString;
use std::time::Instant;

impl Supervisor {
    /// Everything up to the first process in front: the seed, the first pre-start hook, or the
    /// app. A hook or app that cannot be executed is not vigil's error: the loop reports it.
    pub(super) fn start(
        config: Config,
        drill_config: Option<DrillConfig>,
    ) -> Result<Supervisor, Error> {
        metrics::mark_start();
        let started_at = Instant::now();
        // Block signals first: before any thread exists, and before anything can send them.
        let signals = Signals::block()?;
        // Lines that must wait for "vigil starting": nothing is logged before a start that can
        // still fail.
        let mut warnings = Vec::new();
        let (mode, mode_name) = become_reaper(&mut warnings);
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
        // The drill's report file too, so its directory may be root's.
        let drill_io = match &drill_config {
            Some(d) => DrillIo::open(d)?,
            None => DrillIo::default(),
        };
        let dropped = match &creds {
            Some((spec, c)) => {
                let pid1 = mode == Mode::Pid1;
                Some(privileges::drop_to(spec, c, config.allow_setuid, pid1)?)
            }
            None => None,
        };
        // Everything that can refuse to start has run: from here on, every line is an event.
        announce(mode_name, uid, gid, &warnings);
        if let (Some((spec, c)), Some(dropped)) = (&creds, dropped) {
            announce_drop(spec, c, dropped);
        }
        if let Some(sig) = config.parent_death_signal {
            set_parent_death_signal(sig);
        }
        warn_if_root();
        envvars::warn_unknown(cli::run_help);
        if let Some(listener) = listener {
            health::start(listener, status.clone())?;
        }
        let home = creds.as_ref().map(|(_, c)| c.home.clone());
        let front = Front::new(&config, home)?;
        let drain = Drain::new(config.drain_timeout, config.drain_delay, &config.signals);
        let drill = drill_config.map(|d| {
            let timeout = config
                .drain_timeout
                .unwrap_or(crate::cli::DEFAULT_DRAIN_TIMEOUT);
            let limits = Limits::new(&d, config.startup_grace, timeout);
            Drill::new(limits, config.probe.is_some(), started_at)
        });
        let mut sup = Supervisor {
            config,
            signals,
            mode,
            status,
            probe_children: ProbeChildren::default(),
            app: NOBODY,
            app_status: None,
            drain,
            children_left: true,
            wait_stall: Default::default(),
            reap_stall: Default::default(),
            unreaped: None,
            last_sweep: None,
            gave_up: false,
            app_exited_itself: false,
            drill,
            drill_io,
            front,
        };
        sup.front_step();
        Ok(sup)
    }

    /// The probe checker, once the app runs. Only the drill needs waking on each result; a
    /// plain run reads the status lazily.
    pub(super) fn start_checker(&self) {
        if let Some(spec) = self.config.probe.clone() {
            let waker = self.drill.as_ref().map(|_| self.signals.waker());
            let (status, children) = (self.status.clone(), self.probe_children.clone());
            Checker::new(&self.config, spec, status, children, waker).start();
            // Starting a thread may have unblocked the C library's own signals here (musl).
            crate::signals::block_again();
        }
    }
}

/// PID 1 reaps by birthright; anywhere else vigil asks to inherit its descendants' orphans.
/// Where that is refused (qemu-user answers EINVAL, some sandboxes EPERM), vigil warns and runs
/// on as the app's plain parent: the app is supervised as before, with a subreaper's rules for
/// whom vigil may signal, and orphans go to the real init. Also the mode's name for the log.
fn become_reaper(warnings: &mut Vec<Warning>) -> (Mode, &'static str) {
    if getpid().as_raw() == 1 {
        return (Mode::Pid1, "pid1");
    }
    match nix::sys::prctl::set_child_subreaper(true) {
        Ok(()) => (Mode::Subreaper, "subreaper"),
        Err(errno) => {
            warnings.push(Warning {
                msg: "not a child subreaper",
                fields: vec![
                    ("error", json!(errno.desc())),
                    (
                        "hint",
                        json!("the kernel or an emulator refused PR_SET_CHILD_SUBREAPER: the app is still supervised, orphans go to the real init"),
                    ),
                ],
            });
            (Mode::Subreaper, "parent")
        }
    }
}

/// The first start-up line, who vigil is (`uid`, `gid` as it was started), then the
/// warnings the start-up held back.
fn announce(mode: &str, uid: u32, gid: u32, warnings: &[Warning]) {
    log::info(
        "vigil starting",
        &[
            ("version", json!(env!("CARGO_PKG_VERSION"))),
            ("pid", json!(getpid().as_raw())),
            ("mode", json!(mode)),
            ("uid", json!(uid)),
            ("gid", json!(gid)),
        ],
    );
    for w in warnings {
        log::warn(w.msg, &w.fields);
    }
}

/// What `--user` did: the switch, or that vigil already was the user; then its warnings.
fn announce_drop(spec: &UserSpec, c: &Credentials, dropped: Dropped) {
    let mut fields = vec![
        ("user", json!(spec.to_string())),
        ("uid", json!(c.uid)),
        ("gid", json!(c.gid)),
        ("no_new_privs", json!(dropped.no_new_privs)),
    ];
    if dropped.switched {
        fields.push(("groups", json!(c.groups)));
        fields.push(("stdio", json!(dropped.stdio)));
        log::info("privileges dropped", &fields);
    } else {
        log::info("already running as the user", &fields);
    }
    for w in &dropped.warnings {
        log::warn(w.msg, &w.fields);
    }
}

/// tini's `-p SIG`: `sig` comes to vigil when its parent dies, and is then handled as any signal
/// another process sent (a drain signal drains, others are forwarded). Set after the privilege
/// drop, since the kernel clears it on a change of ids; a failure is a warn line.
fn set_parent_death_signal(sig: Sig) {
    let set = nix::sys::signal::Signal::try_from(sig.raw())
        .map_err(|_| nix::Error::EINVAL)
        .and_then(nix::sys::prctl::set_pdeathsig);
    match set {
        Ok(()) => log::debug("parent death signal set", &[("signal", json!(sig.name()))]),
        Err(errno) => log::warn(
            "parent death signal not set",
            &[
                ("signal", json!(sig.name())),
                ("error", json!(errno.desc())),
            ],
        ),
    }
}

/// dumb-init's way: vigil holds no reference to the directory it was started in, so it can be
/// unmounted or removed while the app, which started there, runs on.
fn leave_working_directory() {
    if let Err(e) = std::env::set_current_dir("/") {
        log::warn(
            "cannot leave the working directory",
            &[("error", json!(e.to_string()))],
        );
    }
}

/// Without `--user`, or with `--user root`, the platform's non-root rule is broken: say so.
fn warn_if_root() {
    if geteuid().is_root() {
        log::warn(
            "running as root",
            &[(
                "hint",
                json!("set --user or VIGIL_USER: the platform requires non-root"),
            )],
        );
    }
}

/// Spawns the app in a process group of its own, with the seed's `env`; `Err(127 or 126)` if it
/// cannot be executed, `Err(2)` if vigil's own part failed (the fork, say). With `leave_cwd`,
/// vigil moves to `/` at once, before the app can look (dumb-init's way).
pub(super) fn spawn(
    command: &[OsString],
    home: Option<&str>,
    env: &[(OsString, OsString)],
    leave_cwd: bool,
) -> Result<Pid, u8> {
    let shown: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match spawn::spawn_front(command, home, env, false) {
        Ok(spawned) => {
            if leave_cwd {
                leave_working_directory();
            }
            let app = Pid::from_raw(spawned.pid);
            log::info(
                "app spawned",
                &[
                    ("pid", json!(app.as_raw())),
                    ("pgid", json!(app.as_raw())),
                    ("command", json!(shown)),
                ],
            );
            Ok(app)
        }
        Err(SpawnError::Setup(e)) => {
            log::error(
                "unable to start the app",
                &[("command", json!(shown)), ("error", json!(e.to_string()))],
            );
            Err(Error::EXIT_STATUS)
        }
        Err(SpawnError::Exec(e)) => {
            let code = spawn::exec_failure_code(&e);
            log::error(
                "app failed to start",
                &[
                    ("command", json!(shown)),
                    ("error", json!(spawn::failure_reason(command, env, &e))),
                    ("code", json!(code)),
                ],
            );
            Err(code)
        }
    }
}
