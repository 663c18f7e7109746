//! The per-client limits on a test clock: window edges exactly at the boundary, pruning,
//! exemptions, the concurrency slot taken at connect and given back once by `closed`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::env::fake::FakeEnv;
use crate::mail::Address;

const T0: u64 = 1_700_000_000;

fn limits(config: ClientLimits) -> (FakeEnv, Limits<FakeEnv>) {
    let env = FakeEnv::new();
    env.set_now(Timestamp::from_secs(T0));
    let relay = vec!["198.51.100.0/24".parse().unwrap()];
    (
        env.clone(),
        Limits::new(env, "mx.example.org", config, relay),
    )
}

fn client(ip: &str, port: u16) -> Arc<Client> {
    Arc::new(Client {
        remote: SocketAddr::new(ip.parse().unwrap(), port),
        local: SocketAddr::from(([192, 0, 2, 1], 25)),
        helo: None,
        tls: false,
        authenticated: None,
    })
}

fn ask(l: &Limits<FakeEnv>, client: &Arc<Client>, stage: Stage) -> Verdict {
    l.decide(&Check {
        client: client.clone(),
        stage,
    })
}

fn mail() -> Stage {
    Stage::Mail {
        from: Some(Address::parse("a@remote.test").unwrap()),
        declared_size: 0,
    }
}

fn rcpt() -> Stage {
    Stage::Rcpt {
        from: None,
        to: Address::parse("bob@example.org").unwrap(),
        accepted: 0,
    }
}

fn refused(v: &Verdict) -> Option<String> {
    match v {
        Verdict::Accept | Verdict::Mark(_) => None,
        Verdict::Defer(r) | Verdict::Reject(r) => Some(format!(
            "{} {}.{}.{} {}",
            r.code, r.enhanced.0, r.enhanced.1, r.enhanced.2, r.text
        )),
    }
}

fn at(env: &FakeEnv, secs: u64, millis: u64) {
    env.set_now(Timestamp(
        Duration::from_secs(T0 + secs) + Duration::from_millis(millis),
    ));
}

#[test]
fn concurrency_slot_is_taken_at_connect_and_given_back_once() {
    let (_env, l) = limits(ClientLimits {
        connections: 2,
        ..Default::default()
    });
    let (a, b, c) = (
        client("203.0.113.5", 1000),
        client("203.0.113.5", 1001),
        client("203.0.113.5", 1002),
    );
    assert_eq!(ask(&l, &a, Stage::Connect), Verdict::Accept);
    assert_eq!(ask(&l, &b, Stage::Connect), Verdict::Accept);
    assert_eq!(l.open("203.0.113.5".parse().unwrap()), 2);
    assert_eq!(
        refused(&ask(&l, &c, Stage::Connect)).as_deref(),
        Some("421 4.7.0 mx.example.org Error: too many connections from 203.0.113.5")
    );
    // Another address is not affected.
    assert_eq!(
        ask(&l, &client("203.0.113.6", 1000), Stage::Connect),
        Verdict::Accept
    );
    // The refused session ends: it held no slot, so nothing is given back.
    l.closed(&c);
    assert_eq!(l.open("203.0.113.5".parse().unwrap()), 2);
    l.closed(&a);
    // A second call for the same session changes nothing.
    l.closed(&a);
    assert_eq!(l.open("203.0.113.5".parse().unwrap()), 1);
    assert_eq!(ask(&l, &c, Stage::Connect), Verdict::Accept);
    l.closed(&b);
    l.closed(&c);
    assert_eq!(l.open("203.0.113.5".parse().unwrap()), 0);
    // The counter of an address with no sessions is gone, not kept at zero.
    assert!(!l
        .state
        .lock()
        .unwrap()
        .open
        .contains_key(&"203.0.113.5".parse::<IpAddr>().unwrap()));
}

#[test]
fn a_mapped_ipv4_client_is_the_same_client() {
    let (_env, l) = limits(ClientLimits {
        connections: 1,
        ..Default::default()
    });
    assert_eq!(
        ask(&l, &client("203.0.113.5", 1), Stage::Connect),
        Verdict::Accept
    );
    assert!(refused(&ask(&l, &client("::ffff:203.0.113.5", 2), Stage::Connect)).is_some());
}

#[test]
fn message_rate_window_edge_is_exact() {
    let (env, l) = limits(ClientLimits {
        messages_per_minute: 3,
        ..Default::default()
    });
    let a = client("203.0.113.5", 1000);
    at(&env, 0, 0);
    assert_eq!(ask(&l, &a, mail()), Verdict::Accept);
    at(&env, 10, 0);
    assert_eq!(ask(&l, &a, mail()), Verdict::Accept);
    assert_eq!(ask(&l, &a, mail()), Verdict::Accept);
    assert_eq!(
        refused(&ask(&l, &a, mail())).as_deref(),
        Some("450 4.7.1 Error: too much mail from 203.0.113.5")
    );
    // Another address has its own budget.
    assert_eq!(ask(&l, &client("203.0.113.6", 1), mail()), Verdict::Accept);
    // One millisecond before the first event is a window old: still full.
    at(&env, 59, 999);
    assert!(refused(&ask(&l, &a, mail())).is_some());
    // Exactly a window after it: one event has left, one more fits (and only one).
    at(&env, 60, 0);
    assert_eq!(ask(&l, &a, mail()), Verdict::Accept);
    assert!(refused(&ask(&l, &a, mail())).is_some());
    // The refused attempts used up nothing: at 70 s both events of t=10 have left.
    at(&env, 70, 0);
    assert_eq!(ask(&l, &a, mail()), Verdict::Accept);
    assert_eq!(ask(&l, &a, mail()), Verdict::Accept);
    assert!(refused(&ask(&l, &a, mail())).is_some());
}

#[test]
fn connection_rate_counts_connections_not_sessions() {
    let (env, l) = limits(ClientLimits {
        connections_per_minute: 2,
        ..Default::default()
    });
    for port in [1, 2] {
        let c = client("203.0.113.5", port);
        assert_eq!(ask(&l, &c, Stage::Connect), Verdict::Accept);
        l.closed(&c);
    }
    let v = ask(&l, &client("203.0.113.5", 3), Stage::Connect);
    assert_eq!(
        refused(&v).as_deref(),
        Some("421 4.7.0 mx.example.org Error: too many connections from 203.0.113.5")
    );
    at(&env, 60, 0);
    assert_eq!(
        ask(&l, &client("203.0.113.5", 4), Stage::Connect),
        Verdict::Accept
    );
}

#[test]
fn recipient_rate_is_per_hour() {
    let (env, l) = limits(ClientLimits {
        recipients_per_hour: 2,
        ..Default::default()
    });
    let a = client("203.0.113.5", 1000);
    assert_eq!(ask(&l, &a, rcpt()), Verdict::Accept);
    assert_eq!(ask(&l, &a, rcpt()), Verdict::Accept);
    assert_eq!(
        refused(&ask(&l, &a, rcpt())).as_deref(),
        Some("450 4.7.1 Error: too many recipients from 203.0.113.5")
    );
    // MAIL and the end of data are not recipients.
    assert_eq!(ask(&l, &a, mail()), Verdict::Accept);
    at(&env, 3599, 999);
    assert!(refused(&ask(&l, &a, rcpt())).is_some());
    at(&env, 3600, 0);
    assert_eq!(ask(&l, &a, rcpt()), Verdict::Accept);
}

#[test]
fn old_addresses_are_forgotten() {
    let (env, l) = limits(ClientLimits {
        messages_per_minute: 5,
        ..Default::default()
    });
    for i in 0..100u8 {
        let c = client(&format!("203.0.113.{i}"), 1);
        assert_eq!(ask(&l, &c, mail()), Verdict::Accept);
    }
    assert_eq!(l.remembered(), 100);
    // A window later, the next event sweeps every address whose events are that old.
    at(&env, 61, 0);
    assert_eq!(ask(&l, &client("192.0.2.77", 1), mail()), Verdict::Accept);
    assert_eq!(l.remembered(), 1);
}

#[test]
fn exempt_clients_are_never_limited_nor_counted() {
    let mut config = ClientLimits {
        connections: 1,
        messages_per_minute: 1,
        recipients_per_hour: 1,
        exempt_networks: vec!["10.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let (_env, l) = limits(config.clone());
    let ours = client("198.51.100.7", 1);
    let listed = client("10.1.2.3", 1);
    let authed = Arc::new(Client {
        authenticated: Some("alice@example.org".into()),
        ..(*client("203.0.113.5", 1)).clone()
    });
    for c in [&ours, &listed] {
        for _ in 0..3 {
            assert_eq!(ask(&l, c, Stage::Connect), Verdict::Accept);
            assert_eq!(ask(&l, c, mail()), Verdict::Accept);
            assert_eq!(ask(&l, c, rcpt()), Verdict::Accept);
        }
    }
    for _ in 0..3 {
        assert_eq!(ask(&l, &authed, mail()), Verdict::Accept);
        assert_eq!(ask(&l, &authed, rcpt()), Verdict::Accept);
    }
    assert_eq!(l.remembered(), 0);
    assert_eq!(l.open("198.51.100.7".parse().unwrap()), 0);
    // Without the exemption, the same client is limited.
    config.exempt_networks.clear();
    let (_env, l) = limits(config);
    assert_eq!(ask(&l, &listed, mail()), Verdict::Accept);
    assert!(refused(&ask(&l, &listed, mail())).is_some());
}

#[test]
fn nothing_is_counted_when_every_limit_is_off() {
    let (_env, l) = limits(ClientLimits::default());
    let a = client("203.0.113.5", 1);
    for _ in 0..1000 {
        assert_eq!(ask(&l, &a, Stage::Connect), Verdict::Accept);
        assert_eq!(ask(&l, &a, mail()), Verdict::Accept);
    }
    assert_eq!(l.remembered(), 0);
    assert_eq!(l.open("203.0.113.5".parse().unwrap()), 0);
}

#[test]
fn a_refusal_is_traced() {
    let (env, l) = limits(ClientLimits {
        messages_per_minute: 1,
        ..Default::default()
    });
    let a = client("203.0.113.5", 1);
    ask(&l, &a, mail());
    ask(&l, &a, mail());
    let traced = env.traced();
    assert!(
        traced
            .iter()
            .any(|l| l.contains("message rate limit exceeded by 203.0.113.5")),
        "{traced:?}"
    );
}
