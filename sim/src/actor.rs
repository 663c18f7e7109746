//! Sender actors: scripted SMTP clients that find the server through the world's DNS and
//! play their steps — including the wrong ones (bad sequence, garbage, abrupt disconnect).
//!
//! An actor records every reply it saw and every inline expectation that failed, for the
//! checks after the run.
//!
//! TLS (STARTTLS steps, `tls = "implicit"`) is a mail client's: the world's CA is the only
//! trust anchor and the server's host name must match its certificate (RFC 8314 §4.1).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailsim_server::env::{DnsError, Record, RecordKind, Timestamp};
use mailsim_server::queue::route::{plan_mx, MxPlan, RouteError};
use mailsim_server::smtp::wire::ReplyReader;
use mailsim_server::tls::MaybeTls;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use turmoil::net::TcpStream;

mod ledger;

pub use self::ledger::{Acked, Ledger, Rcpt};
use crate::clock::SimClock;
use crate::env::DNS_TIMEOUT;
use crate::scenario::{defers, Actor, ActorTls, Answer, ReplyPattern, Step, Target};
use crate::trace::Trace;

/// What one actor did, read by the checks.
#[derive(Clone, Debug, Default)]
pub struct ActorLog {
    /// Every reply, multi-line replies joined with " / ".
    pub replies: Vec<String>,
    /// Inline expectations that failed, and fatal problems (no route, lost connection).
    pub failures: Vec<String>,
    /// Every step ran.
    pub finished: bool,
    /// For each `data` step that got a reply, over every attempt: (step index, reply). A
    /// `250` here is an acknowledgement the server must never lose.
    pub data_replies: Vec<(usize, String)>,
    /// The transactions the actor saw acknowledged (the invariants' ground truth).
    pub ledger: Ledger,
    /// Attempts started (connections running the script from the start): 1 without `retry`.
    pub attempts: u32,
    /// Every attempt was deferred (the actor's `retry` ran out): why, with the last reply.
    pub gave_up: Option<String>,
}

/// How one attempt ended.
enum Attempt {
    /// Every step ran (or a `close` step ended the script).
    Done,
    /// A fatal problem, recorded as a failure: no further attempt.
    Stopped,
    /// A reply deferred the message (only when the actor retries): the reply.
    Deferred(String),
}

pub type ActorLogs = Arc<Mutex<BTreeMap<String, ActorLog>>>;

/// What every actor needs from the world.
#[derive(Clone)]
pub struct ActorCtx {
    pub clock: SimClock,
    pub trace: Trace,
    pub dns: SocketAddr,
    pub logs: ActorLogs,
    /// The world's seed: each actor's RNG (ties between equal MX preferences) derives from it.
    pub seed: u64,
    /// Trusts the world's CA (`certs::WorldCerts`).
    pub tls: Arc<ClientConfig>,
    /// The server's host name: what its certificate must name.
    pub server_name: String,
}

struct Conn {
    stream: MaybeTls<TcpStream>,
    /// The server's shared reply reader: the same framing and bounds as the outbound client.
    reader: ReplyReader,
    /// The reader's transcript lines, drained after every read (the server traces its own
    /// side of the dialogue; the actor keeps its replies in its log).
    scratch: Vec<String>,
}

/// Runs one actor to the end of its script. Problems are recorded, never returned as errors,
/// so one failing actor does not stop the world.
pub async fn run(actor: Actor, ctx: ActorCtx) -> turmoil::Result {
    let name = actor.name.get_ref().clone();
    ctx.logs
        .lock()
        .unwrap()
        .insert(name.clone(), ActorLog::default());
    let start = ctx
        .clock
        .epoch()
        .plus(Duration::from_secs_f64(actor.start_secs.max(0.0)));
    ctx.clock.sleep_until(start).await;
    let rng = SmallRng::seed_from_u64(ctx.seed ^ fnv1a(name.as_bytes()));
    let mut me = Runner {
        name,
        ctx,
        actor,
        rng,
    };
    me.play().await;
    Ok(())
}

struct Runner {
    name: String,
    ctx: ActorCtx,
    actor: Actor,
    /// Seeded per actor, so the order among equal-preference MX hosts replays exactly.
    rng: SmallRng,
}

/// FNV-1a: a stable hash of the actor's name (std's hasher is randomly keyed per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Runner {
    fn trace(&self, event: impl std::fmt::Display) {
        self.ctx.trace.record(&self.name, "actor", event);
    }

    /// Runs `f` on this actor's log (created when the actor started).
    fn log(&self, f: impl FnOnce(&mut ActorLog)) {
        let mut logs = self.ctx.logs.lock().unwrap();
        f(logs.entry(self.name.clone()).or_default());
    }

    fn fail(&self, why: String) {
        self.trace(format_args!("FAILED {why}"));
        self.log(|l| l.failures.push(why));
    }

    fn saw(&self, reply: &str) {
        self.log(|l| l.replies.push(reply.to_string()));
    }

    /// Runs attempts until one is not deferred or the actor's `retry` runs out (what defers
    /// and what an attempt is: `scenario/retry.rs`). Without `retry` there is one attempt
    /// and a 4xx is an ordinary reply.
    async fn play(&mut self) {
        let retry = self.actor.retry.as_ref().map(|r| r.get_ref().clone());
        let most = retry.as_ref().map_or(1, |r| r.attempts);
        let mut attempt = 1;
        loop {
            self.log(|l| l.attempts = attempt);
            let reply = match self.attempt(retry.is_some()).await {
                Attempt::Done => {
                    self.log(|l| l.finished = true);
                    self.trace("done");
                    return;
                }
                Attempt::Stopped => return,
                Attempt::Deferred(reply) => reply,
            };
            let Some(retry) = &retry else {
                // Only a retrying actor defers; nothing to wait for otherwise.
                return;
            };
            if attempt >= most {
                let why =
                    format!("gave up after {attempt} attempt(s), the last deferred with {reply:?}");
                self.trace(format_args!(
                    "{reply} -> gave up after {attempt} attempt(s)"
                ));
                self.log(|l| l.gave_up = Some(why));
                return;
            }
            attempt += 1;
            let wait = retry.backoff_before(attempt);
            self.trace(format_args!(
                "{reply} -> retry {attempt}/{most} in {}s",
                wait.as_secs_f64()
            ));
            let until = self.ctx.clock.now().plus(wait);
            self.ctx.clock.sleep_until(until).await;
        }
    }

    /// One attempt: route, connect, greeting, every step in order.
    async fn attempt(&mut self, retrying: bool) -> Attempt {
        let target = match self.actor.target.get_ref().parse::<Target>() {
            Ok(t) => t,
            Err(e) => {
                self.fail(e);
                return Attempt::Stopped;
            }
        };
        let addr = match target {
            Target::Addr(a) => a,
            Target::Domain(d) => match self.route(&d).await {
                Ok(a) => a,
                Err(e) => {
                    self.fail(format!("no route to {d}: {e}"));
                    return Attempt::Stopped;
                }
            },
        };
        self.trace(format_args!("connect {addr}"));
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                self.fail(format!("connect {addr}: {e}"));
                return Attempt::Stopped;
            }
        };
        self.log(|l| l.ledger.disconnected());
        let mut conn = Conn {
            stream: MaybeTls::Plain(stream),
            reader: ReplyReader::default(),
            scratch: Vec::new(),
        };
        if self.actor.tls == Some(ActorTls::Implicit) {
            if let Err(e) = self.handshake(&mut conn).await {
                self.fail(format!("implicit TLS: {e}"));
                return Attempt::Stopped;
            }
        }
        if let Some(early) = &self.actor.pregreet {
            self.trace(format_args!("talks before the greeting: {early:?}"));
            if let Err(e) = conn.stream.write_all(early.as_bytes()).await {
                self.fail(format!("pregreet: write: {e}"));
                return Attempt::Stopped;
            }
        }
        let greeting = self.actor.greeting.clone();
        match self.read_reply(&mut conn).await {
            Ok(r) if greeting.matches(&r) => {}
            Ok(r) if retrying && defers(Answer::Greeting, &r) => {
                self.quit(&mut conn).await;
                return Attempt::Deferred(r);
            }
            Ok(r) => self.fail(format!("greeting: expected {:?}, got {r:?}", greeting.0)),
            Err(e) => {
                self.fail(format!("greeting: {e}"));
                return Attempt::Stopped;
            }
        }
        let steps: Vec<Step> = self
            .actor
            .steps
            .iter()
            .map(|s| s.get_ref().clone())
            .collect();
        for (i, step) in steps.iter().enumerate() {
            match self.step(&mut conn, i, step, retrying).await {
                Ok(None) => {}
                Ok(Some(reply)) => {
                    self.quit(&mut conn).await;
                    return Attempt::Deferred(reply);
                }
                Err(e) => {
                    self.fail(format!("step {}: {e}", i + 1));
                    return Attempt::Stopped;
                }
            }
            if step.close == Some(true) {
                break;
            }
        }
        Attempt::Done
    }

    /// Ends a deferred attempt as Postfix's smtp client does: `QUIT`, its `221` read if one
    /// comes (after a `421` the server may have hung up already), then the connection closed.
    async fn quit(&self, conn: &mut Conn) {
        if conn.stream.write_all(b"QUIT\r\n").await.is_ok() {
            let _ = self.read_reply(conn).await;
        }
        let _ = conn.stream.shutdown().await;
    }

    /// The server's routing rules (`queue::route::plan_mx`: MX by preference, equal
    /// preferences shuffled with the actor's seeded RNG, implicit MX, null MX), then the first
    /// host in that order with an A record. An actor is a plain client: it asks A only, no
    /// AAAA, and does not check for loops.
    async fn route(&mut self, domain: &str) -> Result<SocketAddr, String> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let answer = self.lookup(&domain, RecordKind::Mx).await;
        let rng = &mut self.rng;
        let hosts = match plan_mx(&domain, answer, || rng.next_u64()) {
            Ok(MxPlan::Mx(mxs)) => mxs.into_iter().map(|(_, host)| host).collect(),
            Ok(MxPlan::Implicit(host)) => vec![host],
            Err(RouteError::Temporary(why)) => return Err(why),
            Err(RouteError::Permanent { text, .. }) => return Err(text),
        };
        let mut why = format!("no MX host of {domain} has an address");
        for host in hosts {
            match self.lookup(&host, RecordKind::A).await {
                Ok(records) => {
                    if let Some(ip) = records.into_iter().find_map(|r| match r {
                        Record::A(ip) => Some(ip),
                        _ => None,
                    }) {
                        return Ok(SocketAddr::from((ip, 25)));
                    }
                    why = format!("no address for {host}");
                }
                Err(e) => why = format!("A {host}: {e}"),
            }
        }
        Err(why)
    }

    async fn lookup(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        let clock = self.ctx.clock.clone();
        let deadline = clock.now().plus(DNS_TIMEOUT);
        crate::dns::client::query(self.ctx.dns, name, kind, 1, async move {
            clock.sleep_until(deadline).await
        })
        .await
    }

    /// Plays one step. `Ok(Some(reply))`: a retrying actor's step was deferred by `reply`
    /// (its own `expect` did not ask for it); the replies the step still owes are read and
    /// not checked.
    async fn step(
        &self,
        conn: &mut Conn,
        i: usize,
        step: &Step,
        retrying: bool,
    ) -> Result<Option<String>, String> {
        if let Some(secs) = step.wait_secs {
            let until = self.ctx.clock.now().plus(Duration::from_secs_f64(secs));
            self.ctx.clock.sleep_until(until).await;
            return Ok(None);
        }
        if step.close == Some(true) {
            self.trace(format_args!("step {}: drops the connection", i + 1));
            let _ = conn.stream.shutdown().await;
            return Ok(None);
        }
        if step.tls_handshake == Some(true) {
            return self.handshake(conn).await.map(|()| None);
        }
        let bytes: Vec<u8> = if let Some(line) = &step.send {
            format!("{line}\r\n").into_bytes()
        } else if let Some(lines) = &step.pipeline {
            lines
                .iter()
                .flat_map(|l| format!("{l}\r\n").into_bytes())
                .collect()
        } else if let Some(content) = &step.data {
            self.signed_data(content, step.after_signing.as_deref())
        } else if let Some(raw) = &step.raw {
            raw.as_bytes().to_vec()
        } else if step.starttls == Some(true) {
            b"STARTTLS\r\n".to_vec()
        } else {
            Vec::new()
        };
        conn.stream
            .write_all(&bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        if step.raw.is_some() {
            // Raw bytes are not followed command by command: forget the transaction rather
            // than guess it (a missed RSET would pin the wrong envelope on a later 250).
            self.log(|l| l.ledger.disconnected());
        }
        let mut deferred = None;
        for n in 0..step.reply_count() {
            let reply = match self.read_reply(conn).await {
                Ok(r) => r,
                // The server may hang up after the deferring reply (a 421 does).
                Err(_) if deferred.is_some() => break,
                Err(e) => return Err(e),
            };
            if step.data.is_some() {
                let name = &self.name;
                self.log(|l| {
                    l.data_replies.push((i, reply.clone()));
                    l.ledger.end_of_data(name, &reply);
                });
            } else if let Some(line) = step.command_line(n) {
                self.log(|l| l.ledger.command(line, &reply));
            }
            if deferred.is_some() {
                continue;
            }
            let ready = ReplyPattern("220".into());
            let pattern = match step.starttls {
                Some(true) => Some(step.pattern(n).unwrap_or(&ready)),
                _ => step.pattern(n),
            };
            let asked = pattern.is_some_and(|p| p.matches(&reply));
            if retrying && !asked && defers(step.answer(n), &reply) {
                deferred = Some(reply);
                continue;
            }
            if let Some(p) = pattern {
                if !p.matches(&reply) {
                    self.fail(format!("step {}: expected {:?}, got {reply:?}", i + 1, p.0));
                }
            }
            // Only a 220 starts TLS; any other answer leaves the session in plaintext.
            if step.starttls == Some(true) && ready.matches(&reply) {
                return self.handshake(conn).await.map(|()| None);
            }
        }
        Ok(deferred)
    }

    /// The client handshake over the connection, within the reply timeout. Whatever
    /// plaintext was buffered is dropped (RFC 3207 §4.2: nothing from before TLS counts).
    async fn handshake(&self, conn: &mut Conn) -> Result<(), String> {
        let Some(plain) = conn.stream.take_plain() else {
            return Err("TLS handshake: TLS is already active".into());
        };
        let name = crate::certs::server_name(&self.ctx.server_name)?;
        let connector = TlsConnector::from(self.ctx.tls.clone());
        let deadline: Timestamp = self.ctx.clock.now().plus(Duration::from_secs_f64(
            self.actor.reply_timeout_secs.max(0.0),
        ));
        let clock = self.ctx.clock.clone();
        let done = tokio::select! {
            biased;
            r = connector.connect(name, plain) => r,
            _ = clock.sleep_until(deadline) => return Err("TLS handshake: timed out".into()),
        };
        match done {
            Ok(tls) => {
                conn.stream = MaybeTls::from(tls);
                conn.reader = ReplyReader::default();
                self.trace("TLS established");
                Ok(())
            }
            Err(e) => Err(format!("TLS handshake: {e}")),
        }
    }

    /// Reads one (possibly multi-line) reply, within the actor's reply timeout, with the
    /// server crate's reply reader. The reply is its lines as received, joined with " / ".
    async fn read_reply(&self, conn: &mut Conn) -> Result<String, String> {
        let deadline: Timestamp = self.ctx.clock.now().plus(Duration::from_secs_f64(
            self.actor.reply_timeout_secs.max(0.0),
        ));
        loop {
            let next = conn.reader.next_framed();
            conn.reader.drain_log(&mut conn.scratch);
            conn.scratch.clear();
            if let Some(framed) = next {
                let reply = framed.shown.join(" / ");
                return match framed.reply {
                    Ok(_) => {
                        self.saw(&reply);
                        Ok(reply)
                    }
                    Err(why) => Err(format!("not an SMTP reply ({why}): {reply:?}")),
                };
            }
            let mut chunk = [0u8; 4096];
            let clock = self.ctx.clock.clone();
            let read = tokio::select! {
                biased;
                r = conn.stream.read(&mut chunk) => r,
                _ = clock.sleep_until(deadline) => return Err("no reply before the reply timeout".into()),
            };
            match read {
                Ok(0) => return Err("connection closed by the server".into()),
                Ok(n) => conn.reader.push(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

impl Runner {
    /// A `data` step's content signed with each of the actor's DKIM keys (none: unchanged),
    /// `after_signing` appended, encoded for the wire.
    fn signed_data(&self, content: &str, after_signing: Option<&str>) -> Vec<u8> {
        if self.actor.dkim.is_empty() {
            let mut all = content.to_string();
            all.push_str(after_signing.unwrap_or(""));
            return encode_data(&all);
        }
        let crlf = content.replace("\r\n", "\n").replace('\n', "\r\n");
        let mut message = String::new();
        match mailsim_server::dkim::Signer::from_config(&self.actor.dkim) {
            Ok(signer) => {
                for signed in signer.sign_with_every_key(crlf.as_bytes(), self.ctx.clock.now()) {
                    match signed.header {
                        Ok(h) => {
                            self.trace(format_args!(
                                "signs d={} s={}",
                                signed.key.domain, signed.key.selector
                            ));
                            message.push_str(&h);
                        }
                        Err(e) => self.fail(format!("DKIM signing failed: {e}")),
                    }
                }
            }
            Err(e) => self.fail(format!("DKIM key: {e}")),
        }
        message.push_str(&crlf);
        message.push_str(after_signing.unwrap_or(""));
        encode_data(&message)
    }
}

/// Message content as a client puts it on the wire: CRLF line ends, dot-stuffing, and the
/// terminating `.` line.
pub fn encode_data(content: &str) -> Vec<u8> {
    let normalized = content.replace("\r\n", "\n");
    let mut out = Vec::with_capacity(normalized.len() + 16);
    let body = normalized.strip_suffix('\n').unwrap_or(&normalized);
    for line in body.split('\n') {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_data_with_dot_stuffing() {
        assert_eq!(super::encode_data("a\n.b\nc\n"), b"a\r\n..b\r\nc\r\n.\r\n");
        assert_eq!(super::encode_data("x"), b"x\r\n.\r\n");
    }
}
