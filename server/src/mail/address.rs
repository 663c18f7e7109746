//! Mail addresses: parsed once, compared case-insensitively in the domain, and safe to use
//! as a mailbox name (no path traversal can come through an address).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `local@domain`, with the domain lower-cased. The local part keeps its case for display but
/// is matched case-insensitively, as every mainstream MTA does for its own users.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("no @")]
    NoAt,
    #[error("empty local part")]
    EmptyLocal,
    #[error("empty domain")]
    EmptyDomain,
    #[error("local part longer than 64 octets")]
    LocalTooLong,
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    #[error("forbidden character {0:?}")]
    BadChar(char),
    #[error("unterminated quoted string")]
    Unterminated,
    #[error("bad address literal")]
    BadLiteral,
}

impl Address {
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::NoAt)?;
        if local.is_empty() {
            return Err(AddressError::EmptyLocal);
        }
        let domain = domain.trim_end_matches('.');
        if domain.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        if local.len() > 64 {
            return Err(AddressError::LocalTooLong);
        }
        if domain.len() > 255 {
            return Err(AddressError::DomainTooLong);
        }
        // Control characters, whitespace and path separators never belong in an address we
        // store: they are how header injection and path traversal start.
        for c in local.chars().chain(domain.chars()) {
            if c.is_control() || c.is_whitespace() || c == '/' || c == '\\' {
                return Err(AddressError::BadChar(c));
            }
        }
        if domain.contains("..") || domain.starts_with('.') {
            return Err(AddressError::BadChar('.'));
        }
        Ok(Address {
            local: local.to_string(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// The lookup key: the whole address lower-cased.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }
}

impl Address {
    /// An RFC 5321 §4.1.2 `Mailbox` as it appears inside a path, in the strict syntax of the
    /// wire (RFC 6531 §3.3 adds UTF-8 to atext, qtext and domain labels):
    ///
    /// - the local part is a Dot-string or a Quoted-string; a Quoted-string is dequoted
    ///   (`"john doe"` → `john doe`, `"a\"b"` → `a"b`) and may hold a space, since
    ///   qtextSMTP includes SP. Control characters never pass, quoted or not. `/` and `\`
    ///   are refused in the result as [`Address::parse`] does (a local part must stay a safe
    ///   mailbox name).
    /// - the domain is a host name (labels of letters, digits, `-`, `_` and UTF-8, no empty
    ///   label, at most 255 octets) or an address literal `[192.0.2.7]` /
    ///   `[IPv6:2001:db8::7]`, kept in canonical form (`[IPv6:` + the address as
    ///   `Ipv6Addr` prints it + `]`) so two spellings of one literal compare equal. The
    ///   general-address-literal of §4.1.3 (`[tag:content]`) is refused: IANA's Address
    ///   Literal Tags registry holds only `IPv6`, so no other tag names anything we could
    ///   deliver to.
    ///
    /// The lookup key of a quoted local part is its dequoted text: §4.1.2 makes `"alice"`
    /// and `alice` the same mailbox, so `"alice"@example.org` reaches alice, while a local
    /// part that needs its quotes (`"john doe"`, `"a@b"`) can never equal an account name
    /// (accounts are Dot-strings, [`Address::parse`]) and reaches no account, only a
    /// catch-all.
    pub fn parse_smtp(s: &str) -> Result<Address, AddressError> {
        let (local, domain) = match s.strip_prefix('"') {
            Some(quoted) => {
                let (local, after) = dequote(quoted)?;
                let domain = after.strip_prefix('@').ok_or(AddressError::NoAt)?;
                (local, domain)
            }
            None => {
                let (local, domain) = s.split_once('@').ok_or(AddressError::NoAt)?;
                if local.is_empty() {
                    return Err(AddressError::EmptyLocal);
                }
                if !Address::is_dot_string(local) {
                    let bad = local.chars().find(|&c| c != '.' && !is_atext(c));
                    return Err(AddressError::BadChar(bad.unwrap_or('.')));
                }
                (local.to_string(), domain)
            }
        };
        if local.is_empty() {
            return Err(AddressError::EmptyLocal);
        }
        if local.len() > 64 {
            return Err(AddressError::LocalTooLong);
        }
        if let Some(c) = local
            .chars()
            .find(|&c| c.is_control() || c == '/' || c == '\\')
        {
            return Err(AddressError::BadChar(c));
        }
        let domain = match domain.strip_prefix('[') {
            Some(literal) => canonical_literal(literal)?,
            None => host_name(domain)?,
        };
        Ok(Address { local, domain })
    }

    /// The IP address of an address-literal domain (`[192.0.2.7]`, `[IPv6:2001:db8::7]`).
    pub fn literal_ip(&self) -> Option<IpAddr> {
        literal_ip(&self.domain)
    }
}

/// The IP address of an address-literal domain (`[192.0.2.7]`, `[IPv6:2001:db8::7]`,
/// RFC 5321 §4.1.3); `None` for a domain name.
pub fn literal_ip(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        }
        _ => inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// RFC 5321 §4.1.2 atext, with RFC 6531's UTF-8 (any non-ASCII character).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// The content of a Quoted-string whose opening quote is gone, and what follows its closing
/// quote. qtextSMTP is SP, `!`, `#`..`[`, `]`..`~` (and UTF-8, RFC 6531); quoted-pairSMTP is
/// `\` and one of SP..`~`.
fn dequote(s: &str) -> Result<(String, &str), AddressError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, q)) if (' '..='~').contains(&q) => out.push(q),
                Some((_, q)) => return Err(AddressError::BadChar(q)),
                None => return Err(AddressError::Unterminated),
            },
            ' '..='~' => out.push(c),
            c if !c.is_ascii() => out.push(c),
            c => return Err(AddressError::BadChar(c)),
        }
    }
    Err(AddressError::Unterminated)
}

/// An IPv4 or IPv6 address literal (the text after `[`), canonical.
fn canonical_literal(s: &str) -> Result<String, AddressError> {
    let inner = s.strip_suffix(']').ok_or(AddressError::BadLiteral)?;
    let ip = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..]
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| AddressError::BadLiteral)?,
        // Rust's parser wants exactly four decimal octets without leading zeros: the
        // Snum grammar of §4.1.3, minus the octal-looking spellings some resolvers misread.
        _ => inner
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| AddressError::BadLiteral)?,
    };
    Ok(match ip {
        IpAddr::V4(ip) => format!("[{ip}]"),
        IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
    })
}

/// A host name domain, lower-cased, a trailing dot dropped (as [`Address::parse`] does).
fn host_name(domain: &str) -> Result<String, AddressError> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if domain.len() > 255 {
        return Err(AddressError::DomainTooLong);
    }
    let label_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii();
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(AddressError::BadChar('.'));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !label_char(c) || c.is_whitespace() || c.is_control())
        {
            return Err(AddressError::BadChar(c));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::BadChar('-'));
        }
    }
    Ok(domain.to_ascii_lowercase())
}

impl Address {
    /// Whether the local part can go on the wire as it is: an RFC 5321 §4.1.2 Dot-string
    /// (atoms of atext joined by single dots; RFC 6531 adds any non-ASCII character).
    /// Anything else — `a@b`, `a b`, `.a`, `a..b` — must be a Quoted-string.
    pub fn is_dot_string(local: &str) -> bool {
        !local.is_empty()
            && local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
    }
}

/// The address as it goes into a path (`MAIL FROM:<...>`, `RCPT TO:<...>`) and replies: a
/// local part that is no Dot-string is quoted again (`"a@b"@example.org`), because the
/// parser gave it to us dequoted and sending it bare would make another address of it —
/// exactly the quoted-local-part relay trick, played on the next hop.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if Address::is_dot_string(&self.local) {
            return write!(f, "{}@{}", self.local, self.domain);
        }
        f.write_str("\"")?;
        for c in self.local.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        write!(f, "\"@{}", self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases_domain() {
        let a = Address::parse("Alice@Example.ORG").unwrap();
        assert_eq!(a.local, "Alice");
        assert_eq!(a.domain, "example.org");
        assert_eq!(a.key(), "alice@example.org");
    }

    #[test]
    fn rejects_traversal_and_junk() {
        assert_eq!(Address::parse("../x@a.b"), Err(AddressError::BadChar('/')));
        assert_eq!(Address::parse("a@b/c"), Err(AddressError::BadChar('/')));
        assert_eq!(Address::parse("a b@c"), Err(AddressError::BadChar(' ')));
        assert_eq!(Address::parse("nobody"), Err(AddressError::NoAt));
        assert_eq!(Address::parse("@x"), Err(AddressError::EmptyLocal));
        assert_eq!(Address::parse("x@"), Err(AddressError::EmptyDomain));
        assert!(Address::parse("a@..").is_err());
    }

    #[test]
    fn displays_a_local_part_that_is_no_dot_string_quoted() {
        let show = |s: &str| Address::parse(s).unwrap().to_string();
        assert_eq!(show("Alice.B+tag@Example.org"), "Alice.B+tag@example.org");
        assert_eq!(show("a%b@x.test"), "a%b@x.test");
        assert_eq!(show("b!a@x.test"), "b!a@x.test");
        // Dequoted by the SMTP parser: quoted again, so no next hop reads `a@b` at `x.test`.
        assert_eq!(show("a@b@x.test"), "\"a@b\"@x.test");
        assert_eq!(show("a\"q@x.test"), "\"a\\\"q\"@x.test");
        assert_eq!(show(".a@x.test"), "\".a\"@x.test");
        assert_eq!(show("a..b@x.test"), "\"a..b\"@x.test");
        assert_eq!(show("jörg@x.test"), "jörg@x.test");
    }
}
