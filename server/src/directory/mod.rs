//! The recipient directory: answers "what happens to mail for this address?" at RCPT time,
//! when the queue must decide where a bounce goes, and "may this account use this sender
//! address?" when an authenticated user submits (`owns.rs`).
//!
//! Built from plain lists (domains, accounts, aliases, domain aliases, catch-alls), not from
//! the config type, so that the config module depends on the directory and never the other
//! way round. Resolution itself is in `resolve.rs`.

mod owns;
mod resolve;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::mail::{Address, AddressError};

/// A directory that does not make sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error("invalid address {0:?}: {1}")]
    BadAddress(String, AddressError),
    #[error("account {0:?} is not in a local domain (domains = {1:?})")]
    ForeignAccount(String, Vec<String>),
    #[error("duplicate account {0:?}")]
    DuplicateAccount(String),
    /// `domain_aliases`: the target must be one of `domains` (no chains, no foreign target:
    /// an alias domain's mail must end in our mailboxes, never be relayed by the alias).
    #[error("domain alias {0:?} points at {1:?}, which is not in domains")]
    AliasTargetNotLocal(String, String),
    /// `domain_aliases`: a domain cannot be both ours and an alias of another of ours.
    #[error("domain alias {0:?} is also in domains")]
    AliasDomainIsLocal(String),
    #[error("catch-all for {0:?}: not in domains")]
    CatchAllNotLocal(String),
    /// A catch-all whose local target reaches no mailbox (unknown, or a disabled account)
    /// would accept mail at RCPT and then have nowhere to put it.
    #[error("catch-all for {0:?} goes to {1:?}, which reaches no mailbox")]
    CatchAllToNowhere(String, String),
    #[error("send_as {1:?} of {0:?} is neither an address nor *@domain")]
    BadSendAs(String, String),
}

/// What RCPT TO should do with an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptVerdict {
    /// Deliver to these local mailboxes (account keys), after alias expansion.
    Local(Vec<String>),
    /// An alias that expands (also) to remote addresses: these local mailboxes plus these
    /// forward-paths, which go through the outbound queue.
    Forward {
        mailboxes: Vec<String>,
        remote: Vec<Address>,
    },
    /// A local domain, but nobody of that name: 550 5.1.1.
    UnknownUser,
    /// A disabled account (or an alias reaching only disabled accounts): 550 5.2.1, RFC
    /// 3463's "mailbox disabled, not accepting messages".
    Disabled,
    /// Not our domain, and this listener does not relay: 554 5.7.1.
    RelayDenied,
}

/// One account as the directory needs it. `From<&str>` gives an enabled account with no
/// `send_as`, so tests and the fuzz target can pass plain addresses.
#[derive(Clone, Copy, Debug)]
pub struct AccountEntry<'a> {
    pub address: &'a str,
    pub disabled: bool,
    /// Further sender addresses (`addr` or `*@domain`) the account may submit as.
    pub send_as: &'a [String],
}

impl<'a> From<&'a str> for AccountEntry<'a> {
    fn from(address: &'a str) -> Self {
        AccountEntry {
            address,
            disabled: false,
            send_as: &[],
        }
    }
}

/// Accounts and aliases, resolved once at start-up.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    domains: BTreeSet<String>,
    accounts: BTreeSet<String>,
    /// Account keys that receive nothing (and, through the auth module, cannot log in).
    disabled: BTreeSet<String>,
    /// Account key → extra sender patterns, lower-cased (`a@b` or `*@domain`).
    send_as: BTreeMap<String, Vec<String>>,
    aliases: BTreeMap<String, Vec<String>>,
    /// Alias domain → the local domain it stands for.
    domain_aliases: BTreeMap<String, String>,
    /// Local domain → the catch-all target's key.
    catch_all: BTreeMap<String, String>,
}

/// Alias chains deeper than this are a configuration loop; we stop expanding.
const MAX_ALIAS_DEPTH: usize = 8;

fn domain_key(d: &str) -> String {
    d.trim_end_matches('.').to_ascii_lowercase()
}

fn parse(s: &str) -> Result<Address, DirectoryError> {
    Address::parse(s).map_err(|e| DirectoryError::BadAddress(s.to_string(), e))
}

impl Directory {
    /// Builds the directory from the configured domains, accounts and aliases (alias address
    /// or bare local part → targets). Domain aliases and catch-alls are added after, with
    /// [`Directory::with_domain_aliases`] and [`Directory::with_catch_all`] (in that order:
    /// a catch-all target is checked by resolving it).
    pub fn build<'a, A: Into<AccountEntry<'a>>>(
        domain_list: &[String],
        account_list: impl IntoIterator<Item = A>,
        alias_map: &BTreeMap<String, Vec<String>>,
    ) -> Result<Directory, DirectoryError> {
        let domains: BTreeSet<String> = domain_list.iter().map(|d| domain_key(d)).collect();
        let mut dir = Directory {
            domains,
            ..Directory::default()
        };
        for acct in account_list {
            let acct: AccountEntry<'a> = acct.into();
            let a = parse(acct.address)?;
            if !dir.domains.contains(&a.domain) {
                return Err(DirectoryError::ForeignAccount(
                    acct.address.to_string(),
                    domain_list.to_vec(),
                ));
            }
            let key = a.key();
            if !dir.accounts.insert(key.clone()) {
                return Err(DirectoryError::DuplicateAccount(acct.address.to_string()));
            }
            if acct.disabled {
                dir.disabled.insert(key.clone());
            }
            let mut patterns = Vec::new();
            for p in acct.send_as {
                patterns.push(owns::send_as_pattern(p).ok_or_else(|| {
                    DirectoryError::BadSendAs(acct.address.to_string(), p.clone())
                })?);
            }
            if !patterns.is_empty() {
                dir.send_as.insert(key, patterns);
            }
        }
        for (from, targets) in alias_map {
            let keys = targets
                .iter()
                .map(|t| parse(t).map(|a| a.key()))
                .collect::<Result<Vec<_>, _>>()?;
            if from.contains('@') {
                dir.aliases.insert(parse(from)?.key(), keys);
            } else {
                // A bare local part: the alias exists in every local domain.
                for d in &dir.domains {
                    let a = Address::parse(&format!("{from}@{d}"))
                        .map_err(|e| DirectoryError::BadAddress(from.clone(), e))?;
                    dir.aliases.insert(a.key(), keys.clone());
                }
            }
        }
        Ok(dir)
    }

    /// Adds domain aliases (alias domain → local domain): `bob@example.net` is handled as
    /// `bob@example.org`, like Postfix's `@example.net @example.org` virtual alias. The
    /// alias domain counts as local for the relay rule. An alias naming an exact address in
    /// the alias domain (`sales@example.net`) still wins, as the more specific entry does in
    /// Postfix's virtual(5) lookup order.
    pub fn with_domain_aliases(
        mut self,
        map: &BTreeMap<String, String>,
    ) -> Result<Directory, DirectoryError> {
        for (alias, target) in map {
            let (a, t) = (domain_key(alias), domain_key(target));
            if self.domains.contains(&a) {
                return Err(DirectoryError::AliasDomainIsLocal(alias.clone()));
            }
            if !self.domains.contains(&t) {
                return Err(DirectoryError::AliasTargetNotLocal(
                    alias.clone(),
                    target.clone(),
                ));
            }
            self.domain_aliases.insert(a, t);
        }
        Ok(self)
    }

    /// Adds catch-alls (local domain → address): an unknown local part of the domain goes
    /// to the target. Accounts and aliases win, a disabled account stays disabled (its mail
    /// does not slip to the catch-all), and the target must reach somewhere.
    pub fn with_catch_all(
        mut self,
        map: &BTreeMap<String, String>,
    ) -> Result<Directory, DirectoryError> {
        for (domain, target) in map {
            let d = domain_key(domain);
            if !self.domains.contains(&d) {
                return Err(DirectoryError::CatchAllNotLocal(domain.clone()));
            }
            let t = parse(target)?;
            if self.is_local_domain(&t.domain) {
                match self.resolve(&t) {
                    RcptVerdict::Local(m) if !m.is_empty() => {}
                    RcptVerdict::Forward { .. } => {}
                    _ => {
                        return Err(DirectoryError::CatchAllToNowhere(
                            domain.clone(),
                            target.clone(),
                        ))
                    }
                }
            }
            self.catch_all.insert(d, t.key());
        }
        Ok(self)
    }

    /// Ours: a local domain or an alias of one (both are final destinations, never relayed).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain_key(domain);
        self.domains.contains(&d) || self.domain_aliases.contains_key(&d)
    }

    pub fn has_account(&self, key: &str) -> bool {
        self.accounts.contains(key)
    }

    /// Whether this account is disabled (receives nothing, cannot log in).
    pub fn is_disabled(&self, key: &str) -> bool {
        self.disabled.contains(key)
    }

    /// Accounts in a stable order (disabled ones too: their mailboxes still exist).
    pub fn accounts(&self) -> impl Iterator<Item = &str> {
        self.accounts.iter().map(String::as_str)
    }
}
