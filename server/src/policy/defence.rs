//! The MX's defence: every policy a server runs, asked in a fixed order, as one [`Policy`].
//!
//! Order matters and is Postfix's: cheap, local checks before DNS work, refusals before
//! marks. The first policy that refuses answers the check; the others are not asked (a
//! client already refused at RCPT needs no greylisting entry). Each policy decides itself
//! whether a stage concerns it, so a server with nothing configured asks nothing of the DNS.
//!
//! Submission listeners get a `Defence` with nothing in it: their clients authenticate
//! (issue #10 item 3: authenticated submission skips inbound checks).

use super::dnsbl::DnsLists;
use super::greylist::Greylist;
use super::{Check, Policy, Verdict};
use crate::env::Env;

/// The policies of one listener.
pub struct Defence<E: Env> {
    /// DNS block and allow lists (`policy/dnsbl.rs`).
    pub lists: DnsLists<E>,
    /// Greylisting (`policy/greylist/`), after the lists: a listed client makes no entry.
    pub greylist: Option<Greylist<E>>,
}

impl<E: Env> Defence<E> {
    /// A defence that accepts everything without a lookup.
    pub fn none(env: E) -> Defence<E> {
        Defence {
            lists: DnsLists::new(env, vec![], vec![], vec![]),
            greylist: None,
        }
    }
}

impl<E: Env> Policy for Defence<E> {
    async fn check(&self, check: &Check) -> Verdict {
        match self.lists.check(check).await {
            Verdict::Accept => {}
            refused => return refused,
        }
        if let Some(g) = &self.greylist {
            match g.check(check).await {
                Verdict::Accept => {}
                refused => return refused,
            }
        }
        Verdict::Accept
    }
}
