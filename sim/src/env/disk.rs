//! Disk faults of the simulated filesystem: what `[[fault]]` kinds `io_error`, `disk_full`
//! and `torn_write` do to the server's file operations.
//!
//! The runner switches windows on and off at their (seed-picked) times, between steps, and
//! traces each switch; [`SimEnv`](super::SimEnv) asks before every operation. The state is
//! shared by every boot of the server, so a disk stays full across a restart and a torn
//! write tears once per run.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use crate::scenario::IoOps;

/// What a window does while it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// EIO on the operations named.
    Io(IoOps),
    /// ENOSPC on writes, appends and directory creations.
    Full,
}

/// When a torn write happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornAt {
    /// The first write once the runner arms it (at its time).
    Armed,
    /// The nth write (from 1) of the run.
    Nth(u64),
}

/// What the env does with one write.
#[derive(Debug)]
pub enum WriteVerdict {
    Go,
    Fail(io::Error),
    /// Write a prefix, make it durable, then stop: the runner crashes the host.
    Tear,
}

#[derive(Default)]
struct State {
    /// Windows switched on, by fault index (several may overlap).
    on: BTreeMap<usize, DiskFault>,
    torn: Option<TornAt>,
    writes: u64,
    /// A torn write happened and the runner has not crashed the host yet.
    crash_due: bool,
}

/// The world's disk faults, shared between the runner and every boot's env.
#[derive(Clone, Default)]
pub struct DiskFaults(Arc<Mutex<State>>);

impl DiskFaults {
    pub fn switch(&self, fault: usize, kind: DiskFault, on: bool) {
        let mut st = self.0.lock().unwrap();
        if on {
            st.on.insert(fault, kind);
        } else {
            st.on.remove(&fault);
        }
    }

    /// Is any disk window on now?
    pub fn any_on(&self) -> bool {
        !self.0.lock().unwrap().on.is_empty()
    }

    /// Plans a torn write (at most one per run: a later plan replaces an unfired one).
    pub fn arm_torn(&self, at: TornAt) {
        self.0.lock().unwrap().torn = Some(at);
    }

    /// Takes the crash a torn write asked for.
    pub fn take_crash(&self) -> bool {
        std::mem::take(&mut self.0.lock().unwrap().crash_due)
    }

    /// Before a write or append.
    pub fn write(&self) -> WriteVerdict {
        let mut st = self.0.lock().unwrap();
        st.writes += 1;
        let tear = match st.torn {
            Some(TornAt::Armed) => true,
            Some(TornAt::Nth(n)) => st.writes == n,
            None => false,
        };
        if tear {
            st.torn = None;
            st.crash_due = true;
            return WriteVerdict::Tear;
        }
        if st.on.values().any(|k| *k == DiskFault::Full) {
            return WriteVerdict::Fail(full());
        }
        if st
            .on
            .values()
            .any(|k| matches!(k, DiskFault::Io(IoOps::Write | IoOps::All)))
        {
            return WriteVerdict::Fail(eio("write"));
        }
        WriteVerdict::Go
    }

    /// Before an fsync of a file or a directory.
    pub fn sync(&self) -> io::Result<()> {
        let st = self.0.lock().unwrap();
        if st
            .on
            .values()
            .any(|k| matches!(k, DiskFault::Io(IoOps::Fsync | IoOps::All)))
        {
            return Err(eio("fsync"));
        }
        Ok(())
    }

    /// Before a directory creation: a full disk has no room for a new directory either.
    pub fn mkdir(&self) -> io::Result<()> {
        let st = self.0.lock().unwrap();
        if st.on.values().any(|k| *k == DiskFault::Full) {
            return Err(full());
        }
        Ok(())
    }
}

/// Built by hand, not from a raw errno, so the text (which reaches the trace) is the same
/// on every platform.
fn full() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "No space left on device (injected disk_full)",
    )
}

fn eio(op: &str) -> io::Error {
    io::Error::other(format!("Input/output error (injected io_error on {op})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_overlap_and_switch_off_independently() {
        let d = DiskFaults::default();
        assert!(matches!(d.write(), WriteVerdict::Go));
        d.switch(0, DiskFault::Full, true);
        d.switch(1, DiskFault::Io(IoOps::Fsync), true);
        match d.write() {
            WriteVerdict::Fail(e) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
            v => panic!("{v:?}"),
        }
        assert!(d.sync().is_err());
        assert!(d.mkdir().is_err());
        d.switch(0, DiskFault::Full, false);
        assert!(matches!(d.write(), WriteVerdict::Go));
        assert!(d.mkdir().is_ok());
        assert!(d.sync().is_err());
        d.switch(1, DiskFault::Io(IoOps::Fsync), false);
        assert!(d.sync().is_ok());
    }

    #[test]
    fn io_error_on_writes_spares_fsync() {
        let d = DiskFaults::default();
        d.switch(3, DiskFault::Io(IoOps::Write), true);
        assert!(matches!(d.write(), WriteVerdict::Fail(_)));
        assert!(d.sync().is_ok());
    }

    #[test]
    fn the_nth_write_tears_once_and_asks_for_one_crash() {
        let d = DiskFaults::default();
        d.arm_torn(TornAt::Nth(3));
        assert!(matches!(d.write(), WriteVerdict::Go));
        assert!(matches!(d.write(), WriteVerdict::Go));
        assert!(!d.take_crash());
        assert!(matches!(d.write(), WriteVerdict::Tear));
        assert!(matches!(d.write(), WriteVerdict::Go));
        assert!(d.take_crash());
        assert!(!d.take_crash());
    }
}
