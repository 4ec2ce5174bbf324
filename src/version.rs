//! What `vigil --version` prints: `vigil 0.2.0 (abc1234, x86_64-unknown-linux-musl)`, the
//! package version, the commit and the target triple, as build.rs found them.

/// The commit is a short id, or `unknown commit` for a source tree without git.
pub const LINE: &str = concat!(
    "vigil ",
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("VIGIL_BUILD_COMMIT"),
    ", ",
    env!("VIGIL_BUILD_TARGET"),
    ")"
);
