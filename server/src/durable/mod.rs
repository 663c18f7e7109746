//! Durability shared by every store: one group committer and one checksummed append-only log.
//!
//! Everything the server must not lose — delivered messages, the outbound queue, and later
//! IMAP flags and UIDs, greylisting state, lockouts, suppression lists, a write-ahead log —
//! is files on the Env filesystem, made durable the same way, so that the discipline that
//! makes a 250 mean "on disk" is written (and crash-tested) once:
//!
//! - [`committer`]: batches the jobs of a store and commits each batch with write to a temp
//!   name, append, one flush of the data, rename, unlink, one flush of the directories;
//!   every job is answered only after its changes are durable.
//! - [`log`]: the framing of an append-only record log (a leading newline, a CRC, the
//!   payload) that survives a torn tail, and its tolerant reader.
//!
//! Neither knows what a message or a recipient is: the stores give them paths and bytes.

pub mod committer;
pub(crate) mod crc;
pub mod log;
#[cfg(test)]
pub(crate) mod memenv;

pub use committer::{
    is_temp, Changes, CommitMode, Committer, Stopped, Store, MAX_BATCH, TMP_PREFIX,
};
