//! Settlement without a world: a message, the outcomes of one attempt, a time, a config.

use std::collections::BTreeSet;

use super::*;
use crate::mail::Address;
use crate::queue::dsn::DsnKind;
use crate::queue::runner::bounce;
use crate::queue::store::{QueueId, QueuedRecipient};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn message(from: Option<&str>, rcpts: &[&str]) -> QueuedMessage {
    QueuedMessage {
        id: QueueId::new(at(0), 7),
        queued_at: at(0),
        mail_from: from.map(|a| Address::parse(a).unwrap()),
        recipients: rcpts
            .iter()
            .map(|a| QueuedRecipient {
                address: Address::parse(a).unwrap(),
                state: RecipientState::Pending,
                notify: Default::default(),
                orcpt: None,
            })
            .collect(),
        delay_warned: false,
        size: 10,
        options: Default::default(),
    }
}

fn deferred() -> Outcome {
    Outcome::Deferred(
        Reply::new(451, (4, 7, 1), "greylisted"),
        Some("mx.remote.test".into()),
    )
}

fn delivered() -> Outcome {
    Outcome::Delivered(
        Reply::new(250, (2, 0, 0), "Ok: queued as X1"),
        "mx.remote.test".into(),
        true,
    )
}

fn failed() -> Outcome {
    Outcome::Failed(
        Reply::new(550, (5, 1, 1), "User unknown"),
        Some("mx.remote.test".into()),
    )
}

/// Settles `outcomes` (slots 0..n) at `now` and applies the result to `msg`, as the runner
/// does for an attempt that no other attempt of the message overlaps.
fn settle(
    msg: &mut QueuedMessage,
    outcomes: Vec<Outcome>,
    now: Timestamp,
    config: &QueueConfig,
) -> (Settlement, Applied) {
    let slots: Vec<usize> = (0..outcomes.len()).collect();
    let s = decide(msg, &slots, outcomes, &BTreeSet::new(), now, config);
    let applied = s.apply(msg, now, config);
    (s, applied)
}

fn attempts_and_next(msg: &QueuedMessage, slot: usize) -> (u32, Timestamp) {
    match &msg.recipients[slot].state {
        RecipientState::Deferred {
            attempts,
            next_attempt,
            ..
        } => (*attempts, *next_attempt),
        other => panic!("not deferred: {other:?}"),
    }
}

#[test]
fn backoff_is_postfix_like_300s_doubling_to_the_cap() {
    let config = QueueConfig::default();
    let mut msg = message(Some("alice@here.test"), &["bob@remote.test"]);
    let mut now = at(0);
    let mut delays = Vec::new();
    for _ in 0..7 {
        let (s, applied) = settle(&mut msg, vec![deferred()], now, &config);
        let (attempts, next) = attempts_and_next(&msg, 0);
        assert_eq!(s.retry, [(0, next)]);
        assert_eq!(s.to_record, s.states);
        assert!(!applied.complete);
        delays.push((attempts, next.since(now).as_secs()));
        now = next;
    }
    assert_eq!(
        delays,
        [
            (1, 300),
            (2, 600),
            (3, 1200),
            (4, 2400),
            (5, 4020),
            (6, 4020),
            (7, 4020)
        ]
    );
}

#[test]
fn backoff_follows_the_configured_retry_delay_and_stops_at_expiry() {
    let config = QueueConfig {
        first_retry_secs: 60,
        max_retry_secs: 200,
        lifetime_secs: 500,
        delay_warning_secs: 0,
        ..QueueConfig::default()
    };
    let mut msg = message(Some("alice@here.test"), &["bob@remote.test"]);
    let (s, _) = settle(&mut msg, vec![deferred()], at(0), &config);
    assert_eq!(s.retry, [(0, at(60))]);
    assert_eq!(
        s.trace,
        [format!(
            "{} <bob@remote.test> deferred (attempt 1), retry at +1m0s: 451 4.7.1 greylisted",
            msg.id
        )]
    );
    let (s, _) = settle(&mut msg, vec![deferred()], at(60), &config);
    assert_eq!(s.retry, [(0, at(180))]);
    let (s, _) = settle(&mut msg, vec![deferred()], at(180), &config);
    assert_eq!(s.retry, [(0, at(380))], "capped at 200 s");
    // The next delay (200 s) would pass the lifetime: the last try is at the expiry.
    let (s, _) = settle(&mut msg, vec![deferred()], at(380), &config);
    assert_eq!(s.retry, [(0, at(500))]);
    assert_eq!(attempts_and_next(&msg, 0), (4, at(500)));
}

#[test]
fn a_recipient_still_deferred_at_the_lifetime_fails_with_5_4_7_and_the_age() {
    let config = QueueConfig::default();
    let mut msg = message(Some("alice@here.test"), &["bob@remote.test"]);
    let now = at(5 * DAY);
    let (s, applied) = settle(&mut msg, vec![deferred()], now, &config);
    assert!(s.retry.is_empty() && s.delayed.is_empty());
    assert_eq!(s.failed.len(), 1);
    let (slot, reply, host) = &s.failed[0];
    assert_eq!(
        (*slot, reply.code, reply.enhanced),
        (0, 550, Some((5, 4, 7)))
    );
    assert_eq!(host.as_deref(), Some("mx.remote.test"));
    assert_eq!(
        reply.to_string(),
        "550 5.4.7 message expired after 5d0h in the queue; last error: 451 4.7.1 greylisted"
    );
    assert_eq!(
        msg.recipients[0].state,
        RecipientState::Failed {
            reply: reply.to_string()
        }
    );
    assert_eq!(
        s.trace,
        [format!(
            "{} <bob@remote.test> expired: 451 4.7.1 greylisted",
            msg.id
        )]
    );
    assert!(applied.complete);
    // A second before the lifetime it is still a retry.
    let mut msg = message(Some("alice@here.test"), &["bob@remote.test"]);
    let (s, _) = settle(&mut msg, vec![deferred()], at(5 * DAY - 1), &config);
    assert_eq!(s.retry, [(0, at(5 * DAY))]);
    assert!(s.failed.is_empty());
}

#[test]
fn the_delay_warning_goes_out_exactly_once_after_delay_warning() {
    let config = QueueConfig::default(); // 4 h
    let mut msg = message(Some("alice@here.test"), &["bob@remote.test"]);
    let warned: Vec<bool> = [HOUR, 4 * HOUR - 1, 4 * HOUR, 5 * HOUR, 2 * DAY]
        .into_iter()
        .map(|t| {
            let (s, applied) = settle(&mut msg, vec![deferred()], at(t), &config);
            if applied.warn {
                assert_eq!(
                    s.delayed.len(),
                    1,
                    "the delay DSN reports the deferred recipient"
                );
            }
            applied.warn
        })
        .collect();
    assert_eq!(warned, [false, false, true, false, false]);
    assert!(msg.delay_warned);

    // Off (0): never.
    let off = QueueConfig {
        delay_warning_secs: 0,
        ..QueueConfig::default()
    };
    let mut msg = message(Some("alice@here.test"), &["bob@remote.test"]);
    let (_, applied) = settle(&mut msg, vec![deferred()], at(DAY), &off);
    assert!(!applied.warn && !msg.delay_warned);

    // Late, but nothing deferred in this attempt: no warning (a failure DSN instead).
    let mut msg = message(Some("alice@here.test"), &["bob@remote.test"]);
    let (s, applied) = settle(&mut msg, vec![failed()], at(DAY), &config);
    assert!(!applied.warn && s.delayed.is_empty() && s.failed.len() == 1);
}

#[test]
fn partial_success_delivered_deferred_and_failed_in_one_attempt() {
    let config = QueueConfig::default();
    let mut msg = message(
        Some("alice@here.test"),
        &["ok@remote.test", "busy@remote.test", "gone@remote.test"],
    );
    let (s, applied) = settle(
        &mut msg,
        vec![delivered(), deferred(), failed()],
        at(10),
        &config,
    );
    assert_eq!(
        msg.recipients[0].state,
        RecipientState::Delivered {
            reply: "250 2.0.0 Ok: queued as X1".into()
        }
    );
    assert_eq!(attempts_and_next(&msg, 1), (1, at(310)));
    assert_eq!(
        msg.recipients[2].state,
        RecipientState::Failed {
            reply: "550 5.1.1 User unknown".into()
        }
    );
    assert_eq!(s.retry, [(1, at(310))]);
    assert_eq!(
        s.failed
            .iter()
            .map(|(slot, r, _)| (*slot, r.code))
            .collect::<Vec<_>>(),
        [(2, 550)]
    );
    assert_eq!(
        s.delayed.iter().map(|(slot, ..)| *slot).collect::<Vec<_>>(),
        [1]
    );
    let id = msg.id;
    assert_eq!(
        s.trace,
        [
            format!(
                "{id} <ok@remote.test> delivered via mx.remote.test: 250 2.0.0 Ok: queued as X1"
            ),
            format!(
                "{id} <busy@remote.test> deferred (attempt 1), retry at +5m0s: 451 4.7.1 greylisted"
            ),
            format!("{id} <gone@remote.test> failed: 550 5.1.1 User unknown"),
        ]
    );
    assert_eq!(
        applied,
        Applied {
            warn: false,
            complete: false
        }
    );

    // The retry of the deferred one succeeds: now the message is complete.
    let s = decide(
        &msg,
        &[1],
        vec![delivered()],
        &BTreeSet::new(),
        at(310),
        &config,
    );
    assert!(s.failed.is_empty() && s.retry.is_empty());
    assert!(s.apply(&mut msg, at(310), &config).complete);
}

#[test]
fn deliveries_recorded_before_quit_are_not_recorded_twice() {
    let config = QueueConfig::default();
    let msg = message(
        Some("alice@here.test"),
        &["a@remote.test", "b@remote.test", "c@remote.test"],
    );
    let recorded = BTreeSet::from([0, 2]);
    // Slot 2 was recorded as delivered but the final outcome says otherwise (it cannot, in
    // practice): only a *delivery* recorded before QUIT is skipped.
    let s = decide(
        &msg,
        &[0, 1, 2],
        vec![delivered(), delivered(), deferred()],
        &recorded,
        at(1),
        &config,
    );
    assert_eq!(
        s.states.iter().map(|(slot, _)| *slot).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(
        s.to_record
            .iter()
            .map(|(slot, _)| *slot)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(s.trace.len(), 3, "every outcome is still traced");
}

#[test]
fn a_null_sender_gets_no_dsn() {
    let config = QueueConfig::default();
    let mut msg = message(None, &["bob@remote.test"]);
    let (s, applied) = settle(&mut msg, vec![failed()], at(1), &config);
    assert_eq!(s.failed.len(), 1);
    assert!(applied.complete);
    let notice = bounce::compose(
        &msg,
        DsnKind::Failure,
        &s.failed,
        Some(b"Subject: x\r\n\r\nhi\r\n"),
        at(1),
        &config,
        "mx.here.test",
    );
    assert!(notice.is_none(), "a bounce is never bounced");

    // The same failure from a real sender: a DSN to that sender.
    let mut msg = message(Some("alice@here.test"), &["bob@remote.test"]);
    let (s, _) = settle(&mut msg, vec![failed()], at(1), &config);
    let notice = bounce::compose(
        &msg,
        DsnKind::Failure,
        &s.failed,
        None,
        at(1),
        &config,
        "mx.here.test",
    )
    .expect("a DSN");
    assert_eq!(notice.to.to_string(), "alice@here.test");
    let text = String::from_utf8_lossy(&notice.report);
    assert!(text.contains("bob@remote.test"), "{text}");
    assert!(text.contains("5.1.1"), "{text}");
}

#[test]
fn concurrent_attempts_of_one_message_complete_it_once() {
    // Two destinations settle from the same snapshot; each applies to the live copy in turn.
    let config = QueueConfig::default();
    let mut live = message(Some("alice@here.test"), &["a@one.test", "b@two.test"]);
    let snapshot = live.clone();
    let none = BTreeSet::new();
    let first = decide(&snapshot, &[0], vec![delivered()], &none, at(5), &config);
    let second = decide(&snapshot, &[1], vec![failed()], &none, at(5), &config);
    assert!(!first.apply(&mut live, at(5), &config).complete);
    assert!(second.apply(&mut live, at(5), &config).complete);
}

#[test]
fn durations_read_like_the_trace() {
    use std::time::Duration;
    assert_eq!(human(Duration::from_millis(250)), "0.250s");
    assert_eq!(human(Duration::from_secs(300)), "5m0s");
    assert_eq!(human(Duration::from_secs(2 * HOUR + 300)), "2h5m");
    assert_eq!(human(Duration::from_secs(4 * DAY)), "4d0h");
}

#[test]
fn acceptance_by_a_peer_without_dsn_is_a_relayed_row() {
    let msg = message(Some("s@example.org"), &["a@x.test", "b@x.test"]);
    let plain = Outcome::Delivered(Reply::new(250, (2, 0, 0), "Ok"), "mx.x.test".into(), false);
    let s = decide(
        &msg,
        &[0, 1],
        vec![plain, delivered()],
        &BTreeSet::new(),
        at(10),
        &QueueConfig::default(),
    );
    assert_eq!(s.relayed.len(), 1);
    assert_eq!(s.relayed[0].0, 0);
    assert_eq!(s.relayed[0].2.as_deref(), Some("mx.x.test"));
    assert!(s.failed.is_empty() && s.delayed.is_empty());
}

/// NOTIFY picks the rows of each kind of DSN; RET, ENVID and ORCPT shape the report.
#[test]
fn dsn_parameters_shape_the_notices() {
    use crate::mail::{EnvelopeDsn, Notify, Ret};
    let config = QueueConfig::default();
    let mut msg = message(
        Some("alice@here.test"),
        &["never@x.test", "plain@x.test", "fail@x.test", "ok@x.test"],
    );
    msg.options.dsn = EnvelopeDsn {
        ret: Some(Ret::Full),
        envid: Some("QQ314159".into()),
    };
    let notify = |s: &str| Notify::parse(s).unwrap();
    msg.recipients[0].notify = notify("NEVER");
    msg.recipients[2].notify = notify("FAILURE");
    msg.recipients[2].orcpt = Some("Fail.Orig@x.test".into());
    msg.recipients[3].notify = notify("SUCCESS");
    let body = b"Subject: x\r\n\r\nthe body\r\n";
    let rows = |slots: &[usize], code: u16| -> Vec<DsnRow> {
        let status = (u8::try_from(code / 100).unwrap(), 0, 0);
        slots
            .iter()
            .map(|&s| (s, Reply::new(code, status, "x"), Some("mx.x.test".into())))
            .collect()
    };
    let compose = |kind, rows: &[DsnRow]| {
        bounce::compose(&msg, kind, rows, Some(body), at(9), &config, "mx.here.test")
            .map(|n| String::from_utf8_lossy(&n.report).into_owned())
    };

    let failure = compose(DsnKind::Failure, &rows(&[0, 1, 2, 3], 550)).unwrap();
    assert!(!failure.contains("never@x.test"), "{failure}");
    assert!(failure.contains("Final-Recipient: rfc822;plain@x.test"));
    assert!(failure.contains("Final-Recipient: rfc822;fail@x.test"));
    assert!(
        !failure.contains("rfc822;ok@x.test"),
        "SUCCESS only: no failure notice"
    );
    assert!(failure.contains("Original-Envelope-Id: QQ314159\r\n"));
    assert!(failure.contains("Original-Recipient: rfc822;Fail.Orig@x.test\r\n"));
    assert!(failure.contains("Content-Type: message/rfc822"), "RET=FULL");
    assert!(failure.contains("the body"));

    // NEVER and FAILURE-only recipients get no delay warning; the default one does.
    assert_eq!(compose(DsnKind::Delay, &rows(&[0, 2, 3], 451)), None);
    let delay = compose(DsnKind::Delay, &rows(&[1], 451)).unwrap();
    assert!(delay.contains("Action: delayed"));
    assert!(delay.contains("text/rfc822-headers") && !delay.contains("the body"));

    // Success: only for NOTIFY=SUCCESS, as "relayed".
    assert_eq!(compose(DsnKind::Success, &rows(&[0, 1, 2], 250)), None);
    let success = compose(DsnKind::Success, &rows(&[1, 3], 250)).unwrap();
    assert!(success.contains("Final-Recipient: rfc822;ok@x.test"));
    assert!(!success.contains("plain@x.test"));
    assert!(success.contains("Action: relayed"));
    assert!(success.contains("Status: 2.0.0"));

    // RET=HDRS (and no RET): the headers only.
    msg.options.dsn.ret = Some(Ret::Hdrs);
    let hdrs = bounce::compose(
        &msg,
        DsnKind::Failure,
        &rows(&[1], 550),
        Some(body),
        at(9),
        &config,
        "h",
    )
    .map(|n| String::from_utf8_lossy(&n.report).into_owned())
    .unwrap();
    assert!(hdrs.contains("Content-Type: text/rfc822-headers"), "{hdrs}");
    assert!(!hdrs.contains("the body"));
}
