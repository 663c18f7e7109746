//! Addressing at RCPT: disabled accounts, domain aliases, catch-all, and the classic relay
//! tricks, each refused or kept local, never relayed, for a client outside relay_networks.

use super::*;

fn addressing_config(catch_all: bool) -> Arc<SessionConfig> {
    let catch_all = match catch_all {
        true => {
            r#"[catch_all]
        "example.org" = "bob@example.org""#
        }
        false => "",
    };
    let cfg: ServerConfig = toml::from_str(&format!(
        r#"
        hostname = "mx.example.org"
        domains = ["example.org"]
        accounts = ["alice@example.org", "bob@example.org",
                    {{ address = "old@example.org", disabled = true }}]
        [domain_aliases]
        "example.net" = "example.org"
        {catch_all}
        "#
    ))
    .unwrap();
    config_from(cfg, |_| {})
}

/// One RCPT in a fresh transaction; the reply.
fn rcpt(c: &mut Client, to: &str) -> String {
    c.send("RSET\r\nMAIL FROM:<x@c.test>\r\n");
    let r = c.send(format!("RCPT TO:<{to}>\r\n"));
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].clone()
}

fn client(catch_all: bool) -> Client {
    let mut c = Client::on(addressing_config(catch_all));
    c.send("EHLO c.test\r\n");
    c
}

#[test]
fn disabled_account_is_550_5_2_1() {
    let mut c = client(true);
    assert_eq!(
        rcpt(&mut c, "old@example.org"),
        "550 5.2.1 Mailbox disabled"
    );
    assert_eq!(
        rcpt(&mut c, "old+x@example.net"),
        "550 5.2.1 Mailbox disabled"
    );
}

#[test]
fn domain_alias_delivers_to_the_local_domain() {
    let mut c = client(false);
    c.script(
        "C: MAIL FROM:<x@c.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<Alice@Example.NET>\nS: 250 2.1.5 Ok
         C: RCPT TO:<nobody@example.net>\nS: 550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    assert_eq!(c.delivered[0].envelope.mailboxes(), ["alice@example.org"]);
    assert!(c.delivered[0].envelope.remote_recipients().is_empty());
}

#[test]
fn catch_all_gets_unknown_local_parts() {
    let mut c = client(true);
    c.script(
        "C: MAIL FROM:<x@c.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<whoever@example.org>\nS: 250 2.1.5 Ok
         C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    assert_eq!(
        c.delivered[0].envelope.mailboxes(),
        ["bob@example.org", "alice@example.org"]
    );
}

/// Every relay-trick family, with and without a catch-all: the answer, and that whatever
/// was accepted went to a local mailbox, never to a remote forward-path.
#[test]
fn relay_tricks_are_refused_or_local() {
    // (recipient as sent, reply without catch-all, reply with catch-all)
    let unknown = |a: &str| format!("550 5.1.1 <{a}>: Recipient address rejected: User unknown");
    let denied = |a: &str| format!("554 5.7.1 <{a}>: Relay access denied");
    let ok = "250 2.1.5 Ok".to_string();
    let syntax = "501 5.1.3 Bad recipient address syntax".to_string();
    let cases: Vec<(&str, String, String)> = vec![
        // Quoted local part: dequoted by the parser, then split at the *last* @.
        (
            r#""victim@elsewhere.net"@example.org"#,
            unknown(r#""victim@elsewhere.net"@example.org"#),
            ok.clone(),
        ),
        // Percent hack: no rewrite to victim@elsewhere.net (Postfix's allow_percent_hack).
        (
            "victim%elsewhere.net@example.org",
            unknown("victim%elsewhere.net@example.org"),
            ok.clone(),
        ),
        // Source route: ignored (RFC 5321 §4.1.2, appendix C), the mailbox decides.
        (
            "@example.org,@relay.test:victim@elsewhere.net",
            denied("victim@elsewhere.net"),
            denied("victim@elsewhere.net"),
        ),
        ("@mx.example.org:bob@example.org", ok.clone(), ok.clone()),
        // Two unquoted @: no such address.
        (
            "victim@elsewhere.net@example.org",
            syntax.clone(),
            syntax.clone(),
        ),
        // Bang path: no swap to victim@elsewhere.net (Postfix's swap_bangpath).
        (
            "elsewhere.net!victim@example.org",
            unknown("elsewhere.net!victim@example.org"),
            ok.clone(),
        ),
        // Trailing dot: the same foreign domain.
        (
            "victim@elsewhere.net.",
            denied("victim@elsewhere.net"),
            denied("victim@elsewhere.net"),
        ),
        ("bob@example.org.", ok.clone(), ok.clone()),
        // IP literals are valid syntax (RFC 5321 §4.1.3): a foreign one goes through the
        // relay rule; one of the address the client connected to (198.51.100.1) is us
        // (RFC 1123 §5.2.17) and reaches bob. A bare numeric domain is never local.
        (
            "victim@[192.0.2.99]",
            denied("victim@[192.0.2.99]"),
            denied("victim@[192.0.2.99]"),
        ),
        ("bob@[198.51.100.1]", ok.clone(), ok.clone()),
        (
            "victim@192.0.2.99",
            denied("victim@192.0.2.99"),
            denied("victim@192.0.2.99"),
        ),
    ];
    for catch_all in [false, true] {
        let mut c = client(catch_all);
        for (to, without, with) in &cases {
            let want = if catch_all { with } else { without };
            assert_eq!(&rcpt(&mut c, to), want, "{to} (catch-all: {catch_all})");
            if want.starts_with("250") {
                c.send("DATA\r\n");
                c.send("Subject: t\r\n\r\nx\r\n.\r\n");
                let tx = c.delivered.last().unwrap();
                assert!(tx.envelope.remote_recipients().is_empty(), "{to}");
                assert_eq!(tx.envelope.mailboxes(), ["bob@example.org"], "{to}");
            }
        }
    }
}

/// Paths built from the pieces relay tricks are made of: routes, quotes, `@ % ! + .`,
/// our domains, the alias domain, foreign ones, trailing dots, literals.
fn arb_path() -> impl Strategy<Value = String> {
    let local = prop::collection::vec(
        prop::sample::select(vec![
            "bob",
            "alice",
            "old",
            "x",
            "@",
            "%",
            "!",
            "+",
            ".",
            "\"",
            "\\",
            "elsewhere.net",
            "example.org",
            "[192.0.2.1]",
        ]),
        1..6,
    )
    .prop_map(|v| v.concat());
    let domain = prop::sample::select(vec![
        "example.org",
        "EXAMPLE.net",
        "example.org.",
        "elsewhere.net",
        "elsewhere.net.",
        "example.org.elsewhere.net",
        "[192.0.2.1]",
        "192.0.2.1",
        "example.org@elsewhere.net",
        "elsewhere.net@example.org",
    ]);
    let route = prop::sample::select(vec!["", "@example.org:", "@elsewhere.net,@example.org:"]);
    (route, local, domain).prop_map(|(r, l, d)| format!("{r}{l}@{d}"))
}

proptest! {
    /// No open relay: whatever the path, a client outside relay_networks gets a refusal,
    /// or a recipient that reaches only local mailboxes, never a remote forward-path.
    #[test]
    fn no_path_relays_for_an_outsider(paths in prop::collection::vec(arb_path(), 1..6), catch_all: bool) {
        let mut c = client(catch_all);
        c.send("MAIL FROM:<x@c.test>\r\n");
        for p in &paths {
            let r = c.send(format!("RCPT TO:<{p}>\r\n"));
            prop_assert!(
                r.iter().all(|l| l.starts_with("250 2.1.5") || l.starts_with('5') || l.starts_with("421")),
                "{p}: {r:?}"
            );
        }
        c.send("DATA\r\nSubject: t\r\n\r\nx\r\n.\r\n");
        for tx in &c.delivered {
            prop_assert!(tx.envelope.remote_recipients().is_empty(), "{paths:?}");
            prop_assert!(!tx.envelope.mailboxes().is_empty(), "{paths:?}");
        }
    }
}
