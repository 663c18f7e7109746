//! APPEND and COPY into a folder (RFC 3501 §6.3.11, §6.4.7): a new message file with the
//! flags the client gave, its UID reported only once both the file and its log record are
//! durable.
//!
//! Order, and what a crash leaves: (1) the bytes go to `new/.tmp-<name>` and are fsynced;
//! (2) renamed to `new/<name>` and the directory fsynced; (3) the `A` record (UID, flags)
//! appended and fsynced; only then is the UID reported. A crash before (2) leaves a dot-file
//! that is never a message; after (2) but before (3), the next rescan indexes the file as a
//! new message without the flags, so it is in exactly one place either way and no UID a
//! client saw is reused.

use std::io;

use super::flags::Flags;
use super::folder::FolderState;
use super::moving::fresh_file;
use super::record::Record;
use crate::durable;
use crate::env::Env;

impl FolderState {
    /// Stores `bytes` as a new message with `flags`; returns its UID.
    pub async fn append<E: Env>(&mut self, env: &E, bytes: &[u8], flags: Flags) -> io::Result<u32> {
        let name = fresh_file(env);
        let path = self.new_dir.join(&name);
        let tmp = durable::committer::temp_path(&path)
            .ok_or_else(|| io::Error::other("message path has no file name"))?;
        env.write(&tmp, bytes).await?;
        env.sync_file(&tmp).await?;
        env.rename(&tmp, &path).await?;
        env.sync_dir(&self.new_dir).await?;
        let uid = self.next_uid()?;
        let modseq = self.next_modseq();
        self.commit(
            env,
            vec![Record::Added {
                uid,
                modseq,
                internal_date: env.now().as_secs(),
                size: bytes.len() as u64,
                file: name,
                flags,
            }],
        )
        .await?;
        Ok(uid)
    }
}
