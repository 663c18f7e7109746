//! The mail core: the types every part of the server speaks and no part owns.
//!
//! An SMTP session produces an [`Envelope`] and a [`Message`] (in memory, or partly in a
//! spool file); the mailbox store and the outbound queue consume them; the queue's DSNs
//! and the directory use [`Address`]; every layer formats [`date`]s and reads [`header`]s
//! the same way. Keeping these here, below every protocol and every store, is what keeps
//! the module graph free of cycles: this module imports nothing else of the crate
//! (`tests/module_layers.rs` checks it).

pub mod address;
pub mod date;
pub mod dsn;
mod envelope;
mod error;
pub mod header;
mod message;
mod text;
mod time;

pub use address::{Address, AddressError};
pub use dsn::{EnvelopeDsn, Notify, Ret};
pub use envelope::{Deliver, Envelope, Folder, Recipient};
pub use error::DeliveryError;
pub use message::{Message, Spooled};
pub use text::printable;
pub use time::Timestamp;
