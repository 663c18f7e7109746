//! Properties: arbitrary and SMTP-like input never panics, chunking never changes the
//! outcome, valid dialogues round-trip.

use super::*;

fn arb_chunks(max_len: usize) -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (
        prop::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                2 => prop::sample::select(b"\r\n.<>:@ ".to_vec()),
            ],
            0..max_len,
        ),
        prop::collection::vec(1usize..64, 1..32),
    )
}

/// Input that looks like SMTP often enough to reach the deeper states.
fn arb_smtpish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"EHLO x\r\n".to_vec()),
        Just(b"HELO x\n".to_vec()),
        Just(b"MAIL FROM:<a@b.test>\r\n".to_vec()),
        Just(b"MAIL FROM:<>\r\n".to_vec()),
        Just(b"RCPT TO:<alice@example.org>\r\n".to_vec()),
        Just(b"RCPT TO:<postmaster>\r\n".to_vec()),
        Just(b"DATA\r\n".to_vec()),
        Just(b"\r\n.\r\n".to_vec()),
        Just(b".\r\n".to_vec()),
        Just(b"..\r\n".to_vec()),
        Just(b"\n.\n".to_vec()),
        Just(b"RSET\r\n".to_vec()),
        Just(b"NOOP\r\n".to_vec()),
        Just(b"QUIT\r\n".to_vec()),
        Just(vec![b'x'; 600]),
        prop::collection::vec(any::<u8>(), 0..20),
    ];
    prop::collection::vec(token, 0..30).prop_map(|v| v.concat())
}

/// Pushes `input` in chunks of the given sizes (cycled), draining after each push.
fn push_chunked(c: &mut Client, input: &[u8], sizes: &[usize]) {
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        let (head, tail) = rest.split_at(n);
        c.send(head);
        rest = tail;
        i += 1;
    }
}

/// After arbitrary input, the session is either closed for good or still works: a recovery
/// sequence gets it back to the command state and a full transaction goes through.
fn assert_usable(c: &mut Client) {
    if c.closed {
        assert!(matches!(c.s.poll(c.now), Output::Close));
        return;
    }
    // End a partial line, end a DATA body, end a transaction.
    c.send("\r\n.\r\nRSET\r\n");
    if c.closed {
        return; // the garbage may have left a QUIT in a partial line
    }
    let before = c.delivered.len();
    let replies = c.send(
        // A sender an authenticated alice may use too (sender rules, session/sender.rs).
        "EHLO ok.test\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nfine\r\n.\r\n",
    );
    assert_eq!(
        replies.last().map(String::as_str),
        Some(format!("250 2.0.0 Ok: queued as Q{}", before + 1).as_str()),
        "{replies:?}"
    );
    assert_eq!(content_of(c.delivered.last().unwrap()), "fine\r\n");
}

fn lenient() -> Client {
    Client::with(|l| l.errors = usize::MAX)
}

proptest! {
    // No regression files: a failure prints its minimal input, which belongs in a unit test
    // above (and the session's directory is the only place these tests may write to).
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic((input, sizes) in arb_chunks(2000)) {
        let mut c = lenient();
        push_chunked(&mut c, &input, &sizes);
        assert_usable(&mut c);
    }

    #[test]
    fn smtp_like_input_never_panics(input in arb_smtpish(), sizes in prop::collection::vec(1usize..200, 1..8)) {
        let mut c = lenient();
        push_chunked(&mut c, &input, &sizes);
        assert_usable(&mut c);
        // And with the default error limit, the same input either works or closes cleanly.
        let mut c = Client::new();
        push_chunked(&mut c, &input, &sizes);
        assert_usable(&mut c);
    }

    #[test]
    fn chunking_does_not_change_the_outcome(input in arb_smtpish(), sizes in prop::collection::vec(1usize..50, 1..8)) {
        let mut whole = lenient();
        let replies = whole.send(&input);
        let mut pieces = lenient();
        let mut got = Vec::new();
        let mut rest = &input[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            got.extend(pieces.send(&rest[..n]));
            rest = &rest[n..];
            i += 1;
        }
        // Replies and deliveries must not depend on how the input was cut.
        prop_assert_eq!(got, replies);
        let a: Vec<_> = whole.delivered.iter().map(|t| t.message.clone()).collect();
        let b: Vec<_> = pieces.delivered.iter().map(|t| t.message.clone()).collect();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn valid_commands_round_trip(
        helo in helo_name(),
        from in prop::option::of(address()),
        rcpts in prop::collection::vec(address_in("example.org"), 1..6),
        body_lines in prop::collection::vec("[ -~]{0,80}", 0..20),
    ) {
        // Every generated recipient is an account.
        let mut cfg = server_config();
        let mut keys = Vec::new();
        for r in &rcpts {
            let key = Address::parse(r).unwrap().key();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        cfg.accounts = keys.iter().map(|k| crate::config::AccountConfig::Address(k.clone())).collect();
        cfg.aliases.clear();
        let mut c = Client::on(config_from(cfg, |_| {}));

        let mut script = format!("EHLO {helo}\r\nMAIL FROM:<{}>\r\n", from.clone().unwrap_or_default());
        for r in &rcpts {
            script.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        script.push_str("DATA\r\n");
        for l in &body_lines {
            if l.starts_with('.') {
                script.push('.');
            }
            script.push_str(l);
            script.push_str("\r\n");
        }
        script.push_str(".\r\n");
        let replies = c.send(&script);
        prop_assert_eq!(replies.last().unwrap(), "250 2.0.0 Ok: queued as Q1");
        prop_assert!(replies.iter().all(|r| r.starts_with('2') || r.starts_with('3')), "{:?}", replies);

        let tx = &c.delivered[0];
        prop_assert_eq!(&tx.envelope.helo, &helo);
        prop_assert_eq!(tx.envelope.mail_from.clone(), from.map(|f| Address::parse(&f).unwrap()));
        let mut want: Vec<Address> = Vec::new();
        for r in &rcpts {
            let a = Address::parse(r).unwrap();
            if !want.iter().any(|w| w.key() == a.key()) {
                want.push(a);
            }
        }
        let got: Vec<Address> = tx.envelope.recipients.iter().map(|r| r.address.clone()).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(tx.envelope.mailboxes(), keys.iter().map(String::as_str).collect::<Vec<_>>());
        let body: String = body_lines.iter().map(|l| format!("{l}\r\n")).collect();
        prop_assert_eq!(content_of(tx), body);
    }
}

fn helo_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}",
        "\\[(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}\\]",
    ]
}

fn domain() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?){0,3}"
}

/// A dot-atom local part (RFC 5321 §4.1.2) without `/`, which we never store.
fn local_part() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+=?^_`{|}~-]{1,12}(\\.[a-zA-Z0-9!#$%&'*+=?^_`{|}~-]{1,12}){0,2}"
}

fn address() -> impl Strategy<Value = String> {
    (local_part(), domain()).prop_map(|(l, d)| format!("{l}@{d}"))
}

fn address_in(domain: &'static str) -> impl Strategy<Value = String> {
    local_part().prop_map(move |l| format!("{l}@{domain}"))
}

/// SMTP-like input with the STARTTLS and AUTH commands of a listener that offers both.
fn arb_submissionish() -> impl Strategy<Value = Vec<u8>> {
    let plain = data_encoding::BASE64.encode(b"\0alice@example.org\0pw");
    let token = prop_oneof![
        3 => arb_smtpish(),
        1 => Just(b"STARTTLS\r\n".to_vec()),
        1 => Just(format!("AUTH PLAIN {plain}\r\n").into_bytes()),
        1 => Just(b"AUTH PLAIN\r\n".to_vec()),
        1 => Just(format!("{plain}\r\n").into_bytes()),
        1 => Just(b"*\r\n".to_vec()),
        1 => Just(b"AUTH LOGIN\r\n".to_vec()),
        1 => Just(b"RCPT TO:<x@elsewhere.net>\r\n".to_vec()),
    ];
    prop::collection::vec(token, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn starttls_and_auth_input_never_panics(
        input in arb_submissionish(),
        sizes in prop::collection::vec(1usize..200, 1..8),
        tls_works in any::<bool>(),
        accept in any::<bool>(),
    ) {
        let mut config = (*super::tls::tls_config(false)).clone();
        config.offers.auth.push(AuthMechanism::Login);
        let mut limits = config.limits.clone();
        limits.errors = usize::MAX;
        config.limits = limits;
        let mut c = Client::on(Arc::new(config));
        c.tls_works = tls_works;
        // Only alice's own credentials: garbage can decode to any user name (AUTH LOGIN
        // with a PLAIN blob as its user), and a session authenticated as that name rightly
        // may not send as alice (session/sender.rs), which is not what this test is about.
        c.authenticator = Box::new(move |cr| match accept && cr.authcid == "alice@example.org" {
            true => AuthAnswer::Accepted,
            false => AuthAnswer::Rejected,
        });
        push_chunked(&mut c, &input, &sizes);
        assert_usable(&mut c);
    }
}
