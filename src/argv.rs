//! The command line before argh sees it: `--flag=value` becomes `--flag value`, `-h` becomes
//! `--help`, and `vigil drill`'s own flags are taken out of the run options they mix with.
//!
//! argh knows neither `=` nor `-h`, and has no way to flatten one flag struct into another, so
//! this walks the options once with the flag tables argh derives (`ArgsInfo`): which names take a
//! value, which are switches, which are the drill's. The walk stops at `--` or at the command
//! (the first word that is not an option or an option's value), so nothing of the app's is ever
//! touched.

use argh::{FlagInfo, FlagInfoKind};

/// The options, sorted out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// For the main flag struct, the command (or, without `greedy`, the positionals) included.
    pub main: Vec<String>,
    /// The flags found in the `extra` table, with their values.
    pub extra: Vec<String>,
    /// `--help` or `-h` came before the command.
    pub help: bool,
}

/// Splits `args` (what follows `vigil`, `vigil drill` or `vigil probe`). `main` and `extra` are
/// flag tables; a name in neither goes to `main` as it is, for argh to refuse with its name.
/// `greedy`: the first positional starts the command, which takes everything after it.
pub fn split(args: &[&str], main: &[FlagInfo], extra: &[FlagInfo], greedy: bool) -> Split {
    let find = |name: &str| -> Option<(bool, bool)> {
        let takes_value = |f: &FlagInfo| matches!(f.kind, FlagInfoKind::Option { .. });
        if let Some(f) = extra.iter().find(|f| f.long == name) {
            return Some((true, takes_value(f)));
        }
        main.iter()
            .find(|f| f.long == name)
            .map(|f| (false, takes_value(f)))
    };
    let mut out = Split::default();
    let mut i = 0;
    while i < args.len() {
        let word = args[i];
        i += 1;
        // argh's own trigger: `help` as the first word (never a command named help after it).
        if word == "help" && i == 1 {
            out.help = true;
            continue;
        }
        if word == "--" || !word.starts_with('-') || word == "-" {
            if greedy || word == "--" {
                out.main.extend(args[i - 1..].iter().map(|s| s.to_string()));
                break;
            }
            out.main.push(word.to_string());
            continue;
        }
        if word == "-h" || word == "--help" {
            out.help = true;
            continue;
        }
        let (name, inline) = match word.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (word, None),
        };
        let Some((is_extra, takes_value)) = find(name) else {
            out.main.push(word.to_string());
            continue;
        };
        let to = if is_extra {
            &mut out.extra
        } else {
            &mut out.main
        };
        if !takes_value {
            // A switch with `=value`: argh refuses the whole word, naming it.
            to.push(word.to_string());
            continue;
        }
        to.push(name.to_string());
        match inline {
            Some(value) => to.push(value.to_string()),
            None => {
                if let Some(value) = args.get(i) {
                    to.push(value.to_string());
                    i += 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{DrillArgs, ProbeArgs, RunArgs};
    use argh::ArgsInfo;

    fn run(args: &[&str]) -> Split {
        let main = RunArgs::get_args_info().flags;
        let drill = DrillArgs::get_args_info().flags;
        split(args, main, drill, true)
    }

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn equals_and_short_help() {
        let s = run(&[
            "--drain-timeout=3",
            "--user",
            "a=b",
            "--",
            "app",
            "--x=1",
            "-h",
        ]);
        assert_eq!(
            s.main,
            words(&[
                "--drain-timeout",
                "3",
                "--user",
                "a=b",
                "--",
                "app",
                "--x=1",
                "-h"
            ])
        );
        assert!(!s.help, "-h after -- is the app's");
        assert!(run(&["-h"]).help);
        assert!(run(&["help"]).help);
        assert!(
            !run(&["--single-child", "help"]).help,
            "a command named help"
        );
        assert!(run(&["--user", "x", "--help", "app"]).help);
        assert!(
            !run(&["--user", "--help", "app"]).help,
            "a value, not a flag"
        );
        // An empty value stays one (an empty flag value means unset).
        assert_eq!(run(&["--user=", "x"]).main, words(&["--user", "", "x"]));
    }

    #[test]
    fn the_command_is_left_alone() {
        let s = run(&["--single-child", "sh", "-c", "--budget=1", "--after"]);
        assert_eq!(
            s.main,
            words(&["--single-child", "sh", "-c", "--budget=1", "--after"])
        );
        assert!(s.extra.is_empty());
    }

    #[test]
    fn drill_flags_are_taken_out() {
        let s = run(&[
            "--budget=8",
            "--user",
            "nobody",
            "--hold",
            "2",
            "--single-child",
            "--report",
            "/tmp/r.json",
            "--",
            "app",
        ]);
        assert_eq!(
            s.extra,
            words(&["--budget", "8", "--hold", "2", "--report", "/tmp/r.json"])
        );
        assert_eq!(
            s.main,
            words(&["--user", "nobody", "--single-child", "--", "app"])
        );
    }

    #[test]
    fn unknown_and_bad_words_go_to_argh_as_they_are() {
        let s = run(&["--bogus=1", "--single-child=1", "--user"]);
        assert_eq!(s.main, words(&["--bogus=1", "--single-child=1", "--user"]));
    }

    #[test]
    fn probe_options_after_the_target() {
        let flags = ProbeArgs::get_args_info().flags;
        let s = split(&["tcp://a:1", "--timeout=2", "-h"], flags, &[], false);
        assert_eq!(s.main, words(&["tcp://a:1", "--timeout", "2"]));
        assert!(s.help);
    }
}
