//! Every signal (issue 11, points 2 to 5 and 9): no catchable signal stops or kills vigil and
//! every one another process sends is passed on, real-time ones included; signals vigil raised
//! for itself are not; `--rewrite`, `--single-child`, the stop steps of `--stop-signal`,
//! `--drain-signals`; leftovers of a drain get SIGTERM at once; an app that daemonized is named.
//!
//! The apps are `sh` scripts that trap signals by number and print `got N`; the test sends one
//! signal, waits for its line, then sends the next, so no two standard signals merge.

use crate::util::{
    ANY_PORT, CEILING, LOOP, Mode, Scratch, can_unshare, printer, require, secs, vigil, vigil_bin,
    wait_until,
};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Instant;

both_modes!(
    every_signal_is_forwarded,
    own_sigpipe_is_not_forwarded,
    rewrite,
    single_child,
    stop_steps_escalate,
    stopped_app_gets_cont,
    another_drain_signal,
    drain_leftovers_get_term_at_once,
    daemonized_app_is_named,
);

/// Every signal the contract forwards, plus those it does not name but that `kill` can still
/// send (ILL, TRAP, BUS, FPE, SEGV, PIPE): everything catchable but the drain signals (TERM,
/// INT), SIGCHLD and the C library's 32 and 33.
fn forwarded_numbers() -> Vec<i32> {
    (1..=64)
        .filter(|n| ![2, 9, 15, 17, 19, 32, 33].contains(n))
        .collect()
}

/// A hex mask field (`SigBlk`, ...) of a `status` file.
fn status_hex_of(path: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {path}"));
    u64::from_str_radix(v.trim(), 16).expect("a hex mask")
}

/// Whether some process holds the read end of the pipe or fifo `link` (an fd's link) open.
fn pipe_has_reader(link: &str) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs
        .filter_map(|p| p.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                return false;
            };
            fds.filter_map(|fd| fd.ok()).any(|fd| {
                let target = std::fs::read_link(fd.path()).unwrap_or_default();
                let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
                let flags = std::fs::read_to_string(info).unwrap_or_default();
                let read_only = flags
                    .lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
                    .is_some_and(|f| f & i64::from(libc::O_ACCMODE) == i64::from(libc::O_RDONLY));
                target.to_string_lossy() == link && read_only
            })
        })
}

/// `kill -N pid` with any signal number (nix's `Signal` has no real-time ones), from a process
/// of its own, as an operator's `kill` or a runtime would.
fn send(pid: i32, sig: i32) {
    let st = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid}: {st:?}");
}

/// A shell app that prints `got N` for each of `numbers` and exits `code` on SIGTERM. Core
/// dumps are off: its background `sleep` dies of SIGQUIT, SIGSEGV and the like.
fn reporter(numbers: &[i32], code: i32) -> String {
    let mut s = String::from("ulimit -c 0; ");
    for n in numbers {
        s.push_str(&format!("trap 'echo got {n}' {n}; "));
    }
    s.push_str(&format!("trap 'exit {code}' TERM; echo ready; {LOOP}"));
    s
}

fn count(v: &crate::util::Vigil, line: &str) -> usize {
    v.stdout().iter().filter(|l| *l == line).count()
}

/// Every catchable signal but the drain signals and SIGCHLD, sent to vigil one by one, reaches
/// the app (RTMIN = 34, RTMIN+3, RTMAX = 64 and all between); 32 and 33 are taken but not
/// passed on; vigil runs on throughout, with every signal blocked on every thread (the health
/// server and the probe's included), and exits with the app's status afterwards.
fn every_signal_is_forwarded(mode: Mode) {
    every_signal(vigil_bin(), mode);
}

/// The same with the static musl build as a subreaper: musl unblocks its own signals (33, 34)
/// in the main thread when it starts the first thread, which glibc does not.
#[test]
fn every_signal_static_build() {
    match crate::runc::static_vigil() {
        Ok(path) => every_signal(&path.to_string_lossy(), Mode::Subreaper),
        Err(reason) => {
            require(false, reason);
        }
    }
}

fn every_signal(program: &str, mode: Mode) {
    let numbers = forwarded_numbers();
    let app = reporter(&numbers, 7);
    let args = [
        "--health-listen",
        ANY_PORT,
        "--probe-exec",
        "true",
        "--probe-interval",
        "60",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let mut v = vigil(&args).program(program).start(mode);
    v.wait_for_line("ready", CEILING);
    v.health_port();
    let me = v.pid();
    wait_until("the checker thread runs", CEILING, || {
        std::fs::read_dir(format!("/proc/{me}/task")).map_or(0, |d| d.count()) >= 3
    });
    // Everything but KILL (9) and STOP (19), 32 to 34 included, on every other thread: they
    // inherit the main thread's mask. (The main thread's own reads as 0 while it sleeps in
    // rt_sigtimedwait, which unblocks what it waits for; the signals below show it.)
    let all_but_kill_stop: u64 = !((1 << 8) | (1 << 18));
    let threads: Vec<i32> = std::fs::read_dir(format!("/proc/{me}/task"))
        .expect("task dir")
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&tid| tid != me)
        .collect();
    assert!(
        threads.len() >= 2,
        "the health and checker threads: {threads:?}"
    );
    for tid in threads {
        let blocked = status_hex_of(&format!("/proc/{me}/task/{tid}/status"), "SigBlk");
        assert_eq!(
            blocked, all_but_kill_stop,
            "SigBlk of vigil's thread {tid}: {blocked:x}"
        );
    }
    for n in numbers {
        send(me, n);
        v.wait_for_line(&format!("got {n}"), CEILING);
        assert!(v.proc().alive(), "vigil died of signal {n}\n{}", v.dump());
    }
    for n in [32, 33] {
        send(me, n);
    }
    // One more round trip, so 32 and 33 were taken by now.
    send(me, 34);
    wait_until("the app got a second RTMIN", CEILING, || {
        count(&v, "got 34") == 2
    });
    assert!(
        v.proc().alive(),
        "vigil died of signal 32 or 33\n{}",
        v.dump()
    );
    assert!(v.logs_with("drain started").is_empty(), "{}", v.dump());
    let t0 = v.signal(Signal::SIGTERM);
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 7, "the app's status\n{}", v.dump());
    assert!(exit.at - t0 < secs(3.0), "took {:?}", exit.at - t0);
    for n in forwarded_numbers() {
        assert_eq!(
            count(&v, &format!("got {n}")),
            if n == 34 { 2 } else { 1 },
            "signal {n}"
        );
    }
}

/// vigil's stderr is a pipe nobody reads any more: each of its log lines raises a SIGPIPE for
/// vigil itself (SI_USER with vigil's own pid), which it must not pass on, while a SIGPIPE
/// another process sends is passed on as any other.
fn own_sigpipe_is_not_forwarded(mode: Mode) {
    if !require(
        can_unshare(),
        "the namespace's first shell breaks vigil's stderr",
    ) {
        return;
    }
    let s = Scratch::new();
    let fifo = s.p("stderr");
    // The reader opens the fifo (so the writer's open returns) and closes it at once.
    let setup = format!("mkfifo {fifo} && {{ (exec 3<{fifo}) & exec 2>{fifo}; }} || exit 97");
    // The app's stderr is broken too: it keeps its own writes (a shell's "User defined signal
    // 1" for its killed `sleep`) off it, or it would raise SIGPIPEs of its own.
    let app = format!("exec 2>/dev/null; {}", reporter(&[10, 13], 0));
    let mut v = vigil(&["--log-level", "debug", "--", "sh", "-c", &app])
        .setup(&setup)
        .start(mode);
    v.wait_for_line("ready", CEILING);
    let me = v.pid();
    // Every write to it raises SIGPIPE: a pipe no process reads.
    use std::os::unix::fs::FileTypeExt;
    let fd2 = format!("/proc/{me}/fd/2");
    let fifo = std::fs::metadata(&fd2).expect("fd 2").file_type().is_fifo();
    assert!(fifo, "vigil's stderr is not a pipe");
    let stderr = std::fs::read_link(&fd2).expect("fd 2");
    assert!(
        !pipe_has_reader(&stderr.to_string_lossy()),
        "someone reads vigil's stderr"
    );
    // Each forward writes a debug line, which raises the next SIGPIPE.
    for round in 1..=3 {
        send(me, 10);
        wait_until("the app got USR1", CEILING, || count(&v, "got 10") == round);
    }
    assert_eq!(
        count(&v, "got 13"),
        0,
        "vigil passed on its own SIGPIPE\n{}",
        v.dump()
    );
    send(me, 13);
    v.wait_for_line("got 13", CEILING);
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    assert_eq!(count(&v, "got 13"), 1, "{}", v.dump());
    assert!(v.stderr().is_empty(), "stderr was to be broken");
}

/// `--rewrite HUP:0 --rewrite USR1:USR2` (as PID 1) or `VIGIL_REWRITE` (as a subreaper): HUP is
/// dropped, USR1 goes on as USR2, WINCH as itself.
fn rewrite(mode: Mode) {
    let app = reporter(&[1, 10, 12, 28], 0);
    let b = match mode {
        Mode::Pid1 => vigil(&[
            "--rewrite",
            "HUP:0",
            "--rewrite",
            "USR1:USR2",
            "--",
            "sh",
            "-c",
            &app,
        ]),
        Mode::Subreaper => vigil(&["--", "sh", "-c", &app]).env("VIGIL_REWRITE", "HUP:0,10:12"),
    };
    let mut v = b.start(mode);
    v.wait_for_line("ready", CEILING);
    let me = v.pid();
    for n in [1, 10] {
        send(me, n);
    }
    send(me, 28);
    v.wait_for_line("got 28", CEILING);
    v.wait_for_line("got 12", CEILING);
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    assert_eq!(count(&v, "got 1"), 0, "HUP was not dropped\n{}", v.dump());
    assert_eq!(
        count(&v, "got 10"),
        0,
        "USR1 was not rewritten\n{}",
        v.dump()
    );
    assert_eq!(count(&v, "got 12"), 1, "{}", v.dump());
}

/// `--single-child` (as PID 1) or `VIGIL_SINGLE_CHILD=1`: forwarded signals and the stop signal
/// reach the app only, not another member of its group; that member, which ignores SIGTERM, is
/// still SIGKILLed at the deadline.
fn single_child(mode: Mode) {
    let app = format!(
        "env --default-signal=INT,QUIT sh -c '{}' & {}",
        printer("B", &[]),
        printer("A", &["TERM"])
    );
    let b = match mode {
        Mode::Pid1 => vigil(&[
            "--single-child",
            "--drain-timeout",
            "1",
            "--",
            "sh",
            "-c",
            &app,
        ]),
        Mode::Subreaper => {
            vigil(&["--drain-timeout", "1", "--", "sh", "-c", &app]).env("VIGIL_SINGLE_CHILD", "1")
        }
    };
    let mut v = b.start(mode);
    v.wait_for_line("A ready", CEILING);
    v.wait_for_line("B ready", CEILING);
    for (sig, name) in [(Signal::SIGHUP, "HUP"), (Signal::SIGWINCH, "WINCH")] {
        v.signal(sig);
        v.wait_for_line(&format!("A {name}"), CEILING);
    }
    let t0 = v.signal(Signal::SIGTERM);
    v.wait_for_line("A TERM", CEILING);
    let gone = v.wait_gone(CEILING);
    let out = v.stdout();
    assert!(
        !out.iter().any(|l| l == "B HUP" || l == "B WINCH"),
        "a forwarded signal reached the group\n{}",
        v.dump()
    );
    assert!(
        gone >= t0 + secs(1.0),
        "B was gone {:?} after SIGTERM",
        gone - t0
    );
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(v.wait_exit(CEILING).code, 0, "A's status\n{}", v.dump());
    let fwd = v.wait_for_log("signal forwarded", |l| l["reason"] == "drain", CEILING);
    assert!(fwd["pid"].is_number() && fwd["pgid"].is_null(), "{fwd}");
    assert_eq!(v.logs_with("forced kill").len(), 1, "{}", v.dump());
}

/// `--stop-signal TERM,INT@1`: an app that ignores SIGTERM but exits on SIGINT ends one second
/// after the first forward, far from the 9 s deadline; each step logged at info.
fn stop_steps_escalate(mode: Mode) {
    // `trap :` rather than `trap ''`, so the loop's `sleep` does not inherit an ignored TERM
    // and outlive the app (vigil would rightly wait for it).
    let app = format!("trap : TERM; trap 'exit 3' INT; echo ready; {LOOP}");
    let args = ["--stop-signal", "TERM,INT@1", "--", "sh", "-c", &app];
    let mut v = vigil(&args).start(mode);
    v.wait_for_line("ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 3, "{}", v.dump());
    let took = exit.at - t0;
    assert!(took >= secs(1.0), "SIGINT came {took:?} after SIGTERM");
    assert!(took < secs(3.0), "vigil exited {took:?} after SIGTERM");
    let steps = v.logs_with("signal forwarded");
    let seen: Vec<(&str, u64, &str)> = steps
        .iter()
        .map(|l| {
            let signal = l["signal"].as_str().unwrap_or("");
            (
                signal,
                l["step"].as_u64().unwrap_or(0),
                l["level"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("SIGTERM", 1, "info"), ("SIGINT", 2, "info")],
        "{}",
        v.dump()
    );
    assert!(v.logs_with("forced kill").is_empty(), "{}", v.dump());
    eprintln!(
        "FIGURE stop_steps_escalate/{}: exit {took:?} after SIGTERM",
        mode.name()
    );
}

/// A stopped app gets the stop signal, then SIGCONT, so it acts on it at once instead of
/// waiting, frozen, for the SIGKILL.
fn stopped_app_gets_cont(mode: Mode) {
    let app = format!("trap 'echo got TERM; exit 4' TERM; echo ready; {LOOP}");
    let mut v = vigil(&["--drain-timeout", "5", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("ready", CEILING);
    let app = v.app();
    nix::sys::signal::kill(Pid::from_raw(app.pid), Signal::SIGSTOP).expect("stop the app");
    wait_until("the app is stopped", CEILING, || app.stat().state == 'T');
    let t0 = v.signal(Signal::SIGTERM);
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 4, "{}", v.dump());
    assert!(exit.at - t0 < secs(2.5), "took {:?}", exit.at - t0);
    v.wait_for_line("got TERM", CEILING);
    assert!(v.logs_with("forced kill").is_empty(), "{}", v.dump());
}

/// `GET /readyz` on 127.0.0.1:`port`: the status code.
fn readyz(port: u16) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(secs(3.0))).expect("timeout");
    write!(
        s,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an answer: {answer:?}"))
}

/// `VIGIL_DRAIN_SIGNALS=TERM,INT,QUIT` (nginx's STOPSIGNAL): a SIGQUIT starts a drain, so
/// readiness fails at once, and after the delay it reaches the app as itself.
fn another_drain_signal(mode: Mode) {
    let app = format!(
        "trap 'echo got QUIT $(date +%s.%N); exit 0' QUIT; trap 'echo got TERM' TERM; \
         echo ready; {LOOP}"
    );
    let args = [
        "--health-listen",
        ANY_PORT,
        "--drain-delay",
        "1",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let mut v = vigil(&args)
        .env("VIGIL_DRAIN_SIGNALS", "TERM,INT,QUIT")
        .start(mode);
    v.wait_for_line("ready", CEILING);
    let port = v.health_port();
    wait_until("ready", CEILING, || readyz(port) == 200);
    let t0 = v.signal(Signal::SIGQUIT);
    wait_until("/readyz fails", CEILING, || readyz(port) == 503);
    let failed = t0.elapsed();
    let wall: f64 = v
        .wait_for_prefix("got QUIT ", CEILING)
        .trim()
        .parse()
        .expect("a time");
    let quit_at = crate::util::instant_of_wall(wall);
    assert!(
        failed < secs(1.0),
        "readiness failed {failed:?} after SIGQUIT"
    );
    assert!(
        quit_at >= t0 + secs(1.0),
        "QUIT reached the app before the delay"
    );
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    assert_eq!(
        v.logs_with("drain started")[0]["signal"],
        "SIGQUIT",
        "{}",
        v.dump()
    );
    let fwd = v.wait_for_log("signal forwarded", |l| l["reason"] == "drain", CEILING);
    assert_eq!(fwd["signal"], "SIGQUIT", "{fwd}");
    assert!(
        !v.stdout().contains(&"got TERM".to_string()),
        "{}",
        v.dump()
    );
}

/// The app exits 1 ms after SIGTERM, leaving a `setsid` helper outside its group that exits on
/// SIGTERM: the helper gets SIGTERM at once and vigil is gone long before the 9 s deadline.
fn drain_leftovers_get_term_at_once(mode: Mode) {
    let helper = format!(
        "trap 'echo helper got TERM; exit 0' TERM; echo helper $$; {}",
        LOOP
    );
    let app = format!(
        "setsid sh -c {} & trap 'sleep 0.001; exit 0' TERM; echo ready; {LOOP}",
        crate::util::sh_quote(&helper)
    );
    let mut v = vigil(&["--drain-timeout", "9", "--", "sh", "-c", &app]).start(mode);
    v.wait_for_line("ready", CEILING);
    v.wait_for_prefix("helper ", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    let gone = v.wait_gone(CEILING);
    let took = gone - t0;
    assert!(
        took < secs(4.5),
        "vigil exited {took:?} after SIGTERM\n{}",
        v.dump()
    );
    assert!(
        v.stdout().contains(&"helper got TERM".to_string()),
        "{}",
        v.dump()
    );
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    let term = v.wait_for_log("terminating leftovers", |_| true, CEILING);
    assert_eq!(term["level"], "info", "{term}");
    assert!(v.logs_with("forced kill").is_empty(), "{}", v.dump());
    eprintln!(
        "FIGURE drain_leftovers_get_term_at_once/{}: vigil gone {took:?} after SIGTERM \
         (deadline 9 s)",
        mode.name()
    );
}

/// An app that puts a process in the background (a `setsid sleep`) and exits 0: a warn line
/// counts what it left and says it may have daemonized; the leftover gets SIGTERM and vigil
/// exits 0 at once.
fn daemonized_app_is_named(mode: Mode) {
    let mut v = vigil(&["--", "sh", "-c", "setsid sleep 100 & echo started; exit 0"]).start(mode);
    let t0 = Instant::now();
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 0, "{}", v.dump());
    assert!(exit.at - t0 < secs(3.0), "took {:?}", exit.at - t0);
    let warn = v.wait_for_log("terminating leftovers", |_| true, CEILING);
    assert_eq!(warn["level"], "warn", "{warn}");
    assert!(warn["count"].as_u64() >= Some(1), "{warn}");
    let hint = warn["hint"].as_str().unwrap_or("");
    for needle in ["daemonized", "daemon off;", "--daemonize no"] {
        assert!(hint.contains(needle), "{hint}");
    }
}
