//! Runs scenario files and reports: one line per scenario, a closing `N passed, M failed`,
//! and for each failure the expectation, a trace excerpt and the command that replays it.

pub mod junit;
mod sweep;

pub use sweep::{parse_seeds, run_sweep, PassedRun, Sweep};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::{self, Failure};
use crate::scenario::{self, LoadedScenario, ScenarioError};
use crate::world;

/// Lines of trace shown before and after the line a failure is about.
const EXCERPT_CONTEXT: usize = 6;

/// The result of one scenario run.
pub struct Outcome {
    pub name: String,
    pub path: PathBuf,
    pub seed: u64,
    pub sim_elapsed: Duration,
    pub wall: Duration,
    pub steps: u64,
    pub failures: Vec<Failure>,
    /// The scenario could not be loaded.
    pub load_error: Option<ScenarioError>,
    pub trace: String,
    trace_lines: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.load_error.is_none() && self.failures.is_empty()
    }

    /// `PASS inbound/local-delivery  seed=1  sim=0.021s  wall=4ms`
    pub fn summary_line(&self) -> String {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        format!(
            "{verdict}  {:<40} seed={:<6} sim={:<12} wall={}",
            self.name,
            self.seed,
            fmt_sim(self.sim_elapsed),
            fmt_wall(self.wall)
        )
    }

    /// The details printed under a failed scenario.
    pub fn failure_report(&self) -> String {
        let mut out = String::new();
        if let Some(e) = &self.load_error {
            let _ = writeln!(out, "  error: {e}");
            return out;
        }
        for f in &self.failures {
            let _ = writeln!(out, "  expected: {}", f.expectation);
            let _ = writeln!(out, "  found:    {}", f.found);
            if let Some(line) = f.trace_line {
                let lo = line.saturating_sub(EXCERPT_CONTEXT);
                let hi = (line + EXCERPT_CONTEXT + 1).min(self.trace_lines.len());
                let _ = writeln!(out, "  trace (lines {}-{}):", lo + 1, hi);
                for (i, l) in self.trace_lines[lo..hi].iter().enumerate() {
                    let mark = if lo + i == line { ">" } else { " " };
                    let _ = writeln!(out, "   {mark} {l}");
                }
            }
        }
        let _ = writeln!(out, "  replay:   {}", self.replay_command());
        out
    }

    pub fn replay_command(&self) -> String {
        format!(
            "cargo run --release -- run {} --seed {}",
            self.path.display(),
            self.seed
        )
    }
}

fn fmt_sim(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 86_400.0 {
        format!("{:.2}d", s / 86_400.0)
    } else if s >= 3600.0 {
        format!("{:.2}h", s / 3600.0)
    } else {
        format!("{s:.3}s")
    }
}

fn fmt_wall(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Finds scenario files: files as given, folders searched recursively for `*.toml`, sorted.
/// Names are relative to the folder given (or the file stem for a file).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found).map_err(|e| format!("{}: {e}", p.display()))?;
            found.sort();
            for f in found {
                let rel = f.strip_prefix(p).unwrap_or(&f).with_extension("");
                out.push((f.clone(), rel.to_string_lossy().into_owned()));
            }
        } else if p.is_file() {
            let name = p.with_extension("");
            let name = name
                .iter()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<PathBuf>();
            out.push((p.clone(), name.to_string_lossy().into_owned()));
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

// Finding scenario files on the real disk (the runner's input, not a host's files).
#[allow(clippy::disallowed_methods)]
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads and runs one scenario file. `seed` overrides the file's `world.seed`.
pub fn run_file(path: &Path, name: &str, seed: Option<u64>) -> Outcome {
    match scenario::load(path, name.to_string()) {
        Ok(loaded) => run_loaded(&loaded, seed),
        Err(e) => Outcome {
            name: name.to_string(),
            path: path.to_path_buf(),
            seed: seed.unwrap_or(0),
            sim_elapsed: Duration::ZERO,
            wall: Duration::ZERO,
            steps: 0,
            failures: Vec::new(),
            load_error: Some(e),
            trace: String::new(),
            trace_lines: Vec::new(),
        },
    }
}

/// Runs a loaded scenario.
pub fn run_loaded(loaded: &LoadedScenario, seed: Option<u64>) -> Outcome {
    let seed = seed.unwrap_or(loaded.scenario.world.seed);
    let result = world::run(loaded, seed);
    let mut failures = check::check(loaded, &result);
    failures.extend(crate::invariants::check(loaded, &result));
    let trace_lines = result.trace.lines();
    Outcome {
        name: loaded.name.clone(),
        path: loaded.path.clone(),
        seed,
        sim_elapsed: result.sim_elapsed,
        wall: result.wall,
        steps: result.steps,
        failures,
        load_error: None,
        trace: result.trace.to_text(),
        trace_lines,
    }
}

/// Runs many files on `threads` threads (each world is single-threaded and independent, so
/// parallelism cannot change any trace); results come back in input order.
pub fn run_all(files: &[(PathBuf, String)], seed: Option<u64>, threads: usize) -> Vec<Outcome> {
    run_all_with(files, seed, threads, &|_, _| {})
}

/// [`run_all`], calling `progress(done, total)` after each scenario (from the workers).
pub fn run_all_with(
    files: &[(PathBuf, String)],
    seed: Option<u64>,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Vec<Outcome> {
    let done = std::sync::atomic::AtomicU64::new(0);
    let total = files.len() as u64;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Outcome>>> =
        std::sync::Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(files.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((path, name)) = files.get(i) else {
                    break;
                };
                let outcome = run_file(path, name, seed);
                results.lock().unwrap()[i] = Some(outcome);
                progress(
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    total,
                );
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|o| o.expect("every file ran"))
        .collect()
}
