//! The scheduler: an in-memory index of which queued work is due when.
//!
//! Every entry is a *slot* of a queued message — a recipient index (the default, `T = usize`)
//! or whatever the caller groups by, such as a destination domain (`T = String`) — with the
//! time it is due. The delivery loop asks [`Scheduler::next_due`] how long to sleep, then
//! [`Scheduler::pop_due`] for everything whose time has come.
//!
//! # Why two ordered maps
//!
//! A queue under a five-day outage of a big destination holds hundreds of thousands of
//! deferred recipients; a scan per wake-up would make the queue manager quadratic. So every
//! operation is O(log n) (`remove` of a message: O(k log n) for its k slots):
//!
//! - `by_due`: `(due, seq) → (id, slot)`, the agenda. Its first entry is the next due work.
//! - `by_key`: `(id, slot) → (due, seq)`, so a reschedule or removal finds the agenda entry
//!   exactly instead of leaving a tombstone behind. A binary heap with lazy deletion would
//!   pay the same logarithms but grow with stale entries under reschedule-heavy load (every
//!   retry is a reschedule); exact deletion keeps memory proportional to live entries.
//!
//! `seq` is a counter bumped on every (re)schedule: among entries due at the same instant,
//! the one scheduled first comes first. Never a hash, never an address: the order depends
//! only on the sequence of calls, so a simulation replays it exactly.
//!
//! Grouping recipients by destination (one connection carries every recipient of a domain)
//! is the caller's policy; [`destination`] gives the key it should group by.

use std::collections::BTreeMap;

use crate::env::Timestamp;
use crate::mail::Address;

use super::store::QueueId;

#[cfg(test)]
mod tests;

/// One piece of work that came due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueItem<T = usize> {
    pub id: QueueId,
    pub slot: T,
    /// When it was due (at or before the `now` it was popped at).
    pub due: Timestamp,
}

/// Key of `by_key`. `Min` sorts before every real slot, so all slots of one message are the
/// range starting at `(id, Min)` whatever `T` is; real entries are always `Key`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sub<T> {
    Min,
    Key(T),
}

/// Due work, ordered by time then by scheduling order. See the module docs.
#[derive(Clone, Debug)]
pub struct Scheduler<T = usize> {
    by_due: BTreeMap<(Timestamp, u64), (QueueId, T)>,
    by_key: BTreeMap<(QueueId, Sub<T>), (Timestamp, u64)>,
    seq: u64,
}

impl<T: Ord + Clone> Default for Scheduler<T> {
    fn default() -> Self {
        Scheduler {
            by_due: BTreeMap::new(),
            by_key: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<T: Ord + Clone> Scheduler<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many slots are scheduled.
    pub fn len(&self) -> usize {
        self.by_due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_due.is_empty()
    }

    /// Schedules `slot` of message `id` at `due`. A slot is scheduled at most once: if it
    /// already is, it moves to `due` (and behind everything already due at that instant),
    /// and its previous due time is returned.
    pub fn schedule(&mut self, id: QueueId, slot: T, due: Timestamp) -> Option<Timestamp> {
        let seq = self.seq;
        self.seq += 1;
        let previous = self.by_key.insert((id, Sub::Key(slot.clone())), (due, seq));
        if let Some(old) = previous {
            self.by_due.remove(&old);
        }
        self.by_due.insert((due, seq), (id, slot));
        previous.map(|(t, _)| t)
    }

    /// Moves an already scheduled slot to `due`; `false` (and nothing scheduled) if it was
    /// not scheduled — popped or removed meanwhile — so a late retry decision cannot
    /// resurrect work that is gone.
    pub fn reschedule(&mut self, id: QueueId, slot: &T, due: Timestamp) -> bool {
        if !self.by_key.contains_key(&(id, Sub::Key(slot.clone()))) {
            return false;
        }
        self.schedule(id, slot.clone(), due);
        true
    }

    /// When `slot` of `id` is due, if it is scheduled.
    pub fn due_of(&self, id: QueueId, slot: &T) -> Option<Timestamp> {
        self.by_key
            .get(&(id, Sub::Key(slot.clone())))
            .map(|&(t, _)| t)
    }

    /// The earliest due time: how long the delivery loop may sleep.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.by_due.first_key_value().map(|(&(t, _), _)| t)
    }

    /// Takes the next entry if it is due at or before `now`.
    pub fn pop_next(&mut self, now: Timestamp) -> Option<DueItem<T>> {
        let entry = self.by_due.first_entry()?;
        let (due, _) = *entry.key();
        if due > now {
            return None;
        }
        let (id, slot) = entry.remove();
        self.by_key.remove(&(id, Sub::Key(slot.clone())));
        Some(DueItem { id, slot, due })
    }

    /// Takes everything due at or before `now`, earliest first (ties in scheduling order).
    pub fn pop_due(&mut self, now: Timestamp) -> Vec<DueItem<T>> {
        let mut out = Vec::new();
        while let Some(item) = self.pop_next(now) {
            out.push(item);
        }
        out
    }

    /// Unschedules one slot; its due time if it was scheduled.
    pub fn remove_slot(&mut self, id: QueueId, slot: &T) -> Option<Timestamp> {
        let (due, seq) = self.by_key.remove(&(id, Sub::Key(slot.clone())))?;
        self.by_due.remove(&(due, seq));
        Some(due)
    }

    /// Unschedules every slot of message `id` (it was delivered, bounced or expired); how
    /// many there were.
    pub fn remove(&mut self, id: QueueId) -> usize {
        let keys: Vec<(QueueId, Sub<T>)> = self
            .by_key
            .range((id, Sub::Min)..)
            .take_while(|((i, _), _)| *i == id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            if let Some(at) = self.by_key.remove(k) {
                self.by_due.remove(&at);
            }
        }
        keys.len()
    }

    /// The scheduled slots of `id` with their due times, in slot order.
    pub fn slots_of(&self, id: QueueId) -> Vec<(T, Timestamp)> {
        self.by_key
            .range((id, Sub::Min)..)
            .take_while(|((i, _), _)| *i == id)
            .filter_map(|((_, s), &(t, _))| match s {
                Sub::Key(s) => Some((s.clone(), t)),
                Sub::Min => None,
            })
            .collect()
    }
}

/// The destination key of a recipient: its domain, lower-cased, without a trailing dot —
/// the unit of MX lookup, connection reuse and the per-destination concurrency limit.
pub fn destination(addr: &Address) -> String {
    addr.domain.trim_end_matches('.').to_ascii_lowercase()
}
