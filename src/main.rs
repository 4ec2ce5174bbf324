//! vigil: a tiny PID 1 for containers. `main` only dispatches and maps the outcome to an exit
//! status; the lifecycle lives in `supervisor.rs`.

mod argv;
mod checker;
mod cli;
mod drain;
mod drill;
mod drill_args;
mod dropin;
mod envvars;
mod error;
mod flags;
mod health;
mod hooks;
mod listen;
mod lockdown;
mod log;
mod metrics;
mod privileges;
mod probe;
mod procs;
mod reaper;
mod sig;
mod sigflags;
mod signals;
mod sink;
mod spawn;
mod stall;
mod status;
mod supervisor;
mod sys;
mod version;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A non-UTF-8 value is passed on lossily, so validation rejects it with its name.
    let env = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
    let code = match cli::parse(&raw, &env) {
        Ok(cli::Command::Run(config)) => supervisor::run(config),
        Ok(cli::Command::Drill(config, drill)) => supervisor::drill(config, drill),
        Ok(cli::Command::Probe(spec, timeout)) => probe::main(&spec, timeout),
        Ok(cli::Command::Done(code)) => code,
        // One line, in the log format in force: a platform that parses vigil's JSON lines
        // sees a bad deployment value as an error line, not as noise.
        Err(e) => {
            match cli::error_format(&raw, &env) {
                Some(format) => {
                    log::init(format, log::Level::Error);
                    log::error(&e.to_string(), &[]);
                }
                None => {
                    let _ = writeln!(std::io::stderr(), "vigil probe: {e}");
                }
            }
            error::Error::EXIT_STATUS
        }
    };
    ExitCode::from(code)
}
