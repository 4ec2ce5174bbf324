//! `--user`: ids, supplementary groups and HOME of the app and of vigil itself; names from the
//! container's own /etc files; the root warning; vigil started as a non-root user.

use crate::util::{
    CEILING, Mode, SLACK, Scratch, require_root, run, secs, status_hex, status_ids, term_ignorer,
    vigil,
};
use nix::sys::signal::Signal;
use serde_json::json;

both_modes!(
    user_nobody,
    user_numeric_without_entry,
    user_from_container_files,
    root_warning,
    nonroot_already_the_user,
    nonroot_cannot_switch
);

/// The gids /etc/group lists `user` as a member of.
fn listed_groups(user: &str, group_file: &str) -> Vec<u32> {
    group_file
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f.get(3)?;
            members
                .split(',')
                .any(|m| m.trim() == user)
                .then(|| f.get(2)?.parse().ok())?
        })
        .collect()
}

/// Checks the app's and vigil's ids after `--user`: all four uid and gid fields, and the
/// supplementary groups: at least `listed`, at most `listed` plus the primary gid (initgroups
/// adds it; the contract does not say either way).
fn assert_ids(what: &str, pid: i32, uid: u32, gid: u32, listed: &[u32]) -> Vec<u32> {
    assert_eq!(status_ids(pid, "Uid"), vec![uid; 4], "{what}: Uid");
    assert_eq!(status_ids(pid, "Gid"), vec![gid; 4], "{what}: Gid");
    let groups = status_ids(pid, "Groups");
    for g in listed {
        assert!(groups.contains(g), "{what}: Groups {groups:?} lack {g}");
    }
    for g in &groups {
        assert!(
            listed.contains(g) || *g == gid,
            "{what}: Groups {groups:?} hold {g}"
        );
    }
    groups
}

/// Starts `vigil --user <spec> -- sh -c 'echo home=$HOME; exec sleep 100'` and checks the app's
/// and vigil's ids, HOME, and the "privileges dropped" line.
/// `names` are the acceptable `user` fields of the log line (the spec as given, its user part,
/// or the passwd name).
fn check_user(
    b: crate::util::Builder,
    mode: Mode,
    names: &[&str],
    ids: (u32, u32),
    home: &str,
    listed: &[u32],
) {
    let v = b.env("HOME", "/root").start(mode);
    v.wait_for_line(&format!("home={home}"), CEILING);
    let app = v.app();
    app.wait_exec("sleep");
    let (uid, gid) = ids;
    let groups = assert_ids("app", app.pid, uid, gid, listed);
    let me = v.pid();
    let own = assert_ids("vigil", me, uid, gid, listed);
    assert_eq!(own, groups, "vigil's groups are the app's");
    assert_eq!(status_hex(me, "CapEff"), 0, "vigil keeps capabilities");
    assert_eq!(status_hex(me, "CapPrm"), 0, "vigil keeps capabilities");
    let dropped = v.wait_for_log("privileges dropped", |_| true, CEILING);
    let logged = match &dropped["user"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert!(
        names.contains(&logged.as_str()),
        "{dropped}: user is not one of {names:?}"
    );
    assert_eq!(dropped["uid"], uid, "{dropped}");
    assert_eq!(dropped["gid"], gid, "{dropped}");
    assert_eq!(dropped["groups"], json!(groups), "{dropped}");
    assert!(v.logs_with("running as root").is_empty(), "{}", v.dump());
}

const SCRIPT: &str = "echo home=$HOME; exec sleep 100";

/// `--user nobody`: ids 65534, groups per /etc/group, HOME from passwd even though HOME is set.
fn user_nobody(mode: Mode) {
    if !require_root() {
        return;
    }
    let group = std::fs::read_to_string("/etc/group").expect("/etc/group");
    let home = std::fs::read_to_string("/etc/passwd")
        .expect("/etc/passwd")
        .lines()
        .find_map(|l| Some(l.strip_prefix("nobody:")?.split(':').nth(4)?.to_string()))
        .expect("nobody in /etc/passwd");
    let b = vigil(&["--user", "nobody", "--", "sh", "-c", SCRIPT]);
    let listed = listed_groups("nobody", &group);
    check_user(b, mode, &["nobody"], (65534, 65534), &home, &listed);
}

/// A numeric uid with no passwd entry: gid of the same number, no groups, HOME=/.
fn user_numeric_without_entry(mode: Mode) {
    if !require_root() {
        return;
    }
    let b = vigil(&["--user", "1234", "--", "sh", "-c", SCRIPT]);
    check_user(b, mode, &["1234"], (1234, 1234), "/", &[]);
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      appuser:x:1500:1600:App:/home/appuser:/bin/sh\n";
const GROUP: &str = "root:x:0:\nappgroup:x:1600:\nextra1:x:2001:appuser\n\
                     extra2:x:2002:other,appuser\nextra3:x:2003:other\n";

/// Names resolve from the container's own /etc/passwd and /etc/group (bind-mounted here, and
/// unknown to the host); `:GROUP` means no supplementary groups.
fn user_from_container_files(mode: Mode) {
    if !require_root() {
        return;
    }
    let cases: &[(&str, (u32, u32), &[u32])] = &[
        ("appuser", (1500, 1600), &[2001, 2002]),
        ("appuser:extra1", (1500, 2001), &[]),
        ("1500:2003", (1500, 2003), &[]),
        ("appuser:1600", (1500, 1600), &[]),
    ];
    for &(spec, ids, listed) in cases {
        let b = vigil(&["--user", spec, "--", "sh", "-c", SCRIPT]).etc(PASSWD, GROUP);
        let given = spec.split(':').next().expect("user");
        check_user(
            b,
            mode,
            &[spec, given, "appuser"],
            ids,
            "/home/appuser",
            listed,
        );
    }
}

/// Without `--user`, vigil running as root logs a warning; with it, none.
fn root_warning(mode: Mode) {
    if !require_root() {
        return;
    }
    let (code, _, err) = run(vigil(&["--", "sh", "-c", "exit 0"]), mode);
    assert_eq!(code, 0);
    let warned: Vec<serde_json::Value> = err
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["msg"] == "running as root")
        .collect();
    assert_eq!(warned.len(), 1, "{err:#?}");
    assert_eq!(warned[0]["level"], "warn");

    let (code, _, err) = run(
        vigil(&["--user", "nobody", "--", "sh", "-c", "exit 0"]),
        mode,
    );
    assert_eq!(code, 0);
    assert!(
        !err.iter().any(|l| l.contains("running as root")),
        "{err:#?}"
    );
}

/// Started as uid 65534 (setpriv), vigil runs the app as a subreaper and passes its status on.
#[test]
fn nonroot_runs_app() {
    if !require_root() {
        return;
    }
    let mut v = vigil(&["--", "sh", "-c", "echo uid=$(id -u); exit 3"])
        .started_as_nobody()
        .subreaper();
    assert_eq!(v.wait_exit(CEILING).code, 3, "{}", v.dump());
    assert!(
        v.stdout().contains(&"uid=65534".to_string()),
        "{}",
        v.dump()
    );
    let starting = &v.logs_with("vigil starting")[0];
    assert_eq!(starting["uid"], 65534, "{starting}");
    assert_eq!(starting["mode"], "subreaper", "{starting}");
    assert!(v.logs_with("running as root").is_empty(), "{}", v.dump());
}

/// Started as uid 65534, the drain works the same: SIGKILL at the timeout, nothing left.
#[test]
fn nonroot_drain() {
    if !require_root() {
        return;
    }
    let mut v = vigil(&["--drain-timeout", "1", "--", "sh", "-c", &term_ignorer()])
        .started_as_nobody()
        .subreaper();
    v.wait_for_line("ready", CEILING);
    let app = v.app();
    assert_eq!(status_ids(app.pid, "Uid"), vec![65534; 4]);
    let t0 = v.signal(Signal::SIGTERM);
    let gone = v.wait_gone(CEILING);
    assert!(gone >= t0 + secs(1.0), "{:?}", gone - t0);
    assert!(gone <= t0 + secs(1.5) + SLACK, "{:?}", gone - t0);
    let left = v.survivors();
    assert!(left.is_empty(), "left behind: {}", v.describe(&left));
    assert_eq!(v.wait_exit(CEILING).code, 137, "{}", v.dump());
}

/// Started as uid 65534 (Kubernetes' `runAsUser` with an image that sets `VIGIL_USER`), a
/// `--user` naming that uid and gid carries on without switching: the app runs as 65534 with
/// no_new_privs, its status passes through, no error.
fn nonroot_already_the_user(mode: Mode) {
    if !require_root() {
        return;
    }
    let app = "echo ids=$(id -u):$(id -g); grep NoNewPrivs /proc/self/status; exit 5";
    for spec in ["nobody", "65534", "65534:65534"] {
        let mut v = vigil(&["--user", spec, "--", "sh", "-c", app])
            .started_as_nobody()
            .start(mode);
        assert_eq!(v.wait_exit(CEILING).code, 5, "{spec}: {}", v.dump());
        let out = v.stdout();
        assert!(out.contains(&"ids=65534:65534".into()), "{spec}: {out:?}");
        assert!(out.contains(&"NoNewPrivs:\t1".into()), "{spec}: {out:?}");
        let kept = v.wait_for_log("already running as the user", |_| true, CEILING);
        assert_eq!((&kept["uid"], &kept["gid"]), (&json!(65534), &json!(65534)));
        assert!(v.logs_with("privileges dropped").is_empty(), "{}", v.dump());
        let bad: Vec<_> = v
            .logs()
            .into_iter()
            .filter(|l| l["level"] == "error")
            .collect();
        assert!(bad.is_empty(), "{spec}: {bad:?}");
    }
}

/// Started as uid 65534, a `--user` it cannot switch to (root, another uid, its own uid with
/// another group) is a start-up error: exit 2, one line that says switching needs root, nothing
/// started.
fn nonroot_cannot_switch(mode: Mode) {
    if !require_root() {
        return;
    }
    for spec in ["root", "1234", "nobody:0"] {
        let s = Scratch::new();
        let mark = s.p("started");
        let mut v = vigil(&["--user", spec, "--", "touch", &mark])
            .started_as_nobody()
            .start(mode);
        assert_eq!(v.wait_exit(CEILING).code, 2, "{}", v.dump());
        let err = v.stderr();
        assert_eq!(err.len(), 1, "{spec}: {err:#?}");
        let line: serde_json::Value = serde_json::from_str(&err[0]).expect("a JSON line");
        let msg = line["msg"].as_str().expect("msg");
        assert_eq!(line["level"], "error", "{line}");
        assert!(
            msg.starts_with(&format!("--user \"{spec}\"")) && msg.contains("needs root"),
            "{msg}"
        );
        assert!(v.stdout().is_empty(), "{}", v.dump());
        assert!(!s.path("started").exists(), "the app was started");
    }
}
