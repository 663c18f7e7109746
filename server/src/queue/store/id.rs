//! The queue id (`<secs>.<micros>.<16 hex>`): arrival time plus randomness, also the queue
//! file's name, so ids sort by arrival and parse back from a directory listing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::env::Timestamp;

/// A queued message's id; also its file name. See the module docs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId {
    secs: u64,
    micros: u32,
    random: u64,
}

impl QueueId {
    /// The id of a message queued at `at` with a fresh random number.
    pub fn new(at: Timestamp, random: u64) -> QueueId {
        QueueId {
            secs: at.as_secs(),
            micros: at.0.subsec_micros(),
            random,
        }
    }

    /// Parses an id in its canonical form only (exactly what `Display` writes), so that
    /// every id has exactly one file name and no other string — `..`, `a/b`, `.tmp-x`,
    /// upper-case hex, a sign — is ever accepted as one.
    pub fn parse(s: &str) -> Option<QueueId> {
        let mut parts = s.split('.');
        let (secs, micros, random) = (parts.next()?, parts.next()?, parts.next()?);
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        let ok = parts.next().is_none()
            && (10..=20).contains(&secs.len())
            && digits(secs)
            && micros.len() == 6
            && digits(micros)
            && random.len() == 16
            && random
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return None;
        }
        let id = QueueId {
            secs: secs.parse().ok()?,
            micros: micros.parse().ok()?,
            random: u64::from_str_radix(random, 16).ok()?,
        };
        (id.to_string() == s).then_some(id)
    }

    /// The enqueue time the id was made from (to the microsecond).
    pub fn timestamp(&self) -> Timestamp {
        Timestamp(Duration::new(self.secs, self.micros * 1000))
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:010}.{:06}.{:016x}",
            self.secs, self.micros, self.random
        )
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({self})")
    }
}

/// A string that is not a canonical [`QueueId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid queue id {0:?}")]
pub struct InvalidQueueId(pub String);

impl FromStr for QueueId {
    type Err = InvalidQueueId;
    fn from_str(s: &str) -> Result<QueueId, InvalidQueueId> {
        QueueId::parse(s).ok_or_else(|| InvalidQueueId(s.to_string()))
    }
}
