//! What `--user` does around the switch: stdio handed to the user (pipes and sockets, the
//! terminal only as PID 1, never a file or /dev/null).

use crate::util::{CEILING, Mode, Scratch, Vigil, require_root, vigil};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

both_modes!(
    stdio_pipes_go_to_the_user,
    file_and_null_keep_their_owner,
    terminal_goes_to_the_user_only_as_pid1
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
    assert!(v.stderr().contains(&"to-stderr".into()), "{}", v.dump());
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
