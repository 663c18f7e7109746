//! `[greylist]` in the server config.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::table::Timing;
use crate::policy::IpNet;

/// Greylisting (RFC 6647), off unless `enabled`. Defaults are postgrey's.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistConfig {
    pub enabled: bool,
    /// How long a new triplet is deferred (postgrey `--delay`, 300 s).
    pub delay_secs: u64,
    /// The retry window: a triplet that has not come back this long after its first sight
    /// is forgotten (postgrey `--retry-window`, 2 days). Must exceed `delay_secs`.
    pub expiry_secs: u64,
    /// The client network a triplet keys on: IPv4 /24, IPv6 /64 by default.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// A client network whose triplets passed this many times skips greylisting
    /// (postgrey `--auto-whitelist-clients`, 5); 0 turns auto-allowing off.
    pub auto_allow_after: u32,
    /// How long a passed triplet, and an auto-allowed network, stays known after it was
    /// last seen (postgrey `--max-age`, 35 days).
    pub allow_lifetime_secs: u64,
    /// Clients never greylisted (besides `relay_networks` and authenticated clients).
    pub allow_networks: Vec<IpNet>,
    /// Recipients never greylisted: an address (`postmaster@example.org`) or a local part
    /// for every domain (`postmaster`, `abuse`: RFC 5321 §4.5.1 and RFC 2142 mailboxes a
    /// sender must reach without delay).
    pub allow_recipients: Vec<String>,
    /// The most triplets (and networks) kept in memory; beyond it the oldest first sights
    /// are dropped.
    pub max_entries: usize,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            enabled: false,
            delay_secs: 300,
            expiry_secs: 2 * 86_400,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            auto_allow_after: 5,
            allow_lifetime_secs: 35 * 86_400,
            allow_networks: Vec::new(),
            allow_recipients: Vec::new(),
            max_entries: 100_000,
        }
    }
}

/// A `[greylist]` value that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GreylistConfigError {
    /// The key under `greylist`, as written in TOML.
    pub key: &'static str,
    /// The offending string value, for list entries (so the loader can point at it).
    pub value: Option<String>,
    pub reason: String,
}

impl fmt::Display for GreylistConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "greylist.{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for GreylistConfigError {}

impl GreylistConfig {
    pub fn validate(&self) -> Result<(), GreylistConfigError> {
        let bad = |key, reason: String| {
            Err(GreylistConfigError {
                key,
                value: None,
                reason,
            })
        };
        if self.expiry_secs <= self.delay_secs {
            return bad(
                "expiry_secs",
                format!(
                    "must be greater than delay_secs ({}): no retry could ever pass",
                    self.delay_secs
                ),
            );
        }
        if self.ipv4_prefix > 32 {
            return bad("ipv4_prefix", "must be 0..=32".into());
        }
        if self.ipv6_prefix > 128 {
            return bad("ipv6_prefix", "must be 0..=128".into());
        }
        if self.allow_lifetime_secs == 0 {
            return bad("allow_lifetime_secs", "must be greater than 0".into());
        }
        if self.max_entries == 0 {
            return bad("max_entries", "must be greater than 0".into());
        }
        for r in &self.allow_recipients {
            if recipient_key(r).is_none() {
                return Err(GreylistConfigError {
                    key: "allow_recipients",
                    value: Some(r.clone()),
                    reason: format!("{r:?} is neither an address nor a local part"),
                });
            }
        }
        Ok(())
    }

    pub fn timing(&self) -> Timing {
        Timing {
            delay: Duration::from_secs(self.delay_secs),
            expiry: Duration::from_secs(self.expiry_secs),
            allow_lifetime: Duration::from_secs(self.allow_lifetime_secs),
            auto_allow_after: self.auto_allow_after,
            max_entries: self.max_entries,
        }
    }
}

/// An `allow_recipients` entry as it is compared: a whole address's lookup key, or a bare
/// local part lower-cased (it then matches that local part at any domain).
pub fn recipient_key(entry: &str) -> Option<String> {
    if entry.contains('@') {
        return crate::mail::Address::parse(entry).ok().map(|a| a.key());
    }
    let ok = !entry.is_empty() && entry.len() <= 64 && crate::mail::Address::is_dot_string(entry);
    ok.then(|| entry.to_lowercase())
}
