//! Bounces: the failure and delay DSNs (RFC 3464) a settlement calls for, and where they go.
//!
//! A DSN goes to the message's sender, never for `<>`: a bounce is never bounced (RFC 5321
//! §4.5.5), an undeliverable bounce is logged and dropped. The sender is resolved through the
//! directory like any recipient and the DSN delivered through the same local/remote split as
//! accepted mail ([`Sink`]): a local sender's mailbox, or the queue with the null sender.

use std::sync::Arc;

use crate::directory::RcptVerdict;
use crate::env::{Env, Timestamp};
use crate::mail::{Address, Envelope, Message, Notify, Recipient, Ret};

use super::super::config::QueueConfig;
use super::super::deliver::Sink;
use super::super::dsn::{self, DsnAction, DsnInput, DsnKind, DsnRecipient};
use super::super::store::QueuedMessage;
use super::settle::DsnRow;
use super::{Inner, Outbound};

/// A DSN ready to send: its recipient (the original sender) and the report.
#[derive(Debug)]
pub(super) struct Notice<'a> {
    pub to: &'a Address,
    pub report: Vec<u8>,
}

/// What the DSN is called in traces and message ids.
pub(super) fn label(kind: DsnKind) -> &'static str {
    match kind {
        DsnKind::Failure => "failure",
        DsnKind::Delay => "delay",
        DsnKind::Success => "success",
    }
}

/// Whether a recipient asked for this kind of notice (RFC 3461 §4.1): failure and delay
/// unless NOTIFY said otherwise, success only when asked for, nothing after NOTIFY=NEVER.
pub(super) fn wanted(notify: &Notify, kind: DsnKind) -> bool {
    match kind {
        DsnKind::Failure => notify.wants_failure(),
        DsnKind::Delay => notify.wants_delay(),
        DsnKind::Success => notify.wants_success(),
    }
}

/// The RFC 3464 §2.3.3 action of a row: a success row is "relayed" (handed to a system that
/// does not offer DSN, RFC 3461 §6.2.3.3).
fn action(kind: DsnKind) -> DsnAction {
    match kind {
        DsnKind::Failure => DsnAction::Failed,
        DsnKind::Delay => DsnAction::Delayed,
        DsnKind::Success => DsnAction::Relayed,
    }
}

/// `RET=FULL` returns the whole message, in a failure DSN only: RFC 3461 §4.3 is about
/// returning undeliverable mail, and Postfix returns headers only with delay and success
/// notices. Without RET, the headers (our default, as before).
pub(super) fn return_full(ret: Option<Ret>, kind: DsnKind) -> bool {
    kind == DsnKind::Failure && ret == Some(Ret::Full)
}

/// Builds the DSN about `rows` of `msg`, or `None` when the sender is `<>` or no row's
/// recipient asked for this kind of notice (NOTIFY). Pure: the report's dates and message id
/// come from `now`. ENVID becomes `Original-Envelope-Id`, ORCPT `Original-Recipient`
/// (RFC 3464 §2.2.1, §2.3.1), RET decides what is returned.
pub(super) fn compose<'m>(
    msg: &'m QueuedMessage,
    kind: DsnKind,
    rows: &[DsnRow],
    original: Option<&[u8]>,
    now: Timestamp,
    config: &QueueConfig,
    hostname: &str,
) -> Option<Notice<'m>> {
    let sender = msg
        .mail_from
        .as_ref()
        .filter(|_| dsn::should_send_dsn(msg.mail_from.as_ref()))?;
    let recipients: Vec<DsnRecipient> = rows
        .iter()
        .filter_map(|(slot, reply, host)| {
            let r = msg
                .recipients
                .get(*slot)
                .filter(|r| wanted(&r.notify, kind))?;
            Some(DsnRecipient {
                address: r.address.clone(),
                original: r.orcpt.as_ref().map(|o| format!("rfc822;{o}")),
                action: action(kind),
                status: reply.enhanced.unwrap_or(match kind {
                    DsnKind::Failure => (5, 0, 0),
                    DsnKind::Delay => (4, 0, 0),
                    DsnKind::Success => (2, 0, 0),
                }),
                remote_mta: host.clone(),
                diagnostic: Some(reply.to_string()),
                last_attempt: Some(now),
                will_retry_until: matches!(kind, DsnKind::Delay)
                    .then(|| config.expires_at(msg.queued_at)),
            })
        })
        .collect();
    if recipients.is_empty() {
        return None;
    }
    let report = dsn::build_dsn(&DsnInput {
        kind,
        reporting_mta: hostname,
        original_envelope_id: msg.options.dsn.envid.as_deref(),
        arrival_date: msg.queued_at,
        now,
        sender,
        recipients: &recipients,
        original_message: original.unwrap_or(b""),
        message_id: format!(
            "<{}.{}.{}@{hostname}>",
            msg.id,
            label(kind),
            now.as_millis()
        ),
        return_full: return_full(msg.options.dsn.ret, kind),
    });
    Some(Notice { to: sender, report })
}

/// Builds and sends the DSN about `rows` (see [`compose`]).
pub(super) async fn send<E: Env>(
    inner: &Arc<Inner<E>>,
    msg: &QueuedMessage,
    kind: DsnKind,
    rows: &[DsnRow],
    original: Option<&[u8]>,
    now: Timestamp,
) {
    let env = &inner.env;
    let notice = compose(
        msg,
        kind,
        rows,
        original,
        now,
        &inner.config,
        &inner.hostname,
    );
    let Some(Notice { to, report }) = notice else {
        match (msg.mail_from.is_some(), kind) {
            (false, DsnKind::Success) => {}
            (false, _) => env.trace(
                "queue",
                format_args!(
                    "{} undeliverable bounce (null sender): logged and dropped",
                    msg.id
                ),
            ),
            // Success rows are only ever wanted by some; say nothing for the rest.
            (true, DsnKind::Success) => {}
            (true, _) => env.trace(
                "queue",
                format_args!("{} no {} DSN: not wanted (NOTIFY)", msg.id, label(kind)),
            ),
        }
        return;
    };
    env.trace(
        "queue",
        format_args!(
            "{} {} DSN to <{to}> ({} octets)",
            msg.id,
            label(kind),
            report.len()
        ),
    );
    submit(inner, to, Message::inline(report), now).await;
}

/// The "delivered" success DSN (RFC 3461 §6.2.3.1, RFC 3464 `Action: delivered`) for the
/// recipients of `envelope` that asked for it with NOTIFY=SUCCESS and whose mail went into
/// one of our mailboxes; never for the null sender. Made by us, because final delivery is
/// ours; it goes to the sender like a bounce (local mailbox or the queue, from `<>`).
pub(super) async fn send_delivered<E: Env>(
    inner: &Arc<Inner<E>>,
    envelope: &Envelope,
    message: &[u8],
) {
    let Some(sender) = envelope.mail_from.as_ref() else {
        return;
    };
    let now = inner.env.now();
    let recipients: Vec<DsnRecipient> = envelope
        .recipients
        .iter()
        .filter(|r| r.notify.wants_success() && !r.mailboxes.is_empty())
        .map(|r| DsnRecipient {
            address: r.address.clone(),
            original: r.orcpt.as_ref().map(|o| format!("rfc822;{o}")),
            action: DsnAction::Delivered,
            status: (2, 0, 0),
            remote_mta: None,
            diagnostic: None,
            last_attempt: None,
            will_retry_until: None,
        })
        .collect();
    if recipients.is_empty() {
        return;
    }
    let hostname = &inner.hostname;
    let report = dsn::build_dsn(&DsnInput {
        kind: DsnKind::Success,
        reporting_mta: hostname,
        original_envelope_id: envelope.dsn.envid.as_deref(),
        arrival_date: envelope.received_at,
        now,
        sender,
        recipients: &recipients,
        original_message: message,
        message_id: format!(
            "<{}.{:016x}.delivered@{hostname}>",
            now.as_millis(),
            inner.env.random_u64()
        ),
        return_full: false,
    });
    inner.env.trace(
        "queue",
        format_args!(
            "delivered DSN to <{sender}> for {} ({} octets)",
            recipients
                .iter()
                .map(|r| format!("<{}>", r.address))
                .collect::<Vec<_>>()
                .join(", "),
            report.len()
        ),
    );
    submit(inner, sender, Message::inline(report), now).await;
}

/// Delivers a DSN to `to`: into the local mailbox if it is ours, else through the queue with
/// the null sender (or both, for an alias with local and remote targets).
async fn submit<E: Env>(inner: &Arc<Inner<E>>, to: &Address, report: Message, now: Timestamp) {
    let env = &inner.env;
    let mut verdict = inner.directory.resolve(to);
    if let (RcptVerdict::List(_), Some(list)) = (&verdict, inner.directory.list(to)) {
        // A DSN is never expanded to a list's members: its owner gets it.
        env.trace(
            "queue",
            format_args!(
                "DSN recipient <{to}> is a list: to its owner <{}>",
                list.owner
            ),
        );
        verdict = inner.directory.owner_verdict(list);
    }
    let (mailboxes, remote) = match verdict {
        RcptVerdict::Local(m) => (m, Vec::new()),
        RcptVerdict::Forward { mailboxes, remote } => (mailboxes, remote),
        RcptVerdict::RelayDenied => (Vec::new(), vec![to.clone()]),
        // A disabled account's mailbox takes nothing, a bounce included; a list never
        // receives a DSN (its bounce address is how lists take theirs).
        RcptVerdict::UnknownUser | RcptVerdict::Disabled | RcptVerdict::List(_) => {
            env.trace(
                "queue",
                format_args!("DSN recipient <{to}> is unknown: dropped"),
            );
            return;
        }
    };
    let envelope = Envelope {
        helo: inner.hostname.clone(),
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
    let sink = Sink {
        mailboxes: inner.mailboxes.clone(),
        outbound: Outbound {
            inner: inner.clone(),
        },
        directory: inner.directory.clone(),
    };
    let parts = sink.deliver_parts(&envelope, &report).await;
    if let Some(Err(e)) = parts.local {
        env.trace(
            "queue",
            format_args!("DSN to <{to}> could not be stored: {e:?}"),
        );
    }
    if let Some(Err(e)) = parts.remote {
        env.trace(
            "queue",
            format_args!("DSN to <{to}> could not be queued: {e:?}"),
        );
    }
}
