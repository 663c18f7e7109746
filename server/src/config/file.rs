//! Reading a config file with errors that point at it: `path:line:col: key `k`: message`,
//! then the offending line — for TOML syntax errors, unknown keys, wrong types (toml's own
//! error spans) and for [`ServerConfig::validate`]'s checks (the key's span, found in a
//! span-keeping parse of the same text). A typo in a config should cost the operator one
//! look, not a search.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, Table, Value};

use super::{ConfigError, ServerConfig};
use crate::directory::DirectoryError;
use crate::policy::score::ScoreErrorAt;

/// A config file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigFileError {
    pub path: PathBuf,
    /// Where in the file, when the error has a place.
    pub at: Option<Location>,
    /// The dotted key the error is about (`limits.command_line`), when one can be named.
    pub key: Option<String>,
    pub message: String,
}

/// A place in the file: 1-based line and column, and that line's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub source_line: String,
}

impl Location {
    fn of(source: &str, offset: usize) -> Location {
        let offset = floor_char_boundary(source, offset.min(source.len()));
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |p| p + 1);
        let column = before[start..].chars().count() + 1;
        let source_line = source[start..]
            .lines()
            .next()
            .unwrap_or("")
            .trim_end()
            .to_string();
        Location {
            line,
            column,
            source_line,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl ConfigFileError {
    /// An error reading the file itself (no place in it).
    pub fn io(path: &Path, error: &std::io::Error) -> ConfigFileError {
        ConfigFileError {
            path: path.to_path_buf(),
            at: None,
            key: None,
            message: format!("cannot read: {error}"),
        }
    }

    pub fn line(&self) -> Option<usize> {
        self.at.as_ref().map(|a| a.line)
    }
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(at) = &self.at {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(at) = self.at.as_ref().filter(|a| !a.source_line.is_empty()) {
            write!(f, "\n    {} | {}", at.line, at.source_line)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigFileError {}

/// Parses and validates the text of the config file at `path` (the path only names it in
/// errors; reading the file is the caller's, so this crate stays off `std::fs`).
pub fn parse(path: &Path, text: &str) -> Result<ServerConfig, ConfigFileError> {
    let keys = ImDocument::parse(text)
        .ok()
        .map(|doc| Keys::of(doc.as_table()));
    let config: ServerConfig = toml::from_str(text).map_err(|e| {
        let span = e.span();
        let key = match (&keys, &span) {
            (Some(keys), Some(span)) => keys.at(span.start),
            _ => None,
        };
        ConfigFileError {
            path: path.to_path_buf(),
            at: span.map(|s| Location::of(text, s.start)),
            key,
            message: e.message().trim().to_string(),
        }
    })?;
    if let Err(e) = config.validate() {
        let found = keys.as_ref().and_then(|k| k.locate(&e));
        return Err(ConfigFileError {
            path: path.to_path_buf(),
            at: found
                .as_ref()
                .and_then(|(_, span)| span.as_ref())
                .map(|s| Location::of(text, s.start)),
            key: found.map(|(k, _)| k).or_else(|| named_key(&e)),
            message: e.to_string(),
        });
    }
    Ok(config)
}

/// The key a semantic error is about, when the error names one itself.
fn named_key(e: &ConfigError) -> Option<String> {
    match e {
        ConfigError::LimitTooLow(k, _) => Some(format!("limits.{k}")),
        ConfigError::Queue(q) => Some(format!("queue.{}", q.key)),
        ConfigError::Greylist(g) => Some(format!("greylist.{}", g.key)),
        ConfigError::Directory(_) | ConfigError::Dkim(_) | ConfigError::DnsList { .. } => None,
        ConfigError::SenderAuth { key, .. } => Some(key.clone()),
        ConfigError::Password(super::PasswordError::BadParams(_)) => Some("auth.argon2".into()),
        ConfigError::Password(super::PasswordError::BadPassword(..)) => None,
        ConfigError::Scoring(s) => Some(match &s.at {
            ScoreErrorAt::Key(k) => k.clone(),
            ScoreErrorAt::Rule(_) => "scoring.rule".into(),
        }),
    }
}

/// Every key of the document with its spans, in document order.
struct Keys(Vec<Entry>);

struct Entry {
    path: String,
    /// From the key to the end of its value.
    span: Range<usize>,
    /// The value's own span (an array element's, for string elements of arrays).
    value: Option<Range<usize>>,
    /// The value when it is a string.
    string: Option<String>,
}

impl Keys {
    fn of(root: &Table) -> Keys {
        let mut out = Vec::new();
        walk_table(root, "", &mut out);
        Keys(out)
    }

    /// The innermost key whose span holds `offset`.
    fn at(&self, offset: usize) -> Option<String> {
        self.0
            .iter()
            .filter(|e| e.span.start <= offset && offset <= e.span.end)
            .min_by_key(|e| e.span.len())
            .map(|e| e.path.clone())
    }

    /// The key and value span a validation error is about.
    fn locate(&self, e: &ConfigError) -> Option<(String, Option<Range<usize>>)> {
        let by_path = |path: String| {
            self.0
                .iter()
                .find(|e| e.path == path)
                .map(|e| (path, e.value.clone()))
        };
        let by_string = |s: &str, last: bool| {
            let mut hits = self.0.iter().filter(|e| e.string.as_deref() == Some(s));
            let hit = if last { hits.next_back() } else { hits.next() };
            hit.map(|e| (e.path.clone(), e.value.clone()))
        };
        match e {
            ConfigError::LimitTooLow(..)
            | ConfigError::Queue(_)
            | ConfigError::SenderAuth { .. } => by_path(named_key(e)?),
            ConfigError::Dkim(_) => None,
            ConfigError::DnsList { zone, .. } => by_string(zone, false),
            ConfigError::Greylist(g) => match &g.value {
                Some(v) => by_string(v, false),
                None => by_path(named_key(e)?),
            },
            ConfigError::Directory(DirectoryError::BadAddress(a, _)) => by_string(a, false)
                .or_else(|| {
                    self.0
                        .iter()
                        .find(|e| e.path.ends_with(&format!(".{a}")))
                        .map(
                            // An alias name (a key, not a value).
                            |e| (e.path.clone(), Some(e.span.clone())),
                        )
                }),
            ConfigError::Directory(DirectoryError::ForeignAccount(a, _)) => by_string(a, false),
            // The second one is the mistake.
            ConfigError::Directory(DirectoryError::DuplicateAccount(a)) => by_string(a, true),
            ConfigError::Directory(
                DirectoryError::AliasTargetNotLocal(d, _) | DirectoryError::AliasDomainIsLocal(d),
            ) => by_path(format!("domain_aliases.{d}")),
            ConfigError::Directory(
                DirectoryError::CatchAllNotLocal(d) | DirectoryError::CatchAllToNowhere(d, _),
            ) => by_path(format!("catch_all.{d}")),
            ConfigError::Directory(DirectoryError::BadSendAs(_, p)) => by_string(p, false),
            ConfigError::Directory(DirectoryError::List(l)) => by_string(l.culprit(), false),
            ConfigError::Password(super::PasswordError::BadParams(_)) => by_path(named_key(e)?),
            // The account's address, which the error names.
            ConfigError::Password(super::PasswordError::BadPassword(a, _)) => by_string(a, false),
            ConfigError::Scoring(s) => match &s.at {
                ScoreErrorAt::Key(k) => by_path(k.clone()),
                // The rule's `name = ` line.
                ScoreErrorAt::Rule(name) => self
                    .0
                    .iter()
                    .find(|e| e.path == "scoring.rule.name" && e.string.as_deref() == Some(name))
                    .map(|e| ("scoring.rule.name".to_string(), e.value.clone())),
            },
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn walk_table(table: &Table, prefix: &str, out: &mut Vec<Entry>) {
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        let path = join(prefix, name);
        walk_item(&path, key.span(), item, out);
    }
}

fn walk_item(path: &str, key: Option<Range<usize>>, item: &Item, out: &mut Vec<Entry>) {
    let value = item.span();
    let span = match (&key, &value) {
        (Some(k), Some(v)) => k.start.min(v.start)..k.end.max(v.end),
        (Some(s), None) | (None, Some(s)) => s.clone(),
        (None, None) => 0..0,
    };
    let string = item.as_str().map(str::to_string);
    let spanned = key.is_some() || value.is_some();
    if spanned {
        out.push(Entry {
            path: path.to_string(),
            span,
            value: value.clone(),
            string,
        });
    }
    match item {
        Item::Table(t) => walk_table(t, path, out),
        Item::ArrayOfTables(tables) => {
            for t in tables.iter() {
                walk_table(t, path, out);
            }
        }
        Item::Value(v) => walk_value(path, v, out),
        Item::None => {}
    }
}

fn walk_value(path: &str, value: &Value, out: &mut Vec<Entry>) {
    match value {
        Value::Array(items) => {
            for v in items.iter() {
                if let Some(span) = v.span() {
                    out.push(Entry {
                        path: path.to_string(),
                        span: span.clone(),
                        value: Some(span),
                        string: v.as_str().map(str::to_string),
                    });
                }
                walk_value(path, v, out);
            }
        }
        Value::InlineTable(t) => {
            for (name, _) in t.iter() {
                if let Some((key, item)) = t.get_key_value(name) {
                    walk_item(&join(path, name), key.span(), item, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "hostname = \"mx.example.org\"\ndomains = [\"example.org\"]\naccounts = [\"alice@example.org\"]\n";

    fn err(text: &str) -> ConfigFileError {
        parse(Path::new("etc/mail.toml"), text).unwrap_err()
    }

    #[test]
    fn a_bad_list_member_points_at_its_line() {
        let e = err(&format!(
            "{GOOD}[[lists]]\naddress = \"team@example.org\"\nmembers = [\"alice@example.org\",\n  \"nobody@example.org\"]\n"
        ));
        assert_eq!(e.line(), Some(7), "{e}");
        assert!(e.message.contains("nobody has it"), "{e}");
    }

    #[test]
    fn a_good_file_parses() {
        let c = parse(Path::new("x.toml"), GOOD).unwrap();
        assert_eq!(c.hostname, "mx.example.org");
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../../serve.example.toml");
        let c = parse(Path::new("serve.example.toml"), text).unwrap();
        assert_eq!(c.accounts.len(), 3);
        assert!(c.listen.submission.is_some() && c.listen.submissions.is_some());
    }

    #[test]
    fn a_syntax_error_names_line_and_column() {
        let e = err(&format!("{GOOD}[limits\nrecipients = 5\n"));
        assert_eq!(e.line(), Some(4), "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with("etc/mail.toml:4:"), "{shown}");
        assert!(shown.ends_with("\n    4 | [limits"), "{shown}");
    }

    #[test]
    fn an_unknown_key_is_named_with_its_table() {
        let e = err(&format!("{GOOD}[limits]\nrecipients = 5\nconections = 3\n"));
        assert_eq!(e.line(), Some(6), "{e}");
        assert_eq!(e.key.as_deref(), Some("limits.conections"), "{e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(
                "etc/mail.toml:6:1: key `limits.conections`: unknown field `conections`"
            ),
            "{shown}"
        );
        assert!(shown.ends_with("    6 | conections = 3"), "{shown}");
    }

    #[test]
    fn a_wrong_type_points_at_the_value() {
        let e = err(&format!("{GOOD}[limits]\nrecipients = \"many\"\n"));
        assert_eq!(e.line(), Some(5), "{e}");
        assert_eq!(e.at.as_ref().unwrap().column, 14, "{e}");
        assert_eq!(e.key.as_deref(), Some("limits.recipients"), "{e}");
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn a_limit_below_the_rfc_minimum_points_at_its_line() {
        let e = err(&format!("{GOOD}\n[limits]\ncommand_line = 100\n"));
        assert_eq!(e.key.as_deref(), Some("limits.command_line"), "{e}");
        assert_eq!(e.line(), Some(6), "{e}");
        assert!(
            e.message.contains("below the RFC 5321 minimum of 512"),
            "{e}"
        );
        // Dotted keys are found too.
        let e = err(&format!("{GOOD}limits.text_line = 80\n"));
        assert_eq!(e.key.as_deref(), Some("limits.text_line"), "{e}");
        assert_eq!(e.line(), Some(4), "{e}");
    }

    #[test]
    fn a_queue_setting_of_zero_points_at_its_line() {
        let e = err(&format!("{GOOD}[queue]\nlifetime_secs = 0\n"));
        assert_eq!(e.key.as_deref(), Some("queue.lifetime_secs"), "{e}");
        assert_eq!(e.line(), Some(5), "{e}");
    }

    #[test]
    fn directory_errors_point_at_the_offending_address() {
        let e = err("hostname = \"h\"\ndomains = [\"example.org\"]\naccounts = [\n  \"alice@example.org\",\n  \"bob@elsewhere.net\",\n]\n");
        assert_eq!(e.key.as_deref(), Some("accounts"), "{e}");
        assert_eq!(e.line(), Some(5), "{e}");
        assert_eq!(e.at.as_ref().unwrap().column, 3, "{e}");
        // A duplicate: the second occurrence is the mistake.
        let e = err("hostname = \"h\"\ndomains = [\"example.org\"]\naccounts = [\"a@example.org\",\n\"a@example.org\"]\n");
        assert_eq!(e.line(), Some(4), "{e}");
        assert!(e.message.contains("duplicate account"), "{e}");
    }

    #[test]
    fn domain_alias_and_catch_all_errors_name_their_key() {
        let base =
            "hostname = \"h\"\ndomains = [\"example.org\"]\naccounts = [\"a@example.org\"]\n";
        let e = err(&format!(
            "{base}[domain_aliases]\n\"example.net\" = \"elsewhere.net\"\n"
        ));
        assert_eq!(e.key.as_deref(), Some("domain_aliases.example.net"), "{e}");
        assert_eq!(e.line(), Some(5), "{e}");
        assert!(e.message.contains("not in domains"), "{e}");
        let e = err(&format!(
            "{base}[catch_all]\n\"example.org\" = \"nobody@example.org\"\n"
        ));
        assert_eq!(e.key.as_deref(), Some("catch_all.example.org"), "{e}");
        assert!(e.message.contains("reaches no mailbox"), "{e}");
        let e = err("hostname = \"h\"\ndomains = [\"example.org\"]\naccounts = [\n  { address = \"b@example.org\", send_as = [\"b*@x.test\"] },\n]\n");
        assert!(e.message.contains("send_as"), "{e}");
        assert_eq!(e.line(), Some(4), "{e}");
    }

    #[test]
    fn dns_list_errors_name_the_zone_and_its_line() {
        let base = "hostname = \"h\"\ndomains = [\"example.org\"]\n";
        let e = err(&format!(
            "{base}[[dnsbl]]\nzone = \"zen.example\"\n[[dnsbl]]\nzone = \"bad zone\"\n"
        ));
        assert_eq!(e.line(), Some(6), "{e}");
        assert!(
            e.message
                .contains("dnsbl: zone \"bad zone\" is not a domain name"),
            "{e}"
        );
        let e = err(&format!(
            "{base}[[dnswl]]\nzone = \"wl.example\"\ncodes = [\"10.0.0.1\"]\n"
        ));
        assert!(e.message.contains("10.0.0.1 is not in 127.0.0.0/8"), "{e}");
        assert_eq!(e.line(), Some(4), "{e}");
        let e = err(&format!(
            "{base}[[dnsbl]]\nzone = \"bl.example\"\nstage = \"data\"\n"
        ));
        assert_eq!(e.line(), Some(5), "{e}");
        // A scoring-only list without scoring would be a list that does nothing.
        let e = err(&format!(
            "{base}[[dnsbl]]\nzone = \"zen.example\"\n[[dnsbl]]\nzone = \"pbl.example\"\nstage = \"score\"\n"
        ));
        assert!(e.message.contains("needs [scoring] enabled"), "{e}");
        assert_eq!(e.line(), Some(6), "{e}");
    }

    #[test]
    fn scoring_parses_and_its_errors_point_at_their_line() {
        let c = parse(
            Path::new("x.toml"),
            &format!("{GOOD}[scoring]\nenabled = true\njunk = 4.0\n[scoring.scores]\nMISSING_DATE = 2.0\n[[scoring.rule]]\nname = \"WON\"\nbody = true\npattern = \"(?i)you have won\"\nscore = 3.0\n"),
        )
        .unwrap();
        assert!(c.scoring.enabled && c.scoring.junk == 4.0 && c.scoring.rule.len() == 1);
        assert_eq!(c.scoring.reject, 10.0);
        // A bad regex: the rule's name line.
        let e = err(&format!("{GOOD}[[scoring.rule]]\nname = \"OK\"\nbody = true\npattern = \"x\"\nscore = 1\n[[scoring.rule]]\nname = \"BAD\"\nheader = \"Subject\"\npattern = \"(x\"\nscore = 1\n"));
        assert_eq!(e.line(), Some(10), "{e}");
        assert_eq!(e.key.as_deref(), Some("scoring.rule.name"), "{e}");
        assert!(
            e.message.contains("scoring rule \"BAD\": bad pattern"),
            "{e}"
        );
        // An override of no rule: its key.
        let e = err(&format!(
            "{GOOD}[scoring]\nenabled = true\n[scoring.scores]\nMISING_DATE = 1\n"
        ));
        assert_eq!(e.key.as_deref(), Some("scoring.scores.MISING_DATE"), "{e}");
        assert_eq!(e.line(), Some(7), "{e}");
        // Unknown keys are serde's errors.
        let e = err(&format!("{GOOD}[scoring]\nthreshold = 5\n"));
        assert_eq!(e.key.as_deref(), Some("scoring.threshold"), "{e}");
    }

    #[test]
    fn password_errors_name_the_account_and_its_line() {
        let e = err("hostname = \"h\"\ndomains = [\"example.org\"]\naccounts = [\n  \"alice@example.org\",\n  { address = \"bob@example.org\", password = \"hunter2\" },\n]\n");
        assert_eq!(e.line(), Some(5), "{e}");
        assert!(e.message.contains("account \"bob@example.org\""), "{e}");
        assert!(e.message.contains("PHC"), "{e}");
        let e = err(&format!(
            "{GOOD}[auth]\nargon2 = {{ m_cost = 8, t_cost = 1, p_cost = 4 }}\n"
        ));
        assert_eq!(e.key.as_deref(), Some("auth.argon2"), "{e}");
        assert_eq!(e.line(), Some(5), "{e}");
    }

    #[test]
    fn an_error_without_a_place_still_names_the_file() {
        let e = ConfigFileError::io(
            Path::new("/nope.toml"),
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(e.to_string().starts_with("/nope.toml: cannot read:"), "{e}");
    }
}
