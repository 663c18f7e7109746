//! Shutting down (RFC 5321 §3.8): an idle session gets 421 4.3.2 at once; a transaction in
//! progress finishes first; nothing new starts; QUIT still gets 221.

use super::*;

const BYE: &str = "421 4.3.2 mx.example.org Service shutting down, closing transmission channel";

#[test]
fn an_idle_session_is_told_at_once() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    c.s.shut_down();
    assert_eq!(c.drain(), [BYE, "[close]"]);
    assert!(c.s.is_closed());
}

#[test]
fn a_transaction_in_progress_finishes_then_the_session_ends() {
    let mut c = Client::new();
    c.ready();
    c.s.shut_down();
    // Nothing is said while the client is in the middle of its transaction.
    assert_eq!(c.drain(), Vec::<String>::new());
    assert_eq!(c.send("DATA\r\n"), ["354 End data with <CR><LF>.<CR><LF>"]);
    assert_eq!(
        c.send("Subject: x\r\n\r\nhi\r\n.\r\n"),
        ["250 2.0.0 Ok: queued as Q1"]
    );
    assert_eq!(c.delivered.len(), 1);
    // The next command is not executed.
    assert_eq!(c.send("NOOP\r\n"), [BYE, "[close]"]);
}

#[test]
fn a_pipelined_command_after_the_transaction_is_not_executed() {
    let mut c = Client::new();
    c.ready();
    c.s.shut_down();
    let replies = c.send(
        "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<again@remote.test>\r\nRCPT TO:<alice@example.org>\r\n",
    );
    assert_eq!(
        replies,
        [
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as Q1",
            BYE,
            "[close]"
        ]
    );
    assert_eq!(c.delivered.len(), 1, "the second transaction never started");
}

#[test]
fn quit_still_gets_its_goodbye() {
    let mut c = Client::new();
    c.ready();
    c.s.shut_down();
    assert_eq!(c.send("RSET\r\n"), ["250 2.0.0 Ok"]);
    assert_eq!(c.send("QUIT\r\n"), ["221 2.0.0 Bye", "[close]"]);

    let mut c = Client::new();
    c.ready();
    c.s.shut_down();
    let replies = c.send("DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    assert_eq!(replies[1], "250 2.0.0 Ok: queued as Q1");
    assert_eq!(replies[2], "221 2.0.0 Bye");
}

#[test]
fn shutting_down_twice_or_after_close_changes_nothing() {
    let mut c = Client::new();
    c.s.shut_down();
    c.s.shut_down();
    assert_eq!(c.drain(), [BYE, "[close]"]);
    c.s.shut_down();
    assert_eq!(c.drain(), ["[close]"]);
}
