//! Text that is safe to put in a trace or a log line.

/// Lossy UTF-8 with control characters escaped (`\x0d`), so that no peer can forge trace
/// lines or terminal escapes through what it sends.
pub fn printable(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    // Printable ASCII, the normal case, needs no look at characters.
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) || !s.chars().any(char::is_control) {
        return s.into_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable(b"MAIL FROM:<a@b>"), "MAIL FROM:<a@b>");
        assert_eq!(printable(b"a\r\nS: 250 forged"), "a\\x0d\\x0aS: 250 forged");
        assert_eq!(printable(b"\x1b[31m"), "\\x1b[31m");
        assert_eq!(printable(&[0xff, b'x']), "\u{fffd}x");
    }
}
