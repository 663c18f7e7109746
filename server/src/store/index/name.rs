//! Folder names: what a client may call a folder, and where on disk that folder lives.
//!
//! The layout is Maildir++ (as Dovecot and Courier use it): INBOX is the account directory
//! itself (`mail/<account>/new/`), every other folder a dot-directory beside it whose name
//! is the folder's path with `.` as the hierarchy separator: `Junk` → `mail/<account>/.Junk/`,
//! `Lists/Rust` → `mail/<account>/.Lists.Rust/`. Clients see `/` as the separator.
//!
//! **Why names are checked here, not in the IMAP parser.** A folder name becomes a path, so
//! the store is the last line of defence against a name that escapes the account (`..`,
//! `/`, `\`), hides from a listing (a leading `.`), collides with the store's own files
//! (`tmp-…` would be a committer temp name once dotted) or cannot be written into a log
//! record (NUL, CR, LF, other controls). IMAP's wildcards `%` and `*` are refused too, so a
//! LIST pattern can never name a real folder by accident (RFC 3501 §5.1: servers may refuse
//! names with them). Anything that fails is `InvalidInput`; nothing is ever "cleaned up"
//! into a different, valid name.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::mail::Folder;

/// Longest folder name accepted, in octets (Dovecot's default limit is 255 per level; one
/// path component must stay under the filesystem's 255 octets with its leading dot).
pub const MAX_NAME: usize = 200;
/// Deepest hierarchy accepted.
pub const MAX_DEPTH: usize = 16;

/// A validated folder name (`INBOX` spelled exactly so, whatever case the client used).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderName(String);

fn invalid(name: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("bad folder name {name:?}: {why}"),
    )
}

impl FolderName {
    /// The inbox.
    pub fn inbox() -> FolderName {
        FolderName("INBOX".into())
    }

    /// Checks a client's folder name (see the module doc for what is refused and why).
    pub fn parse(name: &str) -> io::Result<FolderName> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok(FolderName::inbox());
        }
        if name.is_empty() {
            return Err(invalid(name, "empty"));
        }
        if name.len() > MAX_NAME {
            return Err(invalid(name, "too long"));
        }
        if name.chars().any(|c| c.is_control()) {
            return Err(invalid(name, "control character"));
        }
        if name.contains(['\\', '.', '%', '*']) {
            return Err(invalid(name, "contains one of \\ . % *"));
        }
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() > MAX_DEPTH {
            return Err(invalid(name, "too deep"));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid(name, "empty hierarchy level"));
        }
        // INBOX/x would live in a dot-directory named like a sibling of INBOX's own files;
        // Dovecot's Maildir++ layout has no children of INBOX either.
        if parts[0].eq_ignore_ascii_case("INBOX") {
            return Err(invalid(name, "INBOX has no children"));
        }
        if name.to_ascii_lowercase().starts_with("tmp-") {
            return Err(invalid(name, "reserved prefix"));
        }
        Ok(FolderName(name.to_string()))
    }

    /// The name of a folder the MX store delivers into.
    pub fn of(folder: Folder) -> FolderName {
        FolderName(folder.name().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The folder's directory (holding `new/` and the index log) inside `account_dir`.
    pub fn root(&self, account_dir: &Path) -> PathBuf {
        if self.is_inbox() {
            account_dir.to_path_buf()
        } else {
            account_dir.join(self.dir_name())
        }
    }

    /// The Maildir++ directory name: `.` then the levels joined by `.`.
    fn dir_name(&self) -> String {
        format!(".{}", self.0.replace('/', "."))
    }

    /// The folder a Maildir++ directory entry of an account names, if it names one.
    pub fn from_dir_name(entry: &str) -> Option<FolderName> {
        let rest = entry.strip_prefix('.')?;
        if crate::durable::is_temp(entry) || rest.is_empty() {
            return None;
        }
        FolderName::parse(&rest.replace('.', "/")).ok()
    }
}

impl fmt::Display for FolderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_maildir_plus_plus_directories() {
        let acct = Path::new("mail/alice");
        assert_eq!(FolderName::parse("inbox").unwrap(), FolderName::inbox());
        assert_eq!(FolderName::inbox().root(acct), acct);
        let junk = FolderName::of(Folder::Junk);
        assert_eq!(junk.root(acct), Path::new("mail/alice/.Junk"));
        let sub = FolderName::parse("Lists/Rust lang").unwrap();
        assert_eq!(sub.root(acct), Path::new("mail/alice/.Lists.Rust lang"));
        assert_eq!(FolderName::from_dir_name(".Lists.Rust lang"), Some(sub));
        assert_eq!(FolderName::from_dir_name(".Junk"), Some(junk));
        for not_a_folder in ["new", ".tmp-x", ".", "..", ".a..b", "mailsim-index.log"] {
            assert_eq!(
                FolderName::from_dir_name(not_a_folder),
                None,
                "{not_a_folder}"
            );
        }
    }

    #[test]
    fn names_that_could_escape_or_confuse_are_refused() {
        for bad in [
            "",
            "..",
            "../bob",
            "a/../../bob",
            "/etc",
            "a/",
            "a//b",
            "a\\b",
            ".hidden",
            "a.b",
            "a\0b",
            "a\rb",
            "a\nb",
            "%",
            "a*",
            "INBOX/x",
            "inbox/x",
            "tmp-1",
            "TMP-x",
        ] {
            let e = FolderName::parse(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(FolderName::parse(&"x".repeat(MAX_NAME + 1)).is_err());
        assert!(FolderName::parse(&vec!["a"; MAX_DEPTH + 1].join("/")).is_err());
        assert!(FolderName::parse(&vec!["a"; MAX_DEPTH].join("/")).is_ok());
        // Modified UTF-7 (RFC 3501 §5.1.3) and plain UTF-8 are just characters here.
        assert!(FolderName::parse("Entw&APw-rfe").is_ok());
        assert!(FolderName::parse("Entwürfe").is_ok());
    }
}
