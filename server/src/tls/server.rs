//! The server side of TLS: the certificate from `[tls]` (or a self-signed one), and the
//! acceptor every STARTTLS (RFC 3207) and implicit-TLS (RFC 8314) connection is upgraded with.
//!
//! - TLS 1.3 and 1.2 only (RFC 8996 deprecates 1.0 and 1.1; RFC 8314 §4.1 asks for 1.2+).
//! - No session tickets and no session cache: a mail client reconnects rarely enough that
//!   resumption buys little, and without it no handshake depends on an earlier one (in the
//!   simulator, every handshake has the same shape).
//! - No certificate configured: one is made at start for the host name with rcgen, and the
//!   log says so. MTAs delivering to us do not check certificates (RFC 7435, opportunistic
//!   TLS), so an MX works with it; mail clients will warn until a real one is configured.
//!   Postfix refuses to enable TLS without a certificate instead; we would rather encrypt.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::NoServerSessionStorage;
use rustls::time_provider::TimeProvider;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::{provider, EnvTime};
use crate::env::Env;

/// How long a client may take over its handshake. Postfix's `smtpd_starttls_timeout`
/// default (300 s): the same patience as for a command.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(300);

/// Why the configured certificate cannot be used: a start error naming the config key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsSetupError {
    #[error("tls.cert: {0}")]
    Cert(String),
    #[error("tls.key: {0}")]
    Key(String),
}

/// The server's TLS: built once at start, shared by every listener that offers TLS.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    /// The certificate was made at start (no `[tls]` certificate configured).
    pub self_signed: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("self_signed", &self.self_signed)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From `[tls]`'s PEM (`cert_pem`/`key_pem`: the loader has read `cert`/`key` into them),
    /// or a self-signed certificate for `hostname` when neither is given (with a warning).
    /// Takes the two strings rather than the config, so `tls/` (which the queue uses) does not
    /// import `config/` (which imports the queue's config).
    pub fn from_pem<E: Env>(
        env: &E,
        cert_pem: Option<&str>,
        key_pem: Option<&str>,
        hostname: &str,
    ) -> Result<ServerTls, TlsSetupError> {
        let (chain, key, self_signed) = match (cert_pem, key_pem) {
            (Some(cert), Some(key)) => (parse_chain(cert)?, parse_key(key)?, false),
            (Some(_), None) => {
                return Err(TlsSetupError::Key(
                    "a certificate needs its private key".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(TlsSetupError::Cert(
                    "a private key needs its certificate".into(),
                ))
            }
            (None, None) => {
                let (chain, key) = self_signed_for(hostname).map_err(TlsSetupError::Cert)?;
                env.warn(
                    "tls",
                    format_args!(
                        "no [tls] certificate configured: using a self-signed certificate for {hostname}"
                    ),
                );
                (chain, key, true)
            }
        };
        let time: Arc<dyn TimeProvider> = Arc::new(EnvTime(env.clone()));
        let builder = ServerConfig::builder_with_details(provider(), time)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Cert(e.to_string()))?
            .with_no_client_auth();
        // rustls checks that the key is the certificate's (`keys_match`): a mismatch is the
        // key's fault as often as the certificate's; name the key, which is the usual mistake.
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsSetupError::Key(e.to_string()))?;
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            self_signed,
        })
    }

    /// Runs the server handshake over `stream` (after our `220` to STARTTLS, or right after
    /// the connect for implicit TLS). The caller bounds it with [`HANDSHAKE_TIMEOUT`].
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> io::Result<TlsStream<S>> {
        self.acceptor.accept(stream).await
    }
}

fn parse_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::Cert(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(TlsSetupError::Cert("no certificate in the PEM".into()));
    }
    Ok(chain)
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        TlsSetupError::Key(format!(
            "not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"
        ))
    })
}

/// An ECDSA P-256 certificate for `hostname` (every TLS client supports P-256; Ed25519 is
/// still missing from some). rcgen's validity is fixed (1975–4096), so no clock is read.
fn self_signed_for(
    hostname: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let name = hostname.trim_end_matches('.').to_string();
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(vec![name.clone()])
        .map_err(|e| format!("self-signed certificate for {name}: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name.as_str());
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("self-signed certificate for {name}: {e}"))?;
    Ok((
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

/// Runs the server handshake on `stream` within [`HANDSHAKE_TIMEOUT`] (Env clock), traced
/// under `source` (the POP3 and IMAP drivers'). On success the stream is TLS; on failure it
/// is gone and the warning says why.
pub async fn handshake<E: crate::env::Env>(
    env: &E,
    server: &ServerTls,
    stream: &mut super::MaybeTls<E::Stream>,
    source: &str,
    tag: &str,
) -> bool {
    let Some(plain) = stream.take_plain() else {
        return false;
    };
    let deadline = env.now().plus(HANDSHAKE_TIMEOUT);
    // Boxed: the handshake state is kilobytes, needed only while it runs.
    let accept = Box::pin(server.accept(plain));
    match crate::env::timeout_at(env, deadline, accept).await {
        Some(Ok(tls)) => {
            *stream = super::MaybeTls::from(tls);
            env.trace(source, format_args!("{tag} TLS established"));
            true
        }
        Some(Err(e)) => {
            env.warn(source, format_args!("{tag} TLS handshake failed: {e}"));
            false
        }
        None => {
            env.warn(source, format_args!("{tag} TLS handshake timed out"));
            false
        }
    }
}

#[cfg(test)]
mod tests;
