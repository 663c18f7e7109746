//! The real world: tokio sockets, std files, the system clock, hickory-resolver and the OS RNG.
//!
//! This is the `Env` that `mailsim serve` runs on. It is deliberately thin: every method does
//! the one obvious thing with the operating system, so that whatever the simulator proves about
//! the server's behaviour carries over. The few decisions it does make are about safety and
//! honesty of the seam:
//!
//! - file paths are *relative to a data root* and anything that could climb out of it is
//!   refused, by the rule every Env shares ([`super::path`]; defence in depth: the server
//!   never builds such a path on purpose);
//! - blocking file work runs on tokio's blocking pool so a slow disk never stalls the sockets;
//! - durability is exactly what the caller asks for: `write`/`append` never fsync, `sync_file`
//!   and `sync_dir` always do;
//! - DNS answers and failures are mapped onto the three outcomes mail routing cares about
//!   (NXDOMAIN, NODATA, try-again-later), see [`dns`].

// This module IS the seam: clippy.toml forbids std::fs, tokio::net, the clocks, tokio::spawn
// and friends everywhere else in the crate precisely so that they can only be reached from here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod dns;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::{OsRng, SmallRng};
use rand::{RngCore, SeedableRng, TryRngCore};
use tokio::net::{TcpListener, TcpStream};

use super::{DnsError, Env, Listener, Record, RecordKind, Timestamp};

/// How a [`RealEnv`] is set up. `RealOptions::default()` is a quiet env that resolves with the
/// system's DNS configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RealOptions {
    /// Write every [`Env::trace`] event to stderr as `{UTC time} {source} {event}`. Off by
    /// default: the trace is the simulator's main artefact, in production it is a debug aid.
    pub verbose: bool,
    /// Nameservers to ask instead of the system's (`/etc/resolv.conf`). Each gets UDP with a
    /// TCP fallback on the same port. Empty means "use the system configuration".
    pub nameservers: Vec<SocketAddr>,
    /// Per-query DNS timeout; `None` keeps the system's (or hickory's 5 s) default.
    pub dns_timeout: Option<Duration>,
    /// How many times a failed DNS query is retried; `None` keeps the system's default.
    pub dns_attempts: Option<usize>,
}

/// The real-world [`Env`]. Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone)]
pub struct RealEnv {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    verbose: bool,
    resolver: dns::Resolver,
    /// Only used if the OS RNG ever fails, so that `random_u64` stays infallible.
    fallback_rng: Mutex<SmallRng>,
}

impl fmt::Debug for RealEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealEnv")
            .field("root", &self.inner.root)
            .field("verbose", &self.inner.verbose)
            .field("dns", &self.inner.resolver.source())
            .finish()
    }
}

impl RealEnv {
    /// Creates the env over `data_root`, creating that directory if needed.
    ///
    /// Fails if the root cannot be created, the OS RNG cannot seed the fallback generator, or
    /// the explicit DNS configuration is unusable. A missing or broken `/etc/resolv.conf` is
    /// *not* an error: the resolver falls back to a local one on loopback port 53, as the C
    /// library does when resolv.conf names no server.
    ///
    /// Needs no tokio runtime; the first lookup or socket call does.
    pub fn new(data_root: PathBuf, opts: RealOptions) -> io::Result<RealEnv> {
        std::fs::create_dir_all(&data_root)?;
        let fallback_rng = SmallRng::try_from_os_rng().map_err(io::Error::other)?;
        let resolver = dns::Resolver::new(&opts)?;
        let env = RealEnv {
            inner: Arc::new(Inner {
                root: data_root,
                verbose: opts.verbose,
                resolver,
                fallback_rng: Mutex::new(fallback_rng),
            }),
        };
        env.trace(
            "dns",
            format_args!("resolver: {}", env.inner.resolver.source()),
        );
        Ok(env)
    }

    /// The directory every file path is relative to.
    pub fn data_root(&self) -> &Path {
        &self.inner.root
    }

    /// Joins a world path onto the data root, after the one path rule every Env obeys
    /// ([`super::path::relative`]: no absolute, `..` or NUL paths; "" and "." are the root).
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        Ok(self.inner.root.join(super::path::relative(path)?))
    }

    /// Runs blocking file work on tokio's blocking pool, adding the operation and the world
    /// path to any error (keeping its kind, so `NotFound` checks still work).
    async fn blocking<T, F>(&self, op: &'static str, path: &Path, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let out = match tokio::task::spawn_blocking(f).await {
            Ok(out) => out,
            Err(join) => Err(io::Error::other(join)),
        };
        out.map_err(|e| io::Error::new(e.kind(), format!("{op} {}: {e}", path.display())))
    }
}

/// A listening TCP socket of the real world.
#[derive(Debug)]
pub struct RealListener {
    inner: TcpListener,
}

impl Listener for RealListener {
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        set_nodelay(&stream);
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn stream_local_addr(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        stream.local_addr()
    }
}

/// SMTP is a lock-step dialogue of short lines: Nagle's algorithm would only add delay-ACK
/// stalls to every reply. Failing to turn it off costs latency, not correctness, so an error
/// here does not fail the connection.
fn set_nodelay(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
}

impl RealEnv {
    fn log_line(&self, source: &str, event: fmt::Arguments<'_>) {
        let line = format!(
            "{} {source} {event}\n",
            crate::mail::date::rfc3339(self.now())
        );
        // One write of the whole line keeps concurrent tasks' lines whole; a closed stderr
        // must not take the server down, so the error is dropped.
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }
}

impl Env for RealEnv {
    type Stream = TcpStream;
    type Listener = RealListener;

    // ---- network ----

    async fn listen(&self, addr: SocketAddr) -> io::Result<RealListener> {
        let inner = TcpListener::bind(addr).await?;
        Ok(RealListener { inner })
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        set_nodelay(&stream);
        Ok(stream)
    }

    // ---- files ----

    async fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let full = self.resolve(path)?;
        self.blocking("read", path, move || std::fs::read(full))
            .await
    }

    async fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let full = self.resolve(path)?;
        let data = data.to_vec();
        self.blocking("write", path, move || File::create(full)?.write_all(&data))
            .await
    }

    /// One blocking task writes the whole batch: a group commit of N messages costs one
    /// thread hop instead of N threads.
    async fn write_many(&self, files: &[(PathBuf, &[u8])]) -> Vec<io::Result<()>> {
        let mut jobs = Vec::with_capacity(files.len());
        let mut results: Vec<Option<io::Result<()>>> = Vec::with_capacity(files.len());
        for (path, data) in files {
            match self.resolve(path) {
                Ok(full) => {
                    jobs.push((results.len(), path.clone(), full, data.to_vec()));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let done = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(i, rel, full, data)| {
                    let r = File::create(full)
                        .and_then(|mut f| f.write_all(&data))
                        .map_err(|e| {
                            io::Error::new(e.kind(), format!("write {}: {e}", rel.display()))
                        });
                    (i, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
        match done {
            Ok(written) => {
                for (i, r) in written {
                    results[i] = Some(r);
                }
            }
            Err(join) => {
                for r in results.iter_mut().filter(|r| r.is_none()) {
                    *r = Some(Err(io::Error::other(join.to_string())));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("write not attempted"))))
            .collect()
    }

    /// `std::io::copy` between two files is `copy_file_range` on Linux: the kernel copies
    /// (or reflinks) the spooled body; user space sees only `head`.
    async fn write_spliced(&self, path: &Path, head: &[u8], src: &Path) -> io::Result<()> {
        let full = self.resolve(path)?;
        let from = self.resolve(src)?;
        let head = head.to_vec();
        self.blocking("write", path, move || {
            let mut out = File::create(full)?;
            out.write_all(&head)?;
            std::io::copy(&mut File::open(from)?, &mut out)?;
            Ok(())
        })
        .await
    }

    async fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let full = self.resolve(path)?;
        let data = data.to_vec();
        self.blocking("append", path, move || {
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(full)?
                .write_all(&data)
        })
        .await
    }

    async fn sync_file(&self, path: &Path) -> io::Result<()> {
        let full = self.resolve(path)?;
        // fsync works on a read-only descriptor on Unix, and opening read-only never changes
        // the file or needs write permission.
        self.blocking("sync_file", path, move || File::open(full)?.sync_all())
            .await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let full_from = self.resolve(from)?;
        let full_to = self.resolve(to)?;
        self.blocking("rename", from, move || std::fs::rename(full_from, full_to))
            .await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let full = self.resolve(path)?;
        // Opening a directory read-only and fsyncing it is how POSIX makes the entries in it
        // (creations, renames, removals) durable.
        self.blocking("sync_dir", path, move || File::open(full)?.sync_all())
            .await
    }

    /// One `syncfs(2)` for the whole batch on Linux: a single journal commit and disk flush
    /// makes every file's data and every directory entry in the data root's filesystem
    /// durable, however many messages the batch holds. Elsewhere, one fsync per path.
    async fn sync_many(&self, files: &[PathBuf], dirs: &[PathBuf]) -> io::Result<()> {
        if files.is_empty() && dirs.is_empty() {
            return Ok(());
        }
        let mut full = Vec::with_capacity(files.len() + dirs.len());
        for p in files.iter().chain(dirs) {
            // Refuse what could climb out of the root, as every call does.
            full.push((p.clone(), self.resolve(p)?));
        }
        #[cfg(target_os = "linux")]
        {
            let root = self.inner.root.clone();
            self.blocking("syncfs", Path::new("."), move || {
                // syncfs flushes the whole filesystem and never looks at the paths: check
                // that each exists, so a missing one is `NotFound` here too, as it is for
                // sync_file/sync_dir and in every other world (env/conformance.rs).
                for (rel, p) in &full {
                    if let Err(e) = std::fs::symlink_metadata(p) {
                        return Err(io::Error::new(e.kind(), format!("{}: {e}", rel.display())));
                    }
                }
                let dir = File::open(root)?;
                rustix::fs::syncfs(&dir).map_err(io::Error::from)
            })
            .await
        }
        #[cfg(not(target_os = "linux"))]
        {
            for f in files {
                self.sync_file(f).await?;
            }
            for d in dirs {
                self.sync_dir(d).await?;
            }
            Ok(())
        }
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let full = self.resolve(path)?;
        self.blocking("remove_file", path, move || std::fs::remove_file(full))
            .await
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let full = self.resolve(path)?;
        self.blocking("create_dir_all", path, move || {
            std::fs::create_dir_all(full)
        })
        .await
    }

    /// Sorted, so the OS's directory order never leaks into behaviour. A name that is not
    /// UTF-8 (never created by the server) is converted lossily rather than failing the whole
    /// listing: one stray file must not hide the queue.
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let full = self.resolve(path)?;
        self.blocking("list_dir", path, move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(full)? {
                names.push(entry?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    // ---- time ----

    /// The wall clock. A clock set before 1970 reads as the epoch rather than panicking.
    fn now(&self) -> Timestamp {
        Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }

    /// Sleeps on tokio's monotonic timer, then re-reads the wall clock: if the clock was
    /// stepped back meanwhile it sleeps again, so on return `now() >= deadline` as promised.
    fn sleep_until(&self, deadline: Timestamp) -> impl Future<Output = ()> + Send {
        let env = self.clone();
        async move {
            loop {
                let left = deadline.since(env.now());
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        }
    }

    // ---- DNS ----

    async fn lookup(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        self.inner.resolver.lookup(name, kind).await
    }

    // ---- randomness ----

    /// The OS RNG, one `getrandom` per call: a few hundred nanoseconds, nothing at mail rates,
    /// and it keeps IDs unpredictable. If the OS ever refuses, a generator seeded from it at
    /// start-up takes over rather than panicking.
    fn random_u64(&self) -> u64 {
        match OsRng.try_next_u64() {
            Ok(n) => n,
            Err(_) => self
                .inner
                .fallback_rng
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .next_u64(),
        }
    }

    // ---- tasks ----

    /// Detached: the server owns its tasks' lifetimes through its own shutdown signals.
    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(tokio::spawn(fut));
    }

    /// On the blocking pool. A panic in `work` is the caller's panic, re-raised here; a
    /// runtime shutting down cancels the task, and then this never completes (the runtime is
    /// dropping every future anyway).
    async fn compute<T, F>(&self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match tokio::task::spawn_blocking(work).await {
            Ok(out) => out,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => std::future::pending().await,
            },
        }
    }

    // ---- observability ----

    /// One line to stderr when verbose; when not, returns before formatting anything, so a
    /// busy server pays one branch per event.
    fn trace(&self, source: &str, event: fmt::Arguments<'_>) {
        if self.inner.verbose {
            self.log_line(source, event);
        }
    }

    /// Always on stderr, verbose or not.
    fn warn(&self, source: &str, event: fmt::Arguments<'_>) {
        self.log_line(source, event);
    }
}

#[cfg(test)]
mod tests;
