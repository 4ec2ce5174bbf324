//! Drop-in names (contract, "Drop-in names"): installed as `tini` or `docker-init`, vigil takes
//! tini's command line and environment; as `dumb-init`, dumb-init's. Each is translated here into
//! vigil's own `Config`, purely (the environment comes in as a lookup function), so an image
//! swaps the binary, keeps its `ENTRYPOINT`, and sees no change until it sets a `VIGIL_*`
//! variable.
//!
//! Precedence, highest first: the peer's flags (as vigil's own flags win), `VIGIL_*` variables,
//! the peer's variables, the peer's defaults where they differ from vigil's (signal target, no
//! drain deadline, every SIGINT passed on, quieter logs). Usage errors exit as the peer does
//! (1); a bad `VIGIL_*` value is still vigil's own error (2).
//!
//! Both peers parse with GNU getopt, and an entrypoint may lean on its quirks, so `getopt`
//! follows them: tini's option letters may come after the command unless `POSIXLY_CORRECT` is
//! set or `--` ends them (`tini echo hi -v` is `-v` for tini), and dumb-init's long options
//! may be shortened to any unambiguous prefix (`--verb`).

// Paths spelled out: `tests/props` and `fuzz/` compile this file by `#[path]` too.
#[path = "dropin/dumb_init.rs"]
mod dumb_init;
#[path = "dropin/tini.rs"]
mod tini;

use crate::cli::{Config, Defaults};
use crate::error::Error;
use crate::flags::RunArgs;
use std::ffi::OsString;
use std::path::Path;

/// An init vigil can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `tini`, and Docker's name for it, `docker-init`.
    Tini,
    DumbInit,
}

impl Peer {
    /// The peer whose name `argv0`'s file name is, if any; anything else is vigil.
    pub fn named(argv0: &OsString) -> Option<Peer> {
        match Path::new(argv0).file_name()?.to_str()? {
            "tini" | "docker-init" => Some(Peer::Tini),
            "dumb-init" => Some(Peer::DumbInit),
            _ => None,
        }
    }
}

/// What a peer's command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Config>),
    Exit(Answer),
}

/// Help, a version, the license or a usage error: print `text` (on stderr if `stderr`) and exit
/// with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    pub stderr: bool,
    pub code: u8,
}

impl Answer {
    fn stdout(text: String, code: u8) -> Answer {
        Answer {
            text,
            stderr: false,
            code,
        }
    }

    fn stderr(text: String, code: u8) -> Answer {
        Answer {
            text,
            stderr: true,
            code,
        }
    }
}

/// The peers' exit status for a usage error.
const USAGE_EXIT: u8 = 1;

/// Translates `raw` (argv, argv[0] included) as `peer` would read it.
pub fn parse(
    peer: Peer,
    raw: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, Error> {
    let name = raw
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let args = raw.get(1..).unwrap_or_default();
    match peer {
        Peer::Tini => tini::parse(&name, args, env),
        Peer::DumbInit => dumb_init::parse(&name, args, env),
    }
}

/// vigil's `Config` from `run` (the peer's flags as vigil's), with `defaults` where no flag or
/// `VIGIL_*` variable says otherwise; the drain only forwards, as both peers do (every SIGINT
/// passed on, no SIGCONT after the forward).
fn config(
    mut run: RunArgs,
    command: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    defaults: &Defaults,
) -> Result<Config, Error> {
    run.command = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut c = Config::with_defaults(run, &command, env, defaults)?;
    c.signals.forward_only = true;
    Ok(c)
}

/// Whether a `VIGIL_*` variable is set to something (an empty one counts as unset).
fn vigil_set(env: &dyn Fn(&str) -> Option<String>, var: &str) -> bool {
    env(var).is_some_and(|v| !v.trim().is_empty())
}

/// The second line of a peer's `--version`: who is really answering.
fn vigil_line(name: &str, peer: &str) -> String {
    format!(
        "vigil {}, installed as {name}: {peer}'s command line and environment\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The closing lines of both peers' help: what else vigil reads.
const VIGIL_NOTE: &str = "Every VIGIL_* variable of vigil --help applies too (VIGIL_DRAIN_TIMEOUT sets a deadline \
     after SIGTERM;\nthere is none by default under this name).\n";

/// One option a peer takes: its letter, its long name, and whether it takes a value.
struct Opt {
    short: char,
    long: Option<&'static str>,
    value: bool,
}

/// An option found on the command line, or glibc's complaint about one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Opt(char, Option<String>),
    Error(String),
}

/// GNU getopt_long over `args` (argv without argv[0]): the options in order, up to and including
/// the first error, and the positions of the operands (the command and its arguments). With
/// `permute`, options after an operand still count (GNU's default); without it, the first
/// operand ends them (`+` in the option string, or `POSIXLY_CORRECT`). `--` always ends them.
fn getopt(args: &[String], opts: &[Opt], permute: bool) -> (Vec<Item>, Vec<usize>) {
    let mut items = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            operands.extend(i + 1..args.len());
            break;
        }
        let has_longs = opts.iter().any(|o| o.long.is_some());
        let next = args.get(i + 1);
        let used = if let Some(long) = arg.strip_prefix("--").filter(|_| has_longs) {
            long_option(long, next, opts, &mut items)
        } else if arg.len() > 1 && arg.starts_with('-') {
            short_options(&arg[1..], next, opts, &mut items)
        } else if permute {
            operands.push(i);
            0
        } else {
            operands.extend(i..args.len());
            break;
        };
        if matches!(items.last(), Some(Item::Error(_))) {
            break;
        }
        i += 1 + used;
    }
    (items, operands)
}

/// `--name` or `--name=value` (`long` is what follows `--`); returns how many of the following
/// arguments it took as its value (0 or 1).
fn long_option(long: &str, next: Option<&String>, opts: &[Opt], items: &mut Vec<Item>) -> usize {
    let (name, inline) = match long.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (long, None),
    };
    let exact = opts.iter().find(|o| o.long == Some(name));
    let prefixed: Vec<&Opt> = opts
        .iter()
        .filter(|o| o.long.is_some_and(|l| l.starts_with(name)))
        .collect();
    let opt = match (exact, prefixed.as_slice()) {
        (Some(o), _) | (None, &[o]) => o,
        (None, []) => {
            items.push(Item::Error(format!("unrecognized option '--{long}'")));
            return 0;
        }
        (None, _) => {
            items.push(Item::Error(format!("option '--{name}' is ambiguous")));
            return 0;
        }
    };
    let full = opt.long.unwrap_or_default();
    match (opt.value, inline, next) {
        (true, Some(v), _) => items.push(Item::Opt(opt.short, Some(v))),
        (true, None, Some(v)) => {
            items.push(Item::Opt(opt.short, Some(v.clone())));
            return 1;
        }
        (true, None, None) => items.push(Item::Error(format!(
            "option '--{full}' requires an argument"
        ))),
        (false, Some(_), _) => items.push(Item::Error(format!(
            "option '--{full}' doesn't allow an argument"
        ))),
        (false, None, _) => items.push(Item::Opt(opt.short, None)),
    }
    0
}

/// A cluster of letters (`-vvv`, `-e3`, `-cv`, what follows the `-`); returns how many of the
/// following arguments the last letter took as its value (0 or 1).
fn short_options(
    cluster: &str,
    next: Option<&String>,
    opts: &[Opt],
    items: &mut Vec<Item>,
) -> usize {
    for (at, c) in cluster.char_indices() {
        let Some(opt) = opts.iter().find(|o| o.short == c) else {
            items.push(Item::Error(format!("invalid option -- '{c}'")));
            return 0;
        };
        if !opt.value {
            items.push(Item::Opt(c, None));
            continue;
        }
        let rest = &cluster[at + c.len_utf8()..];
        if !rest.is_empty() {
            items.push(Item::Opt(c, Some(rest.to_string())));
        } else if let Some(v) = next {
            items.push(Item::Opt(c, Some(v.clone())));
            return 1;
        } else {
            items.push(Item::Error(format!("option requires an argument -- '{c}'")));
        }
        return 0;
    }
    0
}

/// C's `atoi`/`sscanf("%d")`: leading blanks, a sign, digits; whatever follows is returned.
/// None without a digit. Saturates instead of overflowing.
fn c_int(s: &str) -> Option<(i64, &str)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n = t[..digits].bytes().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some((if neg { -n } else { n }, &t[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: [Opt; 3] = [
        Opt {
            short: 'a',
            long: Some("alpha"),
            value: false,
        },
        Opt {
            short: 'b',
            long: Some("beta"),
            value: true,
        },
        Opt {
            short: 'c',
            long: Some("bebop"),
            value: false,
        },
    ];

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn opt(c: char, v: Option<&str>) -> Item {
        Item::Opt(c, v.map(str::to_string))
    }

    #[test]
    fn peer_names() {
        let named = |s: &str| Peer::named(&OsString::from(s));
        assert_eq!(named("tini"), Some(Peer::Tini));
        assert_eq!(named("/sbin/docker-init"), Some(Peer::Tini));
        assert_eq!(named("/usr/bin/dumb-init"), Some(Peer::DumbInit));
        for other in [
            "vigil",
            "/run/podman-init",
            "tini-static",
            "",
            "dumb-init.sh",
        ] {
            assert_eq!(named(other), None, "{other}");
        }
    }

    #[test]
    fn short_options_cluster_and_take_values() {
        let (items, ops) = getopt(&strings(&["-ab3", "-b", "4", "x", "-a"]), &OPTS, true);
        assert_eq!(
            items,
            [
                opt('a', None),
                opt('b', Some("3")),
                opt('b', Some("4")),
                opt('a', None)
            ]
        );
        assert_eq!(ops, [3]);
        // A value may look like an option, or be `--`.
        let (items, ops) = getopt(&strings(&["-b", "--", "x"]), &OPTS, true);
        assert_eq!(items, [opt('b', Some("--"))]);
        assert_eq!(ops, [2]);
    }

    #[test]
    fn permutation_and_its_end() {
        let args = strings(&["x", "-a", "y", "--", "-b", "z"]);
        let (items, ops) = getopt(&args, &OPTS, true);
        assert_eq!(items, [opt('a', None)]);
        assert_eq!(ops, [0, 2, 4, 5]);
        let (items, ops) = getopt(&args, &OPTS, false);
        assert!(items.is_empty());
        assert_eq!(ops, [0, 1, 2, 3, 4, 5]);
        // A lone `-` is an operand.
        assert_eq!(getopt(&strings(&["-", "-a"]), &OPTS, false).1, [0, 1]);
    }

    #[test]
    fn long_options_and_prefixes() {
        let args = strings(&["--alpha", "--beta=1", "--beta", "2", "--al", "--bebop", "x"]);
        let (items, ops) = getopt(&args, &OPTS, false);
        assert_eq!(
            items,
            [
                opt('a', None),
                opt('b', Some("1")),
                opt('b', Some("2")),
                opt('a', None),
                opt('c', None)
            ]
        );
        assert_eq!(ops, [6]);
    }

    #[test]
    fn errors_stop_the_scan() {
        let cases: [(&[&str], &str); 6] = [
            (&["-z", "-a"], "invalid option -- 'z'"),
            (&["-ab"], "option requires an argument -- 'b'"),
            (&["--yolo", "x"], "unrecognized option '--yolo'"),
            (&["--be", "x"], "option '--be' is ambiguous"),
            (
                &["--alpha=1", "x"],
                "option '--alpha' doesn't allow an argument",
            ),
            (&["--beta"], "option '--beta' requires an argument"),
        ];
        for (args, want) in cases {
            let (items, _) = getopt(&strings(args), &OPTS, true);
            assert_eq!(
                items.last(),
                Some(&Item::Error(want.to_string())),
                "{args:?}"
            );
            assert_eq!(
                items.iter().filter(|i| matches!(i, Item::Error(_))).count(),
                1
            );
        }
        // Without long options, `--name` is a cluster whose first letter is `-`.
        let shorts = [Opt {
            short: 'v',
            long: None,
            value: false,
        }];
        let (items, _) = getopt(&strings(&["--version", "--foo"]), &shorts, true);
        assert_eq!(items, [Item::Error("invalid option -- '-'".into())]);
    }

    #[test]
    fn c_integers() {
        assert_eq!(c_int("15:2"), Some((15, ":2")));
        assert_eq!(c_int("  -3x"), Some((-3, "x")));
        assert_eq!(c_int("+7"), Some((7, "")));
        assert_eq!(c_int(""), None);
        assert_eq!(c_int("x1"), None);
        assert_eq!(c_int("-"), None);
        assert_eq!(c_int("99999999999999999999999"), Some((i64::MAX, "")));
    }
}
