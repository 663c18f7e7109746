//! TLS on real sockets: the `mailsim-server` binary with the MX, submission and submissions
//! listeners, driven by Python's smtplib (a real client's TLS stack, OpenSSL). STARTTLS on
//! the MX port then a local delivery; `SMTP_SSL` on the implicit-TLS port gets the greeting
//! and an EHLO that lists AUTH. Without `[tls]`, the server says it made a self-signed
//! certificate. (Logging in comes with the AUTH work.)

// Tests drive a real process over real sockets and files; the Env seam is the server's rule.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mailsim-server");

struct Proc {
    child: Child,
    dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const BASE: &str = "hostname = \"localhost\"\ndomains = [\"example.org\"]\naccounts = [\"alice@example.org\"]\n[listen]\nsmtp = \"127.0.0.1:0\"\nsubmission = \"127.0.0.1:0\"\nsubmissions = \"127.0.0.1:0\"\n";

impl Proc {
    /// `serve -v` with `config` (plus `files` next to it) on free loopback ports.
    fn start(name: &str, config: &str, files: &[(&str, &str)]) -> Proc {
        let dir = std::env::temp_dir().join(format!("mailsim-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, content) in files {
            std::fs::write(dir.join(f), content).unwrap();
        }
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("-v")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mailsim-server starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Proc { child, dir, log }
    }

    /// The port the trace says listener `name` is bound to.
    fn port(&mut self, name: &str) -> u16 {
        let needle = match name {
            "smtp" => "listening for SMTP on 127.0.0.1:".to_string(),
            n => format!("listening for {n} on 127.0.0.1:"),
        };
        let line = self.wait_for_log(&needle);
        let rest = line.split(&needle).nth(1).unwrap();
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn wait_for_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server exited ({status}) before {needle:?}: {:#?}",
                    self.log
                );
            }
            assert!(Instant::now() < deadline, "no {needle:?}: {:#?}", self.log);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stored(&self) -> Vec<String> {
        let dir = self.dir.join("data/mail/alice@example.org/new");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

/// Runs a Python script with `args`; `None` when there is no python3 to run it.
fn python(script: &str, args: &[String]) -> Option<String> {
    let out = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("SKIPPED: python3 not runnable ({e})");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

/// A certificate for `localhost` and 127.0.0.1 (PEM) and its key.
fn cert_pair() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
mx, implicit, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = smtplib.SMTP("127.0.0.1", mx, local_hostname="client.test", timeout=30)
s.ehlo()
assert s.has_extn("starttls"), s.esmtp_features
assert not s.has_extn("auth"), s.esmtp_features
s.starttls(context=ctx)
s.ehlo()
assert not s.has_extn("starttls"), s.esmtp_features
s.sendmail("carol@client.test", ["alice@example.org"],
           b"Subject: python over TLS\r\n\r\nhello\r\n")
s.quit()
s = smtplib.SMTP_SSL("127.0.0.1", implicit, local_hostname="client.test",
                     context=ctx, timeout=30)
code, _ = s.ehlo()
assert code == 250, code
assert "PLAIN" in s.esmtp_features.get("auth", ""), s.esmtp_features
assert not s.has_extn("starttls"), s.esmtp_features
s.quit()
print("ok")
"#;

#[test]
fn smtplib_starttls_on_the_mx_and_implicit_tls_on_submissions() {
    let (cert, key) = cert_pair();
    let config = format!("{BASE}[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    let mut p = Proc::start(
        "smtplib",
        &config,
        &[("cert.pem", &cert), ("key.pem", &key)],
    );
    let (mx, implicit) = (p.port("smtp"), p.port("submissions"));
    p.port("submission");
    let ca = p.dir.join("cert.pem").display().to_string();
    let Some(out) = python(SMTPLIB, &[mx.to_string(), implicit.to_string(), ca]) else {
        return;
    };
    assert_eq!(out.trim(), "ok");
    let stored = p.stored();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].contains("Subject: python over TLS"));
    let log = p.log.lock().unwrap().clone();
    assert!(!log.iter().any(|l| l.contains("self-signed")), "{log:#?}");
    assert!(
        log.iter().any(|l| l.contains("TLS established")),
        "{log:#?}"
    );
}

const SELF_SIGNED: &str = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), local_hostname="client.test",
                     context=ctx, timeout=30)
s.ehlo()
print(s.sock.getpeercert(binary_form=True) is not None)
s.quit()
"#;

#[test]
fn without_a_certificate_the_server_says_it_made_a_self_signed_one() {
    let mut p = Proc::start("selfsigned", BASE, &[]);
    let line = p.wait_for_log("no [tls] certificate configured");
    assert!(
        line.contains("using a self-signed certificate for localhost"),
        "{line}"
    );
    let implicit = p.port("submissions");
    // It is a working certificate: an unverifying client completes the handshake.
    if let Some(out) = python(SELF_SIGNED, &[implicit.to_string()]) {
        assert_eq!(out.trim(), "True");
    }
}

#[test]
fn a_bad_certificate_is_a_start_error_naming_tls_cert() {
    let (_, key) = cert_pair();
    let config = format!("{BASE}[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    let mut p = Proc::start(
        "badcert",
        &config,
        &[("cert.pem", "not a certificate\n"), ("key.pem", &key)],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    std::thread::sleep(Duration::from_millis(100));
    let log = p.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.contains("tls.cert: ")), "{log:#?}");
}
