//! The POP3 session state machine: framing, states, requests and the idle timer. The
//! commands themselves are in `commands.rs`, one method each.

use std::collections::VecDeque;
use std::time::Duration;

use crate::env::Timestamp;
use crate::smtp::{AuthAnswer, Credentials};

/// RFC 2449 §4: a command line is at most 255 octets, CRLF included.
pub const MAX_COMMAND: usize = 255;
/// A SASL response line (RFC 5034 §4 lifts the command limit for it): base64 of a PLAIN
/// message with generous names and password.
pub const MAX_SASL: usize = 4096;
/// RFC 1939 §3: the autologout timer is at least 10 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Bad commands before the session is closed (a client that only sends junk).
pub const MAX_ERRORS: u32 = 20;

/// What a POP3 listener offers.
#[derive(Clone, Debug)]
pub struct Pop3Config {
    pub hostname: String,
    /// STLS is offered (the listener has TLS and the connection is not TLS yet).
    pub starttls: bool,
    /// USER/PASS and AUTH before TLS (testing only, like SMTP's `auth.allow_plaintext`).
    pub plaintext_auth: bool,
    pub idle_timeout: Duration,
}

/// The messages of a maildrop at the start of the TRANSACTION state (RFC 1939 §5: numbers
/// are fixed for the session).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maildrop {
    pub uidvalidity: u32,
    /// (UID, octets), in UID order: message n is `messages[n - 1]`.
    pub messages: Vec<(u32, u64)>,
}

/// Why a maildrop could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Another POP3 session holds it (RFC 2449 `IN-USE`).
    InUse,
    /// The store failed (`SYS/TEMP`).
    Failed(String),
}

/// What the session wants next.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Bytes to send; `shown` is the status line for the trace (never a message body).
    Send { bytes: Vec<u8>, shown: String },
    /// Do the TLS handshake now (after sending what was queued), then `Answer::TlsUp` or
    /// `Answer::TlsFailed`.
    StartTls,
    /// Check these credentials: `Answer::Authenticated`.
    Authenticate(Credentials),
    /// Lock and open this account's INBOX: `Answer::Opened`.
    Open(String),
    /// The bytes of the message with this UID: `Answer::Read`.
    Read(u32),
    /// QUIT in TRANSACTION: expunge these UIDs, durably: `Answer::Expunged`.
    Expunge(Vec<u32>),
    /// Close the connection (after sending what was queued).
    Close,
    /// Nothing to do until more input (or the timer).
    NeedInput,
}

/// The outside's answer to a request.
#[derive(Debug)]
pub enum Answer {
    TlsUp,
    TlsFailed,
    Authenticated(AuthAnswer),
    Opened(Result<Maildrop, OpenError>),
    Read(Result<Vec<u8>, String>),
    Expunged(Result<(), String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    Tls,
    Auth,
    Open,
    /// RETR (None) or TOP with this many body lines.
    Read(Option<usize>),
    Expunge,
}

#[derive(Debug)]
pub(super) enum State {
    /// RFC 1939 §4; `user` is the name a USER gave.
    Authorization {
        user: Option<String>,
    },
    /// AUTH PLAIN without an initial response: the next line is the response.
    SaslWait,
    Transaction(Transaction),
    Closed,
}

#[derive(Debug)]
pub(super) struct Transaction {
    pub(super) uidvalidity: u32,
    /// (UID, octets, marked deleted).
    pub(super) messages: Vec<(u32, u64, bool)>,
}

pub struct Session {
    pub(super) config: Pop3Config,
    pub(super) state: State,
    pub(super) tls: bool,
    pub(super) input: Vec<u8>,
    /// Skipping the rest of an overlong line, up to its LF.
    skipping: bool,
    pub(super) out: VecDeque<Output>,
    pub(super) asked: Option<Asked>,
    /// Who the credentials being checked are for (AUTHORIZATION → TRANSACTION).
    pub(super) login: Option<Credentials>,
    pub(super) errors: u32,
    deadline: Option<Timestamp>,
    pub(super) log: Vec<String>,
}

impl Session {
    /// A new session; its greeting is the first output.
    pub fn new(config: Pop3Config, now: Timestamp) -> Session {
        let greeting = format!("{} POP3 server ready", config.hostname);
        let mut s = Session {
            deadline: Some(now.plus(config.idle_timeout)),
            config,
            state: State::Authorization { user: None },
            tls: false,
            input: Vec::new(),
            skipping: false,
            out: VecDeque::new(),
            asked: None,
            login: None,
            errors: 0,
            log: Vec::new(),
        };
        s.ok(&greeting);
        s
    }

    /// A session on an implicit-TLS port (995): no STLS.
    pub fn new_over_tls(config: Pop3Config, now: Timestamp) -> Session {
        let mut s = Session::new(config, now);
        s.tls = true;
        s
    }

    pub fn push_input(&mut self, bytes: &[u8]) {
        // Input that arrives while a TLS handshake is pending is discarded (RFC 2595 §4:
        // nothing sent before TLS may be acted on after it).
        if self.asked == Some(Asked::Tls) {
            return;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The next thing to do; consumes at most one command line.
    pub fn poll(&mut self, now: Timestamp) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        if self.asked.is_some() || matches!(self.state, State::Closed) {
            return Output::NeedInput;
        }
        let limit = match self.state {
            State::SaslWait => MAX_SASL,
            _ => MAX_COMMAND,
        };
        match memchr::memchr(b'\n', &self.input) {
            Some(i) => {
                let line: Vec<u8> = self.input.drain(..=i).collect();
                if std::mem::take(&mut self.skipping) {
                    return self.poll(now);
                }
                self.deadline = Some(now.plus(self.config.idle_timeout));
                if line.len() > limit {
                    self.log.push("[line too long]".into());
                    self.err("Line too long");
                } else {
                    let line = line.strip_suffix(b"\n").unwrap_or(&line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    self.command(line);
                }
            }
            None if self.input.len() > limit => {
                // Answered once, then the rest of it is dropped as it arrives.
                if !self.skipping {
                    self.log.push("[line too long]".into());
                    self.err("Line too long");
                }
                self.skipping = true;
                self.input.clear();
            }
            None => {}
        }
        self.out.pop_front().unwrap_or(Output::NeedInput)
    }

    /// The earliest deadline of the timer table (the idle timer), if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (&self.state, self.asked) {
            (State::Closed, _) | (_, Some(_)) => None,
            _ => self.deadline,
        }
    }

    /// Fires what is due at `now`: the idle timer closes the session (RFC 1939 §3
    /// autologout; nothing is expunged, as the UPDATE state is never entered).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.poll_timeout().is_some_and(|d| d <= now) {
            self.err("Disconnected for inactivity");
            self.close();
        }
    }

    /// The peer went away: nothing more happens (no UPDATE state).
    pub fn closed_by_peer(&mut self) {
        self.state = State::Closed;
        self.out.clear();
    }

    /// Inbound lines for the trace (credentials masked).
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub(super) fn send(&mut self, bytes: Vec<u8>, shown: String) {
        self.out.push_back(Output::Send { bytes, shown });
    }

    pub(super) fn ok(&mut self, text: &str) {
        let line = format!("+OK {text}");
        self.send(format!("{line}\r\n").into_bytes(), line);
    }

    /// A `-ERR` the client caused: counts towards [`MAX_ERRORS`].
    pub(super) fn err(&mut self, text: &str) {
        let line = format!("-ERR {text}");
        self.send(format!("{line}\r\n").into_bytes(), line);
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            let line = "-ERR Too many bad commands".to_string();
            self.send(format!("{line}\r\n").into_bytes(), line);
            self.close();
        }
    }

    /// `+OK` and a multi-line body already framed by `wire::write_multiline`.
    pub(super) fn ok_multi(&mut self, first: &str, body: Vec<u8>) {
        let line = format!("+OK {first}");
        let mut bytes = format!("{line}\r\n").into_bytes();
        bytes.extend_from_slice(&body);
        self.send(bytes, line);
    }

    pub(super) fn ask(&mut self, what: Asked, out: Output) {
        self.asked = Some(what);
        self.out.push_back(out);
    }

    pub(super) fn close(&mut self) {
        self.state = State::Closed;
        self.out.push_back(Output::Close);
    }
}
