//! One folder's index in memory and its log on disk: replay, rescan, flag changes,
//! expunge, compaction. Every change is appended to the log and fsynced before the
//! in-memory state (what sessions report) changes. The owner ([`super::FolderIndex`])
//! serialises calls, so this type needs no locking of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use super::flags::Flags;
use super::name::FolderName;
use super::record::{is_file_id, Record};
use crate::durable::{self, log};
use crate::env::Env;

/// The log's file name inside the folder's directory (beside `new/`, like Dovecot's
/// `dovecot-uidlist`).
pub const LOG_NAME: &str = "mailsim-index.log";

/// Compact when the log holds more than this many records beyond two per live message.
pub const COMPACT_SLACK: usize = 256;

/// What IMAP and POP3 know of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    /// The file's name in the folder's `new/`.
    pub file: String,
    /// Octets, as stored (CRLF line ends).
    pub size: u64,
    /// When it was first indexed (RFC 3501 INTERNALDATE), Env clock seconds.
    pub internal_date: u64,
    pub flags: Flags,
    /// The MODSEQ of its last change (RFC 7162).
    pub modseq: u64,
}

/// A move recorded in this (the source) folder and not yet finished or rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub new_file: String,
    pub target: FolderName,
}

/// The status figures of a folder (RFC 3501 STATUS / SELECT, RFC 7162 HIGHESTMODSEQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    pub messages: usize,
}

pub struct FolderState {
    pub(super) name: FolderName,
    pub(super) new_dir: PathBuf,
    log: PathBuf,
    pub(super) uidvalidity: u32,
    pub(super) uidnext: u32,
    pub(super) highest_modseq: u64,
    pub(super) messages: BTreeMap<u32, Entry>,
    pub(super) by_file: BTreeMap<String, u32>,
    /// Files whose expunge is recorded but whose unlink may not be durable yet.
    pub(super) expunged_files: BTreeSet<String>,
    pub(super) pending: BTreeMap<u32, Pending>,
    records: usize,
}

impl FolderState {
    /// Reads the folder's log and replays it (no rescan, no recovery: the account's
    /// recovery does those once every folder is loaded). A missing or unreadable log
    /// starts a new one with a new UIDVALIDITY (see the module doc of `index`).
    pub async fn load<E: Env>(env: &E, account_dir: &Path, name: FolderName) -> io::Result<Self> {
        let root = name.root(account_dir);
        let mut state = FolderState {
            new_dir: root.join("new"),
            log: root.join(LOG_NAME),
            name,
            uidvalidity: 0,
            uidnext: 1,
            highest_modseq: 0,
            messages: BTreeMap::new(),
            by_file: BTreeMap::new(),
            expunged_files: BTreeSet::new(),
            pending: BTreeMap::new(),
            records: 0,
        };
        let bytes = match env.read(&state.log).await {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut records = bytes
            .as_deref()
            .map(|b| {
                log::payloads(b)
                    .filter_map(Record::parse)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !matches!(records.first(), Some(Record::Header { .. })) {
            // No log, or its header is gone: what it said about UIDs cannot be trusted, so
            // the folder starts over under a UIDVALIDITY no earlier session saw.
            let uidvalidity = new_uidvalidity(env);
            let why = if bytes.is_some() {
                "unreadable"
            } else {
                "missing"
            };
            env.trace(
                "index",
                format_args!("{}: log {why}: new uidvalidity {uidvalidity}", state.name),
            );
            state.uidvalidity = uidvalidity;
            state.rewrite(env).await?;
            return Ok(state);
        }
        state.records = records.len();
        for r in records.drain(..) {
            state.apply(r);
        }
        Ok(state)
    }

    /// Folds one record into the state (later records win).
    fn apply(&mut self, r: Record) {
        match r {
            Record::Header {
                uidvalidity,
                uidnext,
                highest_modseq,
            } => {
                self.uidvalidity = uidvalidity;
                self.uidnext = self.uidnext.max(uidnext);
                self.highest_modseq = self.highest_modseq.max(highest_modseq);
            }
            Record::Added {
                uid,
                modseq,
                internal_date,
                size,
                file,
                flags,
            } => {
                self.bump(uid, modseq);
                self.expunged_files.remove(&file);
                if let Some(old) = self.messages.remove(&uid) {
                    self.by_file.remove(&old.file);
                }
                self.by_file.insert(file.clone(), uid);
                self.messages.insert(
                    uid,
                    Entry {
                        uid,
                        file,
                        size,
                        internal_date,
                        flags,
                        modseq,
                    },
                );
            }
            Record::Flags { uid, modseq, flags } => {
                self.bump(uid, modseq);
                if let Some(e) = self.messages.get_mut(&uid) {
                    e.flags = flags;
                    e.modseq = modseq;
                }
            }
            Record::Expunged { uid, modseq } => {
                self.bump(uid, modseq);
                self.pending.remove(&uid);
                if let Some(e) = self.messages.remove(&uid) {
                    self.by_file.remove(&e.file);
                    self.expunged_files.insert(e.file);
                }
            }
            Record::Moving {
                uid,
                new_file,
                target,
            } => {
                if self.messages.contains_key(&uid) {
                    self.pending.insert(uid, Pending { new_file, target });
                }
            }
            Record::Cancelled { uid } => {
                self.pending.remove(&uid);
            }
        }
    }

    fn bump(&mut self, uid: u32, modseq: u64) {
        self.uidnext = self.uidnext.max(uid.saturating_add(1));
        self.highest_modseq = self.highest_modseq.max(modseq);
    }

    pub fn status(&self) -> Status {
        Status {
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            highest_modseq: self.highest_modseq,
            messages: self.messages.len(),
        }
    }

    /// The next MODSEQ (each change gets its own, RFC 7162 §3.1.1).
    pub(super) fn next_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    pub(super) fn next_uid(&mut self) -> io::Result<u32> {
        let uid = self.uidnext;
        if uid == u32::MAX {
            return Err(io::Error::other(format!("{}: UIDs exhausted", self.name)));
        }
        self.uidnext += 1;
        Ok(uid)
    }

    /// Appends `records` to the log and fsyncs it; only then folds them into the state. The
    /// UIDs and MODSEQs they use stay consumed even if this fails (a record may have
    /// reached the disk without its fsync returning; it must never be reused).
    pub(super) async fn commit<E: Env>(&mut self, env: &E, records: Vec<Record>) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for r in &records {
            log::encode_into(&mut bytes, r.encode().as_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        env.append(&self.log, &bytes).await?;
        env.sync_file(&self.log).await?;
        self.records += records.len();
        for r in records {
            self.apply(r);
        }
        Ok(())
    }

    /// Gives every file in `new/` the index has not seen the next UID (oldest name first:
    /// delivery ids start with the delivery time) and records files that vanished from
    /// under it as expunged. Returns the new entries' UIDs.
    pub async fn rescan<E: Env>(&mut self, env: &E) -> io::Result<Vec<u32>> {
        let names = env.list_dir(&self.new_dir).await?;
        let present: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let moving: BTreeSet<u32> = self.pending.keys().copied().collect();
        let mut records = Vec::new();
        let vanished: Vec<u32> = self
            .messages
            .values()
            .filter(|e| !present.contains(e.file.as_str()) && !moving.contains(&e.uid))
            .map(|e| e.uid)
            .collect();
        for uid in vanished {
            let modseq = self.next_modseq();
            records.push(Record::Expunged { uid, modseq });
        }
        let mut added = Vec::new();
        let now = env.now().as_secs();
        for name in &names {
            let known = self.by_file.contains_key(name)
                || self.expunged_files.contains(name)
                || self.pending.values().any(|p| &p.new_file == name);
            if known || !is_file_id(name) {
                continue;
            }
            let size = match env.read(&self.new_dir.join(name)).await {
                Ok(b) => b.len() as u64,
                // Gone between the listing and the read (another writer's expunge).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let uid = self.next_uid()?;
            let modseq = self.next_modseq();
            added.push(uid);
            records.push(Record::Added {
                uid,
                modseq,
                internal_date: now,
                size,
                file: name.clone(),
                flags: Flags::new(),
            });
        }
        self.commit(env, records).await?;
        self.maybe_compact(env).await?;
        Ok(added)
    }

    /// Sets the flags of `uids` (those still here) to `f(old)`. Returns the changed entries.
    pub async fn set_flags<E: Env>(
        &mut self,
        env: &E,
        uids: &[u32],
        f: impl Fn(&Flags) -> Flags,
    ) -> io::Result<Vec<Entry>> {
        let mut records = Vec::new();
        let mut changed = Vec::new();
        for uid in uids {
            let Some(e) = self.messages.get(uid) else {
                continue;
            };
            let flags = f(&e.flags);
            if flags == e.flags {
                continue;
            }
            let modseq = self.next_modseq();
            changed.push(*uid);
            records.push(Record::Flags {
                uid: *uid,
                modseq,
                flags,
            });
        }
        self.commit(env, records).await?;
        self.maybe_compact(env).await?;
        Ok(changed
            .iter()
            .filter_map(|u| self.messages.get(u).cloned())
            .collect())
    }

    /// Expunges `uids` (those still here): the records are durable first, then the files
    /// are unlinked and the unlinks made durable. Returns the expunged entries.
    pub async fn expunge<E: Env>(&mut self, env: &E, uids: &[u32]) -> io::Result<Vec<Entry>> {
        let gone: Vec<Entry> = uids
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|u| self.messages.get(u).cloned())
            .collect();
        let mut records = Vec::new();
        for e in &gone {
            let modseq = self.next_modseq();
            records.push(Record::Expunged { uid: e.uid, modseq });
        }
        self.commit(env, records).await?;
        self.remove_expunged_files(env).await?;
        self.maybe_compact(env).await?;
        Ok(gone)
    }

    /// Unlinks every file whose expunge is recorded (the second half of EXPUNGE, and its
    /// recovery after a crash between the two halves) and makes the unlinks durable.
    pub(super) async fn remove_expunged_files<E: Env>(&mut self, env: &E) -> io::Result<()> {
        if self.expunged_files.is_empty() {
            return Ok(());
        }
        for file in &self.expunged_files {
            match env.remove_file(&self.new_dir.join(file)).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        env.sync_dir(&self.new_dir).await?;
        self.expunged_files.clear();
        Ok(())
    }

    async fn maybe_compact<E: Env>(&mut self, env: &E) -> io::Result<()> {
        if self.records > 2 * self.messages.len() + COMPACT_SLACK && self.pending.is_empty() {
            self.compact(env).await?;
        }
        Ok(())
    }

    /// Rewrites the log as a header plus one record per live message. Expunge records are
    /// dropped, so their unlinks must be durable first: otherwise a crash could bring back
    /// a file the new log no longer knows was expunged, and it would reappear as new mail.
    pub async fn compact<E: Env>(&mut self, env: &E) -> io::Result<()> {
        self.remove_expunged_files(env).await?;
        let before = self.records;
        self.rewrite(env).await?;
        env.trace(
            "index",
            format_args!(
                "{}: compacted {before} records to {}",
                self.name, self.records
            ),
        );
        Ok(())
    }

    /// Writes the whole state as a new log: temp file, fsync, rename over the old one,
    /// directory fsync (the committer's discipline for a new file).
    async fn rewrite<E: Env>(&mut self, env: &E) -> io::Result<()> {
        let mut records = vec![Record::Header {
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            highest_modseq: self.highest_modseq,
        }];
        records.extend(self.messages.values().map(|e| Record::Added {
            uid: e.uid,
            modseq: e.modseq,
            internal_date: e.internal_date,
            size: e.size,
            file: e.file.clone(),
            flags: e.flags.clone(),
        }));
        records.extend(self.pending.iter().map(|(uid, p)| Record::Moving {
            uid: *uid,
            new_file: p.new_file.clone(),
            target: p.target.clone(),
        }));
        let mut bytes = Vec::new();
        for r in &records {
            log::encode_into(&mut bytes, r.encode().as_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        let tmp = durable::committer::temp_path(&self.log)
            .ok_or_else(|| io::Error::other("index log has no file name"))?;
        let dir = self.log.parent().unwrap_or(Path::new("")).to_path_buf();
        env.write(&tmp, &bytes).await?;
        env.sync_file(&tmp).await?;
        env.rename(&tmp, &self.log).await?;
        env.sync_dir(&dir).await?;
        self.records = records.len();
        Ok(())
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.messages.values()
    }
}

/// A UIDVALIDITY for a folder starting over: the Env clock's seconds, as Dovecot does (it
/// grows with time, so it differs from whatever the lost log had unless the clock went
/// back). Never 0 (RFC 3501 §9: nz-number).
fn new_uidvalidity<E: Env>(env: &E) -> u32 {
    u32::try_from(env.now().as_secs())
        .unwrap_or(u32::MAX)
        .max(1)
}
