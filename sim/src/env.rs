//! The simulated world's side of the Env seam: turmoil sockets, turmoil's simulated
//! filesystem (crash semantics included), the warpable [`SimClock`], the fake DNS over
//! simulated UDP, and an RNG seeded from the scenario seed.
//!
//! Every call bumps an activity counter the runner reads to decide quiescence (no Env
//! activity for a step + nothing in flight ⇒ safe to warp time).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailsim_server::env::{DnsError, Env, Listener, Record, RecordKind, Timestamp};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use turmoil::fs::shim::std::fs as simfs;

use crate::clock::SimClock;
use crate::trace::Trace;

pub mod disk;
use disk::{DiskFaults, WriteVerdict};

/// How long the server's resolver waits for the fake DNS before calling it a timeout.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared counter of Env calls across the world (for quiescence detection).
#[derive(Clone, Default)]
pub struct Activity(Arc<AtomicU64>);

impl Activity {
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct SimEnv {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    root: PathBuf,
    clock: SimClock,
    trace: Trace,
    rng: Mutex<SmallRng>,
    dns_server: SocketAddr,
    dns_ids: AtomicU64,
    activity: Activity,
    fs_latency: Duration,
    disk: DiskFaults,
}

impl SimEnv {
    pub fn new(
        host: impl Into<String>,
        clock: SimClock,
        trace: Trace,
        seed: u64,
        dns_server: SocketAddr,
        activity: Activity,
    ) -> Self {
        SimEnv {
            inner: Arc::new(Inner {
                host: host.into(),
                root: PathBuf::from("/data"),
                clock,
                trace,
                rng: Mutex::new(SmallRng::seed_from_u64(seed)),
                dns_server,
                dns_ids: AtomicU64::new(1),
                activity,
                fs_latency: Duration::ZERO,
                disk: DiskFaults::default(),
            }),
        }
    }

    /// Every file operation takes this much simulated time (so crashes can fall between them).
    pub fn with_fs_latency(mut self, latency: Duration) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("configure before cloning")
            .fs_latency = latency;
        self
    }

    /// The world's disk faults (`[[fault]]` kinds io_error, disk_full, torn_write).
    pub fn with_disk_faults(mut self, disk: DiskFaults) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("configure before cloning")
            .disk = disk;
        self
    }

    /// The data root inside the host's simulated filesystem.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The server's one path rule ([`mailsim_server::env::path::relative`]), then the host's
    /// data root: the simulated world refuses exactly what the real one refuses.
    fn path(&self, p: &Path) -> io::Result<PathBuf> {
        Ok(self
            .inner
            .root
            .join(mailsim_server::env::path::relative(p)?))
    }

    fn act(&self) {
        self.inner.activity.bump();
    }

    /// Called before each file operation: counts as activity and waits out the latency.
    async fn fs_op(&self) {
        self.act();
        if !self.inner.fs_latency.is_zero() {
            let until = self.now().plus(self.inner.fs_latency);
            self.inner.clock.sleep_until(until).await;
        }
    }

    /// One write or append of `data` to `path` through the disk faults: `op` does the
    /// write. A torn write puts the first half of `data` on the disk durably (the file is
    /// synced; its directory entry is whatever it already was) and never returns: the runner
    /// crashes the host before the next step, as a power cut mid-`write(2)` would.
    async fn faulty_write(
        &self,
        path: &Path,
        data: &[u8],
        op: impl Fn(&Path, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        match self.inner.disk.write() {
            WriteVerdict::Go => op(path, data),
            WriteVerdict::Fail(e) => Err(e),
            WriteVerdict::Tear => {
                let part = &data[..data.len() / 2];
                let kept = op(path, part)
                    .and_then(|()| simfs::File::open(path)?.sync_all())
                    .map_err(errno_kind);
                self.trace(
                    "fault",
                    format_args!(
                        "torn write: {} of {} octets of {} reached the disk ({})",
                        part.len(),
                        data.len(),
                        path.strip_prefix(&self.inner.root)
                            .unwrap_or(path)
                            .display(),
                        match kept {
                            Ok(()) => "synced".to_string(),
                            Err(e) => e.to_string(),
                        }
                    ),
                );
                std::future::pending().await
            }
        }
    }

    fn synced(&self) -> io::Result<()> {
        self.inner.disk.sync()
    }
}

fn sim_write(path: &Path, data: &[u8]) -> io::Result<()> {
    simfs::write(path, data).map_err(errno_kind)
}

fn sim_append(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = simfs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(errno_kind)?;
    f.write_all(data).map_err(errno_kind)
}

/// turmoil's filesystem reports some failures (`rename`, `sync_dir`, `mkdir`, `sync_all`)
/// as `ErrorKind::Other` with the errno's text; give them the kind the real syscall has, so
/// `NotFound` means the same in both worlds (found by `mailsim_server::env::conformance`).
/// Other errors — turmoil's injected "I/O error" among them — stay as they are.
fn errno_kind(e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::Other {
        return e;
    }
    let kind = match e.to_string().as_str() {
        "No such file or directory" => io::ErrorKind::NotFound,
        "File exists" => io::ErrorKind::AlreadyExists,
        "Is a directory" => io::ErrorKind::IsADirectory,
        "Not a directory" => io::ErrorKind::NotADirectory,
        "Directory not empty" => io::ErrorKind::DirectoryNotEmpty,
        "No space left on device" => io::ErrorKind::StorageFull,
        _ => return e,
    };
    io::Error::new(kind, e)
}

pub struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    type Stream = turmoil::net::TcpStream;
    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        self.0.accept().await
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
    fn stream_local_addr(&self, stream: &Self::Stream) -> io::Result<SocketAddr> {
        stream.local_addr()
    }
}

impl Env for SimEnv {
    type Stream = turmoil::net::TcpStream;
    type Listener = SimListener;

    async fn listen(&self, addr: SocketAddr) -> io::Result<SimListener> {
        self.act();
        // Inside the simulated host we bind every interface on the port asked for.
        let bind = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        Ok(SimListener(turmoil::net::TcpListener::bind(bind).await?))
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        self.act();
        turmoil::net::TcpStream::connect(addr).await
    }

    async fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.fs_op().await;
        simfs::read(self.path(path)?).map_err(errno_kind)
    }

    async fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.fs_op().await;
        self.faulty_write(&self.path(path)?, data, sim_write).await
    }

    async fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.fs_op().await;
        self.faulty_write(&self.path(path)?, data, sim_append).await
    }

    async fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.fs_op().await;
        self.synced()?;
        simfs::File::open(self.path(path)?)?
            .sync_all()
            .map_err(errno_kind)
    }

    /// A batch of writes costs one file-system latency, as in the real world, where the whole
    /// batch is written from one blocking task (`Env::write_many`'s contract).
    async fn write_many(&self, files: &[(PathBuf, &[u8])]) -> Vec<io::Result<()>> {
        self.fs_op().await;
        let mut out = Vec::with_capacity(files.len());
        for (path, data) in files {
            out.push(match self.path(path) {
                Ok(p) => self.faulty_write(&p, data, sim_write).await,
                Err(e) => Err(e),
            });
        }
        out
    }

    /// One latency for the whole batch, as the real world's one `syncfs`; each path is
    /// synced with turmoil's durability model, so a crash loses exactly what it would lose
    /// after per-file syncs.
    async fn sync_many(&self, files: &[PathBuf], dirs: &[PathBuf]) -> io::Result<()> {
        self.fs_op().await;
        self.synced()?;
        for f in files {
            simfs::File::open(self.path(f)?)
                .map_err(errno_kind)?
                .sync_all()
                .map_err(errno_kind)?;
        }
        for d in dirs {
            simfs::sync_dir(self.path(d)?).map_err(errno_kind)?;
        }
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.fs_op().await;
        simfs::rename(self.path(from)?, self.path(to)?).map_err(errno_kind)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.fs_op().await;
        self.synced()?;
        simfs::sync_dir(self.path(path)?).map_err(errno_kind)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.fs_op().await;
        simfs::remove_file(self.path(path)?).map_err(errno_kind)
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.fs_op().await;
        let path = self.path(path)?;
        // A directory that exists takes no space: only a creation fails on a full disk.
        if !simfs::exists(&path) {
            self.inner.disk.mkdir()?;
        }
        simfs::create_dir_all(path).map_err(errno_kind)
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.fs_op().await;
        let mut names = Vec::new();
        for entry in simfs::read_dir(self.path(path)?).map_err(errno_kind)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        self.inner.clock.sleep_until(deadline).await
    }

    async fn lookup(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        self.act();
        let id = (self.inner.dns_ids.fetch_add(1, Ordering::Relaxed) & 0xffff) as u16;
        let deadline = self.now().plus(DNS_TIMEOUT);
        let clock = self.inner.clock.clone();
        crate::dns::client::query(self.inner.dns_server, name, kind, id, async move {
            clock.sleep_until(deadline).await
        })
        .await
    }

    fn random_u64(&self) -> u64 {
        self.inner.rng.lock().unwrap().next_u64()
    }

    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.act();
        // Tasks live in the host's LocalSet: a crash of the host drops them all.
        tokio::task::spawn_local(fut);
    }

    fn trace(&self, source: &str, event: fmt::Arguments<'_>) {
        self.act();
        self.inner.trace.record(&self.inner.host, source, event);
    }
}
