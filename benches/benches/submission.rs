//! The cost of each step of an authenticated submission on its own (issue #8, "Measure and
//! report"):
//!
//! - `dkim_sign/{rsa2048,ed25519}`: [`Signer::sign`] of a 2 KiB message (canonicalize, hash
//!   the body, sign), one key.
//! - `argon2id_verify/{default,cheap}`: verifying a password against its PHC string with
//!   OWASP's parameters (m = 19456 KiB, t = 2, p = 1, the `[auth.argon2]` default) and with
//!   cheap ones (m = 256 KiB, t = 1, p = 1, what a scenario may choose).
//! - `tls13_handshake`: a full TLS 1.3 handshake (no resumption) between an in-memory rustls
//!   client and server, ring provider, an rcgen ECDSA P-256 self-signed certificate.
//!
//! `cargo bench -p mailsim-benches --bench submission`

use std::hint::black_box;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mailsim_server::config::{DkimAlgorithm, DkimConfig};
use mailsim_server::dkim::Signer;
use mailsim_server::env::Timestamp;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const RSA: &str = include_str!("../../scenarios/submission/keys/rsa2048.pem");
const ED25519: &str = include_str!("../../scenarios/submission/keys/ed25519.pem");

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: bench\r\n\
Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <1@mx.example.org>\r\n\r\n"
        .to_vec();
    while m.len() < size {
        m.extend_from_slice(b"the quick brown fox jumps over the lazy dog 0123456789 abcdef\r\n");
    }
    m.truncate(size - 2);
    m.extend_from_slice(b"\r\n");
    m
}

fn bench_dkim(c: &mut Criterion) {
    let mut g = c.benchmark_group("dkim_sign");
    let m = message(2048);
    g.throughput(Throughput::Bytes(m.len() as u64));
    for (name, algorithm, pem) in [
        ("rsa2048", DkimAlgorithm::RsaSha256, RSA),
        ("ed25519", DkimAlgorithm::Ed25519Sha256, ED25519),
    ] {
        let signer = Signer::from_config(&[DkimConfig {
            domain: "example.org".into(),
            selector: "s1".into(),
            algorithm,
            key: None,
            key_pem: Some(pem.into()),
        }])
        .unwrap();
        let now = Timestamp::from_secs(1_767_225_600);
        assert!(signer.sign(&m, now)[0].header.is_ok());
        g.bench_function(name, |b| {
            b.iter(|| black_box(signer.sign(black_box(&m), now)))
        });
    }
    g.finish();
}

fn bench_argon2(c: &mut Criterion) {
    let mut g = c.benchmark_group("argon2id_verify");
    g.sample_size(10);
    for (name, m, t, p) in [("default", 19_456, 2, 1), ("cheap", 256, 1, 1)] {
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(m, t, p, None).unwrap(),
        );
        let salt = SaltString::from_b64("bWFpbHNpbXNhbHQ").unwrap();
        let phc = argon
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let hash = PasswordHash::new(&phc).unwrap();
        // Verification reads the parameters from the PHC string, as the server does.
        let verifier = Argon2::default();
        assert!(verifier.verify_password(b"correct horse", &hash).is_ok());
        g.bench_function(name, |b| {
            b.iter(|| verifier.verify_password(black_box(b"correct horse"), &hash))
        });
    }
    g.finish();
}

fn tls_configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let provider = mailsim_server::queue::tls::provider();
    let cert = rcgen::generate_simple_self_signed(vec!["mx.example.org".to_string()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    server.send_tls13_tickets = 0;
    let mut roots = RootCertStore::empty();
    roots.add(der).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    (Arc::new(client), Arc::new(server))
}

/// One full handshake, the flights passed through memory.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) {
    let mut c =
        ClientConnection::new(client.clone(), "mx.example.org".try_into().unwrap()).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut buf = Vec::with_capacity(4096);
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().unwrap();
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().unwrap();
    }
}

fn bench_tls(c: &mut Criterion) {
    let (client, server) = tls_configs();
    handshake(&client, &server);
    c.bench_function("tls13_handshake", |b| {
        b.iter(|| handshake(&client, &server))
    });
}

criterion_group!(benches, bench_dkim, bench_argon2, bench_tls);
criterion_main!(benches);
