//! Message flags: RFC 3501 §2.3.2's system flags and keywords.

use std::collections::BTreeSet;
use std::fmt;

/// The system flags a client may set (`\Recent` is session state, never stored).
pub const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Longest keyword accepted (Dovecot refuses keywords past 255 octets as well).
pub const MAX_KEYWORD: usize = 128;

/// One message's flags: system flags as bits, keywords by name (sorted, so the log and
/// every listing spell them in one order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    system: u8,
    keywords: BTreeSet<String>,
}

/// A flag the client named that cannot be stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid flag {0:?}")]
pub struct BadFlag(pub String);

impl Flags {
    pub fn new() -> Flags {
        Flags::default()
    }

    /// Parses flag tokens (`\Seen`, `$Forwarded`, …). System flags match case-insensitively
    /// (RFC 3501 §9 `flag`); a keyword is an atom: no specials, no `\`, no controls.
    pub fn parse<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<Flags, BadFlag> {
        let mut flags = Flags::new();
        for t in tokens {
            flags.insert(t)?;
        }
        Ok(flags)
    }

    pub fn insert(&mut self, token: &str) -> Result<(), BadFlag> {
        if let Some(bit) = system_bit(token) {
            self.system |= bit;
            return Ok(());
        }
        let atom = !token.is_empty()
            && token.len() <= MAX_KEYWORD
            && token
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
        if !atom {
            return Err(BadFlag(token.to_string()));
        }
        self.keywords.insert(token.to_string());
        Ok(())
    }

    pub fn contains(&self, token: &str) -> bool {
        match system_bit(token) {
            Some(bit) => self.system & bit != 0,
            None => self.keywords.contains(token),
        }
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &Flags) -> Flags {
        Flags {
            system: self.system | other.system,
            keywords: self.keywords.union(&other.keywords).cloned().collect(),
        }
    }

    /// `self ∖ other`.
    pub fn minus(&self, other: &Flags) -> Flags {
        Flags {
            system: self.system & !other.system,
            keywords: self.keywords.difference(&other.keywords).cloned().collect(),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.contains("\\Deleted")
    }

    /// Every flag, system flags first, as a client sees them.
    pub fn tokens(&self) -> Vec<&str> {
        let mut out: Vec<&str> = SYSTEM
            .iter()
            .enumerate()
            .filter(|(i, _)| self.system & (1 << i) != 0)
            .map(|(_, s)| *s)
            .collect();
        out.extend(self.keywords.iter().map(String::as_str));
        out
    }
}

fn system_bit(token: &str) -> Option<u8> {
    SYSTEM
        .iter()
        .position(|s| s.eq_ignore_ascii_case(token))
        .map(|i| 1 << i)
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tokens().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_combine_and_print_in_one_order() {
        let a = Flags::parse(["$Work", "\\seen", "\\Deleted"]).unwrap();
        assert_eq!(a.to_string(), "\\Seen \\Deleted $Work");
        assert!(a.is_deleted() && a.contains("\\SEEN") && a.contains("$Work"));
        let b = Flags::parse(["\\Deleted", "Later"]).unwrap();
        assert_eq!(a.union(&b).to_string(), "\\Seen \\Deleted $Work Later");
        assert_eq!(a.minus(&b).to_string(), "\\Seen $Work");
        for bad in ["", "a b", "\\Recent", "\\Bogus", "x(", "ü", "a\"b"] {
            assert!(Flags::parse([bad]).is_err(), "{bad:?}");
        }
        assert!(Flags::parse([&*"k".repeat(MAX_KEYWORD + 1)]).is_err());
    }
}
