//! MIME transfer encodings for the outbound path: what a message's content is (7-bit, 8-bit
//! or binary, RFC 2045 §2.7–2.9, RFC 3030 §3), quoted-printable (RFC 2045 §6.7), and the
//! 8BITMIME downgrade (RFC 6152 §3) that re-encodes the parts a peer cannot take.
//!
//! The detection is [`content_class`], one function over the bytes, so that a `BODY=` value
//! kept in the envelope can replace it later without touching its callers.

mod downgrade;
pub mod qp;

pub use downgrade::{downgrade, Downgraded};

/// RFC 5322 §2.1.1 / RFC 5321 §4.5.3.1.6: at most 998 octets per line, CRLF excluded.
pub const MAX_LINE: usize = 998;

/// What a message (or a part) holds, from the strictest to the loosest transport it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContentClass {
    /// US-ASCII without NUL, CRLF lines of at most 998 octets: 7bit data (RFC 2045 §2.7).
    SevenBit,
    /// Octets over 127 as well, still CRLF lines ≤ 998 without NUL: 8bit data (RFC 2045
    /// §2.8), what `BODY=8BITMIME` carries.
    EightBit,
    /// A NUL, a bare CR or LF, or a line over 998 octets: binary data (RFC 2045 §2.9), only
    /// `BODY=BINARYMIME` with BDAT carries it as is (RFC 3030 §3).
    Binary,
}

/// The class of `content` (see [`ContentClass`]). A final line without CRLF is fine.
pub fn content_class(content: &[u8]) -> ContentClass {
    let mut class = ContentClass::SevenBit;
    let mut line = 0usize;
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            0 | b'\n' => return ContentClass::Binary,
            b'\r' => {
                if content.get(i + 1) != Some(&b'\n') {
                    return ContentClass::Binary;
                }
                line = 0;
                i += 2;
                continue;
            }
            b => {
                if b >= 0x80 {
                    class = ContentClass::EightBit;
                }
                line += 1;
                if line > MAX_LINE {
                    return ContentClass::Binary;
                }
            }
        }
        i += 1;
    }
    class
}

/// Octets only binary data may hold (NUL, bare CR, bare LF); long lines do not count here:
/// the outbound client wraps those (see `queue::client::body`).
pub(crate) fn has_binary_octets(content: &[u8]) -> bool {
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            0 | b'\n' => return true,
            b'\r' if content.get(i + 1) != Some(&b'\n') => return true,
            b'\r' => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(content_class(b""), ContentClass::SevenBit);
        assert_eq!(content_class(b"a\r\nb"), ContentClass::SevenBit);
        assert_eq!(
            content_class("Grüße\r\n".as_bytes()),
            ContentClass::EightBit
        );
        assert_eq!(content_class(b"a\0b\r\n"), ContentClass::Binary);
        assert_eq!(content_class(b"a\nb"), ContentClass::Binary);
        assert_eq!(content_class(b"a\rb"), ContentClass::Binary);
        assert_eq!(content_class(b"a\r"), ContentClass::Binary);
        let ok = [b'x'; MAX_LINE];
        assert_eq!(content_class(&ok), ContentClass::SevenBit);
        let long = [b'x'; MAX_LINE + 1];
        assert_eq!(content_class(&long), ContentClass::Binary);
        let mut two = ok.to_vec();
        two.extend_from_slice(b"\r\n");
        two.extend_from_slice(&ok);
        assert_eq!(content_class(&two), ContentClass::SevenBit);
    }

    #[test]
    fn binary_octets() {
        assert!(!has_binary_octets(b"a\r\n\xff\r\n"));
        assert!(has_binary_octets(b"a\nb"));
        assert!(has_binary_octets(b"a\r"));
        assert!(has_binary_octets(b"\0"));
        assert!(!has_binary_octets(&[b'x'; 5000]));
    }
}
