//! The outbound queue: durable enqueue on the real filesystem, and the scheduler.
//!
//! - `queue_enqueue/group/N`: `QueueStore::enqueue` of 2 KiB messages (2 recipients) on a
//!   `RealEnv` in a temp dir, N concurrent enqueuers. Every message is fsynced and its
//!   directory entry made durable before `enqueue` returns; with N > 1 the committer batches
//!   them (group commit: one flush for the data and one for the directory entries per batch,
//!   one `syncfs` each on Linux), which is what the N=1 vs N=32 figures show.
//! - `queue_enqueue/single/32`: the same 32 enqueuers through `CommitMode::Single` (the
//!   `--no-group-commit` mode): the same committer, one job per batch.
//! - `queue_enqueue/naive/32`: the same 32 enqueuers, each doing the classic commit on its
//!   own (write temp, fsync, rename, fsync dir) through the same Env: what group commit buys
//!   at equal concurrency.
//! - `scheduler/{100k,1M}/pop_reschedule`: a scheduler holding 100 000 or 1 000 000 slots;
//!   one op = `next_due` + `pop_next` + `schedule` of the popped slot at a later time (the
//!   delivery loop's step after a deferral).
//! - `scheduler/{100k,1M}/reschedule_random`: move an arbitrary slot (not the head) to a
//!   random time, as a DNS answer or a connection slot freeing up does.
//!
//! Throughput is per message / per op. Queued files are removed between samples (untimed)
//! so the directory does not grow with the sample count.
//!
//! `cargo bench -p mailsim-benches --bench queue`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailsim_server::durable::CommitMode;
use mailsim_server::env::real::RealEnv;
use mailsim_server::env::{Env, Timestamp};
use mailsim_server::mail::Address;
use mailsim_server::queue::schedule::Scheduler;
use mailsim_server::queue::store::{QueueId, QueueStore};

const MESSAGE: usize = 2048;

/// A temp dir removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(tag: &str) -> TempRoot {
        let dir =
            std::env::temp_dir().join(format!("mailsim-queue-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempRoot(dir)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn message() -> Vec<u8> {
    let mut m = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: bench\r\n\r\n".to_vec();
    while m.len() < MESSAGE {
        m.extend_from_slice(b"the quick brown fox jumps over the lazy dog 0123456789 abcdef\r\n");
    }
    m.truncate(MESSAGE);
    m
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `iters` enqueues split over `tasks` concurrent tasks; returns the wall time, then
/// (untimed) removes what was queued.
async fn enqueue_round(
    store: &QueueStore<RealEnv>,
    env: &RealEnv,
    body: &Arc<Vec<u8>>,
    tasks: u64,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let n = iters / tasks + u64::from(t < iters % tasks);
        let (store, env, body) = (store.clone(), env.clone(), body.clone());
        set.spawn(async move {
            let mut ids = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let id = store
                    .enqueue(
                        Some(Address::parse("sender@example.org").unwrap()),
                        vec![
                            Address::parse("r1@example.net").unwrap(),
                            Address::parse("r2@example.com").unwrap(),
                        ],
                        &body,
                        env.now(),
                    )
                    .await
                    .expect("enqueue");
                ids.push(id);
            }
            ids
        });
    }
    let ids: Vec<QueueId> = set.join_all().await.into_iter().flatten().collect();
    let elapsed = start.elapsed();
    for id in ids {
        store.remove(id).await.expect("remove");
    }
    elapsed
}

/// The classic one-message commit, no batching: write temp, fsync, rename, fsync dir.
async fn naive_round(env: &RealEnv, body: &Arc<Vec<u8>>, tasks: u64, iters: u64) -> Duration {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let n = iters / tasks + u64::from(t < iters % tasks);
        let (env, body) = (env.clone(), body.clone());
        set.spawn(async move {
            let dir = Path::new("naive");
            let mut names = Vec::new();
            for _ in 0..n {
                let name = format!("m{}", SEQ.fetch_add(1, Ordering::Relaxed));
                let tmp = dir.join(format!(".tmp-{name}"));
                env.write(&tmp, &body).await.unwrap();
                env.sync_file(&tmp).await.unwrap();
                env.rename(&tmp, &dir.join(&name)).await.unwrap();
                env.sync_dir(dir).await.unwrap();
                names.push(name);
            }
            names
        });
    }
    let names: Vec<String> = set.join_all().await.into_iter().flatten().collect();
    let elapsed = start.elapsed();
    for n in names {
        env.remove_file(&Path::new("naive").join(n)).await.unwrap();
    }
    elapsed
}

fn enqueue(c: &mut Criterion) {
    let rt = runtime();
    let root = TempRoot::new("enqueue");
    let env = RealEnv::new(root.0.clone(), Default::default()).expect("env");
    let (store, _) = rt
        .block_on(QueueStore::open(env.clone()))
        .expect("open queue");
    rt.block_on(env.create_dir_all(Path::new("naive")))
        .expect("mkdir");
    let body = Arc::new(message());

    let mut g = c.benchmark_group("queue_enqueue");
    g.throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for tasks in [1u64, 32] {
        g.bench_with_input(BenchmarkId::new("group", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| rt.block_on(enqueue_round(&store, &env, &body, tasks, iters)))
        });
    }
    // One store per data root: the single-commit store gets its own.
    let single_root = TempRoot::new("enqueue-single");
    let single_env = RealEnv::new(single_root.0.clone(), Default::default()).expect("env");
    let (single, _) = rt
        .block_on(QueueStore::open_with(
            single_env.clone(),
            CommitMode::Single,
        ))
        .expect("open queue");
    g.bench_with_input(BenchmarkId::new("single", 32), &32u64, |b, &tasks| {
        b.iter_custom(|iters| rt.block_on(enqueue_round(&single, &single_env, &body, tasks, iters)))
    });
    g.bench_with_input(BenchmarkId::new("naive", 32), &32u64, |b, &tasks| {
        b.iter_custom(|iters| rt.block_on(naive_round(&env, &body, tasks, iters)))
    });
    g.finish();
}

/// xorshift64*: a cheap deterministic stream for due times and keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const FIVE_DAYS: u64 = 5 * 24 * 3600;

fn filled(n: u64, rng: &mut Rng) -> (Scheduler, Vec<QueueId>) {
    let mut s = Scheduler::new();
    let mut ids = Vec::with_capacity(n as usize);
    for i in 0..n {
        let id = QueueId::new(Timestamp::from_secs(1_700_000_000 + i / 100), rng.next());
        let due = Timestamp::from_secs(1_700_000_000 + rng.next() % FIVE_DAYS);
        s.schedule(id, (i % 3) as usize, due);
        ids.push(id);
    }
    (s, ids)
}

fn scheduler(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (label, n) in [("100k", 100_000u64), ("1M", 1_000_000)] {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut s, ids) = filled(n, &mut rng);
        g.bench_function(BenchmarkId::new(label, "pop_reschedule"), |b| {
            b.iter(|| {
                let due = s.next_due().expect("never empty");
                let item = s.pop_next(due).expect("due");
                let later = due.plus(Duration::from_secs(300 + rng.next() % 4020));
                black_box(s.schedule(item.id, item.slot, later));
            })
        });
        assert_eq!(s.len() as u64, n);
        g.bench_function(BenchmarkId::new(label, "reschedule_random"), |b| {
            b.iter(|| {
                let i = (rng.next() % n) as usize;
                let due = Timestamp::from_secs(1_700_000_000 + rng.next() % FIVE_DAYS);
                black_box(s.reschedule(ids[i], &(i % 3), due));
            })
        });
        assert_eq!(s.len() as u64, n);
    }
    g.finish();
}

criterion_group!(benches, enqueue, scheduler);
criterion_main!(benches);
