use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;

use super::*;
use crate::durable::memenv::{Fs, MemEnv};
use crate::env::real::RealEnv;
use crate::mail::Ret;

/// A fresh directory under the system temp dir, removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(tag: &str) -> TempRoot {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mailsim-queue-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempRoot(dir)
    }

    fn env(&self) -> RealEnv {
        RealEnv::new(self.0.clone(), Default::default()).unwrap()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn qdir() -> &'static Path {
    Path::new(QUEUE_DIR)
}

/// A spooled message (head in memory, rest in a file) is queued whole: the committer copies
/// the file in, and the checksum — combined from the CRC the session computed while
/// spooling — verifies on recovery.
#[tokio::test]
async fn a_spooled_message_is_queued_whole_and_verifies_on_reopen() {
    let root = TempRoot::new("spooled");
    let env = root.env();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let head = b"Received: by us\r\nSubject: big\r\n\r\n".to_vec();
    let rest: Vec<u8> = (0..300_000u32)
        .map(|i| b"abcdefgh\r\n"[(i % 10) as usize])
        .collect();
    env.write(Path::new("spool-7"), &rest).await.unwrap();
    let message = crate::mail::Message::spooled(
        head.clone(),
        crate::mail::Spooled {
            path: "spool-7".into(),
            len: rest.len() as u64,
            crc: crate::durable::crc::crc32(&rest),
        },
    );
    let id = store
        .enqueue_message(
            None,
            &MessageOptions::default(),
            &[NewRecipient::from(addr("bob@example.net"))],
            &message,
            t(5),
        )
        .await
        .unwrap();
    drop(store);
    let (store, got) = QueueStore::open(env.clone()).await.unwrap();
    assert_eq!(got.len(), 1, "recovered (checksum verified)");
    assert_eq!(got[0].size, head.len() + rest.len());
    let body = store.read_message(id).await.unwrap();
    assert!(body.starts_with(&head) && body[head.len()..] == rest[..]);
}

#[tokio::test]
async fn enqueue_then_reopen_gives_the_same_messages() {
    let root = TempRoot::new("reopen");
    let env = root.env();
    let (store, recovered) = QueueStore::open(env.clone()).await.unwrap();
    assert!(recovered.is_empty());

    let body1 = b"Subject: one\r\n\r\nhello\r\n".to_vec();
    let body2: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let when = Timestamp(Duration::new(1_700_000_000, 123_456_789));
    let id1 = store
        .enqueue(
            Some(addr("Alice@example.org")),
            vec![addr("bob@example.net"), addr("carol@example.com")],
            &body1,
            when,
        )
        .await
        .unwrap();
    let id2 = store
        .enqueue(
            None,
            vec![addr("dave@example.net")],
            &body2,
            t(1_700_000_100),
        )
        .await
        .unwrap();
    assert_ne!(id1, id2);
    assert_eq!(
        id1.timestamp(),
        Timestamp(Duration::new(1_700_000_000, 123_456_000))
    );
    drop(store);

    let (store, got) = QueueStore::open(env.clone()).await.unwrap();
    assert_eq!(got.len(), 2);
    let m1 = got.iter().find(|m| m.id == id1).unwrap();
    assert_eq!(m1.queued_at, when);
    assert_eq!(m1.mail_from, Some(addr("Alice@example.org")));
    assert_eq!(
        m1.recipients,
        vec![
            QueuedRecipient {
                address: addr("bob@example.net"),
                state: RecipientState::Pending,
                notify: Default::default(),
                orcpt: None,
            },
            QueuedRecipient {
                address: addr("carol@example.com"),
                state: RecipientState::Pending,
                notify: Default::default(),
                orcpt: None,
            },
        ]
    );
    assert!(!m1.delay_warned);
    assert_eq!(m1.size, body1.len());
    let m2 = got.iter().find(|m| m.id == id2).unwrap();
    assert_eq!(m2.mail_from, None);
    assert_eq!(m2.size, body2.len());
    assert_eq!(store.read_message(id1).await.unwrap(), body1);
    assert_eq!(store.read_message(id2).await.unwrap(), body2);
    // Oldest first.
    assert_eq!(got[0].id, id1);
    // Only the two queue files, no leftovers.
    let names = env.list_dir(qdir()).await.unwrap();
    assert_eq!(names, vec![id1.to_string(), id2.to_string()]);
}

#[tokio::test]
async fn state_updates_survive_reopen() {
    let root = TempRoot::new("state");
    let env = root.env();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let rcpts = vec![
        addr("a@one.example"),
        addr("b@two.example"),
        addr("c@three.example"),
    ];
    let id = store
        .enqueue(Some(addr("s@example.org")), rcpts, b"x\r\n", t(1000))
        .await
        .unwrap();
    let deferred = |attempts, next| RecipientState::Deferred {
        attempts,
        last_reply: "451 4.7.1 Greylisted, please try again later".into(),
        next_attempt: Timestamp(Duration::new(next, 42)),
    };
    store
        .record(
            id,
            &[
                (0, deferred(1, 1300)),
                (
                    1,
                    RecipientState::Delivered {
                        reply: "250 2.0.0 Ok: queued as 12345".into(),
                    },
                ),
            ],
        )
        .await
        .unwrap();
    store.record(id, &[(0, deferred(2, 1900))]).await.unwrap();
    store.mark_delay_warned(id).await.unwrap();
    let failed = RecipientState::Failed {
        reply: "550 5.1.1 <c@three.example>: user unknown, 100% sure = no, ünïcode\r\n".into(),
    };
    store.record(id, &[(2, failed.clone())]).await.unwrap();
    store.record(id, &[]).await.unwrap();
    drop(store);

    let (store, got) = QueueStore::open(env.clone()).await.unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(m.delay_warned);
    assert_eq!(m.recipients[0].state, deferred(2, 1900));
    assert_eq!(
        m.recipients[1].state,
        RecipientState::Delivered {
            reply: "250 2.0.0 Ok: queued as 12345".into()
        }
    );
    assert_eq!(m.recipients[2].state, failed);
    assert!(!m.is_complete());

    // The recovered store accepts records for recovered messages.
    store
        .record(
            id,
            &[(
                0,
                RecipientState::Delivered {
                    reply: "250 ok".into(),
                },
            )],
        )
        .await
        .unwrap();
    drop(store);
    let (_store, got) = QueueStore::open(env).await.unwrap();
    assert!(got[0].is_complete());
}

#[tokio::test]
async fn removed_messages_do_not_come_back() {
    let root = TempRoot::new("remove");
    let env = root.env();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let keep = store
        .enqueue(None, vec![addr("a@x.example")], b"keep\r\n", t(1))
        .await
        .unwrap();
    let gone = store
        .enqueue(None, vec![addr("a@x.example")], b"gone\r\n", t(2))
        .await
        .unwrap();
    store.remove(gone).await.unwrap();
    // Idempotent.
    store.remove(gone).await.unwrap();
    // A removed message takes no more records (its file is not re-created).
    let e = store.mark_delay_warned(gone).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    let e = store.read_message(gone).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    // Indexes are checked against the message.
    let e = store
        .record(keep, &[(1, RecipientState::Pending)])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    drop(store);

    let (_store, got) = QueueStore::open(env.clone()).await.unwrap();
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), vec![keep]);
    assert_eq!(env.list_dir(qdir()).await.unwrap(), vec![keep.to_string()]);
}

#[tokio::test]
async fn torn_and_corrupt_files_are_skipped() {
    let root = TempRoot::new("corrupt");
    let env = root.env();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let good = store
        .enqueue(
            Some(addr("s@example.org")),
            vec![addr("a@x.example"), addr("b@y.example")],
            b"Subject: good\r\n\r\nbody\r\n",
            t(10),
        )
        .await
        .unwrap();
    let delivered = RecipientState::Delivered {
        reply: "250 ok".into(),
    };
    store.record(good, &[(0, delivered.clone())]).await.unwrap();
    drop(store);

    let good_bytes = env.read(&message_path(good)).await.unwrap();
    let id = |n: u64| QueueId::new(t(20 + n), n);
    let write = |id: QueueId, data: Vec<u8>| {
        let env = env.clone();
        async move { env.write(&message_path(id), &data).await.unwrap() }
    };
    // A torn state record after the good one's last record, then another good record: the
    // torn one is skipped, the one after it counts.
    let torn = format::encode_record(&[Change::Recipient(1, delivered.clone())]).unwrap();
    env.append(&message_path(good), &torn[..torn.len() / 2])
        .await
        .unwrap();
    env.append(
        &message_path(good),
        &format::encode_record(&[Change::Warned]).unwrap(),
    )
    .await
    .unwrap();
    // Truncated, garbage, bit-flipped and empty files under valid ids.
    let body_at = good_bytes
        .windows(6)
        .position(|w| w == b"body\r\n")
        .unwrap();
    write(id(1), good_bytes[..body_at + 2].to_vec()).await;
    write(id(2), b"\x00\x01 garbage, not a queue file".to_vec()).await;
    let mut flipped = good_bytes.clone();
    flipped[body_at] ^= 0x20;
    write(id(3), flipped).await;
    write(id(4), Vec::new()).await;
    // A future format version: left alone.
    write(id(5), b"mailsim-queue 2 7 0 00000000\nfuture!".to_vec()).await;
    // An unfinished enqueue and a stranger.
    env.write(&tmp_path(id(6)), &good_bytes[..20])
        .await
        .unwrap();
    env.write(&qdir().join("README"), b"hi").await.unwrap();

    let (store, got) = QueueStore::open(env.clone()).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].id, good);
    assert_eq!(got[0].recipients[0].state, delivered);
    assert_eq!(got[0].recipients[1].state, RecipientState::Pending);
    assert!(got[0].delay_warned);
    assert_eq!(
        store.read_message(good).await.unwrap(),
        b"Subject: good\r\n\r\nbody\r\n"
    );
    let mut expect = vec![
        format!(".bad-{}", id(1)),
        format!(".bad-{}", id(2)),
        format!(".bad-{}", id(3)),
        format!(".bad-{}", id(4)),
        good.to_string(),
        id(5).to_string(),
        "README".to_string(),
    ];
    expect.sort();
    assert_eq!(env.list_dir(qdir()).await.unwrap(), expect);
    // The future-version file cannot be read as a message.
    let e = store.read_message(id(5)).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);

    // A second recovery finds the same queue and moves nothing more.
    drop(store);
    let (_store, again) = QueueStore::open(env.clone()).await.unwrap();
    assert_eq!(again, got);
    assert_eq!(env.list_dir(qdir()).await.unwrap(), expect);
}

#[tokio::test]
async fn recovery_decisions_are_traced() {
    let env = MemEnv::new();
    env.create_dir_all(qdir()).await.unwrap();
    let bad = QueueId::new(t(1), 1);
    env.write(&message_path(bad), b"junk").await.unwrap();
    env.write(&tmp_path(bad), b"half").await.unwrap();
    env.write(&qdir().join("notes.txt"), b"").await.unwrap();
    let (_store, got) = QueueStore::open(env.clone()).await.unwrap();
    assert!(got.is_empty());
    let traces = env.traces().join("\n");
    assert!(
        traces.contains(&format!("recovery: removed .tmp-{bad}")),
        "{traces}"
    );
    assert!(
        traces.contains(&format!(
            "recovery: {bad}: no header line, moved to .bad-{bad}"
        )),
        "{traces}"
    );
    assert!(
        traces.contains("recovery: ignored entry \"notes.txt\""),
        "{traces}"
    );
}

#[test]
fn ids_are_canonical_and_never_paths() {
    let id = QueueId::new(Timestamp(Duration::new(1_700_000_000, 987_654_321)), 0xabc);
    let s = id.to_string();
    assert_eq!(s, "1700000000.987654.0000000000000abc");
    assert_eq!(QueueId::parse(&s), Some(id));
    assert_eq!(s.parse::<QueueId>(), Ok(id));
    let small = QueueId::new(t(5), u64::MAX);
    assert_eq!(small.to_string(), "0000000005.000000.ffffffffffffffff");
    assert_eq!(QueueId::parse(&small.to_string()), Some(small));
    let big = QueueId::new(t(u64::MAX), 1);
    assert_eq!(QueueId::parse(&big.to_string()), Some(big));
    for bad in [
        "",
        ".",
        "..",
        "../1700000000.987654.0000000000000abc",
        "1700000000.987654.0000000000000abc/..",
        "a/b",
        "/etc/passwd",
        ".tmp-1700000000.987654.0000000000000abc",
        ".bad-1700000000.987654.0000000000000abc",
        "1700000000.987654.0000000000000ABC",
        "1700000000.987654.000000000000abc",
        "1700000000.98765.0000000000000abc",
        "170000000.987654.0000000000000abc",
        "01700000000.987654.0000000000000abc",
        "+700000000.987654.0000000000000abc",
        "1700000000.987654.0000000000000abc.",
        "1700000000.987654.0000000000000abc.x",
        "1700000000..987654.0000000000000abc",
        "99999999999999999999.000000.0000000000000000",
        "1700000000.987654.+000000000000abc",
        "1700000000.987654.0000000000000abc\0",
        "1700000000.987654.0000000000000abc\n",
    ] {
        assert_eq!(QueueId::parse(bad), None, "{bad:?}");
        assert!(bad.parse::<QueueId>().is_err());
    }
    // Every id names exactly one plain file in queue/.
    let p = message_path(id);
    assert_eq!(p.parent(), Some(qdir()));
    assert_eq!(p.components().count(), 2);
    // Ids sort by time.
    assert!(QueueId::new(t(9), u64::MAX) < QueueId::new(t(10), 0));
    assert!(small.to_string() < id.to_string());
}

#[tokio::test]
async fn enqueue_without_recipients_is_refused() {
    let env = MemEnv::new();
    let (store, _) = QueueStore::open(env).await.unwrap();
    let e = store
        .enqueue(None, Vec::<Address>::new(), b"x", t(1))
        .await
        .unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)));
}

#[tokio::test]
async fn concurrent_enqueues_share_one_directory_sync() {
    let env = MemEnv::new();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let before = env.ops();
    let ids = join_all((0..32u64).map(|i| {
        let store = store.clone();
        async move {
            store
                .enqueue(
                    None,
                    vec![addr("a@b.example")],
                    format!("m{i}").as_bytes(),
                    t(100),
                )
                .await
        }
    }))
    .await;
    let ids: BTreeSet<QueueId> = ids.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids.len(), 32);
    // 32 × (write, fsync, rename) + ONE directory sync.
    assert_eq!(env.ops() - before, 32 * 3 + 1);
    assert!(env.traces().iter().any(|l| l.contains("batch of 32")));
    drop(store);
    let (_s, got) = QueueStore::open(env.clone()).await.unwrap();
    assert_eq!(got.len(), 32);
}

#[tokio::test]
async fn ids_are_deterministic_given_the_rng() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let env = MemEnv::with(Fs::default(), None, 0.0, 7);
        let (store, _) = QueueStore::open(env.clone()).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(
                store
                    .enqueue(None, vec![addr("a@b.example")], b"x", t(i))
                    .await
                    .unwrap(),
            );
        }
        runs.push((ids, env.traces()));
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn mem_env_models_durability() {
    // The model the crash test relies on: unsynced names and contents vanish.
    let env = MemEnv::new();
    let p = Path::new;
    env.create_dir_all(p("d")).await.unwrap();
    env.write(p("d/a"), b"one").await.unwrap();
    env.sync_file(p("d/a")).await.unwrap();
    assert!(env.image().names_for_test().is_empty(), "dir d not synced");
    env.sync_dir(p("")).await.unwrap();
    env.sync_dir(p("d")).await.unwrap();
    env.append(p("d/a"), b"two").await.unwrap();
    env.write(p("d/b"), b"unsynced name").await.unwrap();
    env.sync_file(p("d/b")).await.unwrap();
    assert_eq!(
        env.image().names_for_test(),
        vec![("d/a".into(), b"one".to_vec())]
    );
    env.rename(p("d/a"), p("d/c")).await.unwrap();
    env.remove_file(p("d/b")).await.unwrap();
    assert_eq!(
        env.image().names_for_test(),
        vec![("d/a".into(), b"one".to_vec())]
    );
    env.sync_dir(p("d")).await.unwrap();
    assert_eq!(
        env.image().names_for_test(),
        vec![("d/c".into(), b"one".to_vec())]
    );
    let torn = MemEnv::with(env.image(), None, 0.5, 1);
    torn.append(p("d/c"), b"abcd").await.unwrap();
    assert_eq!(
        torn.image().names_for_test(),
        vec![("d/c".into(), b"oneab".to_vec())]
    );
}

/// What the workload of the crash test saw acknowledged before the crash point.
#[derive(Debug, Default)]
struct Acks {
    enqueued: Vec<(usize, QueueId)>,
    recorded: Vec<(QueueId, usize, RecipientState)>,
    warned: Vec<QueueId>,
    removed: Vec<QueueId>,
}

fn body(i: usize) -> Vec<u8> {
    format!("Subject: {i}\r\n\r\n")
        .into_bytes()
        .into_iter()
        .chain(
            format!("line of message {i}\r\n")
                .repeat(i + 1)
                .into_bytes(),
        )
        .collect()
}

fn rcpts() -> Vec<Address> {
    vec![addr("r0@a.example"), addr("r1@b.example")]
}

fn ok(reply: &str) -> RecipientState {
    RecipientState::Delivered {
        reply: reply.into(),
    }
}

fn later() -> RecipientState {
    RecipientState::Deferred {
        attempts: 1,
        last_reply: "421 busy".into(),
        next_attempt: t(5000),
    }
}

/// The state the workload gives recipient `idx` of message `i` (if any).
fn intended(i: usize, idx: usize) -> RecipientState {
    match (i, idx) {
        (0, 0) => ok("250 first"),
        (0, 1) => RecipientState::Failed {
            reply: "550 no".into(),
        },
        (1, 1) => later(),
        (2, _) => ok("250 third"),
        _ => RecipientState::Pending,
    }
}

/// Enqueues, records, warns and removes, concurrently where a server would; notes every
/// acknowledgement that arrived before file operation `crash_at` started.
async fn workload(env: &MemEnv, crash_at: usize) -> Acks {
    let mut acks = Acks::default();
    let before = |env: &MemEnv| env.ops() <= crash_at;
    let Ok((store, _)) = QueueStore::open(env.clone()).await else {
        return acks;
    };
    let enq = |i: usize| {
        let store = store.clone();
        async move {
            let from = i.is_multiple_of(2).then(|| addr("sender@example.org"));
            (
                i,
                store
                    .enqueue(from, rcpts(), &body(i), t(1000 + i as u64))
                    .await,
            )
        }
    };
    let mut ids = Vec::new();
    for (i, r) in join_all((0..3).map(enq)).await {
        let id = r.unwrap();
        ids.push(id);
        if before(env) {
            acks.enqueued.push((i, id));
        }
    }
    let (first, second) = ([(0, ok("250 first"))], [(1, later())]);
    let (a, b, c) = tokio::join!(
        store.record(ids[0], &first),
        store.record(ids[1], &second),
        store.mark_delay_warned(ids[1]),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    if before(env) {
        acks.recorded.push((ids[0], 0, ok("250 first")));
        acks.recorded.push((ids[1], 1, later()));
        acks.warned.push(ids[1]);
    }
    let failed = RecipientState::Failed {
        reply: "550 no".into(),
    };
    store.record(ids[0], &[(1, failed.clone())]).await.unwrap();
    if before(env) {
        acks.recorded.push((ids[0], 1, failed));
    }
    store.remove(ids[0]).await.unwrap();
    if before(env) {
        acks.removed.push(ids[0]);
    }
    let third = [(0, ok("250 third")), (1, ok("250 third"))];
    let (d, e) = tokio::join!(enq(3), store.record(ids[2], &third),);
    let id3 = d.1.unwrap();
    e.unwrap();
    if before(env) {
        acks.enqueued.push((3, id3));
        acks.recorded.push((ids[2], 0, ok("250 third")));
        acks.recorded.push((ids[2], 1, ok("250 third")));
    }
    acks
}

/// Crashes the workload before every single file operation (with unsynced appends lost,
/// half kept, or all kept), recovers, and checks: recovery succeeds and quarantines
/// nothing; every acknowledged enqueue is there, intact, unless acknowledged removed; every
/// acknowledged record holds; nothing is invented; and the recovered queue keeps working.
#[tokio::test]
async fn crash_at_every_operation() {
    let probe = MemEnv::new();
    workload(&probe, usize::MAX).await;
    let total = probe.ops();
    assert!(total > 20, "{total}");
    let mut checked = 0;
    for crash_at in 0..=total {
        for tear in [0.0, 0.5, 1.0] {
            let env = MemEnv::with(Fs::default(), Some(crash_at), tear, 1);
            let acks = workload(&env, crash_at).await;
            let after = MemEnv::with(env.image(), None, 0.0, 2);
            let ctx = format!("crash before op {crash_at}, tear {tear}");
            let (store, got) = QueueStore::open(after.clone())
                .await
                .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
            let names = after.list_dir(qdir()).await.unwrap_or_default();
            assert!(
                names.iter().all(|n| QueueId::parse(n).is_some()),
                "{ctx}: leftovers {names:?}"
            );
            for m in &got {
                let b = store.read_message(m.id).await.unwrap();
                let i = (0..4)
                    .find(|&i| body(i) == b)
                    .unwrap_or_else(|| panic!("{ctx}: unknown body"));
                assert_eq!(m.recipients.len(), 2, "{ctx}");
                assert_eq!(m.queued_at, t(1000 + i as u64), "{ctx}");
                assert_eq!(m.mail_from.is_some(), i.is_multiple_of(2), "{ctx}");
                for (idx, r) in m.recipients.iter().enumerate() {
                    let ok_states = [RecipientState::Pending, intended(i, idx)];
                    assert!(ok_states.contains(&r.state), "{ctx}: {:?}", r.state);
                }
                assert!(!m.delay_warned || i == 1, "{ctx}");
            }
            let find = |id: QueueId| got.iter().find(|m| m.id == id);
            for &(i, id) in &acks.enqueued {
                if !acks.removed.contains(&id) {
                    assert!(find(id).is_some(), "{ctx}: lost message {i}");
                    assert_eq!(store.read_message(id).await.unwrap(), body(i), "{ctx}");
                }
            }
            for id in &acks.removed {
                assert!(find(*id).is_none(), "{ctx}: removed message came back");
            }
            for (id, idx, state) in &acks.recorded {
                if let Some(m) = find(*id) {
                    assert_eq!(&m.recipients[*idx].state, state, "{ctx}");
                }
            }
            for id in &acks.warned {
                assert!(find(*id).is_none_or(|m| m.delay_warned), "{ctx}");
            }
            // The recovered queue works: a new message and a record on a recovered one.
            let id = store
                .enqueue(None, rcpts(), b"after\r\n", t(9000))
                .await
                .unwrap();
            if let Some(m) = got.first() {
                store.record(m.id, &[(1, ok("250 late"))]).await.unwrap();
            }
            drop(store);
            let (_s, again) = QueueStore::open(after.clone()).await.unwrap();
            assert_eq!(again.len(), got.len() + 1, "{ctx}");
            assert!(again.iter().any(|m| m.id == id), "{ctx}");
            if let Some(m) = got.first() {
                let m2 = again.iter().find(|x| x.id == m.id).unwrap();
                assert_eq!(m2.recipients[1].state, ok("250 late"), "{ctx}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, (total + 1) * 3);
}

#[tokio::test]
async fn a_record_racing_its_messages_removal_is_refused() {
    let env = MemEnv::new();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let id = store.enqueue(None, rcpts(), b"x\r\n", t(1)).await.unwrap();
    // Both in one batch, the record first: removals leave the live set before any record
    // of the batch is checked, so the record is refused rather than appended to (and so
    // re-creating) a file being unlinked.
    let update = [(0, ok("250 ok"))];
    let (r, gone) = tokio::join!(store.record(id, &update), store.remove(id));
    gone.unwrap();
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
    assert!(env
        .traces()
        .iter()
        .any(|l| l.contains(&format!("remove {id}"))));
    drop(store);
    let (_s, got) = QueueStore::open(env.clone()).await.unwrap();
    assert!(got.is_empty(), "{got:?}");
    assert!(env.list_dir(qdir()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_directory_flush_is_never_acknowledged() {
    let env = MemEnv::new();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let kept = store
        .enqueue(None, rcpts(), b"kept\r\n", t(1))
        .await
        .unwrap();
    env.set_failing("sync_dir", true);
    let update = [(0, ok("250 ok"))];
    let (enq, rec, rm) = tokio::join!(
        store.enqueue(None, rcpts(), b"new\r\n", t(2)),
        store.record(kept, &update),
        store.remove(kept),
    );
    // The enqueue is refused (451) and its file taken back; the record (queued before the
    // removal in the same batch) is refused as racing it; the removal is not acknowledged.
    assert!(matches!(enq, Err(DeliveryError::Temporary(_))), "{enq:?}");
    assert_eq!(rec.unwrap_err().kind(), io::ErrorKind::NotFound);
    assert!(rm.is_err());
    assert!(env
        .traces()
        .iter()
        .any(|l| l.contains("enqueue failed") && l.contains("directory flush failed")));
    env.set_failing("sync_dir", false);
    // The removal is retried and succeeds; no file was left behind the client's back.
    store.remove(kept).await.unwrap();
    assert!(env.list_dir(qdir()).await.unwrap().is_empty());

    // A record alone needs no directory flush: it is acknowledged even while that fails.
    let id = store
        .enqueue(None, rcpts(), b"later\r\n", t(3))
        .await
        .unwrap();
    env.set_failing("sync_dir", true);
    store.record(id, &[(1, later())]).await.unwrap();
    env.set_failing("sync_dir", false);
    drop(store);
    let (_s, got) = QueueStore::open(env.clone()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].recipients[1].state, later());
}

#[tokio::test]
async fn enqueue_uses_the_batch_path() {
    // One write_many and two sync_many per batch, as in the mailbox store.
    let env = MemEnv::new();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let id = store.enqueue(None, rcpts(), b"x\r\n", t(1)).await.unwrap();
    let from = env.calls().len();
    let update = [(0, ok("250 ok"))];
    let (a, b, c) = tokio::join!(
        store.enqueue(None, rcpts(), b"y\r\n", t(2)),
        store.enqueue(None, rcpts(), b"z\r\n", t(3)),
        store.record(id, &update),
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let calls: Vec<String> = env.calls()[from..].to_vec();
    let batched: Vec<&String> = calls.iter().filter(|c| c.contains("_many")).collect();
    assert_eq!(
        batched,
        ["write_many 2", "sync_many 3 0", "sync_many 0 1"],
        "{calls:#?}"
    );
}

/// Valid queue files to mutate: a few envelopes, bodies and state tails.
fn sample_file(variant: u8) -> Vec<u8> {
    let rcpts = [
        addr("a@x.example"),
        addr("b@y.example"),
        addr("c@z.example"),
    ];
    let n = 1 + usize::from(variant % 3);
    let from = variant.is_multiple_of(2).then(|| addr("s@example.org"));
    // Every fourth variant carries the DSN and REQUIRETLS parts too.
    let dsn = variant % 4 == 3;
    let options = MessageOptions {
        dsn: EnvelopeDsn {
            ret: dsn.then_some(Ret::Hdrs),
            envid: dsn.then(|| "env 1=%".into()),
        },
        require_tls: dsn,
        tls_required_no: variant % 4 == 1,
    };
    let rcpts: Vec<NewRecipient> = rcpts[..n]
        .iter()
        .map(|a| NewRecipient {
            address: a.clone(),
            notify: Notify {
                success: dsn,
                delay: dsn,
                ..Notify::default()
            },
            orcpt: dsn.then(|| format!("orig {a}")),
        })
        .collect();
    let mut data = format::encode_message(
        t(7),
        from.as_ref(),
        &options,
        &rcpts,
        &body(variant as usize),
    );
    let changes = [
        Change::Recipient(0, ok("250 ok")),
        Change::Warned,
        Change::Recipient(n - 1, later()),
        Change::Recipient(
            n - 1,
            RecipientState::Failed {
                reply: "550 5.1.1 no such user, 100%".into(),
            },
        ),
    ];
    for c in changes.iter().take(usize::from(variant % 5)) {
        data.extend_from_slice(&format::encode_record(std::slice::from_ref(c)).unwrap());
    }
    data
}

#[test]
fn fuzz_body_accepts_the_valid_files() {
    for v in 0..16 {
        let data = sample_file(v);
        let (m, skipped) = load(QueueId::new(t(0), 0), &data).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(m.size, body(v as usize).len());
        fuzz_queue_file(&data);
    }
}

mod fuzz {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_bytes(data in vec(any::<u8>(), 0..2048)) {
            fuzz_queue_file(&data);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header(
            variant in 0u8..16,
            junk in vec(any::<u8>(), 0..256),
        ) {
            let mut data = sample_file(variant);
            data.extend_from_slice(&junk);
            fuzz_queue_file(&data);
            // The message itself is still read: damage in the tail costs records only.
            prop_assert!(format::parse_message(&data).is_ok());
        }

        #[test]
        fn mutated_valid_files(
            variant in 0u8..16,
            edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        ) {
            let mut data = sample_file(variant);
            for (at, byte, kind) in edits {
                if data.is_empty() {
                    break;
                }
                let i = at.index(data.len());
                match kind {
                    0 => data[i] = byte,
                    1 => data.insert(i, byte),
                    _ => {
                        data.remove(i);
                    }
                }
            }
            fuzz_queue_file(&data);
        }

        #[test]
        fn truncated_valid_files(variant in 0u8..16, cut in any::<prop::sample::Index>()) {
            let data = sample_file(variant);
            let cut = cut.index(data.len() + 1);
            fuzz_queue_file(&data[..cut]);
        }
    }
}

/// The simulator's consistency check reads queue files through `inspect_queue_file`: a
/// whole file is `Ok` (done once every recipient is final), any prefix of it is refused.
#[tokio::test]
async fn inspect_queue_file_tells_whole_done_and_torn_files_apart() {
    let env = MemEnv::new();
    let (store, _) = QueueStore::open(env.clone()).await.unwrap();
    let id = store
        .enqueue(
            Some(addr("s@example.org")),
            vec![addr("a@one.example")],
            b"Subject: x\r\n\r\nbody\r\n",
            t(1000),
        )
        .await
        .unwrap();
    let read = || async { env.read(&qdir().join(id.to_string())).await.unwrap() };
    let data = read().await;
    assert_eq!(inspect_queue_file(&data), Ok(false));
    for cut in [0, 1, data.len() / 2, data.len() - 1] {
        assert!(inspect_queue_file(&data[..cut]).is_err(), "prefix of {cut}");
    }
    let delivered = RecipientState::Delivered {
        reply: "250 ok".into(),
    };
    store.record(id, &[(0, delivered)]).await.unwrap();
    let done = read().await;
    assert_eq!(inspect_queue_file(&done), Ok(true));
    // A torn state record is skipped, as recovery skips it: the file is whole, not done.
    assert_eq!(inspect_queue_file(&done[..done.len() - 3]), Ok(false));
}
