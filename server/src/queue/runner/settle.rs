//! Settlement: what one attempt's outcomes mean for the queue, as pure functions — no Env,
//! no awaits, no store. The runner applies the result (records, reschedules, sends DSNs,
//! removes) in that order; the trace lines come from here so their text stays in one place.
//!
//! The policy is Postfix's:
//! - a deferred recipient is retried after [`QueueConfig::retry_delay`] (300 s, doubling,
//!   capped at `max_retry_secs`: `minimal_backoff_time` / `maximal_backoff_time`), but never
//!   after the message expires;
//! - a recipient still deferred at the end of the lifetime (`maximal_queue_lifetime`) fails
//!   with `5.4.7` and the message's age in the text (RFC 3463: delivery time expired);
//! - the sender gets one "still trying" DSN once the message has been queued for
//!   `delay_warning` (`delay_warning_time`), never a second;
//! - failed and expired recipients go into one failure DSN per attempt;
//! - a message whose recipients are all final is removed.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::env::Timestamp;
use crate::smtp::Reply;

use super::super::config::QueueConfig;
use super::super::store::{QueuedMessage, RecipientState};

#[cfg(test)]
mod tests;

/// What became of one recipient in one attempt, with the host that said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Accepted by `host`; `true` if the host offers DSN (it got NOTIFY and reports on it),
    /// `false` if a `NOTIFY=SUCCESS` is ours to answer with a "relayed" DSN.
    Delivered(Reply, String, bool),
    Failed(Reply, Option<String>),
    Deferred(Reply, Option<String>),
}

/// One recipient a DSN reports on: its queue slot, the reply, the remote MTA.
pub(super) type DsnRow = (usize, Reply, Option<String>);

/// What to do about one attempt's outcomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Settlement {
    /// One `queue` trace line per recipient, in slot order, traced before anything else.
    pub trace: Vec<String>,
    /// The new state of every slot of the attempt, for the in-memory copy.
    pub states: Vec<(usize, RecipientState)>,
    /// The states to make durable: `states` minus the deliveries already recorded before
    /// QUIT (no second fsync for them).
    pub to_record: Vec<(usize, RecipientState)>,
    /// Deferred slots and when they are due again.
    pub retry: Vec<(usize, Timestamp)>,
    /// Failed and expired recipients: the failure DSN's rows.
    pub failed: Vec<DsnRow>,
    /// Deferred recipients: the delay DSN's rows, if [`Settlement::apply`] says one is due.
    pub delayed: Vec<DsnRow>,
    /// Recipients handed to a peer without DSN: the "relayed" success DSN's rows (sent only
    /// for those that asked with NOTIFY=SUCCESS, RFC 3461 §6.2.3.3).
    pub relayed: Vec<DsnRow>,
}

/// What applying a settlement to the live message decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Applied {
    /// Send the delay DSN now (and record that it was sent): the first settlement with a
    /// deferred recipient after `delay_warning`.
    pub warn: bool,
    /// Every recipient is final: remove the message.
    pub complete: bool,
}

/// Decides the outcomes of one attempt: `slots[k]` had `outcomes[k]`; `recorded` are the
/// slots whose delivery is durable already.
pub(super) fn decide(
    msg: &QueuedMessage,
    slots: &[usize],
    outcomes: Vec<Outcome>,
    recorded: &BTreeSet<usize>,
    now: Timestamp,
    config: &QueueConfig,
) -> Settlement {
    let id = msg.id;
    let expires = config.expires_at(msg.queued_at);
    let mut s = Settlement {
        trace: Vec::new(),
        states: Vec::new(),
        to_record: Vec::new(),
        retry: Vec::new(),
        failed: Vec::new(),
        delayed: Vec::new(),
        relayed: Vec::new(),
    };
    for (&slot, outcome) in slots.iter().zip(outcomes) {
        let Some(r) = msg.recipients.get(slot) else {
            continue;
        };
        let prev_attempts = match &r.state {
            RecipientState::Deferred { attempts, .. } => *attempts,
            _ => 0,
        };
        let state = match outcome {
            Outcome::Delivered(reply, host, dsn_peer) => {
                s.trace.push(format!(
                    "{id} <{}> delivered via {host}: {reply}",
                    r.address
                ));
                let state = RecipientState::Delivered {
                    reply: reply.to_string(),
                };
                if !dsn_peer {
                    s.relayed.push((slot, reply, Some(host)));
                }
                state
            }
            Outcome::Failed(reply, host) => {
                s.trace
                    .push(format!("{id} <{}> failed: {reply}", r.address));
                let state = RecipientState::Failed {
                    reply: reply.to_string(),
                };
                s.failed.push((slot, reply, host));
                state
            }
            Outcome::Deferred(reply, host) if now >= expires => {
                let text = format!(
                    "message expired after {} in the queue; last error: {reply}",
                    human(now.since(msg.queued_at))
                );
                let expired = Reply::new(550, (5, 4, 7), text);
                s.trace
                    .push(format!("{id} <{}> expired: {reply}", r.address));
                let state = RecipientState::Failed {
                    reply: expired.to_string(),
                };
                s.failed.push((slot, expired, host));
                state
            }
            Outcome::Deferred(reply, host) => {
                let attempts = prev_attempts + 1;
                let next = now.plus(config.retry_delay(attempts)).min(expires);
                s.trace.push(format!(
                    "{id} <{}> deferred (attempt {attempts}), retry at +{}: {reply}",
                    r.address,
                    human(next.since(now))
                ));
                let state = RecipientState::Deferred {
                    attempts,
                    last_reply: reply.to_string(),
                    next_attempt: next,
                };
                s.retry.push((slot, next));
                s.delayed.push((slot, reply, host));
                state
            }
        };
        let durable = recorded.contains(&slot) && matches!(state, RecipientState::Delivered { .. });
        if !durable {
            s.to_record.push((slot, state.clone()));
        }
        s.states.push((slot, state));
    }
    s
}

impl Settlement {
    /// Applies the new states to `live` — the in-memory message as it is *now*: attempts of
    /// the same message to other destinations settle concurrently, so completeness and the
    /// delay warning are decided on the live copy, which makes exactly one settlement see
    /// the message complete and at most one ever send the delay warning.
    pub fn apply(&self, live: &mut QueuedMessage, now: Timestamp, config: &QueueConfig) -> Applied {
        for (slot, state) in &self.states {
            if let Some(r) = live.recipients.get_mut(*slot) {
                r.state = state.clone();
            }
        }
        let warn = !self.delayed.is_empty()
            && !live.delay_warned
            && config
                .delay_warning()
                .is_some_and(|w| now.since(live.queued_at) >= w);
        if warn {
            live.delay_warned = true;
        }
        Applied {
            warn,
            complete: live.is_complete(),
        }
    }
}

/// A duration as the trace and DSN texts give it: `4d0h`, `2h5m`, `5m0s`, `0.250s`.
pub(super) fn human(d: Duration) -> String {
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
