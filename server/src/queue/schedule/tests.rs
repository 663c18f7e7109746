use proptest::prelude::*;

use super::*;

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn id(n: u64) -> QueueId {
    QueueId::new(t(1_000 + n), n)
}

fn items<T: Clone>(v: &[DueItem<T>]) -> Vec<(QueueId, T, u64)> {
    v.iter()
        .map(|d| (d.id, d.slot.clone(), d.due.as_secs()))
        .collect()
}

#[test]
fn pops_in_due_order_then_insertion_order() {
    let mut s = Scheduler::new();
    assert_eq!(s.next_due(), None);
    assert!(s.pop_due(t(u64::MAX)).is_empty());
    s.schedule(id(1), 0, t(30));
    s.schedule(id(2), 0, t(10));
    s.schedule(id(3), 1, t(20));
    // Equal times: the order they were scheduled in, not id or slot order.
    s.schedule(id(3), 0, t(10));
    s.schedule(id(0), 5, t(10));
    assert_eq!(s.len(), 5);
    assert_eq!(s.next_due(), Some(t(10)));
    assert_eq!(s.pop_next(t(9)), None);
    assert_eq!(
        items(&s.pop_due(t(20))),
        vec![
            (id(2), 0, 10),
            (id(3), 0, 10),
            (id(0), 5, 10),
            (id(3), 1, 20)
        ]
    );
    assert_eq!(s.next_due(), Some(t(30)));
    assert_eq!(items(&s.pop_due(t(100))), vec![(id(1), 0, 30)]);
    assert!(s.is_empty());
}

#[test]
fn schedule_twice_moves_and_reschedule_needs_an_entry() {
    let mut s = Scheduler::new();
    assert_eq!(s.schedule(id(1), 0, t(10)), None);
    s.schedule(id(2), 0, t(50));
    // Scheduling again moves the slot; it is never there twice.
    assert_eq!(s.schedule(id(1), 0, t(60)), Some(t(10)));
    assert_eq!(s.len(), 2);
    assert_eq!(s.next_due(), Some(t(50)));
    assert_eq!(s.due_of(id(1), &0), Some(t(60)));
    // Moved behind an entry already due at the same time.
    assert!(s.reschedule(id(2), &0, t(60)));
    assert_eq!(
        items(&s.pop_due(t(60))),
        vec![(id(1), 0, 60), (id(2), 0, 60)]
    );
    // Popped: reschedule does not resurrect it.
    assert!(!s.reschedule(id(1), &0, t(70)));
    assert!(s.is_empty());
    // Earlier is fine too.
    s.schedule(id(3), 0, t(100));
    assert!(s.reschedule(id(3), &0, t(5)));
    assert_eq!(s.next_due(), Some(t(5)));
}

#[test]
fn remove_takes_every_slot_of_one_message_only() {
    let mut s = Scheduler::new();
    for slot in 0..5 {
        s.schedule(id(1), slot, t(10 + slot as u64));
        s.schedule(id(2), slot, t(10 + slot as u64));
    }
    s.schedule(id(0), 9, t(1));
    assert_eq!(s.remove(id(1)), 5);
    assert_eq!(s.remove(id(1)), 0);
    assert_eq!(s.remove(id(7)), 0);
    assert_eq!(s.len(), 6);
    assert_eq!(s.slots_of(id(1)), vec![]);
    assert_eq!(s.slots_of(id(0)), vec![(9, t(1))]);
    assert_eq!(s.remove_slot(id(2), &3), Some(t(13)));
    assert_eq!(s.remove_slot(id(2), &3), None);
    let popped: Vec<_> = items(&s.pop_due(t(100)));
    assert_eq!(
        popped,
        vec![
            (id(0), 9, 1),
            (id(2), 0, 10),
            (id(2), 1, 11),
            (id(2), 2, 12),
            (id(2), 4, 14)
        ]
    );
}

#[test]
fn destination_slots_and_helper() {
    let mut s: Scheduler<String> = Scheduler::new();
    let a = Address::parse("x@Example.NET").unwrap();
    let odd = Address {
        local: "y".into(),
        domain: "MiXed.Example.".into(),
    };
    assert_eq!(destination(&a), "example.net");
    assert_eq!(destination(&odd), "mixed.example");
    s.schedule(id(1), destination(&a), t(5));
    s.schedule(id(1), destination(&odd), t(5));
    s.schedule(id(1), destination(&a), t(7));
    assert_eq!(s.len(), 2);
    assert_eq!(
        s.slots_of(id(1)),
        vec![
            ("example.net".to_string(), t(7)),
            ("mixed.example".to_string(), t(5))
        ]
    );
    assert_eq!(s.remove(id(1)), 2);
    assert!(s.is_empty());
}

/// Far-future and zero times are ordinary keys.
#[test]
fn extreme_times() {
    let mut s = Scheduler::new();
    s.schedule(id(1), 0, Timestamp(std::time::Duration::MAX));
    s.schedule(id(2), 0, Timestamp::default());
    assert_eq!(s.pop_next(Timestamp::default()).map(|d| d.id), Some(id(2)));
    assert_eq!(s.pop_next(t(u64::MAX)), None);
    assert_eq!(
        s.pop_next(Timestamp(std::time::Duration::MAX))
            .map(|d| d.id),
        Some(id(1))
    );
}

/// The obviously-correct model: a list, scanned.
#[derive(Default)]
struct Model {
    entries: Vec<(QueueId, usize, Timestamp, u64)>,
    seq: u64,
}

impl Model {
    fn find(&self, i: QueueId, slot: usize) -> Option<usize> {
        self.entries.iter().position(|e| e.0 == i && e.1 == slot)
    }
    fn schedule(&mut self, i: QueueId, slot: usize, due: Timestamp) -> Option<Timestamp> {
        let prev = self.find(i, slot).map(|p| self.entries.remove(p).2);
        self.entries.push((i, slot, due, self.seq));
        self.seq += 1;
        prev
    }
    fn reschedule(&mut self, i: QueueId, slot: usize, due: Timestamp) -> bool {
        if self.find(i, slot).is_none() {
            return false;
        }
        self.schedule(i, slot, due);
        true
    }
    fn remove(&mut self, i: QueueId) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.0 != i);
        before - self.entries.len()
    }
    fn remove_slot(&mut self, i: QueueId, slot: usize) -> Option<Timestamp> {
        self.find(i, slot).map(|p| self.entries.remove(p).2)
    }
    fn sorted(&self) -> Vec<(QueueId, usize, Timestamp, u64)> {
        let mut v = self.entries.clone();
        v.sort_by_key(|e| (e.2, e.3));
        v
    }
    fn next_due(&self) -> Option<Timestamp> {
        self.sorted().first().map(|e| e.2)
    }
    fn pop_due(&mut self, now: Timestamp) -> Vec<(QueueId, usize, u64)> {
        let due: Vec<_> = self.sorted().into_iter().filter(|e| e.2 <= now).collect();
        self.entries.retain(|e| e.2 > now);
        due.into_iter().map(|e| (e.0, e.1, e.2.as_secs())).collect()
    }
    fn pop_next(&mut self, now: Timestamp) -> Option<(QueueId, usize, u64)> {
        let first = self.sorted().into_iter().next().filter(|e| e.2 <= now)?;
        self.entries.retain(|e| !(e.0 == first.0 && e.1 == first.1));
        Some((first.0, first.1, first.2.as_secs()))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Schedule(u64, usize, u64),
    Reschedule(u64, usize, u64),
    Remove(u64),
    RemoveSlot(u64, usize),
    PopDue(u64),
    PopNext(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Few ids, slots and times, so collisions and ties are the common case.
    prop_oneof![
        4 => (0..5u64, 0..4usize, 0..20u64).prop_map(|(i, s, d)| Op::Schedule(i, s, d)),
        2 => (0..5u64, 0..4usize, 0..20u64).prop_map(|(i, s, d)| Op::Reschedule(i, s, d)),
        1 => (0..5u64).prop_map(Op::Remove),
        1 => (0..5u64, 0..4usize).prop_map(|(i, s)| Op::RemoveSlot(i, s)),
        1 => (0..25u64).prop_map(Op::PopDue),
        2 => (0..25u64).prop_map(Op::PopNext),
    ]
}

proptest! {
    #[test]
    fn matches_a_naive_model(ops in proptest::collection::vec(op(), 0..200)) {
        let mut s = Scheduler::new();
        let mut m = Model::default();
        for op in ops {
            match op {
                Op::Schedule(i, slot, d) => {
                    prop_assert_eq!(s.schedule(id(i), slot, t(d)), m.schedule(id(i), slot, t(d)));
                }
                Op::Reschedule(i, slot, d) => {
                    prop_assert_eq!(
                        s.reschedule(id(i), &slot, t(d)),
                        m.reschedule(id(i), slot, t(d))
                    );
                }
                Op::Remove(i) => prop_assert_eq!(s.remove(id(i)), m.remove(id(i))),
                Op::RemoveSlot(i, slot) => {
                    prop_assert_eq!(s.remove_slot(id(i), &slot), m.remove_slot(id(i), slot));
                }
                Op::PopDue(now) => prop_assert_eq!(items(&s.pop_due(t(now))), m.pop_due(t(now))),
                Op::PopNext(now) => prop_assert_eq!(
                    s.pop_next(t(now)).map(|d| (d.id, d.slot, d.due.as_secs())),
                    m.pop_next(t(now))
                ),
            }
            prop_assert_eq!(s.len(), m.entries.len());
            prop_assert_eq!(s.next_due(), m.next_due());
            for i in 0..5 {
                let mut want: Vec<(usize, Timestamp)> = m
                    .entries
                    .iter()
                    .filter(|e| e.0 == id(i))
                    .map(|e| (e.1, e.2))
                    .collect();
                want.sort();
                prop_assert_eq!(s.slots_of(id(i)), want);
            }
        }
        // Draining gives everything in (due, seq) order.
        let rest = m.pop_due(Timestamp(std::time::Duration::MAX));
        prop_assert_eq!(items(&s.pop_due(Timestamp(std::time::Duration::MAX))), rest);
        prop_assert!(s.is_empty());
    }
}
