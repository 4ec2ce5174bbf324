//! The health listener: `/livez`, `/readyz`, `/healthz` and `/metrics`, answered from cached
//! state.
//!
//! One thread runs a `poll` loop over the listener and its connections, all non-blocking, so no
//! client can hold the thread: each connection has a deadline to send a whole request head, the
//! head is capped, the number of connections is capped (by `MAX_CONNS` or by the fd limit; a
//! held client gives way to a new one once it has had `GRACE` to speak or has been answered, and
//! until one may, new clients wait in the listen backlog), and a request never runs a probe.
//! Nothing here touches a process.

use crate::error::Error;
use crate::log;
use crate::metrics;
use crate::status::{Shared, Status};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{Backlog, listen};
use serde_json::json;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Time a client gets to send a whole request head (and, on keep-alive, the next one).
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// A request head larger than this is refused (431): the endpoints need only the first line.
const MAX_HEAD: usize = 8 * 1024;
/// Connections held at once, unless the fd limit stops vigil first.
const MAX_CONNS: usize = 1024;
/// A newly accepted connection is not pushed out for a newer one before this: a client whose
/// request is on its way is answered, not reset by the connections of a flood that arrive after
/// it. An answered keep-alive connection may give way at once.
const GRACE: Duration = Duration::from_millis(100);

/// Binds the listener (close-on-exec, as std opens every socket), before privileges drop.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let listener = TcpListener::bind(addr).map_err(|e| Error::Bind {
        addr: addr.to_string(),
        why: e.to_string(),
    })?;
    listener.set_nonblocking(true).map_err(|e| Error::Bind {
        addr: addr.to_string(),
        why: e.to_string(),
    })?;
    // std listens with a backlog of 128; under a flood of connections a full queue drops the
    // next SYN and a well-behaved client retries only after a second. Ask for the system's
    // maximum instead (listen(2) on a listening socket just updates it).
    let _ = listen(&listener, Backlog::MAXALLOWABLE);
    Ok(listener)
}

/// Starts the server thread. It runs until vigil exits.
pub fn start(listener: TcpListener, status: Shared) -> Result<(), Error> {
    if let Ok(addr) = listener.local_addr() {
        log::info("health listening", &[("addr", json!(addr.to_string()))]);
        if addr.ip().is_loopback() {
            log::warn(
                "health listener is loopback only",
                &[
                    ("addr", json!(addr.to_string())),
                    (
                        "hint",
                        json!(
                            "platforms probe the container's own address: use 0.0.0.0:PORT or [::]:PORT"
                        ),
                    ),
                ],
            );
        }
    }
    std::thread::Builder::new()
        .name("health".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            crate::signals::block_again();
            Server::new(listener, status).run()
        })
        .map(|_| ())
        .map_err(|e| Error::Startup {
            op: "start the health thread",
            errno: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
        })
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    out: Vec<u8>,
    deadline: Instant,
    /// From when this connection may be pushed out for a new one.
    give_way_at: Instant,
    close_after_write: bool,
}

struct Server {
    listener: TcpListener,
    status: Shared,
    conns: Vec<Conn>,
    /// How many connections to hold: `MAX_CONNS`, or as many as there were when accept last
    /// ran out of fds (one more for each accept that finds a free fd while full).
    cap: usize,
    /// Out of fds with nothing to let go of: the listener rests until then, so that it does not
    /// stay readable and spin.
    rest_until: Option<Instant>,
    /// An fd kept in reserve: when accept fails for lack of fds, it is closed to accept and
    /// close the waiting client, so the listener does not stay readable and spin.
    spare: Option<File>,
}

impl Server {
    fn new(listener: TcpListener, status: Shared) -> Server {
        Server {
            listener,
            status,
            conns: Vec::new(),
            cap: MAX_CONNS,
            rest_until: None,
            spare: File::open("/dev/null").ok(),
        }
    }

    fn run(mut self) {
        loop {
            let now = Instant::now();
            self.conns.retain(|c| c.deadline > now);
            if self.conns.is_empty() {
                self.cap = MAX_CONNS;
            }
            // Full, and no client past its grace: leave the listener until the first one is.
            let full_until = self.next_out().map(|(_, at)| at).filter(|&at| at > now);
            let rest_until = self.rest_until.filter(|&at| at > now);
            let listen_from = full_until.max(rest_until);
            let wake = listen_from.or_else(|| self.conns.iter().map(|c| c.deadline).min());
            let timeout = match wake {
                None => PollTimeout::NONE,
                Some(at) => {
                    let ms = at.saturating_duration_since(now).as_millis() + 1;
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let ready = self.wait(listen_from.is_none(), timeout);
            // Serve before accepting: accepting may drop a connection and move indices.
            for (i, r) in ready.iter().skip(1).enumerate().rev() {
                if *r && i < self.conns.len() && !serve(&mut self.conns[i], &self.status) {
                    self.conns.swap_remove(i);
                }
            }
            if ready.first().copied().unwrap_or(false) {
                self.accept_all();
            }
        }
    }

    /// Polls the listener (if `accept`) and every connection; returns which are ready, listener
    /// first.
    fn wait(&self, accept: bool, timeout: PollTimeout) -> Vec<bool> {
        let mut fds = Vec::with_capacity(self.conns.len() + 1);
        let listen = if accept {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        fds.push(PollFd::new(self.listener.as_fd(), listen));
        for c in &self.conns {
            let want = if c.out.is_empty() {
                PollFlags::POLLIN
            } else {
                PollFlags::POLLOUT
            };
            fds.push(PollFd::new(c.stream.as_fd(), want));
        }
        if poll(&mut fds, timeout).is_err() {
            // ENOMEM (the kernel cannot serve it now) or EINTR: try again, but not at once, or
            // a failure that lasts spins this thread.
            std::thread::sleep(Duration::from_millis(10));
            return vec![false; fds.len()];
        }
        fds.iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect()
    }

    /// While every slot is taken: the connection that gives way to a new one (the one that may
    /// do so first) and from when. None while there is room.
    fn next_out(&self) -> Option<(usize, Instant)> {
        if self.conns.len() < self.cap {
            return None;
        }
        // One still being written to goes last: its answer would be cut short.
        let first = (0..self.conns.len())
            .min_by_key(|&i| (!self.conns[i].out.is_empty(), self.conns[i].give_way_at))?;
        Some((first, self.conns[first].give_way_at))
    }

    fn accept_all(&mut self) {
        for _ in 0..64 {
            let out = match self.next_out() {
                // Every client still in its grace: the rest wait in the backlog.
                Some((_, at)) if at > Instant::now() => return,
                out => out.map(|(i, _)| i),
            };
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    if self.out_of_fds() {
                        continue;
                    }
                    return;
                }
                Err(_) => return,
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let now = Instant::now();
            let mut conn = Conn {
                stream,
                buf: Vec::new(),
                out: Vec::new(),
                deadline: now + HEAD_TIMEOUT,
                give_way_at: now + GRACE,
                close_after_write: false,
            };
            // A client that waited in the backlog has usually sent its request already: answer
            // it now, and a `Connection: close` client never takes a slot.
            if !serve(&mut conn, &self.status) {
                continue;
            }
            match out {
                // Full by a cap learned from EMFILE, yet there was an fd: one more fits.
                Some(_) if self.cap < MAX_CONNS => self.cap += 1,
                Some(first) => {
                    self.conns.swap_remove(first);
                }
                None => {}
            }
            self.conns.push(conn);
        }
    }

    /// accept failed for lack of fds: from now on hold no more connections than now. If one
    /// may give way it does, and true says to accept again. With none held, the spare fd turns
    /// one waiting client away, so that the listener does not stay readable and spin.
    fn out_of_fds(&mut self) -> bool {
        if self.conns.is_empty() {
            self.spare = None;
            if self.listener.accept().is_err() {
                self.rest_until = Some(Instant::now() + GRACE);
            }
            self.spare = File::open("/dev/null").ok();
            return false;
        }
        self.cap = self.conns.len();
        match self.next_out() {
            Some((first, at)) if at <= Instant::now() => {
                self.conns.swap_remove(first);
                true
            }
            _ => false,
        }
    }
}

/// Reads or writes what the connection is ready for, answering every whole request head in
/// its buffer. Returns false to close it.
fn serve(c: &mut Conn, status: &Shared) -> bool {
    if !c.out.is_empty() {
        // Finish the last answer first; then go on with what is buffered.
        if !flush(c) {
            return false;
        }
        if !c.out.is_empty() {
            return true;
        }
    }
    let input = read_some(c);
    if input == Input::Broken {
        return false;
    }
    loop {
        let Some(end) = head_end(&c.buf) else {
            if c.buf.len() > MAX_HEAD {
                c.out = response(
                    431,
                    "{\"error\":\"request head too large\"}",
                    false,
                    false,
                    None,
                    JSON,
                );
                c.close_after_write = true;
                return flush(c);
            }
            // A client that half-closed without a whole head has nothing more to say.
            return input == Input::Open;
        };
        let head: Vec<u8> = c.buf.drain(..end).collect();
        let (code, body, keep_alive, head_only, allow, kind) = match parse_head(&head) {
            Some(req) => {
                let (code, body, allow, kind) = answer(req.method, req.path, status);
                (
                    code,
                    body,
                    req.keep_alive && !req.has_body,
                    req.method == "HEAD",
                    allow,
                    kind,
                )
            }
            None => (
                400,
                "{\"error\":\"bad request\"}".to_string(),
                false,
                false,
                None,
                JSON,
            ),
        };
        // After a half-close (`nc -N`, shutdown(SHUT_WR)) the answers still go out, then close.
        let keep_alive = keep_alive && input == Input::Open;
        c.out = response(code, &body, keep_alive, head_only, allow, kind);
        c.close_after_write = !keep_alive;
        let now = Instant::now();
        c.deadline = now + HEAD_TIMEOUT;
        // Answered: it has had its turn, and may give way to a new client from now on.
        c.give_way_at = now;
        if !flush(c) {
            return false;
        }
        if !c.out.is_empty() {
            return true;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Read what there was; the client may send more.
    Open,
    /// The client closed its side after what is buffered.
    Eof,
    /// The connection failed.
    Broken,
}

/// Reads what is there, but never more than a little over `MAX_HEAD` unparsed bytes: the rest
/// stays in the socket until the heads before it are answered.
fn read_some(c: &mut Conn) -> Input {
    let mut chunk = [0u8; 4096];
    loop {
        let room = (MAX_HEAD + 1).saturating_sub(c.buf.len()).min(chunk.len());
        if room == 0 {
            return Input::Open;
        }
        match c.stream.read(&mut chunk[..room]) {
            Ok(0) => return Input::Eof,
            Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Input::Open,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Input::Broken,
        }
    }
}

/// Writes what it can; false when the connection is done with or broken.
fn flush(c: &mut Conn) -> bool {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => return false,
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    !c.close_after_write
}

/// Where the head ends (after the blank line), if it has.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    pub keep_alive: bool,
    pub has_body: bool,
}

/// Parses `METHOD SP TARGET SP HTTP/1.x` and the headers that decide the connection's fate.
pub fn parse_head(head: &[u8]) -> Option<Request<'_>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if parts.next().is_some()
        || !token(method)
        || !target.starts_with('/')
        || target.bytes().any(|b| b.is_ascii_control())
    {
        return None;
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return None,
    };
    let mut has_body = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "connection" if value.contains("close") => keep_alive = false,
            "connection" if value.contains("keep-alive") => keep_alive = true,
            "content-length" => has_body |= value != "0",
            "transfer-encoding" => has_body = true,
            _ => {}
        }
    }
    let path = target.split('?').next().unwrap_or(target);
    Some(Request {
        method,
        path,
        keep_alive,
        has_body,
    })
}

const JSON: &str = "application/json";

/// `GET /metrics` in the Prometheus text format, or else the contract's table: status code,
/// body, the `Allow` header for a 405, and the `Content-Type`.
fn answer(
    method: &str,
    path: &str,
    status: &Shared,
) -> (u16, String, Option<&'static str>, &'static str) {
    if path != "/metrics" {
        let (code, body, allow) = route(method, path, &status.get());
        return (code, body, allow, JSON);
    }
    if method != "GET" && method != "HEAD" {
        let body = "{\"error\":\"method not allowed\"}".to_string();
        return (405, body, Some("GET, HEAD"), JSON);
    }
    let text = metrics::render(&status.get());
    (200, text, None, metrics::CONTENT_TYPE)
}

/// The contract's table: status code, JSON body, and the `Allow` header for a 405.
pub fn route(method: &str, path: &str, status: &Status) -> (u16, String, Option<&'static str>) {
    let verdict = match path {
        "/livez" => status.live(),
        "/readyz" | "/healthz" => status.ready(),
        _ => return (404, "{\"error\":\"not found\"}".into(), None),
    };
    if method != "GET" && method != "HEAD" {
        return (
            405,
            "{\"error\":\"method not allowed\"}".into(),
            Some("GET, HEAD"),
        );
    }
    (if verdict { 200 } else { 503 }, status.body(verdict), None)
}

fn response(
    code: u16,
    body: &str,
    keep_alive: bool,
    head_only: bool,
    allow: Option<&str>,
    content_type: &str,
) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {}\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if let Some(allow) = allow {
        out.push_str("Allow: ");
        out.push_str(allow);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::App;

    fn req(s: &str) -> Option<Request<'_>> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn request_lines() {
        let r = req("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (r.method, r.path, r.keep_alive, r.has_body),
            ("GET", "/healthz", true, false)
        );
        let r = req("HEAD /livez?verbose=1 HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((r.method, r.path, r.keep_alive), ("HEAD", "/livez", false));
        assert!(
            !req("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            req("POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n")
                .unwrap()
                .has_body
        );
        assert!(req("GET /x HTTP/1.1\n\n").is_some(), "bare LF is tolerated");
        for bad in [
            "",
            "\r\n\r\n",
            "GET\r\n\r\n",
            "GET /\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1 x\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColonHeader\r\n\r\n",
            "GET /\x01 HTTP/1.1\r\n\r\n",
        ] {
            assert!(req(bad).is_none(), "{bad:?}");
        }
        assert!(parse_head(&[0xff, 0xfe, b'\r', b'\n', b'\r', b'\n']).is_none());
    }

    #[test]
    fn head_ends() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    fn status(app: App, draining: bool) -> Status {
        let mut s = Status::new(None, 3);
        s.app = app;
        s.ready_once = true;
        s.draining = draining;
        s
    }

    #[test]
    fn routing_table() {
        let up = status(App::Running, false);
        for path in ["/livez", "/readyz", "/healthz"] {
            assert_eq!(route("GET", path, &up).0, 200, "{path}");
            assert_eq!(route("HEAD", path, &up).0, 200, "{path}");
            let (code, _, allow) = route("POST", path, &up);
            assert_eq!((code, allow), (405, Some("GET, HEAD")));
        }
        assert_eq!(route("GET", "/", &up).0, 404);
        assert_eq!(route("GET", "/healthz/", &up).0, 404);
        assert_eq!(route("DELETE", "/nope", &up).0, 404);
        let draining = status(App::Running, true);
        assert_eq!(route("GET", "/livez", &draining).0, 200);
        assert_eq!(route("GET", "/readyz", &draining).0, 503);
        assert_eq!(route("GET", "/healthz", &draining).0, 503);
        let gone = status(App::Exited, true);
        assert_eq!(route("GET", "/livez", &gone).0, 503);
        let (_, body, _) = route("GET", "/readyz", &draining);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "fail");
        assert_eq!(v["phase"], "draining");
    }

    #[test]
    fn responses() {
        let r = String::from_utf8(response(200, "{}", true, false, None, JSON)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains("Content-Length: 2\r\n") && r.contains("Connection: keep-alive\r\n"));
        assert!(r.ends_with("\r\n\r\n{}"));
        let r = String::from_utf8(response(503, "{}", false, true, None, JSON)).unwrap();
        assert!(
            r.contains("Content-Length: 2\r\n") && r.ends_with("\r\n\r\n"),
            "HEAD: no body"
        );
        let r =
            String::from_utf8(response(405, "{}", false, false, Some("GET, HEAD"), JSON)).unwrap();
        assert!(r.contains("Allow: GET, HEAD\r\n"));
    }
}
