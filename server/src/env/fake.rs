//! A test double of the Env for unit tests of logic that needs DNS, time or randomness but
//! no sockets: scripted DNS answers, a clock the test sets, a counting RNG, and a plain
//! in-memory filesystem (no crash model: every write is "durable" at once; the queue's
//! `memenv` models crashes). The filesystem obeys the same path rule and the same error
//! kinds as the real Env — [`super::conformance`] runs against both.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{DnsError, Env, Listener, Record, RecordKind, Timestamp};

#[derive(Clone, Default)]
pub struct FakeEnv {
    inner: Arc<Inner>,
}

/// Scripted DNS answers by (name, type).
type Answers = BTreeMap<(String, RecordKind), Result<Vec<Record>, DnsError>>;

#[derive(Default)]
struct Inner {
    dns: Mutex<Answers>,
    now: Mutex<Timestamp>,
    rng: AtomicU64,
    trace: Mutex<Vec<String>>,
    fs: Mutex<MemFs>,
}

/// Files and directories by normalised path; the root (the empty path) always exists.
#[derive(Default)]
struct MemFs {
    files: BTreeMap<PathBuf, Vec<u8>>,
    dirs: BTreeSet<PathBuf>,
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", p.display()),
    )
}

impl MemFs {
    fn is_dir(&self, p: &Path) -> bool {
        p.as_os_str().is_empty() || self.dirs.contains(p)
    }

    /// A new entry at `p` needs its parent directory, as `open(O_CREAT)` does.
    fn parent_exists(&self, p: &Path) -> io::Result<()> {
        match p.parent() {
            Some(parent) if self.is_dir(parent) => Ok(()),
            _ => Err(not_found(p)),
        }
    }

    fn file(&mut self, p: &Path, create: bool) -> io::Result<&mut Vec<u8>> {
        if self.is_dir(p) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", p.display()),
            ));
        }
        if !self.files.contains_key(p) {
            if !create {
                return Err(not_found(p));
            }
            self.parent_exists(p)?;
        }
        Ok(self.files.entry(p.to_path_buf()).or_default())
    }
}

impl FakeEnv {
    pub fn new() -> Self {
        FakeEnv::default()
    }

    /// Scripts the answer to `name`/`kind` (unscripted names are NXDOMAIN).
    pub fn answer(
        &self,
        name: &str,
        kind: RecordKind,
        answer: Result<Vec<Record>, DnsError>,
    ) -> &Self {
        self.inner
            .dns
            .lock()
            .unwrap()
            .insert((name.to_string(), kind), answer);
        self
    }

    pub fn set_now(&self, t: Timestamp) {
        *self.inner.now.lock().unwrap() = t;
    }

    pub fn traced(&self) -> Vec<String> {
        self.inner.trace.lock().unwrap().clone()
    }

    /// Runs `f` on the filesystem after the one path rule.
    fn fs<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&mut MemFs, &Path) -> io::Result<T>,
    ) -> io::Result<T> {
        let p = super::path::relative(path)?;
        f(&mut self.inner.fs.lock().unwrap(), &p)
    }
}

pub struct NoListener;

impl Listener for NoListener {
    type Stream = tokio::io::DuplexStream;
    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        Err(unsupported())
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(unsupported())
    }
}

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "FakeEnv has no sockets")
}

impl Env for FakeEnv {
    type Stream = tokio::io::DuplexStream;
    type Listener = NoListener;

    async fn listen(&self, _: SocketAddr) -> io::Result<NoListener> {
        Err(unsupported())
    }
    async fn connect(&self, _: SocketAddr) -> io::Result<Self::Stream> {
        Err(unsupported())
    }
    async fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.fs(path, |fs, p| fs.file(p, false).map(|f| f.clone()))
    }
    async fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.fs(path, |fs, p| {
            let f = fs.file(p, true)?;
            f.clear();
            f.extend_from_slice(data);
            Ok(())
        })
    }
    async fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.fs(path, |fs, p| {
            fs.file(p, true)?.extend_from_slice(data);
            Ok(())
        })
    }
    async fn sync_file(&self, path: &Path) -> io::Result<()> {
        // fsync opens the path: a file or a directory, but it must exist.
        self.fs(path, |fs, p| {
            match fs.is_dir(p) || fs.files.contains_key(p) {
                true => Ok(()),
                false => Err(not_found(p)),
            }
        })
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let to = super::path::relative(to)?;
        self.fs(from, |fs, from| {
            if fs.is_dir(from) || fs.is_dir(&to) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "FakeEnv renames files only",
                ));
            }
            let data = fs.files.remove(from).ok_or_else(|| not_found(from))?;
            if let Err(e) = fs.parent_exists(&to) {
                fs.files.insert(from.to_path_buf(), data);
                return Err(e);
            }
            // rename(2) replaces an existing target atomically.
            fs.files.insert(to.clone(), data);
            Ok(())
        })
    }
    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.fs(path, |fs, p| {
            match fs.is_dir(p) || fs.files.contains_key(p) {
                true => Ok(()),
                false => Err(not_found(p)),
            }
        })
    }
    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.fs(path, |fs, p| {
            if fs.is_dir(p) {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a directory", p.display()),
                ));
            }
            fs.files.remove(p).map(drop).ok_or_else(|| not_found(p))
        })
    }
    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.fs(path, |fs, p| {
            let mut at = PathBuf::new();
            for part in p.components() {
                at.push(part);
                if fs.files.contains_key(&at) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} is a file", at.display()),
                    ));
                }
                fs.dirs.insert(at.clone());
            }
            Ok(())
        })
    }
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.fs(path, |fs, p| {
            if !fs.is_dir(p) {
                return Err(not_found(p));
            }
            let child = |q: &PathBuf| {
                (q.parent() == Some(p))
                    .then(|| q.file_name().map(|n| n.to_string_lossy().into_owned()))
            };
            let mut names: Vec<String> = fs
                .files
                .keys()
                .chain(fs.dirs.iter())
                .filter_map(|q| child(q).flatten())
                .collect();
            names.sort();
            Ok(names)
        })
    }
    fn now(&self) -> Timestamp {
        *self.inner.now.lock().unwrap()
    }
    async fn sleep_until(&self, deadline: Timestamp) {
        // Time only moves when the test says so: jump there.
        let mut now = self.inner.now.lock().unwrap();
        if *now < deadline {
            *now = deadline;
        }
    }
    async fn lookup(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        self.inner
            .dns
            .lock()
            .unwrap()
            .get(&(name.to_string(), kind))
            .cloned()
            .unwrap_or(Err(DnsError::NxDomain))
    }
    fn random_u64(&self) -> u64 {
        // A fixed, well-mixed sequence (splitmix64), so tests are repeatable.
        splitmix64(&self.inner.rng)
    }
    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        #[allow(clippy::disallowed_methods)] // a test double: tasks run on the test's runtime
        tokio::spawn(fut);
    }
    fn trace(&self, source: &str, event: fmt::Arguments<'_>) {
        self.inner
            .trace
            .lock()
            .unwrap()
            .push(format!("{source} {event}"));
    }
}

/// splitmix64 over a shared counter: a fixed, well-mixed sequence for test doubles, so
/// their runs repeat exactly.
pub fn splitmix64(state: &AtomicU64) -> u64 {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut z = state
        .fetch_add(GOLDEN, Ordering::Relaxed)
        .wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    /// The same test body as the real and the simulated Env (`env/conformance.rs`).
    #[tokio::test]
    async fn conformance() {
        crate::env::conformance::run(&super::FakeEnv::new()).await;
    }
}
