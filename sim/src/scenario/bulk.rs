//! Bulk senders (`[[bulk]]`, issue #13 item 4): N messages at a rate over M connections from
//! one client host, for load inside the world — a newsletter run, a burst from a compromised
//! account, the traffic a receiver's rate limit is there for. A bulk sender is sugar: the
//! loader expands it into M ordinary actors (`<name>-1` … `<name>-M`, one connection each,
//! all from `address`), so everything an actor does — traces, the ledger the no-loss
//! invariant reads, `[[expect]] actor = ...` — works unchanged.
//!
//! Message k (1-based) goes over connection ((k - 1) mod M) + 1, so the connections carry
//! within one message of each other; each connection waits M / `rate_per_sec` seconds
//! between its messages, so together they send at about `rate_per_sec`.

use serde::Deserialize;
use toml::Spanned;

use super::model::{Actor, ExpectReplies, ReplyPattern, Step, Target};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    /// Its actors are named `<name>-1` … `<name>-<connections>`.
    pub name: String,
    pub address: std::net::IpAddr,
    /// A domain (MX lookup) or `ip:port`, as for an actor.
    pub target: String,
    /// The envelope sender (and From:).
    pub from: String,
    /// The recipients of every message.
    pub to: Vec<String>,
    pub messages: u32,
    #[serde(default = "one")]
    pub connections: u32,
    /// Messages per simulated second over all connections (0 or absent: as fast as the
    /// replies come).
    #[serde(default)]
    pub rate_per_sec: f64,
    #[serde(default)]
    pub start_secs: f64,
    /// Approximate body size of each message, in octets.
    #[serde(default = "default_size")]
    pub size: usize,
    /// As for actors: a fault may cut its sessions.
    #[serde(default)]
    pub may_fail: bool,
}

fn one() -> u32 {
    1
}

fn default_size() -> usize {
    1000
}

impl Bulk {
    /// Checks the numbers make sense.
    pub fn check(&self) -> Result<(), String> {
        if self.messages == 0 || self.connections == 0 {
            return Err("messages and connections must be at least 1".into());
        }
        if self.connections > self.messages {
            return Err(format!(
                "{} connections for {} messages: some would carry nothing",
                self.connections, self.messages
            ));
        }
        if self.to.is_empty() {
            return Err("`to` needs at least one recipient".into());
        }
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec >= 0.0) {
            return Err("rate_per_sec must be a number >= 0".into());
        }
        if !(self.start_secs.is_finite() && self.start_secs >= 0.0) {
            return Err("start_secs must be a number >= 0".into());
        }
        self.target.parse::<Target>()?;
        for a in std::iter::once(&self.from).chain(&self.to) {
            if a.contains(['<', '>', '\r', '\n']) || !a.contains('@') {
                return Err(format!("{a:?} is not a plain address"));
            }
        }
        Ok(())
    }

    /// The actors it stands for; `span` is the `[[bulk]]` table's, for their error messages.
    pub fn actors(&self, span: std::ops::Range<usize>) -> Vec<Actor> {
        let m = self.connections.max(1);
        let wait = match self.rate_per_sec > 0.0 {
            true => f64::from(m) / self.rate_per_sec,
            false => 0.0,
        };
        let sp = |v: Step| Spanned::new(span.clone(), v);
        (1..=m)
            .map(|c| {
                let mut steps = vec![sp(step_send(&format!("EHLO {}.bulk.test", self.name)))];
                let mine: Vec<u32> = (1..=self.messages)
                    .filter(|k| (k - 1) % m + 1 == c)
                    .collect();
                for (i, &k) in mine.iter().enumerate() {
                    if i > 0 && wait > 0.0 {
                        steps.push(sp(Step {
                            wait_secs: Some(wait),
                            ..Step::default()
                        }));
                    }
                    steps.push(sp(self.envelope()));
                    steps.push(sp(Step {
                        data: Some(self.body(k)),
                        expect: Some(ExpectReplies::One(ReplyPattern("250".into()))),
                        ..Step::default()
                    }));
                }
                steps.push(sp(step_send("QUIT")));
                Actor {
                    name: Spanned::new(span.clone(), format!("{}-{c}", self.name)),
                    address: Spanned::new(span.clone(), self.address),
                    target: Spanned::new(span.clone(), self.target.clone()),
                    start_secs: self.start_secs,
                    reply_timeout_secs: 600.0,
                    greeting: ReplyPattern("220".into()),
                    pregreet: None,
                    tls: None,
                    dkim: Vec::new(),
                    retry: None,
                    steps,
                    may_fail: self.may_fail,
                }
            })
            .collect()
    }

    fn envelope(&self) -> Step {
        let mut lines = vec![format!("MAIL FROM:<{}>", self.from)];
        lines.extend(self.to.iter().map(|t| format!("RCPT TO:<{t}>")));
        lines.push("DATA".into());
        let mut expect = vec![ReplyPattern("250".into()); lines.len() - 1];
        expect.push(ReplyPattern("354".into()));
        Step {
            pipeline: Some(lines),
            expect: Some(ExpectReplies::Many(expect)),
            ..Step::default()
        }
    }

    fn body(&self, k: u32) -> String {
        let mut body = format!(
            "From: {}\nTo: {}\nSubject: {} message {k}\nMessage-ID: <{}.{k}@bulk.test>\n\n",
            self.from,
            self.to.join(", "),
            self.name,
            self.name
        );
        let line = "The quick brown fox jumps over the lazy dog, again and again.\n";
        while body.len() + line.len() <= self.size {
            body.push_str(line);
        }
        body
    }
}

fn step_send(line: &str) -> Step {
    Step {
        send: Some(line.into()),
        expect: Some(ExpectReplies::One(ReplyPattern(
            if line == "QUIT" { "221" } else { "250" }.into(),
        ))),
        ..Step::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(messages: u32, connections: u32) -> Bulk {
        toml::from_str(&format!(
            "name = \"news\"\naddress = \"198.51.100.20\"\ntarget = \"192.0.2.1:25\"\n\
             from = \"news@example.org\"\nto = [\"a@other.net\"]\nmessages = {messages}\n\
             connections = {connections}\nrate_per_sec = 2.0\nsize = 300\n"
        ))
        .unwrap()
    }

    #[test]
    fn messages_spread_over_connections_at_the_rate() {
        let b = bulk(7, 3);
        b.check().unwrap();
        let actors = b.actors(0..1);
        assert_eq!(actors.len(), 3);
        let datas: Vec<usize> = actors
            .iter()
            .map(|a| {
                a.steps
                    .iter()
                    .filter(|s| s.get_ref().data.is_some())
                    .count()
            })
            .collect();
        assert_eq!(datas, [3, 2, 2]);
        // Each connection waits 3 / 2 s between its messages.
        let waits: Vec<f64> = actors[0]
            .steps
            .iter()
            .filter_map(|s| s.get_ref().wait_secs)
            .collect();
        assert_eq!(waits, [1.5, 1.5]);
        assert_eq!(actors[2].name.get_ref(), "news-3");
        for a in &actors {
            for s in &a.steps {
                s.get_ref().check().unwrap();
            }
        }
        let body = actors[1].steps[2].get_ref().data.clone().unwrap();
        assert!(body.contains("Subject: news message 2\n"), "{body}");
        assert!(body.len() <= 300 && body.len() > 200, "{}", body.len());
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(bulk(2, 3).check().is_err());
        assert!(bulk(0, 1).check().is_err());
        let mut b = bulk(3, 1);
        b.to = vec!["x>y@z".into()];
        assert!(b.check().is_err());
    }
}
