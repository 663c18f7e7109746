//! Fault injection: the scenario's `[[fault]]`s as a schedule of world events (times picked
//! by the seed once, at the start) and trace triggers (`on_trace`), applied by the runner
//! between `sim.step()`s, each traced as a `fault` line.
//!
//! Every decision comes from the seed, the schedule and the trace — never from wall time —
//! so a replay applies the same faults at the same steps.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::env::disk::{DiskFault, DiskFaults, TornAt};
use crate::scenario::{Fault, Hosts, Scenario, Secs};
use crate::trace::Trace;

/// A scheduled change to the world.
#[derive(Clone, Debug)]
pub enum WorldEvent {
    Crash,
    Restart,
    Disk {
        fault: usize,
        kind: DiskFault,
        on: bool,
    },
    ArmTorn,
    Partition {
        link: Link,
        one_way: bool,
        on: bool,
    },
    Latency {
        link: Link,
        /// `None`: back to the world's latency.
        set: Option<(Duration, Duration)>,
    },
}

/// The two sides of a network fault, by address, and how the trace names them.
#[derive(Clone, Debug)]
pub struct Link {
    pub a: Vec<IpAddr>,
    pub b: Vec<IpAddr>,
    pub name: String,
}

impl Link {
    /// Calls `f` for every pair of distinct hosts across the link, in scenario order.
    pub fn each(&self, mut f: impl FnMut(IpAddr, IpAddr)) {
        for &a in &self.a {
            for &b in &self.b {
                if a != b {
                    f(a, b);
                }
            }
        }
    }
}

/// A fault waiting for its trace line.
struct Trigger {
    pattern: String,
    nth: u64,
    seen: u64,
    /// The events it schedules, relative to the moment it fires.
    then: Vec<(Duration, WorldEvent)>,
}

/// The world's fault schedule.
pub struct Faults {
    /// (time, insertion order) → event: stable for equal times.
    events: BTreeMap<(Duration, u64), WorldEvent>,
    seq: u64,
    triggers: Vec<Trigger>,
    /// Trace lines already scanned by the triggers.
    scanned: usize,
    pub disk: DiskFaults,
}

impl Faults {
    /// Picks every time from `seed` (salts by fault index, so adding a fault does not move
    /// the others' times) and resolves host names (validated at load).
    pub fn plan(s: &Scenario, seed: u64, ip_of: impl Fn(&str) -> IpAddr) -> Faults {
        let mut f = Faults {
            events: BTreeMap::new(),
            seq: 0,
            triggers: Vec::new(),
            scanned: 0,
            disk: DiskFaults::default(),
        };
        let end = Duration::MAX;
        for (i, fault) in s.fault.iter().enumerate() {
            let fault = fault.get_ref();
            // Salts 2i and 2i+1 are what the first fault kind (crash) always used: existing
            // campaigns keep their seed-picked times.
            let salt = 2 * i as u64;
            let pick = |s: Secs, k: u64| Duration::from_secs_f64(s.pick(seed, salt + k));
            let link = |a: &Hosts, b: &Hosts| Link {
                a: a.names().into_iter().map(&ip_of).collect(),
                b: b.names().into_iter().map(&ip_of).collect(),
                name: format!("{} / {}", a.names().join(","), b.names().join(",")),
            };
            // The window's start (or 0 with a trigger) and its length (None: no end).
            let window = fault.window().map(|w| {
                let from = w.from.map(|s| pick(s, 0)).unwrap_or_default();
                let len = match (w.until, w.len) {
                    (Some(u), _) => Some(pick(u, 1).saturating_sub(from)),
                    (None, Some(l)) => Some(pick(l, 1)),
                    (None, None) => None,
                };
                (from, len)
            });
            // (start, stop) event pairs of windowed faults.
            let pair = match fault {
                Fault::Crash {
                    restart_after_secs, ..
                } => {
                    let mut then = vec![(Duration::ZERO, WorldEvent::Crash)];
                    if let Some(r) = restart_after_secs {
                        then.push((pick(*r, 1), WorldEvent::Restart));
                    }
                    Some(then)
                }
                Fault::IoError { ops, .. } => Some(on_off(window, |on| WorldEvent::Disk {
                    fault: i,
                    kind: DiskFault::Io(*ops),
                    on,
                })),
                Fault::DiskFull { .. } => Some(on_off(window, |on| WorldEvent::Disk {
                    fault: i,
                    kind: DiskFault::Full,
                    on,
                })),
                Fault::TornWrite {
                    at_secs, nth_write, ..
                } => {
                    if let Some(n) = nth_write {
                        f.disk.arm_torn(TornAt::Nth(*n));
                    }
                    if let Some(at) = at_secs {
                        f.push(pick(*at, 0), WorldEvent::ArmTorn);
                    }
                    None
                }
                Fault::Partition { a, b, one_way, .. } => {
                    let link = link(a, b);
                    Some(on_off(window, |on| WorldEvent::Partition {
                        link: link.clone(),
                        one_way: *one_way,
                        on,
                    }))
                }
                Fault::Latency {
                    a,
                    b,
                    latency_ms,
                    jitter_ms,
                    ..
                } => {
                    let link = link(a, b);
                    let min = Duration::from_secs_f64(latency_ms / 1000.0);
                    let max = min + Duration::from_secs_f64(jitter_ms / 1000.0);
                    Some(on_off(window, |on| WorldEvent::Latency {
                        link: link.clone(),
                        set: on.then_some((min, max)),
                    }))
                }
            };
            let Some(then) = pair else { continue };
            match fault.trigger() {
                Some(t) => f.triggers.push(Trigger {
                    pattern: t.pattern,
                    nth: t.nth,
                    seen: 0,
                    then,
                }),
                None => {
                    let start = match fault {
                        Fault::Crash {
                            at_secs: Some(at), ..
                        } => pick(*at, 0),
                        _ => window.map(|(from, _)| from).unwrap_or_default(),
                    };
                    for (after, e) in then {
                        f.push(start.saturating_add(after).min(end), e);
                    }
                }
            }
        }
        f
    }

    fn push(&mut self, at: Duration, e: WorldEvent) {
        self.events.insert((at, self.seq), e);
        self.seq += 1;
    }

    /// The time of the next scheduled event (the runner warps no further).
    pub fn next_at(&self) -> Option<Duration> {
        self.events.keys().next().map(|(t, _)| *t)
    }

    /// Takes the next event due at `now`.
    pub fn due(&mut self, now: Duration) -> Option<WorldEvent> {
        let (&(t, seq), _) = self.events.iter().next()?;
        if t > now {
            return None;
        }
        self.events.remove(&(t, seq))
    }

    /// Scans the trace lines recorded since the last call; a trigger that sees its nth line
    /// schedules its events from `now` (applied before the next step).
    pub fn scan(&mut self, trace: &Trace, now: Duration) {
        if self.triggers.is_empty() {
            return;
        }
        let lines = trace.lines_from(self.scanned);
        self.scanned += lines.len();
        let mut fired = Vec::new();
        for line in &lines {
            self.triggers.retain_mut(|t| {
                if !line.contains(&t.pattern) {
                    return true;
                }
                t.seen += 1;
                if t.seen < t.nth {
                    return true;
                }
                fired.push((t.pattern.clone(), t.nth, std::mem::take(&mut t.then)));
                false
            });
        }
        for (pattern, nth, then) in fired {
            trace.record(
                "world",
                "fault",
                format_args!("trigger: trace line {nth} containing {pattern:?}"),
            );
            for (after, e) in then {
                self.push(now + after, e);
            }
        }
    }

    /// A torn write just crashed the host's software: schedule its restart, if any.
    pub fn torn_restart(&mut self, s: &Scenario, seed: u64, now: Duration) {
        for (i, fault) in s.fault.iter().enumerate() {
            if let Fault::TornWrite {
                restart_after_secs: Some(r),
                ..
            } = fault.get_ref()
            {
                let after = Duration::from_secs_f64(r.pick(seed, 2 * i as u64 + 1));
                self.push(now + after, WorldEvent::Restart);
            }
        }
    }
}

/// The start event of a window, and its stop event when the window ends.
fn on_off(
    window: Option<(Duration, Option<Duration>)>,
    event: impl Fn(bool) -> WorldEvent,
) -> Vec<(Duration, WorldEvent)> {
    let mut v = vec![(Duration::ZERO, event(true))];
    if let Some((_, Some(len))) = window {
        v.push((len, event(false)));
    }
    v
}

/// What the trace says of an event.
pub fn describe(e: &WorldEvent) -> String {
    match e {
        WorldEvent::Crash => "crash server (unsynced writes are lost)".into(),
        WorldEvent::Restart => "restart server".into(),
        WorldEvent::Disk { fault, kind, on } => {
            let what = match kind {
                DiskFault::Full => "disk_full".to_string(),
                DiskFault::Io(ops) => format!("io_error on {ops:?}").to_lowercase(),
            };
            format!(
                "{what} (fault {fault}) {}",
                if *on { "begins" } else { "ends" }
            )
        }
        WorldEvent::ArmTorn => "torn_write armed: the next write of the server tears".into(),
        WorldEvent::Partition { link, one_way, on } => format!(
            "partition {}{} {}",
            link.name,
            if *one_way { " (one way)" } else { "" },
            if *on { "begins" } else { "heals" }
        ),
        WorldEvent::Latency { link, set } => match set {
            Some((min, max)) => format!(
                "latency {} {}..{} ms",
                link.name,
                min.as_millis(),
                max.as_millis()
            ),
            None => format!("latency {} back to the world's", link.name),
        },
    }
}
