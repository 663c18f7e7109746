//! The lists' part of a delivery: each list recipient expanded (`directory/lists/expand.rs`)
//! into copies, and each copy stored and queued like any accepted message, before the
//! session's 250.
//!
//! A local member whose mailbox is full does not hold up the list for everyone (Mailman
//! delivers to the rest): the copy skips that member, and a failure DSN (5.2.2, RFC 3463
//! "mailbox full") goes to the list's bounce address, so the owner learns of it as they
//! would of a remote member's bounce. It is made durable with the rest, before the 250.

use crate::directory::{with_list_headers, ListCopy, RcptVerdict, Reached};
use crate::env::Env;
use crate::mail::{Address, DeliveryError, Envelope, Message, Recipient};
use crate::queue::dsn::{build_dsn, DsnAction, DsnInput, DsnKind, DsnRecipient};

use super::Sink;

/// Room for the `Return-Path` and `Delivered-To` lines the store adds to each copy.
const STORE_LINES: u64 = 128;

impl<E: Env> Sink<E> {
    /// Delivers every list copy of `envelope`; `None` when no recipient is a list. One copy
    /// failing fails the part (the client retries; copies already made may then arrive
    /// twice: at least once, never lost).
    pub(super) async fn deliver_lists(
        &self,
        envelope: &Envelope,
        message: &Message,
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
            message.head(),
            &mut reached,
        );
        for note in notes {
            env.trace("lists", format_args!("{note}"));
        }
        let mut last = None;
        for copy in copies {
            match self.deliver_copy(envelope, message, copy).await {
                Ok(Some(id)) => last = Some(id),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        // Every member already reached, or skipped: nothing more to make durable.
        Some(Ok(last.unwrap_or_else(|| "lists".to_string())))
    }

    async fn deliver_copy(
        &self,
        envelope: &Envelope,
        message: &Message,
        copy: ListCopy,
    ) -> Result<Option<String>, DeliveryError> {
        let env = self.mailboxes.env();
        // The headers go into the header block, which is in memory; a spooled rest is
        // shared by every copy, never read.
        let body = match copy.headers.is_empty() {
            true => message.clone(),
            false => message.with_head(with_list_headers(message.head(), &copy.headers)),
        };
        // The store still refuses the copy whole if a race fills a mailbox after this.
        let quotas = self.mailboxes.quotas();
        let (mailboxes, full): (Vec<String>, Vec<String>) = copy
            .mailboxes
            .into_iter()
            .partition(|m| quotas.fits(m, body.len() + STORE_LINES));
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
            mail_from: copy.sender.clone(),
            recipients: vec![Recipient {
                address: copy.list.clone(),
                mailboxes,
                remote: copy.remote,
                ..Default::default()
            }],
            received_at: envelope.received_at,
            authenticated: None,
            ..Default::default()
        };
        let id = self.store_and_queue(&copy_envelope, &body).await?;
        if !full.is_empty() {
            self.over_quota_dsn(
                envelope,
                &copy.list,
                copy.sender.as_ref(),
                &full,
                body.head(),
            )
            .await;
        }
        Ok(id)
    }

    /// The failure DSN for members skipped because their mailbox is full, to the copy's
    /// sender (the list's bounce address; none for `<>`).
    async fn over_quota_dsn(
        &self,
        envelope: &Envelope,
        list: &Address,
        sender: Option<&Address>,
        full: &[String],
        body: &[u8],
    ) {
        let env = self.mailboxes.env();
        for m in full {
            env.trace(
                "lists",
                format_args!("list <{list}>: {m} is over quota: skipped, DSN to the owner"),
            );
        }
        let Some(to) = sender else {
            return;
        };
        let (mailboxes, remote) = match self.directory.resolve(to) {
            RcptVerdict::Local(m) => (m, Vec::new()),
            RcptVerdict::Forward { mailboxes, remote } => (mailboxes, remote),
            _ => {
                env.trace(
                    "lists",
                    format_args!("DSN recipient <{to}> is unknown: dropped"),
                );
                return;
            }
        };
        let now = env.now();
        let hostname = self.outbound.hostname();
        let recipients: Vec<DsnRecipient> = full
            .iter()
            .filter_map(|m| Address::parse(m).ok())
            .map(|address| DsnRecipient {
                address,
                original: None,
                action: DsnAction::Failed,
                status: (5, 2, 2),
                remote_mta: None,
                diagnostic: Some("552 5.2.2 Mailbox full".into()),
                last_attempt: Some(now),
                will_retry_until: None,
            })
            .collect();
        let report = build_dsn(&DsnInput {
            kind: DsnKind::Failure,
            reporting_mta: hostname,
            original_envelope_id: None,
            arrival_date: envelope.received_at,
            now,
            sender: to,
            recipients: &recipients,
            original_message: body,
            message_id: format!(
                "<{}.{:016x}.quota@{hostname}>",
                now.as_millis(),
                env.random_u64()
            ),
            return_full: false,
        });
        let dsn = Envelope {
            helo: hostname.to_string(),
            mail_from: None,
            recipients: vec![Recipient {
                address: to.clone(),
                mailboxes,
                remote,
                ..Default::default()
            }],
            received_at: now,
            authenticated: None,
            ..Default::default()
        };
        // Like the queue's own DSNs: an undeliverable one is logged, and does not fail the
        // post it reports on (the members who got their copy must not get it twice).
        if let Err(e) = self.store_and_queue(&dsn, &Message::inline(report)).await {
            env.trace("lists", format_args!("DSN to <{to}> failed: {e:?}"));
        }
    }

    /// Stores the envelope's mailboxes and queues its remote recipients, side by side; the
    /// queue id if queued, else the store's id, `None` if nothing to do.
    async fn store_and_queue(
        &self,
        envelope: &Envelope,
        body: &Message,
    ) -> Result<Option<String>, DeliveryError> {
        let local = !envelope.mailboxes().is_empty();
        let remote: Vec<Address> = envelope.remote_recipients().into_iter().cloned().collect();
        let (local, remote) = tokio::join!(
            async {
                match local {
                    true => Some(self.mailboxes.deliver(envelope, body).await),
                    false => None,
                }
            },
            async {
                match remote.is_empty() {
                    true => None,
                    false => Some(
                        self.outbound
                            .enqueue(envelope.mail_from.clone(), remote, body)
                            .await,
                    ),
                }
            }
        );
        match (local, remote) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
            (_, Some(Ok(id))) => Ok(Some(id.to_string())),
            (Some(Ok(id)), None) => Ok(Some(id)),
            (None, None) => Ok(None),
        }
    }
}
