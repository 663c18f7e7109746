//! One connection to a remote MTA: the SMTP dialogue its [`Behaviour`] scripts (see the
//! module docs of `remote`), the BDAT and DATA readers, STARTTLS, and the record of what it
//! accepted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

mod ruling;
pub(super) use ruling::Counters;
use ruling::{ruled, Asked};

use super::rules::{Action, ClientHistory, Phase, Rule};
use super::{Behaviour, Greylist, Mode, Received, RemoteLogs, RemoteSpec, RemoteTls, TlsHandshake};
use crate::clock::SimClock;
use crate::trace::Trace;
use mailsim_server::tls::MaybeTls;

pub(super) struct RemoteSession {
    pub(super) spec: Arc<RemoteSpec>,
    pub(super) clock: SimClock,
    pub(super) trace: Trace,
    pub(super) logs: RemoteLogs,
    pub(super) greylist: Greylist,
    pub(super) peer: SocketAddr,
    /// Plaintext, then TLS after STARTTLS: the server's own stream type.
    pub(super) stream: MaybeTls<TcpStream>,
    pub(super) buf: Vec<u8>,
    /// Certificate and config for STARTTLS, if this remote has one.
    pub(super) tls: Option<RemoteTls>,
    /// The remote's rules, explicit then limits ([`RemoteSpec::all_rules`]).
    pub(super) rules: Arc<Vec<Rule>>,
    /// Per client IP, shared by the remote's sessions (the rules' sliding windows).
    pub(super) history: Arc<Mutex<ClientHistory>>,
    pub(super) counters: Counters,
}

/// Why a session ended early.
pub(super) enum Stop {
    Dropped,
    Io,
}

impl RemoteSession {
    fn name(&self) -> &str {
        &self.spec.name
    }

    pub(super) async fn run(&mut self, b: Behaviour) -> Result<(), Stop> {
        self.trace.record(
            self.name(),
            "remote",
            format_args!("connection from {}", self.peer),
        );
        if b.mode == Mode::Blackhole {
            self.trace
                .record(self.name(), "remote", "black hole: never answers");
            // Hold the connection open and say nothing, reading and discarding input.
            let mut sink = [0u8; 1024];
            while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return Ok(());
        }
        let fired = self.ask(Phase::Connect, Asked::NOTHING);
        self.answer(&b, &b.banner, fired).await?;
        let (mut mail_from, mut rcpts): (Option<String>, Vec<String>) = (None, Vec::new());
        // The chunks of a BDAT transaction so far; `Some` from its first BDAT on.
        let mut chunks: Option<Vec<u8>> = None;
        loop {
            let line = self.read_line().await?;
            self.logs
                .lock()
                .unwrap()
                .get_mut(&self.spec.name)
                .unwrap()
                .commands
                .push(line.clone());
            self.trace
                .record(self.name(), "remote", format_args!("C: {line}"));
            let upper = line.to_ascii_uppercase();
            let verb = upper.split_whitespace().next().unwrap_or("");
            match verb {
                "EHLO" => {
                    let fired = self.ask(Phase::Ehlo, Asked::NOTHING);
                    let ehlo = fired
                        .as_ref()
                        .and_then(|f| f.reply.clone())
                        .unwrap_or_else(|| b.ehlo.clone());
                    if ehlo.starts_with('2') {
                        self.delay_for(&fired).await;
                        let mut lines = vec![ehlo.replace("{name}", &self.spec.name)];
                        lines.extend(
                            b.extensions
                                .iter()
                                // Not offered again over TLS (RFC 3207 §4.2).
                                .filter(|e| {
                                    !(self.stream.is_tls()
                                        && e.trim().eq_ignore_ascii_case("STARTTLS"))
                                })
                                .map(|e| format!("250 {e}")),
                        );
                        self.reply_lines(&b, &lines).await?;
                    } else {
                        self.answer(&b, &b.ehlo, fired).await?;
                    }
                }
                "HELO" => {
                    let fired = self.ask(Phase::Helo, Asked::NOTHING);
                    self.answer(&b, &b.helo, fired).await?
                }
                "STARTTLS" => {
                    if self.stream.is_tls() {
                        self.reply(&b, "554 5.5.1 TLS already active").await?;
                        continue;
                    }
                    if !b.offers_starttls() {
                        self.reply(&b, "502 5.5.1 STARTTLS not offered").await?;
                        continue;
                    }
                    let fired = self.ask(Phase::Starttls, Asked::NOTHING);
                    let scripted = fired
                        .as_ref()
                        .and_then(|f| f.reply.clone())
                        .unwrap_or_else(|| b.starttls.clone());
                    let r = if scripted.starts_with('2') && self.tls.is_none() {
                        "454 4.7.0 TLS not available".to_string()
                    } else {
                        scripted
                    };
                    self.answer(&b, &r, fired).await?;
                    if !r.starts_with('2') {
                        continue;
                    }
                    self.start_tls(&b).await?;
                    // A new session: nothing said before TLS counts (RFC 3207 §4.2).
                    mail_from = None;
                    rcpts.clear();
                    chunks = None;
                }
                "MAIL" => {
                    self.counters.transaction += 1;
                    self.counters.rcpt = 0;
                    let sender = angle(&line);
                    let fired = self.ask(
                        Phase::Mail,
                        Asked {
                            sender: Some(&sender),
                            recipients: &[],
                            size: size_param(&line),
                        },
                    );
                    let r = ruled(&fired, &b.mail);
                    if r.starts_with('2') {
                        mail_from = Some(angle(&line));
                        rcpts.clear();
                        chunks = None;
                    }
                    self.answer(&b, &r, fired).await?;
                }
                "RCPT" => {
                    let addr = angle(&line).to_ascii_lowercase();
                    self.counters.rcpt += 1;
                    let fired = self.ask(
                        Phase::Rcpt,
                        Asked {
                            sender: mail_from.as_deref(),
                            recipients: std::slice::from_ref(&addr),
                            size: None,
                        },
                    );
                    let scripted = b
                        .rcpt_for
                        .get(&addr)
                        .cloned()
                        .unwrap_or_else(|| b.rcpt.clone());
                    let mut r = ruled(&fired, &scripted);
                    if r.starts_with('2') && b.greylist_secs > 0.0 {
                        let key = (
                            self.peer.ip(),
                            mail_from.clone().unwrap_or_default(),
                            addr.clone(),
                        );
                        let now = self.clock.elapsed();
                        let first = *self.greylist.lock().unwrap().entry(key).or_insert(now);
                        if now < first + Duration::from_secs_f64(b.greylist_secs) {
                            r = "451 4.7.1 Greylisted, try again later".into();
                        }
                    }
                    if r.starts_with('2') {
                        rcpts.push(addr);
                    }
                    self.answer(&b, &r, fired).await?;
                }
                "BDAT" if b.offers("CHUNKING") => {
                    let Some((size, last)) = bdat_args(&line) else {
                        self.reply(&b, "501 5.5.4 Syntax: BDAT chunk-size [LAST]")
                            .await?;
                        continue;
                    };
                    let chunk = self.read_octets(size).await?;
                    self.trace.record(
                        self.name(),
                        "remote",
                        format_args!("C: [chunk {size} octets]"),
                    );
                    if mail_from.is_none() || rcpts.is_empty() {
                        self.reply(&b, "503 5.5.1 No valid recipients").await?;
                        continue;
                    }
                    let body = chunks.get_or_insert_with(Vec::new);
                    body.extend_from_slice(&chunk);
                    if !last {
                        let r = b.bdat.clone();
                        if !r.starts_with('2') {
                            // The transaction is over; its recipients are no longer valid.
                            (mail_from, chunks) = (None, None);
                            rcpts.clear();
                        }
                        self.reply(&b, &r).await?;
                        continue;
                    }
                    let message = chunks.take().unwrap_or_default();
                    self.end_of_data(&b, message, &mut mail_from, &mut rcpts)
                        .await?;
                }
                "DATA" if chunks.is_some() => {
                    self.reply(&b, "503 5.5.1 DATA in a BDAT transaction")
                        .await?;
                }
                "DATA" => {
                    if mail_from.is_none() || rcpts.is_empty() {
                        self.reply(&b, "554 5.5.1 No valid recipients").await?;
                        continue;
                    }
                    let fired = self.ask(
                        Phase::Data,
                        Asked {
                            sender: mail_from.as_deref(),
                            recipients: &rcpts,
                            size: None,
                        },
                    );
                    let r = ruled(&fired, &b.data);
                    self.answer(&b, &r, fired).await?;
                    if !r.starts_with('3') {
                        continue;
                    }
                    let message = self.read_data().await?;
                    self.trace.record(
                        self.name(),
                        "remote",
                        format_args!("C: [message {} octets]", message.len()),
                    );
                    self.end_of_data(&b, message, &mut mail_from, &mut rcpts)
                        .await?;
                }
                "RSET" => {
                    chunks = None;
                    mail_from = None;
                    rcpts.clear();
                    self.reply(&b, "250 2.0.0 Ok").await?;
                }
                "NOOP" => self.reply(&b, "250 2.0.0 Ok").await?,
                "QUIT" => {
                    self.reply(&b, "221 2.0.0 Bye").await?;
                    return Ok(());
                }
                _ => self.reply(&b, "500 5.5.2 Command not recognized").await?,
            }
        }
    }

    /// The end of a message (the final dot, or `BDAT ... LAST`): answered with
    /// `end_of_data`, recorded if that is a 2xx; the transaction is over either way.
    async fn end_of_data(
        &mut self,
        b: &Behaviour,
        message: Vec<u8>,
        mail_from: &mut Option<String>,
        rcpts: &mut Vec<String>,
    ) -> Result<(), Stop> {
        let fired = self.ask(
            Phase::EndOfData,
            Asked {
                sender: mail_from.as_deref(),
                recipients: rcpts,
                size: Some(message.len() as u64),
            },
        );
        let r = ruled(&fired, &b.end_of_data);
        if r.starts_with('2') {
            let action = fired.as_ref().and_then(|f| f.action);
            self.counters.messages += 1;
            self.history
                .lock()
                .unwrap()
                .messages
                .entry(self.peer.ip())
                .or_default()
                .push(self.clock.elapsed());
            let (from, to) = (mail_from.take(), std::mem::take(rcpts));
            match action {
                Some(Action::Discard) => {
                    self.trace.record(
                        self.name(),
                        "remote",
                        format_args!("discards the message ({} octets)", message.len()),
                    );
                    self.logs
                        .lock()
                        .unwrap()
                        .get_mut(&self.spec.name)
                        .unwrap()
                        .discarded += 1;
                }
                Some(Action::BounceLater) => {
                    let rule = fired.as_ref().map(|f| f.rule.clone()).unwrap_or_default();
                    self.bounce_later(&rule, &message, from.as_deref(), &to);
                    self.accept(message, from, to).await;
                }
                None => self.accept(message, from, to).await,
            }
        }
        *mail_from = None;
        rcpts.clear();
        self.answer(b, &r, fired).await
    }

    /// Records a message the remote has accepted (before its 2xx goes out).
    async fn accept(&mut self, message: Vec<u8>, from: Option<String>, recipients: Vec<String>) {
        let dkim = self.verify_dkim(&message).await;
        let rec = Received {
            mail_from: from.unwrap_or_default(),
            recipients,
            message,
            at: self.clock.elapsed(),
            tls: self.stream.is_tls(),
            dkim,
        };
        self.logs
            .lock()
            .unwrap()
            .get_mut(&self.spec.name)
            .unwrap()
            .accepted
            .push(rec);
    }

    /// Verifies an accepted message's DKIM signatures before answering its end of data, as
    /// a receiving MTA does; the verdict is traced when the message has a signature.
    async fn verify_dkim(&self, message: &[u8]) -> String {
        let v = crate::dkim::verify(message, self.spec.dns, &self.clock).await;
        if !v.signatures.is_empty() {
            self.trace.record(
                self.name(),
                "remote",
                format_args!("dkim={} [{}]", v.result, v.signatures.join("; ")),
            );
        }
        v.result
    }

    /// The server side of the handshake after a 2xx to STARTTLS (or the scripted failure).
    async fn start_tls(&mut self, b: &Behaviour) -> Result<(), Stop> {
        // Anything the client sent after STARTTLS in plaintext is discarded, not read as if
        // it had come over TLS (RFC 3207 §4.2; CVE-2011-0411).
        self.buf.clear();
        if b.tls_handshake == TlsHandshake::Fail {
            self.trace.record(
                self.name(),
                "remote",
                "breaks the TLS handshake: drops the connection",
            );
            let _ = self.stream.shutdown().await;
            return Err(Stop::Dropped);
        }
        let Some(tls) = self.tls.clone() else {
            return Err(Stop::Io);
        };
        let Some(tcp) = self.stream.take_plain() else {
            return Err(Stop::Io);
        };
        match tls.acceptor.accept(tcp).await {
            Ok(stream) => {
                self.stream = MaybeTls::from(stream);
                self.trace.record(self.name(), "remote", "TLS established");
                Ok(())
            }
            Err(e) => {
                self.trace.record(
                    self.name(),
                    "remote",
                    format_args!("TLS handshake failed: {e}"),
                );
                Err(Stop::Io)
            }
        }
    }

    async fn reply(&mut self, b: &Behaviour, r: &str) -> Result<(), Stop> {
        self.reply_lines(b, &[r.to_string()]).await
    }

    async fn reply_lines(&mut self, b: &Behaviour, lines: &[String]) -> Result<(), Stop> {
        self.counters.replies += 1;
        let tarpit = self.spec.limits.tarpit_secs.unwrap_or(0.0) * self.counters.replies as f64;
        let delay = b.reply_delay_secs + tarpit;
        if delay > 0.0 {
            let until = self.clock.now().plus(Duration::from_secs_f64(delay));
            self.clock.sleep_until(until).await;
        }
        let first = lines.first().map(String::as_str).unwrap_or("");
        if first == "drop" {
            self.trace
                .record(self.name(), "remote", "drops the connection");
            let _ = self.stream.shutdown().await;
            return Err(Stop::Dropped);
        }
        if first == "silent" {
            self.trace.record(self.name(), "remote", "stays silent");
            std::future::pending::<()>().await;
        }
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let l = l.replace("{name}", &self.spec.name);
            let (code, text) = l.split_at(3.min(l.len()));
            let sep = if i + 1 == lines.len() { " " } else { "-" };
            let line = format!("{code}{sep}{}", text.trim_start());
            self.trace
                .record(&self.spec.name, "remote", format_args!("S: {line}"));
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).await.map_err(|_| Stop::Io)
    }

    async fn fill(&mut self) -> Result<(), Stop> {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => Err(Stop::Io),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, Stop> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&c| c == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string());
            }
            self.fill().await?;
        }
    }

    /// Reads exactly `n` octets (a BDAT chunk), whatever they are.
    async fn read_octets(&mut self, n: usize) -> Result<Vec<u8>, Stop> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads a DATA body up to `<CRLF>.<CRLF>`, undoing dot-stuffing.
    async fn read_data(&mut self) -> Result<Vec<u8>, Stop> {
        let mut message = Vec::new();
        loop {
            let line = loop {
                if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break self.buf.drain(..pos + 2).collect::<Vec<u8>>();
                }
                self.fill().await?;
            };
            if line == b".\r\n" {
                return Ok(message);
            }
            let line = line.strip_prefix(b".").unwrap_or(&line);
            message.extend_from_slice(line);
        }
    }
}

/// The address between `<` and `>` in a MAIL/RCPT line.
fn angle(line: &str) -> String {
    match (line.find('<'), line.rfind('>')) {
        (Some(a), Some(b)) if b > a => line[a + 1..b].to_string(),
        _ => String::new(),
    }
}

/// The `SIZE=` parameter of a MAIL line (RFC 1870), if any.
fn size_param(line: &str) -> Option<u64> {
    line.split_ascii_whitespace().skip(1).find_map(|w| {
        let (k, v) = w.split_once('=')?;
        k.eq_ignore_ascii_case("SIZE").then(|| v.parse().ok())?
    })
}

/// `BDAT chunk-size [LAST]` (RFC 3030 §2): the size and whether it is the last chunk;
/// `None` for a malformed line.
fn bdat_args(line: &str) -> Option<(usize, bool)> {
    let mut words = line.split_ascii_whitespace().skip(1);
    let size = words.next()?.parse().ok()?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return None,
    };
    words.next().is_none().then_some((size, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdat_lines_are_size_and_last_or_nothing() {
        assert_eq!(bdat_args("BDAT 10"), Some((10, false)));
        assert_eq!(bdat_args("bdat 0 last"), Some((0, true)));
        assert_eq!(bdat_args("BDAT"), None);
        assert_eq!(bdat_args("BDAT x"), None);
        assert_eq!(bdat_args("BDAT 10 LAST x"), None);
        assert_eq!(bdat_args("BDAT 10 FIRST"), None);
    }
}
