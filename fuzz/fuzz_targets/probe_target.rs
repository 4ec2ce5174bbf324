//! `--probe-tcp`, `--probe-http`, `--probe-exec` values and `vigil probe TARGET`; the first
//! byte picks which.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fuzz::probe::ProbeSpec;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let spec = match kind % 4 {
        0 => ProbeSpec::parse("tcp", value).ok(),
        1 => ProbeSpec::parse("http", value).ok(),
        2 => ProbeSpec::parse("exec", value).ok(),
        _ => ProbeSpec::parse_target(value).ok(),
    };
    match spec {
        Some(ProbeSpec::Http(t)) => {
            assert!(t.port != 0 && t.path.starts_with('/') && !t.host.is_empty());
            let url = format!("http://{}{}", t.host_header, t.path);
            assert_eq!(ProbeSpec::parse("http", &url), Ok(ProbeSpec::Http(t)));
        }
        Some(ProbeSpec::Tcp { host, port }) => assert!(port != 0 && !host.is_empty()),
        Some(ProbeSpec::Exec { argv }) => assert!(!argv.is_empty()),
        None => {}
    }
});
