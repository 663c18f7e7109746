//! IMAP as a listener [`Protocol`]: `listen.imap` (port 143, STARTTLS) and `listen.imaps`
//! (port 993, implicit TLS, RFC 8314).

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;

use super::driver::{run_session, Services};
use super::session::ImapConfig;
use crate::env::Env;
use crate::listener::{Connection, Protocol};
use crate::smtp::driver::TlsMode;
use crate::smtp::Authenticator;
use crate::store::index::Mailboxes;
use crate::tls::ServerTls;

/// Sessions one account may have open at once (Dovecot's `mail_max_userip_connections`
/// default is 10 per user and IP; clients open one per watched folder).
pub const MAX_SESSIONS_PER_ACCOUNT: usize = 10;

/// One IMAP listener.
pub struct Imap<E: Env, A> {
    pub name: &'static str,
    pub env: E,
    pub config: ImapConfig,
    pub auth: A,
    pub mailboxes: Mailboxes<E>,
    pub max_sessions: usize,
    pub tls: ServerTls,
    /// Implicit TLS (993): the handshake comes before the greeting.
    pub implicit: bool,
}

impl<E: Env, A: Authenticator + Clone> Protocol<E> for Imap<E, A> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn serve(&self, conn: Connection<E>) -> impl Future<Output = ()> + Send + 'static {
        let (env, config, auth, mailboxes, tls, implicit, max_sessions) = (
            self.env.clone(),
            self.config.clone(),
            self.auth.clone(),
            self.mailboxes.clone(),
            self.tls.clone(),
            self.implicit,
            self.max_sessions,
        );
        async move {
            let tls = match implicit {
                true => TlsMode::Implicit(&tls),
                false => TlsMode::StartTls(&tls),
            };
            let services = Services {
                auth: &auth,
                mailboxes: &mailboxes,
                max_sessions,
                tls,
                shutdown: &conn.shutdown,
                critical: &conn.critical,
            };
            run_session(env, conn.stream, conn.remote, conn.id, config, services).await
        }
    }

    fn busy(
        &self,
        mut stream: E::Stream,
        remote: SocketAddr,
        id: u64,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (env, implicit) = (self.env.clone(), self.implicit);
        async move {
            env.trace(
                "imap",
                format_args!("#{id} refused from {remote}: too many connections"),
            );
            // Nothing in plaintext on an implicit-TLS port (see the SMTP listener's `busy`).
            if !implicit {
                let _ = stream
                    .write_all(b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n")
                    .await;
            }
            let _ = stream.shutdown().await;
        }
    }
}
