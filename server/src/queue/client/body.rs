//! The DATA body on the wire: line endings made CRLF, dot-stuffed, and terminated.
//!
//! RFC 5321 §4.5.2: a line that starts with `.` gets one more `.`, so the receiver's
//! `<CRLF>.<CRLF>` can only be our terminator. RFC 5321 §2.3.8 forbids bare CR and bare LF;
//! our own SMTP server stores every line with CRLF already, but a message can also come from
//! elsewhere (a DSN we built, a forwarded one), so a bare LF or a bare CR becomes CRLF here —
//! exactly what the inbound session does, so a message relayed twice is unchanged. A body
//! that does not end in CRLF gets one before the final `.`.
//!
//! Incremental, so a large message is sent in bounded chunks without a second full copy.

/// Streaming encoder; feed it the message in any chunks, then call [`DotStuffer::finish`].
#[derive(Debug)]
pub(crate) struct DotStuffer {
    /// The next octet starts a line.
    at_line_start: bool,
    /// The previous chunk ended with a CR whose LF may come next.
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
        }
    }
}

impl DotStuffer {
    /// Appends the wire form of `chunk` to `out`.
    pub(crate) fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 64 + 4);
        for &b in chunk {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.at_line_start = true;
                if b == b'\n' {
                    continue; // that CR and this LF were one CRLF
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                }
                _ => {
                    if self.at_line_start && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.at_line_start = false;
                }
            }
        }
    }

    /// Ends the body: the last line gets its CRLF if it lacks one, then `.` CRLF.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        self.pending_cr = false;
        self.at_line_start = true;
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(msg: &[u8]) -> Vec<u8> {
        let mut s = DotStuffer::default();
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
            let mut s = DotStuffer::default();
            let mut out = Vec::new();
            s.encode(&msg[..cut], &mut out);
            s.encode(&msg[cut..], &mut out);
            s.finish(&mut out);
            proptest::prop_assert_eq!(&out, &wire(&msg));
            proptest::prop_assert_eq!(unstuff(&out), Some(normalized(&msg)));
        }
    }
}
