//! The one local/remote split: an envelope's mailboxes go to the mailbox store, its remote
//! forward-paths to the outbound queue, side by side. Accepted mail (the SMTP session's
//! [`Deliver`]) and the queue's own DSNs both go through it.
//!
//! Recipients that are distribution lists are expanded here, at delivery (`deliver/lists.rs`):
//! each list's copy is one more local-and-remote delivery with the list's headers and its
//! bounce address as the sender, durable like the rest before the session's 250.

mod lists;

use std::sync::Arc;

use crate::directory::Directory;
use crate::env::Env;
use crate::mail::header::tls_required_no;
use crate::mail::{Deliver, DeliveryError, Envelope, Message};
use crate::store::MailStore;

use super::runner::Outbound;
use super::store::{MessageOptions, NewRecipient, QueueId};

/// Where accepted mail goes: local recipients to their mailboxes, remote ones to the
/// outbound queue. Both are durable before [`Sink::deliver`] returns, so the session's 250
/// means durable for every recipient.
#[derive(Clone)]
pub struct Sink<E: Env> {
    pub mailboxes: MailStore<E>,
    pub outbound: Outbound<E>,
    /// To recognise and expand the recipients that are lists.
    pub directory: Arc<Directory>,
}

/// How each part of one delivery went; `None` for a part the envelope does not have.
#[derive(Debug)]
pub struct Parts {
    /// The mailbox store's message id.
    pub local: Option<Result<String, DeliveryError>>,
    pub remote: Option<Result<QueueId, DeliveryError>>,
    /// The lists' copies (the last copy's id), when a recipient is a list.
    pub lists: Option<Result<String, DeliveryError>>,
}

impl<E: Env> Sink<E> {
    /// Delivers the local part and the remote part of `envelope` concurrently (the remote
    /// part queued with the envelope's sender) and says how each went.
    pub async fn deliver_parts(&self, envelope: &Envelope, message: &Message) -> Parts {
        let remote = remote_recipients(envelope);
        let local = !envelope.mailboxes().is_empty();
        let options = MessageOptions {
            dsn: envelope.dsn.clone(),
            require_tls: envelope.require_tls,
            // RFC 8689 §5: ignored for a message received with REQUIRETLS.
            tls_required_no: !envelope.require_tls && tls_required_no(message.head()),
        };
        // One id for both parts (the reply names the queue id; the mailbox file has the
        // same name), chosen before they run side by side.
        // (Only then: a random draw here would change every other id in a replay.)
        let shared = (local && !remote.is_empty())
            .then(|| QueueId::new(envelope.received_at, self.mailboxes.env().random_u64()));
        let (local, remote, lists) = tokio::join!(
            async {
                match (local, shared) {
                    (false, _) => None,
                    (true, None) => Some(self.mailboxes.deliver(envelope, message).await),
                    (true, Some(id)) => Some(
                        self.mailboxes
                            .deliver_as(envelope, message, id.to_string())
                            .await,
                    ),
                }
            },
            async {
                let from = envelope.mail_from.clone();
                match (remote.is_empty(), shared) {
                    (true, _) => None,
                    (false, None) => Some(
                        self.outbound
                            .enqueue_with(from, &options, remote, message)
                            .await,
                    ),
                    (false, Some(id)) => Some(
                        self.outbound
                            .enqueue_as(id, from, &options, remote, message)
                            .await,
                    ),
                }
            },
            self.deliver_lists(envelope, message)
        );
        if matches!(local, Some(Ok(_))) {
            // NOTIFY=SUCCESS to one of our mailboxes: the delivery is final here, so the
            // success DSN is ours to send (RFC 3461 §6.2.3.1). Its own failures are traced.
            self.outbound
                .notify_delivered(envelope, message.head())
                .await;
        }
        Parts {
            local,
            remote,
            lists,
        }
    }
}

/// The envelope's remote forward-paths with their DSN parameters (RFC 3461 §4.1/§4.2):
/// each inherits its recipient's NOTIFY and ORCPT. An alias target with no ORCPT given gets
/// the alias as ORCPT, so a DSN names the address the sender used (RFC 3461 §4.2 lets an
/// MTA supply ORCPT when it knows the original recipient; Postfix does the same).
fn remote_recipients(envelope: &Envelope) -> Vec<NewRecipient> {
    let mut out = Vec::new();
    for r in &envelope.recipients {
        for a in &r.remote {
            let orcpt = r
                .orcpt
                .clone()
                .or_else(|| (a.key() != r.address.key()).then(|| r.address.to_string()));
            out.push(NewRecipient {
                address: a.clone(),
                notify: r.notify,
                orcpt,
            });
        }
    }
    out
}

impl Parts {
    /// One answer for the SMTP session: either part failing fails the delivery (the client
    /// retries; a part that did succeed may then arrive twice: at least once, never lost).
    /// The id is the queue id when there is a remote part, else the mailbox store's.
    pub fn into_result(self) -> Result<String, DeliveryError> {
        match (self.local, self.remote, self.lists) {
            (Some(Err(e)), _, _) | (_, Some(Err(e)), _) | (_, _, Some(Err(e))) => Err(e),
            (_, Some(Ok(id)), _) => Ok(id.to_string()),
            (Some(Ok(id)), None, _) | (None, None, Some(Ok(id))) => Ok(id),
            (None, None, None) => Err(DeliveryError::Temporary("no recipients".into())),
        }
    }
}

impl<E: Env> Deliver for Sink<E> {
    async fn deliver(
        &self,
        envelope: &Envelope,
        message: &Message,
    ) -> Result<String, DeliveryError> {
        self.deliver_parts(envelope, message).await.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Timestamp;

    #[test]
    fn either_part_failing_fails_the_delivery() {
        let qid = QueueId::new(Timestamp::from_secs(7), 42);
        fn full<T>() -> Result<T, DeliveryError> {
            Err(DeliveryError::Full)
        }
        let parts = |local, remote| Parts {
            local,
            remote,
            lists: None,
        };
        assert_eq!(parts(Some(full()), Some(Ok(qid))).into_result(), full());
        assert_eq!(
            parts(Some(Ok("m1".into())), Some(full())).into_result(),
            full()
        );
        assert_eq!(parts(None, Some(full())).into_result(), full());
        assert_eq!(parts(Some(full()), None).into_result(), full());
        assert_eq!(
            parts(Some(Ok("m1".into())), Some(Ok(qid))).into_result(),
            Ok(qid.to_string())
        );
        assert_eq!(
            parts(Some(Ok("m1".into())), None).into_result(),
            Ok("m1".into())
        );
        assert!(parts(None, None).into_result().is_err());
    }
}
