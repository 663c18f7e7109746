//! The server: opens the store, binds the listeners and serves them until shut down.
//!
//! The accept loops, connection limits, accept-error backoff and graceful shutdown are the
//! [`listener`](crate::listener) module's; this file says *what* is served: SMTP on
//! `listen.smtp`, each session delivering into a [`Sink`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::config::{ConfigError, ServerConfig};
use crate::env::Env;
use crate::listener::{Connection, Listeners, Protocol, Shutdown, Tracker};
use crate::mail::{Deliver, DeliveryError, Envelope};
use crate::policy::AcceptAll;
use crate::queue::deliver::Sink;
use crate::queue::runner::{Identity, Outbound};
use crate::smtp::driver::run_session_with;
use crate::smtp::{NoAccounts, PeerInfo, SessionConfig};
use crate::store::{CommitMode, MailStore};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("opening the mail store: {0}")]
    Store(io::Error),
    #[error("listening on {addr}: {err}")]
    Listen { addr: SocketAddr, err: io::Error },
}

/// Options that are not part of the config file (how the process runs, not what it serves).
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    pub commit: CommitMode,
    /// After a shutdown begins, how long open sessions may go on before they are cut off
    /// (between deliveries, never during one).
    pub shutdown_grace: Duration,
}

/// Long enough for a client in the middle of DATA on a slow link to finish; short enough
/// for a service manager's stop timeout (systemd's default is 90 s).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            commit: CommitMode::Group,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// A started server: its listeners are bound; [`Server::run`] serves them until the
/// [`Shutdown`] from [`Server::shutdown_handle`] is triggered.
pub struct Server<E: Env> {
    listeners: Listeners<E>,
    grace: Duration,
}

impl<E: Env> Server<E> {
    /// Validates the config, opens (and recovers) the store, binds the SMTP listener.
    pub async fn start(
        env: E,
        config: &ServerConfig,
        opts: RunOptions,
    ) -> Result<Self, StartError> {
        let directory = Arc::new(config.validate()?);
        let quotas = Arc::new(config.quotas());
        let store =
            MailStore::open_with_quotas(env.clone(), directory.accounts(), opts.commit, quotas)
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
            opts.commit,
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
        let smtp = Smtp {
            env: env.clone(),
            session: Arc::new(SessionConfig {
                hostname: config.hostname.clone(),
                limits: config.limits.clone(),
                directory: directory.clone(),
                relay_networks: config.relay_networks.clone(),
                offers: Default::default(),
                quota: Some(store.quotas().clone()),
            }),
            sink: Sink {
                mailboxes: store,
                outbound,
                directory,
            },
        };
        let mut listeners = Listeners::new(env);
        listeners
            .add(listener, config.limits.connections, smtp)
            .map_err(|err| StartError::Listen { addr, err })?;
        Ok(Server {
            listeners,
            grace: opts.shutdown_grace,
        })
    }

    /// Where the SMTP listener is bound (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners
            .local_addr("smtp")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no SMTP listener"))
    }

    /// The handle that ends [`Server::run`]: `begin()` stops accepting and lets sessions
    /// finish within the grace period; `force()` cuts them off at once.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.listeners.shutdown()
    }

    /// Serves until shutdown: accept errors are logged and backed off, never fatal. Returns
    /// once every session has ended (so every delivery it started is durable).
    pub async fn run(self) -> io::Result<()> {
        self.listeners.run(self.grace).await;
        Ok(())
    }
}

/// SMTP (the MX service) as a [`Protocol`] for the listener.
struct Smtp<E: Env> {
    env: E,
    session: Arc<SessionConfig>,
    sink: Sink<E>,
}

impl<E: Env> Protocol<E> for Smtp<E> {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn serve(&self, conn: Connection<E>) -> impl Future<Output = ()> + Send + 'static {
        let sink = Critical {
            inner: self.sink.clone(),
            critical: conn.critical,
        };
        let peer = PeerInfo {
            remote: conn.remote,
            local: conn.local,
        };
        let (env, config, id, shutdown) = (
            self.env.clone(),
            self.session.clone(),
            conn.id,
            conn.shutdown,
        );
        async move {
            run_session_with(
                env,
                conn.stream,
                peer,
                config,
                sink,
                id,
                &AcceptAll,
                &NoAccounts,
                &shutdown,
            )
            .await
        }
    }

    fn busy(
        &self,
        mut stream: E::Stream,
        remote: SocketAddr,
        id: u64,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (env, host) = (self.env.clone(), self.session.hostname.clone());
        async move {
            env.trace(
                "smtp",
                format_args!("#{id} refused from {remote}: too many connections"),
            );
            // RFC 5321 §3.8: a server that cannot serve may answer 421 and close.
            let msg = format!("421 4.3.2 {host} Too many connections, try again later\r\n");
            let _ = stream.write_all(msg.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// A [`Deliver`] whose deliveries are critical sections of their connection: the end of a
/// shutdown's grace period waits for a delivery in progress instead of dropping it half-way.
#[derive(Clone)]
struct Critical<D> {
    inner: D,
    critical: Tracker,
}

impl<D: Deliver> Deliver for Critical<D> {
    async fn deliver(&self, tx: &Envelope, message: &[u8]) -> Result<String, DeliveryError> {
        let _held = self.critical.enter();
        self.inner.deliver(tx, message).await
    }
}
