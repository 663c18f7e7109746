//! CHUNKING / BDAT and BINARYMIME (RFC 3030): counted chunks, their replies, the mixing
//! rules, and chunks that must be read and dropped.

use super::*;

fn bdat_ready() -> Client {
    let mut c = Client::new();
    c.ready();
    c
}

#[test]
fn chunks_make_one_message_and_each_gets_its_reply() {
    let mut c = bdat_ready();
    assert_eq!(
        c.send("BDAT 7\r\nSubject"),
        ["250 2.0.0 Ok: 7 octets received"]
    );
    assert_eq!(
        c.send("BDAT 9\r\n: x\r\n\r\nhi"),
        ["250 2.0.0 Ok: 16 octets received"]
    );
    assert_eq!(
        c.send("BDAT 2 LAST\r\n\r\n"),
        ["250 2.0.0 Ok: queued as Q1"]
    );
    assert_eq!(content_of(&c.delivered[0]), "Subject: x\r\n\r\nhi\r\n");
    // The transaction is over: the next BDAT has none.
    assert_eq!(
        c.send("BDAT 4 LAST\r\nQUIT"),
        ["503 5.5.1 Error: need MAIL command"]
    );
    assert!(
        !c.closed,
        "the chunk's octets were read as data, not as QUIT"
    );
}

#[test]
fn pipelined_chunks_and_commands_are_answered_in_order() {
    let mut c = Client::new();
    let replies = c.send(
        "EHLO client.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.org>\r\n\
         BDAT 6\r\nA: b\r\nBDAT 8 LAST\r\n\r\nbody\r\nMAIL FROM:<>\r\nQUIT\r\n",
    );
    assert_eq!(
        replies[replies.len() - 7..],
        [
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.0.0 Ok: 6 octets received",
            "250 2.0.0 Ok: queued as Q1",
            "250 2.1.0 Ok",
            "221 2.0.0 Bye",
            "[close]"
        ]
    );
    assert_eq!(content_of(&c.delivered[0]), "A: b\r\n\r\nbody\r\n");
}

#[test]
fn an_empty_last_chunk_ends_the_message() {
    let mut c = bdat_ready();
    c.send("BDAT 5\r\nx\r\n\r\n");
    assert_eq!(c.send("BDAT 0 LAST\r\n"), ["250 2.0.0 Ok: queued as Q1"]);
    assert_eq!(content_of(&c.delivered[0]), "x\r\n\r\n");
    // And an empty message is one too.
    c.ready();
    assert_eq!(c.send("BDAT 0 LAST\r\n"), ["250 2.0.0 Ok: queued as Q2"]);
    assert_eq!(content_of(&c.delivered[1]), "");
}

/// Text chunks get the same line-ending repair as DATA, across chunk boundaries too: a CR
/// ending one chunk and an LF starting the next are one CRLF.
#[test]
fn line_endings_are_repaired_across_chunks() {
    let mut c = bdat_ready();
    c.send("BDAT 3\r\na\r\r");
    c.send("BDAT 4\r\n\nb\nc");
    c.send("BDAT 0 LAST\r\n");
    assert_eq!(content_of(&c.delivered[0]), "a\r\n\r\nb\r\nc");
    // No dot-stuffing in BDAT: a leading dot is content.
    c.ready();
    c.send("BDAT 8 LAST\r\n..x\r\n.\r\n");
    assert_eq!(content_of(&c.delivered[1]), "..x\r\n.\r\n");
}

#[test]
fn data_after_bdat_and_data_for_binarymime_are_503() {
    let mut c = bdat_ready();
    c.send("BDAT 3\r\nabc");
    assert_eq!(
        c.send("DATA\r\n"),
        ["503 5.5.1 Error: DATA after BDAT in one transaction"]
    );
    // The transaction is still open and can finish.
    assert_eq!(c.send("BDAT 0 LAST\r\n"), ["250 2.0.0 Ok: queued as Q1"]);

    c.script(
        "C: MAIL FROM:<s@remote.test> BODY=BINARYMIME\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok
         C: DATA\nS: 503 5.5.1 Error: BODY=BINARYMIME requires BDAT",
    );
}

/// BINARYMIME content is stored octet for octet: bare LF, bare CR, NUL, long lines.
#[test]
fn binarymime_is_stored_as_sent() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    c.script(
        "C: MAIL FROM:<s@remote.test> BODY=BINARYMIME\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok",
    );
    let mut body = b"Content-Type: application/octet-stream\r\n\r\n".to_vec();
    body.extend_from_slice(b"\x00\n\r\xff");
    body.extend(std::iter::repeat_n(b'z', 3000));
    let mut wire = format!("BDAT {} LAST\r\n", body.len()).into_bytes();
    wire.extend_from_slice(&body);
    assert_eq!(c.send(&wire), ["250 2.0.0 Ok: queued as Q1"]);
    let stored = c.delivered[0].message.as_bytes().unwrap();
    assert!(stored.ends_with(&body), "stored as sent");
}

/// A chunk that cannot be taken is still read (its octets are data, never commands), and
/// a failed chunk ends the transaction: later chunks are refused and read too.
#[test]
fn refused_chunks_are_read_and_dropped() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    assert_eq!(
        c.send("BDAT 6\r\nQUIT\r\n"),
        ["503 5.5.1 Error: need MAIL command"]
    );
    c.script(
        "C: MAIL FROM:<s@remote.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<nobody@example.org>\nS: 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown",
    );
    assert_eq!(
        c.send("BDAT 6 LAST\r\nQUIT\r\n"),
        ["554 5.5.1 No valid recipients"]
    );
    assert!(!c.closed);
    // Split across reads, the skip still covers exactly the chunk.
    c.send("RSET\r\n");
    c.send("BDAT 10\r\n01234");
    assert_eq!(c.send("56789NOOP\r\n"), ["250 2.0.0 Ok"]);
    assert!(c.delivered.is_empty());
}

#[test]
fn a_chunk_past_the_size_limit_fails_the_transaction_at_once() {
    let mut c = Client::with(|l| l.message_size = 100);
    c.ready();
    assert_eq!(
        c.send(format!("BDAT 60\r\n{}", "a".repeat(60))),
        ["250 2.0.0 Ok: 60 octets received"]
    );
    assert_eq!(
        c.send(format!("BDAT 60\r\n{}", "b".repeat(60))),
        ["552 5.3.4 Message size exceeds fixed limit"]
    );
    assert_eq!(
        c.send("BDAT 3 LAST\r\nxyz"),
        ["503 5.5.1 Error: need MAIL command"]
    );
    assert!(c.delivered.is_empty());
    assert!(c
        .s
        .take_log()
        .contains(&"[message discarded: message size exceeds fixed limit]".to_string()));
}

#[test]
fn bdat_is_not_known_after_helo_or_with_bad_syntax() {
    let mut c = Client::new();
    c.script(
        "C: HELO client.test\nS: 250 mx.example.org
         C: BDAT 3 LAST\nS: 502 5.5.1 Command not implemented
         C: EHLO client.test",
    );
    c.script(
        "C: MAIL FROM:<s@remote.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org>\nS: 250 2.1.5 Ok
         C: BDAT\nS: 501 5.5.4 Syntax: BDAT chunk-size [LAST]
         C: BDAT x LAST\nS: 501 5.5.4 Syntax: BDAT chunk-size [LAST]
         C: BDAT 99999999999999999999999 LAST\nS: 501 5.5.4 Syntax: BDAT chunk-size [LAST]",
    );
    // A malformed line whose size can be read: its octets are still the chunk's.
    assert_eq!(
        c.send("BDAT 6 FIRST\r\nQUIT\r\n"),
        ["501 5.5.4 Syntax: BDAT chunk-size [LAST]"]
    );
    assert!(!c.closed);
}
