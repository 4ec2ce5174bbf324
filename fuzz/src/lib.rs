//! vigil's parsers of outside input, compiled from `../src` as they are, for libFuzzer.
//!
//! vigil is a single binary crate; rather than split out a library for the fuzzer's sake, the
//! pure modules (and the few they name as `crate::...`) are included by path, so the targets
//! exercise exactly the code that ships.
#![allow(dead_code, unused_imports)]

#[path = "../../src/argv.rs"]
pub mod argv;
#[path = "../../src/cli.rs"]
pub mod cli;
#[path = "../../src/drill.rs"]
pub mod drill;
#[path = "../../src/drill_args.rs"]
pub mod drill_args;
#[path = "../../src/dropin.rs"]
pub mod dropin;
#[path = "../../src/envvars.rs"]
pub mod envvars;
#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/flags.rs"]
pub mod flags;
#[path = "../../src/health.rs"]
pub mod health;
#[path = "../../src/lockdown.rs"]
pub mod lockdown;
#[path = "../../src/log.rs"]
pub mod log;
#[path = "../../src/metrics.rs"]
pub mod metrics;
#[path = "../../src/privileges.rs"]
pub mod privileges;
#[path = "../../src/probe.rs"]
pub mod probe;
#[path = "../../src/procs.rs"]
pub mod procs;
#[path = "../../src/sig.rs"]
pub mod sig;
#[path = "../../src/sigflags.rs"]
pub mod sigflags;
#[path = "../../src/signals.rs"]
pub mod signals;
#[path = "../../src/sink.rs"]
pub mod sink;
#[path = "../../src/status.rs"]
pub mod status;
#[path = "../../src/sys.rs"]
pub mod sys;
/// `vigil --version`'s line; vigil's build.rs, which finds the commit, does not run here.
pub mod version {
    pub const LINE: &str = "vigil (fuzz build)";
}
