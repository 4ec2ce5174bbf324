//! dumb-init's own suite (Yelp/dumb-init `tests/*_test.py`, 1.2.5), case by case, against
//! `dumb-init` (vigil linked as dumb-init, or the real one with `PEER_DUMB_INIT`; see
//! `peers.rs`). Where upstream parametrizes a case over `DUMB_INIT_DEBUG` and
//! `DUMB_INIT_SETSID` (its `both_debug_modes`, `setsid_enabled`, ... fixtures), so does the test
//! here, in a loop. Each test names the upstream case it stands for.
//!
//! Left out, and why:
//! - `test_processes_dont_receive_term_on_exit_if_no_setsid`: with `-c`, dumb-init exits when
//!   its child does and leaves the child's other processes running; vigil ends them (contract,
//!   "What vigil does" 7), under every name.
//! - in `shell_background_test` and `test_default_rewrites_can_be_overriden_with_setsid_enabled`,
//!   the assertions that dumb-init stops itself after passing on SIGTSTP, SIGTTIN or SIGTTOU: no
//!   signal stops vigil (contract 5). What reaches the app is checked.
//! - the exact wording of the help, version, usage and error messages (`cli_test`,
//!   `test_verbose*`, `test_fails_nonzero_with_bad_exec`, the tty hand-off lines of
//!   `test_sighup_sigcont_ignored_if_was_session_leader`): checked are their stream, exit
//!   status, and what they name.

use crate::peers::{self, Lines, Peer, hit_by, number_printer, settle, text, wait_descendant};
use crate::util::{CEILING, Mode, ProcRef, poll_until, wait_until};

/// `DUMB_INIT_DEBUG` and `DUMB_INIT_SETSID` for each combination of `debug` and `setsid` values.
fn modes(
    debug: &[&'static str],
    setsid: &[&'static str],
) -> Vec<[(&'static str, &'static str); 2]> {
    debug
        .iter()
        .flat_map(|&d| {
            setsid
                .iter()
                .map(move |&s| [("DUMB_INIT_DEBUG", d), ("DUMB_INIT_SETSID", s)])
        })
        .collect()
}

const BOTH: &[&str] = &["1", "0"];
const ON: &[&str] = &["1"];
const OFF: &[&str] = &["0"];

/// dumb-init with `args`, in `env`, as a plain child (under the harness's holder).
fn start(args: &[&str], env: &[(&str, &str)]) -> crate::util::Vigil {
    let mut b = Peer::DumbInit.builder(args);
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start(Mode::Subreaper)
}

/// The printer under dumb-init with `args`: the running init and the printer's `ready`.
fn printer(args: &[&str], env: &[(&str, &str)]) -> (crate::util::Vigil, Lines) {
    let script = number_printer();
    let mut argv = args.to_vec();
    argv.extend(["sh", "-c", &script]);
    let v = start(&argv, env);
    let lines = Lines::after_ready(&v);
    (v, lines)
}

// ---- cli_test.py ----

/// `test_no_arguments_prints_usage`: exit 1 (non-zero), the usage on stderr.
#[test]
fn no_arguments_prints_usage() {
    for env in modes(BOTH, BOTH) {
        let out = Peer::DumbInit.run(&[], &env, b"");
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        assert!(text(&out.stderr).contains("Usage:"), "{out:?}");
    }
}

/// `test_exits_invalid_with_invalid_args`: an unknown option exits 1 and is named.
#[test]
fn exits_invalid_with_invalid_args() {
    for env in modes(BOTH, BOTH) {
        let out = Peer::DumbInit.run(&["--yolo", "/bin/true"], &env, b"");
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        assert!(text(&out.stderr).contains("yolo"), "{out:?}");
    }
}

/// `test_help_message`: `-h`, `--help` print the help, naming the options, on stderr; exit 0.
#[test]
fn help_message() {
    for env in modes(BOTH, BOTH) {
        for flag in ["-h", "--help"] {
            let out = Peer::DumbInit.run(&[flag], &env, b"");
            assert_eq!(out.status.code(), Some(0), "{flag} {env:?}");
            assert!(out.stdout.is_empty());
            let help = text(&out.stderr);
            for option in [
                "--single-child",
                "--rewrite",
                "--verbose",
                "--help",
                "--version",
            ] {
                assert!(help.contains(option), "{option} not in:\n{help}");
            }
        }
    }
}

/// `test_version_message`: `-V`, `--version`: `dumb-init vX` on stderr, exit 0.
#[test]
fn version_message() {
    for env in modes(BOTH, BOTH) {
        for flag in ["-V", "--version"] {
            let out = Peer::DumbInit.run(&[flag], &env, b"");
            assert_eq!(out.status.code(), Some(0), "{flag} {env:?}");
            assert!(out.stdout.is_empty());
            assert!(text(&out.stderr).starts_with("dumb-init v"), "{out:?}");
        }
    }
}

/// `test_verbose` and `test_verbose_and_single_child`: with `-v` the command's output is
/// untouched and debug lines go to stderr.
#[test]
fn verbose() {
    for flags in [
        &["-v"][..],
        &["--verbose"],
        &["-v", "-c"],
        &["-v", "--single-child"],
        &["--verbose", "-c"],
        &["--verbose", "--single-child"],
    ] {
        let mut args = flags.to_vec();
        args.extend(["echo", "oh,", "hi"]);
        let out = Peer::DumbInit.run(&args, &[], b"");
        assert_eq!(out.status.code(), Some(0), "{flags:?}");
        assert_eq!(text(&out.stdout), "oh, hi\n");
        assert!(!out.stderr.is_empty(), "{flags:?}: no debug output");
    }
}

/// `test_rewrite_errors`: a malformed `-r` is a usage error, exit 1, and nothing runs.
#[test]
fn rewrite_errors() {
    let cases: [&[&str]; 10] = [
        &["-r"],
        &["-r", ""],
        &["-r", "herp"],
        &["-r", "herp:derp"],
        &["-r", "15"],
        &["-r", "15::12"],
        &["-r", "15:derp"],
        &["-r", "15:12", "-r"],
        &["-r", "15:12", "-r", "0"],
        &["-r", "15:12", "-r", "1:32"],
    ];
    for env in modes(BOTH, BOTH) {
        for case in cases {
            let mut args = case.to_vec();
            args.extend(["echo", "oh,", "hi"]);
            let out = Peer::DumbInit.run(&args, &env, b"");
            assert_eq!(out.status.code(), Some(1), "{case:?} {env:?}: {out:?}");
            assert!(out.stdout.is_empty(), "{case:?}: the command ran");
            assert!(!out.stderr.is_empty());
        }
    }
}

// ---- child_processes_test.py ----

/// Two pipelines in the background and the foreground, as upstream's (`sleep | cat`, where it
/// has `yes | tail`, so four processes idle instead of spinning).
const PIPELINES: &str = "sleep 100 | cat & sleep 100 | cat >&2";

/// The app and its four pipeline processes, once all run.
fn pipeline(v: &crate::util::Vigil) -> Vec<ProcRef> {
    let mut procs = Vec::new();
    wait_until("the pipelines run", CEILING, || {
        procs = crate::util::descendants(v.pid())
            .into_iter()
            .filter_map(ProcRef::of)
            .filter(|p| p.alive())
            .collect();
        procs.len() == 5
    });
    procs
}

/// `test_setsid_signals_entire_group`: in setsid mode SIGTERM reaches every process of the
/// app's group: all five are gone.
#[test]
fn setsid_signals_entire_group() {
    for env in modes(BOTH, ON) {
        let mut v = start(&["sh", "-c", PIPELINES], &env);
        let procs = pipeline(&v);
        peers::send(v.proc(), 15);
        v.wait_exit(CEILING);
        wait_until("every process is gone", CEILING, || {
            procs.iter().all(|p| !p.alive())
        });
    }
}

/// `test_no_setsid_doesnt_signal_entire_group`: without setsid SIGTERM reaches the app alone.
/// The app traps it and says so; its pipelines, in its group, neither have it pending nor
/// died of it. (Upstream lets the app die and counts four survivors after dumb-init exits;
/// vigil then ends them, see the module's notes.)
#[test]
fn no_setsid_doesnt_signal_entire_group() {
    let app =
        format!("trap 'echo got TERM' TERM; {PIPELINES} & echo ready; while :; do wait; done");
    for env in modes(BOTH, OFF) {
        let v = start(&["sh", "-c", &app], &env);
        v.wait_for_line("ready", CEILING);
        let procs = pipeline(&v);
        let app_pid = wait_descendant(v.pid(), "sh");
        peers::send(v.proc(), 15);
        v.wait_for_line("got TERM", CEILING);
        for p in procs.iter().filter(|p| p.pid != app_pid.pid) {
            assert!(
                !hit_by(*p, 15),
                "pid {} got SIGTERM too\n{}",
                p.pid,
                v.dump()
            );
        }
    }
}

/// `test_all_processes_receive_term_on_exit_if_setsid`: in setsid mode, when the app exits,
/// what it left in its group gets SIGTERM. The app exits 0 once its printer is ready; the
/// printer prints the SIGTERM it gets; the init's status is the app's.
#[test]
fn all_processes_receive_term_on_exit_if_setsid() {
    for env in modes(BOTH, ON) {
        let scratch = crate::util::Scratch::new();
        let ready = scratch.p("ready");
        let left = format!(
            "trap \"echo 15\" TERM; echo pid $$; touch {ready}; while :; do sleep 0.05; done"
        );
        let app = format!("sh -c '{left}' & while [ ! -e {ready} ]; do sleep 0.01; done; exit 0");
        let mut v = start(&["sh", "-c", &app], &env);
        let printer = v.wait_for_pid_line("pid ");
        v.wait_for_line("15", CEILING);
        peers::send(printer, 9);
        assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    }
}

/// `test_fails_nonzero_with_bad_exec`: a command that cannot be run is a non-zero exit and an
/// error naming it.
#[test]
fn fails_nonzero_with_bad_exec() {
    for env in modes(BOTH, BOTH) {
        for args in [
            &["/doesnotexist"][..],
            &["--", "/doesnotexist"],
            &["-c", "/doesnotexist"],
            &["--single-child", "--", "/doesnotexist"],
        ] {
            let out = Peer::DumbInit.run(args, &env, b"");
            assert_ne!(out.status.code(), Some(0), "{args:?} {env:?}");
            assert!(out.status.code().is_some());
            assert!(text(&out.stderr).contains("/doesnotexist"), "{out:?}");
        }
    }
}

// ---- cwd_test.py ----

/// `test_working_directories`: the app starts in the directory dumb-init was started in;
/// dumb-init itself keeps no reference to it (its cwd is `/`). dumb-init moves after the fork,
/// as vigil does after the spawn, so the app gives it up to 5 s to get there (upstream reads
/// at once, which races under `DUMB_INIT_DEBUG=1`).
#[test]
fn working_directories() {
    for env in modes(BOTH, BOTH) {
        let app = "i=0; until [ \"$(readlink /proc/$PPID/cwd)\" = / ] || [ $i = 500 ]; do \
                   i=$((i + 1)); sleep 0.01; done; \
                   readlink /proc/$PPID/cwd && readlink /proc/$$/cwd";
        let mut cmd = Peer::DumbInit.command(&["sh", "-c", app], &env);
        cmd.current_dir("/tmp");
        let out = peers::output(cmd, b"");
        assert_eq!(out.status.code(), Some(0), "{env:?}: {out:?}");
        assert_eq!(text(&out.stdout), "/\n/tmp\n", "{env:?}");
    }
}

// ---- exit_status_test.py ----

/// `test_exit_status_regular_exit`: the app's exit status is dumb-init's.
#[test]
fn exit_status_regular_exit() {
    for env in modes(BOTH, BOTH) {
        for code in [0, 1, 2, 32, 64, 127, 254, 255] {
            let exit = format!("exit {code}");
            let out = Peer::DumbInit.run(&["sh", "-c", &exit], &env, b"");
            assert_eq!(out.status.code(), Some(code), "{env:?}");
        }
    }
}

/// `test_exit_status_terminated_by_signal`: an app killed by signal S makes it 128 + S.
#[test]
fn exit_status_terminated_by_signal() {
    for env in modes(BOTH, BOTH) {
        for sig in [15, 1, 3, 9] {
            let app = format!("ulimit -c 0; kill -{sig} $$; sleep 5");
            let out = Peer::DumbInit.run(&["sh", "-c", &app], &env, b"");
            assert_eq!(out.status.code(), Some(128 + sig), "{sig} {env:?}");
        }
    }
}

// ---- proxies_signals_test.py ----

/// What upstream calls NORMAL_SIGNALS: 1 to 31 but KILL, STOP, CHLD and the job-control three.
fn normal_signals() -> impl Iterator<Item = i32> {
    (1..32).filter(|n| ![9, 17, 19, 20, 21, 22].contains(n))
}

/// `test_proxies_signals`: each of them, sent to dumb-init, reaches the app as itself.
#[test]
fn proxies_signals() {
    for env in modes(BOTH, BOTH) {
        let (v, mut lines) = printer(&[], &env);
        for sig in normal_signals() {
            peers::send(v.proc(), sig);
            lines.expect(&v, sig);
        }
    }
}

/// `test_proxies_signals_with_rewrite`: `-r` maps what is sent to what the app gets.
#[test]
fn proxies_signals_with_rewrite() {
    // (the -r map, the signals sent, what the app gets)
    type Case = (&'static [(i32, i32)], &'static [i32], &'static [i32]);
    let cases: [Case; 4] = [
        (&[], &[15, 3, 18, 2], &[15, 3, 18, 2]),
        (&[(15, 2)], &[15, 3, 18, 2], &[2, 3, 18, 2]),
        (
            &[(15, 2), (2, 15), (3, 3)],
            &[15, 3, 18, 2],
            &[2, 3, 18, 15],
        ),
        (&[(1, 31), (31, 1)], &[1, 31], &[31, 1]),
    ];
    for env in modes(BOTH, BOTH) {
        for (map, send, want) in cases {
            let args: Vec<String> = map
                .iter()
                .flat_map(|(s, r)| ["-r".to_string(), format!("{s}:{r}")])
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (v, mut lines) = printer(&args, &env);
            for (&sig, &got) in send.iter().zip(want) {
                peers::send(v.proc(), sig);
                lines.expect(&v, got);
            }
        }
    }
}

/// `test_default_rewrites_can_be_overriden_with_setsid_enabled`: `-r` for SIGTTIN, SIGTTOU,
/// SIGTSTP replaces the default (SIGSTOP to the group); then SIGCONT reaches the app.
#[test]
fn default_rewrites_can_be_overriden_with_setsid_enabled() {
    for env in modes(BOTH, ON) {
        let (v, mut lines) = printer(&["-r", "21:15", "-r", "22:2", "-r", "20:1"], &env);
        let init = v.proc();
        for (sig, got) in [(21, 15), (22, 2), (20, 1)] {
            peers::send(init, sig);
            lines.expect(&v, got);
            settle(init);
            peers::send(init, 18);
            lines.expect(&v, 18);
        }
    }
}

/// `test_ignored_signals_are_not_proxied`: `-r S:0` drops S.
#[test]
fn ignored_signals_are_not_proxied() {
    for env in modes(BOTH, BOTH) {
        let (v, mut lines) = printer(&["-r", "15:3", "-r", "2:0", "-r", "28:0"], &env);
        peers::send(v.proc(), 15);
        peers::send(v.proc(), 2);
        lines.expect(&v, 3);
        peers::send(v.proc(), 28);
        peers::send(v.proc(), 1);
        lines.expect(&v, 1);
        settle(v.proc());
        lines.none_more(&v);
    }
}

// ---- shell_background_test.py ----

/// `test_shell_background_support_setsid`: SIGTSTP, SIGTTOU, SIGTTIN stop the app (dumb-init
/// sends its group SIGSTOP); SIGCONT wakes it, and it sees the SIGCONT.
#[test]
fn shell_background_support_setsid() {
    for env in modes(BOTH, ON) {
        let (v, mut lines) = printer(&[], &env);
        let (init, app) = (v.proc(), wait_descendant(v.pid(), "sh"));
        for sig in [20, 22, 21] {
            peers::send(init, sig);
            peers::wait_state(app, &['T']);
            settle(init);
            peers::send(init, 18);
            lines.expect(&v, 18);
            peers::wait_state(app, &['S', 'R']);
        }
    }
}

/// `test_shell_background_support_without_setsid`: SIGTSTP, SIGTTOU, SIGTTIN reach the app as
/// themselves; then SIGCONT.
#[test]
fn shell_background_support_without_setsid() {
    for env in modes(BOTH, OFF) {
        let (v, mut lines) = printer(&[], &env);
        let (init, app) = (v.proc(), wait_descendant(v.pid(), "sh"));
        for sig in [20, 22, 21] {
            peers::send(init, sig);
            lines.expect(&v, sig);
            settle(init);
            peers::send(init, 18);
            lines.expect(&v, 18);
            peers::wait_state(app, &['S', 'R']);
        }
    }
}

// ---- tty_test.py: dumb-init on a terminal, as its session leader ----

/// dumb-init with `args` on a new terminal, as the leader of the terminal's session (as
/// upstream's `pty.fork()`): util-linux `setsid --ctty` starts it.
fn on_tty(args: &[&str], env: &[(&str, &str)]) -> crate::util::Vigil {
    let mut b = Peer::DumbInit
        .builder(args)
        .tty()
        .wrap(&["setsid", "--ctty"]);
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start(Mode::Subreaper)
}

/// `test_tty`: an app reading and writing the terminal: `tac` gets 1 2 3 and EOF, writes 3 2 1.
#[test]
fn tty() {
    let mut v = on_tty(&["tac"], &[("DUMB_INIT_DEBUG", "0")]);
    v.keys(b"1\n2\n3\n");
    v.keys(b"\x04\x04");
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    let out = v.stdout();
    assert!(
        out.ends_with(&["3".into(), "2".into(), "1".into()]),
        "{}",
        v.dump()
    );
}

/// `test_child_gets_controlling_tty_if_we_had_one`: an interactive bash on the terminal gets
/// job control (`m` in `$-`).
#[test]
fn child_gets_controlling_tty_if_we_had_one() {
    for env in modes(BOTH, BOTH) {
        let mut v = on_tty(&["bash", "--norc", "--noprofile", "-m"], &env);
        v.keys(b"echo \"flags are: [[$-]]\"\n");
        let mut flags = None;
        poll_until(CEILING, || {
            flags = v.stdout().iter().find_map(|l| {
                // After the prompt's and bracketed paste's escapes, on the line.
                let (_, f) = l.split_once("flags are: [[")?;
                let f = f.strip_suffix("]]")?;
                (!f.contains('$')).then(|| f.to_string())
            });
            flags.is_some()
        });
        v.keys(b"exit 0\n");
        assert_eq!(v.wait_exit(CEILING).code, 0, "{env:?}\n{}", v.dump());
        let flags = flags.unwrap_or_else(|| panic!("no flags line\n{}", v.dump()));
        assert!(flags.contains('m'), "no job control: {flags}");
    }
}

/// `test_sighup_sigcont_ignored_if_was_session_leader`: as the terminal's session leader
/// dumb-init detaches from it, which raises SIGHUP and SIGCONT; the app never sees those, and
/// a SIGHUP sent later does reach it, with no SIGCONT.
#[test]
fn sighup_sigcont_ignored_if_was_session_leader() {
    let app =
        "trap 'echo 1' HUP; trap 'echo 18' CONT; echo ready; while :; do sleep 1 & wait $!; done";
    let v = on_tty(&["-v", "sh", "-c", app], &[]);
    let mut lines = Lines::after_ready(&v);
    let init = v.proc();
    settle(init);
    lines.none_more(&v);
    peers::send(init, 1);
    lines.expect(&v, 1);
    settle(init);
    lines.none_more(&v);
}
