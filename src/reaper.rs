//! Reaping: `waitpid(-1, WNOHANG)` until nothing is left to collect, and what a wait status
//! means as an exit code.
//!
//! Only the supervisor loop reaps. It runs after every SIGCHLD (and after any wake-up), and loops
//! until waitpid says "none exited", so coalesced SIGCHLDs lose nothing (catatonit#4).

use crate::sys;

/// What one pass found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// (pid, raw wait status) for each child collected.
    pub exited: Vec<(i32, i32)>,
    /// Whether any child is still alive after the pass.
    pub children_left: bool,
    /// The pass ended in an error other than ECHILD ("no children at all"), so it may have left
    /// exited children behind.
    pub error: Option<String>,
}

pub fn reap() -> Reaped {
    let mut out = Reaped::default();
    loop {
        match sys::wait_any_nohang() {
            Ok(Some(child)) => out.exited.push(child),
            Ok(None) => {
                out.children_left = true;
                return out;
            }
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => return out,
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        }
    }
}

/// The shell's convention: N for `exit N`, 128 + S for death by signal S.
pub fn exit_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status)).min(255) as u8
    } else {
        // Stopped/continued are never reported without WUNTRACED/WCONTINUED.
        255
    }
}

/// The signal that killed the process, if one did.
pub fn term_signal(status: i32) -> Option<i32> {
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}

/// `--success-exit`: N in the list reads as 0, whether from `exit N` or signal N-128.
pub fn reported(code: u8, success: &[u8]) -> u8 {
    if success.contains(&code) { 0 } else { code }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds statuses the way the kernel encodes them (see wait(2)).
    fn exited(n: i32) -> i32 {
        (n & 0xff) << 8
    }
    fn signaled(s: i32, core: bool) -> i32 {
        s | if core { 0x80 } else { 0 }
    }

    #[test]
    fn every_exit_code() {
        for n in 0..=255 {
            assert_eq!(exit_code(exited(n)), n as u8);
            assert_eq!(term_signal(exited(n)), None);
        }
    }

    #[test]
    fn every_signal() {
        for s in 1..=64 {
            if s == 0x7f {
                continue;
            }
            for core in [false, true] {
                assert_eq!(exit_code(signaled(s, core)), (128 + s) as u8, "signal {s}");
                assert_eq!(term_signal(signaled(s, core)), Some(s));
            }
        }
        assert_eq!(exit_code(signaled(9, false)), 137);
        assert_eq!(exit_code(signaled(15, false)), 143);
    }

    #[test]
    fn success_exit_maps_codes_and_signals() {
        assert_eq!(reported(143, &[143]), 0);
        assert_eq!(reported(exit_code(signaled(15, false)), &[143]), 0);
        assert_eq!(reported(3, &[143]), 3);
        assert_eq!(reported(0, &[]), 0);
        assert_eq!(reported(255, &[1, 255]), 0);
    }
}
