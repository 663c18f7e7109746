//! POP3 as a listener [`Protocol`]: `listen.pop3` (port 110, STLS) and `listen.pop3s`
//! (port 995, implicit TLS, RFC 8314).

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;

use super::driver::{run_session, Services};
use super::session::Pop3Config;
use crate::env::Env;
use crate::listener::{Connection, Protocol};
use crate::smtp::driver::TlsMode;
use crate::smtp::Authenticator;
use crate::store::index::Mailboxes;
use crate::tls::ServerTls;

/// One POP3 listener.
pub struct Pop3<E: Env, A> {
    pub name: &'static str,
    pub env: E,
    pub config: Pop3Config,
    pub auth: A,
    pub mailboxes: Mailboxes<E>,
    pub tls: ServerTls,
    /// Implicit TLS (995): the handshake comes before the greeting.
    pub implicit: bool,
}

impl<E: Env, A: Authenticator + Clone> Protocol<E> for Pop3<E, A> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn serve(&self, conn: Connection<E>) -> impl Future<Output = ()> + Send + 'static {
        let (env, config, auth, mailboxes, tls, implicit) = (
            self.env.clone(),
            self.config.clone(),
            self.auth.clone(),
            self.mailboxes.clone(),
            self.tls.clone(),
            self.implicit,
        );
        async move {
            let tls = match implicit {
                true => TlsMode::Implicit(&tls),
                false => TlsMode::StartTls(&tls),
            };
            let services = Services {
                auth: &auth,
                mailboxes: &mailboxes,
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
                "pop3",
                format_args!("#{id} refused from {remote}: too many connections"),
            );
            // Nothing in plaintext on an implicit-TLS port (see the SMTP listener's `busy`).
            if !implicit {
                let _ = stream
                    .write_all(b"-ERR [SYS/TEMP] Too many connections, try again later\r\n")
                    .await;
            }
            let _ = stream.shutdown().await;
        }
    }
}
