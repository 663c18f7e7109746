//! Rule-based remote behaviour (issue #13): an ordered list of `[[remote.rule]]`s, each a
//! set of conditions and an action, asked before every reply; the first rule whose
//! conditions all hold decides, and the phase's scripted reply (the `behaviour`) answers
//! when none does. So the `behaviour`/`change` keys are rules without conditions, and a
//! scenario without rules behaves exactly as before.
//!
//! This is how big receivers push back in the field, and what a plain per-phase reply
//! cannot say: "the 3rd RCPT of a transaction gets `452 4.5.3`" (a recipient limit, RFC 5321
//! §4.5.3.1.10), "after 50 messages from one IP in 10 minutes, `421 4.7.28`" (Gmail's rate
//! limit), "mail from this sender is deferred", "over 1 MB gets `552`", "accept, then send a
//! DSN back an hour later". `[remote.limits]` ([`Limits`]) is sugar for the common ones,
//! turned into rules placed after the explicit ones.
//!
//! Every rule that fires is in the trace (`rule 2 (limits: recipients per transaction)
//! fires at RCPT: 452 4.5.3 ...`), so a scenario's log says why a reply was what it was.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// Where in a session a rule applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The banner: the connection has just been accepted.
    Connect,
    Ehlo,
    Helo,
    Starttls,
    Mail,
    Rcpt,
    Data,
    /// After the final dot (or `BDAT ... LAST`): the message is known.
    EndOfData,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Ehlo => "EHLO",
            Phase::Helo => "HELO",
            Phase::Starttls => "STARTTLS",
            Phase::Mail => "MAIL",
            Phase::Rcpt => "RCPT",
            Phase::Data => "DATA",
            Phase::EndOfData => "end of data",
        })
    }
}

/// A count condition: `3` (exactly the 3rd), `"3.."` (the 3rd and later), `"..2"`,
/// `"2..4"` (both ends included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub min: u64,
    pub max: u64,
}

impl Count {
    pub fn holds(&self, n: u64) -> bool {
        self.min <= n && n <= self.max
    }

    fn parse(text: &str) -> Result<Count, String> {
        let bad = || format!("{text:?} is not a count (3, \"3..\", \"..3\" or \"2..4\")");
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        match text.split_once("..") {
            None => num(text).map(|n| Count { min: n, max: n }),
            Some((a, b)) => {
                let min = if a.trim().is_empty() { 0 } else { num(a)? };
                let max = if b.trim().is_empty() {
                    u64::MAX
                } else {
                    num(b)?
                };
                if min > max {
                    return Err(format!("{text:?} is an empty range"));
                }
                Ok(Count { min, max })
            }
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Count { min: n, max: n }),
            Raw::S(s) => Count::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (a, b) if a == b => write!(f, "{a}"),
            (a, u64::MAX) => write!(f, "{a}.."),
            (a, b) => write!(f, "{a}..{b}"),
        }
    }
}

/// "More than `more_than` in the last `secs` seconds", for a client IP's messages or
/// connections (a sliding window; the current one included for connections).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub secs: f64,
    pub more_than: u64,
}

/// What a rule does besides (or instead of) its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// At end of data: answer 2xx, keep nothing (a silent discard, as a spam trap does).
    Discard,
    /// At end of data: accept, then `bounce_after_secs` later send an RFC 3464 failure DSN
    /// for the recipients to the envelope sender through our MX (mail accepted now and
    /// bounced later, as forwarders and some big receivers do).
    BounceLater,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Discard => "discard",
            Action::BounceLater => "bounce_later",
        })
    }
}

/// One `[[remote.rule]]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A name for the trace (default: its position).
    pub name: Option<String>,
    /// The phase it answers (required).
    pub phase: Option<Phase>,
    /// The envelope sender matches this pattern (`*` any run of characters, case-insensitive;
    /// `""` the null sender).
    pub sender: Option<String>,
    /// At RCPT, the address being given; later, any recipient of the transaction.
    pub recipient: Option<String>,
    /// The message is larger than this many octets (at MAIL: its `SIZE=` parameter).
    pub size_over: Option<u64>,
    /// The session is (or is not) under TLS.
    pub tls: Option<bool>,
    /// The client's IP address, or a network (`198.51.100.0/24`).
    pub client: Option<String>,
    /// The nth connection to this remote (1-based, all clients).
    pub nth_connection: Option<Count>,
    /// The nth transaction (MAIL) in this connection.
    pub nth_transaction: Option<Count>,
    /// The nth RCPT in this transaction.
    pub nth_rcpt: Option<Count>,
    /// How many messages this connection has had accepted before this point.
    pub messages_in_connection: Option<Count>,
    /// The client's connections open now, this one included.
    pub client_open_connections: Option<Count>,
    /// More than N messages accepted from the client's IP in the last `secs` seconds.
    pub client_messages: Option<Window>,
    /// More than N connections from the client's IP in the last `secs`, this one included.
    pub client_connections: Option<Window>,
    /// Active from this simulated time on (seconds)...
    pub from_secs: Option<f64>,
    /// ...until this one (exclusive).
    pub until_secs: Option<f64>,
    /// The reply: a reply line, `"drop"` or `"silent"`; absent: the phase's usual reply.
    /// A 421 closes the connection after it is sent (RFC 5321 §3.8).
    pub reply: Option<String>,
    /// Wait this long before replying.
    pub delay_secs: Option<f64>,
    pub action: Option<Action>,
    /// With `action = "bounce_later"`: how long after the acceptance (default 3 600).
    pub bounce_after_secs: Option<f64>,
    /// With `action = "bounce_later"`: the Diagnostic-Code of the DSN.
    pub bounce_reply: Option<String>,
}

/// `[remote.limits]`: receiver limits as first-class settings, each off unless set.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// RCPTs beyond this many in one transaction get `452 4.5.3 Too many recipients`.
    pub recipients_per_transaction: Option<u64>,
    /// After this many accepted messages in one connection, MAIL gets `421 4.7.0` and the
    /// connection closes.
    pub messages_per_connection: Option<u64>,
    /// Concurrent connections per client IP; one more gets `421 4.7.0` instead of a banner.
    pub connections_per_client: Option<u64>,
    /// Messages per client IP per window: over it, MAIL gets `reply` (default `421 4.7.28`).
    pub messages_per_client: Option<RateLimit>,
    /// Tarpitting: the nth reply of a session waits n × this many seconds.
    pub tarpit_secs: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub count: u64,
    pub per_secs: f64,
    pub reply: Option<String>,
}

impl Limits {
    /// The limits as rules (named `limits: ...`), in a fixed order.
    pub fn rules(&self) -> Vec<Rule> {
        let mut rules = Vec::new();
        if let Some(n) = self.connections_per_client {
            rules.push(Rule {
                name: Some("limits: connections per client".into()),
                phase: Some(Phase::Connect),
                client_open_connections: Some(Count {
                    min: n + 1,
                    max: u64::MAX,
                }),
                reply: Some("421 4.7.0 {name} Too many connections from your IP".into()),
                ..Rule::default()
            });
        }
        if let Some(limit) = &self.messages_per_client {
            rules.push(Rule {
                name: Some("limits: messages per client".into()),
                phase: Some(Phase::Mail),
                client_messages: Some(Window {
                    secs: limit.per_secs,
                    more_than: limit.count.saturating_sub(1),
                }),
                reply: Some(limit.reply.clone().unwrap_or_else(|| {
                    "421 4.7.28 {name} Our system has detected an unusual rate of mail \
                     from your IP address"
                        .into()
                })),
                ..Rule::default()
            });
        }
        if let Some(n) = self.messages_per_connection {
            rules.push(Rule {
                name: Some("limits: messages per connection".into()),
                phase: Some(Phase::Mail),
                messages_in_connection: Some(Count {
                    min: n,
                    max: u64::MAX,
                }),
                reply: Some("421 4.7.0 {name} Too many messages in this connection".into()),
                ..Rule::default()
            });
        }
        if let Some(n) = self.recipients_per_transaction {
            rules.push(Rule {
                name: Some("limits: recipients per transaction".into()),
                phase: Some(Phase::Rcpt),
                nth_rcpt: Some(Count {
                    min: n + 1,
                    max: u64::MAX,
                }),
                reply: Some("452 4.5.3 Too many recipients".into()),
                ..Rule::default()
            });
        }
        rules
    }
}

/// What a session knows when it asks the rules.
pub struct Context<'a> {
    pub phase: Phase,
    pub now: Duration,
    pub sender: Option<&'a str>,
    /// At RCPT: the address given. Later: every recipient accepted so far.
    pub recipients: &'a [String],
    pub size: Option<u64>,
    pub tls: bool,
    pub client: IpAddr,
    pub connection: u64,
    pub transaction: u64,
    pub rcpt: u64,
    pub messages_in_connection: u64,
    pub client_open_connections: u64,
    /// Per client IP: when each of its messages was accepted, and each connection opened.
    pub history: &'a ClientHistory,
}

/// A remote's memory of each client IP, for the sliding windows.
#[derive(Clone, Debug, Default)]
pub struct ClientHistory {
    pub messages: BTreeMap<IpAddr, Vec<Duration>>,
    pub connections: BTreeMap<IpAddr, Vec<Duration>>,
    pub open: BTreeMap<IpAddr, u64>,
}

impl ClientHistory {
    fn count_since(times: Option<&Vec<Duration>>, now: Duration, secs: f64) -> u64 {
        let from = now.saturating_sub(Duration::from_secs_f64(secs.max(0.0)));
        times.map_or(0, |t| t.iter().filter(|&&t| t > from).count() as u64)
    }
}

impl Rule {
    /// Checks the rule makes sense (the scenario loader reports it with the rule's index).
    pub fn check(&self) -> Result<(), String> {
        let Some(phase) = self.phase else {
            return Err(
                "a rule needs a `phase` (connect, ehlo, helo, starttls, mail, rcpt, \
                        data, end_of_data)"
                    .into(),
            );
        };
        if let Some(r) = &self.reply {
            if !super::is_reply(r) {
                return Err(format!(
                    "reply {r:?} is not a reply (\"250 ...\", \"drop\" or \"silent\")"
                ));
            }
        }
        if let Some(c) = &self.client {
            parse_net(c)?;
        }
        for (key, v) in [
            ("delay_secs", self.delay_secs),
            ("from_secs", self.from_secs),
            ("until_secs", self.until_secs),
            ("bounce_after_secs", self.bounce_after_secs),
            ("client_messages.secs", self.client_messages.map(|w| w.secs)),
            (
                "client_connections.secs",
                self.client_connections.map(|w| w.secs),
            ),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("{key} must be a number >= 0"));
                }
            }
        }
        if self.action.is_some() && phase != Phase::EndOfData {
            return Err(
                "an `action` (discard, bounce_later) applies at phase = \"end_of_data\"".into(),
            );
        }
        if self.bounce_reply.is_some() && self.action != Some(Action::BounceLater) {
            return Err("bounce_reply needs action = \"bounce_later\"".into());
        }
        Ok(())
    }

    /// Every condition holds in `cx`.
    pub fn matches(&self, cx: &Context<'_>) -> bool {
        let t = cx.now.as_secs_f64();
        self.phase == Some(cx.phase)
            && self.from_secs.is_none_or(|f| t >= f)
            && self.until_secs.is_none_or(|u| t < u)
            && self
                .sender
                .as_deref()
                .is_none_or(|p| cx.sender.is_some_and(|s| glob(p, s)))
            && self
                .recipient
                .as_deref()
                .is_none_or(|p| cx.recipients.iter().any(|r| glob(p, r)))
            && self
                .size_over
                .is_none_or(|n| cx.size.is_some_and(|s| s > n))
            && self.tls.is_none_or(|t| t == cx.tls)
            && self
                .client
                .as_deref()
                .is_none_or(|c| parse_net(c).is_ok_and(|net| in_net(net, cx.client)))
            && self.nth_connection.is_none_or(|c| c.holds(cx.connection))
            && self.nth_transaction.is_none_or(|c| c.holds(cx.transaction))
            && self.nth_rcpt.is_none_or(|c| c.holds(cx.rcpt))
            && self
                .messages_in_connection
                .is_none_or(|c| c.holds(cx.messages_in_connection))
            && self
                .client_open_connections
                .is_none_or(|c| c.holds(cx.client_open_connections))
            && self.client_messages.is_none_or(|w| {
                ClientHistory::count_since(cx.history.messages.get(&cx.client), cx.now, w.secs)
                    > w.more_than
            })
            && self.client_connections.is_none_or(|w| {
                ClientHistory::count_since(cx.history.connections.get(&cx.client), cx.now, w.secs)
                    > w.more_than
            })
    }
}

/// `*` matches any run of characters; everything else itself, ASCII case-insensitively.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Iterative wildcard matching with one backtrack point: linear in practice.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && p[i] != b'*' && p[i].eq_ignore_ascii_case(&t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

fn parse_net(text: &str) -> Result<(IpAddr, u8), String> {
    let bad = || format!("client {text:?} is not an IP address or network");
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len.parse::<u8>().map_err(|_| bad())?)),
        None => (text, None),
    };
    let ip: IpAddr = ip.trim().parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        return Err(bad());
    }
    Ok((ip, len))
}

fn in_net((net, len): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// How a fired rule is named in the trace.
pub fn label(rules: &[Rule], index: usize) -> String {
    match rules.get(index).and_then(|r| r.name.as_deref()) {
        Some(name) => format!("rule {} ({name})", index + 1),
        None => format!("rule {}", index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_numbers_or_ranges() {
        let c: BTreeMap<String, Count> =
            toml::from_str("a = 3\nb = \"3..\"\nc = \"..2\"\nd = \"2..4\"").unwrap();
        assert_eq!(c["a"], Count { min: 3, max: 3 });
        assert!(c["b"].holds(3) && c["b"].holds(1000) && !c["b"].holds(2));
        assert!(c["c"].holds(0) && c["c"].holds(2) && !c["c"].holds(3));
        assert!(c["d"].holds(2) && c["d"].holds(4) && !c["d"].holds(5));
        assert_eq!(c["b"].to_string(), "3..");
        assert!(toml::from_str::<BTreeMap<String, Count>>("a = \"4..2\"").is_err());
        assert!(toml::from_str::<BTreeMap<String, Count>>("a = \"x\"").is_err());
    }

    #[test]
    fn globs_match_case_insensitively_with_stars() {
        assert!(glob("*@example.org", "Alice@EXAMPLE.org"));
        assert!(!glob("*@example.org", "alice@example.org.evil"));
        assert!(glob("bulk-*@*", "bulk-7@news.test"));
        assert!(glob("", ""));
        assert!(!glob("", "a@b"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }

    #[test]
    fn networks_match_by_prefix() {
        let net = parse_net("198.51.100.0/24").unwrap();
        assert!(in_net(net, "198.51.100.77".parse().unwrap()));
        assert!(!in_net(net, "198.51.101.1".parse().unwrap()));
        assert!(in_net(
            parse_net("::/0").unwrap(),
            "2001:db8::1".parse().unwrap()
        ));
        assert!(!in_net(
            parse_net("::/0").unwrap(),
            "192.0.2.1".parse().unwrap()
        ));
        assert!(parse_net("198.51.100.0/33").is_err());
        assert!(parse_net("mx.example").is_err());
    }

    fn cx<'a>(
        phase: Phase,
        rcpt: u64,
        history: &'a ClientHistory,
        rcpts: &'a [String],
    ) -> Context<'a> {
        Context {
            phase,
            now: Duration::from_secs(100),
            sender: Some("alice@example.org"),
            recipients: rcpts,
            size: None,
            tls: false,
            client: "192.0.2.1".parse().unwrap(),
            connection: 1,
            transaction: 1,
            rcpt,
            messages_in_connection: 0,
            client_open_connections: 1,
            history,
        }
    }

    #[test]
    fn the_recipient_limit_fires_from_the_next_rcpt_on() {
        let rules = Limits {
            recipients_per_transaction: Some(2),
            ..Limits::default()
        }
        .rules();
        let h = ClientHistory::default();
        let r = ["bob@other.net".to_string()];
        assert!(!rules[0].matches(&cx(Phase::Rcpt, 2, &h, &r)));
        assert!(rules[0].matches(&cx(Phase::Rcpt, 3, &h, &r)));
        assert!(!rules[0].matches(&cx(Phase::Mail, 3, &h, &r)));
    }

    #[test]
    fn the_rate_window_slides() {
        let rules = Limits {
            messages_per_client: Some(RateLimit {
                count: 2,
                per_secs: 60.0,
                reply: None,
            }),
            ..Limits::default()
        }
        .rules();
        let mut h = ClientHistory::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        h.messages.insert(ip, vec![Duration::from_secs(30)]);
        assert!(!rules[0].matches(&cx(Phase::Mail, 0, &h, &[])));
        h.messages
            .get_mut(&ip)
            .unwrap()
            .push(Duration::from_secs(90));
        // Two in the last minute (30 s is 70 s ago: outside): one, so still under.
        assert!(!rules[0].matches(&cx(Phase::Mail, 0, &h, &[])));
        h.messages
            .get_mut(&ip)
            .unwrap()
            .push(Duration::from_secs(95));
        assert!(rules[0].matches(&cx(Phase::Mail, 0, &h, &[])));
    }

    #[test]
    fn rules_without_a_phase_or_with_misplaced_actions_are_refused() {
        assert!(Rule::default().check().is_err());
        let r: Rule = toml::from_str("phase = \"rcpt\"\naction = \"discard\"").unwrap();
        assert!(r.check().unwrap_err().contains("end_of_data"));
        let r: Rule = toml::from_str("phase = \"rcpt\"\nreply = \"maybe\"").unwrap();
        assert!(r.check().is_err());
        let r: Rule = toml::from_str("phase = \"rcpt\"\nclient = \"10.0.0.0/99\"").unwrap();
        assert!(r.check().is_err());
        assert!(toml::from_str::<Rule>("phase = \"rcpt\"\ncolour = 1").is_err());
    }
}
