//! Greylisting (RFC 6647): mail from a (client network, sender, recipient) triplet never
//! seen before is deferred with `451 4.7.1`; a real MTA retries after a while and is then
//! accepted, while most spamware fires once and moves on.
//!
//! **Asked at RCPT**, as Postfix's postgrey and policyd-weight are (through
//! `check_policy_service` in `smtpd_recipient_restrictions`): the triplet needs the
//! recipient, a deferral there costs the client no message transfer, and a message with
//! several recipients is deferred only for those not yet passed (the client retries those
//! alone). Checks that refuse for good (the DNS lists) come first in the `Defence` chain,
//! so a listed client makes no greylist entry.
//!
//! The rules (postgrey's, in `table.rs`): first sight → `451 4.7.1 Greylisted, ... please
//! retry in N seconds`; a retry before `delay` → deferred again, the clock *not* restarted;
//! a retry in `[delay, expiry)` after the first sight → accepted, the triplet passes; a
//! triplet not back within `expiry` is forgotten. A passed triplet is accepted for
//! `allow_lifetime` after it was last seen; a network with `auto_allow_after` passes skips
//! greylisting for every sender and recipient for as long. Never greylisted: authenticated
//! clients, `relay_networks` (both are ours, issue #10 item 3), `allow_networks`, and
//! `allow_recipients` (postmaster@ must be reachable, RFC 5321 §4.5.1).
//!
//! **State survives a restart**: each change is a record appended to
//! `greylist/triplets.log` through the Env fs at once (the kernel has it: a clean restart,
//! even a killed process, keeps it) and fsynced write-behind, within [`SYNC_AFTER`]
//! (batched: one fsync for a burst of new triplets). A crash (power loss) can therefore
//! lose the last second of entries; that only means those clients are greylisted once
//! more, never that mail is lost, so the fsync is not worth a wait per RCPT. At start the
//! log is replayed (a torn or damaged tail costs only its own records, `durable/log.rs`)
//! and rewritten compacted, expired entries dropped; it is compacted again whenever it
//! holds more than twice the live entries. Memory is bounded by `max_entries`.

pub mod config;
mod store;
mod table;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use config::GreylistConfig;
pub use table::{ClientNet, Decision, Triplet};

use super::{Check, IpNet, Policy, Refusal, Stage, Verdict};
use crate::env::Env;
use table::Table;

/// How long an appended record may wait for its fsync.
pub const SYNC_AFTER: Duration = Duration::from_secs(1);

/// Compaction when the log holds more than this many records beyond twice the live ones.
const COMPACT_SLACK: usize = 1024;

/// The greylisting policy of a listener (see the module docs).
#[derive(Clone)]
pub struct Greylist<E: Env> {
    inner: Arc<Inner<E>>,
}

struct Inner<E: Env> {
    env: E,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    allow_networks: Vec<IpNet>,
    /// Lookup keys of `allow_recipients` (addresses and bare local parts).
    allow_recipients: Vec<String>,
    /// Postfix's `mynetworks`: never greylisted.
    trusted: Vec<IpNet>,
    state: Mutex<State>,
    /// Serialises the file: appends, the fsync, compaction.
    file: tokio::sync::Mutex<FileState>,
    sync_scheduled: AtomicBool,
    /// Schedule the fsync after an append (off only in unit tests, which call `flush`).
    write_behind: bool,
}

struct State {
    table: Table,
    /// Encoded records not yet appended, in the order of the changes (drained under the
    /// file lock, so the log keeps that order whatever the sessions' interleaving).
    pending: Vec<u8>,
    /// How many records `pending` holds.
    pending_records: usize,
}

struct FileState {
    /// Records in the log since it was last rewritten.
    records: usize,
}

impl<E: Env> Greylist<E> {
    /// Replays the log (if any), rewrites it compacted, and starts greylisting.
    pub async fn open(
        env: E,
        config: &GreylistConfig,
        trusted: Vec<IpNet>,
    ) -> io::Result<Greylist<E>> {
        Greylist::open_with(env, config, trusted, true).await
    }

    async fn open_with(
        env: E,
        config: &GreylistConfig,
        trusted: Vec<IpNet>,
        write_behind: bool,
    ) -> io::Result<Greylist<E>> {
        let mut table = Table::new(config.timing());
        let bytes = store::read(&env).await?;
        let (records, stats) = store::replay(&bytes);
        for r in records {
            table.apply(r);
        }
        table.settle(env.now());
        let live = table.snapshot();
        store::rewrite(&env, &live).await?;
        let (triplets, nets) = table.len();
        env.trace(
            "greylist",
            format_args!(
                "loaded {triplets} triplets, {nets} networks from {} ({} records, {} bad)",
                store::FILE,
                stats.records,
                stats.bad
            ),
        );
        Ok(Greylist {
            inner: Arc::new(Inner {
                env,
                ipv4_prefix: config.ipv4_prefix,
                ipv6_prefix: config.ipv6_prefix,
                allow_networks: config.allow_networks.clone(),
                allow_recipients: config
                    .allow_recipients
                    .iter()
                    .filter_map(|r| config::recipient_key(r))
                    .collect(),
                trusted,
                state: Mutex::new(State {
                    table,
                    pending: Vec::new(),
                    pending_records: 0,
                }),
                file: tokio::sync::Mutex::new(FileState {
                    records: live.len(),
                }),
                sync_scheduled: AtomicBool::new(false),
                write_behind,
            }),
        })
    }

    /// The verdict for `check` (see the module docs).
    pub async fn verdict(&self, check: &Check) -> Verdict {
        let Stage::Rcpt { from, to, .. } = &check.stage else {
            return Verdict::Accept;
        };
        let me = &*self.inner;
        let ip = check.client.remote.ip().to_canonical();
        let rcpt = to.key();
        let skip = if check.client.authenticated.is_some() {
            Some("authenticated")
        } else if me.trusted.iter().any(|n| n.contains(ip)) {
            Some("in relay_networks")
        } else if me.allow_networks.iter().any(|n| n.contains(ip)) {
            Some("in allow_networks")
        } else if me.allows_recipient(&rcpt) {
            Some("recipient in allow_recipients")
        } else {
            None
        };
        if let Some(why) = skip {
            me.env.trace(
                "greylist",
                format_args!("skip [{ip}] -> <{rcpt}>: client {why}"),
            );
            return Verdict::Accept;
        }
        let triplet = Triplet {
            net: ClientNet::of(ip, me.ipv4_prefix, me.ipv6_prefix),
            sender: from.as_ref().map(|a| a.key()).unwrap_or_default(),
            recipient: rcpt,
        };
        let (decision, wrote) = {
            let mut state = me.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut changes = Vec::new();
            let evicted = state.table.evicted;
            let d = state.table.decide(me.env.now(), &triplet, &mut changes);
            let evicted = state.table.evicted - evicted;
            if evicted > 0 {
                me.env.trace(
                    "greylist",
                    format_args!("evicted {evicted} oldest triplets (max_entries)"),
                );
            }
            for r in &changes {
                store::encode_into(&mut state.pending, r);
            }
            state.pending_records += changes.len();
            (d, !changes.is_empty())
        };
        if wrote {
            self.append().await;
        }
        me.trace(&triplet, decision);
        match decision {
            Decision::Defer { retry_in, .. } => {
                let secs = retry_in.as_secs().max(1);
                Verdict::Defer(Refusal::new(
                    451,
                    (4, 7, 1),
                    format!("Greylisted, see RFC 6647; please retry in {secs} seconds"),
                ))
            }
            _ => Verdict::Accept,
        }
    }

    /// Appends what is pending and makes sure an fsync follows within [`SYNC_AFTER`].
    async fn append(&self) {
        let me = &*self.inner;
        let mut file = me.file.lock().await;
        let (bytes, records) = {
            let mut state = me.state.lock().unwrap_or_else(|p| p.into_inner());
            let n = std::mem::take(&mut state.pending_records);
            (std::mem::take(&mut state.pending), n)
        };
        if bytes.is_empty() {
            // A compaction took them with the whole table.
            return;
        }
        if let Err(e) = me.env.append(&store::path(), &bytes).await {
            me.env.warn(
                "greylist",
                format_args!("appending to {}: {e}", store::FILE),
            );
        }
        file.records += records;
        drop(file);
        if me.write_behind && !me.sync_scheduled.swap(true, Ordering::SeqCst) {
            let this = self.clone();
            let at = me.env.now().plus(SYNC_AFTER);
            me.env.spawn(async move {
                this.inner.env.sleep_until(at).await;
                this.flush().await;
            });
        }
    }

    /// Makes every appended record durable, and compacts the log if it has grown. Called
    /// write-behind after appends; public so a shutdown or a test can force it.
    pub async fn flush(&self) {
        let me = &*self.inner;
        let mut file = me.file.lock().await;
        me.sync_scheduled.store(false, Ordering::SeqCst);
        let snapshot = {
            let mut state = me.state.lock().unwrap_or_else(|p| p.into_inner());
            let (t, n) = state.table.len();
            let grown = file.records > 2 * (t + n) + COMPACT_SLACK;
            if grown {
                state.table.settle(me.env.now());
                state.pending.clear();
                state.pending_records = 0;
            }
            grown.then(|| state.table.snapshot())
        };
        let done = match &snapshot {
            Some(records) => {
                let r = store::rewrite(&me.env, records).await;
                if r.is_ok() {
                    me.env.trace(
                        "greylist",
                        format_args!(
                            "compacted {}: {} records -> {}",
                            store::FILE,
                            file.records,
                            records.len()
                        ),
                    );
                    file.records = records.len();
                }
                r
            }
            None => me.env.sync_file(Path::new(store::FILE)).await,
        };
        if let Err(e) = done {
            me.env
                .warn("greylist", format_args!("syncing {}: {e}", store::FILE));
        }
    }
}

impl<E: Env> Inner<E> {
    fn allows_recipient(&self, key: &str) -> bool {
        let local = key.rsplit_once('@').map_or(key, |(l, _)| l);
        self.allow_recipients
            .iter()
            .any(|a| a == key || (!a.contains('@') && a == local))
    }

    fn trace(&self, t: &Triplet, d: Decision) {
        let shown = |d: Duration| d.as_secs();
        match d {
            Decision::Defer {
                retry_in,
                new: true,
            } => self.env.trace(
                "greylist",
                format_args!("defer {t}: new, retry in {}s", shown(retry_in)),
            ),
            Decision::Defer {
                retry_in,
                new: false,
            } => self.env.trace(
                "greylist",
                format_args!("defer {t}: early retry, retry in {}s", shown(retry_in)),
            ),
            Decision::Pass { waited, net_passes } => self.env.trace(
                "greylist",
                format_args!(
                    "pass {t}: retried after {}s ({net_passes} passes from {})",
                    shown(waited),
                    t.net
                ),
            ),
            Decision::Known => self
                .env
                .trace("greylist", format_args!("accept {t}: passed before")),
            Decision::NetAllowed { passes } => self.env.trace(
                "greylist",
                format_args!("accept {t}: network auto-allowed ({passes} passes)"),
            ),
        }
    }
}

impl<E: Env> Policy for Greylist<E> {
    async fn check(&self, check: &Check) -> Verdict {
        self.verdict(check).await
    }
}
