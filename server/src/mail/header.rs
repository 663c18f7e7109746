//! Reading the header section of a stored message (RFC 5322 §2.1: header fields, an empty
//! line, the body). Every message we store or queue has CRLF line endings, so these work on
//! CRLF only.

/// The header section of a CRLF message: every header line with its CRLF, without the empty
/// line that ends it. A message that starts with the empty line has no header fields; a
/// message with no empty line is all header.
pub fn header_section(message: &[u8]) -> &[u8] {
    if message.starts_with(b"\r\n") {
        return &[];
    }
    match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(at) => &message[..at + 2],
        None => message,
    }
}

/// How many `Received:` fields the header section has (loop detection, RFC 5321 §6.3).
pub fn count_received(message: &[u8]) -> usize {
    header_section(message)
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_section_edges() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_section(b"\r\nbody"), b"");
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_section(b""), b"");
    }

    #[test]
    fn received_fields_in_the_body_do_not_count() {
        let m = b"Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: c\r\n";
        assert_eq!(count_received(m), 2);
        assert_eq!(count_received(b"\r\nReceived: x\r\n"), 0);
    }
}
