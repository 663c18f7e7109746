//! A deliberately simple SPF evaluation (RFC 7208) for `check`: does the domain's policy
//! cover our address? It evaluates `ip4`, `ip6`, `a`, `mx` (with optional domain and
//! CIDR length) and `all`, and follows `include:` and `redirect=` one level deep. `exists`,
//! `ptr` and macros are not evaluated (they match nothing here, and the report says so):
//! enough to catch the common mistakes, not a verifier.

use std::net::IpAddr;

use super::check::Lookup;
use crate::env::{Record, RecordKind};
use crate::policy::IpNet;

/// What the policy says about one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Covered, by this mechanism.
    Pass(String),
    /// Not covered: the mechanism that matched (`-all`, `~all`...) or "no mechanism matched".
    NotCovered(String),
    /// The domain publishes no SPF record.
    None,
    /// Two SPF records, or one we cannot read (RFC 7208 §4.5: permerror).
    Broken(String),
    /// A DNS failure: try again.
    Temporary(String),
}

/// The domain's SPF record, if any (exactly one `v=spf1` TXT, RFC 7208 §4.5).
pub fn record(lookup: &mut dyn Lookup, domain: &str) -> Result<Option<String>, Verdict> {
    let txts = match lookup.lookup(domain, RecordKind::Txt) {
        Ok(r) => r,
        Err(crate::env::DnsError::Temporary(e)) => return Err(Verdict::Temporary(e)),
        Err(_) => Vec::new(),
    };
    let spf: Vec<String> = txts
        .into_iter()
        .filter_map(|r| match r {
            Record::Txt(t) if is_spf(&t) => Some(t),
            _ => None,
        })
        .collect();
    match spf.len() {
        0 => Ok(None),
        1 => Ok(spf.into_iter().next()),
        n => Err(Verdict::Broken(format!(
            "{n} SPF records (there must be one)"
        ))),
    }
}

fn is_spf(t: &str) -> bool {
    let t = t.trim_start();
    t.len() >= 6
        && t[..6].eq_ignore_ascii_case("v=spf1")
        && t[6..].chars().next().is_none_or(|c| c == ' ')
}

/// Evaluates `domain`'s policy for `ip`.
pub fn evaluate(lookup: &mut dyn Lookup, domain: &str, ip: IpAddr) -> Verdict {
    match record(lookup, domain) {
        Err(v) => v,
        Ok(None) => Verdict::None,
        Ok(Some(text)) => eval_record(lookup, domain, &text, ip, 0),
    }
}

fn eval_record(
    lookup: &mut dyn Lookup,
    domain: &str,
    text: &str,
    ip: IpAddr,
    depth: u8,
) -> Verdict {
    let mut redirect = None;
    for term in text.split_ascii_whitespace().skip(1) {
        if let Some(target) = strip_ci(term, "redirect=") {
            redirect = Some(target.to_string());
            continue;
        }
        if term.contains('=') {
            continue; // another modifier (exp=...)
        }
        let (qualifier, mech) = match term.as_bytes().first() {
            Some(b'+' | b'-' | b'~' | b'?') => (&term[..1], &term[1..]),
            _ => ("+", term),
        };
        let matched = match matches(lookup, domain, mech, ip, depth) {
            Ok(m) => m,
            Err(v) => return v,
        };
        if matched {
            return if qualifier == "+" {
                Verdict::Pass(format!("{mech} in {domain}"))
            } else {
                Verdict::NotCovered(format!("{term} in {domain}"))
            };
        }
    }
    match redirect {
        Some(target) if depth == 0 => match record(lookup, &target) {
            Err(v) => v,
            Ok(None) => Verdict::Broken(format!("redirect={target} has no SPF record")),
            Ok(Some(t)) => eval_record(lookup, &target, &t, ip, depth + 1),
        },
        _ => Verdict::NotCovered(format!("no mechanism of {domain} matched")),
    }
}

fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// `name[/len]` or `/len` after a mechanism: the domain (default: ours) and the prefix.
fn target<'a>(rest: &'a str, domain: &'a str) -> (&'a str, Option<u8>) {
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    let (name, len) = match rest.split_once('/') {
        Some((n, l)) => (n, l.split('/').next().and_then(|l| l.parse().ok())),
        None => (rest, None),
    };
    (if name.is_empty() { domain } else { name }, len)
}

fn matches(
    lookup: &mut dyn Lookup,
    domain: &str,
    mech: &str,
    ip: IpAddr,
    depth: u8,
) -> Result<bool, Verdict> {
    let lower = mech.to_ascii_lowercase();
    if lower == "all" {
        return Ok(true);
    }
    for p in ["ip4:", "ip6:"] {
        if let Some(net) = strip_ci(mech, p) {
            let net = if net.contains('/') {
                net.to_string()
            } else if p == "ip4:" {
                format!("{net}/32")
            } else {
                format!("{net}/128")
            };
            return Ok(net.parse::<IpNet>().is_ok_and(|n| n.contains(ip)));
        }
    }
    if let Some(inc) = strip_ci(mech, "include:") {
        if depth > 0 {
            return Ok(false); // one level only
        }
        return match record(lookup, inc)? {
            None => Err(Verdict::Broken(format!("include:{inc} has no SPF record"))),
            Some(t) => Ok(matches!(
                eval_record(lookup, inc, &t, ip, depth + 1),
                Verdict::Pass(_)
            )),
        };
    }
    let (hosts, len) = if lower == "a" || lower.starts_with("a:") || lower.starts_with("a/") {
        let (name, len) = target(&mech[1..], domain);
        (vec![name.to_string()], len)
    } else if lower == "mx" || lower.starts_with("mx:") || lower.starts_with("mx/") {
        let (name, len) = target(&mech[2..], domain);
        let mx = dns(lookup, name, RecordKind::Mx)?;
        let hosts = mx
            .into_iter()
            .filter_map(|r| match r {
                Record::Mx { exchange, .. } => Some(exchange),
                _ => None,
            })
            .collect();
        (hosts, len)
    } else {
        return Ok(false); // exists, ptr, macros: not evaluated
    };
    for h in hosts {
        for ip_of in super::check::addresses(lookup, &h).map_err(Verdict::Temporary)? {
            let hit = match len {
                Some(l) if ip_of.is_ipv4() == ip.is_ipv4() => format!("{ip_of}/{l}")
                    .parse::<IpNet>()
                    .is_ok_and(|n| n.contains(ip)),
                _ => ip_of == ip,
            };
            if hit {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn dns(lookup: &mut dyn Lookup, name: &str, kind: RecordKind) -> Result<Vec<Record>, Verdict> {
    match lookup.lookup(name, kind) {
        Ok(r) => Ok(r),
        Err(crate::env::DnsError::Temporary(e)) => Err(Verdict::Temporary(e)),
        Err(_) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::DnsError;
    use std::collections::BTreeMap;

    /// Answers from a map of (name, kind) → records; anything else is NXDOMAIN.
    struct Fake(pub BTreeMap<(String, RecordKind), Vec<Record>>);

    impl Lookup for Fake {
        fn lookup(&mut self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
            if name == "broken.test" {
                return Err(DnsError::Temporary("SERVFAIL".into()));
            }
            self.0
                .get(&(name.to_string(), kind))
                .cloned()
                .ok_or(DnsError::NxDomain)
        }
    }

    fn fake(entries: &[(&str, RecordKind, Record)]) -> Fake {
        let mut m: BTreeMap<(String, RecordKind), Vec<Record>> = BTreeMap::new();
        for (n, k, r) in entries {
            m.entry((n.to_string(), *k)).or_default().push(r.clone());
        }
        Fake(m)
    }

    fn txt(s: &str) -> Record {
        Record::Txt(s.to_string())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ip4_ip6_a_mx_and_all() {
        let mut l = fake(&[
            (
                "example.org",
                RecordKind::Txt,
                txt("v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 a:out.example.org mx -all"),
            ),
            (
                "out.example.org",
                RecordKind::A,
                Record::A([203, 0, 113, 5].into()),
            ),
            (
                "example.org",
                RecordKind::Mx,
                Record::Mx {
                    preference: 10,
                    exchange: "mx.example.org".into(),
                },
            ),
            (
                "mx.example.org",
                RecordKind::A,
                Record::A([192, 0, 2, 1].into()),
            ),
        ]);
        for (addr, how) in [
            ("198.51.100.9", "ip4:198.51.100.0/24"),
            ("2001:db8::25", "ip6:2001:db8::/32"),
            ("203.0.113.5", "a:out.example.org"),
            ("192.0.2.1", "mx"),
        ] {
            assert_eq!(
                evaluate(&mut l, "example.org", ip(addr)),
                Verdict::Pass(format!("{how} in example.org"))
            );
        }
        assert_eq!(
            evaluate(&mut l, "example.org", ip("192.0.2.2")),
            Verdict::NotCovered("-all in example.org".into())
        );
    }

    #[test]
    fn include_is_followed_one_level_and_redirect_too() {
        let mut l = fake(&[
            (
                "example.org",
                RecordKind::Txt,
                txt("v=spf1 include:_spf.provider.test ~all"),
            ),
            (
                "_spf.provider.test",
                RecordKind::Txt,
                txt("v=spf1 ip4:192.0.2.0/24 include:deeper.test -all"),
            ),
            (
                "deeper.test",
                RecordKind::Txt,
                txt("v=spf1 ip4:10.0.0.0/8 -all"),
            ),
            (
                "example.net",
                RecordKind::Txt,
                txt("v=spf1 redirect=_spf.provider.test"),
            ),
        ]);
        assert!(matches!(
            evaluate(&mut l, "example.org", ip("192.0.2.7")),
            Verdict::Pass(_)
        ));
        // Two levels down is not evaluated: not covered, by the outer ~all.
        assert_eq!(
            evaluate(&mut l, "example.org", ip("10.1.2.3")),
            Verdict::NotCovered("~all in example.org".into())
        );
        assert!(matches!(
            evaluate(&mut l, "example.net", ip("192.0.2.7")),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn none_two_records_and_dns_failures() {
        let mut l = fake(&[
            ("two.test", RecordKind::Txt, txt("v=spf1 -all")),
            ("two.test", RecordKind::Txt, txt("v=spf1 +all")),
            (
                "other.test",
                RecordKind::Txt,
                txt("google-site-verification=x"),
            ),
            ("other.test", RecordKind::Txt, txt("v=spf10 +all")),
        ]);
        assert_eq!(
            evaluate(&mut l, "none.test", ip("192.0.2.1")),
            Verdict::None
        );
        assert_eq!(
            evaluate(&mut l, "other.test", ip("192.0.2.1")),
            Verdict::None
        );
        assert!(matches!(
            evaluate(&mut l, "two.test", ip("192.0.2.1")),
            Verdict::Broken(_)
        ));
        assert!(matches!(
            evaluate(&mut l, "broken.test", ip("192.0.2.1")),
            Verdict::Temporary(_)
        ));
    }
}
