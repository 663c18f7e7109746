//! Sender actors: scripted SMTP clients that find the server through the world's DNS and
//! play their steps — including the wrong ones (bad sequence, garbage, abrupt disconnect).
//!
//! An actor records every reply it saw and every inline expectation that failed, for the
//! checks after the run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailsim_server::env::{DnsError, Record, RecordKind, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

use crate::clock::SimClock;
use crate::env::DNS_TIMEOUT;
use crate::scenario::{Actor, Step, Target};
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
    /// For each `data` step that got a reply: (step index, reply). A `250` here is an
    /// acknowledgement the server must never lose.
    pub data_replies: Vec<(usize, String)>,
}

pub type ActorLogs = Arc<Mutex<BTreeMap<String, ActorLog>>>;

/// What every actor needs from the world.
#[derive(Clone)]
pub struct ActorCtx {
    pub clock: SimClock,
    pub trace: Trace,
    pub dns: SocketAddr,
    pub logs: ActorLogs,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
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
    let mut me = Runner { name, ctx, actor };
    me.play().await;
    Ok(())
}

struct Runner {
    name: String,
    ctx: ActorCtx,
    actor: Actor,
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

    async fn play(&mut self) {
        let target = match self.actor.target.get_ref().parse::<Target>() {
            Ok(t) => t,
            Err(e) => return self.fail(e),
        };
        let addr = match target {
            Target::Addr(a) => a,
            Target::Domain(d) => match self.route(&d).await {
                Ok(a) => a,
                Err(e) => return self.fail(format!("no route to {d}: {e}")),
            },
        };
        self.trace(format_args!("connect {addr}"));
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => return self.fail(format!("connect {addr}: {e}")),
        };
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
        };
        let greeting = self.actor.greeting.clone();
        match self.read_reply(&mut conn).await {
            Ok(r) => {
                if !greeting.matches(&r) {
                    self.fail(format!("greeting: expected {:?}, got {r:?}", greeting.0));
                }
            }
            Err(e) => return self.fail(format!("greeting: {e}")),
        }
        let steps: Vec<Step> = self
            .actor
            .steps
            .iter()
            .map(|s| s.get_ref().clone())
            .collect();
        for (i, step) in steps.iter().enumerate() {
            if let Err(e) = self.step(&mut conn, i, step).await {
                self.fail(format!("step {}: {e}", i + 1));
                return;
            }
            if step.close == Some(true) {
                break;
            }
        }
        self.log(|l| l.finished = true);
        self.trace("done");
    }

    /// MX lookup through the world's DNS, falling back to the domain's A record.
    async fn route(&self, domain: &str) -> Result<SocketAddr, String> {
        let mx = self.lookup(domain, RecordKind::Mx).await;
        let host = match mx {
            Ok(records) => records
                .into_iter()
                .find_map(|r| match r {
                    Record::Mx { exchange, .. } if !exchange.is_empty() => Some(exchange),
                    _ => None,
                })
                .ok_or_else(|| "null MX".to_string())?,
            Err(DnsError::NoRecords) => domain.to_string(),
            Err(e) => return Err(format!("MX {domain}: {e}")),
        };
        let a = self
            .lookup(&host, RecordKind::A)
            .await
            .map_err(|e| format!("A {host}: {e}"))?;
        a.into_iter()
            .find_map(|r| match r {
                Record::A(ip) => Some(SocketAddr::from((ip, 25))),
                _ => None,
            })
            .ok_or_else(|| format!("no address for {host}"))
    }

    async fn lookup(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        let clock = self.ctx.clock.clone();
        let deadline = clock.now().plus(DNS_TIMEOUT);
        crate::dns::client::query(self.ctx.dns, name, kind, 1, async move {
            clock.sleep_until(deadline).await
        })
        .await
    }

    async fn step(&self, conn: &mut Conn, i: usize, step: &Step) -> Result<(), String> {
        if let Some(secs) = step.wait_secs {
            let until = self.ctx.clock.now().plus(Duration::from_secs_f64(secs));
            self.ctx.clock.sleep_until(until).await;
            return Ok(());
        }
        if step.close == Some(true) {
            self.trace(format_args!("step {}: drops the connection", i + 1));
            let _ = conn.stream.shutdown().await;
            return Ok(());
        }
        let bytes: Vec<u8> = if let Some(line) = &step.send {
            format!("{line}\r\n").into_bytes()
        } else if let Some(lines) = &step.pipeline {
            lines
                .iter()
                .flat_map(|l| format!("{l}\r\n").into_bytes())
                .collect()
        } else if let Some(content) = &step.data {
            encode_data(content)
        } else if let Some(raw) = &step.raw {
            raw.as_bytes().to_vec()
        } else {
            Vec::new()
        };
        conn.stream
            .write_all(&bytes)
            .await
            .map_err(|e| format!("write: {e}"))?;
        for n in 0..step.reply_count() {
            let reply = self.read_reply(conn).await?;
            if step.data.is_some() {
                self.log(|l| l.data_replies.push((i, reply.clone())));
            }
            if let Some(p) = step.pattern(n) {
                if !p.matches(&reply) {
                    self.fail(format!("step {}: expected {:?}, got {reply:?}", i + 1, p.0));
                }
            }
        }
        Ok(())
    }

    /// Reads one (possibly multi-line) reply, within the actor's reply timeout.
    async fn read_reply(&self, conn: &mut Conn) -> Result<String, String> {
        let deadline: Timestamp = self.ctx.clock.now().plus(Duration::from_secs_f64(
            self.actor.reply_timeout_secs.max(0.0),
        ));
        let mut lines = Vec::new();
        loop {
            while let Some(pos) = conn.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = conn.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                let last = text.len() < 4 || text.as_bytes()[3] != b'-';
                lines.push(text);
                if last {
                    let reply = lines.join(" / ");
                    self.saw(&reply);
                    return Ok(reply);
                }
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
                Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
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
