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

/// rustls' clock for the actors: simulated time, never the real one.
struct ClockTime(SimClock);

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
