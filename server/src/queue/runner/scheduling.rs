//! From due recipients to attempts: one attempt per (message, destination) carrying all its
//! due recipients in one transaction, and at most `max_per_destination` attempts in flight
//! per destination (Postfix's `default_destination_concurrency_limit`, politeness towards
//! remote MXs). An attempt over the limit waits in its destination's first-come-first-served
//! line and starts the moment an attempt to that destination ends.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::env::Env;

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
}

impl Dispatch {
    /// Groups `due` into attempts (messages no longer queued are skipped), queues them behind
    /// those already waiting, and returns every attempt that may start now, `max` in flight
    /// per destination at most (destinations in name order, each line in arrival order).
    pub fn admit(
        &mut self,
        due: Vec<DueItem<usize>>,
        messages: &BTreeMap<QueueId, QueuedMessage>,
        max: usize,
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
        let max = max.max(1);
        let mut starts = Vec::new();
        for (domain, line) in self.waiting.iter_mut() {
            let n = self.active.entry(domain.clone()).or_insert(0);
            while *n < max {
                let Some((id, slots)) = line.pop_front() else {
                    break;
                };
                *n += 1;
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

    /// An attempt to `domain` ended: its connection slot is free.
    pub fn finished(&mut self, domain: &str) {
        if let Some(n) = self.active.get_mut(domain) {
            *n = n.saturating_sub(1);
        }
    }
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
                .admit(due, &st.messages, inner.config.max_per_destination);
            (starts, st.scheduler.next_due())
        };
        for start in starts {
            let inner2 = inner.clone();
            inner.env.spawn(async move {
                attempt::run(&inner2, start.id, &start.domain, start.slots).await;
                inner2
                    .state
                    .lock()
                    .unwrap()
                    .dispatch
                    .finished(&start.domain);
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let starts = d.admit(
            vec![due(a, 0), due(a, 1), due(a, 2), due(b, 0)],
            &messages,
            1,
        );
        let got: Vec<_> = starts
            .iter()
            .map(|s| (s.id, s.domain.as_str(), s.slots.clone()))
            .collect();
        // a's two one.test recipients share an attempt; b waits for one.test's slot.
        assert_eq!(got, [(a, "one.test", vec![0, 2]), (a, "two.test", vec![1])]);
        assert!(d.admit(Vec::new(), &messages, 1).is_empty());
        d.finished("one.test");
        let next = d.admit(Vec::new(), &messages, 1);
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].id, next[0].slots.clone()), (b, vec![0]));
        // A message no longer queued is skipped.
        assert!(d
            .admit(
                vec![due(QueueId::new(Timestamp::from_secs(3), 3), 0)],
                &messages,
                1
            )
            .is_empty());
    }
}
