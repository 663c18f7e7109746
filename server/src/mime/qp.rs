//! Quoted-printable (RFC 2045 §6.7), the encoder the 8BITMIME downgrade uses for text.
//!
//! Every CRLF of the input is a hard line break and stays a CRLF; any other octet outside
//! `!`..`~` (and `=` itself) becomes `=XX` with upper-case hex (rule 1), SP and TAB stay
//! literal except before a line break or at the very end, where they are encoded (rule 3),
//! and a line longer than 76 characters gets soft breaks `=` CRLF (rule 5) that never split
//! an `=XX` triplet. Bare CR and bare LF are data, not line breaks: they become `=0D` and
//! `=0A`, so decoding gives back the exact octets.

/// The longest encoded line, soft-break `=` included (RFC 2045 §6.7 rule 5).
pub const LINE: usize = 76;

/// Appends the quoted-printable form of `data` to `out`.
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + data.len() / 8 + 8);
    let mut col = 0usize;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b == b'\r' && data.get(i + 1) == Some(&b'\n') {
            out.extend_from_slice(b"\r\n");
            col = 0;
            i += 2;
            continue;
        }
        let at_end = i + 1 == data.len() || data[i + 1..].starts_with(b"\r\n");
        let literal = match b {
            b' ' | b'\t' => !at_end,
            b'=' => false,
            33..=126 => true,
            _ => false,
        };
        let width = if literal { 1 } else { 3 };
        // The last token of a line may use the whole 76; any other must leave room for `=`.
        let room = if at_end { LINE } else { LINE - 1 };
        if col + width > room {
            out.extend_from_slice(b"=\r\n");
            col = 0;
        }
        if literal {
            out.push(b);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        col += width;
        i += 1;
    }
}

/// Decodes quoted-printable as RFC 2045 §6.7 reads it (soft breaks removed, `=XX` decoded,
/// anything else literal). Used to check the encoder; lenient, never fails.
pub fn decode(data: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'=' {
            if data[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if let (Some(h), Some(l)) = (
                data.get(i + 1).copied().and_then(hex),
                data.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(data, &mut out);
        out
    }

    #[test]
    fn known_forms() {
        assert_eq!(qp("Grüße\r\n".as_bytes()), b"Gr=C3=BC=C3=9Fe\r\n");
        assert_eq!(qp(b"a = b"), b"a =3D b");
        assert_eq!(qp(b"trailing \r\nsp\t"), b"trailing=20\r\nsp=09");
        assert_eq!(qp(b"bare\nlf\rcr\0"), b"bare=0Alf=0Dcr=00");
        assert_eq!(qp(b""), b"");
        // 76 literal octets fit one line; the 77th needs a soft break after 75.
        assert_eq!(qp(&[b'x'; 76]), [b'x'; 76]);
        let mut want = vec![b'x'; 75];
        want.extend_from_slice(b"=\r\nxx");
        assert_eq!(qp(&[b'x'; 77]), want);
        // A triplet is never split.
        let mut data = vec![b'x'; 74];
        data.push(0xff);
        data.push(b'y');
        let mut want = vec![b'x'; 74];
        want.extend_from_slice(b"=\r\n=FFy");
        assert_eq!(qp(&data), want);
    }

    proptest::proptest! {
        #[test]
        fn round_trips_and_is_7bit_with_short_lines(
            data in proptest::collection::vec(proptest::sample::select(
                vec![b'a', b' ', b'\t', b'=', b'.', b'\r', b'\n', 0u8, 0x80, 0xc3, 0xff]), 0..400),
        ) {
            let enc = qp(&data);
            proptest::prop_assert_eq!(decode(&enc), data);
            proptest::prop_assert!(enc.iter().all(|&b| (1..0x80).contains(&b)));
            for line in enc.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                proptest::prop_assert!(line.len() <= LINE, "line of {}", line.len());
                proptest::prop_assert!(!line.contains(&b'\r'), "bare CR");
                proptest::prop_assert!(!line.ends_with(b" ") && !line.ends_with(b"\t"));
            }
        }
    }
}
