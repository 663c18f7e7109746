//! The POP3 session per command and state, driven without any I/O: what it sends, what it
//! asks for, and how answers move it on.

use std::time::Duration;

use super::*;
use crate::env::Timestamp;
use crate::smtp::{AuthAnswer, Credentials, Reply};

const T0: u64 = 1_700_000_000;

fn config(starttls: bool, plaintext: bool) -> Pop3Config {
    Pop3Config {
        hostname: "mx.example.org".into(),
        starttls,
        plaintext_auth: plaintext,
        idle_timeout: IDLE_TIMEOUT,
    }
}

fn now() -> Timestamp {
    Timestamp::from_secs(T0)
}

/// Runs the session until it needs something: the text it sent, and the request (or
/// Close) it stopped at.
fn run(s: &mut Session) -> (String, Option<Output>) {
    let mut text = String::new();
    loop {
        match s.poll(now()) {
            Output::Send { bytes, .. } => text.push_str(&String::from_utf8_lossy(&bytes)),
            Output::NeedInput => return (text, None),
            other => return (text, Some(other)),
        }
    }
}

fn say(s: &mut Session, line: &str) -> (String, Option<Output>) {
    s.push_input(line.as_bytes());
    s.push_input(b"\r\n");
    run(s)
}

fn greeted(starttls: bool, plaintext: bool) -> Session {
    let mut s = Session::new(config(starttls, plaintext), now());
    let (greeting, _) = run(&mut s);
    assert_eq!(greeting, "+OK mx.example.org POP3 server ready\r\n");
    s
}

fn drop3() -> Maildrop {
    Maildrop {
        uidvalidity: 77,
        messages: vec![(1, 10), (2, 20), (5, 30)],
    }
}

/// A session logged in with USER/PASS over a plaintext-allowed listener.
fn logged_in() -> Session {
    let mut s = greeted(false, true);
    assert_eq!(say(&mut s, "USER alice").0, "+OK Send your password\r\n");
    let (_, asked) = say(&mut s, "PASS pass word");
    let Some(Output::Authenticate(c)) = asked else {
        panic!("{asked:?}")
    };
    assert_eq!(
        (c.authcid.as_str(), c.password.as_str()),
        ("alice", "pass word")
    );
    s.answer(Answer::Authenticated(AuthAnswer::AcceptedAs(
        "alice@example.org".into(),
    )));
    assert_eq!(
        run(&mut s).1,
        Some(Output::Open("alice@example.org".into()))
    );
    s.answer(Answer::Opened(Ok(drop3())));
    assert_eq!(run(&mut s).0, "+OK Logged in: 3 messages (60 octets)\r\n");
    s
}

#[test]
fn capa_depends_on_state_and_tls() {
    let mut s = greeted(true, false);
    let (caps, _) = say(&mut s, "CAPA");
    assert!(
        caps.starts_with("+OK Capability list follows\r\n"),
        "{caps}"
    );
    assert!(
        caps.contains("\r\nSTLS\r\n") && caps.ends_with("\r\n.\r\n"),
        "{caps}"
    );
    assert!(
        !caps.contains("USER") && !caps.contains("SASL"),
        "no login before TLS: {caps}"
    );
    let mut s = logged_in();
    let (caps, _) = say(&mut s, "capa");
    assert!(
        caps.contains("UIDL\r\n") && caps.contains("TOP\r\n"),
        "{caps}"
    );
    assert!(!caps.contains("STLS") && !caps.contains("USER"), "{caps}");
}

#[test]
fn login_is_refused_before_tls_then_allowed_after_stls() {
    let mut s = greeted(true, false);
    for cmd in ["USER alice", "PASS x", "AUTH PLAIN AGFsaWNlAHB3"] {
        let (reply, asked) = say(&mut s, cmd);
        assert!(reply.starts_with("-ERR [AUTH] "), "{cmd}: {reply}");
        assert_eq!(asked, None);
    }
    // Pipelined input after STLS is dropped, never run after the handshake.
    s.push_input(b"STLS\r\nUSER mallory\r\n");
    let (reply, asked) = run(&mut s);
    assert_eq!(reply, "+OK Begin TLS negotiation\r\n");
    assert_eq!(asked, Some(Output::StartTls));
    s.push_input(b"PASS injected\r\n");
    s.answer(Answer::TlsUp);
    assert!(s.is_tls());
    assert_eq!(run(&mut s), (String::new(), None));
    let (caps, _) = say(&mut s, "CAPA");
    assert!(caps.contains("USER") && !caps.contains("STLS"), "{caps}");
    assert_eq!(say(&mut s, "STLS").0, "-ERR STLS not available\r\n");
    assert_eq!(say(&mut s, "PASS x").0, "-ERR USER first\r\n");
    assert_eq!(say(&mut s, "USER alice").0, "+OK Send your password\r\n");
    // A failed handshake closes.
    let mut s = greeted(true, false);
    say(&mut s, "STLS");
    s.answer(Answer::TlsFailed);
    assert_eq!(run(&mut s).1, Some(Output::Close));
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let b64 = data_encoding::BASE64.encode(b"\0alice@example.org\0secret");
    let mut s = greeted(false, true);
    let (_, asked) = say(&mut s, &format!("AUTH PLAIN {b64}"));
    let Some(Output::Authenticate(Credentials {
        authcid, password, ..
    })) = asked
    else {
        panic!("{asked:?}")
    };
    assert_eq!(
        (authcid.as_str(), password.as_str()),
        ("alice@example.org", "secret")
    );
    let mut s = greeted(false, true);
    assert_eq!(say(&mut s, "AUTH PLAIN").0, "+ \r\n");
    let (_, asked) = say(&mut s, &b64);
    assert!(matches!(asked, Some(Output::Authenticate(_))));
    assert_eq!(
        s.take_log().last().unwrap(),
        "****",
        "the response is never traced"
    );
    let mut s = greeted(false, true);
    say(&mut s, "AUTH PLAIN");
    assert_eq!(say(&mut s, "*").0, "-ERR Authentication cancelled\r\n");
    assert_eq!(
        say(&mut s, "AUTH PLAIN !!!").0,
        "-ERR Invalid SASL PLAIN response\r\n"
    );
    assert_eq!(
        say(&mut s, "AUTH CRAM-MD5").0,
        "-ERR Unsupported authentication mechanism\r\n"
    );
    assert_eq!(say(&mut s, "AUTH").0, "+OK \r\nPLAIN\r\n.\r\n");
}

#[test]
fn failed_logins_and_lockouts_come_from_the_authenticator() {
    let mut s = greeted(false, true);
    say(&mut s, "USER alice");
    say(&mut s, "PASS wrong");
    s.answer(Answer::Authenticated(AuthAnswer::Rejected));
    assert_eq!(run(&mut s).0, "-ERR [AUTH] Authentication failed\r\n");
    say(&mut s, "USER alice");
    say(&mut s, "PASS wrong");
    s.answer(Answer::Authenticated(AuthAnswer::Refused(Reply::new(
        454,
        (4, 7, 0),
        "locked",
    ))));
    assert_eq!(
        run(&mut s).0,
        "-ERR [SYS/TEMP] Temporary authentication failure\r\n"
    );
    say(&mut s, "USER alice");
    say(&mut s, "PASS wrong");
    s.answer(Answer::Authenticated(AuthAnswer::Refused(Reply::new(
        421,
        (4, 7, 0),
        "too many",
    ))));
    let (text, end) = run(&mut s);
    assert_eq!(text, "-ERR [AUTH] Too many authentication failures\r\n");
    assert_eq!(end, Some(Output::Close));
    assert!(
        s.take_log().iter().all(|l| !l.contains("wrong")),
        "no password in the trace"
    );
}

#[test]
fn a_locked_maildrop_is_in_use() {
    let mut s = greeted(false, true);
    say(&mut s, "USER alice");
    say(&mut s, "PASS pw");
    s.answer(Answer::Authenticated(AuthAnswer::Accepted));
    assert_eq!(run(&mut s).1, Some(Output::Open("alice".into())));
    s.answer(Answer::Opened(Err(OpenError::InUse)));
    assert_eq!(
        run(&mut s).0,
        "-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
    );
    assert_eq!(say(&mut s, "STAT").0, "-ERR Not logged in\r\n");
}

#[test]
fn stat_list_and_uidl() {
    let mut s = logged_in();
    assert_eq!(say(&mut s, "STAT").0, "+OK 3 60\r\n");
    assert_eq!(
        say(&mut s, "LIST").0,
        "+OK \r\n1 10\r\n2 20\r\n3 30\r\n.\r\n"
    );
    assert_eq!(say(&mut s, "LIST 2").0, "+OK 2 20\r\n");
    assert_eq!(
        say(&mut s, "UIDL").0,
        "+OK \r\n1 77.1\r\n2 77.2\r\n3 77.5\r\n.\r\n"
    );
    assert_eq!(say(&mut s, "UIDL 3").0, "+OK 3 77.5\r\n");
    for bad in ["LIST 0", "LIST 4", "LIST x", "UIDL -1"] {
        assert!(say(&mut s, bad).0.starts_with("-ERR "), "{bad}");
    }
    assert_eq!(say(&mut s, "NOOP").0, "+OK \r\n");
}

#[test]
fn dele_marks_rset_unmarks_and_quit_expunges() {
    let mut s = logged_in();
    assert_eq!(say(&mut s, "DELE 2").0, "+OK Message 2 deleted\r\n");
    assert_eq!(say(&mut s, "DELE 2").0, "-ERR Message is deleted\r\n");
    assert_eq!(say(&mut s, "RETR 2").0, "-ERR Message is deleted\r\n");
    assert_eq!(say(&mut s, "STAT").0, "+OK 2 40\r\n");
    assert_eq!(say(&mut s, "LIST").0, "+OK \r\n1 10\r\n3 30\r\n.\r\n");
    assert_eq!(say(&mut s, "RSET").0, "+OK 3 messages (60 octets)\r\n");
    say(&mut s, "DELE 1");
    say(&mut s, "DELE 3");
    let (_, asked) = say(&mut s, "QUIT");
    assert_eq!(asked, Some(Output::Expunge(vec![1, 5])));
    s.answer(Answer::Expunged(Ok(())));
    let (text, end) = run(&mut s);
    assert_eq!(text, "+OK Logging out, messages deleted\r\n");
    assert_eq!(end, Some(Output::Close));
}

#[test]
fn a_failed_update_is_an_error_and_quit_without_deletions_asks_nothing() {
    let mut s = logged_in();
    say(&mut s, "DELE 1");
    say(&mut s, "QUIT");
    s.answer(Answer::Expunged(Err("disk".into())));
    let (text, end) = run(&mut s);
    assert!(
        text.starts_with("-ERR [SYS/TEMP] Deleting messages failed"),
        "{text}"
    );
    assert_eq!(end, Some(Output::Close));
    let mut s = logged_in();
    assert_eq!(
        say(&mut s, "QUIT"),
        ("+OK Logging out\r\n".into(), Some(Output::Close))
    );
    let mut s = greeted(false, true);
    assert_eq!(
        say(&mut s, "QUIT"),
        ("+OK Logging out\r\n".into(), Some(Output::Close))
    );
}

#[test]
fn retr_and_top_are_byte_stuffed() {
    let mut s = logged_in();
    let (_, asked) = say(&mut s, "RETR 3");
    assert_eq!(asked, Some(Output::Read(5)));
    s.answer(Answer::Read(Ok(b"S: x\r\n\r\n.dot\r\nb\r\n".to_vec())));
    assert_eq!(
        run(&mut s).0,
        "+OK 17 octets\r\nS: x\r\n\r\n..dot\r\nb\r\n.\r\n"
    );
    let (_, asked) = say(&mut s, "TOP 1 1");
    assert_eq!(asked, Some(Output::Read(1)));
    s.answer(Answer::Read(Ok(b"S: x\r\n\r\none\r\ntwo\r\n".to_vec())));
    assert_eq!(
        run(&mut s).0,
        "+OK Top of message follows\r\nS: x\r\n\r\none\r\n.\r\n"
    );
    for bad in ["TOP 1", "TOP 1 x", "TOP 9 1", "RETR", "RETR 1 2"] {
        let (text, asked) = say(&mut s, bad);
        assert!(text.starts_with("-ERR "), "{bad}: {text}");
        assert_eq!(asked, None, "{bad}");
    }
    say(&mut s, "RETR 1");
    s.answer(Answer::Read(Err("gone".into())));
    assert!(run(&mut s).0.starts_with("-ERR [SYS/TEMP]"));
}

#[test]
fn bad_input_gets_errors_never_a_panic() {
    let mut s = greeted(false, false);
    assert_eq!(say(&mut s, "").0, "-ERR Empty command\r\n");
    assert_eq!(say(&mut s, "FOO").0, "-ERR Unknown command\r\n");
    assert_eq!(say(&mut s, "RETR 1").0, "-ERR Not logged in\r\n");
    s.push_input(&[0xff, 0xfe, b'\r', b'\n']);
    assert_eq!(run(&mut s).0, "-ERR Invalid command (not UTF-8)\r\n");
    // RFC 2449 §4: 255 octets per line; a longer one is answered once and skipped.
    let long = "NOOP ".to_string() + &"x".repeat(MAX_COMMAND);
    s.push_input(long.as_bytes());
    assert_eq!(run(&mut s).0, "-ERR Line too long\r\n");
    s.push_input(b"xxxxxxxx");
    assert_eq!(run(&mut s).0, "");
    s.push_input(b"\r\nCAPA\r\n");
    assert!(run(&mut s).0.starts_with("+OK Capability"));
    let line = "x".repeat(MAX_COMMAND - 2);
    assert_eq!(
        say(&mut s, &line).0,
        "-ERR Unknown command\r\n",
        "253 + CRLF fits"
    );
    let mut s = logged_in();
    assert_eq!(say(&mut s, "USER bob").0, "-ERR Already logged in\r\n");
}

#[test]
fn junk_forever_closes_the_session() {
    let mut s = greeted(false, false);
    for _ in 0..19 {
        assert_eq!(say(&mut s, "BAD").1, None);
    }
    let (text, end) = say(&mut s, "BAD");
    assert!(text.ends_with("-ERR Too many bad commands\r\n"), "{text}");
    assert_eq!(end, Some(Output::Close));
}

#[test]
fn the_idle_timer_closes_without_update() {
    let mut s = logged_in();
    say(&mut s, "DELE 1");
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, now().plus(IDLE_TIMEOUT));
    assert!(IDLE_TIMEOUT >= Duration::from_secs(600), "RFC 1939 §3");
    s.handle_timeout(now().plus(Duration::from_secs(599)));
    assert_eq!(run(&mut s).1, None, "not yet");
    s.handle_timeout(deadline);
    let (text, end) = run(&mut s);
    assert_eq!(text, "-ERR Disconnected for inactivity\r\n");
    assert_eq!(end, Some(Output::Close), "closed, and no Expunge asked");
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn answers_nobody_asked_for_are_ignored() {
    let mut s = greeted(false, true);
    s.answer(Answer::Opened(Ok(drop3())));
    s.answer(Answer::TlsUp);
    assert!(!s.is_tls());
    assert_eq!(say(&mut s, "STAT").0, "-ERR Not logged in\r\n");
}

mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// Lines from the command vocabulary with odd arguments, and raw bytes.
    fn chunk() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::sample::select(vec![
                "CAPA",
                "USER a",
                "PASS b",
                "AUTH PLAIN",
                "AUTH PLAIN AGEAYg==",
                "*",
                "STLS",
                "STAT",
                "LIST",
                "LIST 1",
                "LIST 99999999999999999999",
                "UIDL 0",
                "RETR 2",
                "TOP 1 0",
                "TOP 3 18446744073709551616",
                "DELE 1",
                "DELE 3",
                "RSET",
                "NOOP",
                "QUIT",
                "",
                "\u{0}",
                "RETR -1",
            ])
            .prop_map(|s| format!("{s}\r\n").into_bytes()),
            vec(any::<u8>(), 0..300),
        ]
    }

    proptest! {
        /// Whatever arrives, in whatever state, and whatever the answers: no panic, and the
        /// session never has two requests outstanding (each is answered before the next).
        #[test]
        fn any_input_in_any_state_never_panics(
            chunks in vec(chunk(), 0..40),
            grant in any::<bool>(),
            plaintext in any::<bool>(),
        ) {
            let mut s = Session::new(config(true, plaintext), now());
            for c in chunks {
                s.push_input(&c);
                for _ in 0..64 {
                    match s.poll(now()) {
                        Output::NeedInput | Output::Close => break,
                        Output::Send { bytes, .. } => {
                            prop_assert!(bytes.ends_with(b"\r\n"));
                        }
                        Output::StartTls => s.answer(Answer::TlsUp),
                        Output::Authenticate(_) => s.answer(Answer::Authenticated(
                            if grant { AuthAnswer::Accepted } else { AuthAnswer::Rejected },
                        )),
                        Output::Open(_) => s.answer(Answer::Opened(Ok(drop3()))),
                        Output::Read(uid) => {
                            prop_assert!([1, 2, 5].contains(&uid));
                            s.answer(Answer::Read(Ok(b".x\r\n\r\n.\r\n".to_vec())))
                        }
                        Output::Expunge(uids) => {
                            prop_assert!(uids.iter().all(|u| [1, 2, 5].contains(u)));
                            s.answer(Answer::Expunged(Ok(())))
                        }
                    }
                }
            }
        }
    }
}
