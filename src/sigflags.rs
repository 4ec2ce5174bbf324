//! The signal flags: `--stop-signal` with its later steps, `--drain-signals`, `--rewrite` and
//! `--single-child`, parsed and checked against each other (pure; the errors name the flag or
//! variable as the user set it).

use crate::cli::parse_seconds;
use crate::error::Error;
use crate::sig::{Sig, parse};
use std::time::Duration;

/// `--stop-signal SIG[,SIG@SECS...]`: what the drain's first forward of a SIGTERM is, and the
/// later steps, each `after` the first forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopSignal {
    pub first: Sig,
    pub later: Vec<(Duration, Sig)>,
}

impl Default for StopSignal {
    fn default() -> StopSignal {
        StopSignal {
            first: Sig::TERM,
            later: Vec::new(),
        }
    }
}

impl StopSignal {
    pub fn parse(s: &str) -> Result<StopSignal, String> {
        let mut items = s.split(',');
        let first = items.next().unwrap_or_default();
        if first.contains('@') {
            return Err("the first step has no @SECS: it goes out when the drain forwards".into());
        }
        let first = stop_step(first)?;
        let mut later: Vec<(Duration, Sig)> = Vec::new();
        for item in items {
            let Some((sig, secs)) = item.split_once('@') else {
                return Err(format!("{:?}: a later step is SIG@SECS", item.trim()));
            };
            let after = parse_seconds(secs).map_err(|why| format!("{:?}: {why}", item.trim()))?;
            let before = later.last().map_or(Duration::ZERO, |&(at, _)| at);
            if after <= before {
                return Err(format!(
                    "{:?}: step times must increase (after {} s)",
                    item.trim(),
                    before.as_secs_f64()
                ));
            }
            later.push((after, stop_step(sig)?));
        }
        Ok(StopSignal { first, later })
    }

    /// The last step must go out before the drain's SIGKILL: `budget` is the drain timeout
    /// minus the drain delay (the steps count from the first forward).
    pub fn fits(&self, budget: Duration) -> Result<(), String> {
        match self.later.last() {
            Some(&(at, sig)) if at >= budget => Err(format!(
                "the step {}@{} must come before the drain timeout minus the delay ({} s)",
                sig.name().trim_start_matches("SIG"),
                at.as_secs_f64(),
                budget.as_secs_f64()
            )),
            _ => Ok(()),
        }
    }
}

/// One step's signal: any but those that stop the app or cannot end it.
fn stop_step(s: &str) -> Result<Sig, String> {
    let sig = parse(s).map_err(|why| format!("{:?}: {why}", s.trim()))?;
    if [
        Sig::KILL,
        Sig::STOP,
        Sig::TSTP,
        Sig::TTIN,
        Sig::TTOU,
        Sig::CHLD,
    ]
    .contains(&sig)
    {
        return Err(format!(
            "{sig} cannot be a stop signal (KILL, STOP, TSTP, TTIN, TTOU and CHLD are refused; \
             SIGKILL at the drain timeout comes last anyway)"
        ));
    }
    Ok(sig)
}

/// `--drain-signals SIG,...`: the signals that start a drain, without repeats.
pub fn parse_drain_signals(s: &str) -> Result<Vec<Sig>, String> {
    let mut out: Vec<Sig> = Vec::new();
    for item in s.split(',') {
        let sig = parse(item).map_err(|why| format!("{:?}: {why}", item.trim()))?;
        if [Sig::KILL, Sig::STOP, Sig::CHLD].contains(&sig) {
            return Err(format!(
                "{sig} cannot start a drain (KILL and STOP cannot be caught; CHLD is vigil's own)"
            ));
        }
        if !out.contains(&sig) {
            out.push(sig);
        }
    }
    Ok(out)
}

/// One `--rewrite FROM:TO`: `TO` 0 drops the signal (None).
pub fn parse_rewrite(s: &str) -> Result<(Sig, Option<Sig>), String> {
    let Some((from, to)) = s.split_once(':') else {
        return Err("expected FROM:TO, e.g. HUP:0 or USR1:USR2".into());
    };
    let from = parse(from).map_err(|why| format!("{:?}: {why}", from.trim()))?;
    if [Sig::KILL, Sig::STOP, Sig::CHLD].contains(&from) {
        return Err(format!(
            "{from} is never forwarded (KILL and STOP cannot be caught; CHLD is vigil's own)"
        ));
    }
    let to = match to.trim() {
        "0" => None,
        t => Some(parse(t).map_err(|why| format!("{t:?}: {why}"))?),
    };
    Ok((from, to))
}

/// The signal flags, validated: what `vigil` does with each signal it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalConfig {
    pub stop_signal: StopSignal,
    /// The signals that start a drain (`--drain-signals`).
    pub drain_signals: Vec<Sig>,
    /// `--rewrite FROM:TO`, TO None drops FROM; never a drain signal.
    pub rewrite: Vec<(Sig, Option<Sig>)>,
    /// Forwarded and stop signals go to the app's pid, not its group.
    pub single_child: bool,
    /// What the drain sends in place of a drain signal (dumb-init's `-r 15:R` and `-r 2:R`;
    /// None: nothing), before `stop_signal`'s first step. Empty under vigil's own name.
    pub drain_rewrite: Vec<(Sig, Option<Sig>)>,
    /// The drain only passes its signals on, as tini and dumb-init do: a SIGINT during the drain
    /// is forwarded like any repeat (vigil moves the deadline to now), and no SIGCONT follows
    /// the forward (it still follows `stop_signal`'s later steps). Under a peer's name.
    pub forward_only: bool,
}

impl Default for SignalConfig {
    fn default() -> SignalConfig {
        SignalConfig {
            stop_signal: StopSignal::default(),
            drain_signals: vec![Sig::TERM, Sig::INT],
            rewrite: Vec::new(),
            single_child: false,
            drain_rewrite: Vec::new(),
            forward_only: false,
        }
    }
}

impl SignalConfig {
    /// From the flags, or their variables: `stop` and `drain` are `(source, value)` as the
    /// flag or `VIGIL_*` gave them; the `--rewrite` flags, when any, replace `VIGIL_REWRITE`.
    /// `budget` is the drain timeout minus the delay, which the stop steps must fit in (None:
    /// no drain deadline).
    pub fn from_args(
        stop: Option<(String, String)>,
        drain: Option<(String, String)>,
        rewrite_flags: &[String],
        single_child_flag: bool,
        env: &dyn Fn(&str) -> Option<String>,
        budget: Option<Duration>,
    ) -> Result<SignalConfig, Error> {
        let mut c = SignalConfig::default();
        // An empty variable counts as unset (a deployment undoing an image's ENV).
        let set = |v: Option<(String, String)>| {
            v.filter(|(src, v)| !(src.starts_with("VIGIL_") && v.trim().is_empty()))
        };
        if let Some((src, v)) = set(stop) {
            c.stop_signal = StopSignal::parse(&v).map_err(|why| Error::bad(&src, &v, why))?;
            if let Some(budget) = budget {
                c.stop_signal
                    .fits(budget)
                    .map_err(|why| Error::bad(&src, &v, why))?;
            }
        }
        if let Some((src, v)) = set(drain) {
            c.drain_signals = parse_drain_signals(&v).map_err(|why| Error::bad(&src, &v, why))?;
        }
        // Each item with the source and value an error names: a flag's own value, or the
        // whole variable with the item in the reason.
        let list = env("VIGIL_REWRITE").unwrap_or_default();
        let rewrites: Vec<(&str, &str, Option<&str>)> = if rewrite_flags.is_empty() {
            list.split(',')
                .filter(|_| !list.trim().is_empty())
                .map(|item| ("VIGIL_REWRITE", list.as_str(), Some(item)))
                .collect()
        } else {
            rewrite_flags
                .iter()
                .map(|v| ("--rewrite", v.as_str(), None))
                .collect()
        };
        for (src, v, item) in rewrites {
            let bad = |why: String| match item {
                Some(item) => Error::bad(src, v, format!("{:?}: {why}", item.trim())),
                None => Error::bad(src, v, why),
            };
            let (from, to) = parse_rewrite(item.unwrap_or(v)).map_err(bad)?;
            if c.drain_signals.contains(&from) {
                return Err(bad(format!(
                    "{from} is a drain signal, which --rewrite never changes (see --stop-signal)"
                )));
            }
            if c.rewrite.iter().any(|&(f, _)| f == from) {
                return Err(bad(format!("{from} is rewritten twice")));
            }
            c.rewrite.push((from, to));
        }
        c.single_child = single_child_flag
            || match env("VIGIL_SINGLE_CHILD").as_deref().map(str::trim) {
                None | Some("" | "0") => false,
                Some("1") => true,
                Some(other) => {
                    return Err(Error::bad("VIGIL_SINGLE_CHILD", other, "expected 1 or 0"));
                }
            };
        Ok(c)
    }

    /// What a signal that is not a drain signal goes on as: itself, its rewrite, or nothing.
    pub fn forwarded_as(&self, sig: Sig) -> Option<Sig> {
        match self.rewrite.iter().find(|&&(from, _)| from == sig) {
            Some(&(_, to)) => to,
            None => Some(sig),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: i32) -> Sig {
        Sig::new(n).unwrap()
    }

    #[test]
    fn stop_signal_steps() {
        let secs = Duration::from_secs_f64;
        assert_eq!(StopSignal::parse("TERM"), Ok(StopSignal::default()));
        assert_eq!(
            StopSignal::parse("SIGTERM, INT@5"),
            Ok(StopSignal {
                first: Sig::TERM,
                later: vec![(secs(5.0), Sig::INT)],
            })
        );
        let s3 = StopSignal::parse("quit,RTMIN+3@0.5,10@2.25").unwrap();
        assert_eq!(s3.first, Sig::QUIT);
        assert_eq!(s3.later, vec![(secs(0.5), s(37)), (secs(2.25), Sig::USR1)]);
        assert!(s3.fits(secs(2.5)).is_ok());
        let e = s3.fits(secs(2.25)).unwrap_err();
        assert!(e.contains("10@2.25") || e.contains("USR1@2.25"), "{e}");
        assert!(StopSignal::default().fits(Duration::ZERO).is_ok());
        let bad = [
            ("", "unknown signal"),
            ("TERM@1", "first step"),
            ("TERM,INT", "SIG@SECS"),
            ("TERM,INT@", "seconds"),
            ("TERM,INT@-1", "seconds"),
            ("TERM,INT@0", "increase"),
            ("TERM,INT@3,QUIT@3", "increase"),
            ("TERM,INT@3,QUIT@2", "increase"),
            ("TERM,,INT@2", "SIG@SECS"),
            ("TERM,FOO@2", "unknown signal"),
            ("TERM,", "SIG@SECS"),
        ];
        for (v, want) in bad {
            let e = StopSignal::parse(v).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
        for refused in [
            "KILL", "STOP", "TSTP", "TTIN", "TTOU", "CHLD", "9", "SIGSTOP",
        ] {
            let e = StopSignal::parse(refused).unwrap_err();
            assert!(e.contains("cannot be a stop signal"), "{refused}: {e}");
            let e = StopSignal::parse(&format!("TERM,{refused}@1")).unwrap_err();
            assert!(e.contains("cannot be a stop signal"), "{refused}: {e}");
        }
    }

    #[test]
    fn drain_signal_lists() {
        assert_eq!(
            parse_drain_signals("TERM,INT"),
            Ok(vec![Sig::TERM, Sig::INT])
        );
        assert_eq!(
            parse_drain_signals(" term , SIGINT,QUIT,TERM"),
            Ok(vec![Sig::TERM, Sig::INT, Sig::QUIT])
        );
        assert_eq!(parse_drain_signals("RTMIN+1"), Ok(vec![s(35)]));
        for bad in ["", "TERM,", "KILL", "TERM,STOP", "CHLD", "FOO", "32"] {
            assert!(parse_drain_signals(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rewrites() {
        assert_eq!(parse_rewrite("HUP:0"), Ok((Sig::HUP, None)));
        assert_eq!(parse_rewrite("1:0"), Ok((Sig::HUP, None)));
        assert_eq!(parse_rewrite("USR1:SIGUSR2"), Ok((Sig::USR1, Some(s(12)))));
        assert_eq!(parse_rewrite("RTMIN:RTMAX"), Ok((s(34), Some(s(64)))));
        assert_eq!(parse_rewrite(" 10 : 9 "), Ok((Sig::USR1, Some(Sig::KILL))));
        for bad in [
            "HUP",
            "HUP:",
            ":0",
            "KILL:0",
            "STOP:CONT",
            "CHLD:0",
            "HUP:FOO",
            "HUP:0:1",
        ] {
            assert!(parse_rewrite(bad).is_err(), "{bad}");
        }
    }
}
