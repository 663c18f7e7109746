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
//! # Format (version 1, see `store/format.rs`)
//!
//! ```text
//! mailsim-queue 1 <envelope octets> <body octets> <crc32, 8 hex>\n
//! created <secs>.<nanos>\n
//! from[ <local> <domain>]\n                  (no address: the null sender <>)
//! rcpt <local> <domain>\n                     (one per recipient, index 0, 1, ...)
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
//! Every write goes through one committer task, as in the mailbox store: it takes all queued
//! jobs (up to [`MAX_BATCH`]), writes and fsyncs every temp file and every appended record
//! concurrently, renames, then syncs the queue directory *once* for all the enqueues and
//! removals of the batch. Under load N enqueues cost one directory sync instead of N.
//!
//! # Ids
//!
//! `<secs, 10+ digits>.<micros, 6 digits>.<random, 16 hex>` from the enqueue time and the Env
//! RNG: deterministic in the simulator, unique (the committer redraws on a collision with a
//! live id), time-ordered in a sorted listing, and made only of digits, hex and dots, so a
//! [`QueueId`] (parsed strictly, canonical form only) can never name a path outside `queue/`.

mod crc;
mod format;
#[cfg(test)]
mod memenv;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::{mpsc, oneshot};

use self::format::{Change, FormatError};
use crate::env::{Env, Timestamp};
use crate::mail::Address;
use crate::mail::DeliveryError;

/// The queue directory, relative to the data root.
pub const QUEUE_DIR: &str = "queue";
/// Prefix of a message being written; never a queued message.
const TMP_PREFIX: &str = ".tmp-";
/// Prefix of a file that failed its checks and was moved aside.
const BAD_PREFIX: &str = ".bad-";
/// Most jobs in one group commit (bounds the latency of the first one in a batch).
pub const MAX_BATCH: usize = 256;

/// A queued message's id; also its file name. See the module docs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId {
    secs: u64,
    micros: u32,
    random: u64,
}

impl QueueId {
    /// The id of a message queued at `at` with a fresh random number.
    pub fn new(at: Timestamp, random: u64) -> QueueId {
        QueueId {
            secs: at.as_secs(),
            micros: at.0.subsec_micros(),
            random,
        }
    }

    /// Parses an id in its canonical form only (exactly what `Display` writes), so that
    /// every id has exactly one file name and no other string — `..`, `a/b`, `.tmp-x`,
    /// upper-case hex, a sign — is ever accepted as one.
    pub fn parse(s: &str) -> Option<QueueId> {
        let mut parts = s.split('.');
        let (secs, micros, random) = (parts.next()?, parts.next()?, parts.next()?);
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        let ok = parts.next().is_none()
            && (10..=20).contains(&secs.len())
            && digits(secs)
            && micros.len() == 6
            && digits(micros)
            && random.len() == 16
            && random
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return None;
        }
        let id = QueueId {
            secs: secs.parse().ok()?,
            micros: micros.parse().ok()?,
            random: u64::from_str_radix(random, 16).ok()?,
        };
        (id.to_string() == s).then_some(id)
    }

    /// The enqueue time the id was made from (to the microsecond).
    pub fn timestamp(&self) -> Timestamp {
        Timestamp(Duration::new(self.secs, self.micros * 1000))
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:010}.{:06}.{:016x}",
            self.secs, self.micros, self.random
        )
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({self})")
    }
}

/// A string that is not a canonical [`QueueId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid queue id {0:?}")]
pub struct InvalidQueueId(pub String);

impl FromStr for QueueId {
    type Err = InvalidQueueId;
    fn from_str(s: &str) -> Result<QueueId, InvalidQueueId> {
        QueueId::parse(s).ok_or_else(|| InvalidQueueId(s.to_string()))
    }
}

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
}

impl QueuedMessage {
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
    jobs: mpsc::UnboundedSender<Job>,
}

enum Job {
    Enqueue {
        id: QueueId,
        recipients: usize,
        size: usize,
        data: Vec<u8>,
        done: oneshot::Sender<Result<QueueId, DeliveryError>>,
    },
    Record {
        id: QueueId,
        /// Highest recipient index the record mentions, checked against the message.
        max_index: Option<usize>,
        data: Vec<u8>,
        done: oneshot::Sender<io::Result<()>>,
    },
    Remove {
        id: QueueId,
        done: oneshot::Sender<io::Result<()>>,
    },
}

/// `queue/<id>`. The only way a message path is built: from a validated id.
fn message_path(id: QueueId) -> PathBuf {
    Path::new(QUEUE_DIR).join(id.to_string())
}

fn tmp_path(id: QueueId) -> PathBuf {
    Path::new(QUEUE_DIR).join(format!("{TMP_PREFIX}{id}"))
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
        let dir = Path::new(QUEUE_DIR);
        crate::env::create_dir_durable(&env, dir).await?;
        let mut dirty = false;
        let mut messages = Vec::new();
        for name in env.list_dir(dir).await? {
            if !is_plain_name(&name) {
                env.trace("queue", format_args!("recovery: ignored entry {name:?}"));
                continue;
            }
            if name.starts_with(TMP_PREFIX) {
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
        let (tx, rx) = mpsc::unbounded_channel();
        env.spawn(committer(env.clone(), rx, live));
        Ok((QueueStore { env, jobs: tx }, messages))
    }

    /// Queues a message for `recipients` (at least one); returns its id once it is durable
    /// (file and directory fsynced), so the SMTP session may say 250. `now` is the enqueue
    /// time: it goes into the id and is the start of the message's lifetime.
    pub async fn enqueue(
        &self,
        mail_from: Option<Address>,
        recipients: Vec<Address>,
        message: &[u8],
        now: Timestamp,
    ) -> Result<QueueId, DeliveryError> {
        if recipients.is_empty() {
            return Err(DeliveryError::Temporary("no recipients to queue".into()));
        }
        // Serialized and checksummed here, in the caller's task, so concurrent enqueuers
        // do that work in parallel and the committer only does I/O.
        let data = format::encode_message(now, mail_from.as_ref(), &recipients, message);
        let id = QueueId::new(now, self.env.random_u64());
        let (done, wait) = oneshot::channel();
        let job = Job::Enqueue {
            id,
            recipients: recipients.len(),
            size: message.len(),
            data,
            done,
        };
        self.jobs
            .send(job)
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
        self.append(id, max_index, format::encode_record(&changes))
            .await
    }

    /// Durably records that the delay DSN for `id` was sent, so a restart does not send it
    /// again.
    pub async fn mark_delay_warned(&self, id: QueueId) -> io::Result<()> {
        self.append(id, None, format::encode_record(&[Change::Warned]))
            .await
    }

    async fn append(&self, id: QueueId, max_index: Option<usize>, data: Vec<u8>) -> io::Result<()> {
        let (done, wait) = oneshot::channel();
        let job = Job::Record {
            id,
            max_index,
            data,
            done,
        };
        self.jobs.send(job).map_err(|_| shut_down())?;
        wait.await.unwrap_or_else(|_| Err(shut_down()))
    }

    /// Durably removes a message (call it once every recipient is final and any DSN is
    /// queued). Idempotent: removing a message that is already gone succeeds.
    pub async fn remove(&self, id: QueueId) -> io::Result<()> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Remove { id, done })
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

/// Parses a queue file and replays its state records.
fn load(id: QueueId, data: &[u8]) -> Result<(QueuedMessage, Vec<String>), FormatError> {
    let p = format::parse_message(data)?;
    let (records, skipped) = format::parse_tail(&data[p.tail..], p.envelope.recipients.len());
    let mut msg = QueuedMessage {
        id,
        queued_at: p.envelope.queued_at,
        mail_from: p.envelope.mail_from,
        recipients: p
            .envelope
            .recipients
            .into_iter()
            .map(|address| QueuedRecipient {
                address,
                state: RecipientState::Pending,
            })
            .collect(),
        delay_warned: false,
        size: p.body.len(),
    };
    for change in records.into_iter().flatten() {
        match change {
            Change::Warned => msg.delay_warned = true,
            // parse_tail checked the index.
            Change::Recipient(i, state) => msg.recipients[i].state = state,
        }
    }
    Ok((msg, skipped))
}

/// `io::Error` is not `Clone`; one failure answers several jobs.
fn copy_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// The committer: takes every queued job, commits them as one batch, answers each.
/// It owns `live` (queued id → recipient count): records for a message that is not queued
/// are refused instead of recreating its file, and new ids never collide with live ones.
async fn committer<E: Env>(
    env: E,
    mut rx: mpsc::UnboundedReceiver<Job>,
    mut live: BTreeMap<QueueId, usize>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&env, &mut live, batch).await;
    }
}

struct Enqueue {
    id: QueueId,
    recipients: usize,
    size: usize,
    data: Vec<u8>,
    done: oneshot::Sender<Result<QueueId, DeliveryError>>,
}

async fn commit_batch<E: Env>(env: &E, live: &mut BTreeMap<QueueId, usize>, batch: Vec<Job>) {
    let n = batch.len();
    let mut enqueues = Vec::new();
    let mut records = Vec::new();
    let mut removes = Vec::new();
    for job in batch {
        match job {
            Job::Enqueue {
                id,
                recipients,
                size,
                data,
                done,
            } => enqueues.push(Enqueue {
                id,
                recipients,
                size,
                data,
                done,
            }),
            Job::Record {
                id,
                max_index,
                data,
                done,
            } => records.push((id, max_index, data, done)),
            Job::Remove { id, done } => removes.push((id, done)),
        }
    }

    // Removals leave `live` first: a record racing with its message's removal is refused
    // rather than appended to (and so re-creating) a file being unlinked.
    let removing: BTreeSet<QueueId> = removes.iter().map(|(id, _)| *id).collect();
    for id in &removing {
        live.remove(id);
    }

    // Records, grouped per message in arrival order: one append and one fsync per file.
    type Waiters = Vec<oneshot::Sender<io::Result<()>>>;
    let mut appends: BTreeMap<QueueId, (Vec<u8>, Waiters)> = BTreeMap::new();
    for (id, max_index, data, done) in records {
        let refused = match live.get(&id) {
            None => Some(io::Error::new(
                io::ErrorKind::NotFound,
                format!("queue message {id} is not queued"),
            )),
            Some(&count) if max_index.is_some_and(|m| m >= count) => Some(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("queue message {id} has {count} recipients"),
            )),
            Some(_) => None,
        };
        match refused {
            Some(e) => {
                let _ = done.send(Err(e));
            }
            None => {
                let entry = appends.entry(id).or_default();
                entry.0.extend_from_slice(&data);
                entry.1.push(done);
            }
        }
    }

    // New ids must not collide with anything queued or being removed (probability ~2^-64
    // per pair, but a collision would overwrite a queued message).
    for e in &mut enqueues {
        while live.contains_key(&e.id) || removing.contains(&e.id) {
            e.id = QueueId::new(e.id.timestamp(), env.random_u64());
        }
        live.insert(e.id, e.recipients);
    }

    // Phase 1, all concurrent: write + fsync every temp file, append + fsync every record,
    // unlink every removed message (the kernel joins the fsyncs into few journal commits;
    // the simulator models each as durable on return).
    let staged = join_all(enqueues.iter().map(|e| async move {
        let tmp = tmp_path(e.id);
        let r = async {
            env.write(&tmp, &e.data).await?;
            env.sync_file(&tmp).await
        }
        .await;
        if r.is_err() {
            let _ = env.remove_file(&tmp).await;
        }
        r
    }));
    let appended = join_all(appends.iter().map(|(&id, (data, _))| async move {
        let path = message_path(id);
        env.append(&path, data).await?;
        env.sync_file(&path).await
    }));
    let unlinked = join_all(removes.iter().map(|&(id, _)| async move {
        match env.remove_file(&message_path(id)).await {
            // Already gone: a retried removal, or one whose directory sync failed before.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }));
    let (staged, appended, unlinked) = tokio::join!(staged, appended, unlinked);

    // Records need no directory sync: answer them now.
    for ((id, (data, waiters)), r) in appends.into_iter().zip(appended) {
        match &r {
            Ok(()) => {
                for line in data.split(|&b| b == b'\n').filter(|l| l.len() > 9) {
                    let payload = String::from_utf8_lossy(&line[9..]);
                    env.trace("queue", format_args!("record {id} {payload}"));
                }
            }
            Err(e) => env.trace("queue", format_args!("record failed {id}: {e}")),
        }
        for w in waiters {
            let _ = w.send(r.as_ref().map(|_| ()).map_err(copy_err));
        }
    }

    // Phase 2: rename the staged files into place.
    let renamed = join_all(enqueues.iter().zip(staged).map(|(e, staged)| async move {
        staged?;
        let r = env.rename(&tmp_path(e.id), &message_path(e.id)).await;
        if r.is_err() {
            let _ = env.remove_file(&tmp_path(e.id)).await;
        }
        r
    }))
    .await;

    // Phase 3: one directory sync makes every rename and unlink of the batch durable.
    let need_sync = renamed.iter().any(Result::is_ok) || !removes.is_empty();
    let dir_sync = if need_sync {
        env.sync_dir(Path::new(QUEUE_DIR)).await
    } else {
        Ok(())
    };

    // Answer. An enqueue whose directory sync failed is not acknowledged (451), and its
    // file is unlinked again so that, barring a crash, it is not delivered behind the
    // client's back while the client retries: at-least-once, never an acknowledged loss.
    for (e, r) in enqueues.into_iter().zip(renamed) {
        let result = match (r, &dir_sync) {
            (Err(err), _) => Err(DeliveryError::from_io(&err)),
            (Ok(()), Err(err)) => {
                let _ = env.remove_file(&message_path(e.id)).await;
                Err(DeliveryError::Temporary(format!(
                    "queue directory sync failed: {err}"
                )))
            }
            (Ok(()), Ok(())) => Ok(e.id),
        };
        match &result {
            Ok(id) => env.trace(
                "queue",
                format_args!(
                    "enqueue {id} ({} rcpts, {} octets, batch of {n})",
                    e.recipients, e.size
                ),
            ),
            Err(err) => {
                live.remove(&e.id);
                env.trace("queue", format_args!("enqueue failed {}: {err:?}", e.id));
            }
        }
        let _ = e.done.send(result);
    }
    for ((id, done), r) in removes.into_iter().zip(unlinked) {
        let result = r.and_then(|()| dir_sync.as_ref().map(|_| ()).map_err(copy_err));
        match &result {
            Ok(()) => env.trace("queue", format_args!("remove {id}")),
            Err(e) => env.trace("queue", format_args!("remove failed {id}: {e}")),
        }
        let _ = done.send(result);
    }
}
