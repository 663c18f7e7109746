//! The SMTP session state machine (RFC 5321), sans-IO. See the crate docs of [`crate::smtp`].
//!
//! CONTRACT (implemented by the SMTP helper; the driver relies on exactly this):
//! - `Session::new(config, peer, now)` then `greeting()` gives the 220 banner.
//! - `push_input(bytes)` appends received bytes; `poll(now)` consumes input one command (or
//!   one DATA body) at a time and returns the next [`Output`]. Replies may be batched by the
//!   driver until `Output::NeedInput` (PIPELINING, RFC 2920).
//! - `Output::Deliver(tx)`: the driver stores `tx` durably, then calls `delivered(result)`;
//!   the session does not consume more input until then; the following `poll` yields the
//!   final reply (250 only after a successful durable store).
//! - `deadline()`: when the session times out if no more input arrives; the driver calls
//!   `timed_out()` then (421 4.4.2) and closes after flushing.
//! - `closed_by_peer()`: EOF/reset; any transaction in progress is discarded.
//! - `take_log()`: inbound lines for the trace ("EHLO x", "[DATA 123 octets]").

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Address, Directory, Limits};
use crate::env::Timestamp;

use super::reply::Reply;

/// Everything a session needs to know about the server; shared by all sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub hostname: String,
    pub limits: Limits,
    pub directory: Arc<Directory>,
}

/// Who is on the other end.
#[derive(Clone, Copy, Debug)]
pub struct PeerInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// One accepted recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The address as the client gave it.
    pub address: Address,
    /// The local mailboxes (account keys) it expands to.
    pub mailboxes: Vec<String>,
}

/// A complete mail transaction, ready to be stored.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// The reverse path; `None` is the null sender `<>`.
    pub mail_from: Option<Address>,
    pub recipients: Vec<Recipient>,
    /// The message as it will be stored: our `Received:` header first, then the content,
    /// dot-unstuffed, every line ending in CRLF.
    pub message: Vec<u8>,
    /// When the end of data arrived.
    pub received_at: Timestamp,
}

/// What the session wants done next.
#[derive(Debug)]
pub enum Output {
    /// Send this reply.
    Reply(Reply),
    /// Store this transaction durably, then call [`Session::delivered`].
    Deliver(Transaction),
    /// Flush pending replies and close the connection.
    Close,
    /// All buffered input is consumed: flush replies and read more.
    NeedInput,
}

/// Why a delivery failed; decides the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// Temporary local problem (I/O error): 451 4.3.0.
    Temporary(String),
    /// Storage full: 452 4.3.1.
    Full,
}

pub use self::DeliveryError as StoreFailure;

/// The session itself.
pub struct Session {
    _private: (),
}

impl Session {
    pub fn new(_config: Arc<SessionConfig>, _peer: PeerInfo, _now: Timestamp) -> Session {
        unimplemented!("SMTP session: being written")
    }
    pub fn greeting(&mut self) -> Reply {
        unimplemented!()
    }
    pub fn push_input(&mut self, _bytes: &[u8]) {
        unimplemented!()
    }
    pub fn poll(&mut self, _now: Timestamp) -> Output {
        unimplemented!()
    }
    /// Result of a [`Output::Deliver`]: `Ok(id)` is the store's message id.
    pub fn delivered(&mut self, _result: Result<String, DeliveryError>) {
        unimplemented!()
    }
    pub fn deadline(&self) -> Timestamp {
        unimplemented!()
    }
    pub fn timed_out(&mut self) -> Reply {
        unimplemented!()
    }
    pub fn closed_by_peer(&mut self) {
        unimplemented!()
    }
    pub fn take_log(&mut self) -> Vec<String> {
        unimplemented!()
    }
}
