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

/// How much input one `feed` hands to the library at most, so that a huge push cannot make us
/// buffer far beyond the size limit before we get to check it.
const SLICE: usize = 64 * 1024;

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
    /// A line longer than `limits.text_line`: 500 5.5.6.
    LineTooLong,
}

impl Rejection {
    /// The reason as written into the trace (`[message discarded: ...]`).
    pub(super) fn reason(self) -> &'static str {
        match self {
            Rejection::TooBig => "message size exceeds fixed limit",
            Rejection::LineTooLong => "line too long",
        }
    }
}

/// A body whose end of data has been seen.
pub(super) struct Finished {
    /// The stored content (empty when rejected).
    pub content: Vec<u8>,
    /// Content octets as stored (also counted for a rejected body).
    pub octets: usize,
    /// Content lines (CRLF count).
    pub lines: usize,
    pub rejection: Option<Rejection>,
}

/// One DATA body being received.
pub(super) struct DataBody {
    receiver: DataReceiver,
    /// The last five wire octets the library consumed (the priming CRLF included), to check
    /// that it ended the data on exactly `<CRLF>.<CRLF>`; see [`DataBody::feed`].
    tail: [u8; 5],
    /// The library's sink. `buf[..checked]` is normalised content; `buf[checked..]` is at most
    /// one held-back CR between calls (it may be the first half of a CRLF, or the CR of the
    /// terminating `<CRLF>.<CRLF>` that the library pops when the LF arrives).
    buf: Vec<u8>,
    checked: usize,
    /// Octets of the current, unfinished line (without its line ending).
    line: usize,
    octets: usize,
    lines: usize,
    too_big: bool,
    line_too_long: bool,
    max_line: usize,
    max_size: usize,
}

impl DataBody {
    /// `max_line` counts the CRLF; `max_size` is the content size limit; `expected` is the
    /// size the client announced (`SIZE=`, 0 if none), for which we reserve room up front,
    /// with some to spare for the Received: header put in front at the end.
    pub(super) fn new(max_line: usize, max_size: usize, expected: usize) -> DataBody {
        let reserve = match expected.min(max_size) {
            0 => 0,
            n => n + HEADER_ROOM,
        };
        DataBody {
            receiver: primed_receiver(),
            tail: [0, 0, 0, b'\r', b'\n'],
            buf: Vec::with_capacity(reserve),
            checked: 0,
            line: 0,
            octets: 0,
            lines: 0,
            too_big: false,
            line_too_long: false,
            max_line,
            max_size,
        }
    }

    /// Feeds input; returns how many bytes were consumed and whether the end of data was
    /// reached (the bytes after it are the next commands and are left alone).
    pub(super) fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut consumed = 0;
        while consumed < input.len() {
            let slice = &input[consumed..input.len().min(consumed + SLICE)];
            let mut it = slice.iter();
            let mut ended = self.receiver.ingest(&mut it, &mut self.buf);
            let used = slice.len() - it.as_slice().len();
            self.remember(&slice[..used]);
            consumed += used;
            if ended && &self.tail != b"\r\n.\r\n" {
                // smtp-proto 0.2.5 also ends the data on `<CRLF>.<CR><CR>...<LF>` (every CR
                // after the dot keeps it looking for the LF). That is no end of data; other
                // implementations read it as a line of CRs, so accepting it would open a
                // smuggling gap. The library has already dropped the dot (right: a leading
                // dot is unstuffed), pushed the CRs and popped the last one; restore the CR,
                // add the LF, and go on with a receiver that is at the start of a line.
                self.buf.extend_from_slice(b"\r\n");
                self.receiver = primed_receiver();
                ended = false;
            }
            self.absorb(ended);
            if ended {
                return (consumed, true);
            }
        }
        (consumed, false)
    }

    /// Whether any limit is already exceeded (the body will be rejected at the end of data).
    pub(super) fn rejection(&self) -> Option<Rejection> {
        // Size first: it is the more useful diagnosis, and the choice must not depend on how
        // the input was chunked, so both conditions are tracked to the end.
        if self.too_big {
            Some(Rejection::TooBig)
        } else if self.line_too_long {
            Some(Rejection::LineTooLong)
        } else {
            None
        }
    }

    pub(super) fn finish(mut self) -> Finished {
        let rejection = self.rejection();
        if rejection.is_some() {
            self.buf = Vec::new();
        } else {
            self.buf.truncate(self.checked);
        }
        Finished {
            content: self.buf,
            octets: self.octets,
            lines: self.lines,
            rejection,
        }
    }

    /// Normalises what the library appended since the last call, counts lines and octets and
    /// checks the limits. At the end of data nothing is held back: the library has already
    /// removed the terminator's CR, so a trailing CR is a bare CR of the content.
    fn absorb(&mut self, at_end: bool) {
        let start = self.checked;
        let len = self.buf.len();
        let end = if !at_end && len > start && self.buf[len - 1] == b'\r' {
            len - 1
        } else {
            len
        };

        self.normalise(start, end);

        if self.rejection().is_some() {
            // Discard what we have; keep only a held-back CR for the library to pop.
            let held = self.buf.len() > self.checked;
            self.buf.clear();
            if held {
                self.buf.push(b'\r');
            }
            self.checked = 0;
        }
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
        if self.line + 2 > self.max_line {
            self.line_too_long = true;
        }
        self.octets = self.octets.saturating_add(added);
        if self.octets > self.max_size {
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

    /// Keeps the last five consumed octets in `tail`.
    fn remember(&mut self, consumed: &[u8]) {
        let n = consumed.len();
        if n >= 5 {
            self.tail.copy_from_slice(&consumed[n - 5..]);
        } else {
            self.tail.rotate_left(n);
            self.tail[5 - n..].copy_from_slice(consumed);
        }
    }

    fn end_line(&mut self) {
        if self.line + 2 > self.max_line {
            self.line_too_long = true;
        }
        self.lines += 1;
        self.line = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` and returns the result once the end of data is seen, plus the bytes
    /// that were left after it.
    fn receive(chunks: &[&[u8]], max_line: usize, max_size: usize) -> Option<(Finished, Vec<u8>)> {
        let mut body = DataBody::new(max_line, max_size, 0);
        for (n, chunk) in chunks.iter().enumerate() {
            let (used, ended) = body.feed(chunk);
            if ended {
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
