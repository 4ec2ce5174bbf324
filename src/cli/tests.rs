//! `cli`'s unit tests: precedence, validation and every exit-2 case, with a made-up environment.

use super::*;
use std::collections::HashMap;

fn os(args: &[&str]) -> Vec<OsString> {
    std::iter::once("vigil")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect()
}

fn run_with(args: &[&str], env: &[(&str, &str)]) -> Result<Config, Error> {
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match parse(&os(args), &|k| map.get(k).cloned())? {
        Command::Run(c) => Ok(c),
        other => panic!("not a run: {other:?}"),
    }
}

fn err(args: &[&str], env: &[(&str, &str)]) -> String {
    run_with(args, env).unwrap_err().to_string()
}

#[test]
fn defaults() {
    let c = run_with(&["--", "app", "-x"], &[]).unwrap();
    assert_eq!(c.drain_timeout, Some(Duration::from_secs(9)));
    assert_eq!(c.drain_delay, Duration::ZERO);
    assert_eq!(c.probe_interval, Duration::from_secs(5));
    assert_eq!(c.probe_timeout, Duration::from_secs(1));
    assert_eq!(c.probe_failures, 3);
    assert_eq!(c.startup_grace, Duration::from_secs(60));
    assert_eq!(c.startup_interval, Duration::from_millis(100));
    assert_eq!(c.log_format, Format::Json);
    assert_eq!(c.log_level, Level::Info);
    assert_eq!(c.signals, SignalConfig::default());
    assert!(c.success_exit.is_empty() && c.user.is_none() && c.probe.is_none());
    assert!(!c.allow_setuid);
    assert_eq!(c.command, vec![OsString::from("app"), OsString::from("-x")]);
}

#[test]
fn command_without_double_dash_keeps_its_flags() {
    let c = run_with(
        &["--drain-timeout", "1", "sh", "-c", "--drain-timeout"],
        &[],
    )
    .unwrap();
    assert_eq!(c.drain_timeout, Some(Duration::from_secs(1)));
    assert_eq!(c.command.len(), 3);
    assert_eq!(c.command[2], OsString::from("--drain-timeout"));
}

#[test]
fn flag_wins_over_env() {
    let env = [
        ("VIGIL_DRAIN_TIMEOUT", "abc"),
        ("VIGIL_LOG_FORMAT", "text"),
        ("VIGIL_STOP_SIGNAL", "QUIT"),
    ];
    let c = run_with(&["--drain-timeout", "1.5", "--", "x"], &env).unwrap();
    assert_eq!(c.drain_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(c.log_format, Format::Text);
    assert_eq!(c.signals.stop_signal.first, Sig::QUIT);
}

#[test]
fn every_env_var_is_read() {
    let env = [
        ("VIGIL_USER", "app:staff"),
        ("VIGIL_DRAIN_TIMEOUT", "4"),
        ("VIGIL_DRAIN_DELAY", "1.25"),
        ("VIGIL_HEALTH_LISTEN", "[::]:8086"),
        ("VIGIL_PROBE_TCP", "127.0.0.1:8080"),
        ("VIGIL_PROBE_INTERVAL", "2"),
        ("VIGIL_PROBE_TIMEOUT", "0.5"),
        ("VIGIL_PROBE_FAILURES", "5"),
        ("VIGIL_STARTUP_GRACE", "0"),
        ("VIGIL_STARTUP_INTERVAL", "0.25"),
        ("VIGIL_LOG_FORMAT", "text"),
        ("VIGIL_LOG_LEVEL", "debug"),
        ("VIGIL_STOP_SIGNAL", "SIGQUIT,INT@2"),
        ("VIGIL_DRAIN_SIGNALS", "TERM,QUIT"),
        ("VIGIL_REWRITE", "HUP:0,USR1:USR2"),
        ("VIGIL_SINGLE_CHILD", "1"),
        ("VIGIL_SUCCESS_EXIT", "143, 3"),
    ];
    let c = run_with(&["x"], &env).unwrap();
    let user = c.user.unwrap();
    assert_eq!(
        (user.user.as_str(), user.group.as_deref()),
        ("app", Some("staff"))
    );
    assert_eq!(user.source, "VIGIL_USER");
    assert_eq!(c.drain_timeout, Some(Duration::from_secs(4)));
    assert_eq!(c.drain_delay, Duration::from_millis(1250));
    assert_eq!(c.health_listen, Some("[::]:8086".parse().unwrap()));
    assert!(matches!(c.probe, Some(ProbeSpec::Tcp { .. })));
    assert_eq!(c.probe_interval, Duration::from_secs(2));
    assert_eq!(c.probe_timeout, Duration::from_millis(500));
    assert_eq!(c.probe_failures, 5);
    assert_eq!(c.startup_grace, Duration::ZERO);
    assert_eq!(c.startup_interval, Duration::from_millis(250));
    assert_eq!(c.log_format, Format::Text);
    assert_eq!(c.log_level, Level::Debug);
    assert_eq!(c.signals.stop_signal.first, Sig::QUIT);
    assert_eq!(
        c.signals.stop_signal.later,
        vec![(Duration::from_secs(2), Sig::INT)]
    );
    assert_eq!(c.signals.drain_signals, vec![Sig::TERM, Sig::QUIT]);
    assert_eq!(
        c.signals.rewrite,
        vec![(Sig::HUP, None), (Sig::USR1, Sig::new(12))]
    );
    assert!(c.signals.single_child);
    assert_eq!(c.success_exit, vec![143, 3]);
}

#[test]
fn success_exit_flags_replace_the_env_list() {
    let env = [("VIGIL_SUCCESS_EXIT", "1,2")];
    let c = run_with(&["--success-exit", "143", "--success-exit", "7", "x"], &env).unwrap();
    assert_eq!(c.success_exit, vec![143, 7]);
    assert_eq!(run_with(&["x"], &env).unwrap().success_exit, vec![1, 2]);
    assert!(err(&["--success-exit", "256", "x"], &[]).contains("--success-exit \"256\""));
    assert!(err(&["x"], &[("VIGIL_SUCCESS_EXIT", "1,,2")]).contains("VIGIL_SUCCESS_EXIT="));
}

#[test]
fn bad_values_name_flag_and_value() {
    let cases: &[(&[&str], &str)] = &[
        (&["--drain-timeout", "-1", "x"], "--drain-timeout \"-1\""),
        (&["--drain-timeout", "nan", "x"], "--drain-timeout \"nan\""),
        (&["--drain-timeout", "inf", "x"], "--drain-timeout \"inf\""),
        (&["--drain-timeout", "1e3", "x"], "--drain-timeout \"1e3\""),
        (
            &["--drain-delay", "9", "x"],
            "--drain-delay \"9\": must be below --drain-timeout (9)",
        ),
        (
            &["--drain-delay", "2", "--drain-timeout", "1", "x"],
            "must be below --drain-timeout (1)",
        ),
        (
            &["--probe-interval", "0", "x"],
            "--probe-interval \"0\": must be more than 0",
        ),
        (&["--probe-timeout", "0.0", "x"], "--probe-timeout"),
        (
            &["--startup-interval", "0", "x"],
            "--startup-interval \"0\": must be more than 0",
        ),
        (&["--probe-failures", "0", "x"], "--probe-failures \"0\""),
        (&["--probe-failures", "-3", "x"], "--probe-failures \"-3\""),
        (&["--log-format", "xml", "x"], "--log-format \"xml\""),
        (&["--log-level", "loud", "x"], "--log-level \"loud\""),
        (&["--stop-signal", "FOO", "x"], "--stop-signal \"FOO\""),
        (&["--stop-signal", "0", "x"], "--stop-signal \"0\""),
        (
            &["--health-listen", "localhost", "x"],
            "--health-listen \"localhost\"",
        ),
        (&["--user", "a:", "x"], "--user \"a:\""),
        (&["--probe-tcp", "nohost", "x"], "--probe-tcp \"nohost\""),
        (
            &["--probe-http", "https://x/", "x"],
            "--probe-http \"https://x/\"",
        ),
    ];
    for (args, want) in cases {
        let got = err(args, &[]);
        assert!(got.contains(want), "{args:?}: {got}");
        assert!(!got.contains('\n'));
    }
    assert!(err(&["x"], &[("VIGIL_DRAIN_TIMEOUT", "abc")]).contains("VIGIL_DRAIN_TIMEOUT=\"abc\""));
    assert!(err(&["x"], &[("VIGIL_DRAIN_DELAY", "10")]).contains("VIGIL_DRAIN_DELAY=\"10\""));
}

#[test]
fn signal_flags() {
    let c = run_with(
        &[
            "--stop-signal",
            "TERM,INT@3,QUIT@5.5",
            "--drain-signals",
            "TERM,INT,QUIT",
            "--rewrite",
            "HUP:0",
            "--rewrite",
            "RTMIN+3:USR1",
            "--single-child",
            "x",
        ],
        &[("VIGIL_REWRITE", "WINCH:0"), ("VIGIL_SINGLE_CHILD", "0")],
    )
    .unwrap();
    let s = &c.signals;
    assert_eq!(s.stop_signal.later.len(), 2);
    assert_eq!(s.drain_signals, vec![Sig::TERM, Sig::INT, Sig::QUIT]);
    assert_eq!(
        s.rewrite,
        vec![(Sig::HUP, None), (Sig::new(37).unwrap(), Some(Sig::USR1))]
    );
    assert!(s.single_child, "the switch wins over VIGIL_SINGLE_CHILD=0");
    assert_eq!(s.forwarded_as(Sig::HUP), None);
    assert_eq!(s.forwarded_as(Sig::new(37).unwrap()), Some(Sig::USR1));
    assert_eq!(
        s.forwarded_as(Sig::WINCH),
        Some(Sig::WINCH),
        "the flags replace the env list"
    );
    // Empty variables are unset.
    let empty = [
        ("VIGIL_STOP_SIGNAL", ""),
        ("VIGIL_DRAIN_SIGNALS", " "),
        ("VIGIL_REWRITE", ""),
        ("VIGIL_SINGLE_CHILD", ""),
    ];
    assert_eq!(
        run_with(&["x"], &empty).unwrap().signals,
        SignalConfig::default()
    );
    // The steps fit in the drain timeout minus the delay.
    let fits = [
        "--drain-timeout",
        "5",
        "--drain-delay",
        "1",
        "--stop-signal",
        "TERM,INT@3.9",
        "x",
    ];
    assert!(run_with(&fits, &[]).is_ok());
}

#[test]
fn bad_signal_flags() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--stop-signal", "KILL", "x"],
            "--stop-signal \"KILL\": SIGKILL cannot be a stop signal",
        ),
        (&["--stop-signal", "STOP", "x"], "cannot be a stop signal"),
        (
            &["--stop-signal", "TERM,TSTP@1", "x"],
            "SIGTSTP cannot be a stop signal",
        ),
        (
            &["--stop-signal", "TERM,INT@2,QUIT@1", "x"],
            "must increase",
        ),
        (
            &["--stop-signal", "TERM,INT@9", "x"],
            "before the drain timeout minus the delay (9 s)",
        ),
        (
            &[
                "--drain-timeout",
                "5",
                "--drain-delay",
                "1",
                "--stop-signal",
                "TERM,INT@4",
                "x",
            ],
            "(4 s)",
        ),
        (
            &["--drain-signals", "TERM,KILL", "x"],
            "--drain-signals \"TERM,KILL\"",
        ),
        (&["--drain-signals", "CHLD", "x"], "cannot start a drain"),
        (
            &["--rewrite", "HUP", "x"],
            "--rewrite \"HUP\": expected FROM:TO",
        ),
        (
            &["--rewrite", "TERM:QUIT", "x"],
            "SIGTERM is a drain signal",
        ),
        (
            &["--rewrite", "HUP:0", "--rewrite", "1:2", "x"],
            "SIGHUP is rewritten twice",
        ),
        (
            &[
                "--drain-signals",
                "TERM,INT,QUIT",
                "--rewrite",
                "QUIT:0",
                "x",
            ],
            "SIGQUIT is a drain signal",
        ),
    ];
    for (args, want) in cases {
        let got = err(args, &[]);
        assert!(got.contains(want), "{args:?}: {got}");
        assert!(!got.contains('\n'));
    }
    let env_cases = [
        (
            "VIGIL_STOP_SIGNAL",
            "TERM,INT@20",
            "VIGIL_STOP_SIGNAL=\"TERM,INT@20\"",
        ),
        (
            "VIGIL_DRAIN_SIGNALS",
            "STOP",
            "VIGIL_DRAIN_SIGNALS=\"STOP\"",
        ),
        (
            "VIGIL_REWRITE",
            "HUP:0,,USR1:0",
            "VIGIL_REWRITE=\"HUP:0,,USR1:0\": \"\": expected FROM:TO",
        ),
        (
            "VIGIL_REWRITE",
            "HUP:0,INT:0",
            "VIGIL_REWRITE=\"HUP:0,INT:0\": \"INT:0\": SIGINT is a drain signal",
        ),
        (
            "VIGIL_SINGLE_CHILD",
            "yes",
            "VIGIL_SINGLE_CHILD=\"yes\": expected 1 or 0",
        ),
    ];
    for (k, v, want) in env_cases {
        let got = err(&["x"], &[(k, v)]);
        assert!(got.contains(want), "{k}={v}: {got}");
    }
    // A drain signal left out of --drain-signals may be rewritten.
    let c = run_with(&["--drain-signals", "TERM", "--rewrite", "INT:0", "x"], &[]).unwrap();
    assert_eq!(c.signals.forwarded_as(Sig::INT), None);
}

#[test]
fn blank_values_are_unset() {
    let env = [
        ("VIGIL_DRAIN_TIMEOUT", ""),
        ("VIGIL_HEALTH_LISTEN", " "),
        ("VIGIL_USER", ""),
        ("VIGIL_PROBE_HTTP", ""),
        ("VIGIL_SUCCESS_EXIT", ""),
    ];
    let c = run_with(&["x"], &env).unwrap();
    assert_eq!(c.drain_timeout, Some(Duration::from_secs(9)));
    assert!(c.health_listen.is_none() && c.user.is_none() && c.probe.is_none());
    assert!(c.success_exit.is_empty());
    // A blank flag is unset too, and still wins over its env var.
    let env = [
        ("VIGIL_HEALTH_LISTEN", "0.0.0.0:8086"),
        ("VIGIL_DRAIN_TIMEOUT", "3"),
        ("VIGIL_USER", "nobody"),
    ];
    let c = run_with(
        &[
            "--health-listen",
            "",
            "--drain-timeout",
            "",
            "--user",
            "",
            "x",
        ],
        &env,
    )
    .unwrap();
    assert!(c.health_listen.is_none() && c.user.is_none());
    assert_eq!(c.drain_timeout, Some(Duration::from_secs(9)));
}

#[test]
fn a_blank_env_probe_lets_another_kind_in() {
    let env = [
        ("VIGIL_PROBE_HTTP", ""),
        ("VIGIL_PROBE_TCP", "127.0.0.1:5432"),
    ];
    let c = run_with(&["x"], &env).unwrap();
    assert!(matches!(c.probe, Some(ProbeSpec::Tcp { port: 5432, .. })));
}

#[test]
fn a_probe_flag_replaces_every_env_probe() {
    let env = [
        ("VIGIL_PROBE_HTTP", "http://127.0.0.1:8080/"),
        ("VIGIL_PROBE_EXEC", "/bin/check"),
    ];
    let c = run_with(&["--probe-tcp", "127.0.0.1:1", "x"], &env).unwrap();
    assert!(matches!(c.probe, Some(ProbeSpec::Tcp { port: 1, .. })));
    let c = run_with(&["--probe-exec", "", "x"], &env).unwrap();
    assert!(
        c.probe.is_none(),
        "an empty probe flag switches every probe off"
    );
}

#[test]
fn a_repeatable_flag_given_at_all_replaces_the_env_list() {
    let env = [("VIGIL_SUCCESS_EXIT", "1,2")];
    let c = run_with(&["--success-exit", "", "x"], &env).unwrap();
    assert!(c.success_exit.is_empty());
}

#[test]
fn help_names_every_env_var() {
    let help = run_help();
    let known = envvars::known(&help);
    for name in [
        "VIGIL_USER",
        "VIGIL_DRAIN_TIMEOUT",
        "VIGIL_DRAIN_DELAY",
        "VIGIL_HEALTH_LISTEN",
        "VIGIL_PROBE_TCP",
        "VIGIL_PROBE_HTTP",
        "VIGIL_PROBE_EXEC",
        "VIGIL_PROBE_INTERVAL",
        "VIGIL_PROBE_TIMEOUT",
        "VIGIL_PROBE_FAILURES",
        "VIGIL_STARTUP_GRACE",
        "VIGIL_STARTUP_INTERVAL",
        "VIGIL_LOG_FORMAT",
        "VIGIL_LOG_LEVEL",
        "VIGIL_STOP_SIGNAL",
        "VIGIL_SUCCESS_EXIT",
    ] {
        assert!(known.contains(&name), "{name} not in --help: {known:?}");
    }
}

#[test]
fn probe_headers_from_flags_or_env() {
    let headers = |c: Config| match c.probe {
        Some(ProbeSpec::Http(t)) => t.headers,
        other => panic!("{other:?}"),
    };
    let http = ["--probe-http", "http://127.0.0.1:8080/"];
    let env = [("VIGIL_PROBE_HEADERS", "Host: a.example\n\nX-Key: 1\r\n")];
    let c = run_with(&[&http[..], &["x"]].concat(), &env).unwrap();
    assert_eq!(
        headers(c),
        [
            ("Host".into(), "a.example".into()),
            ("X-Key".into(), "1".into())
        ]
    );
    let args = [&http[..], &["--probe-header", "Host: b", "x"]].concat();
    let c = run_with(&args, &env).unwrap();
    assert_eq!(
        headers(c),
        [("Host".into(), "b".into())],
        "flags replace the list"
    );
    let args = [&http[..], &["--probe-header", "", "x"]].concat();
    assert!(headers(run_with(&args, &env).unwrap()).is_empty());
    // Without an http probe: a flag is a mistake, the variable is ignored.
    let e = err(&["--probe-header", "Host: b", "x"], &[]);
    assert!(e.contains("needs --probe-http"), "{e}");
    let c = run_with(&["--probe-tcp", "127.0.0.1:1", "x"], &env).unwrap();
    assert!(matches!(c.probe, Some(ProbeSpec::Tcp { .. })));
    // A bad header names itself, never its value.
    let args = [
        &http[..],
        &["--probe-header", "Authorization Bearer s3cret", "x"],
    ]
    .concat();
    let e = err(&args, &[]);
    assert!(e.contains("--probe-header") && !e.contains("s3cret"), "{e}");
    let args = [&http[..], &["x"]].concat();
    let e = err(&args, &[("VIGIL_PROBE_HEADERS", "X-Key: s3\u{1}cret")]);
    assert!(
        e.contains("VIGIL_PROBE_HEADERS") && !e.contains("s3"),
        "{e}"
    );
}

#[test]
fn two_probe_kinds_are_refused() {
    let e = err(
        &["--probe-tcp", "127.0.0.1:1", "--probe-exec", "true", "x"],
        &[],
    );
    assert!(
        e.contains("only one probe kind") && e.contains("--probe-exec"),
        "{e}"
    );
    let e = err(
        &["x"],
        &[
            ("VIGIL_PROBE_HTTP", "http://a/"),
            ("VIGIL_PROBE_TCP", "a:1"),
        ],
    );
    assert!(e.contains("only one probe kind"), "{e}");
}

#[test]
fn usage_errors() {
    assert!(err(&[], &[]).contains("missing COMMAND"));
    assert!(err(&["--"], &[]).contains("missing COMMAND"));
    let e = err(&["--bogus", "x"], &[]);
    assert!(e.contains("--bogus"), "{e}");
    for flag in ["--after", "--budget", "--hold", "--hold-target", "--report"] {
        let e = err(&[flag, "1", "x"], &[]);
        assert!(e.contains("only `vigil drill` takes"), "{e}");
    }
    assert!(err(&[], &[]).ends_with("(see vigil --help)"));
    let e = parse(&os(&["drill", "--bogus", "x"]), &|_| None).unwrap_err();
    assert!(e.to_string().ends_with("(see vigil drill --help)"), "{e}");
}

#[test]
fn the_format_of_a_command_line_error() {
    let none = |_: &str| None;
    let text = |k: &str| (k == "VIGIL_LOG_FORMAT").then(|| "text".to_string());
    let f = |args: &[&str], env: &dyn Fn(&str) -> Option<String>| error_format(&os(args), env);
    assert_eq!(f(&["--bogus"], &none), Some(Format::Json), "the default");
    assert_eq!(f(&["--bogus"], &text), Some(Format::Text));
    assert_eq!(
        f(&["--log-format", "text", "--bogus"], &none),
        Some(Format::Text)
    );
    assert_eq!(
        f(&["--log-format=json", "--bogus"], &text),
        Some(Format::Json)
    );
    assert_eq!(
        f(&["--log-format", "", "x"], &text),
        Some(Format::Json),
        "blank: unset"
    );
    assert_eq!(f(&["--log-format", "xml", "x"], &text), Some(Format::Json));
    assert_eq!(
        f(&["drill", "--budget", "x", "--log-format", "text"], &none),
        Some(Format::Text)
    );
    assert_eq!(
        f(&["--user", "--log-format", "x"], &text),
        Some(Format::Text),
        "a value"
    );
    assert_eq!(
        f(&["--", "app", "--log-format", "text"], &none),
        Some(Format::Json)
    );
    assert_eq!(f(&["probe"], &none), None);
}

#[test]
fn equals_and_short_help() {
    let c = run_with(
        &["--drain-timeout=3", "--user=nobody", "--", "x", "--y=1"],
        &[],
    )
    .unwrap();
    assert_eq!(c.drain_timeout, Some(Duration::from_secs(3)));
    assert_eq!(c.user.map(|u| u.user), Some("nobody".to_string()));
    assert_eq!(c.command, os(&["x", "--y=1"])[1..]);
    let none = |_: &str| None;
    for help in [&["-h"][..], &["--help"], &["drill", "-h"], &["probe", "-h"]] {
        assert!(
            matches!(parse(&os(help), &none), Ok(Command::Done(0))),
            "{help:?}"
        );
    }
}

#[test]
fn drill_and_probe_dispatch() {
    let none = |_: &str| None;
    match parse(&os(&["drill", "--after", "0.5", "--", "x"]), &none).unwrap() {
        Command::Drill(c, d) => {
            assert_eq!(d.after, Duration::from_millis(500));
            assert_eq!(c.command, vec![OsString::from("x")]);
        }
        other => panic!("{other:?}"),
    }
    match parse(&os(&["drill", "x"]), &none).unwrap() {
        Command::Drill(_, d) => assert_eq!(d.after, Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
    match parse(
        &os(&["probe", "tcp://127.0.0.1:80", "--timeout", "2"]),
        &none,
    )
    .unwrap()
    {
        Command::Probe(_, t) => assert_eq!(t, Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
    assert!(parse(&os(&["probe", "ftp://x"]), &none).is_err());
    let e = parse(&os(&["probe"]), &none).unwrap_err().to_string();
    assert!(e.starts_with("missing TARGET"), "{e}");
    assert!(e.ends_with("(see vigil probe --help)"), "{e}");
    match parse(&os(&["probe", "--timeout=2", "tcp://127.0.0.1:80"]), &none).unwrap() {
        Command::Probe(_, t) => assert_eq!(t, Duration::from_secs(2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn durations() {
    assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_seconds("9"), Ok(Duration::from_secs(9)));
    assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
    assert_eq!(parse_seconds(".25"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_seconds("3."), Ok(Duration::from_secs(3)));
    assert_eq!(parse_seconds(" 2 "), Ok(Duration::from_secs(2)));
    for bad in [
        "-1", "nan", "NaN", "inf", "1e3", "", ".", "1.2.3", "+1", "0x10", "1s", "31536001",
    ] {
        assert!(parse_seconds(bad).is_err(), "{bad}");
    }
}

#[test]
fn allow_setuid_from_flag_or_env() {
    assert!(
        run_with(&["--allow-setuid", "x"], &[])
            .unwrap()
            .allow_setuid
    );
    let on = [("VIGIL_ALLOW_SETUID", "1")];
    assert!(run_with(&["x"], &on).unwrap().allow_setuid);
    for off in ["0", "", " 0 "] {
        let env = [("VIGIL_ALLOW_SETUID", off)];
        assert!(!run_with(&["x"], &env).unwrap().allow_setuid, "{off:?}");
    }
    let env = [("VIGIL_ALLOW_SETUID", "0")];
    assert!(
        run_with(&["--allow-setuid", "x"], &env)
            .unwrap()
            .allow_setuid
    );
    let e = err(&["x"], &[("VIGIL_ALLOW_SETUID", "yes")]);
    assert_eq!(e, r#"VIGIL_ALLOW_SETUID="yes": expected 1 or 0"#);
}

#[test]
fn hooks_from_flags_or_env() {
    let c = run_with(&["x"], &[]).unwrap();
    assert_eq!(c.hooks.pre_start_timeout, Duration::from_secs(30));
    assert_eq!(c.hooks.post_stop_timeout, Duration::from_secs(5));
    assert!(c.hooks.env_from.is_none() && c.hooks.pre_start.is_none());
    assert!(c.hooks.post_stop.is_none());
    let env = [
        ("VIGIL_ENV_FROM", "/seed --from 'consul kv' a\\\\b"),
        ("VIGIL_PRE_START", "/etc/vigil/pre-start.d"),
        ("VIGIL_PRE_START_TIMEOUT", "2.5"),
        ("VIGIL_POST_STOP", "/bin/clean \"two words\""),
        ("VIGIL_POST_STOP_TIMEOUT", "1"),
    ];
    let c = run_with(&["x"], &env).unwrap();
    let h = c.hooks;
    assert_eq!(
        h.env_from.unwrap(),
        ["/seed", "--from", "consul kv", "a\\b"]
    );
    assert_eq!(h.pre_start, Some(PathBuf::from("/etc/vigil/pre-start.d")));
    assert_eq!(h.pre_start_timeout, Duration::from_millis(2500));
    assert_eq!(h.post_stop.unwrap(), ["/bin/clean", "two words"]);
    assert_eq!(h.post_stop_timeout, Duration::from_secs(1));
    let c = run_with(&["--env-from", "other", "--pre-start", "", "x"], &env).unwrap();
    assert_eq!(c.hooks.env_from.unwrap(), ["other"], "the flag wins");
    assert_eq!(c.hooks.pre_start, None, "an empty value is unset");
    let blank = [("VIGIL_ENV_FROM", " "), ("VIGIL_POST_STOP", "")];
    let c = run_with(&["x"], &blank).unwrap();
    assert!(c.hooks.env_from.is_none() && c.hooks.post_stop.is_none());
}

#[test]
fn bad_hook_values_name_flag_and_value() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--env-from", "seed 'open", "x"],
            "--env-from \"seed 'open\": unbalanced",
        ),
        (
            &["--post-stop", "clean \\", "x"],
            "--post-stop \"clean \\\\\": unbalanced",
        ),
        (
            &["--pre-start-timeout", "0", "x"],
            "--pre-start-timeout \"0\": must be more than 0",
        ),
        (
            &["--post-stop-timeout", "-1", "x"],
            "--post-stop-timeout \"-1\"",
        ),
    ];
    for (args, want) in cases {
        let got = err(args, &[]);
        assert!(got.contains(want), "{args:?}: {got}");
    }
    let e = err(&["x"], &[("VIGIL_PRE_START_TIMEOUT", "soon")]);
    assert!(e.contains("VIGIL_PRE_START_TIMEOUT=\"soon\""), "{e}");
}

#[test]
fn env_names() {
    assert_eq!(env_name("--drain-timeout"), "VIGIL_DRAIN_TIMEOUT");
    assert_eq!(env_name("--user"), "VIGIL_USER");
}

#[test]
fn non_utf8_command_arguments_survive() {
    use std::os::unix::ffi::OsStringExt;
    let mut raw = os(&["--", "printf"]);
    raw.push(OsString::from_vec(vec![0xff, b'x']));
    let c = match parse(&raw, &|_| None).unwrap() {
        Command::Run(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(c.command[1], OsString::from_vec(vec![0xff, b'x']));
}
