//! DSN parameters (RFC 3461 §4) and REQUIRETLS (RFC 8689 §4) on MAIL and RCPT.

use super::tls::tls_config;
use super::*;
use crate::mail::{Notify, Ret};

fn deliver_one(c: &mut Client, mail: &str, rcpts: &[&str]) {
    c.send(format!("{mail}\r\n"));
    for r in rcpts {
        c.send(format!("{r}\r\n"));
    }
    c.script(
        "C: DATA\nS: 354 End data with <CR><LF>.<CR><LF>
         C: hi
         C: .",
    );
}

#[test]
fn dsn_parameters_are_stored_in_the_envelope() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    c.script(
        "C: MAIL FROM:<s@remote.test> RET=HDRS ENVID=QQ314159+2Bx\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Alice+20A@example.org\nS: 250 2.1.5 Ok
         C: RCPT TO:<bob@example.org> notify=never\nS: 250 2.1.5 Ok
         C: RCPT TO:<pm@example.org>\nS: 250 2.1.5 Ok",
    );
    deliver_one(&mut c, "NOOP", &[]);
    let env = &c.delivered[0].envelope;
    assert_eq!(env.dsn.ret, Some(Ret::Hdrs));
    assert_eq!(env.dsn.envid.as_deref(), Some("QQ314159+x"));
    assert!(!env.require_tls);
    let r = &env.recipients;
    assert_eq!(
        r[0].notify,
        Notify {
            success: true,
            delay: true,
            ..Notify::default()
        }
    );
    assert_eq!(r[0].orcpt.as_deref(), Some("Alice A@example.org"));
    assert!(r[1].notify.never && !r[1].notify.wants_failure());
    assert_eq!(r[1].orcpt, None);
    assert!(r[2].notify.is_default());

    c.send("RSET\r\n");
    deliver_one(
        &mut c,
        "MAIL FROM:<s@remote.test> RET=FULL",
        &["RCPT TO:<alice@example.org>"],
    );
    assert_eq!(c.delivered[1].envelope.dsn.ret, Some(Ret::Full));
    assert_eq!(c.delivered[1].envelope.dsn.envid, None);
}

#[test]
fn malformed_dsn_parameters_are_501() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    let long = "x".repeat(101);
    c.script(&format!(
        "C: MAIL FROM:<s@r.test> RET=ALL\nS: 501 5.5.4 Invalid RET parameter
         C: MAIL FROM:<s@r.test> RET=FULL RET=HDRS\nS: 501 5.5.4 Invalid RET parameter
         C: MAIL FROM:<s@r.test> ENVID=a+4g\nS: 501 5.5.4 Invalid ENVID parameter
         C: MAIL FROM:<s@r.test> ENVID=a+0A\nS: 501 5.5.4 Invalid ENVID parameter
         C: MAIL FROM:<s@r.test> ENVID=a=b\nS: 501 5.5.4 Invalid ENVID parameter
         C: MAIL FROM:<s@r.test> ENVID={long}\nS: 501 5.5.4 Invalid ENVID parameter
         C: MAIL FROM:<s@r.test> ENVID={}\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org> NOTIFY=NEVER,SUCCESS\nS: 501 5.5.4 Invalid NOTIFY parameter
         C: RCPT TO:<alice@example.org> NOTIFY=SUCCESS,NEVER\nS: 501 5.5.4 Invalid NOTIFY parameter
         C: RCPT TO:<alice@example.org> NOTIFY=SOMETIMES\nS: 501 5.5.4 Invalid NOTIFY parameter
         C: RCPT TO:<alice@example.org> NOTIFY=\nS: 501 5.5.4 Invalid NOTIFY parameter
         C: RCPT TO:<alice@example.org> ORCPT=x400;abc\nS: 501 5.5.4 Invalid ORCPT parameter
         C: RCPT TO:<alice@example.org> ORCPT=rfc822;a+zzb\nS: 501 5.5.4 Invalid ORCPT parameter
         C: RCPT TO:<alice@example.org> ORCPT=rfc822;\nS: 501 5.5.4 Invalid ORCPT parameter
         C: RCPT TO:<alice@example.org> NOTIFY=FAILURE ORCPT=RFC822;alice@example.org\nS: 250 2.1.5 Ok",
        "y".repeat(100)
    ));
}

#[test]
fn dsn_parameters_need_ehlo() {
    let mut c = Client::new();
    c.script(
        "C: HELO client.test\nS: 250 mx.example.org
         C: MAIL FROM:<s@r.test> RET=HDRS\nS: 555 5.5.4 Unsupported parameter
         C: MAIL FROM:<s@r.test> ENVID=x\nS: 555 5.5.4 Unsupported parameter
         C: MAIL FROM:<s@r.test>\nS: 250 2.1.0 Ok
         C: RCPT TO:<alice@example.org> NOTIFY=NEVER\nS: 555 5.5.4 Unsupported parameter
         C: RCPT TO:<alice@example.org> ORCPT=rfc822;a@b.test\nS: 555 5.5.4 Unsupported parameter",
    );
}

#[test]
fn requiretls_only_over_tls() {
    let mut c = Client::new();
    c.send("EHLO client.test\r\n");
    c.script("C: MAIL FROM:<s@r.test> REQUIRETLS\nS: 530 5.7.10 REQUIRETLS needs a TLS session");
    let mut c = Client::new();
    c.send("HELO client.test\r\n");
    c.script("C: MAIL FROM:<s@r.test> REQUIRETLS\nS: 555 5.5.4 Unsupported parameter");

    let mut c = Client::on(tls_config(true));
    c.send("EHLO client.test\r\n");
    c.script(
        "C: MAIL FROM:<s@r.test> REQUIRETLS\nS: 530 5.7.10 REQUIRETLS needs a TLS session
         C: STARTTLS\nS: 220 2.0.0 Ready to start TLS",
    );
    c.send("EHLO client.test\r\n");
    deliver_one(
        &mut c,
        "MAIL FROM:<s@r.test> REQUIRETLS",
        &["RCPT TO:<alice@example.org>"],
    );
    assert!(c.delivered[0].envelope.require_tls);
}
