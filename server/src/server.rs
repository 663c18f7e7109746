//! The server: opens the store, binds the listeners and serves them until shut down.
//!
//! The accept loops, connection limits, accept-error backoff and graceful shutdown are the
//! [`listener`](crate::listener) module's; this file says *what* is served, each session
//! delivering into a [`Sink`]:
//!
//! - `smtp` on `listen.smtp` (the MX, port 25): STARTTLS when `tls.mx_starttls` (Postfix's
//!   `smtpd_tls_security_level = may`), no AUTH;
//! - `submission` on `listen.submission` (RFC 6409, port 587): STARTTLS, AUTH with
//!   `auth.mechanisms` once TLS is up (unless `auth.allow_plaintext`), AUTH required before
//!   MAIL;
//! - `submissions` on `listen.submissions` (RFC 8314, port 465): implicit TLS, the same AUTH.
//!
//! - `pop3` on `listen.pop3` (port 110): STLS, USER/PASS and AUTH PLAIN once TLS is up
//!   (unless `auth.allow_plaintext`), the same accounts, delays and lockouts as SMTP AUTH;
//! - `pop3s` on `listen.pop3s` (port 995): implicit TLS, the same.
//! - `imap` on `listen.imap` (port 143): STARTTLS, LOGIN and AUTHENTICATE PLAIN once TLS is
//!   up (unless `auth.allow_plaintext`), the same accounts, delays and lockouts;
//! - `imaps` on `listen.imaps` (port 993): implicit TLS, the same.
//!
//! One [`ServerTls`] (the configured certificate, or a self-signed one) serves them all.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::auth::Accounts;
use crate::config::{ConfigError, SaslMechanism, ServerConfig};
use crate::dkim::{Signer, Submission};
use crate::env::Env;
use crate::imap::{Imap, ImapConfig};
use crate::listener::{Connection, Listeners, Protocol, Shutdown, Tracker};
use crate::mail::{Deliver, DeliveryError, Envelope, Message};
use crate::policy::auth::SenderAuth;
use crate::policy::defence::{Defence, Scoring};
use crate::policy::dnsbl::DnsLists;
use crate::policy::greylist::Greylist;
use crate::policy::limits::Limits;
use crate::policy::score::Scorer;
use crate::pop3::{Pop3, Pop3Config};
use crate::queue::deliver::Sink;
use crate::queue::runner::{Identity, Outbound};
use crate::smtp::driver::{run_session_with, TlsMode};
use crate::smtp::{AuthMechanism, Authenticator, Offers, PeerInfo, SessionConfig};
use crate::store::index::Mailboxes;
use crate::store::{CommitMode, MailStore};
use crate::tls::{ServerTls, TlsSetupError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("opening the mail store: {0}")]
    Store(io::Error),
    #[error("{0}")]
    Tls(#[from] TlsSetupError),
    #[error("listening on {addr}: {err}")]
    Listen { addr: SocketAddr, err: io::Error },
    /// The sender authentication's verifier could not be built.
    #[error("{0}")]
    SenderAuth(String),
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
        let spool_dir = crate::smtp::spool::recover(&env)
            .await
            .map_err(StartError::Store)?;
        let quotas = Arc::new(config.quotas());
        let store =
            MailStore::open_with_quotas(env.clone(), directory.accounts(), opts.commit, quotas)
                .await
                .map_err(StartError::Store)?;
        // IMAP sessions hear of deliveries through the index (see `forward_deliveries`).
        let imap_on = config.listen.imap.is_some() || config.listen.imaps.is_some();
        let deliveries = imap_on.then(|| store.subscribe_deliveries());
        #[cfg(feature = "planted-bugs")]
        if config.planted_bugs.skip_mailbox_dir_sync {
            env.warn(
                "server",
                format_args!("PLANTED BUG: mailbox directories are not fsynced"),
            );
            store.plant_skip_dir_sync();
        }
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
        let quotas = store.quotas().clone();
        // Submitted mail is completed (Message-ID, Date) and DKIM-signed on its way in; MX
        // mail passes through untouched (`dkim/submission.rs`).
        let signer = Arc::new(Signer::from_config(&config.dkim).map_err(ConfigError::from)?);
        let sink = Submission::new(
            env.clone(),
            signer,
            &config.hostname,
            Sink {
                mailboxes: store,
                outbound,
                directory: directory.clone(),
            },
        );
        let tls = ServerTls::from_pem(
            &env,
            config.tls.cert_pem.as_deref(),
            config.tls.key_pem.as_deref(),
            &config.hostname,
        )?;
        // `mx`: the greet pause (`limits.greet_pause_ms`) applies to the MX only.
        let session = |offers: Offers, mx: bool| {
            let mut limits = config.limits.clone();
            if !mx {
                limits.greet_pause_ms = 0;
            }
            Arc::new(SessionConfig {
                hostname: config.hostname.clone(),
                limits,
                directory: directory.clone(),
                relay_networks: config.relay_networks.clone(),
                offers,
                quota: Some(quotas.clone()),
                spool_dir: Some(spool_dir.clone()),
            })
        };
        // What a submission listener offers (RFC 6409 §4.3, RFC 4954 §4): AUTH with the
        // configured mechanisms, only over TLS unless the config allows plaintext, and
        // required before MAIL.
        let submission = Offers {
            starttls: true,
            auth: mechanisms(&config.auth.mechanisms),
            auth_requires_tls: !config.auth.allow_plaintext,
            auth_required: true,
        };
        let accounts = Accounts::new(env.clone(), config).map_err(ConfigError::from)?;
        let mut listeners = Listeners::new(env.clone());
        let mut up = Vec::new();
        let mx = Offers {
            starttls: config.tls.mx_starttls,
            ..Offers::default()
        };
        // Block lists apply to the MX only: submission clients authenticate, and a block
        // list of dial-up ranges (Spamhaus PBL) lists exactly where our users send from.
        let sender_auth = match config.sender_auth.clone().filter(|a| a.enabled) {
            None => None,
            Some(a) => Some(
                SenderAuth::new(
                    env.clone(),
                    a,
                    &config.hostname,
                    config.relay_networks.clone(),
                )
                .map_err(StartError::SenderAuth)?,
            ),
        };
        let scoring = match config.scoring.enabled {
            true => Some(Scoring {
                scorer: Scorer::new(&config.scoring)
                    .map_err(|e| StartError::Config(ConfigError::Scoring(e)))?,
                config: config.scoring.clone(),
            }),
            false => None,
        };
        let mx_defence = Arc::new(Defence {
            env: env.clone(),
            auth: sender_auth,
            scoring,
            trusted: config.relay_networks.clone(),
            limits: Limits::new(
                env.clone(),
                &config.hostname,
                config.limits.per_client.clone(),
                config.relay_networks.clone(),
            ),
            lists: DnsLists::new(
                env.clone(),
                config.dnsbl.clone(),
                config.dnswl.clone(),
                config.relay_networks.clone(),
            ),
            greylist: match config.greylist.enabled {
                true => Some(
                    Greylist::open(env.clone(), &config.greylist, config.relay_networks.clone())
                        .await
                        .map_err(StartError::Store)?,
                ),
                false => None,
            },
        });
        let no_defence = Arc::new(Defence::none(env.clone()));
        let plans = [
            ("smtp", Some(config.listen.smtp), mx, false),
            (
                "submission",
                config.listen.submission,
                submission.clone(),
                false,
            ),
            (
                "submissions",
                config.listen.submissions,
                Offers {
                    starttls: false,
                    ..submission
                },
                true,
            ),
        ];
        for (name, addr, offers, implicit) in plans {
            let Some(addr) = addr else { continue };
            let listener = env
                .listen(addr)
                .await
                .map_err(|err| StartError::Listen { addr, err })?;
            let tls = (offers.starttls || implicit).then(|| tls.clone());
            let protocol = Smtp {
                name,
                env: env.clone(),
                session: session(offers, name == "smtp"),
                sink: sink.clone(),
                // Only the submission listeners offer AUTH; the MX never asks.
                auth: accounts.clone(),
                tls,
                implicit,
                defence: match name {
                    "smtp" => mx_defence.clone(),
                    _ => no_defence.clone(),
                },
            };
            let bound = listeners
                .add(listener, config.limits.connections, protocol)
                .map_err(|err| StartError::Listen { addr, err })?;
            up.push((name, shown_addr(addr, bound)));
        }
        // POP3 reads INBOX through the access index (`store/index`), one per server.
        let mailboxes = Mailboxes::new(env.clone(), Some(quotas.clone()));
        for (name, addr, implicit) in [
            ("pop3", config.listen.pop3, false),
            ("pop3s", config.listen.pop3s, true),
        ] {
            let Some(addr) = addr else { continue };
            let protocol = Pop3 {
                name,
                env: env.clone(),
                config: Pop3Config {
                    hostname: config.hostname.clone(),
                    starttls: !implicit,
                    plaintext_auth: config.auth.allow_plaintext,
                    idle_timeout: crate::pop3::IDLE_TIMEOUT,
                },
                auth: accounts.clone(),
                mailboxes: mailboxes.clone(),
                tls: tls.clone(),
                implicit,
            };
            let limit = config.limits.connections;
            up.push((
                name,
                bind(&env, &mut listeners, addr, limit, protocol).await?,
            ));
        }
        for (name, addr, implicit) in [
            ("imap", config.listen.imap, false),
            ("imaps", config.listen.imaps, true),
        ] {
            let Some(addr) = addr else { continue };
            let protocol = Imap {
                name,
                env: env.clone(),
                config: ImapConfig {
                    hostname: config.hostname.clone(),
                    starttls: !implicit,
                    plaintext_auth: config.auth.allow_plaintext,
                    idle_timeout: crate::imap::IDLE_TIMEOUT,
                    max_literal: crate::imap::MAX_LITERAL,
                },
                auth: accounts.clone(),
                mailboxes: mailboxes.clone(),
                max_sessions: crate::imap::MAX_SESSIONS_PER_ACCOUNT,
                tls: tls.clone(),
                implicit,
            };
            let limit = config.limits.connections;
            up.push((
                name,
                bind(&env, &mut listeners, addr, limit, protocol).await?,
            ));
        }
        if let Some(deliveries) = deliveries {
            forward_deliveries(&env, deliveries, mailboxes.clone());
        }
        for (name, addr) in up {
            if name == "smtp" {
                // The line scenarios' traces have always had.
                env.trace(
                    "server",
                    format_args!("listening for SMTP on {addr} as {}", config.hostname),
                );
            } else {
                env.trace("server", format_args!("listening for {name} on {addr}"));
            }
        }
        Ok(Server {
            listeners,
            grace: opts.shutdown_grace,
        })
    }

    /// Where the SMTP (MX) listener is bound (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local_addr_of("smtp")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no SMTP listener"))
    }

    /// Where the listener `name` (`smtp`, `submission`, `submissions`, `pop3`, `pop3s`, `imap`,
    /// `imaps`) is bound; `None` if the config does not enable it.
    pub fn local_addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.local_addr(name)
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

/// Tells the access index of every durable delivery, so a folder that IMAP sessions have
/// open is indexed at once and they hear of the message (IDLE sees it without polling).
/// The MX path only pays a broadcast send; the rescan happens here, off its hot path. A
/// lagging forwarder loses nothing: sessions rescan on NOOP, CHECK and SELECT.
fn forward_deliveries<E: Env>(
    env: &E,
    mut deliveries: tokio::sync::broadcast::Receiver<crate::store::Delivered>,
    mailboxes: Mailboxes<E>,
) {
    let trace = env.clone();
    env.spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match deliveries.recv().await {
                Ok(d) => {
                    let folder = crate::store::index::FolderName::of(d.folder);
                    if let Err(e) = mailboxes.delivered(&d.mailbox, &folder).await {
                        trace.warn("index", format_args!("{}/{folder}: rescan: {e}", d.mailbox));
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    trace.warn("index", format_args!("{n} delivery notices lagged"));
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// The SASL mechanisms the session frames, from the config's list, in its order.
fn mechanisms(configured: &[SaslMechanism]) -> Vec<AuthMechanism> {
    configured
        .iter()
        .map(|m| match m {
            SaslMechanism::Plain => AuthMechanism::Plain,
            SaslMechanism::Login => AuthMechanism::Login,
        })
        .collect()
}

/// One SMTP listener (MX, submission or submissions) as a [`Protocol`]: what it offers is
/// in its own [`SessionConfig`]; `auth` answers its AUTH commands.
struct Smtp<E: Env, A> {
    name: &'static str,
    env: E,
    session: Arc<SessionConfig>,
    sink: Submission<E, Sink<E>>,
    auth: A,
    /// Set when the listener does TLS (STARTTLS offered, or implicit).
    tls: Option<ServerTls>,
    /// Implicit TLS: the handshake comes before the greeting.
    implicit: bool,
    /// The policies the session asks (`policy/defence.rs`).
    defence: Arc<Defence<E>>,
}

impl<E: Env, A: Authenticator + Clone> Protocol<E> for Smtp<E, A> {
    fn name(&self) -> &'static str {
        self.name
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
        let (env, config, id, shutdown, auth, tls, implicit, defence) = (
            self.env.clone(),
            self.session.clone(),
            conn.id,
            conn.shutdown,
            self.auth.clone(),
            self.tls.clone(),
            self.implicit,
            self.defence.clone(),
        );
        async move {
            let mode = match &tls {
                None => TlsMode::None,
                Some(t) if implicit => TlsMode::Implicit(t),
                Some(t) => TlsMode::StartTls(t),
            };
            run_session_with(
                env,
                conn.stream,
                peer,
                config,
                sink,
                id,
                &*defence,
                &auth,
                mode,
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
        let (env, host, implicit) = (
            self.env.clone(),
            self.session.hostname.clone(),
            self.implicit,
        );
        async move {
            env.trace(
                "smtp",
                format_args!("#{id} refused from {remote}: too many connections"),
            );
            // On an implicit-TLS port a plaintext 421 would be garbage to a client that is
            // sending its ClientHello; closing says the same (RFC 8314 §3.3 has no reply
            // before TLS).
            if implicit {
                let _ = stream.shutdown().await;
                return;
            }
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
    async fn deliver(&self, tx: &Envelope, message: &Message) -> Result<String, DeliveryError> {
        let _held = self.critical.enter();
        self.inner.deliver(tx, message).await
    }
}

/// What the trace shows for a listener: the configured address with the port really bound
/// (a simulated host reports its listener on the unspecified address).
/// Binds `addr` and serves `protocol` on it: where it is bound, as the trace shows it.
async fn bind<E: Env, P: Protocol<E>>(
    env: &E,
    listeners: &mut Listeners<E>,
    addr: SocketAddr,
    limit: usize,
    protocol: P,
) -> Result<SocketAddr, StartError> {
    let listener = env
        .listen(addr)
        .await
        .map_err(|err| StartError::Listen { addr, err })?;
    let bound = listeners
        .add(listener, limit, protocol)
        .map_err(|err| StartError::Listen { addr, err })?;
    Ok(shown_addr(addr, bound))
}

fn shown_addr(configured: SocketAddr, bound: SocketAddr) -> SocketAddr {
    match bound.ip().is_unspecified() {
        true => SocketAddr::new(configured.ip(), bound.port()),
        false => bound,
    }
}
