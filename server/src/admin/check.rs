//! `check DOMAIN`: why mail from this server might not be accepted elsewhere. Each record
//! `dns` advises is looked up and reported ok / missing / wrong with the fix: MX pointing at
//! us, our host name's address, SPF covering our address (see [`super::spf`] for how simple
//! that evaluation is), each DKIM selector's key against the configured one, DMARC, and
//! forward-confirmed reverse DNS (PTR → our EHLO name → our address, as receivers check
//! it); with a data dir, accounts at ≥ 90 % of their quota too.
//!
//! Lookups go through [`Lookup`]: the real resolver for a live domain, a scenario's zones
//! in the simulator's `mailsim admin check --scenario`.

use std::fmt::Write;
use std::net::IpAddr;

use super::dkim;
use super::quota::Usage;
use super::records::{dmarc_text, fqdn, reverse_name, spf_text, txt_line};
pub use super::report::{Finding, Report, Status};
use super::spf::{self, Verdict};
use crate::config::ServerConfig;
use crate::env::{DnsError, Record, RecordKind};

/// Answers DNS questions for `check` (synchronous: the admin CLI asks one at a time).
pub trait Lookup {
    fn lookup(&mut self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError>;
}

/// Everything `check` needs besides the domain: the config, the addresses mail leaves from
/// (empty: take our host name's A/AAAA), the DNS and where its answers come from.
pub struct CheckWorld {
    pub config: ServerConfig,
    pub addresses: Vec<IpAddr>,
    pub lookup: Box<dyn Lookup>,
    pub source: String,
}

/// The A and AAAA addresses of `host` (a temporary failure is an error).
pub fn addresses(lookup: &mut dyn Lookup, host: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for kind in [RecordKind::A, RecordKind::Aaaa] {
        match lookup.lookup(host, kind) {
            Ok(rs) => out.extend(rs.into_iter().filter_map(|r| match r {
                Record::A(ip) => Some(IpAddr::V4(ip)),
                Record::Aaaa(ip) => Some(IpAddr::V6(ip)),
                _ => None,
            })),
            Err(DnsError::Temporary(e)) => return Err(format!("{host} {kind}: {e}")),
            Err(_) => {}
        }
    }
    Ok(out)
}

fn txts(lookup: &mut dyn Lookup, name: &str) -> Result<Vec<String>, String> {
    match lookup.lookup(name, RecordKind::Txt) {
        Ok(rs) => Ok(rs
            .into_iter()
            .filter_map(|r| match r {
                Record::Txt(t) => Some(t),
                _ => None,
            })
            .collect()),
        Err(DnsError::Temporary(e)) => Err(format!("{name} TXT: {e}")),
        Err(_) => Ok(Vec::new()),
    }
}

/// Runs every check for `domain` (one of ours; the caller checked).
pub fn check(world: &mut CheckWorld, domain: &str, usage: Option<&[Usage]>) -> Report {
    let mut r = Report::default();
    let host = world
        .config
        .hostname
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let lookup = world.lookup.as_mut();
    check_mx(&mut r, lookup, domain, &host);

    // Our addresses: configured (or the scenario's), else what our name resolves to.
    let known = !world.addresses.is_empty();
    let host_ips = addresses(lookup, &host);
    let ours = if known {
        world.addresses.clone()
    } else {
        host_ips.clone().unwrap_or_default()
    };
    match &host_ips {
        Err(e) => r.add(Status::Error, "A", e.clone(), None),
        Ok(ips) if ips.is_empty() => r.add(
            Status::Missing,
            "A",
            format!("{host} has no A/AAAA record"),
            Some(address_fix(&host, &ours)),
        ),
        Ok(ips) if known && !ours.iter().all(|ip| ips.contains(ip)) => r.add(
            Status::Wrong,
            "A",
            format!("{host} resolves to {}, not to {}", list(ips), list(&ours)),
            Some(address_fix(&host, &ours)),
        ),
        Ok(ips) => r.add(Status::Ok, "A", format!("{host} -> {}", list(ips)), None),
    }

    check_spf(&mut r, lookup, domain, &ours);
    check_dkim(&mut r, lookup, &world.config, domain);
    match txts(lookup, &format!("_dmarc.{domain}")) {
        Err(e) => r.add(Status::Error, "DMARC", e, None),
        Ok(t) => match t.iter().find(|t| t.trim_start().starts_with("v=DMARC1")) {
            Some(found) => r.add(Status::Ok, "DMARC", found.clone(), None),
            None => r.add(
                Status::Missing,
                "DMARC",
                format!("no DMARC record at _dmarc.{domain}"),
                Some(txt_line(&format!("_dmarc.{domain}"), &dmarc_text(domain))),
            ),
        },
    }
    for ip in &ours {
        check_ptr(&mut r, lookup, *ip, &host);
    }
    if let Some(usage) = usage {
        check_quota(&mut r, usage);
    }
    r
}

fn list(ips: &[IpAddr]) -> String {
    let v: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    v.join(", ")
}

fn address_fix(host: &str, ours: &[IpAddr]) -> String {
    if ours.is_empty() {
        return format!("{} 3600 IN A <this server's public IPv4>", fqdn(host));
    }
    let lines: Vec<String> = ours
        .iter()
        .map(|ip| {
            let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
            format!("{} 3600 IN {kind} {ip}", fqdn(host))
        })
        .collect();
    lines.join("\n")
}

fn check_mx(r: &mut Report, lookup: &mut dyn Lookup, domain: &str, host: &str) {
    let fix = || Some(format!("{} 3600 IN MX 10 {}", fqdn(domain), fqdn(host)));
    match lookup.lookup(domain, RecordKind::Mx) {
        Err(DnsError::Temporary(e)) => {
            r.add(Status::Error, "MX", format!("{domain} MX: {e}"), None)
        }
        Err(_) => r.add(
            Status::Missing,
            "MX",
            format!("{domain} has no MX record"),
            fix(),
        ),
        Ok(rs) => {
            let mx: Vec<(u16, String)> = rs
                .into_iter()
                .filter_map(|x| match x {
                    Record::Mx {
                        preference,
                        exchange,
                    } => Some((preference, exchange)),
                    _ => None,
                })
                .collect();
            let shown: Vec<String> = mx.iter().map(|(p, e)| format!("{p} {e}")).collect();
            if let Some((p, _)) = mx.iter().find(|(_, e)| e.eq_ignore_ascii_case(host)) {
                r.add(Status::Ok, "MX", format!("{domain} MX {p} {host}"), None);
            } else if mx.is_empty() {
                r.add(
                    Status::Missing,
                    "MX",
                    format!("{domain} has no MX record"),
                    fix(),
                );
            } else {
                r.add(
                    Status::Wrong,
                    "MX",
                    format!("{domain} MX is {}, not {host}", shown.join(", ")),
                    fix(),
                );
            }
        }
    }
}

fn check_spf(r: &mut Report, lookup: &mut dyn Lookup, domain: &str, ours: &[IpAddr]) {
    let fix = || Some(txt_line(domain, &spf_text(ours)));
    if ours.is_empty() {
        r.add(
            Status::Error,
            "SPF",
            "no address of ours known (listen address is loopback and the host name does not resolve)".to_string(),
            None,
        );
        return;
    }
    for ip in ours {
        match spf::evaluate(lookup, domain, *ip) {
            Verdict::Pass(how) => r.add(Status::Ok, "SPF", format!("{ip} passes ({how})"), None),
            Verdict::None => {
                r.add(
                    Status::Missing,
                    "SPF",
                    format!("{domain} has no SPF record"),
                    fix(),
                );
                return;
            }
            Verdict::NotCovered(why) => r.add(
                Status::Wrong,
                "SPF",
                format!("{ip} is not covered ({why})"),
                fix(),
            ),
            Verdict::Broken(why) => {
                r.add(Status::Wrong, "SPF", why, fix());
                return;
            }
            Verdict::Temporary(e) => r.add(Status::Error, "SPF", e, None),
        }
    }
}

/// The tag `name` of a DKIM key record (RFC 6376 §3.6.1), whitespace removed.
fn tag(record: &str, name: &str) -> Option<String> {
    record.split(';').find_map(|t| {
        let (k, v) = t.split_once('=')?;
        (k.trim() == name).then(|| v.chars().filter(|c| !c.is_whitespace()).collect())
    })
}

fn check_dkim(r: &mut Report, lookup: &mut dyn Lookup, config: &ServerConfig, domain: &str) {
    let keys: Vec<_> = config
        .dkim
        .iter()
        .filter(|k| k.domain.eq_ignore_ascii_case(domain))
        .collect();
    if keys.is_empty() {
        r.add(
            Status::Missing,
            "DKIM",
            format!("no [[dkim]] key for {domain}: mail leaves unsigned"),
            Some(format!(
                "mailsim admin dkim-keygen {domain} SELECTOR, then publish its TXT"
            )),
        );
    }
    for k in keys {
        let name = format!("{}._domainkey.{domain}", k.selector);
        let want = match dkim::configured_public(k) {
            Ok(p) => p,
            Err(e) => {
                r.add(Status::Error, "DKIM", e, None);
                continue;
            }
        };
        let fix = Some(txt_line(&name, &want.txt()));
        let published = match txts(lookup, &name) {
            Ok(t) => t,
            Err(e) => {
                r.add(Status::Error, "DKIM", e, None);
                continue;
            }
        };
        let Some(rec) = published.iter().find(|t| tag(t, "p").is_some()) else {
            r.add(
                Status::Missing,
                "DKIM",
                format!("no key record at {name}"),
                fix,
            );
            continue;
        };
        let k_tag = tag(rec, "k").unwrap_or_else(|| "rsa".to_string());
        if tag(rec, "p").as_deref() == Some(want.p.as_str()) && k_tag == want.k {
            r.add(
                Status::Ok,
                "DKIM",
                format!("{name} matches the configured {} key", want.k),
                None,
            );
        } else {
            r.add(
                Status::Wrong,
                "DKIM",
                format!("{name} publishes a different key than the configured one"),
                fix,
            );
        }
    }
}

fn check_ptr(r: &mut Report, lookup: &mut dyn Lookup, ip: IpAddr, host: &str) {
    let fix = Some(format!(
        "{} 3600 IN PTR {}   (in the reverse zone of whoever owns {ip})",
        fqdn(&reverse_name(ip)),
        fqdn(host)
    ));
    let names: Vec<String> = match lookup.lookup(&ip.to_string(), RecordKind::Ptr) {
        Err(DnsError::Temporary(e)) => {
            return r.add(Status::Error, "PTR", format!("{ip}: {e}"), None)
        }
        Err(_) => Vec::new(),
        Ok(rs) => rs
            .into_iter()
            .filter_map(|x| match x {
                Record::Ptr(n) => Some(n),
                _ => None,
            })
            .collect(),
    };
    if names.is_empty() {
        return r.add(
            Status::Missing,
            "PTR",
            format!("{ip} has no PTR record"),
            fix,
        );
    }
    if !names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
        return r.add(
            Status::Wrong,
            "PTR",
            format!("{ip} PTR is {}, but we say EHLO {host}", names.join(", ")),
            fix,
        );
    }
    match addresses(lookup, host) {
        Ok(ips) if ips.contains(&ip) => {
            r.add(Status::Ok, "PTR", format!("{ip} -> {host} -> {ip}"), None)
        }
        Ok(_) => r.add(
            Status::Wrong,
            "PTR",
            format!("{ip} PTR is {host}, but {host} does not resolve back to {ip}"),
            Some(address_fix(host, &[ip])),
        ),
        Err(e) => r.add(Status::Error, "PTR", e, None),
    }
}

fn check_quota(r: &mut Report, usage: &[Usage]) {
    let mut any = false;
    for u in usage {
        let Some(pct) = u.percent().filter(|p| *p >= 90) else {
            continue;
        };
        any = true;
        let state = if pct >= 100 {
            "over quota"
        } else {
            "near quota"
        };
        let mut detail = String::new();
        let _ = write!(
            detail,
            "{} {state}: {pct}% ({} octets, {} messages)",
            u.account, u.bytes, u.messages
        );
        r.add(
            Status::Wrong,
            "QUOTA",
            detail,
            Some(format!(
                "the owner deletes mail, or raise quota_bytes/quota_messages of {}",
                u.account
            )),
        );
    }
    if !any {
        r.add(
            Status::Ok,
            "QUOTA",
            "no account at 90% of its quota or more".to_string(),
            None,
        );
    }
}

#[cfg(test)]
mod tests;
