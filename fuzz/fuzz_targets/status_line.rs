//! The http probe's reader of the answer's status line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fuzz::probe::parse_status_line;

fuzz_target!(|data: &[u8]| {
    match parse_status_line(data) {
        Ok(Some(code)) => {
            assert!(code <= 999 && data.starts_with(b"HTTP/1."));
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\r\nmore");
            assert_eq!(parse_status_line(&longer), Ok(Some(code)));
        }
        Ok(None) => assert!(!data.contains(&b'\n')),
        Err(_) => assert!(data.contains(&b'\n')),
    }
});
