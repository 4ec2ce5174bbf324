//! Build facts for `vigil --version`: the commit and the target triple.
//!
//! The commit comes from `SOURCE_COMMIT` when it is set (scripts/release sets it; Docker Hub's
//! builds and `--build-arg SOURCE_COMMIT=...` do too), else from git; a source tree without git
//! gives `unknown commit`. Nothing here reads the clock or the host's paths, so two builds of one
//! commit print the same line.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_COMMIT");
    let commit = match std::env::var("SOURCE_COMMIT") {
        Ok(c) if !c.trim().is_empty() => short(c.trim()),
        _ => git_commit().unwrap_or_else(|| "unknown commit".to_string()),
    };
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown target".to_string());
    println!("cargo:rustc-env=VIGIL_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=VIGIL_BUILD_TARGET={target}");
}

/// The first 7 characters of a hex commit id; anything else as given.
fn short(commit: &str) -> String {
    if commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        commit[..7].to_ascii_lowercase()
    } else {
        commit.to_string()
    }
}

/// HEAD's short id, when this is a git checkout with git installed. Asks cargo to run this
/// again when HEAD moves: the HEAD file, the branch it names, and packed-refs.
fn git_commit() -> Option<String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&dir)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        out.status.success().then(|| text.trim().to_string())
    };
    // A source tree without its own .git inside some other repository is not that commit.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != Path::new(&dir).canonicalize().ok()? {
        return None;
    }
    let id = git(&["rev-parse", "--short=7", "HEAD"])?;
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", name]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(id)
}
