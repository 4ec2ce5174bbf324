//! Probe targets: what `--probe-tcp`, `--probe-http`, `--probe-exec` and `vigil probe` check.
//!
//! Targets are parsed once, at start-up, so a malformed one is a configuration error (exit 2),
//! never a runtime failure.

use crate::error::Error;

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
            "exec" => {
                let argv: Vec<String> = value.split_whitespace().map(str::to_string).collect();
                if argv.is_empty() {
                    return Err("expected a command, e.g. \"/app/check --quick\"".into());
                }
                Ok(ProbeSpec::Exec { argv })
            }
            _ => Err(format!("unknown probe kind {kind}")),
        }
    }

    /// `vigil probe TARGET`: `http://HOST:PORT/PATH` or `tcp://HOST:PORT`.
    pub fn parse_target(target: &str) -> Result<ProbeSpec, Error> {
        let bad = |why: &str| Error::bad("vigil probe", target, why);
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

/// `host:port`, `[v6]:port`. The port must be 1..=65535.
fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b));
    ok.then(|| (host.to_string(), port))
}

fn parse_http(url: &str) -> Result<HttpTarget, String> {
    const WHY: &str = "expected http://HOST[:PORT]/PATH (plain http only)";
    if url.len() < 7 || !url[..7].eq_ignore_ascii_case("http://") {
        return Err(WHY.into());
    }
    let rest = &url[7..];
    let rest = rest.split('#').next().unwrap_or("");
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@')
        || path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(WHY.into());
    }
    let (host, port) = if authority.ends_with(']') || !authority.contains(':') {
        (authority.to_string(), 80)
    } else if authority.starts_with('[') || authority.matches(':').count() == 1 {
        host_port(authority)
            .map(|(h, p)| (if h.contains(':') { format!("[{h}]") } else { h }, p))
            .ok_or(WHY)?
    } else {
        return Err(WHY.into());
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host_port(&format!("[{bare}]:{port}")).ok_or(WHY)?;
    let host_header = if port == 80 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(HttpTarget {
        host: bare.to_string(),
        port,
        path,
        host_header,
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
            assert!(e.starts_with("vigil probe"), "{e}");
        }
    }
}
