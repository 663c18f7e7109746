//! The accept loop against a scripted listener on a test Env: accept errors back off on the
//! Env clock and never end the loop; the end of the grace period waits for a delivery.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, Notify};

use super::*;
use crate::env::fake::FakeEnv;
use crate::env::{DnsError, Record, RecordKind, Timestamp};

type Accepted = io::Result<(DuplexStream, SocketAddr)>;

/// A listener whose accepts are whatever the test sends.
struct Script(mpsc::UnboundedReceiver<Accepted>);

impl Listener for Script {
    type Stream = DuplexStream;
    async fn accept(&mut self) -> Accepted {
        match self.0.recv().await {
            Some(a) => a,
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::from(([127, 0, 0, 1], 25)))
    }
}

/// FakeEnv's clock (sleeping jumps it), trace and tasks; no files or sockets.
#[derive(Clone, Default)]
struct TestEnv(FakeEnv);

fn none() -> io::Error {
    io::Error::from(io::ErrorKind::Unsupported)
}

impl Env for TestEnv {
    type Stream = DuplexStream;
    type Listener = Script;
    async fn listen(&self, _: SocketAddr) -> io::Result<Script> {
        Err(none())
    }
    async fn connect(&self, _: SocketAddr) -> io::Result<DuplexStream> {
        Err(none())
    }
    async fn read(&self, _: &Path) -> io::Result<Vec<u8>> {
        Err(none())
    }
    async fn write(&self, _: &Path, _: &[u8]) -> io::Result<()> {
        Err(none())
    }
    async fn append(&self, _: &Path, _: &[u8]) -> io::Result<()> {
        Err(none())
    }
    async fn sync_file(&self, _: &Path) -> io::Result<()> {
        Err(none())
    }
    async fn rename(&self, _: &Path, _: &Path) -> io::Result<()> {
        Err(none())
    }
    async fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Err(none())
    }
    async fn remove_file(&self, _: &Path) -> io::Result<()> {
        Err(none())
    }
    async fn create_dir_all(&self, _: &Path) -> io::Result<()> {
        Err(none())
    }
    async fn list_dir(&self, _: &Path) -> io::Result<Vec<String>> {
        Err(none())
    }
    fn now(&self) -> Timestamp {
        self.0.now()
    }
    async fn sleep_until(&self, deadline: Timestamp) {
        self.0.sleep_until(deadline).await
    }
    async fn lookup(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        self.0.lookup(name, kind).await
    }
    fn random_u64(&self) -> u64 {
        self.0.random_u64()
    }
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        self.0.spawn(fut)
    }
    fn trace(&self, source: &str, event: fmt::Arguments<'_>) {
        self.0.trace(source, event)
    }
}

/// Counts sessions and busy replies; a session may hold a delivery until released.
#[derive(Clone, Default)]
struct Probe {
    served: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
    /// When set, a session enters a critical section and waits for `release`.
    deliver: bool,
    release: Arc<Notify>,
    delivered: Arc<AtomicUsize>,
}

impl Protocol<TestEnv> for Probe {
    fn name(&self) -> &'static str {
        "test"
    }
    fn serve(&self, conn: Connection<TestEnv>) -> impl Future<Output = ()> + Send + 'static {
        let p = self.clone();
        async move {
            p.served.fetch_add(1, Ordering::SeqCst);
            if p.deliver {
                let held = conn.critical.enter();
                p.release.notified().await;
                p.delivered.fetch_add(1, Ordering::SeqCst);
                drop(held);
            }
            // An idle client that never leaves.
            let _stream = conn.stream;
            std::future::pending::<()>().await;
        }
    }
    fn busy(
        &self,
        _: DuplexStream,
        _: SocketAddr,
        _: u64,
    ) -> impl Future<Output = ()> + Send + 'static {
        let busy = self.busy.clone();
        async move {
            busy.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn conn() -> Accepted {
    let (a, _b) = tokio::io::duplex(64);
    Ok((a, SocketAddr::from(([192, 0, 2, 1], 40000))))
}

fn os(e: Errno) -> Accepted {
    Err(io::Error::from_raw_os_error(e.raw_os_error()))
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn accept_errors_back_off_on_the_env_clock_and_never_end_the_loop() {
    let env = TestEnv::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe::default();
    let mut listeners = Listeners::new(env.clone());
    listeners.add(Script(rx), 10, probe.clone()).unwrap();
    let shutdown = listeners.shutdown();
    for a in [os(Errno::MFILE), os(Errno::NFILE), os(Errno::MFILE), conn()] {
        tx.send(a).unwrap();
    }
    for a in [os(Errno::CONNABORTED), os(Errno::NOBUFS), conn()] {
        tx.send(a).unwrap();
    }
    #[allow(clippy::disallowed_methods)] // the test's runtime drives the loop
    let run = tokio::spawn(listeners.run(Duration::from_secs(1)));
    settle().await;
    assert_eq!(
        probe.served.load(Ordering::SeqCst),
        2,
        "{:#?}",
        env.0.traced()
    );
    let waits: Vec<String> = env
        .0
        .traced()
        .iter()
        .filter_map(|l| l.split("retrying in ").nth(1).map(str::to_string))
        .collect();
    // Doubling while out of descriptors, at once for an aborted connection, and back to
    // the first wait after a success.
    assert_eq!(waits, ["5ms", "10ms", "20ms", "0ns", "5ms"]);
    assert_eq!(
        env.now(),
        Timestamp(Duration::from_millis(40)),
        "waited on the Env clock"
    );
    assert!(!run.is_finished(), "an accept error ended the loop");
    shutdown.force();
    run.await.unwrap();
    assert!(env
        .0
        .traced()
        .iter()
        .any(|l| l.contains("cutting off 2 sessions")));
}

#[tokio::test]
async fn over_the_limit_gets_the_busy_reply() {
    let env = TestEnv::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe::default();
    let mut listeners = Listeners::new(env.clone());
    listeners.add(Script(rx), 2, probe.clone()).unwrap();
    let shutdown = listeners.shutdown();
    for _ in 0..3 {
        tx.send(conn()).unwrap();
    }
    #[allow(clippy::disallowed_methods)] // the test's runtime drives the loop
    let run = tokio::spawn(listeners.run(Duration::from_secs(1)));
    settle().await;
    assert_eq!(probe.served.load(Ordering::SeqCst), 2);
    assert_eq!(probe.busy.load(Ordering::SeqCst), 1);
    shutdown.force();
    run.await.unwrap();
}

#[tokio::test]
async fn the_end_of_the_grace_period_waits_for_a_delivery_in_progress() {
    let env = TestEnv::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe {
        deliver: true,
        ..Probe::default()
    };
    let mut listeners = Listeners::new(env.clone());
    listeners.add(Script(rx), 10, probe.clone()).unwrap();
    let shutdown = listeners.shutdown();
    tx.send(conn()).unwrap();
    #[allow(clippy::disallowed_methods)] // the test's runtime drives the loop
    let run = tokio::spawn(listeners.run(Duration::from_secs(5)));
    settle().await;
    assert_eq!(probe.served.load(Ordering::SeqCst), 1);
    shutdown.begin();
    settle().await;
    // The grace period is over (the test clock jumps), but the delivery is not.
    assert!(env
        .0
        .traced()
        .iter()
        .any(|l| l.contains("cutting off 1 sessions")));
    assert!(!run.is_finished(), "cut off in the middle of a delivery");
    probe.release.notify_waiters();
    run.await.unwrap();
    assert_eq!(probe.delivered.load(Ordering::SeqCst), 1);
    let trace = env.0.traced();
    assert!(trace.iter().any(|l| l.contains("#1 cut off")), "{trace:#?}");
    assert_eq!(trace.last().unwrap(), "listener all sessions ended");
}

#[tokio::test]
async fn sessions_that_end_within_the_grace_period_are_not_cut_off() {
    let env = TestEnv::default();
    let (_tx, rx) = mpsc::unbounded_channel();
    let mut listeners = Listeners::new(env.clone());
    listeners.add(Script(rx), 10, Probe::default()).unwrap();
    listeners.shutdown().begin();
    listeners.run(Duration::from_secs(5)).await;
    let trace = env.0.traced();
    assert!(
        !trace.iter().any(|l| l.contains("cutting off")),
        "{trace:#?}"
    );
    assert_eq!(env.now(), Timestamp::default(), "no wait without sessions");
}
