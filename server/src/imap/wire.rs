//! Serialising IMAP responses (RFC 3501 §7, §9): strings as quoted or literal, NIL, flag
//! lists, tagged status lines. Commands are parsed by imap-codec; the responses are written
//! here because most of them carry values we already hold as bytes (a message section, a
//! header) and a writer that picks quoted-or-literal per value is shorter and cheaper than
//! building imap-types' validated values for each.

use crate::store::index::Flags;

/// Appends `value` as an IMAP `string`: quoted when it is short 7-bit text without CR, LF
/// or NUL (`"` and `\` escaped, RFC 3501 §4.3), else a literal.
pub fn string(out: &mut Vec<u8>, value: &[u8]) {
    let quotable = value.len() <= 256 && value.iter().all(|&b| (0x20..0x7f).contains(&b));
    if quotable {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, value);
    }
}

/// Appends `value` as a literal, `{n}` CRLF and the octets.
pub fn literal(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
}

/// `nstring`: NIL for none.
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => string(out, v),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A mailbox name as an `astring` (quoted unless it is an atom).
pub fn mailbox(out: &mut Vec<u8>, name: &str) {
    let atom = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
    if atom {
        out.extend_from_slice(name.as_bytes());
    } else {
        string(out, name.as_bytes());
    }
}

/// `(flag flag …)`.
pub fn flags(out: &mut Vec<u8>, flags: &Flags) {
    out.push(b'(');
    out.extend_from_slice(flags.to_string().as_bytes());
    out.push(b')');
}

/// Text after a status response, with anything that would break the line removed.
pub fn text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The printable form of a response for the trace: the first line, literals summarised.
pub fn shown(bytes: &[u8]) -> String {
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let first = String::from_utf8_lossy(&bytes[..end]);
    let first = first.trim_end_matches('\r');
    if end + 1 < bytes.len() {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

/// A set of UIDs in compact `a:b,c` form (RFC 4315 `uid-set`), in the order given.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_or_literal_as_their_bytes_need() {
        let mut out = Vec::new();
        string(&mut out, b"a \"b\" \\c");
        assert_eq!(out, b"\"a \\\"b\\\" \\\\c\"");
        out.clear();
        string(&mut out, b"two\r\nlines");
        assert_eq!(out, b"{10}\r\ntwo\r\nlines");
        out.clear();
        string(&mut out, "Entwürfe".as_bytes());
        assert!(out.starts_with(b"{9}\r\n"));
        out.clear();
        mailbox(&mut out, "Sent");
        mailbox(&mut out, "My Folder");
        assert_eq!(out, b"Sent\"My Folder\"");
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(text("a\r\nb"), "a  b");
    }
}
