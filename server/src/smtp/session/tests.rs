//! Session tests. Most read as transcripts: `C:` lines are sent (each with CRLF; consecutive
//! ones in a single push, i.e. pipelined), `S:` lines are the replies expected before the
//! session asks for more input, `[close]` stands for `Output::Close`. The replies to trailing
//! `C:` lines that no `S:` line follows are not checked.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::ServerConfig;
use crate::mail::{DeliveryError, Message};
use crate::policy::{Check, Verdict};
use crate::smtp::{Limits, LongLines};

mod addressing;
mod asking;
mod auth;
mod chunking;
mod conformance;
mod dsn;
mod properties;
mod protocol;
mod quota;
mod relay;
mod sender;
mod shutdown;
mod spooling;
mod tls;

const T0: u64 = 1_700_000_000;

const EHLO_REPLY: &str = "S: 250-mx.example.org
S: 250-PIPELINING
S: 250-SIZE 10485760
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-CHUNKING
S: 250-BINARYMIME
S: 250-ENHANCEDSTATUSCODES
S: 250 DSN";

fn server_config() -> ServerConfig {
    toml::from_str(
        r#"
        hostname = "mx.example.org"
        domains = ["example.org"]
        accounts = ["alice@example.org", "bob@example.org", "pm@example.org"]
        [aliases]
        "team@example.org" = ["alice@example.org", "bob@example.org"]
        postmaster = ["pm@example.org"]
        "#,
    )
    .unwrap()
}

fn config_from(cfg: ServerConfig, tweak: impl FnOnce(&mut Limits)) -> Arc<SessionConfig> {
    let directory = cfg.validate().unwrap();
    let mut limits = cfg.limits.clone();
    tweak(&mut limits);
    Arc::new(SessionConfig {
        hostname: cfg.hostname,
        limits,
        directory: Arc::new(directory),
        relay_networks: cfg.relay_networks,
        offers: Offers::default(),
        quota: None,
        spool_dir: None,
    })
}

fn peer() -> PeerInfo {
    PeerInfo {
        remote: SocketAddr::from(([192, 0, 2, 1], 40000)),
        local: SocketAddr::from(([198, 51, 100, 1], 25)),
    }
}

/// A scripted client around a session: drives it like the async driver does, answering
/// every request at once.
struct Client {
    s: Session,
    now: Timestamp,
    delivered: Vec<Transaction>,
    /// What the store answers to the next deliveries (default: `Ok("Q<n>")`).
    store: VecDeque<Result<String, DeliveryError>>,
    /// The policy: every check is answered by it (default: accept).
    policy: Box<dyn FnMut(&Check) -> Verdict>,
    /// Whether a STARTTLS handshake succeeds.
    tls_works: bool,
    /// The authenticator (default: reject).
    authenticator: Box<dyn FnMut(&Credentials) -> AuthAnswer>,
    /// Every request the session made, in order, as `check:<stage>`, `deliver`, `starttls`,
    /// `auth:<authcid>`; spool actions as `spool:<octets>` (`spool-new:` for the first of a
    /// file) and `unspool`.
    requests: Vec<String>,
    closed: bool,
    /// The spool file, as the driver would write it; `spool_fails`: writes fail.
    spool: Option<Vec<u8>>,
    spool_fails: bool,
}

impl Client {
    fn new() -> Client {
        Client::with(|_| {})
    }

    fn with(tweak: impl FnOnce(&mut Limits)) -> Client {
        Client::on(config_from(server_config(), tweak))
    }

    fn on(config: Arc<SessionConfig>) -> Client {
        let mut c = Client::unconnected(config);
        assert_eq!(c.drain(), ["220 mx.example.org ESMTP mailsim"]);
        c
    }

    /// The session before its connect check is answered (the greeting is not out yet).
    fn unconnected(config: Arc<SessionConfig>) -> Client {
        let now = Timestamp::from_secs(T0);
        Client {
            s: Session::new(config, peer(), now),
            now,
            delivered: Vec::new(),
            store: VecDeque::new(),
            policy: Box::new(|_| Verdict::Accept),
            tls_works: true,
            authenticator: Box::new(|_| AuthAnswer::Rejected),
            requests: Vec::new(),
            closed: false,
            spool: None,
            spool_fails: false,
        }
    }

    /// Spooling on, as `mailsim serve` runs sessions.
    fn spooling(mut self) -> Client {
        self.s.spool_to("spool/1".into());
        self
    }

    /// Pushes `bytes` and polls until the session wants input (or closes); the replies.
    /// Like the driver, sends nothing more once the session said Close.
    fn send(&mut self, bytes: impl AsRef<[u8]>) -> Vec<String> {
        if self.closed {
            return Vec::new();
        }
        self.s.push_input(bytes.as_ref());
        self.drain()
    }

    fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..100_000 {
            match self.s.poll(self.now) {
                Output::Reply(r) => out.extend(r.wire_lines()),
                Output::Deliver(mut tx) => {
                    self.requests.push("deliver".into());
                    let n = self.delivered.len() + 1;
                    if let Some(spooled) = tx.message.spool() {
                        // What the stores would copy: the head, then the file.
                        let file = self.spool.clone().expect("a spooled message has a file");
                        assert_eq!(file.len() as u64, spooled.len);
                        assert_eq!(crate::durable::crc::crc32(&file), spooled.crc);
                        let mut whole = tx.message.head().to_vec();
                        whole.extend_from_slice(&file);
                        tx.message = Message::inline(whole);
                    }
                    self.delivered.push(tx);
                    let result = self
                        .store
                        .pop_front()
                        .unwrap_or_else(|| Ok(format!("Q{n}")));
                    self.s.answer(Answer::Delivered(result));
                }
                Output::Check(check) => {
                    self.requests.push(format!("check:{}", stage_name(&check)));
                    let verdict = (self.policy)(&check);
                    self.s.answer(Answer::Checked(check, verdict));
                }
                Output::StartTls => {
                    self.requests.push("starttls".into());
                    self.s.answer(match self.tls_works {
                        true => Answer::TlsUp,
                        false => Answer::TlsFailed,
                    });
                }
                Output::Authenticate(credentials) => {
                    self.requests.push(format!("auth:{}", credentials.authcid));
                    let answer = (self.authenticator)(&credentials);
                    self.s.answer(Answer::Authenticated(answer));
                }
                Output::Spool { bytes, first } => {
                    let tag = if first { "spool-new" } else { "spool" };
                    self.requests.push(format!("{tag}:{}", bytes.len()));
                    if self.spool_fails {
                        self.s.spool_failed();
                    } else if first {
                        self.spool = Some(bytes);
                    } else {
                        self.spool
                            .as_mut()
                            .expect("an append follows a create")
                            .extend_from_slice(&bytes);
                    }
                }
                Output::Unspool => {
                    self.requests.push("unspool".into());
                    self.spool = None;
                }
                Output::Close => {
                    self.closed = true;
                    out.push("[close]".into());
                    return out;
                }
                Output::NeedInput => return out,
            }
        }
        panic!("session never asked for input");
    }

    /// Runs a transcript (see the module docs).
    fn script(&mut self, transcript: &str) {
        let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
        for line in transcript
            .lines()
            .map(str::trim_start)
            .filter(|l| !l.is_empty())
        {
            if let Some(c) = line.strip_prefix("C:") {
                let c = c.strip_prefix(' ').unwrap_or(c);
                match blocks.last_mut() {
                    Some((sent, expected)) if expected.is_empty() => {
                        sent.push_str(c);
                        sent.push_str("\r\n");
                    }
                    _ => blocks.push((format!("{c}\r\n"), Vec::new())),
                }
            } else if let Some(s) = line.strip_prefix("S:") {
                let s = s.strip_prefix(' ').unwrap_or(s);
                match blocks.last_mut() {
                    Some((_, expected)) => expected.push(s.to_string()),
                    None => blocks.push((String::new(), vec![s.to_string()])),
                }
            } else {
                panic!("bad transcript line {line:?}");
            }
        }
        let last = blocks.len().saturating_sub(1);
        for (n, (sent, expected)) in blocks.into_iter().enumerate() {
            let got = self.send(sent.as_bytes());
            // Trailing `C:` lines without `S:` lines: sent, replies not checked.
            if n == last && expected.is_empty() {
                continue;
            }
            assert_eq!(got, expected, "replies to {sent:?}");
        }
    }

    /// Greets with EHLO and opens a transaction for alice.
    fn ready(&mut self) {
        let ehlo = self.send("EHLO client.test\r\n");
        assert_eq!(ehlo.last().unwrap(), "250 DSN");
        self.script(
            "C: MAIL FROM:<sender@remote.test>\nS: 250 2.1.0 Ok
             C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok",
        );
    }

    /// The content of the only delivered message, without our Received: header.
    fn body(&self) -> String {
        assert_eq!(self.delivered.len(), 1, "one delivery");
        content_of(&self.delivered[0])
    }
}

/// A short name of a check's stage, for [`Client::requests`].
fn stage_name(check: &Check) -> &'static str {
    match check.stage {
        Stage::Connect => "connect",
        Stage::Mail { .. } => "mail",
        Stage::Rcpt { .. } => "rcpt",
        Stage::EndOfData { .. } => "data",
    }
}

/// A stored message minus our (folded) Received: header.
fn content_of(tx: &Transaction) -> String {
    let text = String::from_utf8(tx.message.as_bytes().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("Received: "), "{text:?}");
    let mut rest = &text[..];
    loop {
        let end = rest.find("\r\n").unwrap() + 2;
        rest = &rest[end..];
        if !rest.starts_with('\t') {
            return rest.to_string();
        }
    }
}

#[test]
fn greeting_and_ehlo() {
    let mut c = Client::new();
    c.script(&format!("C: EHLO client.test\n{EHLO_REPLY}"));
    c.script("C: HELO other.test\nS: 250 mx.example.org");
    c.script(
        "C: EHLO\nS: 501 5.5.4 Syntax: EHLO domain
         C: EHLO   \nS: 501 5.5.4 Syntax: EHLO domain
         C: HELO\nS: 501 5.5.4 Syntax: HELO domain",
    );
    // Not offered, so not advertised either.
    let lines = c.send("ehlo x\r\n");
    // REQUIRETLS only inside TLS (RFC 8689 §4.1); DSN and CHUNKING are always on offer.
    for absent in ["STARTTLS", "AUTH", "REQUIRETLS"] {
        assert!(!lines.iter().any(|l| l.contains(absent)), "{lines:?}");
    }
    assert_eq!(lines.len(), 9);
}

#[test]
fn mail_from() {
    let mut c = Client::new();
    c.script(
        "C: MAIL FROM:<a@b.test>\nS: 503 5.5.1 Error: send HELO/EHLO first
         C: MAIL FROM:<a b@b.test\nS: 503 5.5.1 Error: send HELO/EHLO first
         C: EHLO client.test",
    );
    c.script(
        "C: MAIL FROM:<foo>\nS: 501 5.1.7 Bad sender address syntax
         C: MAIL FROM:<a b@c.test>\nS: 501 5.1.7 Bad sender address syntax
         C: MAIL FROM:<x/y@c.test>\nS: 501 5.1.7 Bad sender address syntax
         C: MAIL FROM:<postmaster>\nS: 501 5.1.7 Bad sender address syntax
         C: MAIL FROM:x@c.test\nS: 501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]
         C: MAIL\nS: 501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]
         C: MAIL FROM:<a@c.test> SIZE=10485761\nS: 552 5.3.4 Message size exceeds fixed limit
         C: MAIL FROM:<a@c.test> SIZE=abc\nS: 501 5.5.4 Invalid SIZE parameter
         C: MAIL FROM:<a@c.test> FOO=bar\nS: 555 5.5.4 Unsupported parameter
         C: MAIL FROM:<a@c.test> AUTH=<>\nS: 555 5.5.4 Unsupported parameter
         C: MAIL FROM:<a@c.test> SIZE=10485760 BODY=8BITMIME SMTPUTF8\nS: 250 2.1.0 Ok
         C: MAIL FROM:<a@c.test>\nS: 503 5.5.1 Error: nested MAIL command
         C: MAIL FROM:<bad\nS: 503 5.5.1 Error: nested MAIL command
         C: RSET\nS: 250 2.0.0 Ok
         C: MAIL FROM:<>\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: hi
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    assert_eq!(c.delivered[0].envelope.mail_from, None);
    // After HELO there are no parameters at all.
    c.script(
        "C: HELO client.test\nS: 250 mx.example.org
         C: MAIL FROM:<a@c.test> BODY=8BITMIME\nS: 555 5.5.4 Unsupported parameter
         C: MAIL FROM:<Ann@C.Test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q2",
    );
    let from = c.delivered[1].envelope.mail_from.clone().unwrap();
    assert_eq!(
        (from.local.as_str(), from.domain.as_str()),
        ("Ann", "c.test")
    );
    assert_eq!(c.delivered[1].envelope.helo, "client.test");
}

#[test]
fn rcpt_to() {
    let mut c = Client::new();
    c.script(
        "C: RCPT TO:<alice@example.org>\nS: 503 5.5.1 Error: need MAIL command
         C: EHLO client.test",
    );
    c.script(
        "C: RCPT TO:<alice@example.org>\nS: 503 5.5.1 Error: need MAIL command
         C: MAIL FROM:<s@remote.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<a b@example.org>\nS: 501 5.1.3 Bad recipient address syntax
         C: RCPT TO:<>\nS: 501 5.1.3 Bad recipient address syntax
         C: RCPT TO:alice@example.org\nS: 501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]
         C: RCPT TO:<alice@example.org> XYZ\nS: 555 5.5.4 Unsupported parameter
         C: RCPT TO:<carol@example.org>\nS: 550 5.1.1 <carol@example.org>: Recipient address rejected: User unknown
         C: RCPT TO:<x@elsewhere.test>\nS: 554 5.7.1 <x@elsewhere.test>: Relay access denied
         C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok
         C: RCPT TO:<Postmaster>\nS: 250 2.1.5 Ok",
    );
}

#[test]
fn duplicate_mailboxes_are_delivered_once() {
    let mut c = Client::new();
    c.ready();
    c.script(
        "C: RCPT TO:<team@example.org>
         C: RCPT TO:<ALICE@example.org>
         C: RCPT TO:<bob+x@example.org>
         C: RCPT TO:<postmaster@example.org>
         C: DATA
         S: 250 2.1.5 Ok
         S: 250 2.1.5 Ok
         S: 250 2.1.5 Ok
         S: 250 2.1.5 Ok
         S: 354 End data with <CR><LF>.<CR><LF>
         C: .
         S: 250 2.0.0 Ok: queued as Q1",
    );
    let tx = &c.delivered[0];
    let got: Vec<(String, Vec<String>)> = tx
        .envelope
        .recipients
        .iter()
        .map(|r| (r.address.to_string(), r.mailboxes.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "alice@example.org".to_string(),
                vec!["alice@example.org".to_string()]
            ),
            ("team@example.org".into(), vec!["bob@example.org".into()]),
            ("bob+x@example.org".into(), vec![]),
            (
                "postmaster@example.org".into(),
                vec!["pm@example.org".into()]
            ),
        ]
    );
    assert_eq!(
        tx.envelope.mailboxes(),
        ["alice@example.org", "bob@example.org", "pm@example.org"]
    );
}

#[test]
fn too_many_recipients() {
    let mut c = Client::with(|l| {
        l.recipients = 2;
        l.errors = 3;
    });
    c.ready();
    c.script(
        "C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok
         C: RCPT TO:<pm@example.org>\nS: 452 4.5.3 Too many recipients
         C: RCPT TO:<pm@example.org>\nS: 452 4.5.3 Too many recipients
         C: RCPT TO:<pm@example.org>\nS: 452 4.5.3 Too many recipients
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    assert_eq!(c.delivered[0].envelope.recipients.len(), 2);
}

#[test]
fn data_sequence_errors() {
    let mut c = Client::new();
    c.script(
        "C: DATA\nS: 503 5.5.1 Error: need MAIL command
         C: EHLO client.test",
    );
    c.script(
        "C: DATA\nS: 503 5.5.1 Error: need MAIL command
         C: MAIL FROM:<s@remote.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<nobody@example.org>\nS: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown
         C: DATA\nS: 554 5.5.1 No valid recipients
         C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>",
    );
}

#[test]
fn full_transaction_with_received_header() {
    let mut c = Client::new();
    c.ready();
    c.now = Timestamp::from_secs(T0 + 5);
    c.script(
        "C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: Subject: hello
         C:
         C: body
         C: .\nS: 250 2.0.0 Ok: queued as Q1
         C: QUIT\nS: 221 2.0.0 Bye\nS: [close]",
    );
    let tx = &c.delivered[0];
    assert_eq!(tx.envelope.helo, "client.test");
    assert_eq!(
        tx.envelope.mail_from.as_ref().unwrap().to_string(),
        "sender@remote.test"
    );
    assert_eq!(tx.envelope.received_at, Timestamp::from_secs(T0 + 5));
    let text = String::from_utf8(tx.message.as_bytes().unwrap().to_vec()).unwrap();
    assert_eq!(
        text,
        "Received: from client.test ([192.0.2.1]) by mx.example.org with ESMTP;\r\n\
         \tTue, 14 Nov 2023 22:13:25 +0000\r\n\
         Subject: hello\r\n\r\nbody\r\n"
    );
    for line in text.split("\r\n") {
        assert!(line.len() <= 78, "{line:?}");
    }
    assert_eq!(
        c.s.take_log(),
        [
            "EHLO client.test",
            "MAIL FROM:<sender@remote.test>",
            "RCPT TO:<alice@example.org>",
            "DATA",
            "[message 24 octets, 3 lines]",
            "QUIT"
        ]
    );
    assert!(c.s.take_log().is_empty());
}

#[test]
fn received_header_for_helo_ipv6_and_hostile_names() {
    let mut c = Client::on(config_from(server_config(), |_| {}));
    c.s.peer.remote = "[2001:db8::1]:1234".parse().unwrap();
    c.script(
        "C: HELO evil;(x)
         S: 250 mx.example.org
         C: MAIL FROM:<a@b.test>
         C: RCPT TO:<bob@example.org>
         C: DATA
         S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 250 2.0.0 Ok: queued as Q1",
    );
    let text = String::from_utf8(c.delivered[0].message.as_bytes().unwrap().to_vec()).unwrap();
    assert!(
        text.starts_with(
            "Received: from evil__x_ ([IPv6:2001:db8::1]) by mx.example.org with SMTP;\r\n\
             \tTue, 14 Nov 2023 22:13:20 +0000\r\n"
        ),
        "{text:?}"
    );
    assert_eq!(c.delivered[0].envelope.helo, "evil;(x)");
}

#[test]
fn delivery_results() {
    let mut c = Client::new();
    c.store.extend([
        Err(DeliveryError::Temporary("disk".into())),
        Err(DeliveryError::Full),
    ]);
    c.ready();
    c.script(
        "C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 451 4.3.0 Requested action aborted: local error in processing
         C: RCPT TO:<bob@example.org>\nS: 503 5.5.1 Error: need MAIL command
         C: MAIL FROM:<s@remote.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: .\nS: 452 4.3.1 Insufficient system storage",
    );
    // Store failures are not the client's errors.
    assert_eq!(c.s.errors, 1);
}

#[test]
fn no_input_consumed_until_delivered() {
    let mut c = Client::new();
    c.ready();
    c.s.push_input(b"DATA\r\nx\r\n.\r\nNOOP\r\n");
    assert!(matches!(c.s.poll(c.now), Output::Reply(r) if r.code == 354));
    let Output::Check(check) = c.s.poll(c.now) else {
        panic!("no end-of-data check")
    };
    c.s.answer(Answer::Checked(check, Verdict::Accept));
    let Output::Deliver(tx) = c.s.poll(c.now) else {
        panic!("no delivery")
    };
    assert_eq!(content_of(&tx), "x\r\n");
    for _ in 0..3 {
        assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    }
    c.s.push_input(b"RSET\r\n");
    assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    c.s.answer(Answer::Delivered(Ok("ID".into())));
    assert_eq!(
        c.drain(),
        ["250 2.0.0 Ok: queued as ID", "250 2.0.0 Ok", "250 2.0.0 Ok"]
    );
    // A stray second result changes nothing.
    c.s.answer(Answer::Delivered(Ok("again".into())));
    assert!(c.drain().is_empty());
}

#[test]
fn simple_commands() {
    let mut c = Client::new();
    c.script(
        "C: NOOP\nS: 250 2.0.0 Ok
         C: noop whatever\nS: 250 2.0.0 Ok
         C: RSET\nS: 250 2.0.0 Ok
         C: VRFY alice\nS: 252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery
         C: EXPN team\nS: 502 5.5.1 Command not implemented
         C: HELP\nS: 214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP
         C: STARTTLS\nS: 502 5.5.1 Command not implemented
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\nS: 502 5.5.1 Command not implemented
         C: AUTH\nS: 502 5.5.1 Command not implemented
         C: BDAT 10 LAST\nS: 502 5.5.1 Command not implemented
         C: LHLO x\nS: 500 5.5.2 Error: command not recognized
         C: FOO bar\nS: 500 5.5.2 Error: command not recognized
         C:\nS: 500 5.5.2 Error: command not recognized
         C: QUIT\nS: 221 2.0.0 Bye\nS: [close]",
    );
    // Nothing more after QUIT.
    c.s.push_input(b"NOOP\r\n");
    assert!(matches!(c.s.poll(c.now), Output::Close));
    assert!(c.s.is_closed());
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut c = Client::new();
    let replies = c.send(
        "EHLO client.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.org>\r\n\
         RCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nline\r\n.\r\n\
         NOOP\r\nQUIT\r\nNOOP\r\n",
    );
    let mut want: Vec<String> = EHLO_REPLY.lines().map(|l| l[3..].to_string()).collect();
    want.extend(
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as Q1",
            "250 2.0.0 Ok",
            "221 2.0.0 Bye",
            "[close]",
        ]
        .map(String::from),
    );
    assert_eq!(replies, want);
    assert_eq!(c.body(), "line\r\n");
}

#[test]
fn one_output_per_poll_and_need_input_on_partial_line() {
    let mut c = Client::new();
    c.s.push_input(b"NOOP\r\nNOOP\r\nNO");
    assert!(matches!(c.s.poll(c.now), Output::Reply(_)));
    assert!(matches!(c.s.poll(c.now), Output::Reply(_)));
    assert!(matches!(c.s.poll(c.now), Output::NeedInput));
    assert_eq!(c.send("OP\n"), ["250 2.0.0 Ok"]);
}

#[test]
fn bare_lf_commands() {
    let mut c = Client::new();
    let r = c.send("EHLO client.test\nMAIL FROM:<a@b.test>\nRCPT TO:<bob@example.org>\nDATA\n");
    assert_eq!(r.last().unwrap(), "354 End data with <CR><LF>.<CR><LF>");
    assert_eq!(c.send("x\r\n.\r\n"), ["250 2.0.0 Ok: queued as Q1"]);
}

#[test]
fn command_line_length_limit() {
    let mut c = Client::new();
    // 512 octets with the CRLF is fine, 513 is not.
    let ok = format!("NOOP {}\r\n", "x".repeat(512 - 7));
    assert_eq!(ok.len(), 512);
    assert_eq!(c.send(&ok), ["250 2.0.0 Ok"]);
    let ok_lf = format!("NOOP {}\n", "x".repeat(512 - 6));
    assert_eq!(c.send(&ok_lf), ["250 2.0.0 Ok"]);
    let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(512 - 6));
    assert_eq!(c.send(&long), ["500 5.5.6 Line too long", "250 2.0.0 Ok"]);
    // A huge line in small pieces: one reply, nothing buffered beyond the limit, and the
    // next command works.
    let mut replies = Vec::new();
    for _ in 0..1000 {
        replies.extend(c.send("MAIL FROM:<aaaaaaaaaaaaaaaa"));
        assert!(c.s.input.len() - c.s.input_pos <= 512);
    }
    replies.extend(c.send(">\r\nNOOP\r\n"));
    assert_eq!(replies, ["500 5.5.6 Line too long", "250 2.0.0 Ok"]);
    let log = c.s.take_log();
    assert!(
        log[log.len() - 2].ends_with("... [line too long]"),
        "{log:?}"
    );
}

#[test]
fn control_bytes_and_non_utf8() {
    let mut c = Client::new();
    c.script("C: EHLO client.test");
    assert_eq!(
        c.send("NO\0OP\r\n"),
        ["500 5.5.2 Error: command not recognized"]
    );
    assert_eq!(
        c.send("NOOP\rRSET\r\n"),
        ["500 5.5.2 Error: command not recognized"]
    );
    assert_eq!(
        c.send("MAIL FROM:<a\x1b@b.test>\r\n"),
        ["500 5.5.2 Error: command not recognized"]
    );
    assert_eq!(
        c.send(b"\xff\xfe\r\n"),
        ["500 5.5.2 Error: command not recognized"]
    );
    assert_eq!(
        c.send(b"MAIL FROM:<\xff@b.test>\r\n"),
        ["501 5.5.4 Error: invalid UTF-8"]
    );
    assert_eq!(
        c.send("MAIL FROM:<j\u{f6}rg@b.test> SMTPUTF8\r\n"),
        ["250 2.1.0 Ok"]
    );
    let log = c.s.take_log();
    assert_eq!(log[1], "NO\\x00OP");
    assert_eq!(log[2], "NOOP\\x0dRSET");
    assert_eq!(log[4], "\u{fffd}\u{fffd}");
}

#[test]
fn dot_unstuffing() {
    let mut c = Client::new();
    c.ready();
    c.send("DATA\r\n..leading\r\n..\r\n...\r\nmid.dle\r\n.x\r\n.\r\n");
    assert_eq!(c.body(), ".leading\r\n.\r\n..\r\nmid.dle\r\nx\r\n");
}

#[test]
fn empty_message() {
    let mut c = Client::new();
    c.ready();
    assert_eq!(
        c.send("DATA\r\n.\r\n"),
        [
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as Q1"
        ]
    );
    assert_eq!(c.body(), "");
}

#[test]
fn smuggling_attempts_do_not_end_data() {
    for fake in [
        "\n.\n",
        "\r.\r",
        "\n.\r\n",
        "\r\n.\n",
        "\r\n.\r",
        "\r\n.\r\r\n",
    ] {
        let mut c = Client::new();
        c.ready();
        let replies = c.send(format!(
            "DATA\r\nSubject: x{fake}MAIL FROM:<evil@remote.test>\r\n\
             RCPT TO:<bob@example.org>\r\nDATA\r\nsmuggled\r\n.\r\nNOOP\r\n"
        ));
        assert_eq!(
            replies,
            [
                "354 End data with <CR><LF>.<CR><LF>",
                "250 2.0.0 Ok: queued as Q1",
                "250 2.0.0 Ok"
            ],
            "{fake:?}"
        );
        assert_eq!(c.delivered.len(), 1, "{fake:?}");
        let body = c.body();
        assert!(
            body.contains(
                "MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nsmuggled\r\n"
            ),
            "{fake:?}: {body:?}"
        );
        // Stored with CRLF only.
        assert!(
            !body.replace("\r\n", "").contains(['\r', '\n']),
            "{fake:?}: {body:?}"
        );
        assert_eq!(c.delivered[0].envelope.recipients.len(), 1);
    }
}

#[test]
fn bare_line_endings_are_normalised() {
    let mut c = Client::new();
    c.ready();
    c.send("DATA\r\na\nb\rc\r\r\nd\n\ne\r\n.\r\n");
    assert_eq!(c.body(), "a\r\nb\r\nc\r\n\r\nd\r\n\r\ne\r\n");
    assert_eq!(
        c.s.take_log().last().unwrap(),
        "[message 19 octets, 7 lines]"
    );
}

#[test]
fn oversized_message_is_read_to_the_end_and_discarded() {
    let mut c = Client::with(|l| l.message_size = 1000);
    c.ready();
    let mut replies = c.send("DATA\r\n");
    for _ in 0..100 {
        replies.extend(c.send(format!("{}\r\n", "z".repeat(98))));
    }
    replies.extend(c.send(".\r\nNOOP\r\n"));
    assert_eq!(
        replies,
        [
            "354 End data with <CR><LF>.<CR><LF>",
            "552 5.3.4 Message size exceeds fixed limit",
            "250 2.0.0 Ok"
        ]
    );
    assert!(c.delivered.is_empty());
    let log = c.s.take_log();
    assert_eq!(
        log[log.len() - 3..],
        [
            "[message 10000 octets, 100 lines]",
            "[message discarded: message size exceeds fixed limit]",
            "NOOP"
        ]
    );
    // The transaction is over.
    assert_eq!(c.send("DATA\r\n"), ["503 5.5.1 Error: need MAIL command"]);
    // Exactly at the limit is fine.
    let mut c = Client::with(|l| l.message_size = 1000);
    c.ready();
    c.send(format!("DATA\r\n{}\r\n.\r\n", "z".repeat(998)));
    assert_eq!(c.delivered.len(), 1);
}

/// By default a long content line is stored intact, as Postfix does (real mail has them:
/// HTML newsletters, unbroken base64); the relay side wraps them (`queue/client`).
#[test]
fn long_lines_are_kept_by_default() {
    let mut c = Client::new();
    c.ready();
    let long = "y".repeat(5000);
    let replies = c.send(format!("DATA\r\nok\r\n{long}\r\nmore\r\n.\r\n"));
    assert_eq!(replies[1], "250 2.0.0 Ok: queued as Q1");
    assert_eq!(
        content_of(&c.delivered[0]),
        format!("ok\r\n{long}\r\nmore\r\n")
    );
}

/// `long_lines = "reject"`: the strict RFC 5321 §4.5.3.1.6 limit.
#[test]
fn long_line_in_data() {
    let mut c = Client::with(|l| l.long_lines = LongLines::Reject);
    c.ready();
    let replies = c.send(format!(
        "DATA\r\nok\r\n{}\r\nmore\r\n.\r\n",
        "y".repeat(999)
    ));
    assert_eq!(
        replies,
        [
            "354 End data with <CR><LF>.<CR><LF>",
            "500 5.5.6 Line too long"
        ]
    );
    assert!(c.delivered.is_empty());
    assert_eq!(
        c.s.take_log().last().unwrap(),
        "[message discarded: line too long]"
    );
    // 998 + CRLF = 1000 is the limit.
    let mut c = Client::with(|l| l.long_lines = LongLines::Reject);
    c.ready();
    c.send(format!("DATA\r\n{}\r\n.\r\n", "y".repeat(998)));
    assert_eq!(c.delivered.len(), 1);
}

#[test]
fn error_limit() {
    let mut c = Client::with(|l| l.errors = 3);
    c.script(
        "C: FOO\nS: 500 5.5.2 Error: command not recognized
         C: NOOP\nS: 250 2.0.0 Ok
         C: MAIL FROM:<a@b.test>\nS: 503 5.5.1 Error: send HELO/EHLO first
         C: BAR
         C: NOOP
         S: 500 5.5.2 Error: command not recognized
         S: 421 4.7.0 mx.example.org Error: too many errors
         S: [close]",
    );
    c.s.push_input(b"NOOP\r\n");
    assert!(matches!(c.s.poll(c.now), Output::Close));
}

#[test]
fn timeouts() {
    let mut c = Client::new();
    assert_eq!(c.s.poll_timeout(), Some(Timestamp::from_secs(T0 + 300)));
    c.now = Timestamp::from_secs(T0 + 10);
    c.ready();
    assert_eq!(c.s.poll_timeout(), Some(Timestamp::from_secs(T0 + 310)));
    // Polling without new input is no activity.
    c.now = Timestamp::from_secs(T0 + 20);
    c.drain();
    assert_eq!(c.s.poll_timeout(), Some(Timestamp::from_secs(T0 + 310)));
    c.send("DATA\r\npartial");
    assert_eq!(c.s.poll_timeout(), Some(Timestamp::from_secs(T0 + 620)));
    // Too early: nothing fires.
    c.s.handle_timeout(Timestamp::from_secs(T0 + 619));
    assert!(c.drain().is_empty());
    c.s.handle_timeout(Timestamp::from_secs(T0 + 620));
    assert_eq!(
        c.drain(),
        [
            "421 4.4.2 mx.example.org Error: timeout exceeded",
            "[close]"
        ]
    );
    assert_eq!(c.s.poll_timeout(), None);
    assert!(c.delivered.is_empty());
    assert_eq!(
        c.s.take_log().last().unwrap(),
        "[message discarded: timeout]"
    );
    // After the body, back to the command timeout.
    let mut c = Client::new();
    c.ready();
    c.now = Timestamp::from_secs(T0 + 100);
    c.send("DATA\r\n.\r\n");
    assert_eq!(c.s.poll_timeout(), Some(Timestamp::from_secs(T0 + 400)));
}

#[test]
fn peer_closing_discards_the_transaction() {
    let mut c = Client::new();
    c.ready();
    c.send("DATA\r\nhalf a mess");
    c.s.closed_by_peer();
    c.s.push_input(b"age\r\n.\r\n");
    assert!(matches!(c.s.poll(c.now), Output::Close));
    assert!(c.delivered.is_empty());
    assert_eq!(
        c.s.take_log().last().unwrap(),
        "[message discarded: connection closed]"
    );
}

#[test]
fn rset_and_ehlo_end_a_transaction() {
    let mut c = Client::new();
    c.ready();
    c.script(
        "C: RSET\nS: 250 2.0.0 Ok
         C: DATA\nS: 503 5.5.1 Error: need MAIL command
         C: MAIL FROM:<a@b.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<bob@example.org>\nS: 250 2.1.5 Ok",
    );
    c.script(&format!(
        "C: EHLO again.test\n{EHLO_REPLY}\nC: DATA\nS: 503 5.5.1 Error: need MAIL command"
    ));
}

/// The full dialogue used by the split tests.
const DIALOGUE: &[u8] = b"EHLO client.test\r\nMAIL FROM:<s@remote.test> BODY=8BITMIME\r\n\
    RCPT TO:<alice@example.org>\r\nRCPT TO:<team@example.org>\r\nDATA\r\n\
    Subject: split\r\n\r\n..dots\r\nbare\nlf\r\n.\r\n\
    MAIL FROM:<>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n";

fn run_in_pieces(pieces: &[&[u8]]) -> (Vec<String>, Vec<Vec<u8>>, Vec<String>) {
    let mut c = Client::new();
    let mut replies = Vec::new();
    for p in pieces {
        replies.extend(c.send(p));
    }
    let messages = c
        .delivered
        .iter()
        .map(|t| t.message.as_bytes().unwrap().to_vec())
        .collect();
    (replies, messages, c.s.take_log())
}

#[test]
fn every_split_point_gives_the_same_result() {
    let whole = run_in_pieces(&[DIALOGUE]);
    assert_eq!(whole.1.len(), 2);
    assert_eq!(whole.0.last().unwrap(), "[close]");
    for i in 0..=DIALOGUE.len() {
        let (a, b) = DIALOGUE.split_at(i);
        assert_eq!(run_in_pieces(&[a, b]), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = DIALOGUE.chunks(1).collect();
    assert_eq!(run_in_pieces(&bytes), whole, "byte by byte");
}

#[test]
fn timestamps_and_durations() {
    // The idle deadline saturates rather than overflowing.
    let mut c = Client::with(|l| l.command_timeout_secs = u64::MAX);
    c.now = Timestamp(Duration::MAX);
    c.send("NOOP\r\n");
    assert_eq!(c.s.poll_timeout(), Some(Timestamp(Duration::MAX)));
}

#[test]
fn error_tarpit_delays_growing_then_hard_limit() {
    let mut c = Client::with(|l| {
        l.errors = 5;
        l.soft_errors = 2;
        l.error_sleep_ms = 1000;
    });
    let t0 = c.now;
    c.script(
        "C: FOO\nS: 500 5.5.2 Error: command not recognized
         C: FOO\nS: 500 5.5.2 Error: command not recognized",
    );
    assert_eq!(c.s.poll_timeout(), Some(t0.plus(Duration::from_secs(300))));
    // The third error is held back one step, and what was pipelined after it waits too.
    assert_eq!(c.send("FOO\r\nNOOP\r\n"), Vec::<String>::new());
    assert!(!c.s.reading());
    let due = t0.plus(Duration::from_secs(1));
    assert_eq!(c.s.poll_timeout(), Some(due));
    // Early: nothing.
    c.s.handle_timeout(t0.plus(Duration::from_millis(999)));
    assert_eq!(c.drain(), Vec::<String>::new());
    c.now = due;
    c.s.handle_timeout(due);
    assert!(c.s.reading());
    assert_eq!(
        c.drain(),
        ["500 5.5.2 Error: command not recognized", "250 2.0.0 Ok"]
    );
    // The idle timeout counts from the reply, not from the command.
    assert_eq!(c.s.poll_timeout(), Some(due.plus(Duration::from_secs(300))));
    // The fourth: two steps.
    assert_eq!(c.send("BAR\r\n"), Vec::<String>::new());
    assert_eq!(c.s.poll_timeout(), Some(due.plus(Duration::from_secs(2))));
    c.now = due.plus(Duration::from_secs(2));
    c.s.handle_timeout(c.now);
    assert_eq!(c.drain(), ["500 5.5.2 Error: command not recognized"]);
    // The fifth reaches the hard limit: answered at once, with the 421.
    assert_eq!(
        c.send("BAZ\r\n"),
        [
            "500 5.5.2 Error: command not recognized",
            "421 4.7.0 mx.example.org Error: too many errors",
            "[close]"
        ]
    );
}

/// `limits.greet_pause_ms`: the 220 waits for the pause; a client that talks meanwhile is
/// refused and its commands are never executed.
mod greet_pause {
    use super::*;
    use crate::policy::Refusal;

    fn paused() -> Client {
        let mut c = Client::unconnected(config_from(server_config(), |l| l.greet_pause_ms = 6000));
        assert_eq!(
            c.drain(),
            Vec::<String>::new(),
            "no greeting during the pause"
        );
        c
    }

    #[test]
    fn greeting_after_the_pause_then_smtp_as_usual() {
        let mut c = paused();
        let t0 = c.now;
        let due = t0.plus(Duration::from_secs(6));
        assert_eq!(c.s.poll_timeout(), Some(due));
        assert!(c.s.reading(), "the pause reads, to catch an early talker");
        c.s.handle_timeout(t0.plus(Duration::from_millis(5999)));
        assert_eq!(c.drain(), Vec::<String>::new());
        c.now = due;
        c.s.handle_timeout(due);
        assert_eq!(c.drain(), ["220 mx.example.org ESMTP mailsim"]);
        // The command timeout counts from the greeting.
        assert_eq!(c.s.poll_timeout(), Some(due.plus(Duration::from_secs(300))));
        c.script("C: HELO client.example\nS: 250 mx.example.org");
        assert_eq!(c.requests, ["check:connect"]);
    }

    #[test]
    fn early_talker_is_refused_and_nothing_runs() {
        let mut c = paused();
        c.now = c.now.plus(Duration::from_secs(1));
        assert_eq!(
            c.send("EHLO spam.example\r\nMAIL FROM:<a@spam.example>\r\n"),
            [
                "554 5.5.1 mx.example.org Error: protocol error: talked before the greeting",
                "[close]"
            ]
        );
        assert_eq!(
            c.requests,
            ["check:connect"],
            "no MAIL check: nothing executed"
        );
        assert_eq!(
            c.s.take_log(),
            ["EHLO spam.example [47 octets before the greeting]"]
        );
        assert_eq!(c.s.poll_timeout(), None);
    }

    #[test]
    fn an_early_auth_line_is_redacted_in_the_trace() {
        let mut c = paused();
        c.send("AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n");
        let log = c.s.take_log();
        assert_eq!(log.len(), 1);
        assert!(!log[0].contains("AGJvYgBzZWNyZXQ"), "{log:?}");
    }

    #[test]
    fn a_refused_client_gets_its_554_at_once() {
        let config = config_from(server_config(), |l| l.greet_pause_ms = 6000);
        let mut c = Client::unconnected(config);
        c.policy = Box::new(|_| Verdict::Reject(Refusal::new(554, (5, 7, 1), "listed")));
        assert_eq!(c.drain(), ["554 5.7.1 listed"]);
    }

    #[test]
    fn shutdown_during_the_pause_says_421() {
        let mut c = paused();
        c.s.shut_down();
        assert_eq!(
            c.drain(),
            [
                "421 4.3.2 mx.example.org Service shutting down, closing transmission channel",
                "[close]"
            ]
        );
    }
}
