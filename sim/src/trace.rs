//! The trace: the world's memory. One event a line, simulated timestamp first, stable order.
//! Same scenario + same seed ⇒ byte-identical trace.
//!
//! Line format: `{elapsed seconds:>14.6} {host:<12} {source:<6} {event}`.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::clock::SimClock;

#[derive(Clone)]
pub struct Trace {
    clock: SimClock,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Trace {
    pub fn new(clock: SimClock) -> Self {
        Trace {
            clock,
            lines: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Records one event from `host` (`source` says which part: smtp, dns, store, world...).
    pub fn record(&self, host: &str, source: &str, event: impl fmt::Display) {
        let t = self.clock.elapsed();
        let line = format!(
            "{:>7}.{:06} {:<12} {:<6} {}",
            t.as_secs(),
            t.subsec_micros(),
            host,
            source,
            event
        );
        self.lines.lock().unwrap().push(line);
    }

    pub fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// A copy of the lines from the `from`-th on (for trace-driven faults).
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines
            .get(from..)
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }

    /// The whole trace as text, one line per event, newline-terminated.
    pub fn to_text(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let mut s = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines.iter() {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}
