//! The access index: what IMAP and POP3 see of a folder — UIDVALIDITY, UIDNEXT, per
//! message its UID, file, size, INTERNALDATE, flags and MODSEQ (RFC 3501, RFC 7162) — kept
//! in one append-only [log](crate::durable::log) per folder, the Dovecot way (its
//! `dovecot-uidlist`).
//!
//! **Deliveries do not touch it.** The MX store keeps writing `new/<id>` exactly as before,
//! so the SMTP hot path pays nothing. When a folder is opened or rescanned, files in `new/`
//! the index has not seen get the next UIDs (oldest name first), and those records are
//! appended to the folder's log **and fsynced before anything reports them**. So a crash
//! can never make a UID that a client saw be handed out again under the same UIDVALIDITY:
//! a record whose fsync had not returned was never reported, and its UID is burnt anyway
//! (UIDNEXT is the highest UID any readable record names, plus one). A delivery's only
//! cost is a broadcast send: the server forwards each one to [`Mailboxes::delivered`],
//! which rescans the folder if this process has it open, so IMAP sessions watching it
//! (IDLE) hear of the message at once; APPEND and COPY (`appending.rs`) write a file and
//! its record themselves.
//!
//! **A log that is missing or unreadable** (its header record gone) gets a new UIDVALIDITY
//! from the Env clock and the folder is indexed afresh. Every UID a client cached is then
//! invalid, which is exactly what a new UIDVALIDITY tells it (RFC 3501 §2.3.1.1); reusing
//! the old value with new UIDs would silently show it the wrong messages.
//!
//! **Every change is a record, durable before the reply**: flag changes (`F`), expunges
//! (`X`), move intents (`P`, `C`). Each gets the next MODSEQ; HIGHESTMODSEQ and UIDNEXT
//! survive compaction in the header record.
//!
//! ## Crash safety, step by step
//!
//! EXPUNGE (`FolderState::expunge`): (1) append `X` records, fsync; (2) unlink the files;
//! (3) fsync the directory. A crash before (1) is durable: nothing happened and nothing was
//! reported. After (1), before (3): the log says expunged but a file may still be there;
//! recovery finds the file in the expunged set and unlinks it (it never reappears as new
//! mail, because replaying the log remembers every expunged file name). After (3): done.
//! Compaction drops `X` records, so it first makes every pending unlink durable.
//!
//! MOVE (`moving.rs`): (1) `P` (intent, with a fresh target file name) in the source log;
//! (2) rename the file into the target's `new/` (atomic); (3) fsync the target directory,
//! then the source's; (4) the target indexes the file (`A`, with the old flags and
//! INTERNALDATE), then the source records `X` and unlinks any leftover old name. Crash
//! before (1) is durable: nothing happened. After (1), file still only in the source:
//! recovery rolls back (`C`), the message keeps its UID. Rename durable in the target (the
//! old name may still be durable in the source too): recovery completes the move — it
//! indexes the target file unless an `A` for it is already there, then `X` in the source
//! and the old name is unlinked. The target is synced before the source, so the file is
//! never durably in neither place; and since the target name is fresh, each message ends
//! in exactly one place, indexed once.
//!
//! Recovery runs when an account is first opened: every folder's log is replayed, pending
//! moves are settled, recorded expunges finished, and only then is each folder rescanned.
//!
//! ## Concurrency
//!
//! One in-process owner per folder: a [`FolderIndex`] is an `Arc`'d mutex over the state,
//! handed out by the per-account registry in [`Mailboxes`], so two sessions never assign
//! the same UID. Every change is broadcast ([`Change`]) to subscribers, which is how an
//! IMAP session learns of EXISTS/EXPUNGE/FETCH from others.

mod appending;
mod flags;
mod folder;
mod moving;
mod name;
mod record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as SyncMutex};

use tokio::sync::{broadcast, Mutex};

pub use self::flags::{BadFlag, Flags};
use self::folder::FolderState;
pub use self::folder::{Entry, Status, COMPACT_SLACK, LOG_NAME};
pub use self::name::FolderName;
use super::Quotas;
use crate::env::Env;

/// What changed in a folder (for sessions that show it live: IMAP's untagged EXISTS,
/// EXPUNGE and FETCH).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// New messages got these UIDs.
    Added(Vec<u32>),
    /// These messages' flags changed.
    Flags(Vec<u32>),
    /// These messages are gone.
    Expunged(Vec<u32>),
}

/// Changes queued per subscriber before it lags (and must resynchronise from a snapshot).
const CHANGES: usize = 1024;

/// The registry of open folders: one owner per (account, folder) in this process.
#[derive(Clone)]
pub struct Mailboxes<E: Env> {
    inner: Arc<Inner<E>>,
}

struct Inner<E: Env> {
    env: E,
    quotas: Option<Arc<Quotas>>,
    accounts: Mutex<BTreeMap<String, Account<E>>>,
    /// Accounts with a POP3 session (RFC 2449 §8 `IN-USE`).
    pop: SyncMutex<BTreeSet<String>>,
    /// IMAP sessions per account (the per-account cap, item 4 of issue #11).
    sessions: SyncMutex<BTreeMap<String, usize>>,
}

/// An account's open folders (loaded and recovered together, see the module doc).
type Account<E> = Arc<Mutex<BTreeMap<FolderName, FolderIndex<E>>>>;

/// One folder, shared by every session that has it open.
#[derive(Clone)]
pub struct FolderIndex<E: Env> {
    env: E,
    account: String,
    quotas: Option<Arc<Quotas>>,
    state: Arc<Mutex<FolderState>>,
    changes: broadcast::Sender<Change>,
}

/// The account's directory, `mail/<account>` (the name checked by the MX store's rule).
fn account_dir(account: &str) -> io::Result<PathBuf> {
    let inbox = super::mailbox_dir(account)?;
    Ok(inbox.parent().unwrap_or(Path::new("")).to_path_buf())
}

impl<E: Env> Mailboxes<E> {
    /// A registry over the store in `env`. With `quotas`, expunges give the room back.
    pub fn new(env: E, quotas: Option<Arc<Quotas>>) -> Mailboxes<E> {
        Mailboxes {
            inner: Arc::new(Inner {
                env,
                quotas,
                accounts: Mutex::new(BTreeMap::new()),
                pop: SyncMutex::new(BTreeSet::new()),
                sessions: SyncMutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The account's folders, loaded and recovered on first use (see the module doc).
    async fn account(&self, account: &str) -> io::Result<Account<E>> {
        let mut accounts = self.inner.accounts.lock().await;
        if let Some(a) = accounts.get(account) {
            return Ok(a.clone());
        }
        let folders = self.recover(account).await?;
        let a = Arc::new(Mutex::new(folders));
        accounts.insert(account.to_string(), a.clone());
        Ok(a)
    }

    async fn recover(&self, account: &str) -> io::Result<BTreeMap<FolderName, FolderIndex<E>>> {
        let env = &self.inner.env;
        let dir = account_dir(account)?;
        let mut states = BTreeMap::new();
        for name in existing_folders(env, &dir).await? {
            let state = FolderState::load(env, &dir, name.clone()).await?;
            states.insert(name, state);
        }
        let sources: Vec<FolderName> = states
            .iter()
            .filter(|(_, s)| !s.pending.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for name in sources {
            let mut src = states.remove(&name).expect("listed above");
            let mut by_target: BTreeMap<FolderName, Vec<u32>> = BTreeMap::new();
            for (uid, p) in &src.pending {
                by_target.entry(p.target.clone()).or_default().push(*uid);
            }
            for (target, uids) in by_target {
                let dst = states.get_mut(&target);
                let done = moving::resolve(env, &mut src, dst, &uids).await?;
                env.trace(
                    "index",
                    format_args!(
                        "{account}/{name}: recovery: {} of {} moves to {target} finished",
                        done.len(),
                        uids.len()
                    ),
                );
            }
            states.insert(name, src);
        }
        let mut out = BTreeMap::new();
        for (name, mut state) in states {
            state.remove_expunged_files(env).await?;
            state.rescan(env).await?;
            out.insert(name, self.wrap(account, state));
        }
        Ok(out)
    }

    fn wrap(&self, account: &str, state: FolderState) -> FolderIndex<E> {
        FolderIndex {
            env: self.inner.env.clone(),
            account: account.to_string(),
            quotas: self.inner.quotas.clone(),
            state: Arc::new(Mutex::new(state)),
            changes: broadcast::channel(CHANGES).0,
        }
    }

    /// Opens a folder (rescanned, so new deliveries have UIDs). `NotFound` if it does not
    /// exist.
    pub async fn open(&self, account: &str, name: &FolderName) -> io::Result<FolderIndex<E>> {
        let folders = self.account(account).await?;
        let index = folders.lock().await.get(name).cloned();
        let index = index.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{account}: no folder {name}"),
            )
        })?;
        index.rescan().await?;
        Ok(index)
    }

    /// The account's folders, INBOX first, then by name.
    pub async fn folders(&self, account: &str) -> io::Result<Vec<FolderName>> {
        let folders = self.account(account).await?;
        let mut names: Vec<FolderName> = folders.lock().await.keys().cloned().collect();
        names.sort_by_key(|n| (!n.is_inbox(), n.clone()));
        Ok(names)
    }

    /// Creates a folder durably (`AlreadyExists` if it exists).
    pub async fn create(&self, account: &str, name: &FolderName) -> io::Result<()> {
        let folders = self.account(account).await?;
        let mut folders = folders.lock().await;
        if folders.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{account}: folder {name} exists"),
            ));
        }
        let dir = account_dir(account)?;
        let env = &self.inner.env;
        crate::env::create_dir_durable(env, &name.root(&dir).join("new")).await?;
        let state = FolderState::load(env, &dir, name.clone()).await?;
        folders.insert(name.clone(), self.wrap(account, state));
        Ok(())
    }

    /// Moves messages between two folders of an account (see `moving.rs`). Returns
    /// (source UID, target UID) per moved message.
    pub async fn move_messages(
        &self,
        account: &str,
        from: &FolderName,
        to: &FolderName,
        uids: &[u32],
    ) -> io::Result<Vec<(u32, u32)>> {
        if from == to {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "move into the same folder",
            ));
        }
        let src = self.open(account, from).await?;
        let dst = self.open(account, to).await?;
        // Locks in name order, so two opposite moves cannot deadlock.
        let (mut s, mut d) = if from < to {
            let s = src.state.lock().await;
            (s, dst.state.lock().await)
        } else {
            let d = dst.state.lock().await;
            (src.state.lock().await, d)
        };
        let moved = moving::move_messages(&self.inner.env, &mut s, &mut d, uids).await?;
        drop((s, d));
        if !moved.is_empty() {
            let _ = src
                .changes
                .send(Change::Expunged(moved.iter().map(|m| m.0).collect()));
            let _ = dst
                .changes
                .send(Change::Added(moved.iter().map(|m| m.1).collect()));
        }
        Ok(moved)
    }

    /// Claims the account for one POP3 session (RFC 2449 §8: `IN-USE` for a second);
    /// released when the guard drops.
    pub fn lock_pop(&self, account: &str) -> Option<PopLock<E>> {
        let mut pop = self.inner.pop.lock().unwrap_or_else(|e| e.into_inner());
        pop.insert(account.to_string()).then(|| PopLock {
            inner: self.inner.clone(),
            account: account.to_string(),
        })
    }
}

impl<E: Env> Mailboxes<E> {
    /// Counts one more session of `account`, unless it has `max` already (Dovecot's
    /// `mail_max_userip_connections`, per account here); released when the claim drops.
    pub fn claim_session(&self, account: &str, max: usize) -> Option<SessionClaim<E>> {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = sessions.entry(account.to_string()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SessionClaim {
            inner: self.inner.clone(),
            account: account.to_string(),
        })
    }

    /// A delivery landed in `folder` of `account`: if that folder is open in this process,
    /// index it now, so the sessions watching it hear of the new message (IDLE sees it
    /// without polling). A folder nobody has open is left alone; opening it rescans.
    pub async fn delivered(&self, account: &str, folder: &FolderName) -> io::Result<()> {
        let loaded = self.inner.accounts.lock().await.get(account).cloned();
        let Some(folders) = loaded else {
            return Ok(());
        };
        let index = folders.lock().await.get(folder).cloned();
        if let Some(index) = index {
            index.rescan().await?;
        }
        Ok(())
    }

    /// Appends a message to a folder with `flags`: (UIDVALIDITY, UID), durable first.
    pub async fn append(
        &self,
        account: &str,
        folder: &FolderName,
        bytes: &[u8],
        flags: Flags,
    ) -> io::Result<(u32, u32)> {
        let index = self.open(account, folder).await?;
        let reservation = match &self.inner.quotas {
            Some(q) => Some(
                q.reserve(&[(account.to_string(), bytes.len() as u64)])
                    .map_err(|e| io::Error::new(io::ErrorKind::QuotaExceeded, format!("{e:?}")))?,
            ),
            None => None,
        };
        let mut state = index.state.lock().await;
        let uid = state.append(&self.inner.env, bytes, flags).await?;
        let uidvalidity = state.uidvalidity;
        drop(state);
        if let Some(r) = reservation {
            r.commit();
        }
        let _ = index.changes.send(Change::Added(vec![uid]));
        Ok((uidvalidity, uid))
    }

    /// Copies messages (bytes and flags) into another folder: (target UIDVALIDITY,
    /// (source UID, target UID) pairs). Each copy is durable before it is counted.
    pub async fn copy_messages(
        &self,
        account: &str,
        from: &FolderName,
        to: &FolderName,
        uids: &[u32],
    ) -> io::Result<(u32, Vec<(u32, u32)>)> {
        let src = self.open(account, from).await?;
        let dst = self.open(account, to).await?;
        let entries = src.snapshot().await;
        let mut pairs = Vec::new();
        let mut uidvalidity = dst.status().await.uidvalidity;
        for uid in uids {
            let Some(e) = entries.iter().find(|e| e.uid == *uid) else {
                continue;
            };
            let bytes = match src.read(*uid).await {
                Ok(b) => b,
                // Expunged meanwhile: not copied (RFC 2180 §4.4.1 allows either).
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            let (uv, new) = self.append(account, to, &bytes, e.flags.clone()).await?;
            uidvalidity = uv;
            pairs.push((*uid, new));
        }
        Ok((uidvalidity, pairs))
    }
}

/// One IMAP session's share of its account's cap (see [`Mailboxes::claim_session`]).
pub struct SessionClaim<E: Env> {
    inner: Arc<Inner<E>>,
    account: String,
}

impl<E: Env> Drop for SessionClaim<E> {
    fn drop(&mut self) {
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = sessions.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                sessions.remove(&self.account);
            }
        }
    }
}

/// An account's POP3 claim (see [`Mailboxes::lock_pop`]).
pub struct PopLock<E: Env> {
    inner: Arc<Inner<E>>,
    account: String,
}

impl<E: Env> Drop for PopLock<E> {
    fn drop(&mut self) {
        let mut pop = self.inner.pop.lock().unwrap_or_else(|e| e.into_inner());
        pop.remove(&self.account);
    }
}

/// INBOX (if the account has one) and every Maildir++ folder directory of the account.
async fn existing_folders<E: Env>(env: &E, dir: &Path) -> io::Result<Vec<FolderName>> {
    let entries = match env.list_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = if entry == "new" {
            FolderName::inbox()
        } else {
            match FolderName::from_dir_name(&entry) {
                Some(n) => n,
                None => continue,
            }
        };
        // A folder is a directory with a `new/` (a stray file named like one is not).
        if env.list_dir(&name.root(dir).join("new")).await.is_ok() {
            out.push(name);
        }
    }
    Ok(out)
}

impl<E: Env> FolderIndex<E> {
    pub fn account(&self) -> &str {
        &self.account
    }

    pub async fn name(&self) -> FolderName {
        self.state.lock().await.name.clone()
    }

    pub async fn status(&self) -> Status {
        self.state.lock().await.status()
    }

    /// Every message, in UID order.
    pub async fn snapshot(&self) -> Vec<Entry> {
        self.state.lock().await.entries().cloned().collect()
    }

    /// Indexes new deliveries (and notices vanished files); returns the new UIDs.
    pub async fn rescan(&self) -> io::Result<Vec<u32>> {
        let mut state = self.state.lock().await;
        let before: BTreeSet<u32> = state.messages.keys().copied().collect();
        let added = state.rescan(&self.env).await?;
        let vanished: Vec<u32> = before
            .iter()
            .copied()
            .filter(|u| !state.messages.contains_key(u))
            .collect();
        drop(state);
        if !vanished.is_empty() {
            let _ = self.changes.send(Change::Expunged(vanished));
        }
        if !added.is_empty() {
            let _ = self.changes.send(Change::Added(added.clone()));
        }
        Ok(added)
    }

    /// Sets each message's flags to `f(old flags)`; durable before it returns. Returns the
    /// changed messages.
    pub async fn set_flags(
        &self,
        uids: &[u32],
        f: impl Fn(&Flags) -> Flags,
    ) -> io::Result<Vec<Entry>> {
        let changed = self
            .state
            .lock()
            .await
            .set_flags(&self.env, uids, f)
            .await?;
        if !changed.is_empty() {
            let _ = self
                .changes
                .send(Change::Flags(changed.iter().map(|e| e.uid).collect()));
        }
        Ok(changed)
    }

    /// [`FolderIndex::set_flags`], except that a message whose MODSEQ is past
    /// `unchanged_since` is left alone (RFC 7162 §3.1.3 UNCHANGEDSINCE), decided under the
    /// same lock as the change. Returns (changed entries, UIDs left alone).
    pub async fn set_flags_unchanged_since(
        &self,
        uids: &[u32],
        unchanged_since: u64,
        f: impl Fn(&Flags) -> Flags,
    ) -> io::Result<(Vec<Entry>, Vec<u32>)> {
        let mut state = self.state.lock().await;
        let (modified, ok): (Vec<u32>, Vec<u32>) = uids
            .iter()
            .filter(|u| state.messages.contains_key(u))
            .partition(|u| state.messages[u].modseq > unchanged_since);
        let changed = state.set_flags(&self.env, &ok, f).await?;
        drop(state);
        if !changed.is_empty() {
            let _ = self
                .changes
                .send(Change::Flags(changed.iter().map(|e| e.uid).collect()));
        }
        Ok((changed, modified))
    }

    /// Expunges messages; durable before it returns. Returns what was expunged.
    pub async fn expunge(&self, uids: &[u32]) -> io::Result<Vec<Entry>> {
        let gone = self.state.lock().await.expunge(&self.env, uids).await?;
        if !gone.is_empty() {
            if let Some(q) = &self.quotas {
                let bytes = gone.iter().map(|e| e.size).sum();
                q.release(&self.account, bytes, gone.len() as u64);
            }
            let _ = self
                .changes
                .send(Change::Expunged(gone.iter().map(|e| e.uid).collect()));
        }
        Ok(gone)
    }

    /// Compacts the log now (it also happens by itself as the log grows).
    pub async fn compact(&self) -> io::Result<()> {
        self.state.lock().await.compact(&self.env).await
    }

    /// One message's bytes. `NotFound` if the UID is not (or no longer) here.
    pub async fn read(&self, uid: u32) -> io::Result<Vec<u8>> {
        let path = {
            let state = self.state.lock().await;
            let e = state.messages.get(&uid).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no message {uid}"))
            })?;
            state.new_dir.join(&e.file)
        };
        self.env.read(&path).await
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}
