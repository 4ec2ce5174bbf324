//! Probe targets: `--probe-tcp`, `--probe-http`, `--probe-exec`, `vigil probe TARGET`.

use crate::engine::*;
use crate::probe::{HttpTarget, ProbeSpec};

fn host(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => rng
            .pick(&[
                "127.0.0.1",
                "localhost",
                "app",
                "::1",
                "[::1]",
                "fe80::1%eth0",
                "[fe80::1%eth0]",
            ])
            .to_string(),
        1 => "a".repeat(rng.below(300)),
        2 => rng
            .pick(&["", "[", "]", "[]", ":", "@", "u@x", "x y"])
            .to_string(),
        _ => word(rng, "abcdefxyz0123456789.-_:%[]", 12),
    }
}

fn port(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => rng
            .pick(&[
                "0", "1", "80", "65535", "65536", "", "-1", "+80", "080", "8o",
            ])
            .to_string(),
        _ => number(rng),
    }
}

fn probe_url(rng: &mut Rng) -> String {
    let scheme = *rng.pick(&[
        "http://", "HTTP://", "Http://", "https://", "tcp://", "TCP://", "http:/", "", "ftp://",
    ]);
    let mut s = format!("{scheme}{}", host(rng));
    if rng.below(3) > 0 {
        s.push(':');
        s.push_str(&port(rng));
    }
    if rng.below(3) > 0 {
        s.push_str(rng.pick_str(&[
            "/", "/healthz", "/a b", "/x?y=1", "?ready", "/#frag", "/%20", "/\t", "//",
        ]));
    }
    if rng.one_in(8) {
        s.push_str(&word(rng, "/?#&=%abc", 10));
    }
    s
}

const PROBE_SEEDS: &[&str] = &[
    "http://127.0.0.1:8080/healthz?full=1",
    "HTTP://[::1]:9000/x#frag",
    "http://app?ready",
    "tcp://127.0.0.1:5432",
    "TCP://[::1]:1/",
    "127.0.0.1:80",
    "[::1]:5432",
    " /bin/check  --quick ",
];
const PROBE_DICT: &[&str] = &[
    "http://",
    "tcp://",
    ":",
    "[",
    "]",
    "/",
    "?",
    "#",
    "@",
    "%",
    "80",
    "0",
    "65535",
    "65536",
    "::1",
    "127.0.0.1",
    " ",
    "\t",
];

/// What every parsed probe target promises, and that it round-trips.
fn check_spec(spec: &ProbeSpec) {
    match spec {
        ProbeSpec::Tcp { host, port } => {
            assert!(*port != 0 && !host.is_empty(), "{spec:?}");
            let text = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            assert_eq!(ProbeSpec::parse("tcp", &text).as_ref(), Ok(spec), "{text}");
            assert_eq!(
                ProbeSpec::parse_target(&format!("tcp://{text}"))
                    .ok()
                    .as_ref(),
                Some(spec)
            );
        }
        ProbeSpec::Http(t) => check_http_target(t),
        ProbeSpec::Exec { argv } => {
            assert!(!argv.is_empty(), "{spec:?}");
            // Words quoted for a shell split back into the same words.
            if let Ok(line) = shlex::try_join(argv.iter().map(String::as_str)) {
                assert_eq!(ProbeSpec::parse("exec", &line).as_ref(), Ok(spec), "{line}");
            }
        }
    }
}

fn check_http_target(t: &HttpTarget) {
    assert!(t.port != 0, "{t:?}");
    assert!(
        !t.host.is_empty() && !t.host.contains(['[', ']', '/', '@']),
        "{t:?}"
    );
    assert!(t.path.starts_with('/'), "{t:?}");
    assert!(!t.path.contains('#'), "{t:?}");
    assert!(
        !t.path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()),
        "{t:?}"
    );
    // The Host header: the host, bracketed when it is IPv6 (a bracketed name is tolerated),
    // with the port unless it is 80.
    let authority = match t.host_header.strip_suffix(&format!(":{}", t.port)) {
        Some(a) if t.port != 80 => a,
        _ => {
            assert_eq!(t.port, 80, "{t:?}");
            t.host_header.as_str()
        }
    };
    let bracketed = format!("[{}]", t.host);
    assert!(
        authority == bracketed || (authority == t.host && !t.host.contains(':')),
        "{t:?}"
    );
    // The request line vigil sends is one line.
    assert!(!format!("GET {} HTTP/1.1", t.path).contains(['\r', '\n']));
    let url = format!("http://{}{}", t.host_header, t.path);
    assert_eq!(
        ProbeSpec::parse("http", &url),
        Ok(ProbeSpec::Http(t.clone())),
        "{url}"
    );
}

#[derive(Debug)]
struct ProbeInput {
    kind: &'static str,
    value: String,
}

#[test]
fn probe_targets() {
    fuzz(
        "probe_targets",
        |rng| ProbeInput {
            kind: rng.pick_str(&["tcp", "http", "exec", "target"]),
            value: structured_or_mutated(rng, probe_url, PROBE_SEEDS, PROBE_DICT),
        },
        |i| {
            if i.kind == "target" {
                if let Ok(spec) = ProbeSpec::parse_target(&i.value) {
                    assert!(!matches!(spec, ProbeSpec::Exec { .. }));
                    let lower = i.value.to_ascii_lowercase();
                    assert!(lower.starts_with("http://") || lower.starts_with("tcp://"));
                    check_spec(&spec);
                }
            } else if let Ok(spec) = ProbeSpec::parse(i.kind, &i.value) {
                assert_eq!(spec.kind(), i.kind);
                check_spec(&spec);
            }
        },
    );
}

// Regressions, with their inputs inline.

/// multi-byte character there panicked (an abort in release: exit 134 instead of 2).
#[test]
fn regression_http_url_with_wide_char_at_byte_7() {
    for url in [
        "abcdef\u{e9}",
        "http:/\u{e9}x",
        "\u{20ac}\u{20ac}\u{20ac}",
        "tcp://\u{e9}",
    ] {
        assert!(ProbeSpec::parse("http", url).is_err(), "{url}");
        assert!(ProbeSpec::parse_target(url).is_err(), "{url}");
    }
}

/// An unbalanced bracket in the authority was accepted as a host, and sent on in a malformed
/// `Host` header (`Host: app]`): a malformed target must be exit 2.
#[test]
fn regression_http_url_with_unbalanced_bracket() {
    for url in [
        "http://d4059]//",
        "http://app]/healthz",
        "http://[app/",
        "http://[::1/x",
    ] {
        assert!(ProbeSpec::parse("http", url).is_err(), "{url}");
        assert!(ProbeSpec::parse_target(url).is_err(), "{url}");
    }
}
