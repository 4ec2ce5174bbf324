//! The order of the hooks and the app, and their deadlines, as pure logic: events and instants
//! in, [`Step`]s out (see `hooks.rs` for what each hook does).

use super::{Hook, Kind, TIMED_OUT};
use crate::drain::REAP_GRACE;
use crate::reaper;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the supervisor must do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start this hook in front, then report [`Sequence::spawned`] or
    /// [`Sequence::spawn_failed`].
    Spawn(Hook),
    /// Every start-up hook passed: start the app.
    App,
    /// The running seed or pre-start hook outran its time: SIGKILL its process group.
    KillGroup(i32),
    /// The post-stop outran its time, or left processes behind: SIGKILL everything left.
    KillAll,
    /// A forced kill at the drain's deadline came first: the post-stop will not run.
    SkipPostStop,
}

/// How a hook ended, for the supervisor to log and act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A seed or pre-start hook exited 0 and the start goes on.
    Passed(Kind),
    /// A seed or pre-start hook failed, or a drain ended it: the start stops with `code`.
    Stopped { kind: Kind, code: u8 },
    /// The post-stop ended with `code`.
    PostStop { code: u8 },
}

/// What the supervisor knows when it asks for the next step.
#[derive(Debug, Clone, Copy, Default)]
pub struct World {
    /// A drain has started.
    pub draining: bool,
    /// The drain's SIGKILL has gone out.
    pub killed: bool,
    /// The app has exited, or the start stopped before it.
    pub ended: bool,
    /// Some child of vigil is still alive (as of the last reap).
    pub children_left: bool,
    /// When a drain under way ends in SIGKILL.
    pub kill_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Seed and pre-start hooks, one after another.
    Starting,
    /// The app was started.
    App,
    /// The start stopped before the app, with this status.
    Stopped(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    /// No `--post-stop`, or it has run and everything it left is gone.
    Done,
    /// Waits for everything to be gone.
    Pending,
    /// Started; once it exits, what it left is killed and reaped until `sweep_until`.
    Started { sweep_until: Option<Instant> },
}

#[derive(Debug, Clone, Copy)]
struct Running {
    kind: Kind,
    pid: i32,
    deadline: Instant,
    timed_out: bool,
}

/// The hooks' order and state.
#[derive(Debug, Clone)]
pub struct Sequence {
    queue: VecDeque<Hook>,
    post_stop: Option<Hook>,
    timeout: Duration,
    post_timeout: Duration,
    running: Option<Running>,
    stage: Stage,
    post: Post,
}

impl Sequence {
    /// `start`: the seed, then the pre-start hooks, in the order they run.
    pub fn new(
        start: Vec<Hook>,
        post_stop: Option<Hook>,
        timeout: Duration,
        post_timeout: Duration,
    ) -> Sequence {
        Sequence {
            queue: start.into(),
            post: if post_stop.is_some() {
                Post::Pending
            } else {
                Post::Done
            },
            post_stop,
            timeout,
            post_timeout,
            running: None,
            stage: Stage::Starting,
        }
    }

    /// What is due at `now`; None when nothing is (call again after the next event).
    pub fn next(&mut self, now: Instant, w: World) -> Option<Step> {
        if let Some(r) = self.running.as_mut() {
            let post = r.kind == Kind::PostStop;
            let deadline = if post {
                earliest(r.deadline, w.kill_at)
            } else {
                r.deadline
            };
            if post && w.killed && !r.timed_out {
                // The drain's SIGKILL reached it with everything else: reap it within the grace.
                r.timed_out = true;
                self.post = Post::Started {
                    sweep_until: Some(now + REAP_GRACE),
                };
                return None;
            }
            if r.timed_out && post {
                // Killed, not reaped yet: the grace still ends the wait.
                return self.next_post(now, w);
            }
            if r.timed_out || now < deadline {
                return None;
            }
            r.timed_out = true;
            if post {
                self.post = Post::Started {
                    sweep_until: Some(now + REAP_GRACE),
                };
                return Some(Step::KillAll);
            }
            return Some(Step::KillGroup(r.pid));
        }
        match self.stage {
            // Only reachable if a drain began before anything ran: nothing more may start.
            Stage::Starting if w.draining => {
                self.stage = Stage::Stopped(128 + libc::SIGTERM as u8);
                self.next(now, w)
            }
            Stage::Starting => Some(match self.queue.pop_front() {
                Some(hook) => Step::Spawn(hook),
                None => {
                    self.stage = Stage::App;
                    Step::App
                }
            }),
            Stage::App | Stage::Stopped(_) => self.next_post(now, w),
        }
    }

    fn next_post(&mut self, now: Instant, w: World) -> Option<Step> {
        match self.post {
            Post::Done => None,
            Post::Pending if w.killed => {
                self.post = Post::Done;
                Some(Step::SkipPostStop)
            }
            Post::Pending if w.ended && !w.children_left => {
                self.post = Post::Started { sweep_until: None };
                self.post_stop.take().map(Step::Spawn)
            }
            Post::Pending => None,
            // It exited and left processes: kill them, give the reaper its grace.
            Post::Started { sweep_until: None } if w.children_left => {
                self.post = Post::Started {
                    sweep_until: Some(now + REAP_GRACE),
                };
                Some(Step::KillAll)
            }
            Post::Started { sweep_until } => {
                if !w.children_left || sweep_until.is_none_or(|at| now >= at) {
                    self.post = Post::Done;
                }
                None
            }
        }
    }

    /// The hook from the last [`Step::Spawn`] runs as `pid` since `now`.
    pub fn spawned(&mut self, kind: Kind, pid: i32, now: Instant) {
        let limit = if kind == Kind::PostStop {
            self.post_timeout
        } else {
            self.timeout
        };
        self.running = Some(Running {
            kind,
            pid,
            deadline: now + limit,
            timed_out: false,
        });
    }

    /// The hook from the last [`Step::Spawn`] could not be executed (127 or 126).
    pub fn spawn_failed(&mut self, kind: Kind, code: u8) {
        if kind != Kind::PostStop {
            self.stop(code);
        }
    }

    /// The start stops before the app with `code`: a malformed seed (2), an app that could not
    /// be executed (127, 126), or a hook that failed.
    pub fn stop(&mut self, code: u8) {
        self.queue.clear();
        self.stage = Stage::Stopped(code);
    }

    /// A child was reaped: how it ended if it was the running hook, else None.
    pub fn exited(&mut self, pid: i32, status: i32, draining: bool) -> Option<Ended> {
        let r = self.running.filter(|r| r.pid == pid)?;
        self.running = None;
        let code = reaper::exit_code(status);
        if r.kind == Kind::PostStop {
            return Some(Ended::PostStop { code });
        }
        let code = if r.timed_out { TIMED_OUT } else { code };
        if code == 0 && !draining {
            return Some(Ended::Passed(r.kind));
        }
        self.stop(code);
        Some(Ended::Stopped { kind: r.kind, code })
    }

    /// When [`Sequence::next`] has something to do without another event, if ever.
    pub fn deadline(&self, kill_at: Option<Instant>) -> Option<Instant> {
        let hook = self.running.filter(|r| !r.timed_out).map(|r| {
            if r.kind == Kind::PostStop {
                earliest(r.deadline, kill_at)
            } else {
                r.deadline
            }
        });
        let sweep = match self.post {
            Post::Started { sweep_until } => sweep_until,
            _ => None,
        };
        [hook, sweep].into_iter().flatten().min()
    }

    /// Whether the post-stop still keeps vigil from exiting: it is to run, runs, or what it
    /// left is being reaped (after a forced kill, for the reap grace at most).
    pub fn holds_exit(&self) -> bool {
        self.post != Post::Done
    }

    /// The status the start stopped with, when it stopped before the app.
    pub fn stopped(&self) -> Option<u8> {
        match self.stage {
            Stage::Stopped(code) => Some(code),
            _ => None,
        }
    }

    /// The running hook's pid and kind.
    pub fn running(&self) -> Option<(i32, Kind)> {
        self.running.map(|r| (r.pid, r.kind))
    }
}

fn earliest(a: Instant, b: Option<Instant>) -> Instant {
    b.map_or(a, |b| a.min(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;
    use std::ffi::OsString;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn hook(kind: Kind, name: &str) -> Hook {
        Hook::new(kind, &[name.to_string()])
    }

    /// A seed and two pre-start hooks, a post-stop, 1 s and 0.5 s limits.
    fn sequence() -> Sequence {
        Sequence::new(
            vec![
                hook(Kind::EnvFrom, "seed"),
                hook(Kind::PreStart, "a"),
                hook(Kind::PreStart, "b"),
            ],
            Some(hook(Kind::PostStop, "clean")),
            ms(1000),
            ms(500),
        )
    }

    fn exited(code: i32) -> i32 {
        code << 8
    }

    const IDLE: World = World {
        draining: false,
        killed: false,
        ended: false,
        children_left: false,
        kill_at: None,
    };

    const GONE: World = World {
        ended: true,
        ..IDLE
    };

    #[test]
    fn hooks_run_one_after_another_then_the_app() {
        let (mut s, t0) = (sequence(), Instant::now());
        for (pid, name) in [(10, "seed"), (11, "a"), (12, "b")] {
            let Some(Spawn(h)) = s.next(t0, IDLE) else {
                panic!("{name} is next")
            };
            assert_eq!(h.argv, [OsString::from(name)]);
            s.spawned(h.kind, pid, t0);
            assert_eq!(s.next(t0, IDLE), None, "one at a time");
            assert_eq!(s.deadline(None), Some(t0 + ms(1000)));
            assert_eq!(s.exited(99, 0, false), None, "not a hook's pid");
            assert_eq!(s.exited(pid, exited(0), false), Some(Ended::Passed(h.kind)));
        }
        assert_eq!(s.next(t0, IDLE), Some(App));
        assert_eq!(s.next(t0, IDLE), None);
        assert_eq!(s.stopped(), None);
        assert!(s.holds_exit(), "the post-stop is still to run");
    }

    #[test]
    fn without_hooks_the_app_comes_first() {
        let mut s = Sequence::new(Vec::new(), None, ms(1000), ms(500));
        assert_eq!(s.next(Instant::now(), IDLE), Some(App));
        assert!(!s.holds_exit());
    }

    #[test]
    fn a_failure_stops_the_start_with_its_status() {
        let (mut s, t0) = (sequence(), Instant::now());
        s.next(t0, IDLE);
        s.spawned(Kind::EnvFrom, 10, t0);
        s.exited(10, exited(0), false);
        s.next(t0, IDLE);
        s.spawned(Kind::PreStart, 11, t0);
        assert_eq!(
            s.exited(11, exited(3), false),
            Some(Ended::Stopped {
                kind: Kind::PreStart,
                code: 3
            })
        );
        assert_eq!(s.stopped(), Some(3));
        // Neither b nor the app: straight to the post-stop once everything is gone.
        let Some(Spawn(h)) = s.next(t0, GONE) else {
            panic!("post-stop")
        };
        assert_eq!(h.kind, Kind::PostStop);
    }

    #[test]
    fn a_signal_death_is_128_plus_the_signal() {
        let (mut s, t0) = (sequence(), Instant::now());
        s.next(t0, IDLE);
        s.spawned(Kind::EnvFrom, 10, t0);
        s.exited(10, libc::SIGSEGV, false);
        assert_eq!(s.stopped(), Some(128 + 11));
    }

    #[test]
    fn a_timeout_kills_the_group_and_reads_124() {
        let (mut s, t0) = (sequence(), Instant::now());
        s.next(t0, IDLE);
        s.spawned(Kind::EnvFrom, 10, t0);
        assert_eq!(s.next(t0 + ms(999), IDLE), None);
        assert_eq!(s.next(t0 + ms(1000), IDLE), Some(KillGroup(10)));
        assert_eq!(s.next(t0 + ms(1100), IDLE), None, "killed once");
        assert_eq!(s.deadline(None), None);
        s.exited(10, libc::SIGKILL, false);
        assert_eq!(s.stopped(), Some(TIMED_OUT));
    }

    #[test]
    fn a_drain_during_a_hook_stops_the_start_even_on_exit_0() {
        let (mut s, t0) = (sequence(), Instant::now());
        s.next(t0, IDLE);
        s.spawned(Kind::EnvFrom, 10, t0);
        assert_eq!(
            s.exited(10, exited(0), true),
            Some(Ended::Stopped {
                kind: Kind::EnvFrom,
                code: 0
            })
        );
        let draining = World {
            draining: true,
            ..IDLE
        };
        assert_eq!(s.next(t0, draining), None, "no app, no further hook");
        assert_eq!(s.stopped(), Some(0));
    }

    #[test]
    fn spawn_failures() {
        let (mut s, t0) = (sequence(), Instant::now());
        s.next(t0, IDLE);
        s.spawn_failed(Kind::EnvFrom, 127);
        assert_eq!(s.stopped(), Some(127));
        let Some(Spawn(h)) = s.next(t0, GONE) else {
            panic!("post-stop")
        };
        s.spawn_failed(h.kind, 126);
        assert_eq!(
            s.stopped(),
            Some(127),
            "the post-stop's own failure is no status"
        );
        assert_eq!(s.next(t0, GONE), None);
        assert!(!s.holds_exit());
    }

    fn at_app(s: &mut Sequence, t0: Instant) {
        let mut pid = 10;
        while let Some(Spawn(h)) = s.next(t0, IDLE) {
            s.spawned(h.kind, pid, t0);
            s.exited(pid, 0, false);
            pid += 1;
        }
    }

    #[test]
    fn post_stop_waits_for_everything_to_be_gone() {
        let (mut s, t0) = (sequence(), Instant::now());
        at_app(&mut s, t0);
        let app_left = World {
            children_left: true,
            ..GONE
        };
        assert_eq!(s.next(t0, app_left), None, "leftovers still run");
        assert!(s.holds_exit());
        let Some(Spawn(h)) = s.next(t0, GONE) else {
            panic!("post-stop")
        };
        s.spawned(h.kind, 20, t0);
        assert_eq!(s.deadline(None), Some(t0 + ms(500)));
        assert!(s.holds_exit());
        assert_eq!(
            s.exited(20, exited(5), false),
            Some(Ended::PostStop { code: 5 })
        );
        assert_eq!(s.stopped(), None, "never vigil's status");
        assert_eq!(s.next(t0, GONE), None);
        assert!(!s.holds_exit());
    }

    #[test]
    fn post_stop_leftovers_are_killed_and_reaped_within_the_grace() {
        let (mut s, t0) = (sequence(), Instant::now());
        at_app(&mut s, t0);
        s.next(t0, GONE);
        s.spawned(Kind::PostStop, 20, t0);
        s.exited(20, 0, false);
        let left = World {
            children_left: true,
            ..GONE
        };
        assert_eq!(s.next(t0 + ms(10), left), Some(KillAll));
        assert_eq!(s.deadline(None), Some(t0 + ms(10) + REAP_GRACE));
        assert_eq!(s.next(t0 + ms(20), left), None);
        assert!(s.holds_exit());
        s.next(t0 + ms(10) + REAP_GRACE, left);
        assert!(!s.holds_exit(), "given up after the grace");
    }

    #[test]
    fn post_stop_overrunning_is_killed_at_its_timeout_or_the_drain_deadline() {
        let (mut s, t0) = (sequence(), Instant::now());
        at_app(&mut s, t0);
        s.next(t0, GONE);
        s.spawned(Kind::PostStop, 20, t0);
        let drain = World {
            kill_at: Some(t0 + ms(200)),
            ..GONE
        };
        assert_eq!(s.deadline(drain.kill_at), Some(t0 + ms(200)));
        assert_eq!(s.next(t0 + ms(199), drain), None);
        assert_eq!(s.next(t0 + ms(200), drain), Some(KillAll));
        assert_eq!(s.deadline(None), Some(t0 + ms(200) + REAP_GRACE));
        assert_eq!(
            s.exited(20, libc::SIGKILL, false),
            Some(Ended::PostStop { code: 137 })
        );
        s.next(t0 + ms(201), GONE);
        assert!(!s.holds_exit());

        let (mut s, t0) = (sequence(), Instant::now());
        at_app(&mut s, t0);
        s.next(t0, GONE);
        s.spawned(Kind::PostStop, 20, t0);
        assert_eq!(s.next(t0 + ms(500), GONE), Some(KillAll));
    }

    #[test]
    fn post_stop_is_skipped_after_a_forced_kill() {
        let (mut s, t0) = (sequence(), Instant::now());
        at_app(&mut s, t0);
        let killed = World {
            killed: true,
            children_left: true,
            ..GONE
        };
        assert_eq!(s.next(t0, killed), Some(SkipPostStop));
        assert_eq!(s.next(t0, GONE), None);
        assert!(!s.holds_exit());
    }

    #[test]
    fn a_forced_kill_during_the_post_stop_waits_for_its_reap_within_the_grace() {
        let (mut s, t0) = (sequence(), Instant::now());
        at_app(&mut s, t0);
        s.next(t0, GONE);
        s.spawned(Kind::PostStop, 20, t0);
        let killed = World {
            killed: true,
            children_left: true,
            ..GONE
        };
        assert_eq!(
            s.next(t0 + ms(100), killed),
            None,
            "the drain killed it already"
        );
        assert!(s.holds_exit());
        assert_eq!(s.deadline(None), Some(t0 + ms(100) + REAP_GRACE));
        s.exited(20, libc::SIGKILL, false);
        s.next(
            t0 + ms(110),
            World {
                children_left: false,
                ..killed
            },
        );
        assert!(!s.holds_exit(), "reaped: nothing to wait for");
    }
}
