//! The health server's request head parser and routing table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fuzz::health::{parse_head, route};
use vigil_fuzz::status::{App, Status};

fuzz_target!(|data: &[u8]| {
    let Some(req) = parse_head(data) else {
        return;
    };
    assert!(req.path.starts_with('/') && !req.path.contains('?'));
    assert!(!req.method.is_empty());
    let mut status = Status::new(Some("tcp"), 3);
    status.app = App::Running;
    let (code, body, _) = route(req.method, req.path, &status);
    assert!(matches!(code, 200 | 404 | 405 | 503));
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
});
