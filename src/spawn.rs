//! Starting the app, or a hook in its place: its own process group, inherited stdio, and the
//! terminal if there is one.
//!
//! The child's signal mask and dispositions are reset before exec (`sys.rs`), and std opens
//! everything close-on-exec, so the app gets a clean signal state and no fd of vigil's. A failed exec is not
//! a vigil error: it maps to the shell's 127 (not found) or 126 (not executable), as tini does.

use crate::sys;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// How an exec failure is reported: 127 when nothing was found, 126 for everything else.
pub fn exec_failure_code(err: &io::Error) -> u8 {
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
        _ => 126,
    }
}

/// Starts `argv` where the app runs (the app itself, or a hook): `home` overrides HOME (the
/// `--user` rule), then `env` (the seed's variables) overrides the inherited environment;
/// `capture_stdout` pipes stdout to vigil (the seed's), else all stdio is inherited.
pub fn spawn_front(
    argv: &[OsString],
    home: Option<&str>,
    env: &[(OsString, OsString)],
    capture_stdout: bool,
) -> Result<Child, io::Error> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    let mut cmd = Command::new(prog);
    cmd.args(args).process_group(0);
    if let Some(home) = home {
        cmd.env("HOME", home);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    if capture_stdout {
        cmd.stdout(Stdio::piped());
    }
    let tty = nix::unistd::isatty(io::stdin()).unwrap_or(false);
    sys::reset_child_signals(&mut cmd, tty);
    // Dropping `Child` neither waits nor kills; the supervisor reaps by pid.
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failures_map_like_a_shell() {
        assert_eq!(
            exec_failure_code(&io::Error::from_raw_os_error(libc::ENOENT)),
            127
        );
        assert_eq!(
            exec_failure_code(&io::Error::from_raw_os_error(libc::ENOTDIR)),
            127
        );
        assert_eq!(
            exec_failure_code(&io::Error::from_raw_os_error(libc::EACCES)),
            126
        );
        assert_eq!(
            exec_failure_code(&io::Error::from_raw_os_error(libc::ENOEXEC)),
            126
        );
    }
}
