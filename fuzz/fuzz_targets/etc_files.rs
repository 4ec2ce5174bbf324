//! /etc/passwd, /etc/group and `--user`: the input is `SPEC \0 PASSWD \0 GROUP`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_fuzz::privileges::{UserSpec, parse_group, parse_passwd, resolve};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let (spec, passwd, group) = (parts.next(), parts.next(), parts.next());
    for e in parse_passwd(passwd.unwrap_or(text)) {
        assert!(!e.name.is_empty() && !e.name.contains(':') && !e.home.is_empty());
    }
    for g in parse_group(group.unwrap_or(text)) {
        assert!(g.members.iter().all(|m| !m.is_empty() && !m.contains(',')));
    }
    if let Ok(s) = UserSpec::parse(spec.unwrap_or("")) {
        assert_eq!(s.to_string(), spec.unwrap_or(""));
        if let Ok(c) = resolve(&s, passwd, group) {
            assert!(!c.home.is_empty());
            assert!(s.group.is_some() || c.groups.first() == Some(&c.gid));
        }
    }
});
