//! The greylist's file: one checksummed append-only log (`durable/log.rs`) of
//! [`Record`]s, replayed at start, rewritten whole when it has grown (compaction).
//!
//! Payload grammar, one record per payload, fields separated by one space:
//!
//! ```text
//! T <first_seen> <last_seen> <passed 0|1> <network> <sender> <recipient>
//! N <passes> <last_seen> <network>
//! ```
//!
//! Times are seconds since the epoch; the null sender is `<>`; in addresses every byte
//! outside `!`..`~`, and `%`, is `%XX` (a quoted local part may hold a space, SMTPUTF8 any
//! UTF-8). A payload that does not parse is skipped like a torn record: the worst a lost
//! record does is greylist one client once more.

use std::io;
use std::path::{Path, PathBuf};

use super::table::{ClientNet, Entry, NetEntry, Record, Triplet};
use crate::durable::log;
use crate::env::{Env, Timestamp};

/// Where the state lives, under the data root.
pub const DIR: &str = "greylist";
pub const FILE: &str = "greylist/triplets.log";
const TMP: &str = "greylist/triplets.log.tmp";

pub fn path() -> PathBuf {
    PathBuf::from(FILE)
}

/// Appends `r`'s framed payload to `out`.
pub fn encode_into(out: &mut Vec<u8>, r: &Record) {
    let payload = match r {
        Record::Triplet(t, e) => format!(
            "T {} {} {} {} {} {}",
            e.first_seen.as_secs(),
            e.last_seen.as_secs(),
            u8::from(e.passed),
            t.net,
            escape(&t.sender, true),
            escape(&t.recipient, false),
        ),
        Record::Net(net, n) => format!("N {} {} {net}", n.passes, n.last_seen.as_secs()),
    };
    // Escaping leaves no newline in a payload, so framing cannot fail.
    let _ = log::encode_into(out, payload.as_bytes());
}

/// Reads one payload back; `None` if it is not a record of ours.
pub fn decode(payload: &[u8]) -> Option<Record> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut f = text.split(' ');
    let kind = f.next()?;
    let time = |s: Option<&str>| s?.parse::<u64>().ok().map(Timestamp::from_secs);
    let r = match kind {
        "T" => {
            let first_seen = time(f.next())?;
            let last_seen = time(f.next())?;
            let passed = match f.next()? {
                "0" => false,
                "1" => true,
                _ => return None,
            };
            let net = ClientNet::parse(f.next()?)?;
            let sender = unescape(f.next()?, true)?;
            let recipient = unescape(f.next()?, false)?;
            if recipient.is_empty() {
                return None;
            }
            Record::Triplet(
                Triplet {
                    net,
                    sender,
                    recipient,
                },
                Entry {
                    first_seen,
                    last_seen,
                    passed,
                },
            )
        }
        "N" => {
            let passes = f.next()?.parse().ok()?;
            let last_seen = time(f.next())?;
            let net = ClientNet::parse(f.next()?)?;
            Record::Net(net, NetEntry { passes, last_seen })
        }
        _ => return None,
    };
    f.next().is_none().then_some(r)
}

fn escape(s: &str, null_is_brackets: bool) -> String {
    if s.is_empty() && null_is_brackets {
        return "<>".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'%' => out.push_str("%25"),
            b'!'..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn unescape(s: &str, null_is_brackets: bool) -> Option<String> {
    if null_is_brackets && s == "<>" {
        return Some(String::new());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

/// What a replay found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    pub records: usize,
    /// Torn, damaged or foreign lines, skipped.
    pub bad: usize,
}

/// The records of the log text `bytes`, in order, and how many lines were skipped.
pub fn replay(bytes: &[u8]) -> (Vec<Record>, Replay) {
    let mut out = Vec::new();
    let mut stats = Replay::default();
    for line in log::records(bytes) {
        match line.record.ok().and_then(decode) {
            Some(r) => {
                out.push(r);
                stats.records += 1;
            }
            None => stats.bad += 1,
        }
    }
    (out, stats)
}

/// Reads the log (none yet: empty).
pub async fn read<E: Env>(env: &E) -> io::Result<Vec<u8>> {
    match env.read(Path::new(FILE)).await {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Replaces the log with `records`, durably: temp file, fsync, rename, directory fsync
/// (the classic commit; a crash leaves either the old log or the new one).
pub async fn rewrite<E: Env>(env: &E, records: &[Record]) -> io::Result<()> {
    let mut bytes = Vec::new();
    for r in records {
        encode_into(&mut bytes, r);
    }
    crate::env::create_dir_durable(env, Path::new(DIR)).await?;
    env.write(Path::new(TMP), &bytes).await?;
    env.sync_file(Path::new(TMP)).await?;
    env.rename(Path::new(TMP), Path::new(FILE)).await?;
    env.sync_dir(Path::new(DIR)).await
}
