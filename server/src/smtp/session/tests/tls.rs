//! STARTTLS: offered by state, pipelined plaintext discarded, state reset, failure closes.

use super::*;

/// A listener offering STARTTLS and AUTH PLAIN after TLS.
pub(super) fn tls_config(auth_requires_tls: bool) -> Arc<SessionConfig> {
    let mut config = (*config_from(server_config(), |_| {})).clone();
    config.offers = Offers {
        starttls: true,
        auth: vec![AuthMechanism::Plain],
        auth_requires_tls,
        auth_required: false,
    };
    Arc::new(config)
}

fn ehlo_with(extra: &[&str]) -> Vec<String> {
    let mut want: Vec<String> = EHLO_REPLY.lines().map(|l| l[3..].to_string()).collect();
    let last = want.pop().unwrap().replacen("250 ", "250-", 1);
    want.push(last);
    for e in extra {
        want.push(format!("250-{e}"));
    }
    let end = want.pop().unwrap().replacen("250-", "250 ", 1);
    want.push(end);
    want
}

#[test]
fn ehlo_keywords_follow_the_state() {
    // Nothing offered: exactly today's reply.
    let mut c = Client::new();
    assert_eq!(c.send("EHLO c.test\r\n"), ehlo_with(&[]));
    // Before TLS: STARTTLS, and no AUTH while it needs TLS.
    let mut c = Client::on(tls_config(true));
    assert_eq!(c.send("EHLO c.test\r\n"), ehlo_with(&["STARTTLS"]));
    assert_eq!(c.send("STARTTLS\r\n"), ["220 2.0.0 Ready to start TLS"]);
    // Inside TLS: AUTH and REQUIRETLS (RFC 8689 §4.1), no STARTTLS.
    assert_eq!(
        c.send("EHLO c.test\r\n"),
        ehlo_with(&["REQUIRETLS", "AUTH PLAIN"])
    );
    // Authenticated: no second AUTH either.
    c.authenticator = Box::new(|_| AuthAnswer::Accepted);
    let response = data_encoding::BASE64.encode(b"\0alice@example.org\0pw");
    assert_eq!(
        c.send(format!("AUTH PLAIN {response}\r\n")),
        ["235 2.7.0 Authentication successful"]
    );
    assert_eq!(c.send("EHLO c.test\r\n"), ehlo_with(&["REQUIRETLS"]));
    // AUTH allowed without TLS: advertised at once.
    let mut c = Client::on(tls_config(false));
    assert_eq!(
        c.send("EHLO c.test\r\n"),
        ehlo_with(&["STARTTLS", "AUTH PLAIN"])
    );
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut c = Client::on(tls_config(true));
    c.send("EHLO c.test\r\n");
    // An attacker in the middle appends a command to the client's STARTTLS.
    assert_eq!(
        c.send("STARTTLS\r\nMAIL FROM:<x@y>\r\n"),
        ["220 2.0.0 Ready to start TLS"]
    );
    assert_eq!(c.requests.last().unwrap(), "starttls");
    let log = c.s.take_log();
    assert_eq!(
        log,
        [
            "EHLO c.test",
            "STARTTLS",
            "[17 octets discarded after STARTTLS]"
        ]
    );
    // The MAIL never ran: no transaction was opened before or after the handshake.
    assert!(c.s.envelope.is_none());
    c.script(
        "C: EHLO c.test
         S: 250-mx.example.org
         S: 250-PIPELINING
         S: 250-SIZE 10485760
         S: 250-8BITMIME
         S: 250-SMTPUTF8
         S: 250-CHUNKING
         S: 250-BINARYMIME
         S: 250-ENHANCEDSTATUSCODES
         S: 250-DSN
         S: 250-REQUIRETLS
         S: 250 AUTH PLAIN
         C: RCPT TO:<alice@example.org>\nS: 503 5.5.1 Error: need MAIL command",
    );
}

#[test]
fn input_arriving_before_the_handshake_answer_is_dropped() {
    let mut c = Client::on(tls_config(true));
    c.s.push_input(b"STARTTLS\r\n");
    assert!(matches!(c.s.poll(c.now), Output::Reply(r) if r.code == 220));
    assert!(matches!(c.s.poll(c.now), Output::StartTls));
    c.s.push_input(b"EHLO evil\r\nMAIL FROM:<x@y>\r\n");
    assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    c.s.answer(Answer::TlsUp);
    assert!(c.drain().is_empty());
    assert!(c.s.greeted.is_none());
}

#[test]
fn tls_resets_the_session() {
    let mut c = Client::on(tls_config(false));
    c.authenticator = Box::new(|_| AuthAnswer::Accepted);
    let response = data_encoding::BASE64.encode(b"\0alice@example.org\0pw");
    c.send("EHLO before.test\r\n");
    c.script(&format!(
        "C: AUTH PLAIN {response}\nS: 235 2.7.0 Authentication successful
         C: MAIL FROM:<alice@example.org>\nS: 250 2.1.0 Ok
         C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok
         C: STARTTLS\nS: 220 2.0.0 Ready to start TLS
         C: RCPT TO:<bob@example.org>\nS: 503 5.5.1 Error: need MAIL command
         C: MAIL FROM:<alice@example.org>\nS: 503 5.5.1 Error: send HELO/EHLO first"
    ));
    assert!(c.s.authenticated.is_none(), "AUTH is forgotten too");
    assert!(c.s.tls);
    c.send("EHLO after.test\r\n");
    c.script(
        "C: MAIL FROM:<alice@example.org>\nS: 250 2.1.0 Ok
         C: RCPT TO:<x@elsewhere.net>\nS: 554 5.7.1 <x@elsewhere.net>: Relay access denied
         C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    assert_eq!(c.delivered[0].envelope.helo, "after.test");
}

#[test]
fn starttls_refusals() {
    // Not offered: unknown, as today.
    let mut c = Client::new();
    c.script("C: STARTTLS\nS: 502 5.5.1 Command not implemented");
    let mut c = Client::on(tls_config(true));
    c.script(
        "C: STARTTLS now\nS: 501 5.5.4 Syntax: STARTTLS
         C: STARTTLS\nS: 220 2.0.0 Ready to start TLS
         C: STARTTLS\nS: 554 5.5.1 Error: TLS already active",
    );
}

#[test]
fn failed_handshake_closes() {
    let mut c = Client::on(tls_config(true));
    c.tls_works = false;
    c.script("C: STARTTLS\nS: 220 2.0.0 Ready to start TLS\nS: [close]");
    assert!(c.s.is_closed());
    assert_eq!(c.s.take_log().last().unwrap(), "[TLS handshake failed]");
}
