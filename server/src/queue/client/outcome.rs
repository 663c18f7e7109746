//! What a session reports: an outcome per recipient, or a connection-level error with the
//! stage it happened in and the outcomes that were final before it (see the rules in
//! [`super`]'s docs).

use std::fmt;

use crate::smtp::Reply;

use super::Capabilities;

/// What happened to one recipient, with the reply that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptOutcome {
    /// 2xx to the final dot: the peer took responsibility.
    Delivered(Reply),
    /// 4xx at some step: try again later.
    Deferred(Reply),
    /// 5xx at some step (or decided here, see the module docs): bounce.
    Failed(Reply),
}

impl RcptOutcome {
    pub fn reply(&self) -> &Reply {
        match self {
            RcptOutcome::Delivered(r) | RcptOutcome::Deferred(r) | RcptOutcome::Failed(r) => r,
        }
    }

    /// 2xx → Delivered, 4xx → Deferred, anything else → Failed. Callers only pass 2xx for the
    /// final reply to DATA; 2xx to RCPT means "accepted", not delivered.
    pub(super) fn from_reply(reply: &Reply) -> RcptOutcome {
        match reply.code / 100 {
            2 => RcptOutcome::Delivered(reply.clone()),
            4 => RcptOutcome::Deferred(reply.clone()),
            _ => RcptOutcome::Failed(reply.clone()),
        }
    }
}

/// A session that reached its end: one outcome per recipient, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionReport {
    pub per_recipient: Vec<RcptOutcome>,
    pub peer_capabilities: Capabilities,
    pub transcript: Vec<String>,
}

/// Where in the session something happened; for error texts and DSNs ("... while sending
/// message content").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Rset,
    MailFrom,
    RcptTo,
    Data,
    /// Sending the body.
    Message,
    /// Waiting for the reply to the final dot.
    EndOfData,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Rset => "RSET",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "message content",
            Stage::EndOfData => "end of data",
            Stage::Quit => "QUIT",
        })
    }
}

/// A connection-level failure: nothing in it is about one recipient.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The server refused the session: a 4xx/5xx greeting, EHLO 4xx, HELO refused after the
    /// EHLO fallback, a failed RSET, a 421 outside a transaction.
    #[error("{stage}: server replied {reply}")]
    Rejected { stage: Stage, reply: Reply },
    /// No reply (or no progress writing) before the deadline.
    #[error("timeout during {stage}")]
    Timeout { stage: Stage },
    /// EOF or an I/O error.
    #[error("connection lost during {stage}: {detail}")]
    ConnectionLost { stage: Stage, detail: String },
    /// Something that is not an SMTP reply, or not one that may come here.
    #[error("protocol error during {stage}: {detail}")]
    Protocol { stage: Stage, detail: String },
    /// The caller's TLS handshake after a 220 to STARTTLS failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
}

impl SessionError {
    /// True for a 5xx greeting or HELO refusal: this server will not take mail from us, now or
    /// later. Everything else is worth a retry (RFC 5321 §4.2.1: only 5yz is permanent).
    pub fn is_permanent(&self) -> bool {
        match self {
            SessionError::Rejected { stage, reply } => {
                reply.code >= 500 && matches!(stage, Stage::Greeting | Stage::Ehlo | Stage::Helo)
            }
            _ => false,
        }
    }

    /// The server's reply, when the error is one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            SessionError::Rejected { reply, .. } => Some(reply),
            _ => None,
        }
    }

    pub fn stage(&self) -> Option<Stage> {
        match self {
            SessionError::Rejected { stage, .. }
            | SessionError::Timeout { stage }
            | SessionError::ConnectionLost { stage, .. }
            | SessionError::Protocol { stage, .. } => Some(*stage),
            SessionError::Tls(_) => Some(Stage::TlsHandshake),
        }
    }
}

/// A session that ended with a [`SessionError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFailure {
    pub error: SessionError,
    /// Per recipient (empty if no transaction was attempted, e.g. from [`Client::open`]):
    /// `Some` for an outcome that was final before the error (a 550 to RCPT), `None` for a
    /// recipient the error leaves open.
    pub per_recipient: Vec<Option<RcptOutcome>>,
    /// `None` when the session failed before EHLO/HELO succeeded.
    pub peer_capabilities: Option<Capabilities>,
    pub transcript: Vec<String>,
}

/// [`Client::send`] failed at the connection level; see [`SessionFailure::per_recipient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionFailure {
    pub error: SessionError,
    pub per_recipient: Vec<Option<RcptOutcome>>,
}
