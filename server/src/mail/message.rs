//! A received message as it travels from the SMTP session to the stores: its first part in
//! memory, the rest (if it is big) in a spool file.
//!
//! **Why not a `Vec<u8>`.** Holding every message being received whole in memory let one
//! client with 2 000 connections and the 10 MB limit ask for 20 GB (issue #9: 20 clients
//! sending 10 MB each drove `mailsim serve` to 537 MB). Postfix streams each message into
//! its queue file as it arrives; we stream it into a spool file on the Env filesystem
//! (`durable/spool.rs`) and keep in memory only what the checks read: our `Received:` and
//! the header block, up to `limits.header_block`. The stores copy the spool file into their
//! own files inside the group commit (`durable/committer.rs`, `Env::write_spliced`: a
//! kernel copy, or a reflink where the filesystem shares extents), so a 10 MB message never
//! passes through user memory on its way to disk.
//!
//! A small message (the common case: under the spill threshold) has no spool file and costs
//! nothing more than the `Vec<u8>` did.

use std::path::PathBuf;

/// A message: `head` followed by the content of `spool`, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    head: Vec<u8>,
    spool: Option<Spooled>,
}

/// The part of a message that is in a spool file.
///
/// The file belongs to the SMTP session that wrote it and lives until the delivery of the
/// message has returned (the stores copy it inside their commit, before they answer), so a
/// [`Message`] must not be kept beyond [`crate::mail::Deliver::deliver`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spooled {
    /// Env path of the spool file.
    pub path: PathBuf,
    /// Its length: exactly what the session wrote.
    pub len: u64,
    /// CRC-32 (IEEE) of its content, computed as it was written: a store that checksums
    /// the message (the queue file) combines it instead of reading the file back.
    pub crc: u32,
}

impl Message {
    /// A message held whole in memory.
    pub fn inline(bytes: Vec<u8>) -> Message {
        Message {
            head: bytes,
            spool: None,
        }
    }

    /// A message whose rest, after `head`, is in a spool file.
    pub fn spooled(head: Vec<u8>, spool: Spooled) -> Message {
        Message {
            head,
            spool: Some(spool),
        }
    }

    /// The part in memory: the whole message when it is not spooled, otherwise at least our
    /// `Received:` and the header block (up to the session's cap).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The spooled rest, if any.
    pub fn spool(&self) -> Option<&Spooled> {
        self.spool.as_ref()
    }

    /// The whole message, when it is all in memory.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self.spool {
            None => Some(&self.head),
            Some(_) => None,
        }
    }

    /// Its size in octets.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.spool.as_ref().map_or(0, |s| s.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same message with `prefix` in front (header fields a store or a list adds). The
    /// spooled part is shared, not copied.
    pub fn with_prefix(&self, prefix: &[u8]) -> Message {
        let mut head = Vec::with_capacity(prefix.len() + self.head.len());
        head.extend_from_slice(prefix);
        head.extend_from_slice(&self.head);
        Message {
            head,
            spool: self.spool.clone(),
        }
    }

    /// The same message with its in-memory part replaced by `head` (a rewrite of the header
    /// block), the spooled part shared.
    pub fn with_head(&self, head: Vec<u8>) -> Message {
        Message {
            head,
            spool: self.spool.clone(),
        }
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Message {
        Message::inline(bytes)
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Message {
        Message::inline(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_prefixes() {
        let m = Message::inline(b"abc".to_vec());
        assert_eq!((m.len(), m.as_bytes()), (3, Some(&b"abc"[..])));
        let s = Message::spooled(
            b"head".to_vec(),
            Spooled {
                path: "spool/x".into(),
                len: 10,
                crc: 0,
            },
        );
        assert_eq!(s.len(), 14);
        assert_eq!(s.as_bytes(), None);
        let p = s.with_prefix(b"X: y\r\n");
        assert_eq!(p.head(), b"X: y\r\nhead");
        assert_eq!(p.len(), 20);
        assert_eq!(p.spool(), s.spool());
    }
}
