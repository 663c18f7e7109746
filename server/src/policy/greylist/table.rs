//! The greylist's memory: triplets and client networks, and the one decision it makes.
//!
//! Sans-IO: [`Table::decide`] takes the time and a triplet and returns the decision and the
//! records that say what changed (for the log, `store.rs`). Replaying those records in
//! order ([`Table::apply`]) rebuilds the same table, which is how the state survives a
//! restart.
//!
//! Times are whole seconds (the log keeps seconds; a table rebuilt from it must decide as
//! the live one did).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::env::Timestamp;

/// A client's network as greylisting sees it: the address with its host bits cleared.
/// A sending farm retries from another address of the same /24 (IPv4) or /64 (IPv6, one
/// site's subnet, RFC 6177): keying on the network instead of the address is what lets
/// such a retry count (postgrey's `--lookup-by-subnet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientNet {
    addr: IpAddr,
    prefix: u8,
}

impl ClientNet {
    /// The network of `ip` (IPv4-mapped IPv6 counts as IPv4) with the configured prefixes;
    /// prefixes beyond the address length are clamped.
    pub fn of(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> ClientNet {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let prefix = ipv4_prefix.min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                ClientNet {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)),
                    prefix,
                }
            }
            IpAddr::V6(v6) => {
                let prefix = ipv6_prefix.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                ClientNet {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                    prefix,
                }
            }
        }
    }

    /// Reads the `Display` form back (`203.0.113.0/24`), as the log stores it.
    pub fn parse(s: &str) -> Option<ClientNet> {
        let (addr, prefix) = s.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let net = ClientNet::of(addr, prefix, prefix);
        (prefix <= max && net.addr == addr).then_some(net)
    }
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What greylisting keys on: (client network, envelope sender, recipient), both addresses
/// lower-cased; the null sender `<>` is the empty string (bounces are greylisted too: a
/// real MTA retries them like any mail).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Triplet {
    pub net: ClientNet,
    pub sender: String,
    pub recipient: String,
}

impl fmt::Display for Triplet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <{}> -> <{}>", self.net, self.sender, self.recipient)
    }
}

/// What the table knows of one triplet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub first_seen: Timestamp,
    /// The last acceptance (equal to `first_seen` until it passed).
    pub last_seen: Timestamp,
    /// It waited out the delay once: accepted from now on.
    pub passed: bool,
}

/// What the table knows of one client network: how many triplets from it passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetEntry {
    pub passes: u32,
    pub last_seen: Timestamp,
}

/// One change, as the log keeps it (later records win).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Triplet(Triplet, Entry),
    Net(ClientNet, NetEntry),
}

/// The timings (see `GreylistConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub delay: Duration,
    pub expiry: Duration,
    pub allow_lifetime: Duration,
    /// 0: no auto-allowing.
    pub auto_allow_after: u32,
    pub max_entries: usize,
}

/// The answer for one triplet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not yet: retry in this long. `new`: first sight (or seen so long ago it was forgotten).
    Defer { retry_in: Duration, new: bool },
    /// It came back after the delay: accepted, and counted for its network.
    Pass { waited: Duration, net_passes: u32 },
    /// It passed before.
    Known,
    /// Its network passed often enough to skip greylisting.
    NetAllowed { passes: u32 },
}

/// A stored `last_seen` is refreshed at most this often: lifetimes are days, so an hour's
/// imprecision costs nothing, and a busy passed triplet does not write a record per message.
const REFRESH: Duration = Duration::from_secs(3600);

/// Triplets and networks, bounded by `Timing::max_entries` each.
#[derive(Clone, Debug)]
pub struct Table {
    timing: Timing,
    triplets: BTreeMap<Triplet, Entry>,
    /// The triplets by first sight, oldest first: the eviction order.
    by_age: BTreeSet<(Timestamp, Triplet)>,
    nets: BTreeMap<ClientNet, NetEntry>,
    /// Triplets dropped to stay under the cap, since the table was made.
    pub evicted: u64,
}

/// Whole seconds: what the log can say.
fn secs(t: Timestamp) -> Timestamp {
    Timestamp::from_secs(t.as_secs())
}

impl Table {
    pub fn new(timing: Timing) -> Table {
        Table {
            timing,
            triplets: BTreeMap::new(),
            by_age: BTreeSet::new(),
            nets: BTreeMap::new(),
            evicted: 0,
        }
    }

    pub fn len(&self) -> (usize, usize) {
        (self.triplets.len(), self.nets.len())
    }

    /// An entry is forgotten once its window closed: an unpassed triplet at
    /// `first_seen + expiry` (the retry window, postgrey's `--retry-window`), a passed one
    /// `allow_lifetime` after it was last accepted (postgrey's `--max-age`).
    fn expired(&self, e: &Entry, now: Timestamp) -> bool {
        match e.passed {
            false => now >= e.first_seen.plus(self.timing.expiry),
            true => now >= e.last_seen.plus(self.timing.allow_lifetime),
        }
    }

    fn net_expired(&self, n: &NetEntry, now: Timestamp) -> bool {
        now >= n.last_seen.plus(self.timing.allow_lifetime)
    }

    /// Decides on `t` at `now` and records what changed into `out`.
    pub fn decide(&mut self, now: Timestamp, t: &Triplet, out: &mut Vec<Record>) -> Decision {
        let now = secs(now);
        if let Some(n) = self.nets.get(&t.net).copied() {
            if self.net_expired(&n, now) {
                self.nets.remove(&t.net);
            } else if self.timing.auto_allow_after > 0 && n.passes >= self.timing.auto_allow_after {
                self.touch_net(t.net, now, out);
                return Decision::NetAllowed { passes: n.passes };
            }
        }
        let known = self.triplets.get(t).copied();
        match known {
            Some(e) if !self.expired(&e, now) && e.passed => {
                if now.since(e.last_seen) >= REFRESH {
                    self.set(
                        t,
                        Entry {
                            last_seen: now,
                            ..e
                        },
                        out,
                    );
                }
                self.touch_net(t.net, now, out);
                Decision::Known
            }
            Some(e) if !self.expired(&e, now) => {
                let open = e.first_seen.plus(self.timing.delay);
                if now < open {
                    // Do not restart the clock: an early retry is the same attempt.
                    return Decision::Defer {
                        retry_in: open.since(now),
                        new: false,
                    };
                }
                self.set(
                    t,
                    Entry {
                        last_seen: now,
                        passed: true,
                        ..e
                    },
                    out,
                );
                let passes = self
                    .nets
                    .get(&t.net)
                    .map_or(0, |n| n.passes)
                    .saturating_add(1);
                self.set_net(
                    t.net,
                    NetEntry {
                        passes,
                        last_seen: now,
                    },
                    out,
                );
                Decision::Pass {
                    waited: now.since(e.first_seen),
                    net_passes: passes,
                }
            }
            _ => {
                let e = Entry {
                    first_seen: now,
                    last_seen: now,
                    passed: false,
                };
                self.set(t, e, out);
                self.evict(now);
                Decision::Defer {
                    retry_in: self.timing.delay,
                    new: true,
                }
            }
        }
    }

    fn touch_net(&mut self, net: ClientNet, now: Timestamp, out: &mut Vec<Record>) {
        if let Some(n) = self.nets.get(&net).copied() {
            if now.since(n.last_seen) >= REFRESH {
                self.set_net(
                    net,
                    NetEntry {
                        last_seen: now,
                        ..n
                    },
                    out,
                );
            }
        }
    }

    fn set(&mut self, t: &Triplet, e: Entry, out: &mut Vec<Record>) {
        self.insert(t.clone(), e);
        out.push(Record::Triplet(t.clone(), e));
    }

    fn set_net(&mut self, net: ClientNet, n: NetEntry, out: &mut Vec<Record>) {
        self.nets.insert(net, n);
        self.evict_nets();
        out.push(Record::Net(net, n));
    }

    fn insert(&mut self, t: Triplet, e: Entry) {
        if let Some(old) = self.triplets.insert(t.clone(), e) {
            self.by_age.remove(&(old.first_seen, t.clone()));
        }
        self.by_age.insert((e.first_seen, t));
    }

    /// Keeps the triplets under the cap: first the forgotten ones at the old end, then the
    /// oldest first sights, whatever they are — a spammer rotating senders must not grow
    /// the table without bound, and what it costs (a real sender greylisted once more) is
    /// what greylisting costs anyway.
    fn evict(&mut self, now: Timestamp) {
        while let Some((first, t)) = self.by_age.first().cloned() {
            let forgotten = self.triplets.get(&t).is_none_or(|e| self.expired(e, now));
            if !forgotten && self.triplets.len() <= self.timing.max_entries {
                break;
            }
            self.by_age.remove(&(first, t.clone()));
            self.triplets.remove(&t);
            if !forgotten {
                self.evicted += 1;
            }
        }
    }

    /// Networks only appear when a triplet waited out the delay, so this cap is rarely
    /// reached; the least recently seen network goes.
    fn evict_nets(&mut self) {
        while self.nets.len() > self.timing.max_entries {
            let Some(oldest) = self
                .nets
                .iter()
                .min_by_key(|(net, n)| (n.last_seen, **net))
                .map(|(net, _)| *net)
            else {
                break;
            };
            self.nets.remove(&oldest);
        }
    }

    /// Replays one logged record (later records win).
    pub fn apply(&mut self, r: Record) {
        match r {
            Record::Triplet(t, e) => self.insert(t, e),
            Record::Net(net, n) => {
                self.nets.insert(net, n);
            }
        }
    }

    /// After a replay: drops whatever `now` has forgotten and enforces the caps.
    pub fn settle(&mut self, now: Timestamp) {
        let now = secs(now);
        let gone: Vec<Triplet> = self
            .triplets
            .iter()
            .filter(|(_, e)| self.expired(e, now))
            .map(|(t, _)| t.clone())
            .collect();
        for t in gone {
            if let Some(e) = self.triplets.remove(&t) {
                self.by_age.remove(&(e.first_seen, t));
            }
        }
        let gone: Vec<ClientNet> = self
            .nets
            .iter()
            .filter(|(_, n)| self.net_expired(n, now))
            .map(|(net, _)| *net)
            .collect();
        for net in gone {
            self.nets.remove(&net);
        }
        self.evict(now);
        self.evict_nets();
    }

    /// Every live entry as a record: what a compacted log holds. Oldest triplets first, so
    /// a replay under the same cap evicts the same ones.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.triplets.len() + self.nets.len());
        for (_, t) in &self.by_age {
            if let Some(e) = self.triplets.get(t) {
                out.push(Record::Triplet(t.clone(), *e));
            }
        }
        for (net, n) in &self.nets {
            out.push(Record::Net(*net, *n));
        }
        out
    }
}
