//! Content scoring (issue #10 item 7): a small SpamAssassin-like rule engine over the
//! parsed message. Each rule that fires adds its score; the total against two thresholds
//! gives an [`Action`] (deliver, file in Junk, refuse with 550 5.7.1), and
//! [`Score::headers`] renders `X-Spam-Score` and `X-Spam-Status` as SpamAssassin does.
//!
//! The rules are the built-in ones ([`rules`]: missing Date/Message-ID/From/Subject, HTML
//! only, a spoofing display name, risky attachments, and what SPF, DKIM, DMARC, the DNS
//! lists and the PTR check found, passed in as [`Signals`]) and the operator's
//! (`[[scoring.rule]]`: a regex over a header, the text or the raw text). Every score can
//! be changed or set to 0 (off) in `[scoring.scores]`.
//!
//! **Bounded work, no panics**: the message is parsed once (mail-parser never fails, it
//! gives up on what it cannot read and we score what is left); regexes are compiled at
//! start and match in linear time (the `regex` crate has no backtracking); body rules see
//! at most `body_scan_kib` of each text part, as SpamAssassin's `body_part_scan_size` does.
//! The result depends on nothing but the bytes, the signals and the config.
//!
//! This module decides nothing itself: the end-of-data check asks [`Scorer::score`] and
//! applies [`Score::action`].

mod config;
mod headers;
pub mod rules;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;

use mail_parser::{Address, HeaderValue, Message, MessageParser, PartType};
use regex::{Regex, RegexBuilder};

pub use config::{ScoreConfig, ScoreError, ScoreErrorAt, UserRule};

use config::is_rule_name;
use rules::{builtin_hits, dnsbl_rule, BUILTINS, DNSBL_SCORE};

/// What the other checks found about this message and its client (filled by the caller).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// RFC 8601 result names: `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`,
    /// `permerror`.
    pub spf: Option<String>,
    pub dkim: Option<String>,
    pub dmarc: Option<String>,
    /// Zones of the scoring-only DNS lists the client is in.
    pub dnsbl: Vec<String>,
    /// The client's reverse DNS is forward-confirmed.
    pub fcrdns: Option<bool>,
}

/// One rule that fired.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub rule: String,
    pub score: f64,
}

/// A message's score: the sum of its hits, which are sorted by rule name (as SpamAssassin
/// lists them), so the same message always gives the same value and the same headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    pub total: f64,
    pub hits: Vec<Hit>,
}

/// What to do with a scored message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Deliver,
    /// Deliver to the recipient's Junk folder.
    Junk,
    /// Refuse at end of data, 550 5.7.1.
    Reject,
}

impl Score {
    /// `reject` at or above its threshold, else `junk` at or above its own; always
    /// [`Action::Deliver`] when scoring is off.
    pub fn action(&self, cfg: &ScoreConfig) -> Action {
        if !cfg.enabled {
            Action::Deliver
        } else if self.total >= cfg.reject {
            Action::Reject
        } else if self.total >= cfg.junk {
            Action::Junk
        } else {
            Action::Deliver
        }
    }

    /// Whether a rule fired (for `[[expect]]` checks and tests).
    pub fn hit(&self, rule: &str) -> bool {
        self.hits.iter().any(|h| h.rule == rule)
    }
}

/// What a user rule matches against.
#[derive(Clone, Debug)]
enum Target {
    /// Each occurrence of this header field (`ALL`: the header block).
    Header(String),
    Body,
    RawBody,
}

#[derive(Clone, Debug)]
struct Compiled {
    name: String,
    target: Target,
    regex: Regex,
    score: f64,
}

/// The rules of a `[scoring]` section, compiled once; shared by every session.
#[derive(Clone, Debug)]
pub struct Scorer {
    /// Built-in rules with their effective score (0: off).
    builtin: BTreeMap<&'static str, f64>,
    /// `RCVD_IN_*` overrides.
    dnsbl: BTreeMap<String, f64>,
    rules: Vec<Compiled>,
    body_limit: usize,
    addr_in_name: Regex,
}

/// A compiled regex may use this much memory; a rule that needs more is a config error.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Scorer {
    /// Checks and compiles `config`; the first thing wrong is the error (with the rule or
    /// key to point at, so the config loader can give its line).
    pub fn new(config: &ScoreConfig) -> Result<Scorer, ScoreError> {
        for (key, v) in [("junk", config.junk), ("reject", config.reject)] {
            if !v.is_finite() {
                return Err(ScoreError::key(
                    format!("scoring.{key}"),
                    format!("scoring: {key} must be a number"),
                ));
            }
        }
        if config.junk > config.reject {
            return Err(ScoreError::key(
                "scoring.junk",
                format!(
                    "scoring: junk ({}) is above reject ({})",
                    config.junk, config.reject
                ),
            ));
        }
        if !(1..=64 * 1024).contains(&config.body_scan_kib) {
            return Err(ScoreError::key(
                "scoring.body_scan_kib",
                "scoring: body_scan_kib must be between 1 and 65536",
            ));
        }
        let mut builtin: BTreeMap<&'static str, f64> =
            BUILTINS.iter().map(|b| (b.name, b.score)).collect();
        let mut dnsbl = BTreeMap::new();
        for (name, &score) in &config.scores {
            let key = format!("scoring.scores.{name}");
            if !score.is_finite() {
                return Err(ScoreError::key(
                    key,
                    format!("scoring: {name}: not a number"),
                ));
            }
            if let Some(s) = builtin.get_mut(name.as_str()) {
                *s = score;
            } else if name.starts_with("RCVD_IN_") && is_rule_name(name) {
                dnsbl.insert(name.clone(), score);
            } else {
                return Err(ScoreError::key(
                    key,
                    format!(
                        "scoring: no built-in rule {name:?} (user rules carry their own score)"
                    ),
                ));
            }
        }
        let mut rules: Vec<Compiled> = Vec::new();
        for r in &config.rule {
            rules.push(compile(r, &builtin, &rules)?);
        }
        let addr_in_name = Regex::new(r"[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)")
            .map_err(|e| ScoreError::key("scoring", e.to_string()))?;
        Ok(Scorer {
            builtin,
            dnsbl,
            rules,
            body_limit: config.body_scan_kib * 1024,
            addr_in_name,
        })
    }

    /// Scores `message` (the whole message as it would be stored, or as much of it as the
    /// caller has in memory) with what the other checks found.
    pub fn score(&self, message: &[u8], signals: &Signals) -> Score {
        let parsed = MessageParser::new().parse(message);
        let mut hits: BTreeMap<String, f64> = BTreeMap::new();
        builtin_hits(parsed.as_ref(), signals, &self.addr_in_name, &mut |name| {
            let score = self.builtin.get(name).copied().unwrap_or(0.0);
            hits.insert(name.to_string(), score);
        });
        for zone in &signals.dnsbl {
            let name = dnsbl_rule(zone);
            let score = self.dnsbl.get(&name).copied().unwrap_or(DNSBL_SCORE);
            hits.insert(name, score);
        }
        if let Some(m) = &parsed {
            let texts = Texts::new(m, self.body_limit);
            for r in &self.rules {
                if texts.matches(r, m) {
                    hits.insert(r.name.clone(), r.score);
                }
            }
        }
        let hits: Vec<Hit> = hits
            .into_iter()
            .filter(|(_, s)| *s != 0.0)
            .map(|(rule, score)| Hit { rule, score })
            .collect();
        Score {
            total: hits.iter().map(|h| h.score).sum(),
            hits,
        }
    }
}

fn compile(
    r: &UserRule,
    builtin: &BTreeMap<&str, f64>,
    done: &[Compiled],
) -> Result<Compiled, ScoreError> {
    let name = &r.name;
    if !is_rule_name(name) {
        return Err(ScoreError::rule(
            name,
            "a name is A-Z, 0-9 and _ (at most 64)",
        ));
    }
    if builtin.contains_key(name.as_str()) || name.starts_with("RCVD_IN_") {
        return Err(ScoreError::rule(name, "the name is a built-in rule's"));
    }
    if done.iter().any(|c| &c.name == name) {
        return Err(ScoreError::rule(name, "defined twice"));
    }
    if !r.score.is_finite() {
        return Err(ScoreError::rule(name, "score is not a number"));
    }
    let target = match (&r.header, r.body, r.rawbody) {
        (Some(h), false, false) => {
            let h = h.trim();
            if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(ScoreError::rule(
                    name,
                    format!("{h:?} is not a header field name"),
                ));
            }
            Target::Header(h.to_string())
        }
        (None, true, false) => Target::Body,
        (None, false, true) => Target::RawBody,
        _ => {
            return Err(ScoreError::rule(
                name,
                "give exactly one of header = \"Name\", body = true, rawbody = true",
            ))
        }
    };
    let regex = RegexBuilder::new(&r.pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            // The syntax error's last line says what is wrong; the lines above repeat the
            // pattern with a caret, which the config's own line already shows.
            let text = e.to_string();
            let why = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            ScoreError::rule(
                name,
                format!("bad pattern: {}", why.trim_start_matches("error: ")),
            )
        })?;
    Ok(Compiled {
        name: name.clone(),
        target,
        regex,
        score: r.score,
    })
}

/// The message's texts as the rules see them, each made once, when a rule first needs it.
struct Texts<'a> {
    message: &'a Message<'a>,
    limit: usize,
    body: std::cell::OnceCell<Vec<String>>,
    rawbody: std::cell::OnceCell<Vec<&'a str>>,
}

impl<'a> Texts<'a> {
    fn new(message: &'a Message<'a>, limit: usize) -> Texts<'a> {
        Texts {
            message,
            limit,
            body: Default::default(),
            rawbody: Default::default(),
        }
    }

    fn rawbody(&self) -> &[&'a str] {
        self.rawbody.get_or_init(|| {
            rules::text_parts(self.message)
                .filter_map(|p| match &p.body {
                    PartType::Text(t) | PartType::Html(t) => Some(head(t, self.limit)),
                    _ => None,
                })
                .collect()
        })
    }

    fn body(&self) -> &[String] {
        self.body.get_or_init(|| {
            rules::text_parts(self.message)
                .filter_map(|p| match &p.body {
                    PartType::Text(t) => Some(head(t, self.limit).to_string()),
                    PartType::Html(t) => Some(mail_parser::decoders::html::html_to_text(head(
                        t, self.limit,
                    ))),
                    _ => None,
                })
                .collect()
        })
    }

    fn matches(&self, rule: &Compiled, m: &Message<'_>) -> bool {
        match &rule.target {
            Target::Body => self.body().iter().any(|t| rule.regex.is_match(t)),
            Target::RawBody => self.rawbody().iter().any(|t| rule.regex.is_match(t)),
            Target::Header(name) if name.eq_ignore_ascii_case("ALL") => {
                let end = m.root_part().offset_body as usize;
                let raw = m.raw_message().get(..end).unwrap_or_default();
                let raw = &raw[..raw.len().min(self.limit)];
                rule.regex.is_match(&String::from_utf8_lossy(raw))
            }
            Target::Header(name) => m
                .headers()
                .iter()
                .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
                .any(|h| {
                    let v = header_text(m.raw_message(), h);
                    rule.regex.is_match(head(&v, self.limit))
                }),
        }
    }
}

/// A header field's value as text: mail-parser's decoding where it has one (RFC 2047
/// words, addresses as `Name <addr>`), else the raw value unfolded.
fn header_text<'a>(raw: &'a [u8], h: &'a mail_parser::Header<'a>) -> Cow<'a, str> {
    match &h.value {
        HeaderValue::Text(t) => Cow::Borrowed(t.as_ref()),
        HeaderValue::TextList(l) => Cow::Owned(l.join(", ")),
        HeaderValue::Address(a) => Cow::Owned(address_text(a)),
        _ => {
            let bytes = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            let text = String::from_utf8_lossy(bytes);
            let unfolded: String = text
                .split(['\r', '\n'])
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("");
            Cow::Owned(unfolded.trim().to_string())
        }
    }
}

fn address_text(a: &Address<'_>) -> String {
    a.iter()
        .map(|a| match (a.name.as_deref(), a.address.as_deref()) {
            (Some(n), Some(addr)) => format!("{n} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first `limit` bytes of `s`, cut at a character boundary.
fn head(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl ScoreConfig {
    /// Checks the section as [`Scorer::new`] does (which is how it is checked).
    pub fn validate(&self) -> Result<(), ScoreError> {
        Scorer::new(self).map(|_| ())
    }
}
