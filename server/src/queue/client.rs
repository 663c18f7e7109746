//! The outbound SMTP client: one session over an already-connected Env stream.
//!
//! [`deliver`] is the whole job in one call — greeting, EHLO (HELO fallback), one mail
//! transaction, QUIT — and answers with an outcome per recipient. When the caller needs a
//! step in between (STARTTLS after EHLO, several messages over one connection), it drives a
//! [`Client`] itself:
//!
//! ```text
//! Client::open(env, stream, cfg)   greeting + EHLO          → capabilities()
//!   .starttls(handshake)           STARTTLS, caller's TLS,  → Client over the TLS stream,
//!                                  then EHLO again             or Refused (still plaintext)
//!   .send(&msg) …                  MAIL, RCPT…, DATA, body  → Vec<RcptOutcome>
//!   .quit()                        QUIT                     → capabilities + transcript
//! ```
//!
//! The protocol decisions of a transaction — what is refused without asking, the command
//! lines, each recipient's outcome from the replies, when to send the body — are a sans-IO
//! state machine in [`transaction`], fed the replies this file reads; both the lockstep and
//! the pipelined loops here only write what it says and read what it needs.
//!
//! # Outcomes and errors
//!
//! Replies about one recipient become a [`RcptOutcome`]: 2xx after the final dot is
//! `Delivered`, any 4xx is `Deferred`, any 5xx is `Failed`, each with the server's [`Reply`].
//! A rejected MAIL FROM gives every recipient that reply; a reply to DATA or to the final dot
//! applies to every recipient the server had accepted. A few outcomes are decided here without
//! asking (the message is over the peer's SIZE limit: `552 5.3.4`; it needs SMTPUTF8 and the
//! peer lacks it: `550 5.6.7`, RFC 6531 §3.2; an address with control characters), so the
//! queue treats every recipient the same way whatever decided it.
//!
//! Everything that is not about a recipient is a [`SessionError`]: a 4xx/5xx greeting, EHLO
//! and HELO both refused, a timeout, a lost connection, a reply that is not SMTP. It comes in a
//! [`SessionFailure`] together with the outcomes that *were* final before it happened (a 550
//! to one RCPT stays a bounce even if the connection drops later) and `None` for the others,
//! which the caller retries — on the next MX or later. A connection lost after the final dot
//! but before its reply is such an error too: the message may have been delivered, and RFC
//! 5321 §4.1.1.4 accepts the duplicate a retry may cause over losing mail.
//!
//! A `421` to any command means the server is closing (RFC 5321 §3.8): it is treated like any
//! other 4xx for the recipients still open (all `Deferred` with that reply) and no further
//! command — not even QUIT — is sent.
//!
//! # Pipelining
//!
//! With PIPELINING (RFC 2920) MAIL, all RCPTs and DATA go out in one write and the replies are
//! read in order (in windows of [`PIPELINE_WINDOW`] commands, so a huge recipient list cannot
//! deadlock against a server that stops reading while its replies are not read). If no
//! recipient was accepted and the server still answers DATA with 354, a lone `.` ends the
//! empty message (RFC 2920 §3.1). Without PIPELINING each command waits for its reply, and
//! DATA is not sent at all when every RCPT failed.
//!
//! # Time
//!
//! No clock is read here except through the Env: every wait is `env::timeout_at` with a
//! deadline of `env.now()` plus [`ClientConfig::command_timeout`] (greeting, each command's
//! reply, each write — RFC 5321 §4.5.3.2 gives 5 minutes for most) or
//! [`ClientConfig::data_timeout`] (the reply to the final dot: 10 minutes).
//!
//! # Transcript
//!
//! Every line sent (`C: ...`) and received (`S: ...`, control characters escaped) in wire
//! order, the body as `C: [message N octets]` and `C: .`, and `note: ...` for decisions the
//! client took on its own. It is returned, not traced, so the caller can tag it with the
//! queue id and the peer's address.

mod body;
mod capabilities;
mod outcome;
mod prepare;
mod reader;
mod starttls;
#[cfg(test)]
mod tests;
mod transaction;

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::env::{timeout_at, Env};
use crate::mail::{Address, EnvelopeDsn, Notify};
use crate::smtp::Reply;

use self::body::BodyEncoder;
use self::prepare::{prepare, Body, Prepared};
use self::reader::ReplyReader;
use self::transaction::{unexpected, Step, Transaction};

pub use self::capabilities::Capabilities;
pub use self::outcome::{
    RcptOutcome, SessionError, SessionFailure, SessionReport, Stage, TransactionFailure,
};
pub use self::starttls::StartTls;

/// Most commands sent before their replies are read, with PIPELINING.
pub const PIPELINE_WINDOW: usize = 100;
/// The body goes out in writes of this size.
const BODY_CHUNK: usize = 64 * 1024;
/// A BDAT chunk holds about this many octets (the last one fewer).
pub const BDAT_CHUNK: usize = 1024 * 1024;
/// One read from the stream.
const READ_BUF: usize = 4096;

/// How the client behaves; shared by every session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Our name in EHLO/HELO.
    pub helo_name: String,
    /// Waiting for the greeting or a command's reply, and for each write.
    pub command_timeout: Duration,
    /// Waiting for the reply to the final `.` of DATA.
    pub data_timeout: Duration,
}

impl ClientConfig {
    /// RFC 5321 §4.5.3.2's values: 5 minutes per command, 10 minutes after the final dot.
    pub fn new(helo_name: impl Into<String>) -> ClientConfig {
        ClientConfig {
            helo_name: helo_name.into(),
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
        }
    }
}

/// One message for one session: the envelope and the bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutboundMessage<'a> {
    /// `None` is the null reverse-path `<>` (DSNs, RFC 5321 §4.5.5).
    pub mail_from: Option<&'a Address>,
    pub recipients: &'a [Address],
    /// The message as stored (headers and body, CRLF lines). Whether it is 7-bit, 8-bit
    /// or binary is read from these bytes (`mime::content_class`); the downgrade for a peer
    /// without 8BITMIME, line wrapping and dot-stuffing are done here.
    pub message: &'a [u8],
    /// Non-ASCII addresses or headers (RFC 6531). Non-ASCII addresses turn it on anyway.
    pub needs_smtputf8: bool,
    /// DSN parameters to pass on to a peer that offers DSN (RFC 3461 §5.2); `None`: none.
    pub dsn: Option<&'a OutboundDsn>,
    /// `REQUIRETLS` (RFC 8689 §4.2): passed on in MAIL. Whether the session may carry the
    /// message at all (TLS, and the peer offers REQUIRETLS) the caller decides.
    pub require_tls: bool,
}

/// The DSN parameters of an outbound message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundDsn {
    pub envelope: EnvelopeDsn,
    /// NOTIFY and ORCPT per recipient, in [`OutboundMessage::recipients`] order.
    pub recipients: Vec<(Notify, Option<String>)>,
}

/// One SMTP session: greeting + EHLO, one message, QUIT.
///
/// `stream` is already connected (and, for implicit TLS, already wrapped). For STARTTLS or
/// several messages per connection use [`Client`] directly.
pub async fn deliver<E: Env, S: AsyncRead + AsyncWrite + Unpin>(
    env: &E,
    stream: S,
    cfg: &ClientConfig,
    msg: &OutboundMessage<'_>,
) -> Result<SessionReport, SessionFailure> {
    let n = msg.recipients.len();
    let client = match Client::open(env, stream, cfg).await {
        Ok(client) => client,
        Err(mut failure) => {
            failure.per_recipient = vec![None; n];
            return Err(failure);
        }
    };
    send_and_quit(client, msg, async |_: &[RcptOutcome]| {}).await
}

/// The transaction and QUIT on an open session. `after_send` runs between the end of the
/// transaction and QUIT, with the per-recipient outcomes: a queue records its deliveries
/// durably there, so a crash during QUIT (or a peer that never answers it) cannot make it
/// send the message again.
pub async fn send_and_quit<E: Env, S: AsyncRead + AsyncWrite + Unpin>(
    mut client: Client<E, S>,
    msg: &OutboundMessage<'_>,
    after_send: impl AsyncFnOnce(&[RcptOutcome]),
) -> Result<SessionReport, SessionFailure> {
    let sent = client.send(msg).await;
    if let Ok(per_recipient) = &sent {
        after_send(per_recipient).await;
    }
    let (peer_capabilities, transcript) = client.quit().await;
    match sent {
        Ok(per_recipient) => Ok(SessionReport {
            per_recipient,
            peer_capabilities,
            transcript,
        }),
        Err(TransactionFailure {
            error,
            per_recipient,
        }) => Err(SessionFailure {
            error,
            per_recipient,
            peer_capabilities: Some(peer_capabilities),
            transcript,
        }),
    }
}

/// Where the session is between commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No transaction open: MAIL may come next.
    Idle,
    /// MAIL was accepted and the transaction was not completed: RSET before the next MAIL.
    InTransaction,
    /// The server closed (421), or the stream is unusable: send nothing more.
    Closed,
}

/// An SMTP client session after its greeting and EHLO; see the module docs.
pub struct Client<E: Env, S> {
    env: E,
    stream: S,
    cfg: ClientConfig,
    reader: ReplyReader,
    caps: Capabilities,
    transcript: Vec<String>,
    state: State,
    rbuf: Box<[u8]>,
}

impl<E: Env, S> fmt::Debug for Client<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("caps", &self.caps)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<E: Env, S: AsyncRead + AsyncWrite + Unpin> Client<E, S> {
    /// Reads the greeting and says EHLO (HELO if EHLO gets a 5xx).
    pub async fn open(env: &E, stream: S, cfg: &ClientConfig) -> Result<Self, SessionFailure> {
        let mut client = Client {
            env: env.clone(),
            stream,
            cfg: cfg.clone(),
            reader: ReplyReader::default(),
            caps: Capabilities::default(),
            transcript: Vec::new(),
            state: State::Idle,
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
        };
        match client.greet().await {
            Ok(()) => Ok(client),
            Err(error) => Err(client.into_failure(error, false).await),
        }
    }

    /// What the peer offered in its last EHLO.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The session so far.
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    /// One mail transaction. `Ok` has one outcome per recipient, in order.
    ///
    /// On `Err` the session is unusable (only [`Client::quit`] is left, and it sends nothing).
    pub async fn send(
        &mut self,
        msg: &OutboundMessage<'_>,
    ) -> Result<Vec<RcptOutcome>, TransactionFailure> {
        if self.state == State::Closed {
            return Err(TransactionFailure {
                error: SessionError::ConnectionLost {
                    stage: Stage::MailFrom,
                    detail: "the session has already ended".into(),
                },
                per_recipient: vec![None; msg.recipients.len()],
            });
        }
        let mut notes = Vec::new();
        let prepared = prepare(msg.message, &self.caps);
        let mut tx = Transaction::new(msg, &prepared, &self.caps, self.state, &mut notes);
        for text in notes {
            self.note(text);
        }
        let result = self.transaction(&prepared, &mut tx).await;
        self.state = match result {
            Ok(()) => tx.state(),
            Err(_) => State::Closed,
        };
        let outcomes = tx.into_outcomes();
        match result {
            Ok(()) => Ok(outcomes
                .into_iter()
                .map(|o| {
                    // Every path of `transaction` decides every recipient; this is a guard,
                    // not a case.
                    o.unwrap_or_else(|| {
                        RcptOutcome::Deferred(Reply::new(451, (4, 3, 0), "no outcome recorded"))
                    })
                })
                .collect()),
            Err(error) => Err(TransactionFailure {
                error,
                per_recipient: outcomes,
            }),
        }
    }

    /// QUIT (unless the session is already over), then the capabilities and transcript.
    /// QUIT's reply and any error are ignored: the outcomes are already known.
    pub async fn quit(mut self) -> (Capabilities, Vec<String>) {
        if self.state != State::Closed {
            self.send_quit().await;
            let deadline = self.env.now().plus(self.cfg.command_timeout);
            let _ = timeout_at(&self.env, deadline, self.stream.shutdown()).await;
        }
        (self.caps, self.transcript)
    }

    // ---- session steps ----

    async fn greet(&mut self) -> Result<(), SessionError> {
        let greeting = self
            .read_reply(Stage::Greeting, self.cfg.command_timeout)
            .await?;
        match greeting.code / 100 {
            2 => self.hello().await,
            4 | 5 => Err(SessionError::Rejected {
                stage: Stage::Greeting,
                reply: greeting,
            }),
            _ => Err(unexpected(Stage::Greeting, &greeting)),
        }
    }

    async fn hello(&mut self) -> Result<(), SessionError> {
        let ehlo = format!("EHLO {}", self.cfg.helo_name);
        let reply = self.command(Stage::Ehlo, &ehlo).await?;
        match reply.code / 100 {
            2 => {
                self.caps = Capabilities::from_ehlo(&reply);
                Ok(())
            }
            // 500/502 from an old server, or a policy 5xx: either way HELO is the fallback
            // (RFC 5321 §3.2), and HELO's own reply says whether we may go on.
            5 => {
                let helo = format!("HELO {}", self.cfg.helo_name);
                let reply = self.command(Stage::Helo, &helo).await?;
                match reply.code / 100 {
                    2 => {
                        self.caps = Capabilities::from_helo(&reply);
                        Ok(())
                    }
                    4 | 5 => Err(SessionError::Rejected {
                        stage: Stage::Helo,
                        reply,
                    }),
                    _ => Err(unexpected(Stage::Helo, &reply)),
                }
            }
            4 => Err(SessionError::Rejected {
                stage: Stage::Ehlo,
                reply,
            }),
            _ => Err(unexpected(Stage::Ehlo, &reply)),
        }
    }

    /// One transaction: the decisions are [`Transaction`]'s, the I/O is here.
    async fn transaction(
        &mut self,
        msg: &Prepared<'_>,
        tx: &mut Transaction,
    ) -> Result<(), SessionError> {
        if tx.commands().is_empty() {
            return Ok(());
        }
        if tx.needs_rset() {
            let reply = self.command(Stage::Rset, "RSET").await?;
            if reply.code / 100 != 2 {
                return Err(SessionError::Rejected {
                    stage: Stage::Rset,
                    reply,
                });
            }
            tx.reset();
        }
        let step = if self.caps.pipelining {
            self.pipelined(tx).await?
        } else {
            self.lockstep(tx).await?
        };
        match step {
            Step::SendBody if tx.bdat() => self.send_chunks(msg, tx).await?,
            Step::SendBody => {
                self.send_body(&msg.message).await?;
                let end = self
                    .read_reply(Stage::EndOfData, self.cfg.data_timeout)
                    .await?;
                tx.on_end_of_data(end)?;
            }
            Step::SendLoneDot => {
                self.transcript.push("C: .".into());
                self.write_raw(Stage::Message, b".\r\n").await?;
                let end = self
                    .read_reply(Stage::EndOfData, self.cfg.data_timeout)
                    .await?;
                tx.on_lone_dot_reply(&end);
            }
            Step::Next | Step::Done => {}
        }
        Ok(())
    }

    /// One command, one reply, until the transaction says it is done or wants the body.
    async fn lockstep(&mut self, tx: &mut Transaction) -> Result<Step, SessionError> {
        for k in 0..tx.commands().len() {
            let line = tx.commands()[k].clone();
            let reply = self.command(tx.stage(k), &line).await?;
            match tx.on_reply(k, reply)? {
                Step::Next => continue,
                step => return Ok(step),
            }
        }
        Ok(Step::Done)
    }

    /// MAIL, every RCPT and DATA in one write (per window of [`PIPELINE_WINDOW`]), then
    /// their replies in order.
    async fn pipelined(&mut self, tx: &mut Transaction) -> Result<Step, SessionError> {
        let n = tx.commands().len();
        let mut start = 0;
        while start < n {
            let end = (start + PIPELINE_WINDOW).min(n);
            let stage = if start == 0 {
                Stage::MailFrom
            } else {
                Stage::RcptTo
            };
            self.write_lines(stage, &tx.commands()[start..end]).await?;
            for k in start..end {
                let reply = self
                    .read_reply(tx.stage(k), self.cfg.command_timeout)
                    .await?;
                match tx.on_reply(k, reply)? {
                    Step::Next => continue,
                    step => return Ok(step),
                }
            }
            if !tx.mail_accepted() {
                // No transaction: the RCPTs of later windows would only earn 503s.
                return Ok(Step::Done);
            }
            start = end;
        }
        Ok(Step::Done)
    }

    async fn send_body(&mut self, message: &[u8]) -> Result<(), SessionError> {
        self.transcript
            .push(format!("C: [message {} octets]", message.len()));
        let mut stuffer = BodyEncoder::data();
        let mut out = Vec::with_capacity(BODY_CHUNK.min(message.len()) + 64);
        let mut chunks = message.chunks(BODY_CHUNK).peekable();
        loop {
            out.clear();
            if let Some(chunk) = chunks.next() {
                stuffer.encode(chunk, &mut out);
            }
            let done = chunks.peek().is_none();
            if done {
                stuffer.finish(&mut out);
                self.transcript.push("C: .".into());
            }
            self.write_raw(Stage::Message, &out).await?;
            if done {
                return Ok(());
            }
        }
    }

    /// The message in BDAT chunks (RFC 3030): each chunk's length on its command line, the
    /// octets right after, no dot-stuffing and no terminator; one `BDAT n LAST` when the
    /// message fits [`BDAT_CHUNK`]. Each chunk waits for its reply (chunks are not
    /// pipelined), so a 4xx/5xx stops the rest being sent (RFC 3030 §4.2). A BINARYMIME
    /// message goes exactly as stored; any other gets the line work of [`BodyEncoder::bdat`].
    async fn send_chunks(
        &mut self,
        msg: &Prepared<'_>,
        tx: &mut Transaction,
    ) -> Result<(), SessionError> {
        let binary = msg.body == Body::BinaryMime;
        let message: &[u8] = &msg.message;
        let mut encoder = BodyEncoder::bdat();
        let mut at = 0;
        let mut out = Vec::with_capacity(BDAT_CHUNK.min(message.len() + 1024) + 64);
        loop {
            out.clear();
            if binary {
                let end = (at + BDAT_CHUNK).min(message.len());
                out.extend_from_slice(&message[at..end]);
                at = end;
            } else {
                while out.len() < BDAT_CHUNK && at < message.len() {
                    let end = (at + BODY_CHUNK).min(message.len());
                    encoder.encode(&message[at..end], &mut out);
                    at = end;
                }
            }
            let last = at >= message.len();
            if last && !binary {
                encoder.finish(&mut out);
            }
            let line = match last {
                true => format!("BDAT {} LAST", out.len()),
                false => format!("BDAT {}", out.len()),
            };
            self.transcript.push(format!("C: {line}"));
            self.transcript
                .push(format!("C: [chunk {} octets]", out.len()));
            let mut wire = Vec::with_capacity(line.len() + 2 + out.len());
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(&out);
            self.write_raw(Stage::Message, &wire).await?;
            let stage = if last {
                Stage::EndOfData
            } else {
                Stage::Message
            };
            let reply = self.read_reply(stage, self.cfg.data_timeout).await?;
            if tx.on_chunk_reply(reply, last)? == Step::Done {
                return Ok(());
            }
        }
    }

    async fn send_quit(&mut self) {
        if self.write_lines(Stage::Quit, &["QUIT"]).await.is_ok() {
            let _ = self.read_reply(Stage::Quit, self.cfg.command_timeout).await;
        }
        self.state = State::Closed;
    }

    /// Ends a session that failed: QUIT if the server refused something but is still there
    /// (RFC 5321 §3.1 asks for it after a 554 greeting), nothing after a 421 or a broken stream.
    async fn into_failure(mut self, error: SessionError, ehlo_done: bool) -> SessionFailure {
        let polite = matches!(&error, SessionError::Rejected { reply, .. } if reply.code != 421);
        if polite && self.state != State::Closed {
            self.send_quit().await;
        }
        SessionFailure {
            error,
            per_recipient: Vec::new(),
            peer_capabilities: ehlo_done.then_some(self.caps),
            transcript: self.transcript,
        }
    }

    // ---- I/O ----

    async fn command(&mut self, stage: Stage, line: &str) -> Result<Reply, SessionError> {
        self.write_lines(stage, &[line]).await?;
        self.read_reply(stage, self.cfg.command_timeout).await
    }

    async fn write_lines<L: AsRef<str>>(
        &mut self,
        stage: Stage,
        lines: &[L],
    ) -> Result<(), SessionError> {
        let mut out = Vec::new();
        for line in lines {
            let line = line.as_ref();
            self.transcript.push(format!("C: {line}"));
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.write_raw(stage, &out).await
    }

    async fn write_raw(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), SessionError> {
        let deadline = self.env.now().plus(self.cfg.command_timeout);
        let stream = &mut self.stream;
        let io = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match timeout_at(&self.env, deadline, io).await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(SessionError::ConnectionLost {
                stage,
                detail: e.to_string(),
            }),
            None => Err(SessionError::Timeout { stage }),
        }
    }

    /// The next reply, within `timeout` for all of it (a server trickling one octet at a time
    /// cannot stretch the wait).
    async fn read_reply(&mut self, stage: Stage, timeout: Duration) -> Result<Reply, SessionError> {
        let deadline = self.env.now().plus(timeout);
        loop {
            if let Some(next) = self.reader.next_reply() {
                self.reader.drain_log(&mut self.transcript);
                return next.map_err(|detail| SessionError::Protocol { stage, detail });
            }
            let read = timeout_at(&self.env, deadline, self.stream.read(&mut self.rbuf)).await;
            let error = match read {
                Some(Ok(0)) => SessionError::ConnectionLost {
                    stage,
                    detail: "connection closed by the server".into(),
                },
                Some(Ok(n)) => {
                    let n = n.min(self.rbuf.len());
                    self.reader.push(&self.rbuf[..n]);
                    self.reader.drain_log(&mut self.transcript);
                    continue;
                }
                Some(Err(e)) => SessionError::ConnectionLost {
                    stage,
                    detail: e.to_string(),
                },
                None => SessionError::Timeout { stage },
            };
            if let Some(unfinished) = self.reader.take_unfinished() {
                self.transcript.push(unfinished);
            }
            return Err(error);
        }
    }

    fn note(&mut self, text: String) {
        self.transcript.push(format!("note: {text}"));
    }
}
