//! `mailsim shrink FILE --seed N [-o OUT] [-j N]`: prints each edit as it is taken, writes
//! the smallest failing file and says how to replay it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mailsim::shrink::{self, Options, ShrinkError};

/// `<stem>.shrunk-seed<N>.toml` beside `file`.
pub fn default_output(file: &Path, seed: u64) -> PathBuf {
    let stem = file
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    file.with_file_name(format!("{stem}.shrunk-seed{seed}.toml"))
}

pub fn main(
    file: &Path,
    seed: u64,
    output: Option<PathBuf>,
    threads: usize,
    max_runs: usize,
) -> ExitCode {
    let name = file.with_extension("").to_string_lossy().into_owned();
    let opts = Options {
        seed,
        threads,
        max_runs,
    };
    // The wall-clock figure of the closing line; it never feeds back into a world.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let mut taken = |label: &str| println!("  {label}");
    println!("shrinking {} under seed {seed}", file.display());
    let shrunk = match shrink::shrink(file, &name, &opts, &mut taken) {
        Ok(s) => s,
        Err(ShrinkError::Load(e)) => {
            eprintln!("mailsim: {e}");
            return ExitCode::from(2);
        }
        Err(ShrinkError::Toml(e)) => {
            eprintln!("mailsim: {}: {e}", file.display());
            return ExitCode::from(2);
        }
        Err(ShrinkError::Passes(o)) => {
            println!("{}", o.summary_line());
            println!(
                "{} passes under seed {seed}: nothing to shrink",
                file.display()
            );
            return ExitCode::from(2);
        }
    };
    let out = output.unwrap_or_else(|| default_output(file, seed));
    // The shrunk scenario is the command's output, written to the real disk.
    #[allow(clippy::disallowed_methods)]
    if let Err(e) = std::fs::write(&out, &shrunk.source) {
        eprintln!("mailsim: writing {}: {e}", out.display());
        return ExitCode::from(2);
    }
    let s = &shrunk.outcome;
    println!(
        "{} edits in {} candidate runs ({:.2}s wall){}",
        shrunk.removed.len(),
        shrunk.runs,
        started.elapsed().as_secs_f64(),
        if shrunk.exhausted {
            " — stopped at --max-runs, not a fixpoint"
        } else {
            ""
        }
    );
    println!("still fails with: {}", shrunk.signature.primary);
    let primary = s
        .failures
        .iter()
        .find(|f| shrink::kind(f) == shrunk.signature.primary);
    if let Some(f) = primary {
        println!("  expected: {}", f.expectation);
        println!("  found:    {}", f.found);
    }
    println!("wrote {}", out.display());
    println!(
        "replay:   cargo run --release -- run {} --seed {seed}",
        out.display()
    );
    ExitCode::SUCCESS
}
