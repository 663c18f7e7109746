//! The store and queue consistency check (issue #12 item 2): run on the server's disk as a
//! crash left it, right before every restart (the exact state the new boot recovers from),
//! and at the end of every run. Reported like the other invariants.
//!
//! - **No half message under a final name.** A mailbox file whose name is not a temp name
//!   (`.tmp-…`) has exactly the octets the store's trace says it committed; a queue file
//!   under a final name parses whole (header and body checksums), as recovery needs it — a
//!   commit renames a file into place only after its data is on disk, so a torn or lost
//!   write may leave a `.tmp-` file behind but never a short final one.
//! - **No message in two states.** At the end, with the server up and its work drained, no
//!   queue file is left that the queue has finished with: one whose recipients are all
//!   final, or that the queue traced as removed (or failed to remove) since its last boot
//!   — an orphaned state log that a later restart would deliver again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mailsim_server::directory::Directory;
use mailsim_server::mail::Folder;
use turmoil::fs::shim::std::fs as simfs;

use crate::check::Failure;

const DATA_ROOT: &str = "/data";

/// When the check runs.
#[derive(Clone, Copy, Debug)]
pub enum Moment {
    /// Right before a restart (the crash image).
    Restart,
    /// After the run; `drained`: the server is up and the world ran out of work.
    End { drained: bool },
}

/// Checks the server's disk; the caller has entered the server host's filesystem.
/// `lines` is the trace so far.
pub fn check(directory: &Directory, lines: &[String], moment: Moment) -> Vec<Failure> {
    let when = match moment {
        Moment::Restart => "before a restart",
        Moment::End { .. } => "at the end of the run",
    };
    let at = Some(lines.len().saturating_sub(1));
    let mut failures = Vec::new();
    let committed = committed_octets(lines);
    for account in directory.accounts() {
        for folder in Folder::ALL {
            let Ok(dir) = mailsim_server::store::folder_dir(account, folder) else {
                continue;
            };
            let dir = Path::new(DATA_ROOT).join(dir);
            for name in final_names(&dir) {
                let Some(&want) = committed.get(&(account.to_string(), name.clone())) else {
                    continue;
                };
                let len = simfs::metadata(dir.join(&name)).map(|m| m.len()).ok();
                if len != Some(want) {
                    failures.push(Failure {
                        expectation: format!(
                            "consistency {when}: mailbox file {account}/{name} is whole ({want} octets, as committed)"
                        ),
                        found: format!("{len:?} octets: a half message under a final name"),
                        trace_line: at,
                    });
                }
            }
        }
    }
    let queue_dir = Path::new(DATA_ROOT).join(mailsim_server::queue::store::QUEUE_DIR);
    let finished = finished_since_boot(lines);
    for name in final_names(&queue_dir) {
        let Ok(data) = simfs::read(queue_dir.join(&name)) else {
            continue;
        };
        match mailsim_server::queue::store::inspect_queue_file(&data) {
            Err(why) => failures.push(Failure {
                expectation: format!(
                    "consistency {when}: queue file {name} under a final name is whole"
                ),
                found: format!("recovery cannot read it: {why}"),
                trace_line: at,
            }),
            Ok(complete) => {
                let drained = matches!(moment, Moment::End { drained: true });
                if drained && (complete || finished.contains(&name)) {
                    failures.push(Failure {
                        expectation: format!(
                            "consistency {when}: the queue holds no message it is done with"
                        ),
                        found: format!(
                            "queue file {name} is still there although {}: an orphaned state log",
                            if complete {
                                "every recipient is final"
                            } else {
                                "the queue traced its removal"
                            }
                        ),
                        trace_line: at,
                    });
                }
            }
        }
    }
    failures
}

/// Names in `dir` that are not temp or set-aside names (those start with a dot), sorted.
pub(crate) fn final_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = simfs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// (mailbox, id) → octets, from the store's `commit <mailbox> <id> (<n> octets, …)` lines.
fn committed_octets(lines: &[String]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for line in lines {
        let Some(rest) = line.split_once(" store  commit ").map(|(_, r)| r) else {
            continue;
        };
        let mut words = rest.split(' ');
        let (Some(mbox), Some(id), Some(n)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if let Some(n) = n.strip_prefix('(').and_then(|n| n.parse().ok()) {
            out.insert((mbox.to_string(), id.to_string()), n);
        }
    }
    out
}

/// Queue ids the queue traced as removed, or as failing removal, since the server's last
/// boot (a removal before a crash may not have been durable; recovery then finishes it).
fn finished_since_boot(lines: &[String]) -> BTreeSet<String> {
    let boot = lines
        .iter()
        .rposition(|l| l.contains(" server boot "))
        .unwrap_or(0);
    let mut out = BTreeSet::new();
    for line in &lines[boot..] {
        let Some(rest) = line.split_once(" queue  ").map(|(_, r)| r) else {
            continue;
        };
        if let Some((id, what)) = rest.split_once(' ') {
            if what.starts_with("done, removed") || what.starts_with("removal failed") {
                out.insert(id.to_string());
            }
        }
    }
    out
}
