//! Text for the fields of a delivery-status report (RFC 3464 §2): 7-bit clean values,
//! address types (`rfc822;`, `utf-8;` RFC 6533), host names and mailboxes.

use std::fmt::Write as _;

use crate::mail::Address;

/// 7-bit text for a field: controls and white space runs become one space, non-ASCII
/// characters become RFC 6533 `\x{HEX}`.
pub(super) fn ascii_clean(s: &str) -> String {
    let mut escaped = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() {
            escaped.push(' ');
        } else if c.is_ascii() {
            escaped.push(c);
        } else {
            let _ = write!(escaped, "\\x{{{:02X}}}", u32::from(c));
        }
    }
    collapse(escaped.chars())
}

/// Joins the words of `chars` with single spaces, trimming both ends.
pub(super) fn collapse(chars: impl Iterator<Item = char>) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in chars {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// `rfc822;bob@example.net`, or RFC 6533 `utf-8;` with `\x{HEX}` escapes when the address is
/// not ASCII.
pub(super) fn typed_address(address: &str) -> String {
    if address.is_ascii() {
        // Address::parse lets no control character or white space through.
        return format!("rfc822;{address}");
    }
    let mut out = String::from("utf-8;");
    for c in address.chars() {
        // RFC 6533 QCHAR: printable ASCII but "+", "=" and "\".
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:02X}}}", u32::from(c));
        }
    }
    out
}

/// The ORCPT as given (`type;address`), or a bare address as `rfc822`/`utf-8`.
pub(super) fn original_recipient(original: &str) -> String {
    let original = original.trim();
    match split_address_type(original) {
        Some((kind, address)) => format!("{kind};{}", ascii_clean(address)),
        None => typed_address(original),
    }
}

/// The address part of an ORCPT value, for the human text.
pub(super) fn original_address(original: &str) -> &str {
    let original = original.trim();
    split_address_type(original).map_or(original, |(_, address)| address.trim())
}

/// `rfc822;bob@x` -> `("rfc822", "bob@x")`; `None` when there is no address-type prefix.
pub(super) fn split_address_type(value: &str) -> Option<(&str, &str)> {
    let (kind, address) = value.split_once(';')?;
    let kind = kind.trim();
    let is_atom = !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    is_atom.then_some((kind, address))
}

/// The envelope id as the field carries it: xtext-decoded (RFC 3461 §4.4 says it is printable
/// US-ASCII, and the SMTP session should refuse anything else), with any other octet written
/// as xtext `+HH` as a last resort so the field stays one 7-bit line.
pub(super) fn envelope_id(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (b' '..=b'~').contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

/// A host name as it may appear in a field or an address: no white space, controls or
/// address punctuation (so a bad name cannot inject a header or break the `From:`).
pub(super) fn host_text(host: &str) -> String {
    let host: String = host
        .trim()
        .trim_end_matches('.')
        .chars()
        .filter(|c| {
            !c.is_control()
                && !c.is_whitespace()
                && !matches!(
                    c,
                    '<' | '>' | '(' | ')' | ',' | ';' | ':' | '@' | '"' | '\\'
                )
        })
        .collect();
    if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    }
}

/// `local@domain`, with the local part quoted when it is not a dot-atom (RFC 5322 §3.4.1).
pub(super) fn mailbox(address: &Address) -> String {
    let local = &address.local;
    let atext =
        |c: char| c.is_ascii_alphanumeric() || !c.is_ascii() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom = !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c == '.' || atext(c));
    if dot_atom {
        format!("{local}@{}", address.domain)
    } else {
        let mut quoted = String::with_capacity(local.len() + 2);
        quoted.push('"');
        for c in local.chars() {
            if c == '"' || c == '\\' {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        format!("{quoted}@{}", address.domain)
    }
}
