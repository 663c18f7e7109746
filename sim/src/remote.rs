//! Remote MTAs: scripted SMTP servers in the simulated world, the other end of outbound
//! delivery. Each phase of a session (banner, EHLO, MAIL, RCPT per address, DATA, end of
//! data) answers as the scenario says; behaviour can change at given simulated times (down
//! from 0 to 3 h, then up). A remote records what it received, for expectations.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

use crate::clock::SimClock;
use crate::trace::Trace;

/// A remote MTA as the scenario describes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSpec {
    /// Its name (also its EHLO/banner host name).
    pub name: String,
    pub address: IpAddr,
    #[serde(default = "default_port")]
    pub port: u16,
    /// How it behaves from the start...
    #[serde(default)]
    pub behaviour: Behaviour,
    /// ...and from given times on (each entry replaces the behaviour from `from_secs`).
    #[serde(default)]
    pub change: Vec<BehaviourChange>,
}

fn default_port() -> u16 {
    25
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourChange {
    pub from_secs: f64,
    #[serde(flatten)]
    pub behaviour: Behaviour,
}

/// What the remote does in each phase. Replies are full reply lines (`"451 4.3.0 busy"`);
/// the special replies `"drop"` (close the connection instead of answering) and
/// `"silent"` (never answer) work in every phase.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    /// `accept` (listen and answer), `refuse` (not listening: connections are refused),
    /// `blackhole` (accept connections, never say anything).
    pub mode: Mode,
    pub banner: String,
    /// Extensions advertised after EHLO, e.g. `["PIPELINING", "SIZE 1000000", "8BITMIME",
    /// "SMTPUTF8", "STARTTLS"]`.
    pub extensions: Vec<String>,
    /// Reply to EHLO (the extension list follows a 250); `"502 5.5.1 no"` forces HELO.
    pub ehlo: String,
    pub helo: String,
    pub mail: String,
    /// Reply to RCPT TO for any address not in `rcpt_for`.
    pub rcpt: String,
    /// Reply per recipient address (lower-case).
    pub rcpt_for: BTreeMap<String, String>,
    pub data: String,
    /// Reply after the final dot.
    pub end_of_data: String,
    /// Greylisting: a new (client ip, sender, recipient) triplet gets `451 4.7.1` until this
    /// many seconds have passed since it was first seen. 0 = off.
    pub greylist_secs: f64,
    /// Wait this long (simulated seconds) before every reply.
    pub reply_delay_secs: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Accept,
    Refuse,
    Blackhole,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            mode: Mode::Accept,
            banner: "220 {name} ESMTP remote".into(),
            extensions: vec![
                "PIPELINING".into(),
                "SIZE 52428800".into(),
                "8BITMIME".into(),
                "SMTPUTF8".into(),
                "ENHANCEDSTATUSCODES".into(),
            ],
            ehlo: "250 {name}".into(),
            helo: "250 {name}".into(),
            mail: "250 2.1.0 Ok".into(),
            rcpt: "250 2.1.5 Ok".into(),
            rcpt_for: BTreeMap::new(),
            data: "354 End data with <CR><LF>.<CR><LF>".into(),
            end_of_data: "250 2.0.0 Ok: queued".into(),
            greylist_secs: 0.0,
            reply_delay_secs: 0.0,
        }
    }
}

impl RemoteSpec {
    pub fn check(&self) -> Result<(), String> {
        for b in std::iter::once(&self.behaviour).chain(self.change.iter().map(|c| &c.behaviour)) {
            for (phase, r) in [
                ("banner", &b.banner),
                ("ehlo", &b.ehlo),
                ("helo", &b.helo),
                ("mail", &b.mail),
                ("rcpt", &b.rcpt),
                ("data", &b.data),
                ("end_of_data", &b.end_of_data),
            ]
            .into_iter()
            .chain(b.rcpt_for.iter().map(|(k, v)| (k.as_str(), v)))
            {
                if !is_reply(r) {
                    return Err(format!(
                        "{phase}: {r:?} is not a reply (\"250 ...\", \"drop\" or \"silent\")"
                    ));
                }
            }
            if b.greylist_secs.is_nan()
                || b.reply_delay_secs.is_nan()
                || b.greylist_secs < 0.0
                || b.reply_delay_secs < 0.0
            {
                return Err("greylist_secs and reply_delay_secs must be >= 0".into());
            }
        }
        let mut last = 0.0;
        for c in &self.change {
            if c.from_secs.is_nan() || c.from_secs < last {
                return Err("change entries must be in time order".into());
            }
            last = c.from_secs;
        }
        Ok(())
    }

    /// The behaviour in force at `elapsed` simulated time.
    pub fn at(&self, elapsed: Duration) -> &Behaviour {
        let t = elapsed.as_secs_f64();
        self.change
            .iter()
            .rev()
            .find(|c| c.from_secs <= t)
            .map(|c| &c.behaviour)
            .unwrap_or(&self.behaviour)
    }
}

fn is_reply(r: &str) -> bool {
    r == "drop"
        || r == "silent"
        || (r.len() >= 3
            && r.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && (r.len() == 3 || r.as_bytes()[3] == b' '))
}

/// One message a remote accepted (after its end-of-data reply was 2xx).
#[derive(Clone, Debug)]
pub struct Received {
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub message: Vec<u8>,
    pub at: Duration,
}

/// Everything remotes saw, by remote name.
#[derive(Clone, Debug, Default)]
pub struct RemoteLog {
    pub connections: usize,
    pub accepted: Vec<Received>,
    /// Every command line received, in order.
    pub commands: Vec<String>,
}

pub type RemoteLogs = Arc<Mutex<BTreeMap<String, RemoteLog>>>;

/// First sighting of each (client ip, sender, recipient) triplet.
type Greylist = Arc<Mutex<BTreeMap<(IpAddr, String, String), Duration>>>;

/// Runs a remote MTA host forever.
pub async fn serve(
    spec: RemoteSpec,
    clock: SimClock,
    trace: Trace,
    logs: RemoteLogs,
) -> turmoil::Result {
    logs.lock().unwrap().entry(spec.name.clone()).or_default();
    let spec = Arc::new(spec);
    let greylist: Greylist = Arc::default();
    let bind = SocketAddr::from(([0, 0, 0, 0], spec.port));
    let mut listener: Option<TcpListener> = None;
    loop {
        let behaviour = spec.at(clock.elapsed()).clone();
        // `refuse` = not listening: drop the listener so connections are refused.
        if behaviour.mode == Mode::Refuse {
            if listener.take().is_some() {
                trace.record(&spec.name, "remote", "stops listening");
            }
            match next_change(&spec, clock.elapsed()) {
                Some(t) => clock.sleep_until(clock.epoch().plus(t)).await,
                None => std::future::pending::<()>().await,
            }
            continue;
        }
        if listener.is_none() {
            listener = Some(TcpListener::bind(bind).await?);
            trace.record(
                &spec.name,
                "remote",
                format_args!("listening on port {}", spec.port),
            );
        }
        let l = listener.as_ref().unwrap();
        let change = next_change(&spec, clock.elapsed());
        let accepted = tokio::select! {
            biased;
            r = l.accept() => Some(r?),
            _ = async {
                match change {
                    Some(t) => clock.sleep_until(clock.epoch().plus(t)).await,
                    None => std::future::pending::<()>().await,
                }
            } => None,
        };
        if let Some((stream, peer)) = accepted {
            logs.lock()
                .unwrap()
                .get_mut(&spec.name)
                .unwrap()
                .connections += 1;
            let (spec, clock, trace, logs, greylist) = (
                spec.clone(),
                clock.clone(),
                trace.clone(),
                logs.clone(),
                greylist.clone(),
            );
            tokio::task::spawn_local(async move {
                let mut s = RemoteSession {
                    spec,
                    clock,
                    trace,
                    logs,
                    greylist,
                    peer,
                    stream,
                    buf: Vec::new(),
                };
                let _ = s.run(behaviour).await;
            });
        }
    }
}

fn next_change(spec: &RemoteSpec, now: Duration) -> Option<Duration> {
    let t = now.as_secs_f64();
    spec.change
        .iter()
        .find(|c| c.from_secs > t)
        .map(|c| Duration::from_secs_f64(c.from_secs))
}

struct RemoteSession {
    spec: Arc<RemoteSpec>,
    clock: SimClock,
    trace: Trace,
    logs: RemoteLogs,
    greylist: Greylist,
    peer: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Why a session ended early.
enum Stop {
    Dropped,
    Io,
}

impl RemoteSession {
    fn name(&self) -> &str {
        &self.spec.name
    }

    async fn run(&mut self, b: Behaviour) -> Result<(), Stop> {
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
        self.reply(&b, &b.banner).await?;
        let (mut mail_from, mut rcpts): (Option<String>, Vec<String>) = (None, Vec::new());
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
                    if b.ehlo.starts_with('2') {
                        let mut lines = vec![b.ehlo.replace("{name}", &self.spec.name)];
                        lines.extend(b.extensions.iter().map(|e| format!("250 {e}")));
                        self.reply_lines(&b, &lines).await?;
                    } else {
                        self.reply(&b, &b.ehlo).await?;
                    }
                }
                "HELO" => self.reply(&b, &b.helo).await?,
                "MAIL" => {
                    let r = b.mail.clone();
                    if r.starts_with('2') {
                        mail_from = Some(angle(&line));
                        rcpts.clear();
                    }
                    self.reply(&b, &r).await?;
                }
                "RCPT" => {
                    let addr = angle(&line).to_ascii_lowercase();
                    let mut r = b
                        .rcpt_for
                        .get(&addr)
                        .cloned()
                        .unwrap_or_else(|| b.rcpt.clone());
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
                    self.reply(&b, &r).await?;
                }
                "DATA" => {
                    if mail_from.is_none() || rcpts.is_empty() {
                        self.reply(&b, "554 5.5.1 No valid recipients").await?;
                        continue;
                    }
                    let r = b.data.clone();
                    self.reply(&b, &r).await?;
                    if !r.starts_with('3') {
                        continue;
                    }
                    let message = self.read_data().await?;
                    let r = b.end_of_data.clone();
                    self.trace.record(
                        self.name(),
                        "remote",
                        format_args!("C: [message {} octets]", message.len()),
                    );
                    if r.starts_with('2') {
                        let rec = Received {
                            mail_from: mail_from.take().unwrap_or_default(),
                            recipients: std::mem::take(&mut rcpts),
                            message,
                            at: self.clock.elapsed(),
                        };
                        self.logs
                            .lock()
                            .unwrap()
                            .get_mut(&self.spec.name)
                            .unwrap()
                            .accepted
                            .push(rec);
                    }
                    self.reply(&b, &r).await?;
                    mail_from = None;
                    rcpts.clear();
                }
                "RSET" => {
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

    async fn reply(&mut self, b: &Behaviour, r: &str) -> Result<(), Stop> {
        self.reply_lines(b, &[r.to_string()]).await
    }

    async fn reply_lines(&mut self, b: &Behaviour, lines: &[String]) -> Result<(), Stop> {
        if b.reply_delay_secs > 0.0 {
            let until = self
                .clock
                .now()
                .plus(Duration::from_secs_f64(b.reply_delay_secs));
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
