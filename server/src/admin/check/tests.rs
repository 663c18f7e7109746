//! `check` over a fake DNS: each kind of problem found, with its fix.

use super::*;
use std::collections::BTreeMap;

struct Fake(BTreeMap<(String, RecordKind), Vec<Record>>);

impl Lookup for Fake {
    fn lookup(&mut self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        self.0
            .get(&(name.to_string(), kind))
            .cloned()
            .ok_or(DnsError::NxDomain)
    }
}

fn world(records: &[(&str, RecordKind, Record)], pem: &str) -> CheckWorld {
    let mut m: BTreeMap<(String, RecordKind), Vec<Record>> = BTreeMap::new();
    for (n, k, r) in records {
        m.entry((n.to_string(), *k)).or_default().push(r.clone());
    }
    let text = format!(
        "hostname = \"mx.example.org\"\ndomains = [\"example.org\"]\n[[dkim]]\ndomain = \"example.org\"\nselector = \"s\"\nalgorithm = \"ed25519-sha256\"\nkey_pem = \"\"\"\n{pem}\"\"\"\n"
    );
    CheckWorld {
        config: crate::config::parse("t.toml".as_ref(), &text).unwrap(),
        addresses: vec!["192.0.2.1".parse().unwrap()],
        lookup: Box::new(Fake(m)),
        source: "test".into(),
    }
}

fn find<'a>(r: &'a Report, what: &str) -> &'a Finding {
    r.0.iter().find(|f| f.what == what).unwrap()
}

#[test]
fn wrong_mx_other_dkim_key_no_dmarc_and_a_ptr_naming_someone_else() {
    let pem = dkim::generate(crate::config::DkimAlgorithm::Ed25519Sha256, 0).unwrap();
    let other = dkim::generate(crate::config::DkimAlgorithm::Ed25519Sha256, 0).unwrap();
    let other = dkim::public_key(crate::config::DkimAlgorithm::Ed25519Sha256, &other).unwrap();
    let mut w = world(
        &[
            (
                "example.org",
                RecordKind::Mx,
                Record::Mx {
                    preference: 5,
                    exchange: "mail.elsewhere.test".into(),
                },
            ),
            (
                "mx.example.org",
                RecordKind::A,
                Record::A([192, 0, 2, 1].into()),
            ),
            (
                "example.org",
                RecordKind::Txt,
                Record::Txt("v=spf1 a:mx.example.org -all".into()),
            ),
            (
                "s._domainkey.example.org",
                RecordKind::Txt,
                Record::Txt(other.txt()),
            ),
            (
                "192.0.2.1",
                RecordKind::Ptr,
                Record::Ptr("host-1.isp.test".into()),
            ),
        ],
        &pem,
    );
    let r = check(&mut w, "example.org", None);
    let mx = find(&r, "MX");
    assert_eq!(mx.status, Status::Wrong);
    assert_eq!(
        mx.fix.as_deref(),
        Some("example.org. 3600 IN MX 10 mx.example.org.")
    );
    assert_eq!(find(&r, "A").status, Status::Ok);
    assert_eq!(find(&r, "SPF").status, Status::Ok);
    let dk = find(&r, "DKIM");
    assert_eq!(dk.status, Status::Wrong);
    let want = dkim::public_key(crate::config::DkimAlgorithm::Ed25519Sha256, &pem).unwrap();
    assert!(dk.fix.as_deref().unwrap().contains(&want.p), "{dk:?}");
    assert_eq!(find(&r, "DMARC").status, Status::Missing);
    let ptr = find(&r, "PTR");
    assert_eq!(ptr.status, Status::Wrong);
    assert!(
        ptr.detail.contains("but we say EHLO mx.example.org"),
        "{ptr:?}"
    );
    assert!(ptr
        .fix
        .as_deref()
        .unwrap()
        .starts_with("1.2.0.192.in-addr.arpa. 3600 IN PTR mx.example.org."));
    assert_eq!(r.problems(), 4);
}
