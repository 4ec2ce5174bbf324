//! The http probe's answer: the status line, and the reader over a real socket.

use crate::engine::*;
use crate::health::head_end;
use crate::probe::{self, ProbeSpec};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn status_response(rng: &mut Rng) -> Vec<u8> {
    let version = *rng.pick(&[
        "HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/1.2", "http/1.1", "HTTP/1.", "",
    ]);
    let code = match rng.below(4) {
        0 => rng
            .pick(&[
                "200",
                "204",
                "301",
                "399",
                "400",
                "503",
                "000",
                "999",
                "20",
                "2000",
                "2x0",
                "\u{663}00",
            ])
            .to_string(),
        _ => format!("{:03}", rng.below(1000)),
    };
    let sp = *rng.pick(&[" ", " ", "", "  ", "\t"]);
    let reason = if rng.one_in(3) {
        String::new()
    } else {
        format!("{sp}{}", word(rng, "OK Not Found", 12))
    };
    let eol = *rng.pick(&["\r\n", "\n", "\r", ""]);
    let mut out = format!("{version} {code}{reason}{eol}").into_bytes();
    if rng.one_in(2) {
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    }
    if rng.one_in(16) {
        out = [vec![b'x'; rng.below(10_000)], out].concat();
    }
    out
}

const RESPONSE_SEEDS: &[&str] = &[
    "HTTP/1.1 200 OK\r\n\r\n",
    "HTTP/1.0 503 Service Unavailable\n",
    "HTTP/1.1 301\r\n",
    "SSH-2.0-OpenSSH\r\n",
    "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
];
const RESPONSE_DICT: &[&str] = &[
    "HTTP/1.",
    "HTTP/1.1 ",
    "200",
    " ",
    "\r\n",
    "\n",
    "\r",
    "0",
    "9",
];

fn response_bytes(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 | 1 => status_response(rng),
        2 | 3 => {
            let base = status_response(rng);
            mutate(rng, &base, RESPONSE_DICT, RESPONSE_SEEDS)
        }
        4 => {
            let seed = rng.pick_str(RESPONSE_SEEDS);
            mutate(rng, seed.as_bytes(), RESPONSE_DICT, RESPONSE_SEEDS)
        }
        _ => random_bytes(rng),
    }
}

/// The status line's facts: a code only from a whole `HTTP/1.x NNN` line, and once there is
/// a whole line, more bytes change nothing.
fn check_status_line(buf: &[u8], more: &[u8]) {
    let got = probe::parse_status_line(buf);
    let newline = buf.iter().position(|&b| b == b'\n');
    match (&got, newline) {
        (Ok(None), None) => {}
        (Ok(None), Some(_)) => panic!("a whole line but no verdict"),
        (_, None) => panic!("a verdict without a whole line: {got:?}"),
        (Ok(Some(code)), Some(end)) => {
            assert!(*code <= 999);
            assert!(buf.starts_with(b"HTTP/1.0 ") || buf.starts_with(b"HTTP/1.1 "));
            let line = String::from_utf8_lossy(&buf[..end]);
            assert!(line.contains(&format!("{code:03}")), "{line:?}");
        }
        (Err(_), Some(_)) => {}
    }
    if newline.is_some() {
        let longer = [buf, more].concat();
        assert_eq!(probe::parse_status_line(&longer), got);
    }
    // A well-formed line round-trips.
    if let Ok(Some(code)) = got {
        let line = format!("HTTP/1.1 {code:03} X\r\n");
        assert_eq!(probe::parse_status_line(line.as_bytes()), Ok(Some(code)));
    }
}

#[derive(Debug)]
struct ResponseInput {
    buf: Vec<u8>,
    more: Vec<u8>,
}

#[test]
fn http_status_line() {
    fuzz(
        "http_status_line",
        |rng| ResponseInput {
            buf: response_bytes(rng),
            more: random_bytes(rng),
        },
        |i| check_status_line(&i.buf, &i.more),
    );
}

#[derive(Debug)]
struct AnswerInput {
    answer: Vec<u8>,
    /// The server writes the answer in pieces of this size, to split lines across reads.
    piece: usize,
}

/// The http probe against a local server that answers with fuzzed bytes: the verdict is exactly
/// what the status line in the first 8 KiB says, and nothing hangs past the probe's deadline.
#[test]
fn http_probe_reader() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let spec = ProbeSpec::parse("http", &format!("http://127.0.0.1:{port}/h")).expect("a target");
    let (tx, rx) = std::sync::mpsc::channel::<AnswerInput>();
    std::thread::spawn(move || {
        for input in rx {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            // Read the whole request first, so closing sends FIN, not RST.
            let mut req = Vec::new();
            let mut chunk = [0u8; 1024];
            while head_end(&req).is_none() {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&chunk[..n]),
                }
            }
            for piece in input.answer.chunks(input.piece.max(1)) {
                if s.write_all(piece).is_err() {
                    break;
                }
            }
        }
    });
    fuzz(
        "http_probe_reader",
        |rng| AnswerInput {
            answer: response_bytes(rng),
            piece: if rng.one_in(2) {
                1 + rng.below(16)
            } else {
                1 << 20
            },
        },
        |i| {
            tx.send(AnswerInput {
                answer: i.answer.clone(),
                piece: i.piece,
            })
            .expect("server alive");
            let start = Instant::now();
            let got = probe::check(&spec, Duration::from_secs(5));
            assert!(start.elapsed() < Duration::from_secs(6));
            let first = &i.answer[..i.answer.len().min(probe::MAX_RESPONSE)];
            match probe::parse_status_line(first) {
                Ok(Some(code)) if (200..400).contains(&code) => {
                    assert_eq!(got, Ok(format!("HTTP {code}")))
                }
                Ok(Some(code)) => assert_eq!(got, Err(format!("HTTP {code}"))),
                _ => assert!(got.is_err(), "{got:?}"),
            }
        },
    );
}
