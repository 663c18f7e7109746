//! Sender rules for authenticated submission (issue #8 item 3): an authenticated user may
//! relay anywhere, but only under addresses that are theirs — the envelope sender at MAIL
//! and every `From:` address at the end of data. What "theirs" means is the directory's
//! ([`Directory::may_send_as`](crate::directory::Directory::may_send_as)): the account's
//! own address, a `+tag` of it, an alias or domain alias reaching it, or a `send_as` entry.
//!
//! This is Postfix's `reject_sender_login_mismatch`, with its wording (`Sender address
//! rejected: not owned by user ...`) but 550 rather than Postfix's 553: the brief and RFC
//! 5321 §4.2.2 both allow it, and 550 5.7.1 ("delivery not authorized") is what submission
//! servers (Exchange, Gmail's `550 5.7.1`) answer. The null sender `<>` is allowed, as in
//! Postfix: a submitting MUA may send a read receipt or a vacation reply with it. A
//! message without `From:` passes here (RFC 6409 §8.1 lets the MSA add one; the DKIM
//! helper signs what it has), but a `From:` we cannot read an address out of is refused:
//! what a receiving MUA shows as the author must be checkable.
//!
//! Unauthenticated sessions (the MX, relay_networks clients) are not checked: on the MX the
//! sender is the remote domain's business (SPF, DKIM, DMARC), not ours.

use mail_parser::{HeaderName, HeaderValue, MessageParser};

use super::{Reply, Session};
use crate::mail::Address;

impl Session {
    /// The refusal for an authenticated session's `MAIL FROM`, if its account may not use
    /// this sender.
    pub(super) fn sender_refusal(&self, from: Option<&Address>) -> Option<Reply> {
        let identity = self.authenticated.as_deref()?;
        let from = from?;
        if self.config.directory.may_send_as(identity, from) {
            return None;
        }
        Some(Reply::new(
            550,
            (5, 7, 1),
            format!("<{from}>: Sender address rejected: not owned by user {identity}"),
        ))
    }

    /// The refusal for a message an authenticated session submitted whose `From:` names an
    /// address its account may not use (or none we can read).
    pub(super) fn author_refusal(&self, message: &[u8]) -> Option<Reply> {
        let identity = self.authenticated.as_deref()?;
        let refuse = |what: &str| {
            Some(Reply::new(
                550,
                (5, 7, 1),
                format!("{what}From: address rejected: not owned by user {identity}"),
            ))
        };
        let parsed = MessageParser::new().parse_headers(message)?;
        // Every From: header, not just the first: a second one is what some MUAs display.
        for value in parsed.header_values(HeaderName::From) {
            let HeaderValue::Address(list) = value else {
                return refuse("");
            };
            let mut any = false;
            for addr in list.iter() {
                let Some(text) = addr.address.as_deref() else {
                    return refuse("");
                };
                let Ok(a) = Address::parse(text) else {
                    return refuse("");
                };
                if !self.config.directory.may_send_as(identity, &a) {
                    return refuse(&format!("<{a}>: "));
                }
                any = true;
            }
            if !any {
                return refuse("");
            }
        }
        None
    }
}
