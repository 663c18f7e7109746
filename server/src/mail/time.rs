//! Points in time as the world's clock gives them.

use std::time::Duration;

/// A point in time: the duration since the UNIX epoch, as the world's clock says.
///
/// A newtype rather than `SystemTime` so it is `Ord`, `Copy`, cheap to do arithmetic on and
/// impossible to confuse with the real clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub Duration);

impl Timestamp {
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(Duration::from_secs(secs))
    }
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
    pub fn as_millis(self) -> u128 {
        self.0.as_millis()
    }
    /// `self + d`, saturating instead of overflowing (a far-future deadline is still valid).
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d))
    }
    /// How long from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}
