//! Opportunistic STARTTLS for outbound delivery (RFC 3207), like Postfix's
//! `smtp_tls_security_level = may`.
//!
//! When a peer advertises STARTTLS the queue upgrades the session with tokio-rustls before
//! MAIL FROM. Nothing about the peer's certificate is checked — not the chain, not the name,
//! not the validity dates: MX host names come from unauthenticated DNS, so a check could only
//! turn an encrypted delivery into a plaintext one (RFC 7435, opportunistic security). The
//! handshake itself is still verified: [`AcceptAnyServerCert`] checks the peer's handshake
//! signature against the key in the certificate it sent, with the crypto provider's
//! algorithms, so the session is encrypted to whoever holds that key. SNI is the MX host name
//! (no SNI when the host is an address literal, e.g. a `relayhost`).
//!
//! What the queue does when TLS does not work out is in `runner.rs` (`try_host`): a refused
//! STARTTLS continues in plaintext on the same connection; a failed handshake costs the
//! connection, and the queue reconnects once to the same address without STARTTLS.
//!
//! # Crypto provider
//!
//! rustls with *ring*, named explicitly through [`provider`] (see [`crate::tls`]).
//!
//! # Determinism
//!
//! TLS brings randomness the simulator cannot seed: the provider draws ephemeral key shares,
//! client randoms and nonces from the OS RNG (ring's `SystemRandom`). That is acceptable
//! because none of it can change a trace line or an outcome:
//! - the trace records only what happens *above* TLS (the plaintext SMTP transcript and queue
//!   decisions), never a ciphertext, key, cipher suite or protocol version;
//! - whether a handshake succeeds does not depend on the random values: the verifier accepts
//!   any certificate, and signatures made with a key are always valid for that key;
//! - the number of writes each side makes, and their sizes, do not depend on them either
//!   (fixed-size X25519 key shares and AEAD tags; the simulator's certificates are Ed25519,
//!   whose signatures have a fixed size), so the simulated network carries the same messages,
//!   drawing the same latencies from its seeded RNG, in every run;
//! - rustls reads no clock of its own: [`EnvTime`] hands it the Env's clock (the simulated
//!   one in the simulator), and session resumption is off ([`Resumption::disabled`]), so no
//!   ticket or cached session can make a second handshake differ from the first.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{Connect, TlsConnector};

use crate::env::Env;

/// The `[queue] tls` setting: whether outbound sessions use STARTTLS when offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Opportunistic (Postfix `may`): STARTTLS whenever the peer offers it, plaintext when it
    /// does not or when TLS fails.
    #[default]
    May,
    /// Never send STARTTLS (Postfix `none`).
    None,
    /// Mandatory TLS without certificate checks (Postfix `encrypt`): a peer that does not
    /// offer STARTTLS, refuses it or fails the handshake gets nothing; the recipients are
    /// deferred (4.7.4 / 4.7.5) and the next MX is tried, never plaintext. A message with
    /// `TLS-Required: No` is sent under `may` instead ([`TlsPolicy::for_message`]).
    Encrypt,
}

impl TlsPolicy {
    /// The policy one message is sent under. `TLS-Required: No` (RFC 8689 §5) asks that
    /// the hops' TLS policy be set aside: a mandatory policy becomes opportunistic — TLS is
    /// still attempted when offered ("SHOULD attempt TLS but proceed if it fails"), but its
    /// absence or failure no longer stops the delivery. The flag is only ever set for a
    /// message not received with REQUIRETLS (see `MessageOptions::tls_required_no`), and
    /// `require_tls` overrides it here as well, so the two never hold together; a REQUIRETLS
    /// message has its own, stricter rule (5.7.30 at once, `runner/session.rs`).
    pub fn for_message(self, require_tls: bool, tls_required_no: bool) -> TlsPolicy {
        match self {
            TlsPolicy::Encrypt if tls_required_no && !require_tls => TlsPolicy::May,
            p => p,
        }
    }

    /// Whether plaintext delivery is refused.
    pub fn is_mandatory(self) -> bool {
        self == TlsPolicy::Encrypt
    }
}

// Shared with the listeners' TLS (`crate::tls`), where they now live; re-exported so the
// queue's and the simulator's callers keep their paths.
pub use crate::tls::{provider, EnvTime};

/// Accepts any server certificate (opportunistic TLS authenticates nobody) but still checks
/// the handshake signatures, with the provider's algorithms, against the certificate's key.
#[derive(Debug)]
pub struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCert {
    pub fn new(provider: &CryptoProvider) -> Self {
        AcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client side of STARTTLS for the queue: built once, cheap to clone.
#[derive(Clone)]
pub struct StartTlsConnector {
    connector: TlsConnector,
}

impl fmt::Debug for StartTlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StartTlsConnector")
    }
}

impl StartTlsConnector {
    /// TLS 1.3 and 1.2 with the ring provider, [`AcceptAnyServerCert`], the Env's clock, SNI
    /// on, no resumption, no early data, no client certificate.
    pub fn new<E: Env>(env: &E) -> Self {
        StartTlsConnector {
            connector: TlsConnector::from(Arc::new(client_config(env))),
        }
    }

    /// Starts the handshake over `stream` (already past `220` to STARTTLS) for MX `host` at
    /// `ip`.
    pub fn connect<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        host: &str,
        ip: IpAddr,
        stream: S,
    ) -> Connect<S> {
        self.connector.connect(server_name(host, ip), stream)
    }
}

/// The client configuration behind [`StartTlsConnector`].
pub fn client_config<E: Env>(env: &E) -> ClientConfig {
    let provider = provider();
    let verifier = Arc::new(AcceptAnyServerCert::new(&provider));
    let time: Arc<dyn TimeProvider> = Arc::new(EnvTime(env.clone()));
    let builder = ClientConfig::builder_with_details(provider, time);
    // Every provider rustls ships supports both default versions; should one not, TLS 1.3
    // alone is the next best thing, and the provider's own suites are the last resort.
    let builder = match builder.clone().with_safe_default_protocol_versions() {
        Ok(b) => b,
        Err(_) => match builder.with_protocol_versions(&[&rustls::version::TLS13]) {
            Ok(b) => b,
            Err(e) => unreachable!("the ring provider supports TLS 1.3: {e}"),
        },
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    config.enable_sni = true;
    config
}

/// The name the handshake is for: the MX host name as SNI, or — for an address literal or a
/// name rustls will not put in SNI — the address (rustls then sends no SNI).
pub fn server_name(host: &str, ip: IpAddr) -> ServerName<'static> {
    let host = host.trim_end_matches('.');
    match ServerName::try_from(host.to_string()) {
        Ok(name) => name,
        Err(_) => ServerName::IpAddress(ip.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::Ipv4Addr;

    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use rustls::ServerConfig;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::TlsAcceptor;

    use super::*;
    use crate::env::fake::FakeEnv;
    use crate::env::Timestamp;
    use crate::queue::QueueConfig;

    fn self_signed(
        name: &str,
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    fn acceptor(name: &str, alg: &'static rcgen::SignatureAlgorithm) -> TlsAcceptor {
        acceptor_for(name, alg, rustls::DEFAULT_VERSIONS)
    }

    fn acceptor_for(
        name: &str,
        alg: &'static rcgen::SignatureAlgorithm,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsAcceptor {
        let (cert, key) = self_signed(name, alg);
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        TlsAcceptor::from(Arc::new(config))
    }

    fn env() -> FakeEnv {
        let env = FakeEnv::new();
        env.set_now(Timestamp::from_secs(1_700_000_000));
        env
    }

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));

    #[test]
    fn any_self_signed_certificate_for_any_name_is_accepted() {
        let (cert, _) = self_signed("mx1.other.net", &rcgen::PKCS_ECDSA_P256_SHA256);
        let verifier = AcceptAnyServerCert::new(&provider());
        let other = ServerName::try_from("somewhere.else.example").unwrap();
        let long_ago = UnixTime::since_unix_epoch(std::time::Duration::ZERO);
        assert!(verifier
            .verify_server_cert(&cert, &[], &other, &[], long_ago)
            .is_ok());
        assert!(!verifier.supported_verify_schemes().is_empty());
    }

    /// A server presenting the certificate of one key while signing with another: the
    /// verifier accepts the certificate, and the signature check must still fail the
    /// handshake, in TLS 1.3 and 1.2.
    #[tokio::test]
    async fn handshake_signatures_are_still_checked() {
        #[derive(Debug)]
        struct Mismatched(Arc<CertifiedKey>);
        impl ResolvesServerCert for Mismatched {
            fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
                Some(self.0.clone())
            }
        }
        let (cert, _) = self_signed("mx1.other.net", &rcgen::PKCS_ED25519);
        let (_, other_key) = self_signed("mx1.other.net", &rcgen::PKCS_ED25519);
        let signer = provider().key_provider.load_private_key(other_key).unwrap();
        let certified = Arc::new(CertifiedKey::new(vec![cert], signer));
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let config = ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Mismatched(certified.clone())));
            let acceptor = TlsAcceptor::from(Arc::new(config));
            let connector = StartTlsConnector::new(&env());
            let (client_io, server_io) = duplex(1 << 16);
            let (c, _) = tokio::join!(
                connector.connect("mx1.other.net", IP, client_io),
                acceptor.accept(server_io)
            );
            let e = c.unwrap_err();
            assert_eq!(
                e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
                Some(&rustls::Error::InvalidCertificate(
                    rustls::CertificateError::BadSignature
                )),
                "{version:?}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn loopback_handshake_then_plaintext_both_ways() {
        let algs = [
            &rcgen::PKCS_ED25519,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
        ];
        let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
        for (alg, version) in algs.into_iter().flat_map(|a| versions.map(move |v| (a, v))) {
            let connector = StartTlsConnector::new(&env());
            let acceptor = acceptor_for("mx1.other.net", alg, &[version]);
            let (client_io, server_io) = duplex(1 << 16);
            let client = async {
                let mut tls = connector
                    .connect("mx1.other.net.", IP, client_io)
                    .await
                    .unwrap();
                tls.write_all(b"EHLO out.example\r\n").await.unwrap();
                tls.flush().await.unwrap();
                let mut buf = [0u8; 64];
                let n = tls.read(&mut buf).await.unwrap();
                let (_, conn) = tls.get_ref();
                assert_eq!(conn.protocol_version(), Some(version.version));
                buf[..n].to_vec()
            };
            let server = async {
                let mut tls = acceptor.accept(server_io).await.unwrap();
                assert_eq!(tls.get_ref().1.server_name(), Some("mx1.other.net"));
                let mut buf = [0u8; 64];
                let n = tls.read(&mut buf).await.unwrap();
                tls.write_all(b"250 mx1.other.net\r\n").await.unwrap();
                tls.flush().await.unwrap();
                buf[..n].to_vec()
            };
            let (from_server, from_client) = tokio::join!(client, server);
            assert_eq!(from_client, b"EHLO out.example\r\n");
            assert_eq!(from_server, b"250 mx1.other.net\r\n");
        }
    }

    #[tokio::test]
    async fn address_literal_hosts_send_no_sni() {
        let connector = StartTlsConnector::new(&env());
        let acceptor = acceptor("relay.example", &rcgen::PKCS_ED25519);
        let (client_io, server_io) = duplex(1 << 16);
        let (c, s) = tokio::join!(connector.connect("203.0.113.10", IP, client_io), async {
            acceptor
                .accept(server_io)
                .await
                .map(|tls| tls.get_ref().1.server_name().map(str::to_string))
        });
        c.unwrap();
        assert_eq!(s.unwrap(), None);
    }

    #[tokio::test]
    async fn a_peer_that_closes_instead_of_handshaking_is_an_error() {
        let connector = StartTlsConnector::new(&env());
        let (client_io, server_io) = duplex(1 << 16);
        drop(server_io);
        let e = connector
            .connect("mx1.other.net", IP, client_io)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe
            ),
            "{e:?}"
        );

        // Plaintext where a ServerHello should be.
        let (client_io, mut server_io) = duplex(1 << 16);
        let (c, _) = tokio::join!(connector.connect("mx1.other.net", IP, client_io), async {
            let mut buf = [0u8; 4096];
            let _ = server_io.read(&mut buf).await;
            server_io.write_all(b"250 ok\r\n").await.unwrap();
            server_io
        });
        assert!(c.is_err());
    }

    #[test]
    fn server_names() {
        assert_eq!(
            server_name("mx1.other.net.", IP),
            ServerName::try_from("mx1.other.net").unwrap()
        );
        assert!(matches!(
            server_name("203.0.113.10", IP),
            ServerName::IpAddress(_)
        ));
        assert_eq!(
            server_name("not a host name", IP),
            ServerName::IpAddress(IP.into())
        );
    }

    #[test]
    fn the_rustls_clock_is_the_env_clock() {
        let env = env();
        let t = EnvTime(env.clone());
        assert_eq!(t.current_time().unwrap().as_secs(), 1_700_000_000);
        env.set_now(Timestamp::from_secs(5));
        assert_eq!(t.current_time().unwrap().as_secs(), 5);
        let config = client_config(&env);
        assert!(config.enable_sni && !config.enable_early_data);
    }

    #[test]
    fn queue_config_tls_setting() {
        assert_eq!(QueueConfig::default().tls, TlsPolicy::May);
        let c: QueueConfig = toml::from_str("tls = \"none\"\n").unwrap();
        assert_eq!(c.tls, TlsPolicy::None);
        let c: QueueConfig = toml::from_str("tls = \"may\"\n").unwrap();
        assert_eq!(c.tls, TlsPolicy::May);
        let c: QueueConfig = toml::from_str("tls = \"encrypt\"\n").unwrap();
        assert_eq!(c.tls, TlsPolicy::Encrypt);
        assert!(toml::from_str::<QueueConfig>("tls = \"dane\"\n").is_err());
    }

    /// RFC 8689 §5: `TLS-Required: No` relaxes a mandatory policy to opportunistic TLS,
    /// never turns TLS off, and is ignored for a REQUIRETLS message.
    #[test]
    fn tls_required_no_relaxes_only_a_mandatory_policy() {
        use TlsPolicy::*;
        assert_eq!(Encrypt.for_message(false, true), May);
        assert_eq!(Encrypt.for_message(false, false), Encrypt);
        assert_eq!(Encrypt.for_message(true, true), Encrypt);
        assert_eq!(May.for_message(false, true), May);
        assert_eq!(None.for_message(false, true), None);
        assert!(Encrypt.is_mandatory() && !May.is_mandatory() && !None.is_mandatory());
    }
}
