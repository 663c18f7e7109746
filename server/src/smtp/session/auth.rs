//! SMTP AUTH (RFC 4954) on the session's side: the exchange, the replies and the rules; the
//! credentials are checked outside, through [`Output::Authenticate`].
//!
//! - Only PLAIN (RFC 4616) for now; LOGIN comes with the submission work, as another
//!   [`AuthMechanism`] and another decoding step in [`Session::sasl`].
//! - `AUTH PLAIN <initial response>` (`=` for an empty one, RFC 4954 §4) or `AUTH PLAIN`, a
//!   `334 ` continuation and the response on its own line; `*` there cancels (501 5.0.0).
//! - 503 5.5.1 before EHLO, once authenticated, or inside a transaction (§4); 504 5.5.4 for
//!   a mechanism we do not offer; 538 5.7.11 when the listener wants TLS first (§6); 501
//!   5.5.2 for a response that is not base64; 535 5.7.8 for a malformed or wrong one; 235
//!   2.7.0 on success, after which the client may relay.
//! - Credentials never reach the trace: an AUTH line is logged as `AUTH PLAIN ****` and a
//!   response line as `****`.

use std::fmt;

use super::commands::strip_line_ending;
use super::{Awaiting, Output, Phase, Reply, Session};
use crate::mail::printable;

/// What the trace shows instead of credentials.
pub(super) const REDACTED: &str = "****";

/// A SASL mechanism the session can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMechanism {
    /// RFC 4616: `authzid NUL authcid NUL passwd`, in one response.
    Plain,
}

impl AuthMechanism {
    /// The IANA SASL mechanism name, as advertised.
    pub fn name(self) -> &'static str {
        match self {
            AuthMechanism::Plain => "PLAIN",
        }
    }

    fn parse(name: &[u8]) -> Option<AuthMechanism> {
        name.eq_ignore_ascii_case(b"PLAIN")
            .then_some(AuthMechanism::Plain)
    }
}

/// What the client presented, for the authenticator to verify.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub mechanism: AuthMechanism,
    /// The authentication identity: whose password this is.
    pub authcid: String,
    /// The authorization identity the client wants to act as; empty: the same as authcid.
    pub authzid: String,
    pub password: String,
}

/// Never prints the password, so a stray `{:?}` cannot leak it into a log.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("authcid", &self.authcid)
            .field("authzid", &self.authzid)
            .field("password", &REDACTED)
            .finish()
    }
}

/// The authenticator's answer to [`Output::Authenticate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthAnswer {
    /// The credentials are good (and the authcid may act as the authzid): 235 2.7.0.
    Accepted,
    /// They are not: 535 5.7.8.
    Rejected,
    /// Another refusal, worded by the authenticator (454 4.7.0 for a temporary failure or a
    /// lockout, say). Sent as given if it is a 4xx/5xx, else as [`AuthAnswer::Rejected`].
    Refused(Reply),
}

/// The trace form of an AUTH command line: the mechanism, never the initial response.
pub(super) fn redacted(text: &[u8]) -> String {
    let mut words = text.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let verb = words.next().map(printable).unwrap_or_default();
    match (words.next(), words.next()) {
        (None, _) => verb,
        (Some(mechanism), None) => format!("{verb} {}", printable(mechanism)),
        (Some(mechanism), Some(_)) => format!("{verb} {} {REDACTED}", printable(mechanism)),
    }
}

fn bad_credentials() -> Reply {
    Reply::new(535, (5, 7, 8), "Authentication credentials invalid")
}

impl Session {
    /// `AUTH mechanism [initial-response]`.
    pub(super) fn auth(&mut self, text: &[u8]) {
        if !self.greeted.as_ref().is_some_and(|g| g.esmtp) {
            return self.error(Reply::new(503, (5, 5, 1), "Error: send EHLO first"));
        }
        if self.authenticated.is_some() {
            return self.error(Reply::new(503, (5, 5, 1), "Error: already authenticated"));
        }
        if self.envelope.is_some() {
            return self.error(Reply::new(
                503,
                (5, 5, 1),
                "Error: MAIL transaction in progress",
            ));
        }
        let mut words = text.split(|&b| b == b' ').filter(|w| !w.is_empty()).skip(1);
        let (Some(name), initial, None) = (words.next(), words.next(), words.next()) else {
            return self.error(Reply::new(
                501,
                (5, 5, 4),
                "Syntax: AUTH mechanism [initial-response]",
            ));
        };
        let Some(mechanism) =
            AuthMechanism::parse(name).filter(|m| self.config.offers.auth.contains(m))
        else {
            return self.error(Reply::new(
                504,
                (5, 5, 4),
                "Unrecognized authentication type",
            ));
        };
        if !self.auth_allowed() {
            return self.error(Reply::new(
                538,
                (5, 7, 11),
                "Encryption required for requested authentication mechanism",
            ));
        }
        match initial {
            // RFC 4954 §4: `=` is an initial response of zero length.
            Some(b"=") => self.sasl(mechanism, b""),
            Some(response) => self.sasl(mechanism, response),
            None => {
                self.phase = Phase::AuthResponse(mechanism);
                // An empty challenge: `334 ` with nothing after it.
                self.reply(Reply::plain(334, ""));
            }
        }
    }

    /// The line after a `334`, LF included.
    pub(super) fn auth_response(&mut self, mechanism: super::AuthMechanism, line: &[u8]) {
        self.phase = super::Phase::Command;
        let text = strip_line_ending(line);
        if text == b"*" {
            self.log.push("*".into());
            return self.error(Reply::new(501, (5, 0, 0), "Authentication cancelled"));
        }
        self.log.push(REDACTED.into());
        self.sasl(mechanism, text);
    }

    /// Decodes a base64 response and hands out the credentials it holds.
    fn sasl(&mut self, mechanism: AuthMechanism, base64: &[u8]) {
        let Ok(decoded) = data_encoding::BASE64.decode(base64) else {
            return self.error(Reply::new(501, (5, 5, 2), "Cannot decode response"));
        };
        let credentials = match mechanism {
            AuthMechanism::Plain => plain(&decoded),
        };
        let Some(credentials) = credentials else {
            return self.error(bad_credentials());
        };
        let identity = match credentials.authzid.is_empty() {
            true => credentials.authcid.clone(),
            false => credentials.authzid.clone(),
        };
        self.ask(
            Awaiting::Auth { identity },
            Output::Authenticate(credentials),
        );
    }

    /// The answer to [`Output::Authenticate`].
    pub(super) fn authenticated(&mut self, identity: String, answer: AuthAnswer) {
        match answer {
            AuthAnswer::Accepted => {
                self.authenticated = Some(identity);
                self.client_changed();
                self.reply(Reply::new(235, (2, 7, 0), "Authentication successful"));
            }
            AuthAnswer::Refused(reply) if (400..600).contains(&reply.code) => self.error(reply),
            AuthAnswer::Rejected | AuthAnswer::Refused(_) => self.error(bad_credentials()),
        }
    }
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`, UTF-8, authcid and passwd not empty.
fn plain(decoded: &[u8]) -> Option<Credentials> {
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if authcid.is_empty() || password.is_empty() {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    Some(Credentials {
        mechanism: AuthMechanism::Plain,
        authcid: text(authcid)?,
        authzid: text(authzid)?,
        password: text(password)?,
    })
}
