//! Policy: who may do what. The relay rule's networks ([`IpNet`], Postfix's `mynetworks`),
//! and the questions a protocol session asks before it commits to something: may this
//! client connect, send from this sender, to this recipient, this message? SPF/DKIM/DMARC,
//! DNSBL, greylisting and rate limits land here as [`Policy`] implementations, asked by the
//! session's driver, never called from inside a parser.
//!
//! The stages are Postfix's restriction lists: `smtpd_client_restrictions` ([`Stage::Connect`]),
//! `smtpd_sender_restrictions` ([`Stage::Mail`]), `smtpd_recipient_restrictions`
//! ([`Stage::Rcpt`]) and `smtpd_end_of_data_restrictions` ([`Stage::EndOfData`]). A check
//! is only asked once the session's own rules have accepted the command (syntax, sequence,
//! the directory, the relay rule): a policy can refuse more, never accept what the protocol
//! refused.

pub mod auth;
pub mod defence;
pub mod dnsbl;
pub mod greylist;
pub mod limits;
mod network;
pub mod score;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use network::IpNet;

use crate::mail::{Address, Envelope, Message};

/// What the session knows about its client when it asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The HELO/EHLO name, once given.
    pub helo: Option<String>,
    /// TLS is active on the connection.
    pub tls: bool,
    /// The identity an AUTH exchange established (authorization identity if one was given,
    /// else the authentication identity).
    pub authenticated: Option<String>,
}

/// The point of the dialogue a check is asked at, with what the client wants there.
#[derive(Clone, Debug)]
pub enum Stage {
    /// A connection was accepted; the greeting is not decided yet.
    Connect,
    /// `MAIL FROM`, already valid; `None` is the null sender `<>`.
    Mail {
        from: Option<Address>,
        /// The client's `SIZE=` (0 if none), already within our limit.
        declared_size: usize,
    },
    /// `RCPT TO`, already resolved and allowed by the directory and the relay rule.
    Rcpt {
        from: Option<Address>,
        to: Address,
        /// Recipients accepted so far in this transaction.
        accepted: usize,
    },
    /// The end of DATA: the transaction as it would be stored (our `Received:` first).
    /// The session takes both back from the [`Check`] it is answered with, so the body is
    /// never copied for the question.
    EndOfData {
        envelope: Envelope,
        /// Its head is in memory (our `Received:` and the header block); the rest of a big
        /// message is in a spool file.
        message: Message,
    },
}

/// One question a session asks.
#[derive(Clone, Debug)]
pub struct Check {
    /// Shared by the checks of a session until what it says changes.
    pub client: Arc<Client>,
    pub stage: Stage,
}

/// A refusal's reply, as the policy words it. The session enforces the class: a reject is
/// always sent as 5xx and a deferral as 4xx, whatever code a policy gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    /// The RFC 3463 enhanced code `class.subject.detail`.
    pub enhanced: (u8, u16, u16),
    pub text: String,
}

impl Refusal {
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Refusal {
        Refusal {
            code,
            enhanced,
            text: text.into(),
        }
    }
}

/// The answer to a [`Check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on as if nothing was asked.
    Accept,
    /// Refuse for good (5xx): the recipient is not added, the message not delivered, the
    /// connection closed at [`Stage::Connect`] (with 554, RFC 5321 §3.1).
    Reject(Refusal),
    /// Refuse for now (4xx): the client may try again later (greylisting, a DNS failure). At
    /// [`Stage::Connect`] this is a 421 and the connection closes.
    Defer(Refusal),
    /// Accept, changed: at [`Stage::EndOfData`] the message gets the marks' header fields
    /// and goes to their folder. At any other stage this is [`Verdict::Accept`].
    Mark(Marks),
}

/// What the checks at the end of data add to an accepted message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// Header fields (each ending in CRLF, folded as needed) placed above our `Received:`,
    /// in this order: `Authentication-Results`, `Received-SPF`, `X-Spam-*` (RFC 8601 §5,
    /// RFC 7208 §9.1: trace fields of a hop go at the top).
    pub fields: String,
    /// `Authentication-Results` fields already in the message that carry this authserv-id
    /// are removed (RFC 8601 §5: a forged result in our name must not survive).
    pub strip_results_of: Option<String>,
    /// Where the local mailboxes file the message.
    pub folder: crate::mail::Folder,
}

impl Marks {
    /// Combines the marks of two policies: fields in order, the more suspicious folder.
    pub fn merge(mut self, other: Marks) -> Marks {
        self.fields.push_str(&other.fields);
        self.strip_results_of = self.strip_results_of.or(other.strip_results_of);
        self.folder = self.folder.max(other.folder);
        self
    }

    /// `message` with the marks applied: its head rewritten (stripped fields gone, new
    /// fields on top), the spooled rest shared.
    pub fn apply(&self, message: &Message) -> Message {
        let head = message.head();
        let kept = match &self.strip_results_of {
            Some(id) => crate::mail::header::strip_results_of(head, id),
            None => std::borrow::Cow::Borrowed(head),
        };
        let mut out = Vec::with_capacity(self.fields.len() + kept.len());
        out.extend_from_slice(self.fields.as_bytes());
        out.extend_from_slice(&kept);
        message.with_head(out)
    }
}

/// What the driver asks for every [`Check`] a session emits.
pub trait Policy: Send + Sync + 'static {
    fn check(&self, check: &Check) -> impl Future<Output = Verdict> + Send;

    /// The session of `client` ended (counters of concurrent connections per client go
    /// down here). Called once per session that asked at least one check.
    fn closed(&self, client: &Client) {
        let _ = client;
    }
}

/// The policy of a server with no policy configured: every check passes.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Policy for AcceptAll {
    fn check(&self, _check: &Check) -> impl Future<Output = Verdict> + Send {
        std::future::ready(Verdict::Accept)
    }
}
