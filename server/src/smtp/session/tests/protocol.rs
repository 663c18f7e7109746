//! Protocol details of issue #9 item 6, each pinned by a transcript.

use super::*;

#[test]
fn data_and_rset_take_no_argument() {
    let mut c = Client::new();
    c.ready();
    c.script(
        "C: DATA x\nS: 501 5.5.4 Syntax: DATA
         C: NOOP\nS: 250 2.0.0 Ok
         C: RSET x\nS: 501 5.5.4 Syntax: RSET
         C: NOOP whatever\nS: 250 2.0.0 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1
         C: QUIT now\nS: 221 2.0.0 Bye\nS: [close]",
    );
    // The transaction survived both refusals.
    assert_eq!(c.delivered.len(), 1);
}

#[test]
fn size_values() {
    let mut c = Client::new();
    c.script("C: EHLO client.test");
    let digits23 = "9".repeat(23);
    let digits21 = format!("1{}", "0".repeat(20));
    for (size, want) in [
        (
            digits23.as_str(),
            "552 5.3.4 Message size exceeds fixed limit",
        ),
        (
            digits21.as_str(),
            "552 5.3.4 Message size exceeds fixed limit",
        ),
        (
            "18446744073709551616",
            "552 5.3.4 Message size exceeds fixed limit",
        ),
        ("10485761", "552 5.3.4 Message size exceeds fixed limit"),
        ("", "501 5.5.4 Invalid SIZE parameter"),
        ("12x", "501 5.5.4 Invalid SIZE parameter"),
        ("-1", "501 5.5.4 Invalid SIZE parameter"),
    ] {
        assert_eq!(
            c.send(format!("MAIL FROM:<a@c.test> SIZE={size}\r\n")),
            [want],
            "{size}"
        );
    }
    c.script("C: MAIL FROM:<a@c.test> SIZE=0000010485760\nS: 250 2.1.0 Ok");
}

#[test]
fn quoted_local_parts_and_literals() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    c.script(
        "C: MAIL FROM:<\"john doe\"@client.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<\"john doe\"@example.org>\nS: 550 5.1.1 <\"john doe\"@example.org>: Recipient address rejected: User unknown
         C: RCPT TO:<\"bob\"@example.org>\nS: 250 2.1.5 Ok
         C: RCPT TO:<carol@[192.0.2.7]>\nS: 554 5.7.1 <carol@[192.0.2.7]>: Relay access denied
         C: RCPT TO:<carol@[IPv6:2001:db8::7]>\nS: 554 5.7.1 <carol@[IPv6:2001:db8::7]>: Relay access denied
         C: RCPT TO:<alice@[198.51.100.1]>\nS: 250 2.1.5 Ok
         C: RCPT TO:<nobody@[198.51.100.1]>\nS: 550 5.1.1 <nobody@[198.51.100.1]>: Recipient address rejected: User unknown
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1
         C: MAIL FROM:<carol@[192.0.2.7]>\nS: 250 2.1.0 Ok
         C: RSET\nS: 250 2.0.0 Ok
         C: MAIL FROM:<carol@[IPv6:2001:db8::7]>\nS: 250 2.1.0 Ok",
    );
    let env = &c.delivered[0].envelope;
    assert_eq!(
        env.mail_from.as_ref().unwrap().to_string(),
        "\"john doe\"@client.test"
    );
    assert_eq!(env.mailboxes(), ["bob@example.org", "alice@example.org"]);
}

#[test]
fn literal_relayed_for_a_client_that_may_relay() {
    let mut cfg = server_config();
    cfg.relay_networks = vec!["192.0.2.0/24".parse().unwrap()];
    let mut c = Client::on(config_from(cfg, |_| {}));
    c.send("EHLO client.test\r\n");
    c.script(
        "C: MAIL FROM:<a@client.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<carol@[192.0.2.7]>\nS: 250 2.1.5 Ok",
    );
}

#[test]
fn strict_path_syntax() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    c.script(
        "C: MAIL FROM :<a@b.test>\nS: 501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]
         C: MAIL FROM:<a@b.test>SIZE=100\nS: 501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]
         C: MAIL FROM:<a@b.test> SIZE=100\nS: 250 2.1.0 Ok
         C: RCPT TO :<bob@example.org>\nS: 501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]
         C: RCPT TO:<bob@example.org>NOTIFY=NEVER\nS: 501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]
         C: RCPT TO:<@a.test,@b.test:bob@example.org>\nS: 250 2.1.5 Ok",
    );
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    c.script(
        "C: MAIL FROM:<j\u{f6}rg@b.test>\nS: 553 5.6.7 Must declare SMTPUTF8 to send unicode address
         C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<j\u{f6}rg@example.org>\nS: 553 5.6.7 Must declare SMTPUTF8 to send unicode address
         C: RSET\nS: 250 2.0.0 Ok
         C: MAIL FROM:<a@b.test> SMTPUTF8\nS: 250 2.1.0 Ok
         C: RCPT TO:<j\u{f6}rg@example.org>\nS: 550 5.1.1 <j\u{f6}rg@example.org>: Recipient address rejected: User unknown
         C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    let text = String::from_utf8(c.delivered[0].message.as_bytes().unwrap().to_vec()).unwrap();
    assert!(text.contains(" with UTF8SMTP;"), "{text:?}");
}

#[test]
fn with_clause_variants() {
    use super::super::envelope::with_protocol as w;
    assert_eq!(w(false, true, true, false), "SMTP");
    assert_eq!(w(true, false, false, false), "ESMTP");
    assert_eq!(w(true, true, false, false), "ESMTPS");
    assert_eq!(w(true, false, true, false), "ESMTPA");
    assert_eq!(w(true, true, true, false), "ESMTPSA");
    assert_eq!(w(true, false, false, true), "UTF8SMTP");
    assert_eq!(w(true, true, false, true), "UTF8SMTPS");
    assert_eq!(w(true, false, true, true), "UTF8SMTPA");
    assert_eq!(w(true, true, true, true), "UTF8SMTPSA");
}

#[test]
fn duplicate_rcpts_count_toward_the_limit() {
    let mut c = Client::with(|l| l.recipients = 3);
    c.ready();
    c.script(
        "C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok
         C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok
         C: RCPT TO:<bob@example.org>\nS: 452 4.5.3 Too many recipients
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    assert_eq!(c.delivered[0].envelope.recipients.len(), 1);
}

#[test]
fn long_command_line_is_answered_at_its_end() {
    let mut c = Client::new();
    assert!(c.send("NOOP ".to_string() + &"x".repeat(600)).is_empty());
    assert!(c.s.input.len() - c.s.input_pos <= 512);
    assert!(c.send("x".repeat(600)).is_empty());
    assert_eq!(
        c.send("\r\nNOOP\r\n"),
        ["500 5.5.6 Line too long", "250 2.0.0 Ok"]
    );
}

#[test]
fn kept_strictness() {
    let mut c = Client::new();
    let long_domain = format!("a@{}.test", "d".repeat(252));
    c.script(
        "C: MAIL FROM:<a@b.test>\nS: 503 5.5.1 Error: send HELO/EHLO first
         C: HELO client.test\nS: 250 mx.example.org
         C: MAIL FROM:<a@b.test> SIZE=10\nS: 555 5.5.4 Unsupported parameter
         C: EHLO client.test",
    );
    c.script(&format!(
        "C: MAIL FROM:{long_domain}\nS: 501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]
         C: MAIL FROM:<{long_domain}>\nS: 501 5.1.7 Bad sender address syntax"
    ));
    assert_eq!(
        c.send("MAIL FROM:<a@b\0.test>\r\n"),
        ["500 5.5.2 Error: command not recognized"]
    );
}
