//! Per-client connection and rate limits, after Postfix's `anvil(8)` server: how many
//! sessions one client address may hold open at once, and how many connections, messages and
//! recipients it may start per time window. A limit of 0 is off (as in Postfix), and every
//! limit is off by default.
//!
//! | key (`[limits.per_client]`) | Postfix | refused with |
//! |---|---|---|
//! | `connections` | `smtpd_client_connection_count_limit` | `421 4.7.0` instead of the greeting, closed |
//! | `connections_per_minute` | `smtpd_client_connection_rate_limit` | `421 4.7.0` instead of the greeting, closed |
//! | `messages_per_minute` | `smtpd_client_message_rate_limit` (counted at MAIL) | `450 4.7.1` to MAIL |
//! | `recipients_per_hour` | `smtpd_client_recipient_rate_limit` (counted at RCPT) | `450 4.7.1` to RCPT |
//! | `exempt_networks` | `smtpd_client_event_limit_exceptions` | never limited |
//!
//! The replies are Postfix's words: `421 4.7.0 <host> Error: too many connections from
//! <ip>`, `450 4.7.1 Error: too much mail from <ip>`, `450 4.7.1 Error: too many recipients
//! from <ip>` (Postfix answers the message and recipient rates with 450 4.7.1, not 452; a
//! 4xx either way, so a real MTA retries later). Recipients per *message* are the session's
//! own `limits.recipients` (`452 4.5.3`, `smtp/limits.rs`), not repeated here.
//!
//! **Windows.** Postfix's anvil counts in fixed windows of `anvil_rate_time_unit` (60 s);
//! here each rate is a sliding window: the times of the events it let through in the last
//! window, per client address. An event at `t` counts until `t + window` exactly, so a
//! client refused at the limit is let in again as soon as its oldest counted event is one
//! window old. Only events let through are counted (a refused MAIL does not use up the
//! budget), so a client's record never holds more than `limit` times.
//!
//! **Memory** is bounded: every map is a `BTreeMap` keyed by address (deterministic order),
//! an address's record is dropped once its events are a window old (a sweep of the whole
//! map at most once per window, amortised over the events), and the concurrency counter of
//! an address goes when its last session ends.
//!
//! **Exempt:** clients in `relay_networks` (ours, Postfix's `mynetworks`, also the default
//! of `smtpd_client_event_limit_exceptions`), in `exempt_networks`, and authenticated
//! clients. Time is only ever `Env::now()`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use super::{Check, Client, IpNet, Policy, Refusal, Stage, Verdict};
use crate::env::Env;
use crate::mail::Timestamp;

/// `[limits.per_client]`: see the module docs. 0 turns a limit off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientLimits {
    /// Sessions one address may hold open at once (`smtpd_client_connection_count_limit`,
    /// Postfix default 50).
    pub connections: u32,
    /// New connections per address per minute (`smtpd_client_connection_rate_limit`).
    pub connections_per_minute: u32,
    /// MAIL commands per address per minute (`smtpd_client_message_rate_limit`).
    pub messages_per_minute: u32,
    /// RCPT commands per address per hour (`smtpd_client_recipient_rate_limit`, which
    /// Postfix counts per `anvil_rate_time_unit`; an hour suits recipients better).
    pub recipients_per_hour: u32,
    /// Clients never limited, beyond `relay_networks` and authenticated clients.
    pub exempt_networks: Vec<IpNet>,
}

impl ClientLimits {
    /// Whether any limit is on (otherwise the policy is never even asked to count).
    pub fn any(&self) -> bool {
        self.connections > 0
            || self.connections_per_minute > 0
            || self.messages_per_minute > 0
            || self.recipients_per_hour > 0
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The per-client limits of one listener, as a [`Policy`].
pub struct Limits<E: Env> {
    env: E,
    hostname: String,
    config: ClientLimits,
    relay_networks: Vec<IpNet>,
    state: Mutex<State>,
}

/// The counters, behind one lock (held for a few map operations, never across an await).
struct State {
    /// Open sessions per address that hold a slot.
    open: BTreeMap<IpAddr, u32>,
    /// The sessions holding a slot, by their (remote, local) pair: unique among open
    /// connections, so `closed` releases exactly the slots `Connect` took, once each.
    holders: BTreeSet<(SocketAddr, SocketAddr)>,
    connects: Window,
    messages: Window,
    recipients: Window,
}

impl<E: Env> Limits<E> {
    pub fn new(
        env: E,
        hostname: &str,
        config: ClientLimits,
        relay_networks: Vec<IpNet>,
    ) -> Limits<E> {
        let state = State {
            open: BTreeMap::new(),
            holders: BTreeSet::new(),
            connects: Window::new(config.connections_per_minute, MINUTE),
            messages: Window::new(config.messages_per_minute, MINUTE),
            recipients: Window::new(config.recipients_per_hour, HOUR),
        };
        Limits {
            env,
            hostname: hostname.to_string(),
            config,
            relay_networks,
            state: Mutex::new(state),
        }
    }

    /// Limits that limit nothing.
    pub fn none(env: E) -> Limits<E> {
        Limits::new(env, "", ClientLimits::default(), Vec::new())
    }

    fn exempt(&self, client: &Client) -> bool {
        let ip = canonical(client.remote.ip());
        client.authenticated.is_some()
            || self.relay_networks.iter().any(|n| n.contains(ip))
            || self.config.exempt_networks.iter().any(|n| n.contains(ip))
    }

    fn decide(&self, check: &Check) -> Verdict {
        if !self.config.any() || self.exempt(&check.client) {
            return Verdict::Accept;
        }
        let client = &check.client;
        let ip = canonical(client.remote.ip());
        let now = self.env.now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refused = match &check.stage {
            Stage::Connect => state.connect(client, ip, now, self.config.connections),
            Stage::Mail { .. } => (!state.messages.admit(ip, now)).then_some(Over::Messages),
            Stage::Rcpt { .. } => (!state.recipients.admit(ip, now)).then_some(Over::Recipients),
            Stage::EndOfData { .. } => None,
        };
        drop(state);
        let Some(over) = refused else {
            return Verdict::Accept;
        };
        // Postfix logs these as warnings ("Connection concurrency limit exceeded: 3 from
        // ..."); the trace is ours.
        self.env.trace(
            "limits",
            format_args!("{} limit exceeded by {ip}", over.name()),
        );
        let h = &self.hostname;
        Verdict::Defer(match over {
            Over::Connections | Over::ConnectionRate => Refusal::new(
                421,
                (4, 7, 0),
                format!("{h} Error: too many connections from {ip}"),
            ),
            Over::Messages => {
                Refusal::new(450, (4, 7, 1), format!("Error: too much mail from {ip}"))
            }
            Over::Recipients => Refusal::new(
                450,
                (4, 7, 1),
                format!("Error: too many recipients from {ip}"),
            ),
        })
    }

    /// Open sessions of `ip` that hold a slot now (for tests and the trace).
    pub fn open(&self, ip: IpAddr) -> u32 {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open.get(&canonical(ip)).copied().unwrap_or(0)
    }

    /// How many addresses the rate windows remember (for tests of the pruning).
    pub fn remembered(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.connects.by_ip.len() + state.messages.by_ip.len() + state.recipients.by_ip.len()
    }
}

/// Which limit a client went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Over {
    Connections,
    ConnectionRate,
    Messages,
    Recipients,
}

impl Over {
    fn name(self) -> &'static str {
        match self {
            Over::Connections => "connection concurrency",
            Over::ConnectionRate => "connection rate",
            Over::Messages => "message rate",
            Over::Recipients => "recipient rate",
        }
    }
}

impl State {
    /// A new session of `client`: within the concurrency limit and the connection rate, it
    /// takes a slot (released by `closed`) and counts towards the rate.
    fn connect(&mut self, client: &Client, ip: IpAddr, now: Timestamp, limit: u32) -> Option<Over> {
        let open = self.open.get(&ip).copied().unwrap_or(0);
        if limit > 0 && open >= limit {
            return Some(Over::Connections);
        }
        if !self.connects.admit(ip, now) {
            return Some(Over::ConnectionRate);
        }
        if limit > 0 && self.holders.insert((client.remote, client.local)) {
            *self.open.entry(ip).or_insert(0) += 1;
        }
        None
    }

    fn release(&mut self, client: &Client) {
        if !self.holders.remove(&(client.remote, client.local)) {
            return;
        }
        let ip = canonical(client.remote.ip());
        if let Some(n) = self.open.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&ip);
            }
        }
    }
}

impl<E: Env> Policy for Limits<E> {
    fn check(&self, check: &Check) -> impl Future<Output = Verdict> + Send {
        std::future::ready(self.decide(check))
    }

    /// Gives back the session's concurrency slot, if it took one. Idempotent: a second
    /// call for the same session, or one for a session that was refused or exempt, changes
    /// nothing.
    fn closed(&self, client: &Client) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.release(client);
    }
}

/// An IPv4 client seen through an IPv4-mapped IPv6 socket is the same client.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A sliding-window rate limit: per address, the times of the events let through within
/// the last `span`.
struct Window {
    limit: u32,
    span: Duration,
    by_ip: BTreeMap<IpAddr, VecDeque<Timestamp>>,
    /// When the next sweep of the whole map is due.
    next_sweep: Timestamp,
}

impl Window {
    fn new(limit: u32, span: Duration) -> Window {
        Window {
            limit,
            span,
            by_ip: BTreeMap::new(),
            next_sweep: Timestamp::default(),
        }
    }

    /// Lets one more event of `ip` through at `now` if fewer than `limit` were let through
    /// in `(now - span, now]`, and records it. A limit of 0 lets everything through and
    /// records nothing.
    fn admit(&mut self, ip: IpAddr, now: Timestamp) -> bool {
        if self.limit == 0 {
            return true;
        }
        self.sweep(now);
        let span = self.span;
        let events = self.by_ip.entry(ip).or_default();
        while events.front().is_some_and(|&t| t.plus(span) <= now) {
            events.pop_front();
        }
        if events.len() >= self.limit as usize {
            return false;
        }
        events.push_back(now);
        true
    }

    /// At most once per window: forgets every address whose last event is a window old.
    fn sweep(&mut self, now: Timestamp) {
        if now < self.next_sweep {
            return;
        }
        let span = self.span;
        self.by_ip
            .retain(|_, events| events.back().is_some_and(|&t| t.plus(span) > now));
        self.next_sweep = now.plus(span);
    }
}

#[cfg(test)]
mod tests;
