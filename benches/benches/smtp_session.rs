//! The SMTP session on its own (no I/O, no store): one pipelined transaction, EHLO, MAIL,
//! 10 RCPT, DATA with a 64 KiB body, QUIT, measured in MB/s of wire input. Next to it, in
//! the same run, smtp-proto's `DataReceiver` alone on the same body, so what our session
//! adds on top of the library (line framing, line-ending normalisation, limit checks, the
//! Received header, the copy into the Transaction) is visible as the difference.
//!
//! - `session/one_push`: the whole dialogue in one `push_input` (best case for pipelining);
//! - `session/16k_reads`: in reads of the driver's buffer size, as in production;
//! - `session/16k_reads_no_size`: the same without `SIZE=` (no up-front body buffer);
//! - `smtp_proto/data_receiver`: the library alone on the dot-stuffed body;
//! - `session/tiny_body`: the same dialogue with a one-line body: the per-session fixed
//!   cost (13 commands, directory lookups, replies), to subtract from the above.
//!
//! Every policy check (connect, MAIL, each RCPT, end of data) is answered with `Accept`, as
//! the driver's default policy does, so their round trips are part of every figure.
//!
//! `cargo bench -p mailsim-benches --bench smtp_session`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mailsim_server::config::ServerConfig;
use mailsim_server::env::Timestamp;
use mailsim_server::policy::Verdict;
use mailsim_server::smtp::session::{Answer, Output, PeerInfo, Session, SessionConfig};
use smtp_proto::request::receiver::DataReceiver;

const RECIPIENTS: usize = 10;
const BODY: usize = 64 * 1024;
/// What the async driver reads at a time (server/src/smtp/driver.rs).
const READ_BUF: usize = 16 * 1024;

/// The same TOML shape `mailsim serve --config` reads, validated the same way.
fn config() -> Arc<SessionConfig> {
    let accounts: Vec<String> = (0..RECIPIENTS)
        .map(|i| format!("\"user{i}@example.org\""))
        .collect();
    let text = format!(
        "hostname = \"mx.example.org\"\ndomains = [\"example.org\"]\naccounts = [{}]\n",
        accounts.join(", ")
    );
    let cfg: ServerConfig = toml::from_str(&text).expect("bench config parses");
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

/// A 64 KiB body as it travels on the wire: headers, 76-column text lines, every 16th line
/// starting with a dot (so stuffed), CRLF line endings. Without the terminating `.`.
fn wire_body() -> Vec<u8> {
    let mut body =
        b"From: a@remote.test\r\nTo: user0@example.org\r\nSubject: bench\r\n\r\n".to_vec();
    let mut n = 0u32;
    while body.len() < BODY {
        if n.is_multiple_of(16) {
            body.extend_from_slice(b"..");
        }
        let line =
            format!("{n:08} the quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n");
        body.extend_from_slice(line.as_bytes());
        n += 1;
    }
    body
}

/// The whole pipelined client side of one session. `SIZE=` as every MTA sends it when
/// advertised (the session reserves its body buffer from it), or without it.
fn wire_session(body: &[u8], size: bool) -> Vec<u8> {
    let mut w = b"EHLO client.test\r\n".to_vec();
    let size = if size {
        format!(" SIZE={}", body.len())
    } else {
        String::new()
    };
    w.extend_from_slice(format!("MAIL FROM:<a@remote.test> BODY=8BITMIME{size}\r\n").as_bytes());
    for i in 0..RECIPIENTS {
        w.extend_from_slice(format!("RCPT TO:<user{i}@example.org>\r\n").as_bytes());
    }
    w.extend_from_slice(b"DATA\r\n");
    w.extend_from_slice(body);
    w.extend_from_slice(b".\r\nQUIT\r\n");
    w
}

fn peer() -> PeerInfo {
    PeerInfo {
        remote: SocketAddr::from(([192, 0, 2, 1], 40000)),
        local: SocketAddr::from(([198, 51, 100, 1], 25)),
    }
}

/// Runs one session over `wire`, pushed in reads of `chunk` bytes; the delivered size.
fn run(config: &Arc<SessionConfig>, wire: &[u8], chunk: usize) -> usize {
    let now = Timestamp::from_secs(1_700_000_000);
    let mut s = Session::new(config.clone(), peer(), now);
    let mut delivered = 0;
    let mut chunks = wire.chunks(chunk);
    loop {
        match s.poll(now) {
            Output::Reply(r) => {
                black_box(r);
            }
            Output::Deliver(tx) => {
                delivered += tx.message.len() as usize;
                s.answer(Answer::Delivered(Ok("id".into())));
            }
            // What the driver does with the default policy (AcceptAll).
            Output::Check(check) => s.answer(Answer::Checked(check, Verdict::Accept)),
            Output::Spool { bytes, .. } => {
                black_box(bytes);
            }
            Output::Unspool => {}
            Output::StartTls | Output::Authenticate(_) => panic!("not offered"),
            Output::Close => break,
            Output::NeedInput => match chunks.next() {
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
    let body = wire_body();
    let wire = wire_session(&body, true);
    let wire_no_size = wire_session(&body, false);
    assert!(
        run(&config, &wire, wire.len()) > BODY,
        "the transaction is delivered"
    );
    assert!(
        run(&config, &wire_no_size, READ_BUF) > BODY,
        "the transaction is delivered"
    );

    let mut g = c.benchmark_group("smtp_session");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("session/one_push", |b| {
        b.iter(|| run(&config, black_box(&wire), wire.len()))
    });
    g.bench_function("session/16k_reads", |b| {
        b.iter(|| run(&config, black_box(&wire), READ_BUF))
    });
    g.bench_function("session/16k_reads_no_size", |b| {
        b.iter(|| run(&config, black_box(&wire_no_size), READ_BUF))
    });

    let mut data = body.clone();
    data.extend_from_slice(b".\r\n");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("smtp_proto/data_receiver", |b| {
        b.iter(|| {
            let mut receiver = DataReceiver::new();
            let mut out = Vec::new();
            let ended = receiver.ingest(&mut black_box(&data[..]).iter(), &mut out);
            assert!(ended);
            out
        })
    });
    g.finish();

    // The per-session fixed cost: the same dialogue with a one-line body.
    let tiny = wire_session(b"Subject: tiny\r\n\r\nhi\r\n", true);
    c.bench_function("smtp_session/session/tiny_body", |b| {
        b.iter(|| run(&config, black_box(&tiny), tiny.len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
