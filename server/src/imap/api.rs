//! The session's interface to the outside: its configuration, what it asks for
//! ([`Output`], [`Request`]) and what it is answered ([`Answer`], [`Done`], [`Failure`]).
//! A driver on sockets and a simulated IMAP user in-process speak exactly this.

use std::time::Duration;

use crate::smtp::{AuthAnswer, Credentials};
use crate::store::index::{Entry, Flags, FolderName, Status};

/// What an IMAP listener offers.
#[derive(Clone, Debug)]
pub struct ImapConfig {
    pub hostname: String,
    /// STARTTLS is offered (the listener has TLS and the connection is not TLS yet).
    pub starttls: bool,
    /// LOGIN and AUTHENTICATE before TLS (testing only, like SMTP's `auth.allow_plaintext`).
    pub plaintext_auth: bool,
    pub idle_timeout: Duration,
    pub max_literal: u32,
}

/// How STORE changes flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// What the session asks of the store, for the logged-in account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Claim a session slot for the account (the per-account cap): `Done::Ok`.
    Login(String),
    /// Open (and rescan) a folder: `Done::Selected`.
    Select(FolderName),
    /// Rescan and list a folder: `Done::Entries` (every message).
    Snapshot(FolderName),
    /// Message bytes: `Done::Messages`.
    Read(FolderName, Vec<u32>),
    /// `Done::Stored`. With `unchanged_since` (RFC 7162 §3.2), a
    /// message changed after that MODSEQ is left alone.
    SetFlags {
        folder: FolderName,
        uids: Vec<u32>,
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    },
    /// `Done::Uids` (those expunged).
    Expunge(FolderName, Vec<u32>),
    /// `Done::Folders`.
    Folders,
    /// `Done::Status`.
    Status(FolderName),
    /// `Done::Ok`.
    Create(FolderName),
    /// `Done::Appended`.
    Append {
        folder: FolderName,
        message: Vec<u8>,
        flags: Flags,
    },
    /// COPY (or MOVE with `remove`): `Done::Copied`.
    Copy {
        from: FolderName,
        to: FolderName,
        uids: Vec<u32>,
        remove: bool,
    },
}

/// A successful answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Ok,
    Selected {
        status: Status,
        entries: Vec<Entry>,
    },
    Entries(Vec<Entry>),
    /// STORE: the changed messages, and those left alone by UNCHANGEDSINCE.
    Stored {
        changed: Vec<Entry>,
        modified: Vec<u32>,
    },
    Messages(Vec<(u32, Vec<u8>)>),
    Uids(Vec<u32>),
    /// Every folder of the account, INBOX first, and whether it is subscribed.
    Folders(Vec<FolderName>),
    Status {
        status: Status,
        unseen: usize,
    },
    Appended {
        uidvalidity: u32,
        uid: u32,
    },
    /// The target's UIDVALIDITY and (source UID, target UID) pairs.
    Copied {
        uidvalidity: u32,
        pairs: Vec<(u32, u32)>,
    },
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    NotFound,
    Exists,
    /// Too many sessions for the account.
    Busy,
    OverQuota,
    Failed(String),
}

/// What the session wants next.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Bytes to send; `shown` is their first line for the trace (never a message body).
    Send { bytes: Vec<u8>, shown: String },
    /// Do the TLS handshake now (after sending what was queued): `Answer::TlsUp`/`TlsFailed`.
    StartTls,
    /// Check these credentials: `Answer::Authenticated`.
    Authenticate(Credentials),
    /// Do this: `Answer::Done`.
    Ask(Request),
    /// Close the connection (after sending what was queued).
    Close,
    /// Nothing to do until more input, a change in the selected folder or the timer.
    NeedInput,
}

/// The outside's answer to an output.
#[derive(Debug)]
pub enum Answer {
    TlsUp,
    TlsFailed,
    Authenticated(AuthAnswer),
    Done(Result<Done, Failure>),
}
