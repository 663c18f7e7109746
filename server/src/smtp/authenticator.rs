//! Who checks the credentials a session collected ([`Output::Authenticate`](super::Output)):
//! the seam between the SMTP session and the accounts. The session only frames the SASL
//! exchange; the answer (a password check, a growing delay after failures, a lockout) is
//! the authenticator's, so POP3 and IMAP can share it.

use std::future::Future;
use std::net::SocketAddr;

use super::session::{AuthAnswer, Credentials};

/// Verifies credentials for one client. Implementations may take their time (a delay on
/// the Env clock after a failure is how brute force is slowed down); the session waits.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(
        &self,
        client: SocketAddr,
        credentials: &Credentials,
    ) -> impl Future<Output = AuthAnswer> + Send;
}

/// No accounts can log in: every attempt is refused (535 5.7.8). What a listener uses when
/// it offers no AUTH, so a session that asks anyway gets a safe answer.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAccounts;

impl Authenticator for NoAccounts {
    async fn authenticate(&self, _client: SocketAddr, _credentials: &Credentials) -> AuthAnswer {
        AuthAnswer::Rejected
    }
}
