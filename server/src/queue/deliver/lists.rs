//! The lists' part of a delivery: each list recipient expanded (`directory/lists/expand.rs`)
//! into copies, and each copy stored and queued like any accepted message, before the
//! session's 250.

use crate::directory::{with_list_headers, RcptVerdict, Reached};
use crate::env::Env;
use crate::mail::{DeliveryError, Envelope, Recipient};

use super::Sink;

impl<E: Env> Sink<E> {
    /// Delivers every list copy of `envelope`; `None` when no recipient is a list. One copy
    /// failing fails the part (the client retries; copies already made may then arrive
    /// twice: at least once, never lost).
    pub(super) async fn deliver_lists(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Option<Result<String, DeliveryError>> {
        // A list recipient is one with nothing resolved at RCPT time (lists expand here).
        let lists: Vec<String> = envelope
            .recipients
            .iter()
            .filter(|r| r.mailboxes.is_empty() && r.remote.is_empty())
            .filter_map(|r| match self.directory.resolve(&r.address) {
                RcptVerdict::List(key) => Some(key),
                _ => None,
            })
            .collect();
        if lists.is_empty() {
            return None;
        }
        let env = self.mailboxes.env();
        let mut reached = Reached::default();
        reached
            .mailboxes
            .extend(envelope.mailboxes().into_iter().map(str::to_string));
        reached
            .remote
            .extend(envelope.remote_recipients().into_iter().map(|a| a.key()));
        let (copies, notes) = self.directory.expand_lists(
            &lists,
            envelope.mail_from.as_ref(),
            message,
            &mut reached,
        );
        for note in notes {
            env.trace("lists", format_args!("{note}"));
        }
        let mut last = Err(DeliveryError::Temporary("no list copy".into()));
        for copy in copies {
            let body = match copy.headers.is_empty() {
                true => message.to_vec(),
                false => with_list_headers(message, &copy.headers),
            };
            // A full member does not hold up the list for everyone (Mailman delivers to the
            // rest); the store still refuses the copy whole if a race fills a mailbox. 128:
            // room for the Return-Path and Delivered-To lines the store adds.
            let quotas = self.mailboxes.quotas();
            let mut mailboxes = Vec::with_capacity(copy.mailboxes.len());
            for m in copy.mailboxes {
                match quotas.fits(&m, body.len() as u64 + 128) {
                    true => mailboxes.push(m),
                    false => env.trace(
                        "lists",
                        format_args!("list <{}>: {m} is over quota: skipped", copy.list),
                    ),
                }
            }
            let sender = copy
                .sender
                .as_ref()
                .map_or_else(|| "<>".to_string(), |s| format!("<{s}>"));
            env.trace(
                "lists",
                format_args!(
                    "list <{}>: copy from {sender} to {} local, {} remote",
                    copy.list,
                    mailboxes.len(),
                    copy.remote.len()
                ),
            );
            let copy_envelope = Envelope {
                helo: envelope.helo.clone(),
                mail_from: copy.sender,
                recipients: vec![Recipient {
                    address: copy.list,
                    mailboxes,
                    remote: copy.remote,
                }],
                received_at: envelope.received_at,
                authenticated: None,
            };
            let local = !copy_envelope.mailboxes().is_empty();
            let remote: Vec<_> = copy_envelope.recipients[0].remote.clone();
            let (local, remote) = tokio::join!(
                async {
                    match local {
                        true => Some(self.mailboxes.deliver(&copy_envelope, &body).await),
                        false => None,
                    }
                },
                async {
                    match remote.is_empty() {
                        true => None,
                        false => Some(
                            self.outbound
                                .enqueue(copy_envelope.mail_from.clone(), remote, &body)
                                .await,
                        ),
                    }
                }
            );
            match (local, remote) {
                (Some(Err(e)), _) | (_, Some(Err(e))) => return Some(Err(e)),
                (_, Some(Ok(id))) => last = Ok(id.to_string()),
                (Some(Ok(id)), None) => last = Ok(id),
                (None, None) => {}
            }
        }
        Some(match last {
            // Every member was already reached, or skipped: nothing more to make durable.
            Err(_) => Ok("lists".to_string()),
            ok => ok,
        })
    }
}
