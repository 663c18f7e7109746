//! The queue store's side of the [committer](crate::durable::committer): what each job
//! changes on disk, which jobs are refused before they touch it, and how each is answered.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;

use tokio::sync::oneshot;

use super::{message_path, QueueId};
use crate::durable::{self, Changes};
use crate::env::Env;
use crate::mail::DeliveryError;

/// A request from a [`QueueStore`](super::QueueStore) handle to the committer task.
pub(super) enum Job {
    Enqueue {
        id: QueueId,
        recipients: usize,
        size: usize,
        data: Vec<u8>,
        /// A spool file whose content follows `data` (a spooled message body).
        spool: Option<PathBuf>,
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

/// The queue's side of the committer. It owns `live` (queued id → recipient count): records
/// for a message that is not queued are refused instead of recreating its file, and new
/// ids never collide with live ones.
pub(super) struct Planner {
    live: BTreeMap<QueueId, usize>,
}

impl Planner {
    /// A planner for a queue that holds `live` (id → recipient count) after recovery.
    pub(super) fn new(live: BTreeMap<QueueId, usize>) -> Planner {
        Planner { live }
    }
}

/// A planned job, until the committer settles it.
pub(super) enum Ticket {
    Enqueue {
        id: QueueId,
        recipients: usize,
        size: usize,
        done: oneshot::Sender<Result<QueueId, DeliveryError>>,
    },
    Record {
        id: QueueId,
        /// The framed records, for the trace once they are durable.
        data: Vec<u8>,
        done: oneshot::Sender<io::Result<()>>,
    },
    Remove {
        id: QueueId,
        done: oneshot::Sender<io::Result<()>>,
    },
}

impl<E: Env> durable::Store<E> for Planner {
    type Job = Job;
    type Ticket = Ticket;

    fn plan(&mut self, env: &E, batch: Vec<Job>) -> Vec<(Ticket, Changes)> {
        let live = &mut self.live;
        // Removals leave `live` first: a record racing with its message's removal is
        // refused rather than appended to (and so re-creating) a file being unlinked.
        let removing: BTreeSet<QueueId> = batch
            .iter()
            .filter_map(|j| match j {
                Job::Remove { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        for id in &removing {
            live.remove(id);
        }
        let (mut enqueues, mut records, mut removes) = (Vec::new(), Vec::new(), Vec::new());
        for job in batch {
            match job {
                Job::Enqueue {
                    id,
                    recipients,
                    size,
                    data,
                    spool,
                    done,
                } => enqueues.push((id, recipients, size, data, spool, done)),
                Job::Record {
                    id,
                    max_index,
                    data,
                    done,
                } => {
                    let refused = match live.get(&id) {
                        None => Some(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("queue message {id} is not queued"),
                        )),
                        Some(&count) if max_index.is_some_and(|m| m >= count) => {
                            Some(io::Error::new(
                                io::ErrorKind::InvalidInput,
                                format!("queue message {id} has {count} recipients"),
                            ))
                        }
                        Some(_) => None,
                    };
                    match refused {
                        Some(e) => {
                            let _ = done.send(Err(e));
                        }
                        None => {
                            let mut c = Changes::new();
                            c.append(message_path(id), data.clone());
                            records.push((Ticket::Record { id, data, done }, c));
                        }
                    }
                }
                Job::Remove { id, done } => {
                    let mut c = Changes::new();
                    c.remove(message_path(id));
                    removes.push((Ticket::Remove { id, done }, c));
                }
            }
        }
        // New ids must not collide with anything queued or being removed (probability
        // ~2^-64 per pair, but a collision would overwrite a queued message).
        let mut planned = Vec::with_capacity(enqueues.len() + records.len() + removes.len());
        for (mut id, recipients, size, data, spool, done) in enqueues {
            while live.contains_key(&id) || removing.contains(&id) {
                id = QueueId::new(id.timestamp(), env.random_u64());
            }
            live.insert(id, recipients);
            let mut c = Changes::new();
            let made = match spool {
                None => c.create(message_path(id), data),
                Some(spool) => c.create_spliced(message_path(id), data, spool),
            };
            match made {
                Ok(_) => planned.push((
                    Ticket::Enqueue {
                        id,
                        recipients,
                        size,
                        done,
                    },
                    c,
                )),
                Err(e) => {
                    live.remove(&id);
                    let _ = done.send(Err(DeliveryError::from_io(&e)));
                }
            }
        }
        planned.extend(records);
        planned.extend(removes);
        planned
    }

    fn settle(&mut self, env: &E, ticket: Ticket, outcome: io::Result<()>, batch: usize) {
        match ticket {
            Ticket::Enqueue {
                id,
                recipients,
                size,
                done,
            } => {
                // Not acknowledged unless durable (451 then): at-least-once, never an
                // acknowledged loss. The committer unlinked the file again, so that,
                // barring a crash, it is not delivered behind the client's back while the
                // client retries.
                let result = match outcome {
                    Ok(()) => {
                        env.trace(
                            "queue",
                            format_args!(
                                "enqueue {id} ({recipients} rcpts, {size} octets, batch of {batch})"
                            ),
                        );
                        Ok(id)
                    }
                    Err(e) => {
                        self.live.remove(&id);
                        let err = DeliveryError::from_io(&e);
                        env.trace("queue", format_args!("enqueue failed {id}: {err:?}"));
                        Err(err)
                    }
                };
                let _ = done.send(result);
            }
            Ticket::Record { id, data, done } => {
                match &outcome {
                    Ok(()) => {
                        for payload in durable::log::payloads(&data) {
                            let payload = String::from_utf8_lossy(payload);
                            env.trace("queue", format_args!("record {id} {payload}"));
                        }
                    }
                    Err(e) => env.trace("queue", format_args!("record failed {id}: {e}")),
                }
                let _ = done.send(outcome);
            }
            Ticket::Remove { id, done } => {
                match &outcome {
                    Ok(()) => env.trace("queue", format_args!("remove {id}")),
                    Err(e) => env.trace("queue", format_args!("remove failed {id}: {e}")),
                }
                let _ = done.send(outcome);
            }
        }
    }
}
