//! The protocol decisions of one mail transaction, without I/O: which recipients are sent at
//! all, the MAIL and RCPT command lines, and — fed the replies in wire order — each
//! recipient's outcome and what the client does next. The async [`Client`](super::Client)
//! only writes the commands it is given and reads the replies it feeds back, in lockstep or
//! pipelined (RFC 2920); both modes share every rule here.
//!
//! Replies are indexed by command: `0` is MAIL, `1..=n` the RCPTs (of the sendable
//! recipients, in order), `n + 1` DATA. With BDAT (RFC 3030) there is no DATA command: after
//! the last RCPT reply with some recipient accepted the client sends the chunks, and each
//! chunk's reply goes to [`Transaction::on_chunk_reply`].

use crate::mail::Address;
use crate::smtp::Reply;

use super::prepare::{Body, Prepared};
use super::{Capabilities, OutboundDsn, OutboundMessage, RcptOutcome, SessionError, Stage, State};
use crate::mail::dsn::xtext_encode;
use crate::mail::Notify;

/// What the client does after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Send (lockstep) or read (pipelined) the next command's reply.
    Next,
    /// 354 with some recipient accepted: send the body, then feed the final reply to
    /// [`Transaction::on_end_of_data`]. With BDAT: the RCPTs are done and some recipient
    /// was accepted; send the chunks, feeding each reply to [`Transaction::on_chunk_reply`].
    SendBody,
    /// 354 although nothing was accepted (pipelined, RFC 2920 §3.1): send a lone `.`, then
    /// feed the reply to [`Transaction::on_lone_dot_reply`].
    SendLoneDot,
    /// Every recipient that will get an outcome in this transaction has it.
    Done,
}

/// One transaction's bookkeeping; see the module docs.
#[derive(Debug)]
pub(super) struct Transaction {
    pipelined: bool,
    /// MAIL, the RCPTs, DATA (not with BDAT); empty when nothing is sent at all.
    commands: Vec<String>,
    /// The message goes with BDAT: no DATA command.
    bdat: bool,
    /// Positions (in the message's recipients) of the recipients RCPT is sent for.
    targets: Vec<usize>,
    outcomes: Vec<Option<RcptOutcome>>,
    /// Targets the server said 2xx to RCPT for.
    accepted: Vec<usize>,
    mail_ok: bool,
    state: State,
}

impl Transaction {
    /// Decides what needs no round trip (see [`super`]'s docs: SIZE, SMTPUTF8, unsendable
    /// addresses) and builds the commands for `caps`. `notes` gets the decisions the client
    /// took on its own, for the transcript.
    pub fn new(
        msg: &OutboundMessage<'_>,
        prepared: &Prepared<'_>,
        caps: &Capabilities,
        state: State,
        notes: &mut Vec<String>,
    ) -> Transaction {
        let mut tx = Transaction {
            pipelined: caps.pipelining,
            commands: Vec::new(),
            bdat: prepared.bdat,
            targets: Vec::new(),
            outcomes: vec![None; msg.recipients.len()],
            accepted: Vec::new(),
            mail_ok: false,
            state,
        };
        if msg.recipients.is_empty() {
            return tx;
        }
        let peer = if caps.hostname.is_empty() {
            "the remote server"
        } else {
            caps.hostname.as_str()
        };
        let size = prepared.message.len() as u64;
        if let Some(reply) = refuse_locally(msg, size, caps, peer) {
            notes.push(format!("not sent: {reply}"));
            let outcome = RcptOutcome::Failed(reply);
            tx.outcomes
                .iter_mut()
                .for_each(|o| *o = Some(outcome.clone()));
            return tx;
        }
        for (i, rcpt) in msg.recipients.iter().enumerate() {
            if is_sendable(rcpt) {
                tx.targets.push(i);
            } else {
                let reply =
                    Reply::new(553, (5, 1, 3), "Recipient address cannot be sent over SMTP");
                notes.push(format!("<{rcpt}> not sent: {reply}"));
                tx.outcomes[i] = Some(RcptOutcome::Failed(reply));
            }
        }
        if tx.targets.is_empty() {
            return tx;
        }
        notes.extend(prepared.notes.iter().cloned());
        let mut mail = match msg.mail_from {
            Some(from) => format!("MAIL FROM:<{from}>"),
            None => "MAIL FROM:<>".to_string(),
        };
        if caps.size.is_some() {
            mail.push_str(&format!(" SIZE={size}"));
        }
        match prepared.body {
            Body::SevenBit => {}
            Body::EightBitMime => mail.push_str(" BODY=8BITMIME"),
            Body::BinaryMime => mail.push_str(" BODY=BINARYMIME"),
        }
        if needs_smtputf8(msg) {
            mail.push_str(" SMTPUTF8");
        }
        // RFC 8689 §4.2.1: passed on; the caller only sends to peers that offer it.
        if msg.require_tls && caps.require_tls {
            mail.push_str(" REQUIRETLS");
        }
        // RFC 3461 §5.2.1: to a DSN peer the parameters travel on (and it reports).
        let dsn = msg.dsn.filter(|_| caps.dsn);
        if let Some(d) = dsn {
            push_mail_dsn(&mut mail, d);
        }
        tx.commands.push(mail);
        tx.commands.extend(tx.targets.iter().map(|&i| {
            let mut rcpt = format!("RCPT TO:<{}>", msg.recipients[i]);
            if let Some((notify, orcpt)) = dsn.and_then(|d| d.recipients.get(i)) {
                push_rcpt_dsn(&mut rcpt, notify, orcpt.as_deref());
            }
            rcpt
        }));
        if !tx.bdat {
            tx.commands.push("DATA".to_string());
        }
        tx
    }

    /// The message goes in BDAT chunks (after the RCPTs), not after DATA.
    pub fn bdat(&self) -> bool {
        self.bdat
    }

    /// The index of the last RCPT command.
    fn last_rcpt(&self) -> usize {
        self.commands
            .len()
            .saturating_sub(1 + usize::from(!self.bdat))
    }

    /// The command lines to send, in order; empty if everything was decided locally.
    pub fn commands(&self) -> &[String] {
        &self.commands
    }

    /// A previous transaction was left open: RSET first.
    pub fn needs_rset(&self) -> bool {
        !self.commands.is_empty() && self.state == State::InTransaction
    }

    /// RSET was accepted.
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// Where command `k` belongs, for errors and timeouts.
    pub fn stage(&self, k: usize) -> Stage {
        match k {
            0 => Stage::MailFrom,
            k if k > self.last_rcpt() => Stage::Data,
            _ => Stage::RcptTo,
        }
    }

    /// Pipelined: whether later windows are worth sending (without a transaction their
    /// RCPTs would only earn 503s).
    pub fn mail_accepted(&self) -> bool {
        self.mail_ok
    }

    /// The reply to command `k`.
    pub fn on_reply(&mut self, k: usize, reply: Reply) -> Result<Step, SessionError> {
        if k == 0 {
            self.on_mail(reply)
        } else if k <= self.last_rcpt() {
            self.on_rcpt(k, reply)
        } else if self.mail_ok && !self.accepted.is_empty() {
            self.on_data(reply)
        } else {
            self.on_needless_data(reply)
        }
    }

    fn on_mail(&mut self, reply: Reply) -> Result<Step, SessionError> {
        match reply.code / 100 {
            2 => {
                self.state = State::InTransaction;
                self.mail_ok = true;
                Ok(Step::Next)
            }
            4 | 5 => {
                if reply.code == 421 {
                    self.state = State::Closed;
                }
                let outcome = RcptOutcome::from_reply(&reply);
                for &i in &self.targets {
                    self.outcomes[i] = Some(outcome.clone());
                }
                // Pipelined, the RCPT and DATA replies are on their way and are read; in
                // lockstep nothing more is sent.
                match self.pipelined && self.state != State::Closed {
                    true => Ok(Step::Next),
                    false => Ok(Step::Done),
                }
            }
            _ => Err(unexpected(Stage::MailFrom, &reply)),
        }
    }

    fn on_rcpt(&mut self, k: usize, reply: Reply) -> Result<Step, SessionError> {
        if !self.mail_ok {
            // 503 "need MAIL first", presumably: the MAIL reply decided already.
            if reply.code == 421 {
                self.state = State::Closed;
                return Ok(Step::Done);
            }
            return Ok(Step::Next);
        }
        let i = self.targets[k - 1];
        match reply.code / 100 {
            2 => self.accepted.push(i),
            4 | 5 if reply.code == 421 => {
                // The server is closing: every target still open (accepted ones included:
                // the transaction dies with the connection) is deferred with that reply.
                self.state = State::Closed;
                for &i in &self.targets {
                    if self.outcomes[i].is_none() {
                        self.outcomes[i] = Some(RcptOutcome::Deferred(reply.clone()));
                    }
                }
                return Ok(Step::Done);
            }
            4 | 5 => self.outcomes[i] = Some(RcptOutcome::from_reply(&reply)),
            _ => return Err(unexpected(Stage::RcptTo, &reply)),
        }
        let last_rcpt = k == self.last_rcpt();
        if last_rcpt && self.bdat {
            // No DATA to ask: the chunks follow if anyone is there to receive them; with
            // nobody accepted the open transaction is reset before the next MAIL.
            return Ok(match self.accepted.is_empty() {
                true => Step::Done,
                false => Step::SendBody,
            });
        }
        if last_rcpt && !self.pipelined && self.accepted.is_empty() {
            // Nothing to send: DATA is not sent; the open transaction is reset before the
            // next MAIL, or QUIT ends it.
            return Ok(Step::Done);
        }
        Ok(Step::Next)
    }

    /// The reply to DATA when some recipient was accepted.
    fn on_data(&mut self, reply: Reply) -> Result<Step, SessionError> {
        match reply.code / 100 {
            3 => Ok(Step::SendBody),
            4 | 5 => {
                self.conclude(&reply);
                Ok(Step::Done)
            }
            _ => Err(unexpected(Stage::Data, &reply)),
        }
    }

    /// The reply to the final dot: it applies to every accepted recipient.
    pub fn on_end_of_data(&mut self, reply: Reply) -> Result<Step, SessionError> {
        // After the final reply the transaction is over, whatever it said.
        self.state = State::Idle;
        if !matches!(reply.code / 100, 2 | 4 | 5) {
            return Err(unexpected(Stage::EndOfData, &reply));
        }
        self.conclude(&reply);
        Ok(Step::Done)
    }

    /// The reply to a BDAT chunk (RFC 3030 §4.2): a 2xx to a chunk before the last asks for
    /// the next one; the reply to the LAST chunk, or any 4xx/5xx, is the transaction's
    /// outcome for every accepted recipient, and no further chunk is sent.
    pub fn on_chunk_reply(&mut self, reply: Reply, last: bool) -> Result<Step, SessionError> {
        match reply.code / 100 {
            2 if !last => Ok(Step::Next),
            2 => {
                self.state = State::Idle;
                self.conclude(&reply);
                Ok(Step::Done)
            }
            // The transaction failed; the server may or may not have reset it, so it stays
            // open for us (RSET before the next MAIL).
            4 | 5 => {
                self.conclude(&reply);
                Ok(Step::Done)
            }
            _ => Err(unexpected(
                if last {
                    Stage::EndOfData
                } else {
                    Stage::Message
                },
                &reply,
            )),
        }
    }

    fn conclude(&mut self, reply: &Reply) {
        if reply.code == 421 {
            self.state = State::Closed;
        }
        let outcome = RcptOutcome::from_reply(reply);
        for &i in &self.accepted {
            self.outcomes[i] = Some(outcome.clone());
        }
    }

    /// The reply to a pipelined DATA after MAIL or every RCPT failed. It should be 503/554;
    /// if the server says 354 anyway, a lone dot ends an empty message (RFC 2920 §3.1).
    fn on_needless_data(&mut self, reply: Reply) -> Result<Step, SessionError> {
        match reply.code / 100 {
            3 => Ok(Step::SendLoneDot),
            4 | 5 => {
                if reply.code == 421 {
                    self.state = State::Closed;
                }
                Ok(Step::Done)
            }
            _ => Err(unexpected(Stage::Data, &reply)),
        }
    }

    /// The reply to the lone dot: nothing to decide, only whether the server is closing.
    pub fn on_lone_dot_reply(&mut self, reply: &Reply) {
        self.state = if reply.code == 421 {
            State::Closed
        } else {
            State::Idle
        };
    }

    /// The session's state after the transaction (the next one may need RSET).
    pub fn state(&self) -> State {
        self.state
    }

    /// The outcomes so far, one per recipient of the message.
    pub fn into_outcomes(self) -> Vec<Option<RcptOutcome>> {
        self.outcomes
    }
}

pub(super) fn unexpected(stage: Stage, reply: &Reply) -> SessionError {
    SessionError::Protocol {
        stage,
        detail: format!("unexpected reply code {}", reply.code),
    }
}

/// A reason to fail every recipient without sending anything: the message is over the
/// peer's SIZE, needs SMTPUTF8 it does not offer (RFC 6531 §3.2: 5.6.7), or the sender
/// cannot be written on the wire.
fn refuse_locally(
    msg: &OutboundMessage<'_>,
    size: u64,
    caps: &Capabilities,
    peer: &str,
) -> Option<Reply> {
    if let Some(limit) = caps.size_limit().filter(|&l| size > l) {
        return Some(Reply::new(
            552,
            (5, 3, 4),
            format!("Message size {size} exceeds the size limit {limit} of {peer}"),
        ));
    }
    if needs_smtputf8(msg) && !caps.smtputf8 {
        return Some(Reply::new(
            550,
            (5, 6, 7),
            format!("SMTPUTF8 is required, but was not offered by {peer}"),
        ));
    }
    if msg.mail_from.is_some_and(|a| !is_sendable(a)) {
        return Some(Reply::new(
            553,
            (5, 1, 7),
            "Sender address cannot be sent over SMTP",
        ));
    }
    None
}

fn is_ascii(a: &Address) -> bool {
    a.local.is_ascii() && a.domain.is_ascii()
}

/// Nothing that could end the command line or the path early: `Address::parse` already
/// refuses these, but the fields are public and a command injection costs too much.
fn is_sendable(a: &Address) -> bool {
    let bad = |c: char| c.is_control() || c.is_whitespace() || c == '<' || c == '>';
    !a.local.is_empty() && !a.domain.is_empty() && !a.local.contains(bad) && !a.domain.contains(bad)
}

/// The message needs SMTPUTF8: the caller says so (UTF-8 headers), or an address is not ASCII.
fn needs_smtputf8(msg: &OutboundMessage<'_>) -> bool {
    msg.needs_smtputf8
        || msg.mail_from.is_some_and(|a| !is_ascii(a))
        || msg.recipients.iter().any(|a| !is_ascii(a))
}

#[cfg(test)]
mod tests;

/// ` RET=...` and ` ENVID=<xtext>` (RFC 3461 §4.3, §4.4).
fn push_mail_dsn(mail: &mut String, d: &OutboundDsn) {
    if let Some(ret) = d.envelope.ret {
        mail.push_str(" RET=");
        mail.push_str(ret.as_str());
    }
    if let Some(envid) = &d.envelope.envid {
        mail.push_str(" ENVID=");
        mail.push_str(&xtext_encode(envid));
    }
}

/// ` NOTIFY=...` and ` ORCPT=rfc822;<xtext>` (RFC 3461 §4.1, §4.2).
fn push_rcpt_dsn(rcpt: &mut String, notify: &Notify, orcpt: Option<&str>) {
    if let Some(n) = notify.keyword() {
        rcpt.push_str(" NOTIFY=");
        rcpt.push_str(&n);
    }
    if let Some(o) = orcpt {
        rcpt.push_str(" ORCPT=rfc822;");
        rcpt.push_str(&xtext_encode(o));
    }
}
