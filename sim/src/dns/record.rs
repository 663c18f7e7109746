//! One record line of a scenario's zone (`<name> [ttl] [IN] <TYPE> <rdata>`, see
//! [`super::zone`] for the grammar): tokenizing, parsing into a hickory `Record` with a
//! precise message for every mistake, and the fuzz body of that parser. Split from the zone
//! building so that the untrusted-text part stands on its own.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::zone::DEFAULT_TTL;

/// A lexical token of a record line.
#[derive(Debug, PartialEq, Eq)]
struct Token {
    text: String,
    /// Was it written in double quotes (TXT character-string)?
    quoted: bool,
}

/// Splits a record line on whitespace; double-quoted strings are one token, with `\"` and
/// `\\` (and `\` before any character) escaping.
fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted string".to_string()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e) => text.push(e),
                        None => return Err("unterminated quoted string".to_string()),
                    },
                    Some(ch) => text.push(ch),
                }
            }
            tokens.push(Token { text, quoted: true });
        } else {
            let mut text = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '"' {
                    break;
                }
                text.push(ch);
                chars.next();
            }
            tokens.push(Token {
                text,
                quoted: false,
            });
        }
    }
    Ok(tokens)
}

/// Parses one record line of the zone `origin`.
pub(super) fn parse_record(origin: &Name, line: &str) -> Result<Record, String> {
    let tokens = tokenize(line)?;
    let mut it = tokens.iter().peekable();

    let owner = match it.next() {
        None => return Err("empty record".to_string()),
        Some(t) if t.quoted => return Err("the owner name must not be quoted".to_string()),
        Some(t) => parse_name(origin, &t.text).map_err(|m| format!("invalid owner name: {m}"))?,
    };

    let mut ttl = DEFAULT_TTL;
    if let Some(t) = it.peek() {
        if !t.quoted && !t.text.is_empty() && t.text.bytes().all(|b| b.is_ascii_digit()) {
            ttl = t
                .text
                .parse::<u32>()
                .ok()
                .filter(|v| *v <= i32::MAX as u32)
                .ok_or_else(|| format!("TTL {} out of range (0-2147483647)", t.text))?;
            it.next();
        }
    }
    if let Some(t) = it.peek() {
        if !t.quoted && t.text.eq_ignore_ascii_case("IN") {
            it.next();
        }
    }

    let rtype = match it.next() {
        None => return Err("missing record type".to_string()),
        Some(t) if t.quoted => return Err(format!("expected a record type, found {:?}", t.text)),
        Some(t) => t.text.to_ascii_uppercase(),
    };

    // The rdata tokens; every branch below must consume all of them.
    let rdata: Vec<&Token> = it.collect();
    let unquoted = |i: usize, what: &str| -> Result<&str, String> {
        match rdata.get(i) {
            None => Err(format!("missing {what}")),
            Some(t) if t.quoted => Err(format!("{what} must not be quoted")),
            Some(t) => Ok(t.text.as_str()),
        }
    };
    let expect_len = |n: usize| -> Result<(), String> {
        match rdata.get(n) {
            Some(extra) => Err(format!(
                "unexpected {:?} after the {rtype} data",
                extra.text
            )),
            None => Ok(()),
        }
    };

    let data = match rtype.as_str() {
        "A" => {
            let ip: Ipv4Addr = unquoted(0, "IPv4 address")?
                .parse()
                .map_err(|_| "invalid IPv4 address".to_string())?;
            expect_len(1)?;
            RData::A(A(ip))
        }
        "AAAA" => {
            let ip: Ipv6Addr = unquoted(0, "IPv6 address")?
                .parse()
                .map_err(|_| "invalid IPv6 address".to_string())?;
            expect_len(1)?;
            RData::AAAA(AAAA(ip))
        }
        "MX" => {
            let pref = unquoted(0, "MX preference")?;
            let preference: u16 = pref
                .parse()
                .map_err(|_| format!("invalid MX preference {pref:?} (expected 0-65535)"))?;
            let exchange = parse_name(origin, unquoted(1, "MX exchange")?)
                .map_err(|m| format!("invalid MX exchange: {m}"))?;
            expect_len(2)?;
            RData::MX(MX::new(preference, exchange))
        }
        "PTR" => {
            let target = parse_name(origin, unquoted(0, "PTR target")?)
                .map_err(|m| format!("invalid PTR target: {m}"))?;
            expect_len(1)?;
            RData::PTR(PTR(target))
        }
        "CNAME" => {
            let target = parse_name(origin, unquoted(0, "CNAME target")?)
                .map_err(|m| format!("invalid CNAME target: {m}"))?;
            expect_len(1)?;
            RData::CNAME(CNAME(target))
        }
        "TXT" => RData::TXT(parse_txt(&rdata)?),
        other => {
            return Err(format!(
                "unsupported record type {other:?} (expected MX, A, AAAA, TXT, PTR or CNAME)"
            ))
        }
    };
    Ok(Record::from_rdata(owner, ttl, data))
}

/// Fuzz body (`fuzz/fuzz_targets/zone_record.rs`, and a proptest in `cargo test`): one record
/// line of arbitrary bytes, in the zone `example.org.`. It must never panic, and a line the
/// parser accepts must be servable: the record encodes to DNS wire format and decodes back to
/// the same record, owned by a fully qualified name.
pub fn fuzz_zone_record(data: &[u8]) {
    use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
    let line = String::from_utf8_lossy(data);
    let origin = match parse_absolute("example.org.") {
        Ok(o) => o,
        Err(e) => panic!("origin: {e}"),
    };
    let Ok(record) = parse_record(&origin, &line) else {
        return;
    };
    assert!(
        record.name.is_fqdn(),
        "owner {} not fully qualified",
        record.name
    );
    let wire = match record.to_bytes() {
        Ok(w) => w,
        Err(e) => panic!("accepted {line:?} but cannot encode {record}: {e}"),
    };
    match Record::from_bytes(&wire) {
        Ok(back) => assert_eq!(back, record, "wire round trip of {line:?}"),
        Err(e) => panic!("accepted {line:?} but cannot decode {record}: {e}"),
    }
}

/// TXT rdata: one or more quoted strings, or exactly one bare word.
///
/// Each string longer than 255 octets is split into 255-octet character-strings (as zone
/// tools do for DKIM keys); readers concatenate them back, so the split is invisible.
fn parse_txt(rdata: &[&Token]) -> Result<TXT, String> {
    if rdata.is_empty() {
        return Err("missing TXT data".to_string());
    }
    let all_quoted = rdata.iter().all(|t| t.quoted);
    if !all_quoted && rdata.len() > 1 {
        return Err(
            "TXT data must be one bare word or one or more double-quoted strings".to_string(),
        );
    }
    let mut strings: Vec<&[u8]> = Vec::new();
    for t in rdata {
        let bytes = t.text.as_bytes();
        if bytes.is_empty() {
            strings.push(bytes);
        } else {
            strings.extend(bytes.chunks(255));
        }
    }
    Ok(TXT::from_bytes(strings))
}

/// A name in a record line: `@` is the apex, a trailing dot makes it absolute, otherwise it
/// is relative to `origin`. The result is lower-case and fully qualified.
pub(super) fn parse_name(origin: &Name, s: &str) -> Result<Name, String> {
    if s == "@" {
        return Ok(origin.clone());
    }
    if s.ends_with('.') {
        return parse_absolute(s);
    }
    let apex = super::name_to_string(origin);
    let full = if apex.is_empty() {
        s.to_string()
    } else {
        format!("{s}.{apex}")
    };
    parse_absolute(&full)
}

/// Parses an absolute name (trailing dot optional; `""` and `"."` are the root), checking
/// the rules hickory would otherwise report vaguely or not at all.
pub(crate) fn parse_absolute(s: &str) -> Result<Name, String> {
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    if trimmed.is_empty() {
        return Ok(Name::root());
    }
    if trimmed.len() > 253 {
        return Err(format!("name {s:?} is longer than 253 characters"));
    }
    for (i, label) in trimmed.split('.').enumerate() {
        if label.is_empty() {
            return Err(format!("empty label in {s:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if label == "*" {
            if i != 0 {
                return Err(format!("wildcard \"*\" must be the first label in {s:?}"));
            }
            continue;
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("invalid character {bad:?} in {s:?}"));
        }
    }
    let lower = format!("{}.", trimmed.to_ascii_lowercase());
    Name::from_ascii(&lower).map_err(|e| format!("invalid name {s:?}: {e}"))
}

/// The record types a scenario may name.
pub(super) fn parse_type(s: &str) -> Option<RecordType> {
    Some(match s.to_ascii_uppercase().as_str() {
        "MX" => RecordType::MX,
        "A" => RecordType::A,
        "AAAA" => RecordType::AAAA,
        "TXT" => RecordType::TXT,
        "PTR" => RecordType::PTR,
        "CNAME" => RecordType::CNAME,
        _ => return None,
    })
}
