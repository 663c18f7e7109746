//! The mailbox store: one Maildir-like folder per account on the Env filesystem.
//!
//! Layout: `mail/<account>/new/<id>` holds one delivered message per file. A delivery writes
//! `new/.tmp-<id>`, fsyncs it, renames it to `new/<id>` and fsyncs the directory. Temp and
//! final name share a directory on purpose: then one directory sync makes both the creation
//! and the rename durable, and a reader never sees a half message (dot-files are not
//! messages; recovery deletes leftover temp files).
//!
//! **Group commit.** Deliveries from all sessions go through one committer task. While it is
//! committing a batch, new deliveries queue up; the next batch takes them all, writes every
//! file, issues the fsyncs together and syncs each directory once. Under load that turns N
//! directory syncs into one, which is how the server beats a one-fsync-per-message MTA.
//! A delivery is acknowledged (and the session says 250) only after its batch is durable.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use futures::future::join_all;
use tokio::sync::{mpsc, oneshot};

use crate::env::Env;
use crate::smtp::session::{DeliveryError, Transaction};

/// The folder that holds every mailbox.
const MAIL_ROOT: &str = "mail";
/// Prefix of in-progress files; never a message.
const TMP_PREFIX: &str = ".tmp-";
/// Most deliveries in one group commit (bounds the latency of the first one in a batch).
const MAX_BATCH: usize = 256;

/// How deliveries are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// Batch concurrent deliveries into one round of fsyncs (default).
    Group,
    /// One delivery at a time, each with its own fsyncs (for comparison in benchmarks).
    Single,
}

/// A handle to the store; cheap to clone, shared by every session.
#[derive(Clone)]
pub struct MailStore<E: Env> {
    env: E,
    jobs: mpsc::UnboundedSender<Job>,
}

struct Job {
    /// One file per target mailbox: (mailbox key, bytes).
    files: Vec<(String, Vec<u8>)>,
    id: String,
    done: oneshot::Sender<Result<String, DeliveryError>>,
}

/// Rejects mailbox names that could escape the store (defence in depth: names come from the
/// validated directory, never raw from a client).
pub fn mailbox_dir(key: &str) -> io::Result<PathBuf> {
    let ok = !key.is_empty()
        && !key.starts_with('.')
        && !key.contains(['/', '\\', '\0'])
        && !key.chars().any(char::is_control);
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unsafe mailbox name {key:?}"),
        ));
    }
    Ok(Path::new(MAIL_ROOT).join(key).join("new"))
}

impl<E: Env> MailStore<E> {
    /// Opens the store: creates the mailboxes durably, removes temp files a crash left
    /// behind, and starts the committer task.
    pub async fn open<'a>(
        env: E,
        mailboxes: impl IntoIterator<Item = &'a str>,
        mode: CommitMode,
    ) -> io::Result<MailStore<E>> {
        ensure_dir(&env, Path::new(MAIL_ROOT)).await?;
        for key in mailboxes {
            let dir = mailbox_dir(key)?;
            ensure_dir(&env, &dir).await?;
            let mut removed = false;
            for name in env.list_dir(&dir).await? {
                if name.starts_with(TMP_PREFIX) {
                    env.remove_file(&dir.join(&name)).await?;
                    env.trace("store", format_args!("recovery: removed {key}/{name}"));
                    removed = true;
                }
            }
            if removed {
                env.sync_dir(&dir).await?;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        env.spawn(committer(env.clone(), rx, mode));
        Ok(MailStore { env, jobs: tx })
    }

    /// Stores `tx` in every mailbox it names; returns the message id once durable.
    pub async fn deliver(&self, tx: &Transaction) -> Result<String, DeliveryError> {
        let id = format!(
            "{}.{:06}.{:016x}",
            tx.received_at.as_secs(),
            tx.received_at.0.subsec_micros(),
            self.env.random_u64()
        );
        let mut mailboxes = BTreeSet::new();
        for r in &tx.recipients {
            mailboxes.extend(r.mailboxes.iter().cloned());
        }
        let return_path = tx
            .mail_from
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let files = mailboxes
            .into_iter()
            .map(|mbox| {
                // Like Postfix local(8): the envelope becomes Return-Path and Delivered-To.
                let mut data = Vec::with_capacity(tx.message.len() + 128);
                data.extend_from_slice(format!("Return-Path: <{return_path}>\r\n").as_bytes());
                data.extend_from_slice(format!("Delivered-To: {mbox}\r\n").as_bytes());
                data.extend_from_slice(&tx.message);
                (mbox, data)
            })
            .collect();
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { files, id, done })
            .map_err(|_| DeliveryError::Temporary("store is shut down".into()))?;
        wait.await
            .unwrap_or_else(|_| Err(DeliveryError::Temporary("store committer stopped".into())))
    }

    /// Message ids in a mailbox, oldest first.
    pub async fn list(&self, mailbox: &str) -> io::Result<Vec<String>> {
        list_messages(&self.env, mailbox).await
    }

    /// One message's bytes.
    pub async fn read(&self, mailbox: &str, id: &str) -> io::Result<Vec<u8>> {
        read_message(&self.env, mailbox, id).await
    }
}

/// Message ids in a mailbox, oldest first (ids start with the delivery time).
pub async fn list_messages<E: Env>(env: &E, mailbox: &str) -> io::Result<Vec<String>> {
    let dir = mailbox_dir(mailbox)?;
    let mut names: Vec<String> = env
        .list_dir(&dir)
        .await?
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// One message's bytes.
pub async fn read_message<E: Env>(env: &E, mailbox: &str, id: &str) -> io::Result<Vec<u8>> {
    if id.starts_with('.') || id.contains(['/', '\\']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad message id",
        ));
    }
    env.read(&mailbox_dir(mailbox)?.join(id)).await
}

/// Creates `dir` and its ancestors, syncing each parent so the folders survive a crash.
async fn ensure_dir<E: Env>(env: &E, dir: &Path) -> io::Result<()> {
    env.create_dir_all(dir).await?;
    let mut prefix = PathBuf::new();
    for part in dir.components() {
        let parent = prefix.clone();
        prefix.push(part);
        env.sync_dir(&parent).await?;
    }
    env.sync_dir(dir).await
}

fn classify(e: &io::Error) -> DeliveryError {
    if e.kind() == io::ErrorKind::StorageFull {
        DeliveryError::Full
    } else {
        DeliveryError::Temporary(e.to_string())
    }
}

/// The committer: takes every queued delivery, commits them as one batch, answers each.
async fn committer<E: Env>(env: E, mut rx: mpsc::UnboundedReceiver<Job>, mode: CommitMode) {
    let max = match mode {
        CommitMode::Group => MAX_BATCH,
        CommitMode::Single => 1,
    };
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&env, batch).await;
    }
}

async fn commit_batch<E: Env>(env: &E, batch: Vec<Job>) {
    // Phase 1: write and fsync every temp file, concurrently (the kernel joins the fsyncs
    // into few journal commits; the simulator models each as durable on return).
    struct Staged {
        job: Job,
        paths: Vec<(PathBuf, PathBuf)>,
        error: Option<DeliveryError>,
    }
    let staged = join_all(batch.into_iter().map(|job| async move {
        let mut paths = Vec::new();
        let mut error = None;
        for (mbox, data) in &job.files {
            let dir = match mailbox_dir(mbox) {
                Ok(d) => d,
                Err(e) => {
                    error = Some(classify(&e));
                    break;
                }
            };
            let tmp = dir.join(format!("{TMP_PREFIX}{}", job.id));
            let res = async {
                env.write(&tmp, data).await?;
                env.sync_file(&tmp).await
            }
            .await;
            if let Err(e) = res {
                error = Some(classify(&e));
                let _ = env.remove_file(&tmp).await;
                break;
            }
            paths.push((tmp, dir.join(&job.id)));
        }
        Staged { job, paths, error }
    }))
    .await;

    // Phase 2: rename into place, then sync each touched directory once.
    let mut dirs = BTreeSet::new();
    let mut staged = staged;
    for s in staged.iter_mut() {
        if s.error.is_some() {
            for (tmp, _) in &s.paths {
                let _ = env.remove_file(tmp).await;
            }
            continue;
        }
        for (tmp, fin) in &s.paths {
            if let Err(e) = env.rename(tmp, fin).await {
                s.error = Some(classify(&e));
                break;
            }
            if let Some(parent) = fin.parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
    }
    let dir_results: Vec<(PathBuf, io::Result<()>)> =
        join_all(dirs.into_iter().map(|d| async move {
            let r = env.sync_dir(&d).await;
            (d, r)
        }))
        .await;
    let failed_dirs: BTreeSet<PathBuf> = dir_results
        .into_iter()
        .filter_map(|(d, r)| r.err().map(|_| d))
        .collect();

    // Phase 3: answer. A job whose directory failed to sync is not acknowledged (451), even
    // though its file may survive: at-least-once, never an acknowledged loss.
    let n = staged.len();
    for s in staged {
        let dir_failed = s
            .paths
            .iter()
            .any(|(_, fin)| fin.parent().is_some_and(|p| failed_dirs.contains(p)));
        let result = match (s.error, dir_failed) {
            (Some(e), _) => Err(e),
            (None, true) => Err(DeliveryError::Temporary("directory sync failed".into())),
            (None, false) => {
                for (mbox, data) in &s.job.files {
                    env.trace(
                        "store",
                        format_args!(
                            "commit {mbox} {} ({} octets, batch of {n})",
                            s.job.id,
                            data.len()
                        ),
                    );
                }
                Ok(s.job.id.clone())
            }
        };
        if let Err(e) = &result {
            env.trace("store", format_args!("commit failed {}: {e:?}", s.job.id));
        }
        let _ = s.job.done.send(result);
    }
}
