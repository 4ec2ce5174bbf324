//! `--user`: the container's /etc/passwd and /etc/group parsed as text, and the switch itself.
//!
//! Parsing is pure (static musl has no NSS, and the contract says "never NSS"), so every rule is
//! unit-tested on fixtures. The switch is setgroups, setgid, setuid in that order (as
//! s6-applyuidgid and su-exec do) for vigil itself; the app inherits the dropped ids. std's
//! `Command::uid` is avoided: as root it clears the supplementary groups. What surrounds the
//! switch (stdio, bounding set, no_new_privs) is `lockdown.rs`.

use crate::error::{Error, Warning};
use crate::lockdown;
use nix::unistd::{Gid, Uid, getegid, geteuid, getgid, getuid, setgid, setgroups, setuid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// `USER[:GROUP]` as given; resolved against the files at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    pub group: Option<String>,
    /// Where it came from, `--user` or `VIGIL_USER`, so errors name it.
    pub source: String,
}

/// Who the app (and vigil) will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub name: Option<String>,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, exactly what setgroups gets.
    pub groups: Vec<u32>,
    pub home: String,
}

impl UserSpec {
    /// Parses a spec as given with `--user` (set `source` for `VIGIL_USER`).
    pub fn parse(s: &str) -> Result<UserSpec, String> {
        const WHY: &str = "expected USER[:GROUP], names or numeric ids";
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let ok = |p: &str| !p.is_empty() && !p.contains([':', '\n', ' ']);
        if !ok(user) || group.is_some_and(|g| !ok(g)) {
            return Err(WHY.into());
        }
        Ok(UserSpec {
            user: user.to_string(),
            group: group.map(str::to_string),
            source: "--user".into(),
        })
    }
}

impl std::fmt::Display for UserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.group {
            Some(g) => write!(f, "{}:{g}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

fn id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The `:`-separated fields of each line with a name and at least `min` fields. Comments,
/// blank lines and NIS `+`/`-` lines are skipped, as is a trailing `\r`.
fn records(text: &str, min: usize) -> impl Iterator<Item = Vec<&str>> {
    text.lines().filter_map(move |line| {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with(['#', '+', '-']) {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= min && !f[0].is_empty()).then_some(f)
    })
}

/// `name:password:uid:gid:gecos:home:shell`. Lines without a numeric uid and gid are skipped;
/// a missing home is `/`.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    records(text, 4)
        .filter_map(|f| {
            let home = f.get(5).copied().filter(|h| !h.is_empty()).unwrap_or("/");
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: id(f[2])?,
                gid: id(f[3])?,
                home: home.to_string(),
            })
        })
        .collect()
}

/// `name:password:gid:member,member`. Malformed lines are skipped like in `parse_passwd`.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    records(text, 3)
        .filter_map(|f| {
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: id(f[2])?,
                members,
            })
        })
        .collect()
}

/// Applies the contract's rules. `passwd`/`group` are the files' text, None when missing.
///
/// - USER by name must exist; by number it may not (then it has no name and home `/`).
/// - GROUP given: that group is the gid and there are no supplementary groups (gosu and su-exec
///   behave the same; Docker's `--user u:g` too).
/// - No GROUP: the passwd gid, and supplementary groups are the primary gid plus every group that
///   lists the user (what initgroups gives). A numeric uid without an entry gets gid = uid, never
///   0 (gosu and su-exec would keep root's gid 0 there).
pub fn resolve(
    spec: &UserSpec,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Credentials, Error> {
    let unknown = |why: String| Error::bad(&spec.source, &spec.to_string(), why);
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();

    let entry = match id(&spec.user) {
        Some(uid) => users.iter().find(|e| e.uid == uid).cloned(),
        None => Some(
            users
                .iter()
                .find(|e| e.name == spec.user)
                .cloned()
                .ok_or_else(|| match passwd {
                    Some(_) => unknown(format!("no user {:?} in /etc/passwd", spec.user)),
                    None => unknown("cannot read /etc/passwd to look the user up".into()),
                })?,
        ),
    };
    let uid = match (&entry, id(&spec.user)) {
        (Some(e), _) => e.uid,
        (None, Some(uid)) => uid,
        (None, None) => return Err(unknown("no such user".into())),
    };
    let home = entry.as_ref().map_or("/".to_string(), |e| e.home.clone());
    let name = entry.as_ref().map(|e| e.name.clone());

    let (gid, supplementary) = match &spec.group {
        Some(g) => {
            let gid = match id(g) {
                Some(gid) => gid,
                None => groups
                    .iter()
                    .find(|e| &e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| match group {
                        Some(_) => unknown(format!("no group {g:?} in /etc/group")),
                        None => unknown("cannot read /etc/group to look the group up".into()),
                    })?,
            };
            (gid, Vec::new())
        }
        None => {
            let gid = entry.as_ref().map_or(uid, |e| e.gid);
            let mut list = vec![gid];
            if let Some(n) = &name {
                for g in groups.iter().filter(|g| g.members.iter().any(|m| m == n)) {
                    if !list.contains(&g.gid) {
                        list.push(g.gid);
                    }
                }
            }
            (gid, list)
        }
    };
    Ok(Credentials {
        name,
        uid,
        gid,
        groups: supplementary,
        home,
    })
}

/// Reads the container's own files and resolves `spec`.
pub fn lookup(spec: &UserSpec) -> Result<Credentials, Error> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok();
    let group = std::fs::read_to_string("/etc/group").ok();
    resolve(spec, passwd.as_deref(), group.as_deref())
}

/// How the drop went, for the start-up's lines.
#[derive(Debug, Default)]
pub struct Dropped {
    /// False when vigil already ran as the user (Kubernetes' `runAsUser`): nothing switched.
    pub switched: bool,
    pub no_new_privs: bool,
    /// The stdio descriptors handed to the user.
    pub stdio: Vec<i32>,
    /// What did not go as it should but does not stop the start.
    pub warnings: Vec<Warning>,
}

/// Switches this process (and so everything it spawns later) to `creds`: stdio handed over,
/// then (unless `allow_setuid`, or the user is root) the bounding set emptied, then setgroups,
/// setgid, setuid, then no_new_privs. `pid1`: whether a terminal may be handed over.
///
/// Already running as exactly those ids (an image with `USER app` and `VIGIL_USER=app`), there is
/// no switch, only no_new_privs. Otherwise switching needs root, and any refusal is a start-up
/// error.
pub fn drop_to(
    spec: &UserSpec,
    creds: &Credentials,
    allow_setuid: bool,
    pid1: bool,
) -> Result<Dropped, Error> {
    let (uid, gid) = (Uid::from_raw(creds.uid), Gid::from_raw(creds.gid));
    let lock = !allow_setuid && !uid.is_root();
    let mut dropped = Dropped {
        no_new_privs: lock,
        ..Dropped::default()
    };
    let root = geteuid().is_root();
    if !root && getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid {
        if lock {
            lockdown::no_new_privs(&spec.source, &spec.to_string())?;
        }
        return Ok(dropped);
    }
    if !root {
        let why = format!(
            "switching to uid {} gid {} needs root, and vigil runs as uid {} gid {} (start it as \
             root, or as that user)",
            creds.uid,
            creds.gid,
            geteuid(),
            getegid()
        );
        return Err(Error::bad(&spec.source, &spec.to_string(), why));
    }
    let fail = |op, errno| Error::SwitchUser {
        source: spec.source.clone(),
        spec: spec.to_string(),
        op,
        errno,
    };
    dropped.stdio = lockdown::hand_over_stdio(creds.uid, pid1, &mut dropped.warnings);
    if lock {
        lockdown::empty_bounding_set(&mut dropped.warnings);
    }
    let groups: Vec<Gid> = creds.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| fail("setgroups", e))?;
    setgid(gid).map_err(|e| fail("setgid", e))?;
    setuid(uid).map_err(|e| fail("setuid", e))?;
    // As root setuid sets real, effective and saved ids; check rather than trust, since staying
    // root by accident is the one failure this feature exists to prevent.
    if getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid {
        return Err(fail("verify the switched ids", nix::Error::EPERM));
    }
    if !uid.is_root() && setuid(Uid::from_raw(0)).is_ok() {
        return Err(fail("drop root for good", nix::Error::EPERM));
    }
    if lock {
        lockdown::no_new_privs(&spec.source, &spec.to_string())?;
    }
    dropped.switched = true;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# comment line
root:x:0:0:root:/root:/bin/sh

daemon:x:1:1::/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App User,,,:/home/app:/bin/sh
broken:x:notanumber:1:::
short:x:5
+nisuser::::::
nohome:x:1001:1001::
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
crlf:x:1002:1002::/home/crlf:/bin/sh\r
";

    const GROUP: &str = "\
# groups
root:x:0:
staff:x:50:app, crlf
docker:x:999:app
nogroup:x:65534:
bad:x:nan:app
app:x:1000:
empty:x:60:
";

    fn spec(s: &str) -> UserSpec {
        UserSpec::parse(s).unwrap()
    }

    #[test]
    fn passwd_parsing_skips_what_it_cannot_use() {
        let users = parse_passwd(PASSWD);
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["root", "daemon", "app", "nohome", "nobody", "crlf"]);
        assert_eq!(users[2].home, "/home/app");
        assert_eq!(users[3].home, "/");
        assert_eq!(users[5].home, "/home/crlf");
        assert!(parse_passwd("").is_empty());
        assert!(parse_passwd("\n\n#x\n::::\n").is_empty());
    }

    #[test]
    fn group_parsing() {
        let groups = parse_group(GROUP);
        let staff = groups.iter().find(|g| g.name == "staff").unwrap();
        assert_eq!(staff.members, ["app", "crlf"]);
        assert!(groups.iter().all(|g| g.name != "bad"));
        assert!(
            groups
                .iter()
                .find(|g| g.name == "empty")
                .unwrap()
                .members
                .is_empty()
        );
    }

    #[test]
    fn by_name_gets_primary_and_supplementary_groups() {
        let c = resolve(&spec("app"), Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((c.uid, c.gid), (1000, 1000));
        assert_eq!(c.groups, [1000, 50, 999]);
        assert_eq!(c.home, "/home/app");
        assert_eq!(c.name.as_deref(), Some("app"));
    }

    #[test]
    fn explicit_group_means_no_supplementary_groups() {
        let c = resolve(&spec("app:staff"), Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((c.uid, c.gid), (1000, 50));
        assert!(c.groups.is_empty());
        let c = resolve(&spec("app:4242"), Some(PASSWD), None).unwrap();
        assert_eq!(c.gid, 4242);
        let c = resolve(&spec("4000:4001"), None, None).unwrap();
        assert_eq!((c.uid, c.gid, c.home.as_str()), (4000, 4001, "/"));
    }

    #[test]
    fn numeric_uid_without_entry_never_gets_gid_zero() {
        let c = resolve(&spec("1234"), Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((c.uid, c.gid), (1234, 1234));
        assert_eq!(c.groups, [1234]);
        assert_eq!(c.home, "/");
        assert_eq!(c.name, None);
        let c = resolve(&spec("1234"), None, None).unwrap();
        assert_eq!((c.uid, c.gid), (1234, 1234));
    }

    #[test]
    fn numeric_uid_with_entry_uses_it() {
        let c = resolve(&spec("65534"), Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((c.uid, c.gid), (65534, 65534));
        assert_eq!(c.home, "/nonexistent");
        assert_eq!(c.name.as_deref(), Some("nobody"));
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = resolve(&spec("ghost"), Some(PASSWD), Some(GROUP)).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"--user "ghost": no user "ghost" in /etc/passwd"#
        );
        let e = resolve(&spec("app:ghosts"), Some(PASSWD), Some(GROUP)).unwrap_err();
        assert!(e.to_string().contains(r#"no group "ghosts""#));
        let e = resolve(&spec("app"), None, None).unwrap_err();
        assert!(e.to_string().contains("cannot read /etc/passwd"));
        let e = resolve(&spec("app:staff"), Some(PASSWD), None).unwrap_err();
        assert!(e.to_string().contains("cannot read /etc/group"));
        assert!(resolve(&spec("broken"), Some(PASSWD), Some(GROUP)).is_err());
        assert!(resolve(&spec("+nisuser"), Some(PASSWD), Some(GROUP)).is_err());
    }

    #[test]
    fn spec_syntax() {
        assert_eq!(spec("a:b").group.as_deref(), Some("b"));
        assert_eq!(spec("a").group, None);
        for bad in ["", ":", "a:", ":b", "a:b:c", "a b"] {
            assert!(UserSpec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(spec("app:staff").to_string(), "app:staff");
    }
}
