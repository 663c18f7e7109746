//! Mailbox quotas (issue #8 item 4): per account, in octets and in messages, like Dovecot's
//! `quota_rule = *:storage=..:messages=..`.
//!
//! Usage lives in memory, counted from the mailboxes when the store opens (as Dovecot
//! recalculates a lost `maildirsize`) and updated on every committed delivery, so that a
//! session can ask synchronously at RCPT whether a mailbox is already full. A delivery
//! *reserves* its octets and one message per target mailbox under one lock before it is
//! written, and the reservation becomes usage only once durable (or is released when the
//! delivery fails): two sessions racing for the last space cannot both fit, and a message is
//! refused whole when it does not fit every mailbox — never stored in some of them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::mail::DeliveryError;

/// A limit in octets and in messages; `None`: unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    pub bytes: Option<u64>,
    pub messages: Option<u64>,
}

/// What a mailbox holds (or has reserved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

#[derive(Debug, Default)]
struct Account {
    used: Usage,
    reserved: Usage,
}

/// Every mailbox's limit and usage; shared (`Arc`) by the store and the sessions.
#[derive(Debug, Default)]
pub struct Quotas {
    default: Limit,
    limits: BTreeMap<String, Limit>,
    /// `quota.over_quota = "permanent"`: 552 5.2.2 rather than 452 4.2.2 at end of data.
    permanent: bool,
    state: Mutex<BTreeMap<String, Account>>,
}

impl Quotas {
    /// No limits (usage is still counted, for `admin`).
    pub fn unlimited() -> Quotas {
        Quotas::default()
    }

    /// `default` for every mailbox without its own limit.
    pub fn new(default: Limit, permanent: bool) -> Quotas {
        Quotas {
            default,
            permanent,
            ..Quotas::default()
        }
    }

    /// Sets one mailbox's limit (a field it leaves `None` falls back to the default).
    pub fn with_limit(mut self, mailbox: &str, limit: Limit) -> Quotas {
        self.limits.insert(mailbox.to_string(), limit);
        self
    }

    pub fn limit(&self, mailbox: &str) -> Limit {
        let own = self.limits.get(mailbox).copied().unwrap_or_default();
        Limit {
            bytes: own.bytes.or(self.default.bytes),
            messages: own.messages.or(self.default.messages),
        }
    }

    /// What the mailbox holds (committed deliveries).
    pub fn usage(&self, mailbox: &str) -> Usage {
        self.lock().get(mailbox).map(|a| a.used).unwrap_or_default()
    }

    /// At or over its limit in octets or in messages, counting deliveries in flight.
    pub fn is_full(&self, mailbox: &str) -> bool {
        !self.fits_locked(&self.lock(), mailbox, 0, 0)
    }

    /// Would `octets` more (one message) fit now?
    pub fn fits(&self, mailbox: &str, octets: u64) -> bool {
        self.fits_locked(&self.lock(), mailbox, octets, 1)
    }

    /// Reserves room for one message in each mailbox (`(mailbox, octets)`), all or none:
    /// `OverQuota` names the first mailbox it does not fit.
    pub fn reserve(
        self: &Arc<Self>,
        files: &[(String, u64)],
    ) -> Result<Reservation, DeliveryError> {
        let mut state = self.lock();
        if let Some((m, _)) = files
            .iter()
            .find(|(m, n)| !self.fits_locked(&state, m, *n, 1))
        {
            return Err(DeliveryError::OverQuota {
                mailbox: m.clone(),
                permanent: self.permanent,
            });
        }
        for (m, n) in files {
            let r = &mut state.entry(m.clone()).or_default().reserved;
            r.bytes += n;
            r.messages += 1;
        }
        Ok(Reservation {
            quotas: self.clone(),
            files: files.to_vec(),
            committed: false,
        })
    }

    /// Gives back the room of expunged messages (the access index, after an expunge is
    /// durable).
    pub fn release(&self, mailbox: &str, bytes: u64, messages: u64) {
        let mut state = self.lock();
        let used = &mut state.entry(mailbox.to_string()).or_default().used;
        used.bytes = used.bytes.saturating_sub(bytes);
        used.messages = used.messages.saturating_sub(messages);
    }

    /// Sets a mailbox's usage (the store, when it opens and counts).
    pub(super) fn set_usage(&self, mailbox: &str, usage: Usage) {
        self.lock().entry(mailbox.to_string()).or_default().used = usage;
    }

    fn fits_locked(
        &self,
        state: &BTreeMap<String, Account>,
        mailbox: &str,
        octets: u64,
        messages: u64,
    ) -> bool {
        let limit = self.limit(mailbox);
        let a = state.get(mailbox);
        let (bytes, count) = a.map_or((0, 0), |a| {
            (
                a.used.bytes + a.reserved.bytes,
                a.used.messages + a.reserved.messages,
            )
        });
        // "Full" (no more octets, no more messages) is `>=` the limit; a message fits when
        // the total after it stays within the limit. An empty probe (0, 0) asks "full?".
        let within = |used: u64, add: u64, max: Option<u64>| match max {
            None => true,
            Some(max) if add == 0 => used < max,
            Some(max) => used.saturating_add(add) <= max,
        };
        within(bytes, octets, limit.bytes) && within(count, messages, limit.messages)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Account>> {
        // A panic elsewhere while holding the lock leaves plain counters: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Room held for one delivery: usage once [`Reservation::commit`]ted (the delivery is
/// durable), released when dropped uncommitted (it failed).
#[derive(Debug)]
pub struct Reservation {
    quotas: Arc<Quotas>,
    files: Vec<(String, u64)>,
    committed: bool,
}

impl Reservation {
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut state = self.quotas.lock();
        for (m, n) in &self.files {
            let a = state.entry(m.clone()).or_default();
            a.reserved.bytes = a.reserved.bytes.saturating_sub(*n);
            a.reserved.messages = a.reserved.messages.saturating_sub(1);
            if self.committed {
                a.used.bytes += n;
                a.used.messages += 1;
            }
        }
    }
}
