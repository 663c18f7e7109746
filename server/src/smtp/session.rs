//! The SMTP session state machine (RFC 5321), sans-IO. See the crate docs of [`crate::smtp`].
//!
//! CONTRACT (implemented by the SMTP helper; the driver relies on exactly this):
//! - `Session::new(config, peer, now)` then `greeting()` gives the 220 banner.
//! - `push_input(bytes)` appends received bytes; `poll(now)` consumes input one command (or
//!   one DATA body) at a time and returns the next [`Output`]. Replies may be batched by the
//!   driver until `Output::NeedInput` (PIPELINING, RFC 2920).
//! - `Output::Deliver(tx)`: the driver stores `tx` durably, then calls `delivered(result)`;
//!   the session does not consume more input until then; the following `poll` yields the
//!   final reply (250 only after a successful durable store).
//! - `deadline()`: when the session times out if no more input arrives; the driver calls
//!   `timed_out()` then (421 4.4.2) and closes after flushing.
//! - `closed_by_peer()`: EOF/reset; any transaction in progress is discarded.
//! - `take_log()`: inbound lines for the trace: each command line as received (lossy UTF-8,
//!   control characters escaped as `\xNN`, no line ending), and for a DATA body
//!   `[message N octets, M lines]`, followed by `[message discarded: reason]` when the body
//!   is not stored.
//!
//! # How input is read
//!
//! Command lines are framed here (LF or CRLF ends a line; `limits.command_line` is enforced
//! before anything is buffered beyond it) and parsed by smtp-proto's `Request::parse`. We do
//! not use its `RequestReceiver` because its line limit is a fixed 4096 octets, while RFC 5321
//! §4.5.3.1.4 and our config want 512, and because a too-long line must be answered and then
//! skipped up to its LF rather than cut in the middle. DATA bodies go through smtp-proto's
//! `DataReceiver` (see `session/data.rs`), which only ends data at `<CRLF>.<CRLF>` (and
//! where we close the one gap it leaves, `<CRLF>.<CR><CR><LF>`).
//!
//! A command line with a control character (NUL, a bare CR, TAB, ESC, DEL...) is refused
//! with 500 5.5.2 before it is parsed; one that is not UTF-8 gets 501 5.5.4 (SMTPUTF8
//! addresses are UTF-8, anything else is garbage).
//!
//! # Stored messages
//!
//! Every line of a stored message ends in CRLF: bare LF and bare CR in the body are turned
//! into CRLF (see `session/data.rs` for why). Our `Received:` header comes first.
//!
//! # Errors and the error limit
//!
//! Every 4xx/5xx reply the client causes counts towards `limits.errors`; the reply that
//! reaches it is followed by `421 4.7.0` and Close. Two kinds do not count, because the
//! client did nothing wrong: store failures after DATA (451 4.3.0, 452 4.3.1) and `452 4.5.3
//! Too many recipients`, which RFC 5321 §4.5.3.1.10 makes the normal way to split a long
//! recipient list across transactions.
//!
//! # Recipients and deduplication
//!
//! [`Envelope::recipients`] keeps every accepted recipient address in the order given, but
//! the `mailboxes` lists are disjoint: a mailbox already reached by an earlier recipient of
//! the same transaction (`alice@` and then `team@` which includes alice, or `bob+x@` and
//! `bob@`) is not listed again, so a store that writes once per listed mailbox delivers each
//! mailbox exactly once. A recipient can therefore have an empty `mailboxes` list. The exact
//! same address given twice is accepted (250) but recorded once. [`Envelope::mailboxes`]
//! gives the flat list.

mod data;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use memchr::memchr;
use smtp_proto::{
    Error as ParseError, MailFrom, RcptTo, Request, MAIL_BODY_7BIT, MAIL_BODY_8BITMIME,
    MAIL_SMTPUTF8,
};

use super::Limits;
use crate::directory::{Directory, RcptVerdict};
use crate::mail::{printable, Address, DeliveryError, Envelope, Recipient, Timestamp};
use crate::policy::IpNet;

use self::data::{DataBody, Rejection};
use super::reply::Reply;

/// Everything a session needs to know about the server; shared by all sessions.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub hostname: String,
    pub limits: Limits,
    pub directory: Arc<Directory>,
    /// Clients from these networks may relay to any domain (Postfix's `mynetworks`).
    pub relay_networks: Vec<IpNet>,
}

/// Who is on the other end.
#[derive(Clone, Copy, Debug)]
pub struct PeerInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// A complete mail transaction, ready to be stored: the envelope and the message as it
/// will be stored (our `Received:` header first, then the content, dot-unstuffed, every line
/// ending in CRLF).
#[derive(Clone, Debug)]
pub struct Transaction {
    pub envelope: Envelope,
    pub message: Vec<u8>,
}

/// What the session wants done next.
#[derive(Debug)]
pub enum Output {
    /// Send this reply.
    Reply(Reply),
    /// Store this transaction durably, then call [`Session::delivered`].
    Deliver(Transaction),
    /// Flush pending replies and close the connection.
    Close,
    /// All buffered input is consumed: flush replies and read more.
    NeedInput,
}

/// A service extension (RFC 5321 §2.2) we may advertise in the EHLO reply.
///
/// Everything about extensions goes through [`Session::extensions`], so adding one later is
/// local: STARTTLS (offered only before TLS, with a TLS [`Phase`]), AUTH (only after TLS,
/// with an exchange [`Phase`]), CHUNKING (a BDAT [`Phase`] around smtp-proto's
/// `BdatReceiver`) and DSN (accepting RET/ENVID/NOTIFY/ORCPT in [`Session::mail_params`] and
/// [`Session::rcpt_params`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Extension {
    /// RFC 2920.
    Pipelining,
    /// RFC 1870: `SIZE` with our limit.
    Size,
    /// RFC 6152: `BODY=8BITMIME`.
    EightBitMime,
    /// RFC 6531: `SMTPUTF8`.
    SmtpUtf8,
    /// RFC 2034.
    EnhancedStatusCodes,
}

impl Extension {
    fn keyword(self, limits: &Limits) -> String {
        match self {
            Extension::Pipelining => "PIPELINING".into(),
            Extension::Size => format!("SIZE {}", limits.message_size),
            Extension::EightBitMime => "8BITMIME".into(),
            Extension::SmtpUtf8 => "SMTPUTF8".into(),
            Extension::EnhancedStatusCodes => "ENHANCEDSTATUSCODES".into(),
        }
    }
}

/// What the session is doing with its input.
enum Phase {
    /// Reading command lines.
    Command,
    /// A command line was too long and has been answered; its rest, up to and including the
    /// next LF, is discarded.
    SkipLine,
    /// Receiving a DATA body.
    Data(Box<DataBody>),
    /// A [`Output::Deliver`] was handed out; no input is consumed until
    /// [`Session::delivered`].
    AwaitDelivery,
    /// The connection is over (QUIT, too many errors, timeout, peer gone): every poll says
    /// [`Output::Close`] and input is ignored.
    Closed,
}

/// What HELO/EHLO told us.
struct Greeted {
    name: String,
    /// EHLO rather than HELO: service extensions and MAIL/RCPT parameters are allowed.
    esmtp: bool,
}

/// A transaction between MAIL and the end of DATA.
struct Open {
    mail_from: Option<Address>,
    recipients: Vec<Recipient>,
    /// Union of the recipients' mailboxes, for deduplication.
    mailboxes: BTreeSet<String>,
    /// Union of the recipients' remote forward-paths (lookup keys), for deduplication.
    remote: BTreeSet<String>,
    /// Lookup keys of the recipient addresses, to record the same address once.
    addresses: BTreeSet<String>,
    /// The client's `SIZE=` (0 if none), already checked against our limit: a hint for how
    /// much body buffer to reserve up front.
    declared_size: usize,
}

/// The session itself.
pub struct Session {
    config: Arc<SessionConfig>,
    peer: PeerInfo,
    phase: Phase,
    greeted: Option<Greeted>,
    envelope: Option<Open>,
    /// Received bytes; `input[input_pos..]` is not consumed yet.
    input: Vec<u8>,
    input_pos: usize,
    /// Outputs decided but not yet returned by `poll` (a reply followed by Close, say).
    queue: VecDeque<Output>,
    /// Client-caused 4xx/5xx replies so far.
    errors: usize,
    last_activity: Timestamp,
    /// Input arrived or a delivery finished since the last `poll`: the next poll moves
    /// `last_activity` to its `now`.
    touched: bool,
    log: Vec<String>,
}

/// Commands we know but do not offer (yet): 502 whatever their arguments.
const NOT_IMPLEMENTED: &[&str] = &["STARTTLS", "AUTH", "BDAT", "BURL", "ETRN", "ATRN"];

impl Session {
    /// A session for a connection accepted at `now` (the first deadline counts from it).
    pub fn new(config: Arc<SessionConfig>, peer: PeerInfo, now: Timestamp) -> Session {
        Session {
            config,
            peer,
            phase: Phase::Command,
            greeted: None,
            envelope: None,
            input: Vec::new(),
            input_pos: 0,
            queue: VecDeque::new(),
            errors: 0,
            last_activity: now,
            touched: false,
            log: Vec::new(),
        }
    }

    /// The 220 banner.
    pub fn greeting(&mut self) -> Reply {
        Reply::plain(220, format!("{} ESMTP mailsim", self.config.hostname))
    }

    /// Appends received bytes. Nothing is interpreted until [`Session::poll`], which also
    /// takes the time of this activity. Ignored once the session is closed.
    pub fn push_input(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || matches!(self.phase, Phase::Closed) {
            return;
        }
        // Compact when at least half the buffer is consumed: amortised O(1) per byte.
        if self.input_pos > 0 && self.input_pos * 2 >= self.input.len() {
            self.input.drain(..self.input_pos);
            self.input_pos = 0;
        }
        self.input.extend_from_slice(bytes);
        self.touched = true;
    }

    /// The next thing to do: one output per call, in input order; [`Output::NeedInput`] once
    /// no complete command (or the rest of a DATA body) is buffered. `now` is the time of the
    /// activity if input arrived (or a delivery finished) since the last poll; polling
    /// without news does not move the deadline.
    pub fn poll(&mut self, now: Timestamp) -> Output {
        if self.touched {
            self.touched = false;
            self.last_activity = now;
        }
        loop {
            if let Some(out) = self.queue.pop_front() {
                return out;
            }
            match &mut self.phase {
                Phase::Closed => return Output::Close,
                // Contract: the driver calls `delivered` first. If it polls anyway, nothing
                // is consumed.
                Phase::AwaitDelivery => return Output::NeedInput,
                Phase::SkipLine => {
                    let rest = &self.input[self.input_pos..];
                    match memchr(b'\n', rest) {
                        Some(p) => {
                            self.input_pos += p + 1;
                            self.phase = Phase::Command;
                        }
                        None => {
                            self.input_pos = self.input.len();
                            return Output::NeedInput;
                        }
                    }
                }
                Phase::Data(body) => {
                    let (used, ended) = body.feed(&self.input[self.input_pos..]);
                    self.input_pos += used;
                    if !ended {
                        return Output::NeedInput;
                    }
                    self.end_of_data(now);
                }
                Phase::Command => {
                    if !self.next_command() {
                        return Output::NeedInput;
                    }
                }
            }
        }
    }

    /// Result of a [`Output::Deliver`]: `Ok(id)` is the store's message id.
    pub fn delivered(&mut self, result: Result<String, DeliveryError>) {
        if !matches!(self.phase, Phase::AwaitDelivery) {
            return;
        }
        self.phase = Phase::Command;
        self.touched = true;
        // Not the client's fault: these do not count towards the error limit.
        let reply = match result {
            Ok(id) => Reply::new(250, (2, 0, 0), format!("Ok: queued as {id}")),
            Err(DeliveryError::Temporary(_)) => Reply::new(
                451,
                (4, 3, 0),
                "Requested action aborted: local error in processing",
            ),
            Err(DeliveryError::Full) => Reply::new(452, (4, 3, 1), "Insufficient system storage"),
        };
        self.queue.push_back(Output::Reply(reply));
    }

    /// When the session times out if no input arrives: the last activity plus the command
    /// timeout, or the data timeout while a DATA body is being received (RFC 5321 §4.5.3.2).
    pub fn deadline(&self) -> Timestamp {
        let limits = &self.config.limits;
        let wait = match self.phase {
            Phase::Data(_) => limits.data_timeout(),
            _ => limits.command_timeout(),
        };
        // Saturating: a far-future deadline is still a valid one.
        Timestamp(self.last_activity.0.saturating_add(wait))
    }

    /// The deadline passed: the 421 to send; the next poll says Close.
    pub fn timed_out(&mut self) -> Reply {
        self.abandon("timeout");
        self.queue.clear();
        self.phase = Phase::Closed;
        Reply::new(
            421,
            (4, 4, 2),
            format!("{} Error: timeout exceeded", self.config.hostname),
        )
    }

    /// EOF or reset from the peer: whatever transaction is in progress is dropped.
    pub fn closed_by_peer(&mut self) {
        self.abandon("connection closed");
        self.queue.clear();
        self.phase = Phase::Closed;
    }

    /// Drains the trace lines (see the module docs).
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Whether the session is over (every poll returns [`Output::Close`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    // ---- internals ----

    /// Drops the transaction; logs a body cut short.
    fn abandon(&mut self, why: &str) {
        if let Phase::Data(_) = self.phase {
            self.log.push(format!("[message discarded: {why}]"));
        }
        self.envelope = None;
    }

    fn extensions(&self) -> Vec<Extension> {
        vec![
            Extension::Pipelining,
            Extension::Size,
            Extension::EightBitMime,
            Extension::SmtpUtf8,
            Extension::EnhancedStatusCodes,
        ]
    }

    fn offers(&self, ext: Extension) -> bool {
        self.greeted.as_ref().is_some_and(|g| g.esmtp) && self.extensions().contains(&ext)
    }

    fn reply(&mut self, reply: Reply) {
        self.queue.push_back(Output::Reply(reply));
    }

    /// A 4xx/5xx the client caused: counts towards `limits.errors`, after which we hang up.
    fn error(&mut self, reply: Reply) {
        self.reply(reply);
        self.errors += 1;
        if self.errors >= self.config.limits.errors.max(1) {
            self.envelope = None;
            self.reply(Reply::new(
                421,
                (4, 7, 0),
                format!("{} Error: too many errors", self.config.hostname),
            ));
            self.queue.push_back(Output::Close);
            self.phase = Phase::Closed;
        }
    }

    /// Frames and handles one command line; false when no complete line is buffered.
    fn next_command(&mut self) -> bool {
        let limit = self.config.limits.command_line;
        let rest = &self.input[self.input_pos..];
        let window = &rest[..rest.len().min(limit)];
        match memchr(b'\n', window) {
            Some(p) => {
                // Borrow the line out of the buffer without copying it; handling a command
                // never touches the input buffer.
                let input = std::mem::take(&mut self.input);
                let start = self.input_pos;
                self.input_pos += p + 1;
                self.command_line(&input[start..=start + p]);
                debug_assert!(self.input.is_empty());
                self.input = input;
                true
            }
            None if rest.len() >= limit => {
                // Longer than the limit whatever comes next: answer now, skip to the LF.
                self.input_pos += limit;
                self.log.push(format!(
                    "{}... [line too long]",
                    printable(&rest[..rest.len().min(64)])
                ));
                self.phase = Phase::SkipLine;
                self.error(Reply::new(500, (5, 5, 6), "Line too long"));
                true
            }
            None => false,
        }
    }

    /// One complete command line, LF included.
    fn command_line(&mut self, line: &[u8]) {
        let text = strip_line_ending(line);
        self.log.push(printable(text));
        if text.iter().any(|&b| b < 0x20 || b == 0x7f) {
            // NUL, bare CR, TAB, ESC...: never part of a valid command, and a classic way to
            // confuse a parser further down the line.
            return self.error(Reply::new(500, (5, 5, 2), "Error: command not recognized"));
        }
        let verb = verb(text);
        if NOT_IMPLEMENTED.contains(&verb.as_str()) || verb == "EXPN" {
            return self.error(Reply::new(502, (5, 5, 1), "Command not implemented"));
        }
        match Request::parse(&mut line.iter()) {
            Ok(request) => {
                let request = request.into_owned();
                if std::str::from_utf8(text).is_err() {
                    return self.error(Reply::new(501, (5, 5, 4), "Error: invalid UTF-8"));
                }
                self.command(request, text);
            }
            Err(ParseError::UnknownCommand) => {
                self.error(Reply::new(500, (5, 5, 2), "Error: command not recognized"))
            }
            Err(e) => {
                // A known command with bad arguments: the sequence error wins, as it would
                // for the well-formed command.
                if let Some(r) = self.sequence_error(&verb) {
                    return self.error(r);
                }
                self.error(argument_error(&e, &verb));
            }
        }
    }

    /// 503 for a command given at the wrong point of the dialogue.
    fn sequence_error(&self, verb: &str) -> Option<Reply> {
        match verb {
            "MAIL" if self.greeted.is_none() => {
                Some(Reply::new(503, (5, 5, 1), "Error: send HELO/EHLO first"))
            }
            "MAIL" if self.envelope.is_some() => {
                Some(Reply::new(503, (5, 5, 1), "Error: nested MAIL command"))
            }
            "RCPT" | "DATA" if self.envelope.is_none() => {
                Some(Reply::new(503, (5, 5, 1), "Error: need MAIL command"))
            }
            _ => None,
        }
    }

    fn command(&mut self, request: Request<String>, text: &[u8]) {
        if let Some(r) = self.sequence_error(request.name()) {
            return self.error(r);
        }
        match request {
            Request::Ehlo { host } => {
                self.envelope = None;
                self.greeted = Some(Greeted {
                    name: host,
                    esmtp: true,
                });
                let limits = &self.config.limits;
                let mut lines = vec![self.config.hostname.clone()];
                lines.extend(self.extensions().into_iter().map(|e| e.keyword(limits)));
                self.reply(Reply::multi(250, lines));
            }
            Request::Helo { host } => {
                self.envelope = None;
                self.greeted = Some(Greeted {
                    name: host,
                    esmtp: false,
                });
                self.reply(Reply::plain(250, self.config.hostname.clone()));
            }
            Request::Mail { from } => self.mail(from, text),
            Request::Rcpt { to } => self.rcpt(to, text),
            Request::Data => self.data(),
            Request::Rset => {
                self.envelope = None;
                self.reply(Reply::new(250, (2, 0, 0), "Ok"));
            }
            Request::Noop { .. } => self.reply(Reply::new(250, (2, 0, 0), "Ok")),
            Request::Quit => {
                self.envelope = None;
                self.reply(Reply::new(221, (2, 0, 0), "Bye"));
                self.queue.push_back(Output::Close);
                self.phase = Phase::Closed;
            }
            // RFC 5321 §3.5.3: 252 when we will not verify, so harvesters learn nothing.
            Request::Vrfy { .. } => self.reply(Reply::new(
                252,
                (2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.reply(Reply::new(
                214,
                (2, 0, 0),
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            )),
            // LHLO is LMTP, not SMTP.
            Request::Lhlo { .. } => {
                self.error(Reply::new(500, (5, 5, 2), "Error: command not recognized"))
            }
            // Normally caught by NOT_IMPLEMENTED from the verb already.
            Request::Expn { .. }
            | Request::Auth { .. }
            | Request::StartTls
            | Request::Bdat { .. }
            | Request::Burl { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. } => {
                self.error(Reply::new(502, (5, 5, 1), "Command not implemented"))
            }
        }
    }

    fn mail(&mut self, from: MailFrom<String>, text: &[u8]) {
        let mail_from = if from.address.is_empty() {
            // smtp-proto also returns "" for `<postmaster>`, which is no reverse-path.
            if !angle_content(text).is_some_and(|c| c.is_empty()) {
                return self.error(Reply::new(501, (5, 1, 7), "Bad sender address syntax"));
            }
            None
        } else {
            match Address::parse(&from.address) {
                Ok(a) => Some(a),
                Err(_) => {
                    return self.error(Reply::new(501, (5, 1, 7), "Bad sender address syntax"))
                }
            }
        };
        if let Err(r) = self.mail_params(&from) {
            return self.error(r);
        }
        self.envelope = Some(Open {
            mail_from,
            recipients: Vec::new(),
            mailboxes: BTreeSet::new(),
            remote: BTreeSet::new(),
            addresses: BTreeSet::new(),
            declared_size: from.size,
        });
        self.reply(Reply::new(250, (2, 1, 0), "Ok"));
    }

    /// MAIL parameters: only those of extensions we offer (RFC 5321 §4.1.1.11: 555 for the
    /// rest), and none after HELO.
    fn mail_params(&self, from: &MailFrom<String>) -> Result<(), Reply> {
        let mut allowed = 0;
        if self.offers(Extension::EightBitMime) {
            allowed |= MAIL_BODY_8BITMIME | MAIL_BODY_7BIT;
        }
        if self.offers(Extension::SmtpUtf8) {
            allowed |= MAIL_SMTPUTF8;
        }
        let unsupported = from.flags & !allowed != 0
            || (from.size != 0 && !self.offers(Extension::Size))
            || from.trans_id.is_some()
            || from.by != 0
            || from.env_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.auth.is_some()
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0;
        if unsupported {
            return Err(Reply::new(555, (5, 5, 4), "Unsupported parameter"));
        }
        if from.size > self.config.limits.message_size {
            return Err(Reply::new(
                552,
                (5, 3, 4),
                "Message size exceeds fixed limit",
            ));
        }
        Ok(())
    }

    /// RCPT parameters: none of ours yet (NOTIFY/ORCPT come with DSN).
    fn rcpt_params(&self, to: &RcptTo<String>) -> Result<(), Reply> {
        if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
            return Err(Reply::new(555, (5, 5, 4), "Unsupported parameter"));
        }
        Ok(())
    }

    fn rcpt(&mut self, to: RcptTo<String>, text: &[u8]) {
        let resolved = if to.address.is_empty() {
            // `<>` is no forward-path; `<postmaster>` (no domain) must be accepted (RFC 5321
            // §4.1.1.3), and smtp-proto gives "" for both.
            match angle_content(text) {
                Some(c) if c.eq_ignore_ascii_case(b"postmaster") => self.postmaster(),
                _ => return self.error(Reply::new(501, (5, 1, 3), "Bad recipient address syntax")),
            }
        } else {
            match Address::parse(&to.address) {
                Ok(a) => {
                    let verdict = self.config.directory.resolve(&a);
                    (a, verdict)
                }
                Err(_) => {
                    return self.error(Reply::new(501, (5, 1, 3), "Bad recipient address syntax"))
                }
            }
        };
        if let Err(r) = self.rcpt_params(&to) {
            return self.error(r);
        }
        let max = self.config.limits.recipients;
        let Some(env) = self.envelope.as_mut() else {
            // sequence_error has checked this already.
            return self.error(Reply::new(503, (5, 5, 1), "Error: need MAIL command"));
        };
        if env.recipients.len() >= max {
            // RFC 5321 §4.5.3.1.10: 452, and the client retries the rest later. Following the
            // protocol is no error of the client's, so this does not count towards the limit.
            return self.reply(Reply::new(452, (4, 5, 3), "Too many recipients"));
        }
        let (address, verdict) = resolved;
        let may_relay = self
            .config
            .relay_networks
            .iter()
            .any(|n| n.contains(self.peer.remote.ip()));
        let (mailboxes, remote) = match verdict {
            RcptVerdict::Local(mailboxes) => (mailboxes, Vec::new()),
            RcptVerdict::Forward { mailboxes, remote } => (mailboxes, remote),
            RcptVerdict::RelayDenied if may_relay => (Vec::new(), vec![address.clone()]),
            RcptVerdict::UnknownUser => return self.refuse_rcpt(&address, true),
            RcptVerdict::RelayDenied => return self.refuse_rcpt(&address, false),
        };
        if env.addresses.insert(address.key()) {
            let mailboxes = mailboxes
                .into_iter()
                .filter(|m| env.mailboxes.insert(m.clone()))
                .collect();
            let remote = remote
                .into_iter()
                .filter(|a| env.remote.insert(a.key()))
                .collect();
            env.recipients.push(Recipient {
                address,
                mailboxes,
                remote,
            });
        }
        self.reply(Reply::new(250, (2, 1, 5), "Ok"));
    }

    /// The reply for a recipient we do not take: an unknown local user, or relay denied.
    fn refuse_rcpt(&mut self, address: &Address, unknown_user: bool) {
        match unknown_user {
            true => self.error(Reply::new(
                550,
                (5, 1, 1),
                format!("<{address}>: Recipient address rejected: User unknown"),
            )),
            false => self.error(Reply::new(
                554,
                (5, 7, 1),
                format!("<{address}>: Relay access denied"),
            )),
        }
    }

    /// `RCPT TO:<postmaster>` without a domain: the postmaster of our host name, or else of
    /// the first local domain (in the directory's stable order) that has one.
    fn postmaster(&self) -> (Address, RcptVerdict) {
        let dir = &self.config.directory;
        let mut domains = vec![self.config.hostname.to_ascii_lowercase()];
        for account in dir.accounts() {
            if let Some((_, d)) = account.rsplit_once('@') {
                if !domains.iter().any(|x| x == d) {
                    domains.push(d.to_string());
                }
            }
        }
        let mut first = None;
        for d in domains {
            let Ok(a) = Address::parse(&format!("postmaster@{d}")) else {
                continue;
            };
            let verdict = dir.resolve(&a);
            if matches!(verdict, RcptVerdict::Local(_) | RcptVerdict::Forward { .. }) {
                return (a, verdict);
            }
            first.get_or_insert((a, verdict));
        }
        first.unwrap_or_else(|| {
            (
                Address {
                    local: "postmaster".into(),
                    domain: self.config.hostname.to_ascii_lowercase(),
                },
                RcptVerdict::UnknownUser,
            )
        })
    }

    fn data(&mut self) {
        if self
            .envelope
            .as_ref()
            .is_some_and(|e| e.recipients.is_empty())
        {
            return self.error(Reply::new(554, (5, 5, 1), "No valid recipients"));
        }
        let limits = &self.config.limits;
        let declared = self.envelope.as_ref().map_or(0, |e| e.declared_size);
        self.phase = Phase::Data(Box::new(DataBody::new(
            limits.text_line,
            limits.message_size,
            declared,
        )));
        self.reply(Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
    }

    fn end_of_data(&mut self, now: Timestamp) {
        let Phase::Data(body) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        let finished = body.finish();
        self.log.push(format!(
            "[message {} octets, {} lines]",
            finished.octets, finished.lines
        ));
        let envelope = self.envelope.take();
        if let Some(rejection) = finished.rejection {
            self.log
                .push(format!("[message discarded: {}]", rejection.reason()));
            return self.error(match rejection {
                Rejection::TooBig => Reply::new(552, (5, 3, 4), "Message size exceeds fixed limit"),
                Rejection::LineTooLong => Reply::new(500, (5, 5, 6), "Line too long"),
            });
        }
        let (Some(envelope), Some(greeted)) = (envelope, self.greeted.as_ref()) else {
            // Unreachable: DATA needs an envelope, which needs a greeting.
            return self.error(Reply::new(503, (5, 5, 1), "Error: need MAIL command"));
        };
        let header = self.received_header(greeted, now);
        // Put the header in front of the content in place: no second body-sized buffer.
        let mut message = finished.content;
        let (h, len) = (header.len(), message.len());
        message.resize(len + h, 0);
        message.copy_within(..len, h);
        message[..h].copy_from_slice(header.as_bytes());
        self.phase = Phase::AwaitDelivery;
        self.queue.push_back(Output::Deliver(Transaction {
            envelope: Envelope {
                helo: greeted.name.clone(),
                mail_from: envelope.mail_from,
                recipients: envelope.recipients,
                received_at: now,
            },
            message,
        }));
    }

    /// RFC 5321 §4.4 trace header, folded before a part that would pass 78 columns:
    /// `Received: from {helo} ([ip]) by {hostname} with ESMTP; {date}`.
    ///
    /// The peer IP is written as an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) as
    /// the TCP-info grammar of §4.4 wants. "with" is ESMTP after EHLO and SMTP after HELO
    /// (RFC 3848). The HELO name is client-chosen text: characters that could fake header
    /// structure (`;`, `(`, ...) are replaced by `_` here; [`Transaction::helo`] keeps it as
    /// given.
    fn received_header(&self, greeted: &Greeted, now: Timestamp) -> String {
        let ip = match self.peer.remote.ip() {
            IpAddr::V4(ip) => format!("[{ip}]"),
            IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
        };
        let helo: String = greeted
            .name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let with = if greeted.esmtp { "ESMTP" } else { "SMTP" };
        let parts = [
            format!("from {helo} ({ip})"),
            format!("by {}", self.config.hostname),
            format!("with {with};"),
            crate::mail::date::rfc5322(now),
        ];
        let mut out = String::from("Received:");
        let mut column = out.len();
        for part in parts {
            if column + 1 + part.len() > 78 && column > "Received:".len() {
                out.push_str("\r\n\t");
                column = 1;
            } else {
                out.push(' ');
                column += 1;
            }
            column += part.len();
            out.push_str(&part);
        }
        out.push_str("\r\n");
        out
    }
}

/// Maps a parse error of a known command to its reply.
fn argument_error(e: &ParseError, verb: &str) -> Reply {
    match e {
        ParseError::InvalidSenderAddress => Reply::new(501, (5, 1, 7), "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, (5, 1, 3), "Bad recipient address syntax")
        }
        ParseError::UnsupportedParameter { .. } => {
            Reply::new(555, (5, 5, 4), "Unsupported parameter")
        }
        ParseError::InvalidParameter { param } => {
            Reply::new(501, (5, 5, 4), format!("Invalid {param} parameter"))
        }
        ParseError::SyntaxError { syntax } => {
            Reply::new(501, (5, 5, 4), format!("Syntax: {syntax}"))
        }
        _ => Reply::new(501, (5, 5, 4), format!("Syntax error in {verb} command")),
    }
}

/// The line without its LF or CRLF.
fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The command word, upper-cased (for sequence checks and commands we refuse outright).
fn verb(text: &[u8]) -> String {
    let text = text.trim_ascii_start();
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    String::from_utf8_lossy(&text[..end]).to_ascii_uppercase()
}

/// What is between the first `<` and the next `>`, trimmed.
fn angle_content(text: &[u8]) -> Option<&[u8]> {
    let open = memchr(b'<', text)?;
    let rest = &text[open + 1..];
    let close = memchr(b'>', rest)?;
    Some(rest[..close].trim_ascii())
}
