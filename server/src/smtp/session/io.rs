//! The session's interface with its driver: the configuration it is made with, who is on
//! the other end, and the [`Output`]s it hands out and the [`Answer`]s it takes back (the
//! contract is in the module docs of `session`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{AuthAnswer, Credentials, Offers};
use crate::directory::Directory;
use crate::mail::{DeliveryError, Envelope, Message};
use crate::policy::{Check, IpNet, Verdict};
use crate::smtp::reply::Reply;
use crate::smtp::Limits;

/// Everything a session needs to know about the server; shared by all sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub hostname: String,
    pub limits: Limits,
    pub directory: Arc<Directory>,
    /// Clients from these networks may relay to any domain (Postfix's `mynetworks`).
    pub relay_networks: Vec<IpNet>,
    /// What this listener offers beyond the base protocol (STARTTLS, AUTH).
    pub offers: Offers,
    /// The store's quota usage, to refuse a full mailbox at RCPT (`452 4.2.2`); `None`:
    /// no RCPT-time check (the store still refuses what does not fit).
    pub quota: Option<Arc<crate::store::Quotas>>,
    /// Where the driver spools big message bodies (Env path, one file per connection,
    /// see `smtp/spool.rs`); `None`: bodies are held in memory.
    pub spool_dir: Option<PathBuf>,
}

/// Who is on the other end.
#[derive(Clone, Copy, Debug)]
pub struct PeerInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// A complete mail transaction, ready to be stored: the envelope and the message as it
/// will be stored (our `Received:` header first, then the content, dot-unstuffed, every line
/// ending in CRLF — except a `BODY=BINARYMIME` message, stored octet for octet).
#[derive(Clone, Debug)]
pub struct Transaction {
    pub envelope: Envelope,
    pub message: Message,
}

/// What the session wants done next.
// A check is a few hundred bytes moved once, from the session to the driver and back;
// boxing it would cost an allocation per command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Output {
    /// Send this reply.
    Reply(Reply),
    /// Store this transaction durably; answer with [`Answer::Delivered`].
    Deliver(Transaction),
    /// Ask the policy; answer with [`Answer::Checked`].
    Check(Check),
    /// Write out pending replies, then start TLS; answer with [`Answer::TlsUp`] or
    /// [`Answer::TlsFailed`].
    StartTls,
    /// Verify these credentials; answer with [`Answer::Authenticated`].
    Authenticate(Credentials),
    /// Append `bytes` to the spool file (see [`super::Session::spool_to`]), creating or truncating
    /// it first when `first`. No answer; on failure call [`super::Session::spool_failed`].
    Spool { bytes: Vec<u8>, first: bool },
    /// The spool file is not needed any more: remove it.
    Unspool,
    /// Flush pending replies and close the connection.
    Close,
    /// All buffered input is consumed (or a request is outstanding): flush replies and read
    /// more.
    NeedInput,
}

/// The answer to a request (see the module docs); given to [`super::Session::answer`].
// A check is a few hundred bytes moved once, from the session to the driver and back;
// boxing it would cost an allocation per command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Answer {
    /// The store's result; `Ok(id)` is its message id.
    Delivered(Result<String, DeliveryError>),
    /// The check the session emitted, handed back, and what the policy says.
    Checked(Check, Verdict),
    /// The TLS handshake completed.
    TlsUp,
    /// The TLS handshake failed (or TLS is not available after all).
    TlsFailed,
    /// What the authenticator says.
    Authenticated(AuthAnswer),
}
