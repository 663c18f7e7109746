//! Service extensions (RFC 5321 §2.2): what a listener offers ([`Offers`]) and what the EHLO
//! reply lists, computed from that and the session's state. Nothing is ever advertised that
//! the session cannot handle at this point of the dialogue, and a command whose extension is
//! not on offer right now is treated as unknown (502), as Postfix does for STARTTLS and AUTH
//! when they are not enabled.
//!
//! Adding an extension is local to this file and its command's: CHUNKING is the BDAT
//! command of `session/envelope.rs` with counted framing in `session/data.rs`; DSN and
//! REQUIRETLS have theirs in `session/dsn.rs`.

use super::{AuthMechanism, Reply, Session};
use crate::smtp::Limits;

/// What a listener offers beyond the base protocol. The default offers neither STARTTLS nor
/// AUTH: that is the MX listener as it is today.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offers {
    /// STARTTLS (RFC 3207): the driver can run a TLS handshake on this connection.
    pub starttls: bool,
    /// SASL mechanisms for AUTH (RFC 4954), in the order advertised; empty: no AUTH.
    pub auth: Vec<AuthMechanism>,
    /// AUTH only once TLS is active (RFC 4954 §4, and every submission server today):
    /// before it, AUTH is not advertised and is refused with 538 5.7.11.
    pub auth_requires_tls: bool,
    /// A submission listener (RFC 6409 §4.3): MAIL before a successful AUTH is refused with
    /// `530 5.7.0 Authentication required`.
    pub auth_required: bool,
}

impl Default for Offers {
    fn default() -> Offers {
        Offers {
            starttls: false,
            auth: Vec::new(),
            auth_requires_tls: true,
            auth_required: false,
        }
    }
}

/// A service extension we may advertise in the EHLO reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Extension {
    /// RFC 2920.
    Pipelining,
    /// RFC 1870: `SIZE` with our limit.
    Size,
    /// RFC 6152: `BODY=8BITMIME`.
    EightBitMime,
    /// RFC 6531: `SMTPUTF8`.
    SmtpUtf8,
    /// RFC 2034.
    EnhancedStatusCodes,
    /// RFC 3030: `BDAT`.
    Chunking,
    /// RFC 3030: `BODY=BINARYMIME` (with BDAT only).
    BinaryMime,
    /// RFC 3207.
    StartTls,
    /// RFC 4954, with the mechanisms on offer.
    Auth(Vec<AuthMechanism>),
    /// RFC 3461: RET/ENVID on MAIL, NOTIFY/ORCPT on RCPT (`session/dsn.rs`).
    Dsn,
    /// RFC 8689: only once TLS is active (§4.1: "MUST NOT be offered" otherwise would
    /// make no sense, a REQUIRETLS message must not travel in the clear).
    RequireTls,
}

impl Extension {
    fn keyword(&self, limits: &Limits) -> String {
        match self {
            Extension::Pipelining => "PIPELINING".into(),
            Extension::Size => format!("SIZE {}", limits.message_size),
            Extension::EightBitMime => "8BITMIME".into(),
            Extension::SmtpUtf8 => "SMTPUTF8".into(),
            Extension::EnhancedStatusCodes => "ENHANCEDSTATUSCODES".into(),
            Extension::Chunking => "CHUNKING".into(),
            Extension::BinaryMime => "BINARYMIME".into(),
            Extension::StartTls => "STARTTLS".into(),
            Extension::Dsn => "DSN".into(),
            Extension::RequireTls => "REQUIRETLS".into(),
            Extension::Auth(mechanisms) => {
                let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
                format!("AUTH {}", names.join(" "))
            }
        }
    }
}

impl Session {
    /// The extensions of the EHLO reply, from the config and the state: STARTTLS until TLS
    /// is active; AUTH once allowed (after TLS if the listener requires it) and until it
    /// succeeded (a second AUTH is 503).
    pub(super) fn extensions(&self) -> Vec<Extension> {
        let mut list = vec![
            Extension::Pipelining,
            Extension::Size,
            Extension::EightBitMime,
            Extension::SmtpUtf8,
            Extension::Chunking,
            Extension::BinaryMime,
            Extension::EnhancedStatusCodes,
            Extension::Dsn,
        ];
        let offers = &self.config.offers;
        if offers.starttls && !self.tls {
            list.push(Extension::StartTls);
        }
        if self.tls {
            list.push(Extension::RequireTls);
        }
        if self.auth_allowed() && self.authenticated.is_none() {
            list.push(Extension::Auth(offers.auth.clone()));
        }
        list
    }

    /// Whether an extension's parameters may be used now: it is in the EHLO reply, and the
    /// client said EHLO.
    pub(super) fn offers(&self, ext: Extension) -> bool {
        self.greeted.as_ref().is_some_and(|g| g.esmtp) && self.extensions().contains(&ext)
    }

    /// AUTH is on offer and TLS is active if it must be.
    pub(super) fn auth_allowed(&self) -> bool {
        let offers = &self.config.offers;
        !offers.auth.is_empty() && (self.tls || !offers.auth_requires_tls)
    }

    /// Whether we know a command at all on this listener: STARTTLS and AUTH only when the
    /// listener offers them (AUTH before TLS is known, and refused with 538).
    pub(super) fn knows(&self, verb: &str) -> bool {
        match verb {
            "STARTTLS" => self.config.offers.starttls,
            "AUTH" => !self.config.offers.auth.is_empty(),
            // Only after EHLO: after HELO the client cannot know it (RFC 3030 §2), and
            // before any greeting it is out of sequence either way.
            "BDAT" => self.offers(Extension::Chunking),
            _ => true,
        }
    }

    /// `250-hostname` and one line per extension.
    pub(super) fn ehlo_reply(&self) -> Reply {
        let limits = &self.config.limits;
        let mut lines = vec![self.config.hostname.clone()];
        lines.extend(self.extensions().iter().map(|e| e.keyword(limits)));
        Reply::multi(250, lines)
    }
}
