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
use crate::queue::deliver::Sink;
use crate::queue::runner::{Identity, Outbound};
use crate::smtp::driver::run_session;
use crate::smtp::{PeerInfo, SessionConfig};
use crate::store::{CommitMode, MailStore};

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
