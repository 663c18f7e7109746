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
use super::limits::Limits;
use super::{Check, Client, Policy, Verdict};
use crate::env::Env;

/// The policies of one listener.
pub struct Defence<E: Env> {
    /// Per-client connection and rate limits (`policy/limits.rs`): asked first, local
    /// counters being cheaper than any DNS work (Postfix's anvil is asked before the
    /// restriction lists).
    pub limits: Limits<E>,
    /// DNS block and allow lists (`policy/dnsbl.rs`).
    pub lists: DnsLists<E>,
}

impl<E: Env> Defence<E> {
    /// A defence that accepts everything without a lookup.
    pub fn none(env: E) -> Defence<E> {
        Defence {
            limits: Limits::none(env.clone()),
            lists: DnsLists::new(env, vec![], vec![], vec![]),
        }
    }
}

impl<E: Env> Policy for Defence<E> {
    async fn check(&self, check: &Check) -> Verdict {
        match self.limits.check(check).await {
            Verdict::Accept => {}
            refused => return refused,
        }
        match self.lists.check(check).await {
            Verdict::Accept => {}
            refused => return refused,
        }
        Verdict::Accept
    }

    fn closed(&self, client: &Client) {
        self.limits.closed(client);
    }
}
