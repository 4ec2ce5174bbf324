//! What `--user` does around the switch: stdio handed to the user (pipes and sockets, the
//! terminal only as PID 1, never a file or /dev/null), no_new_privs and an empty bounding set
//! so a setuid-root binary in the image cannot regain root, and `--allow-setuid` to opt out.

use crate::util::{
    ANY_PORT, CEILING, Mode, Scratch, Vigil, require, require_root, status_field, vigil, wait_until,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

both_modes!(
    stdio_pipes_go_to_the_user,
    refused_chown_is_a_warning,
    file_and_null_keep_their_owner,
    terminal_goes_to_the_user_only_as_pid1,
    setuid_binary_cannot_regain_root,
    bounding_set_kept_without_setpcap,
    allow_setuid_opts_out
);

/// The owner of what `pid`'s `fd` points to (a pipe, a file, a terminal).
fn fd_owner(pid: i32, fd: i32) -> u32 {
    std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
        .expect("stat the fd")
        .uid()
}

fn dropped(v: &Vigil) -> Value {
    v.wait_for_log("privileges dropped", |_| true, CEILING)
}

fn no_stdio_warning(v: &Vigil) {
    let warned = v.logs_with("stdio not handed to the user");
    assert!(warned.is_empty(), "{warned:?}\n{}", v.dump());
}

/// SIGTERM, then: nothing left behind and the app's 143.
fn stop(mut v: Vigil) {
    v.signal(Signal::SIGTERM);
    v.wait_gone(CEILING);
    assert!(v.survivors().is_empty(), "{}", v.dump());
    assert_eq!(v.wait_exit(CEILING).code, 143, "{}", v.dump());
}

/// Started as root with `--user nobody`, stdout and stderr pipes of root's (mode 0600, as a
/// runtime gives them): the app opens /dev/stdout and /dev/stderr for writing, as nginx's
/// `access_log /dev/stdout` does (EACCES before the hand-over). Both pipes are 65534's, stdin
/// (/dev/null) is not touched.
fn stdio_pipes_go_to_the_user(mode: Mode) {
    if !require_root() {
        return;
    }
    let app = "echo to-stdout >/dev/stdout && echo stdout-opened; \
               echo to-stderr >/dev/stderr && echo stderr-opened; exec sleep 100";
    let v = vigil(&["--user", "nobody", "--", "sh", "-c", app]).start(mode);
    v.wait_for_line("stdout-opened", CEILING);
    v.wait_for_line("stderr-opened", CEILING);
    assert!(v.stdout().contains(&"to-stdout".into()), "{}", v.dump());
    // stderr has a reader of its own: its line may come after stdout's "stderr-opened".
    wait_until("to-stderr on stderr", CEILING, || {
        v.stderr().contains(&"to-stderr".into())
    });
    let me = v.pid();
    assert_eq!((fd_owner(me, 1), fd_owner(me, 2)), (65534, 65534));
    let stdin = std::fs::read_link(format!("/proc/{me}/fd/0")).expect("stdin");
    assert_eq!(stdin.to_string_lossy(), "/dev/null");
    assert_eq!(fd_owner(me, 0), 0, "/dev/null was handed over");
    assert_eq!(dropped(&v)["stdio"], json!([1, 2]), "{}", v.dump());
    no_stdio_warning(&v);
    stop(v);
    eprintln!(
        "FIGURE stdio_pipes_go_to_the_user/{}: app as nobody opened /dev/stdout and /dev/stderr \
         (pipes now uid 65534); /dev/null on stdin still uid 0",
        mode.name()
    );
}

/// Started as root without CAP_CHOWN (a runtime that dropped it), the hand-over is refused: a
/// warn line for each pipe, and the app runs all the same (its open of /dev/stdout fails, as it
/// would without vigil).
fn refused_chown_is_a_warning(mode: Mode) {
    if !require_root() {
        return;
    }
    let app = "if echo x >/dev/stdout; then echo open-ok; else echo open-failed; fi; exit 4";
    let mut v = vigil(&["--user", "nobody", "--", "sh", "-c", app])
        .wrap(&["setpriv", "--bounding-set", "-chown"])
        .start(mode);
    assert_eq!(v.wait_exit(CEILING).code, 4, "{}", v.dump());
    assert!(v.stdout().contains(&"open-failed".into()), "{}", v.dump());
    let warned = v.logs_with("stdio not handed to the user");
    let fds: Vec<&Value> = warned.iter().map(|w| &w["fd"]).collect();
    assert_eq!(fds, [&json!(1), &json!(2)], "{}", v.dump());
    for w in &warned {
        assert_eq!(w["level"], "warn", "{w}");
        assert_eq!(w["error"], "Operation not permitted", "{w}");
    }
    assert_eq!(dropped(&v)["stdio"], json!([]), "{}", v.dump());
}

/// stderr redirected to a file (root's, mode 0640) and stdin /dev/null: neither changes owner
/// or mode, and nothing warns; only the stdout pipe is handed over.
fn file_and_null_keep_their_owner(mode: Mode) {
    if !require_root() {
        return;
    }
    let s = Scratch::new();
    let log = s.path("vigil.log");
    std::fs::write(&log, "").expect("create the log file");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let mut v = vigil(&["--user", "nobody", "--", "sh", "-c", "echo uid=$(id -u)"])
        .setup(&format!("exec 2>>{} </dev/null", s.p("vigil.log")))
        .start(mode);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
    assert!(v.stdout().contains(&"uid=65534".into()), "{}", v.dump());
    let meta = std::fs::metadata(&log).expect("stat the log");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "the log file changed owner"
    );
    assert_eq!(meta.mode() & 0o7777, 0o640, "the log file changed mode");
    assert_eq!(std::fs::metadata("/dev/null").expect("/dev/null").uid(), 0);
    let text = std::fs::read_to_string(&log).expect("read the log");
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let drop = lines
        .iter()
        .find(|l| l["msg"] == "privileges dropped")
        .unwrap_or_else(|| panic!("no privileges dropped line in\n{text}"));
    assert_eq!(drop["stdio"], json!([1]), "{text}");
    assert!(!lines.iter().any(|l| l["level"] == "warn"), "{text}");
}

/// With a terminal on stdio (`docker run -t`), vigil as PID 1 hands it to the user, so the app
/// can open /dev/stdout; as a subreaper the terminal is an operator's and stays root's.
fn terminal_goes_to_the_user_only_as_pid1(mode: Mode) {
    if !require_root() {
        return;
    }
    let app = "if echo x >/dev/stdout; then echo open-ok; else echo open-failed; fi; \
               echo ready; exec sleep 100";
    let v = vigil(&["--user", "nobody", "--", "sh", "-c", app])
        .tty()
        .start(mode);
    v.wait_for_line("ready", CEILING);
    let me = v.pid();
    let tty = std::fs::read_link(format!("/proc/{me}/fd/0")).expect("stdin");
    assert!(tty.starts_with("/dev/pts"), "stdin is {tty:?}");
    let owner = fd_owner(me, 0);
    let stdio = dropped(&v)["stdio"].clone();
    if mode == Mode::Pid1 {
        assert_eq!(owner, 65534, "{}", v.dump());
        assert_eq!(stdio, json!([0]), "{}", v.dump());
        assert!(v.stdout().contains(&"open-ok".into()), "{}", v.dump());
    } else {
        assert_eq!(owner, 0, "an operator's terminal was handed over");
        assert_eq!(stdio, json!([]), "{}", v.dump());
    }
    no_stdio_warning(&v);
    eprintln!(
        "FIGURE terminal_goes_to_the_user_only_as_pid1/{}: {} owned by uid {owner}",
        mode.name(),
        tty.display()
    );
    drop(v);
}

/// A setuid-root copy of `id` in a scratch dir.
fn setuid_id(s: &Scratch) -> String {
    let id = s.path("id");
    std::fs::copy("/usr/bin/id", &id).expect("copy id");
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).expect("chmod 4755");
    id.to_string_lossy().into_owned()
}

/// The negative control: run by uid 65534 without vigil, the copy has euid 0.
fn setuid_works_here(id: &str) -> bool {
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            id,
            "-u",
        ])
        .output()
        .expect("run setpriv");
    require(
        String::from_utf8_lossy(&out.stdout).trim() == "0",
        "a setuid-root binary in the scratch dir does not get euid 0 (nosuid mount?)",
    )
}

/// `NoNewPrivs` and `CapBnd` of every thread of `pid`.
fn lockdown_of_threads(pid: i32) -> Vec<(String, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir");
    tasks
        .flatten()
        .map(|t| {
            let tid: i32 = t.file_name().to_string_lossy().parse().expect("a tid");
            let path = format!("{pid}/task/{tid}");
            let nnp = status_field_at(&path, "NoNewPrivs");
            let bnd = u64::from_str_radix(&status_field_at(&path, "CapBnd"), 16).expect("hex");
            (nnp, bnd)
        })
        .collect()
}

fn status_field_at(path: &str, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{path}/status")).expect("status");
    s.lines()
        .find_map(|l| Some(l.strip_prefix(key)?.strip_prefix(':')?.trim().to_string()))
        .unwrap_or_else(|| panic!("no {key} in /proc/{path}/status"))
}

/// `--user nobody`: the app and every thread of vigil (a health thread runs) have NoNewPrivs 1
/// and an empty bounding set, and the setuid-root copy of `id` runs with euid 65534 (euid 0
/// without vigil, and before this change).
fn setuid_binary_cannot_regain_root(mode: Mode) {
    if !require_root() {
        return;
    }
    let s = Scratch::new();
    let id = setuid_id(&s);
    if !setuid_works_here(&id) {
        return;
    }
    let app = format!("echo euid=$({id} -u); echo ready; exec sleep 100");
    let args = [
        "--user",
        "nobody",
        "--health-listen",
        ANY_PORT,
        "--",
        "sh",
        "-c",
        &app,
    ];
    let v = vigil(&args).start(mode);
    v.health_port();
    v.wait_for_line("ready", CEILING);
    assert!(v.stdout().contains(&"euid=65534".into()), "{}", v.dump());
    let app = v.app();
    app.wait_exec("sleep");
    let me = v.pid();
    let threads = lockdown_of_threads(me);
    assert!(threads.len() >= 2, "vigil's threads: {threads:?}");
    for who in [lockdown_of_threads(app.pid), threads] {
        for (nnp, bnd) in who {
            assert_eq!((nnp.as_str(), bnd), ("1", 0), "{}", v.dump());
        }
    }
    assert_eq!(dropped(&v)["no_new_privs"], true);
    assert!(v.logs_with("capability bounding set kept").is_empty());
    stop(v);
    eprintln!(
        "FIGURE setuid_binary_cannot_regain_root/{}: setuid-root id as nobody: euid 0 without \
         vigil, 65534 under vigil --user; NoNewPrivs 1, CapBnd 0 in the app and all vigil threads",
        mode.name()
    );
}

/// Started as root without CAP_SETPCAP (a runtime that dropped it), vigil cannot empty the
/// bounding set: one warning, and the start goes on with no_new_privs, which alone keeps the
/// setuid-root binary at euid 65534.
fn bounding_set_kept_without_setpcap(mode: Mode) {
    if !require_root() {
        return;
    }
    let s = Scratch::new();
    let id = setuid_id(&s);
    if !setuid_works_here(&id) {
        return;
    }
    let app = format!("echo euid=$({id} -u); echo ready; exec sleep 100");
    let v = vigil(&["--user", "nobody", "--", "sh", "-c", &app])
        .wrap(&["setpriv", "--bounding-set", "-setpcap"])
        .start(mode);
    v.wait_for_line("ready", CEILING);
    assert!(v.stdout().contains(&"euid=65534".into()), "{}", v.dump());
    let warned = v.logs_with("capability bounding set kept");
    assert_eq!(warned.len(), 1, "{}", v.dump());
    assert_eq!(warned[0]["level"], "warn", "{}", v.dump());
    let app = v.app();
    app.wait_exec("sleep");
    let (nnp, bnd) = lockdown_of_threads(app.pid)[0].clone();
    assert_eq!(nnp, "1");
    const SETPCAP: u64 = 1 << 8;
    assert!(bnd != 0 && bnd & SETPCAP == 0, "CapBnd {bnd:x}");
    assert_eq!(dropped(&v)["no_new_privs"], true);
    stop(v);
}

/// `--allow-setuid` or `VIGIL_ALLOW_SETUID=1`: no no_new_privs, the bounding set kept, and the
/// setuid-root binary gets its euid 0.
fn allow_setuid_opts_out(mode: Mode) {
    if !require_root() {
        return;
    }
    let s = Scratch::new();
    let id = setuid_id(&s);
    if !setuid_works_here(&id) {
        return;
    }
    let app = format!("echo euid=$({id} -u); echo ready; exec sleep 100");
    let own_bnd = u64::from_str_radix(&status_field_at("self", "CapBnd"), 16).expect("hex");
    let by_flag = vigil(&["--allow-setuid", "--user", "nobody", "--", "sh", "-c", &app]);
    let by_env =
        vigil(&["--user", "nobody", "--", "sh", "-c", &app]).env("VIGIL_ALLOW_SETUID", "1");
    for b in [by_flag, by_env] {
        let v = b.start(mode);
        v.wait_for_line("ready", CEILING);
        assert!(v.stdout().contains(&"euid=0".into()), "{}", v.dump());
        let app = v.app();
        app.wait_exec("sleep");
        assert_eq!(status_field(app.pid, "NoNewPrivs").as_deref(), Some("0"));
        assert_eq!(lockdown_of_threads(app.pid), [("0".to_string(), own_bnd)]);
        assert_eq!(dropped(&v)["no_new_privs"], false);
        stop(v);
    }
}
