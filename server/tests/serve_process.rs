//! The `mailsim-server` binary as a process: it survives running out of descriptors, and a
//! SIGTERM lets an open session finish, then exits 0 with the message stored.

// Tests drive a real process over real sockets and files; the Env seam is the server's rule.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mailsim-server");

/// A running server process and everything it wrote to stderr.
struct Proc {
    child: Child,
    dir: PathBuf,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Proc {
    /// Starts `mailsim-server serve` on a free loopback port; `fd_limit` runs it under
    /// `ulimit -n`.
    fn start(name: &str, fd_limit: Option<u32>, extra: &[&str]) -> Proc {
        let dir = std::env::temp_dir().join(format!("mailsim-proc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            "hostname = \"mx.example.org\"\ndomains = [\"example.org\"]\naccounts = [\"alice@example.org\"]\n[listen]\nsmtp = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        let mut cmd = match fd_limit {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("mailsim-server starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut p = Proc {
            child,
            dir,
            port: 0,
            log,
        };
        let line = p.wait_for_log(
            "mailsim-server: SMTP on 127.0.0.1:",
            Duration::from_secs(30),
        );
        let addr = line.split("SMTP on 127.0.0.1:").nth(1).unwrap();
        p.port = addr.split(',').next().unwrap().parse().unwrap();
        p
    }

    fn wait_for_log(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server exited ({status}) before logging {needle:?}: {:#?}",
                    self.log
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server still running after {within:?}: {:#?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
    }

    fn stored(&self) -> Vec<String> {
        mailbox_files(&self.dir.join("data/mail/alice@example.org/new"))
    }
}

fn mailbox_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    out.sort();
    out
}

/// A bare SMTP client: one command, one (possibly multi-line) reply.
struct Smtp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Smtp {
    fn connect(port: u16) -> std::io::Result<Smtp> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(Smtp {
            stream,
            buf: Vec::new(),
        })
    }

    /// Reads one reply; `None` on EOF or a read error.
    fn reply(&mut self) -> Option<String> {
        let mut text = String::new();
        loop {
            while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_string();
                let last = line.as_bytes().get(3) != Some(&b'-');
                text.push_str(&line);
                text.push('\n');
                if last {
                    return Some(text);
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn send(&mut self, line: &str) -> String {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
            .unwrap_or_else(|| panic!("no reply to {line:?}"))
    }

    fn expect(&mut self, line: &str, code: &str) {
        let r = self.send(line);
        assert!(r.starts_with(code), "{line:?} got {r:?}");
    }

    /// Greeting, EHLO, MAIL, RCPT, DATA: ready for the message.
    fn open_transaction(&mut self) {
        let greeting = self.reply().expect("a greeting");
        assert!(greeting.starts_with("220"), "{greeting:?}");
        self.expect("EHLO client.test", "250");
        self.expect("MAIL FROM:<carol@client.test>", "250");
        self.expect("RCPT TO:<alice@example.org>", "250");
        self.expect("DATA", "354");
    }

    fn finish_transaction(&mut self, subject: &str) {
        let msg = format!("Subject: {subject}\r\n\r\nbody\r\n.");
        self.expect(&msg, "250");
        self.expect("QUIT", "221");
    }
}

#[test]
fn running_out_of_descriptors_does_not_stop_the_server() {
    // Without -v: an accept error is a warning, logged whether or not tracing is on.
    let mut server = Proc::start("emfile", Some(64), &[]);
    // Each accepted session holds a descriptor; the kernel keeps completing handshakes into
    // the backlog, so connecting goes on succeeding after the server can no longer accept.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.logged("Too many open files") {
        assert!(
            held.len() < 400,
            "no EMFILE after {} connections",
            held.len()
        );
        assert!(Instant::now() < deadline, "no EMFILE in time");
        held.push(TcpStream::connect(("127.0.0.1", server.port)).unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    let line = server.wait_for_log("accept failed", Duration::from_secs(1));
    assert!(line.contains("retrying in"), "{line}");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "server exited on EMFILE"
    );
    drop(held);
    // Once the descriptors are back, the server accepts and stores mail again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client = loop {
        let mut c = Smtp::connect(server.port).unwrap();
        match c.reply() {
            Some(g) if g.starts_with("220") => break c,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no greeting after EMFILE: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    client.expect("EHLO client.test", "250");
    client.expect("MAIL FROM:<carol@client.test>", "250");
    client.expect("RCPT TO:<alice@example.org>", "250");
    client.expect("DATA", "354");
    client.finish_transaction("after EMFILE");
    let stored = server.stored();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].contains("Subject: after EMFILE"), "{stored:?}");
}

#[test]
fn sigterm_lets_an_open_session_finish_then_exits_0() {
    let mut server = Proc::start("sigterm", None, &[]);
    let mut client = Smtp::connect(server.port).unwrap();
    client.open_transaction();
    server.sigterm();
    server.wait_for_log("interrupted, shutting down", Duration::from_secs(10));
    // No new connections once shutdown began: the listening socket is closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a session open"
    );
    client.finish_transaction("during shutdown");
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {:#?}", server.log);
    let stored = server.stored();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].contains("Subject: during shutdown"), "{stored:?}");
}

#[test]
fn sessions_still_open_after_the_grace_period_are_cut_off() {
    let mut server = Proc::start("grace", None, &["--shutdown-grace", "1"]);
    // In the middle of a transaction (DATA answered, no message yet): the session may finish,
    // so the server waits for it, but only for the grace period.
    let mut busy = Smtp::connect(server.port).unwrap();
    busy.open_transaction();
    let started = Instant::now();
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(10));
    let took = started.elapsed();
    assert!(status.success(), "{status}: {:#?}", server.log);
    assert!(
        took >= Duration::from_millis(900),
        "did not wait for the session: {took:?}"
    );
    // The session was closed, not left hanging.
    assert_eq!(busy.reply(), None);
    assert!(server.stored().is_empty(), "nothing was acknowledged");
}

#[test]
fn an_idle_session_is_told_421_at_once_on_sigterm() {
    let mut server = Proc::start("idle", None, &["--shutdown-grace", "30"]);
    let mut idle = Smtp::connect(server.port).unwrap();
    assert!(idle.reply().unwrap().starts_with("220"));
    idle.expect("EHLO client.test", "250");
    let started = Instant::now();
    server.sigterm();
    let bye = idle.reply().expect("a 421 before the close");
    assert!(bye.starts_with("421 4.3.2 "), "{bye:?}");
    assert_eq!(idle.reply(), None, "closed after the 421");
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}: {:#?}", server.log);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited for an idle session instead of ending it"
    );
}

/// The files in the server's spool directory.
fn spool_files(server: &Proc) -> Vec<String> {
    match std::fs::read_dir(server.dir.join("data/spool")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A 3 MB message goes through the spool on a real filesystem (copy_file_range into the
/// mailbox file) and is stored octet for octet; the spool is empty once it is delivered,
/// and a client cut off half-way takes its spool file with it (what a crash leaves is
/// cleared at start-up: `smtp::spool`'s test).
#[test]
fn a_big_message_is_spooled_stored_whole_and_leaves_no_spool_file() {
    let server = Proc::start("spool", None, &[]);
    let mut client = Smtp::connect(server.port).unwrap();
    client.open_transaction();
    let mut body = String::from("Subject: big\r\n\r\n");
    for i in 0..40_000 {
        body.push_str(&format!("{i:06} {}\r\n", "b".repeat(70)));
    }
    client.stream.write_all(body.as_bytes()).unwrap();
    client.expect(".", "250");
    let stored = server.stored();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].ends_with(&body),
        "stored whole: {} octets",
        stored[0].len()
    );
    assert_eq!(spool_files(&server), Vec::<String>::new());

    // Half a message, then the client vanishes: its spool file goes with the connection.
    let mut half = Smtp::connect(server.port).unwrap();
    half.open_transaction();
    half.stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while spool_files(&server).is_empty() {
        assert!(Instant::now() < deadline, "never spooled");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(half);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !spool_files(&server).is_empty() {
        assert!(
            Instant::now() < deadline,
            "spool file left after disconnect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.stored().len(), 1, "nothing half-received was stored");
}
