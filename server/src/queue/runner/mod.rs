//! The queue manager: takes due recipients from the scheduler, groups them by message and
//! destination, routes, delivers over the outbound client, records every outcome durably,
//! retries on the schedule, bounces (RFC 3464) what fails or expires, and warns of delays.
//!
//! State lives in two places on purpose: the durable truth in [`QueueStore`] (what a
//! restart recovers) and an in-memory index (envelopes + scheduler) the loop works from.
//! Every outcome is recorded durably *before* the next step depends on it; a recipient the
//! remote accepted is recorded at once, so a crash resends it at most once.
//!
//! One attempt goes through four parts, one file each:
//! - [`scheduling`]: due recipients become attempts (one per message and destination), and
//!   each destination has a connection limit with a first-come-first-served wait (Postfix's
//!   `default_destination_concurrency_limit`).
//! - [`attempt`]: route (MX, relayhost), then each address in turn until every recipient has
//!   an outcome; [`session`] is one connection to one address: connect, STARTTLS and its
//!   plaintext fallback, the client session, and recording acceptances before QUIT.
//! - [`settle`]: what the outcomes mean — states to record, retry times, expiry, the one
//!   delay warning, removal — as a pure function; this file only applies it.
//! - [`bounce`]: failure and delay DSNs, and where they go (a local mailbox or the queue).

mod attempt;
mod bounce;
mod scheduling;
mod session;
mod settle;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::directory::Directory;
use crate::durable::CommitMode;
use crate::env::Env;
use crate::mail::{Address, DeliveryError, Message};
use crate::store::MailStore;

use super::client::ClientConfig;
use super::config::QueueConfig;
use super::dsn::DsnKind;
use super::route::Myself;
use super::schedule::Scheduler;
use super::store::{
    MessageOptions, NewRecipient, QueueId, QueueStore, QueuedMessage, RecipientState,
};
use super::tls::{StartTlsConnector, TlsPolicy};

use self::scheduling::Dispatch;
use self::settle::Outcome;

/// Who we are and where local mail goes (for DSNs to local senders).
pub struct Identity<E: Env> {
    pub hostname: String,
    /// Our own addresses, so an MX pointing at us is a loop.
    pub addrs: Vec<IpAddr>,
    pub directory: Arc<Directory>,
    pub mailboxes: MailStore<E>,
}

/// A handle to the outbound queue; cheap to clone.
#[derive(Clone)]
pub struct Outbound<E: Env> {
    inner: Arc<Inner<E>>,
}

struct Inner<E: Env> {
    env: E,
    store: QueueStore<E>,
    config: QueueConfig,
    client: ClientConfig,
    /// STARTTLS for outbound sessions; `None` with `tls = "none"`.
    tls: Option<StartTlsConnector>,
    me: Myself,
    hostname: String,
    directory: Arc<Directory>,
    mailboxes: MailStore<E>,
    state: Mutex<State>,
    wake: Notify,
    port: u16,
}

#[derive(Default)]
struct State {
    messages: BTreeMap<QueueId, QueuedMessage>,
    scheduler: Scheduler<usize>,
    /// Attempts in flight and waiting, per destination.
    dispatch: Dispatch,
}

impl<E: Env> Outbound<E> {
    /// Our host name, as the queue's DSNs give it (`Reporting-MTA`, `MAILER-DAEMON@`).
    pub fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// Opens the queue, recovers what a previous run left (every non-final recipient is due
    /// at once, or at its recorded retry time), and starts the delivery loop.
    pub async fn start(
        env: E,
        config: QueueConfig,
        me: Identity<E>,
        port: u16,
        commit: CommitMode,
    ) -> io::Result<Self> {
        let (store, recovered) = QueueStore::open_with(env.clone(), commit).await?;
        let mut state = State::default();
        let now = env.now();
        for msg in recovered {
            let mut pending = 0;
            for (i, r) in msg.recipients.iter().enumerate() {
                match &r.state {
                    RecipientState::Pending => state.scheduler.schedule(msg.id, i, now),
                    RecipientState::Deferred { next_attempt, .. } => {
                        state.scheduler.schedule(msg.id, i, *next_attempt)
                    }
                    _ => continue,
                };
                pending += 1;
            }
            env.trace(
                "queue",
                format_args!(
                    "recovered {} ({pending} of {} recipients pending)",
                    msg.id,
                    msg.recipients.len()
                ),
            );
            if msg.is_complete() {
                // Everything final but not yet removed: finish the job now.
                let _ = store.remove(msg.id).await;
                continue;
            }
            state.messages.insert(msg.id, msg);
        }
        let client = ClientConfig {
            helo_name: me.hostname.clone(),
            command_timeout: config.command_timeout(),
            data_timeout: config.command_timeout().max(Duration::from_secs(600)),
        };
        let tls = match config.tls {
            TlsPolicy::May | TlsPolicy::Encrypt => Some(StartTlsConnector::new(&env)),
            TlsPolicy::None => None,
        };
        let outbound = Outbound {
            inner: Arc::new(Inner {
                me: Myself {
                    hostname: me.hostname.clone(),
                    addrs: me.addrs,
                },
                hostname: me.hostname,
                directory: me.directory,
                mailboxes: me.mailboxes,
                env: env.clone(),
                store,
                config,
                client,
                tls,
                state: Mutex::new(state),
                wake: Notify::new(),
                port,
            }),
        };
        env.spawn(scheduling::run(outbound.inner.clone()));
        Ok(outbound)
    }

    /// Queues a message durably (fsync before this returns) and wakes the delivery loop.
    pub async fn enqueue(
        &self,
        mail_from: Option<Address>,
        recipients: Vec<Address>,
        message: &Message,
    ) -> Result<QueueId, DeliveryError> {
        let recipients = recipients.into_iter().map(NewRecipient::from).collect();
        let options = MessageOptions::default();
        enqueue(&self.inner, mail_from, &options, recipients, message, None).await
    }

    /// [`Outbound::enqueue`] with the DSN and REQUIRETLS parameters of the message.
    pub async fn enqueue_with(
        &self,
        mail_from: Option<Address>,
        options: &MessageOptions,
        recipients: Vec<NewRecipient>,
        message: &Message,
    ) -> Result<QueueId, DeliveryError> {
        enqueue(&self.inner, mail_from, options, recipients, message, None).await
    }

    /// [`Outbound::enqueue_with`] under a chosen id (see `QueueStore::enqueue_message_as`).
    pub async fn enqueue_as(
        &self,
        id: QueueId,
        mail_from: Option<Address>,
        options: &MessageOptions,
        recipients: Vec<NewRecipient>,
        message: &Message,
    ) -> Result<QueueId, DeliveryError> {
        enqueue(
            &self.inner,
            mail_from,
            options,
            recipients,
            message,
            Some(id),
        )
        .await
    }

    /// Sends the "delivered" DSN for the recipients of `envelope` that asked for one and were
    /// delivered to our mailboxes (see `bounce::send_delivered`). Boxed: it delivers
    /// through the [`Sink`](super::deliver::Sink) that calls it.
    pub fn notify_delivered<'a>(
        &'a self,
        envelope: &'a crate::mail::Envelope,
        message: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(bounce::send_delivered(&self.inner, envelope, message))
    }

    /// Messages in the queue (for the admin view and tests).
    pub fn len(&self) -> usize {
        self.inner.state.lock().unwrap().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Queues a message durably (fsync before this returns) and wakes the delivery loop.
async fn enqueue<E: Env>(
    inner: &Inner<E>,
    mail_from: Option<Address>,
    options: &MessageOptions,
    recipients: Vec<NewRecipient>,
    message: &Message,
    id: Option<QueueId>,
) -> Result<QueueId, DeliveryError> {
    let now = inner.env.now();
    let id = inner
        .store
        .enqueue_message_as(mail_from.clone(), options, &recipients, message, now, id)
        .await?;
    inner.env.trace(
        "queue",
        format_args!(
            "queued {id} from <{}> to {} ({} octets)",
            mail_from
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            recipients
                .iter()
                .map(|r| format!("<{}>", r.address))
                .collect::<Vec<_>>()
                .join(", "),
            message.len()
        ),
    );
    {
        let mut st = inner.state.lock().unwrap();
        for i in 0..recipients.len() {
            st.scheduler.schedule(id, i, now);
        }
        st.messages.insert(
            id,
            QueuedMessage::new(
                id,
                now,
                mail_from,
                recipients,
                message.len() as usize,
                options.clone(),
            ),
        );
    }
    inner.wake.notify_one();
    Ok(id)
}

/// Applies one attempt's settlement (see [`settle`]) in this order: its trace lines, the
/// durable states, the in-memory copy and the schedule, the failure DSN, the delay DSN,
/// removal.
async fn apply_settlement<E: Env>(
    inner: &Arc<Inner<E>>,
    id: QueueId,
    slots: &[usize],
    outcomes: Vec<Outcome>,
    body: Option<&[u8]>,
    recorded: &BTreeSet<usize>,
) {
    let env = &inner.env;
    let now = env.now();
    let Some(msg) = inner.state.lock().unwrap().messages.get(&id).cloned() else {
        return;
    };
    let settlement = settle::decide(&msg, slots, outcomes, recorded, now, &inner.config);
    for line in &settlement.trace {
        env.trace("queue", format_args!("{line}"));
    }
    if let Err(e) = inner.store.record(id, &settlement.to_record).await {
        env.trace(
            "queue",
            format_args!("{id} recording outcomes failed: {e} (will retry them)"),
        );
    }
    let applied = {
        let mut st = inner.state.lock().unwrap();
        let Some(live) = st.messages.get_mut(&id) else {
            return;
        };
        let applied = settlement.apply(live, now, &inner.config);
        for &(slot, at) in &settlement.retry {
            st.scheduler.schedule(id, slot, at);
        }
        applied
    };
    if !settlement.failed.is_empty() {
        bounce::send(inner, &msg, DsnKind::Failure, &settlement.failed, body, now).await;
    }
    if !settlement.relayed.is_empty() {
        bounce::send(
            inner,
            &msg,
            DsnKind::Success,
            &settlement.relayed,
            body,
            now,
        )
        .await;
    }
    if applied.warn {
        bounce::send(inner, &msg, DsnKind::Delay, &settlement.delayed, body, now).await;
        if let Err(e) = inner.store.mark_delay_warned(id).await {
            env.trace(
                "queue",
                format_args!("{id} recording the delay warning failed: {e}"),
            );
        }
    }
    if applied.complete {
        match inner.store.remove(id).await {
            Ok(()) => env.trace("queue", format_args!("{id} done, removed from the queue")),
            Err(e) => env.trace("queue", format_args!("{id} removal failed: {e}")),
        }
        let mut st = inner.state.lock().unwrap();
        st.messages.remove(&id);
        st.scheduler.remove(id);
    }
}
