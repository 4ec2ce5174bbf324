#![allow(clippy::unwrap_used, clippy::expect_used)]
// The parsers' modules are compiled whole; the property targets call only part of them.
#![allow(dead_code)]
//! Property fuzzing of every parser of outside input, on stable and with no dependency.
//!
//! A splitmix64 PRNG drives structured generators (valid passwd lines, request heads, probe URLs,
//! status lines, ...) and a byte mutator in the style of libFuzzer's (bit flips, dictionary
//! tokens, splices, multi-byte UTF-8, length blow-ups) over valid seeds. Each target checks that
//! nothing panics and that what parses satisfies its invariants, with round trips where they mean
//! something. Two targets go over the wire: a real health server thread gets fuzzed request
//! streams, and the http probe's reader gets fuzzed answers from a local server.
//!
//! Each target runs for `FUZZ_SECS` seconds (default 1, so `cargo test` stays fast; the figures
//! in RELIABILITY.md are from 600) and prints its iteration count with `--nocapture`:
//!
//!     FUZZ_SECS=600 cargo test --release --test props -- --test-threads 2 --nocapture
//!
//! The sequence is deterministic for a seed (`FUZZ_SEED`, default fixed per target); a failure
//! names the iteration and the input, which then becomes a named `regression_*` test beside its
//! target. Coverage-guided fuzzing of the same parsers with libFuzzer is in `fuzz/`.
//!
//! vigil stays one binary crate: as `fuzz/src/lib.rs` does, the modules under test are compiled
//! straight from `src/` by `#[path]`, so the targets exercise exactly the code that ships. Their
//! own unit tests come along and run here too (a fraction of a second).

#[path = "../../src/argv.rs"]
mod argv;
#[path = "../../src/cli.rs"]
mod cli;
#[path = "../../src/drill.rs"]
mod drill;
#[path = "../../src/drill_args.rs"]
mod drill_args;
#[path = "../../src/dropin.rs"]
mod dropin;
#[path = "../../src/envvars.rs"]
mod envvars;
#[path = "../../src/error.rs"]
mod error;
#[path = "../../src/flags.rs"]
mod flags;
#[path = "../../src/health.rs"]
mod health;
#[path = "../../src/lockdown.rs"]
mod lockdown;
#[path = "../../src/log.rs"]
mod log;
#[path = "../../src/metrics.rs"]
mod metrics;
#[path = "../../src/privileges.rs"]
mod privileges;
#[path = "../../src/probe.rs"]
mod probe;
#[path = "../../src/procs.rs"]
mod procs;
#[path = "../../src/sig.rs"]
mod sig;
#[path = "../../src/sigflags.rs"]
mod sigflags;
#[path = "../../src/signals.rs"]
mod signals;
#[path = "../../src/sink.rs"]
mod sink;
#[path = "../../src/status.rs"]
mod status;
#[path = "../../src/sys.rs"]
mod sys;
#[path = "../../src/version.rs"]
mod version;

mod engine;

mod etc_files;
mod http_head;
mod log_line;
mod probe_target;
mod scalars;
mod status_line;
