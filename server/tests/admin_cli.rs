//! `mailsim-server admin`, run as the operator runs it: each edit changes only its part of a
//! commented config, each bad input exits 2 with a clear message and leaves the file
//! byte-identical, `passwd` stores only a hash that argon2 verifies, and `dkim-keygen`'s
//! key is the one `dns` publishes.

// The test drives the binary on real files in its own temp folder.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use argon2::password_hash::{PasswordHash, PasswordVerifier};

const CONFIG: &str = r#"# Our server. This comment must survive every edit.
hostname = "mx.example.org"
domains = ["example.org"]   # ours
accounts = [
  "alice@example.org",  # Alice
  "bob@example.org",
]

# Cheap hashes: a test, not a server.
[auth.argon2]
m_cost = 64
t_cost = 1
p_cost = 1

[aliases]
postmaster = ["alice@example.org"]   # every local domain

[listen]
smtp = "192.0.2.1:25"   # a documentation address
"#;

/// A fresh folder with the config in it.
fn setup(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("admin-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mail.toml"), CONFIG).unwrap();
    dir
}

fn admin(dir: &Path, args: &[&str]) -> Output {
    admin_stdin(dir, args, "")
}

fn admin_stdin(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailsim-server"))
        .arg("admin")
        .arg("--config")
        .arg(dir.join("mail.toml"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = admin(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("mail.toml")).unwrap()
}

#[test]
fn each_edit_changes_only_its_part_and_comments_survive() {
    let dir = setup("edits");
    ok(&dir, &["domain", "add", "example.net"]);
    assert_eq!(
        text(&dir),
        CONFIG.replace(
            r#"domains = ["example.org"]"#,
            r#"domains = ["example.org", "example.net"]"#
        )
    );
    ok(&dir, &["account", "add", "carol@example.net"]);
    ok(
        &dir,
        &[
            "alias",
            "add",
            "team@example.org",
            "alice@example.org",
            "bob@example.org",
        ],
    );
    let after = text(&dir);
    let expected = CONFIG
        .replace(
            r#"domains = ["example.org"]"#,
            r#"domains = ["example.org", "example.net"]"#,
        )
        .replace(
            "  \"bob@example.org\",\n",
            "  \"bob@example.org\",\n  \"carol@example.net\",\n",
        )
        .replace(
            "# every local domain\n",
            "# every local domain\n\"team@example.org\" = [\"alice@example.org\", \"bob@example.org\"]\n",
        );
    assert_eq!(after, expected);

    // A setting turns that one account into a table, in place, its comment kept.
    ok(&dir, &["disable", "alice@example.org"]);
    assert!(
        text(&dir).contains("  { address = \"alice@example.org\", disabled = true },  # Alice\n"),
        "{}",
        text(&dir)
    );
    ok(&dir, &["enable", "alice@example.org"]);
    assert!(!text(&dir).contains("disabled"), "{}", text(&dir));
    let list = ok(&dir, &["account", "list"]);
    assert!(list.contains("carol@example.net (no password)"), "{list}");

    ok(
        &dir,
        &[
            "account",
            "add",
            "dora@example.org",
            "--quota-bytes",
            "1000",
            "--quota-messages",
            "10",
        ],
    );
    assert!(text(&dir).contains(
        "  { address = \"dora@example.org\", quota_bytes = 1000, quota_messages = 10 },\n"
    ));

    ok(
        &dir,
        &[
            "list",
            "add",
            "staff@example.org",
            "--policy",
            "members",
            "--owner",
            "alice@example.org",
        ],
    );
    ok(
        &dir,
        &[
            "list",
            "member",
            "add",
            "staff@example.org",
            "bob@example.org",
        ],
    );
    ok(
        &dir,
        &[
            "list",
            "member",
            "add",
            "staff@example.org",
            "friend@elsewhere.test",
        ],
    );
    ok(
        &dir,
        &[
            "list",
            "member",
            "remove",
            "staff@example.org",
            "bob@example.org",
        ],
    );
    let show = ok(&dir, &["list", "show", "staff@example.org"]);
    assert!(show.contains("policy: members"), "{show}");
    assert!(
        show.contains("members: 1\n  friend@elsewhere.test\n"),
        "{show}"
    );
    assert!(text(&dir).ends_with(
        "\n[[lists]]\naddress = \"staff@example.org\"\nmembers = [\"friend@elsewhere.test\"]\npolicy = \"members\"\nowner = \"alice@example.org\"\n"
    ), "{}", text(&dir));

    // Undo everything: the file is the original again, byte for byte.
    ok(&dir, &["list", "remove", "staff@example.org"]);
    ok(&dir, &["account", "remove", "dora@example.org"]);
    ok(&dir, &["account", "remove", "carol@example.net"]);
    ok(&dir, &["alias", "remove", "team@example.org"]);
    ok(&dir, &["domain", "remove", "example.net"]);
    let back = text(&dir);
    // Alice became a table and, with her last setting gone, a plain string again.
    assert_eq!(back, CONFIG);
    assert_eq!(ok(&dir, &["domain", "list"]), "example.org\n");
    assert_eq!(
        ok(&dir, &["alias", "list"]),
        "postmaster -> alice@example.org\n"
    );
}

#[test]
fn bad_input_exits_2_with_a_clear_message_and_leaves_the_file_alone() {
    let dir = setup("bad");
    let cases: &[(&[&str], &str)] = &[
        (
            &["account", "add", "dave@nowhere.test"],
            "is not in a local domain",
        ),
        (
            &["account", "add", "bob@example.org"],
            "account bob@example.org exists",
        ),
        (&["account", "add", "no-at-sign"], "invalid address"),
        (
            &["account", "remove", "zed@example.org"],
            "no account zed@example.org",
        ),
        (&["domain", "add", "example.org"], "already configured"),
        (&["domain", "add", "bad domain"], "invalid domain"),
        (
            &["domain", "remove", "example.org"],
            "is not in a local domain",
        ),
        (
            &["alias", "add", "x@example.org", "not an address"],
            "invalid address",
        ),
        (&["alias", "remove", "nobody@example.org"], "no alias"),
        (
            &["disable", "zed@example.org"],
            "no account zed@example.org",
        ),
        (&["passwd", "zed@example.org"], "no account zed@example.org"),
        (&["list", "show", "nolist@example.org"], "no list"),
        (
            &["list", "member", "add", "nolist@example.org", "a@b.test"],
            "no list",
        ),
        (
            &["dkim-keygen", "example.net", "s1"],
            "not one of our domains",
        ),
        (
            &["dkim-keygen", "example.org", "bad selector"],
            "invalid selector",
        ),
        (
            &["dkim-keygen", "example.org", "s1", "--bits", "1024"],
            "2048 to 4096",
        ),
        (&["dns", "example.net"], "not one of our domains"),
        (
            &["check", "example.org", "--scenario", "x.toml"],
            "needs the simulator",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, message) in cases {
        let out = admin(&dir, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(text(&dir), CONFIG, "{args:?} changed the file");
    }
    // The parser's errors keep their place in the (would-be) file.
    let err =
        String::from_utf8(admin(&dir, &["account", "add", "dave@nowhere.test"]).stderr).unwrap();
    assert!(err.contains("mail.toml:7:"), "{err}");
    // A list loop is refused when the member that closes it is added.
    ok(&dir, &["list", "add", "a@example.org"]);
    ok(&dir, &["list", "add", "b@example.org"]);
    ok(
        &dir,
        &["list", "member", "add", "a@example.org", "b@example.org"],
    );
    let before = text(&dir);
    let out = admin(
        &dir,
        &["list", "member", "add", "b@example.org", "a@example.org"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("list loop: "));
    assert_eq!(text(&dir), before);
    // Without --config there is nothing to edit.
    let out = Command::new(env!("CARGO_BIN_EXE_mailsim-server"))
        .args(["admin", "domain", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config FILE is required"));
    // No temp file is left behind by any of it.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["mail.toml"]);
}

#[test]
fn passwd_from_stdin_stores_only_an_argon2id_hash_that_verifies() {
    let dir = setup("passwd");
    let out = admin_stdin(&dir, &["passwd", "bob@example.org"], "correct horse\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = text(&dir);
    assert!(!t.contains("correct horse"), "{t}");
    let line = t.lines().find(|l| l.contains("bob@example.org")).unwrap();
    let phc = line.split('"').nth(3).unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{line}");
    let hash = PasswordHash::new(phc).unwrap();
    assert!(argon2::Argon2::default()
        .verify_password(b"correct horse", &hash)
        .is_ok());
    assert!(argon2::Argon2::default()
        .verify_password(b"correct horse\n", &hash)
        .is_err());
    // The rest of the file is untouched.
    assert_eq!(
        t.replace(
            &format!("{{ address = \"bob@example.org\", password = \"{phc}\" }}"),
            "\"bob@example.org\""
        ),
        CONFIG
    );
    // An empty password is refused.
    let out = admin_stdin(&dir, &["passwd", "alice@example.org"], "\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty password"));
    assert_eq!(text(&dir), t);
}

/// The p= of the `_domainkey` line of some output.
fn published_key(out: &str, selector: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{selector}._domainkey.example.org. ")))
        .unwrap_or_else(|| panic!("no {selector} record in {out}"));
    let joined: String = line.split('"').skip(1).step_by(2).collect();
    joined.split("p=").nth(1).unwrap().to_string()
}

#[test]
fn dkim_keygen_writes_a_private_key_and_dns_publishes_its_public_half() {
    let dir = setup("dkim");
    let made = ok(
        &dir,
        &[
            "dkim-keygen",
            "example.org",
            "ed1",
            "--algorithm",
            "ed25519",
        ],
    );
    let made_rsa = ok(&dir, &["dkim-keygen", "example.org", "rsa1"]);
    let key = dir.join("dkim-ed1.example.org.pem");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(text(&dir).ends_with(
        "\n[[dkim]]\ndomain = \"example.org\"\nselector = \"ed1\"\nalgorithm = \"ed25519-sha256\"\nkey = \"dkim-ed1.example.org.pem\"\n\n[[dkim]]\ndomain = \"example.org\"\nselector = \"rsa1\"\nalgorithm = \"rsa-sha256\"\nkey = \"dkim-rsa1.example.org.pem\"\n"
    ), "{}", text(&dir));
    let dns = ok(&dir, &["dns", "example.org"]);
    assert_eq!(published_key(&dns, "ed1"), published_key(&made, "ed1"));
    assert_eq!(
        published_key(&dns, "rsa1"),
        published_key(&made_rsa, "rsa1")
    );
    assert!(dns.contains("v=DKIM1; k=ed25519; p="), "{dns}");
    assert!(dns.contains("\"v=DKIM1; k=rsa; p=MII"), "{dns}");
    for line in [
        "example.org. 3600 IN MX 10 mx.example.org.",
        "mx.example.org. 3600 IN A 192.0.2.1",
        "example.org. 3600 IN TXT \"v=spf1 mx a ip4:192.0.2.1 -all\"",
        "_dmarc.example.org. 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org\"",
        "1.2.0.192.in-addr.arpa. 3600 IN PTR mx.example.org.",
    ] {
        assert!(dns.lines().any(|l| l == line), "{line} not in\n{dns}");
    }
    // The same selector twice is refused and the existing key is kept.
    let before = text(&dir);
    let out = admin(
        &dir,
        &[
            "dkim-keygen",
            "example.org",
            "ed1",
            "--algorithm",
            "ed25519",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), pem);
    assert_eq!(text(&dir), before);
}

#[test]
fn quota_reads_the_mailbox_folders() {
    let dir = setup("quota");
    ok(
        &dir,
        &[
            "account",
            "add",
            "carol@example.org",
            "--quota-bytes",
            "100",
            "--quota-messages",
            "4",
        ],
    );
    let new = dir.join("data/mail/carol@example.org/new");
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(new.join("1"), vec![b'x'; 60]).unwrap();
    std::fs::write(new.join("2"), vec![b'x'; 35]).unwrap();
    std::fs::write(new.join(".tmp-3"), vec![b'x'; 500]).unwrap();
    let data = dir.join("data");
    let out = ok(&dir, &["quota", "--data-dir", data.to_str().unwrap()]);
    let carol = out.lines().find(|l| l.starts_with("carol@")).unwrap();
    assert!(carol.contains("95/100 (95%)"), "{out}");
    assert!(carol.contains("2/4 (50%)"), "{out}");
    let alice = out.lines().find(|l| l.starts_with("alice@")).unwrap();
    assert!(alice.contains("0/unlimited"), "{out}");
}
