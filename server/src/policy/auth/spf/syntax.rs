//! RFC 7208 §12's grammar, checked term by term before mail-auth parses a record: its
//! parser is lenient (it takes `ip4:999.1.1.1`, `/33`, unknown mechanisms, `%{z}`), and
//! §4.6 makes a record with a syntax error a permerror.

/// Whether an SPF record follows RFC 7208 §12's grammar term by term: known mechanisms
/// with their arguments (IP addresses that parse, CIDR lengths in range), modifiers named
/// as §6 says with `redirect` and `exp` at most once (§6), macros well formed (§7.1).
pub(super) fn strict_syntax(record: &str) -> bool {
    let mut terms = record.split(' ').filter(|t| !t.is_empty());
    if !terms
        .next()
        .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
    {
        return false;
    }
    let (mut redirects, mut exps) = (0, 0);
    for term in terms {
        // A modifier: name "=" macro-string, the name starting with a letter.
        if let Some((name, value)) = term.split_once('=') {
            let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok || !macros_ok(value) {
                return false;
            }
            match name.to_ascii_lowercase().as_str() {
                "redirect" => redirects += 1,
                "exp" => exps += 1,
                _ => {}
            }
            if (name.eq_ignore_ascii_case("redirect") || name.eq_ignore_ascii_case("exp"))
                && value.is_empty()
            {
                return false;
            }
            continue;
        }
        let t = term.trim_start_matches(['+', '-', '~', '?']);
        if term.len() - t.len() > 1 {
            return false;
        }
        let (name, arg) = match t.find([':', '/']) {
            Some(i) => (&t[..i], &t[i..]),
            None => (t, ""),
        };
        let ok = match name.to_ascii_lowercase().as_str() {
            "all" => arg.is_empty(),
            "include" | "exists" => arg
                .strip_prefix(':')
                .is_some_and(|d| !d.is_empty() && macros_ok(d)),
            "ptr" => {
                arg.is_empty()
                    || arg
                        .strip_prefix(':')
                        .is_some_and(|d| !d.is_empty() && macros_ok(d))
            }
            "a" | "mx" => {
                let (spec, cidr) = match arg.find('/') {
                    Some(i) => (&arg[..i], &arg[i..]),
                    None => (arg, ""),
                };
                (spec.is_empty()
                    || spec
                        .strip_prefix(':')
                        .is_some_and(|d| !d.is_empty() && macros_ok(d)))
                    && dual_cidr_ok(cidr)
            }
            "ip4" => arg.strip_prefix(':').is_some_and(|a| {
                let (ip, len) = a.split_once('/').map_or((a, None), |(i, l)| (i, Some(l)));
                ip.parse::<std::net::Ipv4Addr>().is_ok() && len.is_none_or(|l| cidr_ok(l, 32))
            }),
            "ip6" => arg.strip_prefix(':').is_some_and(|a| {
                let (ip, len) = a.split_once('/').map_or((a, None), |(i, l)| (i, Some(l)));
                ip.parse::<std::net::Ipv6Addr>().is_ok() && len.is_none_or(|l| cidr_ok(l, 128))
            }),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    redirects <= 1 && exps <= 1
}

/// A CIDR length: 1–3 digits, no leading zero, at most `max` (§12 `ip4-cidr-length`).
fn cidr_ok(len: &str, max: u32) -> bool {
    !len.is_empty()
        && len.len() <= 3
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'))
        && len.parse::<u32>().is_ok_and(|n| n <= max)
}

/// `[ "/" ip4-cidr-length ] [ "//" ip6-cidr-length ]` of `a` and `mx`.
fn dual_cidr_ok(cidr: &str) -> bool {
    if cidr.is_empty() {
        return true;
    }
    let Some(rest) = cidr.strip_prefix('/') else {
        return false;
    };
    if let Some(six) = rest.strip_prefix('/') {
        return cidr_ok(six, 128);
    }
    match rest.split_once("//") {
        Some((four, six)) => cidr_ok(four, 32) && cidr_ok(six, 128),
        None => cidr_ok(rest, 32),
    }
}

/// §7.1: `%` is followed by `%`, `_`, `-` or a `{letter digits r delimiters}` macro.
fn macros_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'%' | b'_' | b'-') => i += 2,
            Some(b'{') => {
                let Some(end) = s[i + 2..].find('}') else {
                    return false;
                };
                let inner = &s[i + 2..i + 2 + end];
                let mut chars = inner.chars();
                let letter_ok = chars
                    .next()
                    .is_some_and(|c| "slodiphcrtvSLODIPHCRTV".contains(c));
                let rest: String = chars.collect();
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                let tail = &rest[digits.len()..];
                let tail = tail.strip_prefix(['r', 'R']).unwrap_or(tail);
                if !letter_ok || !tail.chars().all(|c| ".-+,/_=".contains(c)) {
                    return false;
                }
                i += 2 + end + 1;
            }
            _ => return false,
        }
    }
    true
}
