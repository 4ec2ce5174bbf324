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
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// `exec_failure_reason` for `argv` started with `env` over vigil's own environment.
pub fn failure_reason(argv: &[OsString], env: &[(OsString, OsString)], err: &io::Error) -> String {
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var_os("PATH"));
    match argv.first() {
        Some(program) => exec_failure_reason(program, err, path.as_deref()),
        None => err.to_string(),
    }
}

/// The reason a failed exec gives in the log. The kernel answers ENOENT both for a missing
/// program and for an existing one whose interpreter is missing: a script's `#!` line (often a
/// bash that the image lacks, or `/bin/sh\r` from Windows line endings) or a dynamically linked
/// binary's loader (a glibc program in a scratch or Alpine image). That case names the
/// interpreter, as a shell would not. `path` is the PATH the program was looked up in.
pub fn exec_failure_reason(program: &OsStr, err: &io::Error, path: Option<&OsStr>) -> String {
    let plain = err.to_string();
    if err.raw_os_error() != Some(libc::ENOENT) {
        return plain;
    }
    let Some(file) = find(program, path) else {
        return plain;
    };
    let shown = file.display();
    match interpreter(&file) {
        Some(Interp::Script(i))
            if !Path::new(i.trim_end_matches('\r')).exists() || i.ends_with('\r') =>
        {
            let crlf = if i.ends_with('\r') {
                " (the script has Windows line endings: \\r after the interpreter)"
            } else {
                ""
            };
            let i = i.trim_end_matches('\r');
            format!("interpreter {i} not found: the #! line of {shown}{crlf}")
        }
        Some(Interp::Elf(i)) if !Path::new(&i).exists() => format!(
            "interpreter {i} not found: {shown} is dynamically linked and the image lacks its C \
             library (link it statically, or use a base image that has it)"
        ),
        _ => plain,
    }
}

/// The file `execvp` would run: `program` itself when it has a `/`, else the first executable
/// file of that name on `path`.
fn find(program: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[derive(Debug, PartialEq, Eq)]
enum Interp {
    /// The first word of a `#!` line.
    Script(String),
    /// An ELF binary's PT_INTERP.
    Elf(String),
}

/// The interpreter `file` asks the kernel for, if any.
fn interpreter(file: &Path) -> Option<Interp> {
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(file)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let word = line
            .trim_start_matches([' ', '\t'])
            .split([' ', '\t'])
            .next()?;
        return (!word.is_empty()).then(|| Interp::Script(word.to_string()));
    }
    elf_interp(&head).map(Interp::Elf)
}

/// PT_INTERP of an ELF file whose program headers and interpreter are within `head`.
fn elf_interp(head: &[u8]) -> Option<String> {
    if head.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = *head.get(4)? == 2;
    let little = *head.get(5)? == 1;
    let num = |at: usize, len: usize| -> Option<usize> {
        let b = head.get(at..at + len)?;
        let mut v: u64 = 0;
        for i in 0..len {
            let byte = if little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        usize::try_from(v).ok()
    };
    let (phoff, phentsize, phnum) = if wide {
        (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?)
    } else {
        (num(0x1c, 4)?, num(0x2a, 2)?, num(0x2c, 2)?)
    };
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        const PT_INTERP: usize = 3;
        if num(ph, 4)? != PT_INTERP {
            continue;
        }
        let (off, size) = if wide {
            (num(ph + 0x08, 8)?, num(ph + 0x20, 8)?)
        } else {
            (num(ph + 0x04, 4)?, num(ph + 0x10, 4)?)
        };
        let bytes = head.get(off..off.checked_add(size)?)?;
        let name = bytes.split(|&b| b == 0).next()?;
        return Some(String::from_utf8_lossy(name).into_owned());
    }
    None
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

    fn reason(program: &str, errno: i32) -> String {
        let err = io::Error::from_raw_os_error(errno);
        exec_failure_reason(OsStr::new(program), &err, Some(OsStr::new("/usr/bin:/bin")))
    }

    fn script(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let dir = std::env::temp_dir().join(format!("vigil-spawn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = script(&dir, "a", "#!/nonexistent/bash -e\necho\n");
        assert_eq!(
            reason(&s, libc::ENOENT),
            format!("interpreter /nonexistent/bash not found: the #! line of {s}")
        );
        let s = script(&dir, "b", "#! /bin/sh\r\necho\r\n");
        let r = reason(&s, libc::ENOENT);
        assert!(r.starts_with("interpreter /bin/sh not found"), "{r}");
        assert!(r.contains("Windows line endings"), "{r}");
        // An interpreter that exists, a missing file, another errno: the plain error.
        let s = script(&dir, "c", "#!/bin/sh\n");
        assert_eq!(
            reason(&s, libc::ENOENT),
            "No such file or directory (os error 2)"
        );
        assert_eq!(
            reason("/nonexistent/app", libc::ENOENT),
            "No such file or directory (os error 2)"
        );
        assert!(reason(&s, libc::EACCES).starts_with("Permission denied"));
        // Found on PATH: `sh` is a real program with a real loader.
        assert!(!reason("sh", libc::ENOENT).contains("interpreter"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_elf_interpreter_of_a_real_binary() {
        // The test binary itself is dynamically linked (or static: then it has none).
        let me = std::env::current_exe().unwrap();
        let mut head = Vec::new();
        std::fs::File::open(&me)
            .unwrap()
            .take(4096)
            .read_to_end(&mut head)
            .unwrap();
        if let Some(i) = elf_interp(&head) {
            assert!(i.contains("ld"), "{i}");
            assert!(Path::new(&i).exists(), "{i}");
        }
        let mut broken = head.clone();
        if let Some(at) = broken.windows(6).position(|w| w == b"/lib64") {
            broken[at + 1..at + 6].copy_from_slice(b"nope!");
            assert!(elf_interp(&broken).unwrap().starts_with("/nope!"));
        }
        assert_eq!(elf_interp(b"\x7fELF"), None, "truncated");
        assert_eq!(elf_interp(b"#!/bin/sh"), None);
    }

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
