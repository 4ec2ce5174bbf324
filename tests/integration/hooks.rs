//! Start-up and clean-up hooks: the `--env-from` seed, the `--pre-start` executables and the
//! `--post-stop` clean-up, each in front where the app runs (own group, clean signal state, the
//! terminal, the dropped user), and the drain around them.
//!
//! Fixtures are `sh` scripts in a scratch directory. A seed's stdout belongs to vigil, so a seed
//! shakes hands on stderr (which vigil passes through) or through a file.

use crate::util::{
    ANY_PORT, CEILING, LOOP, Mode, ProcRef, SLACK, Scratch, printer, require_root, run, secs,
    vigil, wait_until, watch,
};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

both_modes!(
    seed_reaches_the_app,
    secrets_are_never_logged,
    seed_failures_stop_the_start,
    hooks_run_like_the_app,
    hooks_get_the_terminal,
    pre_start_order_output_and_skips,
    pre_start_failure_stops_the_start,
    pre_start_dir_empty_or_missing,
    hook_daemon_is_reaped_and_killed_at_the_deadline,
    sigterm_during_the_seed,
    sigterm_reaches_a_pre_start_hook,
    livez_during_a_slow_seed,
    post_stop_after_the_app_and_its_leftovers,
    post_stop_after_a_drain,
    post_stop_never_outlives_the_deadline,
    post_stop_timeout,
    post_stop_skipped_after_a_forced_kill,
    post_stop_after_exec_failure,
    drill_counts_the_hooks_toward_ready_s,
    the_documented_seed_works,
);

/// An executable `#!/bin/sh` script `name` in `s` (directories created), its path.
fn script(s: &Scratch, name: &str, body: &str) -> String {
    let path = s.path(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_string_lossy().into_owned()
}

/// Shell code writing what the process sees of itself to `out`: `pid P pgrp G tpgid T`,
/// `home H`, then its Uid, Gid, Groups, SigBlk and SigIgn lines (read by an exec'd grep, so
/// they are what vigil gave the process, not what the shell made of it).
fn facts(out: &str) -> String {
    format!(
        "read -r l < /proc/$$/stat; set -- $l; echo \"pid $1 pgrp $5 tpgid $8\" > {out}; \
         echo \"home $HOME\" >> {out}; \
         exec grep -E '^(Uid|Gid|Groups|SigBlk|SigIgn):' /proc/self/status >> {out}"
    )
}

/// The facts [`facts`] wrote: key -> value (`pid`, `pgrp`, `tpgid`, `home`, `Uid`, ...).
fn read_facts(path: &str) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = std::collections::HashMap::new();
    let mut lines = text.lines();
    let first: Vec<&str> = lines.next().expect("a first line").split(' ').collect();
    for pair in first.chunks(2) {
        out.insert(pair[0].to_string(), pair[1].to_string());
    }
    for l in lines {
        let (k, v) = l.split_once([' ', ':']).expect("key value");
        out.insert(k.to_string(), v.trim().to_string());
    }
    out
}

/// Signals the C library reserves (32, 33, 34): nothing can reset them (see core.rs).
const LIBC_RESERVED: u64 = 0b111 << 31;

/// Asserts a hook's facts: its own group, nothing blocked or ignored, and the ids and HOME the
/// app got.
fn assert_like_the_app(
    what: &str,
    f: &std::collections::HashMap<String, String>,
    app: &std::collections::HashMap<String, String>,
) {
    assert_eq!(f["pid"], f["pgrp"], "{what} leads its own group: {f:?}");
    assert_ne!(f["pid"], "1", "{what} is not vigil");
    assert_eq!(
        u64::from_str_radix(&f["SigBlk"], 16),
        Ok(0),
        "{what}: {f:?}"
    );
    let ignored = u64::from_str_radix(&f["SigIgn"], 16).expect("hex") & !LIBC_RESERVED;
    assert_eq!(ignored, 0, "{what} ignores signals: {f:?}");
    for key in ["Uid", "Gid", "Groups", "home"] {
        assert_eq!(f[key], app[key], "{what}: {key} differs from the app's");
    }
}

/// vigil's log lines with `msg`, from stderr lines.
fn logs_in(err: &[String], msg: &str) -> Vec<Value> {
    err.iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["msg"] == msg)
        .collect()
}

/// Waits for a line on vigil's stderr (a seed's or hook's own, passed through).
fn wait_stderr(v: &crate::util::Vigil, line: &str) {
    let what = format!("{line:?} on stderr\n{}", v.dump());
    wait_until(&what, CEILING, || v.stderr().iter().any(|l| l == line));
}

/// `GET path` on vigil's health port: the status code and the JSON body.
fn http_get(port: u16, path: &str) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(secs(3.0))).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if len.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an answer");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (code, serde_json::from_str(body).expect("a JSON body"))
}

/// The seed's lines reach the app's environment: they replace inherited values, keys it does
/// not print keep the image's, comments and blank lines are skipped, values are literal.
fn seed_reaches_the_app(mode: Mode) {
    let s = Scratch::new();
    let seed = script(
        &s,
        "seed",
        "printf '%s\\n' '# from consul' '' 'A=seeded' '  B=two  words ' 'Q=\"quoted\"' 'E=' 'A=last'",
    );
    let app = "echo \"A=$A B=$B Q=$Q E=${E-unset} KEEP=$KEEP\"";
    let (code, out, err) = run(
        vigil(&["--env-from", &seed, "--", "sh", "-c", app])
            .env("A", "image")
            .env("KEEP", "image")
            .env("E", "image"),
        mode,
    );
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(
        out,
        ["A=last B=two  words  Q=\"quoted\" E= KEEP=image"],
        "{err:#?}"
    );
    let seeded = &logs_in(&err, "environment seeded")[0];
    assert_eq!(
        seeded["keys"],
        serde_json::json!(["A", "B", "Q", "E", "A"]),
        "{seeded}"
    );
    let exited = &logs_in(&err, "hook exited")[0];
    assert_eq!(exited["hook"], "env-from", "{exited}");
    assert_eq!(exited["status"], 0, "{exited}");
}

/// A seed carries secrets: neither a value it seeds nor the text of a malformed line appears in
/// vigil's output, at any log level or format; the error names the line number only.
fn secrets_are_never_logged(mode: Mode) {
    let s = Scratch::new();
    let seed = script(&s, "seed", "echo SECRET=hunter2; echo TOKEN=hunter2-token");
    for format in ["json", "text"] {
        let args = [
            "--log-level",
            "debug",
            "--log-format",
            format,
            "--env-from",
            &seed,
        ];
        let app = "echo app saw ${#SECRET} characters";
        let (code, out, err) = run(vigil(&[&args[..], &["--", "sh", "-c", app]].concat()), mode);
        assert_eq!(code, 0, "{err:#?}");
        assert_eq!(out, ["app saw 7 characters"]);
        assert!(!err.join("\n").contains("hunter2"), "{format}: {err:#?}");

        for (bad, line) in [
            ("echo A=1; echo; echo hunter2", 3),
            ("echo export SECRET=hunter2", 1),
        ] {
            let seed = script(&s, "bad-seed", bad);
            let args = [
                "--log-level",
                "debug",
                "--log-format",
                format,
                "--env-from",
                &seed,
            ];
            let (code, out, err) = run(
                vigil(&[&args[..], &["--", "echo", "app ran"]].concat()),
                mode,
            );
            assert_eq!(code, 2, "{bad}: {err:#?}");
            assert!(out.is_empty(), "nothing spawned, nothing printed: {out:?}");
            let all = err.join("\n");
            assert!(!all.contains("hunter2"), "{format} {bad}: {all}");
            assert!(!all.contains("app spawned"), "{all}");
            if format == "json" {
                let e = &logs_in(&err, "env-from output malformed: the app is not started")[0];
                assert_eq!(e["level"], "error", "{e}");
                assert_eq!(e["line"], line, "{e}");
                assert_eq!(logs_in(&err, "exiting")[0]["code"], 2);
            } else {
                assert!(all.contains(&format!("line={line}")), "{all}");
            }
        }
    }
}

/// A seed that exits N, dies of a signal, outruns `--pre-start-timeout` or cannot be run stops
/// the start with N, 128 + S, 124 or 127: logged at error, nothing spawned.
fn seed_failures_stop_the_start(mode: Mode) {
    let cases: [(&str, i32); 4] = [
        ("sh -c 'echo A=1; exit 7'", 7),
        ("sh -c 'kill -USR1 $$'", 128 + 10),
        ("sleep 30", 124),
        ("/nonexistent/seed", 127),
    ];
    for (seed, want) in cases {
        let args = [
            "--pre-start-timeout",
            "0.5",
            "--env-from",
            seed,
            "--",
            "echo",
            "app ran",
        ];
        let t0 = Instant::now();
        let (code, out, err) = run(vigil(&args), mode);
        assert_eq!(code, want, "{seed}: {err:#?}");
        assert!(out.is_empty(), "{seed}: the app ran: {out:?}");
        assert!(logs_in(&err, "app spawned").is_empty());
        let failed: Vec<Value> = err
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["level"] == "error" && v["hook"] == "env-from")
            .collect();
        assert!(!failed.is_empty(), "{seed}: no error line: {err:#?}");
        if want == 124 {
            assert!(t0.elapsed() >= secs(0.5), "timed out early");
            assert_eq!(logs_in(&err, "hook timed out").len(), 1, "{err:#?}");
            let f = &logs_in(&err, "hook failed: the app is not started")[0];
            assert_eq!(f["status"], 124, "{f}");
        }
    }
}

/// The seed, a pre-start hook, the post-stop and the app all run in a group of their own, with
/// nothing blocked or ignored (though vigil inherited ignores), as the `--user`.
fn hooks_run_like_the_app(mode: Mode) {
    if !require_root() {
        return;
    }
    let s = Scratch::new();
    let pre = s.p("pre");
    script(&s, "pre/10-facts", &facts(&s.p("pre.facts")));
    let seed = script(&s, "seed", &facts(&s.p("seed.facts")));
    let post = script(&s, "post", &facts(&s.p("post.facts")));
    let app = script(&s, "app", &facts(&s.p("app.facts")));
    let args = [
        "--user",
        "65534",
        "--env-from",
        &seed,
        "--pre-start",
        &pre,
        "--post-stop",
        &post,
        "--",
        &app,
    ];
    let (code, _, err) = run(vigil(&args).setup("trap '' HUP USR1 PIPE"), mode);
    assert_eq!(code, 0, "{err:#?}");
    let app = read_facts(&s.p("app.facts"));
    assert_eq!(
        app["Uid"].split_whitespace().collect::<Vec<_>>(),
        ["65534"; 4]
    );
    for hook in ["seed", "pre", "post"] {
        let f = read_facts(&s.p(&format!("{hook}.facts")));
        assert_like_the_app(hook, &f, &app);
    }
}

/// With a terminal, each hook is the terminal's foreground group while it runs, as the app is.
fn hooks_get_the_terminal(mode: Mode) {
    let s = Scratch::new();
    let pre = s.p("pre");
    script(&s, "pre/10-facts", &facts(&s.p("pre.facts")));
    let seed = script(&s, "seed", &facts(&s.p("seed.facts")));
    let app = script(&s, "app", &facts(&s.p("app.facts")));
    let args = ["--env-from", &seed, "--pre-start", &pre, "--", &app];
    let mut v = vigil(&args).tty().start(mode);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    for hook in ["seed", "pre", "app"] {
        let f = read_facts(&s.p(&format!("{hook}.facts")));
        assert_eq!(
            f["tpgid"], f["pgrp"],
            "{hook} is not the terminal's foreground: {f:?}"
        );
    }
}

/// Every executable in the directory runs in lexical order, each to completion, its stdout and
/// stderr passed through; a non-executable file and a subdirectory (and what is in it) are
/// skipped with a debug line.
fn pre_start_order_output_and_skips(mode: Mode) {
    let s = Scratch::new();
    script(&s, "pre/20-b", "sleep 0.2; echo b out; echo b err >&2");
    script(&s, "pre/10-a", "sleep 0.2; echo a out");
    script(&s, "pre/B-upper", "echo B out");
    script(&s, "pre/sub/00-inner", "echo inner ran");
    std::fs::write(s.path("pre/05-notes"), "echo notes ran\n").expect("write");
    let args = [
        "--log-level",
        "debug",
        "--pre-start",
        &s.p("pre"),
        "--",
        "echo",
        "app out",
    ];
    let (code, out, err) = run(vigil(&args), mode);
    assert_eq!(code, 0, "{err:#?}");
    // Byte order, as `LC_ALL=C ls`: digits before capitals.
    assert_eq!(out, ["a out", "b out", "B out", "app out"], "{err:#?}");
    assert!(
        err.iter().any(|l| l == "b err"),
        "stderr passed through: {err:#?}"
    );
    let skipped: Vec<String> = logs_in(&err, "pre-start entry skipped")
        .iter()
        .map(|v| {
            format!(
                "{} {}",
                v["path"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or(""),
                v["reason"]
            )
        })
        .collect();
    assert_eq!(
        skipped,
        ["05-notes \"not executable\"", "sub \"a directory\""],
        "{err:#?}"
    );
    for l in logs_in(&err, "pre-start entry skipped") {
        assert_eq!(l["level"], "debug");
    }
    let ran: Vec<Value> = logs_in(&err, "hook exited");
    assert_eq!(ran.len(), 3, "{err:#?}");
}

/// The first failing hook stops the start with its status, logged at error: no later hook and
/// no app runs. A hook over `--pre-start-timeout` fails with 124.
fn pre_start_failure_stops_the_start(mode: Mode) {
    for (body, want) in [("exit 5", 5), ("exec sleep 30", 124)] {
        let s = Scratch::new();
        script(&s, "pre/10-ok", "echo ok ran");
        script(&s, "pre/20-fails", body);
        script(&s, "pre/30-never", "echo never ran");
        let args = [
            "--pre-start-timeout",
            "0.5",
            "--pre-start",
            &s.p("pre"),
            "--",
            "echo",
            "app ran",
        ];
        let (code, out, err) = run(vigil(&args), mode);
        assert_eq!(code, want, "{body}: {err:#?}");
        assert_eq!(out, ["ok ran"], "{body}");
        let failed = &logs_in(&err, "hook failed: the app is not started")[0];
        assert_eq!(failed["level"], "error");
        assert_eq!(failed["hook"], "pre-start");
        assert_eq!(failed["status"], want);
        assert!(
            failed["command"][0]
                .as_str()
                .is_some_and(|c| c.ends_with("20-fails")),
            "{failed}"
        );
        assert!(logs_in(&err, "app spawned").is_empty());
    }
}

/// An empty directory runs nothing; a missing one is a warning; the app starts either way.
fn pre_start_dir_empty_or_missing(mode: Mode) {
    let s = Scratch::new();
    std::fs::create_dir(s.path("empty")).expect("mkdir");
    for (dir, warned) in [(s.p("empty"), false), (s.p("missing"), true)] {
        let (code, out, err) = run(vigil(&["--pre-start", &dir, "--", "echo", "app ran"]), mode);
        assert_eq!(code, 0, "{err:#?}");
        assert_eq!(out, ["app ran"]);
        let warn = logs_in(&err, "pre-start directory missing");
        assert_eq!(warn.len(), usize::from(warned), "{dir}: {err:#?}");
        if warned {
            assert_eq!(warn[0]["level"], "warn");
        }
    }
}

/// A pre-start hook that leaves daemons behind: one that exits is reaped (no zombie), one that
/// ignores SIGTERM lives on beside the app and is killed at the drain deadline, not before;
/// vigil is gone by then + 0.5 s with the app's status and nothing left.
fn hook_daemon_is_reaped_and_killed_at_the_deadline(mode: Mode) {
    let s = Scratch::new();
    let daemon = script(
        &s,
        "daemon",
        &format!("trap '' TERM; echo daemon $$; {LOOP}"),
    );
    script(
        &s,
        "pre/10-daemons",
        &format!("sh -c 'echo short $$; exec sleep 0.3' & setsid {daemon} & exit 0"),
    );
    let app = printer("A", &["TERM"]);
    let args = [
        "--drain-timeout",
        "1",
        "--pre-start",
        &s.p("pre"),
        "--",
        "sh",
        "-c",
        &app,
    ];
    let mut v = vigil(&args).start(mode);
    v.wait_for_line("A ready", CEILING);
    let daemon = v.wait_for_pid_line("daemon ");
    let short = v.wait_for_pid_line("short ");
    let me = v.proc();
    wait_until("the short daemon is reaped", CEILING, || {
        crate::util::stat(short.pid).is_none()
    });
    let t0 = v.signal(Signal::SIGTERM);
    let seen = watch(&[daemon], CEILING, || !me.alive());
    let gone = v.wait_gone(CEILING);
    let dead = seen[0].first_dead.expect("the daemon died");
    assert!(
        dead >= t0 + secs(1.0),
        "the daemon was killed {:?} after SIGTERM",
        dead - t0
    );
    assert!(
        gone <= t0 + secs(1.5) + SLACK,
        "vigil was gone {:?} after SIGTERM",
        gone - t0
    );
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(
        v.wait_exit(CEILING).code,
        0,
        "the app's status\n{}",
        v.dump()
    );
}

/// SIGTERM while a seed that ignores it runs: the drain starts as usual, the seed is killed at
/// the deadline (not before), no app is spawned, vigil is gone by timeout + 0.5 s with 137.
fn sigterm_during_the_seed(mode: Mode) {
    let seed = format!("sh -c \"trap '' TERM; echo seed ready >&2; {LOOP}\"");
    let args = [
        "--drain-timeout",
        "1",
        "--env-from",
        &seed,
        "--",
        "echo",
        "app ran",
    ];
    let mut v = vigil(&args).start(mode);
    wait_stderr(&v, "seed ready");
    let me = v.proc();
    let seed = crate::util::descendants(me.pid)
        .into_iter()
        .filter_map(ProcRef::of)
        .find(|p| p.stat().comm == "sh")
        .expect("the seed runs");
    let t0 = v.signal(Signal::SIGTERM);
    let seen = watch(&[seed], CEILING, || !me.alive());
    let gone = v.wait_gone(CEILING);
    let dead = seen[0].first_dead.expect("the seed died");
    assert!(
        dead >= t0 + secs(1.0),
        "the seed was killed {:?} after SIGTERM",
        dead - t0
    );
    assert!(
        gone <= t0 + secs(1.5) + SLACK,
        "vigil was gone {:?} after SIGTERM",
        gone - t0
    );
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(v.wait_exit(CEILING).code, 137, "{}", v.dump());
    assert!(v.stdout().is_empty(), "the app ran: {:?}", v.stdout());
    assert_eq!(v.logs_with("drain started").len(), 1);
    let fwd = &v.logs_with("signal forwarded")[0];
    assert_eq!(
        fwd["pgid"],
        v.logs_with("hook started")[0]["pid"],
        "the stop signal went to the seed"
    );
}

/// SIGTERM during a pre-start hook reaches it at once as the stop signal; it dies of it, the
/// start stops with 143 (128 + 15), and neither a later hook nor the app runs.
fn sigterm_reaches_a_pre_start_hook(mode: Mode) {
    let s = Scratch::new();
    script(&s, "pre/10-waits", &format!("echo hook ready; {LOOP}"));
    script(&s, "pre/20-never", "echo never ran");
    let args = [
        "--drain-timeout",
        "5",
        "--pre-start",
        &s.p("pre"),
        "--",
        "echo",
        "app ran",
    ];
    let mut v = vigil(&args).start(mode);
    v.wait_for_line("hook ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 143, "{}", v.dump());
    assert!(exit.at - t0 < secs(2.0), "took {:?}", exit.at - t0);
    assert_eq!(v.stdout(), ["hook ready"]);
    assert!(v.logs_with("forced kill").is_empty(), "{}", v.dump());
    let ended = &v.logs_with("hook exited: drain, the app is not started")[0];
    assert_eq!(ended["signal"], "SIGTERM", "{ended}");
}

/// While a slow seed runs, `/livez` is 200 and `/readyz` 503, both with phase `starting`.
fn livez_during_a_slow_seed(mode: Mode) {
    let seed = "sh -c 'echo seed ready >&2; exec sleep 30'";
    let args = [
        "--health-listen",
        ANY_PORT,
        "--drain-timeout",
        "1",
        "--env-from",
        seed,
        "--",
        "echo",
        "app ran",
    ];
    let mut v = vigil(&args).start(mode);
    wait_stderr(&v, "seed ready");
    let port = v.health_port();
    let (code, body) = http_get(port, "/livez");
    assert_eq!(
        (code, body["phase"].as_str()),
        (200, Some("starting")),
        "{body}"
    );
    assert_eq!(body["status"], "ok");
    let (code, body) = http_get(port, "/readyz");
    assert_eq!(
        (code, body["phase"].as_str()),
        (503, Some("starting")),
        "{body}"
    );
    assert_eq!(body["status"], "fail");
    let changed = &v.logs_with("health changed")[0];
    assert_eq!(
        (&changed["live"], &changed["ready"], &changed["phase"]),
        (
            &Value::Bool(true),
            &Value::Bool(false),
            &Value::from("starting")
        ),
        "{changed}"
    );
    v.signal(Signal::SIGTERM);
    assert_eq!(
        v.wait_exit(CEILING).code,
        143,
        "sleep died of the stop signal\n{}",
        v.dump()
    );
    assert!(v.stdout().is_empty());
}

/// The post-stop runs once the app and what it left are gone, with the seeded environment; its
/// status is logged (a warn for non-zero) and vigil still exits with the app's.
fn post_stop_after_the_app_and_its_leftovers(mode: Mode) {
    let s = Scratch::new();
    let (set, done) = (s.p("leftover-set"), s.p("leftover-done"));
    // The app exits once its leftover ignores TERM, so vigil's SIGTERM cannot come first.
    let app = format!(
        "(trap '' TERM; touch {set}; sleep 0.3; touch {done}) & \
         while ! test -f {set}; do sleep 0.01; done; exit 3"
    );
    let post = format!("sh -c 'test -f {done} && echo post saw the leftover gone, A=$A; exit 9'");
    let args = [
        "--drain-timeout",
        "3",
        "--env-from",
        "echo A=seeded",
        "--post-stop",
        &post,
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (code, out, err) = run(vigil(&args), mode);
    assert_eq!(code, 3, "{err:#?}");
    assert_eq!(out, ["post saw the leftover gone, A=seeded"], "{err:#?}");
    let exited: Vec<Value> = logs_in(&err, "hook exited")
        .into_iter()
        .filter(|v| v["hook"] == "post-stop")
        .collect();
    assert_eq!(exited[0]["status"], 9, "{err:#?}");
    assert_eq!(exited[0]["level"], "warn");
    assert_eq!(logs_in(&err, "exiting")[0]["code"], 3);
}

/// After a drain in which the app stopped in time, the post-stop runs; vigil exits with the
/// app's status.
fn post_stop_after_a_drain(mode: Mode) {
    let app = printer("A", &["TERM"]);
    let args = [
        "--drain-timeout",
        "3",
        "--post-stop",
        "echo post ran",
        "--",
        "sh",
        "-c",
        &app,
    ];
    let mut v = vigil(&args).start(mode);
    v.wait_for_line("A ready", CEILING);
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    // The drain's SIGCONT after the TERM reaches the app too when it is slow to exit.
    let out: Vec<String> = v.stdout().into_iter().filter(|l| l != "A CONT").collect();
    assert_eq!(out, ["A ready", "A TERM", "post ran"]);
}

/// A post-stop that runs on past the drain deadline is killed there: vigil is gone by
/// deadline + 0.5 s with the app's status, nothing left.
fn post_stop_never_outlives_the_deadline(mode: Mode) {
    let app = printer("A", &["TERM"]);
    let post = "sh -c 'echo post ready; trap \"\" TERM; exec sleep 30'";
    let args = [
        "--drain-timeout",
        "1",
        "--post-stop-timeout",
        "20",
        "--post-stop",
        post,
        "--",
        "sh",
        "-c",
        &app,
    ];
    let mut v = vigil(&args).start(mode);
    v.wait_for_line("A ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    v.wait_for_line("post ready", CEILING);
    let gone = v.wait_gone(CEILING);
    assert!(
        gone >= t0 + secs(1.0),
        "gone {:?} after SIGTERM, before the deadline",
        gone - t0
    );
    assert!(
        gone <= t0 + secs(1.5) + SLACK,
        "vigil was gone {:?} after SIGTERM",
        gone - t0
    );
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    let post: Vec<Value> = v
        .logs_with("hook exited")
        .into_iter()
        .filter(|l| l["hook"] == "post-stop")
        .collect();
    assert_eq!(post.len(), 1, "{}", v.dump());
    assert_eq!(post[0]["signal"], "SIGKILL", "{}", v.dump());
}

/// Without a drain the post-stop gets `--post-stop-timeout`, and what it leaves is killed.
fn post_stop_timeout(mode: Mode) {
    let post = "sh -c 'setsid sleep 30 & echo post ready; exec sleep 30'";
    let args = [
        "--post-stop-timeout",
        "0.5",
        "--post-stop",
        post,
        "--",
        "true",
    ];
    let mut v = vigil(&args).start(mode);
    v.wait_for_line("post ready", CEILING);
    let t0 = Instant::now();
    let gone = v.wait_gone(CEILING);
    assert!(
        gone - t0 <= secs(1.0) + SLACK,
        "vigil was gone {:?} after the post-stop started",
        gone - t0
    );
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(v.wait_exit(CEILING).code, 0);
    let started = &v.logs_with("hook started")[0];
    let started_at = started["ts"].as_str().expect("ts");
    let killed = &v.logs_with("post-stop over: killing what is left")[0];
    assert_eq!(killed["level"], "warn");
    assert!(killed["ts"].as_str().expect("ts") >= started_at);
}

/// After a forced kill at the drain deadline the post-stop is skipped with a warning, and vigil
/// is gone by the deadline + 0.5 s with 137.
fn post_stop_skipped_after_a_forced_kill(mode: Mode) {
    let s = Scratch::new();
    let marker = s.p("post-ran");
    let post = format!("touch {marker}");
    let app = format!("trap '' TERM; echo ready; {LOOP}");
    let args = [
        "--drain-timeout",
        "1",
        "--post-stop",
        &post,
        "--",
        "sh",
        "-c",
        &app,
    ];
    let mut v = vigil(&args).start(mode);
    v.wait_for_line("ready", CEILING);
    let t0 = v.signal(Signal::SIGTERM);
    let gone = v.wait_gone(CEILING);
    assert!(
        gone <= t0 + secs(1.5) + SLACK,
        "vigil was gone {:?} after SIGTERM",
        gone - t0
    );
    assert_eq!(v.wait_exit(CEILING).code, 137, "{}", v.dump());
    assert!(!s.path("post-ran").exists(), "the post-stop ran");
    let skipped = &v.logs_with("post-stop skipped")[0];
    assert_eq!(skipped["level"], "warn", "{skipped}");
}

/// An app that cannot be executed: the post-stop still runs, and vigil exits 127.
fn post_stop_after_exec_failure(mode: Mode) {
    let (code, out, err) = run(
        vigil(&["--post-stop", "echo post ran", "--", "/nonexistent/app"]),
        mode,
    );
    assert_eq!(code, 127, "{err:#?}");
    assert_eq!(out, ["post ran"]);
}

/// `vigil drill`: the time spent in the hooks counts toward `ready_s`.
fn drill_counts_the_hooks_toward_ready_s(mode: Mode) {
    let s = Scratch::new();
    script(&s, "pre/10-slow", "sleep 0.6");
    let app = format!("trap 'exit 0' TERM; {LOOP}");
    let args = [
        "drill",
        "--after",
        "0.2",
        "--pre-start",
        &s.p("pre"),
        "--",
        "sh",
        "-c",
        &app,
    ];
    let (code, out, err) = run(vigil(&args), mode);
    let report: Value = serde_json::from_str(out.last().expect("a report")).expect("JSON");
    let ready = report["ready_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("{report}\n{err:#?}"));
    assert!(
        ready >= 0.8,
        "ready_s {ready} leaves out the hook's 0.6 s: {report}"
    );
    assert!(ready < 5.0, "{report}");
    assert_eq!(report["leftover"], 0, "{report}");
    assert!(code == 0 || code == 1, "{code}");
}

/// `--help` names the hooks' flags and variables.
#[test]
fn help_lists_the_hooks() {
    let (code, out, err) = run(vigil(&["--help"]), Mode::Subreaper);
    assert_eq!(code, 0, "{err:#?}");
    let text = out.join("\n");
    for flag in [
        "--env-from",
        "--pre-start",
        "--pre-start-timeout",
        "--post-stop",
        "--post-stop-timeout",
        "VIGIL_ENV_FROM",
        "VIGIL_PRE_START",
        "VIGIL_POST_STOP_TIMEOUT",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

/// The sample seed in docs/containers.md ("The `$ENVIRONMENT_INIT` seed"), run as written: the
/// keys the environment's script sets reach the app, the others keep the image's values, and
/// without `ENVIRONMENT_INIT` every value is the image's.
fn the_documented_seed_works(mode: Mode) {
    let doc = include_str!("../../docs/containers.md");
    let section = doc
        .split("### The `$ENVIRONMENT_INIT` seed")
        .nth(1)
        .expect("the seed section");
    let body = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    let s = Scratch::new();
    let seed = s.p("seed");
    std::fs::write(&seed, body).expect("write seed");
    std::fs::set_permissions(&seed, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        s.path("init.sh"),
        "DB_HOST=db.staging.internal\nexport LOG_LEVEL='debug with spaces'\n",
    )
    .expect("write init");
    let app = "echo \"$DB_HOST|$DB_PORT|$LOG_LEVEL\"";
    for (init, want) in [
        (
            Some(s.p("init.sh")),
            "db.staging.internal|5432|debug with spaces",
        ),
        (None, "localhost|5432|info"),
    ] {
        let mut b = vigil(&["--env-from", &seed, "--", "sh", "-c", app])
            .env("DB_HOST", "localhost")
            .env("DB_PORT", "5432")
            .env("LOG_LEVEL", "info");
        if let Some(init) = &init {
            b = b.env("ENVIRONMENT_INIT", init);
        }
        let (code, out, err) = run(b, mode);
        assert_eq!(code, 0, "{err:#?}");
        assert_eq!(out, [want], "{init:?}: {err:#?}");
    }
}
