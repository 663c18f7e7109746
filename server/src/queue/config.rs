//! The `[queue]` config section: retry schedule, lifetime, delay warnings and limits of the
//! outbound queue.
//!
//! The defaults are Postfix's (`minimal_backoff_time`, `maximal_backoff_time`,
//! `maximal_queue_lifetime`, `delay_warning_time`, `default_destination_concurrency_limit`,
//! `hopcount_limit`, `smtp_connect_timeout`, and RFC 5321 §4.5.3.2's five-minute command
//! timeout), so a config that says nothing behaves like the MTA people already know. Times are
//! plain seconds in TOML (a scenario reads `first_retry_secs = 60`); the code asks the
//! accessors for `Duration`s so units never get mixed up.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::env::Timestamp;

use super::tls::TlsPolicy;

/// Retry schedule, lifetime and limits of the outbound queue.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Delay after the first failed attempt (Postfix `minimal_backoff_time`, 300 s).
    pub first_retry_secs: u64,
    /// Longest delay between attempts: the doubling stops here (Postfix
    /// `maximal_backoff_time`, 4000 s; 4020 s = 300 s doubled until it passes an hour, so the
    /// tail of the schedule is about one attempt every 67 minutes).
    pub max_retry_secs: u64,
    /// How long a message may stay queued before its remaining recipients bounce
    /// (Postfix `maximal_queue_lifetime`, 5 days).
    pub lifetime_secs: u64,
    /// After how long in the queue the sender gets one "still trying" DSN (Postfix
    /// `delay_warning_time`, 4 h here; 0 = never warn).
    pub delay_warning_secs: u64,
    /// Concurrent outbound connections to one destination domain (Postfix
    /// `default_destination_concurrency_limit`, 20): politeness towards remote MXs.
    pub max_per_destination: usize,
    /// Where a destination's concurrency window starts (Postfix
    /// `initial_destination_concurrency`, 5); it grows with sessions that work and shrinks
    /// with 421s and failed connections, up to `max_per_destination` (see
    /// `runner/scheduling.rs`).
    pub initial_per_destination: usize,
    /// Pause between attempts to one destination, in milliseconds (Postfix
    /// `default_destination_rate_delay`, 0 = off); when set, one attempt at a time there.
    pub rate_delay_ms: u64,
    /// A message with more `Received:` headers than this is looping and bounces (Postfix
    /// `hopcount_limit`, 50; RFC 5321 §6.3).
    pub max_received_headers: usize,
    /// TCP connect timeout towards a remote MX (Postfix `smtp_connect_timeout`, 30 s).
    pub connect_timeout_secs: u64,
    /// Wait for each reply of the remote server (RFC 5321 §4.5.3.2: at least 5 minutes).
    pub command_timeout_secs: u64,
    /// The port remote MXs are reached on (25; another port only for tests and benchmarks).
    pub smtp_port: u16,
    /// Send all remote mail to this host instead of looking up MX records (Postfix's
    /// `relayhost`): `"ip:port"`. Unset by default.
    pub relayhost: Option<std::net::SocketAddr>,
    /// STARTTLS towards remote MXs (Postfix `smtp_tls_security_level`): `"may"` (the
    /// default) upgrades whenever the peer offers it and falls back to plaintext; `"none"`
    /// never sends STARTTLS. See [`super::tls`].
    pub tls: TlsPolicy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            first_retry_secs: 300,
            max_retry_secs: 4020,
            lifetime_secs: 5 * 24 * 3600,
            delay_warning_secs: 4 * 3600,
            max_per_destination: 20,
            initial_per_destination: 5,
            rate_delay_ms: 0,
            max_received_headers: 50,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            smtp_port: 25,
            relayhost: None,
            tls: TlsPolicy::May,
        }
    }
}

/// A `[queue]` setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfigError {
    /// The offending key, as written in TOML.
    pub key: &'static str,
    pub reason: &'static str,
}

impl fmt::Display for QueueConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue.{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for QueueConfigError {}

impl QueueConfig {
    /// Refuses settings that would make the queue spin or stall: a zero retry delay (a
    /// failing destination would be hammered in a tight loop), a zero lifetime (everything
    /// bounces unattempted), zero concurrency (nothing is ever sent), zero timeouts.
    /// `max_retry_secs < first_retry_secs` is allowed: the cap simply wins.
    pub fn validate(&self) -> Result<(), QueueConfigError> {
        let zero = |key, v: u64| {
            if v == 0 {
                Err(QueueConfigError {
                    key,
                    reason: "must be greater than 0",
                })
            } else {
                Ok(())
            }
        };
        zero("first_retry_secs", self.first_retry_secs)?;
        zero("max_retry_secs", self.max_retry_secs)?;
        zero("lifetime_secs", self.lifetime_secs)?;
        zero("max_per_destination", self.max_per_destination as u64)?;
        zero(
            "initial_per_destination",
            self.initial_per_destination as u64,
        )?;
        zero("max_received_headers", self.max_received_headers as u64)?;
        zero("connect_timeout_secs", self.connect_timeout_secs)?;
        zero("command_timeout_secs", self.command_timeout_secs)?;
        Ok(())
    }

    pub fn first_retry(&self) -> Duration {
        Duration::from_secs(self.first_retry_secs)
    }

    pub fn max_retry(&self) -> Duration {
        Duration::from_secs(self.max_retry_secs)
    }

    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_secs)
    }

    /// When to send the delay DSN, or `None` if warnings are off (`delay_warning_secs = 0`):
    /// an `Option` so no caller can mistake "never" for "immediately".
    pub fn delay_warning(&self) -> Option<Duration> {
        (self.delay_warning_secs > 0).then(|| Duration::from_secs(self.delay_warning_secs))
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }

    /// How long to wait after the `attempts`-th failed attempt: `first_retry` after the
    /// first, doubling after each further one, never more than `max_retry`. With the
    /// defaults: 300, 600, 1200, 2400, 4020, 4020, ... seconds. `attempts = 0` (nothing has
    /// failed yet) is no delay. Saturating, so any attempt count is safe.
    pub fn retry_delay(&self, attempts: u32) -> Duration {
        if attempts == 0 {
            return Duration::ZERO;
        }
        let factor = 1u64.checked_shl(attempts - 1).unwrap_or(u64::MAX);
        let secs = self
            .first_retry_secs
            .saturating_mul(factor)
            .min(self.max_retry_secs);
        Duration::from_secs(secs)
    }

    /// When a message queued at `queued_at` expires (its undelivered recipients bounce).
    pub fn expires_at(&self, queued_at: Timestamp) -> Timestamp {
        queued_at.plus(self.lifetime())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_postfix_like() {
        let c = QueueConfig::default();
        assert_eq!(c.first_retry(), Duration::from_secs(300));
        assert_eq!(c.max_retry(), Duration::from_secs(4020));
        assert_eq!(c.lifetime(), Duration::from_secs(432_000));
        assert_eq!(c.delay_warning(), Some(Duration::from_secs(14_400)));
        assert_eq!(c.max_per_destination, 20);
        assert_eq!(c.max_received_headers, 50);
        assert_eq!(c.connect_timeout(), Duration::from_secs(30));
        assert_eq!(c.command_timeout(), Duration::from_secs(300));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn empty_toml_is_the_default_and_keys_override() {
        let c: QueueConfig = toml::from_str("").unwrap();
        assert_eq!(c, QueueConfig::default());
        let c: QueueConfig =
            toml::from_str("first_retry_secs = 60\ndelay_warning_secs = 0\n").unwrap();
        assert_eq!(c.first_retry_secs, 60);
        assert_eq!(c.delay_warning(), None);
        assert_eq!(c.max_retry_secs, 4020);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = toml::from_str::<QueueConfig>("first_retry = 60\n").unwrap_err();
        assert!(e.to_string().contains("first_retry"), "{e}");
    }

    #[test]
    fn retry_delay_doubles_and_caps() {
        let c = QueueConfig::default();
        let secs: Vec<u64> = (0..8).map(|a| c.retry_delay(a).as_secs()).collect();
        assert_eq!(secs, [0, 300, 600, 1200, 2400, 4020, 4020, 4020]);
        // No overflow, however many attempts.
        for a in [63, 64, 65, 1000, u32::MAX] {
            assert_eq!(c.retry_delay(a), Duration::from_secs(4020));
        }
        let huge = QueueConfig {
            first_retry_secs: u64::MAX / 2,
            max_retry_secs: u64::MAX,
            ..QueueConfig::default()
        };
        assert_eq!(huge.retry_delay(3), Duration::from_secs(u64::MAX));
        // A cap below the first delay wins from the start.
        let capped = QueueConfig {
            first_retry_secs: 600,
            max_retry_secs: 100,
            ..QueueConfig::default()
        };
        assert_eq!(capped.retry_delay(1), Duration::from_secs(100));
    }

    #[test]
    fn expiry_and_validation() {
        let c = QueueConfig::default();
        assert_eq!(
            c.expires_at(Timestamp::from_secs(1000)),
            Timestamp::from_secs(433_000)
        );
        let bad = QueueConfig {
            max_per_destination: 0,
            ..QueueConfig::default()
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(e.key, "max_per_destination");
        assert_eq!(
            e.to_string(),
            "queue.max_per_destination: must be greater than 0"
        );
        let bad = QueueConfig {
            first_retry_secs: 0,
            ..QueueConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().key, "first_retry_secs");
    }
}
