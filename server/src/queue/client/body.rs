//! The message on the wire: line endings made CRLF, long lines wrapped, and for DATA
//! dot-stuffed and terminated.
//!
//! RFC 5321 §4.5.2: a line that starts with `.` gets one more `.`, so the receiver's
//! `<CRLF>.<CRLF>` can only be our terminator. RFC 5321 §2.3.8 forbids bare CR and bare LF;
//! our own SMTP server stores every line with CRLF already, but a message can also come from
//! elsewhere (a DSN we built, a forwarded one), so a bare LF or a bare CR becomes CRLF here —
//! exactly what the inbound session does, so a message relayed twice is unchanged. A body
//! that does not end in CRLF gets one (before the final `.` with DATA).
//!
//! A line over [`MAX_LINE`] (998) octets — we store such lines intact, as Postfix does — is
//! broken the way Postfix's `smtp_line_length_limit = 998` breaks it: after 998 octets a
//! `<CRLF><SPACE>` is inserted, so a header line becomes a folded continuation (RFC 5322
//! §2.2.3) and a body line loses nothing but gains a space; the space counts toward the
//! next piece's 998. A line of exactly 998 octets is left alone.
//!
//! BDAT (RFC 3030) has no dot-stuffing and no terminator: [`BodyEncoder::bdat`] does only
//! the line work. A message sent as `BODY=BINARYMIME` is not passed through an encoder at
//! all: its octets go out exactly as stored.
//!
//! Incremental, so a large message is sent in bounded chunks without a second full copy.

use crate::mime::MAX_LINE;

/// Streaming encoder; feed it the message in any chunks, then call [`BodyEncoder::finish`].
#[derive(Debug)]
pub(crate) struct BodyEncoder {
    /// DATA: dot-stuff and end with `.` CRLF. BDAT: neither.
    data: bool,
    /// Octets of the current line written so far.
    col: usize,
    /// The previous chunk ended with a CR whose LF may come next.
    pending_cr: bool,
}

impl BodyEncoder {
    /// For DATA: dot-stuffed, wrapped, terminated.
    pub(crate) fn data() -> BodyEncoder {
        BodyEncoder {
            data: true,
            col: 0,
            pending_cr: false,
        }
    }

    /// For BDAT: CRLF lines, wrapped; no dot-stuffing, no terminator.
    pub(crate) fn bdat() -> BodyEncoder {
        BodyEncoder {
            data: false,
            ..BodyEncoder::data()
        }
    }

    /// Appends the wire form of `chunk` to `out`.
    pub(crate) fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 64 + 4);
        for &b in chunk {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.col = 0;
                if b == b'\n' {
                    continue; // that CR and this LF were one CRLF
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.col = 0;
                }
                _ => {
                    if self.col == MAX_LINE {
                        // smtp_line_length_limit: the line goes on after CRLF SP.
                        out.extend_from_slice(b"\r\n ");
                        self.col = 1;
                    }
                    if self.data && self.col == 0 && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.col += 1;
                }
            }
        }
    }

    /// Ends the message: the last line gets its CRLF if it lacks one, then (DATA) `.` CRLF.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || self.col > 0 {
            out.extend_from_slice(b"\r\n");
        }
        self.pending_cr = false;
        self.col = 0;
        if self.data {
            out.extend_from_slice(b".\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(msg: &[u8]) -> Vec<u8> {
        let mut s = BodyEncoder::data();
        let mut out = Vec::new();
        s.encode(msg, &mut out);
        s.finish(&mut out);
        out
    }

    #[test]
    fn stuffs_dots_and_terminates() {
        assert_eq!(
            wire(b"Subject: x\r\n\r\n.hidden\r\n..two\r\nend.\r\n.\r\n"),
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\nend.\r\n..\r\n.\r\n"
        );
        assert_eq!(wire(b".starts"), b"..starts\r\n.\r\n");
        assert_eq!(wire(b"no newline"), b"no newline\r\n.\r\n");
        assert_eq!(wire(b""), b".\r\n");
    }

    #[test]
    fn bare_cr_and_lf_become_crlf() {
        assert_eq!(wire(b"a\nb\rc\r\n.d\r"), b"a\r\nb\r\nc\r\n..d\r\n.\r\n");
        assert_eq!(wire(b"a\r\r\n"), b"a\r\n\r\n.\r\n");
        assert_eq!(wire(b"x\r.\r\n"), b"x\r\n..\r\n.\r\n");
    }

    #[test]
    fn a_5000_octet_line_is_wrapped_like_postfix() {
        let mut msg = b"Subject: x\r\n\r\n".to_vec();
        let line: Vec<u8> = (0..5000).map(|i| b'a' + (i % 26) as u8).collect();
        msg.extend_from_slice(&line);
        msg.extend_from_slice(b"\r\nend\r\n");
        let out = wire(&msg);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        // 998, then pieces of SP + 997, the rest, "end", ".", and the empty tail.
        let lens: Vec<usize> = lines.iter().map(|l| l.len().saturating_sub(1)).collect();
        assert_eq!(lens[2..], [998, 998, 998, 998, 998, 15, 3, 1, 0]);
        assert!(lines[3..7].iter().all(|l| l.starts_with(b" ")));
        // Removing each inserted CRLF SP gives the line back.
        let joined: Vec<u8> = lines[2..8]
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                let l = &l[..l.len() - 1];
                if i == 0 {
                    l.to_vec()
                } else {
                    l[1..].to_vec()
                }
            })
            .collect();
        assert_eq!(joined, line);
        // 998 exactly is left alone; 999 gets one break; headers are folded the same way.
        let ok = [b'x'; 998];
        assert_eq!(wire(&ok)[..1000], [&ok[..], b"\r\n"].concat());
        let mut w = vec![b'x'; 998];
        w.extend_from_slice(b"\r\n x\r\n.\r\n");
        assert_eq!(wire(&[b'x'; 999]), w);
    }

    #[test]
    fn bdat_form_is_neither_stuffed_nor_terminated() {
        let mut s = BodyEncoder::bdat();
        let mut out = Vec::new();
        s.encode(b".a\n.\r\nb", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b".a\r\n.\r\nb\r\n");
        let mut out = Vec::new();
        let mut s = BodyEncoder::bdat();
        s.encode(&[b'y'; 1000], &mut out);
        s.finish(&mut out);
        assert_eq!(out.len(), 998 + 3 + 2 + 2);
    }

    /// Undoes the wire form, as a receiving server does (RFC 5321 §4.5.2).
    fn unstuff(wire: &[u8]) -> Option<Vec<u8>> {
        let body = wire.strip_suffix(b".\r\n")?;
        let mut out = Vec::new();
        for line in body.split_inclusive(|&b| b == b'\n') {
            assert!(line.ends_with(b"\r\n"), "every line ends in CRLF: {line:?}");
            assert_ne!(line, b".\r\n", "terminator inside the body");
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        Some(out)
    }

    fn normalized(msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < msg.len() {
            match msg[i] {
                b'\r' if msg.get(i + 1) == Some(&b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    i += 1;
                }
                b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
                b => out.push(b),
            }
            i += 1;
        }
        if !out.is_empty() && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn round_trips_in_any_chunking(
            msg in proptest::collection::vec(proptest::sample::select(vec![b'a', b'.', b'\r', b'\n']), 0..200),
            cut in 0usize..200,
        ) {
            let cut = cut.min(msg.len());
            let mut s = BodyEncoder::data();
            let mut out = Vec::new();
            s.encode(&msg[..cut], &mut out);
            s.encode(&msg[cut..], &mut out);
            s.finish(&mut out);
            proptest::prop_assert_eq!(&out, &wire(&msg));
            proptest::prop_assert_eq!(unstuff(&out), Some(normalized(&msg)));
        }
    }
}
