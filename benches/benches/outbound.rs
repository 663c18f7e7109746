//! Outbound pieces not covered elsewhere:
//!
//! - `dsn/build/{1,10}`: building a failure DSN (RFC 3464, multipart/report, original headers
//!   attached) for 1 and 10 recipients of a 4 KiB message.
//! - `sim_enqueue/{1,32}`: durable enqueue into the queue on turmoil's *simulated*
//!   filesystem (crash semantics, fsync modelled), 200 messages of 2 KiB, by 1 or 32
//!   concurrent tasks inside one simulated host. This is the cost the simulator pays per
//!   queued message; the real-filesystem figures are in `--bench queue`.
//!
//! `cargo bench -p mailsim-benches --bench outbound`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailsim::clock::SimClock;
use mailsim::env::{Activity, SimEnv};
use mailsim::trace::Trace;
use mailsim_server::env::Timestamp;
use mailsim_server::mail::Address;
use mailsim_server::queue::dsn::{build_dsn, DsnAction, DsnInput, DsnKind, DsnRecipient};
use mailsim_server::queue::store::QueueStore;

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: bench\r\nReceived: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n".to_vec();
    while m.len() < size {
        m.extend_from_slice(b"the quick brown fox jumps over the lazy dog 0123456789 abcdef\r\n");
    }
    m.truncate(size);
    m
}

fn bench_dsn(c: &mut Criterion) {
    let mut g = c.benchmark_group("dsn/build");
    let original = message(4096);
    let sender = Address::parse("alice@example.org").unwrap();
    for n in [1usize, 10] {
        let recipients: Vec<DsnRecipient> = (0..n)
            .map(|i| DsnRecipient {
                address: Address::parse(&format!("user{i}@other.net")).unwrap(),
                original: None,
                action: DsnAction::Failed,
                status: (5, 1, 1),
                remote_mta: Some("mx1.other.net".into()),
                diagnostic: Some(format!("550 5.1.1 <user{i}@other.net>: Recipient address rejected: User unknown in virtual mailbox table")),
                last_attempt: Some(Timestamp::from_secs(1_767_225_900)),
                will_retry_until: None,
            })
            .collect();
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::from_parameter(n),
            &recipients,
            |b, recipients| {
                b.iter(|| {
                    black_box(build_dsn(&DsnInput {
                        kind: DsnKind::Failure,
                        reporting_mta: "mx.example.org",
                        original_envelope_id: None,
                        arrival_date: Timestamp::from_secs(1_767_225_600),
                        now: Timestamp::from_secs(1_767_225_900),
                        sender: &sender,
                        recipients,
                        original_message: &original,
                        message_id: "<1767225600.000000.0123456789abcdef.failure.1@mx.example.org>"
                            .into(),
                        return_full: false,
                    }))
                })
            },
        );
    }
    g.finish();
}

/// Enqueues `total` messages with `tasks` concurrent enqueuers inside one simulated host.
fn sim_enqueue(total: usize, tasks: usize) {
    let mut sim = turmoil::Builder::new()
        .tick_duration(Duration::from_millis(1))
        .simulation_duration(Duration::from_secs(3600))
        .rng_seed(7)
        .build();
    let clock = SimClock::new(Timestamp::from_secs(1_767_225_600));
    let trace = Trace::new(clock.clone());
    let dns: SocketAddr = "192.0.2.53:53".parse().unwrap();
    sim.client("192.0.2.1", async move {
        let env = SimEnv::new("server", clock, trace, 7, dns, Activity::default());
        let (store, _) = QueueStore::open(env).await?;
        let body = message(2048);
        let from = Address::parse("a@example.org").unwrap();
        let to = vec![Address::parse("b@other.net").unwrap()];
        let mut handles = Vec::new();
        for t in 0..tasks {
            let (store, body, from, to) = (store.clone(), body.clone(), from.clone(), to.clone());
            let n = total / tasks + usize::from(t < total % tasks);
            handles.push(tokio::task::spawn_local(async move {
                for i in 0..n {
                    let now = Timestamp::from_secs(1_767_225_600 + i as u64);
                    store
                        .enqueue(Some(from.clone()), to.clone(), &body, now)
                        .await
                        .expect("enqueue");
                }
            }));
        }
        for h in handles {
            h.await?;
        }
        Ok(())
    });
    sim.run().expect("the simulated enqueues finish");
}

fn bench_sim_enqueue(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim_enqueue");
    g.sample_size(10);
    const TOTAL: usize = 200;
    for tasks in [1usize, 32] {
        g.throughput(Throughput::Elements(TOTAL as u64));
        g.bench_with_input(BenchmarkId::from_parameter(tasks), &tasks, |b, &tasks| {
            b.iter(|| sim_enqueue(TOTAL, tasks))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_dsn, bench_sim_enqueue);
criterion_main!(benches);
