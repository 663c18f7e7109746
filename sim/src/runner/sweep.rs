//! Seed sweeps (issue #12 item 3): every scenario under every seed of a range, on several
//! threads. Each (scenario, seed) pair is one independent world, so the threads cannot
//! change any trace; what they change is only which pairs have run when a failure stops the
//! sweep. The report is made deterministic anyway: failures are listed in (scenario, seed)
//! order, and a stopped sweep reports the lowest failing pair that ran.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::{run_loaded, Outcome};
use crate::scenario::{self, LoadedScenario, ScenarioError};

/// `A..B` or `A..=B` (both ends included: `1..10000` is ten thousand seeds), or one seed.
pub fn parse_seeds(text: &str) -> Result<RangeInclusive<u64>, String> {
    let bad = || format!("--seeds {text:?}: expected a seed (42) or a range (1..10000)");
    let (lo, hi) = match text.split_once("..") {
        None => {
            let n = text.trim().parse().map_err(|_| bad())?;
            (n, n)
        }
        Some((lo, hi)) => {
            let hi = hi.strip_prefix('=').unwrap_or(hi);
            let lo: u64 = lo.trim().parse().map_err(|_| bad())?;
            let hi: u64 = hi.trim().parse().map_err(|_| bad())?;
            (lo, hi)
        }
    };
    if lo > hi {
        return Err(format!("--seeds {text:?}: the range is empty"));
    }
    Ok(lo..=hi)
}

/// How a sweep went.
pub struct Sweep {
    /// Pairs that ran and passed.
    pub passed: u64,
    /// Failed pairs, in (scenario, seed) order, with their traces.
    pub failures: Vec<Outcome>,
    /// Files that could not be loaded (each counts as one failed pair).
    pub load_errors: Vec<(PathBuf, String, ScenarioError)>,
    /// The sweep stopped at a failure before running every pair.
    pub stopped: bool,
    /// Per scenario, in input order: its name, seeds passed, seeds failed.
    pub per_scenario: Vec<(String, u64, u64)>,
    /// Every pair that ran and passed, in (scenario, seed) order (for JUnit's one test case
    /// per pair). Small on purpose: 10 000 seeds of 100 scenarios are a million of them.
    pub passed_runs: Vec<PassedRun>,
}

/// A (scenario, seed) pair that passed; its trace is not kept.
#[derive(Clone, Copy, Debug)]
pub struct PassedRun {
    /// Index into `per_scenario`.
    pub scenario: usize,
    pub seed: u64,
    pub wall: std::time::Duration,
}

impl Sweep {
    /// Failed pairs, load errors included.
    pub fn failed(&self) -> u64 {
        (self.failures.len() + self.load_errors.len()) as u64
    }
}

/// Runs every file under every seed in `seeds` on `threads` threads. Unless `keep_going`,
/// the first failure stops it (pairs already running finish). `progress(done, total)` is
/// called after each pair, from the worker threads.
pub fn run_sweep(
    files: &[(PathBuf, String)],
    seeds: RangeInclusive<u64>,
    threads: usize,
    keep_going: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Sweep {
    let mut loaded: Vec<LoadedScenario> = Vec::new();
    let mut load_errors = Vec::new();
    for (path, name) in files {
        match scenario::load(path, name.clone()) {
            Ok(l) => loaded.push(l),
            Err(e) => load_errors.push((path.clone(), name.clone(), e)),
        }
    }
    let per_file = seeds.end() - seeds.start() + 1;
    let total = per_file * loaded.len() as u64;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(!keep_going && !load_errors.is_empty());
    let passed: Vec<AtomicU64> = loaded.iter().map(|_| AtomicU64::new(0)).collect();
    let failures: Mutex<Vec<(usize, u64, Outcome)>> = Mutex::new(Vec::new());
    let passed_runs: Mutex<Vec<PassedRun>> = Mutex::new(Vec::new());
    let workers = (threads.max(1) as u64).min(total.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let (file, seed) = ((i / per_file) as usize, seeds.start() + i % per_file);
                let outcome = run_loaded(&loaded[file], Some(seed));
                if outcome.passed() {
                    passed[file].fetch_add(1, Ordering::Relaxed);
                    passed_runs.lock().unwrap().push(PassedRun {
                        scenario: file,
                        seed,
                        wall: outcome.wall,
                    });
                } else {
                    if !keep_going {
                        stop.store(true, Ordering::Relaxed);
                    }
                    failures.lock().unwrap().push((file, seed, outcome));
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    let mut passed_runs = passed_runs.into_inner().unwrap();
    passed_runs.sort_by_key(|r| (r.scenario, r.seed));
    failures.sort_by_key(|(file, seed, _)| (*file, *seed));
    let stopped = done.load(Ordering::Relaxed) < total;
    if stopped {
        // Only the lowest failing pair: which others also ran depends on timing.
        failures.truncate(1);
    }
    let per_scenario = loaded
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let failed = failures.iter().filter(|(f, _, _)| *f == i).count() as u64;
            (l.name.clone(), passed[i].load(Ordering::Relaxed), failed)
        })
        .collect();
    Sweep {
        passed: passed.iter().map(|p| p.load(Ordering::Relaxed)).sum(),
        failures: failures.into_iter().map(|(_, _, o)| o).collect(),
        load_errors,
        stopped,
        per_scenario,
        passed_runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_include_both_ends() {
        assert_eq!(parse_seeds("1..10000").unwrap(), 1..=10000);
        assert_eq!(parse_seeds("5..=7").unwrap(), 5..=7);
        assert_eq!(parse_seeds("42").unwrap(), 42..=42);
        assert!(parse_seeds("9..3").unwrap_err().contains("empty"));
        assert!(parse_seeds("a..3").is_err());
        assert!(parse_seeds("").is_err());
    }
}
