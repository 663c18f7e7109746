//! The RCPT-time quota check and the list posting refusal: two recipient refusals that are
//! not about the address itself but about its state (a full mailbox) or the sender (a list
//! that takes posts from its members only).

use super::{Reply, Session};
use crate::mail::Address;

impl Session {
    /// `452 4.2.2` when a mailbox this recipient reaches is already full (at or over its
    /// limit in octets or in messages): RFC 5321 §4.5.3.1.10 and RFC 3463's 4.2.2 "mailbox
    /// full", a temporary condition the sender retries (Postfix/Dovecot LMTP answer the same
    /// at RCPT). A message that merely would not fit is only known at the end of data, where
    /// the store refuses it whole. Not counted as a client error: the client did nothing
    /// wrong.
    pub(super) fn quota_refusal(&self, address: &Address, mailboxes: &[String]) -> Option<Reply> {
        let quotas = self.config.quota.as_ref()?;
        mailboxes.iter().find(|m| quotas.is_full(m))?;
        Some(Reply::new(
            452,
            (4, 2, 2),
            format!("<{address}>: Mailbox full"),
        ))
    }

    /// `550 5.7.1` for a list whose posting policy does not let the envelope sender post
    /// (RFC 3463 5.7.1: delivery not authorized); `who` is "members" or "moderators".
    pub(super) fn refuse_post(&mut self, list: &Address, who: &str) {
        self.error(Reply::new(
            550,
            (5, 7, 1),
            format!("List {list} accepts posts from {who} only"),
        ));
    }
}
