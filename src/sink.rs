//! Where vigil's own lines go: stderr, written so that a reader that stopped reading never
//! blocks PID 1 (contract, "What vigil does" 8).
//!
//! A log collector that stalls (Docker's blocking log mode, a stuck sidecar) leaves stderr a
//! full pipe, and a plain `write(2)` to it sleeps until the reader comes back: no forwarding, no
//! reaping, no deadline. vigil never sets O_NONBLOCK on its fd 2, because the app shares that
//! file description and would start getting EAGAIN on its own writes. Instead it writes
//! without waiting by a route of its own, chosen once by what fd 2 is:
//!
//! - a pipe or a terminal: vigil opens `/proc/self/fd/2` again, which gives it a new file
//!   description of the same pipe (or terminal) that it alone uses, non-blocking;
//! - a socket (journald, some runtimes): `send` with MSG_DONTWAIT, per call;
//! - a regular file or a device such as /dev/null: a plain write, which does not wait on a
//!   reader.
//!
//! A line that cannot be written at once is dropped and counted; the next write that works is
//! preceded by one line with the count (`log::report_dropped`). A write of at most PIPE_BUF
//! bytes to a pipe is all or nothing, so lines from different threads never interleave and a
//! dropped line leaves no half behind.

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::socket::{MsgFlags, send};
use nix::sys::stat::{Mode, SFlag, fstat};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a line may wait for room while the reader has been keeping up: a collector that is
/// only slower than a burst (10,000 orphans reaped at debug) loses nothing. Once a wait runs
/// out the reader counts as stalled, and lines are dropped at once until a write works again,
/// so a stalled reader costs PID 1 this much once, not once per line.
const GRACE: Duration = Duration::from_millis(10);

/// How long a line that was partly written (longer than PIPE_BUF, or a terminal) may take to
/// finish before the rest is given up: a torn line is worse than a late one, a stall worse still.
const FINISH_WITHIN: Duration = Duration::from_millis(50);

enum Route {
    /// A non-blocking description of fd 2's pipe or terminal, vigil's alone.
    Own(OwnedFd),
    /// fd 2 is a socket: `send` with MSG_DONTWAIT.
    Socket,
    /// A file or a device: writing does not wait for a reader.
    Plain,
    /// A pipe that could not be opened again (no /proc): poll for room, then write. A write
    /// by the app between the two can still fill the pipe, so this only narrows the window.
    Polled,
}

static ROUTE: OnceLock<Route> = OnceLock::new();
/// Lines dropped since the start (`/metrics`' vigil_log_lines_dropped_total).
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines dropped and not yet reported by a line of their own.
static UNREPORTED: AtomicU64 = AtomicU64::new(0);
/// Whether the last wait for room ran out, and nothing was written since.
static STALLED: AtomicBool = AtomicBool::new(false);

/// Picks the route by what fd 2 is. Called once, before any thread or the app exists; later
/// writes that find it unset pick it then.
pub fn init() {
    ROUTE.get_or_init(choose);
}

fn choose() -> Route {
    let Ok(st) = fstat(std::io::stderr().as_fd()) else {
        return Route::Plain; // closed: every write fails, nothing waits
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let tty = kind == SFlag::S_IFCHR && nix::unistd::isatty(std::io::stderr()).unwrap_or(false);
    if kind == SFlag::S_IFSOCK {
        return Route::Socket;
    }
    if kind != SFlag::S_IFIFO && !tty {
        return Route::Plain;
    }
    let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    match open("/proc/self/fd/2", flags, Mode::empty()) {
        Ok(fd) => Route::Own(fd),
        // A terminal that cannot be opened again is written plainly; it blocks only under
        // flow control (Ctrl-S), which an operator did on purpose.
        Err(_) if tty => Route::Plain,
        Err(_) => Route::Polled,
    }
}

/// Writes one or more whole lines without waiting for the reader. False when they were
/// dropped (and counted).
pub fn write(line: &[u8]) -> bool {
    let done = try_write(line);
    if !done {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        UNREPORTED.fetch_add(1, Ordering::Relaxed);
    }
    done
}

/// `write` without counting a drop: for the line that reports the count.
pub fn try_write(line: &[u8]) -> bool {
    let route = ROUTE.get_or_init(choose);
    let fd = std::io::stderr();
    let fd = fd.as_fd();
    let target = match route {
        Route::Own(own) => own.as_fd(),
        _ => fd,
    };
    let once = || match route {
        Route::Socket => send_some(fd.as_raw_fd(), line),
        Route::Polled if !room(fd, Duration::ZERO) => Err(Errno::EAGAIN),
        _ => write_some(target, line),
    };
    let mut written = once();
    if written == Err(Errno::EAGAIN) && !STALLED.load(Ordering::Relaxed) {
        let give_up = Instant::now() + GRACE;
        while written == Err(Errno::EAGAIN) {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() || !room(target, left) {
                STALLED.store(true, Ordering::Relaxed);
                break;
            }
            written = once();
        }
    }
    let done = match written {
        Ok(n) if n == line.len() => true,
        Ok(n) if n > 0 => finish(route, fd, line.get(n..).unwrap_or_default()),
        _ => false,
    };
    if done {
        STALLED.store(false, Ordering::Relaxed);
    }
    done
}

/// The rest of a line that went out in part: given `FINISH_WITHIN` to go, then cut with a
/// newline if even that fits, so the next line starts on a line of its own.
fn finish(route: &Route, fd: BorrowedFd, mut rest: &[u8]) -> bool {
    let give_up = Instant::now() + FINISH_WITHIN;
    while !rest.is_empty() {
        let left = give_up.saturating_duration_since(Instant::now());
        let target = match route {
            Route::Own(own) => own.as_fd(),
            _ => fd,
        };
        if left.is_zero() || !room(target, left) {
            let _ = write_some(target, b"\n");
            return false;
        }
        let n = match route {
            Route::Socket => send_some(fd.as_raw_fd(), rest),
            _ => write_some(target, rest),
        };
        match n {
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
    true
}

fn write_some(fd: BorrowedFd, buf: &[u8]) -> nix::Result<usize> {
    loop {
        match nix::unistd::write(fd, buf) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

fn send_some(fd: RawFd, buf: &[u8]) -> nix::Result<usize> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    loop {
        match send(fd, buf, flags) {
            Err(Errno::EINTR) => continue,
            // Not a socket after all (fd 2 replaced?): a plain write.
            Err(Errno::ENOTSOCK) => return write_some(std::io::stderr().as_fd(), buf),
            other => return other,
        }
    }
}

/// Whether `fd` can take a write within `within` (poll for POLLOUT).
fn room(fd: BorrowedFd, within: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    let ms = u16::try_from(within.as_millis()).unwrap_or(u16::MAX);
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLOUT))
}

/// Lines dropped since the start.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Takes the count of lines dropped since the last report, to report it now.
pub fn take_unreported() -> u64 {
    UNREPORTED.swap(0, Ordering::Relaxed)
}

/// Puts back a count whose report could not be written either.
pub fn put_back(n: u64) {
    UNREPORTED.fetch_add(n, Ordering::Relaxed);
}

/// Whether lines were dropped and not yet reported: the supervisor then retries now and then.
pub fn owed() -> bool {
    UNREPORTED.load(Ordering::Relaxed) > 0
}
