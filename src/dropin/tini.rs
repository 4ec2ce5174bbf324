//! tini's command line and environment (tini 0.19): `tini [OPTIONS] PROGRAM -- [ARGS]`.
//!
//! | tini | vigil |
//! |---|---|
//! | default: signals to the child only | `--single-child` |
//! | `-g`, `TINI_KILL_PROCESS_GROUP` (set at all) | the app's group |
//! | `-s`, `TINI_SUBREAPER` | nothing: vigil always subreaps |
//! | `-e CODE` (repeatable) | `--success-exit CODE` |
//! | `-p SIG` | the parent-death signal, set after the privilege drop |
//! | verbosity 1 (default), 2 (`-v`), 3+ (`-vv`); `TINI_VERBOSITY=N` beats `-v` as in tini | warn, info, debug (0: error) |
//! | `-w` | a warn line per reaped orphan |
//! | `-l`, `-h`, `--version` (alone) | printed on stdout, exit 0 |
//!
//! A usage error exits 1 as tini's; no drain deadline unless `VIGIL_DRAIN_TIMEOUT` is set.

use super::{Answer, Item, Opt, Parsed, USAGE_EXIT, c_int, config, getopt, vigil_line, vigil_set};
use crate::cli::{Config, Defaults};
use crate::error::Error;
use crate::flags::RunArgs;
use crate::log::Level;
use crate::sig::{self, Sig};
use std::ffi::OsString;

/// tini's option string, `p:hvwgle:s`.
const OPTS: [Opt; 8] = [
    opt('p', true),
    opt('h', false),
    opt('v', false),
    opt('w', false),
    opt('g', false),
    opt('l', false),
    opt('e', true),
    opt('s', false),
];

const fn opt(short: char, value: bool) -> Opt {
    Opt {
        short,
        long: None,
        value,
    }
}

/// The tini release whose command line this is; `docker info` reads it from `--version`.
const TINI_VERSION: &str = "0.19.0";

/// What tini's options asked for.
#[derive(Debug, Default, PartialEq)]
struct Options {
    verbose: u32,
    group: bool,
    reap_warnings: bool,
    parent_death_signal: Option<Sig>,
    success_exit: Vec<u8>,
}

pub fn parse(
    name: &str,
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, Error> {
    let strings: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // tini answers --version only when it is the one argument.
    if strings == ["--version"] {
        return Ok(Parsed::Exit(Answer::stdout(version(name), 0)));
    }
    let (items, operands) = getopt(&strings, &OPTS, env("POSIXLY_CORRECT").is_none());
    let options = match options(name, items) {
        Ok(o) => o,
        Err(answer) => return Ok(Parsed::Exit(answer)),
    };
    if operands.is_empty() {
        return Ok(Parsed::Exit(Answer::stderr(usage(name), USAGE_EXIT)));
    }
    let command = operands.iter().map(|&i| args[i].clone()).collect();
    Ok(Parsed::Run(Box::new(translate(options, command, env)?)))
}

/// The options in order, as tini acts on them: `-h` and `-l` answer at once, a bad value or an
/// unknown letter is a usage error then and there.
fn options(name: &str, items: Vec<Item>) -> Result<Options, Answer> {
    let mut o = Options::default();
    for item in items {
        match item {
            Item::Opt('h', _) => return Err(Answer::stdout(usage(name), 0)),
            Item::Opt('l', _) => return Err(Answer::stdout(LICENSE.to_string(), 0)),
            Item::Opt('v', _) => o.verbose += 1,
            Item::Opt('w', _) => o.reap_warnings = true,
            Item::Opt('g', _) => o.group = true,
            Item::Opt('p', Some(v)) => match death_signal(&v) {
                Some(sig) => o.parent_death_signal = Some(sig),
                None => return Err(bad(name, 'p', &v, "a signal name, e.g. SIGKILL")),
            },
            Item::Opt('e', Some(v)) => match exit_code(&v) {
                Some(code) => o.success_exit.push(code),
                None => return Err(bad(name, 'e', &v, "an exit code from 0 to 255")),
            },
            Item::Error(msg) => {
                let text = format!("{name}: {msg}\n{}", usage(name));
                return Err(Answer::stderr(text, USAGE_EXIT));
            }
            // -s: vigil is a subreaper whatever it is told.
            _ => {}
        }
    }
    Ok(o)
}

fn bad(name: &str, flag: char, value: &str, want: &str) -> Answer {
    let text = format!("{name}: -{flag} {value:?}: expected {want}\n");
    Answer::stderr(text, USAGE_EXIT)
}

/// The `Config`: tini's flags as vigil's, then the `VIGIL_*` variables, then tini's variables
/// and defaults.
fn translate(
    o: Options,
    command: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    // tini reads TINI_VERBOSITY after its flags, so the variable beats -v.
    let verbosity = match env("TINI_VERBOSITY") {
        Some(v) => c_int(&v).map_or(0, |(n, _)| n),
        None => 1 + i64::from(o.verbose),
    };
    let level = level(verbosity);
    let run = RunArgs {
        log_level: (o.verbose > 0).then(|| level.name().to_string()),
        success_exit: o.success_exit.iter().map(u8::to_string).collect(),
        ..RunArgs::default()
    };
    let defaults = Defaults {
        name: "tini",
        drain_timeout: None,
        log_level: level,
    };
    let mut c = config(run, command, env, &defaults)?;
    if o.group {
        c.signals.single_child = false;
    } else if !vigil_set(env, "VIGIL_SINGLE_CHILD") {
        c.signals.single_child = env("TINI_KILL_PROCESS_GROUP").is_none();
    }
    c.parent_death_signal = o.parent_death_signal;
    c.reap_warnings = o.reap_warnings;
    Ok(c)
}

/// tini's verbosity as vigil's level: 0 fatal only, 1 warnings, 2 info, 3 and up debug. A
/// negative one wraps to a huge unsigned number in tini: everything.
fn level(verbosity: i64) -> Level {
    match verbosity {
        0 => Level::Error,
        1 => Level::Warn,
        2 => Level::Info,
        _ => Level::Debug,
    }
}

/// `-e`: tini's `strtol` in base 10 with nothing after the digits, from 0 to 255.
fn exit_code(s: &str) -> Option<u8> {
    match c_int(s)? {
        (n, "") => u8::try_from(n).ok(),
        _ => None,
    }
}

/// `-p`: tini takes the names of signals 1 to 31 (`SIGKILL`); vigil also takes them without
/// `SIG` and as numbers.
fn death_signal(s: &str) -> Option<Sig> {
    sig::parse(s).ok().filter(|sig| sig.raw() < 32)
}

/// `tini version X - git.Y`, the line `docker info` parses for `--init` (catatonit answers the
/// same way), then vigil's own.
fn version(name: &str) -> String {
    format!(
        "tini version {TINI_VERSION} - git.vigil\n{}",
        vigil_line(name, "tini")
    )
}

fn usage(name: &str) -> String {
    format!(
        "{name} (vigil {}, taking tini's command line)\n\
         Usage: {name} [OPTIONS] PROGRAM -- [ARGS] | --version\n\n\
         Runs PROGRAM under vigil, a PID 1 for containers, with tini's options:\n\n\
         \x20 --version     show the version and exit\n\
         \x20 -h            show this help and exit\n\
         \x20 -s            be a subreaper (vigil always is one)\n\
         \x20 -p SIGNAL     the signal vigil gets when its parent dies, e.g. -p SIGKILL\n\
         \x20 -v            more verbose: -v info, -vv debug\n\
         \x20 -w            a warning for each reaped zombie\n\
         \x20 -g            send signals to PROGRAM's process group, not PROGRAM alone\n\
         \x20 -e EXIT_CODE  report EXIT_CODE (0 to 255) as 0; repeatable\n\
         \x20 -l            show the license and exit\n\n\
         Environment: TINI_SUBREAPER, TINI_VERBOSITY, TINI_KILL_PROCESS_GROUP.\n{}",
        env!("CARGO_PKG_VERSION"),
        super::VIGIL_NOTE
    )
}

/// `-l`: vigil's license (tini prints its own).
const LICENSE: &str = "vigil is licensed under the MIT License or the Apache License, Version 2.0, at your \
     option\n(SPDX-License-Identifier: MIT OR Apache-2.0).\n";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Parsed, Error> {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse("tini", &args, &|k| map.get(k).cloned())
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match run(args, env).unwrap() {
            Parsed::Run(c) => *c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// (text, on stderr, code) of an answer that is not a run.
    fn exit(args: &[&str], env: &[(&str, &str)]) -> (String, bool, u8) {
        match run(args, env).unwrap() {
            Parsed::Exit(a) => (a.text, a.stderr, a.code),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_tinis() {
        let c = config(&["--", "app", "-x"], &[]);
        assert_eq!(c.command, [OsString::from("app"), OsString::from("-x")]);
        assert!(c.signals.single_child, "the child only");
        assert_eq!(c.drain_timeout, None, "no deadline");
        assert!(c.signals.forward_only, "every SIGINT passed on, no SIGCONT");
        assert_eq!(c.log_level, Level::Warn);
        assert!(c.success_exit.is_empty());
        assert_eq!(c.parent_death_signal, None);
        assert!(!c.reap_warnings && !c.leave_cwd);
    }

    #[test]
    fn flags() {
        let c = config(
            &[
                "-s", "-g", "-w", "-p", "SIGUSR1", "-e", "3", "-e143", "--", "app",
            ],
            &[],
        );
        assert!(!c.signals.single_child);
        assert!(c.reap_warnings);
        assert_eq!(c.parent_death_signal, Sig::new(10));
        assert_eq!(c.success_exit, [3, 143]);
        for (flags, level) in [
            (&["-v"][..], Level::Info),
            (&["-vv"], Level::Debug),
            (&["-v", "-v", "-v"], Level::Debug),
        ] {
            let args: Vec<&str> = flags.iter().copied().chain(["--", "x"]).collect();
            assert_eq!(config(&args, &[]).log_level, level, "{flags:?}");
        }
    }

    #[test]
    fn environment() {
        let c = config(
            &["x"],
            &[("TINI_KILL_PROCESS_GROUP", ""), ("TINI_SUBREAPER", "")],
        );
        assert!(
            !c.signals.single_child,
            "set at all, even empty, as tini's getenv"
        );
        for (v, level) in [
            ("0", Level::Error),
            ("1", Level::Warn),
            ("2", Level::Info),
            ("3", Level::Debug),
            ("9", Level::Debug),
            ("", Level::Error),
            ("junk", Level::Error),
            ("-1", Level::Debug),
        ] {
            let c = config(&["x"], &[("TINI_VERBOSITY", v)]);
            assert_eq!(c.log_level, level, "TINI_VERBOSITY={v:?}");
        }
        // tini reads the variable after the flags.
        let c = config(&["-vv", "x"], &[("TINI_VERBOSITY", "1")]);
        assert_eq!(c.log_level, Level::Warn);
    }

    /// tini's flags, then `VIGIL_*`, then tini's variables and defaults.
    #[test]
    fn vigil_variables_apply_on_top() {
        let env = [
            ("VIGIL_DRAIN_TIMEOUT", "4"),
            ("VIGIL_LOG_LEVEL", "info"),
            ("VIGIL_SINGLE_CHILD", "0"),
            ("VIGIL_SUCCESS_EXIT", "7"),
            ("VIGIL_STOP_SIGNAL", "QUIT"),
        ];
        let c = config(&["x"], &env);
        assert_eq!(c.drain_timeout, Some(Duration::from_secs(4)));
        assert_eq!(c.log_level, Level::Info);
        assert!(!c.signals.single_child);
        assert_eq!(c.success_exit, [7]);
        assert_eq!(c.signals.stop_signal.first, Sig::new(3).unwrap());
        let c = config(&["-vv", "-e", "1", "x"], &env);
        assert_eq!((c.log_level, c.success_exit), (Level::Debug, vec![1]));
        let c = config(
            &["x"],
            &[("VIGIL_LOG_LEVEL", "debug"), ("TINI_VERBOSITY", "0")],
        );
        assert_eq!(c.log_level, Level::Debug);
        let c = config(
            &["-g", "x"],
            &[
                ("VIGIL_SINGLE_CHILD", "1"),
                ("TINI_KILL_PROCESS_GROUP", "1"),
            ],
        );
        assert!(!c.signals.single_child, "-g wins");
        let c = config(
            &["x"],
            &[
                ("VIGIL_SINGLE_CHILD", "1"),
                ("TINI_KILL_PROCESS_GROUP", "1"),
            ],
        );
        assert!(c.signals.single_child);
        // A delay needs no deadline to fit under.
        assert!(run(&["x"], &[("VIGIL_DRAIN_DELAY", "30")]).is_ok());
        // A bad VIGIL_* value is still vigil's error (exit 2).
        let e = run(&["x"], &[("VIGIL_DRAIN_TIMEOUT", "soon")]).unwrap_err();
        assert!(e.to_string().contains("VIGIL_DRAIN_TIMEOUT"), "{e}");
    }

    /// tini's getopt permutes: its letters count after the command unless POSIXLY_CORRECT is
    /// set or `--` ends them.
    #[test]
    fn gnu_permutation() {
        let c = config(&["echo", "hi", "-v"], &[]);
        assert_eq!(c.command, [OsString::from("echo"), OsString::from("hi")]);
        assert_eq!(c.log_level, Level::Info);
        let (_, stderr, code) = exit(&["sh", "-c", "exit 3"], &[]);
        assert!(stderr && code == 1);
        let c = config(
            &["-e", "3", "sh", "-c", "exit 3"],
            &[("POSIXLY_CORRECT", "1")],
        );
        assert_eq!(c.command.len(), 3);
        assert_eq!(c.success_exit, [3]);
        let c = config(&["-vvv", "--", "--", "true"], &[]);
        assert_eq!(c.command, [OsString::from("--"), OsString::from("true")]);
    }

    #[test]
    fn answers_and_usage_errors() {
        let (text, stderr, code) = exit(&["--version"], &[]);
        assert!(!stderr && code == 0);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("tini version 0.19.0 - git.vigil"));
        assert!(lines.next().is_some_and(|l| l.starts_with("vigil ")));
        let (text, stderr, code) = exit(&["-h"], &[]);
        assert!(!stderr && code == 0 && text.contains("-e EXIT_CODE"));
        let (text, stderr, code) = exit(&["-l"], &[]);
        assert!(!stderr && code == 0 && text.contains("MIT"));
        // -h answers before a later bad letter, as getopt reads in order.
        assert_eq!(exit(&["-h", "-z"], &[]).2, 0);
        for bad in [
            &[][..],
            &["--"],
            &["-z"],
            &["-e"],
            &["-e", "256", "x"],
            &["-e", "3x", "x"],
            &["-e", "-1", "x"],
            &["-p", "FOO", "x"],
            &["-p", "SIGRTMIN", "x"],
            &["--version", "--foo"],
            &["--version", "x"],
            &["-z", "-h"],
        ] {
            let (text, stderr, code) = exit(bad, &[]);
            assert!(stderr && code == 1 && !text.is_empty(), "{bad:?}");
        }
        assert!(
            exit(&["-z"], &[])
                .0
                .starts_with("tini: invalid option -- 'z'\n")
        );
    }

    #[test]
    fn exit_codes_as_strtol() {
        assert_eq!(exit_code("0"), Some(0));
        assert_eq!(exit_code("255"), Some(255));
        assert_eq!(exit_code(" +7"), Some(7));
        for bad in ["", "256", "-1", "7 ", "x", "1e2"] {
            assert_eq!(exit_code(bad), None, "{bad:?}");
        }
    }

    /// What `docker info` makes of the first line, with both of its parsers (moby's
    /// `parseInitVersion`, old and new): the version, and no error.
    #[test]
    fn docker_info_reads_the_version() {
        let out = version("docker-init");
        // Newer Docker: split on " - ", a `git.X` part gives the commit, else the version.
        let parts: Vec<&str> = out.trim().split(" - ").collect();
        let git: Vec<&str> = parts.get(1).map_or(vec![], |p| p.split('.').collect());
        let commit = (git.len() == 2 && git[0] == "git").then(|| git[1]);
        let version = parts[0].strip_prefix("tini version ");
        assert!(commit.is_some() || version.is_some());
        assert_eq!(version, Some("0.19.0"));
        // A commit longer than Docker's own would panic older daemons (they slice by it).
        assert!(commit.is_none_or(|c| c.len() <= 7), "{commit:?}");
    }
}
