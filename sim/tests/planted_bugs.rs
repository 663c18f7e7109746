//! The simulator finds real bugs (issue #12 items 2-5): a seed sweep of the crash campaign
//! passes on the real server, and fails — with the no-loss invariant, not a scenario
//! expectation — once a durability bug is planted in it (the mailbox store skips its
//! directory fsync, `mailsim_server::planted`). And a sweep's per-seed results and traces
//! do not depend on how many threads ran it.

use std::path::{Path, PathBuf};

use mailsim::runner::{self, Sweep};
use mailsim::scenario;

fn campaign() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/faults/crash-campaign-50.toml")
}

/// The campaign with the planted bug switched on, as a scenario file of its own (on the
/// real disk: scenario files are the runner's input, read before any world exists).
#[allow(clippy::disallowed_methods)]
fn planted() -> PathBuf {
    let text = std::fs::read_to_string(campaign()).unwrap();
    let planted = text.replacen(
        "[server.aliases]",
        "[server.planted_bugs]\nskip_mailbox_dir_sync = true\n\n[server.aliases]",
        1,
    );
    assert_ne!(
        planted, text,
        "the campaign has a [server.aliases] to plant before"
    );
    let dir = std::env::temp_dir().join(format!("mailsim-planted-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One file per call: tests run side by side, and one must not read another's half
    // written file.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("planted-{n}.toml"));
    std::fs::write(&path, planted).unwrap();
    // It parses: the key exists in this (test) build only.
    scenario::load(&path, "planted".into()).expect("planted scenario loads");
    path
}

fn sweep(path: &Path, seeds: std::ops::RangeInclusive<u64>, threads: usize) -> Sweep {
    let files = vec![(path.to_path_buf(), "campaign".to_string())];
    runner::run_sweep(&files, seeds, threads, true, &|_, _| {})
}

#[test]
fn the_real_server_loses_nothing_across_the_sweep() {
    let s = sweep(&campaign(), 1..=30, 2);
    let report: Vec<String> = s.failures.iter().map(|o| o.failure_report()).collect();
    assert_eq!(s.failed(), 0, "{}", report.join("\n"));
    assert_eq!(s.passed, 30);
}

#[test]
fn a_planted_durability_bug_is_found_as_lost_mail() {
    let s = sweep(&planted(), 1..=30, 2);
    assert!(
        s.failed() >= 5,
        "the planted bug should lose acknowledged mail under many seeds: {} of 30 failed",
        s.failed()
    );
    for o in &s.failures {
        let report = o.failure_report();
        assert!(
            report.contains("acknowledged mail was lost"),
            "seed {}: failed for another reason:\n{report}",
            o.seed
        );
        assert!(report.contains(&format!("--seed {}", o.seed)), "{report}");
    }
    // The replay command reproduces the failure byte for byte.
    let first = &s.failures[0];
    let loaded = scenario::load(&first.path, "campaign".into()).unwrap();
    let again = runner::run_loaded(&loaded, Some(first.seed));
    assert!(!again.passed());
    assert_eq!(again.trace, first.trace);
}

#[test]
fn sweep_results_do_not_depend_on_the_thread_count() {
    let path = planted();
    let one = sweep(&path, 1..=12, 1);
    let two = sweep(&path, 1..=12, 2);
    let seeds = |s: &Sweep| s.failures.iter().map(|o| o.seed).collect::<Vec<_>>();
    assert_eq!(seeds(&one), seeds(&two));
    assert!(
        !one.failures.is_empty(),
        "the comparison needs failures with traces"
    );
    for (a, b) in one.failures.iter().zip(&two.failures) {
        assert_eq!(a.trace, b.trace, "seed {}", a.seed);
    }
    assert_eq!(one.passed, two.passed);
}
