//! Starting the app, or a hook in its place: its own process group, inherited stdio, and the
//! terminal if there is one.
//!
//! The fork and exec are `sys::spawn`'s: the child gets an empty signal mask, default
//! dispositions and no fd of vigil's (every one is close-on-exec). A failed exec is not a vigil
//! error: it maps to the shell's 127 (not found) or 126 (not executable), as tini does. A failed
//! fork is one (a pids.max limit answers EAGAIN), as is anything else vigil's own part of the
//! spawn runs into: the child reports which stage failed.

use crate::sys;
use nix::fcntl::OFlag;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Why the process did not start.
#[derive(Debug)]
pub enum SpawnError {
    /// vigil's own part failed before the exec was tried (a pipe, the fork, the child's process
    /// group): vigil's start-up error, exit 2.
    Setup(io::Error),
    /// The exec itself failed: 127 or 126.
    Exec(io::Error),
}

/// A started process, and the read end of its stdout when that was captured.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    pub stdout: Option<OwnedFd>,
}

/// How an exec failure is reported: 127 when nothing was found, 126 for everything else.
pub fn exec_failure_code(err: &io::Error) -> u8 {
    match err.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
        _ => 126,
    }
}

/// Starts `argv` where the app runs, from the supervisor's thread (the app itself, or a hook): `home` overrides HOME (the
/// `--user` rule), then `env` (the seed's variables) overrides the inherited environment;
/// `capture_stdout` pipes stdout to vigil (the seed's), else all stdio is inherited.
pub fn spawn_front(
    argv: &[OsString],
    home: Option<&str>,
    env: &[(OsString, OsString)],
    capture_stdout: bool,
) -> Result<Spawned, SpawnError> {
    let pipe = capture_stdout
        .then(|| nix::unistd::pipe2(OFlag::O_CLOEXEC))
        .transpose()
        .map_err(|errno| SpawnError::Setup(errno.into()))?;
    let child = sys::Child {
        argv,
        env: environment(home, env),
        stdout: pipe.as_ref().map(|(_, w)| w.as_raw_fd()),
        null_stdio: false,
        take_terminal: nix::unistd::isatty(io::stdin()).unwrap_or(false),
    };
    // The supervisor reaps a running child by pid; one that failed to exec is collected here,
    // on the supervisor's own thread, so it is never taken for a leftover.
    let pid = sys::spawn(&child, |_| {}).map_err(|e| {
        if let Some(pid) = e.pid {
            sys::reap_failed(pid);
        }
        match e.stage {
            sys::Stage::Setup => SpawnError::Setup(e.error),
            sys::Stage::Exec => SpawnError::Exec(e.error),
        }
    })?;
    Ok(Spawned {
        pid,
        stdout: pipe.map(|(r, _)| r),
    })
}

/// vigil's environment with HOME set to `home`, then `env` over it; None (inherit it as it is)
/// when neither changes anything.
fn environment(home: Option<&str>, env: &[(OsString, OsString)]) -> Option<Vec<OsString>> {
    if home.is_none() && env.is_empty() {
        return None;
    }
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let home = home.map(|h| (OsString::from("HOME"), OsString::from(h)));
    for (k, v) in home.iter().chain(env) {
        match vars.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => vars.push((k.clone(), v.clone())),
        }
    }
    Some(
        vars.into_iter()
            .map(|(mut k, v)| {
                k.push("=");
                k.push(v);
                k
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_in_order() {
        assert_eq!(environment(None, &[]), None);
        let env = environment(
            Some("/home/app"),
            &[
                ("HOME".into(), "/seed".into()),
                ("NEW_KEY_X".into(), "1".into()),
            ],
        )
        .expect("an environment");
        let homes: Vec<_> = env
            .iter()
            .filter(|e| e.to_string_lossy().starts_with("HOME="))
            .collect();
        assert_eq!(homes, [&OsString::from("HOME=/seed")]);
        assert!(env.contains(&OsString::from("NEW_KEY_X=1")));
        let only_home = environment(Some("/h"), &[]).expect("an environment");
        assert!(only_home.contains(&OsString::from("HOME=/h")));
    }

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
