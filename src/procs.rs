//! The process tree as /proc shows it: who descends from vigil, for the sweeps a subreaper must
//! do itself (a PID 1 has `kill(-1, ...)`; a subreaper may touch only its own tree).

use std::fs;

/// (pid, ppid, state) of every process in /proc; unreadable entries (raced exits) are skipped.
pub fn table() -> Vec<(i32, i32, char)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let name = e.ok()?.file_name();
        let pid: i32 = name.to_str()?.parse().ok()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&stat)
    })
    .collect()
}

/// `pid (comm) S ppid ...`: comm may hold spaces and parentheses, so split at the last `)`.
pub fn parse_stat(stat: &str) -> Option<(i32, i32, char)> {
    let open = stat.find(" (")?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((pid, ppid, state))
}

/// Every live (non-zombie) process below `root`, parents before children.
pub fn descendants_of(root: i32, table: &[(i32, i32, char)]) -> Vec<i32> {
    below(root, table)
        .into_iter()
        .filter(|&(_, state)| state != 'Z' && state != 'X')
        .map(|(pid, _)| pid)
        .collect()
}

/// Every process below `root` with its state, zombies included, parents before children.
fn below(root: i32, table: &[(i32, i32, char)]) -> Vec<(i32, char)> {
    let mut out: Vec<(i32, char)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, state) in table {
            if ppid == parent && pid != root && !out.iter().any(|&(p, _)| p == pid) {
                frontier.push(pid);
                out.push((pid, state));
            }
        }
    }
    out
}

/// Live processes below this one.
pub fn descendants() -> Vec<i32> {
    descendants_of(std::process::id() as i32, &table())
}

/// Processes below this one, zombies included. Right after vigil signals everything, and before
/// it reaps again, this is how many the signal hit: those it killed are zombies until reaped.
pub fn hit() -> usize {
    below(std::process::id() as i32, &table()).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        assert_eq!(parse_stat("42 (sleep) S 1 42 42 0"), Some((42, 1, 'S')));
        assert_eq!(parse_stat("7 (a) b) (c) Z 3 7 7"), Some((7, 3, 'Z')));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn tree_walk() {
        let t = [
            (1, 0, 'S'),
            (2, 1, 'S'),
            (3, 2, 'S'),
            (4, 2, 'Z'),
            (5, 9, 'S'),
            (6, 3, 'R'),
        ];
        let mut d = descendants_of(1, &t);
        d.sort();
        assert_eq!(d, [2, 3, 6]);
        assert_eq!(descendants_of(5, &t), Vec::<i32>::new());
        // The zombie too, and what hangs below it.
        let mut all: Vec<i32> = below(1, &t).into_iter().map(|(pid, _)| pid).collect();
        all.sort();
        assert_eq!(all, [2, 3, 4, 6]);
    }

    #[test]
    fn this_process_is_in_the_table() {
        let me = std::process::id() as i32;
        assert!(table().iter().any(|(pid, _, _)| *pid == me));
    }
}
