//! The harness: starts vigil as PID 1 of a fresh pid namespace or as a subreaper, captures its
//! stdout and stderr line by line, reads facts from `/proc`, and kills the whole tree on drop.
//!
//! Subreaper mode also runs inside a pid namespace whenever it can, under a holder shell that is
//! the namespace's PID 1 and starts vigil as its child. Two reasons: a vigil that wrongly used
//! `kill(-1, SIGKILL)` as a subreaper then only hits the namespace, never the test runner; and the
//! holder keeps the namespace (with any leftover process) alive after vigil exits until the test
//! has looked, because the death of a namespace's PID 1 kills everything in it.
//!
//! Every wait has a ceiling and polls every 10 ms (dumb-init's `sleep_until`); no test sleeps to
//! synchronize. Processes are only ever killed by pid, never by name.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::cell::OnceCell;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The hard ceiling for any single wait: a hang fails the test instead of blocking CI.
pub const CEILING: Duration = Duration::from_secs(10);

/// Added to upper bounds only: the test's own polling and scheduling on a shared 2-core machine.
/// Lower bounds are exact (the test takes its clock before it sends a signal).
pub const SLACK: Duration = Duration::from_millis(150);

const TICK: Duration = Duration::from_millis(10);
const FAST_TICK: Duration = Duration::from_millis(5);

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The binary under test: the one cargo built, or `TEST_BIN` (a release binary such as
/// `dist/vigil-linux-arm64`). Not a `VIGIL_*` name: vigil warns on those it does not know.
pub fn vigil_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var("TEST_BIN") {
        Ok(bin) if !bin.is_empty() => std::fs::canonicalize(&bin)
            .unwrap_or_else(|e| panic!("TEST_BIN={bin}: {e}"))
            .to_string_lossy()
            .into_owned(),
        _ => env!("CARGO_BIN_EXE_vigil").to_string(),
    })
}

/// What runs the binary under test: `TEST_BIN_RUNNER` split at spaces (`qemu-aarch64-static`
/// for an arm64 `TEST_BIN`), or nothing. vigil's own process then has the runner's name.
pub fn runner() -> &'static [String] {
    static RUNNER: OnceLock<Vec<String>> = OnceLock::new();
    RUNNER.get_or_init(|| {
        std::env::var("TEST_BIN_RUNNER")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect()
    })
}

/// A `Command` that runs the binary under test (under the runner, if any).
pub fn vigil_command() -> Command {
    match runner().split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(vigil_bin());
            cmd
        }
        None => Command::new(vigil_bin()),
    }
}

fn test_name() -> String {
    thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_string()
}

/// True when the test can go on. Otherwise prints `SKIP <test>: <reason>` and returns false, or
/// fails the test when `REQUIRE_ALL_TESTS=1` (CI must not skip silently).
pub fn require(cond: bool, reason: &str) -> bool {
    if cond {
        return true;
    }
    if std::env::var("REQUIRE_ALL_TESTS").as_deref() == Ok("1") {
        panic!(
            "{}: cannot run ({reason}) and REQUIRE_ALL_TESTS=1",
            test_name()
        );
    }
    eprintln!("SKIP {}: {reason}", test_name());
    false
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether `unshare --pid --fork --mount-proc` works here (root, no seccomp in the way).
pub fn can_unshare() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        is_root()
            && Command::new("unshare")
                .args(["--pid", "--fork", "--mount-proc", "--kill-child", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// vigil is PID 1 of a new pid namespace.
    Pid1,
    /// vigil is a child subreaper (not PID 1).
    Subreaper,
}

impl Mode {
    /// The `mode` field of vigil's "vigil starting" line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pid1 => "pid1",
            Mode::Subreaper => "subreaper",
        }
    }
}

/// Whether this machine can run `mode`; prints the skip (or fails, see [`require`]) if not.
pub fn mode_supported(mode: Mode) -> bool {
    match mode {
        Mode::Pid1 => require(
            can_unshare(),
            "running vigil as PID 1 needs root and `unshare --pid --fork --mount-proc`",
        ),
        Mode::Subreaper => true,
    }
}

/// Skips (see [`require`]) unless the test runs as root.
pub fn require_root() -> bool {
    require(
        is_root() && can_unshare(),
        "needs root (and unshare) to switch users",
    )
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `cond` every 10 ms until it holds (true) or `ceiling` passes (false).
pub fn poll_until(ceiling: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + ceiling;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(TICK);
    }
}

/// Like [`poll_until`], but a timeout fails the test, naming `what` it was waiting for.
pub fn wait_until(what: &str, ceiling: Duration, cond: impl FnMut() -> bool) {
    if !poll_until(ceiling, cond) {
        panic!("timed out after {ceiling:?} waiting until {what}");
    }
}

/// Blocks until `at`. Only for timing a test step (send the second signal 0.7 s after the
/// first), never to wait for something to happen.
pub fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        thread::sleep(at - now);
    }
}

/// Seconds since the epoch, as `date +%s.%N` prints them.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The `Instant` at which the wall clock read `wall` (a `date +%s.%N` a fixture printed).
pub fn instant_of_wall(wall: f64) -> Instant {
    let (now, now_wall) = (Instant::now(), wall_now());
    let back = now_wall - wall;
    if back >= 0.0 {
        now - secs(back)
    } else {
        now + secs(-back)
    }
}

/// Seconds since the epoch of `2026-11-22T00:08:50.815Z`.
pub fn rfc3339_secs(ts: &str) -> f64 {
    let num = |a: usize, b: usize| -> i64 { ts[a..b].parse().expect("a number in ts") };
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (hh, mm) = (num(11, 13), num(14, 16));
    let ss: f64 = ts[17..ts.len() - 1].parse().expect("seconds in ts");
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + hh * 3600 + mm * 60) as f64 + ss
}

// ---------------------------------------------------------------------------------------------
// /proc

/// The fields of `/proc/<pid>/stat` the tests use.
#[derive(Clone, Debug)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub tpgid: i32,
    pub start: u64,
}

pub fn stat(pid: i32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: it ends at the last ')'.
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let f: Vec<&str> = s.get(close + 1..)?.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
    Some(Stat {
        pid,
        comm: s.get(open + 1..close)?.to_string(),
        state: f.first()?.chars().next()?,
        ppid: num(1)? as i32,
        pgrp: num(2)? as i32,
        tpgid: num(5)? as i32,
        start: num(19)? as u64,
    })
}

fn all_stats() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// Every process below `pid` (children, grandchildren, ...), parents before children, zombies
/// included. Not `pid` itself.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut kids: HashMap<i32, Vec<i32>> = HashMap::new();
    for s in all_stats() {
        kids.entry(s.ppid).or_default().push(s.pid);
    }
    let mut out = Vec::new();
    let mut queue = VecDeque::from([pid]);
    while let Some(p) = queue.pop_front() {
        for &c in kids.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if c != pid && !out.contains(&c) {
                out.push(c);
                queue.push_back(c);
            }
        }
    }
    out
}

/// The zombies (state Z) among `pids`.
pub fn zombies(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|&p| stat(p).is_some_and(|s| s.state == 'Z'))
        .collect()
}

/// One line of `/proc/<pid>/status`, value trimmed: `status_field(pid, "Uid")`.
pub fn status_field(pid: i32, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    })
}

/// A numeric list field (`Uid`, `Gid`, `Groups`, `NSpid`) of `/proc/<pid>/status`.
pub fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    let v = status_field(pid, key).unwrap_or_else(|| panic!("no {key} for pid {pid}"));
    v.split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect()
}

/// A hex mask field (`SigBlk`, `SigIgn`, `CapEff`) of `/proc/<pid>/status`.
pub fn status_hex(pid: i32, key: &str) -> u64 {
    let v = status_field(pid, key).unwrap_or_else(|| panic!("no {key} for pid {pid}"));
    u64::from_str_radix(&v, 16).expect("a hex mask")
}

/// The pid of `pid` inside its innermost pid namespace (the last `NSpid` field).
pub fn ns_pid_of(pid: i32) -> Option<i32> {
    status_field(pid, "NSpid")?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// Voluntary plus involuntary context switches of every thread of `pid`.
pub fn context_switches(pid: i32) -> u64 {
    let mut total = 0;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("vigil's task dir");
    for task in tasks.flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().expect("a count");
            }
        }
    }
    total
}

/// The open file descriptor numbers of `pid`.
pub fn fds(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// A process identified by pid and start time, so a reused pid is never mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcRef {
    pub pid: i32,
    start: u64,
}

impl ProcRef {
    pub fn of(pid: i32) -> Option<ProcRef> {
        stat(pid).map(|s| ProcRef {
            pid,
            start: s.start,
        })
    }

    /// Running (not a zombie, not gone).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && !matches!(s.state, 'Z' | 'X'))
    }

    pub fn stat(&self) -> Stat {
        stat(self.pid).unwrap_or_else(|| panic!("pid {} is gone", self.pid))
    }

    /// Waits until the process runs `comm` (it has exec'd), so its fds and ids are its own.
    pub fn wait_exec(&self, comm: &str) {
        wait_until(
            &format!("pid {} has exec'd {comm}", self.pid),
            CEILING,
            || self.stat().comm == comm,
        );
    }
}

/// Waits for a running exec probe `comm` below vigil (`me`): a process other than the app that
/// leads its own group (vigil starts each probe in a group of its own). Its pid.
pub fn wait_exec_probe(me: i32, app: i32, comm: &str) -> i32 {
    let mut probe = None;
    wait_until(&format!("an exec probe {comm} runs"), CEILING, || {
        probe = descendants(me)
            .into_iter()
            .find(|&p| p != app && stat(p).is_some_and(|s| s.comm == comm && s.pgrp == p));
        probe.is_some()
    });
    probe.expect("found")
}

/// Every flag of the contract's table (`vigil --help` must list them; a deployment sets none).
pub const FLAGS: [&str; 19] = [
    "--user",
    "--allow-setuid",
    "--drain-timeout",
    "--drain-delay",
    "--health-listen",
    "--probe-tcp",
    "--probe-http",
    "--probe-exec",
    "--probe-interval",
    "--probe-timeout",
    "--probe-failures",
    "--log-format",
    "--log-level",
    "--startup-grace",
    "--stop-signal",
    "--drain-signals",
    "--rewrite",
    "--single-child",
    "--success-exit",
];

/// When each process was last seen alive and first seen dead, polled every 5 ms.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub last_alive: Option<Instant>,
    pub first_dead: Option<Instant>,
}

/// Polls `procs` until `done()` (or the ceiling), recording when each one died.
pub fn watch(procs: &[ProcRef], ceiling: Duration, mut done: impl FnMut() -> bool) -> Vec<Watch> {
    let mut seen = vec![
        Watch {
            last_alive: None,
            first_dead: None,
        };
        procs.len()
    ];
    let end = Instant::now() + ceiling;
    let look = |seen: &mut Vec<Watch>| {
        for (p, w) in procs.iter().zip(seen.iter_mut()) {
            let now = Instant::now();
            if w.first_dead.is_none() {
                if p.alive() {
                    w.last_alive = Some(now);
                } else {
                    w.first_dead = Some(now);
                }
            }
        }
    };
    loop {
        look(&mut seen);
        if done() || Instant::now() >= end {
            // One more look: what `done` waited for may have happened right after the last one
            // (vigil kills the processes, then exits, between the two checks).
            look(&mut seen);
            return seen;
        }
        thread::sleep(FAST_TICK);
    }
}

// ---------------------------------------------------------------------------------------------
// Scratch directories

/// A temporary directory, world-writable (a fixture running as nobody may write markers), removed
/// on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vigil-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `path(name)` as a string for a shell fixture (scratch paths hold no spaces or quotes).
    pub fn p(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port on 127.0.0.1 that refuses connections for as long as the returned socket lives: it is
/// bound but not listening, so no other test can listen on it and no connect can be given it as
/// its own source port (which on loopback would connect to itself).
pub fn closed_port() -> (std::os::fd::OwnedFd, u16) {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .expect("bind 127.0.0.1:0");
    let addr: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).expect("getsockname");
    (fd, addr.port())
}

/// For `--health-listen`: port 0, so the kernel picks a free port at vigil's own bind and no
/// other process can take it in between; read it back with [`Vigil::health_port`].
pub const ANY_PORT: &str = "127.0.0.1:0";

/// The `socket:[inode]` targets among `pid`'s file descriptors.
pub fn socket_fds(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|t| t.starts_with("socket:["))
                .collect()
        })
        .unwrap_or_default()
}

/// The listening TCP sockets in `net`/tcp and `net`/tcp6 (`/proc/net` or `/proc/PID/net`): each
/// port with its `socket:[inode]`.
pub fn tcp_listeners(net: &str) -> Vec<(u16, String)> {
    ["tcp", "tcp6"]
        .iter()
        .flat_map(|table| {
            let text = std::fs::read_to_string(format!("{net}/{table}")).unwrap_or_default();
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
                    let port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
                    (*state == "0A").then(|| (port, format!("socket:[{inode}]")))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The port of a TCP socket `pid` listens on (whatever vigil logs, even with its output closed).
pub fn listening_port(pid: i32) -> Option<u16> {
    let mine = socket_fds(pid);
    tcp_listeners(&format!("/proc/{pid}/net"))
        .into_iter()
        .find(|(_, socket)| mine.contains(socket))
        .map(|(port, _)| port)
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Names of the signals a printer traps, without `SIG`.
pub const PRINTED: [&str; 9] = [
    "HUP", "INT", "QUIT", "USR1", "USR2", "WINCH", "CONT", "PWR", "TERM",
];

/// A signal printer (dumb-init's `print_signals`): traps every signal in [`PRINTED`] and prints
/// `<tag> <NAME>` for each; those in `exit_on` also make it exit 0. Prints `<tag> ready` once
/// every trap is set. Uses only double quotes, so it nests inside `sh -c '...'`.
pub fn printer(tag: &str, exit_on: &[&str]) -> String {
    let mut s = String::new();
    for name in PRINTED {
        let exit = if exit_on.contains(&name) {
            "; exit 0"
        } else {
            ""
        };
        s.push_str(&format!("trap \"echo {tag} {name}{exit}\" {name}; "));
    }
    s.push_str(&format!("echo {tag} ready; {}", LOOP));
    s
}

/// An idle loop that a trapped signal interrupts at once (`wait` returns on a trapped signal).
pub const LOOP: &str = "while :; do sleep 1 & wait $!; done";

/// A TERM-ignorer (pid1-rs's `sigterm_loop`): prints `ready` with TERM ignored.
pub fn term_ignorer() -> String {
    format!("trap '' TERM; echo ready; {LOOP}")
}

// ---------------------------------------------------------------------------------------------
// Running vigil

type Lines = Arc<Mutex<Vec<String>>>;

/// Reads `r` line by line into the returned list; with a `gate`, only once it is opened (a
/// message, or its sender dropped), so until then whoever writes to `r` finds the pipe full.
fn capture(r: impl Read + Send + 'static, gate: Option<std::sync::mpsc::Receiver<()>>) -> Lines {
    let lines: Lines = Arc::default();
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        if let Some(gate) = gate {
            let _ = gate.recv();
        }
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    sink.lock().expect("lines").push(line);
                }
            }
        }
    });
    lines
}

/// How to start vigil; see [`vigil`].
pub struct Builder {
    program: String,
    /// Goes before `program`: [`runner`] for the vigil under test, nothing for another program.
    runner: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    unset: Vec<String>,
    prefix: Vec<String>,
    setup: String,
    tty: bool,
    stall_stderr: bool,
    net: bool,
    scratch: Option<Scratch>,
}

/// vigil with these arguments, every `VIGIL_*` variable of the test's own environment removed.
pub fn vigil<S: AsRef<str>>(args: &[S]) -> Builder {
    Builder {
        program: vigil_bin().to_string(),
        runner: runner().to_vec(),
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        env: Vec::new(),
        unset: Vec::new(),
        prefix: Vec::new(),
        setup: String::new(),
        tty: false,
        stall_stderr: false,
        net: false,
        scratch: None,
    }
}

impl Builder {
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Removes `key` from the environment vigil gets, should the test's runner have it.
    pub fn env_remove(mut self, key: &str) -> Builder {
        self.unset.push(key.to_string());
        self
    }

    /// Runs `program` in vigil's place (for negative controls).
    pub fn program(mut self, program: &str) -> Builder {
        if program != vigil_bin() {
            self.runner.clear();
        }
        self.program = program.to_string();
        self
    }

    /// Starts vigil itself as uid/gid 65534 with no supplementary groups (util-linux setpriv).
    pub fn started_as_nobody(mut self) -> Builder {
        self.prefix = [
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
        ]
        .map(String::from)
        .to_vec();
        self
    }

    /// Runs vigil under this command: `setpriv ...` execs it in its place, `strace ...` makes
    /// it a child (never PID 1).
    pub fn wrap(mut self, argv: &[&str]) -> Builder {
        self.prefix.extend(argv.iter().map(|a| a.to_string()));
        self
    }

    /// Shell code the namespace's PID 1 runs (as root) before it starts vigil: vigil inherits its
    /// file descriptors and signal dispositions.
    pub fn setup(mut self, sh: &str) -> Builder {
        self.setup.push_str(sh);
        self.setup.push('\n');
        self
    }

    /// Bind-mounts these as /etc/passwd and /etc/group inside vigil's mount namespace.
    pub fn etc(mut self, passwd: &str, group: &str) -> Builder {
        let s = self.scratch.get_or_insert_with(Scratch::new);
        std::fs::write(s.path("passwd"), passwd).expect("write passwd");
        std::fs::write(s.path("group"), group).expect("write group");
        let mount = format!(
            "mount --bind {} /etc/passwd && mount --bind {} /etc/group || exit 99",
            s.p("passwd"),
            s.p("group")
        );
        self.setup(&mount)
    }

    /// Runs everything under `script`, so vigil's stdin, stdout and stderr are a pty that is the
    /// controlling terminal. The test types with [`Vigil::keys`]; all output arrives on stdout.
    pub fn tty(mut self) -> Builder {
        self.tty = true;
        self
    }

    /// Nobody reads vigil's stderr (a log collector that stopped) until
    /// [`Vigil::release_stderr`]: once the pipe is full, every write to it would block.
    pub fn stall_stderr(mut self) -> Builder {
        self.stall_stderr = true;
        self
    }

    /// Gives the namespace a network namespace of its own with only loopback up, so servers can
    /// listen on fixed ports. Sockets reach it through `/proc/<vigil>/ns/net`.
    pub fn net(mut self) -> Builder {
        self.net = true;
        self
    }

    pub fn pid1(self) -> Vigil {
        self.start(Mode::Pid1)
    }

    pub fn subreaper(self) -> Vigil {
        self.start(Mode::Subreaper)
    }

    pub fn start(self, mode: Mode) -> Vigil {
        let ns = mode == Mode::Pid1 || can_unshare();
        assert!(
            ns || (self.setup.is_empty() && !self.tty && !self.net),
            "this test needs `unshare`"
        );
        let setup = if self.net {
            format!("ip link set lo up || exit 98\n{}", self.setup)
        } else {
            self.setup.clone()
        };
        let holder = mode == Mode::Subreaper && ns && !self.tty;
        let mut argv: Vec<String> = Vec::new();
        if ns {
            let script = match mode {
                Mode::Pid1 => format!("{setup}exec \"$@\""),
                // `"$@"; exit $?` rather than a bare `"$@"`, which dash might exec in place.
                Mode::Subreaper if self.tty => format!("{setup}\"$@\"; exit $?"),
                // After vigil exits the holder waits for the test to close its stdin.
                Mode::Subreaper => {
                    format!("{setup}\"$@\" </dev/null; s=$?; read _ || :; exit $s")
                }
            };
            argv.extend(
                ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"].map(String::from),
            );
            if self.net {
                argv.push("--net".into());
            }
            argv.extend(["sh".into(), "-c".into(), script, "vigil-ns".into()]);
        } else {
            eprintln!(
                "NOTE {}: no pid namespace here; vigil runs as a subreaper directly under the test",
                test_name()
            );
        }
        argv.extend(self.prefix.iter().cloned());
        argv.extend(self.runner.iter().cloned());
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());
        if self.tty {
            let line: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
            argv = vec![
                "script".into(),
                "-qec".into(),
                line.join(" "),
                "/dev/null".into(),
            ];
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("VIGIL_") {
                cmd.env_remove(key);
            }
        }
        for k in &self.unset {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if self.tty {
            cmd.env("SHELL", "/bin/sh");
        }
        cmd.stdin(if holder || self.tty {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut root = cmd.spawn().expect("spawn vigil");
        let out = capture(root.stdout.take().expect("stdout"), None);
        let (gate, opens) = std::sync::mpsc::channel();
        let stall = self.stall_stderr.then_some(opens);
        let err = capture(root.stderr.take().expect("stderr"), stall);
        let comm: String = Path::new(self.runner.first().unwrap_or(&self.program))
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(15).collect())
            .unwrap_or_default();
        Vigil {
            tty: self.tty,
            stdin: root.stdin.take(),
            root,
            comm,
            vigil: OnceCell::new(),
            out,
            err,
            gone_at: None,
            status: None,
            stderr_gate: Some(gate),
            _scratch: self.scratch,
        }
    }
}

/// How vigil ended.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub code: i32,
    /// When the test first saw vigil gone.
    pub at: Instant,
}

/// A running vigil and everything under it; dropping it kills the lot.
pub struct Vigil {
    tty: bool,
    root: Child,
    stdin: Option<ChildStdin>,
    comm: String,
    vigil: OnceCell<ProcRef>,
    out: Lines,
    err: Lines,
    gone_at: Option<Instant>,
    status: Option<i32>,
    /// Dropping it lets a stalled stderr be read (see [`Builder::stall_stderr`]).
    stderr_gate: Option<std::sync::mpsc::Sender<()>>,
    _scratch: Option<Scratch>,
}

impl Vigil {
    fn root_pid(&self) -> i32 {
        self.root.id() as i32
    }

    fn find(&self) -> Option<ProcRef> {
        let root = self.root_pid();
        std::iter::once(root)
            .chain(descendants(root))
            .filter_map(stat)
            .find(|s| s.comm == self.comm && s.state != 'Z')
            .and_then(|s| ProcRef::of(s.pid))
    }

    /// Starts reading a stderr stalled with [`Builder::stall_stderr`].
    pub fn release_stderr(&mut self) {
        self.stderr_gate = None;
    }

    /// vigil's own process (host pid), waiting until it has been exec'd.
    pub fn proc(&self) -> ProcRef {
        *self.vigil.get_or_init(|| {
            let mut found = None;
            let what = format!("vigil has started\n{}", self.dump());
            wait_until(&what, CEILING, || {
                found = self.find();
                found.is_some()
            });
            found.expect("found")
        })
    }

    /// vigil's own process if it has been exec'd, without waiting (remembered as by
    /// [`Vigil::proc`]).
    pub fn running(&self) -> Option<ProcRef> {
        if let Some(p) = self.vigil.get() {
            return Some(*p);
        }
        let p = self.find()?;
        Some(*self.vigil.get_or_init(|| p))
    }

    /// vigil's host pid.
    pub fn pid(&self) -> i32 {
        self.proc().pid
    }

    /// Sends `sig` to vigil; returns the instant taken just before sending.
    pub fn signal(&self, sig: Signal) -> Instant {
        let p = self.proc();
        assert!(p.alive(), "vigil is not running\n{}", self.dump());
        let t = Instant::now();
        kill(Pid::from_raw(p.pid), sig).expect("kill(vigil)");
        t
    }

    /// Whether the test's direct child (unshare, or vigil itself) has exited: vigil is gone and
    /// [`Vigil::wait_exit`] returns at once.
    pub fn has_exited(&mut self) -> bool {
        self.root.try_wait().ok().flatten().is_some()
    }

    /// Waits (up to `ceiling`) until vigil's process is gone, returning when the test saw that.
    pub fn wait_gone(&mut self, ceiling: Duration) -> Instant {
        if let Some(t) = self.gone_at {
            return t;
        }
        // vigil may already have exited before the test ever looked for it.
        if let Some(p) = self.vigil.get().copied().or_else(|| self.find())
            && !poll_until(ceiling, || !p.alive())
        {
            panic!("vigil still running after {ceiling:?}\n{}", self.dump());
        }
        let t = Instant::now();
        self.gone_at = Some(t);
        t
    }

    /// Waits for vigil to exit and returns its exit status (a death by signal fails the test).
    pub fn wait_exit(&mut self, ceiling: Duration) -> Exit {
        let end = Instant::now() + ceiling;
        let at = self.wait_gone(ceiling);
        self.stdin.take(); // lets the holder go
        if self.status.is_none() {
            loop {
                if let Some(st) = self.root.try_wait().expect("try_wait") {
                    match st.code() {
                        Some(c) => self.status = Some(c),
                        None => panic!("vigil died of a signal: {st:?}\n{}", self.dump()),
                    }
                    break;
                }
                if Instant::now() >= end {
                    panic!("vigil's holder did not exit\n{}", self.dump());
                }
                thread::sleep(FAST_TICK);
            }
            // Everything in the namespace is gone now: let the readers take the last lines.
            poll_until(secs(2.0), || {
                Arc::strong_count(&self.out) == 1 && Arc::strong_count(&self.err) == 1
            });
        }
        Exit {
            code: self.status.expect("status"),
            at,
        }
    }

    /// Every process below the test's direct child (unshare, script or vigil).
    pub fn tree(&self) -> Vec<i32> {
        descendants(self.root_pid())
    }

    /// Processes still running that vigil should have taken care of: everything in the tree but
    /// vigil and the namespace's holder. Meaningful between [`Vigil::wait_gone`] and
    /// [`Vigil::wait_exit`], while the holder keeps the namespace alive.
    pub fn survivors(&self) -> Vec<i32> {
        let me = self.vigil.get().map(|p| p.pid);
        self.tree()
            .into_iter()
            .filter(|&p| Some(p) != me && ProcRef::of(p).is_some_and(|r| r.alive()))
            .filter(|&p| ns_pid_of(p) != Some(1))
            .collect()
    }

    /// [`Vigil::survivors`] with their state, command and parent, for failure messages.
    pub fn describe(&self, pids: &[i32]) -> String {
        let mut out = String::new();
        for &p in pids {
            match stat(p) {
                Some(s) => out.push_str(&format!(
                    "\n  pid {p} ({}) state {} ppid {} pgrp {}",
                    s.comm, s.state, s.ppid, s.pgrp
                )),
                None => out.push_str(&format!("\n  pid {p} (gone)")),
            }
        }
        format!("{out}\n{}", self.dump())
    }

    /// The host pid of the process that is `ns_pid` inside vigil's namespace.
    pub fn host_pid(&self, ns_pid: i32) -> i32 {
        let mut found = None;
        let what = format!("namespace pid {ns_pid} shows up\n{}", self.dump());
        wait_until(&what, CEILING, || {
            found = std::iter::once(self.root_pid())
                .chain(self.tree())
                .find(|&p| ns_pid_of(p) == Some(ns_pid));
            found.is_some()
        });
        found.expect("found")
    }

    /// The app (host pid), from the pid in the "app spawned" log line.
    pub fn app(&self) -> ProcRef {
        let spawned = self.wait_for_log("app spawned", |_| true, CEILING);
        let ns = spawned["pid"].as_i64().expect("app spawned has a pid") as i32;
        ProcRef::of(self.host_pid(ns)).expect("the app is running")
    }

    /// The app's output lines so far (and, with `tty()`, vigil's too).
    pub fn stdout(&self) -> Vec<String> {
        self.out.lock().expect("lines").clone()
    }

    /// vigil's stderr lines so far.
    pub fn stderr(&self) -> Vec<String> {
        self.err.lock().expect("lines").clone()
    }

    /// vigil's log lines that are JSON objects (from stderr; with `tty()`, from stdout).
    pub fn logs(&self) -> Vec<Value> {
        let lines = if self.tty {
            self.stdout()
        } else {
            self.stderr()
        };
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// The log lines with this `msg`.
    pub fn logs_with(&self, msg: &str) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|v| v["msg"] == msg)
            .collect()
    }

    /// The port vigil's health listener is bound to (started with [`ANY_PORT`]).
    pub fn health_port(&self) -> u16 {
        let mut port = None;
        if !poll_until(CEILING, || {
            port = listening_port(self.pid());
            port.is_some()
        }) {
            panic!("vigil listens on no TCP port\n{}", self.dump());
        }
        port.expect("port")
    }

    /// Waits for a log line with this `msg` that satisfies `pred`.
    pub fn wait_for_log(
        &self,
        msg: &str,
        pred: impl Fn(&Value) -> bool,
        ceiling: Duration,
    ) -> Value {
        let mut found = None;
        if !poll_until(ceiling, || {
            found = self.logs_with(msg).into_iter().find(|v| pred(v));
            found.is_some()
        }) {
            panic!(
                "no log line {msg:?} (as wanted) after {ceiling:?}\n{}",
                self.dump()
            );
        }
        found.expect("found")
    }

    /// Waits for a stdout line that is exactly `line`.
    pub fn wait_for_line(&self, line: &str, ceiling: Duration) {
        if !poll_until(ceiling, || self.stdout().iter().any(|l| l == line)) {
            panic!("no stdout line {line:?} after {ceiling:?}\n{}", self.dump());
        }
    }

    /// Waits for a stdout line starting with `prefix` and returns the rest of it.
    pub fn wait_for_prefix(&self, prefix: &str, ceiling: Duration) -> String {
        let mut found = None;
        if !poll_until(ceiling, || {
            found = self
                .stdout()
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_string));
            found.is_some()
        }) {
            panic!(
                "no stdout line {prefix:?}... after {ceiling:?}\n{}",
                self.dump()
            );
        }
        found.expect("found")
    }

    /// Waits for `<prefix><namespace pid>` on stdout and returns that process.
    pub fn wait_for_pid_line(&self, prefix: &str) -> ProcRef {
        let ns: i32 = self
            .wait_for_prefix(prefix, CEILING)
            .trim()
            .parse()
            .expect("a pid after the prefix");
        ProcRef::of(self.host_pid(ns)).expect("process is running")
    }

    /// Types into the terminal (with `tty()`).
    pub fn keys(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("tty() gives a stdin");
        stdin.write_all(bytes).expect("type into the terminal");
        stdin.flush().expect("flush");
    }

    /// stdout and stderr so far, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "--- stdout:\n{}\n--- stderr:\n{}\n---",
            self.stdout().join("\n"),
            self.stderr().join("\n")
        )
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        if self.root.try_wait().ok().flatten().is_none() {
            // Kill everything under the root, by pid, until nothing is left running: as PID 1's
            // death tears a namespace down, this normally takes one round. Then the root itself.
            let root = self.root_pid();
            for _ in 0..200 {
                let left: Vec<i32> = descendants(root)
                    .into_iter()
                    .filter(|&p| stat(p).is_some_and(|s| s.state != 'Z'))
                    .collect();
                if left.is_empty() {
                    break;
                }
                for p in left {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
                thread::sleep(FAST_TICK);
            }
            let _ = self.root.kill();
        }
        self.stdin.take();
        let _ = self.root.wait();
    }
}

/// Runs vigil to completion with a `ceiling`: (exit code, stdout, stderr).
pub fn run(b: Builder, mode: Mode) -> (i32, Vec<String>, Vec<String>) {
    let mut v = b.start(mode);
    let code = v.wait_exit(CEILING).code;
    (code, v.stdout(), v.stderr())
}
