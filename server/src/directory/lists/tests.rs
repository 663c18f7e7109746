use std::collections::BTreeMap;

use super::*;

fn aliases(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|t| t.to_string()).collect()))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

struct Def {
    address: &'static str,
    members: Vec<String>,
    policy: PostPolicy,
    moderators: Vec<String>,
    owner: Option<&'static str>,
}

fn def(address: &'static str, members: &[&str]) -> Def {
    Def {
        address,
        members: strings(members),
        policy: PostPolicy::Anyone,
        moderators: Vec::new(),
        owner: None,
    }
}

fn build(defs: &[Def]) -> Result<Directory, DirectoryError> {
    let dir = Directory::build(
        &["example.org".into()],
        ["alice@example.org", "bob@example.org", "owner@example.org"],
        &aliases(&[
            ("postmaster", &["owner@example.org"]),
            ("fwd@example.org", &["bob@example.org", "x@remote.net"]),
        ]),
    )?;
    dir.with_lists(defs.iter().map(|d| ListDef {
        address: d.address,
        members: &d.members,
        policy: d.policy,
        moderators: &d.moderators,
        owner: d.owner,
        description: "Our team",
    }))
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

#[test]
fn a_list_and_its_helper_addresses_resolve() {
    let dir = build(&[def("team@example.org", &["alice@example.org"])]).unwrap();
    assert_eq!(
        dir.resolve(&addr("Team+x@example.org")),
        RcptVerdict::List("team@example.org".into())
    );
    let owner = RcptVerdict::Local(vec!["owner@example.org".into()]);
    assert_eq!(dir.resolve(&addr("team-bounces@example.org")), owner);
    assert_eq!(dir.resolve(&addr("team-request@example.org")), owner);
    let list = dir.list(&addr("team@example.org")).unwrap();
    assert_eq!(list.bounce_address(), addr("team-bounces@example.org"));
    assert_eq!(
        list.headers(),
        "List-Id: Our team <team.example.org>\r\nList-Post: <mailto:team@example.org>\r\n\
         List-Unsubscribe: <mailto:team-request@example.org?subject=unsubscribe>\r\n"
    );
}

#[test]
fn the_description_cannot_inject_a_header() {
    assert_eq!(phrase("a\r\nBcc: x"), "\"a  Bcc: x\"");
    assert_eq!(phrase("Team \"A\""), "\"Team \\\"A\\\"\"");
    assert_eq!(phrase(""), "");
}

#[test]
fn validation_refuses_bad_lists() {
    let err = |defs: &[Def]| match build(defs) {
        Err(DirectoryError::List(e)) => e,
        other => panic!("expected a list error, got {other:?}"),
    };
    assert!(matches!(
        err(&[def("team@example.org", &["nobody@example.org"])]),
        ListError::UnknownMember { .. }
    ));
    assert!(matches!(
        err(&[def("team@example.org", &["not an address"])]),
        ListError::BadAddress { .. }
    ));
    assert!(matches!(
        err(&[def("alice@example.org", &[])]),
        ListError::Taken(_)
    ));
    assert!(matches!(
        err(&[def("fwd@example.org", &[])]),
        ListError::Taken(_)
    ));
    assert!(matches!(
        err(&[def("team@remote.net", &[])]),
        ListError::NotLocal(_)
    ));
    assert!(matches!(
        err(&[def("t@example.org", &[]), def("t@example.org", &[])]),
        ListError::Taken(_)
    ));
    let mut owned = def("t@example.org", &[]);
    owned.owner = Some("ghost@example.org");
    assert!(matches!(err(&[owned]), ListError::BadOwner { .. }));
    let mut owned = def("t@example.org", &[]);
    owned.owner = Some("u@example.org");
    assert!(matches!(
        err(&[owned, def("u@example.org", &[])]),
        ListError::BadOwner { .. }
    ));
    let mut moderated = def("t@example.org", &[]);
    moderated.moderators = strings(&["@"]);
    assert!(matches!(err(&[moderated]), ListError::BadAddress { .. }));
}

#[test]
fn an_alias_may_not_target_a_list() {
    let dir = Directory::build(
        &["example.org".into()],
        ["alice@example.org"],
        &aliases(&[("all@example.org", &["team@example.org"])]),
    )
    .unwrap();
    let members = strings(&["alice@example.org"]);
    let r = dir.with_lists([ListDef {
        address: "team@example.org",
        members: &members,
        policy: PostPolicy::Anyone,
        moderators: &[],
        owner: None,
        description: "",
    }]);
    assert!(matches!(
        r,
        Err(DirectoryError::List(ListError::AliasTargetsList { .. }))
    ));
}

#[test]
fn posting_policies() {
    let mut members = def("m@example.org", &["alice@example.org", "x@remote.net"]);
    members.policy = PostPolicy::Members;
    members.moderators = strings(&["mod@remote.net"]);
    let mut mods = def("o@example.org", &["alice@example.org"]);
    mods.policy = PostPolicy::Moderators;
    mods.moderators = strings(&["mod@remote.net"]);
    let dir = build(&[members, mods, def("a@example.org", &[])]).unwrap();
    let may = |list: &str, from: Option<&str>| {
        dir.list(&addr(list))
            .unwrap()
            .may_post(from.map(addr).as_ref())
    };
    assert_eq!(may("m@example.org", Some("ALICE+x@example.org")), Ok(()));
    assert_eq!(may("m@example.org", Some("x@Remote.NET")), Ok(()));
    assert_eq!(may("m@example.org", Some("mod@remote.net")), Ok(()));
    assert_eq!(
        may("m@example.org", Some("bob@example.org")),
        Err("members")
    );
    assert_eq!(may("m@example.org", None), Err("members"));
    assert_eq!(
        may("o@example.org", Some("alice@example.org")),
        Err("moderators")
    );
    assert_eq!(may("o@example.org", Some("mod@remote.net")), Ok(()));
    assert_eq!(may("a@example.org", None), Ok(()));
}

fn expand(dir: &Directory, lists: &[&str], message: &[u8], reached: &mut Reached) -> Vec<ListCopy> {
    let keys = strings(lists);
    dir.expand_lists(&keys, Some(&addr("s@c.test")), message, reached)
        .0
}

#[test]
fn nested_lists_that_include_each_other_give_one_copy_each() {
    let dir = build(&[
        def(
            "a@example.org",
            &["alice@example.org", "b@example.org", "fwd@example.org"],
        ),
        def(
            "b@example.org",
            &["bob@example.org", "a@example.org", "x@remote.net"],
        ),
    ])
    .unwrap();
    let mut reached = Reached::default();
    reached.mailboxes.insert("alice@example.org".into());
    let copies = expand(
        &dir,
        &["a@example.org", "b@example.org"],
        b"S: x\r\n\r\n",
        &mut reached,
    );
    assert_eq!(copies.len(), 1, "{copies:?}");
    let c = &copies[0];
    assert_eq!(c.list, addr("a@example.org"));
    assert_eq!(c.sender, Some(addr("a-bounces@example.org")));
    // alice was a direct recipient; bob via b and via fwd; x via b and via fwd: once each.
    assert_eq!(c.mailboxes, vec!["bob@example.org".to_string()]);
    assert_eq!(c.remote, vec![addr("x@remote.net")]);
    assert!(c
        .headers
        .starts_with("List-Id: Our team <a.example.org>\r\n"));
}

#[test]
fn a_message_that_already_went_through_the_list_goes_to_the_owner() {
    let mut owned = def("a@example.org", &["alice@example.org", "b@example.org"]);
    owned.owner = Some("owner@example.org");
    let dir = build(&[owned, def("b@example.org", &["bob@example.org"])]).unwrap();
    let looped = b"Received: x\r\nList-Id: Our team <A.example.org>\r\n\r\nbody\r\n";
    let copies = expand(&dir, &["a@example.org"], looped, &mut Reached::default());
    assert_eq!(
        copies,
        vec![ListCopy {
            list: addr("a@example.org"),
            sender: Some(addr("s@c.test")),
            headers: String::new(),
            mailboxes: vec!["owner@example.org".into()],
            remote: vec![],
        }]
    );
    // Through b, which already delivered it: a's own members only.
    let via_b = b"List-Id: <b.example.org>\r\n\r\nbody\r\n";
    let copies = expand(&dir, &["a@example.org"], via_b, &mut Reached::default());
    assert_eq!(copies[0].mailboxes, vec!["alice@example.org".to_string()]);
    assert_eq!(copies[0].sender, Some(addr("a-bounces@example.org")));
}
