//! Policy checks at each stage, and requests holding back pipelined input.

use super::*;
use crate::policy::{Client as PolicyClient, Refusal};

fn refuse(code: u16, enhanced: (u8, u16, u16), text: &str) -> Refusal {
    Refusal::new(code, enhanced, text)
}

/// A client whose policy answers `verdict` at the stage named `at` and accepts elsewhere.
fn refusing(at: &'static str, verdict: Verdict) -> Client {
    let mut c = Client::unconnected(config_from(server_config(), |_| {}));
    c.policy = Box::new(move |check| match stage_name(check) == at {
        true => verdict.clone(),
        false => Verdict::Accept,
    });
    c
}

#[test]
fn every_stage_is_checked_in_order() {
    let mut c = Client::new();
    c.ready();
    c.script(
        "C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    assert_eq!(
        c.requests,
        [
            "check:connect",
            "check:mail",
            "check:rcpt",
            "check:rcpt",
            "check:data",
            "deliver"
        ]
    );
}

#[test]
fn checks_carry_what_the_session_knows() {
    let mut c = Client::unconnected(config_from(server_config(), |_| {}));
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let record = seen.clone();
    c.policy = Box::new(move |check| {
        record.borrow_mut().push(check.clone());
        Verdict::Accept
    });
    c.drain();
    c.ready();
    c.script("C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>\nC: hi\nC: .\nS: 250 2.0.0 Ok: queued as Q1");
    let seen = seen.borrow();
    let client = PolicyClient {
        remote: peer().remote,
        local: peer().local,
        helo: None,
        tls: false,
        authenticated: None,
    };
    assert_eq!(*seen[0].client, client);
    assert!(matches!(seen[0].stage, Stage::Connect));
    assert_eq!(seen[1].client.helo.as_deref(), Some("client.test"));
    let sender = Address::parse("sender@remote.test").unwrap();
    assert!(
        matches!(&seen[1].stage, Stage::Mail { from: Some(f), declared_size: 0 } if *f == sender)
    );
    assert!(matches!(&seen[2].stage,
        Stage::Rcpt { from: Some(f), to, accepted: 0 } if *f == sender && to.to_string() == "alice@example.org"));
    let Stage::EndOfData { envelope, message } = &seen[3].stage else {
        panic!("{:?}", seen[3].stage)
    };
    assert_eq!(envelope.mailboxes(), ["alice@example.org"]);
    let message = message.as_bytes().unwrap();
    assert!(message.starts_with(b"Received: ") && message.ends_with(b"\r\nhi\r\n"));
    // The delivered message is the one that was checked.
    assert_eq!(c.delivered[0].message.as_bytes().unwrap(), message);
}

#[test]
fn connect_reject_gives_554_then_503_until_quit() {
    let mut c = refusing(
        "connect",
        Verdict::Reject(refuse(550, (5, 7, 1), "Client host rejected")),
    );
    // RFC 5321 §3.1: the 554 replaces the greeting; the server then waits for QUIT.
    assert_eq!(c.drain(), ["554 5.7.1 Client host rejected"]);
    let no_service = "503 5.5.1 Error: no SMTP service here";
    assert_eq!(c.send("EHLO x\r\n"), [no_service]);
    assert_eq!(c.send("MAIL FROM:<a@b.test>\r\n"), [no_service]);
    assert_eq!(c.send("RCPT TO:<alice@example.org>\r\n"), [no_service]);
    assert!(c.delivered.is_empty());
    assert_eq!(c.send("QUIT\r\n"), ["221 2.0.0 Bye", "[close]"]);
    assert_eq!(c.s.poll_timeout(), None);
}

#[test]
fn a_rejected_client_that_will_not_quit_is_hung_up_on_at_the_error_limit() {
    let mut c = refusing(
        "connect",
        Verdict::Reject(refuse(550, (5, 7, 1), "Client host rejected")),
    );
    c.drain();
    let limit = c.s.config.limits.errors;
    let mut replies = Vec::new();
    for _ in 0..limit {
        replies.extend(c.send("NOOP\r\n"));
    }
    assert_eq!(replies.len(), limit + 2, "{replies:?}");
    assert!(replies[limit].starts_with("421 4.7.0"), "{replies:?}");
    assert_eq!(replies[limit + 1], "[close]");
}

#[test]
fn connect_defer_gives_421_and_closes() {
    let mut c = refusing(
        "connect",
        Verdict::Defer(refuse(450, (4, 7, 1), "Try again later")),
    );
    assert_eq!(c.drain(), ["421 4.7.1 Try again later", "[close]"]);
}

#[test]
fn input_before_the_greeting_waits_for_the_connect_answer() {
    let mut c = Client::unconnected(config_from(server_config(), |_| {}));
    c.s.push_input(b"NOOP\r\n");
    let Output::Check(check) = c.s.poll(c.now) else {
        panic!("connect check first")
    };
    assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    assert_eq!(
        c.s.poll_timeout(),
        None,
        "no idle timer while we owe an answer"
    );
    c.s.answer(Answer::Checked(check, Verdict::Accept));
    assert_eq!(
        c.drain(),
        ["220 mx.example.org ESMTP mailsim", "250 2.0.0 Ok"]
    );
}

#[test]
fn mail_refused_opens_no_transaction() {
    for (verdict, reply) in [
        (
            Verdict::Reject(refuse(553, (5, 7, 1), "Sender rejected")),
            "553 5.7.1 Sender rejected",
        ),
        (
            Verdict::Defer(refuse(451, (4, 7, 1), "Greylisted")),
            "451 4.7.1 Greylisted",
        ),
    ] {
        let mut c = refusing("mail", verdict);
        c.drain();
        c.send("EHLO c.test\r\n");
        c.script(&format!(
            "C: MAIL FROM:<s@remote.test>\nS: {reply}
             C: RCPT TO:<alice@example.org>\nS: 503 5.5.1 Error: need MAIL command"
        ));
        assert_eq!(c.s.errors, 2, "a policy refusal counts as an error");
    }
}

#[test]
fn rcpt_refused_is_not_added() {
    for (verdict, reply) in [
        (
            Verdict::Reject(refuse(550, (5, 7, 1), "<bob@example.org>: no")),
            "550 5.7.1 <bob@example.org>: no",
        ),
        (
            Verdict::Defer(refuse(450, (4, 2, 0), "<bob@example.org>: later")),
            "450 4.2.0 <bob@example.org>: later",
        ),
    ] {
        let mut c = Client::new();
        c.policy = Box::new(move |check| match &check.stage {
            Stage::Rcpt { to, .. } if to.local == "bob" => verdict.clone(),
            _ => Verdict::Accept,
        });
        c.ready();
        c.script(&format!(
            "C: RCPT TO:<bob@example.org>\nS: {reply}
             C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
             C: .\nS: 250 2.0.0 Ok: queued as Q1"
        ));
        let tx = &c.delivered[0];
        assert_eq!(tx.envelope.recipients.len(), 1);
        assert_eq!(tx.envelope.mailboxes(), ["alice@example.org"]);
    }
}

#[test]
fn only_refused_recipients_means_no_data() {
    let mut c = refusing("rcpt", Verdict::Reject(refuse(550, (5, 7, 1), "no")));
    c.drain();
    c.send("EHLO c.test\r\n");
    c.script(
        "C: MAIL FROM:<s@remote.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org>\nS: 550 5.7.1 no
         C: DATA\nS: 554 5.5.1 No valid recipients",
    );
}

#[test]
fn end_of_data_refused_is_not_delivered() {
    for (verdict, reply, why) in [
        (
            Verdict::Reject(refuse(550, (5, 7, 1), "Message content rejected")),
            "550 5.7.1 Message content rejected",
            "rejected by policy",
        ),
        (
            Verdict::Defer(refuse(451, (4, 7, 1), "Try later")),
            "451 4.7.1 Try later",
            "deferred by policy",
        ),
    ] {
        let mut c = refusing("data", verdict);
        c.drain();
        c.ready();
        c.script(&format!(
            "C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
             C: spam
             C: .\nS: {reply}"
        ));
        assert!(c.delivered.is_empty());
        assert!(!c.requests.contains(&"deliver".to_string()));
        assert_eq!(
            c.s.take_log().last().unwrap(),
            &format!("[message discarded: {why}]")
        );
        // The transaction is over; a new one may start.
        c.script(
            "C: RCPT TO:<alice@example.org>\nS: 503 5.5.1 Error: need MAIL command
             C: MAIL FROM:<s@remote.test>\nS: 250 2.1.0 Ok",
        );
    }
}

#[test]
fn a_refusal_keeps_its_class() {
    // A reject worded as a success is still a reject; a deferral stays temporary.
    let mut c = refusing("mail", Verdict::Reject(refuse(250, (2, 0, 0), "oops")));
    c.drain();
    c.send("EHLO c.test\r\n");
    c.script("C: MAIL FROM:<s@remote.test>\nS: 554 5.7.1 oops");
    let mut c = refusing("mail", Verdict::Defer(refuse(550, (5, 7, 1), "later")));
    c.drain();
    c.send("EHLO c.test\r\n");
    c.script("C: MAIL FROM:<s@remote.test>\nS: 451 4.7.1 later");
}

#[test]
fn pipelined_commands_wait_for_an_outstanding_check() {
    let mut c = Client::new();
    c.send("EHLO c.test\r\n");
    c.s.push_input(b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.org>\r\nNOOP\r\n");
    let Output::Check(mail) = c.s.poll(c.now) else {
        panic!("MAIL is checked")
    };
    for _ in 0..3 {
        assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    }
    c.s.push_input(b"RSET\r\n");
    assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    // An answer of the wrong kind changes nothing.
    c.s.answer(Answer::Delivered(Ok("x".into())));
    c.s.answer(Answer::Checked(
        Check {
            client: mail.client.clone(),
            stage: Stage::Connect,
        },
        Verdict::Accept,
    ));
    assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    c.s.answer(Answer::Checked(mail, Verdict::Accept));
    assert!(matches!(c.s.poll(c.now), Output::Reply(r) if r.code == 250));
    let Output::Check(rcpt) = c.s.poll(c.now) else {
        panic!("RCPT is checked")
    };
    assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    c.s.answer(Answer::Checked(rcpt, Verdict::Accept));
    assert_eq!(c.drain(), ["250 2.1.5 Ok", "250 2.0.0 Ok", "250 2.0.0 Ok"]);
    assert!(c.s.envelope.is_none(), "RSET ran last");
}

#[test]
fn answers_nobody_asked_for_change_nothing() {
    let mut c = Client::new();
    let connect = c.s.check(Stage::Connect);
    c.s.answer(Answer::Checked(connect.clone(), Verdict::Accept));
    c.s.answer(Answer::TlsUp);
    assert!(c.drain().is_empty(), "no second greeting");
    assert!(!c.s.tls);
    c.script("C: QUIT\nS: 221 2.0.0 Bye\nS: [close]");
    // A closed session stays closed.
    c.s.answer(Answer::Checked(connect, Verdict::Accept));
    c.s.answer(Answer::Delivered(Ok("x".into())));
    assert!(matches!(c.s.poll(c.now), Output::Close));
}
