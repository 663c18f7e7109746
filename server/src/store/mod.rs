//! The mailbox store: one Maildir-like folder per account on the Env filesystem.
//!
//! Layout: `mail/<account>/new/<id>` holds one delivered message per file. A delivery writes
//! `new/.tmp-<id>`, fsyncs it, renames it to `new/<id>` and fsyncs the directory. Temp and
//! final name share a directory on purpose: then one directory sync makes both the creation
//! and the rename durable, and a reader never sees a half message (dot-files are not
//! messages; recovery deletes leftover temp files).
//!
//! **Group commit.** Deliveries from all sessions go through one committer task. While it is
//! committing a batch, new deliveries queue up; the next batch takes them all: it writes
//! every temp file, makes them all durable with one [`Env::sync_many`] (one `syncfs` on
//! Linux), renames them all into place and makes the names durable with a second one. Under
//! load N messages cost two disk flushes instead of 2N, which is how the server beats a
//! one-fsync-per-message MTA on a disk that flushes ~2 000 times a second at best.
//! A delivery is acknowledged (and the session says 250) only after its batch is durable.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};

use crate::env::Env;
use crate::mail::{DeliveryError, Envelope};

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
        crate::env::create_dir_durable(&env, Path::new(MAIL_ROOT)).await?;
        for key in mailboxes {
            let dir = mailbox_dir(key)?;
            crate::env::create_dir_durable(&env, &dir).await?;
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

    /// Stores `message` in every mailbox the envelope names; returns the message id once
    /// durable.
    pub async fn deliver(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<String, DeliveryError> {
        let tx = envelope;
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
                let mut data = Vec::with_capacity(message.len() + 128);
                data.extend_from_slice(format!("Return-Path: <{return_path}>\r\n").as_bytes());
                data.extend_from_slice(format!("Delivered-To: {mbox}\r\n").as_bytes());
                data.extend_from_slice(message);
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
    // Phase 1: write every temp file of every job in one go (no flush yet).
    struct Staged {
        job: Job,
        paths: Vec<(PathBuf, PathBuf)>,
        error: Option<DeliveryError>,
    }
    let mut staged: Vec<Staged> = Vec::with_capacity(batch.len());
    let mut writes: Vec<(usize, PathBuf)> = Vec::new();
    for job in batch {
        let mut paths = Vec::new();
        let mut error = None;
        for (mbox, _) in &job.files {
            match mailbox_dir(mbox) {
                Ok(dir) => paths.push((
                    dir.join(format!("{TMP_PREFIX}{}", job.id)),
                    dir.join(&job.id),
                )),
                Err(e) => {
                    error = Some(DeliveryError::from_io(&e));
                    paths.clear();
                    break;
                }
            }
        }
        if error.is_none() {
            writes.extend(paths.iter().map(|(tmp, _)| (staged.len(), tmp.clone())));
        }
        staged.push(Staged { job, paths, error });
    }
    let files: Vec<(PathBuf, &[u8])> = {
        let mut next_file: Vec<usize> = vec![0; staged.len()];
        writes
            .iter()
            .map(|(j, tmp)| {
                let k = next_file[*j];
                next_file[*j] += 1;
                (tmp.clone(), staged[*j].job.files[k].1.as_slice())
            })
            .collect()
    };
    let results = env.write_many(&files).await;
    drop(files);
    for ((j, _), r) in writes.iter().zip(results) {
        if let Err(e) = r {
            staged[*j].error.get_or_insert(DeliveryError::from_io(&e));
        }
    }
    for s in staged.iter_mut().filter(|s| s.error.is_some()) {
        for (tmp, _) in s.paths.drain(..) {
            let _ = env.remove_file(&tmp).await;
        }
    }

    // Phase 2: one flush makes all that data durable (before any name points at it, so a
    // crash can never show a message whose content is not on disk).
    let temps: Vec<PathBuf> = staged
        .iter()
        .flat_map(|s| s.paths.iter().map(|(t, _)| t.clone()))
        .collect();
    let mut batch_error = env
        .sync_many(&temps, &[])
        .await
        .err()
        .map(|e| DeliveryError::from_io(&e));

    // Phase 3: rename into place, then one flush for every touched directory.
    let mut dirs = BTreeSet::new();
    if batch_error.is_none() {
        for s in staged.iter_mut().filter(|s| s.error.is_none()) {
            for (tmp, fin) in &s.paths {
                if let Err(e) = env.rename(tmp, fin).await {
                    s.error = Some(DeliveryError::from_io(&e));
                    break;
                }
                if let Some(parent) = fin.parent() {
                    dirs.insert(parent.to_path_buf());
                }
            }
        }
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        batch_error = env
            .sync_many(&[], &dirs)
            .await
            .err()
            .map(|e| DeliveryError::from_io(&e));
    }

    // Phase 4: answer. If a flush failed, nobody in the batch is acknowledged (451), even
    // though some files may survive: at-least-once, never an acknowledged loss.
    let n = staged.len();
    for s in staged {
        let result = match (s.error, batch_error.clone()) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => {
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
