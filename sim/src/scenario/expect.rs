//! `[[expect]]`: the checks on the world after a run (a mailbox, an actor, a remote or the
//! trace), their own consistency rules, and how each is described in a report. Checked
//! against a finished world by `crate::check`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A check on the world after the run.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// An account address: checks its mailbox.
    pub mailbox: Option<String>,
    /// With `mailbox`: the folder checked, `"INBOX"` (the default) or `"Junk"`.
    pub folder: Option<String>,
    /// Exactly this many messages in the mailbox.
    pub count: Option<usize>,
    /// Some message has these header values (decoded, exact match).
    pub header: Option<BTreeMap<String, String>>,
    /// Some message's body contains this text (the same message as `header`, if both).
    pub body_contains: Option<String>,
    /// No message's body contains this text.
    pub body_lacks: Option<String>,
    /// Some message, headers included, contains this text (e.g. a `Received:` line); with
    /// `remote`, some message the remote accepted, as it came over the wire.
    pub contains: Option<String>,
    /// With `remote`: no message the remote accepted contains this text (e.g. `"ü"` after
    /// an 8BITMIME downgrade).
    pub lacks: Option<String>,
    /// With `remote`: no line of a message the remote accepted is longer than this many
    /// octets, CRLF not counted (RFC 5321 §4.5.3.1.6 allows 998).
    pub longest_line: Option<usize>,
    /// An actor: checks the replies it saw.
    pub actor: Option<Spanned<String>>,
    /// Some reply the actor saw starts with this.
    pub saw_reply: Option<String>,
    /// No reply the actor saw starts with this.
    pub never_saw_reply: Option<String>,
    /// The actor ran every step and every inline `expect` held.
    pub completed: Option<bool>,
    /// Exactly this many attempts (connections running the script from the start, see
    /// `retry`): `2` is "deferred once, accepted on the second attempt".
    pub attempts: Option<u32>,
    /// `true`: the actor's `retry` ran out, every attempt deferred. A give-up is a failure of
    /// the actor (it could not deliver) unless this says it is the point of the scenario;
    /// unlike `completed = false`, it excuses nothing else, so every inline `expect` before
    /// the deferrals must still hold. `false`: it did not give up.
    pub gave_up: Option<bool>,
    /// A remote MTA: checks what it accepted.
    pub remote: Option<Spanned<String>>,
    /// Exactly this many messages accepted by the remote.
    pub accepted: Option<usize>,
    /// Exactly this many connections made to the remote.
    pub connections: Option<usize>,
    /// Exactly this many messages answered 2xx and thrown away by a `discard` rule.
    pub discarded: Option<usize>,
    /// Some message the remote accepted has this DKIM verdict (`pass`, `fail`, `neutral`,
    /// `permerror`, `temperror`, `none`), as the remote's verification found it.
    pub dkim: Option<String>,
    /// The trace contains this text.
    pub trace_contains: Option<String>,
    /// The trace does not contain this text.
    pub trace_lacks: Option<String>,
}

impl Expect {
    pub fn check(&self) -> Result<(), String> {
        let kinds = [
            self.mailbox.is_some(),
            self.actor.is_some(),
            self.remote.is_some(),
            self.trace_contains.is_some() || self.trace_lacks.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if kinds != 1 {
            return Err("an expectation is about exactly one of: mailbox, actor, remote, trace (trace_contains / trace_lacks)".into());
        }
        if self.mailbox.is_some()
            && self.count.is_none()
            && self.header.is_none()
            && self.body_contains.is_none()
            && self.body_lacks.is_none()
            && self.contains.is_none()
        {
            return Err(
                "a mailbox expectation needs count, header, body_contains or body_lacks".into(),
            );
        }
        if self.actor.is_some()
            && self.saw_reply.is_none()
            && self.never_saw_reply.is_none()
            && self.completed.is_none()
            && self.attempts.is_none()
            && self.gave_up.is_none()
        {
            return Err(
                "an actor expectation needs saw_reply, never_saw_reply, completed, attempts or gave_up".into(),
            );
        }
        if self.mailbox.is_none()
            && (self.count.is_some()
                || self.header.is_some()
                || self.body_contains.is_some()
                || self.body_lacks.is_some())
        {
            return Err("count/header/body_* need a mailbox".into());
        }
        if let Some(f) = &self.folder {
            if self.mailbox.is_none() {
                return Err("folder needs a mailbox".into());
            }
            if mailsim_server::mail::Folder::from_name(f).is_none() {
                return Err(format!("unknown folder {f:?}: INBOX or Junk"));
            }
        }
        if self.remote.is_none() && (self.lacks.is_some() || self.longest_line.is_some()) {
            return Err("lacks/longest_line need a remote".into());
        }
        if self.actor.is_none()
            && (self.saw_reply.is_some()
                || self.never_saw_reply.is_some()
                || self.completed.is_some()
                || self.attempts.is_some()
                || self.gave_up.is_some())
        {
            return Err(
                "saw_reply/never_saw_reply/completed/attempts/gave_up need an actor".into(),
            );
        }
        if self.gave_up == Some(true) && self.completed == Some(true) {
            return Err("gave_up = true and completed = true cannot both hold".into());
        }
        if let Some(d) = &self.dkim {
            if self.remote.is_none() {
                return Err("dkim needs a remote".into());
            }
            if !["pass", "fail", "neutral", "permerror", "temperror", "none"].contains(&d.as_str())
            {
                return Err(format!(
                    "dkim = {d:?}: expected pass, fail, neutral, permerror, temperror or none"
                ));
            }
        }
        Ok(())
    }

    /// A short human description, for reports.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = &self.mailbox {
            parts.push(format!("mailbox {m}"));
            if let Some(f) = &self.folder {
                parts.push(format!("folder {f}"));
            }
        }
        if let Some(c) = self.count {
            parts.push(format!("count = {c}"));
        }
        if let Some(h) = &self.header {
            for (k, v) in h {
                parts.push(format!("header {k}: {v:?}"));
            }
        }
        if let Some(b) = &self.body_contains {
            parts.push(format!("body contains {b:?}"));
        }
        if let Some(b) = &self.body_lacks {
            parts.push(format!("body lacks {b:?}"));
        }
        if let Some(c) = &self.contains {
            parts.push(format!("message contains {c:?}"));
        }
        if let Some(a) = &self.actor {
            parts.push(format!("actor {}", a.get_ref()));
        }
        if let Some(r) = &self.saw_reply {
            parts.push(format!("saw reply {r:?}"));
        }
        if let Some(r) = &self.never_saw_reply {
            parts.push(format!("never saw reply {r:?}"));
        }
        if let Some(c) = self.completed {
            parts.push(format!("completed = {c}"));
        }
        if let Some(n) = self.attempts {
            parts.push(format!("attempts = {n}"));
        }
        if let Some(g) = self.gave_up {
            parts.push(format!("gave_up = {g}"));
        }
        if let Some(r) = &self.remote {
            parts.push(format!("remote {}", r.get_ref()));
        }
        if let Some(d) = &self.dkim {
            parts.push(format!("some message with dkim = {d}"));
        }
        if let Some(l) = &self.lacks {
            parts.push(format!("no message contains {l:?}"));
        }
        if let Some(n) = self.longest_line {
            parts.push(format!("longest line <= {n} octets"));
        }
        if let Some(n) = self.accepted {
            parts.push(format!("accepted = {n}"));
        }
        if let Some(n) = self.connections {
            parts.push(format!("connections = {n}"));
        }
        if let Some(n) = self.discarded {
            parts.push(format!("discarded = {n}"));
        }
        if let Some(t) = &self.trace_contains {
            parts.push(format!("trace contains {t:?}"));
        }
        if let Some(t) = &self.trace_lacks {
            parts.push(format!("trace lacks {t:?}"));
        }
        parts.join(", ")
    }
}
