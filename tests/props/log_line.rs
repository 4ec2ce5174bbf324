//! Log lines in both formats, with any message, field names and JSON values.

use crate::engine::*;
use crate::log::{self, Format, Level};
use serde_json::{Map, Value, json};

fn json_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.one_in(2)),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from_bits(rng.next())),
        4 => json!(word(rng, "ab \"\\\n\r\t\u{0}\u{7f}={}", 12)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| json_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(word(rng, "ab\"\n", 4), json_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

#[derive(Debug)]
struct LogInput {
    msg: String,
    level: Level,
    fields: Vec<(String, Value)>,
    secs: u64,
}

#[test]
fn log_lines() {
    fuzz(
        "log_lines",
        |rng| LogInput {
            msg: structured_or_mutated(
                rng,
                |r| word(r, "app spawned \"\\\n\r\u{0}", 20),
                &["app spawned", "drain started"],
                &["\n", "\"", "\\"],
            ),
            level: *rng.pick(&[Level::Error, Level::Warn, Level::Info, Level::Debug]),
            fields: (0..rng.below(6))
                .map(|_| {
                    let key = if rng.one_in(4) {
                        rng.pick(&["ts", "level", "msg", "pid", "pid"]).to_string()
                    } else {
                        word(rng, "abc\"\\\n =", 6)
                    };
                    (key, json_value(rng, 0))
                })
                .collect(),
            // Up to the year 9999.
            secs: rng.next() % 253_402_300_800,
        },
        |i| {
            let ts = log::rfc3339(i.secs, (i.secs % 1000) as u32);
            assert_eq!(ts.len(), 24, "{ts}");
            let fields: Vec<(&str, Value)> = i
                .fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            let line = log::render(Format::Json, ts.clone(), i.level, &i.msg, &fields);
            assert!(
                line.ends_with('\n') && line.matches('\n').count() == 1,
                "{line:?}"
            );
            let v: Value = serde_json::from_str(&line).expect("a JSON log line parses");
            assert_eq!(v["ts"], ts.as_str());
            assert_eq!(v["msg"], i.msg.as_str());
            assert!(v["level"].is_string());
            for (k, val) in &fields {
                if !matches!(*k, "ts" | "level" | "msg") {
                    // The first value under a key wins; compared after the same JSON round trip,
                    // since serde_json's float parsing is not exact.
                    let first = fields
                        .iter()
                        .find(|(k2, _)| k2 == k)
                        .map(|(_, v)| v.to_string());
                    let first: Option<Value> =
                        first.map(|s| serde_json::from_str(&s).expect("JSON"));
                    assert_eq!(Some(&v[*k]), first.as_ref(), "{k}: {val}");
                }
            }
            let text_line = log::render(Format::Text, ts, i.level, &i.msg, &fields);
            assert!(text_line.ends_with('\n'));
            // Values are quoted when they hold a control character; the message and the keys
            // are vigil's own constants, so only they may break the line.
            let clean = |s: &str| !s.contains(['\n', '\r']);
            if clean(&i.msg) && fields.iter().all(|(k, _)| clean(k)) {
                assert_eq!(text_line.matches('\n').count(), 1, "{text_line:?}");
            }
        },
    );
}

// Regressions, with their inputs inline.

/// In the text format a string value with a newline but no space, `"` or `=` was written raw,
/// splitting the line (no field carried such a value yet).
#[test]
fn regression_text_log_value_with_newline_stays_one_line() {
    let line = log::render(
        Format::Text,
        "T".into(),
        Level::Warn,
        "probe failing",
        &[("error", json!("a\nfake-line")), ("detail", json!("x\ry"))],
    );
    assert_eq!(line.matches('\n').count(), 1, "{line:?}");
    assert!(line.ends_with('\n'));
}
