//! The driver over an in-memory stream on the test Env (whose clock jumps to any deadline
//! slept on): every way a session ends tells the policy exactly once that it closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::config::ServerConfig;
use crate::env::fake::FakeEnv;
use crate::mail::{DeliveryError, Envelope, Message, Timestamp};
use crate::policy::{Check, Stage, Verdict};
use crate::smtp::Offers;

/// Records what it is asked; at MAIL it never answers when `hang_at_mail`.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    hang_at_mail: bool,
}

impl Recorder {
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
    fn closes(&self) -> usize {
        self.events().iter().filter(|e| *e == "closed").count()
    }
}

impl Policy for Recorder {
    fn check(&self, check: &Check) -> impl Future<Output = Verdict> + Send {
        let stage = match check.stage {
            Stage::Connect => "connect",
            Stage::Mail { .. } => "mail",
            Stage::Rcpt { .. } => "rcpt",
            Stage::EndOfData { .. } => "data",
        };
        self.events.lock().unwrap().push(format!("check:{stage}"));
        let hang = self.hang_at_mail && stage == "mail";
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Verdict::Accept
        }
    }
    fn closed(&self, client: &Client) {
        assert_eq!(client.remote, peer().remote);
        self.events.lock().unwrap().push("closed".into());
    }
}

#[derive(Clone)]
struct Store;

impl Deliver for Store {
    async fn deliver(&self, _: &Envelope, _: &Message) -> Result<String, DeliveryError> {
        Ok("Q1".into())
    }
}

fn config() -> Arc<SessionConfig> {
    let cfg: ServerConfig = toml::from_str(
        "hostname = \"mx.example.org\"\ndomains = [\"example.org\"]\naccounts = [\"bob@example.org\"]\n",
    )
    .unwrap();
    let directory = cfg.validate().unwrap();
    Arc::new(SessionConfig {
        hostname: cfg.hostname,
        limits: cfg.limits,
        directory: Arc::new(directory),
        relay_networks: Vec::new(),
        offers: Offers::default(),
        quota: None,
        spool_dir: None,
    })
}

fn peer() -> PeerInfo {
    PeerInfo {
        remote: SocketAddr::from(([203, 0, 113, 5], 40000)),
        local: SocketAddr::from(([192, 0, 2, 1], 25)),
    }
}

fn env() -> FakeEnv {
    let env = FakeEnv::new();
    env.set_now(Timestamp::from_secs(1_700_000_000));
    env
}

/// Runs a session to its end against `client_sends` (written before the session starts);
/// `then` decides what the client does after writing: keep the connection open, or shut
/// down its sending half. Returns what the server wrote.
async fn run(policy: &Recorder, client_sends: &str, shut_write: bool) -> String {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client.write_all(client_sends.as_bytes()).await.unwrap();
    if shut_write {
        client.shutdown().await.unwrap();
    }
    run_session_with(
        env(),
        server,
        peer(),
        config(),
        Store,
        1,
        policy,
        &NoAccounts,
        TlsMode::None,
        &Latch::new(),
    )
    .await;
    read_all(&mut client).await
}

async fn read_all(client: &mut DuplexStream) -> String {
    let mut got = Vec::new();
    let _ = client.read_to_end(&mut got).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn quit_releases_once() {
    let p = Recorder::default();
    let got = run(&p, "EHLO c.test\r\nQUIT\r\n", false).await;
    assert!(got.contains("221 2.0.0"), "{got}");
    assert_eq!(p.events(), ["check:connect", "closed"]);
}

#[tokio::test]
async fn a_timeout_releases_once() {
    let p = Recorder::default();
    let got = run(&p, "EHLO c.test\r\n", false).await;
    assert!(got.contains("421 4.4.2"), "{got}");
    assert_eq!(p.events(), ["check:connect", "closed"]);
}

#[tokio::test]
async fn a_disconnect_mid_data_releases_once() {
    let p = Recorder::default();
    let got = run(
        &p,
        "EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: x\r\n\r\nhalf a bo",
        true,
    )
    .await;
    assert!(got.contains("354"), "{got}");
    assert_eq!(
        p.events(),
        ["check:connect", "check:mail", "check:rcpt", "closed"]
    );
}

#[tokio::test]
async fn too_many_errors_release_once() {
    let p = Recorder::default();
    let got = run(&p, &"FOO\r\n".repeat(30), false).await;
    assert!(got.contains("421 4.7.0"), "{got}");
    assert_eq!(p.closes(), 1);
}

#[tokio::test]
async fn a_failed_write_releases_once() {
    let p = Recorder::default();
    let (client, server) = tokio::io::duplex(64);
    drop(client);
    run_session_with(
        env(),
        server,
        peer(),
        config(),
        Store,
        1,
        &p,
        &NoAccounts,
        TlsMode::None,
        &Latch::new(),
    )
    .await;
    assert_eq!(p.events(), ["check:connect", "closed"]);
}

#[tokio::test]
async fn a_dropped_session_releases_once() {
    // The end of a shutdown's grace period drops the session's future mid-way.
    let p = Recorder {
        hang_at_mail: true,
        ..Recorder::default()
    };
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client
        .write_all(b"EHLO c.test\r\nMAIL FROM:<a@remote.test>\r\n")
        .await
        .unwrap();
    let latch = Latch::new();
    let mut session = Box::pin(run_session_with(
        env(),
        server,
        peer(),
        config(),
        Store,
        1,
        &p,
        &NoAccounts,
        TlsMode::None,
        &latch,
    ));
    tokio::select! {
        biased;
        _ = &mut session => panic!("the session waits for its MAIL check"),
        _ = tokio::task::yield_now() => {}
    }
    assert_eq!(p.events(), ["check:connect", "check:mail"]);
    drop(session);
    assert_eq!(p.events(), ["check:connect", "check:mail", "closed"]);
}
