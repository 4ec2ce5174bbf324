//! The `VIGIL_*` variables as deployments use them: a blank value is unset, so a deployment can
//! switch off or replace what an image's `ENV` set (`VIGIL_PROBE_HTTP=` with
//! `VIGIL_PROBE_TCP=...`); and a name vigil does not know is one warn line at start-up, never an
//! error, since an older vigil rolled back under a newer image's settings must still start, and a
//! misspelling (`VIGIL_DRAIN_TIMEOUTT=3`) must not run silently with the default.
//!
//! The known names are those `vigil --help` documents in its `[VIGIL_...]` brackets: one list,
//! which every new option's help line keeps up to date.

use crate::log;
use serde_json::json;

const PREFIX: &str = "VIGIL_";

/// A value that is empty or only blanks counts as unset.
pub fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Every `VIGIL_*` name mentioned in `help`.
pub fn known(help: &str) -> Vec<&str> {
    let mut names: Vec<&str> = help
        .match_indices(PREFIX)
        .map(|(at, _)| {
            let len = help[at..]
                .bytes()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            &help[at..at + len]
        })
        .filter(|name| name.len() > PREFIX.len() && !name.ends_with('_'))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The names in `names` that start with `VIGIL_` but are not `known`, each with the known name
/// it is likely a misspelling of, if one is close.
pub fn unknown<'k>(
    names: impl IntoIterator<Item = String>,
    known: &[&'k str],
) -> Vec<(String, Option<&'k str>)> {
    let mut out: Vec<(String, Option<&'k str>)> = names
        .into_iter()
        .filter(|n| n.starts_with(PREFIX) && !known.contains(&n.as_str()))
        .map(|n| {
            let near = known
                .iter()
                .map(|k| (distance(&n, k), *k))
                .filter(|(d, _)| *d <= 2)
                .min()
                .map(|(_, k)| k);
            (n, near)
        })
        .collect();
    out.sort();
    out
}

/// Logs one warn line for each unknown `VIGIL_*` variable in vigil's environment; `help` is
/// asked for only when there is one.
pub fn warn_unknown(help: impl FnOnce() -> String) {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(PREFIX))
        .collect();
    if names.is_empty() {
        return;
    }
    let help = help();
    for (name, near) in unknown(names, &known(&help)) {
        let mut fields = vec![("name", json!(name))];
        if let Some(near) = near {
            fields.push(("did_you_mean", json!(near)));
        }
        log::warn("unknown VIGIL_* variable ignored", &fields);
    }
}

/// Levenshtein distance over bytes (names are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != *cb));
            diag = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "  --drain-timeout   seconds [VIGIL_DRAIN_TIMEOUT, default\n  9]\n  \
        --probe-header  headers [VIGIL_PROBE_HEADERS, one a line]\n  \
        --user  [VIGIL_USER] every VIGIL_* variable, VIGIL_PROBE_* kind, VIGIL_USER again";

    #[test]
    fn blank_is_unset() {
        assert_eq!(set(Some(String::new())), None);
        assert_eq!(set(Some(" \t".into())), None);
        assert_eq!(set(Some(" 3 ".into())), Some(" 3 ".into()));
        assert_eq!(set(None), None);
    }

    #[test]
    fn known_names_come_from_the_help() {
        assert_eq!(
            known(HELP),
            ["VIGIL_DRAIN_TIMEOUT", "VIGIL_PROBE_HEADERS", "VIGIL_USER"]
        );
    }

    #[test]
    fn unknown_names_with_a_hint() {
        let env = [
            "VIGIL_DRAIN_TIMEOUTT",
            "VIGIL_USER",
            "VIGIL_FOO",
            "PATH",
            "TINI_SUBREAPER",
            "VIGIL_PROBE_HEADER",
        ]
        .map(String::from);
        assert_eq!(
            unknown(env, &known(HELP)),
            [
                ("VIGIL_DRAIN_TIMEOUTT".into(), Some("VIGIL_DRAIN_TIMEOUT")),
                ("VIGIL_FOO".into(), None),
                ("VIGIL_PROBE_HEADER".into(), Some("VIGIL_PROBE_HEADERS")),
            ]
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("abc", "abcd"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "ab"), 2);
    }
}
