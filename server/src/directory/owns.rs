//! Which sender addresses an authenticated account may use (issue #8 item 3), like
//! Postfix's `reject_sender_login_mismatch` with `smtpd_sender_login_maps` built from the
//! virtual aliases: the account's own address, a `+tag` of it, any address of ours that
//! expands to it (aliases, domain aliases), and its `send_as` entries.
//!
//! A catch-all does *not* make its target the owner of every unknown address of the
//! domain: that would let one mailbox send as anyone who does not exist yet. An account
//! that really speaks for a whole domain says so with `send_as = ["*@domain"]`.

use super::resolve::Reached;
use super::{domain_key, Directory};
use crate::mail::Address;

/// A `send_as` entry as a lower-cased pattern (`a@b` or `*@domain`), or None if it is
/// neither.
pub(super) fn send_as_pattern(p: &str) -> Option<String> {
    match p.strip_prefix("*@") {
        Some(domain) => {
            let d = domain_key(domain);
            let valid = !d.is_empty()
                && !d.contains(['@', '*'])
                && Address::parse(&format!("x@{d}")).is_ok();
            valid.then(|| format!("*@{d}"))
        }
        None if p.contains('*') => None,
        None => Address::parse(p).ok().map(|a| a.key()),
    }
}

impl Directory {
    /// Whether the account `identity` (the AUTH identity) may use `sender` as envelope
    /// sender or `From:` address.
    pub fn may_send_as(&self, identity: &str, sender: &Address) -> bool {
        let id = match Address::parse(identity) {
            Ok(a) => a.key(),
            Err(_) => identity.to_lowercase(),
        };
        let key = sender.key();
        if key == id {
            return true;
        }
        if let Some(patterns) = self.send_as.get(&id) {
            let canonical = self.canonical(&key);
            let domain_of = |k: &str| k.rsplit_once('@').map(|(_, d)| format!("*@{d}"));
            let hit = patterns.iter().any(|p| {
                *p == key
                    || *p == canonical
                    || domain_of(&key).as_ref() == Some(p)
                    || domain_of(&canonical).as_ref() == Some(p)
            });
            if hit {
                return true;
            }
        }
        if !self.is_local_domain(&sender.domain) {
            return false;
        }
        // Own address via +tag or domain alias, or an alias reaching it (no catch-all).
        let mut reached = Reached::default();
        self.expand(&key, 0, &mut reached);
        reached.mailboxes.contains(&id)
    }
}
