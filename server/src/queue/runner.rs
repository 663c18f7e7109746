//! The queue manager: takes due recipients from the scheduler, groups them by message and
//! destination, routes, delivers over the outbound client, records every outcome durably,
//! retries on the schedule, bounces (RFC 3464) what fails or expires, and warns of delays.
//!
//! State lives in two places on purpose: the durable truth in [`QueueStore`] (what a
//! restart recovers) and an in-memory index (envelopes + scheduler) the loop works from.
//! Every outcome is recorded durably *before* the next step depends on it; a recipient the
//! remote accepted is recorded at once, so a crash resends it at most once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

use crate::directory::{Directory, RcptVerdict};
use crate::env::{timeout_at, Env, Timestamp};
use crate::mail::header::{count_received, header_section};
use crate::mail::{Address, DeliveryError, Envelope, Recipient};

use crate::smtp::Reply;
use crate::store::MailStore;

use super::client::{
    self, Client, ClientConfig, OutboundMessage, RcptOutcome, SessionError, SessionFailure,
    SessionReport, Stage, StartTls,
};
use super::config::QueueConfig;
use super::dsn::{self, DsnAction, DsnInput, DsnKind, DsnRecipient};
use super::route::{self, Myself, RouteError};
use super::schedule::{destination, Scheduler};
use super::store::{QueueId, QueueStore, QueuedMessage, RecipientState};
use super::tls::{StartTlsConnector, TlsPolicy};

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
    /// Attempts in flight per destination domain.
    active: BTreeMap<String, usize>,
    /// Due attempts waiting for a connection slot of their destination, first come first
    /// served; started the moment an attempt to that destination ends.
    waiting: BTreeMap<String, VecDeque<(QueueId, Vec<usize>)>>,
}

/// What became of one recipient in one attempt.
#[derive(Clone, Debug)]
enum Outcome {
    Delivered(Reply, String),
    Failed(Reply, Option<String>),
    Deferred(Reply, Option<String>),
}

impl<E: Env> Outbound<E> {
    /// Opens the queue, recovers what a previous run left (every non-final recipient is due
    /// at once, or at its recorded retry time), and starts the delivery loop.
    pub async fn start(
        env: E,
        config: QueueConfig,
        me: Identity<E>,
        port: u16,
    ) -> io::Result<Self> {
        let (store, recovered) = QueueStore::open(env.clone()).await?;
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
            TlsPolicy::May => Some(StartTlsConnector::new(&env)),
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
        env.spawn(run(outbound.inner.clone()));
        Ok(outbound)
    }

    /// Queues a message durably (fsync before this returns) and wakes the delivery loop.
    pub async fn enqueue(
        &self,
        mail_from: Option<Address>,
        recipients: Vec<Address>,
        message: &[u8],
    ) -> Result<QueueId, DeliveryError> {
        enqueue(&self.inner, mail_from, recipients, message).await
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
    recipients: Vec<Address>,
    message: &[u8],
) -> Result<QueueId, DeliveryError> {
    let now = inner.env.now();
    let id = inner
        .store
        .enqueue(mail_from.clone(), recipients.clone(), message, now)
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
                .map(|a| format!("<{a}>"))
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
            QueuedMessage {
                id,
                queued_at: now,
                mail_from,
                recipients: recipients
                    .into_iter()
                    .map(|address| super::store::QueuedRecipient {
                        address,
                        state: RecipientState::Pending,
                    })
                    .collect(),
                delay_warned: false,
                size: message.len(),
            },
        );
    }
    inner.wake.notify_one();
    Ok(id)
}

/// The delivery loop: start every due attempt, then sleep until the next due time or until
/// woken by an enqueue or a finished attempt.
async fn run<E: Env>(inner: Arc<Inner<E>>) {
    loop {
        let now = inner.env.now();
        let (starts, next) = {
            let mut st = inner.state.lock().unwrap();
            let due = st.scheduler.pop_due(now);
            // One attempt per (message, destination): all its due recipients in one
            // transaction.
            let mut groups: BTreeMap<(QueueId, String), Vec<usize>> = BTreeMap::new();
            for item in due {
                let Some(msg) = st.messages.get(&item.id) else {
                    continue;
                };
                let Some(r) = msg.recipients.get(item.slot) else {
                    continue;
                };
                groups
                    .entry((item.id, destination(&r.address)))
                    .or_default()
                    .push(item.slot);
            }
            let max = inner.config.max_per_destination.max(1);
            let State {
                active,
                waiting,
                scheduler,
                ..
            } = &mut *st;
            for ((id, domain), slots) in groups {
                waiting.entry(domain).or_default().push_back((id, slots));
            }
            let mut starts = Vec::new();
            for (domain, queue) in waiting.iter_mut() {
                let n = active.entry(domain.clone()).or_insert(0);
                while *n < max {
                    let Some((id, slots)) = queue.pop_front() else {
                        break;
                    };
                    *n += 1;
                    starts.push((id, domain.clone(), slots));
                }
            }
            waiting.retain(|_, q| !q.is_empty());
            let next = scheduler.next_due();
            (starts, next)
        };
        for (id, domain, slots) in starts {
            let inner2 = inner.clone();
            inner.env.spawn(async move {
                attempt(&inner2, id, &domain, slots).await;
                if let Some(n) = inner2.state.lock().unwrap().active.get_mut(&domain) {
                    *n = n.saturating_sub(1);
                }
                inner2.wake.notify_one();
            });
        }
        match next {
            Some(t) => {
                tokio::select! {
                    biased;
                    _ = inner.wake.notified() => {}
                    _ = inner.env.sleep_until(t) => {}
                }
            }
            None => inner.wake.notified().await,
        }
    }
}

/// One delivery attempt of some recipients of one message to one destination domain.
async fn attempt<E: Env>(inner: &Inner<E>, id: QueueId, domain: &str, slots: Vec<usize>) {
    let env = &inner.env;
    let Some(msg) = inner.state.lock().unwrap().messages.get(&id).cloned() else {
        return;
    };
    let recipients: Vec<Address> = slots
        .iter()
        .filter_map(|&s| msg.recipients.get(s).map(|r| r.address.clone()))
        .collect();
    env.trace(
        "queue",
        format_args!(
            "attempt {id} to {domain}: {}",
            recipients
                .iter()
                .map(|a| format!("<{a}>"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let mut outcomes: Vec<Option<Outcome>> = vec![None; slots.len()];
    // Slots whose Delivered state was made durable before QUIT (see Recorder).
    let recorded = Mutex::new(BTreeSet::new());
    let mut last = Reply::new(
        451,
        (4, 4, 0),
        format!("no attempt could be made for {domain}"),
    );
    let mut last_host = None;

    let body = match inner.store.read_message(id).await {
        Ok(b) => Some(b),
        Err(e) => {
            last = Reply::new(451, (4, 3, 0), format!("queue file unreadable: {e}"));
            None
        }
    };
    if let Some(body) = &body {
        let hops = count_received(body);
        if hops > inner.config.max_received_headers {
            let r = Reply::new(
                554,
                (5, 4, 6),
                format!("Too many hops ({hops} Received: headers): mail loop"),
            );
            outcomes
                .iter_mut()
                .for_each(|o| *o = Some(Outcome::Failed(r.clone(), None)));
        } else {
            let routed = match inner.config.relayhost {
                Some(relay) => Ok(vec![route::Hop {
                    host: relay.ip().to_string(),
                    preference: 0,
                    addrs: vec![relay.ip()],
                }]),
                None => route::resolve(env, domain, &inner.me).await,
            };
            let port = inner.config.relayhost.map_or(inner.port, |r| r.port());
            match routed {
                Err(RouteError::Temporary(why)) => {
                    last = Reply::new(451, (4, 4, 3), why);
                }
                Err(RouteError::Permanent { status, text }) => {
                    let r = Reply::new(550, status, text);
                    outcomes
                        .iter_mut()
                        .for_each(|o| *o = Some(Outcome::Failed(r.clone(), None)));
                }
                Ok(hops) => {
                    'hops: for hop in hops {
                        for ip in hop.addrs {
                            let open: Vec<usize> = (0..slots.len())
                                .filter(|&k| outcomes[k].is_none())
                                .collect();
                            if open.is_empty() {
                                break 'hops;
                            }
                            let peer = format!("{}[{ip}]", hop.host);
                            last_host = Some(hop.host.clone());
                            match try_host(
                                inner,
                                id,
                                &hop.host,
                                &peer,
                                SocketAddr::new(ip, port),
                                &msg,
                                &open,
                                &recipients,
                                body,
                                &slots,
                                &recorded,
                            )
                            .await
                            {
                                Ok(results) => {
                                    for (k, o) in open.iter().zip(results) {
                                        outcomes[*k] = Some(attach_host(o, &hop.host));
                                    }
                                }
                                Err((reply, partial)) => {
                                    for (k, o) in open.iter().zip(partial) {
                                        if let Some(o) = o {
                                            outcomes[*k] = Some(attach_host(o, &hop.host));
                                        }
                                    }
                                    last = reply;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Deferred(last.clone(), last_host.clone())))
        .collect();
    let recorded = recorded.into_inner().unwrap_or_default();
    settle(inner, id, &slots, outcomes, body.as_deref(), &recorded).await;
}

fn attach_host(o: RcptOutcome, host: &str) -> Outcome {
    match o {
        RcptOutcome::Delivered(r) => Outcome::Delivered(r, host.to_string()),
        RcptOutcome::Failed(r) => Outcome::Failed(r, Some(host.to_string())),
        RcptOutcome::Deferred(r) => Outcome::Deferred(r, Some(host.to_string())),
    }
}

/// Connects to one address of one MX and runs one SMTP transaction for the `open`
/// recipients. `Err` carries the reply to remember and any outcomes decided before the
/// connection failed.
///
/// With `tls = "may"` (the default) the session is upgraded with STARTTLS before MAIL FROM
/// whenever the peer offers it (see [`super::tls`]), and TLS trouble never stops a delivery
/// that plaintext could make — what Postfix does at `smtp_tls_security_level = may`:
/// - STARTTLS refused (4xx/5xx other than 421): the session goes on in plaintext on the same
///   connection (the server is still in its post-EHLO state, RFC 3207 §4).
/// - The handshake fails or times out: the connection is unusable (its TLS state is
///   unknown), so the queue reconnects once to the same address and delivers in plaintext
///   without sending STARTTLS — Postfix's plaintext retry on a new connection. If that second
///   connection fails too, the attempt fails like any other (next address, then retry later).
/// - A 421 to STARTTLS, the connection lost before STARTTLS's reply, or EHLO failing over
///   TLS is an ordinary session failure (next address or MX, then a retry later).
///
/// The queue trace says which way it went: `<id> TLS established with <peer>`, `<id>
/// STARTTLS refused by <peer> ...: continuing in plaintext`, or `<id> STARTTLS with <peer>
/// failed (...): reconnecting without STARTTLS`. Nothing about the TLS session itself
/// (version, cipher suite, keys) is traced: only the plaintext above it.
#[allow(clippy::too_many_arguments)]
async fn try_host<E: Env>(
    inner: &Inner<E>,
    id: QueueId,
    host: &str,
    peer: &str,
    addr: SocketAddr,
    msg: &QueuedMessage,
    open: &[usize],
    recipients: &[Address],
    body: &[u8],
    slots: &[usize],
    recorded: &Mutex<BTreeSet<usize>>,
) -> Result<Vec<RcptOutcome>, (Reply, Vec<Option<RcptOutcome>>)> {
    let env = &inner.env;
    let n = open.len();
    let rec = Recorder {
        inner,
        id,
        slots: open.iter().map(|&k| slots[k]).collect(),
        recorded,
    };
    let stream = connect(inner, id, peer, addr, n).await?;
    let rcpts: Vec<Address> = open.iter().map(|&k| recipients[k].clone()).collect();
    let out = OutboundMessage {
        mail_from: msg.mail_from.as_ref(),
        recipients: &rcpts,
        message: body,
        needs_smtputf8: header_section(body).iter().any(|b| *b >= 0x80),
        has_8bit: body.iter().any(|b| *b >= 0x80),
    };
    let (result, traced) = match &inner.tls {
        None => (rec.deliver(stream, &out).await, 0),
        Some(tls) => {
            match deliver_with_starttls(inner, id, host, peer, addr.ip(), tls, stream, &out, &rec)
                .await
            {
                TlsAttempt::Done { result, traced } => (result, traced),
                TlsAttempt::HandshakeFailed(failure) => {
                    trace_transcript(env, id, peer, &failure.transcript);
                    env.trace(
                        "queue",
                        format_args!(
                            "{id} STARTTLS with {peer} failed ({}): reconnecting without STARTTLS",
                            failure.error
                        ),
                    );
                    let stream = connect(inner, id, peer, addr, n).await?;
                    (rec.deliver(stream, &out).await, 0)
                }
            }
        }
    };
    match result {
        Ok(report) => {
            trace_transcript(
                env,
                id,
                peer,
                report.transcript.get(traced..).unwrap_or(&[]),
            );
            Ok(report.per_recipient)
        }
        Err(failure) => {
            trace_transcript(
                env,
                id,
                peer,
                failure.transcript.get(traced..).unwrap_or(&[]),
            );
            env.trace(
                "queue",
                format_args!("{id} session with {peer} failed: {}", failure.error),
            );
            let reply = failure.error.reply().cloned().unwrap_or_else(|| {
                Reply::new(451, (4, 4, 2), format!("{peer}: {}", failure.error))
            });
            // A 5xx greeting is the host refusing us, not the recipients failing: try the
            // next MX; if none takes it, the recipients are deferred with this reply.
            let reply = if reply.code >= 500 {
                Reply::new(451, (4, 4, 2), format!("{peer} said: {reply}"))
            } else {
                reply
            };
            let mut per_recipient = failure.per_recipient;
            per_recipient.resize(n, None);
            Err((reply, per_recipient))
        }
    }
}

/// A TCP connection to `addr` within the connect timeout.
async fn connect<E: Env>(
    inner: &Inner<E>,
    id: QueueId,
    peer: &str,
    addr: SocketAddr,
    n: usize,
) -> Result<E::Stream, (Reply, Vec<Option<RcptOutcome>>)> {
    let env = &inner.env;
    let deadline = env.now().plus(inner.config.connect_timeout());
    match timeout_at(env, deadline, env.connect(addr)).await {
        Some(Ok(s)) => Ok(s),
        Some(Err(e)) => {
            env.trace("queue", format_args!("{id} connect to {peer}: {e}"));
            Err((
                Reply::new(451, (4, 4, 1), format!("connect to {peer}: {e}")),
                vec![None; n],
            ))
        }
        None => {
            env.trace("queue", format_args!("{id} connect to {peer}: timed out"));
            Err((
                Reply::new(451, (4, 4, 1), format!("connect to {peer}: timed out")),
                vec![None; n],
            ))
        }
    }
}

/// Where a transaction's acceptances are recorded the moment the transaction ends (before
/// QUIT): the queue slots of the recipients it carries, and the set of slots recorded.
struct Recorder<'a, E: Env> {
    inner: &'a Inner<E>,
    id: QueueId,
    slots: Vec<usize>,
    recorded: &'a Mutex<BTreeSet<usize>>,
}

impl<E: Env> Recorder<'_, E> {
    /// Durably records every `Delivered` outcome; called between the end of the data and
    /// QUIT, so the window in which a crash resends an accepted message is one fsync long.
    async fn delivered(&self, outcomes: &[RcptOutcome]) {
        let updates: Vec<(usize, RecipientState)> = outcomes
            .iter()
            .zip(&self.slots)
            .filter_map(|(o, &slot)| match o {
                RcptOutcome::Delivered(r) => Some((
                    slot,
                    RecipientState::Delivered {
                        reply: r.to_string(),
                    },
                )),
                _ => None,
            })
            .collect();
        if updates.is_empty() {
            return;
        }
        match self.inner.store.record(self.id, &updates).await {
            Ok(()) => self
                .recorded
                .lock()
                .unwrap()
                .extend(updates.iter().map(|(s, _)| *s)),
            Err(e) => self.inner.env.trace(
                "queue",
                format_args!(
                    "{} recording deliveries failed: {e} (recorded later)",
                    self.id
                ),
            ),
        }
    }

    /// One transaction and QUIT on an open session, recording deliveries before QUIT.
    async fn send<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: Client<E, S>,
        out: &OutboundMessage<'_>,
    ) -> Result<SessionReport, SessionFailure> {
        client::send_and_quit(client, out, async |o: &[RcptOutcome]| {
            self.delivered(o).await
        })
        .await
    }

    /// Greeting, EHLO, one transaction, QUIT (no STARTTLS).
    async fn deliver<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        out: &OutboundMessage<'_>,
    ) -> Result<SessionReport, SessionFailure> {
        match Client::open(&self.inner.env, stream, &self.inner.client).await {
            Ok(client) => self.send(client, out).await,
            Err(mut failure) => {
                failure.per_recipient = vec![None; out.recipients.len()];
                Err(failure)
            }
        }
    }
}

/// How a session that tried STARTTLS ended.
enum TlsAttempt {
    /// The session ran its course (over TLS, in plaintext after a refused STARTTLS, or in
    /// plaintext because STARTTLS was not offered), or failed for a reason that has nothing
    /// to do with TLS. The first `traced` transcript lines are already in the trace.
    Done {
        result: Result<SessionReport, SessionFailure>,
        traced: usize,
    },
    /// The server said 220 to STARTTLS and the handshake failed or timed out: the
    /// connection is gone, no recipient was decided.
    HandshakeFailed(SessionFailure),
}

/// Greeting and EHLO, STARTTLS if offered, then the transaction and QUIT.
#[allow(clippy::too_many_arguments)]
async fn deliver_with_starttls<E: Env>(
    inner: &Inner<E>,
    id: QueueId,
    host: &str,
    peer: &str,
    ip: IpAddr,
    tls: &StartTlsConnector,
    stream: E::Stream,
    out: &OutboundMessage<'_>,
    rec: &Recorder<'_, E>,
) -> TlsAttempt {
    let env = &inner.env;
    let client = match Client::open(env, stream, &inner.client).await {
        Ok(client) => client,
        Err(failure) => {
            return TlsAttempt::Done {
                result: Err(failure),
                traced: 0,
            }
        }
    };
    if !client.capabilities().starttls {
        return TlsAttempt::Done {
            result: rec.send(client, out).await,
            traced: 0,
        };
    }
    // The part of the transcript before the upgrade goes to the trace now, so the queue's
    // TLS line sits where it happened.
    match client.starttls(|s| tls.connect(host, ip, s)).await {
        Ok(StartTls::Secured(client)) => {
            let traced = client.transcript().len();
            trace_transcript(env, id, peer, client.transcript());
            env.trace("queue", format_args!("{id} TLS established with {peer}"));
            TlsAttempt::Done {
                result: rec.send(client, out).await,
                traced,
            }
        }
        Ok(StartTls::Refused { client, reply }) => {
            let traced = client.transcript().len();
            trace_transcript(env, id, peer, client.transcript());
            env.trace(
                "queue",
                format_args!("{id} STARTTLS refused by {peer} ({reply}): continuing in plaintext"),
            );
            TlsAttempt::Done {
                result: rec.send(client, out).await,
                traced,
            }
        }
        Err(failure)
            if matches!(
                failure.error,
                SessionError::Tls(_)
                    | SessionError::Timeout {
                        stage: Stage::TlsHandshake
                    }
            ) =>
        {
            TlsAttempt::HandshakeFailed(failure)
        }
        Err(failure) => TlsAttempt::Done {
            result: Err(failure),
            traced: 0,
        },
    }
}

fn trace_transcript<E: Env>(env: &E, id: QueueId, peer: &str, lines: &[String]) {
    for line in lines {
        env.trace("smtp-out", format_args!("{id} {peer} {line}"));
    }
}

/// Applies one attempt's outcomes: durable states, schedule, DSNs, removal.
async fn settle<E: Env>(
    inner: &Inner<E>,
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
    let expires = inner.config.expires_at(msg.queued_at);
    let mut updates = Vec::new();
    let mut failed = Vec::new();
    let mut delayed = Vec::new();
    for (&slot, outcome) in slots.iter().zip(outcomes) {
        let Some(r) = msg.recipients.get(slot) else {
            continue;
        };
        let prev_attempts = match &r.state {
            RecipientState::Deferred { attempts, .. } => *attempts,
            _ => 0,
        };
        let state = match outcome {
            Outcome::Delivered(reply, host) => {
                env.trace(
                    "queue",
                    format_args!("{id} <{}> delivered via {host}: {reply}", r.address),
                );
                RecipientState::Delivered {
                    reply: reply.to_string(),
                }
            }
            Outcome::Failed(reply, host) => {
                env.trace(
                    "queue",
                    format_args!("{id} <{}> failed: {reply}", r.address),
                );
                failed.push((slot, reply.clone(), host));
                RecipientState::Failed {
                    reply: reply.to_string(),
                }
            }
            Outcome::Deferred(reply, host) => {
                let attempts = prev_attempts + 1;
                if now >= expires {
                    let text = format!(
                        "message expired after {} in the queue; last error: {reply}",
                        human(now.since(msg.queued_at))
                    );
                    let r2 = Reply::new(550, (5, 4, 7), text);
                    env.trace(
                        "queue",
                        format_args!("{id} <{}> expired: {reply}", r.address),
                    );
                    failed.push((slot, r2.clone(), host));
                    RecipientState::Failed {
                        reply: r2.to_string(),
                    }
                } else {
                    let next = now.plus(inner.config.retry_delay(attempts)).min(expires);
                    env.trace(
                        "queue",
                        format_args!(
                            "{id} <{}> deferred (attempt {attempts}), retry at +{}: {reply}",
                            r.address,
                            human(next.since(now))
                        ),
                    );
                    delayed.push((slot, reply.clone(), host));
                    RecipientState::Deferred {
                        attempts,
                        last_reply: reply.to_string(),
                        next_attempt: next,
                    }
                }
            }
        };
        updates.push((slot, state));
    }
    // Deliveries recorded before QUIT are durable already: no second fsync for them.
    let to_record: Vec<(usize, RecipientState)> = updates
        .iter()
        .filter(|(slot, state)| {
            !(recorded.contains(slot) && matches!(state, RecipientState::Delivered { .. }))
        })
        .cloned()
        .collect();
    if let Err(e) = inner.store.record(id, &to_record).await {
        env.trace(
            "queue",
            format_args!("{id} recording outcomes failed: {e} (will retry them)"),
        );
    }
    let (complete, warn) = {
        let mut st = inner.state.lock().unwrap();
        let Some(m) = st.messages.get_mut(&id) else {
            return;
        };
        for (slot, state) in &updates {
            if let Some(r) = m.recipients.get_mut(*slot) {
                r.state = state.clone();
            }
        }
        let warn = !delayed.is_empty()
            && !m.delay_warned
            && inner
                .config
                .delay_warning()
                .is_some_and(|w| now.since(m.queued_at) >= w);
        if warn {
            m.delay_warned = true;
        }
        let complete = m.is_complete();
        for (slot, state) in &updates {
            if let RecipientState::Deferred { next_attempt, .. } = state {
                st.scheduler.schedule(id, *slot, *next_attempt);
            }
        }
        (complete, warn)
    };
    if !failed.is_empty() {
        send_dsn(inner, &msg, DsnKind::Failure, &failed, body, now).await;
    }
    if warn {
        send_dsn(inner, &msg, DsnKind::Delay, &delayed, body, now).await;
        if let Err(e) = inner.store.mark_delay_warned(id).await {
            env.trace(
                "queue",
                format_args!("{id} recording the delay warning failed: {e}"),
            );
        }
    }
    if complete {
        match inner.store.remove(id).await {
            Ok(()) => env.trace("queue", format_args!("{id} done, removed from the queue")),
            Err(e) => env.trace("queue", format_args!("{id} removal failed: {e}")),
        }
        let mut st = inner.state.lock().unwrap();
        st.messages.remove(&id);
        st.scheduler.remove(id);
    }
}

/// Builds and sends a DSN about `rows` to the message's sender (never for `<>`: a bounce
/// is never bounced — an undeliverable bounce is logged and dropped).
async fn send_dsn<E: Env>(
    inner: &Inner<E>,
    msg: &QueuedMessage,
    kind: DsnKind,
    rows: &[(usize, Reply, Option<String>)],
    body: Option<&[u8]>,
    now: Timestamp,
) {
    let env = &inner.env;
    let Some(sender) = msg
        .mail_from
        .as_ref()
        .filter(|_| dsn::should_send_dsn(msg.mail_from.as_ref()))
    else {
        env.trace(
            "queue",
            format_args!(
                "{} undeliverable bounce (null sender): logged and dropped",
                msg.id
            ),
        );
        return;
    };
    let recipients: Vec<DsnRecipient> = rows
        .iter()
        .filter_map(|(slot, reply, host)| {
            let r = msg.recipients.get(*slot)?;
            Some(DsnRecipient {
                address: r.address.clone(),
                original: None,
                action: match kind {
                    DsnKind::Failure => DsnAction::Failed,
                    DsnKind::Delay => DsnAction::Delayed,
                },
                status: reply.enhanced.unwrap_or(match kind {
                    DsnKind::Failure => (5, 0, 0),
                    DsnKind::Delay => (4, 0, 0),
                }),
                remote_mta: host.clone(),
                diagnostic: Some(reply.to_string()),
                last_attempt: Some(now),
                will_retry_until: matches!(kind, DsnKind::Delay)
                    .then(|| inner.config.expires_at(msg.queued_at)),
            })
        })
        .collect();
    let label = match kind {
        DsnKind::Failure => "failure",
        DsnKind::Delay => "delay",
    };
    let report = dsn::build_dsn(&DsnInput {
        kind,
        reporting_mta: &inner.hostname,
        original_envelope_id: None,
        arrival_date: msg.queued_at,
        now,
        sender,
        recipients: &recipients,
        original_message: body.unwrap_or(b""),
        message_id: format!(
            "<{}.{label}.{}@{}>",
            msg.id,
            now.as_millis(),
            inner.hostname
        ),
        return_full: false,
    });
    env.trace(
        "queue",
        format_args!(
            "{} {label} DSN to <{sender}> ({} octets)",
            msg.id,
            report.len()
        ),
    );
    submit_bounce(inner, sender, report, now).await;
}

/// Delivers a DSN to `to`: into the local mailbox if it is ours, else through the queue
/// with the null sender.
async fn submit_bounce<E: Env>(inner: &Inner<E>, to: &Address, report: Vec<u8>, now: Timestamp) {
    let env = &inner.env;
    let (mailboxes, remote) = match inner.directory.resolve(to) {
        RcptVerdict::Local(m) => (m, Vec::new()),
        RcptVerdict::Forward { mailboxes, remote } => (mailboxes, remote),
        RcptVerdict::RelayDenied => (Vec::new(), vec![to.clone()]),
        RcptVerdict::UnknownUser => {
            env.trace(
                "queue",
                format_args!("DSN recipient <{to}> is unknown: dropped"),
            );
            return;
        }
    };
    if !mailboxes.is_empty() {
        let envelope = Envelope {
            helo: inner.hostname.clone(),
            mail_from: None,
            recipients: vec![Recipient {
                address: to.clone(),
                mailboxes,
                remote: Vec::new(),
            }],
            received_at: now,
        };
        if let Err(e) = inner.mailboxes.deliver(&envelope, &report).await {
            env.trace(
                "queue",
                format_args!("DSN to <{to}> could not be stored: {e:?}"),
            );
        }
    }
    if !remote.is_empty() {
        if let Err(e) = enqueue(inner, None, remote, &report).await {
            env.trace(
                "queue",
                format_args!("DSN to <{to}> could not be queued: {e:?}"),
            );
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{}d{}h", s / 86_400, (s % 86_400) / 3600)
    } else if s >= 3600 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}
