//! IMAP4rev1 (RFC 3501) with IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851),
//! LITERAL+ (RFC 7888), NAMESPACE (RFC 2342), ID (RFC 2971), ENABLE (RFC 5161), UNSELECT
//! (RFC 3691), SPECIAL-USE (RFC 6154), CONDSTORE (RFC 7162) and SASL-IR (RFC 4959), over
//! the [access index](crate::store::index) that POP3 reads too.
//!
//! The session is sans-IO in the POP3 session's shape: feed it bytes with `push_input`,
//! `poll(now)` until `NeedInput`, carry out what it asks (start TLS, check credentials, a
//! store [`Request`]) and hand back one [`Answer`]; fire its autologout timer with
//! `poll_timeout`/`handle_timeout(now)`; call `changed()` when the selected folder changed
//! elsewhere. Commands are parsed by imap-codec (its `Fragmentizer` frames lines and
//! literals with their limits). The [`Backend`] carries out requests on the index for the
//! logged-in account; the [driver](driver) does the socket, TLS, the shared
//! [`Authenticator`](crate::smtp::Authenticator) and the change feed.
//!
//! - **Untagged updates.** Every session that has a folder selected subscribes to its
//!   index's broadcast; a change by another session, or a delivery (the MX store tells the
//!   index registry, `Mailboxes::delivered`), marks the session dirty. An idling session
//!   is told at once; any other at the end of its next command (not during FETCH, STORE or
//!   SEARCH, RFC 3501 §7.4.1). What it is told is a diff of a fresh snapshot against its own
//!   view, so EXPUNGE numbering is always consistent with what it was told before.
//! - **Isolation.** A folder name is only ever a name in the logged-in account, checked by
//!   `FolderName::parse`; LIST patterns match names, never paths.
//! - **Limits.** Command line 64 KiB, literal `max_literal` (refused at its announcement,
//!   before a byte is buffered), sessions per account capped, 20 bad commands close.

mod any;
mod api;
mod backend;
pub mod driver;
mod fetch;
mod mailbox;
mod message;
mod protocol;
mod search;
mod session;
mod store;
#[cfg(test)]
mod tests;
mod wire;

pub use self::backend::Backend;
pub use self::protocol::{Imap, MAX_SESSIONS_PER_ACCOUNT};
pub use self::session::{
    Answer, Done, Failure, FlagOp, ImapConfig, Output, Request, Session, IDLE_TIMEOUT, MAX_LINE,
    MAX_LITERAL,
};
