//! `mailsim serve` on real loopback sockets: Python's smtplib delivers a message, and the
//! message is then found durably in the mailbox folder.

// A real process on real sockets: its temp dir, config file and deadlines are real-world.
#![allow(clippy::disallowed_methods)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(name: &str) -> (Server, u16) {
    let dir = std::env::temp_dir().join(format!("mailsim-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "hostname = \"mx.example.org\"\ndomains = [\"example.org\"]\naccounts = [\"alice@example.org\"]\n[listen]\nsmtp = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailsim starts");
    let server = Server { child, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mailsim serve did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

#[test]
fn python_smtplib_delivers_to_a_local_mailbox() {
    let (server, port) = start("smtplib");
    let script = format!(
        r#"
import smtplib
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "carol@client.test"
m["To"] = "alice@example.org"
m["Subject"] = "Over real TCP"
m.set_content("Hello from smtplib.\n.leading dot\n")
with smtplib.SMTP("127.0.0.1", {port}, timeout=20) as s:
    code, caps = s.ehlo("client.test")
    assert code == 250, code
    assert s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("8bitmime"), caps
    refused = s.send_message(m)
    assert refused == {{}}, refused
    try:
        s.sendmail("carol@client.test", ["nobody@example.org"], "Subject: x\r\n\r\ny\r\n")
        raise SystemExit("unknown user was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = e.recipients["nobody@example.org"]
        assert code == 550 and msg.startswith(b"5.1.1"), (code, msg)
    try:
        s.sendmail("carol@client.test", ["someone@elsewhere.net"], "Subject: x\r\n\r\ny\r\n")
        raise SystemExit("relay was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = e.recipients["someone@elsewhere.net"]
        assert code == 554 and msg.startswith(b"5.7.1"), (code, msg)
print("ok")
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "smtplib failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mailbox = server.dir.join("data/mail/alice@example.org/new");
    let files: Vec<PathBuf> = std::fs::read_dir(&mailbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(files.len(), 1, "one message in {mailbox:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Subject: Over real TCP"), "{text}");
    assert!(
        text.contains("\r\n.leading dot\r\n"),
        "dot-unstuffed: {text}"
    );
    assert!(
        text.starts_with("Return-Path: <carol@client.test>\r\n"),
        "{text}"
    );
    assert!(text.contains("Received: from client.test"), "{text}");
}

#[test]
fn bad_config_names_file_and_line() {
    let dir = std::env::temp_dir().join(format!("mailsim-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("bad.toml");
    std::fs::write(
        &config,
        "hostname = \"h\"\ndomains = [\"example.org\"]\nacounts = []\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:1: key `acounts`: unknown field `acounts`"),
        "{err}"
    );
    assert!(
        err.contains("    3 | acounts = []"),
        "the offending line: {err}"
    );
}
