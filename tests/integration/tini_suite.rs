//! tini's own suites, case by case, against `tini` (vigil linked as tini, or the real one with
//! `PEER_TINI`; see `peers.rs`): krallin/tini's `test/run_inner_tests.py` (tini as a plain
//! child), `test/run_outer_tests.py` (tini as a container's PID 1: here PID 1 of a pid namespace)
//! and the smoke tests of `ci/run_build.sh`. Each test names the upstream case it stands for.
//!
//! Left out, and why:
//! - inner "zombie reaping failure test": tini without `-s` and not PID 1 cannot reap and exits 1;
//!   vigil always subreaps (contract, "What vigil does" 1). `not_pid1_still_reaps` checks that.
//! - inner "signal configuration test": tini hands the child the signal mask and ignored set it
//!   was given; vigil always gives a clean one (contract 3). `app_gets_a_clean_signal_state`.
//! - inner "post command" tests (`-P`) and build.sh's `-P` cases: not an option of tini 0.19,
//!   nor of the contract.
//! - outer "valgrind test", build.sh "hardening-check": checks of a C build of tini.
//! - outer "installation tests" (tini's .deb and .rpm in old distributions): tini's packaging.
//! - build.sh's MINIMAL cases (binaries named `-h`, `--version --foo` run as a command):
//!   tini's minimal build, which takes no options; vigil as tini is the full one.

use crate::peers::{self, Peer, mentions_number, text, wait_descendant};
use crate::util::{CEILING, Mode, require, status_hex};

/// The three ways the inner suite makes tini a subreaper: a parent that set the bit and
/// exec'd it (`subreaper-proxy.py`), `-s`, and `TINI_SUBREAPER` set (to nothing).
#[derive(Clone, Copy, Debug)]
enum Reaper {
    Proxy,
    Flag,
    Env,
}

const REAPERS: [Reaper; 3] = [Reaper::Proxy, Reaper::Flag, Reaper::Env];

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`, then exec: perl (always in Debian) as the proxy.
fn proxy() -> Option<[String; 3]> {
    let nr = if cfg!(target_arch = "x86_64") {
        157
    } else if cfg!(target_arch = "aarch64") {
        167
    } else {
        return None;
    };
    let code =
        format!("syscall({nr}, 36, 1, 0, 0, 0) == 0 or die \"prctl: $!\"; exec @ARGV or die");
    Some(["perl".into(), "-e".into(), code])
}

/// tini started by `how`, with `args` before `-- sh -c APP`, as a child subreaper.
fn start(how: Reaper, args: &[&str], app: &str) -> Option<crate::util::Vigil> {
    let mut argv: Vec<&str> = Vec::new();
    if let Reaper::Flag = how {
        argv.push("-s");
    }
    argv.extend(args);
    argv.extend(["--", "sh", "-c", app]);
    let mut b = Peer::Tini.builder(&argv);
    match how {
        Reaper::Proxy => {
            let proxy = proxy();
            if !require(
                proxy.is_some(),
                "no prctl syscall number for this architecture",
            ) {
                return None;
            }
            let proxy = proxy.expect("checked");
            b = b.wrap(&proxy.each_ref().map(String::as_str));
        }
        Reaper::Env => b = b.env("TINI_SUBREAPER", ""),
        Reaper::Flag => {}
    }
    Some(b.start(Mode::Subreaper))
}

/// `reaping/stage_2.py`: 100 short sleeps, orphaned at once, each pid printed.
const ORPHANS: &str =
    "i=0; while [ $i -lt 100 ]; do sleep 0.$((5 + i % 5)) & echo orphan $!; i=$((i + 1)); done";

/// `reaping/stage_1.py`: starts the orphans, then waits until its parent, the init, has no
/// child but itself (every orphan reaped) and says so. Exits 0 only if reaping works.
fn reaping_app() -> String {
    format!(
        "init=$PPID; sh -c '{ORPHANS}'; \
         kids() {{ for s in /proc/[0-9]*/stat; do \
         {{ read -r p c st pp rest < $s; }} 2>/dev/null && [ \"$pp\" = \"$1\" ] && echo $p; done; }}; \
         while [ \"$(kids $init)\" != \"$$\" ]; do sleep 0.1; done; echo reaped"
    )
}

/// The orphans' pids, from the app's output.
fn orphans(v: &crate::util::Vigil) -> Vec<i32> {
    v.stdout()
        .iter()
        .filter_map(|l| l.strip_prefix("orphan ")?.parse().ok())
        .collect()
}

/// inner "reaping test" and "reaping display test", for each way of being a subreaper: every
/// orphan is reaped, the app exits 0; a reaped orphan's pid is on stderr with `-w`, never
/// without.
#[test]
fn reaping() {
    for how in REAPERS {
        for warn in [false, true] {
            let args: &[&str] = if warn { &["-w"] } else { &[] };
            let Some(mut v) = start(how, args, &reaping_app()) else {
                return;
            };
            let exit = v.wait_exit(CEILING);
            assert_eq!(exit.code, 0, "{how:?} -w {warn}\n{}", v.dump());
            assert!(v.stdout().iter().any(|l| l == "reaped"), "{}", v.dump());
            let pids = orphans(&v);
            assert_eq!(pids.len(), 100, "{}", v.dump());
            let err = v.stderr();
            if warn {
                let missing: Vec<&i32> = pids
                    .iter()
                    .filter(|&&p| !mentions_number(&err, p))
                    .collect();
                assert!(
                    missing.is_empty(),
                    "{how:?}: no line for {missing:?}\n{}",
                    v.dump()
                );
            } else {
                assert!(
                    err.len() < 10,
                    "{how:?}: a line per orphan without -w\n{}",
                    v.dump()
                );
            }
        }
    }
}

/// inner "signal test" for SIGTERM, SIGUSR1 and SIGUSR2, each way of being a subreaper: the
/// signal sent to tini reaches the app, which dies of it; tini exits 128 + the signal.
#[test]
fn signals() {
    for how in REAPERS {
        for sig in [15, 10, 12] {
            let Some(mut v) = start(how, &[], "exec sleep 100") else {
                return;
            };
            let app = wait_descendant(v.pid(), "sleep");
            peers::send(v.proc(), sig);
            let exit = v.wait_exit(CEILING);
            assert_eq!(exit.code, 128 + sig, "{how:?} signal {sig}\n{}", v.dump());
            assert!(!app.alive());
        }
    }
}

/// The app of the process group tests (`pgroup/stage_1.py`): ignores SIGUSR1 and waits for a
/// child that does not; the child's death by SIGUSR1 ends it with 128 + 10.
const PGROUP_APP: &str = "sleep 1000 & trap '' USR1; echo ready; wait $!";

/// inner "process group test (arguments)" and "(environment variable)": with `-g` or
/// `TINI_KILL_PROCESS_GROUP`, SIGUSR1 sent to tini reaches the app's whole group.
#[test]
fn process_group() {
    for env in [false, true] {
        let args: &[&str] = if env {
            &["--", "sh", "-c", PGROUP_APP]
        } else {
            &["-g", "--", "sh", "-c", PGROUP_APP]
        };
        let mut b = Peer::Tini.builder(args);
        if env {
            b = b.env("TINI_KILL_PROCESS_GROUP", "1");
        }
        let mut v = b.start(Mode::Subreaper);
        v.wait_for_line("ready", CEILING);
        let child = wait_descendant(v.pid(), "sleep");
        peers::send(v.proc(), 10);
        let exit = v.wait_exit(CEILING);
        assert_eq!(exit.code, 128 + 10, "env {env}\n{}", v.dump());
        assert!(!child.alive());
    }
}

/// The other side of the process group tests: by default SIGUSR1 reaches the app alone. The
/// app has it and prints it, while the child in its group, with the default action (death),
/// neither has it pending nor died of it.
#[test]
fn child_only_by_default() {
    let app = "sleep 1000 & trap 'echo got USR1' USR1; echo ready; while :; do wait; done";
    let v = Peer::Tini
        .builder(&["--", "sh", "-c", app])
        .start(Mode::Subreaper);
    v.wait_for_line("ready", CEILING);
    let child = wait_descendant(v.pid(), "sleep");
    peers::send(v.proc(), 10);
    v.wait_for_line("got USR1", CEILING);
    assert!(!peers::hit_by(child, 10), "the app's child got SIGUSR1 too");
}

/// inner "parent death signal test": `-p SIGUSR1`; the app kills tini's parent, and tini,
/// getting SIGUSR1 from the kernel, passes it on to the app, whose handler writes `ok`.
#[test]
fn parent_death_signal() {
    let scratch = crate::util::Scratch::new();
    let file = scratch.p("ret");
    // The app's parent is tini; tini's parent is the `sh` below, between the holder and tini.
    let app = format!(
        "trap 'echo ok > {file}; exit 0' USR1; \
         read -r p c st pp rest < /proc/$PPID/stat; kill -KILL $pp; \
         while :; do sleep 0.05; done"
    );
    let v = Peer::Tini
        .builder(&["-vvv", "-p", "SIGUSR1", "--", "sh", "-c", &app])
        .wrap(&["sh", "-c", "\"$@\"; exit 0", "stage_1"])
        .start(Mode::Subreaper);
    crate::util::wait_until("the app writes ok", CEILING, || {
        std::fs::read_to_string(&file).is_ok_and(|s| s.trim() == "ok")
    });
    drop(v);
}

// ---- run_outer_tests.py: tini as PID 1, TINI_VERBOSITY=3 ----

/// outer "reaping test": as PID 1.
#[test]
fn pid1_reaping() {
    if !crate::util::mode_supported(Mode::Pid1) {
        return;
    }
    let mut v = Peer::Tini
        .builder(&["--", "sh", "-c", &reaping_app()])
        .env("TINI_VERBOSITY", "3")
        .start(Mode::Pid1);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// outer "signals test": `docker kill -s INT` reaches the app, which exits 1 (Python's
/// KeyboardInterrupt); `-s TERM` kills it: 143.
#[test]
fn pid1_signals() {
    if !crate::util::mode_supported(Mode::Pid1) {
        return;
    }
    for (sig, app, code) in [
        (
            2,
            "trap 'exit 1' INT; echo ready; while :; do sleep 0.05; done",
            1,
        ),
        (15, "echo ready; exec sleep 100", 143),
    ] {
        let mut v = Peer::Tini
            .builder(&["--", "sh", "-c", app])
            .env("TINI_VERBOSITY", "3")
            .start(Mode::Pid1);
        v.wait_for_line("ready", CEILING);
        peers::send(v.proc(), sig);
        assert_eq!(
            v.wait_exit(CEILING).code,
            code,
            "signal {sig}\n{}",
            v.dump()
        );
    }
}

/// outer "exit code test": an unknown option 1, `-h` 0, a missing command 127; as PID 1.
#[test]
fn pid1_exit_codes() {
    if !crate::util::mode_supported(Mode::Pid1) {
        return;
    }
    for (args, code) in [(&["-z"][..], 1), (&["-h"], 0), (&["zzzz"], 127)] {
        let mut v = Peer::Tini
            .builder(args)
            .env("TINI_VERBOSITY", "3")
            .start(Mode::Pid1);
        assert_eq!(v.wait_exit(CEILING).code, code, "{args:?}\n{}", v.dump());
    }
}

/// outer "TTY handling", `dash` and typing `exit 0`: an interactive shell on the terminal
/// reads what is typed and exits 0.
#[test]
fn pid1_tty_shell() {
    if !crate::util::mode_supported(Mode::Pid1) {
        return;
    }
    let mut v = Peer::Tini.builder(&["--", "dash"]).tty().start(Mode::Pid1);
    v.keys(b"echo ready-$((1 + 1))\n");
    // After the prompt, on its line: "# ready-2".
    let answered = crate::util::poll_until(CEILING, || {
        v.stdout()
            .iter()
            .any(|l| l.ends_with("ready-2") && !l.contains('$'))
    });
    assert!(answered, "the shell did not answer\n{}", v.dump());
    v.keys(b"exit 0\n");
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// outer "TTY handling", a loop and Ctrl-C: the terminal's SIGINT ends the app, 130.
#[test]
fn pid1_tty_ctrl_c() {
    if !crate::util::mode_supported(Mode::Pid1) {
        return;
    }
    let app = "while true; do echo '#'; sleep 0.1; done";
    let mut v = Peer::Tini
        .builder(&["--", "dash", "-c", app])
        .tty()
        .start(Mode::Pid1);
    v.wait_for_line("#", CEILING);
    v.keys(b"\x03");
    assert_eq!(v.wait_exit(CEILING).code, 130, "{}", v.dump());
}

// ---- ci/run_build.sh smoke tests: tini run directly ----

/// `--version` runs and says `tini version`.
#[test]
fn smoke_version() {
    for peer in [Peer::Tini, Peer::DockerInit] {
        let out = peer.run(&["--version"], &[], b"");
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).starts_with("tini version "), "{out:?}");
    }
}

/// Without arguments: exit 1, and the usage (naming its options) on stderr.
#[test]
fn smoke_no_arguments() {
    let out = Peer::Tini.run(&[], &[], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let usage = text(&out.stderr);
    for option in ["--version", "-h", "-s", "-p", "-v", "-w", "-g", "-e", "-l"] {
        assert!(
            usage.contains(option),
            "{option} not in the usage:\n{usage}"
        );
    }
}

/// `-h` shows the help, exit 0; `-l` the license, exit 0.
#[test]
fn smoke_help_and_license() {
    let out = Peer::Tini.run(&["-h"], &[], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("-e"), "{out:?}");
    let out = Peer::Tini.run(&["-l"], &[], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("MIT"), "{out:?}");
}

/// `-vvv true` 0, `-vvv false` 1, `-- true` 0, `-vvv -- -- true` fails (`--` is the command).
#[test]
fn smoke_commands() {
    for (args, ok) in [
        (&["-vvv", "true"][..], true),
        (&["-vvv", "false"], false),
        (&["--", "true"], true),
        (&["-vvv", "--", "--", "true"], false),
    ] {
        let out = Peer::Tini.run(args, &[], b"");
        assert_eq!(out.status.success(), ok, "{args:?}: {out:?}");
    }
}

/// `TINI_VERBOSITY=3` gives the debug output that 0 silences.
#[test]
fn smoke_verbosity_variable() {
    let lines = |v: &str| {
        let out = Peer::Tini.run(&["true"], &[("TINI_VERBOSITY", v)], b"");
        assert_eq!(out.status.code(), Some(0));
        text(&out.stdout).lines().count() + text(&out.stderr).lines().count()
    };
    let (quiet, loud) = (lines("0"), lines("3"));
    assert_eq!(quiet, 0);
    assert!(loud > 0);
}

/// A missing command exits 127, one that cannot be executed 126.
#[test]
fn smoke_exec_failures() {
    assert_eq!(
        Peer::Tini.run(&["foobar123"], &[], b"").status.code(),
        Some(127)
    );
    assert_eq!(Peer::Tini.run(&["/etc"], &[], b"").status.code(), Some(126));
}

/// stdin and stdout go to the app: `echo "exit 0" | tini sh`.
#[test]
fn smoke_pipes() {
    let out = Peer::Tini.run(&["sh"], &[], b"echo piped\nexit 0\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "piped\n");
}

// ---- run_inner_tests.py: the exit code tests ----

/// inner "exit code test", inclusive: `-e N` reports the app's N as 0, for every N.
#[test]
fn exit_code_remapped() {
    for code in 0..=255 {
        let c = code.to_string();
        let exit = format!("exit {code}");
        let out = Peer::Tini.run(&["-e", &c, "--", "sh", "-c", &exit], &[], b"");
        assert_eq!(out.status.code(), Some(0), "-e {code}: {out:?}");
    }
}

/// inner "exit code test", exclusive: every other code given to `-e`, N stays N; no `--`, as
/// POSIXLY_CORRECT ends the options at the command.
#[test]
fn exit_code_kept() {
    for code in 0..=255 {
        let mut args: Vec<String> = (0..=255)
            .filter(|&c| c != code)
            .flat_map(|c| ["-e".to_string(), c.to_string()])
            .collect();
        args.extend(["sh".into(), "-c".into(), format!("exit {code}")]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = Peer::Tini.run(&args, &[("POSIXLY_CORRECT", "1")], b"");
        assert_eq!(out.status.code(), Some(code), "{out:?}");
    }
}

// ---- vigil's side of the cases left out ----

/// Not PID 1 and without `-s`, tini cannot reap (its "zombie reaping failure test"); vigil
/// under tini's name always subreaps, so the reaping app still exits 0.
#[test]
fn not_pid1_still_reaps() {
    if Peer::Tini.is_real() {
        return eprintln!("SKIP not_pid1_still_reaps: a difference, vigil's side only");
    }
    let mut v = Peer::Tini
        .builder(&["--", "sh", "-c", &reaping_app()])
        .start(Mode::Subreaper);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// tini passes on the signal mask and ignored signals it was given (its "signal configuration
/// test"); vigil under tini's name gives the app none blocked and none ignored.
#[test]
fn app_gets_a_clean_signal_state() {
    if Peer::Tini.is_real() {
        return eprintln!("SKIP app_gets_a_clean_signal_state: a difference, vigil's side only");
    }
    if !crate::util::mode_supported(Mode::Pid1) {
        return;
    }
    let app = "echo ready; exec sleep 100";
    let v = Peer::Tini
        .builder(&["--", "sh", "-c", app])
        .setup("trap '' TTOU SEGV INT; ")
        .start(Mode::Pid1);
    v.wait_for_line("ready", CEILING);
    let sleep = wait_descendant(v.pid(), "sleep");
    sleep.wait_exec("sleep");
    assert_eq!(status_hex(sleep.pid, "SigIgn"), 0);
    assert_eq!(status_hex(sleep.pid, "SigBlk"), 0);
    assert_ne!(
        status_hex(v.pid(), "SigIgn") & (1 << 21),
        0,
        "vigil itself inherited them"
    );
}

/// `VIGIL_*` still applies under tini's name: with `VIGIL_DRAIN_TIMEOUT=1` a SIGTERM-ignoring
/// app is SIGKILLed 1 s after the SIGTERM (tini itself has no deadline), and vigil is gone by
/// 1.5 s.
#[test]
fn vigil_drain_timeout_applies() {
    if Peer::Tini.is_real() {
        return eprintln!("SKIP vigil_drain_timeout_applies: VIGIL_* is vigil's only");
    }
    let mut v = Peer::Tini
        .builder(&["--", "sh", "-c", &crate::util::term_ignorer()])
        .env("VIGIL_DRAIN_TIMEOUT", "1")
        .start(Mode::Subreaper);
    v.wait_for_line("ready", CEILING);
    let sent = v.signal(nix::sys::signal::Signal::SIGTERM);
    let exit = v.wait_exit(CEILING);
    assert_eq!(exit.code, 128 + 9, "{}", v.dump());
    let took = exit.at - sent;
    let (low, high) = (
        crate::util::secs(1.0),
        crate::util::secs(1.5) + crate::util::SLACK,
    );
    assert!(
        took >= low && took <= high,
        "gone after {took:?}\n{}",
        v.dump()
    );
}
