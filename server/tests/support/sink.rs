//! A tiny SMTP server standing in for the remote MX: it accepts every transaction (no
//! ESMTP extensions, so the queue speaks plain RFC 5321) and records what arrived, so a
//! test sees the relayed message exactly as the next hop would.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One message as the sink received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message, dot-unstuffed, CRLF line ends.
    pub data: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

pub struct Sink {
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    /// Listens on a free loopback port; one thread per connection, for the test's lifetime.
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let g = g.clone();
                std::thread::spawn(move || {
                    let _ = session(stream, &g);
                });
            }
        });
        Sink { port, got }
    }

    /// Waits (up to 10 s) for `n` messages to have arrived; all that arrived, in order.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages reached the sink",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

fn session(stream: TcpStream, got: &Mutex<Vec<Received>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    out.write_all(b"220 sink.remote.test ESMTP test sink\r\n")?;
    let (mut from, mut rcpts) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let verb = cmd.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink.remote.test\r\n",
            "MAIL" => {
                from = path(&cmd);
                rcpts.clear();
                b"250 2.1.0 ok\r\n"
            }
            "RCPT" => {
                rcpts.push(path(&cmd));
                b"250 2.1.5 ok\r\n"
            }
            "DATA" => {
                out.write_all(b"354 go ahead\r\n")?;
                let data = read_data(&mut lines)?;
                got.lock().unwrap().push(Received {
                    mail_from: std::mem::take(&mut from),
                    rcpt_to: std::mem::take(&mut rcpts),
                    data,
                });
                b"250 2.0.0 queued at the sink\r\n"
            }
            "QUIT" => {
                out.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
            _ => b"502 5.5.1 not here\r\n",
        };
        out.write_all(reply)?;
    }
}

/// The address between `<` and `>` of a MAIL or RCPT command.
fn path(cmd: &str) -> String {
    let start = cmd.find('<').map_or(0, |i| i + 1);
    let end = cmd[start..].find('>').map_or(cmd.len(), |i| start + i);
    cmd[start..end].to_string()
}

/// The message up to the lone `.` (RFC 5321 §4.5.2: a leading dot is removed).
fn read_data(lines: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let body = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(body);
    }
}
