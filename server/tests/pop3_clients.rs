//! POP3 on real sockets (issue #11 item 3): Python's poplib against `mailsim-server serve`.
//! Mail delivered over SMTP to the MX is read over POP3 with STLS (USER/PASS refused before
//! it, RFC 2595) and over implicit TLS: STAT, UIDL, RETR (byte-stuffed lines come back
//! intact), DELE, QUIT; after a reconnect the deleted message is gone and the others keep
//! their UIDL; a second session on the same maildrop gets `[IN-USE]`; a wrong password
//! `[AUTH]`. Skips (prints SKIPPED) only when python3 is missing.

// Tests drive a real process over real sockets and files; the Env seam is the server's rule.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "support/serve.rs"]
mod serve;

use serve::{Proc, PASSWORD};

const POPLIB: &str = r#"
import poplib, smtplib, ssl, sys
mx, pop, pops, ca, pw = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
user = "alice@example.org"
s = smtplib.SMTP("127.0.0.1", mx, local_hostname="client.test", timeout=30)
for i in range(3):
    s.sendmail("carol@client.test", [user],
               f"Subject: m{i}\r\n\r\n.dot line {i}\r\nbody {i}\r\n".encode())
s.quit()
ctx = ssl.create_default_context(cafile=ca)

p = poplib.POP3("127.0.0.1", pop, timeout=30)
caps = p.capa()
assert "STLS" in caps and "USER" not in caps, caps
try:
    p.user(user)
    raise SystemExit("USER accepted before TLS")
except poplib.error_proto as e:
    assert b"[AUTH]" in e.args[0], e
p.stls(context=ctx)
caps = p.capa()
assert "USER" in caps and "UIDL" in caps and "STLS" not in caps, caps
p.user(user)
p.pass_(pw)
count, size = p.stat()
assert count == 3, (count, size)
before = [l.split()[1] for l in p.uidl()[1]]
assert len(set(before)) == 3, before
_, lines, _ = p.retr(1)
assert b".dot line 0" in lines and b"Subject: m0" in lines, lines
_, top, _ = p.top(2, 0)
assert b"Subject: m1" in top and b"body 1" not in top, top
p.dele(1)
p.quit()

p = poplib.POP3_SSL("127.0.0.1", pops, context=ctx, timeout=30)
p.user(user)
p.pass_(pw)
assert p.stat()[0] == 2, p.stat()
after = [l.split()[1] for l in p.uidl()[1]]
assert after == before[1:], (before, after)
_, lines, _ = p.retr(1)
assert b"Subject: m1" in lines, lines
q = poplib.POP3_SSL("127.0.0.1", pops, context=ctx, timeout=30)
q.user(user)
try:
    q.pass_(pw)
    raise SystemExit("second session on the maildrop")
except poplib.error_proto as e:
    assert b"[IN-USE]" in e.args[0], e
q.quit()
p.quit()

p = poplib.POP3_SSL("127.0.0.1", pops, context=ctx, timeout=30)
p.user(user)
try:
    p.pass_("wrong")
    raise SystemExit("wrong password accepted")
except poplib.error_proto as e:
    assert b"[AUTH]" in e.args[0], e
p.quit()
print("ok")
"#;

#[test]
fn poplib_reads_and_deletes_over_stls_and_implicit_tls() {
    // All mail here is local: the relayhost (discard port) is never used.
    let mut p = Proc::start("poplib", 9);
    let (mx, pop, pops) = (p.port("SMTP"), p.port("pop3"), p.port("pop3s"));
    let args = [
        mx.to_string(),
        pop.to_string(),
        pops.to_string(),
        p.ca(),
        PASSWORD.to_string(),
    ];
    if !p.run_python(POPLIB, &args) {
        return;
    }
    // The deleted message's file is gone; the other two are still stored.
    let dir = p.dir.join("data/mail/alice@example.org/new");
    let files = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(files, 2);
    let log = p.log();
    assert!(
        log.iter()
            .any(|l| l.contains("pop3") && l.contains("TLS established")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains(PASSWORD)),
        "no password in the trace"
    );
}
