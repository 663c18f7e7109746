//! The admin CLI's file plumbing: reading the config (and the key files it names), and
//! writing a new config or key atomically — temp file in the same folder, fsync, rename,
//! fsync of the folder — the same commit the store uses (Maildir, Postfix's queue), so a
//! crash leaves either the old file or the new one, never half of either.
//!
//! Like `cli.rs`, this is process plumbing on the real disk, outside any world: the one
//! other place of the crate allowed `std::fs` (each use marked).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::{ConfigFileError, ServerConfig};

/// Reads the file's text (errors name the file).
pub fn read_text(path: &Path) -> Result<String, ConfigFileError> {
    #[allow(clippy::disallowed_methods)]
    std::fs::read_to_string(path).map_err(|e| ConfigFileError::io(path, &e))
}

/// Reads, parses and validates a config, and reads the files it names (TLS, DKIM keys)
/// relative to its folder into their inline `*_pem` fields.
pub fn load_config(path: &Path) -> Result<ServerConfig, ConfigFileError> {
    let text = read_text(path)?;
    let mut config = crate::config::parse(path, &text)?;
    #[allow(clippy::disallowed_methods)]
    let read = |p: &Path| std::fs::read_to_string(p);
    config
        .read_files(read, base_dir(path))
        .map_err(|message| ConfigFileError {
            path: path.to_path_buf(),
            at: None,
            key: None,
            message,
        })?;
    Ok(config)
}

/// The folder a config's relative paths are relative to.
pub fn base_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `text` atomically. The new file keeps the old one's permissions
/// (a config holding password hashes stays as private as the operator made it).
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    #[allow(clippy::disallowed_methods)]
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions());
    commit(path, text.as_bytes(), mode, false)
}

/// Writes a new private key file with mode 0600; never replaces an existing file.
pub fn write_private(path: &Path, text: &str) -> io::Result<()> {
    if path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists; not overwriting a key", path.display()),
        ));
    }
    commit(path, text.as_bytes(), None, true)
}

/// Removes a file this command wrote, when a later step failed.
pub fn remove(path: &Path) {
    #[allow(clippy::disallowed_methods)]
    let _ = std::fs::remove_file(path);
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    base_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

#[allow(clippy::disallowed_types, clippy::disallowed_methods)]
fn commit(
    path: &Path,
    bytes: &[u8],
    permissions: Option<std::fs::Permissions>,
    private: bool,
) -> io::Result<()> {
    let tmp = temp_name(path);
    let written = (|| {
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let mut file = open.open(&tmp)?;
        file.write_all(bytes)?;
        if let Some(p) = permissions {
            file.set_permissions(p)?;
        }
        file.sync_all()?;
        drop(file);
        if private {
            // A link, unlike a rename, fails if the name appeared meanwhile: a key is never
            // replaced.
            std::fs::hard_link(&tmp, path)?;
            std::fs::remove_file(&tmp)?;
        } else {
            std::fs::rename(&tmp, path)?;
        }
        // The rename is durable only once the folder is synced.
        std::fs::File::open(base_dir(path))?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}
