//! The one path rule every Env obeys: a world path names something *under the data root*.
//!
//! The real Env, the simulated Env and the in-memory test Env all call [`relative`] first,
//! so a path one world accepts is a path every world accepts, and the store that works in the
//! simulator cannot be talked into touching `/etc` in production. The rule is lexical (a
//! symlink planted inside the root is followed), which is enough because the server creates
//! everything under the root itself: this is defence in depth, not a sandbox.
//!
//! Refused with `io::ErrorKind::InvalidInput`:
//! - an **absolute** path (a root, or a Windows prefix): the root is the world's business;
//! - any **`..`** component, even one that would stay inside (`a/../b`): no caller needs it,
//!   and refusing it outright keeps the rule one line long;
//! - a **NUL** byte: the OS would cut the name there (or refuse it), turmoil's filesystem
//!   would not, so the worlds would disagree about which file is meant.
//!
//! Accepted as **the data root itself: the empty path and `.`**; `.` components elsewhere are
//! dropped (`./a/./b` is `a/b`). Neither can climb anywhere. The empty path stays the root
//! because that is how the code already names it — `Path::parent` of a top-level name,
//! `create_dir_durable` syncing the first parent, the queue's crash-model Env
//! (`queue/store/memenv.rs`) — and refusing it would make every caller special-case the
//! root. A file operation on an empty name fails anyway (the root is a directory), so an
//! empty name computed by mistake still cannot touch a file. Before this rule the simulated
//! Env refused `.` while the real one accepted it.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Checks `path` against the rule and returns it normalised (no `.` components; the root is
/// the empty path, ready for `root.join(..)`).
pub fn relative(path: &Path) -> io::Result<PathBuf> {
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {path:?} refused: {why} (paths are relative to the data root)"),
        ))
    };
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return refuse("contains a NUL byte");
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => return refuse("contains `..`"),
            Component::RootDir | Component::Prefix(_) => return refuse("absolute"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn ok(p: &str) -> PathBuf {
        relative(Path::new(p)).unwrap()
    }

    fn refused(p: &Path) -> bool {
        relative(p).map_err(|e| e.kind()) == Err(io::ErrorKind::InvalidInput)
    }

    #[test]
    fn plain_names_and_dots_are_normalised() {
        assert_eq!(ok("queue/active/x"), PathBuf::from("queue/active/x"));
        assert_eq!(ok("./queue/./x/"), PathBuf::from("queue/x"));
        assert_eq!(ok("."), PathBuf::new());
        assert_eq!(ok(""), PathBuf::new(), "the root");
        assert_eq!(ok("./."), PathBuf::new());
        assert_eq!(ok("..."), PathBuf::from("..."), "a name, not a climb");
        assert_eq!(ok("a..b/.hidden"), PathBuf::from("a..b/.hidden"));
    }

    #[test]
    fn absolute_dotdot_and_nul_are_refused() {
        for p in [
            "/",
            "/etc/passwd",
            "..",
            "../x",
            "a/../b",
            "a/b/..",
            "./../a",
        ] {
            assert!(refused(Path::new(p)), "{p:?}");
        }
        assert!(refused(Path::new(OsStr::from_bytes(b"a\0b"))));
        assert!(refused(Path::new(OsStr::from_bytes(b"\0"))));
    }
}
