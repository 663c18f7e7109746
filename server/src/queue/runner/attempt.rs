//! One delivery attempt: some recipients of one message to one destination domain.
//!
//! Reads the body, refuses a looping message (Postfix `hopcount_limit`, RFC 5321 §6.3),
//! routes (the relayhost, or MX / implicit MX / null MX, see [`route`]), then tries each
//! address of each MX in preference order until every recipient has an outcome. What is
//! still open at the end is deferred with the last reply heard. The outcomes then go to
//! [`settle`](super::settle) and are applied by the runner.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::env::Env;
use crate::mail::header::count_received;
use crate::mail::Address;
use crate::smtp::Reply;

use super::super::client::RcptOutcome;
use super::super::route::{self, Hop, RouteError};
use super::super::store::{QueueId, QueuedMessage};
use super::scheduling::Feedback;
use super::session::{self, Target};
use super::settle::Outcome;
use super::{apply_settlement, Inner};

/// What one attempt carries from host to host.
pub(super) struct Attempt<E: Env> {
    pub inner: Arc<Inner<E>>,
    pub id: QueueId,
    /// The message as it stood when the attempt started.
    pub msg: QueuedMessage,
    /// The queue slots this attempt is for, and their addresses (same order).
    pub slots: Vec<usize>,
    pub recipients: Vec<Address>,
    /// Slots whose `Delivered` state was made durable before QUIT (see
    /// [`session`]): settlement does not record them twice.
    pub recorded: Mutex<BTreeSet<usize>>,
}

/// The outcomes of an attempt so far, by position in [`Attempt::slots`].
struct Tally {
    outcomes: Vec<Option<Outcome>>,
    /// What the still-open recipients are deferred with at the end.
    last: Reply,
    last_host: Option<String>,
    /// How the sessions went (the destination's concurrency window learns from it).
    feedback: Feedback,
}

impl Tally {
    fn new(n: usize, domain: &str) -> Tally {
        Tally {
            outcomes: vec![None; n],
            last: Reply::new(
                451,
                (4, 4, 0),
                format!("no attempt could be made for {domain}"),
            ),
            last_host: None,
            feedback: Feedback::default(),
        }
    }

    /// Positions still without an outcome.
    fn open(&self) -> Vec<usize> {
        (0..self.outcomes.len())
            .filter(|&k| self.outcomes[k].is_none())
            .collect()
    }

    fn fail_all(&mut self, reply: &Reply) {
        for o in &mut self.outcomes {
            *o = Some(Outcome::Failed(reply.clone(), None));
        }
    }

    /// Outcomes for `open` from one host; `None` entries stay open. `dsn`: the host offers
    /// DSN (the parameters went on with the message).
    fn record(&mut self, open: &[usize], from: Vec<Option<RcptOutcome>>, host: &str, dsn: bool) {
        for (&k, o) in open.iter().zip(from) {
            if let Some(o) = o {
                self.outcomes[k] = Some(attach_host(o, host, dsn));
            }
        }
    }

    fn finish(self) -> Vec<Outcome> {
        let (last, host) = (self.last, self.last_host);
        self.outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Deferred(last.clone(), host.clone())))
            .collect()
    }
}

/// Runs one attempt and settles it; says how its sessions went.
pub(super) async fn run<E: Env>(
    inner: &Arc<Inner<E>>,
    id: QueueId,
    domain: &str,
    slots: Vec<usize>,
) -> Feedback {
    let env = &inner.env;
    let Some(msg) = inner.state.lock().unwrap().messages.get(&id).cloned() else {
        return Feedback::default();
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
    let mut tally = Tally::new(slots.len(), domain);
    let attempt = Attempt {
        inner: inner.clone(),
        id,
        msg,
        slots,
        recipients,
        recorded: Mutex::new(BTreeSet::new()),
    };
    let body = match inner.store.read_message(id).await {
        Ok(body) => {
            attempt.deliver(domain, &body, &mut tally).await;
            Some(body)
        }
        Err(e) => {
            tally.last = Reply::new(451, (4, 3, 0), format!("queue file unreadable: {e}"));
            None
        }
    };
    let Attempt {
        slots, recorded, ..
    } = attempt;
    let recorded = recorded.into_inner().unwrap_or_default();
    let feedback = tally.feedback;
    apply_settlement(
        inner,
        id,
        &slots,
        tally.finish(),
        body.as_deref(),
        &recorded,
    )
    .await;
    feedback
}

impl<E: Env> Attempt<E> {
    /// Hop count, routing, then the hosts in turn.
    async fn deliver(&self, domain: &str, body: &[u8], tally: &mut Tally) {
        let config = &self.inner.config;
        let hops = count_received(body);
        if hops > config.max_received_headers {
            tally.fail_all(&Reply::new(
                554,
                (5, 4, 6),
                format!("Too many hops ({hops} Received: headers): mail loop"),
            ));
            return;
        }
        let routed = match config.relayhost {
            Some(relay) => Ok(vec![Hop {
                host: relay.ip().to_string(),
                preference: 0,
                addrs: vec![relay.ip()],
            }]),
            None => route::resolve(&self.inner.env, domain, &self.inner.me).await,
        };
        let port = config.relayhost.map_or(self.inner.port, |r| r.port());
        match routed {
            Err(RouteError::Temporary(why)) => tally.last = Reply::new(451, (4, 4, 3), why),
            Err(RouteError::Permanent { status, text }) => {
                tally.fail_all(&Reply::new(550, status, text))
            }
            Ok(hops) => self.try_hops(hops, port, body, tally).await,
        }
    }

    /// Each address of each MX, in order, for the recipients still open; stops when none is.
    async fn try_hops(&self, hops: Vec<Hop>, port: u16, body: &[u8], tally: &mut Tally) {
        for hop in hops {
            for ip in hop.addrs {
                let open = tally.open();
                if open.is_empty() {
                    return;
                }
                let target = Target {
                    peer: format!("{}[{ip}]", hop.host),
                    host: &hop.host,
                    addr: SocketAddr::new(ip, port),
                };
                tally.last_host = Some(hop.host.clone());
                self.try_address(&target, &hop.host, open, body, tally)
                    .await;
            }
        }
    }

    /// One address: a transaction for the `open` recipients, and — when the peer took some
    /// and answered the rest `452 4.5.3` (its recipient limit) — at once another for the
    /// rest, as Postfix does, rather than leaving them for the retry schedule. RFC 5321
    /// §4.5.3.1.10: a server out of recipient slots MUST answer 452, and the client sends
    /// the remaining recipients in a new transaction. Each round must deliver something,
    /// so a peer that defers everyone ends the loop.
    async fn try_address(
        &self,
        target: &Target<'_>,
        host: &str,
        mut open: Vec<usize>,
        body: &[u8],
        tally: &mut Tally,
    ) {
        loop {
            match session::try_host(self, target, &open, body).await {
                Ok((results, dsn)) => {
                    // A 421 anywhere is the server closing on us (RFC 5321 §3.8): for the
                    // concurrency window that is a failed session, whatever it decided.
                    let closed = results
                        .iter()
                        .any(|o| matches!(o, RcptOutcome::Deferred(r) if r.code == 421));
                    match closed {
                        true => tally.feedback.failed += 1,
                        false => tally.feedback.ok += 1,
                    }
                    let again = over_recipient_limit(&results);
                    let mut outcomes: Vec<Option<RcptOutcome>> =
                        results.into_iter().map(Some).collect();
                    let rest: Vec<usize> = again.iter().map(|&i| open[i]).collect();
                    if let Some(&first) = again.first() {
                        if let Some(Some(RcptOutcome::Deferred(reply))) = outcomes.get(first) {
                            tally.last = reply.clone();
                        }
                        for &i in &again {
                            outcomes[i] = None;
                        }
                    }
                    tally.record(&open, outcomes, host, dsn);
                    if rest.is_empty() {
                        return;
                    }
                    self.inner.env.trace(
                        "queue",
                        format_args!(
                            "{} {} reached its recipient limit: {} recipient(s) in a new \
                             transaction at once",
                            self.id,
                            target.peer,
                            rest.len()
                        ),
                    );
                    open = rest;
                }
                Err((reply, partial)) => {
                    tally.feedback.failed += 1;
                    // The session broke after some acceptances: whether the peer took
                    // DSN is not known here, so a success notice is sent (a duplicate
                    // at worst, never a missing one).
                    tally.record(&open, partial, host, false);
                    tally.last = reply;
                    return;
                }
            }
        }
    }
}

/// Positions (in `results`) deferred with the peer's recipient limit — `452` with
/// `4.5.3`, or without an enhanced code but saying "too many recipients" — provided the
/// same transaction delivered at least one recipient (so a new one makes progress).
fn over_recipient_limit(results: &[RcptOutcome]) -> Vec<usize> {
    let delivered = results
        .iter()
        .any(|o| matches!(o, RcptOutcome::Delivered(_)));
    if !delivered {
        return Vec::new();
    }
    results
        .iter()
        .enumerate()
        .filter(|(_, o)| match o {
            RcptOutcome::Deferred(r) if r.code == 452 => match r.enhanced {
                Some(e) => e == (4, 5, 3),
                None => r
                    .lines
                    .iter()
                    .any(|l| l.to_ascii_lowercase().contains("too many recipients")),
            },
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

fn attach_host(o: RcptOutcome, host: &str, dsn: bool) -> Outcome {
    match o {
        RcptOutcome::Delivered(r) => Outcome::Delivered(r, host.to_string(), dsn),
        RcptOutcome::Failed(r) => Outcome::Failed(r, Some(host.to_string())),
        RcptOutcome::Deferred(r) => Outcome::Deferred(r, Some(host.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_no_host_decided_is_deferred_with_the_last_reply_heard() {
        let mut tally = Tally::new(3, "remote.test");
        assert_eq!(tally.open(), [0, 1, 2]);
        // The first host decides one recipient, then the connection drops.
        tally.record(
            &[0, 1, 2],
            vec![
                None,
                Some(RcptOutcome::Failed(Reply::new(550, (5, 1, 1), "no"))),
                None,
            ],
            "mx1.remote.test",
            false,
        );
        tally.last = Reply::new(451, (4, 4, 2), "mx1 lost");
        tally.last_host = Some("mx1.remote.test".into());
        assert_eq!(tally.open(), [0, 2]);
        // The second delivers one; the third is never reached.
        tally.record(
            &[0, 2],
            vec![Some(RcptOutcome::Delivered(Reply::new(
                250,
                (2, 0, 0),
                "ok",
            )))],
            "mx2.remote.test",
            true,
        );
        let out = tally.finish();
        assert_eq!(
            out[0],
            Outcome::Delivered(
                Reply::new(250, (2, 0, 0), "ok"),
                "mx2.remote.test".into(),
                true
            )
        );
        assert_eq!(
            out[1],
            Outcome::Failed(
                Reply::new(550, (5, 1, 1), "no"),
                Some("mx1.remote.test".into())
            )
        );
        assert_eq!(
            out[2],
            Outcome::Deferred(
                Reply::new(451, (4, 4, 2), "mx1 lost"),
                Some("mx1.remote.test".into())
            )
        );
    }

    #[test]
    fn only_a_452_recipient_limit_after_progress_is_sent_again_at_once() {
        let ok = RcptOutcome::Delivered(Reply::new(250, (2, 0, 0), "ok"));
        let limit = RcptOutcome::Deferred(Reply::new(452, (4, 5, 3), "Too many recipients"));
        let full = RcptOutcome::Deferred(Reply::new(452, (4, 2, 2), "mailbox full"));
        let plain = RcptOutcome::Deferred(Reply {
            code: 452,
            enhanced: None,
            lines: vec!["Too many recipients".into()],
        });
        assert_eq!(
            over_recipient_limit(&[ok.clone(), limit.clone(), full.clone(), plain]),
            [1, 3]
        );
        // Nothing delivered: another transaction would make no progress.
        assert!(over_recipient_limit(&[limit.clone(), limit]).is_empty());
        assert!(over_recipient_limit(&[ok, full]).is_empty());
    }

    #[test]
    fn without_any_attempt_everyone_is_deferred_4_4_0() {
        let out = Tally::new(2, "nowhere.test").finish();
        for o in out {
            let Outcome::Deferred(reply, None) = o else {
                panic!("{o:?}")
            };
            assert_eq!(
                reply.to_string(),
                "451 4.4.0 no attempt could be made for nowhere.test"
            );
        }
    }
}
