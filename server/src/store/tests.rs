use std::sync::Arc;

use futures::future::join_all;

use super::*;
use crate::durable::memenv::MemEnv;
use crate::mail::{Address, Message, Recipient, Spooled, Timestamp};

fn msg(bytes: &[u8]) -> Message {
    Message::inline(bytes.to_vec())
}

fn envelope(to: &[&str], at: u64) -> Envelope {
    Envelope {
        helo: "client.test".into(),
        mail_from: Some(Address::parse("s@client.test").unwrap()),
        recipients: vec![Recipient {
            address: Address::parse("team@example.org").unwrap(),
            mailboxes: to.iter().map(|m| m.to_string()).collect(),
            remote: vec![],
            ..Default::default()
        }],
        received_at: Timestamp::from_secs(at),
        authenticated: None,
        ..Default::default()
    }
}

/// Messages as a crash right now would leave them: (path, contents).
fn durable(env: &MemEnv) -> Vec<(String, Vec<u8>)> {
    env.image().names_for_test()
}

#[tokio::test]
async fn a_delivery_is_durable_in_every_mailbox_when_acknowledged() {
    let env = MemEnv::new();
    let store = MailStore::open(env.clone(), ["alice", "bob"], CommitMode::Group)
        .await
        .unwrap();
    let id = store
        .deliver(
            &envelope(&["alice", "bob"], 100),
            &msg(b"Subject: hi\r\n\r\nbody\r\n"),
        )
        .await
        .unwrap();
    let image = durable(&env);
    assert_eq!(image.len(), 2, "{image:?}");
    for (mbox, (path, data)) in ["alice", "bob"].iter().zip(&image) {
        assert_eq!(path, &format!("mail/{mbox}/new/{id}"));
        let expect = format!(
            "Return-Path: <s@client.test>\r\nDelivered-To: {mbox}\r\nSubject: hi\r\n\r\nbody\r\n"
        );
        assert_eq!(data, expect.as_bytes());
    }
    assert_eq!(store.list("alice").await.unwrap(), vec![id.clone()]);
    assert!(store.read("bob", &id).await.is_ok());
}

#[tokio::test]
async fn concurrent_deliveries_share_one_batch() {
    let env = MemEnv::new();
    let store = Arc::new(
        MailStore::open(env.clone(), ["alice"], CommitMode::Group)
            .await
            .unwrap(),
    );
    let from = env.calls().len();
    let ids = join_all((0..16).map(|i| {
        let store = store.clone();
        async move {
            store
                .deliver(&envelope(&["alice"], 200 + i), &msg(b"x\r\n"))
                .await
        }
    }))
    .await;
    assert!(ids.iter().all(Result::is_ok));
    let calls = env.calls()[from..].to_vec();
    let batched: Vec<&String> = calls.iter().filter(|c| c.contains("_many")).collect();
    assert_eq!(
        batched,
        ["write_many 16", "sync_many 16 0", "sync_many 0 1"],
        "{calls:#?}"
    );
    assert!(env.traces().iter().any(|l| l.contains("batch of 16")));
    assert_eq!(store.list("alice").await.unwrap().len(), 16);
}

#[tokio::test]
async fn a_failed_flush_is_a_temporary_failure_and_leaves_nothing() {
    let env = MemEnv::new();
    let store = MailStore::open(env.clone(), ["alice"], CommitMode::Group)
        .await
        .unwrap();
    for op in ["sync_file", "sync_dir"] {
        env.set_failing(op, true);
        let e = store
            .deliver(&envelope(&["alice"], 300), &msg(b"x\r\n"))
            .await
            .unwrap_err();
        assert!(matches!(e, DeliveryError::Temporary(_)), "{op}: {e:?}");
        env.set_failing(op, false);
        // Not visible (so a retry does not make a duplicate), no temp file left.
        let names = env.list_dir(Path::new("mail/alice/new")).await.unwrap();
        assert!(names.is_empty(), "{op}: {names:?}");
    }
    assert!(env
        .traces()
        .iter()
        .any(|l| l.starts_with("store commit failed")));
}

#[tokio::test]
async fn open_removes_leftover_temp_files_and_refuses_unsafe_names() {
    let env = MemEnv::new();
    let dir = Path::new("mail/alice/new");
    env.create_dir_all(dir).await.unwrap();
    env.write(&dir.join(".tmp-123"), b"half").await.unwrap();
    env.write(&dir.join("124"), b"whole").await.unwrap();
    let store = MailStore::open(env.clone(), ["alice"], CommitMode::Single)
        .await
        .unwrap();
    assert_eq!(env.list_dir(dir).await.unwrap(), vec!["124"]);
    assert!(env
        .traces()
        .contains(&"store recovery: removed alice/.tmp-123".to_string()));
    for bad in ["", ".hidden", "a/b", "..", "x\0y", "tab\t"] {
        assert!(mailbox_dir(bad).is_err(), "{bad:?}");
    }
    // A delivery naming an unsafe mailbox is refused without touching anything.
    let e = store
        .deliver(&envelope(&["../escape"], 1), &msg(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(e, DeliveryError::Temporary(_)), "{e:?}");
    assert!(MailStore::open(env, [".."], CommitMode::Group)
        .await
        .is_err());
}

mod quotas {
    use super::*;
    use crate::store::{Limit, Quotas, Usage};

    fn limited(bytes: Option<u64>, messages: Option<u64>, permanent: bool) -> Arc<Quotas> {
        Arc::new(Quotas::new(Limit { bytes, messages }, permanent))
    }

    #[test]
    fn a_reservation_is_all_or_nothing_and_released_unless_committed() {
        let q = limited(Some(100), Some(2), false);
        let both = [("alice".to_string(), 60), ("bob".to_string(), 60)];
        let r = q.reserve(&both).unwrap();
        // Both are held: a second 60 fits neither, and a refusal reserves nothing.
        assert_eq!(
            q.reserve(&[("bob".into(), 60), ("alice".into(), 10)])
                .unwrap_err(),
            DeliveryError::OverQuota {
                mailbox: "bob".into(),
                permanent: false
            }
        );
        drop(r);
        assert_eq!(q.usage("alice"), Usage::default());
        q.reserve(&both).unwrap().commit();
        assert_eq!(
            q.usage("alice"),
            Usage {
                bytes: 60,
                messages: 1
            }
        );
        assert!(!q.is_full("alice"));
        assert!(q.fits("alice", 40) && !q.fits("alice", 41));
        q.reserve(&[("alice".into(), 40)]).unwrap().commit();
        assert!(q.is_full("alice"), "100 of 100 octets");
        let by_count = limited(None, Some(1), true);
        by_count.reserve(&[("alice".into(), 5)]).unwrap().commit();
        assert!(by_count.is_full("alice"));
        assert_eq!(
            by_count.reserve(&[("alice".into(), 1)]).unwrap_err(),
            DeliveryError::OverQuota {
                mailbox: "alice".into(),
                permanent: true
            }
        );
    }

    #[tokio::test]
    async fn a_message_that_does_not_fit_is_stored_nowhere_and_usage_survives_a_restart() {
        let env = MemEnv::new();
        let quotas = Arc::new(Quotas::unlimited().with_limit(
            "alice",
            Limit {
                bytes: Some(150),
                messages: None,
            },
        ));
        let store = MailStore::open_with_quotas(
            env.clone(),
            ["alice", "bob"],
            CommitMode::Group,
            quotas.clone(),
        )
        .await
        .unwrap();
        let big = vec![b'x'; 200];
        let e = store
            .deliver(&envelope(&["alice", "bob"], 1), &msg(&big))
            .await
            .unwrap_err();
        assert!(matches!(e, DeliveryError::OverQuota { .. }), "{e:?}");
        assert!(durable(&env).is_empty(), "nothing stored anywhere");
        store
            .deliver(&envelope(&["alice", "bob"], 2), &msg(b"small\r\n"))
            .await
            .unwrap();
        let used = quotas.usage("alice");
        assert_eq!(used.messages, 1);
        assert!(used.bytes > 7, "Return-Path and Delivered-To count too");
        drop(store);
        // Reopened: a limited mailbox's usage is counted from its files.
        let limit = Limit {
            bytes: None,
            messages: Some(5),
        };
        let fresh = Arc::new(Quotas::unlimited().with_limit("alice", limit));
        MailStore::open_with_quotas(env.clone(), ["alice"], CommitMode::Group, fresh.clone())
            .await
            .unwrap();
        assert_eq!(fresh.usage("alice"), used);
        assert_eq!(
            crate::store::count_usage(&env, "alice").await.unwrap(),
            used
        );
    }

    #[test]
    fn limits_come_from_the_account_or_the_quota_defaults() {
        let cfg: crate::config::ServerConfig = toml::from_str(
            r#"
            hostname = "mx.example.org"
            domains = ["example.org"]
            accounts = [{ address = "Alice@example.org", quota_bytes = 10 }, "bob@example.org"]
            [quota]
            default_bytes = 1000
            default_messages = 3
            over_quota = "permanent"
            "#,
        )
        .unwrap();
        let q = Arc::new(cfg.quotas());
        let limit = |bytes, messages| Limit { bytes, messages };
        assert_eq!(q.limit("alice@example.org"), limit(Some(10), Some(3)));
        assert_eq!(q.limit("bob@example.org"), limit(Some(1000), Some(3)));
        let e = q.reserve(&[("alice@example.org".into(), 11)]).unwrap_err();
        assert!(matches!(
            e,
            DeliveryError::OverQuota {
                permanent: true,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn two_racing_deliveries_for_the_last_space_do_not_both_fit() {
        let env = MemEnv::new();
        let quotas = Arc::new(Quotas::new(
            Limit {
                bytes: Some(200),
                messages: None,
            },
            false,
        ));
        let store = MailStore::open_with_quotas(env.clone(), ["alice"], CommitMode::Group, quotas)
            .await
            .unwrap();
        let body = msg(&[b'y'; 120]);
        let results = join_all((0..2).map(|i| {
            let store = store.clone();
            let body = body.clone();
            async move { store.deliver(&envelope(&["alice"], i), &body).await }
        }))
        .await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert_eq!(store.list("alice").await.unwrap().len(), 1);
    }
}

/// A spooled message is stored as head + spool file, in every mailbox, without the store
/// holding the body: the file is assembled by the committer's spliced create.
#[tokio::test]
async fn a_spooled_message_is_stored_whole_in_every_mailbox() {
    let env = MemEnv::new();
    let store = MailStore::open(env.clone(), ["alice", "bob"], CommitMode::Group)
        .await
        .unwrap();
    let rest = b"line two\r\n".repeat(5000);
    env.write(std::path::Path::new("spool-1"), &rest)
        .await
        .unwrap();
    let message = Message::spooled(
        b"Subject: big\r\n\r\n".to_vec(),
        Spooled {
            path: "spool-1".into(),
            len: rest.len() as u64,
            crc: 0,
        },
    );
    let id = store
        .deliver(&envelope(&["alice", "bob"], 7), &message)
        .await
        .unwrap();
    for mbox in ["alice", "bob"] {
        let stored = store.read(mbox, &id).await.unwrap();
        let mut want =
            format!("Return-Path: <s@client.test>\r\nDelivered-To: {mbox}\r\n").into_bytes();
        want.extend_from_slice(b"Subject: big\r\n\r\n");
        want.extend_from_slice(&rest);
        assert!(stored == want, "{mbox}: {} octets", stored.len());
    }
    // Durable (the flush covered the spliced files), not only visible.
    let image = durable(&env);
    assert_eq!(
        image
            .iter()
            .filter(|(p, d)| p.starts_with("mail/") && d.ends_with(&rest))
            .count(),
        2
    );
}
