//! AUTH PLAIN (RFC 4954, RFC 4616).

use super::tls::tls_config;
use super::*;

fn b64(s: &[u8]) -> String {
    data_encoding::BASE64.encode(s)
}

/// Over TLS, EHLO done; the authenticator accepts alice with "secret".
fn authenticating() -> Client {
    let mut c = Client::on(tls_config(true));
    c.script("C: STARTTLS\nS: 220 2.0.0 Ready to start TLS");
    c.send("EHLO c.test\r\n");
    c.authenticator = Box::new(|cr| {
        match cr.mechanism == AuthMechanism::Plain
            && cr.authcid == "alice@example.org"
            && cr.password == "secret"
        {
            true => AuthAnswer::Accepted,
            false => AuthAnswer::Rejected,
        }
    });
    c
}

#[test]
fn plain_with_initial_response_then_relay() {
    let mut c = authenticating();
    // A check before AUTH, so a stale description of the client would show below.
    c.script(
        "C: MAIL FROM:<alice@example.org>\nS: 250 2.1.0 Ok
         C: RSET\nS: 250 2.0.0 Ok",
    );
    c.script(&format!(
        "C: AUTH PLAIN {}\nS: 235 2.7.0 Authentication successful",
        b64(b"\0alice@example.org\0secret")
    ));
    assert_eq!(c.requests.last().unwrap(), "auth:alice@example.org");
    assert_eq!(c.s.authenticated.as_deref(), Some("alice@example.org"));
    // Checks from now on say so (and that TLS is on).
    let clients = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let record = clients.clone();
    c.policy = Box::new(move |check| {
        record.borrow_mut().push(check.client.clone());
        Verdict::Accept
    });
    // An authenticated client may relay.
    c.script(
        "C: MAIL FROM:<alice@example.org>\nS: 250 2.1.0 Ok
         C: RCPT TO:<carol@elsewhere.net>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    for client in clients.borrow().iter() {
        assert!(client.tls);
        assert_eq!(client.authenticated.as_deref(), Some("alice@example.org"));
        assert_eq!(client.helo.as_deref(), Some("c.test"));
    }
    assert_eq!(clients.borrow().len(), 3, "MAIL, RCPT, end of data");
    let remote = c.delivered[0].envelope.remote_recipients();
    assert_eq!(remote.len(), 1);
    assert_eq!(remote[0].to_string(), "carol@elsewhere.net");
}

#[test]
fn plain_with_continuation_and_authzid() {
    let mut c = authenticating();
    c.script(&format!(
        "C: AUTH plain\nS: 334 
         C: {}\nS: 235 2.7.0 Authentication successful",
        b64(b"postmaster@example.org\0alice@example.org\0secret")
    ));
    assert_eq!(c.s.authenticated.as_deref(), Some("postmaster@example.org"));
}

#[test]
fn wrong_password_is_535_and_no_relay() {
    let mut c = authenticating();
    c.script(&format!(
        "C: AUTH PLAIN {}\nS: 535 5.7.8 Authentication credentials invalid
         C: MAIL FROM:<alice@example.org>\nS: 250 2.1.0 Ok
         C: RCPT TO:<carol@elsewhere.net>\nS: 554 5.7.1 <carol@elsewhere.net>: Relay access denied",
        b64(b"\0alice@example.org\0guess")
    ));
    assert!(c.s.authenticated.is_none());
    assert_eq!(c.s.errors, 2);
}

#[test]
fn cancel_and_malformed_responses() {
    let mut c = authenticating();
    c.script(&format!(
        "C: AUTH PLAIN\nS: 334 
         C: *\nS: 501 5.0.0 Authentication cancelled
         C: AUTH PLAIN !!!not-base64!!!\nS: 501 5.5.2 Cannot decode response
         C: AUTH PLAIN\nS: 334 
         C: YWJj=\nS: 501 5.5.2 Cannot decode response
         C: AUTH PLAIN {}\nS: 535 5.7.8 Authentication credentials invalid
         C: AUTH PLAIN {}\nS: 535 5.7.8 Authentication credentials invalid
         C: AUTH PLAIN =\nS: 535 5.7.8 Authentication credentials invalid
         C: AUTH PLAIN a b\nS: 501 5.5.4 Syntax: AUTH mechanism [initial-response]
         C: NOOP\nS: 250 2.0.0 Ok",
        b64(b"no separators"),
        b64(b"\0\0secret"),
    ));
    // None of these reached the authenticator.
    assert!(!c.requests.iter().any(|r| r.starts_with("auth:")));
    assert!(c.s.authenticated.is_none());
}

#[test]
fn tls_required_first() {
    let mut c = Client::on(tls_config(true));
    c.send("EHLO c.test\r\n");
    c.script(&format!(
        "C: AUTH PLAIN {}\nS: 538 5.7.11 Encryption required for requested authentication mechanism",
        b64(b"\0alice@example.org\0secret")
    ));
    assert!(c.requests.iter().all(|r| !r.starts_with("auth:")));
}

#[test]
fn sequence_and_mechanism_errors() {
    let mut c = Client::on(tls_config(false));
    c.authenticator = Box::new(|_| AuthAnswer::Accepted);
    let ok = b64(b"\0alice@example.org\0secret");
    c.script(&format!(
        "C: AUTH PLAIN {ok}\nS: 503 5.5.1 Error: send EHLO first
         C: HELO c.test\nS: 250 mx.example.org
         C: AUTH PLAIN {ok}\nS: 503 5.5.1 Error: send EHLO first"
    ));
    c.send("EHLO c.test\r\n");
    c.script(&format!(
        "C: AUTH LOGIN\nS: 504 5.5.4 Unrecognized authentication type
         C: AUTH CRAM-MD5\nS: 504 5.5.4 Unrecognized authentication type
         C: AUTH\nS: 501 5.5.4 Syntax: AUTH mechanism [initial-response]
         C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok
         C: AUTH PLAIN {ok}\nS: 503 5.5.1 Error: MAIL transaction in progress
         C: RSET\nS: 250 2.0.0 Ok
         C: AUTH PLAIN {ok}\nS: 235 2.7.0 Authentication successful
         C: AUTH PLAIN {ok}\nS: 503 5.5.1 Error: already authenticated"
    ));
    // Not offered at all: unknown, as today.
    let mut c = Client::new();
    c.send("EHLO c.test\r\n");
    c.script(&format!(
        "C: AUTH PLAIN {ok}\nS: 502 5.5.1 Command not implemented"
    ));
}

#[test]
fn authenticator_refusals() {
    let mut c = authenticating();
    let ok = b64(b"\0alice@example.org\0secret");
    c.authenticator = Box::new(|_| {
        AuthAnswer::Refused(Reply::new(454, (4, 7, 0), "Too many failures, try later"))
    });
    c.script(&format!(
        "C: AUTH PLAIN {ok}\nS: 454 4.7.0 Too many failures, try later"
    ));
    c.authenticator = Box::new(|_| AuthAnswer::Refused(Reply::new(250, (2, 0, 0), "hm")));
    c.script(&format!(
        "C: AUTH PLAIN {ok}\nS: 535 5.7.8 Authentication credentials invalid"
    ));
    assert!(c.s.authenticated.is_none());
}

#[test]
fn credentials_never_reach_the_log() {
    let mut c = authenticating();
    c.authenticator = Box::new(|_| AuthAnswer::Rejected);
    c.s.take_log();
    let secret = b64(b"\0alice@example.org\0secret");
    c.send(format!("AUTH PLAIN {secret}\r\n"));
    c.send("AUTH PLAIN\r\n");
    c.send(format!("{secret}\r\n"));
    c.send(format!("AUTH PLAIN {secret}{}\r\n", "A".repeat(600)));
    let log = c.s.take_log();
    assert_eq!(log[0], "AUTH PLAIN ****");
    assert_eq!(log[1..3], ["AUTH PLAIN", "****"]);
    assert_eq!(log[3], "AUTH PLAIN ****... [line too long]");
    assert!(log.iter().all(|l| !l.contains(&secret[..8])), "{log:?}");
    let credentials = Credentials {
        mechanism: AuthMechanism::Plain,
        authcid: "alice".into(),
        authzid: String::new(),
        password: "secret".into(),
    };
    assert!(!format!("{credentials:?}").contains("secret"));
}

#[test]
fn long_response_line_is_not_logged() {
    let mut c = authenticating();
    c.send("AUTH PLAIN\r\n");
    c.s.take_log();
    let r = c.send(format!("{}\r\n", "QUJD".repeat(200)));
    assert_eq!(r, ["500 5.5.6 Line too long"]);
    assert_eq!(c.s.take_log(), ["**** [line too long]"]);
    // Back to commands.
    assert_eq!(c.send("NOOP\r\n"), ["250 2.0.0 Ok"]);
}

/// Over TLS, EHLO done, PLAIN and LOGIN offered; `auth_required` as asked (submission).
fn submission(auth_required: bool) -> Client {
    let mut config = (*tls_config(true)).clone();
    config.offers.auth = vec![AuthMechanism::Plain, AuthMechanism::Login];
    config.offers.auth_required = auth_required;
    let mut c = Client::on(Arc::new(config));
    c.script("C: STARTTLS\nS: 220 2.0.0 Ready to start TLS");
    let ehlo = c.send("EHLO c.test\r\n");
    assert_eq!(ehlo.last().unwrap(), "250 AUTH PLAIN LOGIN");
    c.authenticator = Box::new(|cr| {
        match cr.authcid == "Alice@Example.org" && cr.password == "secret" && cr.authzid.is_empty()
        {
            true => AuthAnswer::AcceptedAs("alice@example.org".into()),
            false => AuthAnswer::Rejected,
        }
    });
    c
}

#[test]
fn login_with_both_prompts() {
    let mut c = submission(false);
    c.s.take_log();
    c.script(&format!(
        "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6
         C: {}\nS: 334 UGFzc3dvcmQ6
         C: {}\nS: 235 2.7.0 Authentication successful",
        b64(b"Alice@Example.org"),
        b64(b"secret")
    ));
    assert_eq!(c.requests.last().unwrap(), "auth:Alice@Example.org");
    // The authenticator's canonical address, not the login as typed.
    assert_eq!(c.s.authenticated.as_deref(), Some("alice@example.org"));
    assert_eq!(c.s.take_log(), ["AUTH LOGIN", "****", "****"]);
}

#[test]
fn login_with_the_user_name_in_the_command() {
    let mut c = submission(false);
    c.s.take_log();
    c.script(&format!(
        "C: auth login {}\nS: 334 UGFzc3dvcmQ6
         C: {}\nS: 235 2.7.0 Authentication successful",
        b64(b"Alice@Example.org"),
        b64(b"secret")
    ));
    assert_eq!(c.s.take_log(), ["auth login ****", "****"]);
    assert_eq!(c.s.authenticated.as_deref(), Some("alice@example.org"));
}

#[test]
fn login_cancel_bad_responses_and_a_fresh_start() {
    let mut c = submission(false);
    let user = b64(b"Alice@Example.org");
    c.script(&format!(
        "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6
         C: *\nS: 501 5.0.0 Authentication cancelled
         C: AUTH LOGIN {user}\nS: 334 UGFzc3dvcmQ6
         C: *\nS: 501 5.0.0 Authentication cancelled
         C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6
         C: !!\nS: 501 5.5.2 Cannot decode response
         C: AUTH LOGIN {user}\nS: 334 UGFzc3dvcmQ6
         C: {}\nS: 535 5.7.8 Authentication credentials invalid
         C: AUTH LOGIN =\nS: 334 UGFzc3dvcmQ6
         C: {}\nS: 535 5.7.8 Authentication credentials invalid
         C: NOOP\nS: 250 2.0.0 Ok",
        b64(b"guess"),
        b64(b"secret"),
    ));
    // Only the complete one with a user name reached the authenticator.
    let asked: Vec<&String> = c
        .requests
        .iter()
        .filter(|r| r.starts_with("auth:"))
        .collect();
    assert_eq!(asked, ["auth:Alice@Example.org"]);
    // After all that, a fresh AUTH LOGIN starts at the user name again.
    c.script(&format!(
        "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6
         C: {user}\nS: 334 UGFzc3dvcmQ6
         C: {}\nS: 235 2.7.0 Authentication successful",
        b64(b"secret")
    ));
}

#[test]
fn a_421_from_the_authenticator_closes_the_session() {
    let mut c = submission(false);
    c.authenticator = Box::new(|_| {
        AuthAnswer::Refused(Reply::new(
            421,
            (4, 7, 0),
            "Too many authentication failures",
        ))
    });
    c.script(&format!(
        "C: AUTH PLAIN {}\nS: 421 4.7.0 Too many authentication failures\nS: [close]",
        b64(b"\0Alice@Example.org\0guess")
    ));
    assert!(c.s.is_closed());
}

#[test]
fn submission_wants_auth_before_mail() {
    let mut c = submission(true);
    c.script(&format!(
        "C: MAIL FROM:<alice@example.org>\nS: 530 5.7.0 Authentication required
         C: RCPT TO:<bob@example.org>\nS: 503 5.5.1 Error: need MAIL command
         C: AUTH PLAIN {}\nS: 535 5.7.8 Authentication credentials invalid
         C: MAIL FROM:<alice@example.org>\nS: 530 5.7.0 Authentication required
         C: AUTH PLAIN {}\nS: 235 2.7.0 Authentication successful
         C: MAIL FROM:<alice@example.org>\nS: 250 2.1.0 Ok",
        b64(b"\0Alice@Example.org\0guess"),
        b64(b"\0Alice@Example.org\0secret"),
    ));
    assert_eq!(c.s.errors, 4, "each 530 counts");
    // Sequence errors still come first, and a listener that does not require AUTH takes
    // MAIL without it.
    let mut c = Client::on(tls_config(true));
    c.script("C: MAIL FROM:<a@b.test>\nS: 503 5.5.1 Error: send HELO/EHLO first");
    let mut c = submission(false);
    c.script("C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok");
}
