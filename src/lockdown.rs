//! What `--user` does around the switch itself, so the drop is one a server can live with and
//! an image cannot undo: stdio handed to the user, the bounding set emptied, no_new_privs.
//!
//! - stdio: runc's `fixStdioPermissions` chowns a container's stdio to its `USER`, because an
//!   anonymous pipe is mode 0600 and nginx's `access_log /dev/stdout` reopens it through
//!   /proc/self/fd (EACCES as anyone but its owner). vigil does the same for pipes and sockets,
//!   and for the terminal only as PID 1 (a container's `-t`): a terminal met anywhere else
//!   belongs to an operator, and a file or another device (/dev/null) is never ours to give.
//!   Only the owner changes, never the group; a refusal is a warning (runc#2575: read-only
//!   /dev, unmapped ids).
//! - The bounding set is emptied before setuid (the kernel wants CAP_SETPCAP, gone after it),
//!   so a file capability in the image grants nothing; where it may not be, a warning.
//! - no_new_privs (Kubernetes' `allowPrivilegeEscalation: false`): execve never grants more
//!   than the caller has, so a setuid-root binary runs with the user's euid.
//!
//! Both prctls act on the calling thread only; vigil has no other thread before the drop, and
//! every thread and child it starts later inherits them.

use crate::error::{Error, Warning};
use nix::sys::stat::{SFlag, fstat};
use nix::unistd::{Uid, fchown};
use serde_json::json;
use std::os::fd::AsFd;

/// What one of vigil's stdio descriptors is, as far as the hand-over cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pipe,
    Socket,
    Terminal,
    /// A regular file, a directory, /dev/null or any other device.
    Other,
}

/// Whether a descriptor of this kind goes to the user: pipes and sockets always, the terminal
/// only when vigil is PID 1, nothing else ever.
pub fn hand_over(kind: Kind, pid1: bool) -> bool {
    match kind {
        Kind::Pipe | Kind::Socket => true,
        Kind::Terminal => pid1,
        Kind::Other => false,
    }
}

fn kind_of(fd: impl AsFd, mode: u32) -> Kind {
    let fmt = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
    if fmt == SFlag::S_IFIFO {
        Kind::Pipe
    } else if fmt == SFlag::S_IFSOCK {
        Kind::Socket
    } else if fmt == SFlag::S_IFCHR && nix::unistd::isatty(fd).unwrap_or(false) {
        Kind::Terminal
    } else {
        Kind::Other
    }
}

/// Gives vigil's stdin, stdout and stderr to `uid` (group kept) where [`hand_over`] says so
/// and the owner differs; each file description once, however many of the three share it.
/// Returns the fds handed over; each refusal is a warning.
pub fn hand_over_stdio(uid: u32, pid1: bool, warnings: &mut Vec<Warning>) -> Vec<i32> {
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let fds = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let mut seen: Vec<(u64, u64)> = Vec::new();
    let mut given = Vec::new();
    for (n, fd) in (0..).zip(fds) {
        // A closed descriptor (EBADF) has nothing to hand over.
        let Ok(st) = fstat(fd) else { continue };
        let id = (st.st_dev, st.st_ino);
        if st.st_uid == uid || seen.contains(&id) || !hand_over(kind_of(fd, st.st_mode), pid1) {
            continue;
        }
        seen.push(id);
        match fchown(fd, Some(Uid::from_raw(uid)), None) {
            Ok(()) => given.push(n),
            Err(errno) => warnings.push(Warning {
                msg: "stdio not handed to the user",
                fields: vec![
                    ("fd", json!(n)),
                    ("uid", json!(uid)),
                    ("error", json!(errno.desc())),
                    (
                        "hint",
                        json!("the app may fail to open /dev/stdout or /dev/stderr"),
                    ),
                ],
            }),
        }
    }
    given
}

/// Drops every capability up to the kernel's last from the bounding set. Without CAP_SETPCAP
/// (a runtime that dropped it, an emulator) that is one warning and the set stays.
pub fn empty_bounding_set(warnings: &mut Vec<Warning>) {
    // The kernel's own count; where /proc is not mounted yet, every number up to 63, as the
    // kernel answers EINVAL past its last.
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(63)
        .min(63);
    for cap in 0..=last {
        match crate::sys::capbset_drop(cap) {
            Ok(()) => {}
            Err(nix::Error::EINVAL) => return,
            Err(errno) => {
                warnings.push(Warning {
                    msg: "capability bounding set kept",
                    fields: vec![
                        ("error", json!(errno.desc())),
                        (
                            "hint",
                            json!("no CAP_SETPCAP; no_new_privs still keeps setuid binaries and file capabilities from granting anything"),
                        ),
                    ],
                });
                return;
            }
        }
    }
}

/// Sets no_new_privs; `source` and `spec` name the `--user` it is for.
pub fn no_new_privs(source: &str, spec: &str) -> Result<(), Error> {
    nix::sys::prctl::set_no_new_privs().map_err(|errno| Error::SwitchUser {
        source: source.to_string(),
        spec: spec.to_string(),
        op: "set no_new_privs",
        errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pipes_sockets_and_pid1s_terminal_are_handed_over() {
        for pid1 in [true, false] {
            assert!(hand_over(Kind::Pipe, pid1));
            assert!(hand_over(Kind::Socket, pid1));
            assert!(!hand_over(Kind::Other, pid1));
        }
        assert!(hand_over(Kind::Terminal, true));
        assert!(!hand_over(Kind::Terminal, false));
    }

    #[test]
    fn kinds_from_fstat() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mode = |fd: &std::os::fd::OwnedFd| fstat(fd).unwrap().st_mode;
        assert_eq!(kind_of(&r, mode(&r)), Kind::Pipe);
        assert_eq!(kind_of(&w, mode(&w)), Kind::Pipe);
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = std::os::fd::OwnedFd::from(a);
        assert_eq!(kind_of(&a, mode(&a)), Kind::Socket);
        let null = std::os::fd::OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        assert_eq!(kind_of(&null, mode(&null)), Kind::Other);
        let file = std::os::fd::OwnedFd::from(std::fs::File::open("/proc/self/status").unwrap());
        assert_eq!(kind_of(&file, mode(&file)), Kind::Other);
        let pty = nix::pty::openpty(None, None).unwrap();
        assert_eq!(kind_of(&pty.slave, mode(&pty.slave)), Kind::Terminal);
    }
}
