//! `GET /metrics` (issue 12): the Prometheus text format 0.0.4, read with a real parser
//! (the `prometheus-parse` crate), every series the contract lists with its type and help, and
//! values that follow what vigil did: probes, forwards, reaped orphans, the drain, and log lines
//! dropped on a stalled stderr.

use crate::health::{Resp, TcpTarget, V4, at, req};
use crate::util::{ANY_PORT, CEILING, Mode, poll_until, printer, secs, vigil, wait_until};
use nix::sys::signal::Signal;
use prometheus_parse::{LineInfo, Sample, SampleType, Scrape, Value};
use std::collections::HashMap;
use std::net::SocketAddr;

both_modes!(metrics_follow_vigil);

/// One scrape: the answer, the parsed samples, and each family's declared type.
struct Metrics {
    resp: Resp,
    scrape: Scrape,
    types: HashMap<String, SampleType>,
}

impl Metrics {
    fn get(addr: SocketAddr) -> Metrics {
        let resp = req(addr, "GET", "/metrics");
        assert_eq!(resp.code, 200, "{resp:?}");
        let text = String::from_utf8(resp.body.clone()).expect("UTF-8");
        let mut types = HashMap::new();
        for line in text.lines() {
            match LineInfo::parse(line) {
                LineInfo::Ignored | LineInfo::Empty => {
                    panic!("a line the parser cannot read: {line:?}\n{text}")
                }
                LineInfo::Type {
                    metric_name,
                    metric_alias,
                    sample_type,
                } => {
                    types.insert(metric_alias.unwrap_or(metric_name), sample_type);
                }
                _ => {}
            }
        }
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse");
        Metrics {
            resp,
            scrape,
            types,
        }
    }

    fn samples(&self, name: &str) -> Vec<&Sample> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .collect()
    }

    /// The value of the one series of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let hit: Vec<&Sample> = self
            .samples(name)
            .into_iter()
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect();
        assert!(hit.len() <= 1, "{name} {labels:?}: {hit:?}");
        hit.first().map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a number: {other:?}"),
        })
    }

    fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}:\n{}", self.text()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.resp.body).into_owned()
    }

    /// Every family the contract lists is there, with `# HELP` and the right `# TYPE`.
    fn assert_families(&self) {
        let ctype = self.resp.header("Content-Type").unwrap_or_default();
        assert!(
            ctype.starts_with("text/plain") && ctype.contains("version=0.0.4"),
            "{ctype}"
        );
        for (name, kind) in [
            ("vigil_build_info", SampleType::Gauge),
            ("vigil_start_time_seconds", SampleType::Gauge),
            ("vigil_app_up", SampleType::Gauge),
            ("vigil_ready", SampleType::Gauge),
            ("vigil_live", SampleType::Gauge),
            ("vigil_draining", SampleType::Gauge),
            ("vigil_probes_total", SampleType::Counter),
            ("vigil_probe_duration_seconds", SampleType::Histogram),
            ("vigil_reaped_total", SampleType::Counter),
            ("vigil_signals_forwarded_total", SampleType::Counter),
            ("vigil_log_lines_dropped_total", SampleType::Counter),
        ] {
            assert_eq!(self.types.get(name), Some(&kind), "{name}\n{}", self.text());
            assert!(
                self.scrape.docs.get(name).is_some_and(|d| !d.is_empty()),
                "{name} has no # HELP\n{}",
                self.text()
            );
        }
    }

    /// The histogram's buckets are cumulative, end at +Inf with `_count`, and count every probe.
    fn assert_histogram(&self) {
        let h = self.samples("vigil_probe_duration_seconds");
        assert_eq!(h.len(), 1, "{h:?}");
        let Value::Histogram(buckets) = &h[0].value else {
            panic!("not a histogram: {h:?}");
        };
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count)
        );
        let last = buckets.last().expect("buckets");
        assert!(last.less_than.is_infinite(), "{buckets:?}");
        let count = self.must("vigil_probe_duration_seconds_count", &[]);
        assert_eq!(last.count, count);
        let probes: f64 = ["ok", "fail", "timeout"]
            .iter()
            .map(|r| self.must("vigil_probes_total", &[("result", r)]))
            .sum();
        // A probe can end between the two reads of one scrape: never more than one apart.
        assert!((count - probes).abs() <= 1.0, "{count} vs {probes}");
        assert!(self.must("vigil_probe_duration_seconds_sum", &[]) >= 0.0);
    }
}

/// A vigil with a tcp probe, whose app leaves three orphans and prints each signal it gets:
/// `/metrics` counts the probes, the two HUPs and the USR1 it forwarded, the orphans it reaped,
/// and shows the drain (draining 1, ready 0, live 1) during the drain delay.
fn metrics_follow_vigil(mode: Mode) {
    let started = crate::util::wall_now();
    let target = TcpTarget::new();
    let probe = target.addr.to_string();
    let app = format!(
        "for i in 1 2 3; do sh -c 'sleep 0.05 &'; done; {}",
        printer("app", &["TERM"])
    );
    let mut v = vigil(&[
        "--health-listen",
        ANY_PORT,
        "--probe-tcp",
        &probe,
        "--probe-interval",
        "0.1",
        "--drain-delay",
        "1",
        "--drain-timeout",
        "3",
        "--",
        "sh",
        "-c",
        &app,
    ])
    .start(mode);
    let addr = at(V4, v.health_port());
    v.wait_for_line("app ready", CEILING);
    for (i, sig) in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGHUP]
        .into_iter()
        .enumerate()
    {
        v.signal(sig);
        wait_until("the app printed the signal", CEILING, || {
            v.stdout().iter().filter(|l| *l != "app ready").count() > i
        });
    }
    let mut m = Metrics::get(addr);
    let ok = poll_until(CEILING, || {
        m = Metrics::get(addr);
        m.must("vigil_reaped_total", &[]) >= 3.0 && m.must("vigil_ready", &[]) == 1.0
    });
    assert!(ok, "no three reaps, or not ready:\n{}", m.text());
    m.assert_families();
    m.assert_histogram();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(m.must("vigil_build_info", &[("version", version)]), 1.0);
    let start = m.must("vigil_start_time_seconds", &[]);
    assert!(
        start >= started - 1.0 && start <= crate::util::wall_now(),
        "start {start}, test {started}"
    );
    for (name, want) in [
        ("vigil_app_up", 1.0),
        ("vigil_ready", 1.0),
        ("vigil_live", 1.0),
        ("vigil_draining", 0.0),
        ("vigil_log_lines_dropped_total", 0.0),
    ] {
        assert_eq!(m.must(name, &[]), want, "{name}\n{}", m.text());
    }
    let forwarded = |m: &Metrics, s| m.must("vigil_signals_forwarded_total", &[("signal", s)]);
    assert_eq!(forwarded(&m, "SIGHUP"), 2.0, "{}", m.text());
    assert_eq!(forwarded(&m, "SIGUSR1"), 1.0, "{}", m.text());
    assert!(
        m.value("vigil_signals_forwarded_total", &[("signal", "SIGTERM")])
            .is_none()
    );
    assert!(m.must("vigil_probes_total", &[("result", "ok")]) >= 1.0);
    let head = req(addr, "HEAD", "/metrics");
    assert!(head.code == 200 && head.body.is_empty(), "{head:?}");
    let post = req(addr, "POST", "/metrics");
    assert_eq!(post.code, 405, "{post:?}");

    // In the drain delay: readiness off, liveness and the app still up, no SIGTERM sent yet.
    v.signal(Signal::SIGTERM);
    let mut d = Metrics::get(addr);
    let ok = poll_until(secs(0.8), || {
        d = Metrics::get(addr);
        d.must("vigil_draining", &[]) == 1.0
    });
    assert!(ok, "draining never 1:\n{}", d.text());
    for (name, want) in [
        ("vigil_ready", 0.0),
        ("vigil_live", 1.0),
        ("vigil_app_up", 1.0),
    ] {
        assert_eq!(d.must(name, &[]), want, "{name}\n{}", d.text());
    }
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}

/// Log lines vigil drops on a stalled stderr are counted in `/metrics` while the stall lasts.
/// The app fills the shared stderr pipe, then keeps its own stderr away from it (dash reports a
/// child killed by the forwarded USR1 there, and would block).
#[test]
fn dropped_log_lines_are_counted() {
    let app = format!(
        "(trap '' USR1; yes x | head -c 2000000) >&2 & exec 2>/dev/null; {}",
        printer("app", &["TERM"])
    );
    let mut v = vigil(&[
        "--health-listen",
        ANY_PORT,
        "--log-level",
        "debug",
        "--",
        "sh",
        "-c",
        &app,
    ])
    .stall_stderr()
    .start(crate::health::one_mode());
    let addr = at(V4, v.health_port());
    v.wait_for_line("app ready", CEILING);
    let mut dropped = 0.0;
    let ok = poll_until(CEILING, || {
        let n = v.stdout().len();
        v.signal(Signal::SIGUSR1);
        if !poll_until(CEILING, || v.stdout().len() > n) {
            panic!("the app did not get USR1\n{}", v.dump());
        }
        dropped = Metrics::get(addr).must("vigil_log_lines_dropped_total", &[]);
        dropped >= 1.0
    });
    assert!(ok, "no line counted as dropped");
    v.release_stderr();
    let report = v.wait_for_log("log lines dropped", |_| true, CEILING);
    assert!(
        report["total"].as_f64().is_some_and(|t| t >= dropped),
        "{report} vs {dropped}"
    );
    v.signal(Signal::SIGTERM);
    assert_eq!(v.wait_exit(CEILING).code, 0, "{}", v.dump());
}
