//! Probes: their targets, the tcp and http checks, and `vigil probe`.
//!
//! Targets are parsed once, at start-up, so a malformed one is a configuration error (exit 2),
//! never a runtime failure. A check has one deadline for everything it does (resolve, connect,
//! write, read), and reads at most `MAX_RESPONSE` bytes of an answer. The exec probe needs the
//! supervisor's reaper and lives in `checker.rs`.

use crate::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The reason a probe gives when it ran out of `--probe-timeout`.
pub const TIMED_OUT: &str = "timed out";

/// The most of an HTTP answer a probe reads looking for its status line.
pub const MAX_RESPONSE: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeSpec {
    /// Healthy when a TCP connect succeeds.
    Tcp { host: String, port: u16 },
    /// Healthy when `GET` answers 2xx or 3xx.
    Http(HttpTarget),
    /// Healthy when the command exits 0.
    Exec { argv: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// Host as written, without IPv6 brackets: what we resolve.
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The `Host` header: host (bracketed for IPv6) plus `:port` unless it is 80.
    pub host_header: String,
    /// `--probe-header`s, as (name, value); one named `Host`, `User-Agent` or `Accept` replaces
    /// vigil's own.
    pub headers: Vec<(String, String)>,
}

/// Headers vigil sets itself on every probe request; a `--probe-header` cannot set them.
const OWN_HEADERS: [&str; 3] = ["connection", "content-length", "transfer-encoding"];

/// Parses a `--probe-header 'Name: value'`. The error never repeats the value: it may be a
/// credential.
pub fn parse_header(line: &str) -> Result<(String, String), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or("expected 'Name: value', e.g. 'Host: app.example.com'")?;
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err("expected 'Name: value' with a header name of letters, digits and -".into());
    }
    if OWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("vigil sets {name} itself"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(format!("the value of {name} holds a control character"));
    }
    Ok((name.to_string(), value.to_string()))
}

impl ProbeSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeSpec::Tcp { .. } => "tcp",
            ProbeSpec::Http(_) => "http",
            ProbeSpec::Exec { .. } => "exec",
        }
    }

    /// Parses a `--probe-KIND` value; the error is the reason, the caller names the flag.
    pub fn parse(kind: &str, value: &str) -> Result<ProbeSpec, String> {
        match kind {
            "tcp" => {
                let (host, port) = host_port(value)
                    .ok_or("expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")?;
                Ok(ProbeSpec::Tcp { host, port })
            }
            "http" => parse_http(value).map(ProbeSpec::Http),
            "exec" => split_command(value).map(|argv| ProbeSpec::Exec { argv }),
            _ => Err(format!("unknown probe kind {kind}")),
        }
    }

    /// `vigil probe TARGET`: `http://HOST:PORT/PATH` or `tcp://HOST:PORT`.
    pub fn parse_target(target: &str) -> Result<ProbeSpec, Error> {
        let bad = |why: &str| Error::bad("TARGET", target, why);
        let lower = target.to_ascii_lowercase();
        if lower.starts_with("http://") {
            ProbeSpec::parse("http", target).map_err(|why| bad(&why))
        } else if let Some(rest) = lower.strip_prefix("tcp://").map(|_| &target[6..]) {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            ProbeSpec::parse("tcp", rest).map_err(|why| bad(&why))
        } else {
            Err(bad("expected http://HOST:PORT/PATH or tcp://HOST:PORT"))
        }
    }
}

/// Splits a command line into words as a POSIX shell would (single and double quotes, backslash,
/// a `#` comment), but no shell runs: no variables, globs, pipes or redirections.
/// `pg_isready -d "my db"` is three words. The shlex crate does the splitting; it is tested
/// against bash, dash, busybox ash and Python's shlex.
pub fn split_command(value: &str) -> Result<Vec<String>, String> {
    let argv = shlex::split(value)
        .ok_or("unbalanced quotes or a backslash at the end (no shell runs: quote as for sh)")?;
    if argv.is_empty() {
        return Err("expected a command, e.g. \"/app/check --quick\"".into());
    }
    Ok(argv)
}

/// Runs a tcp or http check once. `Ok` carries a detail for the log, `Err` the reason.
pub fn check(spec: &ProbeSpec, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    match spec {
        ProbeSpec::Tcp { host, port } => connect(host, *port, deadline).map(|_| "connected".into()),
        ProbeSpec::Http(t) => {
            let code = http_get(t, deadline)?;
            if (200..400).contains(&code) {
                Ok(format!("HTTP {code}"))
            } else {
                Err(format!("HTTP {code}"))
            }
        }
        ProbeSpec::Exec { .. } => Err("an exec probe needs the supervisor".into()),
    }
}

fn left(deadline: Instant) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(TIMED_OUT.into())
    } else {
        Ok(d)
    }
}

pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("no address for {host}");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left(deadline)?) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == ErrorKind::TimedOut => return Err(TIMED_OUT.into()),
            Err(e) => last = format!("connect {addr}: {e}"),
        }
    }
    Err(last)
}

/// `GET` the target and return the status code.
fn http_get(t: &HttpTarget, deadline: Instant) -> Result<u16, String> {
    let mut stream = connect(&t.host, t.port, deadline)?;
    let request = request(t);
    stream
        .set_write_timeout(Some(left(deadline)?))
        .and_then(|_| stream.write_all(request.as_bytes()))
        .map_err(|e| io_reason("send", &e))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(code) = parse_status_line(&buf)? {
            return Ok(code);
        }
        if buf.len() >= MAX_RESPONSE {
            return Err("no status line in the first 8 KiB".into());
        }
        stream
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|e| io_reason("read", &e))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err("connection closed before a status line".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n.min(MAX_RESPONSE - buf.len())]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_reason("read", &e)),
        }
    }
}

/// The probe's request: vigil's own headers unless a `--probe-header` of the same name replaces
/// them, then the rest of the `--probe-header`s in their order.
fn request(t: &HttpTarget) -> String {
    let agent = format!("vigil/{}", env!("CARGO_PKG_VERSION"));
    let mut out = format!("GET {} HTTP/1.1\r\n", t.path);
    for (name, default) in [
        ("Host", t.host_header.as_str()),
        ("User-Agent", agent.as_str()),
        ("Accept", "*/*"),
    ] {
        if !t.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            out.push_str(&format!("{name}: {default}\r\n"));
        }
    }
    for (name, value) in &t.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn io_reason(op: &str, e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => TIMED_OUT.into(),
        _ => format!("{op}: {e}"),
    }
}

/// Reads `HTTP/1.x NNN ...` from the start of an answer. `Ok(None)`: not a whole line yet.
pub fn parse_status_line(buf: &[u8]) -> Result<Option<u16>, String> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let line = &buf[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let bad = || "not an HTTP answer".to_string();
    let rest = line.strip_prefix(b"HTTP/1.").ok_or_else(bad)?;
    match rest {
        [b'0' | b'1', b' ', a, b, c, tail @ ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit())
                && (tail.is_empty() || tail[0] == b' ') =>
        {
            Ok(Some(
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
            ))
        }
        _ => Err(bad()),
    }
}

/// `vigil probe TARGET`: 0 healthy, 1 not (the reason on stderr).
pub fn main(spec: &ProbeSpec, timeout: Duration) -> u8 {
    match check(spec, timeout) {
        Ok(_) => 0,
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "vigil probe: {why}");
            1
        }
    }
}

/// `host:port`, `[v6]:port`. The port must be 1..=65535.
pub fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port_number(port)?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').filter(|h| h.contains(':'))?,
        None if host.contains(':') => return None,
        None => host,
    };
    valid_host(host).then(|| (host.to_string(), port))
}

fn port_number(s: &str) -> Option<u16> {
    s.parse().ok().filter(|p| *p != 0)
}

/// A name or an address: letters, digits, `-._` and, for IPv6, `:` and a `%zone`.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b))
}

fn parse_http(url: &str) -> Result<HttpTarget, String> {
    const WHY: &str = "expected http://HOST[:PORT]/PATH (plain http only)";
    let rest = match url.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &url[7..],
        _ => return Err(WHY.into()),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(WHY.into());
    }
    // `[v6]`, `[v6]:port`, `host` or `host:port`; a bracket anywhere else is malformed.
    let (host, port, bracketed) = match authority.strip_prefix('[') {
        Some(after) => {
            let (host, tail) = after.split_once(']').ok_or(WHY)?;
            let port = match tail {
                "" => 80,
                t => t.strip_prefix(':').and_then(port_number).ok_or(WHY)?,
            };
            (host, port, true)
        }
        None => match authority.split_once(':') {
            None => (authority, 80, false),
            Some((host, port)) => (host, port_number(port).ok_or(WHY)?, false),
        },
    };
    if !valid_host(host) || bracketed != host.contains(':') {
        return Err(WHY.into());
    }
    let shown = if bracketed {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let host_header = if port == 80 {
        shown
    } else {
        format!("{shown}:{port}")
    };
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(HttpTarget {
        host: host.to_string(),
        port,
        path,
        host_header,
        headers: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> HttpTarget {
        match ProbeSpec::parse("http", url).unwrap() {
            ProbeSpec::Http(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_urls() {
        let t = http("http://127.0.0.1:8080/healthz?full=1");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/healthz?full=1")
        );
        assert_eq!(t.host_header, "127.0.0.1:8080");
        let t = http("http://localhost");
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.path.as_str(),
                t.host_header.as_str()
            ),
            ("localhost", 80, "/", "localhost")
        );
        let t = http("HTTP://[::1]:9000/x#frag");
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.path.as_str(),
                t.host_header.as_str()
            ),
            ("::1", 9000, "/x", "[::1]:9000")
        );
        let t = http("http://[::1]/");
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        let t = http("http://app?ready");
        assert_eq!(t.path, "/?ready");
        for bad in [
            "http://app]/healthz",
            "http://[app/",
            "http://[app]/",
            "http://a[b/",
            "abcdefé",
            "http:/éx",
            "https://x/",
            "http://",
            "http:///x",
            "http://x:0/",
            "http://x:65536/",
            "http://x:y/",
            "http://u@x/",
            "http://::1/",
            "http://x/a b",
            "ftp://x",
            "http://[::1/",
            "http://x:/",
        ] {
            assert!(ProbeSpec::parse("http", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_targets() {
        assert_eq!(
            ProbeSpec::parse("tcp", "127.0.0.1:80").unwrap(),
            ProbeSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 80
            }
        );
        assert_eq!(
            ProbeSpec::parse("tcp", "[::1]:5432").unwrap(),
            ProbeSpec::Tcp {
                host: "::1".into(),
                port: 5432
            }
        );
        for bad in ["nohost", ":80", "x:", "x:0", "::1:80", "x:99999", "a b:1"] {
            assert!(ProbeSpec::parse("tcp", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exec_commands() {
        assert_eq!(
            ProbeSpec::parse("exec", " /bin/check  --quick ").unwrap(),
            ProbeSpec::Exec {
                argv: vec!["/bin/check".into(), "--quick".into()]
            }
        );
        assert!(ProbeSpec::parse("exec", " \t").is_err());
    }

    #[test]
    fn exec_commands_split_as_a_shell_would() {
        let words = |s: &str| split_command(s).unwrap();
        assert_eq!(
            words(r#"pg_isready -d "my db""#),
            ["pg_isready", "-d", "my db"]
        );
        assert_eq!(
            words("sh -c 'test -e /tmp/x && echo $HOME'"),
            ["sh", "-c", "test -e /tmp/x && echo $HOME"]
        );
        assert_eq!(words(r"a\ b c\\d"), ["a b", "c\\d"]);
        assert_eq!(words(r#""a \"q\" $x" ''"#), [r#"a "q" $x"#, ""]);
        assert_eq!(words("check --id=1 # a comment"), ["check", "--id=1"]);
        assert_eq!(
            words("redis-cli ping | grep PONG"),
            ["redis-cli", "ping", "|", "grep", "PONG"]
        );
        for bad in [
            "check 'open",
            "check \"open",
            "check \\",
            "",
            "  ",
            "# only a comment",
        ] {
            assert!(split_command(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Host: app.example.com"),
            Ok(("Host".into(), "app.example.com".into()))
        );
        assert_eq!(
            parse_header(" Authorization :Bearer a:b \t"),
            Ok(("Authorization".into(), "Bearer a:b".into()))
        );
        assert_eq!(
            parse_header("X-Empty:"),
            Ok(("X-Empty".into(), String::new()))
        );
        for bad in [
            "NoColon",
            ": value",
            "Bad Name: x",
            "X: a\r\nInjected: 1",
            "X: \u{7f}",
            "Connection: keep-alive",
            "content-length: 3",
        ] {
            let e = parse_header(bad).unwrap_err();
            assert!(!e.contains("secret"), "{e}");
        }
        let e = parse_header("X-Token: sec\u{1}ret").unwrap_err();
        assert!(!e.contains("sec") && e.contains("X-Token"), "{e}");
    }

    #[test]
    fn requests_with_headers() {
        let mut t = http("http://127.0.0.1:8080/ready");
        let plain = request(&t);
        assert!(plain.starts_with("GET /ready HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(plain.ends_with("Accept: */*\r\nConnection: close\r\n\r\n"));
        t.headers = vec![
            ("host".into(), "app.example.com".into()),
            ("Authorization".into(), "Bearer x".into()),
        ];
        let r = request(&t);
        assert!(!r.contains("Host: 127.0.0.1"), "{r}");
        assert!(r.contains("\r\nhost: app.example.com\r\n"), "{r}");
        assert!(r.contains("\r\nAuthorization: Bearer x\r\n"), "{r}");
        assert!(r.contains("\r\nUser-Agent: vigil/"), "{r}");
        assert_eq!(r.matches("\r\n\r\n").count(), 1, "{r}");
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Ok(Some(200)));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\n"),
            Ok(Some(503))
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 301\r\n"), Ok(Some(301)));
        assert_eq!(parse_status_line(b"HTTP/1.1 200 O"), Ok(None));
        assert_eq!(parse_status_line(b""), Ok(None));
        for bad in [
            &b"HTTP/2 200 OK\r\n"[..],
            b"SSH-2.0-x\r\n",
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 2000\r\n",
            b"\n",
            b"\xff\xfe\n",
        ] {
            assert!(parse_status_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checks_against_a_local_server() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for answer in [
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 500 Oops\r\n\r\n",
                "garbage\n",
            ] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(req.starts_with("GET /h?x HTTP/1.1\r\n"), "{req}");
                assert!(
                    req.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
                    "{req}"
                );
                assert!(req.contains("User-Agent: vigil/"), "{req}");
                s.write_all(answer.as_bytes()).unwrap();
            }
            listener
        });
        let spec = ProbeSpec::parse("http", &format!("http://127.0.0.1:{port}/h?x")).unwrap();
        let t = Duration::from_secs(2);
        assert_eq!(check(&spec, t), Ok("HTTP 204".into()));
        assert_eq!(check(&spec, t), Err("HTTP 500".into()));
        assert!(check(&spec, t).is_err());
        let listener = server.join().unwrap();
        let tcp = ProbeSpec::parse("tcp", &format!("127.0.0.1:{port}")).unwrap();
        assert!(check(&tcp, t).is_ok());
        // A server that accepts and never answers: the deadline holds.
        let start = Instant::now();
        assert_eq!(
            check(&spec, Duration::from_millis(200)),
            Err("timed out".into())
        );
        assert!(start.elapsed() < Duration::from_secs(2));
        drop(listener);
        assert!(check(&tcp, t).is_err(), "refused once closed");
    }

    #[test]
    fn probe_subcommand_targets() {
        assert!(matches!(
            ProbeSpec::parse_target("http://127.0.0.1:8086/healthz"),
            Ok(ProbeSpec::Http(_))
        ));
        assert!(matches!(
            ProbeSpec::parse_target("tcp://127.0.0.1:5432"),
            Ok(ProbeSpec::Tcp { port: 5432, .. })
        ));
        assert!(matches!(
            ProbeSpec::parse_target("TCP://[::1]:1/"),
            Ok(ProbeSpec::Tcp { port: 1, .. })
        ));
        for bad in ["127.0.0.1:80", "tcp://x", "udp://x:1", "", "http://"] {
            let e = ProbeSpec::parse_target(bad).unwrap_err().to_string();
            assert!(e.starts_with("TARGET \""), "{e}");
        }
    }
}
