//! The group committer: one task per store that makes every change durable in batches.
//!
//! A store (the mailbox store, the queue store, later IMAP state, greylisting, lockouts)
//! hands its jobs to a [`Committer`]. The committer task takes every job queued so far (up
//! to [`MAX_BATCH`]), asks the store to [plan](Store::plan) them as file [`Changes`] — new
//! files, appends to existing files, removals — commits the whole batch with the discipline
//! below, and asks the store to [settle](Store::settle) each job with its outcome. The
//! store answers its caller (the SMTP session says 250, the delivery loop moves on) only
//! then: an acknowledgement always means durable.
//!
//! **Group commit.** While the committer is committing one batch, new jobs queue up; the next
//! batch takes them all. Under load N jobs cost two disk flushes instead of 2N, which is how
//! the server beats a one-fsync-per-message MTA on a disk that flushes ~2 000 times a second
//! at best. [`CommitMode::Single`] commits one job at a time for comparison (the
//! `--no-group-commit` flag).
//!
//! **The commit of one batch**, in order:
//! 1. write every new file under a temp name, all in one [`Env::write_many`];
//! 2. append every record (appends to one file from several jobs are joined, in order, into
//!    one append);
//! 3. **one** [`Env::sync_many`] for every written and appended file (one `syncfs` in the
//!    real world) — before any name points at the new data, so a crash can never show a file
//!    whose content is not on disk. A job that only appends is durable now and is answered;
//! 4. rename every temp file into place and unlink every removed file;
//! 5. **one** [`Env::sync_many`] for every directory touched in step 4;
//! 6. answer every other job.
//!
//! **Why temp and final name share a directory.** A file's *name* is durable only once its
//! directory is synced. With the temp file next to its final name, the one directory sync of
//! step 5 makes both the creation and the rename durable, and a reader listing the directory
//! never sees a half-written file (names starting with [`TMP_PREFIX`] are not files of the
//! store; recovery deletes them).
//!
//! **Failures.** A job whose own write, append, rename or unlink fails is answered with that
//! error, and what it made visible is taken back (temp files and renamed files unlinked),
//! barring a crash. A failed *flush* fails every job still waiting on it — the whole batch
//! for step 3, every job with a rename or unlink for step 5 — even though some of their
//! files may survive: at-least-once (the client retries, a message may arrive twice), never
//! an acknowledged loss. An appended record cannot be taken back; a reader of the
//! [log](super::log) either finds it whole (and it was merely unacknowledged) or skips it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use futures::future::join_all;
use tokio::sync::mpsc;

use crate::env::Env;

#[cfg(test)]
mod tests;

/// Prefix of a file being created; never a file of the store. Recovery removes them.
pub const TMP_PREFIX: &str = ".tmp-";
/// Most jobs in one group commit (bounds the latency of the first one in a batch).
pub const MAX_BATCH: usize = 256;

/// How jobs are made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CommitMode {
    /// Batch concurrent jobs into one round of flushes (default).
    #[default]
    Group,
    /// One job at a time, each with its own flushes (for comparison in benchmarks).
    Single,
}

impl CommitMode {
    fn max_batch(self) -> usize {
        match self {
            CommitMode::Group => MAX_BATCH,
            CommitMode::Single => 1,
        }
    }
}

/// Whether a directory entry is an unfinished creation (see [`TMP_PREFIX`]).
pub fn is_temp(name: &str) -> bool {
    name.starts_with(TMP_PREFIX)
}

/// Where a new file at `path` is written before it is renamed into place: the same
/// directory, the name prefixed with [`TMP_PREFIX`]. `None` for a path with no file name.
pub fn temp_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    Some(path.with_file_name(format!("{TMP_PREFIX}{name}")))
}

/// The file changes one job needs, all durable together or the job fails.
#[derive(Debug, Default)]
pub struct Changes {
    creates: Vec<Create>,
    appends: Vec<(PathBuf, Vec<u8>)>,
    removes: Vec<PathBuf>,
    /// A planted bug (`crate::planted`): this job's directories are not flushed.
    #[cfg(feature = "planted-bugs")]
    skip_dir_sync: bool,
}

#[derive(Debug)]
struct Create {
    tmp: PathBuf,
    path: PathBuf,
    data: Vec<u8>,
    /// A file whose whole content follows `data` (a spooled message body, see
    /// [`Changes::create_spliced`]).
    then: Option<PathBuf>,
}

impl Changes {
    pub fn new() -> Changes {
        Changes::default()
    }

    /// Planted bug (`crate::planted`): leave this job's directories unflushed.
    #[cfg(feature = "planted-bugs")]
    pub fn plant_skip_dir_sync(&mut self) {
        self.skip_dir_sync = true;
    }

    fn skips_dir_sync(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        return self.skip_dir_sync;
        #[cfg(not(feature = "planted-bugs"))]
        false
    }

    /// A new file at `path` with `data` (written to [`temp_path`], renamed into place).
    /// `InvalidInput` for a path with no file name.
    pub fn create(&mut self, path: PathBuf, data: Vec<u8>) -> io::Result<&mut Changes> {
        self.push_create(path, data, None)
    }

    /// A new file at `path` with `data` followed by the whole content of the file `then`
    /// (a spooled message body: copied by [`Env::write_spliced`], never read into memory
    /// here). The source must stay unchanged until the commit has answered.
    pub fn create_spliced(
        &mut self,
        path: PathBuf,
        data: Vec<u8>,
        then: PathBuf,
    ) -> io::Result<&mut Changes> {
        self.push_create(path, data, Some(then))
    }

    fn push_create(
        &mut self,
        path: PathBuf,
        data: Vec<u8>,
        then: Option<PathBuf>,
    ) -> io::Result<&mut Changes> {
        let tmp = temp_path(&path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no file name in {}", path.display()),
            )
        })?;
        self.creates.push(Create {
            tmp,
            path,
            data,
            then,
        });
        Ok(self)
    }

    /// Bytes appended to the file at `path`, which the store knows exists (an append to a
    /// missing file would create it, and its name would not be durable).
    pub fn append(&mut self, path: PathBuf, data: Vec<u8>) -> &mut Changes {
        self.appends.push((path, data));
        self
    }

    /// Unlinks `path`. Idempotent: a file already gone counts as removed (a retried
    /// removal, or one whose directory flush failed before).
    pub fn remove(&mut self, path: PathBuf) -> &mut Changes {
        self.removes.push(path);
        self
    }

    /// Only appends (or nothing): durable without a directory flush.
    fn appends_only(&self) -> bool {
        self.creates.is_empty() && self.removes.is_empty()
    }
}

/// What a store tells the committer. The committer task owns the store value, so whatever
/// it keeps across batches (the queue's set of live messages) needs no lock.
pub trait Store<E: Env>: Send + 'static {
    /// A request from the store's handle (with its own way to answer, e.g. a oneshot).
    type Job: Send + 'static;
    /// What the store keeps of a planned job until it is settled.
    type Ticket: Send;

    /// Turns one batch of jobs, in arrival order, into the changes each needs. A job the
    /// store refuses outright it answers here and leaves out. Jobs are settled in the order
    /// returned (those that only append first, once step 3 of the commit is done).
    fn plan(&mut self, env: &E, batch: Vec<Self::Job>) -> Vec<(Self::Ticket, Changes)>;

    /// The outcome of one planned job: `Ok` means every change of it is durable. `batch` is
    /// the number of jobs the batch held (for the trace).
    fn settle(&mut self, env: &E, ticket: Self::Ticket, outcome: io::Result<()>, batch: usize);
}

/// The committer stopped (its task ended): nothing more can be made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("committer stopped")]
pub struct Stopped;

/// A handle to a running committer; cheap to clone.
pub struct Committer<J> {
    jobs: mpsc::UnboundedSender<J>,
}

impl<J> Clone for Committer<J> {
    fn clone(&self) -> Self {
        Committer {
            jobs: self.jobs.clone(),
        }
    }
}

impl<J: Send + 'static> Committer<J> {
    /// Starts the committer task for `store` on `env`.
    pub fn spawn<E: Env, S: Store<E, Job = J>>(env: &E, mode: CommitMode, store: S) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        env.spawn(run(env.clone(), rx, mode, store));
        Committer { jobs }
    }

    /// Queues a job for the next batch.
    pub fn submit(&self, job: J) -> Result<(), Stopped> {
        self.jobs.send(job).map_err(|_| Stopped)
    }
}

/// The batching loop: takes every queued job (up to the mode's batch size), commits them as
/// one batch, settles each.
async fn run<E: Env, S: Store<E>>(
    env: E,
    mut rx: mpsc::UnboundedReceiver<S::Job>,
    mode: CommitMode,
    mut store: S,
) {
    let max = mode.max_batch();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let planned = store.plan(&env, batch);
        commit(&env, planned, |ticket, outcome| {
            store.settle(&env, ticket, outcome, n)
        })
        .await;
    }
}

/// One job in the commit.
struct Entry<T> {
    ticket: Option<T>,
    changes: Changes,
    error: Option<io::Error>,
    /// Temp files written and not yet renamed or removed.
    temps: BTreeSet<PathBuf>,
    /// Final names renamed into place by this commit.
    created: Vec<PathBuf>,
}

impl<T> Entry<T> {
    fn fail(&mut self, e: io::Error) {
        self.error.get_or_insert(e);
    }
}

/// `io::Error` is not `Clone`; one failed flush answers several jobs.
fn copy_err(e: &io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Commits one batch with the discipline in the module docs and calls `answer` once per
/// entry, with `Ok` only if all of its changes are durable.
pub async fn commit<E: Env, T>(
    env: &E,
    batch: Vec<(T, Changes)>,
    mut answer: impl FnMut(T, io::Result<()>),
) {
    let mut entries: Vec<Entry<T>> = batch
        .into_iter()
        .map(|(ticket, changes)| Entry {
            ticket: Some(ticket),
            changes,
            error: None,
            temps: BTreeSet::new(),
            created: Vec::new(),
        })
        .collect();

    // Step 1: every new file, under its temp name, in one go (no flush yet); files with a
    // spliced-in body beside them, each its own copy.
    let results = {
        let creates: Vec<&Create> = entries
            .iter()
            .flat_map(|e| e.changes.creates.iter())
            .collect();
        let files: Vec<(PathBuf, &[u8])> = creates
            .iter()
            .filter(|c| c.then.is_none())
            .map(|c| (c.tmp.clone(), c.data.as_slice()))
            .collect();
        let (plain, spliced) = tokio::join!(
            env.write_many(&files),
            join_all(
                creates
                    .iter()
                    .filter_map(|c| c.then.as_ref().map(|src| (c, src)))
                    .map(|(c, src)| env.write_spliced(&c.tmp, &c.data, src))
            )
        );
        // Back into plan order.
        let (mut plain, mut spliced) = (plain.into_iter(), spliced.into_iter());
        creates
            .iter()
            .map(|c| match c.then {
                None => plain.next(),
                Some(_) => spliced.next(),
            })
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("write not attempted"))))
            .collect::<Vec<_>>()
    };
    let mut results = results.into_iter();
    for e in &mut entries {
        for c in &e.changes.creates {
            // A failed write may still have created the file: it is undone either way.
            e.temps.insert(c.tmp.clone());
            match results.next() {
                Some(Ok(())) => {}
                Some(Err(err)) => e.error = e.error.take().or(Some(err)),
                None => {
                    e.error = e
                        .error
                        .take()
                        .or_else(|| Some(io::Error::other("write not attempted")))
                }
            }
        }
    }

    // Step 2: every record, joined per file in arrival order (one append per file).
    let mut appends: BTreeMap<&Path, (Vec<u8>, Vec<usize>)> = BTreeMap::new();
    for (i, e) in entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.error.is_none())
    {
        for (path, data) in &e.changes.appends {
            let slot = appends.entry(path.as_path()).or_default();
            slot.0.extend_from_slice(data);
            if slot.1.last() != Some(&i) {
                slot.1.push(i);
            }
        }
    }
    let appended = join_all(
        appends
            .iter()
            .map(|(path, (data, _))| env.append(path, data)),
    )
    .await;
    let mut appended_paths = Vec::new();
    let mut append_errors = Vec::new();
    for ((path, (_, owners)), r) in appends.iter().zip(appended) {
        match r {
            Ok(()) => appended_paths.push(path.to_path_buf()),
            Err(e) => append_errors.push((owners.clone(), e)),
        }
    }
    drop(appends);
    for (owners, e) in append_errors {
        for i in owners {
            entries[i].fail(copy_err(&e, "append"));
        }
    }
    undo_failed(env, &mut entries).await;

    // Step 3: one flush for all that data.
    let mut files: Vec<PathBuf> = entries
        .iter()
        .filter(|e| e.error.is_none())
        .flat_map(|e| e.temps.iter().cloned())
        .collect();
    files.extend(appended_paths);
    if !files.is_empty() {
        if let Err(err) = env.sync_many(&files, &[]).await {
            for e in entries.iter_mut().filter(|e| e.error.is_none()) {
                e.fail(copy_err(&err, "data flush failed"));
            }
            undo_failed(env, &mut entries).await;
        }
    }
    // A job that only appends is durable now.
    for e in entries.iter_mut() {
        if e.error.is_none() && e.changes.appends_only() {
            if let Some(t) = e.ticket.take() {
                answer(t, Ok(()));
            }
        }
    }

    // Step 4: rename into place, unlink removals.
    let pending = |e: &Entry<T>| e.error.is_none() && e.ticket.is_some();
    let renames: Vec<(usize, &Create)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| pending(e))
        .flat_map(|(i, e)| e.changes.creates.iter().map(move |c| (i, c)))
        .collect();
    let removes: Vec<(usize, &PathBuf)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| pending(e))
        .flat_map(|(i, e)| e.changes.removes.iter().map(move |p| (i, p)))
        .collect();
    let (renamed, unlinked) = tokio::join!(
        join_all(renames.iter().map(|(_, c)| env.rename(&c.tmp, &c.path))),
        join_all(removes.iter().map(|(_, p)| async move {
            match env.remove_file(p).await {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        })),
    );
    let renames: Vec<(usize, PathBuf, PathBuf)> = renames
        .into_iter()
        .map(|(i, c)| (i, c.tmp.clone(), c.path.clone()))
        .collect();
    let removes: Vec<(usize, PathBuf)> = removes.into_iter().map(|(i, p)| (i, p.clone())).collect();
    let mut dirs = BTreeSet::new();
    for ((i, tmp, path), r) in renames.into_iter().zip(renamed) {
        match r {
            Ok(()) => {
                entries[i].temps.remove(&tmp);
                if !entries[i].changes.skips_dir_sync() {
                    dirs.extend(path.parent().map(Path::to_path_buf));
                }
                entries[i].created.push(path);
            }
            Err(e) => entries[i].fail(e),
        }
    }
    for ((i, path), r) in removes.into_iter().zip(unlinked) {
        match r {
            Ok(()) => dirs.extend(path.parent().map(Path::to_path_buf)),
            Err(e) => entries[i].fail(e),
        }
    }
    undo_failed(env, &mut entries).await;

    // Step 5: one flush for every directory touched.
    if !dirs.is_empty() {
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        if let Err(err) = env.sync_many(&[], &dirs).await {
            for e in entries.iter_mut().filter(|e| pending(e)) {
                e.fail(copy_err(&err, "directory flush failed"));
            }
            undo_failed(env, &mut entries).await;
        }
    }

    // Step 6: answer the rest, in plan order.
    for e in entries {
        if let Some(t) = e.ticket {
            answer(t, e.error.map_or(Ok(()), Err));
        }
    }
}

/// Takes back what failed jobs made visible (best effort: a crash may still leave it, and
/// recovery or the caller's retry copes): their temp files and the files they renamed into
/// place. Removals and appends cannot be taken back.
async fn undo_failed<E: Env, T>(env: &E, entries: &mut [Entry<T>]) {
    for e in entries.iter_mut().filter(|e| e.error.is_some()) {
        for path in std::mem::take(&mut e.temps)
            .into_iter()
            .chain(std::mem::take(&mut e.created))
        {
            let _ = env.remove_file(&path).await;
        }
    }
}
