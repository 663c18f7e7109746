//! The session's timers as a table, in the spirit of quinn-proto's `TimerTable`: the session
//! arms and stops named timers as its state changes, the driver only asks for the earliest
//! deadline ([`super::Session::poll_timeout`]) and reports when it passed
//! ([`super::Session::handle_timeout`]). A new timer (an AUTH failure delay, a tarpit, a
//! greylisting retry hint) is one more variant here, not another path in the driver.

use crate::mail::Timestamp;

/// The session's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// Idle between commands (RFC 5321 §4.5.3.2.7).
    Command,
    /// Idle while a DATA body is received (§4.5.3.2.5, §4.5.3.2.6).
    Data,
    /// An error reply held back by the error tarpit (`limits.soft_errors`).
    Tarpit,
    /// The end of the pause before the greeting (`limits.greet_pause_ms`).
    Greet,
}

impl Timer {
    const ALL: [Timer; 4] = [Timer::Command, Timer::Data, Timer::Tarpit, Timer::Greet];

    fn index(self) -> usize {
        self as usize
    }
}

/// When each timer fires, if it is armed.
#[derive(Clone, Debug, Default)]
pub(super) struct TimerTable {
    deadlines: [Option<Timestamp>; Timer::ALL.len()],
}

impl TimerTable {
    pub(super) fn set(&mut self, timer: Timer, at: Option<Timestamp>) {
        self.deadlines[timer.index()] = at;
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.set(timer, None);
    }

    /// The earliest armed deadline.
    pub(super) fn next(&self) -> Option<Timestamp> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// A timer due at `now` (the earliest first), if any.
    pub(super) fn expired(&self, now: Timestamp) -> Option<Timer> {
        Timer::ALL
            .into_iter()
            .filter_map(|t| self.deadlines[t.index()].map(|at| (at, t)))
            .filter(|&(at, _)| at <= now)
            .min_by_key(|&(at, _)| at)
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_only_when_due() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Data, Some(Timestamp::from_secs(20)));
        t.set(Timer::Command, Some(Timestamp::from_secs(10)));
        assert_eq!(t.next(), Some(Timestamp::from_secs(10)));
        assert_eq!(t.expired(Timestamp::from_secs(9)), None);
        assert_eq!(t.expired(Timestamp::from_secs(30)), Some(Timer::Command));
        t.stop(Timer::Command);
        assert_eq!(t.expired(Timestamp::from_secs(30)), Some(Timer::Data));
        assert_eq!(t.next(), Some(Timestamp::from_secs(20)));
    }
}
