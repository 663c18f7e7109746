//! Carries out a session's [`Request`]s on the access index, for its logged-in account
//! only: every request names a folder *of that account*, so no request can reach another
//! user's mail whatever name a client sends (the name was checked by `FolderName::parse`).
//! Shared by the driver on real and simulated sockets, and usable as it is by a simulated
//! IMAP user that runs a [`Session`](super::Session) in-process.

use std::io;

use tokio::sync::broadcast;

use super::session::{Done, Failure, FlagOp, Request};
use crate::env::Env;
use crate::store::index::{Change, FolderName, Mailboxes, SessionClaim};

pub struct Backend<E: Env> {
    mailboxes: Mailboxes<E>,
    /// Sessions one account may have at once.
    max_sessions: usize,
    account: Option<String>,
    _claim: Option<SessionClaim<E>>,
}

fn failure(e: io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::NotFound => Failure::NotFound,
        io::ErrorKind::AlreadyExists => Failure::Exists,
        io::ErrorKind::QuotaExceeded => Failure::OverQuota,
        _ => Failure::Failed(e.to_string()),
    }
}

impl<E: Env> Backend<E> {
    pub fn new(mailboxes: Mailboxes<E>, max_sessions: usize) -> Backend<E> {
        Backend {
            mailboxes,
            max_sessions,
            account: None,
            _claim: None,
        }
    }

    /// Changes of `folder` from now on (the driver's source of untagged updates).
    pub async fn watch(&self, folder: &FolderName) -> Option<broadcast::Receiver<Change>> {
        let account = self.account.as_deref()?;
        let index = self.mailboxes.open(account, folder).await.ok()?;
        Some(index.subscribe())
    }

    pub async fn run(&mut self, request: Request) -> Result<Done, Failure> {
        if let Request::Login(account) = &request {
            let claim = self
                .mailboxes
                .claim_session(account, self.max_sessions)
                .ok_or(Failure::Busy)?;
            self._claim = Some(claim);
            self.account = Some(account.clone());
            return Ok(Done::Ok);
        }
        let Some(account) = self.account.clone() else {
            return Err(Failure::Failed("not logged in".into()));
        };
        let m = &self.mailboxes;
        let a = account.as_str();
        match request {
            Request::Login(_) => unreachable!("handled above"),
            Request::Select(name) => {
                let index = m.open(a, &name).await.map_err(failure)?;
                Ok(Done::Selected {
                    status: index.status().await,
                    entries: index.snapshot().await,
                })
            }
            Request::Snapshot(name) => {
                let index = m.open(a, &name).await.map_err(failure)?;
                Ok(Done::Entries(index.snapshot().await))
            }
            Request::Read(name, uids) => {
                let index = m.open(a, &name).await.map_err(failure)?;
                let mut out = Vec::with_capacity(uids.len());
                for uid in uids {
                    match index.read(uid).await {
                        Ok(b) => out.push((uid, b)),
                        // Expunged by another session meanwhile: nothing to show.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(failure(e)),
                    }
                }
                Ok(Done::Messages(out))
            }
            Request::SetFlags {
                folder,
                uids,
                op,
                flags,
                unchanged_since,
            } => {
                let index = m.open(a, &folder).await.map_err(failure)?;
                let f = move |old: &crate::store::index::Flags| match op {
                    FlagOp::Add => old.union(&flags),
                    FlagOp::Remove => old.minus(&flags),
                    FlagOp::Replace => flags.clone(),
                };
                let (changed, modified) = match unchanged_since {
                    Some(since) => index
                        .set_flags_unchanged_since(&uids, since, f)
                        .await
                        .map_err(failure)?,
                    None => (
                        index.set_flags(&uids, f).await.map_err(failure)?,
                        Vec::new(),
                    ),
                };
                Ok(Done::Stored { changed, modified })
            }
            Request::Expunge(name, uids) => {
                let index = m.open(a, &name).await.map_err(failure)?;
                let gone = index.expunge(&uids).await.map_err(failure)?;
                Ok(Done::Uids(gone.iter().map(|e| e.uid).collect()))
            }
            Request::Folders => Ok(Done::Folders(m.folders(a).await.map_err(failure)?)),
            Request::Status(name) => {
                let index = m.open(a, &name).await.map_err(failure)?;
                let unseen = index
                    .snapshot()
                    .await
                    .iter()
                    .filter(|e| !e.flags.contains("\\Seen"))
                    .count();
                Ok(Done::Status {
                    status: index.status().await,
                    unseen,
                })
            }
            Request::Create(name) => {
                m.create(a, &name).await.map_err(failure)?;
                Ok(Done::Ok)
            }
            Request::Append {
                folder,
                message,
                flags,
            } => {
                let (uidvalidity, uid) = m
                    .append(a, &folder, &message, flags)
                    .await
                    .map_err(failure)?;
                Ok(Done::Appended { uidvalidity, uid })
            }
            Request::Copy {
                from,
                to,
                uids,
                remove,
            } => {
                if remove {
                    let pairs = m
                        .move_messages(a, &from, &to, &uids)
                        .await
                        .map_err(failure)?;
                    let uidvalidity = m.open(a, &to).await.map_err(failure)?.status().await;
                    Ok(Done::Copied {
                        uidvalidity: uidvalidity.uidvalidity,
                        pairs,
                    })
                } else {
                    let (uidvalidity, pairs) = m
                        .copy_messages(a, &from, &to, &uids)
                        .await
                        .map_err(failure)?;
                    Ok(Done::Copied { uidvalidity, pairs })
                }
            }
        }
    }
}
