//! `mailsim run --junit FILE` (issue #14 item 2), through the binary as CI runs it: the XML
//! parses, counts one case per scenario (per scenario and seed in a sweep), and a failure
//! carries the violated expectation, the trace excerpt and the replay command.

use std::path::{Path, PathBuf};
use std::process::Command;

use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// A folder with two passing scenarios and one whose extra expectation cannot hold.
#[allow(clippy::disallowed_methods)]
fn fixture(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailsim-junit-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(dir.join("set")).unwrap();
    for name in ["local-delivery", "alias-delivery"] {
        let from = scenarios().join(format!("inbound/{name}.toml"));
        std::fs::copy(from, dir.join(format!("set/{name}.toml"))).unwrap();
    }
    let text = std::fs::read_to_string(scenarios().join("inbound/local-delivery.toml")).unwrap();
    let broken = format!("{text}\n[[expect]]\ntrace_contains = \"a line no trace has\"\n");
    std::fs::write(dir.join("set/wrong-expectation.toml"), broken).unwrap();
    dir
}

#[allow(clippy::disallowed_methods)]
fn run_junit(dir: &Path, extra: &[&str]) -> Report {
    let xml = dir.join("out/report.xml");
    let status = Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .arg("run")
        .arg(dir.join("set"))
        .args(extra)
        .arg("--junit")
        .arg(&xml)
        .env("CI", "1")
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(1), "one scenario fails");
    let text = std::fs::read_to_string(&xml).unwrap();
    Report::deserialize_from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

fn failure_of(report: &Report) -> (&str, &str, &str) {
    let suite = &report.test_suites[0];
    let failed: Vec<_> = suite
        .test_cases
        .iter()
        .filter(|c| !matches!(c.status, TestCaseStatus::Success { .. }))
        .collect();
    assert_eq!(failed.len(), report.failures);
    let TestCaseStatus::NonSuccess {
        kind: NonSuccessKind::Failure,
        message,
        description,
        ..
    } = &failed[0].status
    else {
        panic!("a <failure>: {:?}", failed[0].status);
    };
    (
        failed[0].name.as_str(),
        message.as_ref().map_or("", |m| m.as_str()),
        description.as_ref().map_or("", |d| d.as_str()),
    )
}

#[test]
fn a_run_has_one_case_per_scenario_and_the_failure_explains_itself() {
    let dir = fixture("run");
    let report = run_junit(&dir, &[]);
    assert_eq!(report.tests, 3);
    assert_eq!(report.failures, 1);
    assert_eq!(report.errors, 0);
    let names: Vec<&str> = report.test_suites[0]
        .test_cases
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["alias-delivery", "local-delivery", "wrong-expectation"]
    );
    let (name, message, body) = failure_of(&report);
    assert_eq!(name, "wrong-expectation");
    assert!(message.contains("a line no trace has"), "{message}");
    assert!(
        body.contains("replay:   cargo run --release -- run"),
        "{body}"
    );
    assert!(body.contains("--seed"), "{body}");
}

#[test]
fn a_sweep_has_one_case_per_scenario_and_seed() {
    let dir = fixture("sweep");
    let report = run_junit(&dir, &["--seeds", "1..3", "--keep-going"]);
    assert_eq!(report.tests, 9);
    assert_eq!(report.failures, 3);
    let cases = &report.test_suites[0].test_cases;
    let wrong: Vec<&str> = cases
        .iter()
        .filter(|c| {
            c.classname
                .as_ref()
                .is_some_and(|n| n.as_str().ends_with("wrong-expectation"))
        })
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(wrong, ["seed-1", "seed-2", "seed-3"]);
    let (_, message, body) = failure_of(&report);
    assert!(message.contains("a line no trace has"), "{message}");
    assert!(body.contains("--seed 1"), "{body}");
}
