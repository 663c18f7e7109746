//! Sessions against a scripted fake server over `tokio::io::duplex`, driven with `join!`
//! (no spawn: clippy forbids it in this crate, tests included).
//!
//! Time is the test's own ([`clock::ClockEnv`]): the fake server lets the clock move on
//! (1 ms at a time) only while the client is stuck waiting for it — `join!` is biased, so the
//! client always runs first and a pending read on the fake's side after that means the
//! client has nothing left to do but wait for a reply or a deadline. Timeouts therefore fire
//! on their exact deadline and no test sleeps or reads the real clock.

mod clock;

use std::io;
use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use self::clock::ClockEnv;
use super::*;

fn env() -> ClockEnv {
    ClockEnv::new()
}

/// Clock time the fake lets pass per step while the client waits.
const STEP: Duration = Duration::from_millis(1);
/// A client still waiting after this much clock time is stuck: the test fails instead of
/// hanging.
const STUCK: Duration = Duration::from_secs(15 * 60);

fn cfg() -> ClientConfig {
    ClientConfig {
        helo_name: "out.example".into(),
        command_timeout: Duration::from_secs(5),
        data_timeout: Duration::from_secs(5),
    }
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

/// What the fake server is told about.
#[derive(Debug)]
enum Event<'a> {
    /// A command line, without its CRLF.
    Line(&'a str),
    /// A DATA body as received (still dot-stuffed), without the final `.` CRLF.
    Body(&'a [u8]),
}

/// What the fake server does about it.
enum Act {
    Reply(String),
    /// Reply, then drop the connection.
    ReplyClose(String),
    /// Drop the connection without a word.
    Close,
    /// Say nothing, keep reading.
    Silent,
}

fn reply(s: &str) -> Act {
    Act::Reply(s.to_string())
}

#[derive(Debug, Default)]
struct Seen {
    /// Every octet the client sent.
    bytes: Vec<u8>,
    lines: Vec<String>,
    bodies: Vec<Vec<u8>>,
    /// A command arrived before the reply to the previous one without PIPELINING.
    violations: Vec<String>,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

struct Fake {
    greeting: &'static str,
    /// PIPELINING offered: commands may arrive before replies.
    pipelining: bool,
    /// Hold the replies to MAIL and RCPT until another command (DATA) arrives: a client that
    /// waits for the MAIL reply before sending its RCPTs deadlocks against it.
    hold_until_data: bool,
}

impl Fake {
    async fn run<F: FnMut(Event<'_>) -> Act>(
        self,
        mut io: DuplexStream,
        clock: &ClockEnv,
        mut on: F,
    ) -> Seen {
        let mut seen = Seen::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut out: Vec<u8> = Vec::new();
        let mut in_data = false;
        let mut holding = false;
        if !self.greeting.is_empty() && io.write_all(self.greeting.as_bytes()).await.is_err() {
            return seen;
        }
        let mut chunk = [0u8; 8192];
        loop {
            loop {
                let act = if in_data {
                    let end = if buf.starts_with(b".\r\n") {
                        Some((0, 3))
                    } else {
                        find(&buf, b"\r\n.\r\n").map(|p| (p + 2, p + 5))
                    };
                    let Some((body_end, consumed)) = end else {
                        break;
                    };
                    let body: Vec<u8> = buf.drain(..consumed).take(body_end).collect();
                    in_data = false;
                    let act = on(Event::Body(&body));
                    seen.bodies.push(body);
                    holding = false;
                    act
                } else {
                    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
                        break;
                    };
                    let raw: Vec<u8> = buf.drain(..=lf).collect();
                    let line = String::from_utf8_lossy(&raw)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    if !self.pipelining && buf.contains(&b'\n') {
                        seen.violations
                            .push(format!("{line:?} followed before its reply"));
                    }
                    seen.lines.push(line.clone());
                    let act = on(Event::Line(&line));
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    holding = self.hold_until_data && (verb == "MAIL" || verb == "RCPT");
                    if verb == "DATA" {
                        if let Act::Reply(r) = &act {
                            in_data = r.starts_with('3');
                        }
                    }
                    act
                };
                match act {
                    Act::Reply(r) => out.extend_from_slice(r.as_bytes()),
                    Act::ReplyClose(r) => {
                        out.extend_from_slice(r.as_bytes());
                        let _ = io.write_all(&out).await;
                        return seen;
                    }
                    Act::Close => {
                        let _ = io.write_all(&out).await;
                        return seen;
                    }
                    Act::Silent => {}
                }
            }
            if !out.is_empty() && !holding {
                if io.write_all(&out).await.is_err() {
                    return seen;
                }
                out.clear();
            }
            match read_while_time_passes(&mut io, &mut chunk, clock).await {
                Ok(0) | Err(_) => return seen,
                Ok(n) => {
                    seen.bytes.extend_from_slice(&chunk[..n]);
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

/// Reads from the client; while nothing comes after the client has had its turn, the clock
/// moves on by [`STEP`] (the client is waiting for a reply or a deadline).
async fn read_while_time_passes(
    io: &mut DuplexStream,
    buf: &mut [u8],
    clock: &ClockEnv,
) -> std::io::Result<usize> {
    let mut waited = Duration::ZERO;
    loop {
        tokio::select! {
            biased;
            read = io.read(buf) => return read,
            // Pending once, then ready: the client (polled first by the biased join) runs
            // before the fake looks again.
            () = tokio::task::yield_now() => {}
        }
        assert!(
            waited < STUCK,
            "the client waited {waited:?} without a word or a timeout"
        );
        clock.advance(STEP);
        waited += STEP;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A well-behaved MX offering `caps`.
fn mx(caps: &'static [&'static str]) -> impl FnMut(Event<'_>) -> Act {
    move |ev| match ev {
        Event::Body(_) => reply("250 2.0.0 Ok: queued as 4XyZ\r\n"),
        Event::Line(l) => {
            let upper = l.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                let mut r = String::from("250-mx.test Hello\r\n");
                for (i, c) in caps.iter().enumerate() {
                    let sep = if i + 1 == caps.len() { ' ' } else { '-' };
                    r.push_str(&format!("250{sep}{c}\r\n"));
                }
                if caps.is_empty() {
                    r = "250 mx.test Hello\r\n".into();
                }
                Act::Reply(r)
            } else if upper.starts_with("HELO") {
                reply("250 mx.test\r\n")
            } else if upper.starts_with("MAIL") {
                reply("250 2.1.0 Ok\r\n")
            } else if upper.starts_with("RCPT") {
                reply("250 2.1.5 Ok\r\n")
            } else if upper == "DATA" {
                reply("354 End data with <CR><LF>.<CR><LF>\r\n")
            } else if upper == "RSET" {
                reply("250 2.0.0 Ok\r\n")
            } else if upper == "QUIT" {
                Act::ReplyClose("221 2.0.0 Bye\r\n".into())
            } else {
                reply("502 5.5.2 Error: command not recognized\r\n")
            }
        }
    }
}

const FULL: &[&str] = &[
    "PIPELINING",
    "SIZE 10240000",
    "STARTTLS",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "SMTPUTF8",
];
const PLAIN: &[&str] = &["SIZE", "ENHANCEDSTATUSCODES"];

fn fake(pipelining: bool) -> Fake {
    Fake {
        greeting: "220 mx.test ESMTP\r\n",
        pipelining,
        hold_until_data: pipelining,
    }
}

async fn session<F: FnMut(Event<'_>) -> Act>(
    fake: Fake,
    cfg: &ClientConfig,
    msg: &OutboundMessage<'_>,
    script: F,
) -> (Result<SessionReport, SessionFailure>, Seen) {
    let (r, seen, _) = timed_session(fake, cfg, msg, script).await;
    (r, seen)
}

/// [`session`], and how much clock time it took.
async fn timed_session<F: FnMut(Event<'_>) -> Act>(
    fake: Fake,
    cfg: &ClientConfig,
    msg: &OutboundMessage<'_>,
    script: F,
) -> (Result<SessionReport, SessionFailure>, Seen, Duration) {
    let env = env();
    let started = env.now();
    let (client_io, server_io) = duplex(1 << 20);
    let (r, seen) = tokio::join!(
        biased;
        deliver(&env, client_io, cfg, msg),
        fake.run(server_io, &env, script)
    );
    (r, seen, env.now().since(started))
}

fn ok(r: Result<SessionReport, SessionFailure>) -> SessionReport {
    match r {
        Ok(report) => report,
        Err(f) => panic!("session failed: {}\n{}", f.error, f.transcript.join("\n")),
    }
}

fn err(r: Result<SessionReport, SessionFailure>) -> SessionFailure {
    match r {
        Ok(report) => panic!("session succeeded: {}", report.transcript.join("\n")),
        Err(f) => f,
    }
}

fn code(o: &RcptOutcome) -> (char, u16) {
    let kind = match o {
        RcptOutcome::Delivered(_) => 'D',
        RcptOutcome::Deferred(_) => 'T',
        RcptOutcome::Failed(_) => 'F',
    };
    (kind, o.reply().code)
}

fn codes(outcomes: &[RcptOutcome]) -> Vec<(char, u16)> {
    outcomes.iter().map(code).collect()
}

const BODY: &[u8] =
    b"Subject: dots\r\n\r\n.leading dot\r\nmiddle . dot\r\n..two\r\n.\r\nno final newline";
const WIRE_BODY: &str = "Subject: dots\r\n\r\n..leading dot\r\nmiddle . dot\r\n...two\r\n..\r\nno final newline\r\n.\r\n";

#[tokio::test]
async fn pipelined_delivery_sends_one_batch_and_stuffs_dots() {
    let from = addr("alice@out.example");
    let rcpts = [addr("bob@mx.test"), addr("carol@mx.test")];
    let msg = OutboundMessage {
        mail_from: Some(&from),
        recipients: &rcpts,
        message: BODY,
        needs_smtputf8: false,
        ..Default::default()
    };
    let (r, seen) = session(fake(true), &cfg(), &msg, mx(FULL)).await;
    let report = ok(r);
    let expected = format!(
        "EHLO out.example\r\n\
         MAIL FROM:<alice@out.example> SIZE={}\r\n\
         RCPT TO:<bob@mx.test>\r\n\
         RCPT TO:<carol@mx.test>\r\n\
         DATA\r\n\
         {WIRE_BODY}\
         QUIT\r\n",
        BODY.len()
    );
    assert_eq!(seen.text(), expected);
    assert_eq!(codes(&report.per_recipient), [('D', 250), ('D', 250)]);
    assert_eq!(
        report.per_recipient[0].reply().to_string(),
        "250 2.0.0 Ok: queued as 4XyZ"
    );
    let caps = &report.peer_capabilities;
    assert!(caps.esmtp && caps.pipelining && caps.starttls && caps.smtputf8);
    assert_eq!(caps.size_limit(), Some(10_240_000));
    assert_eq!(caps.hostname, "mx.test");
    let t = &report.transcript;
    assert_eq!(t[0], "S: 220 mx.test ESMTP");
    assert_eq!(t[1], "C: EHLO out.example");
    // The batch is written before any of its replies is read.
    let batch = t.iter().position(|l| l.starts_with("C: MAIL")).unwrap();
    assert_eq!(t[batch + 1], "C: RCPT TO:<bob@mx.test>");
    assert_eq!(t[batch + 3], "C: DATA");
    assert_eq!(t[batch + 4], "S: 250 2.1.0 Ok");
    assert!(t.contains(&format!("C: [message {} octets]", BODY.len())));
    assert_eq!(
        &t[t.len() - 4..],
        [
            "C: .",
            "S: 250 2.0.0 Ok: queued as 4XyZ",
            "C: QUIT",
            "S: 221 2.0.0 Bye"
        ]
    );
}

#[tokio::test]
async fn lockstep_delivery_without_pipelining() {
    let rcpts = [addr("bob@mx.test")];
    let msg = OutboundMessage {
        mail_from: None,
        recipients: &rcpts,
        message: BODY,
        needs_smtputf8: false,
        ..Default::default()
    };
    let (r, seen) = session(fake(false), &cfg(), &msg, mx(PLAIN)).await;
    let report = ok(r);
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    // SIZE without a limit still gets SIZE=; the null sender is <>.
    let expected = format!(
        "EHLO out.example\r\nMAIL FROM:<> SIZE={}\r\nRCPT TO:<bob@mx.test>\r\nDATA\r\n{WIRE_BODY}QUIT\r\n",
        BODY.len()
    );
    assert_eq!(seen.text(), expected);
    assert_eq!(codes(&report.per_recipient), [('D', 250)]);
    assert_eq!(report.peer_capabilities.size, Some(0));
    assert!(!report.peer_capabilities.pipelining);
}

#[tokio::test]
async fn ehlo_refused_falls_back_to_helo_without_extensions() {
    let from = addr("alice@out.example");
    let rcpts = [addr("bob@mx.test")];
    let msg = OutboundMessage {
        mail_from: Some(&from),
        recipients: &rcpts,
        message: b"Subject: 8bit \xc3\xa9\r\n\r\nhi\r\n",
        needs_smtputf8: false,
        ..Default::default()
    };
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Line(l) if l.starts_with("EHLO") => {
            reply("502 5.5.2 Error: command not recognized\r\n")
        }
        ev => base(ev),
    };
    let (r, seen) = session(fake(false), &cfg(), &msg, script).await;
    let report = ok(r);
    assert!(seen.violations.is_empty());
    assert_eq!(
        seen.lines[..5],
        [
            "EHLO out.example",
            "HELO out.example",
            "MAIL FROM:<alice@out.example>",
            "RCPT TO:<bob@mx.test>",
            "DATA"
        ]
    );
    assert_eq!(codes(&report.per_recipient), [('D', 250)]);
    assert!(!report.peer_capabilities.esmtp);
    assert!(report
        .transcript
        .iter()
        .any(|l| l.starts_with("note: 8-bit message")));
}

#[tokio::test]
async fn helo_refused_too_is_a_session_error() {
    let rcpts = [addr("bob@mx.test")];
    let msg = simple(&rcpts);
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Line(l) if l.starts_with("EHLO") => reply("500 5.5.1 what\r\n"),
        Event::Line(l) if l.starts_with("HELO") => reply("550 5.7.1 go away\r\n"),
        ev => base(ev),
    };
    let (r, seen) = session(fake(false), &cfg(), &msg, script).await;
    let f = err(r);
    assert!(f.error.is_permanent());
    assert_eq!(f.error.stage(), Some(Stage::Helo));
    assert_eq!(f.per_recipient, [None]);
    assert_eq!(seen.lines.last().map(String::as_str), Some("QUIT"));
}

fn simple(rcpts: &[Address]) -> OutboundMessage<'_> {
    OutboundMessage {
        mail_from: None,
        recipients: rcpts,
        message: b"Subject: hi\r\n\r\nhello\r\n",
        needs_smtputf8: false,
        ..Default::default()
    }
}

#[tokio::test]
async fn message_over_the_size_limit_fails_without_sending() {
    let rcpts = [addr("bob@mx.test"), addr("carol@mx.test")];
    let big = vec![b'x'; 200];
    let msg = OutboundMessage {
        message: &big,
        ..simple(&rcpts)
    };
    let (r, seen) = session(fake(true), &cfg(), &msg, mx(&["PIPELINING", "SIZE 100"])).await;
    let report = ok(r);
    assert_eq!(seen.lines, ["EHLO out.example", "QUIT"]);
    assert_eq!(codes(&report.per_recipient), [('F', 552), ('F', 552)]);
    let reply = report.per_recipient[0].reply();
    assert_eq!(reply.enhanced, Some((5, 3, 4)));
    assert!(reply
        .to_string()
        .contains("exceeds the size limit 100 of mx.test"));
}

#[tokio::test]
async fn smtputf8_needed_but_not_offered_fails_with_5_6_7() {
    let rcpts = [addr("bob@mx.test")];
    let msg = OutboundMessage {
        needs_smtputf8: true,
        ..simple(&rcpts)
    };
    let (r, seen) = session(fake(true), &cfg(), &msg, mx(&["PIPELINING", "8BITMIME"])).await;
    let report = ok(r);
    assert_eq!(seen.lines, ["EHLO out.example", "QUIT"]);
    assert_eq!(codes(&report.per_recipient), [('F', 550)]);
    assert_eq!(report.per_recipient[0].reply().enhanced, Some((5, 6, 7)));

    // A non-ASCII address needs it even if the caller forgot to say so; offered → sent.
    let rcpts = [addr("jösé@mx.test")];
    let (r, seen) = session(fake(true), &cfg(), &simple(&rcpts), mx(FULL)).await;
    assert_eq!(codes(&ok(r).per_recipient), [('D', 250)]);
    assert!(seen
        .lines
        .iter()
        .any(|l| l.starts_with("MAIL FROM:<>") && l.ends_with(" SMTPUTF8")));
    assert!(seen.lines.contains(&"RCPT TO:<jösé@mx.test>".to_string()));
}

/// 250 / 550 / 451 recipients in one transaction, with and without pipelining.
#[tokio::test]
async fn mixed_recipient_replies() {
    for pipelining in [true, false] {
        let rcpts = [
            addr("ok@mx.test"),
            addr("unknown@mx.test"),
            addr("busy@mx.test"),
            addr("ok2@mx.test"),
        ];
        let mut base = mx(if pipelining { FULL } else { PLAIN });
        let script = move |ev: Event<'_>| match ev {
            Event::Line(l) if l.contains("unknown@") => {
                reply("550 5.1.1 <unknown@mx.test>: User unknown\r\n")
            }
            Event::Line(l) if l.contains("busy@") => reply("451 4.3.0 try later\r\n"),
            ev => base(ev),
        };
        let (r, seen) = session(fake(pipelining), &cfg(), &simple(&rcpts), script).await;
        let report = ok(r);
        assert!(seen.violations.is_empty());
        assert_eq!(
            codes(&report.per_recipient),
            [('D', 250), ('F', 550), ('T', 451), ('D', 250)],
            "pipelining: {pipelining}"
        );
        assert_eq!(report.per_recipient[1].reply().enhanced, Some((5, 1, 1)));
        assert_eq!(seen.bodies.len(), 1);
    }
}

#[tokio::test]
async fn mail_from_rejected_applies_to_every_recipient() {
    for (pipelining, mail_reply, kind) in [
        (true, "451 4.7.1 greylisted\r\n", 'T'),
        (true, "550 5.7.1 sender rejected\r\n", 'F'),
        (false, "451 4.7.1 greylisted\r\n", 'T'),
        (false, "553 5.7.1 sender rejected\r\n", 'F'),
    ] {
        let rcpts = [addr("bob@mx.test"), addr("carol@mx.test")];
        let mut base = mx(if pipelining { FULL } else { PLAIN });
        let script = move |ev: Event<'_>| match ev {
            Event::Line(l) if l.starts_with("MAIL") => reply(mail_reply),
            Event::Line(l) if l.starts_with("RCPT") || l == "DATA" => {
                reply("503 5.5.1 Error: need MAIL command\r\n")
            }
            ev => base(ev),
        };
        let (r, seen) = session(fake(pipelining), &cfg(), &simple(&rcpts), script).await;
        let report = ok(r);
        let c: u16 = mail_reply[..3].parse().unwrap();
        assert_eq!(codes(&report.per_recipient), [(kind, c), (kind, c)]);
        assert!(seen.bodies.is_empty());
        if pipelining {
            assert_eq!(seen.lines.len(), 6, "{:?}", seen.lines); // EHLO MAIL RCPT RCPT DATA QUIT
        } else {
            assert_eq!(
                seen.lines,
                ["EHLO out.example", "MAIL FROM:<> SIZE=22", "QUIT"]
            );
        }
    }
}

#[tokio::test]
async fn no_recipient_accepted_sends_no_data() {
    let rcpts = [addr("x@mx.test"), addr("y@mx.test")];
    // Lockstep: DATA is never sent.
    let mut base = mx(PLAIN);
    let script = move |ev: Event<'_>| match ev {
        Event::Line(l) if l.starts_with("RCPT") => reply("550 5.1.1 no such user\r\n"),
        ev => base(ev),
    };
    let (r, seen) = session(fake(false), &cfg(), &simple(&rcpts), script).await;
    assert_eq!(codes(&ok(r).per_recipient), [('F', 550), ('F', 550)]);
    assert!(!seen.lines.iter().any(|l| l == "DATA"));

    // Pipelined: the server answers DATA with 554 — fine; or, broken, with 354: a lone dot.
    for data_reply in ["554 5.5.1 Error: no valid recipients\r\n", "354 go on\r\n"] {
        let mut base = mx(FULL);
        let script = move |ev: Event<'_>| match ev {
            Event::Line(l) if l.starts_with("RCPT") => reply("550 5.1.1 no such user\r\n"),
            Event::Line("DATA") => reply(data_reply),
            Event::Body(body) => {
                assert!(body.is_empty(), "only the lone dot after a needless 354");
                reply("554 5.5.1 no recipients\r\n")
            }
            ev => base(ev),
        };
        let (r, seen) = session(fake(true), &cfg(), &simple(&rcpts), script).await;
        assert_eq!(codes(&ok(r).per_recipient), [('F', 550), ('F', 550)]);
        if data_reply.starts_with('3') {
            assert_eq!(seen.bodies, [Vec::<u8>::new()]);
            assert!(seen.text().ends_with("DATA\r\n.\r\nQUIT\r\n"));
        } else {
            assert!(seen.text().ends_with("DATA\r\nQUIT\r\n"));
        }
    }
}

#[tokio::test]
async fn final_reply_4xx_and_5xx_apply_to_accepted_recipients() {
    for (final_reply, kind) in [
        ("451 4.3.0 Error: queue file write error\r\n", 'T'),
        ("554 5.7.1 spam\r\n", 'F'),
    ] {
        let rcpts = [addr("ok@mx.test"), addr("gone@mx.test")];
        let mut base = mx(FULL);
        let script = move |ev: Event<'_>| match ev {
            Event::Line(l) if l.contains("gone@") => reply("550 5.1.1 gone\r\n"),
            Event::Body(_) => reply(final_reply),
            ev => base(ev),
        };
        let (r, _) = session(fake(true), &cfg(), &simple(&rcpts), script).await;
        let c: u16 = final_reply[..3].parse().unwrap();
        assert_eq!(codes(&ok(r).per_recipient), [(kind, c), ('F', 550)]);
    }
}

#[tokio::test]
async fn data_command_rejected_applies_to_accepted_recipients() {
    let rcpts = [addr("ok@mx.test")];
    let mut base = mx(PLAIN);
    let script = move |ev: Event<'_>| match ev {
        Event::Line("DATA") => reply("451 4.3.0 not now\r\n"),
        ev => base(ev),
    };
    let (r, seen) = session(fake(false), &cfg(), &simple(&rcpts), script).await;
    assert_eq!(codes(&ok(r).per_recipient), [('T', 451)]);
    assert!(seen.bodies.is_empty());
}

#[tokio::test]
async fn connection_dropped_mid_data_is_a_session_error() {
    // Dropped right after 354, while the body is being sent or just after.
    let big = vec![b'y'; 3 << 20];
    let rcpts = [addr("ok@mx.test"), addr("gone@mx.test")];
    let msg = OutboundMessage {
        message: &big,
        ..simple(&rcpts)
    };
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Line(l) if l.contains("gone@") => reply("550 5.1.1 gone\r\n"),
        Event::Line("DATA") => Act::ReplyClose("354 go ahead\r\n".into()),
        ev => base(ev),
    };
    let (r, _) = session(fake(true), &cfg(), &msg, script).await;
    let f = err(r);
    assert!(
        matches!(
            f.error,
            SessionError::ConnectionLost {
                stage: Stage::Message | Stage::EndOfData,
                ..
            }
        ),
        "{:?}",
        f.error
    );
    assert!(!f.error.is_permanent());
    // The 550 is final; the accepted recipient is left to the caller.
    assert_eq!(f.per_recipient[0], None);
    assert_eq!(f.per_recipient[1].as_ref().map(code), Some(('F', 550)));
    assert!(f.peer_capabilities.is_some());

    // Dropped after the whole body, before the final reply.
    let rcpts = [addr("ok@mx.test")];
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Body(_) => Act::Close,
        ev => base(ev),
    };
    let (r, seen) = session(fake(true), &cfg(), &simple(&rcpts), script).await;
    let f = err(r);
    assert_eq!(f.error.stage(), Some(Stage::EndOfData));
    assert_eq!(f.per_recipient, [None]);
    assert_eq!(seen.bodies.len(), 1);
    assert!(!seen.lines.iter().any(|l| l == "QUIT"));
}

#[tokio::test]
async fn greeting_421_and_554() {
    let rcpts = [addr("bob@mx.test")];
    let (r, seen) = session(
        Fake {
            greeting: "421 4.3.2 mx.test Service not available, closing channel\r\n",
            ..fake(false)
        },
        &cfg(),
        &simple(&rcpts),
        mx(FULL),
    )
    .await;
    let f = err(r);
    let SessionError::Rejected { stage, reply } = &f.error else {
        panic!("{:?}", f.error)
    };
    assert_eq!(
        (*stage, reply.code, reply.enhanced),
        (Stage::Greeting, 421, Some((4, 3, 2)))
    );
    assert!(!f.error.is_permanent());
    assert_eq!(f.per_recipient, [None]);
    assert!(f.peer_capabilities.is_none());
    assert!(seen.lines.is_empty(), "no QUIT after 421: {:?}", seen.lines);

    let (r, seen) = session(
        Fake {
            greeting: "554-mx.test no SMTP service here\r\n554 5.7.1 go away\r\n",
            ..fake(false)
        },
        &cfg(),
        &simple(&rcpts),
        mx(FULL),
    )
    .await;
    let f = err(r);
    assert!(f.error.is_permanent());
    assert_eq!(f.error.reply().map(|r| r.lines.len()), Some(2));
    assert_eq!(seen.lines, ["QUIT"]);
}

#[tokio::test]
async fn garbage_replies_are_protocol_errors() {
    let rcpts = [addr("bob@mx.test")];
    for (greeting, ehlo) in [
        ("HTTP/1.1 400 Bad Request\r\n\r\n", ""),
        ("220 ok\r\n", "250-mx.test\r\n550 mismatched\r\n"),
        ("220 ok\r\n", "hello there\r\n"),
        ("220 ok\r\n", "999 what\r\n"),
        ("220 ok\r\n", "354 wrong kind of reply\r\n"),
    ] {
        let mut base = mx(FULL);
        let script = move |ev: Event<'_>| match ev {
            Event::Line(l) if l.starts_with("EHLO") => reply(ehlo),
            ev => base(ev),
        };
        let f = Fake {
            greeting,
            ..fake(false)
        };
        let (r, _) = session(f, &cfg(), &simple(&rcpts), script).await;
        let f = err(r);
        assert!(
            matches!(f.error, SessionError::Protocol { .. }),
            "{greeting:?} {ehlo:?}: {:?}",
            f.error
        );
        assert_eq!(f.per_recipient, [None]);
    }

    // Half a multi-line reply, then EOF; a line with no end and no LF, then EOF.
    for ehlo in ["250-mx.test\r\n250-PIPELI", "250-mx.test\r\n250-SIZE 1\r\n"] {
        let mut base = mx(FULL);
        let script = move |ev: Event<'_>| match ev {
            Event::Line(l) if l.starts_with("EHLO") => Act::ReplyClose(ehlo.into()),
            ev => base(ev),
        };
        let (r, _) = session(fake(false), &cfg(), &simple(&rcpts), script).await;
        let f = err(r);
        assert_eq!(f.error.stage(), Some(Stage::Ehlo));
        assert!(matches!(f.error, SessionError::ConnectionLost { .. }));
        assert!(f.transcript.iter().any(|l| l.starts_with("S: 250-mx.test")));
    }
}

#[tokio::test]
async fn hostile_but_valid_replies_do_not_break_the_session() {
    let rcpts = [addr("bob@mx.test")];
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Line(l) if l.starts_with("EHLO") => {
            let mut r = String::from("250-mx.test\r\n");
            r.push_str(&format!("250-X-{}\r\n", "A".repeat(100_000)));
            for _ in 0..500 {
                r.push_str("250-X-FILLER\r\n");
            }
            r.push_str("250 PIPELINING\r\n");
            Act::Reply(r)
        }
        Event::Line(l) if l.starts_with("RCPT") => reply("250 2.1.5 \x1b[2J\x00 ok\r\n"),
        ev => base(ev),
    };
    let (r, _) = session(fake(true), &cfg(), &simple(&rcpts), script).await;
    let report = ok(r);
    assert!(
        report.peer_capabilities.pipelining,
        "the final line is always kept"
    );
    assert!(report
        .transcript
        .iter()
        .any(|l| l.contains("\\x1b[2J\\x00")));
    assert!(report.transcript.iter().all(|l| l.len() < 3000));
}

#[tokio::test]
async fn silent_server_times_out_on_the_env_clock() {
    let rcpts = [addr("bob@mx.test")];
    let cfg = ClientConfig {
        command_timeout: Duration::from_millis(200),
        ..cfg()
    };
    // Greets, then never answers EHLO.
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Line(l) if l.starts_with("EHLO") => Act::Silent,
        ev => base(ev),
    };
    let (r, _, took) = timed_session(fake(false), &cfg, &simple(&rcpts), script).await;
    let f = err(r);
    assert_eq!(f.error, SessionError::Timeout { stage: Stage::Ehlo });
    assert_eq!(f.per_recipient, [None]);
    // On the deadline to the step: the clock only moved while the client waited for EHLO's
    // reply.
    assert_eq!(took, Duration::from_millis(200));

    // Never greets at all.
    let f = Fake {
        greeting: "",
        ..fake(false)
    };
    let (r, _, took) = timed_session(f, &cfg, &simple(&rcpts), mx(FULL)).await;
    assert_eq!(
        err(r).error,
        SessionError::Timeout {
            stage: Stage::Greeting
        }
    );
    assert_eq!(took, Duration::from_millis(200));

    // Takes the body, never gives the final reply: data_timeout applies.
    let cfg = ClientConfig {
        data_timeout: Duration::from_millis(200),
        ..ClientConfig::new("out.example")
    };
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Body(_) => Act::Silent,
        ev => base(ev),
    };
    let (r, _, took) = timed_session(fake(true), &cfg, &simple(&rcpts), script).await;
    let f = err(r);
    assert_eq!(
        f.error,
        SessionError::Timeout {
            stage: Stage::EndOfData
        }
    );
    assert_eq!(f.per_recipient, [None]);
    // The 200 ms data timeout, not the 5-minute command timeout.
    assert_eq!(took, Duration::from_millis(200));
}

#[tokio::test]
async fn rcpt_421_defers_the_rest_and_ends_the_session() {
    for pipelining in [true, false] {
        let rcpts = [
            addr("a@mx.test"),
            addr("gone@mx.test"),
            addr("b@mx.test"),
            addr("c@mx.test"),
        ];
        let mut base = mx(if pipelining { FULL } else { PLAIN });
        let script = move |ev: Event<'_>| match ev {
            Event::Line(l) if l.contains("gone@") => reply("550 5.1.1 gone\r\n"),
            Event::Line(l) if l.contains("b@") => {
                Act::ReplyClose("421 4.7.0 shutting down\r\n".into())
            }
            ev => base(ev),
        };
        let (r, seen) = session(fake(pipelining), &cfg(), &simple(&rcpts), script).await;
        let report = ok(r);
        assert_eq!(
            codes(&report.per_recipient),
            [('T', 421), ('F', 550), ('T', 421), ('T', 421)]
        );
        assert!(!seen.lines.iter().any(|l| l == "QUIT"));
    }
}

#[tokio::test]
async fn two_messages_on_one_connection_with_rset_in_between() {
    let env = env();
    let (client_io, server_io) = duplex(1 << 20);
    let bad = [addr("nobody@mx.test")];
    let good = [addr("bob@mx.test")];
    let mut base = mx(PLAIN);
    let script = move |ev: Event<'_>| match ev {
        Event::Line(l) if l.contains("nobody@") => reply("550 5.1.1 nobody\r\n"),
        ev => base(ev),
    };
    let client = async {
        let mut c = Client::open(&env, client_io, &cfg()).await.unwrap();
        let first = c.send(&simple(&bad)).await.unwrap();
        let second = c.send(&simple(&good)).await.unwrap();
        let _ = c.quit().await;
        (first, second)
    };
    let ((first, second), seen) =
        tokio::join!(biased; client, fake(false).run(server_io, &env, script));
    assert_eq!(codes(&first), [('F', 550)]);
    assert_eq!(codes(&second), [('D', 250)]);
    assert_eq!(
        seen.lines[..5],
        [
            "EHLO out.example",
            "MAIL FROM:<> SIZE=22",
            "RCPT TO:<nobody@mx.test>",
            "RSET",
            "MAIL FROM:<> SIZE=22"
        ]
    );
}

#[tokio::test]
async fn starttls_hook_re_ehlos_over_the_new_stream() {
    let env = env();
    let (client_io, server_io) = duplex(1 << 20);
    let mut ehlos = 0;
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Line(l) if l.starts_with("EHLO") => {
            ehlos += 1;
            if ehlos == 1 {
                reply("250-mx.test\r\n250-STARTTLS\r\n250 SIZE 100\r\n")
            } else {
                reply("250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
            }
        }
        Event::Line("STARTTLS") => reply("220 2.0.0 Ready to start TLS\r\n"),
        ev => base(ev),
    };
    let rcpts = [addr("bob@mx.test")];
    let client = async {
        let c = Client::open(&env, client_io, &cfg()).await.unwrap();
        assert!(c.capabilities().starttls);
        assert_eq!(c.capabilities().size_limit(), Some(100));
        // A stand-in for tokio-rustls: the "TLS stream" is the same duplex.
        let secured = c.starttls(|s| async move { Ok(s) }).await.unwrap();
        let StartTls::Secured(mut c) = secured else {
            panic!("refused")
        };
        assert!(c.capabilities().pipelining && !c.capabilities().starttls);
        let out = c.send(&simple(&rcpts)).await.unwrap();
        let (_, transcript) = c.quit().await;
        (out, transcript)
    };
    let ((out, transcript), seen) =
        tokio::join!(biased; client, fake(true).run(server_io, &env, script));
    assert_eq!(codes(&out), [('D', 250)]);
    assert_eq!(
        seen.lines[..4],
        [
            "EHLO out.example",
            "STARTTLS",
            "EHLO out.example",
            "MAIL FROM:<> SIZE=22"
        ]
    );
    assert!(transcript.contains(&"note: TLS handshake complete".to_string()));
}

#[tokio::test]
async fn starttls_refused_or_injected() {
    // 454: the session goes on in plaintext.
    let env = env();
    let (client_io, server_io) = duplex(1 << 20);
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Line("STARTTLS") => reply("454 4.7.0 TLS not available\r\n"),
        ev => base(ev),
    };
    let client = async {
        let c = Client::open(&env, client_io, &cfg()).await.unwrap();
        match c.starttls(|s| async move { Ok(s) }).await.unwrap() {
            StartTls::Refused { client, reply } => {
                assert_eq!(reply.code, 454);
                client.quit().await;
            }
            StartTls::Secured(_) => panic!("secured"),
        }
    };
    let ((), seen) = tokio::join!(biased; client, fake(false).run(server_io, &env, script));
    assert_eq!(seen.lines, ["EHLO out.example", "STARTTLS", "QUIT"]);

    // Plaintext after the 220 (an injection attempt): refused before any handshake.
    let (client_io, server_io) = duplex(1 << 20);
    let mut base = mx(FULL);
    let script = move |ev: Event<'_>| match ev {
        Event::Line("STARTTLS") => reply("220 go\r\n250 injected\r\n"),
        ev => base(ev),
    };
    let client = async {
        let c = Client::open(&env, client_io, &cfg()).await.unwrap();
        let r = c
            .starttls(|_s| async move { Err::<DuplexStream, _>(io::Error::other("unreachable")) })
            .await;
        match r {
            Err(f) => f.error,
            Ok(_) => panic!("accepted"),
        }
    };
    let (error, _) = tokio::join!(biased; client, fake(false).run(server_io, &env, script));
    assert!(
        matches!(
            error,
            SessionError::Protocol {
                stage: Stage::StartTls,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn addresses_with_control_characters_are_never_sent() {
    let mut evil = addr("x@mx.test");
    evil.local = "x>\r\nRCPT TO:<victim".into();
    let rcpts = [evil, addr("bob@mx.test")];
    let (r, seen) = session(fake(true), &cfg(), &simple(&rcpts), mx(FULL)).await;
    let report = ok(r);
    assert_eq!(codes(&report.per_recipient), [('F', 553), ('D', 250)]);
    assert!(!seen.text().contains("victim"));
}
