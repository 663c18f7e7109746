//! The IMAP session state machine: framing (lines and literals, with their limits), states,
//! the requests it makes of the store, untagged updates and the idle timer. The commands
//! are in one file per family (`any.rs`, `mailbox.rs`, `fetch.rs`, `store.rs`, `search.rs`).
//!
//! Framing is imap-codec's `Fragmentizer`: it splits the byte stream into lines and
//! literals before any parsing, so a malformed command is skipped whole and literal bytes
//! can never be taken for a command. A literal's size is judged when its `{n}` is announced,
//! before one octet of it is buffered: too big with `{n}` (synchronising) is a tagged `NO
//! [TOOBIG]` and the client never sends it (RFC 3501 §7.5); too big with `{n+}` (LITERAL+,
//! RFC 7888 §4, the client sends it anyway) is `BAD` and the connection is closed.

use std::collections::VecDeque;
use std::time::Duration;

use bounded_static::IntoBoundedStatic;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::CommandCodec;

pub use super::api::{Answer, Done, Failure, FlagOp, ImapConfig, Output, Request};
use super::wire;
use crate::env::Timestamp;
use crate::store::index::{Entry, FolderName};

/// Longest command line (without literals). Dovecot's `imap_max_line_length` is 64 KiB;
/// clients send long UID sets, so this is not the POP3 255.
pub const MAX_LINE: usize = 64 * 1024;
/// Largest literal accepted by default (an APPEND); bigger is refused before it is sent.
pub const MAX_LITERAL: u32 = 32 * 1024 * 1024;
/// RFC 3501 §5.4: the autologout timer is at least 30 minutes (IDLE included, so clients
/// re-issue IDLE every 29 minutes as RFC 2177 advises).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Bad commands before the session is closed (a client that only sends junk).
pub const MAX_ERRORS: u32 = 20;
/// Bytes handed to the fragmentizer at a time: how far past a limit a line can get before
/// it is noticed.
const CHUNK: usize = 4096;

/// The folder a session has selected, as this session has been told of it: sequence
/// numbers are positions in `msgs` (RFC 3501 §2.3.1.2), which changes only when this
/// session is sent EXISTS or EXPUNGE.
#[derive(Debug)]
pub(super) struct Selected {
    pub(super) name: FolderName,
    pub(super) read_only: bool,
    pub(super) msgs: Vec<Entry>,
}

#[derive(Debug)]
pub(super) enum State {
    NotAuthenticated,
    Authenticated,
    Selected(Selected),
    Logout,
}

/// What to do with the answer to the request in flight.
#[derive(Debug)]
pub(super) enum Pending {
    Tls,
    /// Credentials being checked; `account` set once they are good.
    Auth {
        tag: String,
    },
    Login {
        tag: String,
        account: String,
    },
    Select {
        tag: String,
        name: FolderName,
        read_only: bool,
    },
    /// Bring the selected folder up to date, then `OK` the tag (None: an IDLE update).
    Sync {
        tag: Option<String>,
        text: String,
    },
    Fetch(super::fetch::FetchJob),
    Store(super::store::StoreJob),
    Expunge {
        tag: String,
        close: bool,
    },
    Copy {
        tag: String,
        moved: bool,
        uid: bool,
    },
    Append {
        tag: String,
    },
    List {
        tag: String,
        lsub: bool,
        reference: String,
        pattern: String,
    },
    Status {
        tag: String,
        name: FolderName,
        items: Vec<super::mailbox::StatusItem>,
    },
    Create {
        tag: String,
    },
    Search(super::search::SearchJob),
}

pub struct Session {
    pub(super) config: ImapConfig,
    pub(super) state: State,
    pub(super) tls: bool,
    frag: Fragmentizer,
    /// Input not yet handed to the fragmentizer.
    input: VecDeque<u8>,
    /// Octets handed over since the fragmentizer last produced a fragment.
    since_fragment: usize,
    /// The fragmentizer is in a literal (its size was checked when announced).
    in_literal: bool,
    pub(super) out: VecDeque<Output>,
    pub(super) pending: Option<Pending>,
    /// AUTHENTICATE PLAIN waiting for its response line.
    pub(super) sasl: Option<String>,
    /// IDLE in progress, with its tag.
    pub(super) idling: Option<String>,
    /// The selected folder changed (another session or a delivery): sync at the next chance.
    pub(super) dirty: bool,
    /// CONDSTORE enabled (RFC 7162 §3.1): FETCH responses carry MODSEQ.
    pub(super) condstore: bool,
    pub(super) account: Option<String>,
    pub(super) errors: u32,
    deadline: Option<Timestamp>,
    pub(super) log: Vec<String>,
}

impl Session {
    /// A new session; its greeting is the first output.
    pub fn new(config: ImapConfig, now: Timestamp) -> Session {
        let mut s = Session {
            deadline: Some(now.plus(config.idle_timeout)),
            frag: Fragmentizer::new(config.max_literal.saturating_add(MAX_LINE as u32)),
            config,
            state: State::NotAuthenticated,
            tls: false,
            input: VecDeque::new(),
            since_fragment: 0,
            in_literal: false,
            out: VecDeque::new(),
            pending: None,
            sasl: None,
            idling: None,
            dirty: false,
            condstore: false,
            account: None,
            errors: 0,
            log: Vec::new(),
        };
        let caps = s.capabilities();
        let hostname = s.config.hostname.clone();
        s.untagged(&format!(
            "OK [CAPABILITY {caps}] {hostname} IMAP4rev1 ready"
        ));
        s
    }

    /// A session on an implicit-TLS port (993): no STARTTLS.
    pub fn new_over_tls(config: ImapConfig, now: Timestamp) -> Session {
        let mut config = config;
        config.starttls = false;
        let mut s = Session::new(config, now);
        s.tls = true;
        s
    }

    pub fn push_input(&mut self, bytes: &[u8]) {
        // RFC 3501 §6.2.1: nothing sent before the TLS negotiation may be acted on after it.
        if matches!(self.pending, Some(Pending::Tls)) {
            return;
        }
        self.input.extend(bytes);
    }

    /// The selected folder changed outside this session: it is told at the next chance
    /// (at once when idling, else when a command other than FETCH/STORE/SEARCH ends).
    pub fn changed(&mut self) {
        if matches!(self.state, State::Selected(_)) {
            self.dirty = true;
        }
    }

    /// The folder this session has selected, if any (the driver watches it for changes).
    pub fn selected(&self) -> Option<&FolderName> {
        match &self.state {
            State::Selected(s) => Some(&s.name),
            _ => None,
        }
    }

    /// The next thing to do; handles at most one command.
    pub fn poll(&mut self, now: Timestamp) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        if self.pending.is_some() || matches!(self.state, State::Logout) {
            return Output::NeedInput;
        }
        if self.idling.is_some() && self.dirty {
            self.sync(None, String::new());
            return self.out.pop_front().unwrap_or(Output::NeedInput);
        }
        if let Some(message) = self.next_message() {
            self.deadline = Some(now.plus(self.config.idle_timeout));
            self.message(message);
        }
        self.out.pop_front().unwrap_or(Output::NeedInput)
    }

    /// Runs the fragmentizer until a whole message is there (or more input is needed),
    /// answering literal announcements on the way. Returns the message's bytes, or a
    /// framing verdict already answered (`None`).
    fn next_message(&mut self) -> Option<Result<Vec<u8>, Framing>> {
        loop {
            match self.frag.progress() {
                Some(info) => {
                    self.since_fragment = 0;
                    self.in_literal = false;
                    if let FragmentInfo::Line {
                        announcement: Some(a),
                        ..
                    } = info
                    {
                        if a.length > self.literal_limit() {
                            return Some(Err(Framing::LiteralTooBig(a.mode, a.length)));
                        }
                        self.in_literal = true;
                        // The line so far is only a prefix, yet a cheap look at it keeps a
                        // 32 MiB literal from being invited where no command can take one.
                        if a.mode == LiteralMode::Sync {
                            self.send_line("+ Ready for literal data".into());
                            return None;
                        }
                        continue;
                    }
                    if self.frag.is_message_complete() {
                        if self.frag.is_max_message_size_exceeded() {
                            return Some(Err(Framing::TooLong));
                        }
                        return Some(Ok(self.frag.message_bytes().to_vec()));
                    }
                }
                None => {
                    if self.input.is_empty() {
                        return None;
                    }
                    if !self.in_literal && self.since_fragment > MAX_LINE {
                        return Some(Err(Framing::LineTooLong));
                    }
                    let n = self.input.len().min(CHUNK);
                    let chunk: Vec<u8> = self.input.drain(..n).collect();
                    self.since_fragment += n;
                    self.frag.enqueue_bytes(&chunk);
                }
            }
        }
    }

    /// One framed message: a command, an AUTHENTICATE response, or IDLE's DONE.
    fn message(&mut self, message: Result<Vec<u8>, Framing>) {
        let bytes = match message {
            Ok(b) => b,
            Err(f) => return self.framing_error(f),
        };
        if let Some(tag) = self.sasl.take() {
            self.log.push("****".into());
            return self.sasl_response(tag, &bytes);
        }
        if let Some(tag) = self.idling.take() {
            self.log.push(shown_line(&bytes));
            let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.eq_ignore_ascii_case(b"DONE") {
                return self.finish(&tag, "IDLE terminated");
            }
            self.idling = Some(tag);
            return self.bad(None, "Expected DONE");
        }
        let parsed = imap_codec::decode::Decoder::decode(&CommandCodec::default(), &bytes)
            .map(|(rest, c)| (rest.is_empty(), c.into_static()));
        match parsed {
            Ok((true, command)) => {
                self.log.push(super::any::shown_command(&command, &bytes));
                self.command(command);
            }
            _ => {
                self.log.push(shown_line(&bytes));
                let tag = tag_of(&bytes);
                self.bad(tag.as_deref(), "Syntax error in command");
            }
        }
    }

    /// The largest literal this session takes now: before login only what a LOGIN needs
    /// (a line's worth), so nobody unauthenticated can make us hold 32 MiB.
    fn literal_limit(&self) -> u32 {
        match self.state {
            State::NotAuthenticated => (MAX_LINE as u32).min(self.config.max_literal),
            _ => self.config.max_literal,
        }
    }

    fn framing_error(&mut self, f: Framing) {
        let tag = self.frag.decode_tag().map(|t| t.inner().to_string());
        self.log.push(format!("[{f:?}]"));
        match f {
            Framing::LiteralTooBig(LiteralMode::Sync, n) => {
                // The client waits for `+`, so it never sends the literal: the next line is
                // a new command.
                self.frag.skip_message();
                let max = self.literal_limit();
                let text = format!("[TOOBIG] Literal of {n} octets exceeds the limit of {max}");
                self.tagged(tag.as_deref().unwrap_or("*"), "NO", &text);
                self.count_error();
            }
            Framing::LiteralTooBig(_, n) => {
                // LITERAL+: the octets are already on their way; nothing after them can be
                // trusted to be a command boundary we agree on.
                let max = self.literal_limit();
                let text = format!("[TOOBIG] Literal of {n} octets exceeds the limit of {max}");
                self.tagged(tag.as_deref().unwrap_or("*"), "BAD", &text);
                self.bye("Literal too big");
            }
            Framing::TooLong | Framing::LineTooLong => {
                self.tagged(
                    tag.as_deref().unwrap_or("*"),
                    "BAD",
                    "Command line too long",
                );
                self.bye("Command line too long");
            }
        }
    }

    /// The earliest deadline of the timer table (the autologout timer), if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (&self.state, &self.pending) {
            (State::Logout, _) | (_, Some(_)) => None,
            _ => self.deadline,
        }
    }

    /// Fires what is due at `now`: the autologout timer (RFC 3501 §5.4) says BYE.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.poll_timeout().is_some_and(|d| d <= now) {
            self.bye("Autologout; idle for too long");
        }
    }

    /// The peer went away: nothing more happens.
    pub fn closed_by_peer(&mut self) {
        self.state = State::Logout;
        self.out.clear();
    }

    /// Inbound lines for the trace (credentials masked).
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The logged-in account.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    pub(super) fn send(&mut self, bytes: Vec<u8>) {
        let shown = wire::shown(&bytes);
        self.out.push_back(Output::Send { bytes, shown });
    }

    pub(super) fn send_line(&mut self, line: String) {
        let mut bytes = line.into_bytes();
        bytes.extend_from_slice(b"\r\n");
        self.send(bytes);
    }

    pub(super) fn untagged(&mut self, text: &str) {
        self.send_line(format!("* {text}"));
    }

    pub(super) fn tagged(&mut self, tag: &str, status: &str, text: &str) {
        self.send_line(format!("{tag} {status} {}", wire::text(text)));
    }

    pub(super) fn ok(&mut self, tag: &str, text: &str) {
        self.tagged(tag, "OK", text);
    }

    pub(super) fn no(&mut self, tag: &str, text: &str) {
        self.tagged(tag, "NO", text);
    }

    /// A `BAD` the client caused: counts towards [`MAX_ERRORS`].
    pub(super) fn bad(&mut self, tag: Option<&str>, text: &str) {
        self.tagged(tag.unwrap_or("*"), "BAD", text);
        self.count_error();
    }

    fn count_error(&mut self) {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.bye("Too many bad commands");
        }
    }

    pub(super) fn bye(&mut self, text: &str) {
        self.untagged(&format!("BYE {}", wire::text(text)));
        self.close();
    }

    pub(super) fn ask(&mut self, pending: Pending, out: Output) {
        self.pending = Some(pending);
        self.out.push_back(out);
    }

    pub(super) fn close(&mut self) {
        self.state = State::Logout;
        self.idling = None;
        self.out.push_back(Output::Close);
    }

    /// Ends a command with `OK`, first bringing the selected folder up to date if it
    /// changed (RFC 3501 §7: EXISTS/EXPUNGE go out before the tagged reply).
    pub(super) fn finish(&mut self, tag: &str, text: &str) {
        if self.dirty && matches!(self.state, State::Selected(_)) {
            self.sync(Some(tag.to_string()), text.to_string());
        } else {
            self.ok(tag, text);
        }
    }

    /// Asks for a fresh snapshot of the selected folder; the answer is diffed into
    /// untagged EXPUNGE / EXISTS / FETCH by `refresh`.
    pub(super) fn sync(&mut self, tag: Option<String>, text: String) {
        let State::Selected(sel) = &self.state else {
            if let Some(t) = tag {
                self.ok(&t, &text);
            }
            return;
        };
        self.dirty = false;
        let name = sel.name.clone();
        self.ask(
            Pending::Sync { tag, text },
            Output::Ask(Request::Snapshot(name)),
        );
    }

    /// The one entry point for answers; an answer nobody asked for is ignored.
    pub fn answer(&mut self, answer: Answer) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        match (pending, answer) {
            (Pending::Tls, Answer::TlsUp) => {
                // RFC 3501 §6.2.1: forget everything from before TLS.
                self.tls = true;
                self.config.starttls = false;
                self.input.clear();
                self.frag =
                    Fragmentizer::new(self.config.max_literal.saturating_add(MAX_LINE as u32));
            }
            (Pending::Tls, Answer::TlsFailed) => self.close(),
            (Pending::Auth { tag }, Answer::Authenticated(a)) => self.authenticated(tag, a),
            (p, Answer::Done(result)) => self.done(p, result),
            (p, a) => {
                // A mismatched answer is a driver bug; keep the session consistent.
                self.log.push(format!("[unexpected answer {a:?} to {p:?}]"));
                self.close();
            }
        }
    }

    fn done(&mut self, pending: Pending, result: Result<Done, Failure>) {
        match pending {
            Pending::Login { tag, account } => self.logged_in(tag, account, result),
            Pending::Select {
                tag,
                name,
                read_only,
            } => self.selected_answer(tag, name, read_only, result),
            Pending::Sync { tag, text } => {
                match result {
                    Ok(Done::Entries(entries)) => self.refresh(entries),
                    Ok(_) => {}
                    Err(f) => self.log.push(format!("[sync failed: {f:?}]")),
                }
                if let Some(tag) = tag {
                    self.ok(&tag, &text);
                }
            }
            Pending::Fetch(job) => self.fetch_answer(job, result),
            Pending::Store(job) => self.store_answer(job, result),
            Pending::Expunge { tag, close } => self.expunge_answer(tag, close, result),
            Pending::Copy { tag, moved, uid } => self.copy_answer(tag, moved, uid, result),
            Pending::Append { tag } => self.append_answer(tag, result),
            Pending::List {
                tag,
                lsub,
                reference,
                pattern,
            } => self.list_answer(tag, lsub, &reference, &pattern, result),
            Pending::Status { tag, name, items } => self.status_answer(tag, name, items, result),
            Pending::Create { tag } => match result {
                Ok(_) => self.finish(&tag, "CREATE completed"),
                Err(f) => self.failure(&tag, f),
            },
            Pending::Search(job) => self.search_answer(job, result),
            Pending::Tls | Pending::Auth { .. } => {}
        }
    }

    /// A store failure as a tagged `NO` with the RFC 5530 code that fits.
    pub(super) fn failure(&mut self, tag: &str, f: Failure) {
        let text = match f {
            Failure::NotFound => "[NONEXISTENT] No such mailbox".to_string(),
            Failure::Exists => "[ALREADYEXISTS] Mailbox exists".to_string(),
            Failure::Busy => "[LIMIT] Too many sessions for this account".to_string(),
            Failure::OverQuota => "[OVERQUOTA] Quota exceeded".to_string(),
            Failure::Failed(why) => format!("[SERVERBUG] {why}"),
        };
        self.no(tag, &text);
    }

    /// Runs one parsed command (state checks first, RFC 3501 §3).
    fn command(&mut self, command: Command<'static>) {
        super::any::dispatch(self, command);
    }
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    LiteralTooBig(LiteralMode, u32),
    TooLong,
    LineTooLong,
}

/// The tag of a command that did not parse, if it has a usable one.
fn tag_of(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')?;
    let tag = std::str::from_utf8(&bytes[..end]).ok()?;
    let ok = !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b));
    ok.then(|| tag.to_string())
}

/// The first line of a message for the trace, printable.
pub(super) fn shown_line(bytes: &[u8]) -> String {
    let end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    text.trim_end_matches('\r')
        .chars()
        .map(|c| match c {
            c if c.is_control() => format!("\\x{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}
