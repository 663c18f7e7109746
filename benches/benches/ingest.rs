//! Ingest of one big message by the SMTP session (issue #9): GB/s of wire input for a 4 MiB
//! message, in reads of the driver's buffer size, through
//!
//! - `data/in_memory`: DATA, the body held whole in the Transaction (the path before
//!   streaming, still what a session without a spool does);
//! - `data/spooled`: DATA with a spool file set: the session hands out 16 KiB chunks
//!   (black-boxed here: the session's own cost);
//! - `data/spooled_to_file`: the same, each chunk appended to a real file in the page
//!   cache, as the driver does (no fsync: the spool needs none);
//! - `bdat/in_memory`, `bdat/spooled`: BDAT in 1 MiB chunks (no dot-unstuffing, counted
//!   framing) the same two ways.
//!
//! `cargo bench -p mailsim-benches --bench ingest`

// A benchmark of the real filesystem path: std files are the point here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::hint::black_box;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mailsim_server::config::ServerConfig;
use mailsim_server::env::Timestamp;
use mailsim_server::policy::Verdict;
use mailsim_server::smtp::session::{Answer, Output, PeerInfo, Session, SessionConfig};

const BODY: usize = 4 * 1024 * 1024;
const READ_BUF: usize = 8 * 1024;
const BDAT_CHUNK: usize = 1024 * 1024;

fn config() -> Arc<SessionConfig> {
    let cfg: ServerConfig = toml::from_str(
        "hostname = \"mx.example.org\"\ndomains = [\"example.org\"]\naccounts = [\"u@example.org\"]\n[limits]\nmessage_size = 20000000\n",
    )
    .expect("bench config parses");
    let directory = cfg.validate().expect("bench config is valid");
    Arc::new(SessionConfig {
        hostname: cfg.hostname,
        limits: cfg.limits,
        directory: Arc::new(directory),
        relay_networks: cfg.relay_networks,
        offers: Default::default(),
        quota: None,
        spool_dir: None,
    })
}

/// Header block and 78-octet text lines, no line needing a stuffed dot.
fn body() -> Vec<u8> {
    let mut b = b"From: a@remote.test\r\nTo: u@example.org\r\nSubject: big\r\n\r\n".to_vec();
    let mut n = 0u32;
    while b.len() < BODY {
        b.extend_from_slice(
            format!("{n:08} the quick brown fox jumps over the lazy dog 0123456789 abcdefghi\r\n")
                .as_bytes(),
        );
        n += 1;
    }
    b
}

fn wire(body: &[u8], bdat: bool) -> Vec<u8> {
    let mut w =
        b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<u@example.org>\r\n".to_vec();
    if bdat {
        let chunks: Vec<&[u8]> = body.chunks(BDAT_CHUNK).collect();
        for (i, c) in chunks.iter().enumerate() {
            let last = if i + 1 == chunks.len() { " LAST" } else { "" };
            w.extend_from_slice(format!("BDAT {}{last}\r\n", c.len()).as_bytes());
            w.extend_from_slice(c);
        }
    } else {
        w.extend_from_slice(b"DATA\r\n");
        w.extend_from_slice(body);
        w.extend_from_slice(b".\r\n");
    }
    w.extend_from_slice(b"QUIT\r\n");
    w
}

/// Where spool chunks go.
enum Sink<'a> {
    Discard,
    File(&'a std::path::Path),
}

/// One session over `wire` in driver-sized reads; the octets delivered (head + spooled).
fn run(config: &Arc<SessionConfig>, wire: &[u8], spool: Option<Sink<'_>>) -> u64 {
    let now = Timestamp::from_secs(1_700_000_000);
    let peer = PeerInfo {
        remote: SocketAddr::from(([192, 0, 2, 1], 40000)),
        local: SocketAddr::from(([198, 51, 100, 1], 25)),
    };
    let mut s = Session::new(config.clone(), peer, now);
    if spool.is_some() {
        s.spool_to("spool/1".into());
    }
    let mut file = None;
    let mut delivered = 0;
    let mut reads = wire.chunks(READ_BUF);
    loop {
        match s.poll(now) {
            Output::Reply(r) => {
                black_box(r);
            }
            Output::Deliver(tx) => {
                delivered += tx.message.len();
                s.answer(Answer::Delivered(Ok("id".into())));
            }
            Output::Check(check) => s.answer(Answer::Checked(check, Verdict::Accept)),
            Output::Spool { bytes, first } => match &spool {
                Some(Sink::File(path)) => {
                    if first {
                        file = Some(std::fs::File::create(path).expect("spool file"));
                    }
                    file.as_mut()
                        .expect("created")
                        .write_all(&bytes)
                        .expect("spool write");
                }
                _ => {
                    black_box(bytes);
                }
            },
            Output::Unspool => {}
            Output::StartTls | Output::Authenticate(_) => panic!("not offered"),
            Output::Close => break,
            Output::NeedInput => match reads.next() {
                Some(c) => s.push_input(c),
                None => panic!("session wants more input than the script has"),
            },
        }
        black_box(s.take_log());
    }
    delivered
}

fn bench(c: &mut Criterion) {
    let config = config();
    let body = body();
    let data = wire(&body, false);
    let bdat = wire(&body, true);
    let dir = std::env::temp_dir().join(format!("mailsim-ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spool_file = dir.join("spool");
    for (w, name) in [(&data, "DATA"), (&bdat, "BDAT")] {
        for spool in [None, Some(Sink::Discard), Some(Sink::File(&spool_file))] {
            let got = run(&config, w, spool);
            assert!(
                got as usize > BODY,
                "{name}: the message is delivered ({got})"
            );
        }
    }

    let mut g = c.benchmark_group("ingest");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("data/in_memory", |b| b.iter(|| run(&config, &data, None)));
    g.bench_function("data/spooled", |b| {
        b.iter(|| run(&config, &data, Some(Sink::Discard)))
    });
    g.bench_function("data/spooled_to_file", |b| {
        b.iter(|| run(&config, &data, Some(Sink::File(&spool_file))))
    });
    g.throughput(Throughput::Bytes(bdat.len() as u64));
    g.bench_function("bdat/in_memory", |b| b.iter(|| run(&config, &bdat, None)));
    g.bench_function("bdat/spooled", |b| {
        b.iter(|| run(&config, &bdat, Some(Sink::Discard)))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
