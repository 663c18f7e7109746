//! The server: opens the store, binds the listeners and runs one task per connection.
//!
//! Like mini-redis' accept loop, a semaphore bounds concurrent sessions; a connection over
//! the limit is answered `421 4.3.2` and closed instead of being left to hang.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::config::{ConfigError, ServerConfig};
use crate::env::{Env, Listener};
use crate::mail::Address;
use crate::mail::{Deliver, DeliveryError, Envelope};
use crate::queue::runner::{Identity, Outbound};
use crate::smtp::driver::run_session;
use crate::smtp::{PeerInfo, SessionConfig};
use crate::store::{CommitMode, MailStore};

/// Where accepted mail goes: local recipients to their mailboxes, remote ones to the
/// outbound queue. Both are durable before [`Sink::deliver`] returns, so the session's 250
/// means durable for every recipient.
#[derive(Clone)]
pub struct Sink<E: Env> {
    pub mailboxes: MailStore<E>,
    pub outbound: Outbound<E>,
}

impl<E: Env> Deliver for Sink<E> {
    async fn deliver(&self, tx: &Envelope, message: &[u8]) -> Result<String, DeliveryError> {
        let remote: Vec<Address> = tx.remote_recipients().into_iter().cloned().collect();
        let local = !tx.mailboxes().is_empty();
        let (l, r) = tokio::join!(
            async {
                match local {
                    true => Some(self.mailboxes.deliver(tx, message).await),
                    false => None,
                }
            },
            async {
                match remote.is_empty() {
                    true => None,
                    false => Some(
                        self.outbound
                            .enqueue(tx.mail_from.clone(), remote, message)
                            .await
                            .map(|id| id.to_string()),
                    ),
                }
            }
        );
        // Either failing fails the transaction (the client retries; a part that did
        // succeed may then arrive twice: at least once, never lost).
        match (l, r) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
            (_, Some(Ok(id))) | (Some(Ok(id)), None) => Ok(id),
            (None, None) => Err(DeliveryError::Temporary("no recipients".into())),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("opening the mail store: {0}")]
    Store(io::Error),
    #[error("listening on {addr}: {err}")]
    Listen {
        addr: std::net::SocketAddr,
        err: io::Error,
    },
}

/// Options that are not part of the config file (how the process runs, not what it serves).
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    pub commit: CommitMode,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            commit: CommitMode::Group,
        }
    }
}

/// A started server: its listener is bound; `run` accepts until the listener fails.
pub struct Server<E: Env> {
    env: E,
    listener: E::Listener,
    session: Arc<SessionConfig>,
    sink: Sink<E>,
    connections: Arc<Semaphore>,
}

impl<E: Env> Server<E> {
    /// Validates the config, opens (and recovers) the store, binds the SMTP listener.
    pub async fn start(
        env: E,
        config: &ServerConfig,
        opts: RunOptions,
    ) -> Result<Self, StartError> {
        let directory = Arc::new(config.validate()?);
        let store = MailStore::open(env.clone(), directory.accounts(), opts.commit)
            .await
            .map_err(StartError::Store)?;
        let me = Identity {
            hostname: config.hostname.clone(),
            addrs: match config.listen.smtp.ip() {
                ip if ip.is_unspecified() => Vec::new(),
                ip => vec![ip],
            },
            directory: directory.clone(),
            mailboxes: store.clone(),
        };
        let outbound = Outbound::start(
            env.clone(),
            config.queue.clone(),
            me,
            config.queue.smtp_port,
        )
        .await
        .map_err(StartError::Store)?;
        let addr = config.listen.smtp;
        let listener = env
            .listen(addr)
            .await
            .map_err(|err| StartError::Listen { addr, err })?;
        env.trace(
            "server",
            format_args!("listening for SMTP on {addr} as {}", config.hostname),
        );
        Ok(Server {
            session: Arc::new(SessionConfig {
                hostname: config.hostname.clone(),
                limits: config.limits.clone(),
                directory,
                relay_networks: config.relay_networks.clone(),
                offers: Default::default(),
            }),
            connections: Arc::new(Semaphore::new(config.limits.connections)),
            env,
            listener,
            sink: Sink {
                mailboxes: store,
                outbound,
            },
        })
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections forever (until accept fails).
    pub async fn run(mut self) -> io::Result<()> {
        let next_id = AtomicU64::new(1);
        let local = self.listener.local_addr()?;
        loop {
            let (mut stream, remote) = self.listener.accept().await?;
            let conn = next_id.fetch_add(1, Ordering::Relaxed);
            let env = self.env.clone();
            match self.connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    let (session, sink) = (self.session.clone(), self.sink.clone());
                    let peer = PeerInfo { remote, local };
                    self.env.spawn(async move {
                        run_session(env, stream, peer, session, sink, conn).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    let host = self.session.hostname.clone();
                    self.env.spawn(async move {
                        env.trace(
                            "smtp",
                            format_args!("#{conn} refused from {remote}: too many connections"),
                        );
                        let msg =
                            format!("421 4.3.2 {host} Too many connections, try again later\r\n");
                        let _ = stream.write_all(msg.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            }
        }
    }
}
