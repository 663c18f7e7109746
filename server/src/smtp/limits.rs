//! The SMTP server's limits: protocol limits (RFC 5321 §4.5.3) and resource limits. Part of
//! the config file (`[limits]`), owned here because the session enforces them.

use std::time::Duration;

use serde::Deserialize;

/// Protocol limits (RFC 5321 §4.5.3) and resource limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4: at least 512).
    pub command_line: usize,
    /// Longest text line in DATA, CRLF included (§4.5.3.1.6: at least 1000). Enforced only
    /// under `long_lines = "reject"`.
    pub text_line: usize,
    /// What a content line longer than `text_line` does. Real mail has them (HTML
    /// newsletters, base64 without line breaks), and Postfix stores them intact (its
    /// `line_length_limit` only sizes its read buffer) and wraps them when relaying
    /// (`smtp_line_length_limit`); so do we by default. `reject` refuses the message with
    /// `500 5.5.6`, for strict tests.
    pub long_lines: LongLines,
    /// The header block kept in memory for the checks, in octets (the rest of a big
    /// message is spooled to disk). A longer header section is stored intact, but the
    /// checks only see its first this-many octets. Postfix's `header_size_limit` is
    /// 102 400.
    pub header_block: usize,
    /// Largest message accepted, in octets; advertised as `SIZE`.
    pub message_size: usize,
    /// Recipients per transaction (§4.5.3.1.8: at least 100).
    pub recipients: usize,
    /// Idle time allowed between commands (§4.5.3.2.7: 5 minutes).
    pub command_timeout_secs: u64,
    /// Idle time allowed between DATA chunks (§4.5.3.2.5/6: 3 minutes per block, 10 at the dot).
    pub data_timeout_secs: u64,
    /// Concurrent SMTP sessions; further connections get 421.
    pub connections: usize,
    /// Errors (4xx/5xx replies) a session may cause before we hang up with `421 4.7.0`
    /// (Postfix's `smtpd_hard_error_limit`, default 20).
    pub errors: usize,
    /// Errors a session may cause before each further error reply is delayed (Postfix's
    /// `smtpd_soft_error_limit`, default 10): error tarpitting, see `error_sleep_ms`.
    pub soft_errors: usize,
    /// The tarpit's step, in milliseconds: the n-th error past `soft_errors` is answered
    /// n × this late, so a client that keeps erring is slowed down more and more (Postfix
    /// ≤ 2.0 delayed by the error count in seconds; 2.1 and later by a fixed
    /// `smtpd_error_sleep_time`, default 1 s). 0 (the default here): no delay.
    pub error_sleep_ms: u64,
    /// The MX waits this long before its 220 greeting, and a client that sends anything
    /// meanwhile is an early talker: `554 5.5.1` and the connection is closed. RFC 5321
    /// §3.1 and §4.3.1 have the client wait for the greeting; ratware that fires its
    /// commands at once does not (sendmail's `greet_pause`, Postfix postscreen's PREGREET
    /// test with `postscreen_greet_action = drop`). 0 (the default): greet at once. Only
    /// the MX listener pauses: submission clients are our own users.
    pub greet_pause_ms: u64,
    /// Per-client connection and rate limits (`policy/limits.rs`).
    pub per_client: crate::policy::limits::ClientLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            command_line: 512,
            text_line: 1000,
            long_lines: LongLines::Keep,
            header_block: 64 * 1024,
            message_size: 10 * 1024 * 1024,
            recipients: 100,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            connections: 2000,
            errors: 20,
            soft_errors: 10,
            error_sleep_ms: 0,
            greet_pause_ms: 0,
            per_client: Default::default(),
        }
    }
}

/// See [`Limits::long_lines`].
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LongLines {
    /// Store lines of any length intact (Postfix).
    #[default]
    Keep,
    /// Refuse a message with a line over `text_line`: 500 5.5.6.
    Reject,
}

impl Limits {
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
    pub fn greet_pause(&self) -> Duration {
        Duration::from_millis(self.greet_pause_ms)
    }
    /// How late the reply to the `errors`-th error of a session goes out: nothing up to
    /// `soft_errors`, then one `error_sleep_ms` step more per error.
    pub fn error_delay(&self, errors: usize) -> Duration {
        let over = errors.saturating_sub(self.soft_errors) as u64;
        Duration::from_millis(self.error_sleep_ms.saturating_mul(over))
    }
}
