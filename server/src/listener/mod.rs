//! Accept loops: one per listening socket (SMTP today; submission, IMAP, POP3 and the HTTP
//! API add theirs), each with its own connection limit, accept-error backoff and graceful
//! shutdown.
//!
//! The shape is mini-redis' `server.rs`: a semaphore bounds concurrent sessions, and a
//! shutdown signal stops the accept loops, after which the server waits for the sessions it
//! started. What a mail server adds:
//!
//! - over the limit a connection is not left hanging in the backlog but answered with the
//!   protocol's own "busy" reply and closed ([`Protocol::busy`]; SMTP: `421 4.3.2`, RFC 3463);
//! - an accept error never ends the loop ([`backoff`]): `EMFILE` under load must cost a few
//!   connections, not the service;
//! - the grace period is bounded: after it, sessions are cut off — but never in the middle of
//!   a delivery (a [`Connection::critical`] section), so a message being made durable is
//!   finished and every 250 already given stays true. Every wait is on the Env clock.

pub mod backoff;
pub mod shutdown;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;

use crate::env::{Env, Listener};

use backoff::{AcceptError, Backoff};
pub use shutdown::{Latch, Shutdown, Tracked, Tracker};

/// One accepted connection, handed to its protocol.
pub struct Connection<E: Env> {
    pub stream: E::Stream,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Unique among all listeners of the server (the trace's `#id`).
    pub id: u64,
    /// Hold a [`Tracked`] of this while a step must not be cut off by the end of the grace
    /// period (a delivery: the message is being made durable).
    pub critical: Tracker,
    /// Set when the server begins shutting down; a protocol may watch it to end an idle
    /// session early (e.g. SMTP `421 4.3.2` at the next command).
    pub shutdown: Latch,
}

/// A protocol served on a listener.
pub trait Protocol<E: Env>: Send + Sync + 'static {
    /// Names the listener in the trace (`smtp`, `submission`, `imap`, ...).
    fn name(&self) -> &'static str;
    /// Serves one connection to its end.
    fn serve(&self, conn: Connection<E>) -> impl Future<Output = ()> + Send + 'static;
    /// Answers a connection over the listener's limit ("busy, try later") and closes it.
    fn busy(
        &self,
        stream: E::Stream,
        remote: SocketAddr,
        id: u64,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// The listeners of one server and the sessions they started.
pub struct Listeners<E: Env> {
    env: E,
    ids: Arc<AtomicU64>,
    sessions: Tracker,
    shutdown: Shutdown,
    loops: Vec<BoxFuture<'static, ()>>,
    bound: Vec<(&'static str, SocketAddr)>,
}

impl<E: Env> Listeners<E> {
    pub fn new(env: E) -> Listeners<E> {
        Listeners {
            env,
            ids: Arc::new(AtomicU64::new(1)),
            sessions: Tracker::new(),
            shutdown: Shutdown::new(),
            loops: Vec::new(),
            bound: Vec::new(),
        }
    }

    /// Adds a bound listener serving `protocol` with at most `limit` sessions at a time.
    /// Nothing is accepted before [`Listeners::run`].
    pub fn add<P: Protocol<E>>(
        &mut self,
        listener: E::Listener,
        limit: usize,
        protocol: P,
    ) -> io::Result<SocketAddr> {
        let local = listener.local_addr()?;
        self.bound.push((protocol.name(), local));
        let accept = AcceptLoop {
            env: self.env.clone(),
            listener,
            local,
            limit: Arc::new(Semaphore::new(limit)),
            protocol: Arc::new(protocol),
            ids: self.ids.clone(),
            sessions: self.sessions.clone(),
            shutdown: self.shutdown.clone(),
        };
        self.loops.push(Box::pin(accept.run()));
        Ok(local)
    }

    /// The address the first listener serving `name` is bound to.
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.bound.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// The handle that stops [`Listeners::run`].
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Accepts on every listener until shutdown begins; then waits up to `grace` (on the Env
    /// clock) for the open sessions, cuts off the rest between deliveries, and returns.
    pub async fn run(self, grace: Duration) {
        let Listeners {
            env,
            sessions,
            shutdown,
            loops,
            ..
        } = self;
        // The loops run in this task (no extra spawn): with one listener this is exactly the
        // old inline accept loop, so the simulator's schedule is unchanged.
        futures::future::join_all(loops).await;
        let open = sessions.live();
        env.trace(
            "listener",
            format_args!("stopped accepting; {open} sessions open, grace {grace:?}"),
        );
        let deadline = env.now().plus(grace);
        let drained = tokio::select! {
            biased;
            _ = sessions.idle() => true,
            _ = shutdown.force.wait() => false,
            _ = env.sleep_until(deadline) => false,
        };
        if !drained {
            env.trace(
                "listener",
                format_args!("cutting off {} sessions", sessions.live()),
            );
            shutdown.force.set();
            sessions.idle().await;
        }
        env.trace("listener", format_args!("all sessions ended"));
    }
}

/// One listener's accept loop.
struct AcceptLoop<E: Env, P> {
    env: E,
    listener: E::Listener,
    local: SocketAddr,
    limit: Arc<Semaphore>,
    protocol: Arc<P>,
    ids: Arc<AtomicU64>,
    sessions: Tracker,
    shutdown: Shutdown,
}

impl<E: Env, P: Protocol<E>> AcceptLoop<E, P> {
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = self.shutdown.stop.wait() => break,
                r = self.listener.accept() => r,
            };
            match accepted {
                Ok((stream, remote)) => {
                    backoff.reset();
                    self.start(stream, remote);
                }
                Err(e) => {
                    let wait = backoff.after(AcceptError::classify(&e));
                    // Logged even without -v: a server refusing connections must say so.
                    self.env.warn(
                        "listener",
                        format_args!(
                            "{} on {}: accept failed: {e}; retrying in {wait:?}",
                            self.protocol.name(),
                            self.local
                        ),
                    );
                    if !wait.is_zero() {
                        let until = self.env.now().plus(wait);
                        tokio::select! {
                            biased;
                            _ = self.shutdown.stop.wait() => break,
                            _ = self.env.sleep_until(until) => {}
                        }
                    }
                }
            }
        }
        // Dropping the socket here stops the kernel queueing more connections for us.
        self.env.trace(
            "listener",
            format_args!("{} on {}: closed", self.protocol.name(), self.local),
        );
    }

    fn start(&self, stream: E::Stream, remote: SocketAddr) {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = self.limit.clone().try_acquire_owned() else {
            self.env.spawn(self.protocol.busy(stream, remote, id));
            return;
        };
        let critical = Tracker::new();
        let local = self
            .listener
            .stream_local_addr(&stream)
            .unwrap_or(self.local);
        let conn = Connection {
            stream,
            remote,
            local,
            id,
            critical: critical.clone(),
            shutdown: self.shutdown.stop.clone(),
        };
        // Boxed before the task captures it: a future moved into an async block and then
        // into `select!` is stored twice in the task (rust-lang/rust#62958), which cost every
        // idle session ~2 KiB; one allocation per connection is cheaper.
        let session = Box::pin(self.protocol.serve(conn));
        let (env, force, name) = (
            self.env.clone(),
            self.shutdown.force.clone(),
            self.protocol.name(),
        );
        let tracked = self.sessions.enter();
        self.env.spawn(async move {
            tokio::select! {
                biased;
                _ = session => {}
                _ = async { force.wait().await; critical.idle().await } => {
                    env.trace(name, format_args!("#{id} cut off: shutdown grace period over"));
                }
            }
            drop(permit);
            drop(tracked);
        });
    }
}

#[cfg(test)]
mod tests;

/// Writes the replies a session batched in `out` (PIPELINING: one write per batch, RFC
/// 2920) and empties it; nothing to write is no write. Shared by the SMTP and POP3 drivers.
pub(crate) async fn flush<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    if !out.is_empty() {
        stream.write_all(out).await?;
        stream.flush().await?;
        out.clear();
    }
    Ok(())
}
