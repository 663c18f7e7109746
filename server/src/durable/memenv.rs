//! A test-only in-memory [`Env`] whose filesystem models what a crash loses, the way the
//! simulator's turmoil filesystem does, so the committer's and every store's crash safety
//! can be checked at every single file operation without a simulated world. It can also make
//! an operation fail (a full or failing disk) and lists every call, batched ones included,
//! so tests can see what one commit costs.
//!
//! The model (POSIX, as turmoil implements it): a file's *contents* are durable as of its
//! last `sync_file`; a *name* (creation, rename, unlink) is durable once its parent
//! directory is synced. A crash image keeps the durable names, each pointing at its inode's
//! durable contents — optionally plus a torn prefix of the unsynced bytes appended after
//! them, as a disk that wrote some blocks of an append before power went.

// This is a seam implementation, like env/real.rs: spawning is what it is for.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::env::{DnsError, Env, Listener, Record, RecordKind, Timestamp};

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

/// The filesystem: a volatile namespace (what the running program sees), a durable one
/// (what survives a crash), and inodes shared by both.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fs {
    names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    durable_names: BTreeMap<PathBuf, u64>,
    durable_dirs: BTreeSet<PathBuf>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
}

impl Fs {
    fn dir_exists(&self, p: &Path) -> bool {
        p.as_os_str().is_empty() || self.dirs.contains(p)
    }

    fn parent_exists(&self, p: &Path) -> io::Result<()> {
        match p.parent() {
            Some(parent) if self.dir_exists(parent) => Ok(()),
            _ => Err(not_found(p)),
        }
    }

    fn durable_dir(&self, p: &Path) -> bool {
        p.as_os_str().is_empty()
            || (self.durable_dirs.contains(p) && p.parent().is_some_and(|q| self.durable_dir(q)))
    }

    /// Every file name with its contents (as the running program sees them).
    pub(crate) fn names_for_test(&self) -> Vec<(String, Vec<u8>)> {
        self.names
            .iter()
            .map(|(p, i)| {
                (
                    p.to_string_lossy().into_owned(),
                    self.inodes[i].data.clone(),
                )
            })
            .collect()
    }

    /// What a reboot after a crash right now would find. `tear`: keep this fraction (0..=1)
    /// of every file's unsynced appended bytes.
    pub(crate) fn crash_image(&self, tear: f64) -> Fs {
        let dirs: BTreeSet<PathBuf> = self
            .durable_dirs
            .iter()
            .filter(|d| self.durable_dir(d))
            .cloned()
            .collect();
        let names: BTreeMap<PathBuf, u64> = self
            .durable_names
            .iter()
            .filter(|(p, _)| p.parent().is_some_and(|d| self.durable_dir(d)))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        let mut inodes = BTreeMap::new();
        for &ino in names.values() {
            let node = &self.inodes[&ino];
            let mut data = node.durable.clone();
            if node.data.len() > data.len() && node.data.starts_with(&data) {
                let extra = node.data.len() - data.len();
                let keep = (extra as f64 * tear) as usize;
                data.extend_from_slice(&node.data[node.durable.len()..node.durable.len() + keep]);
            }
            inodes.insert(
                ino,
                Inode {
                    durable: data.clone(),
                    data,
                },
            );
        }
        Fs {
            durable_names: names.clone(),
            durable_dirs: dirs.clone(),
            names,
            dirs,
            inodes,
            next_inode: self.next_inode,
        }
    }
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", p.display()),
    )
}

struct Inner {
    fs: Mutex<Fs>,
    /// File operations started so far.
    ops: Mutex<usize>,
    /// Take a crash image when this operation is about to start.
    crash_at: Option<usize>,
    image: Mutex<Option<Fs>>,
    tear: f64,
    now: Mutex<Timestamp>,
    rng: std::sync::atomic::AtomicU64,
    trace: Mutex<Vec<String>>,
    /// Every call, as `<op> <path>` (and `write_many <n>`, `sync_many <files> <dirs>`).
    calls: Mutex<Vec<String>>,
    /// Operations that fail (with `Other`) until cleared.
    failing: Mutex<BTreeSet<&'static str>>,
}

/// The in-memory env. Clones share everything.
#[derive(Clone)]
pub(crate) struct MemEnv {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemEnv")
    }
}

impl MemEnv {
    pub(crate) fn new() -> MemEnv {
        MemEnv::with(Fs::default(), None, 0.0, 1)
    }

    /// An env over `fs` that snapshots a crash image (with `tear`) when file operation
    /// number `crash_at` is about to start.
    pub(crate) fn with(fs: Fs, crash_at: Option<usize>, tear: f64, seed: u64) -> MemEnv {
        MemEnv {
            inner: Arc::new(Inner {
                fs: Mutex::new(fs),
                ops: Mutex::new(0),
                crash_at,
                image: Mutex::new(None),
                tear,
                now: Mutex::new(Timestamp::from_secs(1_700_000_000)),
                rng: std::sync::atomic::AtomicU64::new(seed),
                trace: Mutex::new(Vec::new()),
                calls: Mutex::new(Vec::new()),
                failing: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    /// File operations started so far.
    pub(crate) fn ops(&self) -> usize {
        *self.inner.ops.lock().unwrap()
    }

    /// The crash image if the crash point was reached, else what a crash now would leave.
    pub(crate) fn image(&self) -> Fs {
        let taken = self.inner.image.lock().unwrap().clone();
        taken.unwrap_or_else(|| self.inner.fs.lock().unwrap().crash_image(self.inner.tear))
    }

    pub(crate) fn traces(&self) -> Vec<String> {
        self.inner.trace.lock().unwrap().clone()
    }

    /// Every call so far (see `Inner::calls`).
    pub(crate) fn calls(&self) -> Vec<String> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Makes every later call of `op` (e.g. `"sync_dir"`) fail, or succeed again.
    pub(crate) fn set_failing(&self, op: &'static str, failing: bool) {
        let mut f = self.inner.failing.lock().unwrap();
        if failing {
            f.insert(op);
        } else {
            f.remove(op);
        }
    }

    fn call(&self, what: String) {
        self.inner.calls.lock().unwrap().push(what);
    }

    /// Counts the operation, snapshots the crash image if it is the chosen one, then runs
    /// `f` on the filesystem. Yields first, so concurrent jobs really interleave.
    async fn op<T>(
        &self,
        name: &'static str,
        path: &Path,
        f: impl FnOnce(&mut Fs) -> io::Result<T>,
    ) -> io::Result<T> {
        tokio::task::yield_now().await;
        self.call(format!("{name} {}", path.display()));
        for c in path.components() {
            if !matches!(c, Component::Normal(_)) {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "unsafe path"));
            }
        }
        let mut fs = self.inner.fs.lock().unwrap();
        let n = {
            let mut ops = self.inner.ops.lock().unwrap();
            *ops += 1;
            *ops - 1
        };
        if Some(n) == self.inner.crash_at {
            *self.inner.image.lock().unwrap() = Some(fs.crash_image(self.inner.tear));
        }
        if self.inner.failing.lock().unwrap().contains(name) {
            return Err(io::Error::other(format!("injected {name} failure")));
        }
        f(&mut fs)
    }
}

pub(crate) struct NoListener;

impl Listener for NoListener {
    type Stream = tokio::io::DuplexStream;
    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl Env for MemEnv {
    type Stream = tokio::io::DuplexStream;
    type Listener = NoListener;

    /// The default (one `write` each), noted as one call so tests can see the batching.
    async fn write_many(&self, files: &[(PathBuf, &[u8])]) -> Vec<io::Result<()>> {
        self.call(format!("write_many {}", files.len()));
        let mut out = Vec::with_capacity(files.len());
        for (path, data) in files {
            out.push(self.write(path, data).await);
        }
        out
    }

    /// The default (`sync_file` and `sync_dir` on each, so a crash can fall between any
    /// two), noted as one call so tests can see the batching.
    async fn sync_many(&self, files: &[PathBuf], dirs: &[PathBuf]) -> io::Result<()> {
        self.call(format!("sync_many {} {}", files.len(), dirs.len()));
        for f in files {
            self.sync_file(f).await?;
        }
        for d in dirs {
            self.sync_dir(d).await?;
        }
        Ok(())
    }

    async fn listen(&self, _addr: SocketAddr) -> io::Result<NoListener> {
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn connect(&self, _addr: SocketAddr) -> io::Result<Self::Stream> {
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.op("read", path, |fs| {
            let ino = fs.names.get(path).ok_or_else(|| not_found(path))?;
            Ok(fs.inodes[ino].data.clone())
        })
        .await
    }

    async fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.op("write", path, |fs| {
            fs.parent_exists(path)?;
            let ino = match fs.names.get(path) {
                Some(&i) => i,
                None => {
                    let i = fs.next_inode;
                    fs.next_inode += 1;
                    fs.inodes.insert(i, Inode::default());
                    fs.names.insert(path.to_path_buf(), i);
                    i
                }
            };
            fs.inodes.get_mut(&ino).unwrap().data = data.to_vec();
            Ok(())
        })
        .await
    }

    async fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.op("append", path, |fs| {
            fs.parent_exists(path)?;
            let ino = match fs.names.get(path) {
                Some(&i) => i,
                None => {
                    let i = fs.next_inode;
                    fs.next_inode += 1;
                    fs.inodes.insert(i, Inode::default());
                    fs.names.insert(path.to_path_buf(), i);
                    i
                }
            };
            fs.inodes
                .get_mut(&ino)
                .unwrap()
                .data
                .extend_from_slice(data);
            Ok(())
        })
        .await
    }

    async fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.op("sync_file", path, |fs| {
            let ino = *fs.names.get(path).ok_or_else(|| not_found(path))?;
            let node = fs.inodes.get_mut(&ino).unwrap();
            node.durable = node.data.clone();
            Ok(())
        })
        .await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.op("rename", to, |fs| {
            fs.parent_exists(to)?;
            let ino = fs.names.remove(from).ok_or_else(|| not_found(from))?;
            fs.names.insert(to.to_path_buf(), ino);
            Ok(())
        })
        .await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.op("sync_dir", path, |fs| {
            if !fs.dir_exists(path) {
                return Err(not_found(path));
            }
            let here = |p: &Path| p.parent() == Some(path);
            fs.durable_names.retain(|p, _| !here(p));
            let names: Vec<_> = fs
                .names
                .iter()
                .filter(|(p, _)| here(p))
                .map(|(p, &i)| (p.clone(), i))
                .collect();
            fs.durable_names.extend(names);
            fs.durable_dirs.retain(|p| !here(p));
            let dirs: Vec<_> = fs.dirs.iter().filter(|p| here(p)).cloned().collect();
            fs.durable_dirs.extend(dirs);
            Ok(())
        })
        .await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.op("remove_file", path, |fs| {
            fs.names
                .remove(path)
                .map(|_| ())
                .ok_or_else(|| not_found(path))
        })
        .await
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.op("create_dir_all", path, |fs| {
            let mut p = PathBuf::new();
            for c in path.components() {
                p.push(c);
                fs.dirs.insert(p.clone());
            }
            Ok(())
        })
        .await
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.op("list_dir", path, |fs| {
            if !fs.dir_exists(path) {
                return Err(not_found(path));
            }
            let mut out: Vec<String> = fs
                .names
                .keys()
                .chain(fs.dirs.iter())
                .filter(|p| p.parent() == Some(path))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            out.sort();
            Ok(out)
        })
        .await
    }

    fn now(&self) -> Timestamp {
        *self.inner.now.lock().unwrap()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        let mut now = self.inner.now.lock().unwrap();
        if *now < deadline {
            *now = deadline;
        }
    }

    async fn lookup(&self, _name: &str, _kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        Err(DnsError::Temporary("no DNS in MemEnv".into()))
    }

    /// splitmix64: deterministic, so crash runs replay exactly.
    fn random_u64(&self) -> u64 {
        crate::env::fake::splitmix64(&self.inner.rng)
    }

    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        drop(tokio::spawn(fut));
    }

    fn trace(&self, source: &str, event: fmt::Arguments<'_>) {
        self.inner
            .trace
            .lock()
            .unwrap()
            .push(format!("{source} {event}"));
    }
}
