//! The shrinker (issue #12 item 4) on the planted durability bug: a 50-message, 5-actor
//! crash campaign that loses acknowledged mail under a seed shrinks to a file of a handful
//! of steps that still loses it, whatever `-j`; a seed the campaign passes under is said to
//! pass.

use std::path::{Path, PathBuf};

use mailsim::runner;
use mailsim::scenario;
use mailsim::shrink::{self, Options, ShrinkError};

fn campaign() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/faults/crash-campaign-50.toml")
}

/// The campaign with the planted bug on, written to its own file (scenario files are the
/// runner's input, on the real disk).
#[allow(clippy::disallowed_methods)]
fn planted(tag: &str) -> PathBuf {
    let text = std::fs::read_to_string(campaign()).unwrap();
    let planted = text.replacen(
        "[server.aliases]",
        "[server.planted_bugs]\nskip_mailbox_dir_sync = true\n\n[server.aliases]",
        1,
    );
    assert_ne!(planted, text);
    let dir = std::env::temp_dir().join(format!("mailsim-shrink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("planted-{tag}.toml"));
    std::fs::write(&path, planted).unwrap();
    path
}

/// The lowest seed in 1..=30 under which the planted campaign fails.
fn failing_seed(path: &Path) -> u64 {
    let files = vec![(path.to_path_buf(), "planted".to_string())];
    let sweep = runner::run_sweep(&files, 1..=30, 2, false, &|_, _| {});
    sweep
        .failures
        .first()
        .expect("the planted bug is found")
        .seed
}

fn steps(loaded: &scenario::LoadedScenario) -> usize {
    loaded.scenario.actor.iter().map(|a| a.steps.len()).sum()
}

#[test]
#[allow(clippy::disallowed_methods)]
fn the_planted_campaign_shrinks_to_a_handful_of_steps() {
    let path = planted("shrink");
    let seed = failing_seed(&path);
    let original = scenario::load(&path, "planted".into()).unwrap();
    assert_eq!(original.scenario.actor.len(), 5);
    assert_eq!(steps(&original), 5 * 22);

    let opts = |threads| Options {
        seed,
        threads,
        max_runs: 5000,
    };
    let mut lines = Vec::new();
    let shrunk = shrink::shrink(&path, "planted", &opts(2), &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap_or_else(|_| panic!("seed {seed} fails, so it shrinks"));
    eprintln!(
        "seed {seed}: {} edits in {} runs:\n{}\n{}",
        lines.len(),
        shrunk.runs,
        lines.join("\n"),
        shrunk.source
    );
    assert!(!shrunk.exhausted, "a fixpoint within the run budget");
    assert_eq!(lines, shrunk.removed);
    assert!(
        lines.iter().any(|l| l.starts_with("removed actor[")),
        "{lines:#?}"
    );
    assert!(
        shrunk.signature.primary.contains("invariant"),
        "{:?}",
        shrunk.signature
    );

    // The shrunk file, run on its own as a user would replay it, still loses mail.
    let out = path.with_file_name("planted.shrunk.toml");
    std::fs::write(&out, &shrunk.source).unwrap();
    let small = scenario::load(&out, "shrunk".into()).unwrap();
    assert_eq!(small.scenario.world.seed, seed, "the seed is in the file");
    assert!(small.scenario.actor.len() <= 1, "{}", shrunk.source);
    // The crash is what loses the mail: it stays, at the instant seed picked first.
    assert_eq!(small.scenario.fault.len(), 1, "{}", shrunk.source);
    assert!(
        lines[0].contains(&format!("(the value seed {seed} picks)")),
        "{lines:#?}"
    );
    // EHLO, one MAIL..DATA pipeline, its message: a handful of steps, not 110.
    assert!(steps(&small) <= 4, "{}", shrunk.source);
    let replay = runner::run_file(&out, "shrunk", None);
    assert!(!replay.passed());
    let report = replay.failure_report();
    assert!(
        report.contains("acknowledged mail was lost"),
        "the same failure, not another:\n{report}"
    );

    // -j changes how many candidates run at once, never which one is taken.
    let one = shrink::shrink(&path, "planted", &opts(1), &mut |_| {})
        .ok()
        .unwrap();
    assert_eq!(one.source, shrunk.source);
    assert_eq!(one.removed, shrunk.removed);
}

#[test]
fn a_seed_that_passes_is_reported_as_passing() {
    let opts = Options {
        seed: 1,
        threads: 2,
        max_runs: 10,
    };
    match shrink::shrink(&campaign(), "campaign", &opts, &mut |_| {}) {
        Err(ShrinkError::Passes(o)) => assert!(o.passed()),
        Err(ShrinkError::Load(e)) => panic!("{e}"),
        _ => panic!("the real server passes the campaign, so there is nothing to shrink"),
    }
}

/// The command says so and exits 2 when there is nothing to shrink, and writes nothing.
#[test]
fn the_command_refuses_a_passing_seed() {
    let out = path_in_temp("never-written.toml");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .args(["shrink", "--seed", "1", "-o"])
        .arg(&out)
        .arg(campaign())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("passes under seed 1: nothing to shrink"),
        "{stdout}"
    );
    assert!(!out.exists());
}

fn path_in_temp(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("mailsim-shrink-{}", std::process::id()))
        .join(name)
}
