use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::*;
use crate::env::fake::FakeEnv;
use crate::mail::Address;
use crate::policy::Client;

const ZONE: &str = "bl.example";

fn list(zone: &str, codes: &[&str], stage: ListStage) -> DnsListConfig {
    DnsListConfig {
        zone: zone.into(),
        codes: codes.iter().map(|c| c.parse().unwrap()).collect(),
        stage,
    }
}

fn check(ip: &str, stage: Stage, authenticated: bool) -> Check {
    let remote: SocketAddr = format!("{ip}:40000").parse().unwrap();
    Check {
        client: Arc::new(Client {
            remote,
            local: "192.0.2.1:25".parse().unwrap(),
            helo: None,
            tls: false,
            authenticated: authenticated.then(|| "alice@example.org".into()),
        }),
        stage,
    }
}

fn rcpt() -> Stage {
    Stage::Rcpt {
        from: None,
        to: Address::parse("bob@example.org").unwrap(),
        accepted: 0,
    }
}

fn a(code: [u8; 4]) -> Record {
    Record::A(Ipv4Addr::from(code))
}

/// The verdict of `lists` for a client at `ip` (not authenticated) at `stage`.
fn verdict(lists: &DnsLists<FakeEnv>, ip: &str, stage: Stage) -> Verdict {
    run(lists.verdict(&check(ip, stage, false)))
}

fn run(f: impl std::future::Future<Output = Verdict>) -> Verdict {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Only the block list `ZONE`, acting on `codes`, at `stage`.
fn blocking(env: &FakeEnv, codes: &[&str], stage: ListStage) -> DnsLists<FakeEnv> {
    DnsLists::new(env.clone(), vec![list(ZONE, codes, stage)], vec![], vec![])
}

/// 203.0.113.99 listed (127.0.0.2, with a reason); 203.0.113.98 listed with a code the
/// config does not act on; 203.0.113.97 answered by a hijacking resolver; .96 unlisted.
fn env() -> FakeEnv {
    let env = FakeEnv::new();
    env.answer(
        "99.113.0.203.bl.example",
        RecordKind::A,
        Ok(vec![a([127, 0, 0, 2])]),
    )
    .answer(
        "99.113.0.203.bl.example",
        RecordKind::Txt,
        Ok(vec![Record::Txt(
            "Listed: see https://bl.example/99\u{7}".into(),
        )]),
    )
    .answer(
        "98.113.0.203.bl.example",
        RecordKind::A,
        Ok(vec![a([127, 0, 0, 10])]),
    )
    .answer(
        "97.113.0.203.bl.example",
        RecordKind::A,
        Ok(vec![a([198, 51, 100, 1])]),
    )
    .answer(
        "96.113.0.203.bl.example",
        RecordKind::A,
        Err(DnsError::NxDomain),
    )
    .answer(
        "95.113.0.203.bl.example",
        RecordKind::A,
        Err(DnsError::Temporary("SERVFAIL".into())),
    );
    env
}

#[test]
fn query_names_reverse_octets_and_nibbles() {
    assert_eq!(
        query_name("192.0.2.99".parse().unwrap(), "zen.example."),
        "99.2.0.192.zen.example"
    );
    // RFC 5782 §2.4's example.
    assert_eq!(
        query_name("2001:db8:1:2:3:4:567:89ab".parse().unwrap(), "ugly.example"),
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example"
    );
}

#[test]
fn a_listed_client_is_refused_with_the_lists_reason_at_its_stage() {
    let env = env();
    let lists = blocking(&env, &["127.0.0.2"], ListStage::Rcpt);
    let v = verdict(&lists, "203.0.113.99", rcpt());
    assert_eq!(
        v,
        Verdict::Reject(Refusal::new(
            554,
            (5, 7, 1),
            "Service unavailable; Client host [203.0.113.99] blocked using bl.example; Listed: see https://bl.example/99?"
        ))
    );
    assert!(
        env.traced()
            .iter()
            .any(|t| t.contains("client [203.0.113.99] listed in bl.example (127.0.0.2)")),
        "{:?}",
        env.traced()
    );
    // Not at the other stage.
    assert_eq!(
        verdict(&lists, "203.0.113.99", Stage::Connect),
        Verdict::Accept
    );
    let at_connect = blocking(&env, &[], ListStage::Connect);
    assert!(matches!(
        verdict(&at_connect, "203.0.113.99", Stage::Connect),
        Verdict::Reject(_)
    ));
    assert_eq!(
        verdict(&at_connect, "203.0.113.99", rcpt()),
        Verdict::Accept
    );
}

#[test]
fn other_codes_bogus_answers_and_failed_lookups_are_not_listings() {
    let env = env();
    let lists = blocking(&env, &["127.0.0.2"], ListStage::Rcpt);
    for ip in [
        "203.0.113.98",
        "203.0.113.97",
        "203.0.113.96",
        "203.0.113.95",
    ] {
        assert_eq!(verdict(&lists, ip, rcpt()), Verdict::Accept, "{ip}");
    }
    assert!(env
        .traced()
        .iter()
        .any(|t| t.contains("SERVFAIL; counted as not listed")));
    // Without a code filter any 127/8 answer counts, but a non-loopback one still does not.
    let any = blocking(&env, &[], ListStage::Rcpt);
    assert!(matches!(
        verdict(&any, "203.0.113.98", rcpt()),
        Verdict::Reject(_)
    ));
    assert_eq!(verdict(&any, "203.0.113.97", rcpt()), Verdict::Accept);
}

#[test]
fn allow_lists_trusted_networks_and_authenticated_clients_skip_the_block_lists() {
    let env = env();
    env.answer(
        "99.113.0.203.wl.example",
        RecordKind::A,
        Ok(vec![a([127, 0, 0, 3])]),
    );
    let block = vec![list(ZONE, &[], ListStage::Rcpt)];
    let allowed = DnsLists::new(
        env.clone(),
        block.clone(),
        vec![list("wl.example", &[], ListStage::Rcpt)],
        vec![],
    );
    assert_eq!(verdict(&allowed, "203.0.113.99", rcpt()), Verdict::Accept);
    assert!(env
        .traced()
        .iter()
        .any(|t| t.contains("allowed by wl.example")));
    let trusted = DnsLists::new(
        env.clone(),
        block.clone(),
        vec![],
        vec!["203.0.113.0/24".parse().unwrap()],
    );
    assert_eq!(verdict(&trusted, "203.0.113.99", rcpt()), Verdict::Accept);
    let plain = DnsLists::new(env, block, vec![], vec![]);
    assert_eq!(
        run(plain.verdict(&check("203.0.113.99", rcpt(), true))),
        Verdict::Accept
    );
    assert!(matches!(
        verdict(&plain, "203.0.113.99", rcpt()),
        Verdict::Reject(_)
    ));
}

/// The zones `lists` scores the client at `ip` for.
fn scored(lists: &DnsLists<FakeEnv>, ip: &str, authenticated: bool) -> Vec<String> {
    let c = check(ip, rcpt(), authenticated);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(lists.scored(&c.client))
}

#[test]
fn a_scoring_list_never_refuses_and_names_its_zone_for_the_scorer() {
    let env = env();
    let lists = blocking(&env, &["127.0.0.2"], ListStage::Score);
    for stage in [Stage::Connect, rcpt()] {
        assert_eq!(verdict(&lists, "203.0.113.99", stage), Verdict::Accept);
    }
    assert_eq!(scored(&lists, "203.0.113.99", false), ["bl.example"]);
    // The code filter, a hijacked answer, NXDOMAIN and SERVFAIL: not listed.
    for ip in [
        "203.0.113.98",
        "203.0.113.97",
        "203.0.113.96",
        "203.0.113.95",
    ] {
        assert_eq!(scored(&lists, ip, false), Vec::<String>::new(), "{ip}");
    }
    // Our own clients are never scored by a list.
    assert_eq!(scored(&lists, "203.0.113.99", true), Vec::<String>::new());
    let trusted = DnsLists::new(
        env.clone(),
        vec![list(ZONE, &[], ListStage::Score)],
        vec![],
        vec!["203.0.113.0/24".parse().unwrap()],
    );
    assert_eq!(
        scored(&trusted, "203.0.113.99", false),
        Vec::<String>::new()
    );
    // A refusing list is not a scoring input.
    let refusing = blocking(&env, &[], ListStage::Rcpt);
    assert_eq!(
        scored(&refusing, "203.0.113.99", false),
        Vec::<String>::new()
    );
}
