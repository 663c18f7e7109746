//! DNS block and allow lists (RFC 5782): is the connecting client's address listed?
//!
//! A client `192.0.2.99` is looked up as `99.2.0.192.<zone>` (IPv6: its 32 nibbles
//! reversed, RFC 5782 §2.4) with an A query. An answer in `127.0.0.0/8` means listed; the
//! zone's `codes` narrow that down to the return codes this server acts on (Spamhaus ZEN
//! answers 127.0.0.2 for SBL, 127.0.0.10/11 for PBL, ...); any other answer, a
//! non-loopback one in particular, is the sign of a resolver that rewrites NXDOMAIN and is
//! ignored. The TXT record of the same name, when there is one, is the list's reason and is
//! quoted in the reply, as Postfix's `reject_rbl_client` does:
//! `554 5.7.1 Service unavailable; Client host [192.0.2.99] blocked using bl.example; <TXT>`.
//!
//! **A lookup that fails never rejects**: SERVFAIL or a timeout counts as "not listed" (and is
//! traced), so a broken list cannot stop mail. An allow list (`[[dnswl]]`, Postfix's
//! `permit_dnswl_client`) is asked first: a client listed there skips every block list.
//! Clients that may relay (`relay_networks`) and authenticated clients are never checked
//! (issue #10 item 3): they are ours.
//!
//! Where the refusal comes is configurable per zone, `stage = "connect"` (554 instead of
//! the greeting, RFC 5321 §3.1) or `stage = "rcpt"` (the default, as Postfix's
//! `smtpd_delay_reject = yes`: the client learns the sender and recipients were refused,
//! and the log has them), or `stage = "score"`: never refused, a listing only adds the
//! zone's `RCVD_IN_*` score to the content score at the end of data (SpamAssassin's use of
//! a list: one list is not proof, a listing plus spammy content is; needs `[scoring]`).

use std::future::Future;
use std::net::IpAddr;

use serde::Deserialize;

use super::{Check, IpNet, Policy, Refusal, Stage, Verdict};
use crate::env::{DnsError, Env, Record, RecordKind};

/// Where a block list is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListStage {
    /// Instead of the greeting: `554`, then the connection is closed.
    Connect,
    /// At each RCPT: `554 5.7.1` for the recipient.
    #[default]
    Rcpt,
    /// Not refused: the listing is a content-scoring input (`RCVD_IN_<ZONE>`).
    Score,
}

/// One `[[dnsbl]]` or `[[dnswl]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsListConfig {
    /// The list's zone, e.g. `zen.spamhaus.org`.
    pub zone: String,
    /// Return codes that count (e.g. `["127.0.0.2"]`); empty: any answer in 127.0.0.0/8.
    #[serde(default)]
    pub codes: Vec<IpAddr>,
    /// Block lists only: where a listed client is refused.
    #[serde(default)]
    pub stage: ListStage,
}

impl DnsListConfig {
    /// A zone is a domain name; return codes are 127.0.0.0/8 addresses (RFC 5782 §2.3:
    /// anything else is never an answer a list gives).
    pub fn validate(&self) -> Result<(), String> {
        let zone = self.zone.trim_end_matches('.');
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if zone.is_empty() || zone.len() > 200 || !zone.split('.').all(label_ok) {
            return Err(format!("zone {:?} is not a domain name", self.zone));
        }
        if let Some(c) = self
            .codes
            .iter()
            .find(|c| !c.to_canonical().is_loopback() || c.is_ipv6())
        {
            return Err(format!(
                "{}: return code {c} is not in 127.0.0.0/8",
                self.zone
            ));
        }
        Ok(())
    }
}

/// The block/allow-list policy of a server (see the module docs).
#[derive(Clone, Debug)]
pub struct DnsLists<E> {
    env: E,
    block: Vec<DnsListConfig>,
    allow: Vec<DnsListConfig>,
    /// Postfix's `mynetworks`: never checked.
    trusted: Vec<IpNet>,
}

/// A client found on a list: the code it answered and the list's reason, if it gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Listing {
    code: IpAddr,
    reason: Option<String>,
}

impl<E: Env> DnsLists<E> {
    pub fn new(
        env: E,
        block: Vec<DnsListConfig>,
        allow: Vec<DnsListConfig>,
        trusted: Vec<IpNet>,
    ) -> Self {
        DnsLists {
            env,
            block,
            allow,
            trusted,
        }
    }

    /// The verdict for `check` (see the module docs).
    pub async fn verdict(&self, check: &Check) -> Verdict {
        let stage = match check.stage {
            Stage::Connect => ListStage::Connect,
            Stage::Rcpt { .. } => ListStage::Rcpt,
            _ => return Verdict::Accept,
        };
        let ip = check.client.remote.ip().to_canonical();
        if check.client.authenticated.is_some()
            || self.trusted.iter().any(|n| n.contains(ip))
            || !self.block.iter().any(|l| l.stage == stage)
        {
            return Verdict::Accept;
        }
        for list in &self.allow {
            if let Some(l) = self.listing(list, ip).await {
                self.env.trace(
                    "dnsbl",
                    format_args!("client [{ip}] allowed by {} ({})", list.zone, l.code),
                );
                return Verdict::Accept;
            }
        }
        for list in self.block.iter().filter(|l| l.stage == stage) {
            let Some(l) = self.listing(list, ip).await else {
                continue;
            };
            // `stage` is Connect or Rcpt here: a scoring list never refuses.
            let reason = l.reason.as_deref().map(printable_reason);
            self.env.trace(
                "dnsbl",
                format_args!(
                    "client [{ip}] listed in {} ({}): {}",
                    list.zone,
                    l.code,
                    reason.as_deref().unwrap_or("no reason given")
                ),
            );
            let mut text = format!(
                "Service unavailable; Client host [{ip}] blocked using {}",
                list.zone
            );
            if let Some(r) = reason {
                text.push_str("; ");
                text.push_str(&r);
            }
            return Verdict::Reject(Refusal::new(554, (5, 7, 1), text));
        }
        Verdict::Accept
    }

    /// The scoring lists (`stage = "score"`) the client is on, in config order: the content
    /// scorer's `RCVD_IN_*` inputs. Empty for clients that are never checked (ours, or on
    /// an allow list) and when a lookup fails.
    pub async fn scored(&self, client: &super::Client) -> Vec<String> {
        let ip = client.remote.ip().to_canonical();
        if client.authenticated.is_some()
            || self.trusted.iter().any(|n| n.contains(ip))
            || !self.block.iter().any(|l| l.stage == ListStage::Score)
        {
            return Vec::new();
        }
        for list in &self.allow {
            if self.listing(list, ip).await.is_some() {
                return Vec::new();
            }
        }
        let mut zones = Vec::new();
        for list in self.block.iter().filter(|l| l.stage == ListStage::Score) {
            if let Some(l) = self.listing(list, ip).await {
                self.env.trace(
                    "dnsbl",
                    format_args!("client [{ip}] listed in {} ({}): scored", list.zone, l.code),
                );
                zones.push(list.zone.clone());
            }
        }
        zones
    }

    /// Whether `ip` is on `list`, with the code that counts and the TXT reason.
    async fn listing(&self, list: &DnsListConfig, ip: IpAddr) -> Option<Listing> {
        let name = query_name(ip, &list.zone);
        let answer = match self.env.lookup(&name, RecordKind::A).await {
            Ok(records) => records,
            Err(DnsError::NxDomain | DnsError::NoRecords) => return None,
            Err(DnsError::Temporary(why)) => {
                self.env.trace(
                    "dnsbl",
                    format_args!("{name}: {why}; counted as not listed"),
                );
                return None;
            }
        };
        let code = answer.into_iter().find_map(|r| match r {
            Record::A(a) if a.is_loopback() => {
                let a = IpAddr::V4(a);
                (list.codes.is_empty() || list.codes.contains(&a)).then_some(a)
            }
            _ => None,
        })?;
        let reason = match self.env.lookup(&name, RecordKind::Txt).await {
            Ok(records) => records.into_iter().find_map(|r| match r {
                Record::Txt(t) => Some(t),
                _ => None,
            }),
            Err(_) => None,
        };
        Some(Listing { code, reason })
    }
}

impl<E: Env> Policy for DnsLists<E> {
    fn check(&self, check: &Check) -> impl Future<Output = Verdict> + Send {
        self.verdict(check)
    }
}

/// The name to look up for `ip` in `zone` (RFC 5782 §2.1, §2.4).
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0xf, byte >> 4] {
                    name.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                    name.push('.');
                }
            }
            name.push_str(zone);
            name
        }
    }
}

/// A list's TXT reason as it may go into a reply line: printable ASCII only, at most 200
/// characters (a reply line is at most 512 octets, RFC 5321 §4.5.3.1.5).
fn printable_reason(txt: &str) -> String {
    txt.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests;
