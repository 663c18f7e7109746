//! What form the message goes out in, decided from its content and the peer's EHLO:
//!
//! | content ([`content_class`]) | peer offers | sent |
//! |---|---|---|
//! | 7-bit | anything | as is, no `BODY=` |
//! | binary | CHUNKING + BINARYMIME | as is, BDAT, `BODY=BINARYMIME` (RFC 3030 §3) |
//! | 8-bit | 8BITMIME | as is, `BODY=8BITMIME` (RFC 6152) |
//! | 8-bit | no 8BITMIME | 8-bit parts re-encoded ([`crate::mime::downgrade`], RFC 6152 §3) |
//! | binary | 8BITMIME, no BINARYMIME | parts with NUL / bare CR / bare LF re-encoded |
//! | binary | neither | every part that is not 7-bit re-encoded |
//!
//! What cannot be re-encoded (8-bit header fields, a `message/*` leaf) goes as is with a
//! note, as Postfix does without a converter; lines over 998 octets are wrapped by
//! [`super::body`]. Messages with 8-bit header fields need SMTPUTF8 and never get here when
//! the peer lacks it (the transaction refuses them with 5.6.7 first).

use std::borrow::Cow;

use crate::mime::{content_class, downgrade, ContentClass, MAX_LINE};

use super::Capabilities;

/// The `BODY=` parameter of MAIL FROM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Body {
    /// None sent (7bit is the default).
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// The message as it will be sent (before the wire encoding of [`super::body`]).
#[derive(Debug)]
pub(super) struct Prepared<'a> {
    pub message: Cow<'a, [u8]>,
    pub body: Body,
    /// BDAT instead of DATA (the peer offers CHUNKING).
    pub bdat: bool,
    /// Decisions for the transcript.
    pub notes: Vec<String>,
}

pub(super) fn prepare<'a>(message: &'a [u8], caps: &Capabilities) -> Prepared<'a> {
    let mut p = Prepared {
        message: Cow::Borrowed(message),
        body: Body::SevenBit,
        bdat: caps.chunking,
        notes: Vec::new(),
    };
    match content_class(message) {
        ContentClass::SevenBit => return p,
        ContentClass::Binary if caps.chunking && caps.binarymime => {
            p.body = Body::BinaryMime;
            return p;
        }
        ContentClass::EightBit if caps.eight_bit_mime => {
            p.body = Body::EightBitMime;
            return p;
        }
        _ => {}
    }
    if let Some(d) = downgrade(message, caps.eight_bit_mime) {
        let wanted = if caps.eight_bit_mime {
            "8BITMIME without BINARYMIME"
        } else {
            "no 8BITMIME"
        };
        p.notes.push(format!(
            "peer offers {wanted}: converted {} part(s) to quoted-printable, {} to base64",
            d.quoted_printable, d.base64
        ));
        p.notes.extend(d.notes);
        p.message = Cow::Owned(d.message);
    }
    let eight_bit = p.message.iter().any(|&b| b >= 0x80);
    if eight_bit && caps.eight_bit_mime {
        p.body = Body::EightBitMime;
    } else if eight_bit {
        p.notes
            .push("8-bit message, peer does not offer 8BITMIME: what could not be converted is sent as is".into());
    }
    if longest_line(&p.message) > MAX_LINE {
        p.notes.push(format!(
            "lines over {MAX_LINE} octets wrapped with CRLF SP (as Postfix's smtp_line_length_limit)"
        ));
    }
    p
}

/// The longest line of `m` in octets, any of CR, LF or CRLF ending a line.
fn longest_line(m: &[u8]) -> usize {
    m.split(|&b| b == b'\n' || b == b'\r')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(exts: &[&str]) -> Capabilities {
        let mut lines = vec!["mx.test".to_string()];
        lines.extend(exts.iter().map(|e| e.to_string()));
        Capabilities::from_ehlo(&crate::smtp::Reply {
            code: 250,
            enhanced: None,
            lines,
        })
    }

    const EIGHT: &[u8] = "Subject: x\r\n\r\nGrüße aus Köln\r\n".as_bytes();
    const BINARY: &[u8] = b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\r\n\0\x01\xff\r\n";

    #[test]
    fn seven_bit_goes_as_is_with_data_or_bdat() {
        let p = prepare(b"Subject: x\r\n\r\nhi\r\n", &caps(&[]));
        assert!(matches!(p.message, Cow::Borrowed(_)));
        assert_eq!((p.body, p.bdat), (Body::SevenBit, false));
        let p = prepare(b"Subject: x\r\n\r\nhi\r\n", &caps(&["CHUNKING"]));
        assert_eq!((p.body, p.bdat), (Body::SevenBit, true));
    }

    #[test]
    fn eight_bit_is_kept_for_8bitmime_and_downgraded_otherwise() {
        let p = prepare(EIGHT, &caps(&["8BITMIME"]));
        assert_eq!(p.body, Body::EightBitMime);
        assert_eq!(&*p.message, EIGHT);
        let p = prepare(EIGHT, &caps(&["PIPELINING"]));
        assert_eq!(p.body, Body::SevenBit);
        assert_eq!(content_class(&p.message), ContentClass::SevenBit);
        assert!(p.message.ends_with(b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n"));
        assert_eq!(
            p.notes,
            ["peer offers no 8BITMIME: converted 1 part(s) to quoted-printable, 0 to base64"]
        );
    }

    #[test]
    fn binary_needs_chunking_and_binarymime() {
        let p = prepare(BINARY, &caps(&["CHUNKING", "BINARYMIME", "8BITMIME"]));
        assert_eq!((p.body, p.bdat), (Body::BinaryMime, true));
        assert_eq!(&*p.message, BINARY);
        for exts in [
            &["BINARYMIME", "8BITMIME"][..],
            &["CHUNKING", "8BITMIME"],
            &[],
        ] {
            let p = prepare(BINARY, &caps(exts));
            assert_eq!(p.body, Body::SevenBit, "{exts:?}");
            assert!(
                p.message.ends_with(b"base64\r\n\r\nAAH/DQo=\r\n"),
                "{exts:?}: {:?}",
                String::from_utf8_lossy(&p.message)
            );
        }
    }

    #[test]
    fn long_lines_are_noted() {
        let mut m = b"Subject: x\r\n\r\n".to_vec();
        m.extend_from_slice(&[b'a'; 5000]);
        let p = prepare(&m, &caps(&["8BITMIME"]));
        assert_eq!(p.body, Body::SevenBit);
        assert_eq!(&*p.message, &m[..]);
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].starts_with("lines over 998 octets wrapped"));
    }
}
