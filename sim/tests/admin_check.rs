//! `mailsim admin check --scenario`: the records come from a scenario's zones (no network),
//! so the "why can't I send" report is testable: a correct zone is all ok (exit 0), a wrong
//! SPF is reported wrong with the record that fixes it (exit 1), and with --data-dir an
//! account near its quota is a problem too.

// The test drives the binary on real files.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output};

fn check(scenario: &str, extra: &[&str]) -> (Output, String) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/admin")
        .join(scenario);
    let out = Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .args(["admin", "check", "example.org", "--scenario"])
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

#[test]
fn a_correct_zone_is_all_ok() {
    let (out, text) = check("dns-correct.toml", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "ok      MX     example.org MX 10 mx.example.org",
        "ok      SPF    192.0.2.1 passes (mx in example.org)",
        "ok      DKIM   s1._domainkey.example.org matches the configured ed25519 key",
        "ok      DMARC  v=DMARC1; p=quarantine",
        "ok      PTR    192.0.2.1 -> mx.example.org -> 192.0.2.1",
        "6 checks, all ok",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(want)),
            "{want:?} not in\n{text}"
        );
    }
}

#[test]
fn a_wrong_spf_is_reported_with_its_fix() {
    let (out, text) = check("dns-wrong-spf.toml", &[]);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "wrong   SPF    192.0.2.1 is not covered (-all in example.org)\n        fix:   example.org. 3600 IN TXT \"v=spf1 mx a ip4:192.0.2.1 -all\"\n"
        ),
        "{text}"
    );
    assert!(text.contains("6 checks, 1 problem(s)"), "{text}");
}

#[test]
fn an_account_near_its_quota_is_a_problem() {
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-check-quota");
    let _ = std::fs::remove_dir_all(&data);
    let new = data.join("mail/alice@example.org/new");
    std::fs::create_dir_all(&new).unwrap();
    for i in 0..9 {
        std::fs::write(new.join(i.to_string()), b"x").unwrap();
    }
    // The fixture's [quota] is absent: give alice 10 messages through a config of our own.
    let (out, text) = check("dns-correct.toml", &["--data-dir", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ok      QUOTA  no account at 90% of its quota or more"),
        "{text}"
    );

    let scenario = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/admin/dns-correct.toml"),
    )
    .unwrap()
    .replace(
        "[server.listen]",
        "[server.quota]\ndefault_messages = 10\n\n[server.listen]",
    );
    let file = data.join("quota.toml");
    std::fs::write(&file, scenario).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .args(["admin", "check", "example.org", "--scenario"])
        .arg(&file)
        .args(["--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("wrong   QUOTA  alice@example.org near quota: 90% (9 octets, 9 messages)"),
        "{text}"
    );
}

#[test]
fn a_broken_scenario_is_a_usage_error() {
    let (out, _) = check("no-such-file.toml", &[]);
    assert_eq!(out.status.code(), Some(2));
}
