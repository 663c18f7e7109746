//! One test case per scenario file (libtest-mimic), so `cargo test`, `cargo nextest` and
//! nextest's partitioning see each scenario on its own.
//!
//! Each case runs its scenario twice with the same seed: it passes only if every expectation
//! holds *and* the two traces are byte-identical (determinism is part of the contract).

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};
use mailsim::runner;

fn main() {
    let args = Arguments::from_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = runner::discover(&[root]).expect("scenarios/ is readable");
    assert!(
        files.len() >= 10,
        "expected the bundled scenarios, found {}",
        files.len()
    );
    let trials = files
        .into_iter()
        .map(|(path, name)| {
            Trial::test(
                format!("scenario::{}", name.replace('/', "::")),
                move || {
                    let first = runner::run_file(&path, &name, None);
                    if !first.passed() {
                        return Err(Failed::from(format!(
                            "{}\n{}",
                            first.summary_line(),
                            first.failure_report()
                        )));
                    }
                    let second = runner::run_file(&path, &name, None);
                    if first.trace != second.trace {
                        let diff_at = first
                            .trace
                            .lines()
                            .zip(second.trace.lines())
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        return Err(Failed::from(format!(
                        "same seed, different traces (first difference at line {}):\n  {}\n  {}",
                        diff_at + 1,
                        first.trace.lines().nth(diff_at).unwrap_or(""),
                        second.trace.lines().nth(diff_at).unwrap_or("")
                    )));
                    }
                    Ok(())
                },
            )
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
