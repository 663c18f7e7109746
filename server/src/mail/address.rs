//! Mail addresses: parsed once, compared case-insensitively in the domain, and safe to use
//! as a mailbox name (no path traversal can come through an address).

use std::fmt;

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
    /// Whether the local part can go on the wire as it is: an RFC 5321 §4.1.2 Dot-string
    /// (atoms of atext joined by single dots; RFC 6531 adds any non-ASCII character).
    /// Anything else — `a@b`, `a b`, `.a`, `a..b` — must be a Quoted-string.
    pub fn is_dot_string(local: &str) -> bool {
        let atext = |c: char| {
            c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
        };
        !local.is_empty()
            && local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(atext))
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
