//! The payload grammar of a folder's index log (framed by [`crate::durable::log`]).
//!
//! One record per line, fields separated by one space:
//!
//! ```text
//! V <uidvalidity> <uidnext> <highestmodseq>              the header: first record of a log
//! A <uid> <modseq> <internaldate> <size> <file> [flag…]  a message got a UID (or moved in)
//! F <uid> <modseq> [flag…]                               its flags are now exactly these
//! X <uid> <modseq>                                       expunged (the file goes after)
//! P <uid> <newfile> <target folder>                      being moved (see `moving.rs`)
//! C <uid>                                                that move was rolled back
//! ```
//!
//! The target folder comes last because a folder name may contain spaces; file ids and
//! flags never do (the scanner and [`Flags`] refuse them).

use super::flags::Flags;
use super::name::FolderName;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Header {
        uidvalidity: u32,
        uidnext: u32,
        highest_modseq: u64,
    },
    Added {
        uid: u32,
        modseq: u64,
        internal_date: u64,
        size: u64,
        file: String,
        flags: Flags,
    },
    Flags {
        uid: u32,
        modseq: u64,
        flags: Flags,
    },
    Expunged {
        uid: u32,
        modseq: u64,
    },
    Moving {
        uid: u32,
        new_file: String,
        target: FolderName,
    },
    Cancelled {
        uid: u32,
    },
}

fn with_flags(mut s: String, flags: &Flags) -> String {
    for t in flags.tokens() {
        s.push(' ');
        s.push_str(t);
    }
    s
}

impl Record {
    pub fn encode(&self) -> String {
        match self {
            Record::Header {
                uidvalidity,
                uidnext,
                highest_modseq,
            } => format!("V {uidvalidity} {uidnext} {highest_modseq}"),
            Record::Added {
                uid,
                modseq,
                internal_date,
                size,
                file,
                flags,
            } => with_flags(
                format!("A {uid} {modseq} {internal_date} {size} {file}"),
                flags,
            ),
            Record::Flags { uid, modseq, flags } => with_flags(format!("F {uid} {modseq}"), flags),
            Record::Expunged { uid, modseq } => format!("X {uid} {modseq}"),
            Record::Moving {
                uid,
                new_file,
                target,
            } => format!("P {uid} {new_file} {target}"),
            Record::Cancelled { uid } => format!("C {uid}"),
        }
    }

    /// `None` for anything not in the grammar (a record from a newer version, or damage
    /// that happens to pass the checksum): skipped, never a panic.
    pub fn parse(payload: &[u8]) -> Option<Record> {
        let s = std::str::from_utf8(payload).ok()?;
        let (kind, rest) = s.split_once(' ').unwrap_or((s, ""));
        let mut f = rest.split(' ');
        let mut num = || f.next()?.parse::<u64>().ok();
        let uid = |n: u64| u32::try_from(n).ok().filter(|&u| u > 0);
        Some(match kind {
            "V" => Record::Header {
                uidvalidity: uid(num()?)?,
                uidnext: uid(num()?)?,
                highest_modseq: num()?,
            },
            "A" => {
                let mut f = rest.split(' ');
                let mut num = || f.next()?.parse::<u64>().ok();
                let (u, modseq, internal_date, size) = (num()?, num()?, num()?, num()?);
                let file = f.next().filter(|s| is_file_id(s))?.to_string();
                Record::Added {
                    uid: uid(u)?,
                    modseq,
                    internal_date,
                    size,
                    file,
                    flags: Flags::parse(f).ok()?,
                }
            }
            "F" => {
                let mut f = rest.split(' ');
                let mut num = || f.next()?.parse::<u64>().ok();
                let (u, modseq) = (num()?, num()?);
                let flags = Flags::parse(f.filter(|t| !t.is_empty())).ok()?;
                Record::Flags {
                    uid: uid(u)?,
                    modseq,
                    flags,
                }
            }
            "X" => Record::Expunged {
                uid: uid(num()?)?,
                modseq: num()?,
            },
            "P" => {
                let mut f = rest.splitn(3, ' ');
                let u = uid(f.next()?.parse().ok()?)?;
                let new_file = f.next().filter(|s| is_file_id(s))?.to_string();
                let target = FolderName::parse(f.next()?).ok()?;
                Record::Moving {
                    uid: u,
                    new_file,
                    target,
                }
            }
            "C" => Record::Cancelled { uid: uid(num()?)? },
            _ => return None,
        })
    }
}

/// Whether a directory entry can be a message file the index tracks: not a dot-file (temp
/// files, folders), printable ASCII without spaces or slashes, so it fits a record field.
pub fn is_file_id(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips() {
        let records = [
            Record::Header {
                uidvalidity: 1_700_000_000,
                uidnext: 7,
                highest_modseq: 12,
            },
            Record::Added {
                uid: 3,
                modseq: 4,
                internal_date: 1_700_000_100,
                size: 512,
                file: "1700000100.000001.00ff".into(),
                flags: Flags::parse(["\\Seen", "$Work"]).unwrap(),
            },
            Record::Flags {
                uid: 3,
                modseq: 5,
                flags: Flags::new(),
            },
            Record::Flags {
                uid: 3,
                modseq: 6,
                flags: Flags::parse(["\\Flagged"]).unwrap(),
            },
            Record::Expunged { uid: 3, modseq: 7 },
            Record::Moving {
                uid: 4,
                new_file: "x.1".into(),
                target: FolderName::parse("Lists/Rust lang").unwrap(),
            },
            Record::Cancelled { uid: 4 },
        ];
        for r in records {
            assert_eq!(
                Record::parse(r.encode().as_bytes()),
                Some(r.clone()),
                "{r:?}"
            );
        }
    }

    #[test]
    fn anything_else_is_skipped() {
        for bad in [
            "",
            "V",
            "V 0 1 1",
            "V 1 0 1",
            "A 1 1 1 1",
            "A 1 1 1 1 .tmp-x",
            "A 1 1 1 1 f \\Bogus",
            "X x 1",
            "P 1 f ../up",
            "Z 1",
            "A 99999999999 1 1 1 f",
            "\u{0}",
        ] {
            assert_eq!(Record::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(Record::parse(&[0xff, b' ', b'1']), None);
    }
}
