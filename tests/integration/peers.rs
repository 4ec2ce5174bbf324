//! The harness for the peers' own suites (`tini_suite.rs`, `dumb_init_suite.rs`): each upstream
//! case, rewritten with `sh` fixtures, runs against one binary per peer:
//!
//! - by default vigil itself under the peer's name (a symlink `tini`, `docker-init` or
//!   `dumb-init` to the binary under test, in cargo's scratch directory);
//! - with `PEER_TINI=/usr/bin/tini` (or `tini-static`) and `PEER_DUMB_INIT=/usr/bin/dumb-init`,
//!   the real init, to show each test checks what the peer itself does:
//!
//!       PEER_TINI=/usr/bin/tini PEER_DUMB_INIT=/usr/bin/dumb-init \
//!           cargo test --test integration -- tini_suite:: dumb_init_suite::
//!
//! The tests look only at what both can show: exit statuses, the fixtures' output, `/proc`;
//! never at vigil's log lines, whose wording differs from the peers' (a case that checks only
//! wording is left out, as the suites' modules list).

use crate::util::{self, Builder, CEILING, ProcRef, poll_until, stat, status_hex};
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;

/// The init a test runs, by the name it is installed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Tini,
    /// tini as Docker installs it for `docker run --init`.
    DockerInit,
    DumbInit,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Tini => "tini",
            Peer::DockerInit => "docker-init",
            Peer::DumbInit => "dumb-init",
        }
    }

    fn override_var(self) -> &'static str {
        match self {
            Peer::Tini | Peer::DockerInit => "PEER_TINI",
            Peer::DumbInit => "PEER_DUMB_INIT",
        }
    }

    /// The binary under test: the real init when its `PEER_*` variable names one, else vigil
    /// linked under the peer's name.
    pub fn bin(self) -> String {
        if let Some(real) = std::env::var_os(self.override_var()).filter(|v| !v.is_empty()) {
            return real.to_string_lossy().into_owned();
        }
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("peers-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("peers dir");
            for peer in [Peer::Tini, Peer::DockerInit, Peer::DumbInit] {
                let link = dir.join(peer.name());
                let _ = std::fs::remove_file(&link);
                symlink(util::vigil_bin(), &link).expect("symlink vigil under a peer's name");
            }
            dir
        });
        dir.join(self.name()).to_string_lossy().into_owned()
    }

    /// Whether the real init runs, not vigil.
    pub fn is_real(self) -> bool {
        std::env::var_os(self.override_var()).is_some_and(|v| !v.is_empty())
    }

    /// A builder for the peer with `args`, the peers' variables cleared (as dumb-init's
    /// `clean_environment` fixture does).
    pub fn builder<S: AsRef<str>>(self, args: &[S]) -> Builder {
        let mut b = util::vigil(args).program(&self.bin());
        for var in PEER_VARS {
            b = b.env_remove(var);
        }
        b
    }

    /// Runs the peer to completion outside any namespace (a plain child of the test, as the
    /// peers' suites run them), with `env` and `stdin`: its output, or a failure after the
    /// ceiling.
    pub fn run(self, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
        output(self.command(args, env), stdin)
    }

    /// The peer with `args` and only `env` of the peers' variables (no `VIGIL_*` either).
    pub fn command(self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(self.bin());
        cmd.args(args);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("VIGIL_") || PEER_VARS.contains(&k.as_ref()) {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(env.iter().copied());
        cmd
    }
}

/// The variables the peers read; no test inherits them from its runner.
const PEER_VARS: [&str; 6] = [
    "TINI_SUBREAPER",
    "TINI_VERBOSITY",
    "TINI_KILL_PROCESS_GROUP",
    "DUMB_INIT_SETSID",
    "DUMB_INIT_DEBUG",
    "POSIXLY_CORRECT",
];

/// Runs `cmd` with `stdin` written to it, killing it (by pid) after the ceiling.
pub fn output(mut cmd: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the peer");
    let pid = child.id();
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done.send(());
        out
    });
    if finished.recv_timeout(CEILING).is_err() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = waiter.join();
        panic!("{cmd:?} still ran after {CEILING:?}");
    }
    waiter.join().expect("waiter").expect("wait for the peer")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An idle loop that a trapped signal interrupts at once.
pub const LOOP: &str = util::LOOP;

/// dumb-init's `print_signals` as `sh`: traps every signal from 1 to 31 but KILL, STOP and
/// CHLD, prints each one's number as it comes, and `ready` once all are set. No core files
/// from its loop's `sleep` when a signal kills that.
pub fn number_printer() -> String {
    let mut s = String::from("ulimit -c 0; ");
    for n in (1..32).filter(|n| ![9, 17, 19].contains(n)) {
        s.push_str(&format!("trap \"echo {n}\" {n}; "));
    }
    s.push_str("echo ready; ");
    s.push_str(LOOP);
    s
}

/// The printer's lines (`ready` and signal numbers) in the app's output, read in order: each
/// `expect` waits for the next one. Other lines (a terminal's echo, an init's own lines when
/// they share the terminal) are passed over.
pub struct Lines {
    seen: usize,
}

fn printed(v: &util::Vigil) -> Vec<String> {
    v.stdout()
        .into_iter()
        .filter(|l| l == "ready" || (!l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())))
        .collect()
}

impl Lines {
    /// From the line after `ready`, which it waits for.
    pub fn after_ready(v: &util::Vigil) -> Lines {
        v.wait_for_line("ready", CEILING);
        let seen = printed(v).iter().position(|l| l == "ready").expect("ready") + 1;
        Lines { seen }
    }

    /// Waits for the next line and checks it is `want`.
    pub fn expect(&mut self, v: &util::Vigil, want: i32) {
        let mut got = None;
        poll_until(CEILING, || {
            got = printed(v).get(self.seen).cloned();
            got.is_some()
        });
        assert_eq!(
            got,
            Some(want.to_string()),
            "printed line {} of the app\n{}",
            self.seen,
            v.dump()
        );
        self.seen += 1;
    }

    /// No line beyond those expected so far.
    pub fn none_more(&self, v: &util::Vigil) {
        let out = printed(v);
        assert!(
            out.len() <= self.seen,
            "unexpected lines {:?}\n{}",
            &out[self.seen..],
            v.dump()
        );
    }
}

/// Waits for a descendant of `of` running `comm` (not a zombie).
pub fn wait_descendant(of: i32, comm: &str) -> ProcRef {
    let mut found = None;
    util::wait_until(&format!("a {comm} below pid {of}"), CEILING, || {
        found = util::descendants(of)
            .into_iter()
            .filter_map(ProcRef::of)
            .find(|p| p.alive() && p.stat().comm == comm);
        found.is_some()
    });
    found.expect("found")
}

/// Whether `sig` is pending for `pid` (thread or process), or `pid` is gone or a zombie: the
/// signal has reached it. `sig` from 1 to 64.
pub fn hit_by(p: ProcRef, sig: i32) -> bool {
    if !p.alive() {
        return true;
    }
    let bit = 1u64 << (sig - 1);
    let pending = status_hex(p.pid, "SigPnd") | status_hex(p.pid, "ShdPnd");
    pending & bit != 0
}

/// Waits until `p` has done with the signals it was sent: stopped (dumb-init stops itself
/// after passing on a job-control signal), or asleep with nothing pending. Lets a test send the
/// next signal only once the previous one was handled, whoever `p` is.
pub fn settle(p: ProcRef) {
    let settled = || match stat(p.pid) {
        Some(s) if s.state == 'T' => true,
        Some(s) if s.state == 'S' => {
            status_hex(p.pid, "SigPnd") == 0 && status_hex(p.pid, "ShdPnd") == 0
        }
        _ => false,
    };
    util::wait_until(&format!("pid {} settles", p.pid), CEILING, settled);
}

/// Waits until `p` is in `state` (`T` stopped; `S` or `R` running).
pub fn wait_state(p: ProcRef, states: &[char]) {
    util::wait_until(
        &format!("pid {} in state {states:?}", p.pid),
        CEILING,
        || stat(p.pid).is_some_and(|s| states.contains(&s.state)),
    );
}

/// Sends `sig` to `p` by pid.
pub fn send(p: ProcRef, sig: i32) {
    let sig = nix::sys::signal::Signal::try_from(sig).expect("a signal from 1 to 31");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), sig).expect("kill");
}

/// Whether one of `lines` has `n` as a whole number.
pub fn mentions_number(lines: &[String], n: i32) -> bool {
    let n = n.to_string();
    lines.iter().any(|l| {
        l.match_indices(&n).any(|(at, _)| {
            let before = l[..at].chars().next_back();
            let after = l[at + n.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit())
                && !after.is_some_and(|c| c.is_ascii_digit())
        })
    })
}
