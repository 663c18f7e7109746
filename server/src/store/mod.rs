//! The mailbox store: one Maildir-like folder per account on the Env filesystem.
//!
//! Layout: `mail/<account>/new/<id>` holds one delivered message per file; other folders
//! (Junk) are Maildir++ dot-directories beside it, `mail/<account>/.Junk/new/<id>`. A delivery writes
//! `new/.tmp-<id>`, fsyncs it, renames it to `new/<id>` and fsyncs the directory. Temp and
//! final name share a directory on purpose: then one directory sync makes both the creation
//! and the rename durable, and a reader never sees a half message (dot-files are not
//! messages; recovery deletes leftover temp files).
//!
//! **Group commit.** Deliveries from all sessions go through one
//! [committer](crate::durable::committer) task. While it is committing a batch, new
//! deliveries queue up; the next batch takes them all: it writes every temp file, makes them
//! all durable with one [`Env::sync_many`] (one `syncfs` on Linux), renames them all into
//! place and makes the names durable with a second one. Under load N messages cost two disk
//! flushes instead of 2N, which is how the server beats a one-fsync-per-message MTA on a disk
//! that flushes ~2 000 times a second at best. A delivery is acknowledged (and the session
//! says 250) only after its batch is durable.

pub mod index;
mod quota;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{broadcast, oneshot};

/// How deliveries are made durable (the committer's modes).
pub use crate::durable::CommitMode;
use crate::durable::{self, Changes, Committer};
use crate::env::Env;
use crate::mail::{DeliveryError, Envelope, Folder, Message};

pub use self::quota::{Limit, Quotas, Reservation, Usage};

/// A delivery made durable: the mailbox and the folder it went to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub mailbox: String,
    pub folder: Folder,
}

/// Deliveries queued per listener before it lags (and must rescan what it watches).
const DELIVERED: usize = 1024;

/// The folder that holds every mailbox.
const MAIL_ROOT: &str = "mail";

/// A handle to the store; cheap to clone, shared by every session.
#[derive(Clone)]
pub struct MailStore<E: Env> {
    env: E,
    jobs: Committer<Job>,
    quotas: Arc<Quotas>,
    /// Every durable delivery, (mailbox, folder): how the access index learns of new mail
    /// at once (IMAP IDLE), without the SMTP path touching the index itself.
    delivered: broadcast::Sender<Delivered>,
    /// Planted bug (`crate::planted`), shared with the committer's planner.
    #[cfg(feature = "planted-bugs")]
    skip_dir_sync: Arc<std::sync::atomic::AtomicBool>,
}

struct Job {
    /// One file per target mailbox.
    files: Vec<File>,
    id: String,
    done: oneshot::Sender<Result<String, DeliveryError>>,
}

/// One message file to write: its in-memory part and, for a spooled message, the spool
/// file copied after it.
struct File {
    mailbox: String,
    folder: Folder,
    head: Vec<u8>,
    spool: Option<PathBuf>,
    /// Octets in all.
    len: u64,
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

/// The directory of one folder of a mailbox (see the module doc for the layout).
pub fn folder_dir(key: &str, folder: Folder) -> io::Result<PathBuf> {
    let inbox = mailbox_dir(key)?;
    Ok(match folder {
        Folder::Inbox => inbox,
        other => Path::new(MAIL_ROOT)
            .join(key)
            .join(format!(".{}", other.name()))
            .join("new"),
    })
}

impl<E: Env> MailStore<E> {
    /// Opens the store: creates the mailboxes durably, removes temp files a crash left
    /// behind, and starts the committer task.
    pub async fn open<'a>(
        env: E,
        mailboxes: impl IntoIterator<Item = &'a str>,
        mode: CommitMode,
    ) -> io::Result<MailStore<E>> {
        Self::open_with_quotas(env, mailboxes, mode, Arc::new(Quotas::unlimited())).await
    }

    /// [`MailStore::open`], enforcing `quotas`. The usage of each mailbox that has a limit
    /// is counted from what it holds (each of its messages read once: start-up, not the hot
    /// path); an unlimited mailbox pays nothing and counts from zero (`count_usage` gives
    /// its true figure, for `admin`).
    pub async fn open_with_quotas<'a>(
        env: E,
        mailboxes: impl IntoIterator<Item = &'a str>,
        mode: CommitMode,
        quotas: Arc<Quotas>,
    ) -> io::Result<MailStore<E>> {
        crate::env::create_dir_durable(&env, Path::new(MAIL_ROOT)).await?;
        for key in mailboxes {
            let mut usage = Usage::default();
            let counted = quotas.limit(key) != Limit::default();
            for folder in Folder::ALL {
                let dir = folder_dir(key, folder)?;
                crate::env::create_dir_durable(&env, &dir).await?;
                let mut removed = false;
                for name in env.list_dir(&dir).await? {
                    if durable::is_temp(&name) {
                        env.remove_file(&dir.join(&name)).await?;
                        let shown = shown_folder(key, folder);
                        env.trace("store", format_args!("recovery: removed {shown}/{name}"));
                        removed = true;
                    } else if counted && !name.starts_with('.') {
                        usage.bytes += env.read(&dir.join(&name)).await?.len() as u64;
                        usage.messages += 1;
                    }
                }
                if removed {
                    env.sync_dir(&dir).await?;
                }
            }
            quotas.set_usage(key, usage);
        }
        let planner = Planner::default();
        #[cfg(feature = "planted-bugs")]
        let skip_dir_sync = planner.skip_dir_sync.clone();
        let jobs = Committer::spawn(&env, mode, planner);
        Ok(MailStore {
            env,
            jobs,
            quotas,
            delivered: broadcast::channel(DELIVERED).0,
            #[cfg(feature = "planted-bugs")]
            skip_dir_sync,
        })
    }

    /// Switches on a planted bug (`crate::planted`): deliveries skip the directory flush.
    #[cfg(feature = "planted-bugs")]
    pub fn plant_skip_dir_sync(&self) {
        self.skip_dir_sync
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The quotas and usage this store enforces (shared with the sessions).
    pub fn quotas(&self) -> &Arc<Quotas> {
        &self.quotas
    }

    pub fn env(&self) -> &E {
        &self.env
    }

    /// Deliveries from now on, once each is durable.
    pub fn subscribe_deliveries(&self) -> broadcast::Receiver<Delivered> {
        self.delivered.subscribe()
    }

    /// Stores `message` in every mailbox the envelope names; returns the message id once
    /// durable.
    pub async fn deliver(
        &self,
        envelope: &Envelope,
        message: &Message,
    ) -> Result<String, DeliveryError> {
        let id = format!(
            "{}.{:06}.{:016x}",
            envelope.received_at.as_secs(),
            envelope.received_at.0.subsec_micros(),
            self.env.random_u64()
        );
        self.deliver_as(envelope, message, id).await
    }

    /// [`MailStore::deliver`] under a given id (a file name: the caller makes it unique per
    /// mailbox). A message with local and remote recipients is stored under its queue id,
    /// so one id names it everywhere (as Postfix's queue id does in its logs).
    pub async fn deliver_as(
        &self,
        envelope: &Envelope,
        message: &Message,
        id: String,
    ) -> Result<String, DeliveryError> {
        let tx = envelope;
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
                let mut head = Vec::with_capacity(message.head().len() + 128);
                head.extend_from_slice(format!("Return-Path: <{return_path}>\r\n").as_bytes());
                head.extend_from_slice(format!("Delivered-To: {mbox}\r\n").as_bytes());
                head.extend_from_slice(message.head());
                let spool = message.spool();
                File {
                    len: head.len() as u64 + spool.map_or(0, |s| s.len),
                    mailbox: mbox,
                    folder: tx.folder,
                    head,
                    spool: spool.map(|s| s.path.clone()),
                }
            })
            .collect::<Vec<File>>();
        // Reserved before anything is written, so the message is refused whole.
        let sizes: Vec<(String, u64)> = files.iter().map(|f| (f.mailbox.clone(), f.len)).collect();
        let targets: Vec<Delivered> = files
            .iter()
            .map(|f| Delivered {
                mailbox: f.mailbox.clone(),
                folder: f.folder,
            })
            .collect();
        let reservation = match self.quotas.reserve(&sizes) {
            Ok(r) => r,
            Err(e) => {
                if let DeliveryError::OverQuota { mailbox, .. } = &e {
                    let octets = message.len();
                    self.env.trace(
                        "store",
                        format_args!("over quota: {mailbox} ({octets} octets): refused whole"),
                    );
                }
                return Err(e);
            }
        };
        let (done, wait) = oneshot::channel();
        self.jobs
            .submit(Job { files, id, done })
            .map_err(|_| DeliveryError::Temporary("store is shut down".into()))?;
        let result = wait
            .await
            .unwrap_or_else(|_| Err(DeliveryError::Temporary("store committer stopped".into())));
        if result.is_ok() {
            reservation.commit();
            for t in targets {
                // Nobody listening (no IMAP configured) is fine.
                let _ = self.delivered.send(t);
            }
        }
        result
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

/// How a mailbox's folder is named in the trace: the mailbox alone for its inbox (as
/// before folders existed), `mailbox/Junk` for another.
fn shown_folder(key: &str, folder: Folder) -> String {
    match folder {
        Folder::Inbox => key.to_string(),
        other => format!("{key}/{}", other.name()),
    }
}

/// Message ids in a mailbox's inbox, oldest first (ids start with the delivery time).
pub async fn list_messages<E: Env>(env: &E, mailbox: &str) -> io::Result<Vec<String>> {
    list_folder(env, mailbox, Folder::Inbox).await
}

/// Message ids in one folder of a mailbox, oldest first.
pub async fn list_folder<E: Env>(
    env: &E,
    mailbox: &str,
    folder: Folder,
) -> io::Result<Vec<String>> {
    let dir = folder_dir(mailbox, folder)?;
    let mut names: Vec<String> = env
        .list_dir(&dir)
        .await?
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// What a mailbox holds, counted from its files (for `admin`'s quota report; the running
/// store keeps the figure in [`Quotas`]).
pub async fn count_usage<E: Env>(env: &E, mailbox: &str) -> io::Result<Usage> {
    let mut usage = Usage::default();
    for folder in Folder::ALL {
        let dir = folder_dir(mailbox, folder)?;
        for id in list_folder(env, mailbox, folder).await? {
            usage.bytes += env.read(&dir.join(&id)).await?.len() as u64;
            usage.messages += 1;
        }
    }
    Ok(usage)
}

/// One message's bytes, from the inbox.
pub async fn read_message<E: Env>(env: &E, mailbox: &str, id: &str) -> io::Result<Vec<u8>> {
    read_in_folder(env, mailbox, Folder::Inbox, id).await
}

/// One message's bytes, from `folder`.
pub async fn read_in_folder<E: Env>(
    env: &E,
    mailbox: &str,
    folder: Folder,
    id: &str,
) -> io::Result<Vec<u8>> {
    if id.starts_with('.') || id.contains(['/', '\\']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad message id",
        ));
    }
    env.read(&folder_dir(mailbox, folder)?.join(id)).await
}

/// The mailbox store's side of the committer: one new file per target mailbox.
#[derive(Default)]
struct Planner {
    /// Planted bug (`crate::planted`): no directory flush after a delivery.
    #[cfg(feature = "planted-bugs")]
    skip_dir_sync: Arc<std::sync::atomic::AtomicBool>,
}

/// A planned delivery, until the committer settles it.
struct Ticket {
    id: String,
    /// (mailbox, octets) of each file, for the trace.
    files: Vec<(String, u64)>,
    done: oneshot::Sender<Result<String, DeliveryError>>,
}

impl<E: Env> durable::Store<E> for Planner {
    type Job = Job;
    type Ticket = Ticket;

    fn plan(&mut self, env: &E, batch: Vec<Job>) -> Vec<(Ticket, Changes)> {
        let mut planned = Vec::with_capacity(batch.len());
        for job in batch {
            let mut changes = Changes::new();
            #[cfg(feature = "planted-bugs")]
            if self
                .skip_dir_sync
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                changes.plant_skip_dir_sync();
            }
            let files = job
                .files
                .iter()
                .map(|f| (shown_folder(&f.mailbox, f.folder), f.len))
                .collect();
            let mut refused = None;
            for file in job.files {
                let made = folder_dir(&file.mailbox, file.folder).and_then(|dir| {
                    let path = dir.join(&job.id);
                    match file.spool {
                        None => changes.create(path, file.head)?,
                        Some(spool) => changes.create_spliced(path, file.head, spool)?,
                    };
                    Ok(())
                });
                if let Err(e) = made {
                    refused = Some(DeliveryError::from_io(&e));
                    break;
                }
            }
            let ticket = Ticket {
                id: job.id,
                files,
                done: job.done,
            };
            match refused {
                None => planned.push((ticket, changes)),
                Some(e) => answer(env, ticket, Err(e), 0),
            }
        }
        planned
    }

    /// If a flush failed, nobody in the batch is acknowledged (451), even though some files
    /// may survive: at-least-once, never an acknowledged loss.
    fn settle(&mut self, env: &E, ticket: Ticket, outcome: io::Result<()>, batch: usize) {
        let result = outcome.map_err(|e| DeliveryError::from_io(&e));
        answer(env, ticket, result, batch);
    }
}

fn answer<E: Env>(env: &E, t: Ticket, result: Result<(), DeliveryError>, batch: usize) {
    let result = match result {
        Ok(()) => {
            for (mbox, octets) in &t.files {
                env.trace(
                    "store",
                    format_args!("commit {mbox} {} ({octets} octets, batch of {batch})", t.id),
                );
            }
            Ok(t.id)
        }
        Err(e) => {
            env.trace("store", format_args!("commit failed {}: {e:?}", t.id));
            Err(e)
        }
    };
    let _ = t.done.send(result);
}
