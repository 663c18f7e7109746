//! The two signals of a graceful shutdown, and a count of the tasks it waits for.
//!
//! Modelled on mini-redis' `shutdown.rs`: a shutdown is *broadcast* (every accept loop and
//! every session may be watching), *latched* (a task that starts watching after the signal
//! sees it at once) and *never reset*. It is built on [`tokio::sync::Notify`] rather than a
//! broadcast or watch channel because those take part in tokio's cooperative budget: a
//! watcher polled next to every session would then change when sessions yield, and with it
//! the simulator's traces.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A one-way flag that can be awaited: once set, it stays set.
#[derive(Clone, Debug, Default)]
pub struct Latch(Arc<LatchInner>);

#[derive(Debug, Default)]
struct LatchInner {
    set: AtomicBool,
    notify: Notify,
}

impl Latch {
    pub fn new() -> Latch {
        Latch::default()
    }

    /// Sets the flag and wakes every waiter. Setting it again does nothing.
    pub fn set(&self) {
        if !self.0.set.swap(true, Ordering::SeqCst) {
            self.0.notify.notify_waiters();
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Completes once the flag is set (at once if it already is).
    pub async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a `set` between the check and the await is seen.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// What a caller holds to stop a running server: [`Shutdown::begin`] stops accepting and
/// lets sessions finish, [`Shutdown::force`] cuts the remaining ones off (the server does
/// that itself once the grace period is over).
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    pub(crate) stop: Latch,
    pub(crate) force: Latch,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Stop accepting; let open sessions finish (up to the grace period).
    pub fn begin(&self) {
        self.stop.set();
    }

    /// Stop now: open sessions are dropped at their next await that is not a delivery.
    /// Implies [`Shutdown::begin`].
    pub fn force(&self) {
        self.stop.set();
        self.force.set();
    }

    pub fn is_begun(&self) -> bool {
        self.stop.is_set()
    }
}

/// Counts live tasks (sessions, deliveries); [`Tracker::idle`] completes when none is left.
#[derive(Clone, Debug, Default)]
pub struct Tracker(Arc<TrackerInner>);

#[derive(Debug, Default)]
struct TrackerInner {
    live: AtomicUsize,
    notify: Notify,
}

/// One live task of a [`Tracker`]; dropping it ends the task's count.
#[derive(Debug)]
pub struct Tracked(Tracker);

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    pub fn enter(&self) -> Tracked {
        self.0.live.fetch_add(1, Ordering::SeqCst);
        Tracked(self.clone())
    }

    pub fn live(&self) -> usize {
        self.0.live.load(Ordering::SeqCst)
    }

    /// Completes once no task is live (at once if none is).
    pub async fn idle(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0 .0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0 .0.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    fn ready<F: Future>(f: std::pin::Pin<&mut F>) -> bool {
        f.poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }

    #[test]
    fn a_latch_wakes_waiters_and_stays_set() {
        let latch = Latch::new();
        let mut early = pin!(latch.wait());
        assert!(!ready(early.as_mut()));
        latch.set();
        assert!(ready(early.as_mut()));
        // A waiter that comes after the signal sees it at once.
        assert!(ready(pin!(latch.wait())));
        latch.set();
        assert!(latch.is_set());
    }

    #[test]
    fn force_implies_begin() {
        let s = Shutdown::new();
        assert!(!s.is_begun());
        s.force();
        assert!(s.is_begun() && s.force.is_set());
    }

    #[test]
    fn a_tracker_is_idle_only_when_every_task_ended() {
        let t = Tracker::new();
        assert!(ready(pin!(t.idle())));
        let a = t.enter();
        let b = t.enter();
        let mut idle = pin!(t.idle());
        assert!(!ready(idle.as_mut()));
        drop(a);
        assert!(!ready(idle.as_mut()));
        drop(b);
        assert!(ready(idle.as_mut()));
        assert_eq!(t.live(), 0);
    }
}
