//! A remote session's side of the rules ([`crate::remote::rules`]): the counters they read,
//! asking them before a reply (and tracing what fires), replying with what they chose, and
//! scheduling a `bounce_later` DSN. Kept apart from the SMTP dialogue in `session.rs`, which
//! only says, per phase, what it knows and what it would have answered.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::super::rules::{self, Action, Context, Phase, Rule};
use super::super::Behaviour;
use super::{RemoteSession, Stop};

/// This connection's counts, as the rules see them.
#[derive(Default)]
pub(in crate::remote) struct Counters {
    /// The nth connection to the remote (1-based).
    pub connection: u64,
    /// MAIL commands so far in this connection.
    pub transaction: u64,
    /// RCPT commands so far in this transaction.
    pub rcpt: u64,
    /// Messages accepted in this connection.
    pub messages: u64,
    /// Replies sent (tarpitting grows with it).
    pub replies: u64,
}

/// What a rule that fired decided.
pub(super) struct Fired {
    pub reply: Option<String>,
    pub delay: f64,
    pub action: Option<Action>,
    pub rule: Rule,
}

/// The transaction so far, for the rules' conditions.
pub(super) struct Asked<'a> {
    pub sender: Option<&'a str>,
    pub recipients: &'a [String],
    pub size: Option<u64>,
}

impl Asked<'_> {
    pub const NOTHING: Asked<'static> = Asked {
        sender: None,
        recipients: &[],
        size: None,
    };
}

impl RemoteSession {
    /// The first rule whose conditions hold here, traced as it fires.
    pub(super) fn ask(&mut self, phase: Phase, asked: Asked<'_>) -> Option<Fired> {
        if self.rules.is_empty() {
            return None;
        }
        let history = self.history.lock().unwrap();
        let client = self.peer.ip();
        let cx = Context {
            phase,
            now: self.clock.elapsed(),
            sender: asked.sender,
            recipients: asked.recipients,
            size: asked.size,
            tls: self.stream.is_tls(),
            client,
            connection: self.counters.connection,
            transaction: self.counters.transaction,
            rcpt: self.counters.rcpt,
            messages_in_connection: self.counters.messages,
            client_open_connections: history.open.get(&client).copied().unwrap_or(0),
            history: &history,
        };
        let index = self.rules.iter().position(|r| r.matches(&cx))?;
        drop(history);
        let rule = self.rules[index].clone();
        let mut what = Vec::new();
        if let Some(r) = &rule.reply {
            what.push(r.replace("{name}", &self.spec.name));
        }
        if let Some(d) = rule.delay_secs {
            what.push(format!("after {d}s"));
        }
        if let Some(a) = rule.action {
            what.push(a.to_string());
        }
        if what.is_empty() {
            what.push("the usual reply".into());
        }
        self.trace.record(
            self.name(),
            "remote",
            format_args!(
                "{} fires at {phase}: {}",
                rules::label(&self.rules, index),
                what.join(", ")
            ),
        );
        Some(Fired {
            reply: rule.reply.clone(),
            delay: rule.delay_secs.unwrap_or(0.0),
            action: rule.action,
            rule,
        })
    }

    /// A fired rule's delay (before the reply).
    pub(super) async fn delay_for(&self, fired: &Option<Fired>) {
        if let Some(f) = fired {
            if f.delay > 0.0 {
                let until = self.clock.now().plus(Duration::from_secs_f64(f.delay));
                self.clock.sleep_until(until).await;
            }
        }
    }

    /// Sends `r` after a fired rule's delay; a 421 a rule chose closes the connection
    /// after it (RFC 5321 §3.8: the server closes after a 421).
    pub(super) async fn answer(
        &mut self,
        b: &Behaviour,
        r: &str,
        fired: Option<Fired>,
    ) -> Result<(), Stop> {
        self.delay_for(&fired).await;
        self.reply(b, r).await?;
        if fired.is_some_and(|f| f.reply.is_some()) && r.starts_with("421") {
            self.trace
                .record(self.name(), "remote", "closes the connection after its 421");
            let _ = self.stream.shutdown().await;
            return Err(Stop::Dropped);
        }
        Ok(())
    }

    /// Schedules the DSN of a `bounce_later` rule ([`super::bounce`]).
    pub(super) fn bounce_later(
        &self,
        rule: &Rule,
        message: &[u8],
        from: Option<&str>,
        to: &[String],
    ) {
        let Some(sender) = from.filter(|s| !s.is_empty()) else {
            self.trace.record(
                self.name(),
                "remote",
                "would bounce later, but the sender is null (no DSN for a DSN)",
            );
            return;
        };
        let Some(mx) = self.spec.mx else {
            return;
        };
        let after = Duration::from_secs_f64(rule.bounce_after_secs.unwrap_or(3600.0));
        let bounce = super::super::bounce::Bounce {
            remote: self.spec.name.clone(),
            mx,
            sender: sender.to_string(),
            recipients: to.to_vec(),
            diagnostic: rule
                .bounce_reply
                .clone()
                .unwrap_or_else(|| "550 5.1.1 The email account does not exist".into()),
            headers: mailsim_server::mail::header::header_section(message).to_vec(),
            at: self.clock.now().plus(after),
        };
        self.trace.record(
            self.name(),
            "remote",
            format_args!("will send a DSN to <{sender}> in {}s", after.as_secs_f64()),
        );
        let (clock, trace) = (self.clock.clone(), self.trace.clone());
        tokio::task::spawn_local(async move { bounce.send(&clock, &trace).await });
    }
}

/// A fired rule's reply, or the scripted one.
pub(super) fn ruled(fired: &Option<Fired>, scripted: &str) -> String {
    fired
        .as_ref()
        .and_then(|f| f.reply.clone())
        .unwrap_or_else(|| scripted.to_string())
}
