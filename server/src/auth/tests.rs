//! [`Accounts`] on the fake Env: its clock shows the delays (a sleep jumps it), its trace
//! what an operator would read.

use std::net::SocketAddr;
use std::time::Duration;

use super::password::tests::READY;
use super::*;
use crate::config::{AccountConfig, ConfigError};
use crate::env::fake::FakeEnv;
use crate::mail::Timestamp;
use crate::smtp::AuthMechanism;

const T0: u64 = 1_700_000_000;

fn config(extra: &str) -> ServerConfig {
    let text = format!(
        r#"
        hostname = "mx.example.org"
        domains = ["example.org"]
        accounts = [
            {{ address = "Alice@example.org", password = "{alice}" }},
            {{ address = "bob@example.org", password = "{bob}", disabled = true }},
            "nopw@example.org",
        ]
        [auth]
        failure_delay_ms = 1000
        max_failure_delay_ms = 4000
        max_failures = 4
        lockout_secs = 600
        {extra}
        "#,
        alice = READY[0].1,
        bob = READY[1].1,
    );
    toml::from_str(&text).unwrap()
}

fn accounts() -> (FakeEnv, Accounts<FakeEnv>) {
    let env = FakeEnv::new();
    env.set_now(Timestamp::from_secs(T0));
    let accounts = Accounts::new(env.clone(), &config("")).unwrap();
    (env, accounts)
}

fn creds(authcid: &str, password: &str) -> Credentials {
    Credentials {
        mechanism: AuthMechanism::Plain,
        authcid: authcid.into(),
        authzid: String::new(),
        password: password.into(),
    }
}

fn ip(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 40000))
}

/// The answer and how long it took on the Env clock, in ms.
async fn attempt(
    env: &FakeEnv,
    a: &Accounts<FakeEnv>,
    from: SocketAddr,
    c: &Credentials,
) -> (AuthAnswer, u128) {
    let before = env.now();
    let answer = a.authenticate(from, c).await;
    (answer, env.now().since(before).as_millis())
}

fn code(answer: &AuthAnswer) -> u16 {
    match answer {
        AuthAnswer::Accepted | AuthAnswer::AcceptedAs(_) => 235,
        AuthAnswer::Rejected => 535,
        AuthAnswer::Refused(r) => r.code,
    }
}

#[tokio::test]
async fn the_right_password_gives_the_canonical_address() {
    let (env, a) = accounts();
    for login in ["alice@example.org", "ALICE@Example.Org"] {
        let (answer, ms) = attempt(&env, &a, ip(1), &creds(login, "alice-secret")).await;
        assert_eq!(answer, AuthAnswer::AcceptedAs("alice@example.org".into()));
        assert_eq!(ms, 0, "no delay for a success");
    }
    let mut c = creds("alice@example.org", "alice-secret");
    c.authzid = "Alice@example.org".into();
    assert_eq!(code(&a.authenticate(ip(1), &c).await), 235);
    assert!(env.traced().iter().all(|l| !l.contains("secret")));
    assert_eq!(
        env.traced()[0],
        "auth alice@example.org authenticated from 192.0.2.1"
    );
}

#[tokio::test]
async fn every_kind_of_failure_looks_the_same_to_the_client() {
    let mut foreign = creds("alice@example.org", "alice-secret");
    foreign.authzid = "bob@example.org".into();
    let cases = [
        creds("alice@example.org", "wrong"),
        creds("nobody@example.org", "alice-secret"),
        creds("bob@example.org", "bob-secret"),
        creds("nopw@example.org", ""),
        foreign,
    ];
    let mut trace = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        // Fresh counters each time: the same first delay for each.
        let (env, a) = accounts();
        let (answer, ms) = attempt(&env, &a, ip(10 + i as u8), c).await;
        assert_eq!((answer, ms), (AuthAnswer::Rejected, 1000), "{c:?}");
        trace.extend(env.traced());
    }
    let whys: Vec<&str> = trace
        .iter()
        .map(|l| &l[l.find('(').unwrap()..l.find(')').unwrap() + 1])
        .collect();
    assert_eq!(
        whys,
        [
            "(wrong password)",
            "(unknown account)",
            "(account disabled)",
            "(account has no password)",
            "(authzid is not the account)"
        ]
    );
    assert!(trace[1].contains("failure 1 for (unknown account) from 192.0.2.11"));
    // Neither the passwords nor the unknown login name reach the trace.
    assert!(trace
        .iter()
        .all(|l| !l.contains("secret") && !l.contains("nobody")));
}

#[tokio::test]
async fn delays_grow_then_the_client_is_locked_out_then_it_expires() {
    let (env, a) = accounts();
    let wrong = creds("alice@example.org", "guess");
    let mut delays = Vec::new();
    for _ in 0..3 {
        let (answer, ms) = attempt(&env, &a, ip(1), &wrong).await;
        assert_eq!(answer, AuthAnswer::Rejected);
        delays.push(ms);
    }
    assert_eq!(delays, [1000, 2000, 4000]);
    // The 4th failure reaches max_failures: 421 after the (capped) delay.
    let (answer, ms) = attempt(&env, &a, ip(1), &wrong).await;
    assert_eq!((code(&answer), ms), (421, 4000));
    let trace = env.traced();
    assert!(trace.contains(&"auth 192.0.2.1 locked out for 600 s".to_string()));
    assert!(trace.contains(&"auth alice@example.org locked out for 600 s".to_string()));
    // Locked: no check at all, at once, even with the right password.
    let right = creds("alice@example.org", "alice-secret");
    let (answer, ms) = attempt(&env, &a, ip(1), &right).await;
    assert_eq!((code(&answer), ms), (421, 0));
    // The account is locked too, for everyone.
    let (answer, ms) = attempt(&env, &a, ip(2), &right).await;
    assert_eq!((answer, ms), (AuthAnswer::Refused(account_locked()), 0));
    // The 4th failure came at 7 s (after the 1 + 2 + 4 s delays); 600 s later both lockouts
    // are over.
    env.set_now(Timestamp::from_secs(T0 + 606));
    assert_eq!(code(&a.authenticate(ip(2), &right).await), 454);
    env.set_now(Timestamp::from_secs(T0 + 607));
    assert_eq!(code(&a.authenticate(ip(1), &right).await), 235);
}

#[tokio::test]
async fn an_account_attacked_from_many_clients_is_locked_for_all() {
    let (env, a) = accounts();
    let wrong = creds("alice@example.org", "guess");
    let mut seen = Vec::new();
    for n in 1..=4 {
        let (answer, ms) = attempt(&env, &a, ip(n), &wrong).await;
        seen.push((code(&answer), ms));
    }
    // Each client failed once, the account four times: the account's count sets the delay.
    assert_eq!(seen, [(535, 1000), (535, 2000), (535, 4000), (454, 4000)]);
    let right = creds("alice@example.org", "alice-secret");
    assert_eq!(code(&a.authenticate(ip(9), &right).await), 454);
    // Another account from one of those clients is fine.
    let trace_len = env.traced().len();
    let other = creds("nobody@example.org", "x");
    assert_eq!(
        attempt(&env, &a, ip(1), &other).await.1,
        2000,
        "client's 2nd"
    );
    assert!(env.traced()[trace_len..]
        .iter()
        .any(|l| l.contains("failure 2 for (unknown account) from 192.0.2.1 ")));
}

#[tokio::test]
async fn failures_expire_and_a_success_clears_them() {
    let (env, a) = accounts();
    let wrong = creds("alice@example.org", "guess");
    let right = creds("alice@example.org", "alice-secret");
    assert_eq!(attempt(&env, &a, ip(1), &wrong).await.1, 1000);
    assert_eq!(attempt(&env, &a, ip(1), &wrong).await.1, 2000);
    // Forgotten after lockout_secs: the next failure is a first one again.
    env.set_now(env.now().plus(Duration::from_secs(600)));
    assert_eq!(attempt(&env, &a, ip(1), &wrong).await.1, 1000);
    assert_eq!(attempt(&env, &a, ip(1), &wrong).await.1, 2000);
    assert_eq!(code(&a.authenticate(ip(1), &right).await), 235);
    assert_eq!(attempt(&env, &a, ip(1), &wrong).await.1, 1000);
}

#[tokio::test]
async fn unknown_names_are_locked_out_like_real_ones() {
    let (_env, a) = accounts();
    let guess = creds("ghost@example.org", "x");
    let answers: Vec<u16> = {
        let mut v = Vec::new();
        for n in 1..=5 {
            v.push(code(&a.authenticate(ip(n), &guess).await));
        }
        v
    };
    assert_eq!(answers, [535, 535, 535, 454, 454]);
}

#[test]
fn a_bad_hash_is_a_config_error_naming_the_account() {
    let mut cfg = config("");
    cfg.accounts
        .push(AccountConfig::Full(crate::config::AccountTable {
            password: Some("hunter2".into()),
            ..AccountConfig::Address("carol@example.org".into()).table()
        }));
    let err = cfg.validate().unwrap_err();
    assert!(
        matches!(&err, ConfigError::Password(AuthError::BadPassword(a, _)) if a == "carol@example.org"),
        "{err:?}"
    );
    assert!(err.to_string().contains("carol@example.org"), "{err}");
    assert!(Accounts::new(FakeEnv::new(), &cfg).is_err());
    let bad_params = config("argon2 = { m_cost = 8, t_cost = 1, p_cost = 4 }");
    assert!(matches!(
        bad_params.validate(),
        Err(ConfigError::Password(AuthError::BadParams(_)))
    ));
    config("").validate().unwrap();
}
