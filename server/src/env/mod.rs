//! The Env seam: the only way the server touches the world.
//!
//! Every effect the mail server has — sockets, files, the clock and timers, DNS, randomness,
//! spawning tasks, and the trace — goes through [`Env`]. Two worlds implement it: [`real`]
//! (tokio sockets, std files, hickory-resolver, the OS RNG) for `mailsim serve`, and the
//! simulator's turmoil-backed env in the `mailsim` crate. `clippy.toml` forbids the direct
//! calls inside this crate so the seam cannot silently leak; only `env/real.rs` may use them.
//!
//! The trait is deliberately small: a few file primitives with an explicit `sync`, so the
//! store decides where durability is paid for; a clock that is *read*, never assumed; one DNS
//! call for every record type.

pub mod conformance;
/// An in-memory Env for tests and benchmarks (feature `testing` outside this crate's tests).
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod path;
pub mod real;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

/// Time is a core type (`mail/time.rs`); the seam is where it is read.
pub use crate::mail::Timestamp;

/// The record types the server asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    Mx,
    A,
    Aaaa,
    Txt,
    Ptr,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::Mx => "MX",
            RecordKind::A => "A",
            RecordKind::Aaaa => "AAAA",
            RecordKind::Txt => "TXT",
            RecordKind::Ptr => "PTR",
        })
    }
}

/// One answer record. Names are lower-case and carry no trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Record {
    Mx { preference: u16, exchange: String },
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Txt(String),
    Ptr(String),
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Mx {
                preference,
                exchange,
            } => write!(f, "MX {preference} {exchange}"),
            Record::A(ip) => write!(f, "A {ip}"),
            Record::Aaaa(ip) => write!(f, "AAAA {ip}"),
            Record::Txt(t) => write!(f, "TXT {t:?}"),
            Record::Ptr(p) => write!(f, "PTR {p}"),
        }
    }
}

/// Why a lookup gave no records. The distinction matters to mail routing: NXDOMAIN is
/// permanent (bounce 5.1.2), a temporary failure means "try again later".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist.
    NxDomain,
    /// The name exists but has no records of that type (NODATA).
    NoRecords,
    /// SERVFAIL, timeout, unreachable resolver: try again later.
    Temporary(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NxDomain => f.write_str("NXDOMAIN"),
            DnsError::NoRecords => f.write_str("NODATA"),
            DnsError::Temporary(why) => write!(f, "temporary failure: {why}"),
        }
    }
}

/// A listening socket of either world.
pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// The address an accepted connection was made to. A listener bound to every interface
    /// (`0.0.0.0:25`) only knows its port; the session needs the address the client chose,
    /// e.g. to recognise `user@[our IP]` as local (RFC 1123 §5.2.17). The default is the
    /// listener's own address, right for worlds that bind one address only.
    fn stream_local_addr(&self, stream: &Self::Stream) -> io::Result<SocketAddr> {
        let _ = stream;
        self.local_addr()
    }
}

/// Everything the server may do to the world. See the module docs.
pub trait Env: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Listener: Listener<Stream = Self::Stream>;

    // ---- network ----
    fn listen(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    // ---- files: paths are relative to the world's data root ----
    // Every world checks each path with the one rule, [`path::relative`]: absolute, `..` and
    // NUL are `InvalidInput`; "" and "." are the root. [`conformance`] holds them to it.
    /// Reads a whole file.
    fn read(&self, path: &Path) -> impl Future<Output = io::Result<Vec<u8>>> + Send;
    /// Creates (or truncates) a file and writes `data`. Not durable until [`Env::sync_file`].
    fn write(&self, path: &Path, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Writes several files (create or truncate each), not durable until synced. A world
    /// may do it in one go (the real one: one blocking task instead of one per file).
    /// Returns one result per file, in order.
    fn write_many(
        &self,
        files: &[(PathBuf, &[u8])],
    ) -> impl Future<Output = Vec<io::Result<()>>> + Send {
        async move {
            let mut out = Vec::with_capacity(files.len());
            for (path, data) in files {
                out.push(self.write(path, data).await);
            }
            out
        }
    }
    /// Creates (or truncates) `path` with `head` followed by the whole content of the file
    /// `src` (which stays as it is). Not durable until synced. This is how a spooled message
    /// (`mail/message.rs`) reaches a store's file: the real world copies in the kernel
    /// (`copy_file_range`, a reflink where the filesystem shares extents), so the body never
    /// passes through user memory. By default: read `src`, write both.
    fn write_spliced(
        &self,
        path: &Path,
        head: &[u8],
        src: &Path,
    ) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            let rest = self.read(src).await?;
            let mut data = Vec::with_capacity(head.len() + rest.len());
            data.extend_from_slice(head);
            data.extend_from_slice(&rest);
            self.write(path, &data).await
        }
    }
    /// Appends to a file, creating it if needed. Not durable until [`Env::sync_file`].
    fn append(&self, path: &Path, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// fsync: the file's contents are on stable storage when this returns.
    fn sync_file(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Atomically renames; durable once the parent directory is synced.
    fn rename(&self, from: &Path, to: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// fsync of a directory: creations, renames and removals in it are durable.
    fn sync_dir(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Makes the contents of every file in `files` and the entries of every directory in
    /// `dirs` durable, as `sync_file` and `sync_dir` on each would — but a world may do it
    /// with fewer disk flushes (the real one: one `syncfs` for the whole batch). This is what
    /// group commit stands on: N messages, two flushes.
    fn sync_many(
        &self,
        files: &[PathBuf],
        dirs: &[PathBuf],
    ) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            for f in files {
                self.sync_file(f).await?;
            }
            for d in dirs {
                self.sync_dir(d).await?;
            }
            Ok(())
        }
    }
    fn remove_file(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    fn create_dir_all(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Names in a directory, sorted (iteration order must never leak into behaviour).
    fn list_dir(&self, path: &Path) -> impl Future<Output = io::Result<Vec<String>>> + Send;

    // ---- time ----
    /// The world's current time.
    fn now(&self) -> Timestamp;
    /// Completes once [`Env::now`] is at or past `deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> impl Future<Output = ()> + Send;

    // ---- DNS ----
    fn lookup(
        &self,
        name: &str,
        kind: RecordKind,
    ) -> impl Future<Output = Result<Vec<Record>, DnsError>> + Send;

    // ---- randomness ----
    /// A random number: the OS RNG in the real world, the scenario seed's stream in the sim.
    fn random_u64(&self) -> u64;

    // ---- tasks ----
    fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Runs CPU-bound work (an argon2 password check: tens of milliseconds) and gives back
    /// its result. The real world runs it on tokio's blocking pool, so one AUTH does not
    /// stall every session on the same async worker (tokio's advice for anything over
    /// ~100 µs between awaits). By default it runs inline: the simulation and the test
    /// doubles have one thread per host anyway, and inline work is deterministic.
    fn compute<T, F>(&self, work: F) -> impl Future<Output = T> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        std::future::ready(work())
    }

    // ---- observability ----
    /// Records one event of the server (a protocol line, a commit, a decision). The sim puts
    /// it in the trace with the simulated time; the real world logs it when asked to.
    fn trace(&self, source: &str, event: fmt::Arguments<'_>);

    /// Records an event an operator must hear of even when nobody asked for a trace (an
    /// accept error such as EMFILE, say). The real world always logs it; by default it is a
    /// trace line like any other, which is what the simulator keeps.
    fn warn(&self, source: &str, event: fmt::Arguments<'_>) {
        self.trace(source, event)
    }
}

/// Runs `fut` until `deadline` on the env's clock; `None` if the deadline came first.
///
/// Every timeout in the server goes through this, so a warp of simulated time fires it on the
/// simulated deadline instead of skipping or stretching it.
pub async fn timeout_at<E: Env, F: Future>(
    env: &E,
    deadline: Timestamp,
    fut: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        out = fut => Some(out),
        _ = env.sleep_until(deadline) => None,
    }
}

/// Creates `dir` and its ancestors, syncing each parent so the folders survive a crash (a
/// new directory's entry is durable only once its parent is synced).
pub async fn create_dir_durable<E: Env>(env: &E, dir: &Path) -> io::Result<()> {
    env.create_dir_all(dir).await?;
    let mut prefix = PathBuf::new();
    for part in dir.components() {
        // The first parent is the data root: the empty path (see `path`).
        let parent = prefix.clone();
        prefix.push(part);
        env.sync_dir(&parent).await?;
    }
    env.sync_dir(dir).await
}

/// A whole message in memory: its head and, if it is spooled, the spool file's content
/// (checked against the length the session wrote). For the few consumers that need every
/// octet at once (DKIM signing of submitted mail); the stores copy spool files instead.
pub async fn read_message<E: Env>(env: &E, message: &crate::mail::Message) -> io::Result<Vec<u8>> {
    let Some(spool) = message.spool() else {
        return Ok(message.head().to_vec());
    };
    let rest = env.read(&spool.path).await?;
    if rest.len() as u64 != spool.len {
        return Err(io::Error::other(format!(
            "spool file {} has {} octets, {} were written",
            spool.path.display(),
            rest.len(),
            spool.len
        )));
    }
    let mut out = Vec::with_capacity(message.head().len() + rest.len());
    out.extend_from_slice(message.head());
    out.extend_from_slice(&rest);
    Ok(out)
}

/// Convenience: all the addresses a name's A and AAAA records give, A first.
pub async fn lookup_ips<E: Env>(env: &E, name: &str) -> Result<Vec<IpAddr>, DnsError> {
    let mut ips = Vec::new();
    let mut last_err = None;
    for kind in [RecordKind::A, RecordKind::Aaaa] {
        match env.lookup(name, kind).await {
            Ok(records) => ips.extend(records.into_iter().filter_map(|r| match r {
                Record::A(ip) => Some(IpAddr::V4(ip)),
                Record::Aaaa(ip) => Some(IpAddr::V6(ip)),
                _ => None,
            })),
            Err(e) => last_err = Some(e),
        }
    }
    match (ips.is_empty(), last_err) {
        (false, _) => Ok(ips),
        (true, Some(e)) => Err(e),
        (true, None) => Err(DnsError::NoRecords),
    }
}
