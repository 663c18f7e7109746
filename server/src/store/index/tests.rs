//! The access index: UIDs, flags, expunge, move, compaction, and what a crash at every
//! single file operation leaves of each (with the crash-modelling `MemEnv`).

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::durable::memenv::{Fs, MemEnv};
use crate::env::Timestamp;

const ACCT: &str = "alice";

fn inbox() -> FolderName {
    FolderName::inbox()
}

fn junk() -> FolderName {
    FolderName::parse("Junk").unwrap()
}

/// A durable delivery into `folder` (as the MX store leaves one).
async fn deliver(env: &MemEnv, folder: &FolderName, id: &str, body: &str) {
    let dir = folder.root(Path::new("mail/alice")).join("new");
    crate::env::create_dir_durable(env, &dir).await.unwrap();
    env.write(&dir.join(id), body.as_bytes()).await.unwrap();
    env.sync_file(&dir.join(id)).await.unwrap();
    env.sync_dir(&dir).await.unwrap();
}

async fn seeded(n: usize) -> MemEnv {
    let env = MemEnv::new();
    deliver(&env, &junk(), "0", "").await;
    env.remove_file(Path::new("mail/alice/.Junk/new/0"))
        .await
        .unwrap();
    env.sync_dir(Path::new("mail/alice/.Junk/new"))
        .await
        .unwrap();
    crate::env::create_dir_durable(&env, Path::new("mail/alice/new"))
        .await
        .unwrap();
    for i in 0..n {
        deliver(
            &env,
            &inbox(),
            &format!("100{i}.000000.0"),
            &format!("m{i}\r\n"),
        )
        .await;
    }
    env
}

/// What a restart on `fs` sees: (uidvalidity, uid → (file, flags)) per folder.
type Seen = BTreeMap<String, (u32, BTreeMap<u32, (String, String)>)>;

async fn seen(env: &MemEnv) -> Seen {
    let boxes = Mailboxes::new(env.clone(), None);
    let mut out = BTreeMap::new();
    for name in boxes.folders(ACCT).await.unwrap() {
        let f = boxes.open(ACCT, &name).await.unwrap();
        let msgs = f
            .snapshot()
            .await
            .into_iter()
            .map(|e| (e.uid, (e.file, e.flags.to_string())))
            .collect();
        out.insert(name.to_string(), (f.status().await.uidvalidity, msgs));
    }
    out
}

fn restart(env: &MemEnv) -> MemEnv {
    MemEnv::with(env.image(), None, 0.0, 99)
}

#[tokio::test]
async fn uids_are_assigned_once_and_survive_a_restart() {
    let env = seeded(3).await;
    env.sleep_until(Timestamp::from_secs(1_700_000_500)).await;
    let boxes = Mailboxes::new(env.clone(), None);
    let f = boxes.open(ACCT, &inbox()).await.unwrap();
    let st = f.status().await;
    assert_eq!(
        (st.uidvalidity, st.uidnext, st.messages),
        (1_700_000_500, 4, 3)
    );
    let snap = f.snapshot().await;
    assert_eq!(
        snap.iter()
            .map(|e| (e.uid, e.file.as_str(), e.size))
            .collect::<Vec<_>>(),
        [
            (1, "1000.000000.0", 4),
            (2, "1001.000000.0", 4),
            (3, "1002.000000.0", 4)
        ]
    );
    assert!(snap.iter().all(|e| e.internal_date == 1_700_000_500));
    // A second open (another session) gets the same owner: no new UIDs.
    let again = boxes.open(ACCT, &inbox()).await.unwrap();
    assert_eq!(again.snapshot().await, snap);
    // A new delivery gets the next UID at the next rescan; a restart keeps them all.
    deliver(&env, &inbox(), "2000.000000.0", "new\r\n").await;
    assert_eq!(f.rescan().await.unwrap(), vec![4]);
    let after = seen(&restart(&env)).await;
    let (uv, msgs) = &after["INBOX"];
    assert_eq!(*uv, 1_700_000_500);
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[&4].0, "2000.000000.0");
    assert_eq!(after["Junk"].1.len(), 0);
    assert_eq!(
        boxes.folders(ACCT).await.unwrap(),
        [inbox(), junk()],
        "INBOX first"
    );
}

#[tokio::test]
async fn a_missing_or_damaged_log_starts_a_new_uidvalidity() {
    let env = seeded(2).await;
    env.sleep_until(Timestamp::from_secs(1_700_000_000)).await;
    let before = seen(&env).await;
    assert_eq!(before["INBOX"].0, 1_700_000_000);
    // Damage the header record (its checksum no longer matches).
    let log = Path::new("mail/alice").join(LOG_NAME);
    let mut bytes = env.read(&log).await.unwrap();
    bytes[12] ^= 1;
    env.write(&log, &bytes).await.unwrap();
    env.sync_file(&log).await.unwrap();
    env.sleep_until(Timestamp::from_secs(1_700_000_900)).await;
    let after = seen(&env).await;
    assert_eq!(after["INBOX"].0, 1_700_000_900);
    assert_eq!(after["INBOX"].1.len(), 2, "every file indexed afresh");
    env.remove_file(&log).await.unwrap();
    env.sleep_until(Timestamp::from_secs(1_700_001_000)).await;
    assert_eq!(seen(&env).await["INBOX"].0, 1_700_001_000);
    assert!(env.traces().iter().any(|t| t.contains("log missing")));
    assert!(env.traces().iter().any(|t| t.contains("log unreadable")));
}

#[tokio::test]
async fn flags_and_modseq_are_durable_and_broadcast() {
    let env = seeded(2).await;
    let boxes = Mailboxes::new(env.clone(), None);
    let f = boxes.open(ACCT, &inbox()).await.unwrap();
    let mut changes = f.subscribe();
    let m0 = f.status().await.highest_modseq;
    let seen_flag = Flags::parse(["\\Seen", "$Work"]).unwrap();
    let changed = f
        .set_flags(&[1, 7], |old| old.union(&seen_flag))
        .await
        .unwrap();
    assert_eq!(changed.len(), 1, "7 does not exist");
    assert_eq!(changed[0].modseq, m0 + 1);
    assert_eq!(f.status().await.highest_modseq, m0 + 1);
    // Setting what is already set changes nothing (no record, no MODSEQ).
    assert!(f
        .set_flags(&[1], |old| old.union(&seen_flag))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(changes.try_recv().unwrap(), Change::Flags(vec![1]));
    assert!(changes.try_recv().is_err());
    let after = seen(&restart(&env)).await;
    assert_eq!(after["INBOX"].1[&1].1, "\\Seen $Work");
    assert_eq!(after["INBOX"].1[&2].1, "");
}

#[tokio::test]
async fn expunge_removes_the_file_and_never_brings_it_back() {
    let env = seeded(3).await;
    let quotas = Arc::new(Quotas::unlimited());
    quotas.set_usage(
        ACCT,
        crate::store::Usage {
            bytes: 12,
            messages: 3,
        },
    );
    let boxes = Mailboxes::new(env.clone(), Some(quotas.clone()));
    let f = boxes.open(ACCT, &inbox()).await.unwrap();
    let mut changes = f.subscribe();
    let gone = f.expunge(&[2, 2, 9]).await.unwrap();
    assert_eq!(gone.iter().map(|e| e.uid).collect::<Vec<_>>(), [2]);
    assert_eq!(changes.try_recv().unwrap(), Change::Expunged(vec![2]));
    assert_eq!(quotas.usage(ACCT).messages, 2);
    assert_eq!(quotas.usage(ACCT).bytes, 8);
    let names = env.list_dir(Path::new("mail/alice/new")).await.unwrap();
    assert!(!names.contains(&"1001.000000.0".to_string()), "{names:?}");
    let after = seen(&restart(&env)).await;
    assert_eq!(after["INBOX"].1.keys().copied().collect::<Vec<_>>(), [1, 3]);
    assert!(f.read(2).await.is_err());
    assert_eq!(f.read(3).await.unwrap(), b"m2\r\n");
}

#[tokio::test]
async fn a_vanished_file_is_an_expunge() {
    let env = seeded(2).await;
    let boxes = Mailboxes::new(env.clone(), None);
    let f = boxes.open(ACCT, &inbox()).await.unwrap();
    env.remove_file(Path::new("mail/alice/new/1000.000000.0"))
        .await
        .unwrap();
    let mut changes = f.subscribe();
    assert!(f.rescan().await.unwrap().is_empty());
    assert_eq!(changes.try_recv().unwrap(), Change::Expunged(vec![1]));
    assert_eq!(f.status().await.messages, 1);
}

#[tokio::test]
async fn move_carries_flags_and_date_and_gets_a_target_uid() {
    let env = seeded(3).await;
    let boxes = Mailboxes::new(env.clone(), None);
    let src = boxes.open(ACCT, &inbox()).await.unwrap();
    let flag = Flags::parse(["\\Flagged"]).unwrap();
    src.set_flags(&[2], |o| o.union(&flag)).await.unwrap();
    let date = src.snapshot().await[1].internal_date;
    let dst = boxes.open(ACCT, &junk()).await.unwrap();
    let mut dst_changes = dst.subscribe();
    let moved = boxes
        .move_messages(ACCT, &inbox(), &junk(), &[2, 3, 42])
        .await
        .unwrap();
    assert_eq!(moved, [(2, 1), (3, 2)]);
    assert_eq!(dst_changes.try_recv().unwrap(), Change::Added(vec![1, 2]));
    let in_junk = dst.snapshot().await;
    assert_eq!(in_junk[0].flags.to_string(), "\\Flagged");
    assert_eq!(in_junk[0].internal_date, date);
    assert_eq!(dst.read(1).await.unwrap(), b"m1\r\n");
    assert_eq!(src.status().await.messages, 1);
    // And back: a fresh name again, a new UID in INBOX.
    let back = boxes
        .move_messages(ACCT, &junk(), &inbox(), &[1])
        .await
        .unwrap();
    assert_eq!(back, [(1, 4)]);
    let after = seen(&restart(&env)).await;
    assert_eq!(after["INBOX"].1.keys().copied().collect::<Vec<_>>(), [1, 4]);
    assert_eq!(after["INBOX"].1[&4].1, "\\Flagged");
    assert_eq!(after["Junk"].1.keys().copied().collect::<Vec<_>>(), [2]);
    assert!(boxes
        .move_messages(ACCT, &junk(), &junk(), &[2])
        .await
        .is_err());
}

#[tokio::test]
async fn compaction_keeps_state_uidnext_and_highest_modseq() {
    let env = seeded(2).await;
    let boxes = Mailboxes::new(env.clone(), None);
    let f = boxes.open(ACCT, &inbox()).await.unwrap();
    let seen_flag = Flags::parse(["\\Seen"]).unwrap();
    // Enough flag flips to pass the threshold: the log compacts by itself.
    for i in 0..(COMPACT_SLACK + 10) {
        let on = i % 2 == 0;
        f.set_flags(&[1], |o| {
            if on {
                o.union(&seen_flag)
            } else {
                o.minus(&seen_flag)
            }
        })
        .await
        .unwrap();
    }
    assert!(env.traces().iter().any(|t| t.contains("compacted")));
    f.expunge(&[2]).await.unwrap();
    f.compact().await.unwrap();
    let st = f.status().await;
    let log = env
        .read(&Path::new("mail/alice").join(LOG_NAME))
        .await
        .unwrap();
    assert_eq!(
        crate::durable::log::payloads(&log).count(),
        2,
        "header + one message"
    );
    let again = Mailboxes::new(restart(&env), None);
    let g = again.open(ACCT, &inbox()).await.unwrap();
    assert_eq!(g.status().await, st);
    assert_eq!(st.uidnext, 3, "UID 2 stays used after its record is gone");
    assert_eq!(g.snapshot().await[0].flags, f.snapshot().await[0].flags);
    // The expunged file stays gone.
    assert!(g.rescan().await.unwrap().is_empty());
}

#[tokio::test]
async fn one_pop3_session_per_account() {
    let boxes = Mailboxes::new(MemEnv::new(), None);
    let first = boxes.lock_pop(ACCT).unwrap();
    assert!(boxes.lock_pop(ACCT).is_none());
    assert!(boxes.lock_pop("bob").is_some());
    drop(first);
    assert!(boxes.lock_pop(ACCT).is_some());
}

#[tokio::test]
async fn folders_are_created_durably_and_names_are_checked() {
    let env = seeded(0).await;
    let boxes = Mailboxes::new(env.clone(), None);
    let sub = FolderName::parse("Lists/Rust").unwrap();
    boxes.create(ACCT, &sub).await.unwrap();
    assert!(boxes.create(ACCT, &sub).await.is_err());
    let after = seen(&restart(&env)).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["INBOX", "Junk", "Lists/Rust"]
    );
    assert!(boxes.open("../bob", &inbox()).await.is_err());
    assert!(boxes
        .open(ACCT, &FolderName::parse("Nope").unwrap())
        .await
        .is_err());
}

// ---- crashes at every file operation ----

/// Runs `work` with a crash image taken before operation `crash_at`; returns whether the
/// work was acknowledged before that point, and the env.
async fn crash_run<F, Fut>(fs: &Fs, crash_at: usize, tear: f64, work: F) -> (bool, MemEnv)
where
    F: FnOnce(Mailboxes<MemEnv>) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    let env = MemEnv::with(fs.clone(), Some(crash_at), tear, 1);
    let ok = work(Mailboxes::new(env.clone(), None)).await.is_ok();
    (ok && env.ops() <= crash_at, env)
}

/// Number of file operations `work` takes without a crash.
async fn ops_of<F, Fut>(fs: &Fs, work: F) -> usize
where
    F: FnOnce(Mailboxes<MemEnv>) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    let env = MemEnv::with(fs.clone(), None, 0.0, 1);
    work(Mailboxes::new(env.clone(), None)).await.unwrap();
    env.ops()
}

/// The durable state of a seeded, already indexed account with three messages (UIDs 1-3,
/// UID 2 flagged), and what a restart sees of it.
async fn indexed() -> (Fs, Seen) {
    let env = seeded(3).await;
    let boxes = Mailboxes::new(env.clone(), None);
    let f = boxes.open(ACCT, &inbox()).await.unwrap();
    let flag = Flags::parse(["\\Flagged"]).unwrap();
    f.set_flags(&[2], |o| o.union(&flag)).await.unwrap();
    boxes.open(ACCT, &junk()).await.unwrap();
    let fs = env.image();
    let s = seen(&MemEnv::with(fs.clone(), None, 0.0, 3)).await;
    (fs, s)
}

#[tokio::test]
async fn a_crash_while_indexing_never_reuses_a_reported_uid() {
    let fs = seeded(4).await.image();
    let work = |b: Mailboxes<MemEnv>| async move {
        let f = b.open(ACCT, &inbox()).await?;
        let uids = f.snapshot().await;
        assert_eq!(uids.len(), 4);
        Ok(())
    };
    let total = ops_of(&fs, work).await;
    for crash_at in 0..=total {
        for tear in [0.0, 0.5] {
            let env = MemEnv::with(fs.clone(), Some(crash_at), tear, 1);
            let boxes = Mailboxes::new(env.clone(), None);
            let reported = match boxes.open(ACCT, &inbox()).await {
                Ok(f) if env.ops() <= crash_at => {
                    Some((f.status().await.uidvalidity, f.snapshot().await))
                }
                _ => None,
            };
            let after = Mailboxes::new(restart(&env), None);
            let g = after.open(ACCT, &inbox()).await.unwrap();
            let ctx = format!("crash before op {crash_at}, tear {tear}");
            let snap = g.snapshot().await;
            assert_eq!(snap.len(), 4, "{ctx}: every message indexed once");
            if let Some((uv, before)) = reported {
                assert_eq!(g.status().await.uidvalidity, uv, "{ctx}");
                let files = |s: &[Entry]| {
                    s.iter()
                        .map(|e| (e.uid, e.file.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(files(&snap), files(&before), "{ctx}: reported UIDs kept");
            }
        }
    }
}

#[tokio::test]
async fn a_crash_during_expunge_leaves_the_message_whole_or_gone() {
    let (fs, before) = indexed().await;
    let work = |b: Mailboxes<MemEnv>| async move {
        let f = b.open(ACCT, &inbox()).await?;
        f.expunge(&[2]).await?;
        Ok(())
    };
    let total = ops_of(&fs, work).await;
    let mut outcomes = BTreeMap::new();
    for crash_at in 0..=total {
        for tear in [0.0, 0.5] {
            let (acked, env) = crash_run(&fs, crash_at, tear, work).await;
            let recovered = restart(&env);
            let after = seen(&recovered).await;
            let ctx = format!("crash before op {crash_at}, tear {tear}");
            let inbox = &after["INBOX"].1;
            // Recovery finished a recorded expunge: no file left behind for it.
            let files = recovered
                .list_dir(Path::new("mail/alice/new"))
                .await
                .unwrap();
            let files = files.iter().filter(|n| !n.starts_with('.')).count();
            assert_eq!(files, inbox.len(), "{ctx}: files on disk");
            assert_eq!(after["INBOX"].0, before["INBOX"].0, "{ctx}: uidvalidity");
            assert_eq!(inbox.get(&1), before["INBOX"].1.get(&1), "{ctx}");
            assert_eq!(inbox.get(&3), before["INBOX"].1.get(&3), "{ctx}");
            if let Some(m) = inbox.get(&2) {
                assert!(!acked, "{ctx}: acknowledged expunge undone");
                assert_eq!(Some(m), before["INBOX"].1.get(&2), "{ctx}: whole");
            }
            let expect = if inbox.contains_key(&2) { 3 } else { 2 };
            assert_eq!(
                inbox.len(),
                expect,
                "{ctx}: never reappears under a new UID"
            );
            assert!(after["Junk"].1.is_empty(), "{ctx}");
            *outcomes.entry(inbox.contains_key(&2)).or_insert(0) += 1;
        }
    }
    assert_eq!(outcomes.len(), 2, "both outcomes reached: {outcomes:?}");
}

#[tokio::test]
async fn a_crash_during_move_leaves_each_message_in_exactly_one_place() {
    let (fs, before) = indexed().await;
    let work = |b: Mailboxes<MemEnv>| async move {
        b.move_messages(ACCT, &inbox(), &junk(), &[1, 2]).await?;
        Ok(())
    };
    let total = ops_of(&fs, work).await;
    let mut outcomes = BTreeMap::new();
    for crash_at in 0..=total {
        for tear in [0.0, 0.5] {
            let (acked, env) = crash_run(&fs, crash_at, tear, work).await;
            let recovered = restart(&env);
            let after = seen(&recovered).await;
            let ctx = format!("crash before op {crash_at}, tear {tear}");
            // Each message by content: exactly one folder, one UID.
            let boxes = Mailboxes::new(recovered.clone(), None);
            let mut places: BTreeMap<Vec<u8>, Vec<(String, String)>> = BTreeMap::new();
            for name in [inbox(), junk()] {
                let f = boxes.open(ACCT, &name).await.unwrap();
                for e in f.snapshot().await {
                    let body = f.read(e.uid).await.unwrap();
                    places
                        .entry(body)
                        .or_default()
                        .push((name.to_string(), e.flags.to_string()));
                }
            }
            assert_eq!(places.len(), 3, "{ctx}: {places:?}");
            for (body, at) in &places {
                assert_eq!(at.len(), 1, "{ctx}: {body:?} in {at:?}");
            }
            assert_eq!(
                places[&b"m1\r\n".to_vec()][0].1,
                "\\Flagged",
                "{ctx}: flags carried"
            );
            assert_eq!(
                places[&b"m2\r\n".to_vec()][0].0,
                "INBOX",
                "{ctx}: not moved"
            );
            let moved = after["Junk"].1.len();
            if acked {
                assert_eq!(moved, 2, "{ctx}: acknowledged move undone");
            }
            // A message that stayed keeps its UID and UIDVALIDITY.
            assert_eq!(after["INBOX"].0, before["INBOX"].0, "{ctx}");
            for (uid, m) in &after["INBOX"].1 {
                assert_eq!(before["INBOX"].1.get(uid), Some(m), "{ctx}: uid {uid}");
            }
            // No stray files: every message file in the image is indexed exactly once.
            let files = recovered
                .image()
                .names_for_test()
                .into_iter()
                .filter(|(p, _)| p.contains("/new/"))
                .count();
            assert_eq!(files, 3, "{ctx}: files on disk");
            *outcomes.entry(moved).or_insert(0) += 1;
        }
    }
    assert!(
        outcomes.contains_key(&0) && outcomes.contains_key(&2),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_crash_during_compaction_loses_nothing() {
    let (fs, before) = indexed().await;
    let work = |b: Mailboxes<MemEnv>| async move { b.open(ACCT, &inbox()).await?.compact().await };
    let total = ops_of(&fs, work).await;
    for crash_at in 0..=total {
        let (_, env) = crash_run(&fs, crash_at, 0.5, work).await;
        assert_eq!(
            seen(&restart(&env)).await,
            before,
            "crash before op {crash_at}"
        );
    }
}

#[tokio::test]
async fn concurrent_sessions_and_deliveries_never_share_a_uid() {
    let env = seeded(2).await;
    let boxes = Mailboxes::new(env.clone(), None);
    // Many sessions open the folder at once while deliveries land between their rescans.
    let opens = (0..8).map(|i| {
        let (boxes, env) = (boxes.clone(), env.clone());
        async move {
            deliver(&env, &inbox(), &format!("3000.{i:06}.0"), "x\r\n").await;
            let f = boxes.open(ACCT, &inbox()).await.unwrap();
            f.rescan().await.unwrap();
            f.snapshot().await
        }
    });
    let views = futures::future::join_all(opens).await;
    let f = boxes.open(ACCT, &inbox()).await.unwrap();
    let all = f.snapshot().await;
    assert_eq!(all.len(), 10);
    let files: std::collections::BTreeSet<&String> = all.iter().map(|e| &e.file).collect();
    assert_eq!(files.len(), 10, "one UID per file");
    // Every session saw a prefix of the same UID → file assignment.
    for v in views {
        for e in v {
            assert_eq!(
                all.iter().find(|a| a.uid == e.uid).map(|a| &a.file),
                Some(&e.file)
            );
        }
    }
    assert_eq!(seen(&restart(&env)).await["INBOX"].1.len(), 10);
}
