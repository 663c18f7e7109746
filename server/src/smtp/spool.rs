//! The spool: where message bodies being received wait, on the Env filesystem, until the
//! stores have copied them (see `mail/message.rs` for why bodies are not held in memory).
//!
//! One file per connection, `spool/<connection id>`, written by the driver as the session
//! hands out chunks and reused by the connection's transactions; the driver removes it
//! after each delivery and when the connection ends. Nothing in it is ever acknowledged
//! mail — the 250 comes only after a store's own fsynced copy — so the spool needs no
//! fsync, and what a crash leaves behind is garbage: [`recover`] clears it at start-up,
//! before any session can start (connection ids start again from zero).

use std::io;
use std::path::{Path, PathBuf};

use crate::env::Env;

/// The spool directory, relative to the data root.
pub const SPOOL_DIR: &str = "spool";

/// Creates the spool directory and removes whatever a crash left in it; returns its path.
pub async fn recover<E: Env>(env: &E) -> io::Result<PathBuf> {
    let dir = Path::new(SPOOL_DIR);
    crate::env::create_dir_durable(env, dir).await?;
    let mut removed = 0;
    for name in env.list_dir(dir).await? {
        match env.remove_file(&dir.join(&name)).await {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if removed > 0 {
        env.trace(
            "smtp",
            format_args!("recovery: removed {removed} spool file(s) of interrupted sessions"),
        );
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::memenv::MemEnv;

    /// What a crash left mid-message is gone after recovery; the directory stays.
    #[tokio::test]
    async fn recovery_clears_leftovers_of_interrupted_sessions() {
        let env = MemEnv::new();
        let dir = recover(&env).await.unwrap();
        env.write(&dir.join("3"), b"half a message").await.unwrap();
        env.write(&dir.join("17"), b"another").await.unwrap();
        let dir = recover(&env).await.unwrap();
        assert_eq!(env.list_dir(&dir).await.unwrap(), Vec::<String>::new());
        // Idempotent on an empty spool.
        recover(&env).await.unwrap();
    }
}
