//! Spooling (`mail/message.rs`): a big body leaves the session in bounded chunks, the
//! delivered message is the same octets as without spooling, and every way a spooled body
//! is not stored says so (`unspool`).

use super::spill::SPILL_AT;
use super::*;

/// A message of `lines` body lines of 78 octets after a short header block.
fn big_body(lines: usize) -> String {
    let mut m = String::from("Subject: big\r\nFrom: <s@remote.test>\r\n\r\n");
    for i in 0..lines {
        m.push_str(&format!("{i:08} {}\r\n", "x".repeat(68)));
    }
    m
}

fn spooling() -> Client {
    let mut c = Client::new().spooling();
    c.ready();
    c
}

#[test]
fn a_big_data_body_is_spooled_in_bounded_chunks_and_delivered_whole() {
    let body = big_body(5000); // ~400 KB
    for piece in [1, 7, 1000, 65536, usize::MAX] {
        let mut c = spooling();
        let wire = format!("DATA\r\n{body}.\r\n");
        let mut replies = Vec::new();
        for part in wire.as_bytes().chunks(piece.min(wire.len())) {
            replies.extend(c.send(part));
        }
        assert_eq!(replies.last().unwrap(), "250 2.0.0 Ok: queued as Q1");
        assert_eq!(content_of(&c.delivered[0]), body, "pieces of {piece}");
        let chunks: Vec<usize> = c
            .requests
            .iter()
            .filter_map(|r| r.split_once(':'))
            .filter(|(k, _)| k.starts_with("spool"))
            .map(|(_, n)| n.parse().unwrap())
            .collect();
        assert!(chunks.len() > 10, "{chunks:?}");
        assert!(c.requests.iter().any(|r| r.starts_with("spool-new:")));
        // Bounded: no chunk (and so no buffer) near the message's size.
        assert!(chunks.iter().all(|&n| n <= 2 * SPILL_AT), "{chunks:?}");
    }
}

/// The head kept in memory is our Received: and the header block, not more.
#[test]
fn the_head_in_memory_is_the_header_block() {
    let mut c = spooling();
    let body = big_body(2000);
    // Take the transaction before the test client makes it inline.
    c.s.push_input(format!("DATA\r\n{body}.\r\n").as_bytes());
    let mut head = None;
    loop {
        match c.s.poll(c.now) {
            Output::Deliver(tx) => {
                head = Some(tx.message.head().to_vec());
                assert_eq!(
                    tx.message.len() as usize,
                    tx.message.head().len() + body.len() - 39
                );
                break;
            }
            Output::Check(check) => c.s.answer(Answer::Checked(check, Verdict::Accept)),
            Output::NeedInput => break,
            _ => {}
        }
    }
    let head = String::from_utf8(head.expect("delivered")).unwrap();
    assert!(head.starts_with("Received: "), "{head}");
    assert!(
        head.ends_with("Subject: big\r\nFrom: <s@remote.test>\r\n\r\n"),
        "{head}"
    );
}

#[test]
fn small_messages_are_never_spooled() {
    let mut c = spooling();
    c.send("DATA\r\nSubject: s\r\n\r\nhi\r\n.\r\n");
    assert_eq!(content_of(&c.delivered[0]), "Subject: s\r\n\r\nhi\r\n");
    assert!(
        !c.requests.iter().any(|r| r.starts_with("spool")),
        "{:?}",
        c.requests
    );
}

/// A failed spool write refuses the message with 452 4.3.1 (our disk, not counted as the
/// client's error), and the session goes on.
#[test]
fn a_failed_spool_write_is_452_and_nothing_is_delivered() {
    let mut c = Client::with(|l| l.errors = 1).spooling();
    c.ready();
    c.spool_fails = true;
    let replies = c.send(format!("DATA\r\n{}.\r\n", big_body(3000)));
    assert_eq!(
        replies.last().unwrap(),
        "452 4.3.1 Insufficient system storage"
    );
    assert!(c.delivered.is_empty());
    assert!(c
        .s
        .take_log()
        .contains(&"[message discarded: spool write failed]".into()));
    // Not counted: with an error limit of 1, the session still answers.
    c.spool_fails = false;
    assert_eq!(c.send("NOOP\r\n"), ["250 2.0.0 Ok"]);
}

#[test]
fn a_spooled_body_past_the_size_limit_is_dropped_and_unspooled() {
    let mut c = Client::with(|l| l.message_size = 100_000).spooling();
    c.ready();
    let replies = c.send(format!("DATA\r\n{}.\r\n", big_body(3000)));
    assert_eq!(
        replies.last().unwrap(),
        "552 5.3.4 Message size exceeds fixed limit"
    );
    assert!(c.delivered.is_empty());
    assert_eq!(c.requests.last().unwrap(), "unspool");
    // Nothing past the limit went to the spool.
    let spooled: usize = c
        .requests
        .iter()
        .filter_map(|r| r.split_once(':'))
        .filter(|(k, _)| k.starts_with("spool"))
        .map(|(_, n)| n.parse::<usize>().unwrap())
        .sum();
    assert!(spooled <= 100_000, "{spooled}");
}

#[test]
fn a_policy_refusal_at_end_of_data_unspools() {
    let mut c = spooling();
    c.policy = Box::new(|check| match check.stage {
        Stage::EndOfData { .. } => {
            Verdict::Reject(crate::policy::Refusal::new(550, (5, 7, 1), "no thanks"))
        }
        _ => Verdict::Accept,
    });
    let replies = c.send(format!("DATA\r\n{}.\r\n", big_body(3000)));
    assert_eq!(replies.last().unwrap(), "550 5.7.1 no thanks");
    assert_eq!(c.requests.last().unwrap(), "unspool");
}

#[test]
fn bdat_chunks_are_spooled_too() {
    let mut c = spooling();
    let body = big_body(3000);
    let (a, b) = body.as_bytes().split_at(100_001);
    let mut wire = format!("BDAT {}\r\n", a.len()).into_bytes();
    wire.extend_from_slice(a);
    wire.extend_from_slice(format!("BDAT {} LAST\r\n", b.len()).as_bytes());
    wire.extend_from_slice(b);
    let replies = c.send(&wire);
    assert_eq!(replies.last().unwrap(), "250 2.0.0 Ok: queued as Q1");
    assert_eq!(content_of(&c.delivered[0]), body);
    assert!(c.requests.iter().filter(|r| r.starts_with("spool")).count() > 10);
}

/// A BDAT transaction given up between its chunks (RSET, a new EHLO) gives up its spool at
/// once; the next transaction starts a fresh file.
#[test]
fn a_bdat_transaction_reset_between_chunks_unspools() {
    for reset in ["RSET", "EHLO again.test"] {
        let mut c = spooling();
        let body = big_body(3000);
        let mut wire = format!("BDAT {}\r\n", body.len()).into_bytes();
        wire.extend_from_slice(body.as_bytes());
        let replies = c.send(&wire);
        assert!(replies.last().unwrap().starts_with("250"), "{replies:?}");
        assert_ne!(c.requests.last().unwrap(), "unspool");
        c.send(format!("{reset}\r\n"));
        assert_eq!(c.requests.last().unwrap(), "unspool", "{reset}");
    }
    // A small (unspooled) transaction reset asks for nothing.
    let mut c = spooling();
    c.send("BDAT 5\r\nhello");
    let before = c.requests.len();
    c.send("RSET\r\n");
    assert_eq!(c.requests.len(), before);
}
