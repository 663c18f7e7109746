//! An Env whose clock only the test moves, so the client's timeouts fire on a deadline the
//! test chooses instead of after real sleeps. Only the clock is real here: the client never
//! touches files, sockets, DNS or the RNG (it is handed an already-connected stream).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::env::fake::NoListener;
use crate::env::{DnsError, Env, Record, RecordKind, Timestamp};

#[derive(Clone)]
pub struct ClockEnv {
    now: Arc<watch::Sender<Timestamp>>,
}

impl ClockEnv {
    /// A clock at a fixed, arbitrary time.
    pub fn new() -> ClockEnv {
        ClockEnv {
            now: Arc::new(watch::Sender::new(Timestamp::from_secs(1_000_000))),
        }
    }

    /// Moves the clock forward; every sleeper whose deadline is reached wakes.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|t| *t = t.plus(by));
    }
}

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "ClockEnv has only a clock")
}

impl Env for ClockEnv {
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
        *self.now.borrow()
    }
    async fn sleep_until(&self, deadline: Timestamp) {
        let mut rx = self.now.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = rx.wait_for(|now| *now >= deadline).await;
    }
    async fn lookup(&self, _: &str, _: RecordKind) -> Result<Vec<Record>, DnsError> {
        Err(DnsError::Temporary("ClockEnv has no DNS".into()))
    }
    fn random_u64(&self) -> u64 {
        4 // no randomness is needed by the client
    }
    fn spawn<F>(&self, _: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        unreachable!("the client spawns nothing")
    }
    fn trace(&self, _: &str, _: fmt::Arguments<'_>) {}
}
