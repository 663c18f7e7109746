//! The MX's defence: every policy a server runs, asked in a fixed order, as one [`Policy`].
//!
//! Order matters and is Postfix's: cheap, local checks before DNS work, refusals before
//! marks. The first policy that refuses answers the check; the others are not asked (a
//! client already refused at RCPT needs no greylisting entry). Each policy decides itself
//! whether a stage concerns it, so a server with nothing configured asks nothing of the DNS.
//!
//! At the end of data the message is read whole once; the sender authentication
//! ([`SenderAuth`]) answers with its marks (`Authentication-Results`, `Received-SPF`, a Junk
//! folder) or a refusal, then the content score ([`Scoring`]) adds its rules' verdict (its
//! inputs include the authentication results) and `X-Spam-Score`/`X-Spam-Status`.
//!
//! Submission listeners get a `Defence` with nothing in it: their clients authenticate
//! (issue #10 item 3: authenticated submission skips inbound checks).

use super::auth::SenderAuth;
use super::dnsbl::DnsLists;
use super::greylist::Greylist;
use super::limits::Limits;
use super::score::{Action, ScoreConfig, Scorer, Signals};
use super::{Check, Client, IpNet, Marks, Policy, Refusal, Stage, Verdict};
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
    /// Content scoring at the end of data (`policy/score/`), after the authentication.
    pub scoring: Option<Scoring>,
    /// `relay_networks`: clients that are ours, never scored.
    pub trusted: Vec<IpNet>,
}

/// A content scorer and the thresholds it is judged by.
pub struct Scoring {
    pub scorer: Scorer,
    pub config: ScoreConfig,
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
            scoring: None,
            trusted: Vec::new(),
        }
    }

    async fn end_of_data(&self, check: &Check) -> Verdict {
        let Stage::EndOfData { envelope, message } = &check.stage else {
            return Verdict::Accept;
        };
        let client = &check.client;
        let auth = self.auth.as_ref().filter(|a| a.applies_to(client));
        let ours = client.authenticated.is_some()
            || self.trusted.iter().any(|n| n.contains(client.remote.ip()));
        let scoring = self.scoring.as_ref().filter(|_| !ours);
        if auth.is_none() && scoring.is_none() {
            return Verdict::Accept;
        }
        // DKIM hashes the whole body and the rules read it: a spooled message is read
        // back whole, once.
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
                        "defence",
                        format_args!("could not read the message back: {e}; not checked"),
                    );
                    return Verdict::Accept;
                }
            },
        };
        let (mut marks, findings) = match auth {
            None => (Marks::default(), None),
            Some(auth) => {
                let checked = auth.check(client, envelope, bytes).await;
                match checked.verdict {
                    Verdict::Mark(m) => (m, Some(checked.findings)),
                    Verdict::Accept => (Marks::default(), Some(checked.findings)),
                    refused => return refused,
                }
            }
        };
        if let Some(s) = scoring {
            let signals = Signals {
                spf: findings.as_ref().map(|f| f.spf.clone()),
                dkim: findings.as_ref().map(|f| f.dkim.clone()),
                dmarc: findings.as_ref().map(|f| f.dmarc.clone()),
                dnsbl: self.lists.scored(client).await,
                fcrdns: findings
                    .as_ref()
                    .filter(|f| !f.iprev.is_empty())
                    .map(|f| f.iprev == "pass"),
            };
            let score = s.scorer.score(bytes, &signals);
            let action = score.action(&s.config);
            let rules: Vec<&str> = score.hits.iter().map(|h| h.rule.as_str()).collect();
            self.env.trace(
                "score",
                format_args!(
                    "[{}] score={:.1} tests={} -> {}",
                    client.remote.ip(),
                    score.total,
                    match rules.is_empty() {
                        true => "none".to_string(),
                        false => rules.join(","),
                    },
                    match action {
                        Action::Deliver => "deliver",
                        Action::Junk => "Junk",
                        Action::Reject => "reject",
                    }
                ),
            );
            match action {
                Action::Reject => {
                    return Verdict::Reject(Refusal::new(
                        550,
                        (5, 7, 1),
                        format!(
                            "Message content rejected as spam (score {:.1}, required {:.1})",
                            score.total, s.config.reject
                        ),
                    ))
                }
                Action::Junk => marks.folder = crate::mail::Folder::Junk,
                Action::Deliver => {}
            }
            marks.fields.push_str(&score.headers(&s.config));
        }
        Verdict::Mark(marks)
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
