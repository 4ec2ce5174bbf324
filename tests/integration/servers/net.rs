//! The test's way into a server case's network namespace, and an HTTP/1.1 client for it.

use super::HEALTH;
use crate::util::{CEILING, Vigil, poll_until, secs};
use nix::sched::{CloneFlags, setns};
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long a server may take to start and pass its first probe on a loaded machine.
const START: Duration = Duration::from_secs(30);

/// vigil's network namespace: sockets opened by [`Net::run`] and [`Net::spawn`] live there.
pub struct Net {
    ns: Arc<File>,
}

impl Net {
    /// The network namespace of process `pid`, while it runs.
    pub fn open(pid: i32) -> Option<Net> {
        let ns = File::open(format!("/proc/{pid}/ns/net")).ok()?;
        Some(Net { ns: Arc::new(ns) })
    }

    /// Runs `f` on a new thread that joined the namespace (network namespaces are per thread).
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let ns = Arc::clone(&self.ns);
        thread::spawn(move || {
            setns(ns.as_ref(), CloneFlags::CLONE_NEWNET).expect("setns into vigil's network");
            f()
        })
    }

    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f)
            .join()
            .expect("the thread in vigil's network panicked")
    }

    /// `GET /readyz` on vigil's health listener: the code and the JSON body, None when it does
    /// not answer.
    pub fn readyz(&self) -> Option<(u16, Value)> {
        self.run(|| {
            let a = http_get(HEALTH, "/readyz", secs(1.0), None).ok()?;
            Some((
                a.code,
                serde_json::from_slice(&a.body).unwrap_or(Value::Null),
            ))
        })
    }

    /// Waits until `/readyz` is 200: vigil's probe of the server passed. A server that exits
    /// first fails the test at once.
    pub fn wait_ready(&self, v: &mut Vigil) {
        let mut last = None;
        poll_until(START, || {
            last = self.readyz();
            last.as_ref().is_some_and(|(code, _)| *code == 200) || v.has_exited()
        });
        if v.has_exited() {
            let code = v.wait_exit(CEILING).code;
            panic!("vigil exited {code} before the app was ready\n{}", v.dump());
        }
        assert!(
            last.as_ref().is_some_and(|(code, _)| *code == 200),
            "/readyz never 200 within {START:?} (last {last:?})\n{}",
            v.dump()
        );
    }
}

/// An HTTP answer read to the end of the connection.
#[derive(Debug)]
pub struct Answer {
    pub code: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// `GET path` on 127.0.0.1:`port` with `Connection: close`, read until the server closes;
/// `progress` counts the bytes as they come. Call it inside the namespace ([`Net`]).
pub fn http_get(
    port: u16,
    path: &str,
    timeout: Duration,
    progress: Option<Arc<AtomicUsize>>,
) -> std::io::Result<Answer> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: vigil-tests\r\nConnection: close\r\n\r\n"
    )?;
    let mut all = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        all.extend_from_slice(&chunk[..n]);
        if let Some(p) = &progress {
            p.store(all.len(), Ordering::Relaxed);
        }
    }
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no answer head in {} bytes", all.len())))?;
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status code: {head:?}")))?;
    Ok(Answer {
        code,
        head,
        body: all[end + 4..].to_vec(),
    })
}

/// The answer's `Content-Length`.
pub fn content_length(a: &Answer) -> Option<usize> {
    a.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}
