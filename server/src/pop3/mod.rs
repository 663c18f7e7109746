//! POP3 (RFC 1939) with CAPA and response codes (RFC 2449), STLS (RFC 2595) and AUTH PLAIN
//! (RFC 5034), over the [access index](crate::store::index): INBOX only, as Dovecot serves
//! it by default.
//!
//! The session is sans-IO in the SMTP session's shape (`smtp/session.rs` CONTRACT): feed it
//! bytes with `push_input`, `poll(now)` until `NeedInput`, answer its requests (start TLS,
//! check credentials, open the maildrop, read a message, expunge at QUIT) through one
//! `answer`, and fire its idle timer with `poll_timeout`/`handle_timeout(now)`. The
//! [driver](driver) does the I/O: the socket, the [`Authenticator`](crate::smtp::Authenticator)
//! shared with SMTP AUTH (same password check, same failure delays and lockouts), and the
//! index.
//!
//! - UIDL is `<uidvalidity>.<uid>`: the same across sessions and restarts, and the same
//!   identity IMAP shows (Dovecot's default `pop3_uidl_format` is also UID + UIDVALIDITY).
//! - A DELE marks; the UPDATE state (QUIT) expunges through the index, durably, before the
//!   `+OK` (RFC 1939 §6). A connection that ends any other way expunges nothing.
//! - One session per maildrop (RFC 1939 §8's exclusive lock): a second gets
//!   `-ERR [IN-USE]` (RFC 2449 §8.1.1).

mod commands;
pub mod driver;
mod protocol;
mod session;
#[cfg(test)]
mod tests;
mod wire;

pub use self::protocol::Pop3;
pub use self::session::{
    Answer, Maildrop, OpenError, Output, Pop3Config, Session, IDLE_TIMEOUT, MAX_COMMAND,
};
