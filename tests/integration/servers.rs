//! Real servers from Debian packages under the built vigil (issue 11): nginx, postgres, redis,
//! gunicorn, haproxy and apache, each started as root with `--user` and run by vigil as PID 1 of
//! fresh pid and network namespaces, as a container runtime would. Each case waits until vigil's
//! own `/readyz` says the probe passed, checks that vigil, the app and every process of the app
//! run as the user with NoNewPrivs 1, starts a drain by signalling vigil the way a runtime does,
//! and asserts the exit status, the drain's timing and steps from vigil's JSON log lines, that no
//! zombie lingered, and what the server itself says about its stop (its own log, a client's
//! answer, the files it saved).
//!
//! Each test has a network namespace of its own (`Builder::net`), so servers listen on fixed
//! ports without colliding; the test reaches them, and vigil's health listener, from a thread that
//! joined that namespace (`Net`). A missing server binary or user skips through `util::require`.
//!
//! Checks of the contract are collected ([`Checks`]) rather than stopping at the first, so one
//! run shows every promise a server case breaks; setting a case up still fails at once.

mod data;
mod gunicorn;
mod net;
mod web;

pub use net::{Net, content_length, http_get};

use crate::util::{
    Builder, CEILING, ProcRef, SLACK, Vigil, descendants, poll_until, require, require_root,
    rfc3339_secs, secs, stat, status_field, vigil,
};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// vigil's health listener, inside each test's own network namespace.
const HEALTH: u16 = 8086;

// ---------------------------------------------------------------------------------------------
// What a case needs

/// The user a server runs as.
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The user `name` when this machine can run a server case with it: root, namespaces, every
/// binary in `bins` and the user exist. Otherwise skips (see `util::require`).
fn usable(bins: &[&str], name: &str) -> Option<Account> {
    if !require_root() {
        return None;
    }
    for bin in bins {
        if !require(
            Path::new(bin).exists(),
            &format!("needs {bin} (.ci/run installs its package)"),
        ) {
            return None;
        }
    }
    let user = nix::unistd::User::from_name(name).ok().flatten();
    if !require(user.is_some(), &format!("needs the user {name}")) {
        return None;
    }
    let user = user.expect("checked");
    Some(Account {
        name: name.to_string(),
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}

/// Gives `path` and everything below it to `acct`, as an image's `chown -R` would.
fn chown_tree(path: &Path, acct: &Account) {
    std::os::unix::fs::chown(path, Some(acct.uid), Some(acct.gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).expect("read_dir") {
            chown_tree(&entry.expect("dir entry").path(), acct);
        }
    }
}

/// vigil as root with `--user`, its health listener on [`HEALTH`], `opts`, then `-- cmd`, in its own network namespace, working directory `dir` (the dropped user
/// may not enter the test's).
fn server(acct: &Account, dir: &Path, opts: &[&str], cmd: &[&str]) -> Builder {
    let listen = format!("127.0.0.1:{HEALTH}");
    let mut args = vec!["--user", &acct.name, "--health-listen", &listen];
    args.extend_from_slice(opts);
    args.push("--");
    args.extend_from_slice(cmd);
    vigil(&args)
        .net()
        .setup(&format!("cd {} || exit 97", dir.display()))
}

/// Starts `b` as PID 1 and waits until the app is spawned; vigil exiting first fails the test.
fn start(b: Builder) -> (Vigil, Net) {
    let mut v = b.pid1();
    let mut net = None;
    poll_until(CEILING, || {
        if v.has_exited() {
            return true;
        }
        let spawned = !v.logs_with("app spawned").is_empty();
        net = v
            .running()
            .filter(|_| spawned)
            .and_then(|p| Net::open(p.pid));
        net.is_some()
    });
    match net {
        Some(net) => (v, net),
        None => {
            let code = v.wait_exit(CEILING).code;
            panic!(
                "vigil exited {code} before it spawned the app\n{}",
                v.dump()
            );
        }
    }
}

/// Runs `argv` as `acct` in `dir` (util-linux setpriv) to completion, as an image's build step
/// would (initdb); its output goes to `dir`/setup.log.
fn run_as(acct: &Account, dir: &Path, argv: &[&str]) {
    let log = dir.join("setup.log");
    let out = File::create(&log).expect("create setup.log");
    let (uid, gid) = (acct.uid.to_string(), acct.gid.to_string());
    let mut child = Command::new("setpriv")
        .args(["--reuid", &uid, "--regid", &gid, "--clear-groups", "--"])
        .args(argv)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn setpriv");
    let mut status = None;
    poll_until(secs(60.0), || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "{argv:?} as {}: {status:?}\n{text}",
        acct.name
    );
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Contract checks of one case, collected: [`Checks::finish`] fails the test with all of them.
pub struct Checks {
    failed: Vec<String>,
}

impl Checks {
    pub fn new() -> Checks {
        Checks { failed: Vec::new() }
    }

    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failed.push(what());
        }
    }

    /// Fails the test when any check failed, listing them all with vigil's output.
    pub fn finish(mut self, v: &Vigil) {
        let failed = std::mem::take(&mut self.failed);
        assert!(
            failed.is_empty(),
            "{} check(s) failed:\n- {}\n{}",
            failed.len(),
            failed.join("\n- "),
            v.dump()
        );
    }
}

impl Drop for Checks {
    /// A case that stops on a hard failure still shows the checks that failed before it.
    fn drop(&mut self) {
        if !self.failed.is_empty() {
            eprintln!(
                "checks failed before the test stopped:\n- {}",
                self.failed.join("\n- ")
            );
        }
    }
}

/// vigil, the app and every process below the app run as `acct` (all four uid and gid fields)
/// with NoNewPrivs 1.
pub fn check_dropped(c: &mut Checks, v: &Vigil, app: ProcRef, acct: &Account) {
    let mut procs = vec![("vigil", v.pid()), ("the app", app.pid)];
    procs.extend(
        descendants(app.pid)
            .into_iter()
            .map(|p| ("a process of the app", p)),
    );
    for (what, pid) in procs {
        let Some(comm) = stat(pid).map(|s| s.comm) else {
            continue;
        };
        let ids = |key: &str| {
            status_field(pid, key).map(|v| {
                v.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
        };
        let (Some(uid), Some(gid)): (Option<Vec<u32>>, Option<Vec<u32>>) = (ids("Uid"), ids("Gid"))
        else {
            continue;
        };
        c.check(uid == vec![acct.uid; 4] && gid == vec![acct.gid; 4], || {
            format!(
                "{what} (pid {pid}, {comm}) runs as Uid {uid:?} Gid {gid:?}, not {}",
                acct.name
            )
        });
        let nnp = status_field(pid, "NoNewPrivs");
        c.check(nnp.as_deref() == Some("1"), || {
            format!("{what} (pid {pid}, {comm}) has NoNewPrivs {nnp:?}, not 1")
        });
    }
}

/// After a drain signal at `t0`: `/readyz` answers 503 in phase `draining` within 1 s (vigil
/// stays until the app has stopped, which takes longer in the cases that check this).
pub fn check_unready(c: &mut Checks, net: &Net, t0: Instant) {
    let mut last = None;
    let draining = poll_until(secs(1.0), || {
        last = net.readyz();
        last.as_ref()
            .is_some_and(|(code, body)| *code == 503 && body["phase"] == "draining")
    });
    c.check(draining, || {
        format!(
            "/readyz did not say draining within 1 s of the drain signal (took {:?}, last {last:?})",
            t0.elapsed()
        )
    });
}

/// How a drain ended.
pub struct Drained {
    pub code: i32,
    /// From just before the drain signal until the test saw vigil gone.
    pub took: Duration,
    /// When the test saw vigil gone.
    pub at: Instant,
}

/// Waits for vigil to exit after a drain signal at `t0`, looking every 10 ms for zombies vigil
/// has to reap (the app, orphans): one may be there for a moment between its exit and vigil's
/// wait, never for half a second. (Zombies of the app's own children are the app's to reap:
/// apache's parent collects its children about once a second.)
pub fn end_drain(c: &mut Checks, v: &mut Vigil, t0: Instant, ceiling: Duration) -> Drained {
    let me = v.proc();
    let mut first_seen: HashMap<i32, Instant> = HashMap::new();
    let mut lingered: Vec<String> = Vec::new();
    poll_until(ceiling, || {
        let now = Instant::now();
        let zombies: Vec<_> = v
            .tree()
            .into_iter()
            .filter_map(stat)
            .filter(|s| s.state == 'Z' && s.ppid == me.pid)
            .collect();
        first_seen.retain(|p, _| zombies.iter().any(|z| z.pid == *p));
        for z in zombies {
            let since = *first_seen.entry(z.pid).or_insert(now);
            let seen = format!("{} ({})", z.pid, z.comm);
            if now - since > secs(0.5) && !lingered.contains(&seen) {
                lingered.push(seen);
            }
        }
        !me.alive()
    });
    let exit = v.wait_exit(CEILING);
    c.check(lingered.is_empty(), || {
        format!("vigil left zombies unreaped over 0.5 s: {lingered:?}")
    });
    Drained {
        code: exit.code,
        took: exit.at.saturating_duration_since(t0),
        at: exit.at,
    }
}

/// vigil's log lines of a clean drain: started by `drain_sig`, `stop_sig` forwarded to the app,
/// the app exited 0 leaving nothing behind and vigil with it, no forced kill, within `timeout` +
/// 0.5 s. Prints the figure (`--nocapture` shows it).
pub fn check_clean_drain(
    c: &mut Checks,
    v: &Vigil,
    d: &Drained,
    (drain_sig, stop_sig): (&str, &str),
    timeout: f64,
) {
    eprintln!(
        "{}: vigil exited {} {:.2} s after {drain_sig}",
        std::thread::current().name().unwrap_or("?"),
        d.code,
        d.took.as_secs_f64()
    );
    c.check(d.code == 0, || format!("vigil exited {}, not 0", d.code));
    let limit = secs(timeout + 0.5) + SLACK;
    c.check(d.took <= limit, || {
        format!(
            "vigil took {:?} after the drain signal, over {limit:?}",
            d.took
        )
    });
    let started = v.logs_with("drain started");
    c.check(started.iter().any(|l| l["signal"] == drain_sig), || {
        format!("no \"drain started\" line with signal {drain_sig}: {started:?}")
    });
    let forwarded = v.logs_with("signal forwarded");
    c.check(forwarded.iter().any(|l| l["signal"] == stop_sig), || {
        format!("{stop_sig} was not forwarded: {forwarded:?}")
    });
    let exited = v.logs_with("app exited");
    c.check(exited.iter().any(|l| l["code"] == 0), || {
        format!("the app did not exit 0: {exited:?}")
    });
    let leftovers = v.logs_with("terminating leftovers");
    c.check(leftovers.is_empty(), || {
        format!("the app left processes behind: {leftovers:?}")
    });
    let forced = v.logs_with("forced kill");
    c.check(forced.is_empty(), || format!("a forced kill: {forced:?}"));
    let exiting = v.logs_with("exiting");
    c.check(exiting.iter().any(|l| l["code"] == 0), || {
        format!("no \"exiting\" line with code 0: {exiting:?}")
    });
}

/// Seconds between two of vigil's log lines (millisecond steps).
pub fn log_gap(from: &Value, to: &Value) -> f64 {
    let at = |l: &Value| rfc3339_secs(l["ts"].as_str().expect("every log line has a ts"));
    at(to) - at(from)
}

/// Whether any of vigil's stderr lines (the app's own log when it logs to stderr) holds `text`.
pub fn stderr_has(v: &Vigil, text: &str) -> bool {
    v.stderr().iter().any(|l| l.contains(text))
}

pub fn stdout_has(v: &Vigil, text: &str) -> bool {
    v.stdout().iter().any(|l| l.contains(text))
}

/// The processes whose parent is `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    descendants(pid)
        .into_iter()
        .filter(|&p| stat(p).is_some_and(|s| s.ppid == pid && s.state != 'Z'))
        .collect()
}
