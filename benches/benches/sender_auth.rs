//! Sender authentication at the end of data (issue #10, "Measure and report"): one
//! [`SenderAuth::check`] of a 10 KiB message — SPF for HELO and MAIL FROM (an `include:`
//! and an `a:` lookup), DKIM verification of one rsa-sha256 signature, DMARC with relaxed
//! alignment, iprev — with every DNS answer from an in-memory [`FakeEnv`], so the figure is
//! our CPU cost per message, not a resolver's latency.
//!
//! - `sender_auth/pass`: SPF pass, DKIM pass, DMARC pass (the common legitimate case);
//! - `sender_auth/forged`: SPF fail, unsigned, DMARC fail p=reject;
//! - `spf_check_host/include_a`: SPF alone.
//!
//! `cargo bench -p mailsim-benches --bench sender_auth`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mailsim_server::config::{DkimAlgorithm, DkimConfig, SenderAuthConfig};
use mailsim_server::dkim::{Signer, SigningKey};
use mailsim_server::env::fake::FakeEnv;
use mailsim_server::env::{Record, RecordKind, Timestamp};
use mailsim_server::mail::{Address, Envelope, Recipient};
use mailsim_server::policy::auth::spf::{check_host, SpfQuery};
use mailsim_server::policy::auth::SenderAuth;
use mailsim_server::policy::{Client, Verdict};

const RSA: &str = include_str!("../../scenarios/defence/keys/rsa2048.pem");

fn body(size: usize, from: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Alice <{from}>\r\nTo: bob@example.org\r\nSubject: bench\r\n\
Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\n"
    )
    .into_bytes();
    while m.len() < size {
        m.extend_from_slice(b"the quick brown fox jumps over the lazy dog 0123456789 abcdef\r\n");
    }
    m.truncate(size - 2);
    m.extend_from_slice(b"\r\n");
    m
}

fn world() -> FakeEnv {
    let env = FakeEnv::new();
    let txt = |name: &str, t: &str| {
        env.answer(name, RecordKind::Txt, Ok(vec![Record::Txt(t.into())]));
    };
    txt("sender.test", "v=spf1 include:_spf.sender.test -all");
    txt("_spf.sender.test", "v=spf1 a:out.sender.test -all");
    env.answer(
        "out.sender.test",
        RecordKind::A,
        Ok(vec![Record::A("203.0.113.5".parse().unwrap())]),
    );
    txt("mail.sender.test", "v=spf1 a -all");
    env.answer(
        "mail.sender.test",
        RecordKind::A,
        Ok(vec![Record::A("203.0.113.5".parse().unwrap())]),
    );
    txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    env.answer(
        "5.113.0.203.in-addr.arpa",
        RecordKind::Ptr,
        Ok(vec![Record::Ptr("mail.sender.test.".into())]),
    );
    let key = SigningKey::load(0, &dkim_config()).unwrap();
    txt(&key.dns_name(), &key.dns_record());
    env
}

fn dkim_config() -> DkimConfig {
    DkimConfig {
        domain: "sender.test".into(),
        selector: "s1".into(),
        algorithm: DkimAlgorithm::RsaSha256,
        key: None,
        key_pem: Some(RSA.into()),
    }
}

fn envelope() -> Envelope {
    Envelope {
        helo: "mail.sender.test".into(),
        mail_from: Some(Address::parse("alice@sender.test").unwrap()),
        recipients: vec![Recipient {
            address: Address::parse("bob@example.org").unwrap(),
            mailboxes: vec!["bob@example.org".into()],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn client(ip: &str) -> Client {
    Client {
        remote: SocketAddr::new(ip.parse().unwrap(), 40000),
        local: "192.0.2.1:25".parse().unwrap(),
        helo: Some("mail.sender.test".into()),
        tls: false,
        authenticated: None,
    }
}

fn bench_sender_auth(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = world();
    let config: SenderAuthConfig = toml::from_str("").unwrap();
    let auth = rt.block_on(async {
        Arc::new(SenderAuth::new(env.clone(), config, "mx.example.org", vec![]).unwrap())
    });
    let signer = Signer::from_config(&[dkim_config()]).unwrap();
    let plain = body(10 * 1024, "alice@sender.test");
    let mut signed = signer.sign(&plain, Timestamp::from_secs(1_767_225_600))[0]
        .header
        .clone()
        .unwrap()
        .into_bytes();
    signed.extend_from_slice(&plain);
    let good = client("203.0.113.5");
    let bad = client("198.51.100.9");
    let env_ = envelope();
    // The figures are only worth something if the verdicts are what the names say.
    let checked = rt.block_on(auth.check(&good, &env_, &signed));
    assert_eq!(
        (
            checked.findings.spf.as_str(),
            checked.findings.dkim.as_str(),
            checked.findings.dmarc.as_str()
        ),
        ("pass", "pass", "pass")
    );
    let forged = rt.block_on(auth.check(&bad, &env_, &plain));
    assert!(
        matches!(forged.verdict, Verdict::Reject(_)),
        "{:?}",
        forged.findings
    );

    let mut g = c.benchmark_group("sender_auth");
    g.throughput(Throughput::Bytes(signed.len() as u64));
    g.bench_function("pass", |b| {
        b.iter(|| rt.block_on(auth.check(&good, &env_, black_box(&signed))))
    });
    g.bench_function("forged", |b| {
        b.iter(|| rt.block_on(auth.check(&bad, &env_, black_box(&plain))))
    });
    g.finish();

    let mut g = c.benchmark_group("spf_check_host");
    let ip = "203.0.113.5".parse().unwrap();
    g.bench_function("include_a", |b| {
        b.iter(|| {
            rt.block_on(check_host(
                &env,
                &SpfQuery {
                    ip,
                    domain: "sender.test",
                    sender: "alice@sender.test",
                    helo: "mail.sender.test",
                    receiver: "mx.example.org",
                },
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_sender_auth);
criterion_main!(benches);
