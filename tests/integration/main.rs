#![allow(clippy::unwrap_used, clippy::expect_used)]
//! vigil's integration tests: one binary (as ripgrep's `tests/tests.rs`), a module per area, each
//! running the real `vigil` against `sh -c` fixtures and asserting on exit statuses, `/proc` facts
//! and parsed log lines.
//!
//! Most behaviour is checked twice, as tini runs its whole suite twice: with vigil as PID 1 of a
//! new pid namespace (`<test>::pid1`) and as a child subreaper (`<test>::subreaper`). A mode or a
//! privilege this machine lacks is skipped with a printed `SKIP` line, and is a failure when
//! `REQUIRE_ALL_TESTS=1`.

/// Defines `mod <name> { fn pid1; fn subreaper }`, two tests that call `<name>(mode)`.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::util::{mode_supported, Mode};

            #[test]
            fn pid1() {
                if mode_supported(Mode::Pid1) {
                    super::$name(Mode::Pid1);
                }
            }

            #[test]
            fn subreaper() {
                if mode_supported(Mode::Subreaper) {
                    super::$name(Mode::Subreaper);
                }
            }
        }
    )*};
}

mod cli;
mod core;
mod deploy;
mod drain;
mod drill;
mod drill_budget;
mod drill_image;
mod dumb_init_suite;
mod fault_matrix;
mod fault_run;
mod faults;
mod health;
mod hooks;
mod lockdown;
mod metrics;
mod output;
mod peers;
mod podman;
mod probing;
mod reaping;
mod runc;
mod security;
mod servers;
mod signals;
mod stress;
mod tini_suite;
mod user;
mod util;
