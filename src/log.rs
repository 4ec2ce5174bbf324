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

    /// The name in capitals, padded to five characters (text lines).
    fn padded_upper(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
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
/// Lines this thread deferred with `later` are written first, so its lines stay in order.
pub fn log(level: Level, msg: &str, fields: &[(&str, Value)]) {
    flush();
    if level > config().1 {
        return;
    }
    write_line(SystemTime::now(), level, msg, fields);
}

/// Renders and writes one line in one `write(2)`.
fn write_line(at: SystemTime, level: Level, msg: &str, fields: &[(&str, Value)]) {
    // One buffer per thread for the line and one for its time, reused: no allocation per line.
    LINE.with(|buf| {
        let Ok(mut bufs) = buf.try_borrow_mut() else {
            return;
        };
        let (line, ts) = &mut *bufs;
        line.clear();
        append_line(line, ts, at, level, msg, fields);
        write_out(line);
    });
}

/// Renders one line onto the end of `out`; `ts` is scratch space for its time.
fn append_line<F: Field>(
    out: &mut String,
    ts: &mut String,
    at: SystemTime,
    level: Level,
    msg: &str,
    fields: &[(&str, F)],
) {
    ts.clear();
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    push_rfc3339(ts, since.as_secs(), since.subsec_millis());
    render_into(out, config().0, ts, level, msg, fields);
}

fn write_out(lines: &str) {
    let _ = std::io::stderr().lock().write_all(lines.as_bytes());
}

/// A write(2) of at most this many bytes to a pipe is never split, so whole lines from
/// different threads cannot interleave inside each other.
const PIPE_BUF: usize = 4096;

/// A field value for `later`: copied when the line is taken down, rendered when it is
/// written, with no allocation either time.
#[derive(Debug, Clone, Copy)]
pub enum Lazy {
    Str(&'static str),
    Int(i64),
}

/// A field value as a line renders it.
pub(crate) trait Field {
    /// As JSON (the text format uses this too, for any value that is not a plain string).
    fn push_json(&self, out: &mut String);
    /// The string, when the value is one.
    fn as_str(&self) -> Option<&str>;
}

impl Field for Value {
    fn push_json(&self, out: &mut String) {
        push_json_value(out, self);
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
}

impl Field for Lazy {
    fn push_json(&self, out: &mut String) {
        match *self {
            Lazy::Str(s) => push_json_str(out, s),
            Lazy::Int(n) => push_int(out, n),
        }
    }
    fn as_str(&self) -> Option<&str> {
        match *self {
            Lazy::Str(s) => Some(s),
            Lazy::Int(_) => None,
        }
    }
}

/// A line taken down by `later`, written by `flush`.
struct Deferred {
    at: SystemTime,
    level: Level,
    msg: &'static str,
    fields: [(&'static str, Lazy); 3],
}

/// At most this many deferred lines are held; one more writes them all first.
const MAX_DEFERRED: usize = 64;

thread_local! {
    static LINE: std::cell::RefCell<(String, String)> =
        std::cell::RefCell::new((String::with_capacity(512), String::with_capacity(32)));
    static DEFERRED: std::cell::RefCell<Vec<Deferred>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Logs like `log`, stamped `at`, but renders and writes the line only at this thread's next
/// `flush` or next line, whichever comes first. For the signal path: the app's handler gets
/// the CPU before vigil formats and writes (on a one-CPU container the app otherwise waits for
/// vigil to block again). Takes no lock and, after the first call, allocates nothing.
pub fn later(at: SystemTime, level: Level, msg: &'static str, fields: [(&'static str, Lazy); 3]) {
    if level > config().1 {
        return;
    }
    let full = DEFERRED.with(|d| {
        let Ok(mut d) = d.try_borrow_mut() else {
            return false;
        };
        if d.capacity() == 0 {
            d.reserve_exact(MAX_DEFERRED);
        }
        d.push(Deferred {
            at,
            level,
            msg,
            fields,
        });
        d.len() >= MAX_DEFERRED
    });
    if full {
        flush();
    }
}

/// Writes this thread's deferred lines, oldest first, each with the time it was logged at.
pub fn flush() {
    // Several lines per write(2), whole lines only and at most PIPE_BUF bytes unless one line
    // alone is longer: a burst of forwards costs one system call per few dozen lines.
    LINE.with(|buf| {
        let Ok(mut bufs) = buf.try_borrow_mut() else {
            return;
        };
        let (batch, ts) = &mut *bufs;
        batch.clear();
        flush_with(|at, level, msg, fields| {
            let start = batch.len();
            append_line(batch, ts, at, level, msg, fields);
            if batch.len() > PIPE_BUF && start > 0 {
                write_out(batch.get(..start).unwrap_or_default());
                // `start` is just after a newline: always a char boundary.
                batch.drain(..start);
            }
        });
        if !batch.is_empty() {
            write_out(batch);
        }
    });
}

fn flush_with(mut write: impl FnMut(SystemTime, Level, &str, &[(&str, Lazy)])) {
    DEFERRED.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            // drain keeps the capacity: the next `later` does not allocate the list again.
            for l in d.drain(..) {
                write(l.at, l.level, l.msg, &l.fields);
            }
        }
    });
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
pub(crate) fn render<F: Field>(
    format: Format,
    ts: String,
    level: Level,
    msg: &str,
    fields: &[(&str, F)],
) -> String {
    let mut out = String::new();
    render_into(&mut out, format, &ts, level, msg, fields);
    out
}

/// Appends one whole line, newline included, to `out`.
fn render_into<F: Field>(
    out: &mut String,
    format: Format,
    ts: &str,
    level: Level,
    msg: &str,
    fields: &[(&str, F)],
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
                out.push(':');
                v.push_json(out);
            }
            out.push_str("}\n");
        }
        Format::Text => {
            let _ = write!(out, "{ts} {} vigil: {msg}", level.padded_upper());
            for (k, v) in fields {
                let _ = write!(out, " {k}=");
                match v.as_str() {
                    Some(s)
                        if !s.is_empty()
                            && !s.contains(|c: char| {
                                c == ' ' || c == '"' || c == '=' || c.is_control()
                            }) =>
                    {
                        out.push_str(s)
                    }
                    _ => v.push_json(out),
                }
            }
            out.push('\n');
        }
    }
}

/// Appends `s` as a JSON string literal. Runs without escapes are copied whole: every byte
/// that needs one is ASCII, and ASCII bytes are always char boundaries in UTF-8.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        out.push_str(s.get(plain..i).unwrap_or_default());
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        plain = i + 1;
    }
    out.push_str(s.get(plain..).unwrap_or_default());
    out.push('"');
}

/// The bytes `push_json_str` escapes: `"`, `\`, the C0 controls and DEL.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends a field's value: strings, integers, booleans and null directly (every field vigil
/// logs on a hot path is one of those); floats, arrays and objects through serde_json.
fn push_json_value(out: &mut String, v: &Value) {
    use std::fmt::Write as _;
    match v {
        Value::String(s) => push_json_str(out, s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => push_uint(out, u, 1),
            (None, Some(i)) => push_int(out, i),
            _ => {
                let _ = write!(out, "{n}");
            }
        },
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_uint(out, n.unsigned_abs(), 1);
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_uint(out: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    let width = width.clamp(1, digits.len());
    while n > 0 || digits.len() - start < width {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // Only ASCII digits were written, so this is always valid UTF-8.
    out.push_str(std::str::from_utf8(digits.get(start..).unwrap_or_default()).unwrap_or_default());
}

/// Seconds since the Unix epoch as RFC 3339 in UTC with milliseconds:
/// `2026-11-21T23:53:42.123Z`.
#[cfg(test)]
pub(crate) fn rfc3339(secs: u64, millis: u32) -> String {
    let mut out = String::with_capacity(24);
    push_rfc3339(&mut out, secs, millis);
    out
}

/// Appends `rfc3339(secs, millis)`; the civil date uses Howard Hinnant's days-to-date.
fn push_rfc3339(out: &mut String, secs: u64, millis: u32) {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let mut ts = *b"0000-00-00T00:00:00.000Z";
    // Years before 0 cannot come from a u64 of seconds; past 9999 they get more digits.
    let year = y.unsigned_abs();
    for (range, n) in [
        (0..4, year),
        (5..7, u64::from(m)),
        (8..10, u64::from(d)),
        (11..13, rem / 3600),
        (14..16, (rem % 3600) / 60),
        (17..19, rem % 60),
        (20..23, u64::from(millis)),
    ] {
        let mut n = n;
        for digit in ts[range].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    // Only ASCII was written.
    let ts = std::str::from_utf8(&ts).unwrap_or_default();
    if year > 9999 {
        push_uint(out, year, 4);
        out.push_str(ts.get(4..).unwrap_or_default());
    } else {
        out.push_str(ts);
    }
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
    use std::time::Duration;

    #[test]
    fn later_lines_wait_for_flush_and_keep_their_stamp() {
        let before = SystemTime::now();
        later(
            before,
            Level::Info,
            "signal forwarded",
            [
                ("signal", Lazy::Str("SIGUSR1")),
                ("pgid", Lazy::Int(42)),
                ("reason", Lazy::Str("forward")),
            ],
        );
        later(
            SystemTime::now(),
            Level::Info,
            "second",
            [
                ("a", Lazy::Int(-1)),
                ("b", Lazy::Str("")),
                ("c", Lazy::Int(0)),
            ],
        );
        // Below the default level (info): never taken down.
        later(
            SystemTime::now(),
            Level::Debug,
            "dropped",
            [
                ("a", Lazy::Int(1)),
                ("b", Lazy::Int(2)),
                ("c", Lazy::Int(3)),
            ],
        );
        std::thread::sleep(Duration::from_millis(20));
        let mut got = Vec::new();
        flush_with(|at, level, msg, fields| {
            let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
            let ts = rfc3339(since.as_secs(), since.subsec_millis());
            let line = render(Format::Json, ts, level, msg, fields);
            got.push((at, serde_json::from_str::<Value>(&line).expect("json")));
        });
        assert_eq!(got.len(), 2, "{got:?}");
        let (at, first) = &got[0];
        // Stamped with the time given, not when written 20 ms later.
        assert_eq!(*at, before);
        assert!(at.elapsed().expect("clock") >= Duration::from_millis(20));
        assert_eq!(first["msg"], "signal forwarded");
        assert_eq!(first["signal"], "SIGUSR1");
        assert_eq!(first["pgid"], 42);
        assert_eq!(first["reason"], "forward");
        assert_eq!(got[1].1["msg"], "second");
        assert_eq!(got[1].1["a"], -1);
        assert_eq!(got[1].1["b"], "");
        assert!(got[0].0 <= got[1].0);
        let mut again = 0;
        flush_with(|_, _, _, _| again += 1);
        assert_eq!(again, 0, "a flush writes each line once");
    }

    /// A deferred line renders exactly as the same line logged with JSON values.
    #[test]
    fn lazy_fields_render_like_values() {
        let lazy = [
            ("signal", Lazy::Str("SIGUSR1")),
            ("pgid", Lazy::Int(-42)),
            ("reason", Lazy::Str("a \"b\"=\n")),
            ("n", Lazy::Int(i64::MIN)),
            ("e", Lazy::Str("")),
        ];
        let values: Vec<(&str, Value)> = lazy
            .iter()
            .map(|(k, v)| match *v {
                Lazy::Str(s) => (*k, json!(s)),
                Lazy::Int(n) => (*k, json!(n)),
            })
            .collect();
        for format in [Format::Json, Format::Text] {
            let ts = || "2026-11-22T00:00:00.000Z".to_string();
            assert_eq!(
                render(format, ts(), Level::Info, "m", &lazy),
                render(format, ts(), Level::Info, "m", &values)
            );
        }
    }

    /// The hand-written renderer agrees with serde_json: integers byte for byte at every edge,
    /// everything else as parsed JSON.
    #[test]
    fn field_values_match_serde() {
        for v in [
            json!(0),
            json!(7),
            json!(-1),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1_000_000_007u64),
        ] {
            let mut out = String::new();
            push_json_value(&mut out, &v);
            assert_eq!(out, v.to_string());
        }
        for v in [
            json!(0.5),
            json!(9.0),
            json!(true),
            json!(false),
            json!(null),
            json!("a \"b\" \\ \u{8}\u{c}\u{0} ✓"),
            json!(["x", 1, null]),
            json!({"k": [1.5, "\n"]}),
        ] {
            let mut out = String::new();
            push_json_value(&mut out, &v);
            assert_eq!(serde_json::from_str::<Value>(&out).expect(&out), v);
        }
        let mut out = String::new();
        push_uint(&mut out, 5, 3);
        push_uint(&mut out, 12_345, 2);
        push_uint(&mut out, 0, 1);
        assert_eq!(out, "005123450");
    }

    /// The digit-by-digit timestamp equals the `format!` one it replaced, up to the year 29999.
    #[test]
    fn timestamps_match_format() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let (secs, ms) = (x % (3 * 253_402_300_800), (x >> 40) as u32 % 1000);
            let (y, m, d) = civil_from_days((secs / 86_400) as i64);
            let rem = secs % 86_400;
            let want = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
                rem / 3600,
                (rem % 3600) / 60,
                rem % 60
            );
            assert_eq!(rfc3339(secs, ms), want);
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339(1_795_305_222, 123), "2026-11-21T23:53:42.123Z");
        assert_eq!(rfc3339(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_799, 0), "9999-12-31T23:59:59.000Z");
        assert_eq!(rfc3339(253_402_300_800, 1), "10000-01-01T00:00:00.001Z");
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
