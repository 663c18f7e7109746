//! TLS for every listener and for the queue: one crypto provider, one clock, the server's
//! rustls config, and the plain-or-TLS stream a session runs over.
//!
//! - [`provider`]: rustls with *ring* (`default-features = false`, features `ring`, `std`,
//!   `tls12`), named explicitly — never a process-wide default — so aws-lc-rs (a C and cmake
//!   build) never enters the dependency tree and nothing depends on what another crate
//!   installed first.
//! - [`EnvTime`]: rustls never reads the real clock by itself; in the simulator it sees
//!   simulated time.
//! - [`server`]: the acceptor for STARTTLS (RFC 3207) and implicit TLS (RFC 8314) from
//!   `[tls]`, or a self-signed certificate made at start when none is configured.
//! - [`stream`]: [`MaybeTls`], the stream a session runs over before and after the upgrade.
//!
//! Determinism (see also `queue::tls`): the handshake's randomness comes from the OS RNG
//! (ring's `SystemRandom`), which the simulator cannot seed. It never shows: only the
//! plaintext above TLS is traced, session tickets and resumption are off, and with the
//! simulator's Ed25519 certificates every handshake message has the same size in every run.

pub mod server;
pub mod stream;

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;

use crate::env::Env;

pub use self::server::{ServerTls, TlsSetupError};
pub use self::stream::MaybeTls;

/// The crypto provider for every TLS session of the server: rustls' *ring* provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// rustls' clock, read from the Env: rustls never reads the real clock by itself, and in the
/// simulator it sees simulated time.
pub struct EnvTime<E>(pub E);

impl<E> fmt::Debug for EnvTime<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnvTime")
    }
}

impl<E: Env> TimeProvider for EnvTime<E> {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(self.0.now().0))
    }
}
