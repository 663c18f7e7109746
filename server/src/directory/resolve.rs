//! Resolution of one recipient: domain alias, then aliases (recursively, depth-limited),
//! accounts, `+tag`s, and last the domain's catch-all.
//!
//! Local parts are split from the domain at the *last* `@` everywhere: smtp-proto removes
//! the quotes of `"a@b"@us` (and a source route), so a local part may itself hold an `@`,
//! and the part after the last one is the only domain there is. Splitting at the first
//! would read `"x@evil.example"@us` as a mailbox of `evil.example@us` — the confusion the
//! quoted-local-part relay trick relies on (Postfix's `resolve_dequoted_address`).

use std::collections::BTreeSet;

use super::{Directory, RcptVerdict, MAX_ALIAS_DEPTH};
use crate::mail::Address;

/// What an expansion reached.
#[derive(Default)]
pub(super) struct Reached {
    pub mailboxes: BTreeSet<String>,
    pub remote: BTreeSet<String>,
    /// A disabled account was reached (and skipped).
    pub disabled: bool,
}

impl Directory {
    /// Resolves a recipient. Aliases expand recursively (depth-limited); a `+tag` in the
    /// local part is ignored for lookup (`alice+news@` reaches `alice@`), as Postfix does
    /// with `recipient_delimiter = +`. An alias domain is rewritten to its local domain
    /// first. An address that reaches nothing goes to its domain's catch-all, unless it is
    /// an alias (whose targets are all gone) or a disabled account.
    pub fn resolve(&self, rcpt: &Address) -> RcptVerdict {
        if !self.is_local_domain(&rcpt.domain) {
            return RcptVerdict::RelayDenied;
        }
        let key = self.canonical(&rcpt.key());
        let mut reached = Reached::default();
        if !self.expand(&key, 0, &mut reached) && !reached.disabled {
            let domain = key.rsplit_once('@').map_or("", |(_, d)| d);
            match self.catch_all.get(domain) {
                Some(target) if !self.aliases.contains_key(&key) => {
                    self.expand(target, 1, &mut reached);
                }
                _ => {}
            }
        }
        let Reached {
            mailboxes,
            remote,
            disabled,
        } = reached;
        if mailboxes.is_empty() && remote.is_empty() {
            return match disabled {
                true => RcptVerdict::Disabled,
                false => RcptVerdict::UnknownUser,
            };
        }
        if remote.is_empty() {
            RcptVerdict::Local(mailboxes.into_iter().collect())
        } else {
            RcptVerdict::Forward {
                mailboxes: mailboxes.into_iter().collect(),
                remote: remote
                    .into_iter()
                    .filter_map(|k| Address::parse(&k).ok())
                    .collect(),
            }
        }
    }

    /// The key with an alias domain replaced by its local domain, unless an alias names
    /// this exact address.
    pub(super) fn canonical(&self, key: &str) -> String {
        if self.aliases.contains_key(key) {
            return key.to_string();
        }
        match key.rsplit_once('@') {
            Some((local, domain)) => match self.domain_aliases.get(domain) {
                Some(target) => format!("{local}@{target}"),
                None => key.to_string(),
            },
            None => key.to_string(),
        }
    }

    /// Expands `key` into `reached`; whether it reached any mailbox or remote address.
    pub(super) fn expand(&self, key: &str, depth: usize, reached: &mut Reached) -> bool {
        if depth > MAX_ALIAS_DEPTH {
            return false;
        }
        let key = self.canonical(key);
        if let Some(targets) = self.aliases.get(&key) {
            let mut any = false;
            for t in targets {
                any |= self.expand(t, depth + 1, reached);
            }
            return any;
        }
        let Some((local, domain)) = key.rsplit_once('@') else {
            return false;
        };
        // An alias target outside our domains is forwarded.
        if depth > 0 && !self.is_local_domain(domain) {
            reached.remote.insert(key.to_string());
            return true;
        }
        if self.accounts.contains(&key) {
            if self.disabled.contains(&key) {
                reached.disabled = true;
                return false;
            }
            reached.mailboxes.insert(key.to_string());
            return true;
        }
        if let Some((base, _tag)) = local.split_once('+') {
            return self.expand(&format!("{base}@{domain}"), depth + 1, reached);
        }
        false
    }
}
