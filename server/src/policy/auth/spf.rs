//! SPF (RFC 7208): may this client IP send mail for this domain?
//!
//! **Why our own `check_host()`.** mail-auth parses SPF records and expands macros, and we
//! use both (`Spf::parse`, `Macro::eval`). Its evaluator, though, resolves through a fixed
//! hickory `TokioResolver` (the real network) and its caches cannot hold a negative answer
//! for A, AAAA or MX — so inside the simulation an `a:` target that is NXDOMAIN would become
//! a temperror instead of a void lookup — and it does not enforce the two-void-lookup limit
//! (§4.6.4). The evaluation below is §4–§6 step by step over the [`Env`] resolver, so every
//! lookup is the world's DNS in the simulation and the real resolver in `mailsim serve`,
//! traced either way.
//!
//! What §4.6.4 limits, and how:
//! - at most 10 mechanisms and modifiers that query the DNS (`include`, `a`, `mx`, `ptr`,
//!   `exists`, `redirect`), over the whole evaluation, includes and redirects included;
//!   the 11th is a permerror;
//! - at most 2 void lookups (an answer with no records, or NXDOMAIN); the 3rd is a permerror;
//! - an `mx` with more than 10 MX names is a permerror; `ptr` looks at no more than 10 names.
//!
//! Results are §2.6's seven. A DNS failure (SERVFAIL, a timeout) during the evaluation is a
//! temperror; a record that does not parse, two SPF records, an include or redirect target
//! with no SPF record are permerrors.

use std::borrow::Cow;
use std::net::IpAddr;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Macro, Mechanism, Qualifier, Spf, Variable, Variables};
use mail_auth::{SpfOutput, SpfResult};

use crate::env::{DnsError, Env, Record, RecordKind};

mod syntax;
use syntax::strict_syntax;

/// §4.6.4: DNS-querying terms per evaluation.
const MAX_DNS_TERMS: u32 = 10;
/// §4.6.4: void lookups per evaluation.
const MAX_VOID_LOOKUPS: u32 = 2;
/// §4.6.4: MX names an `mx` mechanism may look at; more is a permerror.
const MAX_MX_NAMES: usize = 10;
/// §4.6.4: PTR names a `ptr` mechanism (or `%{p}`) looks at; the rest are ignored.
const MAX_PTR_NAMES: usize = 10;

/// One SPF question: `check_host(<ip>, <domain>, <sender>)` (§4.1).
pub struct SpfQuery<'a> {
    pub ip: IpAddr,
    /// The identity's domain: the MAIL FROM domain, or the HELO name.
    pub domain: &'a str,
    /// `local@domain`; for the HELO identity or a null sender, `postmaster@<domain>` (§4.3).
    pub sender: &'a str,
    pub helo: &'a str,
    /// Our host name, for `%{r}` in explanations.
    pub receiver: &'a str,
}

/// Why an evaluation ended early.
enum Stop {
    Result(SpfResult),
}

/// The evaluation's shared state: limits count across includes and redirects.
struct Eval<'e, E: Env> {
    env: &'e E,
    ip: IpAddr,
    dns_terms: u32,
    voids: u32,
    /// `%{p}`, once computed.
    validated: Option<String>,
}

/// Runs `check_host()` for one identity. The output carries the result, the domain and,
/// for a `fail` whose record has `exp=`, the explanation (§6.2).
pub async fn check_host<E: Env>(env: &E, q: &SpfQuery<'_>) -> SpfOutput {
    let ip = canonical(q.ip);
    let out = SpfOutput::new(q.domain.to_string());
    // §4.3: a malformed or single-label domain is "none" before any lookup.
    if !valid_domain(q.domain) {
        return out.with_result(SpfResult::None);
    }
    let mut eval = Eval {
        env,
        ip,
        dns_terms: 0,
        voids: 0,
        validated: None,
    };
    let mut vars = Variables::new();
    vars.set_ip(&ip);
    vars.set_sender(q.sender.as_bytes().to_vec());
    vars.set_helo_domain(q.helo.as_bytes().to_vec());
    vars.set_host_domain(q.receiver.as_bytes().to_vec());
    let (result, explanation) = eval.check(q.domain.to_string(), &mut vars, 0).await;
    let out = out.with_result(result);
    match explanation {
        Some(text) if result == SpfResult::Fail => out.with_explanation(text),
        _ => out,
    }
}

impl<E: Env> Eval<'_, E> {
    /// `check_host()` for `domain` (a fresh call for `include`, the same evaluation for
    /// `redirect`). Returns the result and, for a fail, the explanation of the record that
    /// decided it.
    fn check<'s>(
        &'s mut self,
        domain: String,
        vars: &'s mut Variables<'static>,
        depth: u32,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = (SpfResult, Option<String>)> + Send + 's>>
    {
        Box::pin(async move {
            // The lookup limit ends any loop long before this; the depth is a second fence.
            if depth > MAX_DNS_TERMS + 1 {
                return (SpfResult::PermError, None);
            }
            vars.set_domain(domain.as_bytes().to_vec());
            let record = match self.record(&domain).await {
                Ok(r) => r,
                Err(Stop::Result(r)) => return (r, None),
            };
            for directive in record.directives.iter() {
                let matched = match self
                    .matches(&directive.mechanism, &domain, vars, depth)
                    .await
                {
                    Ok(m) => m,
                    Err(Stop::Result(r)) => return (r, None),
                };
                if matched {
                    let result = match directive.qualifier {
                        Qualifier::Pass => SpfResult::Pass,
                        Qualifier::Fail => SpfResult::Fail,
                        Qualifier::SoftFail => SpfResult::SoftFail,
                        Qualifier::Neutral => SpfResult::Neutral,
                    };
                    let explanation = match (result, &record.exp) {
                        (SpfResult::Fail, Some(exp)) => self.explain(exp, &domain, vars).await,
                        _ => None,
                    };
                    return (result, explanation);
                }
            }
            // §6.1: redirect only when no mechanism matched (and `all` is absent).
            if let Some(redirect) = &record.redirect {
                if let Err(Stop::Result(r)) = self.count_term() {
                    return (r, None);
                }
                let target = expand(redirect, vars, &domain);
                if !valid_domain(&target) {
                    return (SpfResult::PermError, None);
                }
                let (result, explanation) = self.check(target, vars, depth + 1).await;
                // §6.1: a redirect target without an SPF record is a permerror.
                let result = match result {
                    SpfResult::None => SpfResult::PermError,
                    other => other,
                };
                return (result, explanation);
            }
            (SpfResult::Neutral, None)
        })
    }

    /// §4.4–§4.5: the domain's one SPF record.
    async fn record(&mut self, domain: &str) -> Result<Spf, Stop> {
        let texts = match self.env.lookup(domain, RecordKind::Txt).await {
            Ok(records) => records,
            Err(DnsError::NxDomain | DnsError::NoRecords) => {
                return Err(Stop::Result(SpfResult::None))
            }
            Err(DnsError::Temporary(_)) => return Err(Stop::Result(SpfResult::TempError)),
        };
        let mut spf = texts.iter().filter_map(|r| match r {
            Record::Txt(t) if is_spf_record(t) => Some(t),
            _ => None,
        });
        let (Some(first), None) = (spf.next(), spf.next()) else {
            // None at all, or (§4.5) more than one: "permerror".
            return Err(Stop::Result(
                match texts
                    .iter()
                    .any(|r| matches!(r, Record::Txt(t) if is_spf_record(t)))
                {
                    true => SpfResult::PermError,
                    false => SpfResult::None,
                },
            ));
        };
        // mail-auth's parser is lenient (it takes `ip4:999.1.1.1`, `ip4:…/33` and unknown
        // mechanisms); §4.6 says a record with a syntax error is a permerror, so the terms
        // are checked against §12's grammar first.
        if !strict_syntax(first) {
            return Err(Stop::Result(SpfResult::PermError));
        }
        Spf::parse(first.as_bytes()).map_err(|_| Stop::Result(SpfResult::PermError))
    }

    /// One more DNS-querying term (§4.6.4).
    fn count_term(&mut self) -> Result<(), Stop> {
        self.dns_terms += 1;
        match self.dns_terms > MAX_DNS_TERMS {
            true => Err(Stop::Result(SpfResult::PermError)),
            false => Ok(()),
        }
    }

    /// One more void lookup (§4.6.4).
    fn count_void(&mut self) -> Result<(), Stop> {
        self.voids += 1;
        match self.voids > MAX_VOID_LOOKUPS {
            true => Err(Stop::Result(SpfResult::PermError)),
            false => Ok(()),
        }
    }

    /// A lookup made for a mechanism: records, a void answer (counted) as no records, a DNS
    /// failure as a temperror (§5: "If the server returns an error, ... temperror").
    async fn lookup(&mut self, name: &str, kind: RecordKind) -> Result<Vec<Record>, Stop> {
        match self.env.lookup(name, kind).await {
            Ok(records) if !records.is_empty() => Ok(records),
            Ok(_) | Err(DnsError::NxDomain | DnsError::NoRecords) => {
                self.count_void()?;
                Ok(Vec::new())
            }
            Err(DnsError::Temporary(_)) => Err(Stop::Result(SpfResult::TempError)),
        }
    }

    /// The addresses of `name` of our client's family (A for IPv4, AAAA for IPv6).
    async fn addresses(&mut self, name: &str) -> Result<Vec<IpAddr>, Stop> {
        let kind = match self.ip {
            IpAddr::V4(_) => RecordKind::A,
            IpAddr::V6(_) => RecordKind::Aaaa,
        };
        Ok(self
            .lookup(name, kind)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                Record::A(a) => Some(IpAddr::V4(a)),
                Record::Aaaa(a) => Some(IpAddr::V6(a)),
                _ => None,
            })
            .collect())
    }

    async fn matches(
        &mut self,
        mechanism: &Mechanism,
        domain: &str,
        vars: &mut Variables<'static>,
        depth: u32,
    ) -> Result<bool, Stop> {
        if mechanism.needs_ptr() && self.validated.is_none() {
            // `%{p}` in a domain-spec: the validated name, "unknown" if none (§7.3).
            let name = self.validated_name(domain).await?;
            vars.set_validated_domain(name.into_bytes());
        }
        Ok(match mechanism {
            Mechanism::All => true,
            Mechanism::Ip4 { addr, mask } => match self.ip {
                IpAddr::V4(ip) => u32::from(ip) & mask == u32::from(*addr) & mask,
                IpAddr::V6(_) => false,
            },
            Mechanism::Ip6 { addr, mask } => match self.ip {
                IpAddr::V6(ip) => u128::from(ip) & mask == u128::from(*addr) & mask,
                IpAddr::V4(_) => false,
            },
            Mechanism::A {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                self.count_term()?;
                let target = self.target(macro_string, vars, domain)?;
                let found = self.addresses(&target).await?;
                found
                    .iter()
                    .any(|a| in_network(self.ip, *a, *ip4_mask, *ip6_mask))
            }
            Mechanism::Mx {
                macro_string,
                ip4_mask,
                ip6_mask,
            } => {
                self.count_term()?;
                let target = self.target(macro_string, vars, domain)?;
                let mut names: Vec<(u16, String)> = self
                    .lookup(&target, RecordKind::Mx)
                    .await?
                    .into_iter()
                    .filter_map(|r| match r {
                        Record::Mx {
                            preference,
                            exchange,
                        } => Some((preference, exchange)),
                        _ => None,
                    })
                    .collect();
                if names.len() > MAX_MX_NAMES {
                    return Err(Stop::Result(SpfResult::PermError));
                }
                names.sort();
                let mut hit = false;
                for (_, name) in names {
                    let found = self.addresses(&name).await?;
                    if found
                        .iter()
                        .any(|a| in_network(self.ip, *a, *ip4_mask, *ip6_mask))
                    {
                        hit = true;
                        break;
                    }
                }
                hit
            }
            Mechanism::Ptr { macro_string } => {
                self.count_term()?;
                let target = self.target(macro_string, vars, domain)?;
                let target = target.trim_end_matches('.').to_ascii_lowercase();
                self.validated_names()
                    .await?
                    .iter()
                    .any(|n| n == &target || n.ends_with(&format!(".{target}")))
            }
            Mechanism::Exists { macro_string } => {
                self.count_term()?;
                let target = self.target(macro_string, vars, domain)?;
                // §5.7: always an A query, whatever the client's family.
                !self.lookup(&target, RecordKind::A).await?.is_empty()
            }
            Mechanism::Include { macro_string } => {
                self.count_term()?;
                let target = self.target(macro_string, vars, domain)?;
                let mut inner = vars.clone();
                let (result, _) = self.check(target, &mut inner, depth + 1).await;
                // §5.2's table.
                match result {
                    SpfResult::Pass => true,
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => false,
                    SpfResult::TempError => return Err(Stop::Result(SpfResult::TempError)),
                    SpfResult::PermError | SpfResult::None => {
                        return Err(Stop::Result(SpfResult::PermError))
                    }
                }
            }
        })
    }

    /// A mechanism's target name: its domain-spec expanded, or the current domain (§4.8).
    fn target(&self, m: &Macro, vars: &Variables<'_>, domain: &str) -> Result<String, Stop> {
        let target = expand(m, vars, domain);
        match valid_domain(&target) {
            true => Ok(target),
            // §4.8: a domain-spec that expands to something that is not a domain is a
            // syntax error of the record.
            false => Err(Stop::Result(SpfResult::PermError)),
        }
    }

    /// §5.5: the client's PTR names whose own addresses include the client (at most 10
    /// names looked at). A DNS error here makes the mechanism not match, never an error.
    async fn validated_names(&mut self) -> Result<Vec<String>, Stop> {
        let ptr = match self
            .env
            .lookup(&reverse_name(self.ip), RecordKind::Ptr)
            .await
        {
            Ok(records) => records,
            Err(_) => return Ok(Vec::new()),
        };
        let mut names = Vec::new();
        for r in ptr.into_iter().take(MAX_PTR_NAMES) {
            let Record::Ptr(name) = r else { continue };
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let kind = match self.ip {
                IpAddr::V4(_) => RecordKind::A,
                IpAddr::V6(_) => RecordKind::Aaaa,
            };
            let Ok(addrs) = self.env.lookup(&name, kind).await else {
                continue;
            };
            if addrs.iter().any(|a| match a {
                Record::A(a) => IpAddr::V4(*a) == self.ip,
                Record::Aaaa(a) => IpAddr::V6(*a) == self.ip,
                _ => false,
            }) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// `%{p}` (§7.3): a validated name under `domain` if there is one, else any validated
    /// name, else "unknown".
    async fn validated_name(&mut self, domain: &str) -> Result<String, Stop> {
        let names = self.validated_names().await?;
        let domain = domain.to_ascii_lowercase();
        let name = names
            .iter()
            .find(|n| **n == domain || n.ends_with(&format!(".{domain}")))
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        self.validated = Some(name.clone());
        Ok(name)
    }

    /// §6.2: the explanation of a fail: the TXT record at the expanded `exp=` name, itself
    /// macro-expanded. Any problem (a DNS error, no record or several) means no
    /// explanation, never a different result.
    async fn explain(
        &mut self,
        exp: &Macro,
        domain: &str,
        vars: &Variables<'static>,
    ) -> Option<String> {
        let name = expand(exp, vars, domain);
        if !valid_domain(&name) {
            return None;
        }
        let records = self.env.lookup(&name, RecordKind::Txt).await.ok()?;
        let [Record::Txt(text)] = records.as_slice() else {
            return None;
        };
        let text = Macro::parse(text.as_bytes()).ok()?;
        // `%{t}` would read the real clock inside mail-auth: give it ours.
        let text = with_time(text, self.env.now().as_secs());
        let mut vars = vars.clone();
        vars.set_ip(&self.ip);
        let out = text.eval(&vars, domain, false).into_owned();
        // The text goes into a reply line: no control characters.
        Some(out.chars().filter(|c| !c.is_control()).collect())
    }
}

/// A domain-spec expanded with the current variables, lower-case, without a final dot.
fn expand(m: &Macro, vars: &Variables<'_>, domain: &str) -> String {
    let s: Cow<'_, str> = m.eval(vars, domain, true);
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// `m` with every `%{t}` replaced by `now` (seconds since the epoch, §7.3).
fn with_time(m: Macro, now: u64) -> Macro {
    match m {
        Macro::Variable {
            letter: Variable::CurrentTime,
            ..
        } => Macro::Literal(now.to_string().into_bytes().into_boxed_slice()),
        Macro::List(items) => Macro::List(
            items
                .into_vec()
                .into_iter()
                .map(|i| with_time(i, now))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        ),
        other => other,
    }
}

/// §4.5: a record is an SPF record if it is `v=spf1` alone or followed by a space.
fn is_spf_record(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

/// §4.3: a multi-label domain with labels of 1–63 octets, at most 253 in all.
pub(super) fn valid_domain(d: &str) -> bool {
    let d = d.trim_end_matches('.');
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80)
        })
}

/// An IPv4-mapped IPv6 address is the IPv4 client it carries (§5: ip4 applies to it).
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Does `found` cover the client, with the mechanism's CIDR lengths (`a/24`, `mx//64`)?
fn in_network(client: IpAddr, found: IpAddr, ip4_mask: u32, ip6_mask: u128) -> bool {
    match (client, found) {
        (IpAddr::V4(c), IpAddr::V4(f)) => u32::from(c) & ip4_mask == u32::from(f) & ip4_mask,
        (IpAddr::V6(c), IpAddr::V6(f)) => u128::from(c) & ip6_mask == u128::from(f) & ip6_mask,
        _ => false,
    }
}

/// The PTR query name of `ip` (`4.3.2.1.in-addr.arpa`, or 32 nibbles under `ip6.arpa`).
pub(super) fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests;
