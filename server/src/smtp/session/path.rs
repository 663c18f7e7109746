//! The path of `MAIL FROM:` and `RCPT TO:` (RFC 5321 §4.1.1.2, §4.1.1.3, §4.1.2), parsed
//! here rather than by smtp-proto, whose address scanner refuses valid paths (a quoted local
//! part with a space, address literals) and lets invalid command lines through (`MAIL FROM
//! :<a@b>`, `MAIL FROM:<a@b>SIZE=1`). Only the parameters after the path still go to
//! smtp-proto's parameter parser (`session/envelope.rs`).
//!
//! The grammar, from §4.1.1.2 and §3.3: `"MAIL FROM:" Reverse-path [SP Mail-parameters]`.
//! The keyword is followed by the colon directly; a space before it is refused (Postfix
//! refuses it too). A space *after* the colon is accepted, as Postfix and most servers do:
//! enough old clients send it, and it cannot change what the path means. After the closing
//! `>` there is either the end of the line or a space and the parameters.

use crate::mail::Address;

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// `<>`: the null reverse-path (never a forward-path).
    Null,
    /// `<postmaster>` without a domain (RFC 5321 §4.1.1.3: a forward-path only).
    Postmaster,
    Mailbox(Address),
}

/// Why a path command is refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PathError {
    /// The command line does not have the shape `VERB KEYWORD:<...>[ params]`: 501 5.5.4.
    Syntax,
    /// The shape is right but what is inside the brackets is no mailbox: 501 5.1.7/5.1.3.
    Address,
}

/// The longest path we take, brackets excluded (RFC 5321 §4.5.3.1.3: 256 octets with them;
/// smtp-proto allowed 256 without, which we keep so no address accepted before is refused).
const MAX_PATH: usize = 256;

/// Parses `text` (the command line without its line ending, UTF-8) as `<verb> <keyword>:<path>`.
/// Returns the path and the offset in `text` where the parameters start: at the space
/// after `>`, or `text.len()` when there are none.
pub(super) fn parse(text: &str, keyword: &str) -> Result<(Path, usize), PathError> {
    let start = text.len() - text.trim_start_matches(' ').len();
    let rest = &text[start..];
    // The verb was read by the caller (four letters, any case).
    let after_verb = rest.get(4..).ok_or(PathError::Syntax)?;
    let args = after_verb.trim_start_matches(' ');
    if args.len() == after_verb.len() {
        return Err(PathError::Syntax);
    }
    let kw = args.get(..keyword.len()).ok_or(PathError::Syntax)?;
    if !kw.eq_ignore_ascii_case(keyword) {
        return Err(PathError::Syntax);
    }
    let after_colon = args[keyword.len()..]
        .strip_prefix(':')
        .ok_or(PathError::Syntax)?;
    let bracketed = after_colon.trim_start_matches(' ');
    let inner = bracketed.strip_prefix('<').ok_or(PathError::Syntax)?;
    let close = closing_bracket(inner).ok_or(PathError::Syntax)?;
    let after = &inner[close + 1..];
    if !after.is_empty() && !after.starts_with(' ') {
        return Err(PathError::Syntax);
    }
    let params_at = text.len() - after.len();
    Ok((path(&inner[..close])?, params_at))
}

/// The index of the `>` that closes the path: the first one outside a quoted string (a
/// quoted local part may hold `>`; `\` escapes the next character inside quotes).
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// What is between the brackets: empty, `postmaster`, or an optional source route (`@a,@b:`,
/// RFC 5321 §4.1.1.3 and Appendix C: accepted, checked for syntax, ignored) and a mailbox.
fn path(s: &str) -> Result<Path, PathError> {
    if s.is_empty() {
        return Ok(Path::Null);
    }
    if s.len() > MAX_PATH {
        return Err(PathError::Address);
    }
    let mailbox = match s.strip_prefix('@') {
        Some(_) => {
            let (route, mailbox) = s.split_once(':').ok_or(PathError::Address)?;
            for hop in route.split(',') {
                let domain = hop.strip_prefix('@').ok_or(PathError::Address)?;
                // A hop is a domain (or literal): checked with a placeholder local part.
                Address::parse_smtp(&format!("x@{domain}")).map_err(|_| PathError::Address)?;
            }
            mailbox
        }
        None => s,
    };
    if mailbox.eq_ignore_ascii_case("postmaster") {
        return Ok(Path::Postmaster);
    }
    Address::parse_smtp(mailbox)
        .map(Path::Mailbox)
        .map_err(|_| PathError::Address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(text: &str) -> Result<(String, usize), PathError> {
        let kw = if text[..4].eq_ignore_ascii_case("MAIL") {
            "FROM"
        } else {
            "TO"
        };
        parse(text, kw).map(|(p, at)| match p {
            Path::Mailbox(a) => (a.to_string(), at),
            other => (format!("{other:?}"), at),
        })
    }

    #[test]
    fn shapes() {
        let ok = |t: &str, want: &str| assert_eq!(mailbox(t).map(|m| m.0), Ok(want.into()), "{t}");
        ok("MAIL FROM:<a@b.test>", "a@b.test");
        ok("mail from:<a@b.test>", "a@b.test");
        ok("MAIL FROM: <a@b.test>", "a@b.test");
        ok("MAIL FROM:<>", "Null");
        ok("RCPT TO:<Postmaster>", "Postmaster");
        ok("RCPT TO:<@a.test,@[192.0.2.1]:u@d.test>", "u@d.test");
        ok(
            "RCPT TO:<\"john doe\"@client.test>",
            "\"john doe\"@client.test",
        );
        ok("RCPT TO:<\"a>b\"@client.test>", "\"a>b\"@client.test");
        ok("RCPT TO:<carol@[192.0.2.7]>", "carol@[192.0.2.7]");
        ok(
            "RCPT TO:<carol@[ipv6:2001:DB8:0::7]>",
            "carol@[IPv6:2001:db8::7]",
        );
        let syntax = |t: &str| assert_eq!(mailbox(t), Err(PathError::Syntax), "{t}");
        syntax("MAIL FROM :<a@b.test>");
        syntax("MAIL FROM:<a@b.test>SIZE=100");
        syntax("RCPT TO:<a@b.test>NOTIFY=NEVER");
        syntax("MAIL FROM:a@b.test");
        syntax("MAIL FROM:<a@b.test");
        syntax("MAIL TO:<a@b.test>");
        syntax("MAILFROM:<a@b.test>");
        syntax("MAIL");
        syntax("RCPT TO");
        // The `>` is inside the (unterminated) quotes: no closing bracket.
        syntax("MAIL FROM:<\"unterminated@c.test>");
        let address = |t: &str| assert_eq!(mailbox(t), Err(PathError::Address), "{t}");
        address("MAIL FROM:<foo>");
        address("MAIL FROM:<a b@c.test>");
        address("MAIL FROM:<a@[192.0.2.300]>");
        address("MAIL FROM:<a@[tag:content]>");
        address("MAIL FROM:<a@[192.0.2.1>");
        address("RCPT TO:<@a.test:>");
        address("RCPT TO:<@a..test:u@d.test>");
        address(&format!("RCPT TO:<a@{}.test>", "x".repeat(251)));
    }

    #[test]
    fn parameters_start_after_the_path() {
        let text = "MAIL FROM:<\"a b\"@c.test> SIZE=10";
        let (_, at) = parse(text, "FROM").unwrap();
        assert_eq!(&text[at..], " SIZE=10");
        assert_eq!(parse("MAIL FROM:<>", "FROM").unwrap().1, 12);
    }
}
