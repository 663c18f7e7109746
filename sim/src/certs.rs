//! The world's PKI, made with rcgen at world start: a CA, and a certificate for the
//! server's host name signed by it. The server gets the certificate and key in its
//! `[tls]` config (unless the scenario brings its own), and client actors trust the CA and
//! check the server's name, like a mail client does on 587/465 (RFC 8314 §4.1), so a
//! scenario exercises the real verification path rather than "accept anything".
//!
//! Deterministic in the trace: keys come from the OS RNG, but Ed25519 keys and signatures
//! have fixed sizes, serial numbers are fixed and rcgen's validity period is a constant
//! (1975–4096), so every run's certificates have the same length and every handshake puts
//! the same number of bytes on the simulated wire. rustls reads the simulated clock.

use std::fmt;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, RootCertStore};

use crate::clock::SimClock;

/// The CA's common name (what a certificate chain shows as issuer).
const CA_NAME: &str = "mailsim world CA";

/// The world's CA and the server's certificate.
#[derive(Clone)]
pub struct WorldCerts {
    ca: CertificateDer<'static>,
    /// The server's certificate chain (leaf, then the CA), PEM.
    pub server_cert_pem: String,
    /// The server's private key, PKCS#8 PEM.
    pub server_key_pem: String,
}

impl fmt::Debug for WorldCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorldCerts")
    }
}

/// rustls' clock in the simulation (actors and remote MTAs): simulated time, never the
/// real one.
pub(crate) struct ClockTime(pub(crate) SimClock);

impl fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClockTime")
    }
}

impl TimeProvider for ClockTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(self.0.now().0))
    }
}

impl WorldCerts {
    /// A CA (Ed25519, serial 1) and a certificate for `hostname` signed by it (Ed25519,
    /// serial 2, the name as its only subject alternative name).
    pub fn generate(hostname: &str) -> Result<WorldCerts, String> {
        let err = |e: rcgen::Error| e.to_string();
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(err)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.serial_number = Some(rcgen::SerialNumber::from(1u64));
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, CA_NAME);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err)?;

        let name = hostname.trim_end_matches('.').to_string();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(err)?;
        let mut params = rcgen::CertificateParams::new(vec![name.clone()]).map_err(err)?;
        params.serial_number = Some(rcgen::SerialNumber::from(2u64));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &ca).map_err(err)?;
        Ok(WorldCerts {
            ca: ca.der().clone(),
            server_cert_pem: format!("{}{}", cert.pem(), ca.pem()),
            server_key_pem: key.serialize_pem(),
        })
    }

    /// A client config that trusts only the world's CA: TLS 1.3/1.2 with the server's
    /// provider (ring), on the simulated clock, no resumption (every handshake is a full
    /// one, the same in every run).
    pub fn client_config(&self, clock: &SimClock) -> Result<Arc<ClientConfig>, String> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(|e| e.to_string())?;
        let time: Arc<dyn TimeProvider> = Arc::new(ClockTime(clock.clone()));
        let mut config = ClientConfig::builder_with_details(mailsim_server::tls::provider(), time)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        config.enable_early_data = false;
        Ok(Arc::new(config))
    }
}

/// The name an actor checks the server's certificate against.
pub fn server_name(hostname: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(hostname.trim_end_matches('.').to_string())
        .map_err(|e| format!("{hostname:?} is not a TLS server name: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailsim_server::env::Timestamp;

    /// The determinism argument rests on this: fresh keys every run, same sizes every run.
    #[test]
    fn certificates_have_the_same_size_every_time() {
        let a = WorldCerts::generate("mx.example.org").unwrap();
        let b = WorldCerts::generate("mx.example.org").unwrap();
        assert_ne!(a.server_key_pem, b.server_key_pem, "fresh keys");
        assert_eq!(a.server_cert_pem.len(), b.server_cert_pem.len());
        assert_eq!(a.server_key_pem.len(), b.server_key_pem.len());
        assert_eq!(a.ca.len(), b.ca.len());
    }

    /// A server config from the PEM the world gives the server, as `tls::server` reads it.
    fn acceptor(certs: &WorldCerts) -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;
        let chain = CertificateDer::pem_slice_iter(certs.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(chain.len(), 2, "leaf and CA");
        let key = PrivateKeyDer::from_pem_slice(certs.server_key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(mailsim_server::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// The actors' config accepts the server's chain for its name and nothing else.
    #[tokio::test]
    async fn actors_trust_the_world_ca_for_the_server_name_only() {
        use tokio::io::duplex;
        use tokio_rustls::TlsConnector;
        let certs = WorldCerts::generate("mx.example.org").unwrap();
        let clock = SimClock::new(Timestamp::from_secs(1_767_225_600));
        let client = TlsConnector::from(certs.client_config(&clock).unwrap());
        let server = acceptor(&certs);
        for (name, ok) in [("mx.example.org", true), ("other.example.org", false)] {
            let (a, b) = duplex(64 * 1024);
            let (_, c) = tokio::join!(
                server.accept(b),
                client.connect(server_name(name).unwrap(), a)
            );
            assert_eq!(c.is_ok(), ok, "{name}: {:?}", c.err());
        }
        // A certificate from outside the world's CA is refused.
        let other = WorldCerts::generate("mx.example.org").unwrap();
        let foreign = acceptor(&other);
        let (a, b) = duplex(64 * 1024);
        let (_, c) = tokio::join!(
            foreign.accept(b),
            client.connect(server_name("mx.example.org").unwrap(), a)
        );
        assert!(c.is_err());
    }
}
