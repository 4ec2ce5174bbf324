//! Start-up and clean-up hooks as pure sequencing: the seed (`--env-from`), the pre-start
//! executables (`--pre-start`), then the app, and once everything is gone the clean-up
//! (`--post-stop`).
//!
//! Like `drain.rs`, nothing here reads a clock, spawns or signals: the supervisor hands in what
//! happened with an `Instant` and carries out the returned [`Step`]. The hooks run one at a time
//! in front, exactly where the app will run: its own process group, signals forwarded to it, a
//! drain's stop signal and deadline, reaped by the one reaper. That is how s6-overlay's
//! cont-init.d and nginx's docker-entrypoint.d behave (one script after another, the first
//! failure stops the container), without a shell entrypoint in front of PID 1 (dumb-init
//! PR#207 asked for the same; tini #28 declined it).
//!
//! - seed and pre-start hooks: each within `--pre-start-timeout`; a failure (status N, killed by
//!   S: 128 + S, over time: 124) stops the start with that status and nothing more is spawned.
//!   A drain during them stops the start too: no further hook, no app.
//! - post-stop: once the start or the app has ended and nothing is left; within
//!   `--post-stop-timeout` and never past the drain's deadline; skipped after a forced kill, so
//!   vigil is still gone by deadline + 0.5 s. Whatever it leaves is killed.

pub mod seed;
mod sequence;

pub use sequence::{Ended, Sequence, Step, World};

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The status of a hook that outran `--pre-start-timeout` (as timeout(1) reports it).
pub const TIMED_OUT: u8 = 124;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    EnvFrom,
    PreStart,
    PostStop,
}

impl Kind {
    /// The flag's name without dashes, as log lines show it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::EnvFrom => "env-from",
            Kind::PreStart => "pre-start",
            Kind::PostStop => "post-stop",
        }
    }
}

/// One command to run as a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub kind: Kind,
    pub argv: Vec<OsString>,
}

impl Hook {
    pub fn new(kind: Kind, argv: &[String]) -> Hook {
        Hook {
            kind,
            argv: argv.iter().map(OsString::from).collect(),
        }
    }
}

/// What `--pre-start DIR` holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The executables, in lexical (byte) order of their names.
    pub run: Vec<PathBuf>,
    /// Entries that will not run, with why.
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Lists DIR: every regular file (symlinks followed) that this process may execute, sorted
/// by name as `ls` in the C locale and run-parts do. `Ok(None)` when DIR does not exist.
pub fn scan(dir: &Path) -> std::io::Result<Option<Scan>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut scan = Scan::default();
    for path in paths {
        match classify(&path) {
            None => scan.run.push(path),
            Some(why) => scan.skipped.push((path, why)),
        }
    }
    Ok(Some(scan))
}

/// Why `path` is not a hook, or None if it is one.
fn classify(path: &Path) -> Option<&'static str> {
    use nix::unistd::{AccessFlags, access};
    match std::fs::metadata(path) {
        Err(_) => Some("cannot be read (a dangling symlink?)"),
        Ok(m) if m.is_dir() => Some("a directory"),
        Ok(m) if !m.is_file() => Some("not a regular file"),
        // access(2) answers for vigil's ids, which are the hooks' (vigil dropped first).
        Ok(_) if access(path, AccessFlags::X_OK).is_err() => Some("not executable"),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_runs_executables_in_lexical_order() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vigil-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for (name, mode) in [
            ("20-b", 0o755),
            ("10-a", 0o700),
            ("B", 0o755),
            ("notes", 0o644),
        ] {
            std::fs::write(dir.join(name), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }
        std::os::unix::fs::symlink("10-a", dir.join("30-link")).unwrap();
        std::os::unix::fs::symlink("missing", dir.join("40-dangling")).unwrap();
        let scan = scan(&dir).unwrap().unwrap();
        let names = |v: &[PathBuf]| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&scan.run), ["10-a", "20-b", "30-link", "B"]);
        let skipped: Vec<PathBuf> = scan.skipped.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(names(&skipped), ["40-dangling", "notes", "sub"]);
        assert_eq!(scan.skipped[2].1, "a directory");
        assert_eq!(scan.skipped[1].1, "not executable");
        assert_eq!(super::scan(&dir.join("nope")).unwrap(), None);
        assert!(super::scan(&dir.join("notes")).is_err(), "not a directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
