//! Failed logins, counted per client and per account: the growing delay before each `535`
//! and the lockouts after too many (Dovecot's `auth_failure_delay` doubled per failure,
//! fail2ban's findtime/bantime, Postfix's anvil per client). Sans-IO: time is passed in,
//! so the fake Env's clock drives the tests.
//!
//! Two counters, because the attacks differ: one client guessing many accounts' passwords
//! is stopped by its own counter (`421` and hang up), many clients guessing one account's
//! password by the account's (`454` for that account, whoever asks, until the lockout
//! ends). A failure is remembered for `lockout_secs`; a lockout lasts `lockout_secs` from
//! the failure that caused it, after which the count starts again from zero.
//!
//! Memory is bounded: each table holds at most [`CAPACITY`] keys, and a new key at the limit
//! first drops every expired record, then the one least recently failed. A flood of client
//! addresses costs at most that much memory; each new key needs a failed password check
//! (tens of milliseconds of argon2), so a flood big enough to evict a live lockout is slow
//! and visible in the trace.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::config::AuthConfig;
use crate::mail::Timestamp;

/// Keys per table (client networks; account names).
pub(super) const CAPACITY: usize = 16_384;

/// How failures are answered, from `[auth]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub delay: Duration,
    pub max_delay: Duration,
    /// Failures before a lockout; 0: never lock out (the delays still grow).
    pub max_failures: u32,
    /// How long a failure is remembered, and how long a lockout lasts.
    pub lockout: Duration,
}

impl Limits {
    pub fn of(config: &AuthConfig) -> Limits {
        Limits {
            delay: Duration::from_millis(config.failure_delay_ms),
            max_delay: Duration::from_millis(config.max_failure_delay_ms),
            max_failures: config.max_failures,
            lockout: Duration::from_secs(config.lockout_secs),
        }
    }

    /// `delay · 2^(n-1)`, at most `max_delay`: the wait before the n-th failure's `535`.
    pub fn delay_for(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Failure times kept per key: enough to reach the lockout (or, without one, to reach
    /// the longest delay), never more.
    fn kept(&self) -> usize {
        match self.max_failures {
            0 => 32,
            n => n as usize,
        }
    }
}

/// The key of a client: its address, or for IPv6 its /64, which one host (or one customer
/// of a provider) usually has whole, so an attacker cannot get a fresh counter per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let net = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(net)))
                }
            },
        }
    }
}

/// One key's recent failures and lockout.
#[derive(Debug, Default)]
struct Record {
    /// Failure times within the memory window, oldest first.
    failures: VecDeque<Timestamp>,
    locked_until: Option<Timestamp>,
    /// The latest failure: what eviction orders by.
    last: Timestamp,
}

impl Record {
    /// Forgets what is older than the window, and a lockout that is over.
    fn expire(&mut self, now: Timestamp, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|&t| now.since(t) >= window)
        {
            self.failures.pop_front();
        }
        if self.locked_until.is_some_and(|until| until <= now) {
            self.locked_until = None;
        }
    }

    fn is_dead(&self) -> bool {
        self.failures.is_empty() && self.locked_until.is_none()
    }
}

/// Records by key, bounded (see the module docs).
#[derive(Debug)]
pub(super) struct Table<K> {
    records: BTreeMap<K, Record>,
    capacity: usize,
}

impl<K: Ord + Clone> Table<K> {
    pub fn new(capacity: usize) -> Table<K> {
        Table {
            records: BTreeMap::new(),
            capacity: capacity.max(1),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether `key` is locked out at `now`.
    pub fn locked(&mut self, key: &K, now: Timestamp, limits: &Limits) -> bool {
        match self.records.get_mut(key) {
            Some(r) => {
                r.expire(now, limits.lockout);
                r.locked_until.is_some()
            }
            None => false,
        }
    }

    /// Counts a failure at `now`: the failures within the window (this one included), and
    /// whether this one started a lockout.
    pub fn fail(&mut self, key: &K, now: Timestamp, limits: &Limits) -> (u32, bool) {
        if !self.records.contains_key(key) && self.records.len() >= self.capacity {
            self.make_room(now, limits);
        }
        let r = self.records.entry(key.clone()).or_default();
        r.expire(now, limits.lockout);
        r.failures.push_back(now);
        while r.failures.len() > limits.kept() {
            r.failures.pop_front();
        }
        r.last = now;
        let n = r.failures.len() as u32;
        let lock = limits.max_failures > 0 && n >= limits.max_failures;
        if lock {
            // The count starts again once the lockout is over.
            r.locked_until = Some(now.plus(limits.lockout));
            r.failures.clear();
        }
        (n, lock)
    }

    /// A success: the key's slate is clean.
    pub fn clear(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// Drops the expired records; if none was, the least recently failed one.
    fn make_room(&mut self, now: Timestamp, limits: &Limits) {
        self.records.retain(|_, r| {
            r.expire(now, limits.lockout);
            !r.is_dead()
        });
        if self.records.len() >= self.capacity {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.records.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            delay: Duration::from_millis(1000),
            max_delay: Duration::from_millis(5000),
            max_failures: 4,
            lockout: Duration::from_secs(60),
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(1_000 + secs)
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let l = limits();
        let ms = |n| l.delay_for(n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5)],
            [1000, 2000, 4000, 5000, 5000]
        );
        assert_eq!(ms(0), 1000);
        assert_eq!(ms(u32::MAX), 5000, "no overflow");
    }

    #[test]
    fn lockout_after_max_failures_then_expiry() {
        let l = limits();
        let mut t = Table::new(8);
        let k = "alice".to_string();
        for n in 1..4 {
            assert_eq!(t.fail(&k, at(n), &l), (n as u32, false));
            assert!(!t.locked(&k, at(n), &l));
        }
        assert_eq!(t.fail(&k, at(4), &l), (4, true));
        assert!(t.locked(&k, at(4), &l));
        assert!(t.locked(&k, at(63), &l), "60 s from the 4th failure");
        assert!(!t.locked(&k, at(64), &l));
        // Counting starts again.
        assert_eq!(t.fail(&k, at(65), &l), (1, false));
    }

    #[test]
    fn failures_are_forgotten_after_the_window_and_on_success() {
        let l = limits();
        let mut t = Table::new(8);
        let k = "alice".to_string();
        t.fail(&k, at(0), &l);
        t.fail(&k, at(30), &l);
        // The first is 60 s old at 60: forgotten; the second is not.
        assert_eq!(t.fail(&k, at(60), &l), (2, false));
        t.clear(&k);
        assert_eq!(t.fail(&k, at(61), &l), (1, false));
        assert!(!t.locked(&"bob".to_string(), at(61), &l));
    }

    #[test]
    fn without_a_lockout_delays_still_grow() {
        let l = Limits {
            max_failures: 0,
            ..limits()
        };
        let mut t = Table::new(8);
        let k = 1u8;
        let counts: Vec<u32> = (0..40).map(|s| t.fail(&k, at(s), &l).0).collect();
        assert_eq!(counts[..3], [1, 2, 3]);
        assert_eq!(*counts.last().unwrap(), 32, "bounded");
        assert!(!t.locked(&k, at(40), &l));
    }

    #[test]
    fn a_flood_of_keys_stays_bounded_and_evicts_the_oldest_first() {
        let l = limits();
        let mut t = Table::new(4);
        for k in 0..4u32 {
            t.fail(&k, at(u64::from(k)), &l);
        }
        // Lock key 3.
        for s in 4..7 {
            t.fail(&3, at(s), &l);
        }
        assert!(t.locked(&3, at(7), &l));
        for k in 100..1_000u32 {
            t.fail(&k, at(8), &l);
            assert!(t.len() <= 4);
        }
        // Within its window the lock is the newest activity of its key... until newer keys
        // push it out; the table never grows past its capacity either way.
        assert_eq!(t.len(), 4);
        // After the window every old record is dead and goes first.
        let mut t = Table::new(2);
        t.fail(&1u32, at(0), &l);
        t.fail(&2u32, at(50), &l);
        t.fail(&3u32, at(70), &l);
        assert!(t.records.contains_key(&2) && t.records.contains_key(&3));
    }

    #[test]
    fn clients_are_keyed_by_address_and_ipv6_by_its_64() {
        let k = |s: &str| ClientKey::of(s.parse().unwrap());
        assert_eq!(k("192.0.2.1"), k("::ffff:192.0.2.1"));
        assert_ne!(k("192.0.2.1"), k("192.0.2.2"));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    }
}
