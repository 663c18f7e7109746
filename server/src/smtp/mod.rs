//! SMTP: the sans-IO session state machine ([`session`]), replies ([`reply`]), and the thin
//! async driver that connects a session to an Env byte stream ([`driver`]).
//!
//! The session is a value you feed bytes and the current time; it hands back replies and
//! requests (deliver this transaction, check this policy, start TLS, verify these
//! credentials), each answered through `Session::answer`, and names its next deadline
//! (`poll_timeout`). It never reads a clock or touches I/O, so every protocol rule is
//! unit-testable without a world, and the parser is benchmarkable alone.

mod authenticator;
pub mod driver;
pub mod fuzz;
mod limits;
pub mod reply;
pub mod session;
pub mod spool;
pub mod wire;

pub use authenticator::{Authenticator, NoAccounts};
pub use limits::{Limits, LongLines};
pub use reply::Reply;
pub use session::{
    Answer, AuthAnswer, AuthMechanism, Credentials, Offers, Output, PeerInfo, Session,
    SessionConfig, Transaction,
};
