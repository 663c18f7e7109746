//! The IMAP session per command family, driven in-process against a real [`Backend`] on the
//! crash-modelling `MemEnv` (no sockets): what it sends, and what the store holds after.
//! `Client` below is also the shape a simulated IMAP user would take.

use std::path::Path;

use super::*;
use crate::durable::memenv::MemEnv;
use crate::env::{Env, Timestamp};
use crate::smtp::AuthAnswer;
use crate::store::index::{FolderName, Mailboxes};

mod commands;
mod limits;
mod properties;

pub(super) const T0: u64 = 1_700_000_000;

pub(super) fn config(starttls: bool, plaintext: bool) -> ImapConfig {
    ImapConfig {
        hostname: "mx.example.org".into(),
        starttls,
        plaintext_auth: plaintext,
        idle_timeout: IDLE_TIMEOUT,
        max_literal: 1024 * 1024,
    }
}

pub(super) fn now() -> Timestamp {
    Timestamp::from_secs(T0)
}

/// A durable delivery into alice's `folder`, as the MX store leaves one.
pub(super) async fn deliver(env: &MemEnv, folder: &str, id: &str, body: &str) {
    let name = FolderName::parse(folder).unwrap();
    let dir = name.root(Path::new("mail/alice")).join("new");
    crate::env::create_dir_durable(env, &dir).await.unwrap();
    env.write(&dir.join(id), body.as_bytes()).await.unwrap();
    env.sync_file(&dir.join(id)).await.unwrap();
    env.sync_dir(&dir).await.unwrap();
}

pub(super) const MSG1: &str = "From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: Hello there\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <1@example.net>\r\n\r\nFirst body line\r\n";
pub(super) const MSG2: &str = "From: carol@example.com\r\nTo: alice@example.org\r\nSubject: Lunch\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\npart one\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--XX--\r\n";

/// alice's account with INBOX holding MSG1 and MSG2, and a Junk folder.
pub(super) async fn world() -> (MemEnv, Mailboxes<MemEnv>) {
    let env = MemEnv::new();
    deliver(&env, "INBOX", "1700000000.000001.0", MSG1).await;
    deliver(&env, "INBOX", "1700000000.000002.0", MSG2).await;
    crate::env::create_dir_durable(&env, Path::new("mail/alice/.Junk/new"))
        .await
        .unwrap();
    let mailboxes = Mailboxes::new(env.clone(), None);
    (env, mailboxes)
}

/// A session and its backend: `say` runs a command to completion, answering every
/// request (credentials: `alice`/`secret` only).
pub(super) struct Client {
    pub s: Session,
    pub b: Backend<MemEnv>,
}

impl Client {
    pub fn new(mailboxes: &Mailboxes<MemEnv>, plaintext: bool) -> (Client, String) {
        let mut c = Client {
            s: Session::new(config(false, plaintext), now()),
            b: Backend::new(mailboxes.clone(), 3),
        };
        let greeting = c.sent_now();
        (c, greeting)
    }

    /// What the session sends without being asked anything.
    pub fn sent_now(&mut self) -> String {
        let mut text = String::new();
        while let Output::Send { bytes, .. } = self.s.poll(now()) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        text
    }

    /// Feeds `input` and runs until the session needs more input; returns what it sent.
    pub async fn raw(&mut self, input: &[u8]) -> String {
        self.s.push_input(input);
        self.run().await
    }

    pub async fn run(&mut self) -> String {
        String::from_utf8_lossy(&self.run_bytes().await).to_string()
    }

    /// [`Client::raw`], the bytes as sent.
    pub async fn raw_bytes(&mut self, input: &[u8]) -> Vec<u8> {
        self.s.push_input(input);
        self.run_bytes().await
    }

    pub async fn run_bytes(&mut self) -> Vec<u8> {
        let mut text = Vec::new();
        loop {
            match self.s.poll(now()) {
                Output::Send { bytes, .. } => text.extend_from_slice(&bytes),
                Output::NeedInput => return text,
                Output::Close => {
                    text.extend_from_slice(b"<close>");
                    return text;
                }
                Output::StartTls => self.s.answer(Answer::TlsUp),
                Output::Authenticate(c) => {
                    let ok = c.authcid == "alice" && c.password == "secret";
                    self.s.answer(Answer::Authenticated(if ok {
                        AuthAnswer::Accepted
                    } else {
                        AuthAnswer::Rejected
                    }));
                }
                Output::Ask(r) => {
                    let done = self.b.run(r).await;
                    self.s.answer(Answer::Done(done));
                }
            }
        }
    }

    pub async fn say(&mut self, line: &str) -> String {
        self.raw(format!("{line}\r\n").as_bytes()).await
    }

    /// Logged in and INBOX selected.
    pub async fn selected(mailboxes: &Mailboxes<MemEnv>) -> Client {
        let (mut c, _) = Client::new(mailboxes, true);
        assert!(c.say("a LOGIN alice secret").await.contains("a OK"));
        let r = c.say("s SELECT INBOX").await;
        assert!(r.contains("s OK [READ-WRITE]"), "{r}");
        c
    }
}
