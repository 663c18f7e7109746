//! Real mail clients against `mailsim-server serve` (issue #8 item 9): Python's smtplib
//! (STARTTLS on submission, implicit TLS on submissions, AUTH PLAIN and LOGIN), curl
//! (smtp:// with `--ssl-reqd`, smtps://) and swaks log in as alice and relay a message to a
//! remote address. The queue hands it to a local SMTP sink (the `relayhost`), where each
//! test checks what the next hop would see: the envelope, the Message-ID and Date the
//! server added (RFC 6409 §8.2, §8.3), and a DKIM-Signature for d=example.org that
//! mail-auth verifies against the configured key's public part. A wrong password gets 535
//! (RFC 4954 §6) and no mail. A test whose client program is missing prints SKIPPED.

// Tests drive a real process over real sockets and files; the Env seam is the server's rule.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

#[path = "support/dkim.rs"]
mod dkim;
#[path = "support/serve.rs"]
mod serve;
#[path = "support/sink.rs"]
mod sink;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serve::{Proc, DKIM_PEM, PASSWORD, SELECTOR};
use sink::{Received, Sink};

/// A submitted message as a mail client writes it: no Message-ID, no Date.
fn message(subject: &str) -> String {
    format!(
        "From: Alice <alice@example.org>\r\nTo: x@remote.test\r\nSubject: {subject}\r\n\r\nHello from a real client.\r\n"
    )
}

/// `program` can be run (`--version` exits at all); otherwise prints why the test skips.
fn installed(program: &str) -> bool {
    match Command::new(program).arg("--version").output() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {program} not runnable ({e})");
            false
        }
    }
}

/// Runs `cmd` (with `stdin`), asserting success; its stdout.
fn run(cmd: &mut Command, stdin: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out: Output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The header section of `text` (up to the first empty line).
fn headers(text: &str) -> &str {
    text.split("\r\n\r\n").next().unwrap_or("")
}

fn has_header(text: &str, name: &str) -> bool {
    headers(text).lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
    })
}

/// What every relayed message must look like at the next hop.
fn assert_relayed_and_signed(got: &Received, subject: &str) {
    let text = got.text();
    assert_eq!(got.mail_from, "alice@example.org", "{got:?}");
    assert_eq!(got.rcpt_to, ["x@remote.test"], "{got:?}");
    assert!(text.contains(&format!("Subject: {subject}\r\n")), "{text}");
    assert!(text.contains("Hello from a real client."), "{text}");
    // The client sent neither: the server's own Message-ID names it.
    assert!(
        headers(&text)
            .lines()
            .any(|l| l.starts_with("Message-ID: <") && l.ends_with("@mx.example.org>")),
        "no Message-ID from the server: {text}"
    );
    assert!(has_header(&text, "Date"), "no Date: {text}");
    let sig = headers(&text)
        .split("\r\n")
        .find(|l| l.starts_with("DKIM-Signature:"))
        .unwrap_or_else(|| panic!("no DKIM-Signature: {text}"));
    assert!(sig.contains("d=example.org;"), "{sig}");
    assert_eq!(
        dkim::verify(&got.data, SELECTOR, DKIM_PEM),
        [format!("d=example.org s={SELECTOR} pass")],
        "{text}"
    );
}

/// Never the password, in any form a log could hold it.
fn assert_no_password(p: &Proc) {
    let log = p.log().join("\n");
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(
        !log.contains("YWxpY2Utc2VjcmV0"),
        "base64 password in the log"
    );
}

/// argv: port, CA file, mode (`starttls`, `implicit-login`, `wrong-password`), subject.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port, ca, mode, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
user, password = "alice@example.org", "alice-secret"
ctx = ssl.create_default_context(cafile=ca)
msg = ("From: Alice <alice@example.org>\r\nTo: x@remote.test\r\nSubject: %s\r\n\r\n"
       "Hello from a real client.\r\n" % subject).encode()
if mode == "implicit-login":
    s = smtplib.SMTP_SSL("127.0.0.1", port, local_hostname="laptop.test", context=ctx,
                         timeout=30)
    s.ehlo()
    assert "LOGIN" in s.esmtp_features.get("auth", ""), s.esmtp_features
    # AUTH LOGIN, the two-challenge dialogue, not PLAIN that login() would prefer.
    s.user, s.password = user, password
    code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    assert code == 235, code
else:
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="laptop.test", timeout=30)
    s.ehlo()
    assert s.has_extn("starttls"), s.esmtp_features
    assert not s.has_extn("auth"), "AUTH before TLS: %r" % s.esmtp_features
    s.starttls(context=ctx)
    s.ehlo()
    if mode == "wrong-password":
        try:
            s.login(user, "not-" + password)
            print("logged in")
        except smtplib.SMTPAuthenticationError as e:
            print(e.smtp_code)
        try:
            s.sendmail(user, ["x@remote.test"], msg)
            print("sent")
        except smtplib.SMTPSenderRefused as e:
            print(e.smtp_code)
        s.quit()
        sys.exit(0)
    code, _ = s.login(user, password)
    assert code == 235, code
refused = s.sendmail(user, ["x@remote.test"], msg)
assert refused == {}, refused
s.quit()
print("ok")
"#;

/// Runs [`SMTPLIB`]; `None` (skipped) without python3.
fn smtplib(p: &Proc, port: u16, mode: &str, subject: &str) -> Option<String> {
    if !installed("python3") {
        return None;
    }
    let args = [port.to_string(), p.ca(), mode.into(), subject.into()];
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(SMTPLIB).args(args);
    Some(run(&mut cmd, ""))
}

#[test]
fn smtplib_starttls_and_login_on_submission_relays_a_signed_message() {
    let sink = Sink::start();
    let mut p = Proc::start("smtplib-starttls", sink.port);
    let port = p.port("submission");
    let Some(out) = smtplib(&p, port, "starttls", "via smtplib starttls") else {
        return;
    };
    assert_eq!(out.trim(), "ok");
    let got = sink.wait_for(1);
    assert_relayed_and_signed(&got[0], "via smtplib starttls");
    assert_no_password(&p);
}

#[test]
fn smtplib_implicit_tls_and_auth_login_on_submissions_relays_a_signed_message() {
    let sink = Sink::start();
    let mut p = Proc::start("smtplib-implicit", sink.port);
    let port = p.port("submissions");
    let Some(out) = smtplib(&p, port, "implicit-login", "via smtplib smtps") else {
        return;
    };
    assert_eq!(out.trim(), "ok");
    let got = sink.wait_for(1);
    assert_relayed_and_signed(&got[0], "via smtplib smtps");
    assert_no_password(&p);
}

#[test]
fn smtplib_with_a_wrong_password_gets_535_and_cannot_send() {
    let sink = Sink::start();
    let mut p = Proc::start("smtplib-wrong", sink.port);
    let port = p.port("submission");
    let Some(out) = smtplib(&p, port, "wrong-password", "never sent") else {
        return;
    };
    // 535 5.7.8 for the login; then MAIL without AUTH is 530 5.7.0 (RFC 4954 §6).
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["535", "530"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(sink.count(), 0);
    let log = p.log().join("\n");
    assert!(!log.contains("not-alice-secret"), "{log}");
}

#[test]
fn curl_smtp_ssl_reqd_and_smtps_relay_signed_messages() {
    if !installed("curl") {
        return;
    }
    let sink = Sink::start();
    let mut p = Proc::start("curl", sink.port);
    let (starttls, implicit) = (p.port("submission"), p.port("submissions"));
    for (n, (scheme, port)) in [("smtp", starttls), ("smtps", implicit)]
        .into_iter()
        .enumerate()
    {
        let file = p.dir.join(format!("msg-{scheme}.txt"));
        std::fs::write(&file, message(&format!("via curl {scheme}"))).unwrap();
        let mut cmd = Command::new("curl");
        cmd.args(["--silent", "--show-error", "--ssl-reqd", "--cacert"])
            .arg(p.ca())
            .arg("--url")
            .arg(format!("{scheme}://127.0.0.1:{port}/laptop.test"))
            .arg("--user")
            .arg(format!("alice@example.org:{PASSWORD}"))
            .args(["--mail-from", "alice@example.org"])
            .args(["--mail-rcpt", "x@remote.test"])
            .arg("--upload-file")
            .arg(&file);
        run(&mut cmd, "");
        let got = sink.wait_for(n + 1);
        assert_relayed_and_signed(&got[n], &format!("via curl {scheme}"));
    }
    assert_no_password(&p);
}

#[test]
fn swaks_starttls_and_auth_plain_relays_a_signed_message() {
    if !installed("swaks") {
        return;
    }
    let sink = Sink::start();
    let mut p = Proc::start("swaks", sink.port);
    let port = p.port("submission");
    let mut cmd = Command::new("swaks");
    cmd.arg("--server")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--helo", "laptop.test", "--tls", "--auth", "PLAIN"])
        .args([
            "--auth-user",
            "alice@example.org",
            "--auth-password",
            PASSWORD,
        ])
        .args(["--from", "alice@example.org", "--to", "x@remote.test"])
        .args(["--data", "-"]);
    let out = run(&mut cmd, &message("via swaks"));
    assert!(out.contains("235 "), "{out}");
    let got = sink.wait_for(1);
    assert_relayed_and_signed(&got[0], "via swaks");
    assert_no_password(&p);
}
