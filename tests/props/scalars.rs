//! Durations, signal names and `/proc/<pid>/stat` lines.

use crate::cli::parse_seconds;
use crate::engine::*;
use crate::procs;
use crate::sig::{self, Sig};
use crate::sigflags::StopSignal;
use std::time::{Duration, Instant};

fn duration_text(rng: &mut Rng) -> String {
    let sp = |rng: &mut Rng| rng.pick(&["", "", " ", "\t", "\n", "\u{a0}"]).to_string();
    let int = match rng.below(5) {
        0 => String::new(),
        1 => "0".repeat(rng.below(400)),
        _ => number(rng),
    };
    let frac = match rng.below(4) {
        0 => None,
        1 => Some("9".repeat(rng.below(400))),
        _ => Some(word(rng, "0123456789", 6)),
    };
    let mut s = format!("{}{int}", sp(rng));
    if let Some(f) = frac {
        s.push('.');
        s.push_str(&f);
    }
    s.push_str(&sp(rng));
    s
}

const DURATION_SEEDS: &[&str] = &[
    "0.5",
    "9",
    "0",
    ".25",
    "3.",
    " 2 ",
    "31536000",
    "31536000.0000001",
    "1e3",
    "nan",
    "inf",
    "-1",
];
const DURATION_DICT: &[&str] = &[
    ".", "0", "9", "e", "E", "+", "-", "inf", "nan", "_", " ", "31536000",
];

#[test]
fn durations() {
    fuzz(
        "durations",
        |rng| structured_or_mutated(rng, duration_text, DURATION_SEEDS, DURATION_DICT),
        |s| {
            let Ok(d) = parse_seconds(s) else {
                return;
            };
            assert!(d <= Duration::from_secs(31_536_000), "{d:?}");
            let t = s.trim();
            assert!(
                !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
                "{s:?}"
            );
            assert!(t.bytes().filter(|&b| b == b'.').count() <= 1, "{s:?}");
            let want: f64 = t.parse().expect("digits and a dot parse as f64");
            assert!(
                (d.as_secs_f64() - want).abs() <= 1e-6 * want.max(1.0),
                "{s:?} -> {d:?}"
            );
            // Instant arithmetic with it cannot overflow.
            let _ = Instant::now() + d + d;
            // Round trip through the way the error messages print it.
            let again = parse_seconds(&format!("{}", d.as_secs_f64())).expect("re-parses");
            assert!(
                again.abs_diff(d) <= Duration::from_micros(1),
                "{d:?} {again:?}"
            );
        },
    );
}

fn signal_text(rng: &mut Rng) -> String {
    let names = [
        "TERM",
        "SIGTERM",
        "term",
        "Quit",
        "SIGRTMIN",
        "RTMIN+1",
        "IOT",
        "POLL",
        "SIGSIG",
        "SIG",
        "KILL",
        "STOP",
        "PWR",
        "WINCH",
        "RTMAX-2",
        "TERM,INT@3",
        "QUIT,INT@1,9@0.5",
    ];
    match rng.below(4) {
        0 => number(rng),
        1 => (rng.below(80) as i64 - 8).to_string(),
        _ => {
            let s = rng.pick(&names).to_string();
            format!(
                "{}{s}{}",
                rng.pick(&["", " ", "SIG", "sig"]),
                rng.pick(&["", " ", "2", "\n"])
            )
        }
    }
}

#[test]
fn signal_names() {
    fuzz(
        "signal_names",
        |rng| {
            structured_or_mutated(
                rng,
                signal_text,
                &["TERM", "SIGQUIT", "15", "usr1", "TERM,INT@5"],
                &["SIG", "TERM", "1", " "],
            )
        },
        |s| {
            if let Ok(steps) = StopSignal::parse(s) {
                let times: Vec<Duration> = steps.later.iter().map(|&(at, _)| at).collect();
                assert!(times.windows(2).all(|w| w[0] < w[1]), "{s:?}");
            }
            let Ok(sig) = sig::parse(s) else {
                return;
            };
            assert!((1..=64).contains(&sig.raw()) && !sig.libc_reserved());
            assert_eq!(sig::parse(sig.name()), Ok(sig));
            assert_eq!(sig::parse(&sig.raw().to_string()), Ok(sig));
            let short = sig.name().trim_start_matches("SIG").to_ascii_lowercase();
            assert_eq!(sig::parse(&short), Ok(sig));
            assert_eq!(Sig::new(sig.raw()), Some(sig));
        },
    );
}

#[derive(Debug)]
struct StatInput {
    line: String,
    /// When the line was built from these, what it must parse to.
    want: Option<(i32, i32, char)>,
}

fn stat_line(rng: &mut Rng) -> StatInput {
    let pid = rng.below(4_194_304) as i32 + 1;
    let ppid = rng.below(4_194_304) as i32;
    let state = *rng.pick(&['R', 'S', 'D', 'Z', 'T', 't', 'X', 'I', 'P']);
    // comm is at most 15 bytes but may hold anything: spaces, parentheses, even newlines.
    let comm = word(rng, "ab ()) (x)Z 1", 15);
    let tail: Vec<String> = (0..rng.below(50))
        .map(|_| rng.below(100_000).to_string())
        .collect();
    let line = format!("{pid} ({comm}) {state} {ppid} {}\n", tail.join(" "));
    StatInput {
        line,
        want: Some((pid, ppid, state)),
    }
}

#[test]
fn proc_stat() {
    fuzz(
        "proc_stat",
        |rng| match rng.below(3) {
            0 => stat_line(rng),
            1 => {
                let base = stat_line(rng);
                let line = text(mutate(
                    rng,
                    base.line.as_bytes(),
                    &[" (", ")", " ", "-1", "Z"],
                    &[],
                ));
                StatInput { line, want: None }
            }
            _ => StatInput {
                line: text(random_bytes(rng)),
                want: None,
            },
        },
        |i| {
            let got = procs::parse_stat(&i.line);
            if let Some(want) = i.want {
                assert_eq!(got, Some(want));
            }
            if let Some((_, _, state)) = got {
                assert!(!state.is_whitespace());
            }
        },
    );
}
