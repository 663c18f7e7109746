use mail_parser::{MessageParser, MimeHeaders, PartType};
use proptest::prelude::*;

use super::*;

// 2026-01-01T00:00:00Z, a Thursday.
const JAN_1_2026: u64 = 1_767_225_600;

const ORIGINAL: &[u8] = b"Received: from client.test (client.test [198.51.100.7])\r\n\
\tby mx.example.org with ESMTP id 1; Thu, 1 Jan 2026 00:00:00 +0000\r\n\
From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.net>, Carol <carol@example.com>\r\n\
Subject: Lunch on Friday?\r\n\
Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n\
Message-ID: <lunch.1@example.org>\r\n\
\r\n\
Hi Bob,\r\n\
\r\n\
Are you free for lunch on Friday?\r\n\
\r\n\
Alice\r\n";

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(JAN_1_2026 + secs)
}

fn failed(rcpt: &str) -> DsnRecipient {
    DsnRecipient {
        address: addr(rcpt),
        original: None,
        action: DsnAction::Failed,
        status: (5, 1, 1),
        remote_mta: Some("mx.example.net".into()),
        diagnostic: Some(format!(
            "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
        )),
        last_attempt: Some(at(65)),
        will_retry_until: None,
    }
}

fn delayed(rcpt: &str) -> DsnRecipient {
    DsnRecipient {
        address: addr(rcpt),
        original: None,
        action: DsnAction::Delayed,
        status: (4, 4, 1),
        remote_mta: Some("mx.example.com".into()),
        diagnostic: Some("421 4.4.1 mx.example.com: Service temporarily unavailable".into()),
        last_attempt: Some(at(4 * 3600 - 30)),
        will_retry_until: Some(at(5 * 86_400)),
    }
}

fn input<'a>(sender: &'a Address, kind: DsnKind, recipients: &'a [DsnRecipient]) -> DsnInput<'a> {
    DsnInput {
        kind,
        reporting_mta: "mx.example.org",
        original_envelope_id: None,
        arrival_date: at(0),
        now: at(match kind {
            DsnKind::Failure => 70,
            DsnKind::Delay => 4 * 3600,
            DsnKind::Success => 5,
        }),
        sender,
        recipients,
        original_message: ORIGINAL,
        message_id: "dsn.1.1767225670@mx.example.org".into(),
        return_full: false,
    }
}

/// The per-message group and the per-recipient groups of a `message/delivery-status` body,
/// unfolded, as (name, value) lists.
fn status_groups(body: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).expect("delivery-status is ASCII");
    assert!(text.is_ascii(), "{text}");
    let mut groups = Vec::new();
    for group in text.split("\r\n\r\n").filter(|g| !g.trim().is_empty()) {
        let unfolded = group.replace("\r\n ", " ").replace("\r\n\t", "\t");
        let fields = unfolded
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once(':').expect("a field");
                (name.to_string(), value.trim().to_string())
            })
            .collect();
        groups.push(fields);
    }
    groups
}

fn get<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn assert_crlf_only(bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && bytes[i - 1] == b'\r', "bare LF at {i}"),
            b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            _ => {}
        }
    }
}

fn snapshot_text(bytes: &[u8]) -> String {
    assert_crlf_only(bytes);
    String::from_utf8(bytes.to_vec())
        .expect("utf-8")
        .replace("\r\n", "\n")
}

#[test]
fn failure_has_the_report_structure() {
    let sender = addr("alice@example.org");
    let rcpts = [failed("bob@example.net")];
    let dsn = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    assert_crlf_only(&dsn);

    let msg = MessageParser::new().parse(&dsn).expect("parses");
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Mail Delivery System"));
    assert_eq!(from.address(), Some("MAILER-DAEMON@mx.example.org"));
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("alice@example.org")
    );
    assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
    assert_eq!(msg.message_id(), Some("dsn.1.1767225670@mx.example.org"));
    assert_eq!(msg.date().unwrap().to_timestamp(), (JAN_1_2026 + 70) as i64);
    assert_eq!(
        msg.header("Auto-Submitted").and_then(|h| h.as_text()),
        Some("auto-replied")
    );
    let raw = String::from_utf8_lossy(&dsn);
    assert!(
        raw.starts_with("Date: Thu, 01 Jan 2026 00:01:10 +0000\r\n"),
        "{raw}"
    );
    assert!(raw.contains("\r\nMIME-Version: 1.0\r\n"), "{raw}");

    let ct = msg.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let root = msg.root_part().sub_parts().expect("multipart");
    assert_eq!(root.len(), 3);
    let part = |i: usize| msg.part(root[i]).unwrap();

    // 1: the explanation.
    assert!(part(0).is_content_type("text", "plain"));
    let text = part(0).text_contents().unwrap();
    assert!(
        text.starts_with("This is the mail system at host mx.example.org."),
        "{text}"
    );
    assert!(text.contains("could not\r\nbe delivered"), "{text}");
    assert!(
        text.contains(
            "\r\n<bob@example.net>: host mx.example.net said: 550 5.1.1\r\n    \
             <bob@example.net>: Recipient address rejected: User unknown\r\n"
        ),
        "{text}"
    );

    // 2: the machine-readable report.
    assert!(part(1).is_content_type("message", "delivery-status"));
    assert_eq!(part(1).content_transfer_encoding(), Some("7bit"));
    let groups = status_groups(part(1).contents());
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[0],
        vec![
            (
                "Reporting-MTA".to_string(),
                "dns;mx.example.org".to_string()
            ),
            (
                "Arrival-Date".to_string(),
                "Thu, 01 Jan 2026 00:00:00 +0000".to_string()
            ),
        ]
    );
    let r = &groups[1];
    assert_eq!(get(r, "Final-Recipient"), Some("rfc822;bob@example.net"));
    assert_eq!(get(r, "Original-Recipient"), None);
    assert_eq!(get(r, "Action"), Some("failed"));
    assert_eq!(get(r, "Status"), Some("5.1.1"));
    assert_eq!(get(r, "Remote-MTA"), Some("dns;mx.example.net"));
    assert_eq!(
        get(r, "Diagnostic-Code"),
        Some("smtp;550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown")
    );
    assert_eq!(
        get(r, "Last-Attempt-Date"),
        Some("Thu, 01 Jan 2026 00:01:05 +0000")
    );
    assert_eq!(get(r, "Will-Retry-Until"), None);

    // 3: the original headers, byte for byte.
    assert!(part(2).is_content_type("text", "rfc822-headers"));
    let headers_end = ORIGINAL.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    assert_eq!(part(2).contents(), &ORIGINAL[..headers_end]);
}

#[test]
fn delay_reports_retry_until() {
    let sender = addr("alice@example.org");
    let rcpts = [delayed("carol@example.com")];
    let mut inp = input(&sender, DsnKind::Delay, &rcpts);
    inp.original_envelope_id = Some("QQ314159");
    let dsn = build_dsn(&inp);
    let msg = MessageParser::new().parse(&dsn).unwrap();
    assert_eq!(msg.subject(), Some("Delayed Mail (still being retried)"));
    let root = msg.root_part().sub_parts().unwrap();
    let text = msg.part(root[0]).unwrap().text_contents().unwrap();
    assert!(text.contains("THIS IS A WARNING ONLY"), "{text}");
    assert!(
        text.contains("could not be delivered for more than 4 hour(s).\r\n"),
        "{text}"
    );
    assert!(
        text.contains("It will be retried until it is 5 day(s) old."),
        "{text}"
    );
    let groups = status_groups(msg.part(root[1]).unwrap().contents());
    assert_eq!(get(&groups[0], "Original-Envelope-Id"), Some("QQ314159"));
    assert_eq!(groups[0][0].0, "Original-Envelope-Id");
    let r = &groups[1];
    assert_eq!(get(r, "Action"), Some("delayed"));
    assert_eq!(get(r, "Status"), Some("4.4.1"));
    assert_eq!(
        get(r, "Will-Retry-Until"),
        Some("Tue, 06 Jan 2026 00:00:00 +0000")
    );
}

#[test]
fn will_retry_until_only_for_delayed_recipients() {
    let sender = addr("alice@example.org");
    let mut r = failed("bob@example.net");
    r.will_retry_until = Some(at(86_400));
    let rcpts = [r];
    let dsn = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    assert!(!String::from_utf8_lossy(&dsn).contains("Will-Retry-Until"));
}

#[test]
fn null_sender_gets_no_dsn() {
    assert!(!should_send_dsn(None));
    assert!(should_send_dsn(Some(&addr("alice@example.org"))));
}

#[test]
fn headers_only_by_default_full_message_on_request() {
    let sender = addr("alice@example.org");
    let rcpts = [failed("bob@example.net")];

    let headers_only = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    let msg = MessageParser::new().parse(&headers_only).unwrap();
    let third = msg.part(msg.root_part().sub_parts().unwrap()[2]).unwrap();
    assert!(third.is_content_type("text", "rfc822-headers"));
    assert_eq!(
        third.content_description(),
        Some("Undelivered Message Headers")
    );
    assert!(!String::from_utf8_lossy(&headers_only).contains("Are you free"));

    let mut inp = input(&sender, DsnKind::Failure, &rcpts);
    inp.return_full = true;
    let full = build_dsn(&inp);
    let msg = MessageParser::new().parse(&full).unwrap();
    let third = msg.part(msg.root_part().sub_parts().unwrap()[2]).unwrap();
    assert!(third.is_content_type("message", "rfc822"));
    assert_eq!(third.content_description(), Some("Undelivered Message"));
    assert_eq!(third.content_transfer_encoding(), Some("7bit"));
    let PartType::Message(inner) = &third.body else {
        panic!("not a nested message: {:?}", third.body)
    };
    assert_eq!(inner.raw_message(), ORIGINAL);
    assert_eq!(inner.subject(), Some("Lunch on Friday?"));
    assert!(inner.body_text(0).unwrap().contains("Are you free"));
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("It's attached below."), "{text}");
}

#[test]
fn long_diagnostics_are_folded_and_unfold_to_the_reply() {
    let sender = addr("alice@example.org");
    let mut r = failed("bob@example.net");
    let reply = "550-5.7.1 [192.0.2.1] Our system has detected that this message is likely \
                 unsolicited mail. To reduce the amount of spam sent to our servers, this \
                 message has been blocked.\r\n550 5.7.1 Please visit \
                 https://support.example.net/mail/answer/188131-a-very-long-path-segment \
                 for more information.";
    r.diagnostic = Some(reply.into());
    r.status = (5, 7, 1);
    let rcpts = [r];
    let dsn = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    let msg = MessageParser::new().parse(&dsn).unwrap();
    let part = msg.part(msg.root_part().sub_parts().unwrap()[1]).unwrap();
    let body = std::str::from_utf8(part.contents()).unwrap();
    let lines: Vec<&str> = body.split("\r\n").collect();
    for line in &lines {
        assert!(line.len() <= 78, "line too long: {line:?}");
    }
    let diag_lines = lines
        .iter()
        .skip_while(|l| !l.starts_with("Diagnostic-Code:"))
        .take_while(|l| l.starts_with("Diagnostic-Code:") || l.starts_with(' '))
        .count();
    assert!(diag_lines >= 3, "{body}");
    let groups = status_groups(part.contents());
    let expected = reply.replace("\r\n", " ");
    assert_eq!(
        get(&groups[1], "Diagnostic-Code"),
        Some(format!("smtp;{expected}").as_str())
    );
    // The human text carries the whole reply too, wrapped.
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("support.example.net"), "{text}");
    // The raw message keeps every line within 78 octets, so no encoding was needed.
    let raw = String::from_utf8(dsn.clone()).unwrap();
    assert!(raw.split("\r\n").all(|l| l.len() <= 78), "{raw}");
}

#[test]
fn a_giant_word_still_respects_the_line_limit() {
    let sender = addr("alice@example.org");
    let mut r = failed("bob@example.net");
    r.diagnostic = Some(format!("550 {}", "x".repeat(3000)));
    let rcpts = [r];
    let dsn = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    assert!(dsn.split(|&b| b == b'\n').all(|l| l.len() <= 998));
    assert!(MessageParser::new().parse(&dsn).is_some());
}

#[test]
fn injected_line_breaks_stay_inside_their_field() {
    let sender = addr("alice@example.org");
    let mut r = failed("bob@example.net");
    r.diagnostic = Some("550 no\r\nAction: delivered\r\n\r\nFinal-Recipient: rfc822;x@y".into());
    r.remote_mta = Some("evil.example\r\nStatus: 2.0.0".into());
    let rcpts = [r];
    let dsn = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    let msg = MessageParser::new().parse(&dsn).unwrap();
    let part = msg.part(msg.root_part().sub_parts().unwrap()[1]).unwrap();
    let groups = status_groups(part.contents());
    assert_eq!(groups.len(), 2);
    assert_eq!(get(&groups[1], "Action"), Some("failed"));
    assert_eq!(get(&groups[1], "Status"), Some("5.1.1"));
    assert_eq!(
        groups[1]
            .iter()
            .filter(|(n, _)| n == "Final-Recipient")
            .count(),
        1
    );
    assert_eq!(
        get(&groups[1], "Remote-MTA"),
        Some("dns;evil.exampleStatus2.0.0")
    );
}

#[test]
fn eight_bit_original_headers_survive() {
    let sender = addr("alice@example.org");
    let rcpts = [failed("bob@example.net")];
    let original = "From: Jürgen <jürgen@example.org>\r\n\
                    To: bob@example.net\r\n\
                    Subject: Grüße aus Köln — 日本語\r\n\
                    \r\n\
                    Schöne Grüße\r\n"
        .as_bytes();

    let mut inp = input(&sender, DsnKind::Failure, &rcpts);
    inp.original_message = original;
    let dsn = build_dsn(&inp);
    assert_crlf_only(&dsn);
    let msg = MessageParser::new().parse(&dsn).unwrap();
    let third = msg.part(msg.root_part().sub_parts().unwrap()[2]).unwrap();
    assert_eq!(third.content_transfer_encoding(), Some("8bit"));
    let headers_end = original.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    assert_eq!(third.contents(), &original[..headers_end]);
    let headers = MessageParser::new()
        .parse_headers(third.contents())
        .unwrap();
    assert_eq!(headers.subject(), Some("Grüße aus Köln — 日本語"));

    inp.return_full = true;
    let dsn = build_dsn(&inp);
    let msg = MessageParser::new().parse(&dsn).unwrap();
    let third = msg.part(msg.root_part().sub_parts().unwrap()[2]).unwrap();
    assert_eq!(third.content_transfer_encoding(), Some("8bit"));
    let inner = third.message().expect("nested message");
    assert_eq!(inner.raw_message(), original);
    assert_eq!(inner.subject(), Some("Grüße aus Köln — 日本語"));
    assert_eq!(inner.body_text(0).unwrap(), "Schöne Grüße\r\n");
}

#[test]
fn bare_line_feeds_in_the_original_become_crlf() {
    let sender = addr("alice@example.org");
    let rcpts = [failed("bob@example.net")];
    let mut inp = input(&sender, DsnKind::Failure, &rcpts);
    inp.original_message = b"Subject: x\nFrom: a@b\r\rX: y\n\nbody\n";
    inp.return_full = true;
    let dsn = build_dsn(&inp);
    assert_crlf_only(&dsn);
    let msg = MessageParser::new().parse(&dsn).unwrap();
    let root = msg.root_part().sub_parts().unwrap();
    let inner = msg.part(root[2]).and_then(|p| p.message()).unwrap();
    assert_eq!(
        inner.raw_message(),
        b"Subject: x\r\nFrom: a@b\r\n\r\nX: y\r\n\r\nbody\r\n"
    );
}

#[test]
fn utf8_addresses_and_diagnostics_stay_7bit_in_the_report() {
    let sender = addr("jürgen@example.org");
    let mut r = failed("søren@eksempel.dk");
    r.original = Some("rfc822;Søren@eksempel.dk".into());
    r.diagnostic = Some("550 5.1.1 <søren@eksempel.dk>: ukendt modtager".into());
    let rcpts = [r];
    let dsn = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    assert_crlf_only(&dsn);
    let msg = MessageParser::new().parse(&dsn).unwrap();
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("jürgen@example.org")
    );
    let root = msg.root_part().sub_parts().unwrap();
    let groups = status_groups(msg.part(root[1]).unwrap().contents());
    let r = &groups[1];
    assert_eq!(
        get(r, "Final-Recipient"),
        Some("utf-8;s\\x{F8}ren@eksempel.dk")
    );
    assert_eq!(
        get(r, "Original-Recipient"),
        Some("rfc822;S\\x{F8}ren@eksempel.dk")
    );
    assert_eq!(
        get(r, "Diagnostic-Code"),
        Some("smtp;550 5.1.1 <s\\x{F8}ren@eksempel.dk>: ukendt modtager")
    );
    // The human part keeps the UTF-8 (encoded as quoted-printable on the wire).
    let text = msg.part(root[0]).unwrap();
    assert_eq!(text.content_transfer_encoding(), Some("quoted-printable"));
    let text = text.text_contents().unwrap();
    assert!(
        text.contains(
            "<søren@eksempel.dk>: host mx.example.net said: 550 5.1.1\r\n    \
             <søren@eksempel.dk>: ukendt modtager\r\n"
        ),
        "{text}"
    );
}

#[test]
fn odd_local_parts_are_quoted() {
    let sender = addr("a,b@example.org");
    let mut r = failed("x\"y@example.net");
    r.diagnostic = None;
    let rcpts = [r];
    let dsn = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    let msg = MessageParser::new().parse(&dsn).unwrap();
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("\"a,b\"@example.org")
    );
    let root = msg.root_part().sub_parts().unwrap();
    let groups = status_groups(msg.part(root[1]).unwrap().contents());
    assert_eq!(
        get(&groups[1], "Final-Recipient"),
        Some(r#"rfc822;"x\"y"@example.net"#)
    );
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let sender = addr("alice@example.org");
    let rcpts = [failed("bob@example.net"), delayed("carol@example.com")];
    let inp = input(&sender, DsnKind::Failure, &rcpts);
    let a = build_dsn(&inp);
    let b = build_dsn(&inp.clone());
    assert_eq!(a, b);

    // The boundary comes from the Message-ID.
    let mut other = inp.clone();
    other.message_id = "dsn.2.1767225670@mx.example.org".into();
    let c = build_dsn(&other);
    let boundary = |m: &[u8]| {
        MessageParser::new()
            .parse(m)
            .unwrap()
            .content_type()
            .unwrap()
            .attribute("boundary")
            .unwrap()
            .to_string()
    };
    assert_ne!(boundary(&a), boundary(&c));
    assert!(boundary(&a).starts_with("=_mailsim-dsn-"));
}

#[test]
fn a_boundary_found_in_the_content_is_not_used() {
    let sender = addr("alice@example.org");
    let rcpts = [failed("bob@example.net")];
    let mut inp = input(&sender, DsnKind::Failure, &rcpts);
    inp.return_full = true;
    let first = MessageParser::new()
        .parse(&build_dsn(&inp))
        .unwrap()
        .content_type()
        .unwrap()
        .attribute("boundary")
        .unwrap()
        .to_string();

    // A hostile original that closes the report with the boundary we would pick.
    let hostile = format!(
        "Subject: gotcha\r\n\r\n--{first}\r\nContent-Type: text/plain\r\n\r\nforged\r\n--{first}--\r\n"
    );
    inp.original_message = hostile.as_bytes();
    let dsn = build_dsn(&inp);
    let msg = MessageParser::new().parse(&dsn).unwrap();
    let boundary = msg.content_type().unwrap().attribute("boundary").unwrap();
    assert_ne!(boundary, first);
    let root = msg.root_part().sub_parts().unwrap();
    assert_eq!(root.len(), 3);
    let inner = msg.part(root[2]).unwrap().message().unwrap();
    assert_eq!(inner.raw_message(), hostile.as_bytes());
}

#[test]
fn dates_are_rfc5322_utc() {
    assert_eq!(rfc5322_date(at(0)), "Thu, 01 Jan 2026 00:00:00 +0000");
    assert_eq!(
        rfc5322_date(Timestamp::from_secs(951_782_400)),
        "Tue, 29 Feb 2000 00:00:00 +0000"
    );
    assert_eq!(
        rfc5322_date(Timestamp(Duration::from_millis(
            1_767_225_600_999 + 45_296_000
        ))),
        "Thu, 01 Jan 2026 12:34:56 +0000"
    );
}

#[test]
fn helpers() {
    assert_eq!(envelope_id("a+b=c d\u{e9}\r"), "a+b=c d+C3+A9+0D");
    assert_eq!(
        human_duration(Duration::from_secs(4 * 3600 + 5)),
        "4 hour(s)"
    );
    assert_eq!(human_duration(Duration::from_secs(5 * 86_400)), "5 day(s)");
    assert_eq!(human_duration(Duration::from_secs(36 * 3600)), "36 hour(s)");
    assert_eq!(human_duration(Duration::from_secs(90)), "1 minute(s)");
    assert_eq!(human_duration(Duration::from_secs(0)), "0 second(s)");
    assert_eq!(ascii_clean(" a \t b\r\n c\u{e9} "), "a b c\\x{E9}");
    assert_eq!(
        original_recipient("bob@example.net"),
        "rfc822;bob@example.net"
    );
    assert_eq!(original_recipient("x400; /G=Bob"), "x400;/G=Bob");
    assert_eq!(host_text("mx.example.net."), "mx.example.net");
    assert_eq!(host_text(" \r\n"), "localhost");
    assert_eq!(header_section(b"A: b\r\n\r\nbody"), b"A: b\r\n");
    assert_eq!(header_section(b"A: b\r\n"), b"A: b\r\n");
    assert_eq!(header_section(b"\r\nbody"), b"");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever the remote says and whatever the original holds, the report keeps its shape:
    /// CRLF only, three parts, a 7-bit report with one group per recipient, the returned
    /// content intact, and the same bytes every time.
    #[test]
    fn any_reply_and_original_keep_the_shape(
        diagnostic in any::<String>(),
        remote in "[ -~]{0,40}",
        original in prop::collection::vec(any::<u8>(), 0..600),
        full in any::<bool>(),
        delay in any::<bool>(),
    ) {
        let sender = addr("alice@example.org");
        let mut r = failed("bob@example.net");
        r.diagnostic = Some(diagnostic.clone());
        r.remote_mta = Some(remote);
        let rcpts = [r, delayed("carol@example.com")];
        let mut inp = input(
            &sender,
            if delay { DsnKind::Delay } else { DsnKind::Failure },
            &rcpts,
        );
        inp.original_message = &original;
        inp.return_full = full;
        let dsn = build_dsn(&inp);
        assert_crlf_only(&dsn);
        prop_assert_eq!(&dsn, &build_dsn(&inp));

        let msg = MessageParser::new().parse(&dsn).expect("parses");
        let root = msg.root_part().sub_parts().expect("multipart").to_vec();
        prop_assert_eq!(root.len(), 3);
        let groups = status_groups(msg.part(root[1]).unwrap().contents());
        prop_assert_eq!(groups.len(), 3);
        prop_assert_eq!(get(&groups[1], "Action"), Some("failed"));
        prop_assert_eq!(get(&groups[2], "Action"), Some("delayed"));
        let expected = ascii_clean(&diagnostic);
        if !expected.is_empty() {
            let expected = format!("smtp;{expected}");
            if expected.len() < 800 {
                prop_assert_eq!(get(&groups[1], "Diagnostic-Code"), Some(expected.as_str()));
            }
        }
        let normalized = crlf_normalized(&original);
        let returned = if full { &normalized[..] } else { header_section(&normalized) };
        let third = msg.part(root[2]).unwrap();
        let raw = &dsn[third.raw_body_offset() as usize..third.raw_end_offset() as usize];
        prop_assert!(raw.starts_with(returned));
    }
}

// --- snapshots --------------------------------------------------------------------------------

macro_rules! snapshot {
    ($name:literal, $value:expr) => {
        insta::with_settings!({
            snapshot_path => "../../../../snapshots/dsn",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

#[test]
fn snapshot_failure() {
    let sender = addr("alice@example.org");
    let rcpts = [failed("bob@example.net")];
    let dsn = build_dsn(&input(&sender, DsnKind::Failure, &rcpts));
    snapshot!("failure", snapshot_text(&dsn));
}

#[test]
fn snapshot_delay() {
    let sender = addr("alice@example.org");
    let rcpts = [delayed("carol@example.com")];
    let mut inp = input(&sender, DsnKind::Delay, &rcpts);
    inp.original_envelope_id = Some("QQ314159");
    let dsn = build_dsn(&inp);
    snapshot!("delay", snapshot_text(&dsn));
}

#[test]
fn snapshot_mixed_recipients_full_return() {
    let sender = addr("alice@example.org");
    let rcpts = [
        failed("bob@example.net"),
        delayed("carol@example.com"),
        DsnRecipient {
            address: addr("dave@example.com"),
            original: Some("rfc822;Dave@Example.com".into()),
            action: DsnAction::Delivered,
            status: (2, 0, 0),
            remote_mta: Some("mx.example.com".into()),
            diagnostic: Some("250 2.0.0 Ok: queued as 4F2A1".into()),
            last_attempt: Some(at(12)),
            will_retry_until: None,
        },
        DsnRecipient {
            address: addr("erin@example.edu"),
            original: Some("rfc822;team@example.org".into()),
            action: DsnAction::Relayed,
            status: (2, 0, 0),
            remote_mta: Some("relay.example.edu".into()),
            diagnostic: None,
            last_attempt: Some(at(15)),
            will_retry_until: None,
        },
        DsnRecipient {
            address: addr("frank@example.net"),
            original: None,
            action: DsnAction::Failed,
            status: (5, 4, 4),
            remote_mta: None,
            diagnostic: None,
            last_attempt: None,
            will_retry_until: None,
        },
    ];
    let mut inp = input(&sender, DsnKind::Failure, &rcpts);
    inp.return_full = true;
    inp.original_envelope_id = Some("lunch+1");
    let dsn = build_dsn(&inp);
    snapshot!("mixed", snapshot_text(&dsn));
}
