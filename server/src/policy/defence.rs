//! The MX's defence: every policy a server runs, asked in a fixed order, as one [`Policy`].
//!
//! Order matters and is Postfix's: cheap, local checks before DNS work, refusals before
//! marks. The first policy that refuses answers the check; the others are not asked (a
//! client already refused at RCPT needs no greylisting entry). Each policy decides itself
//! whether a stage concerns it, so a server with nothing configured asks nothing of the DNS.
//!
//! At the end of data the sender authentication ([`SenderAuth`]) reads the whole message
//! once and answers with its marks (`Authentication-Results`, `Received-SPF`, a Junk
//! folder) or a refusal.
//!
//! Submission listeners get a `Defence` with nothing in it: their clients authenticate
//! (issue #10 item 3: authenticated submission skips inbound checks).

use super::auth::SenderAuth;
use super::dnsbl::DnsLists;
use super::greylist::Greylist;
use super::limits::Limits;
use super::{Check, Client, Policy, Stage, Verdict};
use crate::env::Env;

/// The policies of one listener.
pub struct Defence<E: Env> {
    pub env: E,
    /// Per-client connection and rate limits (`policy/limits.rs`): asked first, local
    /// counters being cheaper than any DNS work (Postfix's anvil is asked before the
    /// restriction lists).
    pub limits: Limits<E>,
    /// DNS block and allow lists (`policy/dnsbl.rs`).
    pub lists: DnsLists<E>,
    /// Greylisting (`policy/greylist/`), after the lists: a listed client makes no entry.
    pub greylist: Option<Greylist<E>>,
    /// SPF, DKIM, DMARC and iprev at the end of data (`policy/auth/`).
    pub auth: Option<SenderAuth<E>>,
}

impl<E: Env> Defence<E> {
    /// A defence that accepts everything without a lookup.
    pub fn none(env: E) -> Defence<E> {
        Defence {
            limits: Limits::none(env.clone()),
            lists: DnsLists::new(env.clone(), vec![], vec![], vec![]),
            env,
            greylist: None,
            auth: None,
        }
    }

    async fn end_of_data(&self, check: &Check) -> Verdict {
        let Stage::EndOfData { envelope, message } = &check.stage else {
            return Verdict::Accept;
        };
        let Some(auth) = self.auth.as_ref().filter(|a| a.applies_to(&check.client)) else {
            return Verdict::Accept;
        };
        // DKIM hashes the whole body: a spooled message is read back whole, once.
        let whole;
        let bytes = match message.as_bytes() {
            Some(b) => b,
            None => match crate::env::read_message(&self.env, message).await {
                Ok(b) => {
                    whole = b;
                    &whole
                }
                Err(e) => {
                    // Not the client's fault, and nothing to judge: deliver unmarked
                    // rather than lose the message or bounce it.
                    self.env.warn(
                        "auth",
                        format_args!("could not read the message back: {e}; not checked"),
                    );
                    return Verdict::Accept;
                }
            },
        };
        auth.check(&check.client, envelope, bytes).await.verdict
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
        if let Some(g) = &self.greylist {
            match g.check(check).await {
                Verdict::Accept => {}
                refused => return refused,
            }
        }
        if matches!(check.stage, Stage::EndOfData { .. }) {
            return self.end_of_data(check).await;
        }
        Verdict::Accept
    }

    fn closed(&self, client: &Client) {
        self.limits.closed(client);
    }
}
