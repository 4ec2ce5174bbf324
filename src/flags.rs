//! The flag table: argh's structs for `vigil`, `vigil drill` and `vigil probe`, whose doc
//! comments are the `--help` text, each naming its `VIGIL_*` variable in brackets (the names
//! `envvars` knows). argh only collects strings here; `cli.rs` validates them into a `Config`.

use argh::{ArgsInfo, FromArgs};

/// vigil: a tiny PID 1 for containers. It drops root, spawns COMMAND, reaps zombies, forwards
/// signals, enforces the drain deadline on SIGTERM and serves health by probing the app.
/// Every option can also be set with its VIGIL_* environment variable; the flag wins, a probe
/// flag replaces every VIGIL_PROBE_* kind, a repeatable flag replaces the variable's list, an
/// empty value (flag or variable) means unset, and an unknown VIGIL_* name is logged as a warn.
#[derive(FromArgs, ArgsInfo, Debug, Default)]
#[argh(
    note = "Usage:\n  vigil [OPTIONS] -- COMMAND [ARGS...]\n  vigil probe TARGET [--timeout SECS]\n  vigil drill [DRILL OPTIONS] [OPTIONS] -- COMMAND [ARGS...]   (vigil drill --help)\n\n--flag=value works as --flag value; -h is --help.\nIn a Dockerfile: ENTRYPOINT [\"/vigil\", \"--\"]",
    error_code(
        2,
        "vigil's own configuration or start-up error, or a seed line not KEY=VALUE"
    ),
    error_code(124, "the --env-from seed or a --pre-start hook timed out"),
    error_code(126, "COMMAND found but not executable"),
    error_code(127, "COMMAND not found")
)]
pub struct RunArgs {
    /// drop to USER[:GROUP] (names from the container's /etc/passwd and /etc/group, or ids)
    /// before the app starts; vigil drops too [VIGIL_USER]
    #[argh(option, arg_name = "USER[:GROUP]")]
    pub user: Option<String>,

    /// keep setuid binaries and file capabilities working after the --user drop (no
    /// no_new_privs, bounding set kept) [VIGIL_ALLOW_SETUID=1|0, default off]
    #[argh(switch)]
    pub allow_setuid: bool,

    /// seconds from the first drain signal (SIGTERM/SIGINT unless --drain-signals says more)
    /// until everything left is SIGKILLed; decimals allowed [VIGIL_DRAIN_TIMEOUT, default 9]
    #[argh(option, arg_name = "SECS")]
    pub drain_timeout: Option<String>,

    /// seconds to keep the app running (readiness already failing) after the drain signal
    /// before passing it on; must be below the drain timeout [VIGIL_DRAIN_DELAY, default 0]
    #[argh(option, arg_name = "SECS")]
    pub drain_delay: Option<String>,

    /// serve /livez, /readyz, /healthz and /metrics (Prometheus) here, e.g. 0.0.0.0:8086 or
    /// [::]:8086
    /// [VIGIL_HEALTH_LISTEN, default: no server]
    #[argh(option, arg_name = "ADDR:PORT")]
    pub health_listen: Option<String>,

    /// the app is healthy when a TCP connect to HOST:PORT succeeds [VIGIL_PROBE_TCP]
    #[argh(option, arg_name = "HOST:PORT")]
    pub probe_tcp: Option<String>,

    /// the app is healthy when GET URL (http://) answers 2xx or 3xx [VIGIL_PROBE_HTTP]
    #[argh(option, arg_name = "URL")]
    pub probe_http: Option<String>,

    /// the app is healthy when CMD exits 0; CMD is split into words as a POSIX shell would
    /// (quotes, backslash) but no shell runs; runs as the dropped user [VIGIL_PROBE_EXEC]
    #[argh(option, arg_name = "CMD")]
    pub probe_exec: Option<String>,

    /// an extra request header for --probe-http, e.g. 'Host: app.example.com' or
    /// 'Authorization: Bearer TOKEN'; repeatable, replaces the env list
    /// [VIGIL_PROBE_HEADERS, one header a line]
    #[argh(option, arg_name = "'NAME: VALUE'")]
    pub probe_header: Vec<String>,

    /// seconds between probes [VIGIL_PROBE_INTERVAL, default 5]
    #[argh(option, arg_name = "SECS")]
    pub probe_interval: Option<String>,

    /// a probe slower than this many seconds fails [VIGIL_PROBE_TIMEOUT, default 1]
    #[argh(option, arg_name = "SECS")]
    pub probe_timeout: Option<String>,

    /// consecutive probe failures before liveness fails [VIGIL_PROBE_FAILURES, default 3]
    #[argh(option, arg_name = "N")]
    pub probe_failures: Option<String>,

    /// seconds after the spawn during which failures before the first success do not count
    /// against liveness [VIGIL_STARTUP_GRACE, default 60]
    #[argh(option, arg_name = "SECS")]
    pub startup_grace: Option<String>,

    /// until the first probe passes, probe this often instead of every --probe-interval (exec
    /// probes no more often than every 0.5 s) [VIGIL_STARTUP_INTERVAL, default 0.1]
    #[argh(option, arg_name = "SECS")]
    pub startup_interval: Option<String>,

    /// format of vigil's own log lines on stderr: json or text [VIGIL_LOG_FORMAT, default json]
    #[argh(option, arg_name = "json|text")]
    pub log_format: Option<String>,

    /// error, warn, info or debug [VIGIL_LOG_LEVEL, default info]
    #[argh(option, arg_name = "LEVEL")]
    pub log_level: Option<String>,

    /// what a SIGTERM from the platform becomes when passed on to the app (nginx: QUIT): names
    /// with or without SIG, RTMIN+N/RTMAX-N (RTMIN is 34, RTMAX 64) or numbers. Later steps
    /// escalate: TERM,INT@5 sends INT 5 s after the first step if the app still runs; times
    /// increase and end before the drain timeout minus the delay; each step is followed by
    /// SIGCONT; KILL, STOP, TSTP, TTIN, TTOU and CHLD are refused [VIGIL_STOP_SIGNAL, default
    /// TERM]
    #[argh(option, arg_name = "SIG[,SIG@SECS...]")]
    pub stop_signal: Option<String>,

    /// the signals that start a drain; an image whose STOPSIGNAL is another (nginx: QUIT) adds
    /// it here, and it is passed on as itself when the drain forwards [VIGIL_DRAIN_SIGNALS,
    /// default TERM,INT]
    #[argh(option, arg_name = "SIG,...")]
    pub drain_signals: Option<String>,

    /// a forwarded signal FROM goes on as TO; TO 0 drops it (scripts that send HUP to PID 1:
    /// HUP:0); never applies to the drain signals; repeatable, replaces the env list
    /// [VIGIL_REWRITE, comma list]
    #[argh(option, arg_name = "FROM:TO")]
    pub rewrite: Vec<String>,

    /// forwarded and stop signals go to the app's pid only, not its whole process group (the
    /// final SIGKILL still reaches everything) [VIGIL_SINGLE_CHILD=1|0, default off]
    #[argh(switch)]
    pub single_child: bool,

    /// report app status N as 0, whether it exited with N or died of signal N-128; repeatable,
    /// replaces the env list [VIGIL_SUCCESS_EXIT, comma list]
    #[argh(option, arg_name = "N")]
    pub success_exit: Vec<String>,

    /// before the hooks and the app, run CMD (split like a shell, no shell runs) and add each
    /// KEY=VALUE line it prints to the app's environment; keys it omits keep their value
    /// [VIGIL_ENV_FROM]
    #[argh(option, arg_name = "CMD")]
    pub env_from: Option<String>,

    /// before the app, run every executable file in DIR in lexical order, each to completion;
    /// the first failure stops the start with its status [VIGIL_PRE_START]
    #[argh(option, arg_name = "DIR")]
    pub pre_start: Option<String>,

    /// seconds the seed and each pre-start hook may run; a slower one fails with 124
    /// [VIGIL_PRE_START_TIMEOUT, default 30]
    #[argh(option, arg_name = "SECS")]
    pub pre_start_timeout: Option<String>,

    /// once the app and everything it left are gone, run CMD (split like --env-from) to clean
    /// up; its status is logged, never vigil's [VIGIL_POST_STOP]
    #[argh(option, arg_name = "CMD")]
    pub post_stop: Option<String>,

    /// seconds the post-stop command may run, and never past a drain's deadline
    /// [VIGIL_POST_STOP_TIMEOUT, default 5]
    #[argh(option, arg_name = "SECS")]
    pub post_stop_timeout: Option<String>,

    /// print the version and exit
    #[argh(switch)]
    pub version: bool,

    /// the app and its arguments, after --
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

/// `vigil probe TARGET`: check a health endpoint once, for a HEALTHCHECK in an image without curl.
#[derive(FromArgs, ArgsInfo, Debug)]
#[argh(
    note = "TARGET is http://HOST:PORT/PATH or tcp://HOST:PORT.",
    error_code(0, "healthy: 2xx/3xx answer, or the TCP connect succeeded"),
    error_code(1, "unhealthy: any other answer, refused, or timed out"),
    error_code(2, "malformed target or usage")
)]
pub struct ProbeArgs {
    /// seconds before the check fails [default 1]
    #[argh(option, arg_name = "SECS")]
    pub timeout: Option<String>,

    /// http://HOST:PORT/PATH or tcp://HOST:PORT
    #[argh(positional, arg_name = "TARGET")]
    pub target: Option<String>,
}

/// vigil drill: a shutdown drill. Runs COMMAND exactly as vigil would with the same OPTIONS,
/// waits until the app is ready (the probe passes; without a probe, --after seconds), sends the
/// platform's SIGTERM itself, and once everything is gone prints a JSON report on a line of its
/// own as the last line on stdout: ready_s, drain_s, forced_kill, exit_status, app_uid,
/// leftover, budget_s, verdict (pass or fail) and reasons. A pass needs: ready, non-root,
/// exited by itself with status 0 (or a --success-exit one) within the drain timeout and the
/// budget, nothing killed, nothing left.
#[derive(FromArgs, ArgsInfo, Debug, Default)]
#[argh(
    note = "--flag=value works as --flag value; -h is --help.",
    error_code(0, "pass"),
    error_code(1, "fail: the report's reasons say why"),
    error_code(2, "usage or configuration error: nothing was started")
)]
pub struct DrillArgs {
    /// without a probe, seconds from the spawn until the app counts as ready [default 2]
    #[argh(option, arg_name = "SECS")]
    pub after: Option<String>,

    /// the platform's grace period from SIGTERM to SIGKILL: fail when the drain takes longer
    /// than SECS - 0.5, or when --drain-timeout + 0.5 exceeds it [default 10]
    #[argh(option, arg_name = "SECS")]
    pub budget: Option<String>,

    /// before the SIGTERM, open N idle TCP connections to the probe's HOST:PORT (or
    /// --hold-target) and keep them open through the drain, as real clients would [default 0]
    #[argh(option, arg_name = "N")]
    pub hold: Option<String>,

    /// where --hold connects, when not to the tcp or http probe's address
    #[argh(option, arg_name = "HOST:PORT")]
    pub hold_target: Option<String>,

    /// also write the report (one JSON line) to FILE, opened before the --user drop
    #[argh(option, arg_name = "FILE")]
    pub report: Option<String>,
}
