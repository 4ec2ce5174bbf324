//! The command line: every bad value, flag or env var is one line on stderr, exit 2 and nothing
//! started; flags win over env vars; `--help`, `--version`; arguments after `--` are the app's.

use crate::util::{ANY_PORT, Mode, Scratch, run, vigil};

struct Case<'a> {
    args: Vec<&'a str>,
    env: Option<(&'a str, &'a str)>,
    /// What the error line must mention (case-insensitive).
    needles: Vec<&'a str>,
    /// Whether a command follows (`-- touch <marker>`).
    command: bool,
}

fn case<'a>(args: &[&'a str], needles: &[&'a str]) -> Case<'a> {
    Case {
        args: args.to_vec(),
        env: None,
        needles: needles.to_vec(),
        command: true,
    }
}

fn env_case<'a>(key: &'a str, value: &'a str) -> Case<'a> {
    Case {
        args: Vec::new(),
        env: Some((key, value)),
        needles: vec![key, value],
        command: true,
    }
}

/// Runs each case; returns the description of every case that did not behave.
fn check_errors(cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let s = Scratch::new();
        let mark = s.p("started");
        let mut args = c.args.clone();
        if c.command {
            args.extend(["--", "touch", &mark]);
        }
        let mut b = vigil(&args);
        if let Some((k, v)) = c.env {
            b = b.env(k, v);
        }
        let (code, out, err) = run(b, Mode::Subreaper);
        let what = format!("{:?} env {:?}", c.args, c.env);
        let lower = err.first().map(|l| l.to_lowercase()).unwrap_or_default();
        let missing: Vec<&&str> = c
            .needles
            .iter()
            .filter(|n| !lower.contains(&n.to_lowercase()))
            .collect();
        if code != 2 {
            failures.push(format!("{what}: exit {code}, not 2; stderr {err:?}"));
        } else if err.len() != 1 || err[0].trim().is_empty() {
            failures.push(format!("{what}: stderr is not one line: {err:?}"));
        } else if !missing.is_empty() {
            failures.push(format!("{what}: {:?} does not mention {missing:?}", err[0]));
        }
        if s.path("started").exists() {
            failures.push(format!("{what}: the command was started"));
        }
        if !out.is_empty() {
            failures.push(format!("{what}: stdout {out:?}"));
        }
    }
    failures
}

#[test]
fn bad_flags_exit_2() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = held.local_addr().expect("addr").to_string();
    let no_command = |args: &[&'static str]| {
        let mut c = case(args, &["command"]);
        c.command = false;
        c
    };
    let cases = vec![
        no_command(&[]),
        no_command(&["--"]),
        no_command(&["--drain-timeout", "1"]),
        case(&["--bogus"], &["--bogus"]),
        case(&["--drain-timeout", "-1"], &["--drain-timeout", "-1"]),
        case(&["--drain-timeout", "nan"], &["--drain-timeout", "nan"]),
        case(&["--drain-timeout", "abc"], &["--drain-timeout", "abc"]),
        case(&["--drain-delay", "9"], &["--drain-delay", "9"]),
        case(
            &["--drain-delay", "2", "--drain-timeout", "1"],
            &["--drain-delay", "2"],
        ),
        case(&["--stop-signal", "FOO"], &["--stop-signal", "FOO"]),
        case(
            &["--stop-signal", "KILL"],
            &["--stop-signal", "KILL", "refused"],
        ),
        case(
            &["--stop-signal", "STOP"],
            &["--stop-signal", "STOP", "refused"],
        ),
        case(
            &["--stop-signal", "TERM,INT@9"],
            &["--stop-signal", "INT@9", "drain timeout"],
        ),
        case(
            &["--stop-signal", "TERM,INT@3,QUIT@2"],
            &["--stop-signal", "increase"],
        ),
        case(
            &["--drain-signals", "TERM,KILL"],
            &["--drain-signals", "KILL"],
        ),
        case(&["--rewrite", "HUP"], &["--rewrite", "FROM:TO"]),
        case(&["--rewrite", "TERM:QUIT"], &["--rewrite", "drain signal"]),
        case(&["--user", "nosuchuser"], &["--user", "nosuchuser"]),
        case(&["--user", "root:nosuchgroup"], &["--user", "nosuchgroup"]),
        case(
            &["--probe-tcp", "127.0.0.1:1", "--probe-exec", "true"],
            &["--probe-"],
        ),
        case(&["--log-level", "loud"], &["--log-level", "loud"]),
        case(&["--log-format", "xml"], &["--log-format", "xml"]),
        case(
            &["--health-listen", "notanaddr"],
            &["--health-listen", "notanaddr"],
        ),
        case(&["--health-listen", &busy], &["--health-listen", &busy]),
        case(&["--success-exit", "abc"], &["--success-exit", "abc"]),
        case(&["--probe-interval", "abc"], &["--probe-interval", "abc"]),
        case(&["--probe-failures", "abc"], &["--probe-failures", "abc"]),
        case(&["--startup-grace", "abc"], &["--startup-grace", "abc"]),
        case(
            &["--probe-header", "Host: x"],
            &["--probe-header", "--probe-http"],
        ),
    ];
    let failures = check_errors(&cases);
    drop(held);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn bad_env_vars_exit_2() {
    let cases = vec![
        env_case("VIGIL_DRAIN_TIMEOUT", "abc"),
        env_case("VIGIL_DRAIN_TIMEOUT", "-1"),
        env_case("VIGIL_DRAIN_DELAY", "9"),
        env_case("VIGIL_STOP_SIGNAL", "FOO"),
        env_case("VIGIL_STOP_SIGNAL", "TSTP"),
        env_case("VIGIL_DRAIN_SIGNALS", "CHLD"),
        env_case("VIGIL_REWRITE", "HUP:0,STOP:0"),
        env_case("VIGIL_SINGLE_CHILD", "yes"),
        env_case("VIGIL_USER", "nosuchuser"),
        env_case("VIGIL_LOG_LEVEL", "loud"),
        env_case("VIGIL_LOG_FORMAT", "xml"),
        env_case("VIGIL_SUCCESS_EXIT", "zz"),
        env_case("VIGIL_HEALTH_LISTEN", "notanaddr"),
        env_case("VIGIL_PROBE_INTERVAL", "abc"),
    ];
    let failures = check_errors(&cases);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A flag wins over its env var: the bad env value is never even looked at.
#[test]
fn flag_wins_over_env() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("VIGIL_DRAIN_TIMEOUT", "abc", &["--drain-timeout", "1"]),
        ("VIGIL_DRAIN_DELAY", "abc", &["--drain-delay", "0"]),
        ("VIGIL_LOG_LEVEL", "loud", &["--log-level", "info"]),
        ("VIGIL_LOG_FORMAT", "xml", &["--log-format", "json"]),
        ("VIGIL_STOP_SIGNAL", "FOO", &["--stop-signal", "TERM"]),
        ("VIGIL_SUCCESS_EXIT", "zz", &["--success-exit", "3"]),
        (
            "VIGIL_HEALTH_LISTEN",
            "notanaddr",
            &["--health-listen", ANY_PORT],
        ),
    ];
    for &(key, value, flags) in cases {
        let s = Scratch::new();
        let script = format!("touch {}", s.p("started"));
        let mut args = flags.to_vec();
        args.extend(["--", "sh", "-c", &script]);
        let (code, _, err) = run(vigil(&args).env(key, value), Mode::Subreaper);
        assert_eq!(code, 0, "{key}={value} {flags:?}: {err:#?}");
        assert!(s.path("started").exists(), "{key}={value} {flags:?}");
    }
}

#[test]
fn help_lists_every_flag() {
    let (code, out, err) = run(vigil(&["--help"]), Mode::Subreaper);
    assert_eq!(code, 0, "{err:#?}");
    let text = [out, err].concat().join("\n");
    for flag in crate::util::FLAGS {
        assert!(
            text.contains(flag),
            "--help does not mention {flag}:\n{text}"
        );
    }
}

/// `vigil 0.2.0 (abc1234, x86_64-unknown-linux-gnu)`: version, HEAD's short id, target. A
/// release binary under test (`TEST_BIN`) has its own target; its version must be this one.
#[test]
fn version() {
    let (code, out, err) = run(vigil(&["--version"]), Mode::Subreaper);
    assert_eq!(code, 0, "{err:#?}");
    assert!(err.is_empty(), "{err:#?}");
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=7", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let commit = head.as_deref().unwrap_or("unknown commit");
    let version = env!("CARGO_PKG_VERSION");
    if std::env::var_os("TEST_BIN").is_none() {
        let target = env!("VIGIL_BUILD_TARGET");
        assert_eq!(out, vec![format!("vigil {version} ({commit}, {target})")]);
    } else {
        let prefix = format!("vigil {version} ({commit}, ");
        assert!(
            out.len() == 1 && out[0].starts_with(&prefix) && out[0].ends_with("-linux-musl)"),
            "{out:?}"
        );
    }
}

/// Everything after `--` is the app's, flags included, untouched.
#[test]
fn arguments_after_dashes_are_the_apps() {
    let (code, out, err) = run(
        vigil(&[
            "--",
            "sh",
            "-c",
            r#"printf '[%s]' "$@"; echo"#,
            "x",
            "--help",
            "a b",
            "--drain-timeout",
        ]),
        Mode::Subreaper,
    );
    assert_eq!(code, 0, "{err:#?}");
    assert_eq!(out, vec!["[--help][a b][--drain-timeout]".to_string()]);
}

/// vigil with `env` and `args`, whose app touches a marker and exits 0; asserts it ran and
/// returns vigil's stderr.
fn runs_with_env(env: &[(&str, &str)], args: &[&str]) -> Vec<String> {
    let s = Scratch::new();
    let script = format!("touch {}", s.p("started"));
    let mut all = args.to_vec();
    all.extend(["--", "sh", "-c", &script]);
    let mut b = vigil(&all);
    for (k, v) in env {
        b = b.env(k, v);
    }
    let (code, _, err) = run(b, Mode::Subreaper);
    assert_eq!(code, 0, "{env:?} {args:?}: {err:#?}");
    assert!(s.path("started").exists(), "{env:?} {args:?}: no app");
    err
}

fn json_lines(err: &[String]) -> Vec<serde_json::Value> {
    err.iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// An empty `VIGIL_*` value is unset, so a deployment can switch off what an image set:
/// `VIGIL_HEALTH_LISTEN=` runs without a server (it used to exit 2), and so do empty values of
/// every other variable.
#[test]
fn empty_env_values_are_unset() {
    let env = [
        ("VIGIL_HEALTH_LISTEN", ""),
        ("VIGIL_PROBE_HTTP", ""),
        ("VIGIL_DRAIN_TIMEOUT", ""),
        ("VIGIL_USER", ""),
        ("VIGIL_STOP_SIGNAL", ""),
        ("VIGIL_SUCCESS_EXIT", ""),
        ("VIGIL_LOG_LEVEL", ""),
    ];
    let err = runs_with_env(&env, &[]);
    let logs = json_lines(&err);
    assert!(
        !logs.iter().any(|l| l["msg"] == "health listening"),
        "{err:#?}"
    );
    assert!(logs.iter().any(|l| l["msg"] == "app spawned"), "{err:#?}");
    // An empty flag is unset too, and still wins over its variable.
    let err = runs_with_env(
        &[("VIGIL_HEALTH_LISTEN", "notanaddr")],
        &["--health-listen", ""],
    );
    assert!(
        !json_lines(&err)
            .iter()
            .any(|l| l["msg"] == "health listening"),
        "{err:#?}"
    );
}

/// The probe kind of a running vigil, from its `/readyz` body.
fn probe_kind(env: &[(&str, &str)], args: &[&str]) -> String {
    let mut all = vec!["--health-listen", ANY_PORT];
    all.extend_from_slice(args);
    all.extend(["--", "sh", "-c", crate::util::LOOP]);
    let mut b = vigil(&all);
    for (k, v) in env {
        b = b.env(k, v);
    }
    let v = b.start(Mode::Subreaper);
    let addr = crate::health::at(crate::health::V4, v.health_port());
    let r = crate::health::get(addr, "/readyz");
    crate::health::probe_of(&r)["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("no probe kind: {r:?}"))
        .to_string()
}

/// `VIGIL_PROBE_HTTP=` with `VIGIL_PROBE_TCP=...` switches kinds; a probe flag of one kind
/// replaces every probe kind from the environment (both used to exit 2: two kinds).
#[test]
fn deployments_switch_probe_kinds() {
    let image = ("VIGIL_PROBE_HTTP", "http://127.0.0.1:8080/ping");
    let kind = probe_kind(
        &[
            ("VIGIL_PROBE_HTTP", ""),
            ("VIGIL_PROBE_TCP", "127.0.0.1:5432"),
        ],
        &[],
    );
    assert_eq!(kind, "tcp");
    let kind = probe_kind(&[image], &["--probe-exec", "true"]);
    assert_eq!(kind, "exec");
    let kind = probe_kind(
        &[image, ("VIGIL_PROBE_EXEC", "/bin/false")],
        &["--probe-tcp", "127.0.0.1:5432"],
    );
    assert_eq!(kind, "tcp");
}

/// A repeatable flag given at all replaces its variable's list.
#[test]
fn repeatable_flag_replaces_env_list() {
    let cases: &[(&[&str], &str, i32)] = &[
        (&[], "3", 0),
        (&["--success-exit", "4"], "3", 3),
        (&["--success-exit", "4"], "4", 0),
        (&["--success-exit", ""], "3", 3),
    ];
    for &(flags, exit, want) in cases {
        let mut args = flags.to_vec();
        let script = format!("exit {exit}");
        args.extend(["--", "sh", "-c", &script]);
        let b = vigil(&args).env("VIGIL_SUCCESS_EXIT", "3");
        let (code, _, err) = run(b, Mode::Subreaper);
        assert_eq!(code, want, "{flags:?}, app exits {exit}: {err:#?}");
    }
}

/// An unknown `VIGIL_*` name is one warn line at start-up, naming it (and the known name it is
/// likely a misspelling of), never an error; known names give no such line.
#[test]
fn unknown_env_names_warn() {
    let err = runs_with_env(
        &[
            ("VIGIL_DRAIN_TIMEOUTT", "3"),
            ("VIGIL_FROM_THE_FUTURE", "1"),
            ("VIGIL_DRAIN_TIMEOUT", "4"),
        ],
        &[],
    );
    let warns: Vec<serde_json::Value> = json_lines(&err)
        .into_iter()
        .filter(|l| l["msg"] == "unknown VIGIL_* variable ignored")
        .collect();
    assert_eq!(warns.len(), 2, "{err:#?}");
    assert!(warns.iter().all(|w| w["level"] == "warn"), "{warns:?}");
    assert_eq!(warns[0]["name"], "VIGIL_DRAIN_TIMEOUTT", "{warns:?}");
    assert_eq!(warns[0]["did_you_mean"], "VIGIL_DRAIN_TIMEOUT", "{warns:?}");
    assert_eq!(warns[1]["name"], "VIGIL_FROM_THE_FUTURE", "{warns:?}");
    assert!(warns[1].get("did_you_mean").is_none(), "{warns:?}");
    let err = runs_with_env(
        &[("VIGIL_DRAIN_TIMEOUT", "4"), ("VIGIL_LOG_LEVEL", "info")],
        &[],
    );
    assert!(
        !err.iter().any(|l| l.contains("unknown VIGIL_")),
        "{err:#?}"
    );
}

/// A command-line error is one line in the log format in force: a JSON log line by default or
/// with `json` from the flag or `VIGIL_LOG_FORMAT` (it used to be plain `vigil: ...` whatever
/// the format), a text log line with `text`; for `vigil drill` too. Exit 2, nothing started.
/// Arguments, an environment variable, whether the line is JSON, what it names.
type FormatCase<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>, bool, &'a str);

#[test]
fn config_errors_follow_the_log_format() {
    let cases: &[FormatCase] = &[
        (&["--bogus"], None, true, "--bogus"),
        (
            &["--drain-timeout", "x"],
            Some(("VIGIL_LOG_FORMAT", "json")),
            true,
            "--drain-timeout \"x\"",
        ),
        (
            &["--log-format", "json"],
            Some(("VIGIL_DRAIN_DELAY", "99")),
            true,
            "VIGIL_DRAIN_DELAY=\"99\"",
        ),
        (
            &["--drain-timeout", "x"],
            Some(("VIGIL_LOG_FORMAT", "text")),
            false,
            "--drain-timeout \"x\"",
        ),
        (
            &["--log-format=text", "--bogus"],
            Some(("VIGIL_LOG_FORMAT", "json")),
            false,
            "--bogus",
        ),
        (&["--log-format", "xml"], None, true, "--log-format \"xml\""),
        (
            &["--user", "nosuchuser"],
            Some(("VIGIL_LOG_FORMAT", "text")),
            false,
            "nosuchuser",
        ),
        (
            &["drill", "--hold", "1"],
            None,
            true,
            "--hold \"1\": needs a --probe-tcp",
        ),
        (
            &["drill", "--budget", "0"],
            Some(("VIGIL_LOG_FORMAT", "text")),
            false,
            "--budget \"0\"",
        ),
    ];
    for &(args, env, json, needle) in cases {
        let s = Scratch::new();
        let mark = s.p("started");
        let mut all = args.to_vec();
        all.extend(["--", "touch", &mark]);
        let mut b = vigil(&all);
        if let Some((k, v)) = env {
            b = b.env(k, v);
        }
        let (code, out, err) = run(b, Mode::Subreaper);
        let what = format!("{args:?} {env:?}");
        assert_eq!(code, 2, "{what}: {err:#?}");
        assert_eq!(err.len(), 1, "{what}: {err:#?}");
        assert!(out.is_empty() && !s.path("started").exists(), "{what}");
        match serde_json::from_str::<serde_json::Value>(&err[0]) {
            Ok(line) => {
                assert!(json, "{what}: a JSON line in text format: {}", err[0]);
                assert_eq!(line["level"], "error", "{what}: {line}");
                assert!(line["ts"].is_string(), "{what}: {line}");
                let msg = line["msg"].as_str().unwrap_or_default();
                assert!(msg.contains(needle), "{what}: {msg}");
            }
            Err(_) => {
                assert!(!json, "{what}: not a JSON line: {}", err[0]);
                assert!(err[0].contains(" ERROR vigil: "), "{what}: {}", err[0]);
                assert!(err[0].contains(needle), "{what}: {}", err[0]);
            }
        }
    }
}

/// `--flag=value` works as `--flag value` (argh refused it: "Unrecognized argument"), for the
/// drill's flags too; after `--` it is the app's, untouched.
#[test]
fn flag_equals_value() {
    let (code, out, err) = run(
        vigil(&[
            "--log-format=text",
            "--success-exit=3",
            "--",
            "sh",
            "-c",
            "echo \"$1\"; exit 3",
            "x",
            "--log-format=json",
        ]),
        Mode::Subreaper,
    );
    assert_eq!(code, 0, "--success-exit=3: {err:#?}");
    assert_eq!(out, ["--log-format=json"]);
    assert!(
        !err.is_empty() && json_lines(&err).is_empty(),
        "text lines: {err:#?}"
    );
    let (code, out, err) = run(
        vigil(&[
            "drill",
            "--after=0.2",
            "--budget=5",
            "--",
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep .1; done",
        ]),
        Mode::Subreaper,
    );
    let report: serde_json::Value =
        serde_json::from_str(out.last().map_or("", String::as_str)).expect("a report");
    assert_eq!(report["budget_s"], 5.0, "{report} {err:#?}");
    assert!(code == 0 || code == 1, "{err:#?}");
}

/// `-h` is `--help`; `vigil drill --help` prints the drill's own usage (its flags, then vigil's
/// options by name), no longer vigil's; `vigil probe -h` the probe's.
#[test]
fn short_help_and_the_drills_own() {
    let help = |args: &[&str]| -> String {
        let (code, out, err) = run(vigil(args), Mode::Subreaper);
        assert_eq!(code, 0, "{args:?}: {err:#?}");
        assert!(err.is_empty(), "{args:?}: {err:#?}");
        out.join("\n")
    };
    let main = help(&["-h"]);
    assert_eq!(main, help(&["--help"]));
    assert!(main.starts_with("Usage: vigil ["), "{main}");
    assert!(main.contains("vigil drill --help"), "{main}");
    assert!(!main.contains("--budget"), "{main}");
    let drill = help(&["drill", "--help"]);
    assert_eq!(drill, help(&["drill", "-h"]));
    assert_eq!(drill, help(&["drill", "--user", "nobody", "-h", "--", "x"]));
    let first = drill.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Usage: vigil drill [--after <SECS>] [--budget <SECS>]"),
        "{first}"
    );
    assert!(first.ends_with("[OPTIONS] -- COMMAND [ARGS...]"), "{first}");
    for flag in [
        "--hold <N>",
        "--hold-target <HOST:PORT>",
        "--report <FILE>",
        "budget_s",
    ] {
        assert!(drill.contains(flag), "{flag}: {drill}");
    }
    for flag in crate::util::FLAGS {
        assert!(drill.contains(flag), "the drill takes {flag}: {drill}");
    }
    assert!(!drill.contains("--version"), "{drill}");
    let probe = help(&["probe", "-h"]);
    assert!(probe.starts_with("Usage: vigil probe"), "{probe}");
}

/// `vigil probe` without a target names the missing TARGET (it said "Required positional
/// arguments not provided:" and nothing else), exit 2, one line.
#[test]
fn probe_without_a_target() {
    for args in [&["probe"][..], &["probe", "--timeout=2"]] {
        let (code, out, err) = run(vigil(args), Mode::Subreaper);
        assert_eq!(code, 2, "{args:?}: {err:#?}");
        assert!(out.is_empty());
        assert_eq!(err.len(), 1, "{err:#?}");
        assert!(
            err[0].starts_with("vigil probe: missing TARGET: http://HOST:PORT/PATH or tcp://"),
            "{}",
            err[0]
        );
    }
}

/// A script whose `#!` interpreter is missing fails to exec with ENOENT, as if the script itself
/// were missing: the log says which interpreter (and Windows line endings when that is why),
/// exit 127. In a drill, the report fails with 127.
#[test]
fn a_missing_interpreter_is_named() {
    let s = Scratch::new();
    let cases = [
        (
            "bash-less",
            "#!/nonexistent/bash\necho hi\n",
            "interpreter /nonexistent/bash not found",
        ),
        ("crlf", "#!/bin/sh\r\necho hi\r\n", "windows line endings"),
    ];
    for (name, text, want) in cases {
        let path = s.path(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let p = s.p(name);
        let mut v = vigil(&["--", &p]).start(Mode::Subreaper);
        assert_eq!(v.wait_exit(crate::util::CEILING).code, 127, "{}", v.dump());
        let failed = v.logs_with("app failed to start");
        assert_eq!(failed.len(), 1, "{}", v.dump());
        let error = failed[0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(error.contains(want), "{error}");
        assert!(error.contains(&p.to_lowercase()), "{error}");
        assert_eq!(failed[0]["code"], 127);
    }
    let p = s.p("bash-less");
    let (code, out, _) = run(vigil(&["drill", "--", &p]), Mode::Subreaper);
    assert_eq!(code, 1);
    let report: serde_json::Value =
        serde_json::from_str(out.last().map_or("", String::as_str)).expect("a report");
    assert_eq!(report["exit_status"], 127, "{report}");
}
