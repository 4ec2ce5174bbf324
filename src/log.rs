//! vigil's own log lines: one JSON object (or one text line) per event, on stderr only.
//!
//! stdout belongs to the app. Each line is built in memory and written with one `write(2)`, so
//! lines from the supervisor and the health threads never interleave. A failed write (stderr
//! closed, a full pipe) is ignored: logging must never stop PID 1.

use serde_json::Value;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "error" => Some(Level::Error),
            "warn" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "text" => Some(Format::Text),
            _ => None,
        }
    }
}

static CONFIG: OnceLock<(Format, Level)> = OnceLock::new();

/// Sets the format and level once; later calls are ignored. Before it, json at info is used.
pub fn init(format: Format, level: Level) {
    let _ = CONFIG.set((format, level));
}

fn config() -> (Format, Level) {
    CONFIG.get().copied().unwrap_or((Format::Json, Level::Info))
}

pub fn enabled(level: Level) -> bool {
    level <= config().1
}

/// Logs `msg` with its facts as fields. `fields` are (name, value) pairs; use `serde_json::json!`.
pub fn log(level: Level, msg: &str, fields: &[(&str, Value)]) {
    let (format, max) = config();
    if level > max {
        return;
    }
    // One buffer per thread, reused: no allocation churn per line on the signal path.
    LINE.with(|buf| {
        let Ok(mut line) = buf.try_borrow_mut() else {
            return;
        };
        line.clear();
        render_into(&mut line, format, &now_rfc3339(), level, msg, fields);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    });
}

thread_local! {
    static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
}

pub fn error(msg: &str, fields: &[(&str, Value)]) {
    log(Level::Error, msg, fields)
}
pub fn warn(msg: &str, fields: &[(&str, Value)]) {
    log(Level::Warn, msg, fields)
}
pub fn info(msg: &str, fields: &[(&str, Value)]) {
    log(Level::Info, msg, fields)
}
pub fn debug(msg: &str, fields: &[(&str, Value)]) {
    log(Level::Debug, msg, fields)
}

/// One whole line, newline included.
#[cfg(test)]
pub(crate) fn render(
    format: Format,
    ts: String,
    level: Level,
    msg: &str,
    fields: &[(&str, Value)],
) -> String {
    let mut out = String::new();
    render_into(&mut out, format, &ts, level, msg, fields);
    out
}

/// Appends one whole line, newline included, to `out`.
fn render_into(
    out: &mut String,
    format: Format,
    ts: &str,
    level: Level,
    msg: &str,
    fields: &[(&str, Value)],
) {
    use std::fmt::Write as _;
    match format {
        Format::Json => {
            // `ts`, `level` and `msg` first so a human reading raw lines finds them; a field can
            // never overwrite them.
            out.push_str("{\"ts\":");
            push_json_str(out, ts);
            out.push_str(",\"level\":\"");
            out.push_str(level.name());
            out.push_str("\",\"msg\":");
            push_json_str(out, msg);
            for (i, (k, v)) in fields.iter().enumerate() {
                let taken = matches!(*k, "ts" | "level" | "msg")
                    || fields[..i].iter().any(|(earlier, _)| earlier == k);
                if taken {
                    continue;
                }
                out.push(',');
                push_json_str(out, k);
                let _ = write!(out, ":{v}");
            }
            out.push_str("}\n");
        }
        Format::Text => {
            let _ = write!(out, "{ts} {:<5} vigil: {msg}", level.name().to_uppercase());
            for (k, v) in fields {
                let _ = write!(out, " {k}=");
                match v {
                    Value::String(s)
                        if !s.is_empty()
                            && !s.contains(|c: char| {
                                c == ' ' || c == '"' || c == '=' || c.is_control()
                            }) =>
                    {
                        out.push_str(s)
                    }
                    other => {
                        let _ = write!(out, "{other}");
                    }
                }
            }
            out.push('\n');
        }
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Now as RFC 3339 in UTC with milliseconds: `2026-11-21T23:53:42.123Z`.
pub fn now_rfc3339() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_millis())
}

/// Formats seconds since the Unix epoch; the civil date uses Howard Hinnant's days-to-date.
pub fn rfc3339(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339(1_795_305_222, 123), "2026-11-21T23:53:42.123Z");
        assert_eq!(rfc3339(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_799, 0), "9999-12-31T23:59:59.000Z");
    }

    #[test]
    fn json_lines_parse_and_keep_reserved_keys() {
        let line = render(
            Format::Json,
            "2026-11-21T23:53:42.123Z".into(),
            Level::Info,
            "app spawned \"x\"",
            &[
                ("pid", json!(42)),
                ("msg", json!("evil")),
                ("pid", json!(7)),
            ],
        );
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-11-21T23:53:42.123Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "app spawned \"x\"");
        assert_eq!(v["pid"], 42);
    }

    #[test]
    fn json_strings_escape_like_serde() {
        for s in [
            "plain",
            "quote \" and \\",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}\u{7f}",
            "ünïcödé ✓",
            "",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn text_lines() {
        let line = render(
            Format::Text,
            "T".into(),
            Level::Warn,
            "signal not delivered",
            &[
                ("signal", json!("SIGHUP")),
                ("error", json!("Operation not permitted")),
            ],
        );
        assert_eq!(
            line,
            "T WARN  vigil: signal not delivered signal=SIGHUP error=\"Operation not permitted\"\n"
        );
    }

    #[test]
    fn text_values_with_control_characters_are_quoted() {
        let line = render(
            Format::Text,
            "T".into(),
            Level::Info,
            "m",
            &[("k", json!("a\nb"))],
        );
        assert_eq!(line, "T INFO  vigil: m k=\"a\\nb\"\n");
    }

    #[test]
    fn levels_order_and_parse() {
        assert!(Level::Error < Level::Debug);
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse("WARN"), None);
        assert_eq!(Format::parse("text"), Some(Format::Text));
    }
}
