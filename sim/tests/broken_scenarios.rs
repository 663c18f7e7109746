//! A broken scenario file gives an error naming the file, the line and the key — never a
//! panic, never a silent pass.

use std::path::PathBuf;

use mailsim::scenario;

fn load_err(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/broken")
        .join(file);
    match scenario::load(&path, file.into()) {
        Ok(_) => panic!("{file} loaded although it is broken"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(msg: &str, file: &str, line: usize, key: &str, what: &str) {
    assert!(
        msg.contains(&format!("{file}:{line}:")),
        "no {file}:{line}: in {msg:?}"
    );
    assert!(
        msg.contains(&format!("key `{key}`")),
        "no key `{key}` in {msg:?}"
    );
    assert!(msg.contains(what), "no {what:?} in {msg:?}");
}

#[test]
fn unknown_key() {
    assert_names(
        &load_err("unknown-key.toml"),
        "unknown-key.toml",
        2,
        "sed",
        "unknown field",
    );
}

#[test]
fn bad_address() {
    assert_names(
        &load_err("bad-address.toml"),
        "bad-address.toml",
        8,
        "address",
        "invalid",
    );
}

#[test]
fn expectation_names_a_missing_actor() {
    assert_names(
        &load_err("missing-actor.toml"),
        "missing-actor.toml",
        12,
        "expect[0].actor",
        "no actor named \"ghost\"",
    );
}

#[test]
fn toml_syntax_error() {
    let msg = load_err("syntax.toml");
    assert!(msg.contains("syntax.toml:6:"), "{msg}");
}

#[test]
fn bad_zone_record() {
    assert_names(
        &load_err("bad-zone-record.toml"),
        "bad-zone-record.toml",
        2,
        "dns.zones.\"example.org\".records",
        "999.1.1.1",
    );
}

#[test]
fn step_with_two_actions() {
    assert_names(
        &load_err("two-actions-in-step.toml"),
        "two-actions-in-step.toml",
        11,
        "actor.steps[0]",
        "exactly one of",
    );
}

#[test]
fn account_outside_local_domains() {
    assert_names(
        &load_err("foreign-account.toml"),
        "foreign-account.toml",
        1,
        "server",
        "not in a local domain",
    );
}

#[test]
fn queue_setting_that_cannot_work() {
    let path = PathBuf::from("zero-retry.toml");
    let text = "[server]\nhostname = \"mx.example.org\"\ndomains = [\"example.org\"]\n[server.queue]\nfirst_retry_secs = 0\n\n[[expect]]\ntrace_contains = \"x\"\n".to_string();
    let msg = scenario::parse(&path, "zero-retry".into(), text)
        .unwrap_err()
        .to_string();
    assert_names(
        &msg,
        "zero-retry.toml",
        1,
        "server",
        "queue.first_retry_secs: must be greater than 0",
    );
}

#[test]
fn a_network_fault_names_an_unknown_host() {
    assert_names(
        &load_err("fault-unknown-host.toml"),
        "fault-unknown-host.toml",
        15,
        "fault[0].b",
        "no host named \"ghost\"",
    );
}

#[test]
fn a_fault_window_has_one_end() {
    assert_names(
        &load_err("fault-two-ends.toml"),
        "fault-two-ends.toml",
        15,
        "fault[0]",
        "disk_full: until_secs and for_secs exclude each other",
    );
}

#[test]
fn an_unknown_fault_kind_lists_the_kinds() {
    let msg = load_err("fault-unknown-kind.toml");
    assert!(msg.contains("fault-unknown-kind.toml:"), "{msg}");
    assert!(
        msg.contains("disk_full") && msg.contains("torn_write"),
        "{msg}"
    );
}
