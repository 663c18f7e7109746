//! From due recipients to attempts: one attempt per (message, destination) carrying all its
//! due recipients in one transaction, and a concurrency window per destination: at most
//! that many attempts in flight. An attempt over it waits in its destination's
//! first-come-first-served line and starts the moment an attempt to that destination ends.
//!
//! The window is Postfix's destination concurrency feedback (SCHEDULER_README, "Destination
//! concurrency"): it starts at `initial_per_destination` (Postfix's
//! `initial_destination_concurrency`, 5), grows by 1/window for each attempt that got a
//! session through (`default_destination_concurrency_positive_feedback = 1/concurrency`),
//! and shrinks by 1 for each attempt whose every session failed — a `421`, a dropped
//! connection, a refused or timed-out connect (`..._negative_feedback = 1`) — never below 1 nor above `max_per_destination`
//! (`default_destination_concurrency_limit`, 20). A receiver that pushes back with 421 is
//! thus met with fewer parallel connections, not more of the same.
//!
//! `rate_delay_secs` is Postfix's `default_destination_rate_delay`: a pause between the end
//! of one attempt to a destination and the start of the next, which also means one attempt
//! at a time there — for receivers that count messages per minute.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::env::{Env, Timestamp};

use super::super::schedule::{destination, DueItem};
use super::super::store::{QueueId, QueuedMessage};
use super::{attempt, Inner};

/// One attempt to start: some recipients (queue slots) of one message, one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Start {
    pub id: QueueId,
    pub domain: String,
    pub slots: Vec<usize>,
}

/// Attempts in flight and waiting, per destination domain. Pure bookkeeping: the loop
/// decides with it under the state lock and spawns what it returns.
#[derive(Debug, Default)]
pub(super) struct Dispatch {
    /// Attempts in flight per destination domain.
    active: BTreeMap<String, usize>,
    /// Due attempts waiting for a connection slot of their destination, first come first
    /// served.
    waiting: BTreeMap<String, VecDeque<(QueueId, Vec<usize>)>>,
    /// Concurrency window per destination (absent: the initial one).
    window: BTreeMap<String, f64>,
    /// With a rate delay: when the next attempt to a destination may start.
    not_before: BTreeMap<String, Timestamp>,
}

/// The concurrency bounds (from the queue config).
#[derive(Clone, Copy, Debug)]
pub(super) struct Concurrency {
    pub initial: usize,
    pub max: usize,
    /// Pause between attempts to one destination (zero: none, and the window applies).
    pub rate_delay: Duration,
}

/// How an attempt's sessions went, for the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Feedback {
    /// Sessions that ran their course (whatever the recipients' replies were).
    pub ok: u32,
    /// Sessions that failed: connect refused or timed out, 421, the connection lost.
    pub failed: u32,
}

impl Dispatch {
    /// Groups `due` into attempts (messages no longer queued are skipped), queues them behind
    /// those already waiting, and returns every attempt that may start now, `max` in flight
    /// per destination at most (destinations in name order, each line in arrival order).
    pub fn admit(
        &mut self,
        due: Vec<DueItem<usize>>,
        messages: &BTreeMap<QueueId, QueuedMessage>,
        limits: Concurrency,
        now: Timestamp,
    ) -> Vec<Start> {
        let mut groups: BTreeMap<(QueueId, String), Vec<usize>> = BTreeMap::new();
        for item in due {
            let Some(msg) = messages.get(&item.id) else {
                continue;
            };
            let Some(r) = msg.recipients.get(item.slot) else {
                continue;
            };
            groups
                .entry((item.id, destination(&r.address)))
                .or_default()
                .push(item.slot);
        }
        for ((id, domain), slots) in groups {
            self.waiting
                .entry(domain)
                .or_default()
                .push_back((id, slots));
        }
        let mut starts = Vec::new();
        for (domain, line) in self.waiting.iter_mut() {
            let mut max = window_of(&self.window, domain, limits) as usize;
            if !limits.rate_delay.is_zero() {
                let open = self.not_before.get(domain).is_none_or(|&t| t <= now);
                max = usize::from(open);
            }
            let n = self.active.entry(domain.clone()).or_insert(0);
            while *n < max {
                let Some((id, slots)) = line.pop_front() else {
                    break;
                };
                *n += 1;
                if !limits.rate_delay.is_zero() {
                    // Held until this attempt ends and its delay has passed.
                    self.not_before
                        .insert(domain.clone(), Timestamp::from_secs(u64::MAX / 4));
                }
                starts.push(Start {
                    id,
                    domain: domain.clone(),
                    slots,
                });
            }
        }
        self.waiting.retain(|_, line| !line.is_empty());
        starts
    }

    /// The earliest time a waiting attempt may start because a rate delay ends.
    pub fn next_release(&self) -> Option<Timestamp> {
        self.waiting
            .keys()
            .filter_map(|d| self.not_before.get(d).copied())
            .min()
    }

    /// An attempt to `domain` ended: its connection slot is free, and its sessions move the
    /// window. Returns the window's whole part before and after, when it changed.
    pub fn finished(
        &mut self,
        domain: &str,
        feedback: Feedback,
        limits: Concurrency,
        now: Timestamp,
    ) -> Option<(usize, usize)> {
        if let Some(n) = self.active.get_mut(domain) {
            *n = n.saturating_sub(1);
        }
        if !limits.rate_delay.is_zero() {
            self.not_before
                .insert(domain.to_string(), now.plus(limits.rate_delay));
        }
        let before = window_of(&self.window, domain, limits);
        // One unit per attempt, as Postfix's qmgr learns once per delivery: an attempt that
        // got through on a second MX after the first refused is a success for the site.
        let w = if feedback.ok > 0 {
            before + 1.0 / before
        } else if feedback.failed > 0 {
            before - 1.0
        } else {
            before
        };
        let w = w.clamp(1.0, limits.max.max(1) as f64);
        self.window.insert(domain.to_string(), w);
        let (a, b) = (before as usize, w as usize);
        (a != b).then_some((a, b))
    }
}

/// The window of `domain` (fractional; its whole part is the connection limit).
fn window_of(window: &BTreeMap<String, f64>, domain: &str, limits: Concurrency) -> f64 {
    let max = limits.max.max(1) as f64;
    window
        .get(domain)
        .copied()
        .unwrap_or(limits.initial.max(1) as f64)
        .clamp(1.0, max)
}

/// The delivery loop: start every due attempt, then sleep until the next due time or until
/// woken by an enqueue or a finished attempt.
pub(super) async fn run<E: Env>(inner: Arc<Inner<E>>) {
    loop {
        let now = inner.env.now();
        let (starts, next) = {
            let mut st = inner.state.lock().unwrap();
            let st = &mut *st;
            let due = st.scheduler.pop_due(now);
            let starts = st
                .dispatch
                .admit(due, &st.messages, concurrency(&inner), now);
            let next = match (st.scheduler.next_due(), st.dispatch.next_release()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (starts, next)
        };
        for start in starts {
            let inner2 = inner.clone();
            inner.env.spawn(async move {
                let feedback = attempt::run(&inner2, start.id, &start.domain, start.slots).await;
                let changed = inner2.state.lock().unwrap().dispatch.finished(
                    &start.domain,
                    feedback,
                    concurrency(&inner2),
                    inner2.env.now(),
                );
                if let Some((from, to)) = changed {
                    inner2.env.trace(
                        "queue",
                        format_args!("concurrency for {}: {from} -> {to}", start.domain),
                    );
                }
                inner2.wake.notify_one();
            });
        }
        match next {
            Some(t) => {
                tokio::select! {
                    biased;
                    _ = inner.wake.notified() => {}
                    _ = inner.env.sleep_until(t) => {}
                }
            }
            None => inner.wake.notified().await,
        }
    }
}

fn concurrency<E: Env>(inner: &Inner<E>) -> Concurrency {
    Concurrency {
        initial: inner.config.initial_per_destination,
        max: inner.config.max_per_destination,
        rate_delay: Duration::from_millis(inner.config.rate_delay_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_secs(1000);
    use crate::env::Timestamp;
    use crate::mail::Address;
    use crate::queue::store::{QueuedRecipient, RecipientState};

    fn message(id: QueueId, rcpts: &[&str]) -> QueuedMessage {
        QueuedMessage {
            id,
            queued_at: Timestamp::from_secs(0),
            mail_from: None,
            recipients: rcpts
                .iter()
                .map(|a| QueuedRecipient {
                    address: Address::parse(a).unwrap(),
                    state: RecipientState::Pending,
                    notify: Default::default(),
                    orcpt: None,
                })
                .collect(),
            delay_warned: false,
            size: 1,
            options: Default::default(),
        }
    }

    fn due(id: QueueId, slot: usize) -> DueItem<usize> {
        DueItem {
            id,
            slot,
            due: Timestamp::from_secs(0),
        }
    }

    #[test]
    fn one_attempt_per_message_and_destination_and_a_fifo_per_destination() {
        let a = QueueId::new(Timestamp::from_secs(1), 1);
        let b = QueueId::new(Timestamp::from_secs(2), 2);
        let mut messages = BTreeMap::new();
        messages.insert(a, message(a, &["x@one.test", "y@two.test", "z@one.test"]));
        messages.insert(b, message(b, &["w@one.test"]));
        let mut d = Dispatch::default();
        let one = Concurrency {
            initial: 1,
            max: 1,
            rate_delay: Duration::ZERO,
        };
        let starts = d.admit(
            vec![due(a, 0), due(a, 1), due(a, 2), due(b, 0)],
            &messages,
            one,
            T0,
        );
        let got: Vec<_> = starts
            .iter()
            .map(|s| (s.id, s.domain.as_str(), s.slots.clone()))
            .collect();
        // a's two one.test recipients share an attempt; b waits for one.test's slot.
        assert_eq!(got, [(a, "one.test", vec![0, 2]), (a, "two.test", vec![1])]);
        assert!(d.admit(Vec::new(), &messages, one, T0).is_empty());
        d.finished("one.test", Feedback::default(), one, T0);
        let next = d.admit(Vec::new(), &messages, one, T0);
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].id, next[0].slots.clone()), (b, vec![0]));
        // A message no longer queued is skipped.
        assert!(d
            .admit(
                vec![due(QueueId::new(Timestamp::from_secs(3), 3), 0)],
                &messages,
                one,
                T0
            )
            .is_empty());
    }

    #[test]
    fn a_rate_delay_spaces_attempts_one_at_a_time() {
        let limits = Concurrency {
            initial: 5,
            max: 20,
            rate_delay: Duration::from_secs(10),
        };
        let ids: Vec<QueueId> = (1..=3)
            .map(|i| QueueId::new(Timestamp::from_secs(i), i))
            .collect();
        let messages: BTreeMap<_, _> = ids
            .iter()
            .map(|&id| (id, message(id, &["a@slow.test"])))
            .collect();
        let mut d = Dispatch::default();
        let due_all: Vec<_> = ids.iter().map(|&id| due(id, 0)).collect();
        assert_eq!(d.admit(due_all, &messages, limits, T0).len(), 1);
        // While it runs, nothing else starts, and no release time is set yet.
        assert!(d.admit(Vec::new(), &messages, limits, T0).is_empty());
        let end = T0.plus(Duration::from_secs(2));
        d.finished("slow.test", Feedback { ok: 1, failed: 0 }, limits, end);
        let release = end.plus(Duration::from_secs(10));
        assert_eq!(d.next_release(), Some(release));
        assert!(d
            .admit(
                Vec::new(),
                &messages,
                limits,
                end.plus(Duration::from_secs(9))
            )
            .is_empty());
        assert_eq!(d.admit(Vec::new(), &messages, limits, release).len(), 1);
    }

    #[test]
    fn the_window_grows_with_success_and_shrinks_with_failure() {
        let limits = Concurrency {
            initial: 5,
            max: 20,
            rate_delay: Duration::ZERO,
        };
        let mut d = Dispatch::default();
        let ok = Feedback { ok: 1, failed: 0 };
        let bad = Feedback { ok: 0, failed: 1 };
        // Five successes at 5 add about one connection (1/5 each).
        let mut changes = Vec::new();
        for _ in 0..6 {
            changes.extend(d.finished("x.test", ok, limits, T0));
        }
        assert_eq!(changes, [(5, 6)]);
        assert_eq!(d.finished("x.test", bad, limits, T0), Some((6, 5)));
        for _ in 0..10 {
            d.finished("x.test", bad, limits, T0);
        }
        assert_eq!(window_of(&d.window, "x.test", limits), 1.0);
        // The cap holds, and other destinations keep the initial window.
        for _ in 0..1000 {
            d.finished("x.test", ok, limits, T0);
        }
        assert_eq!(window_of(&d.window, "x.test", limits), 20.0);
        assert_eq!(window_of(&d.window, "y.test", limits), 5.0);
    }

    #[test]
    fn a_shrunk_window_admits_fewer() {
        let limits = Concurrency {
            initial: 2,
            max: 20,
            rate_delay: Duration::ZERO,
        };
        let ids: Vec<QueueId> = (1..=4)
            .map(|i| QueueId::new(Timestamp::from_secs(i), i))
            .collect();
        let messages: BTreeMap<_, _> = ids
            .iter()
            .map(|&id| (id, message(id, &["a@busy.test"])))
            .collect();
        let mut d = Dispatch::default();
        let due_all: Vec<_> = ids.iter().map(|&id| due(id, 0)).collect();
        assert_eq!(d.admit(due_all, &messages, limits, T0).len(), 2);
        // One 421: window 1; the freed slot is not refilled while the other is in flight.
        d.finished("busy.test", Feedback { ok: 0, failed: 1 }, limits, T0);
        assert!(d.admit(Vec::new(), &messages, limits, T0).is_empty());
        // A success at window 1 adds a whole connection (1/1): both waiting ones start.
        d.finished("busy.test", Feedback { ok: 1, failed: 0 }, limits, T0);
        assert_eq!(d.admit(Vec::new(), &messages, limits, T0).len(), 2);
    }
}
