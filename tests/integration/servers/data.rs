//! Data stores: postgres with an idle client, where only the escalating stop signal
//! (`TERM,INT@3`: smart, then fast shutdown) ends it cleanly before the deadline so the next start
//! needs no crash recovery; redis, whose SIGTERM saves the data set before it exits.

use super::{
    Account, Checks, Net, check_clean_drain, check_dropped, check_unready, chown_tree, end_drain,
    log_gap, run_as, server, start, stderr_has, stdout_has, usable,
};
use crate::util::{CEILING, SLACK, Scratch, Vigil, secs};
use nix::sys::signal::Signal;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The newest installed postgres' bin directory (Debian keeps it off PATH).
fn pg_bin() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let newest = versions.into_iter().max().unwrap_or(0);
    PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin"))
}

/// One message from the server: its type byte and body.
fn pg_message(s: &mut UnixStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

/// A client that completed the startup (trust authentication) on the unix socket in `dir` and
/// now sits idle, as a pooled connection would.
fn pg_idle_client(dir: &Path) -> UnixStream {
    let sock = dir.join(".s.PGSQL.5432");
    let mut s = UnixStream::connect(&sock).unwrap_or_else(|e| panic!("{}: {e}", sock.display()));
    s.set_read_timeout(Some(CEILING)).expect("timeout");
    let params = b"user\0postgres\0database\0postgres\0application_name\0idle\0\0";
    let mut startup = ((8 + params.len()) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    startup.extend_from_slice(params);
    s.write_all(&startup).expect("send the startup message");
    loop {
        let (kind, body) = pg_message(&mut s).expect("a message from postgres");
        match kind {
            b'Z' => return s, // ReadyForQuery
            b'E' => panic!("postgres refused: {}", String::from_utf8_lossy(&body)),
            _ => {}
        }
    }
}

/// vigil running postgres on the cluster in `dir`, unix socket only, probed with pg_isready.
fn postgres(acct: &Account, dir: &Path, stop: &[&str]) -> (Vigil, Net) {
    let bin = pg_bin();
    let probe = format!(
        "{} -q -h {}",
        bin.join("pg_isready").display(),
        dir.display()
    );
    let mut opts = vec!["--probe-exec", probe.as_str()];
    opts.extend_from_slice(stop);
    let postgres = bin.join("postgres").to_string_lossy().into_owned();
    let data = dir.join("data").to_string_lossy().into_owned();
    let sockets = format!("unix_socket_directories={}", dir.display());
    let cmd = [
        postgres.as_str(),
        "-D",
        &data,
        "-c",
        "listen_addresses=",
        "-c",
        &sockets,
    ];
    start(server(acct, dir, &opts, &cmd))
}

/// A fresh cluster in a scratch dir owned by the postgres user (initdb as that user, trust
/// authentication); None when the case is skipped.
fn cluster() -> Option<(Account, Scratch)> {
    let bin = pg_bin();
    let bins = ["postgres", "initdb", "pg_isready"].map(|b| bin.join(b));
    let bins = bins
        .iter()
        .map(|b| b.to_str().expect("utf-8 path"))
        .collect::<Vec<_>>();
    let acct = usable(&bins, "postgres")?;
    let s = Scratch::new();
    chown_tree(&s.dir, &acct);
    let data = s.p("data");
    let initdb = bin.join("initdb").to_string_lossy().into_owned();
    let argv = [
        initdb.as_str(),
        "-D",
        &data,
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "--no-instructions",
        "-E",
        "UTF8",
        "--locale=C",
    ];
    run_as(&acct, &s.dir, &argv);
    Some((acct, s))
}

/// Postgres as the postgres user with one idle client: SIGTERM starts its smart shutdown, which
/// waits for that client; INT 3 s later (`--stop-signal TERM,INT@3`) makes it a fast shutdown
/// that ends clean, exit 0, before the 8 s deadline. The next start finds a cluster that was shut
/// down, no crash recovery.
#[test]
fn postgres_escalates_to_fast_shutdown() {
    let Some((acct, s)) = cluster() else {
        return;
    };
    let stop = ["--drain-timeout", "8", "--stop-signal", "TERM,INT@3"];
    let (mut v, net) = postgres(&acct, &s.dir, &stop);
    let mut c = Checks::new();
    net.wait_ready(&mut v);
    check_dropped(&mut c, &v, v.app(), &acct);
    let mut client = pg_idle_client(&s.dir);

    let t0 = v.signal(Signal::SIGTERM);
    check_unready(&mut c, &net, t0);
    let d = end_drain(&mut c, &mut v, t0, secs(8.5) + CEILING);
    check_clean_drain(&mut c, &v, &d, ("SIGTERM", "SIGTERM"), 8.0);
    c.check(d.took >= secs(3.0), || {
        format!(
            "postgres stopped {:?} after SIGTERM, before the INT step",
            d.took
        )
    });
    let started = v.logs_with("drain started");
    // The step's line, whatever its msg: the contract logs every drain step with its signal.
    let logs = v.logs();
    let int = logs
        .iter()
        .find(|l| l["signal"] == "SIGINT" && l["msg"] != "drain deadline moved");
    c.check(int.is_some(), || "SIGINT was never sent".into());
    if let (Some(start), Some(int)) = (started.first(), int) {
        let gap = log_gap(start, int);
        // Both stamps are cut to the millisecond, and the difference of two parsed floats can
        // come out a hair under 2.999: the exact lower bound is 3 s less one millisecond.
        c.check((2.9985..=3.0 + SLACK.as_secs_f64()).contains(&gap), || {
            format!("SIGINT came {gap:.3} s after the drain started, not at 3 s")
        });
    }
    for line in [
        "received smart shutdown request",
        "received fast shutdown request",
        "database system is shut down",
    ] {
        c.check(stderr_has(&v, line), || {
            format!("postgres did not log {line:?}")
        });
    }
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    let told = String::from_utf8_lossy(&rest);
    c.check(
        told.contains("terminating connection due to administrator command"),
        || format!("the idle client was not told of the shutdown: {told:?}"),
    );
    c.finish(&v);

    // The next start: a clean shutdown checkpoint, no recovery. Plain TERM ends it at once now.
    let (mut v, net) = postgres(&acct, &s.dir, &["--drain-timeout", "8"]);
    let mut c = Checks::new();
    net.wait_ready(&mut v);
    c.check(stderr_has(&v, "database system was shut down at"), || {
        "the restart did not find a clean shutdown".into()
    });
    for line in [
        "was interrupted",
        "not properly shut down",
        "automatic recovery",
    ] {
        c.check(!stderr_has(&v, line), || {
            format!("the restart logged {line:?}")
        });
    }
    let t0 = v.signal(Signal::SIGTERM);
    let d = end_drain(&mut c, &mut v, t0, secs(8.5) + CEILING);
    check_clean_drain(&mut c, &v, &d, ("SIGTERM", "SIGTERM"), 8.0);
    c.finish(&v);
}

/// The control: with plain TERM the smart shutdown waits for the idle client until the SIGKILL
/// at the deadline (2 s here; issue 11 saw the default 9 s), and the next start has to recover.
/// The case above passes only because the INT step avoids this.
#[test]
fn postgres_smart_shutdown_alone_is_killed() {
    let Some((acct, s)) = cluster() else {
        return;
    };
    let (mut v, net) = postgres(&acct, &s.dir, &["--drain-timeout", "2"]);
    net.wait_ready(&mut v);
    let _client = pg_idle_client(&s.dir);
    let t0 = v.signal(Signal::SIGTERM);
    let mut c = Checks::new();
    let d = end_drain(&mut c, &mut v, t0, secs(2.5) + CEILING);
    eprintln!(
        "control: vigil exited {} {:.2} s after SIGTERM",
        d.code,
        d.took.as_secs_f64()
    );
    assert_eq!(d.code, 128 + 9, "postgres was not killed\n{}", v.dump());
    assert!(d.took >= secs(2.0), "killed after {:?}", d.took);
    assert!(!v.logs_with("forced kill").is_empty(), "{}", v.dump());
    c.finish(&v);

    let (mut v, net) = postgres(&acct, &s.dir, &["--drain-timeout", "8"]);
    net.wait_ready(&mut v);
    assert!(
        stderr_has(&v, "not properly shut down") && stderr_has(&v, "automatic recovery"),
        "the restart after a SIGKILL did not recover\n{}",
        v.dump()
    );
    let t0 = v.signal(Signal::SIGTERM);
    let mut c = Checks::new();
    let d = end_drain(&mut c, &mut v, t0, secs(8.5) + CEILING);
    check_clean_drain(&mut c, &v, &d, ("SIGTERM", "SIGTERM"), 8.0);
    c.finish(&v);
}

/// Sends one command to redis in RESP and returns the first line of the answer.
fn redis_command(args: &[&str]) -> String {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 6379));
    let mut s = TcpStream::connect_timeout(&addr, CEILING).expect("connect to redis");
    s.set_read_timeout(Some(CEILING)).expect("timeout");
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).expect("send to redis");
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") && s.read(&mut byte).expect("read from redis") == 1 {
        answer.push(byte[0]);
    }
    String::from_utf8_lossy(&answer).trim_end().to_string()
}

/// redis as the redis user with `--daemonize no` and a save point: SIGTERM makes it write
/// dump.rdb (holding the key the test set) and exit 0.
#[test]
fn redis_term_saves() {
    const REDIS: &str = "/usr/bin/redis-server";
    let Some(acct) = usable(&[REDIS], "redis") else {
        return;
    };
    let s = Scratch::new();
    chown_tree(&s.dir, &acct);
    let dir = s.dir.to_string_lossy().into_owned();
    let opts = ["--probe-tcp", "127.0.0.1:6379", "--drain-timeout", "5"];
    let cmd = [
        REDIS,
        "--daemonize",
        "no",
        "--bind",
        "127.0.0.1",
        "--port",
        "6379",
        "--dir",
        &dir,
        "--save",
        "3600 1",
        "--appendonly",
        "no",
        "--logfile",
        "",
    ];
    let (mut v, net) = start(server(&acct, &s.dir, &opts, &cmd));
    let mut c = Checks::new();
    net.wait_ready(&mut v);
    check_dropped(&mut c, &v, v.app(), &acct);
    let set = net.run(|| redis_command(&["SET", "vigil-key", "saved-at-term"]));
    assert_eq!(set, "+OK", "SET\n{}", v.dump());
    assert!(
        !s.path("dump.rdb").exists(),
        "redis saved before the SIGTERM"
    );

    let t0 = v.signal(Signal::SIGTERM);
    let d = end_drain(&mut c, &mut v, t0, secs(5.5) + CEILING);
    check_clean_drain(&mut c, &v, &d, ("SIGTERM", "SIGTERM"), 5.0);
    let dump = std::fs::read(s.path("dump.rdb")).unwrap_or_default();
    let holds = |needle: &[u8]| dump.windows(needle.len()).any(|w| w == needle);
    c.check(holds(b"vigil-key") && holds(b"saved-at-term"), || {
        format!("dump.rdb ({} bytes) lacks the key", dump.len())
    });
    for line in ["DB saved on disk", "ready to exit"] {
        c.check(stdout_has(&v, line), || {
            format!("redis did not log {line:?}")
        });
    }
    c.finish(&v);
}
