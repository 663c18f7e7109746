//! The thin async driver of an IMAP session: the socket (plain, STARTTLS or implicit TLS),
//! the authenticator shared with SMTP AUTH and POP3, the [`Backend`] on the access index,
//! and the selected folder's change feed, which wakes the session for untagged updates
//! (IDLE included). All protocol decisions are the session's.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::{self, error::RecvError};

use super::backend::Backend;
use super::session::{Answer, ImapConfig, Output, Session};
use crate::env::{timeout_at, Env};
use crate::listener::{Latch, Tracker};
use crate::smtp::driver::TlsMode;
use crate::smtp::Authenticator;
use crate::store::index::{Change, FolderName, Mailboxes};
use crate::tls::server::handshake;
use crate::tls::MaybeTls;

/// What one session talks to besides its socket.
pub struct Services<'a, E: Env, A: Authenticator> {
    pub auth: &'a A,
    pub mailboxes: &'a Mailboxes<E>,
    pub max_sessions: usize,
    pub tls: TlsMode<'a>,
    pub shutdown: &'a Latch,
    /// Store changes are held in here, so a shutdown's grace period does not cut one off
    /// between its durable commit and its tagged OK.
    pub critical: &'a Tracker,
}

/// Runs one IMAP session to its end. Never panics on input; I/O errors end the session.
pub async fn run_session<E: Env, A: Authenticator>(
    env: E,
    stream: E::Stream,
    remote: SocketAddr,
    conn: u64,
    mut config: ImapConfig,
    services: Services<'_, E, A>,
) {
    let tag = format!("#{conn}");
    env.trace("imap", format_args!("{tag} connect from {remote}"));
    let mut stream = MaybeTls::Plain(stream);
    config.starttls = matches!(services.tls, TlsMode::StartTls(_));
    let mut session = match services.tls {
        TlsMode::Implicit(server) => {
            if !handshake(&env, server, &mut stream, "imap", &tag).await {
                env.trace("imap", format_args!("{tag} closed"));
                return;
            }
            Session::new_over_tls(config, env.now())
        }
        _ => Session::new(config, env.now()),
    };
    let mut backend = Backend::new(services.mailboxes.clone(), services.max_sessions);
    // The change feed of the folder the session has selected.
    let mut watching: Option<(FolderName, broadcast::Receiver<Change>)> = None;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let output = session.poll(env.now());
        for line in session.take_log() {
            env.trace("imap", format_args!("{tag} C: {line}"));
        }
        match output {
            Output::Send { bytes, shown } => {
                env.trace("imap", format_args!("{tag} S: {shown}"));
                out.extend_from_slice(&bytes);
            }
            Output::StartTls => {
                let up = match services.tls {
                    TlsMode::StartTls(server) if !stream.is_tls() => {
                        crate::listener::flush(&mut stream, &mut out).await.is_ok()
                            && handshake(&env, server, &mut stream, "imap", &tag).await
                    }
                    _ => false,
                };
                session.answer(if up { Answer::TlsUp } else { Answer::TlsFailed });
            }
            Output::Authenticate(credentials) => {
                let answer = services.auth.authenticate(remote, &credentials).await;
                session.answer(Answer::Authenticated(answer));
            }
            Output::Ask(request) => {
                let done = {
                    let _critical = services.critical.enter();
                    backend.run(request).await
                };
                if let Err(e) = &done {
                    env.trace("imap", format_args!("{tag} store: {e:?}"));
                }
                session.answer(Answer::Done(done));
                // Follow the selected folder: subscribe when it changes, drop when none.
                let now = session.selected().cloned();
                if watching.as_ref().map(|w| &w.0) != now.as_ref() {
                    watching = match now {
                        Some(name) => backend.watch(&name).await.map(|rx| (name, rx)),
                        None => None,
                    };
                }
            }
            Output::Close => {
                let _ = crate::listener::flush(&mut stream, &mut out).await;
                let _ = stream.shutdown().await;
                env.trace("imap", format_args!("{tag} closed"));
                return;
            }
            Output::NeedInput => {
                if crate::listener::flush(&mut stream, &mut out).await.is_err() {
                    session.closed_by_peer();
                    env.trace("imap", format_args!("{tag} write failed; session dropped"));
                    return;
                }
                let deadline = session.poll_timeout();
                let read = async {
                    let read = stream.read(&mut buf);
                    match deadline {
                        Some(d) => timeout_at(&env, d, read).await,
                        None => Some(read.await),
                    }
                };
                let change = async {
                    match watching.as_mut() {
                        Some((_, rx)) => match rx.recv().await {
                            Ok(_) | Err(RecvError::Lagged(_)) => true,
                            Err(RecvError::Closed) => false,
                        },
                        None => std::future::pending().await,
                    }
                };
                enum Woke {
                    Read(Option<std::io::Result<usize>>),
                    Changed(bool),
                    Shutdown,
                }
                let woke = tokio::select! {
                    biased;
                    got = read => Woke::Read(got),
                    changed = change => Woke::Changed(changed),
                    _ = services.shutdown.wait() => Woke::Shutdown,
                };
                match woke {
                    Woke::Changed(true) => session.changed(),
                    Woke::Changed(false) => watching = None,
                    Woke::Shutdown => {
                        env.trace("imap", format_args!("{tag} server shutting down"));
                        let line = "* BYE Server shutting down";
                        env.trace("imap", format_args!("{tag} S: {line}"));
                        out.extend_from_slice(format!("{line}\r\n").as_bytes());
                        let _ = crate::listener::flush(&mut stream, &mut out).await;
                        let _ = stream.shutdown().await;
                        env.trace("imap", format_args!("{tag} closed"));
                        return;
                    }
                    Woke::Read(None) => session.handle_timeout(env.now()),
                    Woke::Read(Some(Ok(0))) | Woke::Read(Some(Err(_))) => {
                        session.closed_by_peer();
                        env.trace("imap", format_args!("{tag} client disconnected"));
                        return;
                    }
                    Woke::Read(Some(Ok(n))) => session.push_input(&buf[..n]),
                }
            }
        }
    }
}
