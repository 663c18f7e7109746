//! Item 4 of issue #11: literal and line limits, bad commands, the per-account session cap.

use super::*;

#[tokio::test]
async fn a_synchronising_literal_too_big_is_refused_before_it_is_sent() {
    let (_env, m) = world().await;
    let mut c = Client::selected(&m).await;
    // 100 MB announced; the client waits for `+`, which never comes.
    let r = c.raw(b"a APPEND INBOX {104857600}\r\n").await;
    assert_eq!(
        r,
        "a NO [TOOBIG] Literal of 104857600 octets exceeds the limit of 1048576\r\n"
    );
    assert_eq!(c.say("b NOOP").await, "b OK NOOP completed\r\n");
}

#[tokio::test]
async fn before_login_a_literal_is_only_as_big_as_a_line() {
    let (_env, m) = world().await;
    let (mut c, _) = Client::new(&m, true);
    let r = c.raw(b"a LOGIN alice {100000}\r\n").await;
    assert_eq!(
        r,
        "a NO [TOOBIG] Literal of 100000 octets exceeds the limit of 65536\r\n"
    );
    // A LOGIN with literals of a sane size works.
    assert_eq!(
        c.raw(b"b LOGIN {5}\r\n").await,
        "+ Ready for literal data\r\n"
    );
    assert_eq!(
        c.raw(b"alice {6}\r\n").await,
        "+ Ready for literal data\r\n"
    );
    assert!(c.raw(b"secret\r\n").await.starts_with("b OK"));
}

#[tokio::test]
async fn a_non_synchronising_literal_too_big_closes_the_connection_unbuffered() {
    let (_env, m) = world().await;
    let mut c = Client::selected(&m).await;
    let r = c.raw(b"a APPEND INBOX {104857600+}\r\n").await;
    assert_eq!(
        r,
        "a BAD [TOOBIG] Literal of 104857600 octets exceeds the limit of 1048576\r\n* BYE Literal too big\r\n<close>"
    );
    // What follows is never looked at.
    assert_eq!(c.raw(&vec![b'x'; 1 << 16]).await, "");
}

#[tokio::test]
async fn an_overlong_line_is_refused_and_closes() {
    let (_env, m) = world().await;
    let (mut c, _) = Client::new(&m, true);
    let mut line = b"a LOGIN ".to_vec();
    line.extend(std::iter::repeat_n(b'x', MAX_LINE + 10_000));
    let r = c.raw(&line).await;
    assert_eq!(
        r,
        "a BAD Command line too long\r\n* BYE Command line too long\r\n<close>"
    );
}

#[tokio::test]
async fn garbage_gets_bad_and_too_much_of_it_closes() {
    let (_env, m) = world().await;
    let (mut c, _) = Client::new(&m, true);
    assert_eq!(c.say("a FROB").await, "a BAD Syntax error in command\r\n");
    assert_eq!(c.say("").await, "* BAD Syntax error in command\r\n");
    assert_eq!(c.say("a SELECT").await, "a BAD Syntax error in command\r\n");
    // Three so far; the twentieth closes.
    for _ in 3..19 {
        assert_eq!(c.say("x \u{1}").await, "x BAD Syntax error in command\r\n");
    }
    let last = c.say("x \u{1}").await;
    assert_eq!(
        last,
        "x BAD Syntax error in command\r\n* BYE Too many bad commands\r\n<close>"
    );
}

#[tokio::test]
async fn sessions_per_account_are_capped() {
    let (_env, m) = world().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let (mut c, _) = Client::new(&m, true);
        assert!(c.say("a LOGIN alice secret").await.starts_with("a OK"));
        held.push(c);
    }
    let (mut c, _) = Client::new(&m, true);
    assert_eq!(
        c.say("a LOGIN alice secret").await,
        "a NO [LIMIT] Too many sessions for this account\r\n"
    );
    drop(held.pop());
    assert!(c.say("b LOGIN alice secret").await.starts_with("b OK"));
}

#[tokio::test]
async fn autologout_after_the_idle_timer() {
    let (_env, m) = world().await;
    let (mut c, _) = Client::new(&m, true);
    let due = c.s.poll_timeout().unwrap();
    assert_eq!(due, now().plus(IDLE_TIMEOUT));
    c.s.handle_timeout(due);
    assert_eq!(
        c.run().await,
        "* BYE Autologout; idle for too long\r\n<close>"
    );
}
