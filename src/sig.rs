//! Signal numbers and names.
//!
//! A signal is the kernel's number, 1 to 64. nix's `Signal` has no real-time signals, and the C
//! library's SIGRTMIN is not the kernel's (glibc says 34, musl 35), so names follow the numbering
//! of the kernel's `kill -l` and Docker: RTMIN is 34 and RTMAX 64, whatever the libc says.
//! Signals 32 and 33 are the C libraries' own (thread cancellation, set*id across threads): no
//! flag accepts them and vigil never forwards them.

use std::fmt;

/// A signal number from 1 to 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sig(i32);

/// Every signal's name by number: the lower real-time half counts up from RTMIN, the upper
/// half down from RTMAX, as bash's `kill -l` does; 32 and 33 have none.
const NAMES: [&str; 65] = [
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
    "SIG32",
    "SIG33",
    "SIGRTMIN",
    "SIGRTMIN+1",
    "SIGRTMIN+2",
    "SIGRTMIN+3",
    "SIGRTMIN+4",
    "SIGRTMIN+5",
    "SIGRTMIN+6",
    "SIGRTMIN+7",
    "SIGRTMIN+8",
    "SIGRTMIN+9",
    "SIGRTMIN+10",
    "SIGRTMIN+11",
    "SIGRTMIN+12",
    "SIGRTMIN+13",
    "SIGRTMIN+14",
    "SIGRTMIN+15",
    "SIGRTMAX-14",
    "SIGRTMAX-13",
    "SIGRTMAX-12",
    "SIGRTMAX-11",
    "SIGRTMAX-10",
    "SIGRTMAX-9",
    "SIGRTMAX-8",
    "SIGRTMAX-7",
    "SIGRTMAX-6",
    "SIGRTMAX-5",
    "SIGRTMAX-4",
    "SIGRTMAX-3",
    "SIGRTMAX-2",
    "SIGRTMAX-1",
    "SIGRTMAX",
];

/// Other names of the same numbers, as `kill -l` and the C headers know them.
const ALIASES: [(&str, i32); 3] = [("IOT", 6), ("POLL", 29), ("CLD", 17)];

impl Sig {
    #[cfg(test)]
    pub const HUP: Sig = Sig(1);
    pub const INT: Sig = Sig(2);
    #[cfg(test)]
    pub const QUIT: Sig = Sig(3);
    pub const KILL: Sig = Sig(9);
    #[cfg(test)]
    pub const USR1: Sig = Sig(10);
    pub const TERM: Sig = Sig(15);
    pub const CHLD: Sig = Sig(17);
    pub const CONT: Sig = Sig(18);
    pub const STOP: Sig = Sig(19);
    pub const TSTP: Sig = Sig(20);
    pub const TTIN: Sig = Sig(21);
    pub const TTOU: Sig = Sig(22);
    #[cfg(test)]
    pub const WINCH: Sig = Sig(28);
    /// The first real-time signal as the kernel's `kill -l` and Docker count.
    pub const RTMIN: i32 = 34;
    pub const RTMAX: i32 = 64;

    /// The signal numbered `n`, if there is one (1 to 64).
    pub fn new(n: i32) -> Option<Sig> {
        (1..=Sig::RTMAX).contains(&n).then_some(Sig(n))
    }

    pub fn raw(self) -> i32 {
        self.0
    }

    /// 32 and 33: reserved by the C library for its threads.
    pub fn libc_reserved(self) -> bool {
        (32..Sig::RTMIN).contains(&self.0)
    }

    /// `SIGTERM`, `SIGRTMIN+3`, `SIGRTMAX-2`; `SIG32` for the C library's own.
    pub fn name(self) -> &'static str {
        NAMES.get(self.0 as usize).copied().unwrap_or("SIG?")
    }

    /// The bit of this signal in a kernel signal set.
    pub fn bit(self) -> u64 {
        1 << (self.0 - 1)
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const HINT: &str = "e.g. TERM, SIGQUIT, RTMIN+3 or 15";

/// `TERM`, `SIGTERM`, `term`, `15`, `RTMIN`, `SIGRTMIN+3`, `RTMAX-1`. 0 is not a signal; 32 and
/// 33 belong to the C library.
pub fn parse(s: &str) -> Result<Sig, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i32 = t.parse().unwrap_or(0);
        return match Sig::new(n) {
            Some(sig) if sig.libc_reserved() => {
                Err("signals 32 and 33 are reserved for the C library".into())
            }
            Some(sig) => Ok(sig),
            None => Err("not a signal number (1 to 64)".into()),
        };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(i) = NAMES[..32].iter().position(|n| n.get(3..) == Some(name)) {
        return Ok(Sig(i as i32));
    }
    if let Some(&(_, n)) = ALIASES.iter().find(|(a, _)| *a == name) {
        return Ok(Sig(n));
    }
    real_time(name).ok_or_else(|| format!("unknown signal name ({HINT})"))
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N`, within 34 to 64.
fn real_time(name: &str) -> Option<Sig> {
    let offset = |rest: &str, sign: char| -> Option<i32> {
        if rest.is_empty() {
            return Some(0);
        }
        let digits = rest.strip_prefix(sign)?;
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        Sig::RTMIN + offset(rest, '+')?
    } else {
        Sig::RTMAX - offset(name.strip_prefix("RTMAX")?, '-')?
    };
    (Sig::RTMIN..=Sig::RTMAX).contains(&n).then_some(Sig(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: i32) -> Sig {
        Sig::new(n).unwrap()
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("TERM"), Ok(Sig::TERM));
        assert_eq!(parse("SIGQUIT"), Ok(Sig::QUIT));
        assert_eq!(parse("quit"), Ok(Sig::QUIT));
        assert_eq!(parse("sigusr1"), Ok(Sig::USR1));
        assert_eq!(parse("3"), Ok(Sig::QUIT));
        assert_eq!(parse(" 15 "), Ok(Sig::TERM));
        assert_eq!(parse("WINCH"), Ok(Sig::WINCH));
        assert_eq!(parse("IOT"), Ok(s(6)));
        assert_eq!(parse("SIGPOLL"), Ok(s(29)));
        assert_eq!(parse("STKFLT"), Ok(s(16)));
        for bad in [
            "0",
            "65",
            "-1",
            "+3",
            "FOO",
            "SIG",
            "",
            "SIGSIGTERM",
            "TERM2",
            "32",
            "33",
            "3.0",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for n in (1..=31).chain(34..=64) {
            assert_eq!(parse(&n.to_string()), Ok(s(n)), "{n}");
        }
    }

    /// Docker's and the kernel's numbering, whatever this libc's SIGRTMIN is.
    #[test]
    fn real_time_signals() {
        assert_eq!(parse("RTMIN"), Ok(s(34)));
        assert_eq!(parse("SIGRTMIN"), Ok(s(34)));
        assert_eq!(parse("rtmin+3"), Ok(s(37)));
        assert_eq!(parse("RTMIN+30"), Ok(s(64)));
        assert_eq!(parse("RTMAX"), Ok(s(64)));
        assert_eq!(parse("SIGRTMAX-1"), Ok(s(63)));
        assert_eq!(parse("RTMAX-30"), Ok(s(34)));
        for bad in [
            "RTMIN+31",
            "RTMAX-31",
            "RTMIN-1",
            "RTMAX+1",
            "RTMIN+",
            "RTMIN+ 1",
            "RTMIN3",
            "RTMIN++1",
            "RTMIN+003",
            "RTMAX-",
            "RT",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// Every name vigil writes reads back as the same signal, short and long.
    #[test]
    fn names_round_trip() {
        for n in (1..=31).chain(34..=64) {
            let name = s(n).name();
            assert_eq!(parse(name), Ok(s(n)), "{name}");
            assert_eq!(parse(name.trim_start_matches("SIG")), Ok(s(n)), "{name}");
        }
        assert_eq!(s(34).name(), "SIGRTMIN");
        assert_eq!(s(49).name(), "SIGRTMIN+15");
        assert_eq!(s(50).name(), "SIGRTMAX-14");
        assert_eq!(s(64).name(), "SIGRTMAX");
        assert_eq!(s(32).name(), "SIG32");
        assert_eq!(s(9).to_string(), "SIGKILL");
        assert_eq!(s(64).bit(), 1 << 63);
        assert!(s(33).libc_reserved() && !s(34).libc_reserved() && !s(31).libc_reserved());
    }
}
