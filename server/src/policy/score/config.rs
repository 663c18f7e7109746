//! The `[scoring]` section: on/off, the two thresholds, per-rule score overrides and the
//! operator's own rules. Everything is checked when the config is loaded (a bad regex, an
//! override for a rule that does not exist, a junk threshold above the reject one): a typo
//! in a spam rule must stop the server at start, not silently score nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[scoring]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreConfig {
    /// Off by default: a server with nothing configured adds no headers and files nothing.
    pub enabled: bool,
    /// At or above this total the message goes to the recipient's Junk folder
    /// (SpamAssassin's `required_score`, 5.0 there too).
    pub junk: f64,
    /// At or above this total the message is refused at end of data (550 5.7.1).
    pub reject: f64,
    /// Body and rawbody rules see at most the first this many KiB of each text part
    /// (SpamAssassin truncates too, `body_part_scan_size`, 50 KB there): the work per
    /// message is bounded whatever its size.
    pub body_scan_kib: usize,
    /// `[scoring.scores] MISSING_DATE = 0.5`: a built-in rule's score; 0 disables it
    /// (SpamAssassin's `score NAME 0`). `RCVD_IN_<ZONE>` names a DNS list's rule.
    pub scores: BTreeMap<String, f64>,
    /// `[[scoring.rule]]`: the operator's rules.
    pub rule: Vec<UserRule>,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            enabled: false,
            junk: 5.0,
            reject: 10.0,
            body_scan_kib: 256,
            scores: BTreeMap::new(),
            rule: Vec::new(),
        }
    }
}

/// One `[[scoring.rule]]`, after SpamAssassin's `header`, `body` and `rawbody` rules:
/// exactly one of `header = "Subject"`, `body = true`, `rawbody = true` says what
/// `pattern` (a Rust `regex`, `(?i)` for case-insensitive) is matched against.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRule {
    /// Shown in `X-Spam-Status` `tests=`; upper case, digits and `_`, like SpamAssassin's.
    pub name: String,
    /// A header field's name (case-insensitive): the rule matches each occurrence's
    /// decoded value (RFC 2047 words decoded, unfolded). `ALL`: the whole header block.
    #[serde(default)]
    pub header: Option<String>,
    /// The text parts as text: transfer encoding and charset decoded, HTML rendered to text.
    #[serde(default)]
    pub body: bool,
    /// The text parts decoded but HTML left as it is (tags, attributes, links).
    #[serde(default)]
    pub rawbody: bool,
    pub pattern: String,
    pub score: f64,
}

/// What is wrong in `[scoring]`: the key to point at (a dotted path, or a rule's name,
/// found by its `name = ` line), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScoreError {
    pub at: ScoreErrorAt,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScoreErrorAt {
    /// A key of `[scoring]`, e.g. `scoring.junk` or `scoring.scores.MISING_DATE`.
    Key(String),
    /// The `[[scoring.rule]]` with this name.
    Rule(String),
}

impl std::fmt::Display for ScoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ScoreError {
    pub(super) fn key(key: impl Into<String>, message: impl Into<String>) -> ScoreError {
        ScoreError {
            at: ScoreErrorAt::Key(key.into()),
            message: message.into(),
        }
    }

    pub(super) fn rule(name: &str, message: impl std::fmt::Display) -> ScoreError {
        ScoreError {
            at: ScoreErrorAt::Rule(name.to_string()),
            message: format!("scoring rule {name:?}: {message}"),
        }
    }
}

/// A rule name as SpamAssassin spells them (so `tests=` stays one comma-separated token).
pub(super) fn is_rule_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
