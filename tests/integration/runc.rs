//! Container end-to-end tests: the static release vigil as PID 1 of a real OCI container run by
//! runc, in a rootfs holding only /vigil, a static busybox and /etc/passwd + /etc/group (no libc):
//! the final-stage layout of Dockerfile.example.
//!
//! They need root and runc (CI installs `runc` and `busybox-static`); without them each test
//! prints `SKIP <name>: <reason>`, which is a failure under REQUIRE_ALL_TESTS=1. Containers
//! run in the foreground (`runc run`, stdio piped here), so runc's exit status is the container's;
//! the platform's SIGTERM is `runc kill ID TERM`. Every container is killed and deleted on every
//! path by `Container`'s `Drop`.

use serde_json::{Value, json};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const TARGET: &str = "x86_64-unknown-linux-musl";
/// Debian's busybox-static installs here; a dynamic busybox would need a libc in the rootfs.
const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &["sh", "sleep", "echo", "cat", "id", "true"];
/// How long a container may take to print its handshake on a loaded 2-core machine.
const START_CEILING: Duration = Duration::from_secs(15);
/// Ceiling for a runc subcommand (kill, state, exec, delete).
const RUNC_CEILING: Duration = Duration::from_secs(20);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The static build's own target dir: a second cargo on the test's target dir would wait for
/// the lock the running `cargo test` holds.
fn static_dir() -> PathBuf {
    repo().join("target/static")
}

/// Prints why a test does not run, or fails it when every test must run (CI).
fn skip(test: &str, reason: &str) {
    assert!(
        std::env::var_os("REQUIRE_ALL_TESTS").is_none_or(|v| v != "1"),
        "{test}: {reason} (REQUIRE_ALL_TESTS=1)"
    );
    eprintln!("SKIP {test}: {reason}");
}

/// The host's prerequisites for a container, or why a test cannot run.
macro_rules! host_or_skip {
    ($test:expr) => {
        match host() {
            Ok(host) => host,
            Err(reason) => return skip($test, reason),
        }
    };
}

// ---- processes and waiting ----

/// Polls `f` every 10 ms until it yields a value, or None after `ceiling`.
fn poll_until<T>(ceiling: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + ceiling;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `poll_until`, panicking with `what` after `ceiling`.
fn wait_until<T>(what: &str, ceiling: Duration, f: impl FnMut() -> Option<T>) -> T {
    poll_until(ceiling, f)
        .unwrap_or_else(|| panic!("timed out after {ceiling:?} waiting for {what}"))
}

/// Runs a command to completion with its output captured; Err if it cannot be started or
/// outlives `ceiling` (it is then killed). Never panics, so `Drop` can use it.
fn try_run(cmd: &mut Command, ceiling: Duration) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    // Read both pipes while waiting: cargo's warnings alone can fill a pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let Some(status) = wait_child(&mut child, ceiling) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{shown} did not finish within {ceiling:?}"));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

pub(crate) fn run(cmd: &mut Command, ceiling: Duration) -> Output {
    try_run(cmd, ceiling).unwrap_or_else(|e| panic!("{e}"))
}

fn wait_child(child: &mut Child, ceiling: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + ceiling;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < end => thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// An exit status as a shell reports it: the code, or 128 + the signal.
pub(crate) fn code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

// ---- /proc on the host ----

/// (state, ppid) from /proc/PID/stat, reading after the last ')' since comm may hold anything.
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = s[s.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

/// Exited: no longer in /proc, or a zombie waiting for its parent (runc) to reap it.
fn gone(pid: i32) -> bool {
    stat(pid).is_none_or(|(state, _)| state == 'Z' || state == 'X')
}

/// Every process below `root`, with its state.
fn descendants(root: i32) -> Vec<(i32, char)> {
    let all: Vec<(i32, char, i32)> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat(pid).map(|(state, ppid)| (pid, state, ppid)))
        .collect();
    let mut found: Vec<(i32, char)> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for &(pid, state, ppid) in &all {
            if ppid == parent && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, state));
                parents.push(pid);
            }
        }
    }
    found
}

/// A field of /proc/PID/status, e.g. "Uid" -> "65534\t65534\t65534\t65534".
fn status_field(pid: i32, key: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("/proc/{pid}/status has no {key}"))
        .trim()
        .to_string()
}

fn ids(pid: i32, key: &str) -> Vec<u32> {
    status_field(pid, key)
        .split_whitespace()
        .map(|n| n.parse().expect("numeric id"))
        .collect()
}

// ---- the static binary and the host ----

/// Builds the static release binary once per test process; Err is a reason to skip.
pub fn static_vigil() -> Result<&'static Path, &'static str> {
    static VIGIL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VIGIL
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = run(
                Command::new(cargo)
                    .args(["build", "--release", "--target", TARGET])
                    .current_dir(repo())
                    .env("CARGO_TARGET_DIR", static_dir()),
                Duration::from_secs(900),
            );
            let err = text(&out.stderr);
            if err.contains("target may not be installed") {
                return Err(format!(
                    "the {TARGET} target is not installed (rustup target add {TARGET})"
                ));
            }
            assert!(out.status.success(), "static release build failed:\n{err}");
            Ok(static_dir().join(TARGET).join("release/vigil"))
        })
        .as_deref()
        .map_err(String::as_str)
}

/// `readelf -l` of a binary: Err(reason) when readelf is missing.
fn has_interpreter(binary: &Path) -> Result<bool, &'static str> {
    if !on_path("readelf") {
        return Err("readelf is not installed (binutils)");
    }
    let out = run(Command::new("readelf").arg("-l").arg(binary), RUNC_CEILING);
    assert!(out.status.success(), "readelf -l {}", binary.display());
    let headers = text(&out.stdout);
    assert!(headers.contains("LOAD"), "no program headers:\n{headers}");
    Ok(headers.contains("INTERP"))
}

struct Host {
    vigil: &'static Path,
}

fn host() -> Result<&'static Host, &'static str> {
    static HOST: OnceLock<Result<Host, &'static str>> = OnceLock::new();
    HOST.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            return Err("not root: runc needs root for a container of its own");
        }
        if !on_path("runc") {
            return Err("runc is not installed");
        }
        let busybox = Path::new(BUSYBOX);
        if !busybox.exists() || has_interpreter(busybox)? {
            return Err("no static busybox at /bin/busybox (Debian: busybox-static)");
        }
        Ok(Host {
            vigil: static_vigil()?,
        })
    })
    .as_ref()
    .map_err(|e| *e)
}

// ---- containers ----

/// What to run: the process's args, env, user, and whether it shares the host's network.
struct Spec {
    args: Vec<String>,
    env: Vec<String>,
    user: (u32, u32),
    host_network: bool,
    /// Extra files in the rootfs, (path, contents); one starting with `#!` is made executable.
    files: Vec<(String, String)>,
    /// The rootfs mounted read-only (Kubernetes' `readOnlyRootFilesystem`).
    readonly: bool,
}

impl Spec {
    fn new(args: &[&str]) -> Spec {
        Spec {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            user: (0, 0),
            host_network: false,
            files: Vec::new(),
            readonly: false,
        }
    }

    /// `/vigil FLAGS -- sh -c SCRIPT`, the image's ENTRYPOINT plus the app.
    fn vigil(flags: &[&str], script: &str) -> Spec {
        let mut args = vec!["/vigil"];
        args.extend(flags.iter().copied());
        args.extend(["--", "sh", "-c", script]);
        Spec::new(&args)
    }
}

type Lines = Arc<Mutex<Vec<String>>>;

/// A running `runc run`. Dropping it kills the container, waits for runc, deletes the container
/// and removes the bundle.
struct Container {
    id: String,
    bundle: PathBuf,
    runc: Option<Child>,
    stdout: Lines,
    stderr: Lines,
    exit: Option<(i32, Instant)>,
}

impl Container {
    fn start(host: &Host, spec: Spec) -> Container {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "vigil-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let bundle = static_dir().join("bundles").join(&id);
        let mut container = Container {
            id,
            bundle,
            runc: None,
            stdout: Lines::default(),
            stderr: Lines::default(),
            exit: None,
        };
        let _ = fs::remove_dir_all(&container.bundle);
        make_rootfs(&container.bundle.join("rootfs"), host, &spec.files);
        write_config(&container.bundle, &spec);
        let mut child = Command::new("runc")
            .arg("run")
            .arg("--bundle")
            .arg(&container.bundle)
            .arg(&container.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runc run starts");
        collect(child.stdout.take(), &container.stdout);
        collect(child.stderr.take(), &container.stderr);
        container.runc = Some(child);
        container
    }

    fn stdout_has(&self, line: &str) -> bool {
        locked(&self.stdout).iter().any(|l| l == line)
    }

    /// Waits for the app's handshake line on stdout.
    fn wait_stdout(&self, line: &str) {
        wait_until(&format!("{line:?} on stdout"), START_CEILING, || {
            self.stdout_has(line).then_some(())
        });
    }

    /// vigil's JSON log lines so far.
    fn logs(&self) -> Vec<Value> {
        locked(&self.stderr)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.is_object())
            .collect()
    }

    fn log(&self, msg: &str) -> Option<Value> {
        self.logs().into_iter().find(|v| v["msg"] == msg)
    }

    fn wait_log(&self, msg: &str) -> Value {
        wait_until(&format!("log line {msg:?}"), START_CEILING, || {
            self.log(msg)
        })
    }

    /// vigil's pid on the host, from `runc state`.
    fn host_pid(&self) -> i32 {
        let out = run(Command::new("runc").args(["state", &self.id]), RUNC_CEILING);
        assert!(out.status.success(), "runc state: {}", text(&out.stderr));
        let state: Value = serde_json::from_slice(&out.stdout).expect("runc state prints JSON");
        let pid = state["pid"].as_i64().expect("runc state has a pid");
        i32::try_from(pid).expect("pid fits i32")
    }

    /// `runc kill ID SIG`: the platform's signal to the container's PID 1.
    fn kill(&self, signal: &str) {
        let out = run(
            Command::new("runc").args(["kill", &self.id, signal]),
            RUNC_CEILING,
        );
        assert!(out.status.success(), "runc kill: {}", text(&out.stderr));
    }

    /// `runc exec ID ARGS...` as the container's user, like Docker's HEALTHCHECK.
    fn exec(&self, args: &[&str]) -> Output {
        run(
            Command::new("runc").args(["exec", &self.id]).args(args),
            RUNC_CEILING,
        )
    }

    /// `runc run`'s exit status and when it was seen, polled every 10 ms; None while it runs.
    fn exited(&mut self) -> Option<(i32, Instant)> {
        if self.exit.is_none() {
            let child = self.runc.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.exit = Some((code(status), Instant::now()));
            }
        }
        self.exit
    }

    fn wait_exit(&mut self, ceiling: Duration) -> (i32, Instant) {
        wait_until("the container to exit", ceiling, || self.exited())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut child) = self.runc.take() {
            // Until runc run is gone, keep killing: the first kill can come before the
            // container exists.
            let end = Instant::now() + RUNC_CEILING;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
                let _ = try_run(
                    Command::new("runc").args(["kill", &self.id, "KILL"]),
                    RUNC_CEILING,
                );
                let _ = wait_child(&mut child, Duration::from_millis(500));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let _ = try_run(
            Command::new("runc").args(["delete", "--force", &self.id]),
            RUNC_CEILING,
        );
        let _ = fs::remove_dir_all(&self.bundle);
        if thread::panicking() {
            eprintln!("--- {} stdout ---", self.id);
            locked(&self.stdout).iter().for_each(|l| eprintln!("{l}"));
            eprintln!("--- {} stderr ---", self.id);
            locked(&self.stderr).iter().for_each(|l| eprintln!("{l}"));
        }
    }
}

fn locked(lines: &Lines) -> std::sync::MutexGuard<'_, Vec<String>> {
    lines.lock().unwrap_or_else(|e| e.into_inner())
}

fn collect(pipe: Option<impl Read + Send + 'static>, into: &Lines) {
    let into = Arc::clone(into);
    if let Some(pipe) = pipe {
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                locked(&into).push(line);
            }
        });
    }
}

/// The rootfs: /vigil, /bin/busybox and its applets, /etc/passwd, /etc/group, empty /proc,
/// /dev and /tmp, and nothing else: no libc, no loader.
fn make_rootfs(rootfs: &Path, host: &Host, files: &[(String, String)]) {
    for dir in ["bin", "etc", "proc", "dev", "tmp"] {
        fs::create_dir_all(rootfs.join(dir)).expect("rootfs dirs");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::copy(host.vigil, rootfs.join("vigil")).expect("copy vigil");
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in APPLETS {
        symlink("busybox", rootfs.join("bin").join(applet)).expect("applet symlink");
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .expect("passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
    for (path, contents) in files {
        let path = rootfs.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().expect("a file has a parent")).expect("file dir");
        fs::write(&path, contents).expect("rootfs file");
        if contents.starts_with("#!") {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
}

/// `runc spec`, edited: our process, Docker's default capability set (CAP_SETUID and CAP_SETGID
/// let `--user` work; nothing ambient), a writable root, and the host network when asked.
fn write_config(bundle: &Path, spec: &Spec) {
    let out = run(
        Command::new("runc").arg("spec").arg("--bundle").arg(bundle),
        RUNC_CEILING,
    );
    assert!(out.status.success(), "runc spec: {}", text(&out.stderr));
    let path = bundle.join("config.json");
    let mut config: Value =
        serde_json::from_str(&fs::read_to_string(&path).expect("config.json")).expect("JSON");
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    let mut env = vec!["PATH=/bin".to_string()];
    env.extend(spec.env.iter().cloned());
    let process = &mut config["process"];
    process["terminal"] = json!(false);
    process["args"] = json!(spec.args);
    process["env"] = json!(env);
    process["user"] = json!({"uid": spec.user.0, "gid": spec.user.1});
    process["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    config["root"]["readonly"] = json!(spec.readonly);
    config["hostname"] = json!("vigil-test");
    if spec.host_network {
        let namespaces = config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces");
        namespaces.retain(|ns| ns["type"] != "network");
    }
    fs::write(&path, serde_json::to_vec_pretty(&config).expect("JSON")).expect("config.json");
}

// ---- HTTP ----

/// `GET path` on 127.0.0.1:port: the status code and the JSON body.
fn http_get(port: u16, path: &str) -> Result<(u16, Value), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        response.extend_from_slice(&chunk[..n]);
        if n == 0 || complete(&response) {
            break;
        }
    }
    let response = text(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let body = serde_json::from_str(body).map_err(|e| format!("body {body:?}: {e}"))?;
    Ok((status, body))
}

/// The whole response is in, by Content-Length (without one, read to EOF).
fn complete(response: &[u8]) -> bool {
    let response = String::from_utf8_lossy(response);
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|len| body.len() >= len)
}

// ---- the cases ----

/// A static binary runs in an image without a loader; a dynamic one fails there with a
/// misleading "no such file or directory" (youki's runtimetest README).
#[test]
fn static_binary() {
    const NAME: &str = "runc::static_binary";
    let vigil = match static_vigil() {
        Ok(v) => v,
        Err(reason) => return skip(NAME, reason),
    };
    match has_interpreter(vigil) {
        Ok(interp) => assert!(!interp, "{} has an INTERP header", vigil.display()),
        Err(reason) => return skip(NAME, reason),
    }
    if on_path("file") {
        let out = run(Command::new("file").arg("-b").arg(vigil), RUNC_CEILING);
        let kind = text(&out.stdout);
        assert!(
            kind.contains("statically linked") || kind.contains("static-pie linked"),
            "file says: {kind}"
        );
    }
}

/// vigil is the container's PID 1, says so in its first log line, and passes the platform's
/// SIGTERM on (the app dies of it: 128 + 15).
#[test]
fn vigil_is_pid1() {
    let host = host_or_skip!("runc::vigil_is_pid1");
    let mut c = Container::start(host, Spec::vigil(&[], "echo ready; exec sleep 30"));
    c.wait_stdout("ready");
    let start = c.wait_log("vigil starting");
    assert_eq!(start["mode"], "pid1", "{start}");
    assert_eq!(start["pid"], 1, "{start}");
    let pid = c.host_pid();
    let nspid = status_field(pid, "NSpid");
    assert_eq!(nspid.split_whitespace().last(), Some("1"), "NSpid {nspid}");
    c.kill("TERM");
    let (status, _) = c.wait_exit(Duration::from_secs(5));
    assert_eq!(status, 143);
}

/// `--user nobody`: the app runs as 65534, and so does vigil, with no capability left.
#[test]
fn user_nobody_drops_app_and_vigil() {
    let host = host_or_skip!("runc::user_nobody_drops_app_and_vigil");
    let spec = Spec::vigil(&["--user", "nobody"], "id -u; echo ready; exec sleep 30");
    let mut c = Container::start(host, spec);
    c.wait_stdout("ready");
    assert!(c.stdout_has("65534"), "id -u in the app");
    let vigil = c.host_pid();
    let app = wait_until(
        "the app below vigil",
        START_CEILING,
        || match descendants(vigil).as_slice() {
            [(pid, _)] if fs::read_to_string(format!("/proc/{pid}/comm")).ok()? == "sleep\n" => {
                Some(*pid)
            }
            _ => None,
        },
    );
    for (who, pid) in [("app", app), ("vigil", vigil)] {
        assert_eq!(ids(pid, "Uid"), [65534; 4], "{who} Uid");
        assert_eq!(ids(pid, "Gid"), [65534; 4], "{who} Gid");
        assert!(!ids(pid, "Groups").contains(&0), "{who} in group 0");
        for caps in ["CapPrm", "CapEff"] {
            let set = status_field(pid, caps);
            assert!(set.chars().all(|c| c == '0'), "{who} {caps} {set}");
        }
    }
    let nspid = status_field(app, "NSpid");
    assert_ne!(
        nspid.split_whitespace().last(),
        Some("1"),
        "the app is not PID 1"
    );
    c.kill("TERM");
    assert_eq!(c.wait_exit(Duration::from_secs(5)).0, 143);
}

/// `runc kill ID TERM`: the app's TERM handler runs and its status (0) is the container's.
#[test]
fn term_drains_with_the_apps_status() {
    let host = host_or_skip!("runc::term_drains_with_the_apps_status");
    let script = "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    let mut c = Container::start(host, Spec::vigil(&["--drain-timeout", "5"], script));
    c.wait_stdout("ready");
    let t0 = Instant::now();
    c.kill("TERM");
    let (status, at) = c.wait_exit(Duration::from_secs(10));
    assert_eq!(status, 0);
    assert!(c.stdout_has("got TERM"));
    assert!(
        at - t0 < Duration::from_secs(5),
        "drained gracefully, not at the deadline"
    );
    assert!(c.log("forced kill").is_none(), "nothing was force-killed");
    let forwarded = c.log("signal forwarded").expect("signal forwarded");
    assert_eq!(forwarded["signal"], "SIGTERM", "{forwarded}");
}

/// A JVM-style app exits 143 after a clean SIGTERM; `--success-exit 143` reports 0.
#[test]
fn success_exit_maps_143_to_0() {
    let host = host_or_skip!("runc::success_exit_maps_143_to_0");
    let script = "trap 'exit 143' TERM; echo ready; while :; do sleep 0.1; done";
    let mut c = Container::start(host, Spec::vigil(&["--success-exit", "143"], script));
    c.wait_stdout("ready");
    c.kill("TERM");
    assert_eq!(c.wait_exit(Duration::from_secs(10)).0, 0);
    let exited = c.log("app exited").expect("app exited");
    assert_eq!(exited["status"], 143, "{exited}");
}

/// An app that ignores TERM is SIGKILLed at the drain timeout (1 s, set by env as an image
/// would): not before, and vigil is gone by 1.5 s.
#[test]
fn term_ignorer_is_killed_at_the_deadline() {
    let host = host_or_skip!("runc::term_ignorer_is_killed_at_the_deadline");
    let mut spec = Spec::vigil(&[], "trap '' TERM; echo ready; while :; do sleep 0.1; done");
    spec.env.push("VIGIL_DRAIN_TIMEOUT=1".into());
    let mut c = Container::start(host, spec);
    c.wait_stdout("ready");
    let vigil = c.host_pid();
    // The signal lands somewhere between `before` and `after`: each bound is measured from the
    // end that makes it a necessary consequence of the contract, whatever runc kill's latency.
    let before = Instant::now();
    c.kill("TERM");
    let after = Instant::now();
    let ceiling = Duration::from_secs(10);
    let vigil_gone = wait_until("vigil's host pid to exit", ceiling, || {
        gone(vigil).then(Instant::now)
    });
    let (status, runc_gone) = c.wait_exit(ceiling);
    assert!(
        vigil_gone - before >= Duration::from_secs(1),
        "vigil gave up {:?} after SIGTERM, before the 1 s drain timeout",
        vigil_gone - before
    );
    assert!(
        vigil_gone - after <= Duration::from_millis(1500),
        "vigil was gone {:?} after SIGTERM, later than drain timeout + 0.5 s",
        vigil_gone - after
    );
    // runc run still has to reap vigil, tear down the cgroups and namespaces and exit (a Go
    // binary): tens of ms when idle; 1 s covers a shared 2-core machine under a parallel suite.
    assert!(
        runc_gone - after <= Duration::from_millis(2500),
        "the container was gone {:?} after SIGTERM",
        runc_gone - after
    );
    assert_eq!(status, 128 + 9, "the app died of vigil's SIGKILL");
    assert!(
        c.log("forced kill").is_some(),
        "vigil logged the forced kill"
    );
}

/// With the host's network, `/readyz` answers 200 while the app runs and 503 as soon as the
/// platform's SIGTERM arrives, while the drain delay keeps the app running; `/livez` stays 200.
#[test]
fn readyz_fails_during_the_drain_delay() {
    let host = host_or_skip!("runc::readyz_fails_during_the_drain_delay");
    // Port 0: the kernel picks a free one at vigil's bind; vigil's log says which.
    let flags = [
        "--health-listen",
        "127.0.0.1:0",
        "--drain-delay",
        "3",
        "--drain-timeout",
        "5",
    ];
    let script = "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    let mut spec = Spec::vigil(&flags, script);
    spec.host_network = true;
    let mut c = Container::start(host, spec);
    c.wait_stdout("ready");
    let listening = c.wait_log("health listening");
    let port: u16 = listening["addr"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {listening}"));
    let ready = wait_until("/readyz 200", START_CEILING, || {
        http_get(port, "/readyz").ok().filter(|(s, _)| *s == 200)
    });
    assert_eq!(ready.1["status"], "ok", "{}", ready.1);
    assert_eq!(ready.1["phase"], "running", "{}", ready.1);

    let t0 = Instant::now();
    c.kill("TERM");
    // Long enough for `runc kill` (a Go binary starting up) and three requests on a loaded machine.
    let delay = Duration::from_secs(3);
    // Each answer is checked against the moment it was seen: before t0 + delay, the app has
    // not been signalled yet, whatever runc kill's latency.
    let (body, term_seen, at) = wait_until("/readyz 503 after SIGTERM", delay, || {
        let (_, body) = http_get(port, "/readyz").ok().filter(|(s, _)| *s == 503)?;
        Some((body, c.stdout_has("got TERM"), Instant::now()))
    });
    assert!(at - t0 < delay, "the 503 came {:?} after SIGTERM", at - t0);
    assert!(!term_seen, "the app got SIGTERM during the drain delay");
    assert_eq!(body["status"], "fail", "{body}");
    assert_eq!(body["phase"], "draining", "{body}");
    let live = http_get(port, "/livez").expect("/livez answers");
    assert!(t0.elapsed() < delay, "/livez asked within the drain delay");
    assert_eq!(live.0, 200, "liveness holds during the drain: {}", live.1);

    let (status, at) = c.wait_exit(Duration::from_secs(10));
    assert_eq!(status, 0);
    assert!(c.stdout_has("got TERM"));
    assert!(
        at - t0 >= delay,
        "the app got SIGTERM only after the drain delay"
    );
}

/// Dockerfile.example's final stage, run as it would be: its USER (no `--user`), ENV,
/// ENTRYPOINT and CMD, in a container with its own network; its HEALTHCHECK command
/// (`/vigil probe http://127.0.0.1:8086/healthz`) through `runc exec` exits 0.
#[test]
fn dockerfile_image_healthcheck_via_runc_exec() {
    let host = host_or_skip!("runc::dockerfile_image_healthcheck_via_runc_exec");
    let df = super::deploy::dockerfile();
    let args: Vec<&str> = df
        .entrypoint
        .iter()
        .chain(&df.cmd)
        .map(String::as_str)
        .collect();
    let mut spec = Spec::new(&args);
    let uid_gid: Vec<u32> = df
        .user
        .split(':')
        .map(|n| n.parse().expect("numeric USER"))
        .collect();
    spec.user = (uid_gid[0], *uid_gid.get(1).unwrap_or(&uid_gid[0]));
    spec.env = df.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    spec.files
        .push(("/www/index.html".into(), "hello from behind vigil\n".into()));
    let mut c = Container::start(host, spec);

    let start = c.wait_log("vigil starting");
    assert_eq!(start["mode"], "pid1", "{start}");
    assert_eq!(
        start["uid"],
        spec_uid(&df.user),
        "vigil runs as the image's USER"
    );
    c.wait_log("app spawned");

    let healthcheck: Vec<&str> = df.healthcheck.iter().map(String::as_str).collect();
    // The first app probe may still be pending; a healthy container answers well within this.
    let out = wait_until("the HEALTHCHECK to pass", Duration::from_secs(12), || {
        let out = c.exec(&healthcheck);
        out.status.success().then_some(out)
    });
    assert_eq!(out.status.code(), Some(0));
    let down = c.exec(&["/vigil", "probe", "http://127.0.0.1:1/healthz"]);
    assert_eq!(down.status.code(), Some(1), "nothing listens on port 1");
    let malformed = c.exec(&["/vigil", "probe", "not-a-target"]);
    assert_eq!(malformed.status.code(), Some(2), "a malformed target");

    c.kill("TERM");
    let (status, _) = c.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status, 0,
        "httpd dies of SIGTERM: 143, reported as 0 (VIGIL_SUCCESS_EXIT)"
    );
}

fn spec_uid(user: &str) -> u32 {
    user.split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("numeric uid")
}

/// Orphans re-parented to vigil are reaped. The negative control runs the same fixture with
/// `sleep` as PID 1 and sees the zombies pile up. The app outlives any wait here (each
/// container is ended by the test), so a slow `runc state` under load cannot find it gone.
#[test]
fn orphans_leave_no_zombies() {
    let host = host_or_skip!("runc::orphans_leave_no_zombies");
    let script = "for i in 1 2 3 4 5; do (sleep 0.1 &); done; echo ready; exec sleep 60";

    let control = Container::start(host, Spec::new(&["sh", "-c", script]));
    control.wait_stdout("ready");
    let init = control.host_pid();
    wait_until(
        "5 zombies under a PID 1 that never waits",
        START_CEILING,
        || {
            let zombies = descendants(init).iter().filter(|(_, s)| *s == 'Z').count();
            (zombies == 5).then_some(())
        },
    );
    drop(control);

    let mut c = Container::start(host, Spec::vigil(&[], script));
    c.wait_stdout("ready");
    let vigil = c.host_pid();
    // The five sleeps finish after 0.1 s; then only the app (`sleep 60`) is left, no zombie.
    let mut seen = Vec::new();
    let reaped = poll_until(Duration::from_secs(4), || {
        seen = descendants(vigil);
        matches!(seen.as_slice(), [(_, state)] if *state != 'Z').then_some(())
    });
    assert!(
        reaped.is_some(),
        "below vigil after 4 s (pid, state): {seen:?}"
    );
    c.kill("TERM");
    assert_eq!(c.wait_exit(Duration::from_secs(5)).0, 143);
}

// ---- vigil drill in a container ----

/// The drill's report: the last stdout line, as JSON.
fn drill_report(c: &Container) -> Value {
    let lines = locked(&c.stdout).clone();
    let last = lines.last().expect("the drill printed a report");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("report {last:?} is not JSON: {e}"))
}

/// `vigil drill` as the platform team would run it against an image: the container's entrypoint
/// is `/vigil drill`, the app traps TERM, runs as nobody and exits at once: `pass`, exit 0.
#[test]
fn drill_passes_a_clean_app() {
    let host = host_or_skip!("runc::drill_passes_a_clean_app");
    let script = "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    let mut args = vec![
        "/vigil", "drill", "--user", "nobody", "--after", "0.3", "--",
    ];
    args.extend(["sh", "-c", script]);
    let mut c = Container::start(host, Spec::new(&args));
    let (status, _) = c.wait_exit(Duration::from_secs(15));
    let report = drill_report(&c);
    println!("SAMPLE runc drill pass: {report}");
    assert_eq!(status, 0, "{report}");
    assert_eq!(report["verdict"], "pass", "{report}");
    assert_eq!(report["app_uid"], 65534);
    assert_eq!(report["leftover"], 0);
    assert_eq!(report["forced_kill"], false);
    assert!(c.stdout_has("bye"), "the app's own output comes through");
    assert!(
        report["drain_s"].as_f64().expect("drain_s") < 5.0,
        "{report}"
    );
}

/// An app that ignores TERM, run as root: `fail` with both reasons, exit 1, and the container is
/// still gone by the drain timeout + 0.5 s after the drill's signal.
#[test]
fn drill_fails_a_term_ignorer_run_as_root() {
    let host = host_or_skip!("runc::drill_fails_a_term_ignorer_run_as_root");
    let script = "trap '' TERM; echo ready; while :; do sleep 0.1; done";
    let args = [
        "/vigil",
        "drill",
        "--after",
        "0.3",
        "--drain-timeout",
        "1",
        "--",
        "sh",
        "-c",
        script,
    ];
    let mut c = Container::start(host, Spec::new(&args));
    let (status, _) = c.wait_exit(Duration::from_secs(15));
    let report = drill_report(&c);
    println!("SAMPLE runc drill fail: {report}");
    assert_eq!(status, 1, "{report}");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["forced_kill"], true);
    assert_eq!(report["exit_status"], 137);
    assert_eq!(report["leftover"], 0);
    let reasons = report["reasons"].to_string();
    assert!(
        reasons.contains("root") && reasons.contains("SIGTERM"),
        "{report}"
    );
    let drain_s = report["drain_s"].as_f64().expect("drain_s");
    assert!((1.0..=1.5).contains(&drain_s), "{report}");
}

// ---- start-up and clean-up hooks ----

/// The hooks as an image bakes them (`ENV VIGIL_*`, scripts under /etc/vigil), in a container
/// with a read-only root and the image's USER 65534 (no `--user`): the seed, the pre-start hook,
/// the app and the post-stop all run as 65534, the seed's variable reaches the app and the
/// post-stop, and the platform's SIGTERM ends it all with the app's status.
#[test]
fn hooks_run_as_the_images_user_on_a_read_only_root() {
    let host = host_or_skip!("runc::hooks_run_as_the_images_user_on_a_read_only_root");
    let app = "trap 'echo app TERM; exit 0' TERM; \
               echo \"app as $(id -u) $GREETING seed-uid $SEED_UID\"; echo ready; \
               while :; do sleep 0.1; done";
    let mut spec = Spec::vigil(&[], app);
    spec.user = (65534, 65534);
    spec.readonly = true;
    spec.env.extend(
        [
            "VIGIL_ENV_FROM=/etc/vigil/seed",
            "VIGIL_PRE_START=/etc/vigil/pre-start.d",
            "VIGIL_POST_STOP=/etc/vigil/post-stop",
            "VIGIL_DRAIN_TIMEOUT=3",
        ]
        .map(String::from),
    );
    let files = [
        (
            "/etc/vigil/seed",
            "#!/bin/sh\necho '# per-environment settings'\necho GREETING=from-seed\necho SEED_UID=$(id -u)\n",
        ),
        (
            "/etc/vigil/pre-start.d/10-check",
            "#!/bin/sh\necho \"pre-start as $(id -u)\"\n\
             while read -r dev mnt fs opts rest; do [ \"$mnt\" = / ] && echo \"root ${opts%%,*}\"; done < /proc/mounts\nexit 0\n",
        ),
        ("/etc/vigil/pre-start.d/README", "not executable: skipped\n"),
        (
            "/etc/vigil/post-stop",
            "#!/bin/sh\necho \"post-stop as $(id -u) $GREETING\"\n",
        ),
    ];
    spec.files
        .extend(files.map(|(p, c)| (p.to_string(), c.to_string())));
    let mut c = Container::start(host, spec);
    c.wait_stdout("ready");
    let start = c.wait_log("vigil starting");
    assert_eq!(start["uid"], 65534, "{start}");
    for line in [
        "pre-start as 65534",
        "root ro",
        "app as 65534 from-seed seed-uid 65534",
    ] {
        assert!(c.stdout_has(line), "no {line:?} on stdout");
    }
    c.kill("TERM");
    let (status, _) = c.wait_exit(Duration::from_secs(10));
    assert_eq!(status, 0);
    assert!(c.stdout_has("app TERM"));
    assert!(
        c.stdout_has("post-stop as 65534 from-seed"),
        "the post-stop ran"
    );
    let seeded = c.log("environment seeded").expect("environment seeded");
    assert_eq!(seeded["keys"], json!(["GREETING", "SEED_UID"]), "{seeded}");
}
