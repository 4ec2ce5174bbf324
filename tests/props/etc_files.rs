//! /etc/passwd, /etc/group and `--user`: the parsers, and `resolve` against them.

use crate::engine::*;
use crate::privileges::{self, UserSpec};

const NAME_CHARS: &str = "abcdefghijklmnopqrstuvwxyz0123456789_-.$ #+:,";

fn passwd_text(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..rng.len(6, 200) {
        match rng.below(12) {
            0 => out.push_str("# a comment"),
            1 => out.push_str(rng.pick_str(&["+", "-", "+nis::::::", "-bad:x:1:1::/:"])),
            2 => {}
            _ => {
                let name = if rng.one_in(3) {
                    rng.pick(&["root", "app", "nobody", "daemon", "1000", "0"])
                        .to_string()
                } else {
                    word(rng, NAME_CHARS, 8)
                };
                let fields = [
                    name,
                    "x".into(),
                    number(rng),
                    number(rng),
                    word(rng, "abc ,", 6),
                    word(rng, "/abchome", 12),
                    "/bin/sh".into(),
                ];
                let keep = if rng.one_in(4) { rng.below(9) } else { 7 };
                let fields: Vec<&str> = fields.iter().take(keep).map(String::as_str).collect();
                out.push_str(&fields.join(":"));
            }
        }
        out.push_str(rng.pick_str(&["\n", "\n", "\n", "\r\n", "\r", ""]));
    }
    out
}

fn group_text(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..rng.len(6, 200) {
        match rng.below(12) {
            0 => out.push_str("# groups"),
            1 => out.push_str(rng.pick_str(&["+", "-", "+:::"])),
            _ => {
                let name = if rng.one_in(3) {
                    rng.pick(&["root", "staff", "app", "nogroup", "50"])
                        .to_string()
                } else {
                    word(rng, NAME_CHARS, 8)
                };
                let members: Vec<String> = (0..rng.len(3, 40))
                    .map(|_| {
                        if rng.one_in(2) {
                            rng.pick(&["app", "root", " app ", "", "nobody"])
                                .to_string()
                        } else {
                            word(rng, NAME_CHARS, 6)
                        }
                    })
                    .collect();
                let fields = [name, "x".into(), number(rng), members.join(",")];
                let keep = if rng.one_in(4) { rng.below(6) } else { 4 };
                let fields: Vec<&str> = fields.iter().take(keep).map(String::as_str).collect();
                out.push_str(&fields.join(":"));
            }
        }
        out.push_str(rng.pick_str(&["\n", "\n", "\r\n", ""]));
    }
    out
}

fn user_spec_text(rng: &mut Rng) -> String {
    let part = |rng: &mut Rng| -> String {
        match rng.below(4) {
            0 => rng
                .pick(&["root", "app", "nobody", "staff", "ghost", "daemon"])
                .to_string(),
            1 => number(rng),
            _ => word(rng, NAME_CHARS, 8),
        }
    };
    match rng.below(4) {
        0 => part(rng),
        1 => format!("{}:{}:{}", part(rng), part(rng), part(rng)),
        _ => format!("{}:{}", part(rng), part(rng)),
    }
}

const ETC_SEEDS: &[&str] = &[
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App,,,:/home/app:/bin/sh\n",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "root:x:0:\nstaff:x:50:app, crlf\ndocker:x:999:app\nnogroup:x:65534:\n",
    "crlf:x:1002:1002::/home/crlf:/bin/sh\r\n+nisuser::::::\nshort:x:5\n",
];
const ETC_DICT: &[&str] = &[
    ":",
    "::",
    "\n",
    "\r\n",
    ",",
    "#",
    "+",
    "-",
    "x",
    "0",
    "65534",
    "4294967295",
    "4294967296",
    "root",
    "app",
    "/home/app",
    " ",
];

/// The facts every parsed passwd entry has, and its round trip through a rendered line.
fn check_passwd(text: &str) {
    let entries = privileges::parse_passwd(text);
    for e in &entries {
        assert!(!e.name.is_empty(), "{e:?}");
        assert!(!e.name.contains([':', '\n']), "{e:?}");
        assert!(!e.name.starts_with(['#', '+', '-']), "{e:?}");
        assert!(!e.home.is_empty() && !e.home.contains([':', '\n']), "{e:?}");
        let line = format!("{}:x:{}:{}::{}:/bin/sh\n", e.name, e.uid, e.gid, e.home);
        // A name of blanks only makes a line that reads as blank, and is skipped: fine.
        if !line.trim().starts_with(':') {
            assert_eq!(
                privileges::parse_passwd(&line),
                std::slice::from_ref(e),
                "{line:?}"
            );
        }
    }
    assert!(entries.len() <= text.split('\n').count());
}

fn check_group(text: &str) {
    let groups = privileges::parse_group(text);
    for g in &groups {
        assert!(!g.name.is_empty() && !g.name.contains([':', '\n']), "{g:?}");
        for m in &g.members {
            assert!(!m.is_empty() && !m.contains([',', ':', '\n']), "{g:?}");
            assert_eq!(m.trim(), m, "{g:?}");
        }
        let line = format!("{}:x:{}:{}\n", g.name, g.gid, g.members.join(","));
        if !line.trim().starts_with(':') {
            assert_eq!(
                privileges::parse_group(&line),
                std::slice::from_ref(g),
                "{line:?}"
            );
        }
    }
}

/// `UserSpec::parse` round-trips through `Display`; `resolve` follows the contract's rules.
fn check_user(spec_text: &str, passwd: Option<&str>, group: Option<&str>) {
    let Ok(spec) = UserSpec::parse(spec_text) else {
        return;
    };
    assert_eq!(spec.to_string(), spec_text);
    assert!(!spec.user.is_empty() && !spec.user.contains([':', '\n', ' ']));
    let Ok(c) = privileges::resolve(&spec, passwd, group) else {
        return;
    };
    let numeric = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let users = passwd.map(privileges::parse_passwd).unwrap_or_default();
    let groups = group.map(privileges::parse_group).unwrap_or_default();
    let entry = match numeric(&spec.user) {
        Some(uid) => {
            assert_eq!(c.uid, uid, "{spec:?} {c:?}");
            users.iter().find(|e| e.uid == uid)
        }
        None => {
            let e = users.iter().find(|e| e.name == spec.user);
            assert!(
                e.is_some(),
                "a name resolved without an entry: {spec:?} {c:?}"
            );
            e
        }
    };
    assert_eq!(c.uid, entry.map_or(c.uid, |e| e.uid));
    assert_eq!(c.home, entry.map_or("/".to_string(), |e| e.home.clone()));
    assert_eq!(c.name, entry.map(|e| e.name.clone()));
    match &spec.group {
        Some(g) => {
            assert!(c.groups.is_empty(), "{spec:?} {c:?}");
            let want = numeric(g).or_else(|| groups.iter().find(|e| &e.name == g).map(|e| e.gid));
            assert_eq!(Some(c.gid), want, "{spec:?} {c:?}");
        }
        None => {
            // Without an entry the gid is the uid's number, never a default 0.
            assert_eq!(c.gid, entry.map_or(c.uid, |e| e.gid), "{spec:?} {c:?}");
            assert_eq!(c.groups.first(), Some(&c.gid), "{c:?}");
            let mut sorted = c.groups.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), c.groups.len(), "duplicate groups: {c:?}");
        }
    }
}

#[derive(Debug)]
struct EtcInput {
    spec: String,
    passwd: Option<String>,
    group: Option<String>,
}

#[test]
fn passwd_group_and_user() {
    fuzz(
        "passwd_group_and_user",
        |rng| EtcInput {
            spec: structured_or_mutated(
                rng,
                user_spec_text,
                &["app", "app:staff", "1234", "0:0"],
                ETC_DICT,
            ),
            passwd: (!rng.one_in(10))
                .then(|| structured_or_mutated(rng, passwd_text, ETC_SEEDS, ETC_DICT)),
            group: (!rng.one_in(10))
                .then(|| structured_or_mutated(rng, group_text, ETC_SEEDS, ETC_DICT)),
        },
        |i| {
            if let Some(p) = &i.passwd {
                check_passwd(p);
                check_group(p);
            }
            if let Some(g) = &i.group {
                check_group(g);
                check_passwd(g);
            }
            check_user(&i.spec, i.passwd.as_deref(), i.group.as_deref());
        },
    );
}
