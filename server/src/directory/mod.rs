//! The recipient directory: answers "what happens to mail for this address?" at RCPT time,
//! and when the queue must decide where a bounce goes.
//!
//! Built from plain lists (domains, account addresses, aliases), not from the config type,
//! so that the config module depends on the directory and never the other way round.

mod lists;

use std::collections::{BTreeMap, BTreeSet};

pub use self::lists::{with_list_headers, List, ListCopy, ListDef, ListError, PostPolicy, Reached};
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
    #[error(transparent)]
    List(#[from] ListError),
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
    /// Not our domain, and this listener does not relay: 554 5.7.1.
    RelayDenied,
    /// A distribution list (its lookup key): accepted (if its posting policy lets the
    /// sender post), expanded at delivery (`directory/lists.rs`).
    List(String),
}

/// Accounts and aliases, resolved once at start-up.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    domains: BTreeSet<String>,
    accounts: BTreeSet<String>,
    aliases: BTreeMap<String, Vec<String>>,
    /// Distribution lists, added by [`Directory::with_lists`].
    lists: lists::Lists,
}

/// Alias chains deeper than this are a configuration loop; we stop expanding.
const MAX_ALIAS_DEPTH: usize = 8;

impl Directory {
    /// Builds the directory from the configured domains, account addresses and aliases
    /// (alias address or bare local part → targets).
    pub fn build<'a>(
        domain_list: &[String],
        account_list: impl IntoIterator<Item = &'a str>,
        alias_map: &BTreeMap<String, Vec<String>>,
    ) -> Result<Directory, DirectoryError> {
        let domains: BTreeSet<String> = domain_list
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let mut accounts = BTreeSet::new();
        for acct in account_list {
            let a = Address::parse(acct)
                .map_err(|e| DirectoryError::BadAddress(acct.to_string(), e))?;
            if !domains.contains(&a.domain) {
                return Err(DirectoryError::ForeignAccount(
                    acct.to_string(),
                    domain_list.to_vec(),
                ));
            }
            if !accounts.insert(a.key()) {
                return Err(DirectoryError::DuplicateAccount(acct.to_string()));
            }
        }
        let mut aliases = BTreeMap::new();
        for (from, targets) in alias_map {
            let mut keys = Vec::new();
            for t in targets {
                let a = Address::parse(t).map_err(|e| DirectoryError::BadAddress(t.clone(), e))?;
                keys.push(a.key());
            }
            if from.contains('@') {
                let a = Address::parse(from)
                    .map_err(|e| DirectoryError::BadAddress(from.clone(), e))?;
                aliases.insert(a.key(), keys);
            } else {
                // A bare local part: the alias exists in every local domain.
                for d in &domains {
                    let a = Address::parse(&format!("{from}@{d}"))
                        .map_err(|e| DirectoryError::BadAddress(from.clone(), e))?;
                    aliases.insert(a.key(), keys.clone());
                }
            }
        }
        Ok(Directory {
            domains,
            accounts,
            aliases,
            lists: Default::default(),
        })
    }

    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.contains(&domain.to_ascii_lowercase())
    }

    pub fn has_account(&self, key: &str) -> bool {
        self.accounts.contains(key)
    }

    /// Accounts in a stable order.
    pub fn accounts(&self) -> impl Iterator<Item = &str> {
        self.accounts.iter().map(String::as_str)
    }

    /// Resolves a recipient. Aliases expand recursively (depth-limited); a `+tag` in the local
    /// part is ignored for lookup (`alice+news@` reaches `alice@`), as Postfix does with
    /// `recipient_delimiter = +`.
    pub fn resolve(&self, rcpt: &Address) -> RcptVerdict {
        if !self.is_local_domain(&rcpt.domain) {
            return RcptVerdict::RelayDenied;
        }
        if let Some(verdict) = self.list_verdict(rcpt) {
            return verdict;
        }
        let mut out = BTreeSet::new();
        let mut remote = BTreeSet::new();
        if !self.expand(&rcpt.key(), 0, &mut out, &mut remote) {
            return RcptVerdict::UnknownUser;
        }
        if remote.is_empty() {
            RcptVerdict::Local(out.into_iter().collect())
        } else {
            RcptVerdict::Forward {
                mailboxes: out.into_iter().collect(),
                remote: remote
                    .into_iter()
                    .filter_map(|k| Address::parse(&k).ok())
                    .collect(),
            }
        }
    }

    fn expand(
        &self,
        key: &str,
        depth: usize,
        out: &mut BTreeSet<String>,
        remote: &mut BTreeSet<String>,
    ) -> bool {
        if depth > MAX_ALIAS_DEPTH {
            return false;
        }
        if let Some(targets) = self.aliases.get(key) {
            let mut any = false;
            for t in targets {
                any |= self.expand(t, depth + 1, out, remote);
            }
            return any;
        }
        // An alias target outside our domains is forwarded.
        if let Some((_, domain)) = key.rsplit_once('@') {
            if depth > 0 && !self.domains.contains(domain) {
                remote.insert(key.to_string());
                return true;
            }
        }
        if self.accounts.contains(key) {
            out.insert(key.to_string());
            return true;
        }
        if let Some((local, domain)) = key.split_once('@') {
            if let Some((base, _tag)) = local.split_once('+') {
                return self.expand(&format!("{base}@{domain}"), depth + 1, out, remote);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        let aliases = [
            (
                "team@example.org",
                &["alice@example.org", "bob@example.org"][..],
            ),
            ("postmaster", &["alice@example.org"]),
            ("loop@example.org", &["loop@example.org"]),
            (
                "fwd@example.org",
                &["alice@example.org", "Carol@Elsewhere.NET"],
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|t| t.to_string()).collect()))
        .collect();
        Directory::build(
            &["example.org".into()],
            ["alice@example.org", "bob@example.org"],
            &aliases,
        )
        .unwrap()
    }

    fn verdict(s: &str) -> RcptVerdict {
        dir().resolve(&Address::parse(s).unwrap())
    }

    #[test]
    fn resolves_accounts_aliases_and_tags() {
        assert_eq!(
            verdict("ALICE@example.org"),
            RcptVerdict::Local(vec!["alice@example.org".into()])
        );
        assert_eq!(
            verdict("team@example.org"),
            RcptVerdict::Local(vec!["alice@example.org".into(), "bob@example.org".into()])
        );
        assert_eq!(
            verdict("postmaster@example.org"),
            RcptVerdict::Local(vec!["alice@example.org".into()])
        );
        assert_eq!(
            verdict("bob+lists@example.org"),
            RcptVerdict::Local(vec!["bob@example.org".into()])
        );
        assert_eq!(verdict("carol@example.org"), RcptVerdict::UnknownUser);
        assert_eq!(verdict("loop@example.org"), RcptVerdict::UnknownUser);
        assert_eq!(verdict("x@elsewhere.net"), RcptVerdict::RelayDenied);
        assert_eq!(
            verdict("fwd@example.org"),
            RcptVerdict::Forward {
                mailboxes: vec!["alice@example.org".into()],
                remote: vec![Address::parse("carol@elsewhere.net").unwrap()],
            }
        );
    }

    #[test]
    fn rejects_foreign_and_duplicate_accounts() {
        let domains = ["example.org".to_string()];
        assert!(matches!(
            Directory::build(&domains, ["a@other.net"], &BTreeMap::new()),
            Err(DirectoryError::ForeignAccount(..))
        ));
        assert!(matches!(
            Directory::build(
                &domains,
                ["a@example.org", "A@example.org"],
                &BTreeMap::new()
            ),
            Err(DirectoryError::DuplicateAccount(..))
        ));
    }
}
