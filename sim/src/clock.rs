//! The simulated clock: turmoil's elapsed time plus a *warp* offset.
//!
//! turmoil advances time in fixed ticks; mail needs days. When the world is quiescent (no
//! bytes in flight, every task waiting on a timer), the runner warps the clock forward to the
//! earliest registered deadline instead of stepping through idle ticks. Sleepers wait on
//! turmoil time *or* a warp notification, and re-check the clock when woken.
//!
//! Cross-host time is `turmoil::sim_elapsed()` (each host's tokio clock is its own).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailsim_server::env::Timestamp;
use tokio::sync::Notify;

/// Shared by every host of one world.
#[derive(Clone)]
pub struct SimClock {
    inner: Arc<ClockInner>,
}

struct ClockInner {
    /// The world's wall-clock origin (from the scenario), as seen by the server.
    epoch: Timestamp,
    /// Nanoseconds added to turmoil's elapsed time by warps.
    warp_nanos: AtomicU64,
    /// The last turmoil elapsed time seen (for callers outside a host context).
    last_elapsed_nanos: AtomicU64,
    /// Registered sleep deadlines (elapsed nanos → number of sleepers), for the runner.
    deadlines: Mutex<BTreeMap<u64, usize>>,
    /// Woken after every warp so sleepers re-check.
    warped: Notify,
}

impl SimClock {
    pub fn new(epoch: Timestamp) -> Self {
        SimClock {
            inner: Arc::new(ClockInner {
                epoch,
                warp_nanos: AtomicU64::new(0),
                last_elapsed_nanos: AtomicU64::new(0),
                deadlines: Mutex::new(BTreeMap::new()),
                warped: Notify::new(),
            }),
        }
    }

    /// Simulated time since the world started, warps included.
    pub fn elapsed(&self) -> Duration {
        let turmoil_nanos = match turmoil::sim_elapsed() {
            Some(d) => {
                let n = d.as_nanos() as u64;
                self.inner
                    .last_elapsed_nanos
                    .fetch_max(n, Ordering::Relaxed);
                n
            }
            None => self.inner.last_elapsed_nanos.load(Ordering::Relaxed),
        };
        Duration::from_nanos(turmoil_nanos + self.inner.warp_nanos.load(Ordering::Relaxed))
    }

    /// Tells the clock what turmoil's elapsed time is (the runner calls this between steps).
    pub fn observe_turmoil_elapsed(&self, d: Duration) {
        self.inner
            .last_elapsed_nanos
            .fetch_max(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The world's absolute time.
    pub fn now(&self) -> Timestamp {
        self.inner.epoch.plus(self.elapsed())
    }

    pub fn epoch(&self) -> Timestamp {
        self.inner.epoch
    }

    /// Total warp applied so far.
    pub fn warped(&self) -> Duration {
        Duration::from_nanos(self.inner.warp_nanos.load(Ordering::Relaxed))
    }

    /// Sleeps until the world's time reaches `deadline`.
    ///
    /// The deadline stays registered (for the runner's warps) exactly as long as this future
    /// lives: a guard removes it on completion *and* on drop, so a timeout that lost its race
    /// (the usual case) leaves no stale deadline behind.
    pub async fn sleep_until(&self, deadline: Timestamp) {
        let target = deadline.since(self.inner.epoch).as_nanos() as u64;
        let _registration = Registration::new(self, target);
        loop {
            let now = self.elapsed().as_nanos() as u64;
            if now >= target {
                break;
            }
            let notified = self.inner.warped.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // tokio's clock inside a host advances with turmoil ticks; a warp adds to our
            // offset and notifies, so either way we wake and re-check.
            let remaining = Duration::from_nanos(target - now);
            // This IS the simulated clock: inside a turmoil host tokio's timer is turmoil
            // time, and the warp notification above covers what it cannot see.
            #[allow(clippy::disallowed_methods)]
            let tick = tokio::time::sleep(remaining);
            tokio::select! {
                biased;
                _ = &mut notified => {}
                _ = tick => {}
            }
        }
    }

    /// The earliest registered deadline (as elapsed time), if anyone sleeps.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.inner
            .deadlines
            .lock()
            .unwrap()
            .keys()
            .next()
            .map(|n| Duration::from_nanos(*n))
    }

    /// Jumps the clock forward by `by` and wakes every sleeper.
    pub fn warp(&self, by: Duration) {
        self.inner
            .warp_nanos
            .fetch_add(by.as_nanos() as u64, Ordering::Relaxed);
        self.inner.warped.notify_waiters();
    }
}

/// A registered deadline; unregisters itself when dropped.
struct Registration {
    clock: SimClock,
    target: u64,
}

impl Registration {
    fn new(clock: &SimClock, target: u64) -> Self {
        *clock
            .inner
            .deadlines
            .lock()
            .unwrap()
            .entry(target)
            .or_insert(0) += 1;
        Registration {
            clock: clock.clone(),
            target,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut d = self.clock.inner.deadlines.lock().unwrap();
        if let Some(n) = d.get_mut(&self.target) {
            *n -= 1;
            if *n == 0 {
                d.remove(&self.target);
            }
        }
    }
}
