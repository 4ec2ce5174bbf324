//! `GET /metrics` on the health listener: Prometheus text format 0.0.4.
//!
//! Counters are process-wide atomics that the supervisor (forwards, reaps) and the checker
//! (probes) bump with one relaxed add each, so counting costs a forward or a reap no lock and no
//! write; the gauges come from the same status copy that `/livez` and `/readyz` answer from.
//! Rendering happens on the health thread, per scrape.

use crate::sig::Sig;
use crate::sink;
use crate::status::{App, Status};
use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the probe duration histogram, in seconds: from a local TCP connect (well under
/// 5 ms) to an exec probe at a long `--probe-timeout`.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Signal numbers are 1..=64 on Linux; index 0 is unused.
const SIGNALS: usize = 65;

static STARTED: OnceLock<f64> = OnceLock::new();
static REAPED: AtomicU64 = AtomicU64::new(0);
static FORWARDED: [AtomicU64; SIGNALS] = [const { AtomicU64::new(0) }; SIGNALS];
static PROBES: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
/// Per bucket (not cumulative), the last one past the largest bound.
static DURATIONS: [AtomicU64; BUCKETS.len() + 1] = [const { AtomicU64::new(0) }; BUCKETS.len() + 1];
static DURATION_SUM_NS: AtomicU64 = AtomicU64::new(0);

/// How a probe ended, as `vigil_probes_total{result}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok = 0,
    Fail = 1,
    Timeout = 2,
}

const RESULTS: [&str; 3] = ["ok", "fail", "timeout"];

/// Records vigil's start (the first call wins).
pub fn mark_start() {
    STARTED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    });
}

/// A signal, by its raw number, was passed on to the app.
pub fn forwarded(sig: i32) {
    let index = usize::try_from(sig).ok().filter(|&i| i > 0);
    if let Some(n) = index.and_then(|i| FORWARDED.get(i)) {
        n.fetch_add(1, Relaxed);
    }
}

/// `n` children were reaped (the app, orphans and exec probes).
pub fn reaped(n: usize) {
    REAPED.fetch_add(n as u64, Relaxed);
}

/// One probe finished after `took`.
pub fn probed(outcome: Outcome, took: Duration) {
    PROBES[outcome as usize].fetch_add(1, Relaxed);
    let secs = took.as_secs_f64();
    let bucket = BUCKETS
        .iter()
        .position(|&le| secs <= le)
        .unwrap_or(BUCKETS.len());
    DURATIONS[bucket].fetch_add(1, Relaxed);
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    DURATION_SUM_NS.fetch_add(ns, Relaxed);
}

/// The whole exposition, from `status` and the counters.
pub fn render(status: &Status) -> String {
    let mut out = String::with_capacity(2048);
    let flag = |b: bool| u8::from(b);
    let gauges: [(&str, &str, u8); 4] = [
        (
            "vigil_app_up",
            "1 while the app process runs",
            flag(status.app == App::Running),
        ),
        (
            "vigil_ready",
            "1 while /readyz answers 200",
            flag(status.ready()),
        ),
        (
            "vigil_live",
            "1 while /livez answers 200",
            flag(status.live()),
        ),
        (
            "vigil_draining",
            "1 once a drain has started",
            flag(status.draining),
        ),
    ];
    head(
        &mut out,
        "vigil_build_info",
        "gauge",
        "vigil's version; always 1",
    );
    let _ = writeln!(
        out,
        "vigil_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    head(
        &mut out,
        "vigil_start_time_seconds",
        "gauge",
        "when vigil started, in seconds since the Unix epoch",
    );
    let _ = writeln!(
        out,
        "vigil_start_time_seconds {}",
        STARTED.get().copied().unwrap_or(0.0)
    );
    for (name, help, value) in gauges {
        head(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    head(
        &mut out,
        "vigil_probes_total",
        "counter",
        "probes run, by result",
    );
    for (result, n) in RESULTS.iter().zip(&PROBES) {
        let _ = writeln!(
            out,
            "vigil_probes_total{{result=\"{result}\"}} {}",
            n.load(Relaxed)
        );
    }
    histogram(&mut out);
    counter(
        &mut out,
        "vigil_reaped_total",
        "children reaped: the app, orphans and exec probes",
        REAPED.load(Relaxed),
    );
    head(
        &mut out,
        "vigil_signals_forwarded_total",
        "counter",
        "signals passed on to the app, by signal",
    );
    for (sig, n) in FORWARDED.iter().enumerate() {
        let n = n.load(Relaxed);
        if n > 0 {
            let _ = writeln!(
                out,
                "vigil_signals_forwarded_total{{signal=\"{}\"}} {n}",
                Sig::new(sig as i32).map_or("SIG?", Sig::name)
            );
        }
    }
    counter(
        &mut out,
        "vigil_log_lines_dropped_total",
        "vigil's own log lines dropped on a stalled stderr",
        sink::dropped(),
    );
    out
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    head(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn histogram(out: &mut String) {
    const NAME: &str = "vigil_probe_duration_seconds";
    head(out, NAME, "histogram", "how long each probe took");
    let mut cumulative = 0;
    for (le, n) in BUCKETS.iter().zip(&DURATIONS) {
        cumulative += n.load(Relaxed);
        let _ = writeln!(out, "{NAME}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += DURATIONS[BUCKETS.len()].load(Relaxed);
    let sum = DURATION_SUM_NS.load(Relaxed) as f64 / 1e9;
    let _ = writeln!(out, "{NAME}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{NAME}_sum {sum}\n{NAME}_count {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters are process-wide, so one test checks them all: unit tests share the process.
    #[test]
    fn exposition() {
        mark_start();
        forwarded(1);
        forwarded(1);
        forwarded(40);
        forwarded(0);
        forwarded(99);
        forwarded(-3);
        reaped(3);
        probed(Outcome::Ok, Duration::from_millis(3));
        probed(Outcome::Fail, Duration::from_millis(30));
        probed(Outcome::Timeout, Duration::from_secs(20));
        let mut s = Status::new(Some("tcp"), 3);
        s.app = App::Running;
        s.record_probe(true, false);
        let text = render(&s);
        for line in [
            "vigil_app_up 1",
            "vigil_ready 1",
            "vigil_live 1",
            "vigil_draining 0",
            "vigil_signals_forwarded_total{signal=\"SIGHUP\"} 2",
            "vigil_signals_forwarded_total{signal=\"SIGRTMIN+6\"} 1",
            "vigil_probes_total{result=\"timeout\"} 1",
            "vigil_probe_duration_seconds_bucket{le=\"0.005\"} 1",
            "vigil_probe_duration_seconds_bucket{le=\"0.05\"} 2",
            "vigil_probe_duration_seconds_bucket{le=\"10\"} 2",
            "vigil_probe_duration_seconds_bucket{le=\"+Inf\"} 3",
            "vigil_probe_duration_seconds_count 3",
            "vigil_probe_duration_seconds_sum 20.033",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert_eq!(text.matches("vigil_signals_forwarded_total{").count(), 2);
        for name in [
            "vigil_build_info",
            "vigil_reaped_total",
            "vigil_start_time_seconds",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{text}");
        }
        assert!(text.ends_with('\n'));
    }
}
