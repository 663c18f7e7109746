//! `quota`: each account's use, in octets and messages, read from the store's mailbox
//! folders (`mail/<account>/new/<id>`, see `store/`), against its quota (the account's own,
//! else `[quota]`'s defaults). Read-only: it never touches a message.

use std::fmt::Write;
use std::path::Path;

use crate::config::ServerConfig;
use crate::mail::Address;

/// One account's use and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub account: String,
    pub bytes: u64,
    pub messages: u64,
    pub max_bytes: Option<u64>,
    pub max_messages: Option<u64>,
}

impl Usage {
    /// The fuller of the two measures, in percent of its limit (none: no limit).
    pub fn percent(&self) -> Option<u64> {
        let pct = |used: u64, max: Option<u64>| max.map(|m| used.saturating_mul(100) / m.max(1));
        match (
            pct(self.bytes, self.max_bytes),
            pct(self.messages, self.max_messages),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Use of every configured account under `data_dir` (a missing mailbox is empty).
pub fn usage(config: &ServerConfig, data_dir: &Path) -> Result<Vec<Usage>, String> {
    let mut out = Vec::new();
    for a in &config.accounts {
        let t = a.table();
        let key = Address::parse(&t.address)
            .map(|a| a.key())
            .unwrap_or_else(|_| t.address.clone());
        let dir = crate::store::mailbox_dir(&key).map_err(|e| e.to_string())?;
        let (bytes, messages) = scan(&data_dir.join(dir))?;
        out.push(Usage {
            account: t.address,
            bytes,
            messages,
            max_bytes: t.quota_bytes.or(config.quota.default_bytes),
            max_messages: t.quota_messages.or(config.quota.default_messages),
        });
    }
    Ok(out)
}

/// Octets and messages in one `new/` folder; temp files (`.tmp-*`) are not messages yet.
fn scan(dir: &Path) -> Result<(u64, u64), String> {
    #[allow(clippy::disallowed_methods)]
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let (mut bytes, mut messages) = (0, 0);
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let meta = e
            .metadata()
            .map_err(|err| format!("{}: {err}", e.path().display()))?;
        if meta.is_file() {
            bytes += meta.len();
            messages += 1;
        }
    }
    Ok((bytes, messages))
}

fn of(used: u64, max: Option<u64>) -> String {
    match max {
        Some(m) => format!("{used}/{m} ({}%)", used.saturating_mul(100) / m.max(1)),
        None => format!("{used}/unlimited"),
    }
}

/// The `quota` table.
pub fn report(usage: &[Usage]) -> String {
    let mut out = String::new();
    let width = usage
        .iter()
        .map(|u| u.account.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:width$}  {:>24}  {:>20}",
        "account", "octets", "messages"
    );
    for u in usage {
        let _ = writeln!(
            out,
            "{:width$}  {:>24}  {:>20}",
            u.account,
            of(u.bytes, u.max_bytes),
            of(u.messages, u.max_messages)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuller_measure_counts() {
        let u = Usage {
            account: "a@x".into(),
            bytes: 95,
            messages: 1,
            max_bytes: Some(100),
            max_messages: Some(10),
        };
        assert_eq!(u.percent(), Some(95));
        let unlimited = Usage {
            max_bytes: None,
            max_messages: None,
            ..u
        };
        assert_eq!(unlimited.percent(), None);
    }
}
