//! The one error type for everything that can go wrong before the app is spawned, and the
//! warning for what goes wrong then without stopping the start.
//!
//! Each variant names the failed operation and keeps the cause; `Display` gives the single line
//! the contract promises on stderr. All of them exit with status 2: after the spawn nothing leaves
//! the supervisor as an `Err` (it logs and carries on, as s6-svscan "must not die").

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A flag or its environment variable has a value we cannot use.
    /// `source` is `--flag` or `VIGIL_FLAG`, as the user wrote it.
    BadValue {
        source: String,
        value: String,
        why: String,
    },
    /// The command line itself is wrong (unknown flag, missing command, ...); the second field
    /// is the command whose `--help` tells more (`vigil`, `vigil drill`, `vigil probe`).
    Usage(String, &'static str),
    /// `--user`: a system call to switch ids failed. `source` is `--user` or `VIGIL_USER`.
    SwitchUser {
        source: String,
        spec: String,
        op: &'static str,
        errno: nix::Error,
    },
    /// A start-up system call failed (subreaper, signal mask, health listener, ...).
    Startup { op: &'static str, errno: nix::Error },
    /// The health listener could not be bound.
    Bind { addr: String, why: String },
}

/// A start-up step that failed without stopping the start. It is logged at warn after "vigil
/// starting", once nothing can refuse the start any more.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub msg: &'static str,
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl Error {
    pub fn bad(source: &str, value: &str, why: impl Into<String>) -> Error {
        Error::BadValue {
            source: source.to_string(),
            value: value.to_string(),
            why: why.into(),
        }
    }

    /// The exit status for every vigil error: its own configuration or start-up failed.
    pub const EXIT_STATUS: u8 = 2;
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadValue { source, value, why } => {
                if source.starts_with("VIGIL_") {
                    write!(f, "{source}={value:?}: {why}")
                } else {
                    write!(f, "{source} {value:?}: {why}")
                }
            }
            Error::Usage(msg, cmd) => write!(f, "{msg} (see {cmd} --help)"),
            Error::SwitchUser {
                source,
                spec,
                op,
                errno,
            } => Error::bad(source, spec, format!("unable to {op}: {}", errno.desc())).fmt(f),
            Error::Startup { op, errno } => write!(f, "unable to {op}: {}", errno.desc()),
            Error::Bind { addr, why } => write!(f, "--health-listen {addr:?}: cannot bind: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_flag_and_value() {
        let e = Error::bad("--drain-delay", "12", "must be below --drain-timeout (9)");
        assert_eq!(
            e.to_string(),
            r#"--drain-delay "12": must be below --drain-timeout (9)"#
        );
        let e = Error::bad("VIGIL_DRAIN_DELAY", "x", "not a number of seconds");
        assert_eq!(
            e.to_string(),
            r#"VIGIL_DRAIN_DELAY="x": not a number of seconds"#
        );
        let e = Error::SwitchUser {
            source: "--user".into(),
            spec: "app".into(),
            op: "setuid",
            errno: nix::Error::EPERM,
        };
        assert_eq!(
            e.to_string(),
            r#"--user "app": unable to setuid: Operation not permitted"#
        );
        let e = Error::Usage("missing TARGET".into(), "vigil probe");
        assert_eq!(e.to_string(), "missing TARGET (see vigil probe --help)");
    }
}
