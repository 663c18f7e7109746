//! MOVE between two folders of one account, and its recovery: one code path for both.
//!
//! A move is made of steps that are each atomic and durable on their own, and the log
//! records enough that recovery can tell how far it got (see the `index` module doc for
//! the crash-by-crash reasoning):
//!
//! 1. source log: `P <uid> <newfile> <target>` (intent), fsynced;
//! 2. rename `source/new/<file>` → `target/new/<newfile>` (a fresh name, so a file name is
//!    never reused within a folder and an old expunge record can never match it);
//! 3. fsync the target directory, then the source directory (target first: at no point can
//!    the file be durable in neither place);
//! 4. [`resolve`]: where is the file now? In the target: the target indexes it (a new UID
//!    there, the flags and INTERNALDATE carried over), then the source records the expunge
//!    and unlinks any copy still visible under the old name. Only in the source: the
//!    rename never became durable; the source records `C <uid>` and the message stays
//!    where it was, UID and flags unchanged.
//!
//! Recovery runs step 4 for every `P` without a matching `X` or `C`, before any folder of
//! the account is rescanned (a rescan of the target must not index the file as new mail
//! without its flags, and one of the source must not call it vanished).

use std::collections::BTreeSet;
use std::io;

use super::folder::FolderState;
use super::record::Record;
use crate::env::Env;

/// A fresh file name for a moved message: the delivery id's shape (time, then random), so
/// names still sort by arrival.
pub(super) fn fresh_file<E: Env>(env: &E) -> String {
    let now = env.now();
    format!(
        "{}.{:06}.{:016x}",
        now.as_secs(),
        now.0.subsec_micros(),
        env.random_u64()
    )
}

/// Moves `uids` (those present and not already moving) from `src` to `dst`. Returns
/// (source UID, target UID) for each message moved, in source UID order.
pub(super) async fn move_messages<E: Env>(
    env: &E,
    src: &mut FolderState,
    dst: &mut FolderState,
    uids: &[u32],
) -> io::Result<Vec<(u32, u32)>> {
    let uids: BTreeSet<u32> = uids
        .iter()
        .copied()
        .filter(|u| src.messages.contains_key(u) && !src.pending.contains_key(u))
        .collect();
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let intents: Vec<Record> = uids
        .iter()
        .map(|&uid| Record::Moving {
            uid,
            new_file: fresh_file(env),
            target: dst.name.clone(),
        })
        .collect();
    src.commit(env, intents).await?;
    let uids: Vec<u32> = uids.into_iter().collect();
    let mut renamed = Ok(());
    for uid in &uids {
        let (file, new_file) = (&src.messages[uid].file, &src.pending[uid].new_file);
        renamed = env
            .rename(&src.new_dir.join(file), &dst.new_dir.join(new_file))
            .await;
        if renamed.is_err() {
            break;
        }
    }
    // Even after a failed rename: the ones before it happened and must be settled.
    let synced = async {
        env.sync_dir(&dst.new_dir).await?;
        env.sync_dir(&src.new_dir).await
    }
    .await;
    let moved = resolve(env, src, Some(dst), &uids).await?;
    renamed?;
    synced?;
    Ok(moved)
}

/// Finishes or rolls back the pending moves of `uids` in `src` (step 4 of the module
/// doc). `dst` is their target folder (`None`: it no longer exists). Returns the finished
/// ones as (source UID, target UID).
pub(super) async fn resolve<E: Env>(
    env: &E,
    src: &mut FolderState,
    mut dst: Option<&mut FolderState>,
    uids: &[u32],
) -> io::Result<Vec<(u32, u32)>> {
    let in_src: BTreeSet<String> = env.list_dir(&src.new_dir).await?.into_iter().collect();
    let in_dst: BTreeSet<String> = match &dst {
        Some(d) => env.list_dir(&d.new_dir).await?.into_iter().collect(),
        None => BTreeSet::new(),
    };
    let mut adopt = Vec::new();
    let mut settle = Vec::new();
    let mut finished = Vec::new();
    for &uid in uids {
        let (Some(p), Some(e)) = (src.pending.get(&uid), src.messages.get(&uid)) else {
            continue;
        };
        if let (Some(d), true) = (dst.as_deref_mut(), in_dst.contains(&p.new_file)) {
            let target_uid = match d.by_file.get(&p.new_file) {
                Some(&u) => u,
                None => {
                    let target_uid = d.next_uid()?;
                    adopt.push(Record::Added {
                        uid: target_uid,
                        modseq: d.next_modseq(),
                        internal_date: e.internal_date,
                        size: e.size,
                        file: p.new_file.clone(),
                        flags: e.flags.clone(),
                    });
                    target_uid
                }
            };
            finished.push((uid, target_uid));
            let modseq = src.next_modseq();
            settle.push(Record::Expunged { uid, modseq });
        } else if in_src.contains(&e.file) {
            settle.push(Record::Cancelled { uid });
        } else {
            // In neither place (the target folder was deleted under it): gone.
            env.warn(
                "index",
                format_args!("{}: moved message {uid} found nowhere", src.name),
            );
            let modseq = src.next_modseq();
            settle.push(Record::Expunged { uid, modseq });
        }
    }
    if let Some(d) = dst {
        if !adopt.is_empty() {
            // The target's name for the file must be durable before the source forgets it.
            env.sync_dir(&d.new_dir).await?;
            d.commit(env, adopt).await?;
        }
    }
    src.commit(env, settle).await?;
    // The source's old name, if the rename's removal of it is not durable yet.
    src.remove_expunged_files(env).await?;
    Ok(finished)
}
