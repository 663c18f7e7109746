//! Invariants checked after every run, beside the scenario's own expectations (issue #12
//! item 2), and reported like them. They hold for every correct server in every world,
//! so a scenario never has to ask for them:
//!
//! - **Nothing acknowledged is lost.** Every message an actor saw acknowledged (`250 ...
//!   queued as <id>`, recorded from the client's side of the wire by
//!   [`crate::actor::Ledger`]) is, at the end, for each recipient that got a 2xx:
//!   - a local mailbox (after alias expansion, by the server's own directory): a file named
//!     `<id>` in one of that mailbox's folders on the server's disk — which, after a crash,
//!     holds only what was made durable;
//!   - a remote recipient (or an alias's forward-path): the queue says it was delivered
//!     (`<id> <rcpt> delivered via`, or its durable `record <id> <i>=delivered` when a crash
//!     came before that line and recovery rightly removed the finished message), or failed or expired with a DSN to the sender (none
//!     is due for the null sender or `NOTIFY=NEVER`), or the message is still in the queue
//!     directory, to be retried.
//! - **Nothing goes where it was not sent.** A file named `<id>` is only in mailboxes its
//!   recipients resolve to.
//! - **Duplicates only after a crash.** The same recipient delivered twice by the queue is
//!   allowed only when the server crashed meanwhile (between a remote's 250 and our record
//!   of it, the one window where RFC 5321 §6.1's "at least once" becomes "twice").
//!
//! The store and queue consistency check (`consistency.rs`) runs here too, at the end, and
//! its findings before each restart are reported with these.
//!
//! Not followed (so never reported): distribution-list recipients (expanded at delivery
//! into new messages), messages sent in `raw` steps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mailsim_server::directory::{Directory, RcptVerdict};
use mailsim_server::mail::{Address, Folder};

use crate::actor::Acked;
use crate::check::Failure;
use crate::scenario::LoadedScenario;
use crate::world::WorldResult;

/// Where the server host keeps its data on the simulated disk.
const DATA_ROOT: &str = "/data";

/// Checks every invariant; each violation is one failure.
pub fn check(scn: &LoadedScenario, world: &WorldResult) -> Vec<Failure> {
    let Some(fs) = &world.server_fs else {
        return Vec::new();
    };
    let Ok(directory) = scn.scenario.server.get_ref().config.validate() else {
        // A config the server refused: the run already failed on that.
        return Vec::new();
    };
    let lines = world.trace.lines();
    let mut failures = world.consistency.clone();
    {
        let _guard = fs.enter();
        let moment = crate::consistency::Moment::End {
            drained: drained(&lines),
        };
        failures.extend(crate::consistency::check(&directory, &lines, moment));
    }
    let acked: Vec<Acked> = {
        let logs = world.logs.lock().unwrap();
        logs.values().flat_map(|l| l.ledger.acked.clone()).collect()
    };
    if acked.is_empty() {
        return failures;
    }
    let queue = Claims::from_trace(&lines);
    let disk = {
        let _guard = fs.enter();
        Disk::read(&directory, &acked)
    };
    for m in &acked {
        check_message(scn, m, &directory, &disk, &queue, &lines, &mut failures);
    }
    failures
}

/// The run ran out of work with the server up: it did not stop at its duration, and the
/// server was not left down by a crash without a restart.
fn drained(lines: &[String]) -> bool {
    let last = |text: &str| lines.iter().rposition(|l| l.contains(text));
    let up = match (last(" fault  crash server"), last(" server boot ")) {
        (Some(crash), Some(boot)) => boot > crash,
        (Some(_), None) => false,
        (None, _) => true,
    };
    up && last(" world  duration of ").is_none()
}

fn check_message(
    scn: &LoadedScenario,
    m: &Acked,
    directory: &Directory,
    disk: &Disk,
    queue: &Claims,
    lines: &[String],
    failures: &mut Vec<Failure>,
) {
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let mut followed = true;
    let mut remote: Vec<(String, bool)> = Vec::new();
    for r in &m.recipients {
        let Ok(address) = Address::parse(&r.address) else {
            continue;
        };
        match resolve(directory, &address, scn) {
            RcptVerdict::Local(mailboxes) => expected.extend(mailboxes),
            RcptVerdict::Forward {
                mailboxes,
                remote: fwd,
            } => {
                expected.extend(mailboxes);
                remote.extend(fwd.iter().map(|a| (a.to_string(), r.notify_never)));
            }
            RcptVerdict::List(_) => followed = false,
            RcptVerdict::RelayDenied => remote.push((r.address.clone(), r.notify_never)),
            // Accepted although unknown or disabled: a catch-all or a directory change;
            // nothing to hold the server to.
            RcptVerdict::UnknownUser | RcptVerdict::Disabled => followed = false,
        }
    }
    // Where the excerpt of a failure starts; only looked for when something failed (a
    // scan of the whole trace per acknowledged message made big runs quadratic).
    let first_line = || {
        lines
            .iter()
            .position(|l| l.contains(&m.id))
            .or(Some(lines.len().saturating_sub(1)))
    };
    let stored = disk.holding(&m.id);
    for mailbox in &expected {
        if !stored.contains(mailbox) {
            failures.push(Failure {
                expectation: format!(
                    "invariant: message {} (acknowledged to {}) is in mailbox {mailbox}",
                    m.id, m.actor
                ),
                found: format!(
                    "no file {} in any folder of {mailbox}: acknowledged mail was lost",
                    m.id
                ),
                trace_line: first_line(),
            });
        }
    }
    if followed {
        for mailbox in stored.difference(&expected) {
            failures.push(Failure {
                expectation: format!(
                    "invariant: message {} is only in the mailboxes it was sent to ({})",
                    m.id,
                    expected.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                found: format!("it is also in {mailbox}"),
                trace_line: first_line(),
            });
        }
    }
    let queued = disk.queued.contains(&m.id);
    for (rcpt, never) in &remote {
        let key = (m.id.clone(), rcpt.to_ascii_lowercase());
        let delivered = queue.delivered.get(&key).copied().unwrap_or(0);
        let failed = queue.failed.contains(&key);
        let dsn_due = !m.mail_from.is_empty() && !never;
        let bounced = failed && (!dsn_due || queue.dsn.contains(&m.id));
        let recorded = queue.recorded.contains(&key);
        if delivered == 0 && !recorded && !bounced && !queued {
            let found = match failed {
                true => "it failed, but no DSN went to the sender".to_string(),
                false => "not delivered, not bounced and not in the queue".to_string(),
            };
            failures.push(Failure {
                expectation: format!(
                    "invariant: message {} (acknowledged to {}) reaches <{rcpt}>, is bounced, or is still queued",
                    m.id, m.actor
                ),
                found: format!("{found}: acknowledged mail was lost"),
                trace_line: first_line(),
            });
        }
        if delivered > 1 && !queue.crashed {
            failures.push(Failure {
                expectation: format!(
                    "invariant: message {} is delivered to <{rcpt}> once (twice only across a crash)",
                    m.id
                ),
                found: format!("delivered {delivered} times and the server never crashed"),
                trace_line: first_line(),
            });
        }
    }
}

/// What the directory says of `a`, with an address literal of the server's own address
/// read as the server reads it (`smtp/session/envelope.rs`, RFC 1123 §5.2.17): the local
/// part at the host name, or at the first domain with an account where it exists.
fn resolve(directory: &Directory, a: &Address, scn: &LoadedScenario) -> RcptVerdict {
    let ours = a
        .literal_ip()
        .is_some_and(|ip| ip.to_canonical() == scn.scenario.server_ip().to_canonical());
    if !ours {
        return directory.resolve(a);
    }
    let mut domains = vec![scn
        .scenario
        .server
        .get_ref()
        .config
        .hostname
        .to_ascii_lowercase()];
    for account in directory.accounts() {
        if let Some((_, d)) = account.rsplit_once('@') {
            if !domains.iter().any(|x| x == d) {
                domains.push(d.to_string());
            }
        }
    }
    for domain in domains {
        let local = Address {
            local: a.local.clone(),
            domain,
        };
        match directory.resolve(&local) {
            RcptVerdict::UnknownUser | RcptVerdict::RelayDenied => {}
            verdict => return verdict,
        }
    }
    RcptVerdict::UnknownUser
}

/// What the queue's trace lines say happened to each (id, recipient).
#[derive(Default)]
struct Claims {
    /// How many times the queue delivered it (a remote said 250).
    delivered: BTreeMap<(String, String), usize>,
    /// It failed or expired: a DSN is due.
    failed: BTreeSet<(String, String)>,
    /// Ids a DSN was made for.
    dsn: BTreeSet<String>,
    /// (id, recipient) whose delivery the queue recorded durably (`record <id> <i>=delivered`):
    /// delivered even when a crash came before the queue traced `delivered via`, and
    /// recovery, finding it final, rightly removed the message.
    recorded: BTreeSet<(String, String)>,
    /// The server crashed during the run.
    crashed: bool,
}

impl Claims {
    fn from_trace(lines: &[String]) -> Claims {
        let mut c = Claims::default();
        // id -> its recipients in slot order, from `queued <id> from <..> to <a>, <b> (..)`.
        let mut rcpts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in lines {
            if line.contains(" fault  crash ") {
                c.crashed = true;
            }
            let Some(rest) = line.split_once(" queue  ").map(|(_, r)| r) else {
                continue;
            };
            if let Some(q) = rest.strip_prefix("queued ") {
                if let Some((id, to)) = q
                    .split_once(' ')
                    .zip(q.split_once("> to "))
                    .map(|((id, _), (_, to))| (id, to.rsplit_once(" (").map_or(to, |(t, _)| t)))
                {
                    let list = to.split(", ").map(|r| r.trim_matches(['<', '>']));
                    rcpts.insert(id.to_string(), list.map(str::to_ascii_lowercase).collect());
                }
                continue;
            }
            if let Some((id, payload)) =
                rest.strip_prefix("record ").and_then(|r| r.split_once(' '))
            {
                for (slot, state) in payload.split(' ').filter_map(|t| t.split_once('=')) {
                    let rcpt = slot
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| rcpts.get(id)?.get(i));
                    if let (Some(rcpt), true) = (rcpt, state.starts_with("delivered")) {
                        c.recorded.insert((id.to_string(), rcpt.clone()));
                    }
                }
                continue;
            }
            let mut words = rest.split(' ');
            let (Some(id), Some(second)) = (words.next(), words.next()) else {
                continue;
            };
            let third = words.next().unwrap_or("");
            if let Some(rcpt) = second.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                let key = (id.to_string(), rcpt.to_ascii_lowercase());
                match third {
                    "delivered" => *c.delivered.entry(key).or_default() += 1,
                    "failed:" | "expired:" => {
                        c.failed.insert(key);
                    }
                    _ => {}
                }
            } else if third == "DSN" {
                c.dsn.insert(id.to_string());
            }
        }
        c
    }
}

/// The server's disk at the end: which mailboxes hold a file of each acknowledged id, and
/// which ids are still in the queue directory.
struct Disk {
    /// id -> mailboxes holding a file of that name.
    stored: BTreeMap<String, BTreeSet<String>>,
    queued: BTreeSet<String>,
}

impl Disk {
    /// Reads the folders of every account and the queue directory (the caller has entered
    /// the server host's filesystem).
    fn read(directory: &Directory, acked: &[Acked]) -> Disk {
        let ids: BTreeSet<&str> = acked.iter().map(|m| m.id.as_str()).collect();
        let names = crate::consistency::final_names;
        let mut stored: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for account in directory.accounts() {
            for folder in Folder::ALL {
                let Ok(dir) = mailsim_server::store::folder_dir(account, folder) else {
                    continue;
                };
                for name in names(&Path::new(DATA_ROOT).join(dir)) {
                    if ids.contains(name.as_str()) {
                        stored.entry(name).or_default().insert(account.to_string());
                    }
                }
            }
        }
        let queue_dir = Path::new(DATA_ROOT).join(mailsim_server::queue::store::QUEUE_DIR);
        let queued = names(&queue_dir)
            .into_iter()
            .filter(|n| ids.contains(n.as_str()))
            .collect();
        Disk { stored, queued }
    }

    fn holding(&self, id: &str) -> BTreeSet<String> {
        self.stored.get(id).cloned().unwrap_or_default()
    }
}
