//! IMAP on real sockets (issue #11 items 2 and 6): Python's imaplib (and curl) against
//! `mailsim-server serve`. Mail delivered over SMTP is read over IMAP with STARTTLS (LOGIN
//! refused before it) and over implicit TLS: SELECT, FETCH BODY[] byte for byte (after the
//! trace headers the store adds) for plain, MIME multipart and 8-bit messages, SEARCH,
//! STORE, COPY, MOVE, EXPUNGE, CREATE + APPEND, and IDLE seeing an SMTP delivery made while
//! it waits. Skips (prints SKIPPED) only when python3 is missing.

// Tests drive a real process over real sockets and files; the Env seam is the server's rule.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "support/serve.rs"]
mod serve;

use std::process::Command;

use serve::{Proc, PASSWORD};

const IMAPLIB: &str = r#"
import imaplib, smtplib, socket, ssl, sys, time
mx, imap, imaps, ca, pw = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
user = "alice@example.org"
plain = b"Subject: plain one\r\nFrom: carol@client.test\r\n\r\nhello\r\n.dot line\r\n"
multi = (b"Subject: multi\r\nFrom: dave@client.test\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
         b"text part\r\n--b1\r\nContent-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--b1--\r\n")
eight = "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nFrom: erin@client.test\r\n\r\nGrüße aus Köln\r\n".encode()
sent = [plain, multi, eight]
s = smtplib.SMTP("127.0.0.1", mx, local_hostname="client.test", timeout=30)
for m in sent:
    s.sendmail("carol@client.test", [user], m)
s.quit()
ctx = ssl.create_default_context(cafile=ca)

m = imaplib.IMAP4("127.0.0.1", imap, timeout=30)
assert "STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities, m.capabilities
try:
    m.login(user, pw)
    raise SystemExit("LOGIN accepted before TLS")
except imaplib.IMAP4.error as e:
    assert "PRIVACYREQUIRED" in str(e), e
m.starttls(ssl_context=ctx)
typ, _ = m.login(user, pw)
assert typ == "OK"
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"3"], data
# Byte for byte after the headers the store prepends (Return-Path, Delivered-To, Received).
typ, data = m.fetch("1:3", "(BODY.PEEK[] RFC822.SIZE)")
bodies = [d[1] for d in data if isinstance(d, tuple)]
assert len(bodies) == 3, data
for got, want in zip(bodies, sent):
    assert got.endswith(want), (got, want)
typ, data = m.fetch("2", "(BODY.PEEK[2] BODYSTRUCTURE)")
assert b"AAECAwQF" in data[0][1], data
typ, data = m.search(None, "SUBJECT", "multi")
assert data == [b"2"], data
typ, data = m.uid("SEARCH", "FROM", "erin")
assert data == [b"3"], data
typ, data = m.store("1", "+FLAGS", "(\\Flagged)")
assert typ == "OK" and b"\\Flagged" in data[0], data
typ, data = m.search(None, "FLAGGED")
assert data == [b"1"], data
typ, data = m.list()
assert any(b"\\Junk" in l and b"Junk" in l for l in data), data
typ, data = m.uid("COPY", "1", "Junk")
assert typ == "OK", data
typ, data = m.uid("MOVE", "2", "Junk")
assert typ == "OK", data
typ, data = m.status("Junk", "(MESSAGES UIDNEXT)")
assert b"MESSAGES 2" in data[0], data
m.store("1", "+FLAGS", "(\\Deleted)")
typ, data = m.expunge()
# imaplib keeps the MOVE's `* 2 EXPUNGE` too (it only collects FETCH for UID commands).
assert typ == "OK" and data == [b"2", b"1"], data
typ, data = m.fetch("1:*", "(UID)")
assert data == [b"1 (UID 3)"], data
typ, data = m.create("Sent")
assert typ == "OK", data
typ, data = m.append("Sent", "(\\Seen)", None, b"Subject: draft\r\n\r\nsaved copy\r\n")
assert typ == "OK" and b"APPENDUID" in data[0], data
typ, data = m.select("Sent")
typ, data = m.search(None, "TEXT", "saved")
assert data == [b"1"], data
m.logout()

# IDLE on INBOX (raw: imaplib 3.11 has no idle()); a delivery arrives while it waits.
i = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=30)
i.login(user, pw)
i.select("INBOX")
sock = i.socket()
sock.sendall(b"i1 IDLE\r\n")
assert i.readline().startswith(b"+"), "no continuation"
s = smtplib.SMTP("127.0.0.1", mx, local_hostname="client.test", timeout=30)
s.sendmail("carol@client.test", [user], b"Subject: while idle\r\n\r\nnew\r\n")
s.quit()
line = i.readline()
assert line == b"* 2 EXISTS\r\n", line
sock.sendall(b"DONE\r\n")
line = i.readline()
assert line.startswith(b"i1 OK"), line
typ, data = i.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"Subject: while idle" in data[0][1], data
i.logout()

w = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=30)
try:
    w.login(user, "wrong")
    raise SystemExit("wrong password accepted")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
print("ok")
"#;

#[test]
fn imaplib_reads_flags_moves_and_idles_over_starttls_and_implicit_tls() {
    let mut p = Proc::start("imaplib", 9);
    let (mx, imap, imaps) = (p.port("SMTP"), p.port("imap"), p.port("imaps"));
    let args = [
        mx.to_string(),
        imap.to_string(),
        imaps.to_string(),
        p.ca(),
        PASSWORD.to_string(),
    ];
    if !p.run_python(IMAPLIB, &args) {
        return;
    }
    let log = p.log();
    assert!(
        log.iter()
            .any(|l| l.contains("imap") && l.contains("TLS established")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains(PASSWORD)),
        "no password in the trace"
    );
}

/// curl's IMAP client over implicit TLS: list the folders, fetch a message by UID.
#[test]
fn curl_lists_and_fetches_over_imaps() {
    let mut p = Proc::start("imapcurl", 9);
    let (mx, imaps) = (p.port("SMTP"), p.port("imaps"));
    let deliver = format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {mx}, local_hostname='client.test')\n\
         s.sendmail('c@client.test', ['alice@example.org'], b'Subject: via curl\\r\\n\\r\\ncurl body\\r\\n')\ns.quit()"
    );
    match Command::new("python3").arg("-c").arg(&deliver).status() {
        Ok(s) => assert!(s.success()),
        Err(e) => {
            eprintln!("SKIPPED: python3 not runnable ({e})");
            return;
        }
    }
    let curl = |url: &str| {
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "--cacert", &p.ca()])
            .args(["--user", &format!("alice@example.org:{PASSWORD}")])
            .arg(url)
            .output()
    };
    let Ok(list) = curl(&format!("imaps://127.0.0.1:{imaps}/")) else {
        eprintln!("SKIPPED: curl not runnable");
        return;
    };
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(text.contains("INBOX") && text.contains("Junk"), "{text}");
    let msg = curl(&format!("imaps://127.0.0.1:{imaps}/INBOX;UID=1")).unwrap();
    let body = String::from_utf8_lossy(&msg.stdout);
    assert!(
        msg.status.success(),
        "{}",
        String::from_utf8_lossy(&msg.stderr)
    );
    assert!(
        body.ends_with("Subject: via curl\r\n\r\ncurl body\r\n"),
        "{body}"
    );
}
