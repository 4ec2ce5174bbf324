//! `scripts/drill-image` (issue 12, point 7): `vigil drill` inside a `FROM scratch` image built
//! here with podman from tests/fixtures/drill-image/, with the image's own ENTRYPOINT and CMD,
//! ENV and USER, and a static vigil mounted in. Needs root, podman and busybox-static.

use crate::runc::{code, on_path, run, static_vigil, text};
use crate::util::{Scratch, is_root, require};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: [&str; 4] = ["sh", "sleep", "echo", "cat"];
/// A podman build or a whole drill in a container on a loaded 2-core machine.
const PODMAN_CEILING: Duration = Duration::from_secs(120);
/// Where podman cannot set the image USER's rlimits to the host's (this machine, some CI
/// runners), it refuses to start the container; these fit everywhere.
const ULIMITS: [&str; 2] = [
    "--podman-arg=--ulimit=nofile=1024:1024",
    "--podman-arg=--ulimit=nproc=1024:1024",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The test's images, removed (by their own tag) at the end.
struct Images {
    tag: String,
}

impl Images {
    /// Builds `<tag>:vigil` and `<tag>:plain` from the fixtures, with `vigil` and busybox.
    fn build(vigil: &Path) -> Images {
        let ctx = Scratch::new();
        fs::create_dir(ctx.path("bin")).expect("mkdir bin");
        fs::copy(BUSYBOX, ctx.path("bin/busybox")).expect("copy busybox");
        for applet in APPLETS {
            symlink("busybox", ctx.path(&format!("bin/{applet}"))).expect("applet link");
        }
        fs::copy(vigil, ctx.path("vigil")).expect("copy vigil");
        let images = Images {
            tag: format!("localhost/vigil-drill-test-{}", std::process::id()),
        };
        let fixtures = repo().join("tests/fixtures/drill-image");
        for (name, file) in [("vigil", "Containerfile"), ("plain", "Containerfile.plain")] {
            let out = run(
                Command::new("podman")
                    .args(["build", "-q", "-t"])
                    .arg(images.name(name))
                    .arg("-f")
                    .arg(fixtures.join(file))
                    .arg(&ctx.dir),
                PODMAN_CEILING,
            );
            assert!(
                out.status.success(),
                "podman build {file}: {}",
                text(&out.stderr)
            );
        }
        images
    }

    fn name(&self, which: &str) -> String {
        format!("{}:{which}", self.tag)
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for which in ["vigil", "plain"] {
            let _ = Command::new("podman")
                .args(["rmi", "-f", &self.name(which)])
                .output();
        }
    }
}

/// One run of the script: its exit status, stdout lines, the report (the last line) and stderr.
struct Drilled {
    code: i32,
    stdout: Vec<String>,
    report: Value,
    stderr: String,
}

fn drill_image(vigil: &Path, opts: &[&str], image: &str, drill_opts: &[&str]) -> Drilled {
    let out = run(
        Command::new(repo().join("scripts/drill-image"))
            .arg("--vigil")
            .arg(vigil)
            .args(ULIMITS)
            .args(opts)
            .arg(image)
            .args(drill_opts),
        PODMAN_CEILING,
    );
    let stdout: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let stderr = text(&out.stderr);
    let last = stdout.last().cloned().unwrap_or_default();
    let report = serde_json::from_str(&last)
        .unwrap_or_else(|e| panic!("no report ({e}): {stdout:?}\n{stderr}"));
    Drilled {
        code: code(out.status),
        stdout,
        report,
        stderr,
    }
}

/// The image whose ENTRYPOINT is vigil (`["/vigil", "--single-child", "--"]`) and whose CMD is
/// the app passes: the CMD ran (its `app ready`), as the image's USER (65534), with the image's
/// `VIGIL_DRAIN_TIMEOUT=5`; the report also lands in `--report FILE`. With the deployment's
/// `-e VIGIL_DRAIN_TIMEOUT=20` it fails on the budget. The shell-ENTRYPOINT image runs its CMD
/// as the script, and fails as root unless the drill gets `--user`.
#[test]
fn drill_image_runs_the_images_own_command() {
    let tools = is_root() && on_path("podman") && Path::new(BUSYBOX).exists();
    if !require(tools, "needs root, podman and busybox-static") {
        return;
    }
    let vigil = match static_vigil() {
        Ok(v) => v,
        Err(why) => {
            require(false, why);
            return;
        }
    };
    let images = Images::build(vigil);
    let dir = Scratch::new();
    let file = dir.p("report.json");

    let d = drill_image(
        vigil,
        &["--report", &file],
        &images.name("vigil"),
        &["--after", "0.5"],
    );
    assert_eq!(d.report["verdict"], "pass", "{:?}\n{}", d.stdout, d.stderr);
    assert_eq!(d.code, 0);
    assert_eq!(d.report["app_uid"], 65534, "the image's USER");
    assert_eq!(d.stdout[0], "app ready", "the image's CMD ran");
    assert!(
        d.stdout.iter().any(|l| l == "app stopping"),
        "{:?}",
        d.stdout
    );
    let written = fs::read_to_string(&file).expect("--report FILE");
    assert_eq!(written.trim_end(), d.stdout[d.stdout.len() - 1]);
    // vigil's own lines went to stderr: it ran as the container's PID 1.
    assert!(d.stderr.contains(r#""mode":"pid1""#), "{}", d.stderr);

    let d = drill_image(
        vigil,
        &["-e", "VIGIL_DRAIN_TIMEOUT=20"],
        &images.name("vigil"),
        &["--after", "0.5"],
    );
    assert_eq!(d.code, 1, "{}", d.report);
    let reasons = d.report["reasons"].to_string();
    assert!(
        reasons.contains("--drain-timeout 20s + 0.5 s exceeds --budget 10s"),
        "{reasons}"
    );

    let d = drill_image(vigil, &[], &images.name("plain"), &["--after", "0.5"]);
    assert_eq!(d.code, 1, "{}", d.report);
    assert!(
        d.report["reasons"][0]
            .as_str()
            .unwrap_or_default()
            .contains("root"),
        "{}",
        d.report
    );
    assert_eq!(d.stdout[0], "app ready", "the CMD is the shell's script");

    let d = drill_image(
        vigil,
        &[],
        &images.name("plain"),
        &["--user", "65534", "--after", "0.5"],
    );
    assert_eq!(d.report["verdict"], "pass", "{:?}\n{}", d.stdout, d.stderr);
    assert_eq!(d.report["app_uid"], 65534);
}

/// Before a run: no such image is a usage error, exit 2, and nothing runs.
#[test]
fn drill_image_needs_an_image() {
    if !require(on_path("podman"), "needs podman") {
        return;
    }
    let out = run(
        Command::new(repo().join("scripts/drill-image")).args([
            "--vigil",
            "/bin/true",
            "localhost/vigil-no-such-image:0",
        ]),
        PODMAN_CEILING,
    );
    assert_eq!(code(out.status), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no image"),
        "{}",
        text(&out.stderr)
    );
}
