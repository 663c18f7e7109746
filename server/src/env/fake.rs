//! A test double of the Env for unit tests of logic that needs DNS, time or randomness but
//! no sockets or files: scripted DNS answers, a clock the test sets, a counting RNG.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
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
    io::Error::new(
        io::ErrorKind::Unsupported,
        "FakeEnv has no sockets or files",
    )
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
    async fn read(&self, _: &Path) -> io::Result<Vec<u8>> {
        Err(unsupported())
    }
    async fn write(&self, _: &Path, _: &[u8]) -> io::Result<()> {
        Err(unsupported())
    }
    async fn append(&self, _: &Path, _: &[u8]) -> io::Result<()> {
        Err(unsupported())
    }
    async fn sync_file(&self, _: &Path) -> io::Result<()> {
        Err(unsupported())
    }
    async fn rename(&self, _: &Path, _: &Path) -> io::Result<()> {
        Err(unsupported())
    }
    async fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Err(unsupported())
    }
    async fn remove_file(&self, _: &Path) -> io::Result<()> {
        Err(unsupported())
    }
    async fn create_dir_all(&self, _: &Path) -> io::Result<()> {
        Err(unsupported())
    }
    async fn list_dir(&self, _: &Path) -> io::Result<Vec<String>> {
        Err(unsupported())
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
