//! Command line and environment: argh's raw strings in (the flag table is `flags.rs`), a
//! validated `Config` out.
//!
//! Following ripgrep's LowArgs/HiArgs split, argh only collects `Option<String>`s; every check
//! that ends in "exit 2" lives in `Config::from_args`, which takes the environment as a lookup
//! function so precedence (the flag wins over `VIGIL_*`) is unit-tested without touching the
//! process environment.

use crate::argv;
use crate::drill_args as drill;
pub use crate::drill_args::DrillConfig;
use crate::dropin;
use crate::envvars;
use crate::error::Error;
use crate::flags::{DrillArgs, ProbeArgs, RunArgs};
use crate::log::{Format, Level};
use crate::privileges::UserSpec;
use crate::probe::{self, ProbeSpec};
use crate::sig::Sig;
use crate::sigflags::SignalConfig;
use argh::{ArgsInfo, FromArgs};
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What the process should do, once the arguments are understood.
#[derive(Debug)]
pub enum Command {
    Run(Config),
    Drill(Config, DrillConfig),
    Probe(ProbeSpec, Duration),
    /// Something was printed (help, a version, a peer's usage error): exit with this status.
    Done(u8),
}

/// The validated configuration shared by `vigil` and `vigil drill`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub user: Option<UserSpec>,
    pub allow_setuid: bool,
    /// None: no drain deadline (a peer's name without `VIGIL_DRAIN_TIMEOUT`).
    pub drain_timeout: Option<Duration>,
    pub drain_delay: Duration,
    pub health_listen: Option<SocketAddr>,
    pub probe: Option<ProbeSpec>,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub probe_failures: u32,
    pub startup_grace: Duration,
    pub startup_interval: Duration,
    pub log_format: Format,
    pub log_level: Level,
    pub signals: SignalConfig,
    pub success_exit: Vec<u8>,
    /// `--env-from`, `--pre-start`, `--post-stop` and their timeouts.
    pub hooks: HookConfig,
    pub command: Vec<OsString>,
    /// tini's `-p SIG`: vigil's own parent-death signal, set after the privilege drop.
    pub parent_death_signal: Option<Sig>,
    /// tini's `-w`: each reaped orphan is a warn line, not a debug one.
    pub reap_warnings: bool,
    /// dumb-init's way: once the app runs, vigil leaves its working directory for `/`.
    pub leave_cwd: bool,
}

/// `--drain-timeout` when nothing sets it; with no drain deadline (a peer's name), still what
/// the app's leftovers get once it exits.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(9);

/// What a setting is when neither its flag nor its variable gives it, where a peer's name
/// differs from vigil's own (contract, "Drop-in names").
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// The command's name for a usage line (`vigil`, `vigil drill`, `tini`, ...).
    pub name: &'static str,
    pub drain_timeout: Option<Duration>,
    pub log_level: Level,
}

impl Defaults {
    pub const VIGIL: Defaults = Defaults {
        name: VIGIL,
        drain_timeout: Some(DEFAULT_DRAIN_TIMEOUT),
        log_level: Level::Info,
    };
}

/// The start-up and clean-up hooks (contract, "Start-up and clean-up hooks").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HookConfig {
    /// `--env-from`: the seed's argv.
    pub env_from: Option<Vec<String>>,
    pub pre_start: Option<PathBuf>,
    pub pre_start_timeout: Duration,
    /// `--post-stop`: the clean-up's argv.
    pub post_stop: Option<Vec<String>>,
    pub post_stop_timeout: Duration,
}

/// Parses the whole command line (`argv[0]` included). `env` looks up a variable.
/// `raw` keeps the original arguments so a non-UTF-8 argument of the app reaches it untouched.
pub fn parse(raw: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, Error> {
    if let Some(peer) = raw.first().and_then(dropin::Peer::named) {
        return match dropin::parse(peer, raw, env)? {
            dropin::Parsed::Run(config) => Ok(Command::Run(*config)),
            dropin::Parsed::Exit(answer) => {
                let _ = if answer.stderr {
                    write!(std::io::stderr(), "{}", answer.text)
                } else {
                    write!(std::io::stdout(), "{}", answer.text)
                };
                Ok(Command::Done(answer.code))
            }
        };
    }
    let args: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let run_flags = RunArgs::get_args_info().flags;
    let drill_flags = DrillArgs::get_args_info().flags;
    match rest.first() {
        Some(&"probe") => parse_probe(&rest[1..]),
        Some(&"drill") => {
            let split = argv::split(&rest[1..], run_flags, drill_flags, true);
            if split.help {
                let _ = write!(std::io::stdout(), "{}", drill::help());
                return Ok(Command::Done(0));
            }
            let drill_args = drill::args(&split.extra)?;
            let run = run_args(VIGIL_DRILL, &split.main)?;
            let config = Config::from_args(run, raw, env, VIGIL_DRILL)?;
            let drill = DrillConfig::from_args(drill_args, &config)?;
            Ok(Command::Drill(config, drill))
        }
        _ => {
            let split = argv::split(&rest, run_flags, drill_flags, true);
            if split.help {
                let _ = write!(std::io::stdout(), "{}", run_help());
                return Ok(Command::Done(0));
            }
            if let Some(flag) = split.extra.first() {
                return Err(Error::Usage(
                    format!("only `vigil drill` takes {flag}"),
                    VIGIL_DRILL,
                ));
            }
            let run = run_args(VIGIL, &split.main)?;
            if run.version {
                let _ = writeln!(std::io::stdout(), "{}", crate::version::LINE);
                return Ok(Command::Done(0));
            }
            Ok(Command::Run(Config::from_args(run, raw, env, VIGIL)?))
        }
    }
}

/// How a command-line error is written: None for `vigil probe` (its own plain lines), else the
/// log format in force as `Config` would pick it (`--log-format`, else `VIGIL_LOG_FORMAT`, else
/// json), so a platform that parses vigil's JSON lines gets the error as one too. A value that
/// is not a format counts as unset: the error may be about it.
pub fn error_format(raw: &[OsString], env: &dyn Fn(&str) -> Option<String>) -> Option<Format> {
    let args: Vec<String> = raw
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let rest = match rest.first() {
        Some(&"probe") => return None,
        Some(&"drill") => &rest[1..],
        _ => &rest[..],
    };
    let flags = RunArgs::get_args_info().flags;
    let words = argv::split(rest, flags, DrillArgs::get_args_info().flags, true).main;
    let takes_value = |w: &str| {
        flags
            .iter()
            .any(|f| f.long == w && matches!(f.kind, argh::FlagInfoKind::Option { .. }))
    };
    let mut flag = None;
    let mut i = 0;
    while let Some(word) = words.get(i) {
        if word == "--" || !word.starts_with('-') {
            break;
        }
        if word == "--log-format" {
            flag = Some(words.get(i + 1).cloned().unwrap_or_default());
        }
        i += if takes_value(word) { 2 } else { 1 };
    }
    let value = match flag {
        Some(v) => envvars::set(Some(v)),
        None => envvars::set(env("VIGIL_LOG_FORMAT")),
    };
    Some(
        value
            .and_then(|v| Format::parse(v.trim()))
            .unwrap_or(Format::Json),
    )
}

pub const VIGIL: &str = "vigil";
pub const VIGIL_DRILL: &str = "vigil drill";
const VIGIL_PROBE: &str = "vigil probe";

/// argh's parse, its errors made one line (exit 2). `--help` never gets here (`argv::split`).
fn run_args(name: &'static str, words: &[String]) -> Result<RunArgs, Error> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    RunArgs::from_args(&[name], &words)
        .map_err(|early| Error::Usage(first_line(&early.output), name))
}

/// `vigil --help`, as argh prints it.
pub fn run_help() -> String {
    match RunArgs::from_args(&[VIGIL], &["--help"]) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    }
}

fn parse_probe(rest: &[&str]) -> Result<Command, Error> {
    let flags = ProbeArgs::get_args_info().flags;
    let split = argv::split(rest, flags, &[], false);
    let words: Vec<&str> = split.main.iter().map(String::as_str).collect();
    let help = if split.help { &["--help"][..] } else { &[] };
    let args = match ProbeArgs::from_args(&[VIGIL_PROBE], &[&words[..], help].concat()) {
        Ok(args) => args,
        Err(early) if early.status.is_ok() => {
            let _ = write!(std::io::stdout(), "{}", early.output);
            return Ok(Command::Done(0));
        }
        Err(early) => return Err(Error::Usage(first_line(&early.output), VIGIL_PROBE)),
    };
    let timeout = seconds("--timeout", args.timeout.as_deref(), "1", &[NonZero])?;
    let Some(target) = args.target else {
        return Err(Error::Usage(
            "missing TARGET: http://HOST:PORT/PATH or tcp://HOST:PORT".into(),
            VIGIL_PROBE,
        ));
    };
    let spec = ProbeSpec::parse_target(&target)?;
    Ok(Command::Probe(spec, timeout))
}

pub fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim()
        .to_string()
}

/// Constraint on a number of seconds.
#[derive(PartialEq)]
pub struct NonZero;

impl Config {
    /// `name`: `vigil` or `vigil drill`, for the usage line of an error.
    pub fn from_args(
        args: RunArgs,
        raw: &[OsString],
        env: &dyn Fn(&str) -> Option<String>,
        name: &'static str,
    ) -> Result<Config, Error> {
        let defaults = Defaults {
            name,
            ..Defaults::VIGIL
        };
        Config::with_defaults(args, raw, env, &defaults)
    }

    /// `from_args` where `defaults` fills in what neither a flag nor a variable sets.
    pub fn with_defaults(
        args: RunArgs,
        raw: &[OsString],
        env: &dyn Fn(&str) -> Option<String>,
        defaults: &Defaults,
    ) -> Result<Config, Error> {
        // A blank value is unset, given by flag or env; a flag given at all wins over its env
        // var, so `--health-listen ''` means no server whatever VIGIL_HEALTH_LISTEN says.
        let env = |name: &str| envvars::set(env(name));
        let flag_only = |flag: &'static str, value: Option<String>| {
            envvars::set(value).map(|v| (flag.to_string(), v))
        };
        // Picks the flag's value or else the env var's, remembering which so errors name it.
        let pick = |flag: &'static str, value: Option<String>| -> Option<(String, String)> {
            match value {
                Some(_) => flag_only(flag, value),
                None => {
                    let var = env_name(flag);
                    env(&var).map(|v| (var, v))
                }
            }
        };
        let secs = |flag: &'static str, value: Option<String>, default: &str, nz: &[NonZero]| {
            let (src, v) = pick(flag, value).unzip();
            seconds(src.as_deref().unwrap_or(flag), v.as_deref(), default, nz)
        };

        if args.command.is_empty() {
            let name = defaults.name;
            return Err(Error::Usage(
                format!("missing COMMAND: {name} [OPTIONS] -- COMMAND [ARGS...]"),
                name,
            ));
        }
        let drain_timeout = match pick("--drain-timeout", args.drain_timeout) {
            Some((src, v)) => Some(seconds(&src, Some(&v), "", &[])?),
            None => defaults.drain_timeout,
        };
        let (delay_src, delay_raw) = pick("--drain-delay", args.drain_delay).unzip();
        let delay_src = delay_src.unwrap_or_else(|| "--drain-delay".into());
        let drain_delay = seconds(&delay_src, delay_raw.as_deref(), "0", &[])?;
        if let Some(timeout) = drain_timeout
            && drain_delay > Duration::ZERO
            && drain_delay >= timeout
        {
            return Err(Error::bad(
                &delay_src,
                delay_raw.as_deref().unwrap_or("0"),
                format!("must be below --drain-timeout ({})", timeout.as_secs_f64()),
            ));
        }

        let user = match pick("--user", args.user) {
            Some((src, v)) => {
                let spec = UserSpec::parse(&v).map_err(|why| Error::bad(&src, &v, why))?;
                Some(UserSpec {
                    source: src,
                    ..spec
                })
            }
            None => None,
        };

        let allow_setuid = args.allow_setuid || env_switch("VIGIL_ALLOW_SETUID", &env)?;

        let health_listen = match pick("--health-listen", args.health_listen) {
            Some((src, v)) => Some(v.parse::<SocketAddr>().map_err(|_| {
                Error::bad(
                    &src,
                    &v,
                    "expected ADDR:PORT with an IP address, e.g. 0.0.0.0:8086 or [::]:8086",
                )
            })?),
            None => None,
        };

        // A probe flag of any kind replaces every probe kind the environment sets.
        let probe_flag =
            args.probe_tcp.is_some() || args.probe_http.is_some() || args.probe_exec.is_some();
        let pick_probe = |flag, value| {
            if probe_flag {
                flag_only(flag, value)
            } else {
                pick(flag, value)
            }
        };
        let probes: Vec<(String, String, &str)> = [
            (pick_probe("--probe-tcp", args.probe_tcp), "tcp"),
            (pick_probe("--probe-http", args.probe_http), "http"),
            (pick_probe("--probe-exec", args.probe_exec), "exec"),
        ]
        .into_iter()
        .filter_map(|(p, kind)| p.map(|(src, v)| (src, v, kind)))
        .collect();
        let mut probe = match probes.as_slice() {
            [] => None,
            [(src, v, kind)] => {
                Some(ProbeSpec::parse(kind, v).map_err(|why| Error::bad(src, v, why))?)
            }
            [(a, av, _), (b, _, _), ..] => {
                return Err(Error::bad(
                    a,
                    av,
                    format!("only one probe kind may be given, but {b} is set too"),
                ));
            }
        };

        probe_headers(args.probe_header, env("VIGIL_PROBE_HEADERS"), &mut probe)?;
        let probe_interval = secs("--probe-interval", args.probe_interval, "5", &[NonZero])?;
        let probe_timeout = secs("--probe-timeout", args.probe_timeout, "1", &[NonZero])?;
        let probe_failures = match pick("--probe-failures", args.probe_failures) {
            Some((src, v)) => match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(Error::bad(
                        &src,
                        &v,
                        "expected a whole number of at least 1",
                    ));
                }
            },
            None => 3,
        };
        let startup_grace = secs("--startup-grace", args.startup_grace, "60", &[])?;
        let startup_interval = secs(
            "--startup-interval",
            args.startup_interval,
            "0.1",
            &[NonZero],
        )?;

        let log_format = match pick("--log-format", args.log_format) {
            Some((src, v)) => {
                Format::parse(&v).ok_or_else(|| Error::bad(&src, &v, "expected json or text"))?
            }
            None => Format::Json,
        };
        let log_level = match pick("--log-level", args.log_level) {
            Some((src, v)) => Level::parse(&v)
                .ok_or_else(|| Error::bad(&src, &v, "expected error, warn, info or debug"))?,
            None => defaults.log_level,
        };
        let signals = SignalConfig::from_args(
            pick("--stop-signal", args.stop_signal),
            pick("--drain-signals", args.drain_signals),
            &args.rewrite,
            args.single_child,
            &env,
            drain_timeout.map(|t| t.saturating_sub(drain_delay)),
        )?;

        let success_exit = if args.success_exit.is_empty() {
            match env("VIGIL_SUCCESS_EXIT") {
                Some(list) => list
                    .split(',')
                    .map(|n| {
                        exit_code(n).map_err(|why| Error::bad("VIGIL_SUCCESS_EXIT", &list, why))
                    })
                    .collect::<Result<Vec<u8>, Error>>()?,
                None => Vec::new(),
            }
        } else {
            args.success_exit
                .iter()
                .filter(|n| !n.trim().is_empty())
                .map(|n| exit_code(n).map_err(|why| Error::bad("--success-exit", n, why)))
                .collect::<Result<Vec<u8>, Error>>()?
        };

        // An empty value is unset (a deployment switching off what an image's ENV set).
        let given = |flag: &'static str, value: Option<String>| {
            pick(flag, value).filter(|(_, v)| !v.trim().is_empty())
        };
        let command_words = |flag: &'static str, value: Option<String>| match given(flag, value) {
            Some((src, v)) => probe::split_command(&v)
                .map(Some)
                .map_err(|why| Error::bad(&src, &v, why)),
            None => Ok(None),
        };
        let hooks = HookConfig {
            env_from: command_words("--env-from", args.env_from)?,
            pre_start: given("--pre-start", args.pre_start).map(|(_, v)| PathBuf::from(v)),
            pre_start_timeout: secs(
                "--pre-start-timeout",
                args.pre_start_timeout,
                "30",
                &[NonZero],
            )?,
            post_stop: command_words("--post-stop", args.post_stop)?,
            post_stop_timeout: secs(
                "--post-stop-timeout",
                args.post_stop_timeout,
                "5",
                &[NonZero],
            )?,
        };

        // The command is the greedy tail of argv: take the originals so non-UTF-8 survives.
        let command = raw[raw.len().saturating_sub(args.command.len())..].to_vec();

        Ok(Config {
            user,
            allow_setuid,
            drain_timeout,
            drain_delay,
            health_listen,
            probe,
            probe_interval,
            probe_timeout,
            probe_failures,
            startup_grace,
            startup_interval,
            log_format,
            log_level,
            signals,
            success_exit,
            hooks,
            command,
            parent_death_signal: None,
            reap_warnings: false,
            leave_cwd: false,
        })
    }
}

/// Adds `--probe-header`s (or, without one, `VIGIL_PROBE_HEADERS`, one a line) to an http probe.
/// A header flag without an http probe is a mistake; the variable without one is ignored, as a
/// deployment that switched an image's http probe to another kind leaves the image's headers.
fn probe_headers(
    flags: Vec<String>,
    var: Option<String>,
    probe: &mut Option<ProbeSpec>,
) -> Result<(), Error> {
    let (src, lines): (&str, Vec<String>) = if flags.is_empty() {
        let var = var.unwrap_or_default();
        (
            "VIGIL_PROBE_HEADERS",
            var.lines().map(str::to_string).collect(),
        )
    } else {
        ("--probe-header", flags)
    };
    let lines: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    let target = match probe {
        Some(ProbeSpec::Http(t)) => t,
        _ if lines.is_empty() || src != "--probe-header" => return Ok(()),
        _ => return Err(Error::bad(src, lines[0], "needs --probe-http")),
    };
    for line in lines {
        // The value may be a credential: an error shows the header's name only.
        let shown = match line.split_once(':') {
            Some((name, _)) => format!("{}: ...", name.trim()),
            None => "...".to_string(),
        };
        let header = probe::parse_header(line).map_err(|why| Error::bad(src, &shown, why))?;
        target.headers.push(header);
    }
    Ok(())
}

/// `--drain-timeout` -> `VIGIL_DRAIN_TIMEOUT`.
fn env_name(flag: &str) -> String {
    format!(
        "VIGIL_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// A switch's variable: `1` on, `0` or empty off, anything else a bad value.
fn env_switch(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<bool, Error> {
    match env(var).as_deref().map(str::trim) {
        None | Some("" | "0") => Ok(false),
        Some("1") => Ok(true),
        Some(v) => Err(Error::bad(var, v, "expected 1 or 0")),
    }
}

fn exit_code(s: &str) -> Result<u8, String> {
    s.trim()
        .parse::<u8>()
        .map_err(|_| "expected exit statuses from 0 to 255".to_string())
}

/// Parses decimal seconds (`9`, `0.5`); `value` None means `default`. Rejects negatives, `nan`,
/// `inf`, exponents and anything over a day's worth of years.
pub fn seconds(
    src: &str,
    value: Option<&str>,
    default: &str,
    constraints: &[NonZero],
) -> Result<Duration, Error> {
    let raw = value.unwrap_or(default);
    let d = parse_seconds(raw).map_err(|why| Error::bad(src, raw, why))?;
    if constraints.contains(&NonZero) && d.is_zero() {
        return Err(Error::bad(src, raw, "must be more than 0"));
    }
    Ok(d)
}

pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    const WHY: &str = "expected seconds as a non-negative decimal, e.g. 9 or 0.5";
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if t.is_empty() || (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(WHY.into());
    }
    let secs: f64 = t.parse().map_err(|_| WHY.to_string())?;
    // A year is more than any container will wait; it also keeps Instant arithmetic safe.
    if secs > 31_536_000.0 {
        return Err("must be at most 31536000 (a year)".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| WHY.to_string())
}

#[cfg(test)]
#[path = "cli/tests.rs"]
mod tests;
