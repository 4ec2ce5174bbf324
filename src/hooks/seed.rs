//! `--env-from`: reading the seed's stdout and turning its lines into environment variables.
//!
//! The lines follow Docker's `--env-file` rules (docker/cli `opts.ParseEnvFile`): a UTF-8 byte
//! order mark at the start is dropped, a trailing CR is dropped, leading whitespace is trimmed,
//! blank lines and lines starting with `#` are skipped, and everything else must be `KEY=VALUE`
//! with a non-empty KEY free of whitespace; the value is literal (no quotes, no `export`, no
//! expansion). Docker takes a bare `KEY` from its own environment; here it is an error, as is a
//! NUL byte (no environment can hold one).
//!
//! A seed carries secrets: an error names the line number and never the line's text, and
//! nothing here logs a value.
//!
//! The reader is a thread, because the supervisor waits on signals only. It stops at EOF, or
//! when the supervisor has reaped the seed and says so through a pipe: then it takes what is
//! left in the pipe without waiting, so a daemon the seed started with its stdout still open
//! cannot hold the start up.

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::thread::JoinHandle;

/// The most a seed may print: far more than any environment needs, and a bound on vigil's memory.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Why the seed's output cannot be used. Never holds any of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Line `n` (from 1) is not `KEY=VALUE`, a blank line or a comment.
    Line { n: usize, why: &'static str },
    /// More than [`MAX_OUTPUT`] bytes.
    TooLong,
}

impl Malformed {
    /// The log fields: the line number and why, nothing of the text.
    pub fn fields(self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        match self {
            Malformed::Line { n, why } => vec![("line", json!(n)), ("error", json!(why))],
            Malformed::TooLong => vec![(
                "error",
                json!(format!("printed more than {MAX_OUTPUT} bytes")),
            )],
        }
    }
}

/// The variables in `out`, in the order printed (a later line for the same key wins, as with
/// `docker run --env-file`).
pub fn parse(out: &[u8]) -> Result<Vec<(OsString, OsString)>, Malformed> {
    let out = out.strip_prefix(b"\xef\xbb\xbf").unwrap_or(out);
    let mut vars = Vec::new();
    for (i, line) in out.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let start = line
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(line.len());
        let line = &line[start..];
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        if line.contains(&0) {
            return Err(Malformed::Line {
                n,
                why: "holds a NUL byte",
            });
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(Malformed::Line {
                n,
                why: "not KEY=VALUE",
            });
        };
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        if key.is_empty() {
            return Err(Malformed::Line {
                n,
                why: "no name before =",
            });
        }
        if key.iter().any(u8::is_ascii_whitespace) {
            return Err(Malformed::Line {
                n,
                why: "the name holds whitespace (no `export`, no spaces around =)",
            });
        }
        vars.push((
            OsString::from_vec(key.to_vec()),
            OsString::from_vec(value.to_vec()),
        ));
    }
    Ok(vars)
}

/// The thread reading a seed's stdout.
#[derive(Debug)]
pub struct Reader {
    /// Writing to it (or dropping it) tells the thread the seed is gone.
    done: OwnedFd,
    thread: JoinHandle<Result<Vec<u8>, Malformed>>,
}

impl Reader {
    pub fn start(out: OwnedFd) -> io::Result<Reader> {
        let (stop, done) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let thread = std::thread::Builder::new()
            .name("env-from".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                crate::signals::block_again();
                read(out, stop)
            })?;
        // Starting a thread may have unblocked the C library's own signals here (musl).
        crate::signals::block_again();
        Ok(Reader { done, thread })
    }

    /// The seed was reaped: what it printed. Returns once what is in the pipe is read.
    pub fn finish(self) -> Result<Vec<u8>, Malformed> {
        drop(self.done);
        // A thread that panicked is impossible with panic = "abort"; count it as no output.
        self.thread.join().unwrap_or(Ok(Vec::new()))
    }
}

/// Reads `out` until EOF, or until `stop` is readable (the seed is gone), then what is left.
fn read(out: OwnedFd, stop: OwnedFd) -> Result<Vec<u8>, Malformed> {
    let mut file = std::fs::File::from(out);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut too_long = false;
    // Past the limit, reading goes on (the seed must not block on a full pipe) but keeps nothing.
    let keep = |buf: &mut Vec<u8>, too_long: &mut bool, bytes: &[u8]| {
        if buf.len() + bytes.len() > MAX_OUTPUT {
            *too_long = true;
        } else {
            buf.extend_from_slice(bytes);
        }
    };
    // A poll the kernel cannot serve right now (ENOMEM) is tried again for a while: giving up
    // closes the pipe, and the seed dies of SIGPIPE or its output is lost.
    let mut tries_left = 100;
    loop {
        let mut fds = [
            PollFd::new(file.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(nix::Error::ENOMEM | nix::Error::EAGAIN) if tries_left > 0 => {
                tries_left -= 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            Err(_) => break,
        }
        let stopped = fds[1].any().unwrap_or(true);
        if fds[0].any().unwrap_or(false) {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => keep(&mut buf, &mut too_long, &chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        } else if stopped {
            // The seed is gone: the pipe now holds all it wrote, and a daemon may still hold
            // the write end, so take what is there without waiting for EOF.
            let _ = fcntl(&file, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
            while let Ok(n @ 1..) = file.read(&mut chunk) {
                keep(&mut buf, &mut too_long, &chunk[..n]);
                if too_long {
                    break;
                }
            }
            break;
        }
    }
    if too_long {
        Err(Malformed::TooLong)
    } else {
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(out: &str) -> Vec<(String, String)> {
        parse(out.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
            .collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn docker_env_file_rules() {
        let out = "\u{feff}A=1\n\n# comment\n   # indented comment\n  B=two words \nC=\"quoted\"\r\nD=\nE==x=y\nA=again";
        assert_eq!(
            vars(out),
            [
                pair("A", "1"),
                pair("B", "two words "),
                pair("C", "\"quoted\""),
                pair("D", ""),
                pair("E", "=x=y"),
                pair("A", "again"),
            ]
        );
        assert!(vars("").is_empty());
        assert!(vars("\n\n \t\n").is_empty());
    }

    #[test]
    fn malformed_lines_give_their_number_only() {
        let cases = [
            ("A=1\nhunter2\n", 2, "not KEY=VALUE"),
            ("export SECRET=hunter2", 1, "the name"),
            ("A=1\n\nKEY =hunter2", 3, "the name"),
            ("=hunter2", 1, "no name"),
            ("A=hun\0ter2", 1, "NUL"),
        ];
        for (out, line, why) in cases {
            match parse(out.as_bytes()) {
                Err(Malformed::Line { n, why: got }) => {
                    assert_eq!(n, line, "{out:?}");
                    assert!(got.contains(why), "{out:?}: {got}");
                    let fields = serde_json::json!(
                        Malformed::Line { n, why: got }
                            .fields()
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<serde_json::Map<_, _>>()
                    );
                    assert!(!fields.to_string().contains("hunter2"));
                }
                other => panic!("{out:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn non_utf8_values_pass_unchanged() {
        let got = parse(b"K=\xff\xfe\n").unwrap();
        assert_eq!(got[0].1, OsString::from_vec(vec![0xff, 0xfe]));
    }

    #[test]
    fn reader_takes_what_is_left_once_told_the_seed_is_gone() {
        use std::process::{Command, Stdio};
        // The shell prints, then a background sleep keeps the pipe open after it exits.
        let mut child = Command::new("sh")
            .args(["-c", "echo A=1; sleep 5 & echo B=2"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let reader = Reader::start(OwnedFd::from(child.stdout.take().unwrap())).unwrap();
        assert!(child.wait().unwrap().success());
        let t0 = std::time::Instant::now();
        let out = reader.finish().unwrap();
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(out, b"A=1\nB=2\n");
    }

    #[test]
    fn reader_bounds_the_output() {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .args(["-c", "head -c 1100000 /dev/zero"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let reader = Reader::start(OwnedFd::from(child.stdout.take().unwrap())).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(reader.finish(), Err(Malformed::TooLong));
    }
}
