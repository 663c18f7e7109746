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

/// Whether the header section has `TLS-Required: No` (RFC 8689 §5): the sender asks that
/// the TLS policy of the hops (a mandatory-TLS setting, MTA-STS, DANE) be set aside for this
/// message. The field name is case-insensitive, the value is compared after unfolding and
/// trimming, case-insensitively (§5: "No" is the only value defined; anything else is
/// ignored). Reads only `head`, the part of a message held in memory (our `Received:` and
/// the header block), so a spooled body is never touched.
pub fn tls_required_no(head: &[u8]) -> bool {
    const NAME: &[u8] = b"tls-required:";
    let section = header_section(head);
    let mut lines = section.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line.len() < NAME.len() || !line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            continue;
        }
        let mut value = line[NAME.len()..].to_vec();
        // Continuation lines (RFC 5322 §2.2.3) belong to the value.
        while let Some(next) =
            lines.next_if(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
        {
            value.extend_from_slice(next);
        }
        if value.trim_ascii().eq_ignore_ascii_case(b"no") {
            return true;
        }
    }
    false
}

/// `head` without the `Authentication-Results` fields whose authserv-id is `authserv_id`
/// (RFC 8601 §5: a receiver removes results that claim to be its own before adding its
/// own, so a sender cannot forge our verdict). The id is compared case-insensitively, after
/// unfolding, leading comments and quotes removed (§2.2: `authserv-id` is a `value`, a token
/// or a quoted string); fields of other hosts and the body are kept byte for byte.
pub fn strip_results_of<'a>(head: &'a [u8], authserv_id: &str) -> std::borrow::Cow<'a, [u8]> {
    const NAME: &[u8] = b"authentication-results:";
    let section_len = header_section(head).len();
    let mut kept: Option<Vec<u8>> = None;
    let mut at = 0;
    while at < section_len {
        // One field: its first line and every continuation line.
        let mut end = at;
        loop {
            end = match memchr::memchr(b'\n', &head[end..section_len]) {
                Some(i) => end + i + 1,
                None => section_len,
            };
            if end >= section_len || !matches!(head[end], b' ' | b'\t') {
                break;
            }
        }
        let field = &head[at..end];
        let ours = field.len() > NAME.len()
            && field[..NAME.len()].eq_ignore_ascii_case(NAME)
            && authserv_id_of(&field[NAME.len()..]).eq_ignore_ascii_case(authserv_id.as_bytes());
        match (&mut kept, ours) {
            (None, true) => kept = Some(head[..at].to_vec()),
            (Some(k), false) => k.extend_from_slice(field),
            _ => {}
        }
        at = end;
    }
    match kept {
        None => std::borrow::Cow::Borrowed(head),
        Some(mut k) => {
            k.extend_from_slice(&head[section_len..]);
            std::borrow::Cow::Owned(k)
        }
    }
}

/// The authserv-id at the start of an `Authentication-Results` value: comments and
/// folding whitespace skipped, a quoted string unquoted, up to `;` or whitespace.
fn authserv_id_of(value: &[u8]) -> Vec<u8> {
    let mut i = 0;
    let mut depth = 0usize;
    while i < value.len() {
        match value[i] {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => break,
        }
        i += 1;
    }
    let rest = &value[i..];
    if let Some(quoted) = rest.strip_prefix(b"\"") {
        let end = memchr::memchr(b'"', quoted).unwrap_or(quoted.len());
        return quoted[..end].to_vec();
    }
    let end = rest
        .iter()
        .position(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'('))
        .unwrap_or(rest.len());
    rest[..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_authentication_results_are_stripped() {
        let head = b"Received: from x\r\n\
Authentication-Results: mx.example.org; spf=pass\r\n\
Authentication-Results: other.example;\r\n dkim=pass\r\n\
authentication-results:  (forged)  \"MX.Example.ORG\" 1;\r\n\tdmarc=pass\r\n\
Authentication-Results: mx.example.org.evil; spf=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.example.org; body\r\n";
        let out = strip_results_of(head, "mx.example.org");
        assert_eq!(
            &out[..],
            &b"Received: from x\r\n\
Authentication-Results: other.example;\r\n dkim=pass\r\n\
Authentication-Results: mx.example.org.evil; spf=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.example.org; body\r\n"[..]
        );
        let clean = b"Subject: x\r\n\r\nbody";
        assert!(matches!(
            strip_results_of(clean, "mx.example.org"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn tls_required_no_is_found_in_the_header_section_only() {
        assert!(tls_required_no(
            b"Subject: x\r\nTLS-Required: No\r\n\r\nbody\r\n"
        ));
        assert!(tls_required_no(b"tls-required:no\r\n\r\n"));
        assert!(tls_required_no(b"TLS-REQUIRED:  NO \r\n"));
        // Folded.
        assert!(tls_required_no(b"TLS-Required:\r\n No\r\nX: y\r\n\r\n"));
        for no in [
            &b"Subject: x\r\n\r\nTLS-Required: No\r\n"[..],
            b"TLS-Required: Yes\r\n\r\n",
            b"TLS-Required: No thanks\r\n\r\n",
            b"TLS-Required: \r\n\r\n",
            b"X-TLS-Required: No\r\n\r\n",
            b"TLS-Required-Not: No\r\n\r\n",
            b"\r\nTLS-Required: No\r\n",
            b"",
        ] {
            assert!(!tls_required_no(no), "{}", String::from_utf8_lossy(no));
        }
    }

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
