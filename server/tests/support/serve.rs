//! A `mailsim-server serve -v` process for the real-client tests: MX, submission and
//! submissions (and POP3, POP3S) on free loopback ports, a test certificate, alice's account, a DKIM key for
//! example.org, and the queue's relayhost pointed at a local [`super::sink::Sink`].
//! (Copied and extended from serve_tls.rs, which the TLS work owns.)

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mailsim-server");

/// alice@example.org's password, and its argon2id hash with cheap parameters
/// (m = 8 KiB, t = 1: a test logs in in microseconds, not the OWASP default's ~50 ms).
pub const PASSWORD: &str = "alice-secret";
const HASH: &str =
    "$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2FsdA$y2O8Aqn9BlL+zCNqT8KvSbr3BAzMVhv6w6uHau2y6as";

/// The DKIM key the server signs example.org mail with (selector [`SELECTOR`]).
pub const DKIM_PEM: &str = include_str!("../../../scenarios/submission/keys/rsa2048.pem");
pub const SELECTOR: &str = "clients2026";

pub struct Proc {
    child: Child,
    pub dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

impl Proc {
    /// Starts the server in a fresh temp dir named after `name`; remote mail goes to the
    /// SMTP sink on `sink_port` (Postfix's `relayhost`, plaintext: the sink has no TLS).
    pub fn start(name: &str, sink_port: u16) -> Proc {
        let dir =
            std::env::temp_dir().join(format!("mailsim-clients-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = cert_pair();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        std::fs::write(dir.join("dkim.pem"), DKIM_PEM).unwrap();
        let config = format!(
            r#"hostname = "mx.example.org"
domains = ["example.org"]
accounts = [{{ address = "alice@example.org", password = "{HASH}" }}]
[auth]
# A wrong password still waits before its 535, but not a whole second.
failure_delay_ms = 20
max_failure_delay_ms = 40
[[dkim]]
domain = "example.org"
selector = "{SELECTOR}"
algorithm = "rsa-sha256"
key = "dkim.pem"
[tls]
cert = "cert.pem"
key = "key.pem"
[listen]
smtp = "127.0.0.1:0"
submission = "127.0.0.1:0"
submissions = "127.0.0.1:0"
pop3 = "127.0.0.1:0"
pop3s = "127.0.0.1:0"
imap = "127.0.0.1:0"
imaps = "127.0.0.1:0"
[queue]
relayhost = "127.0.0.1:{sink_port}"
tls = "none"
"#
        );
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

    /// The port the trace says listener `name` (`submission`, `submissions`) is bound to.
    pub fn port(&mut self, name: &str) -> u16 {
        let needle = format!("listening for {name} on 127.0.0.1:");
        let line = self.wait_for_log(&needle);
        let rest = line.split(&needle).nth(1).unwrap();
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Runs a Python client script with `args`; it must print `ok`. False (and SKIPPED
    /// printed) only when python3 cannot be run at all.
    #[allow(dead_code)]
    pub fn run_python(&self, script: &str, args: &[String]) -> bool {
        let out = match Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("SKIPPED: python3 not runnable ({e})");
                return false;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.trim() == "ok",
            "python: {}\nstdout: {stdout}\nstderr: {}\nserver: {:#?}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        true
    }

    pub fn ca(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
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
}
