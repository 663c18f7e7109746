//! Reception of one DATA body (RFC 5321 §4.1.1.4, §4.5.2): end-of-data detection and
//! dot-unstuffing are smtp-proto's [`DataReceiver`]; on top of it this module normalises line
//! endings and enforces the size and line-length limits while the bytes stream in.
//!
//! Why a layer on top of the library:
//! - smtp-proto ends the data only at `<CRLF>.<CRLF>` (good: no SMTP smuggling through
//!   `<LF>.<LF>`, `<CR>.<CR>` or `<LF>.<CRLF>`) but passes bare LF and bare CR through. A
//!   bare line ending that reaches the store would be re-interpreted differently by every
//!   later hop (that is exactly what smuggling exploits), so we store one canonical form:
//!   every bare LF and every bare CR becomes CRLF. A stored message therefore only ever
//!   contains CRLF line endings, and re-sending it with dot-stuffing is unambiguous.
//! - Limits must be enforced while reading, not after: once the message is too big we keep
//!   reading to the end of data (the client must see the reply at the right place in the
//!   stream) but stop buffering.
//! - The library's receiver starts in a "middle of a line" state; the body of a DATA command,
//!   however, starts at the beginning of a line (the DATA command line ended with a line
//!   ending). We prime it with one CRLF so that an empty message (`.` right after the 354)
//!   ends the data and a leading `..` is unstuffed, as RFC 5321 §4.5.2 requires.
//!
//! Line length is measured on the stored line (after dot-unstuffing and normalisation), CRLF
//! included: RFC 5321 §4.5.3.1.6 does not count the transparency dot. Only the library's
//! output is measured, so lines that bare CRs split count as separate lines, as stored.

use memchr::memchr2;
use smtp_proto::request::receiver::DataReceiver;

use super::spill::{Spill, SPILL_AT};

/// How much input one `feed` hands to the library at most, so that a huge push cannot make us
/// buffer far beyond the size limit (or the spill threshold) before we get to check it.
const SLICE: usize = 8 * 1024;

/// Room for our Received: header in a buffer reserved from `SIZE=`.
const HEADER_ROOM: usize = 512;

/// A receiver at the beginning of a line (see the module docs).
fn primed_receiver() -> DataReceiver {
    let mut receiver = DataReceiver::new();
    let ended = receiver.ingest(&mut b"\r\n".iter(), &mut Vec::new());
    debug_assert!(!ended);
    receiver
}

/// Why a complete body is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rejection {
    /// More content than `limits.message_size`: 552 5.3.4.
    TooBig,
    /// A line longer than `limits.text_line` under `long_lines = "reject"`: 500 5.5.6.
    LineTooLong,
    /// Writing the spool file failed (disk full, I/O error): 452 4.3.1, nothing stored.
    SpoolFailed,
}

impl Rejection {
    /// The reason as written into the trace (`[message discarded: ...]`).
    pub(super) fn reason(self) -> &'static str {
        match self {
            Rejection::TooBig => "message size exceeds fixed limit",
            Rejection::LineTooLong => "line too long",
            Rejection::SpoolFailed => "spool write failed",
        }
    }
}

/// A body whose end has been seen.
pub(super) struct Finished {
    /// The stored content (empty when rejected); for a spooled body, only its head (the
    /// rest is in the spool file, see `spooled`).
    pub content: Vec<u8>,
    /// Length and CRC-32 of what went to the spool file, if anything did.
    pub spooled: Option<(u64, u32)>,
    /// Content octets as stored (also counted for a rejected body).
    pub octets: usize,
    /// Content lines (CRLF count).
    pub lines: usize,
    pub rejection: Option<Rejection>,
}

/// How the end of the body is found.
enum Framing {
    /// DATA: smtp-proto's receiver finds `<CRLF>.<CRLF>` and unstuffs dots.
    Dot {
        receiver: DataReceiver,
        /// The last five wire octets the library consumed (the priming CRLF included), to
        /// check that it ended the data on exactly `<CRLF>.<CRLF>`; see [`DataBody::feed`].
        tail: [u8; 5],
    },
    /// BDAT (RFC 3030): counted chunks, no dot-stuffing. `remaining` octets of the current
    /// chunk are still to come; `last` is the `LAST` chunk's.
    Chunks { remaining: usize, last: bool },
}

/// What the body is limited to and how it is kept.
#[derive(Clone, Copy, Debug)]
pub(super) struct BodyRules {
    /// Longest line, CRLF included; `None`: any length is stored intact (Postfix).
    pub max_line: Option<usize>,
    pub max_size: usize,
    /// `BODY=BINARYMIME` (RFC 3030 §3): stored octet for octet, no line-ending repair, no
    /// line limit.
    pub binary: bool,
    /// Spool what passes the spill threshold (a session with a spool file), keeping in
    /// memory the header block up to this many octets.
    pub spool_header_cap: Option<usize>,
}

/// One message body being received (DATA, or the BDAT chunks of one transaction).
pub(super) struct DataBody {
    framing: Framing,
    /// The sink. `buf[..checked]` is normalised content not yet spilled; `buf[checked..]`
    /// is at most one held-back CR between calls (it may be the first half of a CRLF, or the
    /// CR of the terminating `<CRLF>.<CRLF>` that the library pops when the LF arrives).
    buf: Vec<u8>,
    checked: usize,
    /// Octets of the current, unfinished line (without its line ending).
    line: usize,
    octets: usize,
    lines: usize,
    too_big: bool,
    line_too_long: bool,
    rules: BodyRules,
    /// The current framing unit (the DATA body, or one BDAT chunk) is read completely.
    done: bool,
    spill: Option<Spill>,
}

impl DataBody {
    /// A DATA body. `expected` is the size the client announced (`SIZE=`, 0 if none), for
    /// which we reserve room up front (capped by the spill threshold when spooling), with
    /// some to spare for the Received: header put in front at the end.
    pub(super) fn new(rules: BodyRules, expected: usize) -> DataBody {
        DataBody::with_framing(
            rules,
            expected,
            Framing::Dot {
                receiver: primed_receiver(),
                tail: [0, 0, 0, b'\r', b'\n'],
            },
        )
    }

    /// The body of a BDAT transaction, before its first chunk (see [`DataBody::next_chunk`]).
    pub(super) fn chunked(rules: BodyRules, expected: usize) -> DataBody {
        let mut body = DataBody::with_framing(
            rules,
            expected,
            Framing::Chunks {
                remaining: 0,
                last: false,
            },
        );
        body.done = true;
        body
    }

    fn with_framing(rules: BodyRules, expected: usize, framing: Framing) -> DataBody {
        let mut reserve = match expected.min(rules.max_size) {
            0 => 0,
            n => n + HEADER_ROOM,
        };
        if rules.spool_header_cap.is_some() {
            reserve = reserve.min(SPILL_AT + SLICE);
        }
        DataBody {
            framing,
            buf: Vec::with_capacity(reserve),
            checked: 0,
            line: 0,
            octets: 0,
            lines: 0,
            too_big: false,
            line_too_long: false,
            rules,
            done: false,
            spill: rules.spool_header_cap.map(Spill::new),
        }
    }

    /// Starts the next BDAT chunk of `size` octets. A chunk of 0 octets is read at once.
    pub(super) fn next_chunk(&mut self, size: usize, last: bool) {
        self.framing = Framing::Chunks {
            remaining: size,
            last,
        };
        self.done = false;
        if size == 0 {
            self.end_unit();
        }
    }

    /// The current unit (DATA body or BDAT chunk) is read completely.
    pub(super) fn done(&self) -> bool {
        self.done
    }

    /// The whole message is read: the DATA body, or a `LAST` chunk.
    pub(super) fn complete(&self) -> bool {
        self.done
            && match self.framing {
                Framing::Dot { .. } => true,
                Framing::Chunks { last, .. } => last,
            }
    }

    /// Feeds input; returns how many bytes were consumed. Stops at the end of the unit (the
    /// bytes after it are the next commands and are left alone) and whenever a spool chunk
    /// is ready (take it with [`DataBody::take_chunk`], then feed on).
    pub(super) fn feed(&mut self, input: &[u8]) -> usize {
        let mut consumed = 0;
        while consumed < input.len() && !self.done && !self.has_chunk() {
            let room = input.len().min(consumed + SLICE);
            let used = match &mut self.framing {
                Framing::Dot { receiver, tail } => {
                    let slice = &input[consumed..room];
                    let mut it = slice.iter();
                    let mut ended = receiver.ingest(&mut it, &mut self.buf);
                    let used = slice.len() - it.as_slice().len();
                    remember(tail, &slice[..used]);
                    if ended && tail != b"\r\n.\r\n" {
                        // smtp-proto 0.2.5 also ends the data on `<CRLF>.<CR><CR>...<LF>`
                        // (every CR after the dot keeps it looking for the LF). That is no
                        // end of data; other implementations read it as a line of CRs, so
                        // accepting it would open a smuggling gap. The library has already
                        // dropped the dot (right: a leading dot is unstuffed), pushed the CRs
                        // and popped the last one; restore the CR, add the LF, and go on with
                        // a receiver that is at the start of a line.
                        self.buf.extend_from_slice(b"\r\n");
                        *receiver = primed_receiver();
                        ended = false;
                    }
                    self.done = ended;
                    used
                }
                Framing::Chunks { remaining, .. } => {
                    let n = (room - consumed).min(*remaining);
                    self.buf.extend_from_slice(&input[consumed..consumed + n]);
                    *remaining -= n;
                    self.done = *remaining == 0;
                    n
                }
            };
            consumed += used;
            if self.done {
                self.end_unit();
            } else {
                self.absorb(false);
            }
        }
        consumed
    }

    /// The end of a unit: what was held back is content now if the message ends here.
    fn end_unit(&mut self) {
        self.done = true;
        let at_end = self.complete();
        self.absorb(at_end);
        if at_end {
            self.spill_rest();
        }
    }

    /// A chunk for the spool file is ready.
    pub(super) fn has_chunk(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| s.pending.is_some())
    }

    /// The next chunk for the spool file, and whether it is the first (the file is created
    /// with it).
    pub(super) fn take_chunk(&mut self) -> Option<(Vec<u8>, bool)> {
        let spill = self.spill.as_mut()?;
        let chunk = spill.pending.take()?;
        let first = !spill.started;
        spill.started = true;
        Some((chunk, first))
    }

    /// Whether anything went to the spool file.
    pub(super) fn spooled(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| s.started)
    }

    /// Writing the spool failed: the body is discarded (and refused at its end with 452).
    pub(super) fn spool_failed(&mut self) {
        if let Some(spill) = self.spill.as_mut() {
            spill.failed = true;
            spill.pending = None;
        }
        self.discard();
    }

    /// Content octets so far.
    pub(super) fn octets(&self) -> usize {
        self.octets
    }

    /// Whether any limit is already exceeded (the body will be rejected at its end).
    pub(super) fn rejection(&self) -> Option<Rejection> {
        // Size first: it is the more useful diagnosis, and the choice must not depend on how
        // the input was chunked, so both conditions are tracked to the end.
        if self.spill.as_ref().is_some_and(|s| s.failed) {
            Some(Rejection::SpoolFailed)
        } else if self.too_big {
            Some(Rejection::TooBig)
        } else if self.line_too_long {
            Some(Rejection::LineTooLong)
        } else {
            None
        }
    }

    pub(super) fn finish(mut self) -> Finished {
        let rejection = self.rejection();
        let mut spooled = None;
        if rejection.is_some() {
            self.buf = Vec::new();
        } else {
            self.buf.truncate(self.checked);
            if let Some(spill) = self.spill.take() {
                if let Some(head) = spill.head {
                    debug_assert!(self.buf.is_empty(), "spill_rest ran at the end");
                    self.buf = head;
                    spooled = Some((spill.written, spill.crc.finish()));
                }
            }
        }
        Finished {
            content: self.buf,
            spooled,
            octets: self.octets,
            lines: self.lines,
            rejection,
        }
    }

    /// Drops what is buffered; keeps only a held-back CR for the library to pop.
    fn discard(&mut self) {
        let held = self.buf.len() > self.checked;
        self.buf.clear();
        if held {
            self.buf.push(b'\r');
        }
        self.checked = 0;
    }

    /// Normalises what the sink received since the last call, counts lines and octets,
    /// checks the limits and spills to the spool. At the end of the message nothing is held
    /// back: the library has already removed the terminator's CR, so a trailing CR is a bare
    /// CR of the content.
    fn absorb(&mut self, at_end: bool) {
        let start = self.checked;
        let len = self.buf.len();
        if self.rules.binary {
            // BINARYMIME: octets as sent.
            self.octets = self.octets.saturating_add(len - start);
            self.too_big |= self.octets > self.rules.max_size;
            self.checked = len;
        } else {
            let end = if !at_end && len > start && self.buf[len - 1] == b'\r' {
                len - 1
            } else {
                len
            };
            self.normalise(start, end);
        }
        if self.rejection().is_some() {
            self.discard();
        } else {
            self.spill_ready();
        }
    }

    /// Hands a spool chunk out once enough content is buffered (and the head is decided).
    fn spill_ready(&mut self) {
        let Some(spill) = self.spill.as_mut() else {
            return;
        };
        if spill.pending.is_some() {
            return;
        }
        if spill.head.is_none() {
            if self.checked < SPILL_AT {
                // Small so far: stays in memory (most messages never spill).
                return;
            }
            let Some(cut) = spill.head_cut(&self.buf[..self.checked]) else {
                return;
            };
            let rest = self.buf.split_off(cut);
            let head = std::mem::replace(&mut self.buf, rest);
            self.checked -= cut;
            spill.head = Some(head);
        }
        if self.checked >= SPILL_AT {
            self.cut_chunk();
        }
    }

    /// Before the session waits for more input: once the head is decided, whatever content
    /// is buffered goes to the spool now and the buffer is released, so a session stalled
    /// half-way through a big message (a slow client, a thousand of them) holds no body
    /// memory at all. Returns whether a chunk is ready.
    pub(super) fn flush_idle(&mut self) -> bool {
        if self.rejection().is_some() || self.has_chunk() {
            return false;
        }
        match &self.spill {
            Some(spill) if spill.head.is_some() && self.checked > 0 => {}
            _ => return false,
        }
        self.cut_chunk_into(Vec::new());
        true
    }

    /// At the end of the message: a spooled body's last content goes to the spool too.
    fn spill_rest(&mut self) {
        if self.rejection().is_some() {
            return;
        }
        let started = self.spill.as_ref().is_some_and(|s| s.head.is_some());
        if started && self.checked > 0 {
            self.cut_chunk();
        }
    }

    /// `buf[..checked]` becomes the pending spool chunk; a held-back CR stays.
    fn cut_chunk(&mut self) {
        self.cut_chunk_into(Vec::with_capacity(SPILL_AT + SLICE));
    }

    /// [`DataBody::cut_chunk`], going on in `next`.
    fn cut_chunk_into(&mut self, mut next: Vec<u8>) {
        let Some(spill) = self.spill.as_mut() else {
            return;
        };
        next.extend_from_slice(&self.buf[self.checked..]);
        let mut chunk = std::mem::replace(&mut self.buf, next);
        chunk.truncate(self.checked);
        self.checked = 0;
        spill.crc.update(&chunk);
        spill.written += chunk.len() as u64;
        spill.pending = Some(chunk);
    }

    /// Counts and checks the lines of `buf[start..end]` and rewrites bare CRs and LFs in it.
    /// Pure-CRLF text (the normal case) is only scanned, never copied.
    fn normalise(&mut self, start: usize, end: usize) {
        // Rebuilt tail, only when a bare line ending needs an inserted byte.
        let mut rebuilt: Option<Vec<u8>> = None;
        let mut copied = start;
        let mut added = end - start;
        let mut i = start;
        while let Some(off) = memchr2(b'\r', b'\n', &self.buf[i..end]) {
            let p = i + off;
            self.line += off;
            let crlf = self.buf[p] == b'\r' && p + 1 < end && self.buf[p + 1] == b'\n';
            let next = if crlf { p + 2 } else { p + 1 };
            if !crlf {
                // Bare CR or bare LF: store CRLF instead.
                let out = rebuilt.get_or_insert_with(|| Vec::with_capacity(end - start + 16));
                out.extend_from_slice(&self.buf[copied..p]);
                out.extend_from_slice(b"\r\n");
                copied = next;
                added += 1;
            }
            self.end_line();
            i = next;
        }
        self.line += end - i;
        self.check_line();
        self.octets = self.octets.saturating_add(added);
        if self.octets > self.rules.max_size {
            self.too_big = true;
        }

        if let Some(mut out) = rebuilt {
            out.extend_from_slice(&self.buf[copied..end]);
            let held = self.buf.len() > end;
            self.buf.truncate(start);
            self.buf.extend_from_slice(&out);
            self.checked = self.buf.len();
            if held {
                self.buf.push(b'\r');
            }
        } else {
            self.checked = end;
        }
    }

    fn check_line(&mut self) {
        if self.rules.max_line.is_some_and(|max| self.line + 2 > max) {
            self.line_too_long = true;
        }
    }

    fn end_line(&mut self) {
        self.check_line();
        self.lines += 1;
        self.line = 0;
    }
}

/// Keeps the last five consumed octets in `tail`.
fn remember(tail: &mut [u8; 5], consumed: &[u8]) {
    let n = consumed.len();
    if n >= 5 {
        tail.copy_from_slice(&consumed[n - 5..]);
    } else {
        tail.rotate_left(n);
        tail[5 - n..].copy_from_slice(consumed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(max_line: Option<usize>, max_size: usize) -> BodyRules {
        BodyRules {
            max_line,
            max_size,
            binary: false,
            spool_header_cap: None,
        }
    }

    /// Feeds `chunks` and returns the result once the end of data is seen, plus the bytes
    /// that were left after it.
    fn receive(chunks: &[&[u8]], max_line: usize, max_size: usize) -> Option<(Finished, Vec<u8>)> {
        let mut body = DataBody::new(rules(Some(max_line), max_size), 0);
        for (n, chunk) in chunks.iter().enumerate() {
            let used = body.feed(chunk);
            if body.done() {
                let mut rest = chunk[used..].to_vec();
                for c in &chunks[n + 1..] {
                    rest.extend_from_slice(c);
                }
                return Some((body.finish(), rest));
            }
            assert_eq!(used, chunk.len());
        }
        None
    }

    fn content(input: &[u8]) -> Vec<u8> {
        let (f, _) = receive(&[input], 1000, 1 << 20).expect("end of data");
        assert_eq!(f.rejection, None);
        f.content
    }

    #[test]
    fn empty_body_and_leading_dots() {
        assert_eq!(content(b".\r\n"), b"");
        assert_eq!(content(b"..x\r\n.\r\n"), b".x\r\n");
        assert_eq!(content(b"a\r\n..\r\n.b\r\n.\r\n"), b"a\r\n.\r\nb\r\n");
    }

    #[test]
    fn bare_endings_become_crlf() {
        assert_eq!(
            content(b"a\nb\rc\r\r\nd\r\n.\r\n"),
            b"a\r\nb\r\nc\r\n\r\nd\r\n"
        );
        // A bare CR right before the terminator is content.
        assert_eq!(content(b"a\r\r\n.\r\n"), b"a\r\n\r\n");
        // `.` then CRs then LF is a line of CRs (unstuffed), not the end.
        assert_eq!(content(b"a\r\n.\r\r\nb\r\n.\r\n"), b"a\r\n\r\n\r\nb\r\n");
    }

    #[test]
    fn only_crlf_dot_crlf_ends() {
        for fake in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r\n.\r",
            b"\r\n.\r\r\n",
            b"\r\n.\r\r\r\n",
        ] {
            let mut input = b"x".to_vec();
            input.extend_from_slice(fake);
            input.extend_from_slice(b"QUIT\r\n.\r\nNEXT");
            let (f, rest) = receive(&[&input], 1000, 1 << 20).unwrap();
            assert_eq!(rest, b"NEXT", "{fake:?}");
            let text = String::from_utf8(f.content).unwrap();
            assert!(text.ends_with("QUIT\r\n"), "{fake:?}: {text:?}");
            assert!(!text.contains("\r\n\r\n.\r\n"));
        }
    }

    #[test]
    fn every_split_gives_the_same_result() {
        let input: &[u8] = b"a\r\n..b\nc\rd\r\n\r\n.\r\r\n.x\r\n.\r\nREST";
        let (whole, rest) = receive(&[input], 1000, 1 << 20).unwrap();
        assert_eq!(rest, b"REST");
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let (f, rest) =
                    receive(&[&input[..i], &input[i..j], &input[j..]], 1000, 1 << 20).unwrap();
                assert_eq!(f.content, whole.content, "split {i}/{j}");
                assert_eq!((f.octets, f.lines), (whole.octets, whole.lines));
                assert_eq!(rest, b"REST");
            }
        }
    }

    #[test]
    fn limits() {
        let ok = [b'x'; 998];
        let mut input = ok.to_vec();
        input.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(receive(&[&input], 1000, 1 << 20).unwrap().0.rejection, None);
        let mut input = b"x".to_vec();
        input.extend_from_slice(&ok);
        input.extend_from_slice(b"\r\n.\r\n");
        let (f, _) = receive(&[&input], 1000, 1 << 20).unwrap();
        assert_eq!(f.rejection, Some(Rejection::LineTooLong));
        assert!(f.content.is_empty());
        // The transparency dot does not count.
        let mut input = b".".to_vec();
        input.extend_from_slice(&ok);
        input.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(receive(&[&input], 1000, 1 << 20).unwrap().0.rejection, None);

        let (f, _) = receive(&[b"0123456789\r\n.\r\n"], 1000, 12).unwrap();
        assert_eq!((f.rejection, f.octets), (None, 12));
        let (f, _) = receive(&[b"0123456789\r\n", b"x\r\n.\r\n"], 1000, 12).unwrap();
        assert_eq!(
            (f.rejection, f.octets, f.lines),
            (Some(Rejection::TooBig), 15, 2)
        );
        // Both: size wins, however the input is split.
        let mut input = vec![b'y'; 2000];
        input.extend_from_slice(b"\r\n.\r\n");
        for split in [1, 500, 1500, 2001] {
            let (f, _) = receive(&[&input[..split], &input[split..]], 1000, 100).unwrap();
            assert_eq!(f.rejection, Some(Rejection::TooBig));
        }
    }
}
