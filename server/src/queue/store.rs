//! The durable outbound queue: queued messages and per-recipient delivery state on the Env
//! filesystem, crash-safe, with group commit.
//!
//! # Layout
//!
//! One file per message, `queue/<id>`, in one flat directory, like a Postfix queue file:
//! the envelope and the body, followed by an append-only log of state records. A new message
//! is written to `queue/.tmp-<id>`, fsynced, renamed to `queue/<id>`, and the directory is
//! fsynced; temp and final name share the directory so that one directory sync makes the
//! rename durable (a file's name is durable only once *its* directory is synced).
//!
//! # Format (version 1, see `store/format.rs`; the state records are a `durable/log.rs` log)
//!
//! ```text
//! mailsim-queue 1 <envelope octets> <body octets> <crc32, 8 hex>\n
//! created <secs>.<nanos>\n
//! from[ <local> <domain>]\n                  (no address: the null sender <>)
//! [dsn[ ret=FULL|HDRS][ envid=<envid>]\n]       (RFC 3461 MAIL parameters, if any)
//! [requiretls\n]                              (RFC 8689)
//! rcpt <local> <domain>[ notify=<list>][ orcpt=<address>]\n   (one per recipient, 0, 1, ...)
//! <body octets>
//! \n<crc32 of payload, 8 hex> <change>[ <change>...]     (state records, appended)
//! ```
//!
//! with changes `<i>=pending`, `<i>=deferred,<attempts>,<secs>.<nanos>,<reply>`,
//! `<i>=delivered,<reply>`, `<i>=failed,<reply>` and `warned`; strings are percent-escaped
//! so fields never contain a separator. The header CRC covers the header fields, envelope
//! and body; each record has its own CRC. Later records override earlier ones.
//!
//! # Why an append-only log in the message file
//!
//! Recording state is the hot path after enqueue (every delivery attempt records its outcome
//! for every recipient), so it must be cheap and must not rewrite the body. Compared with
//! rewriting a state file through temp + rename (an fsync *and* a directory sync per
//! update), an append costs a single fsync of a file that already exists: no directory
//! operation at all, no new inode. And compared with a separate `<id>.state` file, keeping
//! the log in the message file means one name per message, so enqueue and removal touch one
//! directory entry and a message can never be found with its state but without its body.
//!
//! # Crash safety
//!
//! - **Enqueue** answers only after the file is fsynced *and* the directory holding its
//!   final name is fsynced; before that, a crash leaves at most a `.tmp-` file (removed on
//!   open) or, if the rename got out, a complete file (written and fsynced before the
//!   rename): never a half message under a final name. The header checksum catches media
//!   damage on top.
//! - **Record** answers only after the appended record is fsynced. A crash mid-append leaves
//!   a torn record at the tail; every record *starts* with a newline, so the torn bytes end
//!   at the next record's newline and only the torn one fails its CRC and is skipped. A
//!   skipped record was never acknowledged, so nothing acknowledged is lost. A recipient the
//!   remote accepted is therefore redelivered after a crash only if the crash fell between
//!   the remote's 250 and our fsync: at most once more.
//! - **Remove** answers after the unlink and a directory fsync. A crash before that brings
//!   the message back with whatever states were recorded; a caller that records final states
//!   before removing sees it come back complete and just finishes the removal.
//! - **Recovery** (`open`) removes `.tmp-` leftovers, moves files that fail their checks to
//!   `.bad-<id>` (kept for a human, skipped from then on), leaves files of another format
//!   version and unknown names alone, and traces every decision. It never panics on content.
//!
//! # Group commit
//!
//! Every write goes through one [committer](crate::durable::committer), as in the mailbox
//! store: it takes all queued jobs (up to [`MAX_BATCH`]), writes every temp file in one go,
//! appends every record, makes all of that durable with one flush, renames and unlinks, then
//! flushes the queue directory *once* for all the enqueues and removals of the batch. Under
//! load N enqueues cost two flushes (one `syncfs` each in the real world) instead of 2N.
//! A batch of records alone needs no directory flush and is answered after the first one.
//!
//! # Ids
//!
//! `<secs, 10+ digits>.<micros, 6 digits>.<random, 16 hex>` from the enqueue time and the Env
//! RNG: deterministic in the simulator, unique (the committer redraws on a collision with a
//! live id), time-ordered in a sorted listing, and made only of digits, hex and dots, so a
//! [`QueueId`] (parsed strictly, canonical form only) can never name a path outside `queue/`.

mod commit;
mod format;
mod id;
pub use id::{InvalidQueueId, QueueId};
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

use self::commit::{Job, Planner};
use self::format::{Change, FormatError};
use crate::durable::{self, CommitMode, Committer};
use crate::env::{Env, Timestamp};
use crate::mail::DeliveryError;
use crate::mail::{Address, EnvelopeDsn, Message, Notify, Spooled};

/// The queue directory, relative to the data root.
pub const QUEUE_DIR: &str = "queue";
/// Prefix of a file that failed its checks and was moved aside.
const BAD_PREFIX: &str = ".bad-";
/// Most jobs in one group commit (bounds the latency of the first one in a batch).
pub const MAX_BATCH: usize = durable::MAX_BATCH;

/// Where one recipient of a queued message stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientState {
    /// Not attempted yet.
    Pending,
    /// Failed temporarily `attempts` times; try again at `next_attempt`.
    Deferred {
        attempts: u32,
        last_reply: String,
        next_attempt: Timestamp,
    },
    /// The remote accepted it (final).
    Delivered { reply: String },
    /// Permanently failed or expired; a failure DSN is owed (final).
    Failed { reply: String },
}

impl RecipientState {
    /// Delivered or Failed: nothing more will be attempted.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            RecipientState::Delivered { .. } | RecipientState::Failed { .. }
        )
    }
}

/// One recipient of a queued message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub address: Address,
    pub state: RecipientState,
    /// `NOTIFY=` (RFC 3461 §4.1): which DSNs the sender wants about this recipient.
    pub notify: Notify,
    /// `ORCPT` (RFC 3461 §4.2), decoded: passed on, and the DSN's `Original-Recipient`.
    pub orcpt: Option<String>,
}

/// A recipient to queue, with its DSN parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRecipient {
    pub address: Address,
    pub notify: Notify,
    pub orcpt: Option<String>,
}

impl From<Address> for NewRecipient {
    fn from(address: Address) -> NewRecipient {
        NewRecipient {
            address,
            ..NewRecipient::default()
        }
    }
}

/// What a message asks of its delivery beyond its recipients, fixed at enqueue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageOptions {
    /// `RET=`/`ENVID=` (RFC 3461).
    pub dsn: EnvelopeDsn,
    /// `REQUIRETLS` (RFC 8689): only over TLS, only to peers that offer REQUIRETLS.
    pub require_tls: bool,
    /// The message has `TLS-Required: No` (RFC 8689 §5) and was not received with
    /// REQUIRETLS (both cannot hold: the header is then ignored): a mandatory-TLS policy
    /// (`tls = "encrypt"`) is relaxed to opportunistic TLS for it. Decided at enqueue from
    /// the message's head.
    pub tls_required_no: bool,
}

/// A queued message as recovered by [`QueueStore::open`]: envelope and state, not the body
/// (a big queue must not be held in memory; [`QueueStore::read_message`] reads it when a
/// delivery needs it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: QueueId,
    /// When it was queued: the lifetime and the delay warning count from here.
    pub queued_at: Timestamp,
    /// `None` is the null sender `<>` (a bounce: never bounced itself).
    pub mail_from: Option<Address>,
    /// In queue order: a recipient's index here is its index in [`QueueStore::record`].
    pub recipients: Vec<QueuedRecipient>,
    /// Whether the delay DSN was sent already.
    pub delay_warned: bool,
    /// Body size in octets.
    pub size: usize,
    /// DSN and REQUIRETLS parameters of the message.
    pub options: MessageOptions,
}

impl QueuedMessage {
    /// A message as it is right after enqueue: every recipient pending, no delay warning.
    pub fn new(
        id: QueueId,
        queued_at: Timestamp,
        mail_from: Option<Address>,
        recipients: Vec<NewRecipient>,
        size: usize,
        options: MessageOptions,
    ) -> QueuedMessage {
        QueuedMessage {
            id,
            queued_at,
            mail_from,
            recipients: recipients
                .into_iter()
                .map(|r| QueuedRecipient {
                    address: r.address,
                    state: RecipientState::Pending,
                    notify: r.notify,
                    orcpt: r.orcpt,
                })
                .collect(),
            delay_warned: false,
            size,
            options,
        }
    }

    /// Every recipient is final: the message only waits for its DSN (if any) and removal.
    pub fn is_complete(&self) -> bool {
        self.recipients.iter().all(|r| r.state.is_final())
    }
}

/// A handle to the queue; cheap to clone, shared by every producer and the delivery loop.
/// One store per data root: two would each believe they own `queue/`.
#[derive(Clone)]
pub struct QueueStore<E: Env> {
    env: E,
    jobs: Committer<Job>,
}

/// `queue/<id>`. The only way a message path is built: from a validated id.
fn message_path(id: QueueId) -> PathBuf {
    Path::new(QUEUE_DIR).join(id.to_string())
}

/// `queue/.tmp-<id>`: where the committer writes a new message before renaming it.
#[cfg(test)]
fn tmp_path(id: QueueId) -> PathBuf {
    Path::new(QUEUE_DIR).join(format!("{}{id}", durable::TMP_PREFIX))
}

/// A single path component we are willing to join onto `queue/` (defence in depth: a
/// directory listing never yields anything else).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Unsupported(v) => write!(f, "format version {v:?} not supported"),
            FormatError::Corrupt(why) => f.write_str(why),
        }
    }
}

impl<E: Env> QueueStore<E> {
    /// Opens the queue: creates `queue/` durably, recovers what a crash or restart left (see
    /// the module docs), starts the committer task and returns every queued message, oldest
    /// first. Messages whose recipients are all final are returned too: a crash interrupted
    /// their completion (DSN, removal), which the caller finishes.
    pub async fn open(env: E) -> io::Result<(QueueStore<E>, Vec<QueuedMessage>)> {
        QueueStore::open_with(env, CommitMode::Group).await
    }

    /// [`QueueStore::open`] with a choice of commit mode (`Single`: one job per batch, for
    /// the `--no-group-commit` comparison).
    pub async fn open_with(
        env: E,
        mode: CommitMode,
    ) -> io::Result<(QueueStore<E>, Vec<QueuedMessage>)> {
        let dir = Path::new(QUEUE_DIR);
        crate::env::create_dir_durable(&env, dir).await?;
        let mut dirty = false;
        let mut messages = Vec::new();
        for name in env.list_dir(dir).await? {
            if !is_plain_name(&name) {
                env.trace("queue", format_args!("recovery: ignored entry {name:?}"));
                continue;
            }
            if durable::is_temp(&name) {
                match env.remove_file(&dir.join(&name)).await {
                    Ok(()) => {
                        dirty = true;
                        env.trace("queue", format_args!("recovery: removed {name}"));
                    }
                    Err(e) => {
                        env.trace("queue", format_args!("recovery: cannot remove {name}: {e}"))
                    }
                }
                continue;
            }
            if name.starts_with(BAD_PREFIX) {
                env.trace("queue", format_args!("recovery: {name} stays quarantined"));
                continue;
            }
            let Some(id) = QueueId::parse(&name) else {
                env.trace("queue", format_args!("recovery: ignored entry {name:?}"));
                continue;
            };
            let path = message_path(id);
            let data = match env.read(&path).await {
                Ok(d) => d,
                Err(e) => {
                    env.trace("queue", format_args!("recovery: cannot read {id}: {e}"));
                    continue;
                }
            };
            match load(id, &data) {
                Ok((msg, skipped)) => {
                    for why in skipped {
                        env.trace("queue", format_args!("recovery: {id}: skipped {why}"));
                    }
                    messages.push(msg);
                }
                Err(e @ FormatError::Unsupported(_)) => {
                    env.trace("queue", format_args!("recovery: {id}: {e}, left in place"));
                }
                Err(FormatError::Corrupt(why)) => {
                    let bad = dir.join(format!("{BAD_PREFIX}{id}"));
                    match env.rename(&path, &bad).await {
                        Ok(()) => {
                            dirty = true;
                            env.trace(
                                "queue",
                                format_args!("recovery: {id}: {why}, moved to {BAD_PREFIX}{id}"),
                            );
                        }
                        Err(e) => env.trace(
                            "queue",
                            format_args!("recovery: {id}: {why}, cannot move aside: {e}"),
                        ),
                    }
                }
            }
        }
        if dirty {
            env.sync_dir(dir).await?;
        }
        env.trace(
            "queue",
            format_args!("recovery: {} queued messages", messages.len()),
        );
        let live = messages
            .iter()
            .map(|m| (m.id, m.recipients.len()))
            .collect();
        let jobs = Committer::spawn(&env, mode, Planner::new(live));
        Ok((QueueStore { env, jobs }, messages))
    }

    /// Queues a message for `recipients` (at least one); returns its id once it is durable
    /// (file and directory fsynced), so the SMTP session may say 250. `now` is the enqueue
    /// time: it goes into the id and is the start of the message's lifetime.
    pub async fn enqueue<R: Into<NewRecipient>>(
        &self,
        mail_from: Option<Address>,
        recipients: Vec<R>,
        message: &[u8],
        now: Timestamp,
    ) -> Result<QueueId, DeliveryError> {
        let recipients = recipients.into_iter().map(Into::into).collect::<Vec<_>>();
        let options = MessageOptions::default();
        self.enqueue_with(mail_from, &options, &recipients, message, now)
            .await
    }

    /// [`QueueStore::enqueue`] with DSN parameters per recipient and for the message.
    pub async fn enqueue_with(
        &self,
        mail_from: Option<Address>,
        options: &MessageOptions,
        recipients: &[NewRecipient],
        message: &[u8],
        now: Timestamp,
    ) -> Result<QueueId, DeliveryError> {
        self.enqueue_parts(mail_from, options, recipients, (message, None), now, None)
            .await
    }

    /// [`QueueStore::enqueue_with`] for a [`Message`], which may be partly in a spool file:
    /// the committer copies that part into the queue file after the head.
    pub async fn enqueue_message(
        &self,
        mail_from: Option<Address>,
        options: &MessageOptions,
        recipients: &[NewRecipient],
        message: &Message,
        now: Timestamp,
    ) -> Result<QueueId, DeliveryError> {
        self.enqueue_message_as(mail_from, options, recipients, message, now, None)
            .await
    }

    /// [`QueueStore::enqueue_message`] under `id` if given (it changes only if a message
    /// with that id is already queued).
    pub async fn enqueue_message_as(
        &self,
        mail_from: Option<Address>,
        options: &MessageOptions,
        recipients: &[NewRecipient],
        message: &Message,
        now: Timestamp,
        id: Option<QueueId>,
    ) -> Result<QueueId, DeliveryError> {
        self.enqueue_parts(
            mail_from,
            options,
            recipients,
            (message.head(), message.spool()),
            now,
            id,
        )
        .await
    }

    async fn enqueue_parts(
        &self,
        mail_from: Option<Address>,
        options: &MessageOptions,
        recipients: &[NewRecipient],
        (head, spool): (&[u8], Option<&Spooled>),
        now: Timestamp,
        id: Option<QueueId>,
    ) -> Result<QueueId, DeliveryError> {
        if recipients.is_empty() {
            return Err(DeliveryError::Temporary("no recipients to queue".into()));
        }
        // Serialized and checksummed here, in the caller's task, so concurrent enqueuers
        // do that work in parallel and the committer only does I/O. A spooled body is
        // copied in by the committer, after these bytes.
        let data = format::encode_spliced(
            now,
            mail_from.as_ref(),
            options,
            recipients,
            head,
            spool.map(|s| (s.len, s.crc)),
        );
        let id = id.unwrap_or_else(|| QueueId::new(now, self.env.random_u64()));
        let (done, wait) = oneshot::channel();
        let job = Job::Enqueue {
            id,
            recipients: recipients.len(),
            size: head.len() + spool.map_or(0, |s| s.len as usize),
            data,
            spool: spool.map(|s| s.path.clone()),
            done,
        };
        self.jobs
            .submit(job)
            .map_err(|_| DeliveryError::Temporary("queue is shut down".into()))?;
        wait.await
            .unwrap_or_else(|_| Err(DeliveryError::Temporary("queue committer stopped".into())))
    }

    /// Durably records new states for some recipients of `id` (index into
    /// [`QueuedMessage::recipients`]), all or nothing; returns once fsynced. Record a
    /// `Delivered` as soon as the remote said 250: that is what keeps a crash from sending it
    /// twice. `NotFound` if the message is not queued (removed), `InvalidInput` for an index
    /// past its recipients.
    pub async fn record(&self, id: QueueId, updates: &[(usize, RecipientState)]) -> io::Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let changes: Vec<Change> = updates
            .iter()
            .map(|(i, s)| Change::Recipient(*i, s.clone()))
            .collect();
        let max_index = updates.iter().map(|&(i, _)| i).max();
        self.append(
            id,
            max_index,
            format::encode_record(&changes).map_err(unframed)?,
        )
        .await
    }

    /// Durably records that the delay DSN for `id` was sent, so a restart does not send it
    /// again.
    pub async fn mark_delay_warned(&self, id: QueueId) -> io::Result<()> {
        let data = format::encode_record(&[Change::Warned]).map_err(unframed)?;
        self.append(id, None, data).await
    }

    async fn append(&self, id: QueueId, max_index: Option<usize>, data: Vec<u8>) -> io::Result<()> {
        let (done, wait) = oneshot::channel();
        let job = Job::Record {
            id,
            max_index,
            data,
            done,
        };
        self.jobs.submit(job).map_err(|_| shut_down())?;
        wait.await.unwrap_or_else(|_| Err(shut_down()))
    }

    /// Durably removes a message (call it once every recipient is final and any DSN is
    /// queued). Idempotent: removing a message that is already gone succeeds.
    pub async fn remove(&self, id: QueueId) -> io::Result<()> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .submit(Job::Remove { id, done })
            .map_err(|_| shut_down())?;
        wait.await.unwrap_or_else(|_| Err(shut_down()))
    }

    /// The body of a queued message, checked against its checksum (`InvalidData` if it
    /// does not match).
    pub async fn read_message(&self, id: QueueId) -> io::Result<Vec<u8>> {
        let mut data = self.env.read(&message_path(id)).await?;
        let p = format::parse_message(&data).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("queue file {id}: {e}"))
        })?;
        data.truncate(p.body.end);
        data.drain(..p.body.start);
        Ok(data)
    }
}

fn shut_down() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "queue committer stopped")
}

/// A record the log could not frame (cannot happen: every field is escaped).
fn unframed(e: durable::log::NewlineInPayload) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// The fuzz body for the queue file parser: parses `data` as a queue file and replays its
/// state tail, as recovery does. Must never panic, whatever the bytes; on top, every record
/// it accepts must encode back to a record it reads the same way (the format has one
/// spelling per state).
pub fn fuzz_queue_file(data: &[u8]) {
    let id = QueueId::new(Timestamp::from_secs(0), 0);
    if let Ok((msg, _skipped)) = load(id, data) {
        assert!(msg.size <= data.len());
        assert!(!msg.recipients.is_empty());
    }
    if let Ok(p) = format::parse_message(data) {
        let n = p.envelope.recipients.len();
        assert!(p.body.end == p.tail && p.tail <= data.len());
        let (records, _) = format::parse_tail(&data[p.tail..], n);
        for changes in records {
            let again = format::encode_record(&changes).expect("parsed changes re-encode");
            let (back, skipped) = format::parse_tail(&again, n);
            assert!(skipped.is_empty(), "{skipped:?}");
            assert_eq!(back, vec![changes]);
        }
    }
}

/// For the simulator's consistency check: whether `data` is a whole queue file that
/// recovery would keep (`Ok`, with whether every recipient is final, i.e. the message is
/// done and only waits for its removal), or why recovery would set it aside.
pub fn inspect_queue_file(data: &[u8]) -> Result<bool, String> {
    let id = QueueId::new(Timestamp::from_secs(0), 0);
    match load(id, data) {
        Ok((msg, _skipped)) => Ok(msg.is_complete()),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Parses a queue file and replays its state records.
fn load(id: QueueId, data: &[u8]) -> Result<(QueuedMessage, Vec<String>), FormatError> {
    let p = format::parse_message(data)?;
    let (records, skipped) = format::parse_tail(&data[p.tail..], p.envelope.recipients.len());
    let mut msg = QueuedMessage::new(
        id,
        p.envelope.queued_at,
        p.envelope.mail_from,
        p.envelope.recipients,
        p.body.len(),
        p.envelope.options,
    );
    for change in records.into_iter().flatten() {
        match change {
            Change::Warned => msg.delay_warned = true,
            // parse_tail checked the index.
            Change::Recipient(i, state) => msg.recipients[i].state = state,
        }
    }
    Ok((msg, skipped))
}
