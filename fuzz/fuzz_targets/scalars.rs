//! Durations, signal names and /proc/<pid>/stat lines; the first byte picks which.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use vigil_fuzz::{cli::parse_seconds, procs::parse_stat, sig};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    match kind % 3 {
        0 => {
            if let Ok(d) = parse_seconds(s) {
                assert!(d <= Duration::from_secs(31_536_000));
            }
        }
        1 => {
            if let Ok(sig) = sig::parse(s) {
                assert_eq!(sig::parse(sig.name()), Ok(sig));
            }
        }
        _ => {
            let _ = parse_stat(s);
        }
    }
});
