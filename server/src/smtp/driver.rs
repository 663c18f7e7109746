//! The async driver: connects one [`Session`] to an Env byte stream.
//!
//! It only moves bytes and time and answers the session's requests: reads feed the session,
//! replies are batched until the session needs more input (so a pipelined batch of commands
//! gets one write of replies, RFC 2920), deliveries go to the store, checks to the
//! [`Policy`], and between reads it sleeps until the session's `poll_timeout()`.
//!
//! TLS is the driver's too: on [`Output::StartTls`] it writes out the `220` and runs the
//! server handshake over the same connection ([`MaybeTls`]); on an implicit-TLS listener
//! (RFC 8314, port 465) the handshake comes first and the session starts over TLS. A failed
//! or timed-out handshake is logged (`Env::warn`, always shown) and ends only that
//! connection: there is no plaintext to fall back to (RFC 3207 §4.1).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::env::{timeout_at, Env};
use crate::listener::Latch;
use crate::mail::Deliver;
use crate::policy::{AcceptAll, Client, Policy};
use crate::tls::server::HANDSHAKE_TIMEOUT;
use crate::tls::{MaybeTls, ServerTls};

use super::session::{Answer, Output, PeerInfo, Session, SessionConfig};
use super::{Authenticator, NoAccounts};

/// Read buffer: small while the client sends commands (≤ 512 octets each), so a thousand
/// idle sessions cost little; doubled whenever a read fills it (a pipelined batch, DATA)
/// up to [`READ_BUF_MAX`], so bulk data still arrives in big reads.
const READ_BUF_START: usize = 1024;
/// 8 KiB, like the session's spill threshold: what a session receiving a big message holds
/// per buffer (a thousand such sessions measured 85 MB of RSS, 16 KiB buffers 152 MB).
const READ_BUF_MAX: usize = 8 * 1024;

/// What TLS a listener does.
#[derive(Clone, Copy, Debug, Default)]
pub enum TlsMode<'a> {
    /// None: a STARTTLS the session asks for anyway is refused (the session closes).
    #[default]
    None,
    /// STARTTLS when the client asks (RFC 3207; ports 25 and 587).
    StartTls(&'a ServerTls),
    /// A handshake before the greeting (RFC 8314; port 465).
    Implicit(&'a ServerTls),
}

/// Runs one SMTP session to its end with no policy ([`AcceptAll`]). Never panics on input;
/// I/O errors end the session.
pub async fn run_session<E: Env, D: Deliver>(
    env: E,
    stream: E::Stream,
    peer: PeerInfo,
    config: Arc<SessionConfig>,
    sink: D,
    conn: u64,
) {
    run_session_with(
        env,
        stream,
        peer,
        config,
        sink,
        conn,
        &AcceptAll,
        &NoAccounts,
        TlsMode::None,
        &Latch::new(),
    )
    .await
}

/// Runs one SMTP session to its end, asking `policy` at every stage the session checks and
/// `auth` for every AUTH, with the listener's `tls`.
/// Once `shutdown` is set the session is told ([`Session::shut_down`]): an idle client gets
/// `421 4.3.2` at once, one in the middle of a transaction may finish it first.
#[allow(clippy::too_many_arguments)]
pub async fn run_session_with<E: Env, D: Deliver, P: Policy, A: Authenticator>(
    env: E,
    stream: E::Stream,
    peer: PeerInfo,
    config: Arc<SessionConfig>,
    sink: D,
    conn: u64,
    policy: &P,
    auth: &A,
    tls: TlsMode<'_>,
    shutdown: &Latch,
) {
    let mut told_shutdown = false;
    let mut closing = Closing {
        policy,
        client: None,
    };
    let tag = format!("#{conn}");
    env.trace("smtp", format_args!("{tag} connect from {}", peer.remote));
    let mut stream = MaybeTls::Plain(stream);
    let mut session = match tls {
        TlsMode::Implicit(server) => {
            if !handshake(&env, server, &mut stream, &tag, peer).await {
                env.trace("smtp", format_args!("{tag} closed"));
                return;
            }
            Session::new_over_tls(config.clone(), peer, env.now())
        }
        _ => Session::new(config.clone(), peer, env.now()),
    };
    // One spool file per connection, reused by its transactions (`mail/message.rs`).
    let spool = config
        .spool_dir
        .as_ref()
        .map(|dir| dir.join(conn.to_string()));
    if let Some(path) = &spool {
        session.spool_to(path.clone());
    }
    let mut spool_exists = false;
    let mut out = Vec::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUF_START];
    loop {
        let output = session.poll(env.now());
        for line in session.take_log() {
            env.trace("smtp", format_args!("{tag} C: {line}"));
        }
        match output {
            Output::Reply(reply) => {
                for line in reply.wire_lines() {
                    env.trace("smtp", format_args!("{tag} S: {line}"));
                }
                reply.write_to(&mut out);
            }
            Output::Deliver(tx) => {
                // Boxed: the store's future is the largest state of a session, and only a
                // session that is delivering needs it; inline, every idle session would carry
                // its space. One allocation per message, next to an fsync.
                let result = Box::pin(sink.deliver(&tx.envelope, &tx.message)).await;
                if tx.message.spool().is_some() {
                    // The stores have their copies (or refused): the spool is done with.
                    remove_spool(&env, spool.as_deref(), &mut spool_exists).await;
                }
                session.answer(Answer::Delivered(result));
            }
            Output::Spool { bytes, first } => {
                let Some(path) = spool.as_deref() else {
                    session.spool_failed();
                    continue;
                };
                let written = match first {
                    true => env.write(path, &bytes).await,
                    false => env.append(path, &bytes).await,
                };
                spool_exists = true;
                if let Err(e) = written {
                    env.warn("smtp", format_args!("{tag} spool write failed: {e}"));
                    session.spool_failed();
                }
            }
            Output::Unspool => remove_spool(&env, spool.as_deref(), &mut spool_exists).await,
            Output::Check(check) => {
                closing.client = Some(check.client.clone());
                let verdict = policy.check(&check).await;
                session.answer(Answer::Checked(check, verdict));
            }
            Output::StartTls => {
                // The 220 goes out in plaintext first; then the same connection carries TLS.
                let up = match tls {
                    TlsMode::StartTls(server) if !stream.is_tls() => {
                        crate::listener::flush(&mut stream, &mut out).await.is_ok()
                            && handshake(&env, server, &mut stream, &tag, peer).await
                    }
                    // A listener without TLS never offers STARTTLS; should a session ask
                    // anyway, refuse safely.
                    _ => false,
                };
                session.answer(if up { Answer::TlsUp } else { Answer::TlsFailed });
            }
            Output::Authenticate(credentials) => {
                let answer = auth.authenticate(peer.remote, &credentials).await;
                session.answer(Answer::Authenticated(answer));
            }
            Output::Close => {
                let _ = crate::listener::flush(&mut stream, &mut out).await;
                let _ = stream.shutdown().await;
                remove_spool(&env, spool.as_deref(), &mut spool_exists).await;
                env.trace("smtp", format_args!("{tag} closed"));
                return;
            }
            Output::NeedInput => {
                if crate::listener::flush(&mut stream, &mut out).await.is_err() {
                    session.closed_by_peer();
                    remove_spool(&env, spool.as_deref(), &mut spool_exists).await;
                    env.trace("smtp", format_args!("{tag} write failed; session dropped"));
                    return;
                }
                let (reading, deadline) = (session.reading(), session.poll_timeout());
                let read = async {
                    let read = stream.read(&mut buf);
                    match (reading, deadline) {
                        // The error tarpit: no reading until the held reply is out.
                        (false, Some(deadline)) => {
                            env.sleep_until(deadline).await;
                            None
                        }
                        (_, Some(deadline)) => timeout_at(&env, deadline, read).await,
                        (_, None) => Some(read.await),
                    }
                };
                // Shutdown first: a session must learn of it before it reads more input,
                // or a transaction finished meanwhile would see the drain only once idle
                // and answer the client's QUIT with 421 instead of 221.
                let got = tokio::select! {
                    biased;
                    _ = shutdown.wait(), if !told_shutdown => {
                        told_shutdown = true;
                        env.trace("smtp", format_args!("{tag} server shutting down"));
                        session.shut_down();
                        continue;
                    }
                    got = read => got,
                };
                match got {
                    None => session.handle_timeout(env.now()),
                    Some(Ok(0)) | Some(Err(_)) => {
                        session.closed_by_peer();
                        for line in session.take_log() {
                            env.trace("smtp", format_args!("{tag} C: {line}"));
                        }
                        remove_spool(&env, spool.as_deref(), &mut spool_exists).await;
                        env.trace("smtp", format_args!("{tag} client disconnected"));
                        return;
                    }
                    Some(Ok(n)) => {
                        session.push_input(&buf[..n]);
                        if n == buf.len() && buf.len() < READ_BUF_MAX {
                            buf.resize(buf.len() * 2, 0);
                        }
                    }
                }
            }
        }
    }
}

/// Tells the policy that a session which asked it something has ended
/// ([`Policy::closed`]: per-client concurrency slots go back), exactly once, whichever way
/// the session ends: QUIT, too many errors, a timeout, the peer gone, a failed write, or the
/// session's future dropped when a shutdown's grace period runs out. A drop guard, so no
/// exit path can forget it.
struct Closing<'a, P: Policy> {
    policy: &'a P,
    /// What the last check said about the client; `None`: nothing was asked.
    client: Option<Arc<Client>>,
}

impl<P: Policy> Drop for Closing<'_, P> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.policy.closed(&client);
        }
    }
}

/// Removes the connection's spool file if one was written (a missing one is fine: a
/// leftover after a crash is cleared at start-up, `smtp/spool.rs`).
async fn remove_spool<E: Env>(env: &E, path: Option<&std::path::Path>, exists: &mut bool) {
    if let (Some(path), true) = (path, *exists) {
        let _ = env.remove_file(path).await;
        *exists = false;
    }
}

/// Runs the server handshake on `stream` within [`HANDSHAKE_TIMEOUT`] (Env clock). On
/// success the stream is TLS; on failure it is gone and the warning says why.
async fn handshake<E: Env>(
    env: &E,
    server: &ServerTls,
    stream: &mut MaybeTls<E::Stream>,
    tag: &str,
    peer: PeerInfo,
) -> bool {
    let Some(plain) = stream.take_plain() else {
        return false;
    };
    let deadline = env.now().plus(HANDSHAKE_TIMEOUT);
    // Boxed: rustls' handshake state is kilobytes, and only the moment of a handshake needs
    // it; inline it would sit in every idle session's future.
    let accept = Box::pin(server.accept(plain));
    let err = match timeout_at(env, deadline, accept).await {
        Some(Ok(tls)) => {
            *stream = MaybeTls::from(tls);
            env.trace("smtp", format_args!("{tag} TLS established"));
            return true;
        }
        Some(Err(e)) => e.to_string(),
        None => format!("no handshake within {}s", HANDSHAKE_TIMEOUT.as_secs()),
    };
    env.warn(
        "smtp",
        format_args!("{tag} TLS handshake with {} failed: {err}", peer.remote),
    );
    false
}

#[cfg(test)]
mod tests;
