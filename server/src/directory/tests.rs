use std::collections::BTreeMap;

use super::*;

fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn aliases() -> BTreeMap<String, Vec<String>> {
    [
        (
            "team@example.org",
            &["alice@example.org", "bob@example.org"][..],
        ),
        ("postmaster", &["alice@example.org"]),
        ("loop@example.org", &["loop@example.org"]),
        (
            "fwd@example.org",
            &["alice@example.org", "Carol@Elsewhere.NET"],
        ),
        ("gone@example.org", &["dis@example.org"]),
        ("half@example.org", &["dis@example.org", "bob@example.net"]),
        ("sales@example.net", &["alice@example.org"]),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.iter().map(|t| t.to_string()).collect()))
    .collect()
}

fn accounts() -> Vec<AccountEntry<'static>> {
    vec![
        "alice@example.org".into(),
        "bob@example.org".into(),
        AccountEntry {
            address: "dis@example.org",
            disabled: true,
            send_as: &[],
        },
    ]
}

fn dir() -> Directory {
    Directory::build(&["example.org".into()], accounts(), &aliases())
        .unwrap()
        .with_domain_aliases(&map(&[("Example.NET", "example.org".to_string())]))
        .unwrap()
}

fn with_catch_all(target: &str) -> Result<Directory, DirectoryError> {
    dir().with_catch_all(&map(&[("example.org", target.to_string())]))
}

fn verdict(s: &str) -> RcptVerdict {
    dir().resolve(&Address::parse(s).unwrap())
}

fn local(keys: &[&str]) -> RcptVerdict {
    RcptVerdict::Local(keys.iter().map(|k| k.to_string()).collect())
}

#[test]
fn resolves_accounts_aliases_and_tags() {
    assert_eq!(verdict("ALICE@example.org"), local(&["alice@example.org"]));
    assert_eq!(
        verdict("team@example.org"),
        local(&["alice@example.org", "bob@example.org"])
    );
    assert_eq!(
        verdict("postmaster@example.org"),
        local(&["alice@example.org"])
    );
    assert_eq!(
        verdict("bob+lists@example.org"),
        local(&["bob@example.org"])
    );
    assert_eq!(verdict("carol@example.org"), RcptVerdict::UnknownUser);
    assert_eq!(verdict("loop@example.org"), RcptVerdict::UnknownUser);
    assert_eq!(verdict("x@elsewhere.net"), RcptVerdict::RelayDenied);
    assert_eq!(
        verdict("fwd@example.org"),
        RcptVerdict::Forward {
            mailboxes: vec!["alice@example.org".into()],
            remote: vec![Address::parse("carol@elsewhere.net").unwrap()],
        }
    );
}

#[test]
fn domain_alias_is_local_and_maps_to_its_domain() {
    let d = dir();
    assert!(d.is_local_domain("example.net"));
    assert!(d.is_local_domain("EXAMPLE.NET."));
    assert_eq!(verdict("Bob@example.net"), local(&["bob@example.org"]));
    assert_eq!(verdict("bob+x@example.net"), local(&["bob@example.org"]));
    // Aliases and the bare postmaster alias work through it too.
    assert_eq!(
        verdict("team@example.net"),
        local(&["alice@example.org", "bob@example.org"])
    );
    assert_eq!(
        verdict("postmaster@example.net"),
        local(&["alice@example.org"])
    );
    // An exact alias in the alias domain wins over the rewrite.
    assert_eq!(verdict("sales@example.net"), local(&["alice@example.org"]));
    assert_eq!(verdict("sales@example.org"), RcptVerdict::UnknownUser);
    assert_eq!(verdict("nobody@example.net"), RcptVerdict::UnknownUser);
    // An alias target in the alias domain is local, not forwarded.
    assert_eq!(verdict("half@example.org"), local(&["bob@example.org"]));
}

#[test]
fn disabled_accounts_receive_nothing() {
    assert_eq!(verdict("dis@example.org"), RcptVerdict::Disabled);
    assert_eq!(verdict("DIS+tag@example.org"), RcptVerdict::Disabled);
    assert_eq!(verdict("dis@example.net"), RcptVerdict::Disabled);
    // An alias reaching only a disabled account is disabled too; one that also reaches
    // someone else delivers to the rest.
    assert_eq!(verdict("gone@example.org"), RcptVerdict::Disabled);
    assert_eq!(verdict("half@example.org"), local(&["bob@example.org"]));
    // The mailbox still exists for the store.
    assert!(dir().accounts().any(|a| a == "dis@example.org"));
    assert!(dir().is_disabled("dis@example.org"));
}

#[test]
fn catch_all_takes_only_the_unknown() {
    let d = with_catch_all("bob@example.org").unwrap();
    let v = |s: &str| d.resolve(&Address::parse(s).unwrap());
    assert_eq!(v("whoever@example.org"), local(&["bob@example.org"]));
    assert_eq!(v("whoever+x@example.net"), local(&["bob@example.org"]));
    // Accounts and aliases win; a disabled account stays disabled.
    assert_eq!(v("alice@example.org"), local(&["alice@example.org"]));
    assert_eq!(
        v("team@example.org"),
        local(&["alice@example.org", "bob@example.org"])
    );
    assert_eq!(v("dis@example.org"), RcptVerdict::Disabled);
    assert_eq!(v("gone@example.org"), RcptVerdict::Disabled);
    // An alias whose targets are all gone is not caught either.
    assert_eq!(v("loop@example.org"), RcptVerdict::UnknownUser);
    // Relay tricks in a local domain stay local: the catch-all gets them.
    for trick in [
        "a%b@example.org",
        "other!user@example.org",
        "x@evil.test@example.org",
    ] {
        assert_eq!(v(trick), local(&["bob@example.org"]), "{trick}");
    }
    assert_eq!(v("x@elsewhere.net"), RcptVerdict::RelayDenied);
    // A remote catch-all forwards.
    let d = with_catch_all("sink@elsewhere.net").unwrap();
    assert_eq!(
        d.resolve(&Address::parse("who@example.org").unwrap()),
        RcptVerdict::Forward {
            mailboxes: vec![],
            remote: vec![Address::parse("sink@elsewhere.net").unwrap()],
        }
    );
}

#[test]
fn quoted_local_parts_split_at_the_last_at() {
    // smtp-proto hands us `"alice+x@evil.test"@example.org` dequoted.
    assert_eq!(
        verdict("alice+x@evil.test@example.org"),
        local(&["alice@example.org"]),
        "a tag of alice's, in our domain"
    );
    assert_eq!(
        verdict("bob@elsewhere.net@example.org"),
        RcptVerdict::UnknownUser
    );
    assert_eq!(
        verdict("a%elsewhere.net@example.org"),
        RcptVerdict::UnknownUser
    );
    assert_eq!(
        verdict("elsewhere.net!a@example.org"),
        RcptVerdict::UnknownUser
    );
}

#[test]
fn bad_targets_are_errors() {
    let base = || Directory::build(&["example.org".into()], accounts(), &aliases()).unwrap();
    assert_eq!(
        base()
            .with_domain_aliases(&map(&[("example.net", "elsewhere.net".to_string())]))
            .unwrap_err(),
        DirectoryError::AliasTargetNotLocal("example.net".into(), "elsewhere.net".into())
    );
    assert_eq!(
        base()
            .with_domain_aliases(&map(&[("example.org", "example.org".to_string())]))
            .unwrap_err(),
        DirectoryError::AliasDomainIsLocal("example.org".into())
    );
    for nowhere in ["nobody@example.org", "dis@example.org", "gone@example.net"] {
        assert_eq!(
            with_catch_all(nowhere).unwrap_err(),
            DirectoryError::CatchAllToNowhere("example.org".into(), nowhere.into())
        );
    }
    assert!(matches!(
        with_catch_all("not an address"),
        Err(DirectoryError::BadAddress(..))
    ));
    assert_eq!(
        dir()
            .with_catch_all(&map(&[("example.net", "bob@example.org".to_string())]))
            .unwrap_err(),
        DirectoryError::CatchAllNotLocal("example.net".into())
    );
    let bad = ["*@".to_string()];
    let entry = AccountEntry {
        address: "carol@example.org",
        disabled: false,
        send_as: &bad,
    };
    assert!(matches!(
        Directory::build(&["example.org".into()], [entry], &BTreeMap::new()),
        Err(DirectoryError::BadSendAs(..))
    ));
}

#[test]
fn rejects_foreign_and_duplicate_accounts() {
    let domains = ["example.org".to_string()];
    assert!(matches!(
        Directory::build(&domains, ["a@other.net"], &BTreeMap::new()),
        Err(DirectoryError::ForeignAccount(..))
    ));
    assert!(matches!(
        Directory::build(
            &domains,
            ["a@example.org", "A@example.org"],
            &BTreeMap::new()
        ),
        Err(DirectoryError::DuplicateAccount(..))
    ));
}

#[test]
fn senders_an_account_owns() {
    let send_as = ["Boss@Example.org".to_string(), "*@partner.test".to_string()];
    let accounts = [
        AccountEntry {
            address: "alice@example.org",
            disabled: false,
            send_as: &send_as,
        },
        "bob@example.org".into(),
    ];
    let d = Directory::build(&["example.org".into()], accounts, &aliases())
        .unwrap()
        .with_domain_aliases(&map(&[("example.net", "example.org".to_string())]))
        .unwrap()
        .with_catch_all(&map(&[("example.org", "alice@example.org".to_string())]))
        .unwrap();
    let may = |id: &str, s: &str| d.may_send_as(id, &Address::parse(s).unwrap());
    for own in [
        "alice@example.org",
        "ALICE@example.org",
        "alice+news@example.org",
        "alice@example.net",
        "team@example.org",
        "postmaster@example.org",
        "fwd@example.org",
        "sales@example.net",
        "boss@example.org",
        "anyone@partner.test",
    ] {
        assert!(may("alice@example.org", own), "{own}");
    }
    for foreign in [
        "bob@example.org",
        "bob+x@example.org",
        "bob@example.net",
        // The catch-all reaches alice, but does not make her every unknown address.
        "nobody@example.org",
        "alice@elsewhere.net",
        "alice@partner.test.evil",
        "boss@example.net.evil",
    ] {
        assert!(!may("alice@example.org", foreign), "{foreign}");
    }
    assert!(may("bob@example.org", "team@example.org"));
    assert!(!may("bob@example.org", "boss@example.org"));
    assert!(!may("bob@example.org", "anyone@partner.test"));
}
