//! `mailsim check` (issue #14 item 4): a broken file is reported as `file:line:col:` with
//! its message and fails the command; valid files pass it, and nothing is run.

use std::path::PathBuf;
use std::process::Command;

fn check(files: &[&str]) -> (Option<i32>, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .arg("check")
        .args(files.iter().map(|f| root.join(f)))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_broken_file_fails_with_its_line_and_column() {
    let (code, out) = check(&[
        "../scenarios/inbound/local-delivery.toml",
        "tests/broken/unknown-key.toml",
        "tests/broken/missing-actor.toml",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("unknown-key.toml:2:1: key `sed`: unknown field"),
        "{out}"
    );
    assert!(out.contains("missing-actor.toml:"), "{out}");
    assert!(out.contains("ok    "), "{out}");
    assert!(out.contains("3 files checked, 2 invalid"), "{out}");
    // Checked, not run: no verdict lines.
    assert!(!out.contains("PASS") && !out.contains("FAIL"), "{out}");
}

#[test]
fn the_bundled_scenarios_are_valid() {
    let (code, out) = check(&["../scenarios"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(" 0 invalid"), "{out}");
}
