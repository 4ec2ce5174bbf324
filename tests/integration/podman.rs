//! Docker's and podman's init path, with podman as a new user would run it: the static vigil as
//! `podman run --init --init-path=.../vigil` (podman starts it as `/run/podman-init -- CMD`),
//! and vigil as Docker's `docker-init` taking tini's flags. The image is `FROM scratch` with a
//! static busybox and nothing else (the release's image tests in `tests/release/` run the same
//! way), imported once per test binary and removed again at the end of each test.
//!
//! Needs root, podman and busybox-static (CI installs both); without them each test prints
//! `SKIP`, a failure under REQUIRE_ALL_TESTS=1. `--ulimit nofile/nproc` as these machines need.

use crate::peers::{output, text};
use crate::runc::static_vigil;
use crate::util::{Scratch, is_root, require};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BUSYBOX: &str = "/bin/busybox";

/// The podman options every run here takes.
const RUN: [&str; 7] = [
    "run",
    "--rm",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit=nproc=1024:1024",
];

fn podman(args: &[&str]) -> Output {
    let mut cmd = Command::new("podman");
    cmd.args(args);
    output(cmd, b"")
}

/// A scratch image holding `/bin/busybox`, removed on drop.
struct Image {
    tag: String,
}

impl Image {
    fn new(scratch: &Scratch) -> Image {
        let root = scratch.path("rootfs");
        std::fs::create_dir_all(root.join("bin")).expect("rootfs");
        std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox");
        let tar = scratch.path("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("bin")
            .status()
            .expect("tar");
        assert!(status.success());
        let tag = format!(
            "localhost/vigil-dropin-test:{}-{}",
            std::process::id(),
            scratch
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let out = podman(&["import", &tar.to_string_lossy(), &tag]);
        assert!(out.status.success(), "podman import: {out:?}");
        Image { tag }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman(&["rmi", "-f", &self.tag]);
    }
}

/// The static vigil, or why the test cannot run.
fn prerequisites() -> Option<&'static Path> {
    let podman = Command::new("podman").arg("--version").output();
    let ok = require(is_root(), "podman's containers here need root")
        && require(
            podman.is_ok_and(|o| o.status.success()),
            "podman is not installed",
        )
        && require(
            Path::new(BUSYBOX).exists(),
            "no static busybox at /bin/busybox (Debian: busybox-static)",
        );
    if !ok {
        return None;
    }
    match static_vigil() {
        Ok(vigil) => Some(vigil),
        Err(reason) => {
            require(false, reason);
            None
        }
    }
}

/// `podman run --init --init-path=vigil`: vigil is the container's PID 1, as
/// `/run/podman-init -- CMD`, and the container's status is the app's.
#[test]
fn podman_init_path() {
    let Some(vigil) = prerequisites() else {
        return;
    };
    let scratch = Scratch::new();
    let image = Image::new(&scratch);
    let init_path = format!("--init-path={}", vigil.display());
    let app = "tr '\\0' ' ' </proc/1/cmdline; echo; /bin/busybox sleep 30 & exit 5";
    let mut args = RUN.to_vec();
    args.extend(["--init", &init_path, &image.tag, BUSYBOX, "sh", "-c", app]);
    let out = podman(&args);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let cmdline = text(&out.stdout);
    assert!(
        cmdline.starts_with("/run/podman-init -- /bin/busybox sh -c"),
        "PID 1 is {cmdline:?}"
    );
    let err = text(&out.stderr);
    assert!(err.contains(r#""pid":1,"mode":"pid1""#), "{err}");
    assert!(
        err.contains(r#""msg":"terminating leftovers","count":1"#),
        "the orphan was not ended: {err}"
    );
}

/// `podman stop` on a container with vigil as its init: the app gets SIGTERM and exits 0, long
/// before podman's own SIGKILL.
#[test]
fn podman_init_path_stop() {
    let Some(vigil) = prerequisites() else {
        return;
    };
    let scratch = Scratch::new();
    let image = Image::new(&scratch);
    let name = format!("vigil-dropin-stop-{}", std::process::id());
    let init_path = format!("--init-path={}", vigil.display());
    let app = "trap 'echo got TERM; exit 0' TERM; echo ready; \
               while :; do /bin/busybox sleep 0.1; done";
    let mut args: Vec<&str> = RUN.iter().copied().filter(|&a| a != "--rm").collect();
    args.extend(["-d", "--name", &name, "--init", &init_path, &image.tag]);
    args.extend([BUSYBOX, "sh", "-c", app]);
    let out = podman(&args);
    assert!(out.status.success(), "{out:?}");
    let _container = Container(name.clone());
    let ready = crate::util::poll_until(crate::util::CEILING, || {
        text(&podman(&["logs", &name]).stdout).contains("ready")
    });
    assert!(ready, "the app never said ready");
    let t0 = std::time::Instant::now();
    let out = podman(&["stop", "-t", "8", &name]);
    let took = t0.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(took.as_secs_f64() < 7.0, "podman stop took {took:?}");
    let code = podman(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(text(&code.stdout).trim(), "0");
    assert!(text(&podman(&["logs", &name]).stdout).contains("got TERM"));
}

/// A container removed on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", &self.0]);
    }
}

/// vigil installed as Docker's `/sbin/docker-init`, the entrypoint, with tini's flags: `-e 3`
/// reports the app's 3 as 0, `-g` sends a signal to the app's whole group, and `--version`
/// answers as tini does.
#[test]
fn docker_init_with_tini_flags() {
    let Some(vigil) = prerequisites() else {
        return;
    };
    let scratch = Scratch::new();
    let image = Image::new(&scratch);
    let docker_init: PathBuf = scratch.path("docker-init");
    std::fs::copy(vigil, &docker_init).expect("copy vigil as docker-init");
    let mount = format!("{}:/sbin/docker-init:ro", docker_init.display());
    let run = |flags: &[&str], app: &str| {
        let mut args = RUN.to_vec();
        args.extend([
            "-v",
            &mount,
            "--entrypoint",
            "/sbin/docker-init",
            &image.tag,
        ]);
        args.extend(flags);
        args.extend(["--", BUSYBOX, "sh", "-c", app]);
        podman(&args)
    };
    let out = run(&["-e", "3"], "exit 3");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = run(&["-e", "3"], "exit 4");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    // The app asks PID 1 to send it SIGUSR1 and ends its child when the signal comes. With
    // -g the child, in the app's group, gets it too and dies of it first: 128 + 10; without,
    // tini's default, only the app has it: the child dies of the app's SIGTERM, 128 + 15.
    let app = "/bin/busybox sleep 30 & trap 'kill $!' USR1; kill -USR1 1; wait $!; wait $!";
    assert_eq!(run(&["-g"], app).status.code(), Some(138));
    assert_eq!(run(&[], app).status.code(), Some(143));
    let mut args = RUN.to_vec();
    args.extend([
        "-v",
        &mount,
        "--entrypoint",
        "/sbin/docker-init",
        &image.tag,
        "--version",
    ]);
    let out = podman(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text(&out.stdout).starts_with("tini version 0.19.0 - git."),
        "{out:?}"
    );
}
