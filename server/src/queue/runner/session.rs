//! One connection to one address of one MX: connect, STARTTLS (and its plaintext fallback),
//! one transaction over the outbound [`client`], and the acceptances recorded durably
//! between the end of the data and QUIT.
//!
//! With `tls = "may"` (the default) the session is upgraded with STARTTLS before MAIL FROM
//! whenever the peer offers it (see [`crate::queue::tls`]), and TLS trouble never stops a
//! delivery that plaintext could make — what Postfix does at `smtp_tls_security_level = may`:
//! - STARTTLS refused (4xx/5xx other than 421): the session goes on in plaintext on the same
//!   connection (the server is still in its post-EHLO state, RFC 3207 §4).
//! - The handshake fails or times out: the connection is unusable (its TLS state is
//!   unknown), so the queue reconnects once to the same address and delivers in plaintext
//!   without sending STARTTLS — Postfix's plaintext retry on a new connection. If that second
//!   connection fails too, the attempt fails like any other (next address, then retry later).
//! - A 421 to STARTTLS, the connection lost before STARTTLS's reply, or EHLO failing over
//!   TLS is an ordinary session failure (next address or MX, then a retry later).
//!
//! With `tls = "encrypt"` (Postfix `encrypt`) plaintext is not an option: a peer that does
//! not offer STARTTLS or refuses it is sent QUIT, and a failed handshake is not retried
//! without TLS; the recipients stay open with `451 4.7.4` / `4.7.5`, so the next MX is tried
//! and the message retried later. A message with `TLS-Required: No` (RFC 8689 §5) is sent
//! under `may` rules instead ([`crate::queue::tls::TlsPolicy::for_message`]), and a REQUIRETLS message keeps its
//! own rule (a 5.7.30 failure at once, [`HostSession::send`]).
//!
//! The queue trace says which way it went: `<id> TLS established with <peer>`, `<id>
//! STARTTLS refused by <peer> ...: continuing in plaintext`, or `<id> STARTTLS with <peer>
//! failed (...): reconnecting without STARTTLS`. Nothing about the TLS session itself
//! (version, cipher suite, keys) is traced: only the plaintext above it.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::env::{timeout_at, Env};
use crate::mail::header::header_section;
use crate::mail::Address;
use crate::smtp::Reply;

use super::super::client::{
    self, Client, OutboundDsn, OutboundMessage, RcptOutcome, SessionError, SessionFailure,
    SessionReport, Stage, StartTls,
};
use super::super::store::RecipientState;
use super::super::tls::StartTlsConnector;
use super::attempt::Attempt;

/// Where a session goes.
pub(super) struct Target<'a> {
    /// The MX host name (for SNI and the DSN's Remote-MTA).
    pub host: &'a str,
    /// `host[ip]`, as the trace names it.
    pub peer: String,
    pub addr: SocketAddr,
}

/// Why a session decided nothing for some recipients: the reply to remember (what they are
/// deferred with if no later host decides them) and the outcomes that *were* final before
/// the connection failed.
pub(super) type Unfinished = (Reply, Vec<Option<RcptOutcome>>);

/// Connects to `target` and runs one SMTP transaction for the `open` recipients (positions
/// in [`Attempt::slots`]). With the outcomes comes whether the peer offers DSN: then the
/// DSN parameters went on with the message, and the peer (not we) owes success notices.
pub(super) async fn try_host<E: Env>(
    attempt: &Attempt<E>,
    target: &Target<'_>,
    open: &[usize],
    body: &[u8],
) -> Result<(Vec<RcptOutcome>, bool), Unfinished> {
    let options = &attempt.msg.options;
    let policy = attempt
        .inner
        .config
        .tls
        .for_message(options.require_tls, options.tls_required_no);
    let session = HostSession {
        attempt,
        target,
        slots: open.iter().map(|&k| attempt.slots[k]).collect(),
        tls_mandatory: policy.is_mandatory() && !options.require_tls,
    };
    if policy != attempt.inner.config.tls {
        attempt.inner.env.trace(
            "queue",
            format_args!(
                "{} has TLS-Required: No: TLS is opportunistic for it (RFC 8689 §5)",
                attempt.id
            ),
        );
    }
    let rcpts: Vec<Address> = open
        .iter()
        .map(|&k| attempt.recipients[k].clone())
        .collect();
    let dsn = OutboundDsn {
        envelope: attempt.msg.options.dsn.clone(),
        recipients: open
            .iter()
            .filter_map(|&k| attempt.msg.recipients.get(attempt.slots[k]))
            .map(|r| (r.notify, r.orcpt.clone()))
            .collect(),
    };
    let out = OutboundMessage {
        mail_from: attempt.msg.mail_from.as_ref(),
        recipients: &rcpts,
        message: body,
        needs_smtputf8: header_section(body).iter().any(|b| *b >= 0x80),
        dsn: Some(&dsn),
        require_tls: attempt.msg.options.require_tls,
    };
    session.run(&out).await
}

/// How a session that tried STARTTLS ended.
enum TlsAttempt {
    /// The session ran its course (over TLS, in plaintext after a refused STARTTLS, or in
    /// plaintext because STARTTLS was not offered), or failed for a reason that has nothing
    /// to do with TLS. The first `traced` transcript lines are already in the trace.
    Done {
        result: Result<SessionReport, SessionFailure>,
        traced: usize,
    },
    /// The server said 220 to STARTTLS and the handshake failed or timed out: the
    /// connection is gone, no recipient was decided.
    HandshakeFailed(SessionFailure),
    /// TLS is mandatory and the peer did not offer STARTTLS or refused it: QUIT was sent,
    /// nothing else; every recipient stays open with `reply`.
    PlaintextRefused {
        reply: Reply,
        transcript: Vec<String>,
        traced: usize,
    },
}

/// One session of an attempt with one host.
struct HostSession<'a, E: Env> {
    attempt: &'a Attempt<E>,
    target: &'a Target<'a>,
    /// The queue slots of the recipients this session carries, in order.
    slots: Vec<usize>,
    /// No plaintext delivery (`tls = "encrypt"`, and the message has no `TLS-Required: No`
    /// and no REQUIRETLS).
    tls_mandatory: bool,
}

impl<E: Env> HostSession<'_, E> {
    fn env(&self) -> &E {
        &self.attempt.inner.env
    }

    async fn run(&self, out: &OutboundMessage<'_>) -> Result<(Vec<RcptOutcome>, bool), Unfinished> {
        let (env, id, peer) = (self.env(), self.attempt.id, &self.target.peer);
        let n = out.recipients.len();
        let stream = self.connect(n).await?;
        let (result, traced) = match &self.attempt.inner.tls {
            None => (self.deliver(stream, out).await, 0),
            Some(tls) => match self.deliver_with_starttls(tls, stream, out).await {
                TlsAttempt::Done { result, traced } => (result, traced),
                TlsAttempt::PlaintextRefused {
                    reply,
                    transcript,
                    traced,
                } => {
                    self.trace_transcript(transcript.get(traced..).unwrap_or(&[]));
                    env.trace(
                        "queue",
                        format_args!("{id} not sent to {peer} in plaintext: {reply}"),
                    );
                    return Err((reply, vec![None; n]));
                }
                TlsAttempt::HandshakeFailed(failure) if self.tls_mandatory => {
                    self.trace_transcript(&failure.transcript);
                    let reply = Reply::new(
                        451,
                        (4, 7, 5),
                        format!(
                            "TLS is required, but the TLS handshake with {peer} failed: {}",
                            failure.error
                        ),
                    );
                    env.trace(
                        "queue",
                        format_args!("{id} not sent to {peer} in plaintext: {reply}"),
                    );
                    return Err((reply, vec![None; n]));
                }
                TlsAttempt::HandshakeFailed(failure) => {
                    self.trace_transcript(&failure.transcript);
                    env.trace(
                        "queue",
                        format_args!(
                            "{id} STARTTLS with {peer} failed ({}): reconnecting without STARTTLS",
                            failure.error
                        ),
                    );
                    let stream = self.connect(n).await?;
                    (self.deliver(stream, out).await, 0)
                }
            },
        };
        match result {
            Ok(report) => {
                self.trace_transcript(report.transcript.get(traced..).unwrap_or(&[]));
                Ok((report.per_recipient, report.peer_capabilities.dsn))
            }
            Err(failure) => {
                self.trace_transcript(failure.transcript.get(traced..).unwrap_or(&[]));
                env.trace(
                    "queue",
                    format_args!("{id} session with {peer} failed: {}", failure.error),
                );
                let reply = failure.error.reply().cloned().unwrap_or_else(|| {
                    Reply::new(451, (4, 4, 2), format!("{peer}: {}", failure.error))
                });
                // A 5xx greeting is the host refusing us, not the recipients failing: try
                // the next MX; if none takes it, the recipients are deferred with this reply.
                let reply = if reply.code >= 500 {
                    Reply::new(451, (4, 4, 2), format!("{peer} said: {reply}"))
                } else {
                    reply
                };
                let mut per_recipient = failure.per_recipient;
                per_recipient.resize(n, None);
                Err((reply, per_recipient))
            }
        }
    }

    /// A TCP connection within the connect timeout.
    async fn connect(&self, n: usize) -> Result<E::Stream, Unfinished> {
        let (env, id, peer) = (self.env(), self.attempt.id, &self.target.peer);
        let deadline = env.now().plus(self.attempt.inner.config.connect_timeout());
        let why = match timeout_at(env, deadline, env.connect(self.target.addr)).await {
            Some(Ok(s)) => return Ok(s),
            Some(Err(e)) => e.to_string(),
            None => "timed out".to_string(),
        };
        env.trace("queue", format_args!("{id} connect to {peer}: {why}"));
        Err((
            Reply::new(451, (4, 4, 1), format!("connect to {peer}: {why}")),
            vec![None; n],
        ))
    }

    /// Durably records every `Delivered` outcome; called between the end of the data and
    /// QUIT, so the window in which a crash resends an accepted message is one fsync long.
    async fn record_delivered(&self, outcomes: &[RcptOutcome]) {
        let updates: Vec<(usize, RecipientState)> = outcomes
            .iter()
            .zip(&self.slots)
            .filter_map(|(o, &slot)| match o {
                RcptOutcome::Delivered(r) => Some((
                    slot,
                    RecipientState::Delivered {
                        reply: r.to_string(),
                    },
                )),
                _ => None,
            })
            .collect();
        if updates.is_empty() {
            return;
        }
        let id = self.attempt.id;
        match self.attempt.inner.store.record(id, &updates).await {
            Ok(()) => self
                .attempt
                .recorded
                .lock()
                .unwrap()
                .extend(updates.iter().map(|(s, _)| *s)),
            Err(e) => self.env().trace(
                "queue",
                format_args!("{id} recording deliveries failed: {e} (recorded later)"),
            ),
        }
    }

    /// One transaction and QUIT on an open session, recording deliveries before QUIT.
    ///
    /// A REQUIRETLS message goes only over TLS (`secured`) to a peer that offers REQUIRETLS
    /// (RFC 8689 §4.2.1); otherwise nothing is sent, and every recipient fails with `5.7.30`
    /// ("REQUIRETLS support required", RFC 8689 §6) so the sender learns of it at once.
    async fn send<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: Client<E, S>,
        out: &OutboundMessage<'_>,
        secured: bool,
    ) -> Result<SessionReport, SessionFailure> {
        if out.require_tls && !(secured && client.capabilities().require_tls) {
            let peer = &self.target.peer;
            let why = match secured {
                false => "no TLS session",
                true => "the peer does not offer REQUIRETLS",
            };
            self.env().trace(
                "queue",
                format_args!(
                    "{} REQUIRETLS message not sent to {peer}: {why}",
                    self.attempt.id
                ),
            );
            let reply = Reply::new(
                550,
                (5, 7, 30),
                format!("REQUIRETLS support required: {peer}: {why}"),
            );
            let (peer_capabilities, transcript) = client.quit().await;
            return Ok(SessionReport {
                per_recipient: vec![RcptOutcome::Failed(reply); out.recipients.len()],
                peer_capabilities,
                transcript,
            });
        }
        client::send_and_quit(client, out, async |o: &[RcptOutcome]| {
            self.record_delivered(o).await
        })
        .await
    }

    /// Greeting, EHLO, one transaction, QUIT (no STARTTLS).
    async fn deliver<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        out: &OutboundMessage<'_>,
    ) -> Result<SessionReport, SessionFailure> {
        match Client::open(self.env(), stream, &self.attempt.inner.client).await {
            Ok(client) => self.send(client, out, false).await,
            Err(mut failure) => {
                failure.per_recipient = vec![None; out.recipients.len()];
                Err(failure)
            }
        }
    }

    /// Greeting and EHLO, STARTTLS if offered, then the transaction and QUIT.
    async fn deliver_with_starttls(
        &self,
        tls: &StartTlsConnector,
        stream: E::Stream,
        out: &OutboundMessage<'_>,
    ) -> TlsAttempt {
        let (env, id, peer) = (self.env(), self.attempt.id, &self.target.peer);
        let client = match Client::open(env, stream, &self.attempt.inner.client).await {
            Ok(client) => client,
            Err(failure) => {
                return TlsAttempt::Done {
                    result: Err(failure),
                    traced: 0,
                }
            }
        };
        if !client.capabilities().starttls {
            if self.tls_mandatory {
                return self
                    .refuse_plaintext(client, format!("was not offered by host {peer}"), 0)
                    .await;
            }
            return TlsAttempt::Done {
                result: self.send(client, out, false).await,
                traced: 0,
            };
        }
        // The part of the transcript before the upgrade goes to the trace now, so the
        // queue's TLS line sits where it happened.
        let (host, ip) = (self.target.host, self.target.addr.ip());
        match client.starttls(|s| tls.connect(host, ip, s)).await {
            Ok(StartTls::Secured(client)) => {
                let traced = client.transcript().len();
                self.trace_transcript(client.transcript());
                env.trace("queue", format_args!("{id} TLS established with {peer}"));
                TlsAttempt::Done {
                    result: self.send(client, out, true).await,
                    traced,
                }
            }
            Ok(StartTls::Refused { client, reply }) if self.tls_mandatory => {
                let traced = client.transcript().len();
                self.trace_transcript(client.transcript());
                let why = format!("host {peer} refused STARTTLS ({reply})");
                self.refuse_plaintext(client, why, traced).await
            }
            Ok(StartTls::Refused { client, reply }) => {
                let traced = client.transcript().len();
                self.trace_transcript(client.transcript());
                env.trace(
                    "queue",
                    format_args!(
                        "{id} STARTTLS refused by {peer} ({reply}): continuing in plaintext"
                    ),
                );
                TlsAttempt::Done {
                    result: self.send(client, out, false).await,
                    traced,
                }
            }
            Err(failure)
                if matches!(
                    failure.error,
                    SessionError::Tls(_)
                        | SessionError::Timeout {
                            stage: Stage::TlsHandshake
                        }
                ) =>
            {
                TlsAttempt::HandshakeFailed(failure)
            }
            Err(failure) => TlsAttempt::Done {
                result: Err(failure),
                traced: 0,
            },
        }
    }

    /// Mandatory TLS and no TLS to be had: QUIT, and `451 4.7.4` ("security features not
    /// supported", RFC 3463) with Postfix's wording, for every recipient.
    async fn refuse_plaintext<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        client: Client<E, S>,
        why: String,
        traced: usize,
    ) -> TlsAttempt {
        let reply = Reply::new(451, (4, 7, 4), format!("TLS is required, but {why}"));
        let (_, transcript) = client.quit().await;
        TlsAttempt::PlaintextRefused {
            reply,
            transcript,
            traced,
        }
    }

    fn trace_transcript(&self, lines: &[String]) {
        let (env, id, peer) = (self.env(), self.attempt.id, &self.target.peer);
        for line in lines {
            env.trace("smtp-out", format_args!("{id} {peer} {line}"));
        }
    }
}
