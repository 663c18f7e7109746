//! `mailsim shrink FILE --seed N` (issue #12 item 4): the smallest scenario that still fails
//! the way FILE fails under seed N, for a bug report.
//!
//! Greedy delta debugging over the file as a TOML document ([`edit`]): each pass lists its
//! candidate edits in a fixed order, the first one whose run still fails the same way
//! ([`Signature`]) is taken and the pass starts over on the smaller file; when no pass
//! takes anything the file is a fixpoint. Candidates run `threads` at a time, but the one
//! taken is always the first in the list that succeeds, so the result does not depend on
//! `-j`. Every world is deterministic, so a candidate text already seen to pass is never
//! run again.

pub mod edit;
mod signature;

pub use signature::{kind, Signature};

use std::collections::BTreeSet;
use std::path::Path;

use toml_edit::DocumentMut;

use crate::runner::{self, Outcome};
use crate::scenario::{self, ScenarioError};

/// How to shrink.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// Candidates run side by side.
    pub threads: usize,
    /// Give up (keeping what was found) after this many candidate runs.
    pub max_runs: usize,
}

/// The smallest scenario found.
pub struct Shrunk {
    /// The file's text, with `[world] seed` set.
    pub source: String,
    /// One line per edit taken, in order.
    pub removed: Vec<String>,
    /// Candidate runs made (the first run of the file not counted).
    pub runs: usize,
    /// `max_runs` stopped the search before a fixpoint.
    pub exhausted: bool,
    pub signature: Signature,
    /// The run of the shrunk file.
    pub outcome: Outcome,
}

/// Why there is nothing to shrink.
pub enum ShrinkError {
    /// The file does not load.
    Load(ScenarioError),
    /// Not TOML toml_edit can edit (the loader accepted it, so this should not happen).
    Toml(String),
    /// The scenario passes under the seed.
    Passes(Box<Outcome>),
}

/// Shrinks `path` under `opts.seed`; `taken` hears each edit as it is taken.
pub fn shrink(
    path: &Path,
    name: &str,
    opts: &Options,
    taken: &mut dyn FnMut(&str),
) -> Result<Shrunk, ShrinkError> {
    let original = scenario::load(path, name.to_string()).map_err(ShrinkError::Load)?;
    let first = runner::run_loaded(&original, Some(opts.seed));
    let Some(signature) = Signature::of(&first) else {
        return Err(ShrinkError::Passes(Box::new(first)));
    };
    let mut doc: DocumentMut = original
        .source
        .parse()
        .map_err(|e: toml_edit::TomlError| ShrinkError::Toml(e.to_string()))?;
    edit::set_seed(&mut doc, opts.seed, &path.display().to_string());
    let mut s = Search {
        path,
        name,
        opts,
        signature,
        seen: BTreeSet::new(),
        runs: 0,
    };
    let mut outcome = first;
    let mut removed = Vec::new();
    let mut exhausted = false;
    'rounds: loop {
        let mut changed = false;
        for pass in edit::PASSES {
            loop {
                let candidates = edit::candidates(&doc, pass, opts.seed);
                match s.first_success(&doc, &candidates) {
                    Found::Yes(found) => {
                        let (i, smaller, run) = *found;
                        taken(&candidates[i].label);
                        removed.push(candidates[i].label.clone());
                        doc = smaller;
                        outcome = run;
                        changed = true;
                    }
                    Found::No => break,
                    Found::OutOfRuns => {
                        exhausted = true;
                        break 'rounds;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    Ok(Shrunk {
        source: doc.to_string(),
        removed,
        runs: s.runs,
        exhausted,
        signature: s.signature,
        outcome,
    })
}

enum Found {
    /// The candidate's index, the smaller document and its run.
    Yes(Box<(usize, DocumentMut, Outcome)>),
    No,
    OutOfRuns,
}

struct Search<'a> {
    path: &'a Path,
    name: &'a str,
    opts: &'a Options,
    signature: Signature,
    /// Candidate texts that did not fail the same way (or did not load).
    seen: BTreeSet<String>,
    runs: usize,
}

impl Search<'_> {
    /// The first candidate, in list order, that still fails the same way.
    fn first_success(&mut self, doc: &DocumentMut, candidates: &[edit::Candidate]) -> Found {
        let current = doc.to_string();
        let edited: Vec<(usize, DocumentMut, String)> = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let d = edit::apply(doc, &c.edit)?;
                let text = d.to_string();
                (text != current && !self.seen.contains(&text)).then_some((i, d, text))
            })
            .collect();
        for batch in edited.chunks(self.opts.threads.max(1)) {
            if self.runs >= self.opts.max_runs {
                return Found::OutOfRuns;
            }
            self.runs += batch.len();
            let results: Vec<Option<Outcome>> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|(_, _, text)| scope.spawn(|| self.run(text)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a candidate run does not panic"))
                    .collect()
            });
            for ((i, d, text), result) in batch.iter().zip(results) {
                match result {
                    Some(run) => return Found::Yes(Box::new((*i, d.clone(), run))),
                    None => {
                        self.seen.insert(text.clone());
                    }
                }
            }
        }
        Found::No
    }

    /// The candidate's run if it fails the same way.
    fn run(&self, text: &str) -> Option<Outcome> {
        // Loaded as if it were the file, so key files it names resolve the same way.
        let loaded =
            scenario::load_source(self.path, self.name.to_string(), text.to_string()).ok()?;
        let outcome = runner::run_loaded(&loaded, Some(self.opts.seed));
        self.signature.matched_by(&outcome).then_some(outcome)
    }
}
