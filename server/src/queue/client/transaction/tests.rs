//! The transaction's decisions fed replies directly: no stream, no clock, no fake server.

use super::*;

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn caps(pipelining: bool) -> Capabilities {
    Capabilities {
        esmtp: true,
        hostname: "mx.test".into(),
        pipelining,
        size: Some(1000),
        eight_bit_mime: true,
        smtputf8: false,
        ..Capabilities::default()
    }
}

fn msg<'a>(from: Option<&'a Address>, rcpts: &'a [Address]) -> OutboundMessage<'a> {
    OutboundMessage {
        mail_from: from,
        recipients: rcpts,
        message: b"Subject: hi\r\n\r\nhello\r\n",
        needs_smtputf8: false,
        ..Default::default()
    }
}

/// A transaction for `m` as the client would prepare it for `caps`.
fn new_tx(
    m: &OutboundMessage<'_>,
    caps: &Capabilities,
    state: State,
    notes: &mut Vec<String>,
) -> Transaction {
    let prepared = super::super::prepare::prepare(m.message, caps);
    Transaction::new(m, &prepared, caps, state, notes)
}

fn r(code: u16) -> Reply {
    let class = (code / 100) as u8;
    Reply::new(code, (class, 0, 0), format!("reply {code}"))
}

fn kinds(tx: Transaction) -> Vec<Option<(char, u16)>> {
    tx.into_outcomes()
        .into_iter()
        .map(|o| {
            o.map(|o| {
                let k = match o {
                    RcptOutcome::Delivered(_) => 'D',
                    RcptOutcome::Deferred(_) => 'T',
                    RcptOutcome::Failed(_) => 'F',
                };
                (k, o.reply().code)
            })
        })
        .collect()
}

/// Feeds `replies` to commands 0, 1, ... and returns the steps.
fn feed(tx: &mut Transaction, replies: &[u16]) -> Vec<Step> {
    replies
        .iter()
        .enumerate()
        .map(|(k, &code)| tx.on_reply(k, r(code)).unwrap())
        .collect()
}

#[test]
fn commands_carry_the_extensions_the_peer_offers() {
    let from = addr("alice@out.test");
    let rcpts = [addr("bob@mx.test"), addr("carol@mx.test")];
    let m = OutboundMessage {
        message: "Subject: hi\r\n\r\nhellö\r\n".as_bytes(),
        ..msg(Some(&from), &rcpts)
    };
    let mut notes = Vec::new();
    let tx = new_tx(&m, &caps(true), State::Idle, &mut notes);
    assert_eq!(
        tx.commands(),
        [
            "MAIL FROM:<alice@out.test> SIZE=23 BODY=8BITMIME",
            "RCPT TO:<bob@mx.test>",
            "RCPT TO:<carol@mx.test>",
            "DATA"
        ]
    );
    assert_eq!(
        (0..4).map(|k| tx.stage(k)).collect::<Vec<_>>(),
        [Stage::MailFrom, Stage::RcptTo, Stage::RcptTo, Stage::Data]
    );
    assert!(notes.is_empty() && !tx.needs_rset());
    // An open transaction from before: RSET first.
    let tx = new_tx(&m, &caps(true), State::InTransaction, &mut notes);
    assert!(tx.needs_rset());
}

#[test]
fn mixed_replies_give_one_outcome_each_in_both_modes() {
    let rcpts = [
        addr("ok@mx.test"),
        addr("unknown@mx.test"),
        addr("busy@mx.test"),
        addr("ok2@mx.test"),
    ];
    for pipelined in [true, false] {
        let mut tx = new_tx(
            &msg(None, &rcpts),
            &caps(pipelined),
            State::Idle,
            &mut Vec::new(),
        );
        let steps = feed(&mut tx, &[250, 250, 550, 451, 250, 354]);
        assert_eq!(steps.last(), Some(&Step::SendBody));
        assert!(steps[..5].iter().all(|s| *s == Step::Next));
        assert_eq!(tx.on_end_of_data(r(250)).unwrap(), Step::Done);
        assert_eq!(tx.state(), State::Idle);
        assert_eq!(
            kinds(tx),
            [
                Some(('D', 250)),
                Some(('F', 550)),
                Some(('T', 451)),
                Some(('D', 250))
            ]
        );
    }
}

#[test]
fn a_rejected_mail_from_decides_everyone_and_pipelined_replies_are_still_read() {
    let rcpts = [addr("bob@mx.test"), addr("carol@mx.test")];
    // Lockstep: nothing more is sent.
    let mut tx = new_tx(
        &msg(None, &rcpts),
        &caps(false),
        State::Idle,
        &mut Vec::new(),
    );
    assert_eq!(tx.on_reply(0, r(451)).unwrap(), Step::Done);
    assert_eq!(kinds(tx), [Some(('T', 451)), Some(('T', 451))]);
    // Pipelined: the 503s to RCPT and DATA are read and change nothing.
    let mut tx = new_tx(
        &msg(None, &rcpts),
        &caps(true),
        State::Idle,
        &mut Vec::new(),
    );
    assert_eq!(
        feed(&mut tx, &[550, 503, 503, 503]),
        [Step::Next, Step::Next, Step::Next, Step::Done]
    );
    assert!(!tx.mail_accepted());
    assert_eq!(kinds(tx), [Some(('F', 550)), Some(('F', 550))]);
}

#[test]
fn a_421_among_the_rcpts_defers_the_rest_and_closes() {
    let rcpts = [
        addr("a@mx.test"),
        addr("gone@mx.test"),
        addr("b@mx.test"),
        addr("c@mx.test"),
    ];
    for pipelined in [true, false] {
        let mut tx = new_tx(
            &msg(None, &rcpts),
            &caps(pipelined),
            State::Idle,
            &mut Vec::new(),
        );
        assert_eq!(
            feed(&mut tx, &[250, 250, 550, 421]),
            [Step::Next, Step::Next, Step::Next, Step::Done]
        );
        assert_eq!(tx.state(), State::Closed);
        assert_eq!(
            kinds(tx),
            [
                Some(('T', 421)),
                Some(('F', 550)),
                Some(('T', 421)),
                Some(('T', 421))
            ]
        );
    }
}

#[test]
fn nobody_accepted_no_data_in_lockstep_a_lone_dot_after_a_needless_354() {
    let rcpts = [addr("x@mx.test"), addr("y@mx.test")];
    let mut tx = new_tx(
        &msg(None, &rcpts),
        &caps(false),
        State::Idle,
        &mut Vec::new(),
    );
    assert_eq!(
        feed(&mut tx, &[250, 550, 550]),
        [Step::Next, Step::Next, Step::Done]
    );
    assert_eq!(
        tx.state(),
        State::InTransaction,
        "RSET before the next MAIL"
    );

    let mut tx = new_tx(
        &msg(None, &rcpts),
        &caps(true),
        State::Idle,
        &mut Vec::new(),
    );
    assert_eq!(
        feed(&mut tx, &[250, 550, 550, 354]),
        [Step::Next, Step::Next, Step::Next, Step::SendLoneDot]
    );
    tx.on_lone_dot_reply(&r(554));
    assert_eq!(tx.state(), State::Idle);
    assert_eq!(kinds(tx), [Some(('F', 550)), Some(('F', 550))]);
}

#[test]
fn data_refused_or_final_reply_apply_to_the_accepted_only() {
    let rcpts = [addr("ok@mx.test"), addr("gone@mx.test")];
    let mut tx = new_tx(
        &msg(None, &rcpts),
        &caps(false),
        State::Idle,
        &mut Vec::new(),
    );
    assert_eq!(
        feed(&mut tx, &[250, 250, 550, 451]),
        [Step::Next, Step::Next, Step::Next, Step::Done]
    );
    assert_eq!(kinds(tx), [Some(('T', 451)), Some(('F', 550))]);

    let mut tx = new_tx(
        &msg(None, &rcpts),
        &caps(true),
        State::Idle,
        &mut Vec::new(),
    );
    feed(&mut tx, &[250, 250, 550, 354]);
    assert_eq!(tx.on_end_of_data(r(421)).unwrap(), Step::Done);
    assert_eq!(tx.state(), State::Closed);
    assert_eq!(kinds(tx), [Some(('T', 421)), Some(('F', 550))]);
}

#[test]
fn local_refusals_send_nothing() {
    let rcpts = [addr("bob@mx.test")];
    let big = vec![b'x'; 2000];
    let m = OutboundMessage {
        message: &big,
        ..msg(None, &rcpts)
    };
    let mut notes = Vec::new();
    let tx = new_tx(&m, &caps(true), State::Idle, &mut notes);
    assert!(tx.commands().is_empty());
    assert_eq!(notes.len(), 1);
    assert!(notes[0].starts_with("not sent: 552 5.3.4"), "{notes:?}");
    assert_eq!(kinds(tx), [Some(('F', 552))]);

    let m = OutboundMessage {
        needs_smtputf8: true,
        ..msg(None, &rcpts)
    };
    let tx = new_tx(&m, &caps(true), State::Idle, &mut Vec::new());
    assert!(tx.commands().is_empty());
    assert_eq!(kinds(tx), [Some(('F', 550))]);

    // One unsendable recipient: noted and failed, the other one sent.
    let mut evil = addr("x@mx.test");
    evil.local = "x>\r\nRCPT TO:<victim".into();
    let rcpts = [evil, addr("bob@mx.test")];
    let mut notes = Vec::new();
    let tx = new_tx(&msg(None, &rcpts), &caps(true), State::Idle, &mut notes);
    assert_eq!(tx.commands()[1], "RCPT TO:<bob@mx.test>");
    assert_eq!(tx.commands().len(), 3);
    assert!(notes[0].ends_with("not sent: 553 5.1.3 Recipient address cannot be sent over SMTP"));
    assert_eq!(kinds(tx), [Some(('F', 553)), None]);
}

#[test]
fn replies_of_the_wrong_kind_are_protocol_errors() {
    let rcpts = [addr("bob@mx.test")];
    for (replies, stage) in [
        (&[354][..], Stage::MailFrom),
        (&[250, 354][..], Stage::RcptTo),
        (&[250, 250, 250][..], Stage::Data),
    ] {
        let mut tx = new_tx(
            &msg(None, &rcpts),
            &caps(true),
            State::Idle,
            &mut Vec::new(),
        );
        let (last, init) = replies.split_last().unwrap();
        feed(&mut tx, init);
        let e = tx.on_reply(init.len(), r(*last)).unwrap_err();
        assert_eq!(e.stage(), Some(stage), "{replies:?}");
        assert!(matches!(e, SessionError::Protocol { .. }));
    }
    let mut tx = new_tx(
        &msg(None, &rcpts),
        &caps(true),
        State::Idle,
        &mut Vec::new(),
    );
    feed(&mut tx, &[250, 250, 354]);
    assert_eq!(
        tx.on_end_of_data(r(354)).unwrap_err().stage(),
        Some(Stage::EndOfData)
    );
}

#[test]
fn dsn_and_requiretls_are_passed_on_only_to_peers_that_offer_them() {
    use crate::mail::{EnvelopeDsn, Notify, Ret};
    let from = addr("s@here.test");
    let rcpts = [addr("bob@mx.test"), addr("carol@mx.test")];
    let dsn = OutboundDsn {
        envelope: EnvelopeDsn {
            ret: Some(Ret::Hdrs),
            envid: Some("id 1+=".into()),
        },
        recipients: vec![
            (
                Notify {
                    success: true,
                    failure: true,
                    ..Notify::default()
                },
                Some("Bob B@mx.test".into()),
            ),
            (Notify::default(), None),
        ],
    };
    let m = OutboundMessage {
        dsn: Some(&dsn),
        require_tls: true,
        ..msg(Some(&from), &rcpts)
    };
    let plain = new_tx(&m, &caps(true), State::Idle, &mut Vec::new());
    assert_eq!(
        plain.commands(),
        [
            "MAIL FROM:<s@here.test> SIZE=22",
            "RCPT TO:<bob@mx.test>",
            "RCPT TO:<carol@mx.test>",
            "DATA"
        ]
    );
    let peer = Capabilities {
        dsn: true,
        require_tls: true,
        ..caps(true)
    };
    let tx = new_tx(&m, &peer, State::Idle, &mut Vec::new());
    assert_eq!(
        tx.commands(),
        [
            "MAIL FROM:<s@here.test> SIZE=22 REQUIRETLS RET=HDRS ENVID=id+201+2B+3D",
            "RCPT TO:<bob@mx.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+20B@mx.test",
            "RCPT TO:<carol@mx.test>",
            "DATA"
        ]
    );
}

#[test]
fn bdat_has_no_data_command_and_chunk_replies_decide() {
    let rcpts = [addr("bob@mx.test"), addr("carol@mx.test")];
    let chunking = Capabilities {
        chunking: true,
        ..caps(true)
    };
    for pipelined in [true, false] {
        let c = Capabilities {
            pipelining: pipelined,
            ..chunking.clone()
        };
        let mut tx = new_tx(&msg(None, &rcpts), &c, State::Idle, &mut Vec::new());
        assert!(tx.bdat());
        assert_eq!(
            tx.commands(),
            [
                "MAIL FROM:<> SIZE=22",
                "RCPT TO:<bob@mx.test>",
                "RCPT TO:<carol@mx.test>"
            ]
        );
        assert_eq!(tx.stage(2), Stage::RcptTo);
        assert_eq!(
            feed(&mut tx, &[250, 550, 250]),
            [Step::Next, Step::Next, Step::SendBody]
        );
        assert_eq!(tx.on_chunk_reply(r(250), false).unwrap(), Step::Next);
        assert_eq!(tx.on_chunk_reply(r(250), true).unwrap(), Step::Done);
        assert_eq!(tx.state(), State::Idle);
        assert_eq!(kinds(tx), [Some(('F', 550)), Some(('D', 250))]);
    }
    // Nobody accepted: no chunk is sent, the transaction stays open for RSET.
    let mut tx = new_tx(&msg(None, &rcpts), &chunking, State::Idle, &mut Vec::new());
    assert_eq!(feed(&mut tx, &[250, 550, 450]).last(), Some(&Step::Done));
    assert_eq!(tx.state(), State::InTransaction);
    // A 5xx to a middle chunk fails every accepted recipient and ends the chunks.
    let mut tx = new_tx(&msg(None, &rcpts), &chunking, State::Idle, &mut Vec::new());
    feed(&mut tx, &[250, 250, 250]);
    assert_eq!(tx.on_chunk_reply(r(552), false).unwrap(), Step::Done);
    assert_eq!(tx.state(), State::InTransaction);
    assert_eq!(kinds(tx), [Some(('F', 552)), Some(('F', 552))]);
    // A 354 to BDAT is nonsense.
    let mut tx = new_tx(&msg(None, &rcpts), &chunking, State::Idle, &mut Vec::new());
    feed(&mut tx, &[250, 250, 250]);
    let e = tx.on_chunk_reply(r(354), true).unwrap_err();
    assert_eq!(e.stage(), Some(Stage::EndOfData));
}
