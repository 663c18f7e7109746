//! The scenario data model (what the TOML says). See README "Scenario format".

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use mailsim_server::config::ServerConfig;
use serde::Deserialize;
use toml::Spanned;

use crate::dns::zone::{DnsChange, DnsFault, ZoneSpec};

pub use super::expect::Expect;

/// Address of the server host when the scenario's `server.listen.smtp` is left at loopback.
pub const DEFAULT_SERVER_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 25);
/// Address of the world's DNS host unless `[dns] address` says otherwise.
pub const DEFAULT_DNS_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 53));

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub world: World,
    #[serde(default)]
    pub dns: Dns,
    pub server: Spanned<ServerSection>,
    #[serde(default)]
    pub actor: Vec<Actor>,
    /// Bulk senders: expanded into actors by the loader ([`super::bulk`]).
    #[serde(default)]
    pub bulk: Vec<Spanned<super::bulk::Bulk>>,
    /// Remote MTAs: the other end of outbound delivery (scriptable per phase and over time).
    #[serde(default)]
    pub remote: Vec<Spanned<crate::remote::RemoteSpec>>,
    #[serde(default)]
    pub fault: Vec<Spanned<super::Fault>>,
    #[serde(default)]
    pub expect: Vec<Spanned<Expect>>,
}

/// Seconds, fixed or picked by the seed from a range.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Secs {
    At(f64),
    Range([f64; 2]),
}

impl Secs {
    /// The bounds, `from <= to`, both finite and >= 0; else why not.
    pub fn check(self) -> Result<(), String> {
        let (lo, hi) = self.bounds();
        if !(lo >= 0.0 && lo.is_finite() && hi.is_finite()) {
            return Err("must be finite and >= 0".into());
        }
        if lo > hi {
            return Err(format!("the range [{lo}, {hi}] is empty"));
        }
        Ok(())
    }

    fn bounds(self) -> (f64, f64) {
        match self {
            Secs::At(t) => (t, t),
            Secs::Range([lo, hi]) => (lo, hi),
        }
    }

    /// The value for this run: a range is sampled from `seed` and `salt` (one per use, so
    /// two faults of one world draw independently), to the millisecond.
    pub fn pick(self, seed: u64, salt: u64) -> f64 {
        let (lo, hi) = self.bounds();
        if hi <= lo {
            return lo;
        }
        let ms = ((hi - lo) * 1000.0).round() as u64;
        let r = splitmix64(seed ^ splitmix64(salt.wrapping_add(0x9e37_79b9)));
        lo + (r % (ms + 1)) as f64 / 1000.0
    }
}

/// SplitMix64's finaliser: a stable, well-mixed function of its input (not the OS RNG,
/// not std's randomly keyed hasher).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `[server]` is a server config exactly as `mailsim serve --config` reads it.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct ServerSection {
    pub config: ServerConfig,
}

impl std::ops::Deref for ServerSection {
    type Target = ServerConfig;
    fn deref(&self) -> &ServerConfig {
        &self.config
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct World {
    /// Seeds every random choice of the world (latencies, RNG of the server, ...).
    pub seed: u64,
    /// turmoil's fixed step, in milliseconds.
    pub tick_ms: u64,
    /// Simulated time after which the run stops (if actors have not all finished before).
    pub duration_secs: f64,
    /// Network latency range between hosts, in milliseconds.
    pub min_latency_ms: u64,
    pub max_latency_ms: u64,
    /// The world's wall clock at start, seconds since the UNIX epoch (default 2026-01-01).
    pub start_unix: u64,
    /// Simulated time every file operation of the server takes, in milliseconds (default 0).
    /// With a latency, a crash can land between a write, its fsync and the rename.
    pub fs_latency_ms: f64,
    /// Chance that a write's file data becomes durable without an fsync, as when the kernel
    /// flushes on its own (0..1, default 0). Directory entries still need a directory sync.
    pub fs_sync_probability: f64,
}

impl Default for World {
    fn default() -> Self {
        World {
            seed: 1,
            tick_ms: 1,
            duration_secs: 3600.0,
            min_latency_ms: 1,
            max_latency_ms: 5,
            start_unix: 1_767_225_600,
            fs_latency_ms: 0.0,
            fs_sync_probability: 0.0,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// The DNS host's address (default 192.0.2.53).
    #[serde(default)]
    pub address: Option<IpAddr>,
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneSpec>,
    #[serde(default)]
    pub fault: Vec<DnsFault>,
    /// Zone data that changes at a time (an MX moved to a new host).
    #[serde(default)]
    pub change: Vec<Spanned<DnsChange>>,
}

/// A client of the world: it runs scripted SMTP sessions.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub name: Spanned<String>,
    pub address: Spanned<IpAddr>,
    /// A domain (its MX is looked up through the world's DNS) or `ip:port`.
    pub target: Spanned<String>,
    /// When the actor starts, in simulated seconds from the world's start.
    #[serde(default)]
    pub start_secs: f64,
    /// How long to wait for any one reply before calling it lost.
    #[serde(default = "default_reply_timeout")]
    pub reply_timeout_secs: f64,
    /// The reply expected on connect (default 220).
    #[serde(default = "default_greeting")]
    pub greeting: ReplyPattern,
    /// Bytes sent right after connecting, before the greeting is read: an early talker
    /// (ratware that fires its commands without waiting for the 220, which a server with
    /// `limits.greet_pause_ms` refuses). Sent as written: end lines with `\r\n`.
    #[serde(default)]
    pub pregreet: Option<String>,
    /// `"implicit"`: a TLS handshake right after connecting, before the greeting (RFC 8314,
    /// port 465), trusting the world's CA and checking the server's host name.
    #[serde(default)]
    pub tls: Option<ActorTls>,
    /// DKIM keys the actor's `data` steps are signed with, in the shape of the server's
    /// `[[dkim]]` (`domain`, `selector`, `algorithm`, `key` = a PEM file relative to the
    /// scenario). Each key's selector record is published in the world's zones, as the
    /// sender's domain would publish it. Every message is signed with every key, whatever
    /// its `From:` (so alignment cases can be written); an actor at another address with the
    /// same keys is a forwarder that passes a signed message on unchanged (SPF fails there,
    /// DKIM still verifies).
    #[serde(default)]
    pub dkim: Vec<mailsim_server::config::DkimConfig>,
    /// Retry the whole script on a 4xx, like a real MTA (`scenario/retry.rs` says exactly
    /// which replies defer and what an attempt is). Omitted: a 4xx is an ordinary reply.
    #[serde(default)]
    pub retry: Option<Spanned<super::Retry>>,
    #[serde(default)]
    pub steps: Vec<Spanned<Step>>,
    /// The actor's own failures (a session cut by a crash, an unexpected reply) are not the
    /// scenario's: for fault campaigns, where a seed decides which sessions a fault cuts.
    /// The run's invariants still hold the server to every 250 the actor got.
    #[serde(default)]
    pub may_fail: bool,
}

/// How an actor's connection starts TLS before its first step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorTls {
    Implicit,
}

fn default_reply_timeout() -> f64 {
    600.0
}
fn default_greeting() -> ReplyPattern {
    ReplyPattern("220".into())
}

/// Where an actor connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Domain(String),
    Addr(SocketAddr),
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Target::Addr(a));
        }
        let valid = !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if valid {
            Ok(Target::Domain(s.to_ascii_lowercase()))
        } else {
            Err(format!("{s:?} is neither a domain name nor ip:port"))
        }
    }
}

/// One step of an actor's script. Exactly one action key per step.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Send one command line (CRLF is appended) and read one reply.
    pub send: Option<String>,
    /// Send several command lines in one write, then read one reply per line (RFC 2920).
    pub pipeline: Option<Vec<String>>,
    /// Send message content after a 354: line ends become CRLF, dots are stuffed, and the
    /// terminating `<CRLF>.<CRLF>` is added. Reads one reply.
    pub data: Option<String>,
    /// With `data`: text appended to the body after the actor's DKIM signing, as a mailing
    /// list that adds a footer does (the body hash no longer matches, RFC 6376 §3.7).
    pub after_signing: Option<String>,
    /// Send these bytes exactly (TOML escapes like `\r`, `\n`, `\u0000` work); reads
    /// `replies` replies (default: 1 if `expect` is given, else 0).
    pub raw: Option<String>,
    /// Drop the connection abruptly (no QUIT).
    pub close: Option<bool>,
    /// Pause for this many simulated seconds.
    pub wait_secs: Option<f64>,
    /// `true`: send `STARTTLS`, expect `220` (or `expect`), then run the TLS handshake,
    /// trusting the world's CA and checking the server's host name; the reply reader starts
    /// afresh (RFC 3207 §4.2). A failed handshake fails the actor.
    pub starttls: Option<bool>,
    /// `true`: only the TLS handshake, for a `raw` step that already sent STARTTLS (with
    /// whatever it pipelined after it) and read the 220.
    pub tls_handshake: Option<bool>,
    /// Reply check: a code (`250`), a code with enhanced code (`"550 5.1.1"`), or a prefix
    /// of the reply text. For `pipeline`, a list with one entry per line.
    pub expect: Option<ExpectReplies>,
    /// Replies to read after `raw`.
    pub replies: Option<usize>,
}

impl Step {
    /// The command line whose reply is the step's `n`-th (for `send`, `pipeline` and
    /// `starttls` steps), without CRLF.
    pub fn command_line(&self, n: usize) -> Option<&str> {
        if let Some(line) = &self.send {
            return (n == 0).then_some(line.as_str());
        }
        if let Some(lines) = &self.pipeline {
            return lines.get(n).map(String::as_str);
        }
        (self.starttls == Some(true) && n == 0).then_some("STARTTLS")
    }

    pub fn check(&self) -> Result<(), String> {
        let actions = [
            self.send.is_some(),
            self.pipeline.is_some(),
            self.data.is_some(),
            self.raw.is_some(),
            self.close.is_some(),
            self.wait_secs.is_some(),
            self.starttls.is_some(),
            self.tls_handshake.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if actions != 1 {
            return Err(
                "a step needs exactly one of send, pipeline, data, raw, close, wait_secs, starttls, tls_handshake".into(),
            );
        }
        if let (Some(lines), Some(ExpectReplies::Many(e))) = (&self.pipeline, &self.expect) {
            if lines.len() != e.len() {
                return Err(format!(
                    "pipeline has {} lines but expect has {} entries",
                    lines.len(),
                    e.len()
                ));
            }
        }
        if self.after_signing.is_some() && self.data.is_none() {
            return Err("after_signing goes with data".into());
        }
        if let Some(s) = &self.send {
            if s.contains(['\r', '\n']) {
                return Err("send is one line: use raw for bytes with CR or LF".into());
            }
        }
        if self.wait_secs.is_some_and(|w| !(0.0..=1e9).contains(&w)) {
            return Err("wait_secs must be between 0 and 1e9".into());
        }
        Ok(())
    }

    /// How many replies this step reads.
    pub fn reply_count(&self) -> usize {
        if self.send.is_some() || self.data.is_some() || self.starttls.is_some() {
            1
        } else if let Some(p) = &self.pipeline {
            p.len()
        } else if self.raw.is_some() {
            self.replies.unwrap_or(match &self.expect {
                Some(ExpectReplies::One(_)) => 1,
                Some(ExpectReplies::Many(v)) => v.len(),
                None => 0,
            })
        } else {
            0
        }
    }

    /// The pattern for the n-th reply of this step, if any.
    pub fn pattern(&self, n: usize) -> Option<&ReplyPattern> {
        match &self.expect {
            Some(ExpectReplies::One(p)) if n == 0 => Some(p),
            Some(ExpectReplies::Many(v)) => v.get(n),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ExpectReplies {
    One(ReplyPattern),
    Many(Vec<ReplyPattern>),
}

/// What a reply must start with: `250`, `"550 5.1.1"`, `"250 2.0.0 Ok"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyPattern(pub String);

impl<'de> Deserialize<'de> for ReplyPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(u16),
            Text(String),
        }
        Ok(ReplyPattern(match Raw::deserialize(d)? {
            Raw::Code(c) => c.to_string(),
            Raw::Text(t) => t,
        }))
    }
}

impl ReplyPattern {
    /// Does the reply match? Each line is compared in its final-line form (`250-X` is read
    /// as `250 X`), so a pattern can pick out any line of a multi-line reply.
    pub fn matches(&self, reply: &str) -> bool {
        reply.split(" / ").any(|line| {
            let mut l = line.to_string();
            if l.len() > 3 && l.as_bytes()[3] == b'-' {
                l.replace_range(3..4, " ");
            }
            l.starts_with(&self.0)
        })
    }
}

impl Scenario {
    /// The server host's address and SMTP port in the world.
    pub fn server_addr(&self) -> SocketAddr {
        let l = self.server.get_ref().config.listen.smtp;
        if l.ip().is_loopback() {
            DEFAULT_SERVER_ADDR
        } else {
            l
        }
    }
    pub fn server_ip(&self) -> IpAddr {
        self.server_addr().ip()
    }
    pub fn dns_ip(&self) -> IpAddr {
        self.dns.address.unwrap_or(DEFAULT_DNS_IP)
    }
}
