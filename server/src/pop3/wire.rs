//! What POP3 puts on the wire for a message: RFC 1939 §3 multi-line responses.

/// Appends `message` as the body of a multi-line response: each line that starts with `.`
/// gets one more (byte-stuffing), every line ends in CRLF (a missing final line end is
/// added), then the terminating `.` line. `body_lines`: for TOP, the header section, the
/// blank line and at most that many body lines (RFC 1939 §7).
pub fn write_multiline(out: &mut Vec<u8>, message: &[u8], body_lines: Option<usize>) {
    let mut in_body = false;
    let mut left = body_lines;
    let mut rest = message;
    while !rest.is_empty() {
        if in_body && left == Some(0) {
            break;
        }
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        if in_body {
            if let Some(n) = left.as_mut() {
                *n -= 1;
            }
        } else if line.is_empty() {
            in_body = true;
        }
        rest = next;
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multiline(m: &[u8], n: Option<usize>) -> String {
        let mut out = Vec::new();
        write_multiline(&mut out, m, n);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_are_byte_stuffed_and_terminated() {
        let m = b"Subject: x\r\n\r\n.hidden\r\n..two\r\nend";
        assert_eq!(
            multiline(m, None),
            "Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n"
        );
        assert_eq!(multiline(b"", None), ".\r\n");
        assert_eq!(multiline(b"a\nb\n", None), "a\r\nb\r\n.\r\n");
    }

    #[test]
    fn top_gives_headers_and_n_body_lines() {
        let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n";
        assert_eq!(multiline(m, Some(0)), "A: 1\r\nB: 2\r\n\r\n.\r\n");
        assert_eq!(
            multiline(m, Some(2)),
            "A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n"
        );
        assert_eq!(multiline(m, Some(99)), multiline(m, None));
        // No body at all: the headers are all there is.
        assert_eq!(multiline(b"A: 1\r\n", Some(0)), "A: 1\r\n.\r\n");
    }
}
