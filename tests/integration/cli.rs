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

#[test]
fn version() {
    let (code, out, err) = run(vigil(&["--version"]), Mode::Subreaper);
    assert_eq!(code, 0, "{err:#?}");
    let text = [out, err].concat().join("\n");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
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
