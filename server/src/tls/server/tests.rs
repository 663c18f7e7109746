use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::*;
use crate::env::fake::FakeEnv;
use crate::env::Timestamp;

fn env() -> FakeEnv {
    let env = FakeEnv::new();
    env.set_now(Timestamp::from_secs(1_700_000_000));
    env
}

/// A certificate for `name` (PEM chain, PEM key) and a client config trusting exactly it.
fn pem_pair(name: &str) -> (String, String, Arc<ClientConfig>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (cert.pem(), key.serialize_pem(), Arc::new(client))
}

#[tokio::test]
async fn configured_certificate_is_served_and_verifies() {
    let (cert, key, client) = pem_pair("mx.example.org");
    let env = env();
    let tls = ServerTls::from_pem(&env, Some(&cert), Some(&key), "mx.example.org").unwrap();
    assert!(!tls.self_signed);
    assert!(
        env.traced().is_empty(),
        "no warning with a configured certificate"
    );
    let (a, b) = duplex(64 * 1024);
    let server = async move {
        let mut s = tls.accept(b).await.unwrap();
        s.write_all(b"220 over TLS\r\n").await.unwrap();
        s.flush().await.unwrap();
    };
    let client = async move {
        let name = ServerName::try_from("mx.example.org").unwrap();
        let mut c = TlsConnector::from(client).connect(name, a).await.unwrap();
        let mut buf = [0u8; 14];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"220 over TLS\r\n");
        let (_, conn) = c.get_ref();
        let v = conn.protocol_version().unwrap();
        assert!(matches!(
            v,
            rustls::ProtocolVersion::TLSv1_3 | rustls::ProtocolVersion::TLSv1_2
        ));
    };
    tokio::join!(server, client);
}

#[tokio::test]
async fn no_certificate_means_self_signed_for_the_hostname_and_a_warning() {
    let env = env();
    let tls = ServerTls::from_pem(&env, None, None, "mx.example.org").unwrap();
    assert!(tls.self_signed);
    assert_eq!(
        env.traced(),
        vec!["tls no [tls] certificate configured: using a self-signed certificate for mx.example.org"]
    );
    // A client that accepts it (as an MTA doing opportunistic TLS does) completes the
    // handshake.
    let client = crate::queue::tls::client_config(&env);
    let (a, b) = duplex(64 * 1024);
    let (s, c) = tokio::join!(
        tls.accept(b),
        TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("mx.example.org").unwrap(), a)
    );
    s.unwrap();
    let c = c.unwrap();
    let chain = c.get_ref().1.peer_certificates().unwrap();
    assert_eq!(chain.len(), 1);
}

#[test]
fn bad_pem_is_a_start_error_naming_the_key() {
    let env = env();
    let (cert, key, _) = pem_pair("mx.example.org");
    let (other_cert, _, _) = pem_pair("mx.example.org");
    let err = |c: Option<&str>, k: Option<&str>| {
        ServerTls::from_pem(&env, c, k, "mx.example.org").unwrap_err()
    };
    let e = err(Some("not pem"), Some(&key));
    assert!(matches!(e, TlsSetupError::Cert(_)), "{e}");
    assert!(e.to_string().starts_with("tls.cert: "), "{e}");
    let e = err(Some(&cert), Some("-----BEGIN PRIVATE KEY-----\nAAAA\n"));
    assert!(e.to_string().starts_with("tls.key: "), "{e}");
    let e = err(Some(&cert), Some("no key here"));
    assert!(e.to_string().starts_with("tls.key: "), "{e}");
    // A key that is not the certificate's.
    let e = err(Some(&other_cert), Some(&key));
    assert!(e.to_string().starts_with("tls.key: "), "{e}");
    assert!(err(Some(&cert), None).to_string().starts_with("tls.key: "));
    assert!(err(None, Some(&key)).to_string().starts_with("tls.cert: "));
    // A PEM with the key but no certificate in the cert slot.
    assert!(err(Some(&key), Some(&key))
        .to_string()
        .starts_with("tls.cert: "));
    assert!(env.traced().is_empty());
}

#[tokio::test]
async fn a_tls_1_2_client_connects_and_a_garbage_hello_fails() {
    // rustls can do only 1.2 and 1.3 (so nothing older is ever negotiated); the server
    // enables both, so a client restricted to TLS 1.2 connects...
    let (cert, key, _) = pem_pair("mx.example.org");
    let env = env();
    let tls = ServerTls::from_pem(&env, Some(&cert), Some(&key), "mx.example.org").unwrap();
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls12 = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (a, b) = duplex(64 * 1024);
    let (s, c) = tokio::join!(
        tls.accept(b),
        TlsConnector::from(Arc::new(tls12))
            .connect(ServerName::try_from("mx.example.org").unwrap(), a)
    );
    s.unwrap();
    assert_eq!(
        c.unwrap().get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    // ...and bytes that are not a ClientHello end the handshake with an error, not a hang.
    let (mut a, b) = duplex(1024);
    a.write_all(b"MAIL FROM:<evil@x>\r\n").await.unwrap();
    assert!(tls.accept(b).await.is_err());
}
