//! SMTP AUTH (RFC 4954) on the session's side: the exchange, the replies and the rules; the
//! credentials are checked outside, through [`Output::Authenticate`].
//!
//! - PLAIN (RFC 4616): `AUTH PLAIN <initial response>` (`=` for an empty one, RFC 4954 §4)
//!   or `AUTH PLAIN`, a `334 ` continuation and the response on its own line.
//! - LOGIN (draft-murchison-sasl-login, what Outlook and many devices still use):
//!   `334 VXNlcm5hbWU6` ("Username:"), the user name, `334 UGFzc3dvcmQ6` ("Password:"), the
//!   password, each base64 on its own line; `AUTH LOGIN <user name>` skips the first prompt.
//! - `*` as a response cancels (501 5.0.0, RFC 4954 §4).
//! - 503 5.5.1 before EHLO, once authenticated, or inside a transaction (§4); 504 5.5.4 for
//!   a mechanism we do not offer; 538 5.7.11 when the listener wants TLS first (§6); 501
//!   5.5.2 for a response that is not base64; 535 5.7.8 for a malformed or wrong one; 235
//!   2.7.0 on success, after which the client may relay. A `421` from the authenticator
//!   (too many failures from this client) closes the session after it is sent.
//! - Credentials never reach the trace: an AUTH line is logged as `AUTH PLAIN ****` and a
//!   response line (LOGIN's user name too) as `****`.
//! - On a listener that requires AUTH (submission, RFC 6409 §4.3), MAIL before it is
//!   refused: [`Session::auth_required`].

mod login;

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
    /// The user name and the password in two responses, each after its prompt.
    Login,
}

impl AuthMechanism {
    /// The IANA SASL mechanism name, as advertised.
    pub fn name(self) -> &'static str {
        match self {
            AuthMechanism::Plain => "PLAIN",
            AuthMechanism::Login => "LOGIN",
        }
    }

    fn parse(name: &[u8]) -> Option<AuthMechanism> {
        [AuthMechanism::Plain, AuthMechanism::Login]
            .into_iter()
            .find(|m| name.eq_ignore_ascii_case(m.name().as_bytes()))
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
    /// The credentials are good (and the authcid may act as the authzid): 235 2.7.0; the
    /// client is who it said (the authzid, else the authcid).
    Accepted,
    /// The credentials are good, and the client is this identity (the account's canonical
    /// address, whatever case or form the login used): 235 2.7.0.
    AcceptedAs(String),
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
        // RFC 4954 §4: `=` is an initial response of zero length.
        let initial = initial.map(|r| if r == b"=" { &b""[..] } else { r });
        match (mechanism, initial) {
            (AuthMechanism::Plain, Some(response)) => self.sasl(mechanism, response),
            (AuthMechanism::Plain, None) => {
                self.phase = Phase::AuthResponse(mechanism);
                // An empty challenge: `334 ` with nothing after it.
                self.reply(Reply::plain(334, ""));
            }
            (AuthMechanism::Login, initial) => self.login_start(initial),
        }
    }

    /// The line after a `334`, LF included.
    pub(super) fn auth_response(&mut self, mechanism: super::AuthMechanism, line: &[u8]) {
        self.phase = super::Phase::Command;
        let text = strip_line_ending(line);
        if text == b"*" {
            self.log.push("*".into());
            self.login_user = None;
            return self.error(Reply::new(501, (5, 0, 0), "Authentication cancelled"));
        }
        self.log.push(REDACTED.into());
        match mechanism {
            AuthMechanism::Login => self.login_response(text),
            AuthMechanism::Plain => self.sasl(mechanism, text),
        }
    }

    /// Decodes PLAIN's base64 response and hands out the credentials it holds.
    fn sasl(&mut self, mechanism: AuthMechanism, base64: &[u8]) {
        let Some(decoded) = decode(base64) else {
            return self.error(cannot_decode());
        };
        let credentials = match mechanism {
            AuthMechanism::Plain => plain(&decoded),
            // LOGIN collects its two responses in `session/auth/login.rs`.
            AuthMechanism::Login => None,
        };
        let Some(credentials) = credentials else {
            return self.error(bad_credentials());
        };
        self.check_credentials(credentials);
    }

    /// Hands the credentials to the authenticator ([`Output::Authenticate`]).
    fn check_credentials(&mut self, credentials: Credentials) {
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
            AuthAnswer::Accepted | AuthAnswer::AcceptedAs(_) => {
                let identity = match answer {
                    AuthAnswer::AcceptedAs(canonical) => canonical,
                    _ => identity,
                };
                self.authenticated = Some(identity);
                self.client_changed();
                self.reply(Reply::new(235, (2, 7, 0), "Authentication successful"));
            }
            // Too many failures from this client: say so and hang up (RFC 5321 §3.8).
            AuthAnswer::Refused(reply) if reply.code == 421 => {
                self.reply(reply);
                self.close();
            }
            AuthAnswer::Refused(reply) if (400..600).contains(&reply.code) => self.error(reply),
            AuthAnswer::Rejected | AuthAnswer::Refused(_) => self.error(bad_credentials()),
        }
    }

    /// `530 5.7.0` for MAIL before a successful AUTH on a listener that requires it (RFC 6409
    /// §4.3, RFC 4954 §6); `None`: MAIL may go on. Called first by the MAIL handler.
    pub(super) fn auth_required(&self) -> Option<Reply> {
        (self.config.offers.auth_required && self.authenticated.is_none())
            .then(|| Reply::new(530, (5, 7, 0), "Authentication required"))
    }
}

fn cannot_decode() -> Reply {
    Reply::new(501, (5, 5, 2), "Cannot decode response")
}

/// Base64 (RFC 4648, padded, as RFC 4954 §4 requires), or `None`.
fn decode(base64: &[u8]) -> Option<Vec<u8>> {
    data_encoding::BASE64.decode(base64).ok()
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`, UTF-8, authcid and passwd not empty.
/// (Also POP3's AUTH PLAIN, RFC 5034.)
pub(crate) fn plain(decoded: &[u8]) -> Option<Credentials> {
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
