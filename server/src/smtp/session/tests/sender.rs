//! Sender rules for authenticated sessions (`session/sender.rs`): MAIL FROM and `From:`
//! must be the account's own, through the real STARTTLS + AUTH flow.

use super::*;

fn b64(s: &[u8]) -> String {
    data_encoding::BASE64.encode(s)
}

/// A submission-like listener: STARTTLS, then AUTH PLAIN; alice has an alias, a domain
/// alias and a `send_as`.
fn submission() -> Arc<SessionConfig> {
    let cfg: ServerConfig = toml::from_str(
        r#"
        hostname = "mx.example.org"
        domains = ["example.org"]
        accounts = [
            { address = "alice@example.org", send_as = ["boss@example.org", "*@partner.test"] },
            "bob@example.org",
        ]
        [aliases]
        "sales@example.org" = ["alice@example.org"]
        [domain_aliases]
        "example.net" = "example.org"
        [catch_all]
        "example.org" = "alice@example.org"
        "#,
    )
    .unwrap();
    let mut config = (*config_from(cfg, |_| {})).clone();
    config.offers = Offers {
        starttls: true,
        auth: vec![AuthMechanism::Plain],
        auth_requires_tls: true,
        auth_required: false,
    };
    Arc::new(config)
}

/// Logged in as alice over TLS.
fn alice() -> Client {
    let mut c = Client::on(submission());
    c.authenticator = Box::new(|cr| match cr.password == "secret" {
        true => AuthAnswer::Accepted,
        false => AuthAnswer::Rejected,
    });
    c.send("EHLO c.test\r\n");
    c.script("C: STARTTLS\nS: 220 2.0.0 Ready to start TLS");
    c.send("EHLO c.test\r\n");
    c.script(&format!(
        "C: AUTH PLAIN {}\nS: 235 2.7.0 Authentication successful",
        b64(b"\0alice@example.org\0secret")
    ));
    assert_eq!(c.s.authenticated.as_deref(), Some("alice@example.org"));
    c
}

fn mail(c: &mut Client, from: &str) -> String {
    c.send("RSET\r\n");
    let r = c.send(format!("MAIL FROM:<{from}>\r\n"));
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].clone()
}

#[test]
fn envelope_sender_must_be_owned() {
    let mut c = alice();
    for own in [
        "alice@example.org",
        "Alice+lists@example.org",
        "alice@example.net",
        "sales@example.org",
        "boss@example.org",
        "anyone@partner.test",
        "",
    ] {
        assert_eq!(mail(&mut c, own), "250 2.1.0 Ok", "{own}");
    }
    for (spoof, shown) in [
        ("bob@example.org", "bob@example.org"),
        ("bob+x@example.net", "bob+x@example.net"),
        ("ceo@example.org", "ceo@example.org"),
        ("alice@elsewhere.net", "alice@elsewhere.net"),
        (
            r#""alice@example.org"@evil.test"#,
            r#""alice@example.org"@evil.test"#,
        ),
    ] {
        assert_eq!(
            mail(&mut c, spoof),
            format!(
                "550 5.7.1 <{shown}>: Sender address rejected: not owned by user alice@example.org"
            ),
            "{spoof}"
        );
    }
    // A refused MAIL opens no transaction.
    c.script("C: RCPT TO:<carol@elsewhere.net>\nS: 503 5.5.1 Error: need MAIL command");
}

/// MAIL, RCPT and DATA as alice, then this message; the end-of-data reply.
fn submit(c: &mut Client, message: &str) -> String {
    c.send("RSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@elsewhere.net>\r\nDATA\r\n");
    let r = c.send(format!("{message}.\r\n"));
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].clone()
}

#[test]
fn from_header_must_be_owned() {
    let mut c = alice();
    let ok = |c: &mut Client, m: &str| {
        let before = c.delivered.len();
        let r = submit(c, m);
        assert!(r.starts_with("250 2.0.0 Ok: queued"), "{m:?}: {r}");
        assert_eq!(c.delivered.len(), before + 1);
    };
    ok(&mut c, "From: Alice <alice@example.org>\r\n\r\nhi\r\n");
    ok(
        &mut c,
        "From: \"bob@example.org\" <sales@example.org>\r\n\r\nhi\r\n",
    );
    ok(
        &mut c,
        "From: alice@example.org, boss@example.org\r\n\r\nhi\r\n",
    );
    ok(&mut c, "Subject: no From at all\r\n\r\nhi\r\n");
    let refused = |c: &mut Client, m: &str, want: &str| {
        let before = c.delivered.len();
        assert_eq!(submit(c, m), want, "{m:?}");
        assert_eq!(c.delivered.len(), before, "nothing stored for {m:?}");
    };
    let not_owned = |a: &str| {
        format!("550 5.7.1 <{a}>: From: address rejected: not owned by user alice@example.org")
    };
    let unreadable = "550 5.7.1 From: address rejected: not owned by user alice@example.org";
    refused(
        &mut c,
        "From: Bob <bob@example.org>\r\n\r\nhi\r\n",
        &not_owned("bob@example.org"),
    );
    refused(
        &mut c,
        "From: alice@example.org, bob@example.org\r\n\r\nhi\r\n",
        &not_owned("bob@example.org"),
    );
    refused(
        &mut c,
        "From: alice@example.org\r\nFrom: bob@example.org\r\n\r\nhi\r\n",
        &not_owned("bob@example.org"),
    );
    refused(
        &mut c,
        "From: Friends: bob@example.org;\r\n\r\nhi\r\n",
        &not_owned("bob@example.org"),
    );
    // The catch-all reaches alice but does not make every unknown address hers.
    refused(
        &mut c,
        "From: nobody@example.org\r\n\r\nhi\r\n",
        &not_owned("nobody@example.org"),
    );
    refused(&mut c, "From: just a name\r\n\r\nhi\r\n", unreadable);
    refused(&mut c, "From:\r\n\r\nhi\r\n", unreadable);
    let log = c.s.take_log();
    assert!(
        log.iter()
            .any(|l| l == "[message discarded: From: not owned by the user]"),
        "{log:?}"
    );
}

#[test]
fn unauthenticated_sessions_are_not_checked() {
    // The MX: anyone may claim any sender; SPF/DMARC are the remote domain's business.
    let mut c = Client::on(submission());
    c.send("EHLO c.test\r\n");
    c.script(
        "C: MAIL FROM:<bob@example.org>\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: From: bob@example.org\nC: \nC: hi\nC: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
}
