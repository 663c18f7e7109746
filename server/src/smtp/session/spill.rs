//! The spool side of a message body (`session/data.rs`): where the in-memory head ends and
//! what went to the spool file (length, CRC-32), so the body can leave the session in
//! bounded chunks (`mail/message.rs` says why).

use crate::durable::crc::Crc32;

/// Content buffered beyond this goes to the spool file, in chunks of about this size: the
/// memory one session receiving a big message holds (with one read buffer and one input
/// slice), whatever the message's size. 8 KiB rather than 16: with a thousand sessions
/// streaming at once, 16 KiB buffers measured 152 MB of RSS half-way, 8 KiB 85 MB
/// (`benches/scripts/ingest-rss.sh`).
pub(super) const SPILL_AT: usize = 8 * 1024;

/// The spool side of a body: where the head ends, what went to the file.
pub(super) struct Spill {
    /// Keep at most this much of the header block in memory.
    pub(super) header_cap: usize,
    /// Where the search for the end of the header block goes on.
    pub(super) scanned: usize,
    /// The in-memory part, once decided: the header block (up to `header_cap`).
    pub(super) head: Option<Vec<u8>>,
    /// A chunk for the spool file, not yet handed out.
    pub(super) pending: Option<Vec<u8>>,
    /// A chunk was handed out (the file exists).
    pub(super) started: bool,
    pub(super) written: u64,
    pub(super) crc: Crc32,
    pub(super) failed: bool,
}

impl Spill {
    pub(super) fn new(header_cap: usize) -> Spill {
        Spill {
            header_cap,
            scanned: 0,
            head: None,
            pending: None,
            started: false,
            written: 0,
            crc: Crc32::new(),
            failed: false,
        }
    }

    /// Where the head ends in `content` (normalised, so the header block ends at the first
    /// `CRLF CRLF`, or at once for a message that starts with an empty line): the end of
    /// the header block, or `header_cap` if that comes first; `None` while neither is
    /// buffered yet.
    pub(super) fn head_cut(&mut self, content: &[u8]) -> Option<usize> {
        if content.starts_with(b"\r\n") {
            return Some(0);
        }
        let from = self.scanned.saturating_sub(3);
        let found = memchr::memmem::find(&content[from..], b"\r\n\r\n").map(|p| from + p + 4);
        self.scanned = content.len();
        match found {
            Some(end) => Some(end.min(self.header_cap)),
            None if content.len() >= self.header_cap => Some(self.header_cap),
            None => None,
        }
    }
}
