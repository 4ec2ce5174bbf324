//! dumb-init's command line and environment (dumb-init 1.2.5): `dumb-init [OPTIONS] COMMAND
//! [ARGS...]`, options ending at the first operand.
//!
//! | dumb-init | vigil |
//! |---|---|
//! | default: signals to the child's group | the app's group |
//! | `-c`, `--single-child`, `DUMB_INIT_SETSID=0` | `--single-child` |
//! | `-r S:R` (numbers 1 to 31; R 0 drops S), repeatable, the last for S wins | `--rewrite S:R` |
//! | `-r 15:R`, `-r 2:R` (or any drain signal) | what the drain sends instead (`R` 0: nothing) |
//! | in group mode, TSTP, TTIN, TTOU go on as STOP unless `-r` says otherwise | the same rewrite |
//! | `-v`, `--verbose`, `DUMB_INIT_DEBUG=1` | debug (default: errors only) |
//! | `-h`, `-V` | printed on stderr, exit 0 |
//! | leaves its working directory for `/` once the child runs | the same |
//!
//! A usage error (an unknown option, a bad `-r`, no command) exits 1 as dumb-init's; no drain
//! deadline unless `VIGIL_DRAIN_TIMEOUT` is set. dumb-init also stops itself after passing on a
//! TSTP, TTIN or TTOU: vigil never lets a signal stop it (contract, "What vigil does" 5).

use super::{Answer, Item, Opt, Parsed, USAGE_EXIT, c_int, config, getopt, vigil_line, vigil_set};
use crate::cli::{Config, Defaults};
use crate::error::Error;
use crate::flags::RunArgs;
use crate::log::Level;
use crate::sig::Sig;
use std::ffi::OsString;

/// dumb-init's `+hvVcr:` and its long names.
const OPTS: [Opt; 5] = [
    opt('h', "help", false),
    opt('v', "verbose", false),
    opt('V', "version", false),
    opt('c', "single-child", false),
    opt('r', "rewrite", true),
];

const fn opt(short: char, long: &'static str, value: bool) -> Opt {
    Opt {
        short,
        long: Some(long),
        value,
    }
}

/// The dumb-init release whose command line this is.
const DUMB_INIT_VERSION: &str = "1.2.5";

/// dumb-init's highest signal: `-r` takes 1 to 31.
const MAXSIG: i64 = 31;

/// What dumb-init's options asked for.
#[derive(Debug, Default, PartialEq)]
struct Options {
    verbose: bool,
    single_child: bool,
    /// `-r S:R` in order; R 0 drops S.
    rewrite: Vec<(i32, i32)>,
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
    let (items, operands) = getopt(&strings, &OPTS, false);
    let options = match options(name, items) {
        Ok(o) => o,
        Err(answer) => return Ok(Parsed::Exit(answer)),
    };
    if operands.is_empty() {
        let text = format!(
            "Usage: {name} [OPTIONS] COMMAND [ARGS...]\nTry {name} --help for the options.\n"
        );
        return Ok(Parsed::Exit(Answer::stderr(text, USAGE_EXIT)));
    }
    let command = operands.iter().map(|&i| args[i].clone()).collect();
    Ok(Parsed::Run(Box::new(translate(options, command, env)?)))
}

/// The options in order, as dumb-init acts on them: `-h` and `-V` answer at once, a bad `-r`
/// or an unknown option is a usage error then and there.
fn options(name: &str, items: Vec<Item>) -> Result<Options, Answer> {
    let mut o = Options::default();
    for item in items {
        match item {
            Item::Opt('h', _) => return Err(Answer::stderr(help(name), 0)),
            Item::Opt('V', _) => return Err(Answer::stderr(version(name), 0)),
            Item::Opt('v', _) => o.verbose = true,
            Item::Opt('c', _) => o.single_child = true,
            Item::Opt('r', Some(v)) => match rewrite(&v) {
                Some(pair) => o.rewrite.push(pair),
                None => {
                    let text = format!(
                        "{name}: -r {v:?}: expected S:R, signal numbers from 1 to {MAXSIG} \
                         (R 0 drops S); repeatable\n"
                    );
                    return Err(Answer::stderr(text, USAGE_EXIT));
                }
            },
            Item::Error(msg) => return Err(Answer::stderr(format!("{name}: {msg}\n"), USAGE_EXIT)),
            _ => {}
        }
    }
    Ok(o)
}

/// `-r S:R` as dumb-init's `sscanf("%d:%d")` reads it (anything after R is ignored).
fn rewrite(s: &str) -> Option<(i32, i32)> {
    let (from, rest) = c_int(s)?;
    let (to, _) = c_int(rest.strip_prefix(':')?)?;
    let ok = (1..=MAXSIG).contains(&from) && (0..=MAXSIG).contains(&to);
    ok.then_some((from as i32, to as i32))
}

/// The `Config`: dumb-init's flags as vigil's, then the `VIGIL_*` variables, then dumb-init's
/// variables and defaults.
fn translate(
    o: Options,
    command: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    let debug = env("DUMB_INIT_DEBUG").as_deref() == Some("1");
    let run = RunArgs {
        log_level: o.verbose.then(|| Level::Debug.name().to_string()),
        single_child: o.single_child,
        ..RunArgs::default()
    };
    let defaults = Defaults {
        name: "dumb-init",
        drain_timeout: None,
        log_level: if debug { Level::Debug } else { Level::Error },
    };
    let mut c = config(run, command, env, &defaults)?;
    if !o.single_child && !vigil_set(env, "VIGIL_SINGLE_CHILD") {
        c.signals.single_child = env("DUMB_INIT_SETSID").as_deref() == Some("0");
    }
    rewrites(&mut c, &o.rewrite);
    c.leave_cwd = true;
    Ok(c)
}

/// `-r` into vigil's signal settings: a drain signal's goes to what the drain sends, any other's
/// to `--rewrite` (given at all, they replace `VIGIL_REWRITE`). KILL, STOP and CHLD are never
/// passed on, so rewriting them changes nothing, as in dumb-init. In group mode TSTP, TTIN and
/// TTOU then go on as STOP unless rewritten, so a job-control stop reaches the whole group.
fn rewrites(c: &mut Config, given: &[(i32, i32)]) {
    let s = &mut c.signals;
    let mut table: Vec<(Sig, Option<Sig>)> = Vec::new();
    for &(from, to) in given {
        let (Some(from), to) = (Sig::new(from), Sig::new(to)) else {
            continue;
        };
        table.retain(|&(f, _)| f != from);
        table.push((from, to));
    }
    if !given.is_empty() {
        s.rewrite.clear();
    }
    for (from, to) in table {
        if s.drain_signals.contains(&from) {
            s.drain_rewrite.push((from, to));
        } else if ![Sig::KILL, Sig::STOP, Sig::CHLD].contains(&from) {
            s.rewrite.retain(|&(f, _)| f != from);
            s.rewrite.push((from, to));
        }
    }
    if !s.single_child {
        for job in [Sig::TSTP, Sig::TTIN, Sig::TTOU] {
            if !s.rewrite.iter().any(|&(f, _)| f == job) && !s.drain_signals.contains(&job) {
                s.rewrite.push((job, Some(Sig::STOP)));
            }
        }
    }
}

/// dumb-init's `dumb-init vX` (it prints it on stderr), then vigil's own line.
fn version(name: &str) -> String {
    format!(
        "dumb-init v{DUMB_INIT_VERSION}\n{}",
        vigil_line(name, "dumb-init")
    )
}

fn help(name: &str) -> String {
    format!(
        "{name} (vigil {}, taking dumb-init's command line)\n\
         Usage: {name} [OPTIONS] COMMAND [ARGS...]\n\n\
         Runs COMMAND under vigil, a PID 1 for containers, with dumb-init's options:\n\n\
         \x20 -c, --single-child   send signals to COMMAND only, not its process group\n\
         \x20 -r, --rewrite S:R    pass signal S on as R (numbers from 1 to 31; R 0 drops S);\n\
         \x20                      repeatable\n\
         \x20 -v, --verbose        debug lines on stderr\n\
         \x20 -h, --help           show this help and exit\n\
         \x20 -V, --version        show the version and exit\n\n\
         Environment: DUMB_INIT_SETSID=0 (as -c), DUMB_INIT_DEBUG=1 (as -v).\n{}",
        env!("CARGO_PKG_VERSION"),
        super::VIGIL_NOTE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn sig(n: i32) -> Sig {
        Sig::new(n).unwrap()
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Parsed, Error> {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse("dumb-init", &args, &|k| map.get(k).cloned())
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match run(args, env).unwrap() {
            Parsed::Run(c) => *c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn exit(args: &[&str]) -> (String, bool, u8) {
        match run(args, &[]).unwrap() {
            Parsed::Exit(a) => (a.text, a.stderr, a.code),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// The STOP rewrites group mode adds.
    fn job_stops() -> Vec<(Sig, Option<Sig>)> {
        [20, 21, 22].map(|n| (sig(n), Some(Sig::STOP))).to_vec()
    }

    #[test]
    fn defaults_are_dumb_inits() {
        let c = config(&["app", "-c", "x"], &[]);
        assert_eq!(c.command.len(), 3, "options end at the command");
        assert!(!c.signals.single_child, "the whole group");
        assert_eq!(c.drain_timeout, None);
        assert!(c.signals.forward_only);
        assert_eq!(c.log_level, Level::Error);
        assert_eq!(c.signals.rewrite, job_stops());
        assert!(c.signals.drain_rewrite.is_empty());
        assert!(c.leave_cwd);
    }

    #[test]
    fn single_child_and_debug() {
        for (args, env) in [
            (&["-c", "x"][..], &[][..]),
            (&["--single-child", "x"], &[]),
            (&["--sing", "x"], &[]),
            (&["x"], &[("DUMB_INIT_SETSID", "0")]),
        ] {
            let c = config(args, env);
            assert!(c.signals.single_child, "{args:?} {env:?}");
            assert!(
                c.signals.rewrite.is_empty(),
                "no STOP rewrites without setsid"
            );
        }
        for v in ["1 ", "", "no", "00"] {
            let c = config(&["x"], &[("DUMB_INIT_SETSID", v)]);
            assert!(!c.signals.single_child, "DUMB_INIT_SETSID={v:?}");
        }
        for (args, env) in [
            (&["-v", "x"][..], &[][..]),
            (&["--verbose", "x"], &[]),
            (&["-cv", "x"], &[]),
            (&["x"], &[("DUMB_INIT_DEBUG", "1")]),
        ] {
            assert_eq!(
                config(args, env).log_level,
                Level::Debug,
                "{args:?} {env:?}"
            );
        }
        let c = config(&["x"], &[("DUMB_INIT_DEBUG", "true")]);
        assert_eq!(c.log_level, Level::Error);
    }

    #[test]
    fn rewrites_map_to_the_drain_and_to_rewrite() {
        let c = config(
            &[
                "-r",
                "15:3",
                "--rewrite=2:0",
                "-r",
                "1:31",
                "-r31:1",
                "-r",
                "1:12",
                "x",
            ],
            &[("VIGIL_REWRITE", "WINCH:0")],
        );
        let s = &c.signals;
        assert_eq!(
            s.drain_rewrite,
            [(Sig::TERM, Some(sig(3))), (Sig::INT, None)]
        );
        let mut want = vec![(sig(31), Some(sig(1))), (sig(1), Some(sig(12)))];
        want.extend(job_stops());
        assert_eq!(
            s.rewrite, want,
            "the last -r for a signal wins; -r replaces VIGIL_REWRITE"
        );
        // -r for a job-control signal replaces its STOP; KILL, STOP, CHLD change nothing.
        let c = config(
            &["-r", "21:15", "-r", "9:1", "-r", "17:0", "-r", "19:1", "x"],
            &[],
        );
        assert_eq!(
            c.signals.rewrite,
            [
                (sig(21), Some(Sig::TERM)),
                (sig(20), Some(Sig::STOP)),
                (sig(22), Some(Sig::STOP))
            ]
        );
        // Without -r, VIGIL_REWRITE stands, and group mode adds its STOPs.
        let c = config(&["x"], &[("VIGIL_REWRITE", "HUP:0")]);
        assert_eq!(c.signals.rewrite[0], (sig(1), None));
        assert_eq!(c.signals.rewrite.len(), 4);
        // A drain signal added by VIGIL_DRAIN_SIGNALS is the drain's too.
        let c = config(
            &["-r", "3:10", "x"],
            &[("VIGIL_DRAIN_SIGNALS", "TERM,INT,QUIT")],
        );
        assert_eq!(c.signals.drain_rewrite, [(sig(3), Some(sig(10)))]);
    }

    #[test]
    fn rewrite_values_as_sscanf() {
        assert_eq!(rewrite("15:12"), Some((15, 12)));
        assert_eq!(rewrite(" 15: 12junk"), Some((15, 12)));
        assert_eq!(rewrite("31:0"), Some((31, 0)));
        for bad in [
            "",
            "herp",
            "herp:derp",
            "15",
            "15::12",
            "15:derp",
            "0",
            "1:32",
            "0:1",
            "32:1",
            "15:-1",
        ] {
            assert_eq!(rewrite(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn vigil_variables_apply_on_top() {
        let env = [
            ("VIGIL_DRAIN_TIMEOUT", "2.5"),
            ("VIGIL_LOG_LEVEL", "warn"),
            ("VIGIL_SINGLE_CHILD", "1"),
            ("DUMB_INIT_DEBUG", "1"),
        ];
        let c = config(&["x"], &env);
        assert_eq!(c.drain_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(
            c.log_level,
            Level::Warn,
            "VIGIL_LOG_LEVEL beats DUMB_INIT_DEBUG"
        );
        assert!(c.signals.single_child);
        assert_eq!(
            config(&["-v", "x"], &env).log_level,
            Level::Debug,
            "the flag wins"
        );
        let c = config(
            &["x"],
            &[("VIGIL_SINGLE_CHILD", "0"), ("DUMB_INIT_SETSID", "0")],
        );
        assert!(!c.signals.single_child);
    }

    #[test]
    fn answers_and_usage_errors() {
        for flag in ["-V", "--version", "--vers"] {
            let (text, stderr, code) = exit(&[flag]);
            assert!(stderr && code == 0, "{flag}");
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("dumb-init v1.2.5"));
            assert!(lines.next().is_some_and(|l| l.starts_with("vigil ")));
        }
        for flag in ["-h", "--help", "--he"] {
            let (text, stderr, code) = exit(&[flag, "x"]);
            assert!(stderr && code == 0 && text.contains("--rewrite"), "{flag}");
        }
        for bad in [
            &[][..],
            &["--"],
            &["-c"],
            &["--yolo", "/bin/true"],
            &["--ver", "x"],
            &["--verbose=1", "x"],
            &["-r"],
            &["-r", "", "x"],
            &["-r", "15:12", "-r"],
            &["-r", "15:12", "-r", "0", "x"],
            &["-r", "15:12", "-r", "1:32", "x"],
            &["--rewrite"],
        ] {
            let (text, stderr, code) = exit(bad);
            assert!(stderr && code == 1 && !text.is_empty(), "{bad:?}");
        }
        assert_eq!(
            exit(&["--yolo", "x"]).0,
            "dumb-init: unrecognized option '--yolo'\n"
        );
    }
}
