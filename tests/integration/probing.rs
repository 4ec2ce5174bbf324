//! Probes as operators need them (issue 12): liveness that holds through a drain while the app
//! closes its listener, readiness that follows the app within the startup interval, word
//! splitting for `--probe-exec`, and `--probe-header`.
//!
//! The apps here are `sh` with busybox `nc` as their listener, and probe scripts that append a
//! line per run to a file, so the test counts probe attempts without asking vigil.

use crate::health::{Answer, HttpServer, TcpTarget, V4, at, free_port_on, polite_app, request};
use crate::util::{
    ANY_PORT, CEILING, LOOP, Mode, Scratch, closed_port, poll_until, rfc3339_secs, secs,
    sleep_until, vigil, wait_until,
};
use nix::sys::signal::Signal;
use nix::sys::socket::{Backlog, listen};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

both_modes!(liveness_holds_through_a_drain);

/// Writes an executable `#!/bin/sh` script into the scratch dir and returns its path.
fn script(s: &Scratch, name: &str, body: &str) -> String {
    let path = s.path(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    s.p(name)
}

/// The probe times (`date +%s.%N`) a probe script appended to `file`.
fn probe_times(file: &str) -> Vec<f64> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The health address of a vigil started with `--health-listen 127.0.0.1:0`.
fn health_addr(v: &crate::util::Vigil) -> SocketAddr {
    at(V4, v.health_port())
}

/// An app whose listener (busybox nc on `port`) closes on SIGTERM, as nginx, postgres and
/// gunicorn close theirs when they stop, but which runs on for 3 s: `/livez` stays 200 the whole
/// time, `/readyz` is 503, and no probe runs once the drain has started (each exec probe appends
/// a line to a file). With `--probe-failures 1` a single probe in the drain would fail liveness.
fn liveness_holds_through_a_drain(mode: Mode) {
    let s = Scratch::new();
    let port = free_port_on(V4);
    let probes = s.p("probes");
    let probe = script(
        &s,
        "probe",
        &format!(
            "date +%s.%N >> {probes}\nexec busybox nc 127.0.0.1 {port} </dev/null >/dev/null 2>&1"
        ),
    );
    let app = format!(
        "exec 2>/dev/null; busybox nc -ll -p {port} -e true & nc=$!; \
         trap 'kill $nc; echo TERM; sleep 3; echo BYE; exit 0' TERM; echo ready; {LOOP}"
    );
    let mut v = vigil(&[
        "--health-listen",
        ANY_PORT,
        "--probe-exec",
        &probe,
        "--probe-interval",
        "0.2",
        "--probe-failures",
        "1",
        // A probe slower than the default 1 s on a loaded machine would fail liveness before
        // the drain begins; what is tested is the drain.
        "--probe-timeout",
        "5",
        "--startup-grace",
        "0",
        "--drain-timeout",
        "6",
        "--",
        "sh",
        "-c",
        &app,
    ])
    .start(mode);
    let addr = health_addr(&v);
    wait_until("/readyz is 200", CEILING, || {
        request(addr, "GET", "/readyz", secs(1.0)).is_ok_and(|r| r.code == 200)
    });
    wait_until("three probes ran", CEILING, || {
        probe_times(&probes).len() >= 3
    });

    let t0 = v.signal(Signal::SIGTERM);
    let mut answers: Vec<(Duration, &str, u16)> = Vec::new();
    let done = poll_until(CEILING, || {
        for path in ["/livez", "/readyz"] {
            if let Ok(r) = request(addr, "GET", path, secs(2.0)) {
                answers.push((t0.elapsed(), path, r.code));
            }
        }
        v.stdout().iter().any(|l| l == "BYE")
    });
    assert!(done, "the app did not finish its drain\n{}", v.dump());
    let bye = t0.elapsed();
    for (t, path, code) in &answers {
        if *t + secs(0.05) < bye {
            let want = if *path == "/livez" { 200 } else { 503 };
            assert_eq!(*code, want, "{path} {t:?} into the drain\n{}", v.dump());
        }
    }
    let late = answers
        .iter()
        .filter(|(t, p, _)| *p == "/livez" && *t >= secs(2.0) && *t + secs(0.05) < bye)
        .count();
    assert!(
        late >= 5,
        "too few /livez answers late in the drain ({late})"
    );

    // No probe started after the drain did. The log's clock has millisecond steps; a probe the
    // checker started just before the drain may write its line a few ms after it.
    let started = v.wait_for_log("drain started", |_| true, CEILING);
    let drain_at = rfc3339_secs(started["ts"].as_str().expect("ts"));
    let times = probe_times(&probes);
    let after: Vec<f64> = times
        .iter()
        .map(|t| t - drain_at)
        .filter(|d| *d > 0.05)
        .collect();
    assert!(
        after.is_empty(),
        "probes ran this long (s) into the drain: {after:?}"
    );
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 0, "{}", v.dump());
    assert_eq!(
        probe_times(&probes).len(),
        times.len(),
        "a probe ran at the end"
    );
    assert!(
        v.logs_with("probe failing").is_empty(),
        "a probe failed in the drain\n{}",
        v.dump()
    );
}

/// A probe target that starts listening 1 s after the app was spawned (a socket bound from the
/// start, `listen(2)`ed then): with the default 5 s probe interval, `/readyz` turns 200 within
/// the 0.1 s startup interval of that (1 s allowed for a loaded machine; before the startup
/// interval it took until the second probe, 4 s later). Once ready, probes are back to every
/// 5 s: none runs in the next 1.5 s.
#[test]
fn readiness_follows_the_app_within_the_startup_interval() {
    for kind in ["tcp", "http"] {
        let (fd, port) = closed_port();
        let target = match kind {
            "tcp" => format!("127.0.0.1:{port}"),
            _ => format!("http://127.0.0.1:{port}/ready"),
        };
        let app = polite_app();
        let flag = format!("--probe-{kind}");
        let v = vigil(&[
            "--health-listen",
            ANY_PORT,
            &flag,
            &target,
            "--",
            "sh",
            "-c",
            &app,
        ])
        .start(crate::health::one_mode());
        let addr = health_addr(&v);
        v.wait_for_log("app spawned", |_| true, CEILING);
        sleep_until(Instant::now() + secs(1.0));
        let early = request(addr, "GET", "/readyz", secs(1.0)).expect("an answer");
        assert_eq!(early.code, 503, "{kind}: ready before the target listens");

        listen(&fd, Backlog::new(64).expect("backlog")).expect("listen");
        let listening = Instant::now();
        let listener = TcpListener::from(fd);
        let probes: Box<dyn Fn() -> usize> = match kind {
            "tcp" => {
                let t = TcpTarget::on(listener);
                Box::new(move || t.accepted.load(Ordering::Relaxed))
            }
            _ => {
                let h = HttpServer::on(listener, Answer::Status(200));
                Box::new(move || h.requests().len())
            }
        };
        let mut ready_at = None;
        poll_until(CEILING, || {
            let ok = request(addr, "GET", "/readyz", secs(1.0)).is_ok_and(|r| r.code == 200);
            if ok {
                ready_at = Some(Instant::now());
            }
            ok
        });
        let lag = ready_at.expect("/readyz turned 200") - listening;
        assert!(
            lag <= secs(1.0),
            "{kind}: /readyz turned 200 {lag:?} after the target listened\n{}",
            v.dump()
        );
        eprintln!("{kind}: /readyz 200 {lag:?} after the target listened");
        // The probe that passed connected before /readyz said 200, but the test's accept
        // thread may count it only now.
        wait_until("the passing probe is counted", CEILING, || probes() >= 1);
        let n = probes();
        sleep_until(Instant::now() + secs(1.5));
        assert_eq!(
            probes(),
            n,
            "{kind}: probes ran faster than every 5 s once ready"
        );
        drop(v);
    }
}

/// `--probe-exec` splits words as a shell would, with no shell run: a quoted path with a space
/// is one word (split on blanks, `test` got four arguments and failed), and `$HOME` stays as
/// written. The probe passes only while the file exists.
#[test]
fn exec_probe_words_are_split_as_a_shell_would() {
    let s = Scratch::new();
    let marker = s.p("ready file");
    std::fs::write(&marker, "").expect("marker");
    let dollar = s.p("$HOME");
    std::fs::write(&dollar, "").expect("marker");
    for (probe, want) in [
        (format!("test -e '{marker}'"), 200),
        (format!("test -e \"{marker}\""), 200),
        (format!("test -e {}", marker.replace(' ', "\\ ")), 200),
        (format!("test -e '{dollar}'"), 200),
        (format!("test -e '{marker}x'"), 503),
    ] {
        let app = crate::health::polite_app();
        let v = vigil(&[
            "--health-listen",
            ANY_PORT,
            "--probe-exec",
            &probe,
            "--probe-interval",
            "0.1",
            "--",
            "sh",
            "-c",
            &app,
        ])
        .start(crate::health::one_mode());
        let addr = health_addr(&v);
        let r = crate::health::wait_for_answer(addr, "/readyz", "a probe result", |r| {
            crate::health::probe_of(r)["ok"].is_boolean()
        });
        assert_eq!(r.code, want, "{probe}\n{}", v.dump());
    }
}

/// An app behind a virtual host that wants a token: it answers 200 only with the right `Host`
/// and `Authorization` headers. `--probe-header` (or `VIGIL_PROBE_HEADERS`, one a line) passes;
/// without them, or with a wrong one, the probe fails (401).
#[test]
fn probe_headers_reach_the_app() {
    const WANT: &[&str] = &["Host: app.example.com", "Authorization: Bearer t0ken"];
    let server = HttpServer::new(Answer::Requires(WANT));
    let url = server.url("/ready");
    let both = ["--probe-header", WANT[0], "--probe-header", WANT[1]];
    let cases: [(&[&str], Option<&str>, u16); 5] = [
        (&both, None, 200),
        (
            &[],
            Some("Host: app.example.com\nAuthorization: Bearer t0ken\n"),
            200,
        ),
        (&[], None, 503),
        (&["--probe-header", WANT[0]], None, 503),
        (
            &["--probe-header", "Host: app.example.com"],
            Some(WANT[1]),
            503,
        ),
    ];
    for (flags, var, want) in cases {
        let app = crate::health::polite_app();
        let mut args = vec!["--health-listen", ANY_PORT, "--probe-http", &url];
        args.extend_from_slice(flags);
        args.extend(["--probe-interval", "0.1", "--", "sh", "-c", &app]);
        let mut b = vigil(&args);
        if let Some(var) = var {
            b = b.env("VIGIL_PROBE_HEADERS", var);
        }
        let v = b.start(crate::health::one_mode());
        let addr = health_addr(&v);
        let r = crate::health::wait_for_answer(addr, "/readyz", "a probe result", |r| {
            crate::health::probe_of(r)["ok"].is_boolean()
        });
        assert_eq!(r.code, want, "{flags:?} {var:?}\n{}", v.dump());
    }
    let seen = server.requests();
    assert!(
        seen.iter()
            .any(|r| r.contains("\r\nHost: app.example.com\r\n")),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|r| r.matches("\r\nHost: ").count() == 1),
        "one Host header each: {seen:?}"
    );
}
