//! `[[fault]]`: what goes wrong in a world, as a serde tagged enum (`kind = "disk_full"`), so
//! every fault has the same shape for the shrinker (which reads scenario files as TOML) and
//! every key is checked (`deny_unknown_fields`).
//!
//! A fault happens at a time (`at_secs`), over a window (`from_secs` + `until_secs` or
//! `for_secs`; no end: until the run ends), or at a named point: `on_trace` (the Nth trace
//! line containing a text, a deterministic way to say "after the 3rd 250 to DATA" or "during
//! a queue commit"). Every time may be a `[from, to]` range the seed picks from.

use serde::Deserialize;

use super::Secs;

/// One host or a group of hosts, by the scenario's names: `"server"`, `"dns"`, a remote's
/// `name`, an actor's `name`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Hosts {
    One(String),
    Group(Vec<String>),
}

impl Hosts {
    pub fn names(&self) -> Vec<&str> {
        match self {
            Hosts::One(n) => vec![n.as_str()],
            Hosts::Group(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Which file operations an `io_error` breaks.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IoOps {
    /// Writes and appends (a bad sector, EIO on `write(2)`).
    Write,
    /// fsync of files and directories (the failure PostgreSQL's "fsyncgate" made famous).
    Fsync,
    /// Both.
    #[default]
    All,
}

/// A window of simulated time: `from_secs` (or its alias `at_secs`) and either `until_secs`
/// or `for_secs`; neither: until the end of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Window {
    pub from: Option<Secs>,
    pub until: Option<Secs>,
    pub len: Option<Secs>,
}

/// A trace-driven trigger: the fault fires right after the `nth` (from 1) trace line that
/// contains `on_trace`.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceTrigger {
    pub pattern: String,
    pub nth: u64,
}

/// Something that goes wrong in the world. See the module docs and README "Faults".
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The server host dies: its tasks stop, its connections break, and every write it had
    /// not fsynced is lost (turmoil's filesystem durability model).
    Crash {
        at_secs: Option<Secs>,
        on_trace: Option<String>,
        nth: Option<u64>,
        /// Bring the server back up this many seconds later (omit: stays down).
        restart_after_secs: Option<Secs>,
    },
    /// Writes and/or fsyncs of the server fail with EIO over the window.
    IoError {
        #[serde(alias = "at_secs")]
        from_secs: Option<Secs>,
        until_secs: Option<Secs>,
        for_secs: Option<Secs>,
        #[serde(default)]
        ops: IoOps,
    },
    /// The server's disk is full over the window: writes, appends and directory creations
    /// fail with ENOSPC (`StorageFull`); reads, renames, removals and fsyncs still work, as
    /// on a real full filesystem.
    DiskFull {
        #[serde(alias = "at_secs")]
        from_secs: Option<Secs>,
        until_secs: Option<Secs>,
        for_secs: Option<Secs>,
    },
    /// One write of the server (the first at or after `at_secs`, or the `nth_write`-th from
    /// the start, counting writes and appends) reaches the disk only in part — its first
    /// half, made durable — and the server host crashes at once, as when power fails in the
    /// middle of a `write(2)`.
    TornWrite {
        at_secs: Option<Secs>,
        nth_write: Option<u64>,
        restart_after_secs: Option<Secs>,
    },
    /// Every message between `a` and `b` is dropped over the window (`one_way`: only from
    /// `a` to `b`); TCP in turmoil does not retransmit, so a connection across it stalls and
    /// times out, as across a real partition that outlasts the retransmission timers.
    Partition {
        a: Hosts,
        b: Hosts,
        #[serde(default)]
        one_way: bool,
        #[serde(alias = "at_secs")]
        from_secs: Option<Secs>,
        until_secs: Option<Secs>,
        for_secs: Option<Secs>,
        /// Instead of a start time: partition right after the Nth trace line with this text
        /// (`"354 "` partitions in the middle of DATA).
        on_trace: Option<String>,
        nth: Option<u64>,
    },
    /// The link between `a` and `b` takes `latency_ms` (up to `latency_ms + jitter_ms`,
    /// turmoil's exponential curve between the two) over the window.
    Latency {
        a: Hosts,
        b: Hosts,
        latency_ms: f64,
        #[serde(default)]
        jitter_ms: f64,
        #[serde(alias = "at_secs")]
        from_secs: Option<Secs>,
        until_secs: Option<Secs>,
        for_secs: Option<Secs>,
    },
}

impl Fault {
    /// The fault's name as written in `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Crash { .. } => "crash",
            Fault::IoError { .. } => "io_error",
            Fault::DiskFull { .. } => "disk_full",
            Fault::TornWrite { .. } => "torn_write",
            Fault::Partition { .. } => "partition",
            Fault::Latency { .. } => "latency",
        }
    }

    /// The window of a windowed fault.
    pub fn window(&self) -> Option<Window> {
        match *self {
            Fault::IoError {
                from_secs,
                until_secs,
                for_secs,
                ..
            }
            | Fault::DiskFull {
                from_secs,
                until_secs,
                for_secs,
            }
            | Fault::Partition {
                from_secs,
                until_secs,
                for_secs,
                ..
            }
            | Fault::Latency {
                from_secs,
                until_secs,
                for_secs,
                ..
            } => Some(Window {
                from: from_secs,
                until: until_secs,
                len: for_secs,
            }),
            _ => None,
        }
    }

    /// The trace trigger, if the fault has one.
    pub fn trigger(&self) -> Option<TraceTrigger> {
        match self {
            Fault::Crash { on_trace, nth, .. } | Fault::Partition { on_trace, nth, .. } => {
                on_trace.as_ref().map(|p| TraceTrigger {
                    pattern: p.clone(),
                    nth: nth.unwrap_or(1),
                })
            }
            _ => None,
        }
    }

    /// The hosts a network fault names.
    pub fn hosts(&self) -> Vec<(&'static str, &Hosts)> {
        match self {
            Fault::Partition { a, b, .. } | Fault::Latency { a, b, .. } => {
                vec![("a", a), ("b", b)]
            }
            _ => Vec::new(),
        }
    }

    /// Checks what serde cannot: one way to say when, sane numbers. The message names the key.
    pub fn check(&self) -> Result<(), String> {
        let secs = |key: &str, s: Option<Secs>| match s {
            Some(s) => s.check().map_err(|m| format!("{key} {m}")),
            None => Ok(()),
        };
        if let Some(w) = self.window() {
            let trigger = self.trigger().is_some();
            match (w.from.is_some(), trigger) {
                (true, true) => {
                    return Err("from_secs (at_secs) and on_trace exclude each other".into())
                }
                (false, false) => return Err("needs from_secs (or at_secs) or on_trace".into()),
                _ => {}
            }
            if w.until.is_some() && w.len.is_some() {
                return Err("until_secs and for_secs exclude each other".into());
            }
            if trigger && w.until.is_some() {
                return Err("with on_trace, give the window's length as for_secs".into());
            }
            secs("from_secs", w.from)?;
            secs("until_secs", w.until)?;
            secs("for_secs", w.len)?;
        }
        match self {
            Fault::Crash {
                at_secs,
                on_trace,
                nth,
                restart_after_secs,
            } => {
                if at_secs.is_some() == on_trace.is_some() {
                    return Err("a crash needs exactly one of at_secs and on_trace".into());
                }
                secs("at_secs", *at_secs)?;
                secs("restart_after_secs", *restart_after_secs)?;
                check_nth(on_trace, *nth)?;
            }
            Fault::TornWrite {
                at_secs,
                nth_write,
                restart_after_secs,
            } => {
                if at_secs.is_some() == nth_write.is_some() {
                    return Err("a torn_write needs exactly one of at_secs and nth_write".into());
                }
                if *nth_write == Some(0) {
                    return Err("nth_write counts from 1".into());
                }
                secs("at_secs", *at_secs)?;
                secs("restart_after_secs", *restart_after_secs)?;
            }
            Fault::Partition { on_trace, nth, .. } => check_nth(on_trace, *nth)?,
            Fault::Latency {
                latency_ms,
                jitter_ms,
                ..
            } => {
                if !(0.0..=600_000.0).contains(latency_ms) {
                    return Err("latency_ms must be between 0 and 600000".into());
                }
                if !(0.0..=600_000.0).contains(jitter_ms) {
                    return Err("jitter_ms must be between 0 and 600000".into());
                }
            }
            Fault::IoError { .. } | Fault::DiskFull { .. } => {}
        }
        Ok(())
    }
}

fn check_nth(on_trace: &Option<String>, nth: Option<u64>) -> Result<(), String> {
    match (on_trace, nth) {
        (None, Some(_)) => Err("nth goes with on_trace".into()),
        (Some(p), _) if p.is_empty() => Err("on_trace must not be empty".into()),
        (_, Some(0)) => Err("nth counts from 1".into()),
        _ => Ok(()),
    }
}
