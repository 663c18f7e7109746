use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::store;
use super::table::{Entry, NetEntry, Record, Table, Timing};
use super::*;
use crate::durable::memenv::MemEnv;
use crate::env::Timestamp;
use crate::mail::Address;
use crate::policy::Client;

const T0: u64 = 1_700_000_000;
const DELAY: u64 = 300;
const EXPIRY: u64 = 2 * 86_400;
const LIFETIME: u64 = 35 * 86_400;

fn timing(max_entries: usize) -> Timing {
    Timing {
        delay: Duration::from_secs(DELAY),
        expiry: Duration::from_secs(EXPIRY),
        allow_lifetime: Duration::from_secs(LIFETIME),
        auto_allow_after: 3,
        max_entries,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn triplet(client: &str, sender: &str, rcpt: &str) -> Triplet {
    Triplet {
        net: ClientNet::of(ip(client), 24, 64),
        sender: sender.into(),
        recipient: rcpt.into(),
    }
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(T0 + secs)
}

/// `t`'s decision at `T0 + secs`.
fn decide(table: &mut Table, secs: u64, t: &Triplet) -> Decision {
    table.decide(at(secs), t, &mut Vec::new())
}

fn defer(retry_in: u64, new: bool) -> Decision {
    Decision::Defer {
        retry_in: Duration::from_secs(retry_in),
        new,
    }
}

#[test]
fn the_triplet_keys_on_the_client_network() {
    let net = |a: &str, v4, v6| ClientNet::of(ip(a), v4, v6).to_string();
    assert_eq!(net("203.0.113.77", 24, 64), "203.0.113.0/24");
    assert_eq!(net("203.0.113.77", 32, 64), "203.0.113.77/32");
    assert_eq!(net("203.0.113.77", 16, 64), "203.0.0.0/16");
    assert_eq!(net("203.0.113.77", 0, 64), "0.0.0.0/0");
    assert_eq!(net("::ffff:203.0.113.77", 24, 64), "203.0.113.0/24");
    assert_eq!(net("2001:db8:1:2:3:4:5:6", 24, 64), "2001:db8:1:2::/64");
    assert_eq!(net("2001:db8:1:2:3:4:5:6", 24, 48), "2001:db8:1::/48");
    assert_eq!(
        net("2001:db8:1:2:3:4:5:6", 24, 128),
        "2001:db8:1:2:3:4:5:6/128"
    );
    // Two hosts of one /24 are one client; the next /24 is another.
    assert_eq!(
        ClientNet::of(ip("198.51.100.1"), 24, 64),
        ClientNet::of(ip("198.51.100.254"), 24, 64)
    );
    assert_ne!(
        ClientNet::of(ip("198.51.100.1"), 24, 64),
        ClientNet::of(ip("198.51.101.1"), 24, 64)
    );
    // The log's spelling reads back; host bits or a bad prefix do not.
    for s in ["203.0.113.0/24", "2001:db8:1:2::/64", "0.0.0.0/0"] {
        assert_eq!(
            ClientNet::parse(s).map(|n| n.to_string()).as_deref(),
            Some(s)
        );
    }
    for s in [
        "203.0.113.7/24",
        "203.0.113.0/33",
        "203.0.113.0",
        "x/24",
        "::/129",
    ] {
        assert_eq!(ClientNet::parse(s), None, "{s}");
    }
}

#[test]
fn delay_and_expiry_edges_are_exact() {
    let mut table = Table::new(timing(100));
    let t = triplet("203.0.113.7", "a@x.example", "bob@example.org");
    assert_eq!(decide(&mut table, 0, &t), defer(DELAY, true));
    // Early retries do not restart the clock.
    assert_eq!(decide(&mut table, 100, &t), defer(DELAY - 100, false));
    assert_eq!(decide(&mut table, DELAY - 1, &t), defer(1, false));
    // At exactly the delay: passed.
    assert_eq!(
        decide(&mut table, DELAY, &t),
        Decision::Pass {
            waited: Duration::from_secs(DELAY),
            net_passes: 1
        }
    );
    assert_eq!(decide(&mut table, DELAY + 1, &t), Decision::Known);

    // The last second of the retry window still passes...
    let late = triplet("203.0.113.7", "late@x.example", "bob@example.org");
    assert_eq!(decide(&mut table, 0, &late), defer(DELAY, true));
    assert!(matches!(
        decide(&mut table, EXPIRY - 1, &late),
        Decision::Pass { .. }
    ));
    // ...and at exactly the expiry the triplet is forgotten: a new first sight.
    let gone = triplet("203.0.113.7", "gone@x.example", "bob@example.org");
    assert_eq!(decide(&mut table, 0, &gone), defer(DELAY, true));
    assert_eq!(decide(&mut table, EXPIRY, &gone), defer(DELAY, true));
    assert_eq!(
        decide(&mut table, EXPIRY + DELAY - 1, &gone),
        defer(1, false)
    );
}

#[test]
fn a_passed_triplet_lives_for_allow_lifetime_after_it_was_last_seen() {
    let mut table = Table::new(timing(100));
    let t = triplet("203.0.113.7", "", "bob@example.org");
    decide(&mut table, 0, &t);
    assert!(matches!(
        decide(&mut table, DELAY, &t),
        Decision::Pass { .. }
    ));
    // Seen again 10 days later (refreshing it), then 34 days after that: still known.
    let ten_days = 10 * 86_400;
    assert_eq!(decide(&mut table, DELAY + ten_days, &t), Decision::Known);
    assert_eq!(
        decide(&mut table, DELAY + ten_days + LIFETIME - 1, &t),
        Decision::Known
    );
    // Not seen for exactly the lifetime: forgotten.
    let last = DELAY + ten_days + LIFETIME - 1;
    assert_eq!(decide(&mut table, last + LIFETIME, &t), defer(DELAY, true));
}

#[test]
fn a_network_that_passed_often_enough_is_allowed_for_every_triplet() {
    let mut table = Table::new(timing(100));
    for (i, sender) in ["a@x", "b@x", "c@x"].iter().enumerate() {
        let t = triplet(&format!("203.0.113.{}", i + 1), sender, "bob@example.org");
        assert_eq!(decide(&mut table, 0, &t), defer(DELAY, true));
        assert_eq!(
            decide(&mut table, DELAY, &t),
            Decision::Pass {
                waited: Duration::from_secs(DELAY),
                net_passes: i as u32 + 1
            }
        );
    }
    // A sender and recipient never seen, from the same /24: no greylisting.
    let fresh = triplet("203.0.113.200", "new@y", "carol@example.org");
    assert_eq!(
        decide(&mut table, DELAY + 1, &fresh),
        Decision::NetAllowed { passes: 3 }
    );
    // Another /24 is not.
    let other = triplet("203.0.114.1", "new@y", "carol@example.org");
    assert_eq!(decide(&mut table, DELAY + 1, &other), defer(DELAY, true));
    // Two passes are not enough.
    let mut table = Table::new(timing(100));
    for sender in ["a@x", "b@x"] {
        let t = triplet("198.51.100.1", sender, "bob@example.org");
        decide(&mut table, 0, &t);
        decide(&mut table, DELAY, &t);
    }
    let fresh = triplet("198.51.100.1", "c@x", "bob@example.org");
    assert_eq!(decide(&mut table, DELAY, &fresh), defer(DELAY, true));
    // auto_allow_after = 0: never.
    let mut table = Table::new(Timing {
        auto_allow_after: 0,
        ..timing(100)
    });
    for sender in ["a@x", "b@x", "c@x", "d@x"] {
        let t = triplet("198.51.100.1", sender, "bob@example.org");
        decide(&mut table, 0, &t);
        decide(&mut table, DELAY, &t);
    }
    let fresh = triplet("198.51.100.1", "e@x", "bob@example.org");
    assert_eq!(decide(&mut table, DELAY, &fresh), defer(DELAY, true));
}

#[test]
fn the_cap_evicts_the_oldest_first_sights() {
    let mut table = Table::new(timing(3));
    let ts: Vec<Triplet> = (0..5)
        .map(|i| triplet("203.0.113.9", &format!("s{i}@spam"), "bob@example.org"))
        .collect();
    for (i, t) in ts.iter().enumerate() {
        decide(&mut table, i as u64, t);
        assert!(table.len().0 <= 3, "after {i}: {:?}", table.len());
    }
    assert_eq!(table.len().0, 3);
    assert_eq!(table.evicted, 2);
    // s0 and s1 are gone: a retry after the delay is a new first sight; s2..s4 pass.
    assert_eq!(decide(&mut table, DELAY + 10, &ts[0]), defer(DELAY, true));
    let mut table2 = Table::new(timing(3));
    for (i, t) in ts.iter().enumerate() {
        decide(&mut table2, i as u64, t);
    }
    assert!(matches!(
        decide(&mut table2, DELAY + 10, &ts[4]),
        Decision::Pass { .. }
    ));
    assert!(matches!(
        decide(&mut table2, DELAY + 10, &ts[2]),
        Decision::Pass { .. }
    ));
}

#[test]
fn records_round_trip_through_the_log_grammar() {
    let net = ClientNet::of(ip("2001:db8::1"), 24, 64);
    let entry = Entry {
        first_seen: at(1),
        last_seen: at(2),
        passed: true,
    };
    let records = vec![
        Record::Triplet(triplet("203.0.113.7", "", "bob@example.org"), entry),
        Record::Triplet(
            Triplet {
                net,
                sender: "john doe%50@x.example".into(),
                recipient: "josé@example.org".into(),
            },
            Entry {
                passed: false,
                ..entry
            },
        ),
        Record::Net(
            net,
            NetEntry {
                passes: 7,
                last_seen: at(9),
            },
        ),
    ];
    let mut log = Vec::new();
    for r in &records {
        store::encode_into(&mut log, r);
    }
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains(" T 1700000001 1700000002 1 203.0.113.0/24 <> bob@example.org"),
        "{text}"
    );
    assert!(
        text.contains("john%20doe%2550@x.example jos%C3%A9@example.org"),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| !l.is_empty()).count(), 3, "{text}");
    let (back, stats) = store::replay(&log);
    assert_eq!(back, records);
    assert_eq!(stats, store::Replay { records: 3, bad: 0 });
    // Checksummed lines that are not our grammar are skipped, not misread.
    for junk in [
        "T 1 2 3 203.0.113.0/24 <> b@x",
        "T 1 2 1 203.0.113.0/24 <> b@x extra",
        "T 1 2 1 203.0.113.5/24 <> b@x",
        "T 1 2 1 203.0.113.0/24 <> %ZZ",
        "N x 2 203.0.113.0/24",
        "Q",
    ] {
        let framed = crate::durable::log::encode(junk.as_bytes()).unwrap();
        assert_eq!(store::replay(&framed).1.bad, 1, "{junk}");
    }
}

#[test]
fn a_torn_or_corrupt_tail_costs_only_its_own_record() {
    let mut table = Table::new(timing(100));
    let mut changes = Vec::new();
    let a = triplet("203.0.113.7", "a@x", "bob@example.org");
    let b = triplet("203.0.113.7", "b@x", "bob@example.org");
    table.decide(at(0), &a, &mut changes);
    let mut log = Vec::new();
    for r in &changes {
        store::encode_into(&mut log, r);
    }
    let mut tail = Vec::new();
    let mut changes = Vec::new();
    table.decide(at(5), &b, &mut changes);
    for r in &changes {
        store::encode_into(&mut tail, r);
    }
    let rebuilt = |bytes: &[u8]| {
        let mut t = Table::new(timing(100));
        let (records, stats) = store::replay(bytes);
        for r in records {
            t.apply(r);
        }
        (t, stats)
    };
    for cut in 0..tail.len() {
        let mut torn = log.clone();
        torn.extend_from_slice(&tail[..cut]);
        let (mut t, stats) = rebuilt(&torn);
        assert_eq!(stats.records, 1, "cut at {cut}");
        // a was kept (its clock too: it passes at its own delay), b was lost (new again).
        assert!(
            matches!(decide(&mut t, DELAY, &a), Decision::Pass { .. }),
            "cut at {cut}"
        );
        assert_eq!(
            decide(&mut t, DELAY, &b),
            defer(DELAY, true),
            "cut at {cut}"
        );
    }
    // A flipped byte in the middle: that record only.
    let mut damaged = log.clone();
    damaged.extend_from_slice(&tail);
    let end = log.len() - 3;
    damaged[end] ^= 0x20;
    let (mut t, stats) = rebuilt(&damaged);
    assert_eq!(stats, store::Replay { records: 1, bad: 1 });
    assert_eq!(decide(&mut t, DELAY, &a), defer(DELAY, true));
    assert!(matches!(
        decide(&mut t, DELAY + 5, &b),
        Decision::Pass { .. }
    ));
}

// ---- the policy, over the in-memory Env (whose fs models what a crash loses) ----

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn config() -> GreylistConfig {
    GreylistConfig {
        enabled: true,
        auto_allow_after: 3,
        allow_networks: vec!["198.51.100.0/24".parse().unwrap()],
        allow_recipients: vec!["postmaster".into(), "abuse@example.org".into()],
        ..GreylistConfig::default()
    }
}

fn rcpt_check(client: &str, from: &str, to: &str, authenticated: bool) -> Check {
    Check {
        client: Arc::new(Client {
            remote: SocketAddr::new(ip(client), 40000),
            local: "192.0.2.1:25".parse().unwrap(),
            helo: None,
            tls: false,
            authenticated: authenticated.then(|| "alice@example.org".into()),
        }),
        stage: Stage::Rcpt {
            from: (!from.is_empty()).then(|| Address::parse(from).unwrap()),
            to: Address::parse(to).unwrap(),
            accepted: 0,
        },
    }
}

async fn ask(g: &Greylist<MemEnv>, client: &str, from: &str, to: &str) -> Verdict {
    g.verdict(&rcpt_check(client, from, to, false)).await
}

fn deferred(v: &Verdict) -> Option<String> {
    match v {
        Verdict::Defer(r) => {
            assert_eq!((r.code, r.enhanced), (451, (4, 7, 1)));
            Some(r.text.clone())
        }
        _ => None,
    }
}

async fn open(env: &MemEnv) -> Greylist<MemEnv> {
    // No write-behind task: the tests decide when the fsync happens (`flush`).
    Greylist::open_with(
        env.clone(),
        &config(),
        vec!["10.0.0.0/8".parse().unwrap()],
        false,
    )
    .await
    .unwrap()
}

#[test]
fn the_policy_defers_with_a_retry_hint_and_lets_the_retry_through() {
    run(async {
        let env = MemEnv::new();
        let t0 = env.now();
        let g = open(&env).await;
        let v = ask(&g, "203.0.113.7", "A@X.example", "Bob@example.org").await;
        assert_eq!(
            deferred(&v).as_deref(),
            Some("Greylisted, see RFC 6647; please retry in 300 seconds")
        );
        // Case does not make another triplet.
        env.sleep_until(t0.plus(Duration::from_secs(120))).await;
        let v = ask(&g, "203.0.113.8", "a@x.example", "bob@EXAMPLE.org").await;
        assert_eq!(
            deferred(&v).as_deref(),
            Some("Greylisted, see RFC 6647; please retry in 180 seconds")
        );
        env.sleep_until(t0.plus(Duration::from_secs(300))).await;
        assert_eq!(
            ask(&g, "203.0.113.9", "a@x.example", "bob@example.org").await,
            Verdict::Accept
        );
        // The null sender is a sender like any other.
        assert!(deferred(&ask(&g, "203.0.113.7", "", "bob@example.org").await).is_some());
        // Other stages are not greylisted.
        let mut c = rcpt_check("203.0.113.7", "", "bob@example.org", false);
        c.stage = Stage::Connect;
        assert_eq!(g.verdict(&c).await, Verdict::Accept);
        let traced = env.traces().join("\n");
        assert!(traced.contains("greylist defer 203.0.113.0/24 <a@x.example> -> <bob@example.org>: new, retry in 300s"), "{traced}");
        assert!(traced.contains("early retry, retry in 180s"), "{traced}");
        assert!(traced.contains("greylist pass 203.0.113.0/24 <a@x.example> -> <bob@example.org>: retried after 300s (1 passes from 203.0.113.0/24)"), "{traced}");
    })
}

#[test]
fn pass_lists_skip_greylisting() {
    run(async {
        let env = MemEnv::new();
        let g = open(&env).await;
        let from = "a@x.example";
        // Authenticated, relay_networks (10/8), allow_networks (198.51.100/24).
        let authed = g
            .verdict(&rcpt_check("203.0.113.7", from, "bob@example.org", true))
            .await;
        assert_eq!(authed, Verdict::Accept);
        assert_eq!(
            ask(&g, "10.1.2.3", from, "bob@example.org").await,
            Verdict::Accept
        );
        assert_eq!(
            ask(&g, "198.51.100.20", from, "bob@example.org").await,
            Verdict::Accept
        );
        // allow_recipients: a bare local part at any domain, a whole address.
        assert_eq!(
            ask(&g, "203.0.113.7", from, "PostMaster@example.org").await,
            Verdict::Accept
        );
        assert_eq!(
            ask(&g, "203.0.113.7", from, "postmaster@example.net").await,
            Verdict::Accept
        );
        assert_eq!(
            ask(&g, "203.0.113.7", from, "abuse@example.org").await,
            Verdict::Accept
        );
        assert!(deferred(&ask(&g, "203.0.113.7", from, "abuse@example.net").await).is_some());
        assert!(deferred(&ask(&g, "198.51.101.20", from, "bob@example.org").await).is_some());
        let traced = env.traces().join("\n");
        for why in [
            "client authenticated",
            "client in relay_networks",
            "client in allow_networks",
            "client recipient in allow_recipients",
        ] {
            assert!(traced.contains(why), "{why}: {traced}");
        }
    })
}

#[test]
fn state_survives_a_restart_and_a_crash_after_the_sync() {
    run(async {
        let env = MemEnv::new();
        let t0 = env.now();
        let g = open(&env).await;
        assert!(deferred(&ask(&g, "203.0.113.7", "a@x", "bob@example.org").await).is_some());
        // Synced: survives a crash.
        g.flush().await;
        assert!(deferred(&ask(&g, "203.0.113.7", "b@x", "bob@example.org").await).is_some());
        // A crash now loses b (appended, not synced), not a.
        let crashed_env = MemEnv::with(env.image(), None, 0.0, 1);
        // A clean restart keeps the unsynced append too (the file has it).
        let clean = open(&env).await;
        crashed_env.sleep_until(t0).await;
        let crashed = open(&crashed_env).await;
        for e in [&env, &crashed_env] {
            e.sleep_until(t0.plus(Duration::from_secs(DELAY))).await;
        }
        assert_eq!(
            ask(&clean, "203.0.113.7", "a@x", "bob@example.org").await,
            Verdict::Accept
        );
        assert_eq!(
            ask(&clean, "203.0.113.7", "b@x", "bob@example.org").await,
            Verdict::Accept
        );
        assert_eq!(
            ask(&crashed, "203.0.113.7", "a@x", "bob@example.org").await,
            Verdict::Accept
        );
        let lost = ask(&crashed, "203.0.113.7", "b@x", "bob@example.org").await;
        assert_eq!(
            deferred(&lost).as_deref(),
            Some("Greylisted, see RFC 6647; please retry in 300 seconds")
        );
        // A torn tail (half of the unsynced append landed) loads like no tail at all.
        let torn_env = MemEnv::with(
            {
                // Crash images of this env keep half of each unsynced append.
                let e = MemEnv::with(Default::default(), None, 0.5, 1);
                let g = open(&e).await;
                ask(&g, "203.0.113.7", "a@x", "bob@example.org").await;
                g.flush().await;
                ask(&g, "203.0.113.7", "b@x", "bob@example.org").await;
                e.image()
            },
            None,
            0.0,
            1,
        );
        let g = open(&torn_env).await;
        let traced = torn_env.traces().join("\n");
        assert!(
            traced.contains(
                "loaded 1 triplets, 0 networks from greylist/triplets.log (1 records, 1 bad)"
            ),
            "{traced}"
        );
        drop(g);
    })
}

#[test]
fn the_log_is_compacted_at_start_and_when_it_grows() {
    run(async {
        let env = MemEnv::new();
        let t0 = env.now();
        let g = open(&env).await;
        // One sender passes and comes back hourly (a refresh record each time) for long
        // enough that the log holds far more records than live entries.
        ask(&g, "203.0.113.7", "a@x", "bob@example.org").await;
        let mut secs = DELAY;
        for _ in 0..(2 * COMPACT_SLACK) {
            env.sleep_until(t0.plus(Duration::from_secs(secs))).await;
            assert_eq!(
                ask(&g, "203.0.113.7", "a@x", "bob@example.org").await,
                Verdict::Accept
            );
            secs += 3600;
        }
        let size = |e: &MemEnv| {
            let fs = e.image();
            fs.names_for_test()
                .into_iter()
                .find(|(n, _)| n == store::FILE)
                .map_or(0, |(_, d)| d.len())
        };
        let before = env.image();
        let records_before = store::replay(
            &before
                .names_for_test()
                .into_iter()
                .find(|(n, _)| n == store::FILE)
                .map(|(_, d)| d)
                .unwrap_or_default(),
        )
        .1
        .records;
        assert!(records_before < 10, "nothing synced yet: {records_before}");
        g.flush().await;
        // Compacted: one triplet, one network.
        let after = env.image();
        let log = after
            .names_for_test()
            .into_iter()
            .find(|(n, _)| n == store::FILE)
            .map(|(_, d)| d)
            .unwrap();
        assert_eq!(
            store::replay(&log).1.records,
            2,
            "{}",
            String::from_utf8_lossy(&log)
        );
        assert!(size(&env) < 200);
        assert!(env.traces().join("\n").contains(&format!(
            "compacted greylist/triplets.log: {} records -> 2",
            4 * COMPACT_SLACK + 1
        )));
        // Still known after the compaction, and after a restart from it.
        assert_eq!(
            ask(&g, "203.0.113.7", "a@x", "bob@example.org").await,
            Verdict::Accept
        );
        let again = open(&MemEnv::with(env.image(), None, 0.0, 1)).await;
        drop(again);

        // At start: expired entries are dropped from the rewritten log.
        let env = MemEnv::new();
        let t0 = env.now();
        let g = open(&env).await;
        ask(&g, "203.0.113.7", "old@x", "bob@example.org").await;
        env.sleep_until(t0.plus(Duration::from_secs(EXPIRY - 10)))
            .await;
        ask(&g, "203.0.113.7", "new@x", "bob@example.org").await;
        g.flush().await;
        env.sleep_until(t0.plus(Duration::from_secs(EXPIRY))).await;
        let _reopened = open(&env).await;
        let traced = env.traces().join("\n");
        assert!(
            traced.contains(
                "loaded 1 triplets, 0 networks from greylist/triplets.log (2 records, 0 bad)"
            ),
            "{traced}"
        );
        let log = env
            .image()
            .names_for_test()
            .into_iter()
            .find(|(n, _)| n == store::FILE)
            .map(|(_, d)| d)
            .unwrap();
        let text = String::from_utf8_lossy(&log);
        assert!(text.contains("new@x") && !text.contains("old@x"), "{text}");
    })
}

#[test]
fn bad_greylist_settings_are_located_config_errors() {
    let base = "hostname = \"h\"\ndomains = [\"example.org\"]\n";
    let err = |extra: &str| {
        crate::config::parse(std::path::Path::new("m.toml"), &format!("{base}{extra}")).unwrap_err()
    };
    let e = err("[greylist]\nenabled = true\ndelay_secs = 600\nexpiry_secs = 600\n");
    assert_eq!(e.key.as_deref(), Some("greylist.expiry_secs"), "{e}");
    assert_eq!(e.line(), Some(6), "{e}");
    assert!(
        e.message.contains("must be greater than delay_secs (600)"),
        "{e}"
    );
    let e = err("[greylist]\nipv4_prefix = 33\n");
    assert_eq!(e.key.as_deref(), Some("greylist.ipv4_prefix"), "{e}");
    assert_eq!(e.line(), Some(4), "{e}");
    let e = err("[greylist]\nipv6_prefix = 129\n");
    assert_eq!(e.key.as_deref(), Some("greylist.ipv6_prefix"), "{e}");
    let e = err("[greylist]\nmax_entries = 0\n");
    assert_eq!(e.key.as_deref(), Some("greylist.max_entries"), "{e}");
    let e = err("[greylist]\nallow_lifetime_secs = 0\n");
    assert_eq!(
        e.key.as_deref(),
        Some("greylist.allow_lifetime_secs"),
        "{e}"
    );
    let e = err("[greylist]\nallow_recipients = [\"postmaster\",\n  \"bad address@\"]\n");
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(
        e.message.contains("neither an address nor a local part"),
        "{e}"
    );
    let e = err("[greylist]\nallow_networks = [\"10.0.0.0/40\"]\n");
    assert_eq!(e.line(), Some(4), "{e}");
    let e = err("[greylist]\ndelay = 5\n");
    assert_eq!(e.key.as_deref(), Some("greylist.delay"), "{e}");
    // Defaults are postgrey's, and off.
    let c = crate::config::parse(std::path::Path::new("m.toml"), base).unwrap();
    assert_eq!(c.greylist, GreylistConfig::default());
    assert!(!c.greylist.enabled);
    assert_eq!(
        (
            c.greylist.delay_secs,
            c.greylist.expiry_secs,
            c.greylist.auto_allow_after
        ),
        (300, 172_800, 5)
    );
}
