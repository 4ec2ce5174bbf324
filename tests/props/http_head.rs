//! Health: request heads, the routing table, and a real server over TCP. The server's two
//! findings (a request followed by a half-close; pipelined heads past 8 KiB) need a real
//! connection to the binary and live in tests/integration/security.rs.

use crate::engine::*;
use crate::health::{self, head_end};
use crate::probe;
use crate::status::{App, ProbeState, Shared, Status};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

const PATHS: &[&str] = &[
    "/livez", "/readyz", "/healthz", "/", "/livez/", "/LIVEZ", "/x", "*",
];
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get", "G(T", "",
];

fn request_head(rng: &mut Rng) -> String {
    let method = if rng.one_in(6) {
        word(rng, "GETHADPOS!#$%&'*+-.^_`|~(", 6)
    } else {
        rng.pick(METHODS).to_string()
    };
    let mut target = rng.pick(PATHS).to_string();
    if rng.one_in(4) {
        target.push('?');
        target.push_str(&word(rng, "a=1&?/ ", 8));
    }
    if rng.one_in(8) {
        target = word(rng, "/abcz?%#", 12);
    }
    let version = *rng.pick(&[
        "HTTP/1.1",
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2",
        "HTTP/1.1 x",
        "",
    ]);
    let sp = *rng.pick(&[" ", " ", " ", "  ", "\t"]);
    let eol = *rng.pick(&["\r\n", "\r\n", "\n"]);
    let mut head = format!("{method}{sp}{target}{sp}{version}{eol}");
    for _ in 0..rng.len(3, 60) {
        let h = match rng.below(8) {
            0 => format!(
                "Connection: {}",
                rng.pick(&["close", "keep-alive", "Keep-Alive", "upgrade, close", ""])
            ),
            1 => format!("Content-Length: {}", number(rng)),
            2 => "Transfer-Encoding: chunked".to_string(),
            3 => "NoColonHeader".to_string(),
            4 => format!("{}:{}", word(rng, "abcX-", 8), word(rng, "abc ,=;", 16)),
            _ => "Host: x".to_string(),
        };
        head.push_str(&h);
        head.push_str(eol);
    }
    head.push_str(eol);
    head
}

const HEAD_SEEDS: &[&str] = &[
    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "HEAD /livez?verbose=1 HTTP/1.0\r\n\r\n",
    "POST /readyz HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.0\nConnection: Keep-Alive\n\n",
];
const HEAD_DICT: &[&str] = &[
    "GET",
    "HEAD",
    " ",
    "/",
    "?",
    "HTTP/1.1",
    "HTTP/1.0",
    "\r\n",
    "\n",
    "\r\n\r\n",
    ":",
    "Connection",
    "close",
    "keep-alive",
    "Content-Length",
    "Transfer-Encoding",
    "/livez",
    "/readyz",
    "/healthz",
    "%00",
    "\x00",
];

fn random_status(rng: &mut Rng) -> Status {
    let kind = *rng.pick(&[None, Some("tcp"), Some("http"), Some("exec")]);
    let mut s = Status::new(kind, 1 + rng.below(5) as u32);
    s.app = *rng.pick(&[App::NotStarted, App::Running, App::Running, App::Exited]);
    s.draining = rng.one_in(3);
    s.ready_once = rng.one_in(2);
    if let Some(p) = s.probe.as_mut() {
        *p = ProbeState {
            kind: p.kind,
            ok: *rng.pick(&[None, Some(true), Some(false)]),
            consecutive_failures: rng.below(10) as u32,
            counted_failures: rng.below(10) as u32,
        };
    }
    s
}

/// Everything a parsed head promises, and the routing table's answer for it.
fn check_head(head: &[u8], status: &Status) {
    let Some(req) = health::parse_head(head) else {
        return;
    };
    assert!(!req.method.is_empty(), "{req:?}");
    assert!(
        req.method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
        "{req:?}"
    );
    assert!(req.path.starts_with('/'), "{req:?}");
    assert!(
        !req.path.contains('?') && !req.path.bytes().any(|b| b.is_ascii_control()),
        "{req:?}"
    );
    assert!(
        head.starts_with(format!("{} {}", req.method, req.path).as_bytes()),
        "{req:?}"
    );
    // Round trip: the same method and path, rendered plainly, parse to the same.
    let plain = format!("{} {} HTTP/1.1\r\n\r\n", req.method, req.path);
    let again = health::parse_head(plain.as_bytes()).expect("a plain rendering parses");
    assert_eq!(
        (again.method, again.path, again.keep_alive, again.has_body),
        (req.method, req.path, true, false)
    );
    check_route(req.method, req.path, status);
}

fn check_route(method: &str, path: &str, status: &Status) {
    let (code, body, allow) = health::route(method, path, status);
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    assert!(body.is_object(), "{body}");
    let endpoint = matches!(path, "/livez" | "/readyz" | "/healthz");
    match code {
        404 => assert!(!endpoint && allow.is_none()),
        405 => {
            assert!(endpoint && method != "GET" && method != "HEAD" && allow == Some("GET, HEAD"))
        }
        200 | 503 => {
            assert!(endpoint && (method == "GET" || method == "HEAD") && allow.is_none());
            let verdict = if path == "/livez" {
                status.live()
            } else {
                status.ready()
            };
            assert_eq!(code == 200, verdict);
            assert_eq!(body["status"], if verdict { "ok" } else { "fail" });
            assert_eq!(body["phase"], status.phase().as_str());
            assert_eq!(
                body.get("probe").is_some(),
                status.probe.is_some(),
                "{body}"
            );
        }
        other => panic!("unexpected status {other}"),
    }
}

#[derive(Debug)]
struct HeadInput {
    head: Vec<u8>,
    status: Status,
    method: String,
    path: String,
}

#[test]
fn http_request_head_and_route() {
    fuzz(
        "http_request_head_and_route",
        |rng| HeadInput {
            head: match rng.below(6) {
                0 | 1 => request_head(rng).into_bytes(),
                2 | 3 => {
                    let base = request_head(rng);
                    mutate(rng, base.as_bytes(), HEAD_DICT, HEAD_SEEDS)
                }
                4 => {
                    let seed = rng.pick_str(HEAD_SEEDS);
                    mutate(rng, seed.as_bytes(), HEAD_DICT, HEAD_SEEDS)
                }
                _ => random_bytes(rng),
            },
            status: random_status(rng),
            method: if rng.one_in(2) {
                rng.pick(METHODS).to_string()
            } else {
                word(rng, "GETHAD", 5)
            },
            path: if rng.one_in(2) {
                rng.pick(PATHS).to_string()
            } else {
                word(rng, "/livezrdyhaltz", 9)
            },
        },
        |i| {
            check_head(&i.head, &i.status);
            check_route(&i.method, &i.path, &i.status);
        },
    );
}

/// The answers the server must give `stream`, in order, as (status code, whether the request
/// was HEAD): one per whole head, up to the first that closes the connection.
fn expected_answers(stream: &[u8], status: &Status) -> Vec<(u16, bool)> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(end) = head_end(rest) {
        let (answer, keep) = match health::parse_head(&rest[..end]) {
            Some(r) => (
                (
                    health::route(r.method, r.path, status).0,
                    r.method == "HEAD",
                ),
                r.keep_alive && !r.has_body,
            ),
            None => ((400, false), false),
        };
        out.push(answer);
        if !keep {
            break;
        }
        rest = &rest[end..];
    }
    out
}

/// Reads one response (status line, headers, and unless `head_only` a Content-Length body):
/// its code and whether it closes the connection; None at EOF.
fn read_response(r: &mut impl Read, pending: &mut Vec<u8>, head_only: bool) -> Option<(u16, bool)> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = head_end(pending) {
            break end;
        }
        match r.read(&mut chunk) {
            Ok(0) => {
                assert!(
                    pending.is_empty(),
                    "a truncated response: {:?}",
                    String::from_utf8_lossy(pending)
                );
                return None;
            }
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading a response: {e}"),
        }
    };
    let head = String::from_utf8(pending[..end].to_vec()).expect("an ASCII response head");
    let code = probe::parse_status_line(head.as_bytes())
        .expect("a status line")
        .expect("whole");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(": ")
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
        })
    };
    let len: usize = header("Content-Length")
        .expect("Content-Length")
        .parse()
        .expect("a length");
    let close = header("Connection").expect("Connection") == "close";
    pending.drain(..end);
    let body_len = if head_only { 0 } else { len };
    while pending.len() < body_len {
        match r.read(&mut chunk) {
            Ok(0) => panic!("a truncated body"),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading a body: {e}"),
        }
    }
    if body_len > 0 {
        let body: Value = serde_json::from_slice(&pending[..body_len]).expect("a JSON body");
        assert!(body.is_object(), "{body}");
    }
    pending.drain(..body_len);
    Some((code, close))
}

#[derive(Debug)]
struct WireInput {
    stream: Vec<u8>,
}

/// A real health server, fed fuzzed request streams (pipelined heads, partial heads, garbage)
/// over loopback: every whole head gets a well-formed answer with the routing table's code, in
/// order, and the server never stalls or dies.
#[test]
fn health_server_wire() {
    let listener = health::bind("127.0.0.1:0".parse().expect("an address")).expect("bind");
    let addr = listener.local_addr().expect("local address");
    let mut status = Status::new(Some("tcp"), 3);
    status.app = App::Running;
    status.ready_once = true;
    let shared = Shared::new(status.clone());
    health::start(listener, shared).expect("start the server");
    fuzz(
        "health_server_wire",
        |rng| {
            let mut stream = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let head = match rng.below(4) {
                    0 => request_head(rng).into_bytes(),
                    1 => {
                        let base = request_head(rng);
                        mutate(rng, base.as_bytes(), HEAD_DICT, HEAD_SEEDS)
                    }
                    2 => {
                        let seed = rng.pick_str(HEAD_SEEDS);
                        mutate(rng, seed.as_bytes(), HEAD_DICT, HEAD_SEEDS)
                    }
                    _ => rng.pick(HEAD_SEEDS).as_bytes().to_vec(),
                };
                stream.extend_from_slice(&head);
            }
            // Within one read's cap (the server keeps at most 8 KiB + 1 of a connection's input)
            // and ending in a blank line, so every head is whole and the answer count is exact.
            stream.truncate(4 * 1024);
            stream.extend_from_slice(b"\r\n\r\n");
            WireInput { stream }
        },
        |i| {
            let want = expected_answers(&i.stream, &status);
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s.write_all(&i.stream).expect("send");
            let mut pending = Vec::new();
            let mut got = Vec::new();
            while got.len() < want.len() {
                let head_only = want[got.len()].1;
                let Some((code, close)) = read_response(&mut s, &mut pending, head_only) else {
                    break;
                };
                got.push(code);
                if close {
                    break;
                }
            }
            let codes: Vec<u16> = want.iter().map(|w| w.0).collect();
            assert_eq!(got, codes);
            let _ = s.shutdown(Shutdown::Both);
        },
    );
}
