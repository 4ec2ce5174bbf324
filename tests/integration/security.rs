//! No root left behind: once the app runs under `--user`, neither vigil nor the app (nor a probe)
//! holds uid, gid or group 0 or any capability, even in its bounding set, and all run with
//! no_new_privs; the app holds no descriptor of vigil's; and no environment value ever reaches
//! the log.

use crate::stress::{assert_logs_valid, http_status, short_dump};
use crate::util::{
    ANY_PORT, CEILING, Mode, fds, require_root, stat, status_field, status_hex, vigil,
    wait_exec_probe, wait_until,
};
use nix::sys::signal::Signal;

both_modes!(
    no_root_once_the_app_runs,
    app_holds_no_fd_of_vigils,
    no_env_value_in_the_log
);

/// Asserts `/proc/<pid>/status` (and every thread's) shows no id 0 and no capability.
fn assert_unprivileged(what: &str, pid: i32) {
    let tasks: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    assert!(!tasks.is_empty());
    for tid in tasks {
        let path = format!("{pid}/task/{tid}");
        let who = format!("{what} (thread {tid})");
        let status = std::fs::read_to_string(format!("/proc/{path}/status")).expect("status");
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("{who}: no {key}"))
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<String>>()
        };
        for key in ["Uid", "Gid"] {
            let ids = field(key);
            assert_eq!(ids.len(), 4, "{who}: {key}");
            assert!(ids.iter().all(|id| id != "0"), "{who}: {key} {ids:?}");
        }
        let groups = field("Groups");
        assert!(!groups.iter().any(|g| g == "0"), "{who}: Groups {groups:?}");
        assert_eq!(field("NoNewPrivs"), ["1"], "{who}: NoNewPrivs");
        for key in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
            let v = field(key);
            let mask = u64::from_str_radix(&v[0], 16).expect("hex");
            assert_eq!(mask, 0, "{who}: {key} {v:?}");
        }
    }
    assert_eq!(status_hex(pid, "CapEff"), 0);
}

/// `--user nobody` with a health listener (bound as root) and an exec probe: vigil, each of
/// its threads, the app and a running probe are all uid/gid 65534, in no group 0, with empty
/// effective, permitted, ambient and bounding capability sets and no_new_privs.
fn no_root_once_the_app_runs(mode: Mode) {
    if !require_root() {
        return;
    }
    let mut v = vigil(&[
        "--user",
        "nobody",
        "--health-listen",
        ANY_PORT,
        "--probe-exec",
        "sleep 0.5",
        "--probe-interval",
        "0.1",
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 100",
    ])
    .start(mode);
    let port = v.health_port();
    v.wait_for_line("ready", CEILING);
    let app = v.app();
    app.wait_exec("sleep");
    wait_until("health answers", CEILING, || {
        http_status(port, "/livez").is_some()
    });
    let me = v.pid();
    let probe = wait_exec_probe(me, app.pid, "sleep");
    assert_unprivileged("vigil", me);
    assert_unprivileged("app", app.pid);
    // It may finish (and be reaped) at any moment; while it is there, it is unprivileged too.
    if let (Some(uid), Some(cap)) = (status_field(probe, "Uid"), status_field(probe, "CapEff")) {
        assert_eq!(
            uid.split_whitespace().collect::<Vec<_>>(),
            ["65534"; 4],
            "probe"
        );
        assert_eq!(cap, "0000000000000000", "probe");
    }
    assert_eq!(status_field(me, "NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(status_field(app.pid, "NoNewPrivs").as_deref(), Some("1"));
    v.signal(Signal::SIGTERM);
    v.wait_gone(CEILING);
    assert!(v.survivors().is_empty());
    assert_eq!(v.wait_exit(CEILING).code, 143, "{}", short_dump(&v));
    eprintln!(
        "FIGURE no_root_once_the_app_runs/{}: vigil (all threads), app and exec probe: \
         uid/gid 65534, no group 0, CapEff = CapPrm = CapAmb = CapBnd = 0, NoNewPrivs 1",
        mode.name()
    );
}

/// What an fd points to (`socket:[123]`, `anon_inode:[eventfd]`, `/dev/null`, ...).
fn fd_targets(pid: i32) -> Vec<(i32, String)> {
    fds(pid)
        .into_iter()
        .filter_map(|fd| {
            let t = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
            Some((fd, t.to_string_lossy().into_owned()))
        })
        .collect()
}

/// Whether `pid`'s `fd` is close-on-exec (`flags` in /proc/<pid>/fdinfo, octal, O_CLOEXEC).
fn cloexec(pid: i32, fd: i32) -> bool {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("flags");
    u32::from_str_radix(flags.trim(), 8).expect("octal") & 0o2_000_000 != 0
}

/// The app (and an exec probe) inherit only what vigil was given: each of their fds is one vigil
/// itself inherited (same number, same target, not close-on-exec in vigil), and none is one of
/// vigil's own (every fd vigil opens is close-on-exec): not the health listener or a client
/// connection.
fn app_holds_no_fd_of_vigils(mode: Mode) {
    let mut v = vigil(&[
        "--health-listen",
        ANY_PORT,
        "--probe-exec",
        "sleep 0.5",
        "--probe-interval",
        "0.1",
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 100",
    ])
    .start(mode);
    let port = v.health_port();
    v.wait_for_line("ready", CEILING);
    let app = v.app();
    app.wait_exec("sleep");
    // A connection held open, so vigil has a client socket too while we look.
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let me = v.pid();
    wait_until("vigil holds the client connection", CEILING, || {
        fd_targets(me)
            .iter()
            .filter(|(_, t)| t.starts_with("socket:"))
            .count()
            >= 2
    });
    let vigils = fd_targets(me);
    let own: Vec<&(i32, String)> = vigils.iter().filter(|(fd, _)| cloexec(me, *fd)).collect();
    let given: Vec<&(i32, String)> = vigils.iter().filter(|(fd, _)| !cloexec(me, *fd)).collect();
    assert!(
        own.iter().filter(|(_, t)| t.starts_with("socket:")).count() >= 2,
        "vigil's own fds (listener and client at least): {own:?}"
    );
    for (fd, t) in &given {
        assert!(
            !t.starts_with("socket:") && !t.starts_with("anon_inode:"),
            "vigil fd {fd} -> {t} is not close-on-exec"
        );
    }
    let probe = wait_exec_probe(me, app.pid, "sleep");
    let mut checked = vec![("app", app.pid)];
    checked.push(("probe", probe));
    for (what, pid) in checked {
        let theirs = fd_targets(pid);
        if theirs.is_empty() && stat(pid).is_none() {
            continue; // the probe finished in between
        }
        for (fd, target) in &theirs {
            // vigil's own description of the stderr pipe it was given (`sink`) is the same
            // pipe as the app's fd 2, not a thing of vigil's own.
            let shared = own.iter().find(|(_, t)| {
                t == target && t.contains(":[") && !given.iter().any(|(_, g)| g == t)
            });
            assert!(
                shared.is_none(),
                "{what} fd {fd} -> {target} is vigil's own"
            );
            assert!(
                !target.starts_with("socket:") && !target.starts_with("anon_inode:"),
                "{what} fd {fd} -> {target}"
            );
            if what == "app" {
                assert!(
                    given.iter().any(|(f, t)| f == fd && t == target),
                    "app fd {fd} -> {target} was not given to vigil: {given:?}"
                );
            } else {
                // The probe's stdio is /dev/null; it inherits only what vigil was given.
                assert!(
                    *fd <= 2 || given.iter().any(|(f, t)| f == fd && t == target),
                    "probe fd {fd} -> {target}"
                );
            }
        }
    }
    v.signal(Signal::SIGTERM);
    v.wait_gone(CEILING);
    assert!(v.survivors().is_empty());
    assert_eq!(v.wait_exit(CEILING).code, 143, "{}", short_dump(&v));
    eprintln!(
        "FIGURE app_holds_no_fd_of_vigils/{}: vigil opened {} fds itself, all close-on-exec ({}); \
         the app and the exec probe held none of them, only fds vigil was given",
        mode.name(),
        own.len(),
        own.iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

const SECRET: &str = "hunter2-xyz";

/// A distinctive secret in the environment of vigil (and so of the app) never shows in vigil's
/// log, in either format, through a whole life at debug level: start, probe failures, an
/// orphan, signals, leftovers, the forced kill, exit; and a failed exec.
fn no_env_value_in_the_log(mode: Mode) {
    let app = "exec 2>/dev/null; sh -c 'sleep 0.1 &'; trap 'echo got-hup' HUP; trap '' TERM; \
               echo ready; while :; do sleep 1 & wait $!; done";
    let mut lines = 0;
    for format in ["json", "text"] {
        let mut v = vigil(&[
            "--log-format",
            format,
            "--log-level",
            "debug",
            "--health-listen",
            ANY_PORT,
            "--probe-exec",
            "false",
            "--probe-interval",
            "0.1",
            "--drain-timeout",
            "0.5",
            "--",
            "sh",
            "-c",
            app,
        ])
        .env("SECRET_TOKEN", SECRET)
        .env("DATABASE_URL", &format!("postgres://app:{SECRET}@db/app"))
        .start(mode);
        let port = v.health_port();
        v.wait_for_line("ready", CEILING);
        wait_until("a probe has failed", CEILING, || {
            v.stderr().iter().any(|l| l.contains("probe"))
        });
        v.signal(Signal::SIGHUP);
        v.wait_for_line("got-hup", CEILING);
        let _ = http_status(port, "/readyz");
        v.signal(Signal::SIGTERM);
        v.wait_gone(CEILING);
        assert!(v.survivors().is_empty());
        assert_eq!(v.wait_exit(CEILING).code, 137, "{}", short_dump(&v));
        if format == "json" {
            assert_logs_valid(&v);
        }
        let err = v.stderr();
        lines += err.len();
        for l in &err {
            assert!(!l.contains(SECRET), "secret in the log: {l}");
        }
    }
    let mut v = vigil(&["--log-level", "debug", "--", "/nonexistent/app", "--flag"])
        .env("SECRET_TOKEN", SECRET)
        .start(mode);
    assert_eq!(v.wait_exit(CEILING).code, 127);
    for l in v.stderr() {
        assert!(!l.contains(SECRET), "secret in the log: {l}");
    }
    lines += v.stderr().len();
    eprintln!(
        "FIGURE no_env_value_in_the_log/{}: {lines} log lines (json and text, debug) searched, \
         no environment value",
        mode.name()
    );
}

// ---------------------------------------------------------------------------------------------
// Findings of the fuzzers, as regression tests against the real binary

/// A multi-byte character at byte 7 of `--probe-http` or a `vigil probe` target made vigil
/// panic (abort in release, status 134) instead of refusing the value with status 2.
#[test]
fn probe_url_with_wide_char_at_byte_7_is_refused() {
    for target in ["abcdef\u{e9}", "http:/\u{e9}x"] {
        let out = crate::util::vigil_command()
            .args(["probe", target])
            .output()
            .expect("run vigil probe");
        assert_eq!(
            out.status.code(),
            Some(2),
            "vigil probe {target:?}: {out:?}"
        );
        let out = crate::util::vigil_command()
            .args(["--probe-http", target, "--", "true"])
            .output()
            .expect("run vigil");
        assert_eq!(
            out.status.code(),
            Some(2),
            "--probe-http {target:?}: {out:?}"
        );
    }
}

/// An unbalanced bracket in the host was taken as part of it and sent on as `Host: app]`:
/// a malformed target must be status 2, not a probe that runs.
#[test]
fn probe_url_with_unbalanced_bracket_is_refused() {
    for target in ["http://app]/healthz", "http://[app/", "http://[::1/x"] {
        let out = crate::util::vigil_command()
            .args(["probe", target, "--timeout", "0.2"])
            .output()
            .expect("run vigil probe");
        assert_eq!(
            out.status.code(),
            Some(2),
            "vigil probe {target:?}: {out:?}"
        );
    }
}

/// Starts vigil with a health listener on loopback; returns it and the port.
fn with_health() -> (crate::util::Vigil, u16) {
    let v = vigil(&["--health-listen", ANY_PORT, "--", "sleep", "100"]).subreaper();
    let port = v.health_port();
    wait_until("health answers", CEILING, || {
        http_status(port, "/livez") == Some(200)
    });
    (v, port)
}

/// Sends `stream` (and half-closes when asked), then counts the answers until EOF.
fn answers(port: u16, stream: &[u8], half_close: bool) -> usize {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(crate::util::secs(5.0)))
        .expect("timeout");
    s.write_all(stream).expect("send");
    if half_close {
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).matches("HTTP/1.1 ").count()
}

/// A client that sends a whole request and half-closes (`printf 'GET /livez HTTP/1.0\r\n\r\n'
/// | nc -N host 8086`) got no answer when the request and the FIN came in one read: the EOF
/// dropped the connection before the buffered head was served (3 of 5 tries here).
#[test]
fn health_answers_a_request_followed_by_half_close() {
    let (mut v, port) = with_health();
    let got: Vec<usize> = (0..20)
        .map(|_| answers(port, b"GET /livez HTTP/1.0\r\n\r\n", true))
        .collect();
    v.signal(Signal::SIGTERM);
    v.wait_exit(CEILING);
    assert!(got.iter().all(|&n| n == 1), "answers per request: {got:?}");
}

/// Pipelined heads adding up to more than 8 KiB in one read: the bytes past the cap were
/// dropped though the heads before them were whole, so the last request was never answered and
/// the connection hung for the 2 s head timeout.
#[test]
fn health_answers_every_pipelined_request_past_8k() {
    let (mut v, port) = with_health();
    let pad = format!("X-Pad: {}\r\n", "a".repeat(3000));
    let one = format!("GET /livez HTTP/1.1\r\n{pad}\r\n");
    let last = format!("GET /livez HTTP/1.1\r\n{pad}Connection: close\r\n\r\n");
    let stream = format!("{one}{one}{last}");
    let got = answers(port, stream.as_bytes(), false);
    v.signal(Signal::SIGTERM);
    v.wait_exit(CEILING);
    assert_eq!(got, 3, "answers to 3 pipelined requests of 3 KiB each");
}
