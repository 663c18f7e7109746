//! The SMTP session state machine (RFC 5321), sans-IO. See the crate docs of [`crate::smtp`].
//!
//! CONTRACT (the driver relies on exactly this; the IMAP and POP3 sessions copy its shape):
//! - `Session::new(config, peer, now)`, then `poll(now)` until [`Output::NeedInput`]. The
//!   first output is a [`Output::Check`] at [`Stage::Connect`]: the greeting (220, or 554 /
//!   421 and Close) is decided by its answer.
//! - `push_input(bytes)` appends received bytes; `poll(now)` consumes input one command (or
//!   one DATA body) at a time and returns the next [`Output`]. Replies may be batched by the
//!   driver until `Output::NeedInput` (PIPELINING, RFC 2920).
//! - **Requests.** [`Output::Deliver`], [`Output::Check`], [`Output::StartTls`] and
//!   [`Output::Authenticate`] ask the outside for something. Each is answered through the one
//!   entry point [`Session::answer`]; until then no input is consumed (pipelined commands
//!   wait, so replies stay in input order) and `poll` says `NeedInput`. At most one request
//!   is outstanding. An answer of the wrong kind, or one nobody asked for, is ignored.
//!   - `Deliver(tx)` → `Answer::Delivered(result)`: 250 only after a durable store.
//!   - `Check(check)` → `Answer::Checked(check, verdict)`: the check is handed back with its
//!     verdict (at the end of data it carries the message, which is not copied for it).
//!   - `StartTls` → `Answer::TlsUp` (every bit of session state is reset, RFC 3207 §4.2) or
//!     `Answer::TlsFailed` (the session closes). Write out pending replies (the 220) before
//!     the handshake. Input received before the answer is discarded, never executed.
//!   - `Authenticate(credentials)` → `Answer::Authenticated(..)`.
//! - **Spooling.** After [`Session::spool_to`], a message body that grows past a small
//!   threshold is not held in memory: the session hands it out in chunks,
//!   [`Output::Spool`] (append these bytes to the spool file; create it with the first),
//!   which need no answer — a failed write is reported with [`Session::spool_failed`] and
//!   the message is then refused with `452 4.3.1` at its end. The [`Transaction`] then
//!   carries a [`Message`] whose rest is in that file; [`Output::Unspool`] says the file is
//!   no longer needed (the driver also removes it after each delivery and when the
//!   connection ends).
//! - **Timers.** `poll_timeout()`: the earliest deadline of the session's timer table (none
//!   while a request is outstanding or once closed). When it passes with no input, the driver
//!   calls `handle_timeout(now)`, which fires what is due (the idle timeouts queue `421
//!   4.4.2` and Close) and polls on. Neither reads a clock: time is what the caller says.
//! - `closed_by_peer()`: EOF/reset; any transaction in progress is discarded.
//! - `take_log()`: inbound lines for the trace: each command line as received (lossy UTF-8,
//!   control characters escaped as `\xNN`, no line ending; an AUTH line's credentials as
//!   `****`), and for a DATA body `[message N octets, M lines]`, followed by `[message
//!   discarded: reason]` when the body is not stored.
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
//! # Extensions
//!
//! What the EHLO reply lists is computed from [`SessionConfig::offers`] and the session's
//! state (`session/extensions.rs`): STARTTLS only before TLS, AUTH only once allowed and
//! before it succeeded. A command of an extension not offered right now is 502, as if we did
//! not know it. STARTTLS is in `session/tls.rs`, AUTH in `session/auth.rs`.
//!
//! # Stored messages
//!
//! Every line of a stored message ends in CRLF: bare LF and bare CR in the body are turned
//! into CRLF (see `session/data.rs` for why). Our `Received:` header comes first.
//!
//! # Errors and the error limit
//!
//! Every 4xx/5xx reply the client causes counts towards `limits.errors`; the reply that
//! reaches it is followed by `421 4.7.0` and Close. Policy refusals count too (Postfix counts
//! every rejected command). Two kinds do not count, because the client did nothing wrong:
//! store failures after DATA (451 4.3.0, 452 4.3.1) and `452 4.5.3 Too many recipients`,
//! which RFC 5321 §4.5.3.1.10 makes the normal way to split a long recipient list across
//! transactions.
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

mod asking;
mod auth;
mod commands;
mod data;
mod dsn;
mod envelope;
mod extensions;
mod io;
mod params;
mod path;
mod quota;
mod sender;
mod spill;
#[cfg(test)]
mod tests;
mod timers;
mod tls;

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use memchr::memchr;

use crate::mail::{Address, EnvelopeDsn, Notify, Recipient, Timestamp};
use crate::policy::Stage;

/// The SASL PLAIN decoder, shared with POP3's AUTH PLAIN.
pub(crate) use self::auth::plain as decode_plain;
pub use self::auth::{AuthAnswer, AuthMechanism, Credentials};
use self::data::DataBody;
pub use self::extensions::Offers;
pub use self::io::{Answer, Output, PeerInfo, SessionConfig, Transaction};
use self::timers::{Timer, TimerTable};
use super::reply::Reply;

/// What the session is doing with its input.
enum Phase {
    /// The connect check accepted and the greeting waits for `limits.greet_pause_ms`
    /// (until the [`Timer::Greet`] deadline): input arriving now is an early talker's.
    GreetPause(Timestamp),
    /// Reading command lines.
    Command,
    /// A command line is too long: its rest, up to and including the next LF, is discarded
    /// as it arrives (never buffered), and the `500 5.5.6` is given once the LF is in, so
    /// the reply answers the whole line (as Postfix does) instead of interrupting it and
    /// then racing with what the client still sends. `shown` is its trace line.
    SkipLine { shown: String },
    /// Receiving a DATA body or a BDAT chunk.
    Data(Box<DataBody>),
    /// A BDAT chunk that is refused (no transaction, or one that failed): this many more
    /// octets are read and dropped (RFC 3030 §3: the chunk is always consumed).
    SkipOctets(usize),
    /// A `334` was sent: the next line is the client's SASL response, not a command.
    AuthResponse(AuthMechanism),
    /// A request was handed out; no input is consumed until [`Session::answer`].
    Await(Awaiting),
    /// The connection is over (QUIT, too many errors, timeout, peer gone): every poll says
    /// [`Output::Close`] and input is ignored.
    Closed,
}

/// The request outstanding, with what the session needs to apply its answer.
enum Awaiting {
    Connect,
    /// MAIL, to open a transaction if the policy accepts (its sender is in the check).
    Mail {
        declared_size: usize,
        binary: bool,
        /// RET/ENVID and REQUIRETLS, already checked (`session/dsn.rs`).
        dsn: EnvelopeDsn,
        require_tls: bool,
        /// The SMTPUTF8 parameter was given (RFC 6531).
        smtputf8: bool,
    },
    /// What the recipient RCPT adds if the policy accepts (its address is in the check)
    /// resolves to.
    Rcpt {
        mailboxes: Vec<String>,
        remote: Vec<Address>,
        /// NOTIFY/ORCPT, already checked (`session/dsn.rs`).
        notify: Notify,
        orcpt: Option<String>,
    },
    EndOfData,
    Delivery,
    Tls,
    Auth {
        identity: String,
    },
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
    /// `BODY=BINARYMIME` (RFC 3030): BDAT only, stored as sent.
    binary: bool,
    /// The body of a BDAT transaction between its chunks; `Some` once a BDAT was given
    /// (then DATA is 503, RFC 3030 §3).
    chunks: Option<Box<DataBody>>,
    /// RET/ENVID of MAIL (RFC 3461).
    dsn: EnvelopeDsn,
    /// MAIL ... REQUIRETLS (RFC 8689).
    require_tls: bool,
    /// MAIL had the SMTPUTF8 parameter: UTF-8 recipients are allowed (RFC 6531 §3.4) and
    /// the `Received:` header says `UTF8SMTP`.
    smtputf8: bool,
    /// RCPTs accepted so far, repeats of one address included: what `limits.recipients`
    /// counts.
    accepted: usize,
}

/// The session itself.
pub struct Session {
    config: Arc<SessionConfig>,
    peer: PeerInfo,
    phase: Phase,
    greeted: Option<Greeted>,
    envelope: Option<Open>,
    /// TLS is active (RFC 3207): STARTTLS is no longer offered, AUTH may be.
    tls: bool,
    /// The identity a successful AUTH established: the client may relay.
    authenticated: Option<String>,
    /// AUTH LOGIN's user name, between its response and the password's (`session/auth`).
    login_user: Option<String>,
    /// Received bytes; `input[input_pos..]` is not consumed yet.
    input: Vec<u8>,
    input_pos: usize,
    /// Outputs decided but not yet returned by `poll` (a reply followed by Close, say).
    queue: VecDeque<Output>,
    /// Client-caused 4xx/5xx replies so far.
    errors: usize,
    last_activity: Timestamp,
    /// Input arrived or an answer came since the last `poll`: the next poll moves
    /// `last_activity` to its `now`.
    touched: bool,
    timers: TimerTable,
    /// What checks say about the client, shared by all of them until it changes (EHLO,
    /// TLS, AUTH): one reference count per check instead of copies.
    client: Option<Arc<crate::policy::Client>>,
    log: Vec<String>,
    /// A trace line to write when the Close is handed out (after the reply that closes).
    log_at_close: Option<String>,
    /// The server is shutting down: a transaction in progress may finish, nothing new starts
    /// (see [`Session::shut_down`]).
    draining: bool,
    /// The connect check rejected the client: the greeting was a 554 and every command but
    /// QUIT gets 503 (RFC 5321 §3.1).
    refused: bool,
    /// Where big message bodies go (see [`Session::spool_to`]); `None`: kept in memory.
    spool: Option<PathBuf>,
    /// The time of the last `poll` or `handle_timeout`: when an error happened, for the
    /// tarpit's deadline.
    clock: Timestamp,
    /// An error reply held back until its deadline (the error tarpit, see
    /// [`Session::error`]); no input is consumed meanwhile.
    tarpit: Option<(Timestamp, Reply)>,
    /// When the connection was accepted: the greet pause counts from it.
    accepted_at: Timestamp,
}

/// Commands we know but never offer: 502 whatever their arguments. STARTTLS and AUTH are
/// 502 too while not offered (see `session/extensions.rs`).
const NOT_IMPLEMENTED: &[&str] = &["BURL", "ETRN", "ATRN", "EXPN"];

impl Session {
    /// A session for a connection accepted at `now` (the first deadline counts from it). Its
    /// first output is the connect-stage [`Output::Check`].
    pub fn new(config: Arc<SessionConfig>, peer: PeerInfo, now: Timestamp) -> Session {
        Session::start(config, peer, now, false)
    }

    /// A session on an implicit-TLS listener (RFC 8314 §3.3, port 465): the driver finished
    /// the handshake before the greeting, so TLS is active from the start — STARTTLS is not
    /// offered and AUTH is, and the connect check already sees `tls`.
    pub fn new_over_tls(config: Arc<SessionConfig>, peer: PeerInfo, now: Timestamp) -> Session {
        Session::start(config, peer, now, true)
    }

    fn start(config: Arc<SessionConfig>, peer: PeerInfo, now: Timestamp, tls: bool) -> Session {
        let mut s = Session {
            config,
            peer,
            phase: Phase::Await(Awaiting::Connect),
            greeted: None,
            envelope: None,
            tls,
            authenticated: None,
            login_user: None,
            input: Vec::new(),
            input_pos: 0,
            queue: VecDeque::new(),
            errors: 0,
            last_activity: now,
            touched: false,
            timers: TimerTable::default(),
            client: None,
            log: Vec::new(),
            log_at_close: None,
            draining: false,
            refused: false,
            spool: None,
            clock: now,
            tarpit: None,
            accepted_at: now,
        };
        let check = s.check(Stage::Connect);
        s.queue.push_back(Output::Check(check));
        s
    }

    /// Spools message bodies past a small threshold to the file at `path` (an Env path the
    /// driver owns: one per connection) instead of holding them in memory. Only the header
    /// block (up to `limits.header_block`) stays in memory for the checks.
    pub fn spool_to(&mut self, path: PathBuf) {
        self.spool = Some(path);
    }

    /// The last [`Output::Spool`] could not be written: the message being received is
    /// discarded and refused with `452 4.3.1` at its end (nothing acknowledged is lost: it
    /// was never acknowledged).
    pub fn spool_failed(&mut self) {
        if let Phase::Data(body) = &mut self.phase {
            body.spool_failed();
        }
        if let Some(body) = self.envelope.as_mut().and_then(|e| e.chunks.as_mut()) {
            body.spool_failed();
        }
        self.touched = true;
    }

    /// Appends received bytes. Nothing is interpreted until [`Session::poll`], which also
    /// takes the time of this activity. Ignored once the session is closed, and while a
    /// STARTTLS is outstanding (plaintext sent then must never be executed).
    pub fn push_input(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || matches!(self.phase, Phase::Closed | Phase::Await(Awaiting::Tls)) {
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
    /// no complete command (or the rest of a DATA body) is buffered, or while a request is
    /// outstanding. `now` is the time of the activity if input or an answer arrived since
    /// the last poll; polling without news does not move the deadline.
    pub fn poll(&mut self, now: Timestamp) -> Output {
        self.clock = now;
        if self.touched {
            self.touched = false;
            self.last_activity = now;
        }
        let out = self.next_output(now);
        self.arm_timers();
        out
    }

    /// Answers the outstanding request (see the module docs).
    pub fn answer(&mut self, answer: Answer) {
        if !matches!(self.phase, Phase::Await(_)) {
            // Nothing asked (or the session closed meanwhile): nothing to apply.
            return;
        }
        let Phase::Await(awaiting) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        self.touched = true;
        match (awaiting, answer) {
            (Awaiting::Delivery, Answer::Delivered(result)) => self.delivered(result),
            (awaiting, Answer::Checked(check, verdict)) if asking::matches(&awaiting, &check) => {
                self.checked(awaiting, check, verdict)
            }
            (Awaiting::Tls, Answer::TlsUp) => self.tls_up(),
            (Awaiting::Tls, Answer::TlsFailed) => self.tls_failed(),
            (Awaiting::Auth { identity }, Answer::Authenticated(a)) => {
                self.authenticated(identity, a)
            }
            (awaiting, _) => {
                // Not the answer to what we asked: keep waiting for that.
                self.phase = Phase::Await(awaiting);
                self.touched = false;
            }
        }
        self.arm_timers();
    }

    /// The earliest deadline in the timer table, if any timer is armed.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// Fires every timer due at `now`: an idle timeout queues `421 4.4.2` and Close (the
    /// next polls return them). Early calls change nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.clock = now;
        while let Some(timer) = self.timers.expired(now) {
            self.timers.stop(timer);
            match timer {
                Timer::Command | Timer::Data => self.idle_timeout(),
                Timer::Tarpit => self.release_tarpit(),
                Timer::Greet => self.greet(),
            }
            if self.is_closed() {
                break;
            }
        }
        self.arm_timers();
    }

    /// The server is shutting down (RFC 5321 §3.8: it should try to send a 421 first). An
    /// idle session — between transactions, nothing buffered — is told `421 4.3.2` at once
    /// and closed. A transaction in progress (MAIL given, or a message being received or
    /// stored) may finish; the next command after it gets the 421 instead of being executed,
    /// except `QUIT`, which still gets its 221 (so the usual `250`, `QUIT` ending never
    /// races an unsolicited 421). A client that goes quiet after its transaction is cut off
    /// by the listener's grace period. A message whose 250 was given is never affected: the
    /// store has it. Idempotent.
    pub fn shut_down(&mut self) {
        if self.draining || self.is_closed() {
            return;
        }
        self.draining = true;
        let idle = matches!(
            self.phase,
            Phase::Command | Phase::SkipLine { .. } | Phase::GreetPause(_)
        ) && self.envelope.is_none()
            && self.queue.is_empty();
        if idle {
            self.shutting_down_reply();
        }
        self.arm_timers();
    }

    /// `421 4.3.2` and Close: the reply of a session the shutdown ends.
    fn shutting_down_reply(&mut self) {
        self.envelope = None;
        self.reply(Reply::new(
            421,
            (4, 3, 2),
            format!(
                "{} Service shutting down, closing transmission channel",
                self.config.hostname
            ),
        ));
        self.queue.push_back(Output::Close);
        self.phase = Phase::Closed;
    }

    /// EOF or reset from the peer: whatever transaction is in progress is dropped.
    pub fn closed_by_peer(&mut self) {
        self.abandon("connection closed");
        self.queue.clear();
        self.phase = Phase::Closed;
        self.arm_timers();
    }

    /// Drains the trace lines (see the module docs).
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Whether the driver should read: not while an error reply is held in the tarpit
    /// (like Postfix's sleep, the client's further input waits in the network until the
    /// reply is out), so a client cannot fill our memory meanwhile. The driver then only
    /// sleeps until [`Session::poll_timeout`].
    pub fn reading(&self) -> bool {
        self.tarpit.is_none()
    }

    /// Whether the session is over (every poll returns [`Output::Close`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    // ---- internals ----

    fn next_output(&mut self, now: Timestamp) -> Output {
        loop {
            if let Some(out) = self.queue.pop_front() {
                return out;
            }
            if self.tarpit.is_some() && !self.is_closed() {
                // The replies before the held one go out; the rest waits for its deadline.
                return Output::NeedInput;
            }
            match &mut self.phase {
                Phase::Closed => {
                    if let Some(line) = self.log_at_close.take() {
                        self.log.push(line);
                    }
                    return Output::Close;
                }
                // Contract: the driver answers first. If it polls anyway, nothing is consumed.
                Phase::Await(_) => return Output::NeedInput,
                Phase::GreetPause(_) => {
                    if self.input_pos == self.input.len() {
                        return Output::NeedInput;
                    }
                    self.early_talker();
                }
                Phase::SkipLine { shown } => {
                    let rest = &self.input[self.input_pos..];
                    match memchr(b'\n', rest) {
                        Some(p) => {
                            self.input_pos += p + 1;
                            let shown = std::mem::take(shown);
                            self.phase = Phase::Command;
                            self.log.push(shown);
                            self.error(Reply::new(500, (5, 5, 6), "Line too long"));
                        }
                        None => {
                            self.input_pos = self.input.len();
                            return Output::NeedInput;
                        }
                    }
                }
                Phase::Data(body) => {
                    if let Some((bytes, first)) = body.take_chunk() {
                        return Output::Spool { bytes, first };
                    }
                    if body.done() {
                        match body.complete() {
                            true => self.end_of_data(now),
                            false => self.chunk_received(),
                        }
                        continue;
                    }
                    let used = body.feed(&self.input[self.input_pos..]);
                    self.input_pos += used;
                    if !body.done() && !body.has_chunk() && !body.flush_idle() {
                        self.release_input();
                        return Output::NeedInput;
                    }
                }
                Phase::SkipOctets(left) => {
                    let n = (*left).min(self.input.len() - self.input_pos);
                    self.input_pos += n;
                    *left -= n;
                    if *left > 0 {
                        return Output::NeedInput;
                    }
                    self.phase = Phase::Command;
                }
                Phase::Command | Phase::AuthResponse(_) => {
                    if !self.next_line() {
                        return Output::NeedInput;
                    }
                }
            }
        }
    }

    /// The idle timers, from the last activity and the phase (RFC 5321 §4.5.3.2: the data
    /// timeout while a body is received, the command timeout otherwise). Nothing runs while
    /// a request is outstanding: the client is waiting for us then, not we for it.
    fn arm_timers(&mut self) {
        let limits = &self.config.limits;
        // Saturating: a far-future deadline is still a valid one.
        let after =
            |wait: std::time::Duration| Timestamp(self.last_activity.0.saturating_add(wait));
        if self.is_closed() {
            self.tarpit = None;
        }
        self.timers
            .set(Timer::Tarpit, self.tarpit.as_ref().map(|(at, _)| *at));
        let greet = match self.phase {
            Phase::GreetPause(at) => Some(at),
            _ => None,
        };
        self.timers.set(Timer::Greet, greet);
        let (command, data) = match self.phase {
            _ if self.tarpit.is_some() => (None, None),
            Phase::Closed | Phase::Await(_) | Phase::GreetPause(_) => (None, None),
            Phase::Data(_) | Phase::SkipOctets(_) => (None, Some(after(limits.data_timeout()))),
            _ => (Some(after(limits.command_timeout())), None),
        };
        self.timers.set(Timer::Command, command);
        self.timers.set(Timer::Data, data);
    }

    /// The greeting (after the connect check accepted and any greet pause passed).
    fn greet(&mut self) {
        if matches!(self.phase, Phase::GreetPause(_)) {
            self.phase = Phase::Command;
            // The client's idle time counts from the greeting, not from the connect.
            self.touched = true;
        }
        self.reply(Reply::plain(
            220,
            format!("{} ESMTP mailsim", self.config.hostname),
        ));
    }

    /// Input arrived during the greet pause: the client did not wait for our 220 (see
    /// `limits.greet_pause_ms`). Its bytes are never executed: the trace shows them as
    /// received, and the connection gets `554 5.5.1` and is closed, as postscreen drops a
    /// PREGREET client (a client that talks before the greeting cannot be talking SMTP).
    fn early_talker(&mut self) {
        let rest = &self.input[self.input_pos..];
        let end = memchr(b'\n', rest).unwrap_or(rest.len()).min(512);
        let shown = commands::shown(commands::strip_line_ending(&rest[..end]));
        self.log.push(format!(
            "{shown} [{} octets before the greeting]",
            rest.len()
        ));
        self.input_pos = self.input.len();
        self.envelope = None;
        self.reply(Reply::new(
            554,
            (5, 5, 1),
            format!(
                "{} Error: protocol error: talked before the greeting",
                self.config.hostname
            ),
        ));
        self.close();
    }

    /// The client was idle too long: 421 and Close. A body cut short is logged with the
    /// Close, after the 421, as the trace has always shown it.
    fn idle_timeout(&mut self) {
        if self.receiving() {
            self.log_at_close = Some("[message discarded: timeout]".into());
        }
        self.envelope = None;
        self.queue.clear();
        self.phase = Phase::Closed;
        self.reply(Reply::new(
            421,
            (4, 4, 2),
            format!("{} Error: timeout exceeded", self.config.hostname),
        ));
    }

    /// Ends the transaction in a session that goes on (RSET, EHLO/HELO, STARTTLS): the
    /// chunks a BDAT transaction had spooled are given up at once (`Output::Unspool`)
    /// rather than lying on disk until the next message or the connection's end.
    fn reset_transaction(&mut self) {
        let spooled = self
            .envelope
            .take()
            .and_then(|e| e.chunks)
            .is_some_and(|c| c.spooled());
        if spooled {
            self.queue.push_back(Output::Unspool);
        }
    }

    /// Drops the transaction; logs a body cut short.
    fn abandon(&mut self, why: &str) {
        if self.receiving() {
            self.log.push(format!("[message discarded: {why}]"));
        }
        self.envelope = None;
    }

    /// All input is consumed: a buffer a big read grew is given back, so a session waiting
    /// for the rest of a message holds no copy of its last read.
    fn release_input(&mut self) {
        if self.input_pos == self.input.len() && self.input.capacity() > 4096 {
            self.input = Vec::new();
            self.input_pos = 0;
        }
    }

    /// A message is being received: in a DATA body or a BDAT chunk, or between the chunks
    /// of a BDAT transaction.
    fn receiving(&self) -> bool {
        matches!(self.phase, Phase::Data(_))
            || self.envelope.as_ref().is_some_and(|e| e.chunks.is_some())
    }

    fn reply(&mut self, reply: Reply) {
        self.queue.push_back(Output::Reply(reply));
    }

    /// Hands out a request and waits for its answer.
    fn ask(&mut self, awaiting: Awaiting, request: Output) {
        self.phase = Phase::Await(awaiting);
        self.queue.push_back(request);
    }

    /// A 4xx/5xx the client caused: counts towards `limits.errors` (Postfix's
    /// `smtpd_hard_error_limit`), after which we hang up. Past `limits.soft_errors`
    /// (`smtpd_soft_error_limit`) the reply is held back, longer for each further error
    /// (`limits.error_delay`): the error tarpit, which slows down a client that probes or
    /// floods us with bad commands, on the session's timer table so the Env clock (and a
    /// simulated warp) times it. The reply that reaches the hard limit goes out at once,
    /// with the 421.
    fn error(&mut self, reply: Reply) {
        self.errors += 1;
        let delay = self.config.limits.error_delay(self.errors);
        if self.errors < self.config.limits.errors.max(1) && !delay.is_zero() {
            let at = match &self.tarpit {
                // A second error while one is held (cannot happen: no input is consumed
                // meanwhile) would queue behind it.
                Some((held, _)) => held.plus(delay),
                None => self.clock.plus(delay),
            };
            if let Some((_, earlier)) = self.tarpit.take() {
                self.reply(earlier);
            }
            self.tarpit = Some((at, reply));
            return;
        }
        if let Some((_, held)) = self.tarpit.take() {
            self.reply(held);
        }
        self.reply(reply);
        if self.errors >= self.config.limits.errors.max(1) {
            self.envelope = None;
            self.reply(Reply::new(
                421,
                (4, 7, 0),
                format!("{} Error: too many errors", self.config.hostname),
            ));
            self.close();
        }
    }

    /// The tarpit's deadline passed: the held reply goes out, input is read again, and
    /// the client's idle time counts from now.
    fn release_tarpit(&mut self) {
        if let Some((_, reply)) = self.tarpit.take() {
            self.reply(reply);
            self.touched = true;
        }
    }

    /// Close after the queued replies.
    fn close(&mut self) {
        self.queue.push_back(Output::Close);
        self.phase = Phase::Closed;
    }
}
