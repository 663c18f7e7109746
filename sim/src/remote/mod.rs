//! Remote MTAs: scripted SMTP servers in the simulated world, the other end of outbound
//! delivery. Each phase of a session (banner, EHLO, MAIL, RCPT per address, DATA, end of
//! data) answers as the scenario says; behaviour can change at given simulated times (down
//! from 0 to 3 h, then up). A remote records what it received, for expectations.
//!
//! # STARTTLS
//!
//! A remote whose `extensions` include `"STARTTLS"` answers STARTTLS with its `starttls`
//! reply (`220 2.0.0 Ready to start TLS` unless scripted otherwise, e.g. `"454 4.7.0 TLS not
//! available"`) and, after a 2xx, does a rustls server handshake with a self-signed Ed25519
//! certificate for its name, made by rcgen once at world start ([`RemoteTls::generate`]).
//! The session then starts over (the client must EHLO again; STARTTLS is no longer
//! advertised), the trace says `TLS established`, and what is accepted afterwards is
//! recorded with `tls: true`. `tls_handshake = "fail"` breaks the handshake instead: the
//! remote closes the connection right after its 220.
//!
//! # CHUNKING
//!
//! A remote whose `extensions` include `"CHUNKING"` takes `BDAT n [LAST]` (RFC 3030): it
//! reads exactly `n` octets whatever they contain, answers each chunk but the last with its
//! `bdat` reply and the last with `end_of_data`, and records the chunks joined as the
//! message. Without CHUNKING on offer, BDAT is an unknown command (`500`), as it is to an
//! old MTA (whose reading of the chunk as commands we do not imitate: the client must never
//! send it). `BDAT` before a valid MAIL and RCPT is answered `503` with the chunk consumed
//! (RFC 3030 §3), and a `DATA` in a BDAT transaction is `503` as well.
//!
//! Only plaintext above TLS is traced. The certificate's key and the handshake's ephemeral
//! values come from the OS RNG, but their sizes are fixed (Ed25519, X25519, a fixed serial
//! number), so the simulated network sees the same writes in every run and the trace cannot
//! change (see `mailsim_server::queue::tls`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::fmt;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::NoServerSessionStorage;
use rustls::time_provider::TimeProvider;
use rustls::ServerConfig;
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;
use turmoil::net::TcpListener;

use crate::certs::ClockTime;
use crate::clock::SimClock;
use crate::trace::Trace;
use mailsim_server::tls::MaybeTls;

mod bounce;
pub mod rules;
mod session;
use rules::{ClientHistory, Limits, Rule};
use session::RemoteSession;

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
    /// `[[remote.rule]]`: conditions and actions asked before every reply, first match
    /// wins ([`rules`]); the behaviour answers when none matches.
    #[serde(default)]
    pub rule: Vec<Rule>,
    /// `[remote.limits]`: receiver limits, sugar for rules placed after the explicit ones.
    #[serde(default)]
    pub limits: Limits,
    /// Our MX, where `bounce_later` DSNs go (set by the scenario loader).
    #[serde(skip)]
    pub mx: Option<SocketAddr>,
    /// The world's DNS server, where DKIM keys are looked up (set by the scenario loader,
    /// not written in the file).
    #[serde(skip)]
    pub dns: Option<SocketAddr>,
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
    /// Reply after the final dot, and to the `BDAT ... LAST` chunk.
    pub end_of_data: String,
    /// Reply to every BDAT chunk but the last, when CHUNKING is offered; a non-2xx fails the
    /// transaction (its later chunks are answered `503`, RFC 3030 §3).
    pub bdat: String,
    /// Greylisting: a new (client ip, sender, recipient) triplet gets `451 4.7.1` until this
    /// many seconds have passed since it was first seen. 0 = off.
    pub greylist_secs: f64,
    /// Wait this long (simulated seconds) before every reply.
    pub reply_delay_secs: f64,
    /// Reply to STARTTLS when `extensions` offer it; a 2xx starts the TLS handshake.
    pub starttls: String,
    /// `ok`: complete the handshake after a 2xx to STARTTLS; `fail`: close the connection
    /// right after the 2xx instead.
    pub tls_handshake: TlsHandshake,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsHandshake {
    #[default]
    Ok,
    Fail,
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
            bdat: "250 2.0.0 Ok: chunk received".into(),
            greylist_secs: 0.0,
            reply_delay_secs: 0.0,
            starttls: "220 2.0.0 Ready to start TLS".into(),
            tls_handshake: TlsHandshake::Ok,
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
                ("bdat", &b.bdat),
                ("starttls", &b.starttls),
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
        for (i, r) in self.rule.iter().enumerate() {
            r.check().map_err(|e| format!("rule[{i}]: {e}"))?;
        }
        if let Some(t) = self.limits.tarpit_secs {
            if !(t.is_finite() && t >= 0.0) {
                return Err("limits.tarpit_secs must be a number >= 0".into());
            }
        }
        if let Some(m) = &self.limits.messages_per_client {
            if m.count == 0 || !(m.per_secs.is_finite() && m.per_secs > 0.0) {
                return Err("limits.messages_per_client needs count >= 1 and per_secs > 0".into());
            }
            if m.reply.as_deref().is_some_and(|r| !is_reply(r)) {
                return Err("limits.messages_per_client.reply is not a reply".into());
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

    /// The rules in the order they are asked: the explicit ones, then the limits'.
    pub fn all_rules(&self) -> Vec<Rule> {
        let mut rules = self.rule.clone();
        rules.extend(self.limits.rules());
        rules
    }

    /// True if STARTTLS is advertised at some time (the remote then needs a certificate).
    pub fn offers_starttls(&self) -> bool {
        std::iter::once(&self.behaviour)
            .chain(self.change.iter().map(|c| &c.behaviour))
            .any(Behaviour::offers_starttls)
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

impl Behaviour {
    fn offers_starttls(&self) -> bool {
        self.offers("STARTTLS")
    }

    /// The EHLO keyword is among `extensions` (with or without parameters).
    fn offers(&self, keyword: &str) -> bool {
        self.extensions.iter().any(|e| {
            e.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }
}

/// A remote's TLS server side: its certificate and rustls configuration, made once at world
/// start and shared by every session of that remote.
#[derive(Clone)]
pub struct RemoteTls {
    acceptor: TlsAcceptor,
    certificate: CertificateDer<'static>,
}

impl fmt::Debug for RemoteTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteTls")
    }
}

impl RemoteTls {
    /// A self-signed Ed25519 certificate for `name` (fixed serial number, rcgen's fixed
    /// 1975–4096 validity: nothing depends on the real clock, and the certificate's size is
    /// the same in every run) and a server config with the server's crypto provider (ring),
    /// TLS 1.3/1.2, no session tickets and no session cache, on the simulated clock.
    pub fn generate(name: &str, clock: &SimClock) -> Result<RemoteTls, String> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| e.to_string())?;
        let mut params =
            rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
        params.serial_number = Some(rcgen::SerialNumber::from(1u64));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let certificate = cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let time: Arc<dyn TimeProvider> = Arc::new(ClockTime(clock.clone()));
        let mut config =
            ServerConfig::builder_with_details(mailsim_server::queue::tls::provider(), time)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_single_cert(vec![certificate.clone()], key)
                .map_err(|e| e.to_string())?;
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok(RemoteTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }

    /// The remote's self-signed certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }
}

pub(crate) fn is_reply(r: &str) -> bool {
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
    /// The message came over TLS (after STARTTLS).
    pub tls: bool,
    /// Its DKIM verdict (`crate::dkim`): `pass`, `fail`, ..., `none` when unsigned.
    pub dkim: String,
}

/// Everything remotes saw, by remote name.
#[derive(Clone, Debug, Default)]
pub struct RemoteLog {
    pub connections: usize,
    pub accepted: Vec<Received>,
    /// Messages answered 2xx and thrown away by a `discard` rule.
    pub discarded: usize,
    /// Every command line received, in order.
    pub commands: Vec<String>,
}

pub type RemoteLogs = Arc<Mutex<BTreeMap<String, RemoteLog>>>;

/// First sighting of each (client ip, sender, recipient) triplet.
type Greylist = Arc<Mutex<BTreeMap<(IpAddr, String, String), Duration>>>;

/// Runs a remote MTA host forever. A remote that offers STARTTLS gets its certificate made
/// here; [`serve_with_tls`] takes one made beforehand (once per world, by `world.rs`).
pub async fn serve(
    spec: RemoteSpec,
    clock: SimClock,
    trace: Trace,
    logs: RemoteLogs,
) -> turmoil::Result {
    let tls = if spec.offers_starttls() {
        Some(RemoteTls::generate(&spec.name, &clock)?)
    } else {
        None
    };
    serve_with_tls(spec, clock, trace, logs, tls).await
}

/// Runs a remote MTA host forever; `tls` answers STARTTLS (without it a 2xx `starttls`
/// reply becomes `454 4.7.0 TLS not available`).
pub async fn serve_with_tls(
    spec: RemoteSpec,
    clock: SimClock,
    trace: Trace,
    logs: RemoteLogs,
    tls: Option<RemoteTls>,
) -> turmoil::Result {
    logs.lock().unwrap().entry(spec.name.clone()).or_default();
    let spec = Arc::new(spec);
    let greylist: Greylist = Arc::default();
    let rules = Arc::new(spec.all_rules());
    let history: Arc<Mutex<ClientHistory>> = Arc::default();
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
            let connection = {
                let mut logs = logs.lock().unwrap();
                let log = logs.get_mut(&spec.name).unwrap();
                log.connections += 1;
                log.connections as u64
            };
            {
                let mut h = history.lock().unwrap();
                h.connections
                    .entry(peer.ip())
                    .or_default()
                    .push(clock.elapsed());
                *h.open.entry(peer.ip()).or_default() += 1;
            }
            let (spec, clock, trace, logs, greylist, tls, rules, history) = (
                spec.clone(),
                clock.clone(),
                trace.clone(),
                logs.clone(),
                greylist.clone(),
                tls.clone(),
                rules.clone(),
                history.clone(),
            );
            tokio::task::spawn_local(async move {
                let mut s = RemoteSession {
                    spec,
                    clock,
                    trace,
                    logs,
                    greylist,
                    peer,
                    stream: MaybeTls::Plain(stream),
                    buf: Vec::new(),
                    tls,
                    rules,
                    history: history.clone(),
                    counters: session::Counters {
                        connection,
                        ..Default::default()
                    },
                };
                let _ = s.run(behaviour).await;
                if let Some(n) = history.lock().unwrap().open.get_mut(&peer.ip()) {
                    *n = n.saturating_sub(1);
                }
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use mailsim_server::env::Timestamp;
    use mailsim_server::queue::tls::StartTlsConnector;
    use tokio::io::duplex;

    use super::*;

    #[test]
    fn certificates_differ_in_keys_but_never_in_size() {
        let clock = SimClock::new(Timestamp::from_secs(1_767_225_600));
        let a = RemoteTls::generate("mx1.other.net", &clock).unwrap();
        let b = RemoteTls::generate("mx1.other.net", &clock).unwrap();
        assert_ne!(a.certificate(), b.certificate());
        assert_eq!(a.certificate().len(), b.certificate().len());
    }

    #[test]
    fn starttls_is_offered_if_any_behaviour_lists_it() {
        let mut spec: RemoteSpec =
            toml::from_str("name = \"mx1.other.net\"\naddress = \"203.0.113.10\"\n").unwrap();
        assert!(!spec.offers_starttls());
        spec.change.push(BehaviourChange {
            from_secs: 60.0,
            behaviour: Behaviour {
                extensions: vec!["starttls".into()],
                ..Behaviour::default()
            },
        });
        assert!(spec.offers_starttls());
        let b: Behaviour = toml::from_str(
            "starttls = \"454 4.7.0 TLS not available\"\ntls_handshake = \"fail\"\n",
        )
        .unwrap();
        assert_eq!(b.tls_handshake, TlsHandshake::Fail);
        spec.behaviour = b;
        assert!(spec.check().is_ok());
        spec.behaviour.starttls = "ready".into();
        assert!(spec.check().is_err());
    }

    /// The server's outbound connector and a remote's certificate and config agree.
    #[tokio::test]
    async fn the_queue_connector_handshakes_with_a_remote() {
        let clock = SimClock::new(Timestamp::from_secs(1_767_225_600));
        let remote = RemoteTls::generate("mx1.other.net", &clock).unwrap();
        // The queue's connector only reads the Env's clock; the real Env will do here.
        let env = mailsim_server::env::real::RealEnv::new(
            std::env::temp_dir().join("mailsim-remote-tls-test"),
            Default::default(),
        )
        .unwrap();
        let connector = StartTlsConnector::new(&env);
        let (client_io, server_io) = duplex(1 << 16);
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
        let (c, s) = tokio::join!(
            connector.connect("mx1.other.net", ip, client_io),
            remote.acceptor.accept(server_io)
        );
        c.unwrap();
        assert_eq!(s.unwrap().get_ref().1.server_name(), Some("mx1.other.net"));
    }
}
