//! What an accept error means, and how long to wait before accepting again.
//!
//! An accept error is never a reason to stop serving. Two kinds matter:
//!
//! - **the connection's own trouble** (`ECONNABORTED`: the client reset it while it sat in
//!   the backlog; `EPROTO`, `EPERM` from a firewall, `EINTR`): that one connection is gone,
//!   the next one is fine — accept again at once;
//! - **the process or the system is out of something** (`EMFILE`, `ENFILE`, `ENOBUFS`,
//!   `ENOMEM`, and anything unknown): accepting again at once would fail again and spin a
//!   core, so wait, doubling the wait up to a cap, and reset it on the next success. The
//!   pending connections stay in the kernel's backlog meanwhile.
//!
//! The numbers are Go's `net/http` server's (5 ms doubling to 1 s), which has met this in
//! production for a decade; mini-redis doubles from 1 s but gives up after 64 s, which a mail
//! server must not do.

use std::io;
use std::time::Duration;

use rustix::io::Errno;

/// First wait after a resource error.
pub const FIRST: Duration = Duration::from_millis(5);
/// Longest wait between two accept attempts.
pub const CAP: Duration = Duration::from_secs(1);

/// The two kinds of accept error (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// Only that connection failed: accept again at once.
    Connection,
    /// Out of descriptors, buffers or memory (or unknown): back off.
    Resource,
}

impl AcceptError {
    pub fn classify(e: &io::Error) -> AcceptError {
        if let Some(errno) = e.raw_os_error().map(Errno::from_raw_os_error) {
            return match errno {
                Errno::CONNABORTED
                | Errno::CONNRESET
                | Errno::PROTO
                | Errno::PERM
                | Errno::INTR
                | Errno::AGAIN => AcceptError::Connection,
                _ => AcceptError::Resource,
            };
        }
        // Not an OS error (the simulated world's): go by kind.
        match e.kind() {
            io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock => AcceptError::Connection,
            _ => AcceptError::Resource,
        }
    }
}

/// The wait between accept attempts of one listener.
#[derive(Clone, Debug, Default)]
pub struct Backoff {
    last: Option<Duration>,
}

impl Backoff {
    /// How long to wait after this error (zero: accept again at once).
    pub fn after(&mut self, error: AcceptError) -> Duration {
        match error {
            AcceptError::Connection => Duration::ZERO,
            AcceptError::Resource => {
                let next = self.last.map_or(FIRST, |d| (d * 2).min(CAP));
                self.last = Some(next);
                next
            }
        }
    }

    /// A connection was accepted: the next resource error starts from [`FIRST`] again.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: Errno) -> io::Error {
        io::Error::from_raw_os_error(errno.raw_os_error())
    }

    #[test]
    fn descriptor_and_memory_exhaustion_back_off() {
        for e in [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM] {
            assert_eq!(
                AcceptError::classify(&os(e)),
                AcceptError::Resource,
                "{e:?}"
            );
        }
        // Unknown errors are treated as resource trouble: waiting is safe, spinning is not.
        assert_eq!(
            AcceptError::classify(&io::Error::other("?")),
            AcceptError::Resource
        );
    }

    #[test]
    fn a_connection_aborted_in_the_backlog_is_retried_at_once() {
        for e in [Errno::CONNABORTED, Errno::PROTO, Errno::PERM, Errno::INTR] {
            assert_eq!(
                AcceptError::classify(&os(e)),
                AcceptError::Connection,
                "{e:?}"
            );
        }
        let sim = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(AcceptError::classify(&sim), AcceptError::Connection);
        assert_eq!(
            Backoff::default().after(AcceptError::Connection),
            Duration::ZERO
        );
    }

    #[test]
    fn the_wait_doubles_to_the_cap_and_resets_on_success() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..10)
            .map(|_| b.after(AcceptError::Resource).as_millis())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.after(AcceptError::Resource), FIRST);
    }
}
