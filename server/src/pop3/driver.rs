//! The thin async driver of a POP3 session: the socket (plain, STLS or implicit TLS), the
//! authenticator shared with SMTP AUTH, and the access index. All protocol decisions are the
//! session's.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::session::{Answer, Maildrop, OpenError, Output, Pop3Config, Session};
use crate::env::{timeout_at, Env};
use crate::listener::{Latch, Tracker};
use crate::smtp::driver::TlsMode;
use crate::smtp::Authenticator;
use crate::store::index::{FolderIndex, FolderName, Mailboxes, PopLock};
use crate::tls::server::handshake;
use crate::tls::MaybeTls;

/// What one session talks to besides its socket.
pub struct Services<'a, E: Env, A: Authenticator> {
    pub auth: &'a A,
    pub mailboxes: &'a Mailboxes<E>,
    pub tls: TlsMode<'a>,
    pub shutdown: &'a Latch,
    /// The UPDATE state's expunge is held in here, so the end of a shutdown's grace period
    /// does not cut it off half-way (it would be crash-safe, but the `+OK` would be lost).
    pub critical: &'a Tracker,
}

/// The maildrop a logged-in session holds: the account's POP3 claim and its INBOX.
struct Held<E: Env> {
    _lock: PopLock<E>,
    inbox: FolderIndex<E>,
}

/// Runs one POP3 session to its end. Never panics on input; I/O errors end the session
/// (and a session that did not reach QUIT expunges nothing).
pub async fn run_session<E: Env, A: Authenticator>(
    env: E,
    stream: E::Stream,
    remote: SocketAddr,
    conn: u64,
    mut config: Pop3Config,
    services: Services<'_, E, A>,
) {
    let tag = format!("#{conn}");
    env.trace("pop3", format_args!("{tag} connect from {remote}"));
    let mut stream = MaybeTls::Plain(stream);
    config.starttls = matches!(services.tls, TlsMode::StartTls(_));
    let mut session = match services.tls {
        TlsMode::Implicit(server) => {
            if !handshake(&env, server, &mut stream, "pop3", &tag).await {
                env.trace("pop3", format_args!("{tag} closed"));
                return;
            }
            Session::new_over_tls(config, env.now())
        }
        _ => Session::new(config, env.now()),
    };
    let mut held: Option<Held<E>> = None;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let output = session.poll(env.now());
        for line in session.take_log() {
            env.trace("pop3", format_args!("{tag} C: {line}"));
        }
        match output {
            Output::Send { bytes, shown } => {
                env.trace("pop3", format_args!("{tag} S: {shown}"));
                out.extend_from_slice(&bytes);
            }
            Output::StartTls => {
                let up = match services.tls {
                    TlsMode::StartTls(server) if !stream.is_tls() => {
                        crate::listener::flush(&mut stream, &mut out).await.is_ok()
                            && handshake(&env, server, &mut stream, "pop3", &tag).await
                    }
                    _ => false,
                };
                session.answer(if up { Answer::TlsUp } else { Answer::TlsFailed });
            }
            Output::Authenticate(credentials) => {
                let answer = services.auth.authenticate(remote, &credentials).await;
                session.answer(Answer::Authenticated(answer));
            }
            Output::Open(account) => {
                let opened = open(services.mailboxes, &account).await;
                let answer = match opened {
                    Ok((h, drop)) => {
                        env.trace(
                            "pop3",
                            format_args!("{tag} {account}: {} messages", drop.messages.len()),
                        );
                        held = Some(h);
                        Ok(drop)
                    }
                    Err(e) => Err(e),
                };
                session.answer(Answer::Opened(answer));
            }
            Output::Read(uid) => {
                let read = match &held {
                    Some(h) => h.inbox.read(uid).await.map_err(|e| e.to_string()),
                    None => Err("no mailbox open".into()),
                };
                session.answer(Answer::Read(read));
            }
            Output::Expunge(uids) => {
                let _critical = services.critical.enter();
                let done = match &held {
                    Some(h) => h.inbox.expunge(&uids).await.map(|_| ()),
                    None => Ok(()),
                };
                if let Err(e) = &done {
                    env.warn("pop3", format_args!("{tag} expunge failed: {e}"));
                }
                session.answer(Answer::Expunged(done.map_err(|e| e.to_string())));
            }
            Output::Close => {
                let _ = crate::listener::flush(&mut stream, &mut out).await;
                let _ = stream.shutdown().await;
                env.trace("pop3", format_args!("{tag} closed"));
                return;
            }
            Output::NeedInput => {
                if crate::listener::flush(&mut stream, &mut out).await.is_err() {
                    session.closed_by_peer();
                    env.trace("pop3", format_args!("{tag} write failed; session dropped"));
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
                let got = tokio::select! {
                    biased;
                    got = read => got,
                    _ = services.shutdown.wait() => {
                        // Like an idle timeout: no UPDATE state, nothing is expunged.
                        env.trace("pop3", format_args!("{tag} server shutting down"));
                        let line = "-ERR [SYS/TEMP] Server shutting down";
                        env.trace("pop3", format_args!("{tag} S: {line}"));
                        out.extend_from_slice(format!("{line}\r\n").as_bytes());
                        let _ = crate::listener::flush(&mut stream, &mut out).await;
                        let _ = stream.shutdown().await;
                        env.trace("pop3", format_args!("{tag} closed"));
                        return;
                    }
                };
                match got {
                    None => session.handle_timeout(env.now()),
                    Some(Ok(0)) | Some(Err(_)) => {
                        session.closed_by_peer();
                        env.trace("pop3", format_args!("{tag} client disconnected"));
                        return;
                    }
                    Some(Ok(n)) => session.push_input(&buf[..n]),
                }
            }
        }
    }
}

/// Claims the account for this session and opens (rescans) its INBOX.
async fn open<E: Env>(
    mailboxes: &Mailboxes<E>,
    account: &str,
) -> Result<(Held<E>, Maildrop), OpenError> {
    let lock = mailboxes.lock_pop(account).ok_or(OpenError::InUse)?;
    let inbox = mailboxes
        .open(account, &FolderName::inbox())
        .await
        .map_err(|e| OpenError::Failed(e.to_string()))?;
    let drop = Maildrop {
        uidvalidity: inbox.status().await.uidvalidity,
        messages: inbox
            .snapshot()
            .await
            .into_iter()
            .map(|e| (e.uid, e.size))
            .collect(),
    };
    Ok((Held { _lock: lock, inbox }, drop))
}
