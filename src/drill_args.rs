//! `vigil drill`'s own options (`--after`, `--budget`, `--hold`, `--hold-target`, `--report`):
//! their checks, and the drill's `--help`. Everything else is vigil's `Config`.

use crate::cli::{Config, VIGIL, VIGIL_DRILL, first_line, seconds};
use crate::drill::MARGIN;
use crate::envvars;
use crate::error::Error;
use crate::flags::{DrillArgs, RunArgs};
use crate::probe::{self, ProbeSpec};
use argh::{ArgsInfo, FlagInfoKind, FromArgs};
use std::path::PathBuf;
use std::time::Duration;

/// The most connections `--hold` opens: each is a file descriptor of vigil's.
const MAX_HOLD: u32 = 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct DrillConfig {
    /// Without a probe: ready this long after the spawn.
    pub after: Duration,
    /// The platform's grace period from SIGTERM to SIGKILL.
    pub budget: Duration,
    /// Idle connections held through the drain.
    pub hold: u32,
    /// Where they connect (host, port); set exactly when `hold` > 0.
    pub hold_target: Option<(String, u16)>,
    /// Where the report goes too.
    pub report: Option<PathBuf>,
}

/// argh's parse of the drill's own flags (`argv::split` took them out).
pub fn args(words: &[String]) -> Result<DrillArgs, Error> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    DrillArgs::from_args(&[VIGIL_DRILL], &words)
        .map_err(|early| Error::Usage(first_line(&early.output), VIGIL_DRILL))
}

impl DrillConfig {
    /// Checks the drill's flags; `config` gives the probe `--hold` connects to. A blank value
    /// is unset, as for every run option.
    pub fn from_args(a: DrillArgs, config: &Config) -> Result<DrillConfig, Error> {
        let after = envvars::set(a.after);
        let after = seconds("--after", after.as_deref(), "2", &[])?;
        let budget_raw = envvars::set(a.budget);
        let budget = seconds("--budget", budget_raw.as_deref(), "10", &[])?;
        if budget <= MARGIN {
            return Err(Error::bad(
                "--budget",
                budget_raw.as_deref().unwrap_or_default(),
                "must be more than 0.5: the drain has to end 0.5 s before it",
            ));
        }
        let hold_raw = envvars::set(a.hold);
        let hold = match &hold_raw {
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n <= MAX_HOLD => n,
                _ => {
                    return Err(Error::bad(
                        "--hold",
                        v,
                        format!("expected a whole number from 0 to {MAX_HOLD}"),
                    ));
                }
            },
            None => 0,
        };
        let hold_target = match (envvars::set(a.hold_target), hold) {
            (Some(t), 0) => return Err(Error::bad("--hold-target", &t, "needs --hold N")),
            (Some(t), _) => Some(probe::host_port(&t).ok_or_else(|| {
                Error::bad(
                    "--hold-target",
                    &t,
                    "expected HOST:PORT, e.g. 127.0.0.1:5432 or [::1]:8080",
                )
            })?),
            (None, 0) => None,
            (None, _) => match &config.probe {
                Some(ProbeSpec::Tcp { host, port }) => Some((host.clone(), *port)),
                Some(ProbeSpec::Http(t)) => Some((t.host.clone(), t.port)),
                _ => {
                    return Err(Error::bad(
                        "--hold",
                        hold_raw.as_deref().unwrap_or_default(),
                        "needs a --probe-tcp or --probe-http to connect to, or --hold-target HOST:PORT",
                    ));
                }
            },
        };
        Ok(DrillConfig {
            after,
            budget,
            hold,
            hold_target,
            report: envvars::set(a.report).map(PathBuf::from),
        })
    }
}

/// `vigil drill --help`: the drill's own flags as argh prints them, its usage line completed
/// with the COMMAND, and then vigil's run options by name (their details are in `vigil --help`).
pub fn help() -> String {
    let own = match DrillArgs::from_args(&[VIGIL_DRILL], &["--help"]) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    };
    let (usage, rest) = own.split_once('\n').unwrap_or((&own, ""));
    let mut out = format!("{usage} [OPTIONS] -- COMMAND [ARGS...]\n{rest}");
    out.push_str(&format!(
        "\nOPTIONS: every option of {VIGIL} itself, also from its VIGIL_* variable (details: vigil --help):\n"
    ));
    let mut line = String::from(" ");
    for flag in RunArgs::get_args_info().flags {
        if flag.long == "--help" || flag.long == "--version" {
            continue;
        }
        let word = match flag.kind {
            FlagInfoKind::Option { arg_name } => format!(" {} <{arg_name}>", flag.long),
            FlagInfoKind::Switch => format!(" {}", flag.long),
        };
        if line.len() + word.len() > 96 {
            out.push_str(&line);
            out.push('\n');
            line = String::from(" ");
        }
        line.push_str(&word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, parse};
    use std::ffi::OsString;

    fn drill(args: &[&str]) -> Result<DrillConfig, Error> {
        let raw: Vec<OsString> = ["vigil", "drill"]
            .iter()
            .chain(args)
            .map(OsString::from)
            .collect();
        match parse(&raw, &|_| None)? {
            Command::Drill(_, d) => Ok(d),
            other => panic!("not a drill: {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        drill(args).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let d = drill(&["--", "x"]).unwrap();
        assert_eq!(d.after, Duration::from_secs(2));
        assert_eq!(d.budget, Duration::from_secs(10));
        assert_eq!((d.hold, d.hold_target, d.report), (0, None, None));
    }

    #[test]
    fn hold_connects_to_the_probe_or_the_target() {
        let d = drill(&["--hold=2", "--probe-tcp", "127.0.0.1:5432", "x"]).unwrap();
        assert_eq!(d.hold_target, Some(("127.0.0.1".into(), 5432)));
        let d = drill(&["--hold", "1", "--probe-http", "http://[::1]:8080/up", "x"]).unwrap();
        assert_eq!(d.hold_target, Some(("::1".into(), 8080)));
        let args = [
            "--hold",
            "1",
            "--probe-exec",
            "true",
            "--hold-target",
            "db:5432",
            "x",
        ];
        let d = drill(&args).unwrap();
        assert_eq!(d.hold_target, Some(("db".into(), 5432)));
        assert!(err(&["--hold", "1", "x"]).contains("--hold-target"));
        assert!(err(&["--hold", "1", "--probe-exec", "true", "x"]).contains("--probe-tcp"));
        assert!(err(&["--hold-target", "a:1", "x"]).contains("needs --hold"));
        assert!(err(&["--hold", "1", "--hold-target", "a", "x"]).contains("HOST:PORT"));
        assert!(err(&["--hold", "-1", "--hold-target", "a:1", "x"]).contains("whole number"));
        assert_eq!(drill(&["--hold", "0", "x"]).unwrap().hold_target, None);
    }

    #[test]
    fn budget_and_report() {
        let d = drill(&["--budget", "30", "--report", "/tmp/r.json", "x"]).unwrap();
        assert_eq!(d.budget, Duration::from_secs(30));
        assert_eq!(d.report, Some(PathBuf::from("/tmp/r.json")));
        assert!(err(&["--budget", "0.5", "x"]).contains("more than 0.5"));
        assert!(err(&["--budget", "soon", "x"]).contains("--budget \"soon\""));
        assert_eq!(drill(&["--report", "", "x"]).unwrap().report, None);
    }

    #[test]
    fn the_help_is_the_drills() {
        let h = help();
        assert!(h.starts_with("Usage: vigil drill"), "{h}");
        assert!(
            h.lines()
                .next()
                .unwrap_or_default()
                .ends_with("-- COMMAND [ARGS...]")
        );
        for flag in [
            "--after",
            "--budget",
            "--hold",
            "--hold-target",
            "--report",
            "--user",
        ] {
            assert!(h.contains(flag), "{flag}: {h}");
        }
        assert!(!h.contains("--version"), "{h}");
    }
}
