use super::syntax::strict_syntax;
use super::*;
use crate::env::fake::FakeEnv;

fn txt(env: &FakeEnv, name: &str, texts: &[&str]) {
    env.answer(
        name,
        RecordKind::Txt,
        Ok(texts.iter().map(|t| Record::Txt(t.to_string())).collect()),
    );
}

fn a(env: &FakeEnv, name: &str, ip: &str) {
    env.answer(
        name,
        RecordKind::A,
        Ok(vec![Record::A(ip.parse().unwrap())]),
    );
}

async fn check(env: &FakeEnv, ip: &str, domain: &str) -> SpfOutput {
    let sender = format!("alice@{domain}");
    check_host(
        env,
        &SpfQuery {
            ip: ip.parse().unwrap(),
            domain,
            sender: &sender,
            helo: "helo.example",
            receiver: "mx.example.org",
        },
    )
    .await
}

async fn result(env: &FakeEnv, ip: &str, domain: &str) -> SpfResult {
    check(env, ip, domain).await.result()
}

#[tokio::test]
async fn every_result_of_section_2_6() {
    let env = FakeEnv::new();
    txt(&env, "d.test", &["v=spf1 ip4:192.0.2.0/24 ~all"]);
    assert_eq!(result(&env, "192.0.2.9", "d.test").await, SpfResult::Pass);
    assert_eq!(
        result(&env, "198.51.100.1", "d.test").await,
        SpfResult::SoftFail
    );
    txt(&env, "f.test", &["v=spf1 -all"]);
    assert_eq!(result(&env, "192.0.2.9", "f.test").await, SpfResult::Fail);
    txt(&env, "n.test", &["v=spf1 ?all"]);
    assert_eq!(
        result(&env, "192.0.2.9", "n.test").await,
        SpfResult::Neutral
    );
    // No directive matches and no redirect: neutral (§4.7).
    txt(&env, "e.test", &["v=spf1 ip4:10.0.0.1"]);
    assert_eq!(
        result(&env, "192.0.2.9", "e.test").await,
        SpfResult::Neutral
    );
    assert_eq!(
        result(&env, "192.0.2.9", "missing.test").await,
        SpfResult::None
    );
    txt(&env, "other.test", &["hello world", "v=spf10 -all"]);
    assert_eq!(
        result(&env, "192.0.2.9", "other.test").await,
        SpfResult::None
    );
    env.answer(
        "t.test",
        RecordKind::Txt,
        Err(DnsError::Temporary("SERVFAIL".into())),
    );
    assert_eq!(
        result(&env, "192.0.2.9", "t.test").await,
        SpfResult::TempError
    );
    // §4.5: two SPF records.
    txt(&env, "two.test", &["v=spf1 -all", "v=spf1 +all"]);
    assert_eq!(
        result(&env, "192.0.2.9", "two.test").await,
        SpfResult::PermError
    );
    for bad in [
        "v=spf1 ip4:999.1.1.1 -all",
        "v=spf1 ip4:192.0.2.0/33 -all",
        "v=spf1 foo:bar -all",
        "v=spf1 a//129 -all",
        "v=spf1 %{z} -all",
        "v=spf1 include:%{d -all",
        "v=spf1 redirect=a.test redirect=b.test",
        "v=spf1 ++all",
    ] {
        txt(&env, "bad.test", &[bad]);
        assert_eq!(
            result(&env, "192.0.2.9", "bad.test").await,
            SpfResult::PermError,
            "{bad}"
        );
    }
    for good in [
        "v=spf1 a/24//64 mx:%{d}/32 ptr ip6:2001:db8::/32 x-custom=%{l} -all",
        "v=spf1 exists:%{ir}.%{v}._spf.%{d2} ?all",
    ] {
        assert!(strict_syntax(good), "{good}");
    }
    // §4.3: a single-label or malformed domain is none, without a lookup.
    assert_eq!(
        result(&env, "192.0.2.9", "localhost").await,
        SpfResult::None
    );
}

#[tokio::test]
async fn the_ten_term_limit_counts_across_includes() {
    let env = FakeEnv::new();
    // A chain of n includes is n DNS terms: ten are allowed, the eleventh is not.
    for (n, expected) in [(10, SpfResult::Pass), (11, SpfResult::PermError)] {
        let zone = format!("c{n}.test");
        let name = |i: usize| match i {
            0 => zone.clone(),
            _ => format!("l{i}.{zone}"),
        };
        for i in 0..n {
            txt(
                &env,
                &name(i),
                &[&format!("v=spf1 include:{} -all", name(i + 1))],
            );
        }
        txt(&env, &name(n), &["v=spf1 ip4:192.0.2.1 -all"]);
        assert_eq!(
            result(&env, "192.0.2.1", &zone).await,
            expected,
            "{n} includes"
        );
    }
}

#[tokio::test]
async fn a_third_void_lookup_is_a_permerror() {
    let env = FakeEnv::new();
    txt(
        &env,
        "two.test",
        &["v=spf1 a:x1.two.test a:x2.two.test ip4:192.0.2.1 -all"],
    );
    assert_eq!(result(&env, "192.0.2.1", "two.test").await, SpfResult::Pass);
    txt(
        &env,
        "three.test",
        &["v=spf1 a:x1.three.test mx:x2.three.test exists:x3.three.test ip4:192.0.2.1 -all"],
    );
    assert_eq!(
        result(&env, "192.0.2.1", "three.test").await,
        SpfResult::PermError
    );
    // A DNS failure in a mechanism is a temperror, not a void lookup.
    txt(&env, "tmp.test", &["v=spf1 a:x.tmp.test -all"]);
    env.answer(
        "x.tmp.test",
        RecordKind::A,
        Err(DnsError::Temporary("timeout".into())),
    );
    assert_eq!(
        result(&env, "192.0.2.1", "tmp.test").await,
        SpfResult::TempError
    );
}

#[tokio::test]
async fn mechanisms_and_macros() {
    let env = FakeEnv::new();
    // mx with a CIDR length, exists with %{i} (reversed, §7.3), ip6.
    txt(&env, "m.test", &["v=spf1 mx/24 -all"]);
    env.answer(
        "m.test",
        RecordKind::Mx,
        Ok(vec![Record::Mx {
            preference: 10,
            exchange: "mx1.m.test".into(),
        }]),
    );
    a(&env, "mx1.m.test", "192.0.2.200");
    assert_eq!(result(&env, "192.0.2.7", "m.test").await, SpfResult::Pass);
    assert_eq!(result(&env, "192.0.3.7", "m.test").await, SpfResult::Fail);
    txt(&env, "x.test", &["v=spf1 exists:%{ir}.%{l}._spf.%{d} -all"]);
    a(&env, "9.2.0.192.alice._spf.x.test", "127.0.0.2");
    assert_eq!(result(&env, "192.0.2.9", "x.test").await, SpfResult::Pass);
    assert_eq!(result(&env, "192.0.2.8", "x.test").await, SpfResult::Fail);
    txt(&env, "six.test", &["v=spf1 ip6:2001:db8::/32 -all"]);
    assert_eq!(
        result(&env, "2001:db8::5", "six.test").await,
        SpfResult::Pass
    );
    assert_eq!(result(&env, "192.0.2.5", "six.test").await, SpfResult::Fail);
    // An IPv4-mapped client is the IPv4 client (ip4 applies).
    txt(&env, "four.test", &["v=spf1 ip4:192.0.2.0/24 -all"]);
    assert_eq!(
        result(&env, "::ffff:192.0.2.5", "four.test").await,
        SpfResult::Pass
    );
    // include: pass matches, fail does not; none is a permerror (§5.2).
    txt(&env, "inc.test", &["v=spf1 include:four.test ?all"]);
    assert_eq!(result(&env, "192.0.2.5", "inc.test").await, SpfResult::Pass);
    assert_eq!(
        result(&env, "198.51.100.5", "inc.test").await,
        SpfResult::Neutral
    );
    txt(&env, "incnone.test", &["v=spf1 include:nothing.test -all"]);
    assert_eq!(
        result(&env, "192.0.2.5", "incnone.test").await,
        SpfResult::PermError
    );
}

#[tokio::test]
async fn redirect_and_explanation() {
    let env = FakeEnv::new();
    txt(&env, "r.test", &["v=spf1 redirect=_spf.r.test"]);
    txt(
        &env,
        "_spf.r.test",
        &["v=spf1 ip4:192.0.2.1 exp=why.r.test -all"],
    );
    txt(&env, "why.r.test", &["%{i} may not send for %{d}"]);
    assert_eq!(result(&env, "192.0.2.1", "r.test").await, SpfResult::Pass);
    let out = check(&env, "192.0.2.2", "r.test").await;
    assert_eq!(out.result(), SpfResult::Fail);
    // After a redirect, %{d} is the redirect's target (§6.1).
    assert_eq!(
        out.explanation(),
        Some("192.0.2.2 may not send for _spf.r.test")
    );
    // A redirect is ignored when a mechanism matched ("all" here).
    txt(&env, "ra.test", &["v=spf1 -all redirect=_spf.r.test"]);
    assert_eq!(result(&env, "192.0.2.1", "ra.test").await, SpfResult::Fail);
    // A redirect target without SPF: permerror.
    txt(&env, "rn.test", &["v=spf1 redirect=nothing.test"]);
    assert_eq!(
        result(&env, "192.0.2.1", "rn.test").await,
        SpfResult::PermError
    );
    // %{t} in an explanation is the Env's clock, never the real one.
    txt(&env, "t.test", &["v=spf1 exp=whyt.t.test -all"]);
    txt(&env, "whyt.t.test", &["at %{t}"]);
    env.set_now(crate::mail::Timestamp::from_secs(1_000));
    assert_eq!(
        check(&env, "192.0.2.1", "t.test").await.explanation(),
        Some("at 1000")
    );
}

#[tokio::test]
async fn ptr_uses_validated_names_only() {
    let env = FakeEnv::new();
    txt(&env, "p.test", &["v=spf1 ptr -all"]);
    env.answer(
        "9.2.0.192.in-addr.arpa",
        RecordKind::Ptr,
        Ok(vec![Record::Ptr("mail.p.test.".into())]),
    );
    a(&env, "mail.p.test", "192.0.2.9");
    assert_eq!(result(&env, "192.0.2.9", "p.test").await, SpfResult::Pass);
    // A PTR name that does not point back is not validated.
    env.answer(
        "8.2.0.192.in-addr.arpa",
        RecordKind::Ptr,
        Ok(vec![Record::Ptr("fake.p.test.".into())]),
    );
    a(&env, "fake.p.test", "203.0.113.1");
    assert_eq!(result(&env, "192.0.2.8", "p.test").await, SpfResult::Fail);
}
