//! Fuzz body for the SMTP session (`fuzz/fuzz_targets/smtp_session.rs`, and a proptest in
//! `cargo test`): arbitrary bytes in arbitrary chunks into a session that offers STARTTLS
//! and AUTH, every request (delivery, policy check, TLS, credentials) answered — accepted or
//! refused as the second input byte says.
//!
//! The session is where untrusted bytes first meet the server, so what must hold is checked
//! here, not only "no panic": every reply is a well-formed reply (a code in 200–599, no CR or
//! LF inside a line — a reply that echoed one would let a client forge reply lines), the
//! session never spins (each poll either consumes input or makes progress), and nothing comes
//! out after `Close`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use super::session::{
    Answer, AuthAnswer, AuthMechanism, Offers, Output, PeerInfo, Session, SessionConfig,
};
use super::wire::chunks;
use super::Limits;
use crate::directory::Directory;
use crate::mail::{DeliveryError, Timestamp};
use crate::policy::{IpNet, Refusal, Stage, Verdict};

/// Arbitrary input in arbitrary chunks (the first byte seeds the cuts, the second decides
/// how deliveries are answered), fed until the session closes or the input runs out.
pub fn fuzz_smtp_session(data: &[u8]) {
    run(data);
}

/// The body; returns how many deliveries were accepted (for the tests).
fn run(data: &[u8]) -> u32 {
    let (seed, answers, input) = match data {
        [s, a, rest @ ..] => (*s, *a, rest),
        _ => return 0,
    };
    let now = Timestamp::from_secs(1_767_225_600);
    let peer = PeerInfo {
        remote: SocketAddr::from(([192, 0, 2, 7], 40000)),
        local: SocketAddr::from(([198, 51, 100, 1], 25)),
    };
    let mut s = Session::new(config().clone(), peer, now);
    // Spooling on, so big bodies take the chunked path (and its failures) too.
    s.spool_to("spool/fuzz".into());
    let mut pieces = chunks(seed, input);
    let mut deliveries = 0u32;
    let mut accepted = 0u32;
    // Requests answered so far: picks the next bit of `answers`.
    let mut asked = 0u32;
    let yes = |asked: &mut u32| {
        *asked += 1;
        answers.rotate_left(*asked % 8) & 1 == 0
    };
    // Each poll consumes input, or answers at most a bounded amount per octet received: a
    // command or a body line yields a reply or two; pipelined input is still bounded by it.
    let budget = 64 + 8 * input.len();
    let mut polls = 0usize;
    loop {
        polls += 1;
        assert!(
            polls <= budget,
            "session spins: {polls} polls for {} octets",
            input.len()
        );
        match s.poll(now) {
            Output::Reply(r) => check_reply(&r),
            Output::Deliver(tx) => {
                let ok = answers.rotate_left(deliveries % 8) & 1 == 0;
                deliveries += 1;
                accepted += u32::from(ok);
                assert!(
                    !tx.envelope.recipients.is_empty(),
                    "a delivery without recipients"
                );
                s.answer(Answer::Delivered(if ok {
                    Ok(format!("id{deliveries}"))
                } else {
                    Err(DeliveryError::Temporary("fuzz".into()))
                }));
            }
            Output::Check(check) => {
                // A connect check is accepted three times in four, so most inputs reach the
                // commands; a rejected client still reads them (554, then 503 until QUIT).
                let connect = matches!(check.stage, Stage::Connect);
                let ok = yes(&mut asked) || (connect && !asked.is_multiple_of(4));
                let verdict = match ok {
                    true => Verdict::Accept,
                    false if asked.is_multiple_of(3) => {
                        Verdict::Defer(Refusal::new(450, (4, 7, 1), "fuzz: try later"))
                    }
                    false => Verdict::Reject(Refusal::new(550, (5, 7, 1), "fuzz: no")),
                };
                s.answer(Answer::Checked(check, verdict));
            }
            Output::StartTls => s.answer(match yes(&mut asked) {
                true => Answer::TlsUp,
                false => Answer::TlsFailed,
            }),
            Output::Authenticate(_) => s.answer(Answer::Authenticated(match yes(&mut asked) {
                true => AuthAnswer::Accepted,
                false => AuthAnswer::Rejected,
            })),
            Output::Spool { bytes, .. } => {
                assert!(bytes.len() <= 64 * 1024, "a spool chunk of {}", bytes.len());
                if !yes(&mut asked) && asked.is_multiple_of(5) {
                    s.spool_failed();
                }
            }
            Output::Unspool => {}
            Output::Close => break,
            Output::NeedInput => match pieces.next() {
                Some(c) => s.push_input(c),
                None => {
                    s.closed_by_peer();
                    break;
                }
            },
        }
        for line in s.take_log() {
            assert!(
                !line.contains(['\r', '\n']),
                "a trace line with a line break: {line:?}"
            );
        }
    }
    assert!(s.is_closed() || pieces.next().is_none());
    accepted
}

fn check_reply(r: &super::Reply) {
    assert!((200..600).contains(&r.code), "reply code {}", r.code);
    for line in &r.lines {
        assert!(
            !line.contains(['\r', '\n']),
            "a reply line with a line break: {line:?}"
        );
    }
}

/// One small configuration, built once: a local domain with accounts, an alias, a relay
/// network, small limits — enough for every branch of RCPT and DATA. Built from the
/// directory and limits directly (not the config file), so `smtp` never imports `config`.
fn config() -> &'static Arc<SessionConfig> {
    static CONFIG: OnceLock<Arc<SessionConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let aliases = BTreeMap::from([(
            "all@example.org".to_string(),
            vec![
                "alice@example.org".to_string(),
                "bob@example.org".to_string(),
            ],
        )]);
        let directory = match Directory::build(
            &["example.org".to_string()],
            ["alice@example.org", "bob@example.org"],
            &aliases,
        ) {
            Ok(d) => d,
            Err(e) => panic!("fuzz directory: {e}"),
        };
        let relay = match "192.0.2.0/24".parse::<IpNet>() {
            Ok(n) => n,
            Err(e) => panic!("fuzz relay network: {e:?}"),
        };
        Arc::new(SessionConfig {
            hostname: "mx.example.org".into(),
            limits: Limits {
                message_size: 4096,
                recipients: 5,
                ..Limits::default()
            },
            directory: Arc::new(directory),
            relay_networks: vec![relay],
            offers: Offers {
                starttls: true,
                auth: vec![AuthMechanism::Plain, AuthMechanism::Login],
                auth_requires_tls: false,
                auth_required: false,
            },
            quota: None,
            spool_dir: None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_transaction_in_any_chunking() {
        let wire = b"EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<all@example.org>\r\n\
                     DATA\r\nSubject: x\r\n\r\n.hi\r\n.\r\nQUIT\r\n";
        for seed in 0..=255u8 {
            for answers in [0u8, 0xff, 0x55] {
                let mut data = vec![seed, answers];
                data.extend_from_slice(wire);
                assert_eq!(run(&data), u32::from(answers & 1 == 0), "seed {seed}");
            }
        }
    }

    proptest::proptest! {
        /// The fuzz target's body on arbitrary bytes (first byte: chunking; second: answers).
        #[test]
        fn fuzz_body(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            fuzz_smtp_session(&data);
        }

        /// Commands the session knows, with arbitrary arguments and line ends, reach past
        /// the first "500 unrecognised" that uniform bytes mostly get.
        #[test]
        fn fuzz_body_on_command_like_input(
            seed in proptest::num::u8::ANY,
            answers in proptest::num::u8::ANY,
            lines in proptest::collection::vec(
                "(EHLO|HELO|MAIL FROM:|RCPT TO:|DATA|RSET|NOOP|QUIT|VRFY|BDAT|STARTTLS|AUTH PLAIN |\\*|\\.)?[ -~\\r]{0,24}(\\r\\n|\\n|\\r)",
                0..40,
            ),
        ) {
            let mut data = vec![seed, answers];
            for l in &lines {
                data.extend_from_slice(l.as_bytes());
            }
            fuzz_smtp_session(&data);
        }
    }
}
