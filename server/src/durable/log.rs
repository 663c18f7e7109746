//! One checksummed append-only record log: the framing, not the meaning.
//!
//! A log is a byte string that only ever grows by whole records, appended and then fsynced
//! (through the [committer](super::committer)). Each record is
//!
//! ```text
//! \n<crc32 of payload, 8 lower-case hex> <payload>
//! ```
//!
//! where the payload is any bytes except `\n`. The queue store keeps one such log after each
//! message's body (per-recipient delivery state); IMAP flags and UIDs, greylisting state,
//! lockouts and suppression lists are meant to use the same one, each with its own payload
//! grammar on top.
//!
//! **Why the newline comes first.** A crash in the middle of an append leaves a torn record
//! at the tail: some prefix of its bytes, or (a file whose size grew before its data landed)
//! zeros. Because every record *starts* with a newline, whatever is left of a torn record
//! ends where the next record begins, so only the torn record fails its checksum and is
//! skipped; records appended after it (after a restart) still count. A torn record was never
//! acknowledged (its fsync had not returned), so skipping it loses nothing acknowledged.
//!
//! **Later records win.** [`records`] yields the records in file order; a reader replays
//! them in that order, so a later record about the same thing overrides an earlier one. That
//! is what lets a writer record a change by appending instead of rewriting.

use std::fmt;

use super::crc::crc32;

/// A payload that cannot be framed: it contains the record separator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("log record payload contains a newline")]
pub struct NewlineInPayload;

/// Frames `payload` as one record (see the module docs) and appends it to `out`.
///
/// Refuses a payload with a `\n` in it rather than writing a record a reader would split
/// in two (the payload grammars on top escape their separators, so this never happens to
/// well-formed payloads; the check makes the framing impossible to break by accident).
pub fn encode_into(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), NewlineInPayload> {
    if memchr::memchr(b'\n', payload).is_some() {
        return Err(NewlineInPayload);
    }
    out.reserve(10 + payload.len());
    out.push(b'\n');
    out.extend_from_slice(format!("{:08x} ", crc32(payload)).as_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// One framed record: `encode_into` into a fresh buffer.
pub fn encode(payload: &[u8]) -> Result<Vec<u8>, NewlineInPayload> {
    let mut out = Vec::new();
    encode_into(&mut out, payload)?;
    Ok(out)
}

/// Why a line of a log is not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRecord {
    /// Too short, or no checksum field: a torn record, zeros, or not ours.
    Malformed,
    /// The payload does not match its checksum: torn or damaged.
    ChecksumMismatch,
}

impl BadRecord {
    pub fn as_str(self) -> &'static str {
        match self {
            BadRecord::Malformed => "malformed record",
            BadRecord::ChecksumMismatch => "checksum mismatch",
        }
    }
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a log as the reader found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// Position among the `\n`-separated lines of the log (0 is whatever precedes the first
    /// record's newline, normally nothing). Only for messages about skipped records.
    pub number: usize,
    /// The record's payload, or why the line is not a record.
    pub record: Result<&'a [u8], BadRecord>,
}

/// Every non-empty line of `log`, in order: the payload of each record that checks out, and
/// for each line that does not, why. Never fails and never panics: whatever bytes a crash or
/// a disk left, the good records are found. See the module docs for why a bad line costs
/// only itself.
pub fn records(log: &[u8]) -> impl Iterator<Item = Line<'_>> {
    log.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(number, line)| Line {
            number,
            record: check(line),
        })
}

/// The payloads of the records that check out, in order (bad lines dropped).
pub fn payloads(log: &[u8]) -> impl Iterator<Item = &[u8]> {
    records(log).filter_map(|l| l.record.ok())
}

fn check(line: &[u8]) -> Result<&[u8], BadRecord> {
    match check_exact(line) {
        // A file whose size reached the disk before the data of its last append reads back
        // zeros there — where the torn record's leading newline should have been too — so
        // the zeros run on from the end of the record before it. That record was complete
        // (and acknowledged): it is the one before the zeros.
        Err(BadRecord::ChecksumMismatch) if line.last() == Some(&0) => {
            let end = line.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            check_exact(&line[..end]).map_err(|_| BadRecord::ChecksumMismatch)
        }
        r => r,
    }
}

fn check_exact(line: &[u8]) -> Result<&[u8], BadRecord> {
    if line.len() < 9 || line[8] != b' ' {
        return Err(BadRecord::Malformed);
    }
    let crc = parse_hex32(&line[..8]).ok_or(BadRecord::Malformed)?;
    let payload = &line[9..];
    if crc32(payload) != crc {
        return Err(BadRecord::ChecksumMismatch);
    }
    Ok(payload)
}

/// Exactly eight lower-case hex digits (one spelling per checksum).
fn parse_hex32(s: &[u8]) -> Option<u32> {
    if s.len() != 8 || !s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn log_of(payloads: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_into(&mut out, p.as_bytes()).unwrap();
        }
        out
    }

    fn good(log: &[u8]) -> Vec<String> {
        payloads(log)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    #[test]
    fn framing_round_trips() {
        let rec = encode(b"0=delivered,250").unwrap();
        assert_eq!(
            rec,
            format!("\n{:08x} 0=delivered,250", crc32(b"0=delivered,250")).into_bytes()
        );
        let log = log_of(&["a", "b c", "é"]);
        assert_eq!(good(&log), vec!["a", "b c", "é"]);
        assert!(records(&log).all(|l| l.record.is_ok()));
        // An empty payload frames and reads back too.
        assert_eq!(payloads(&encode(b"").unwrap()).collect::<Vec<_>>(), [b""]);
        assert_eq!(records(b"").count(), 0);
    }

    #[test]
    fn a_newline_in_a_payload_is_refused() {
        assert_eq!(encode(b"a\nb"), Err(NewlineInPayload));
        let mut out = b"kept".to_vec();
        assert_eq!(encode_into(&mut out, b"\n"), Err(NewlineInPayload));
        assert_eq!(out, b"kept", "a refused record writes nothing");
    }

    #[test]
    fn a_torn_tail_loses_only_the_torn_record() {
        let before = log_of(&["first"]);
        let torn = encode(b"second, torn by a crash").unwrap();
        let after = log_of(&["third"]);
        for cut in 0..torn.len() {
            let mut log = before.clone();
            log.extend_from_slice(&torn[..cut]);
            // As the tail it was left as:
            assert_eq!(good(&log), vec!["first"], "cut at {cut}");
            // And with records appended after a restart:
            log.extend_from_slice(&after);
            assert_eq!(good(&log), vec!["first", "third"], "cut at {cut}");
            let bad = records(&log).filter(|l| l.record.is_err()).count();
            assert_eq!(bad, usize::from(cut > 1), "cut at {cut}");
        }
        // Zeros where an append's data never landed (its leading newline included): the
        // record before them still counts, and so do records after them.
        let mut log = before.clone();
        log.extend_from_slice(&[0; 64]);
        assert_eq!(good(&log), vec!["first"]);
        log.extend_from_slice(&after);
        assert_eq!(good(&log), vec!["first", "third"]);
        // A payload that really ends in zeros is read whole.
        assert_eq!(
            payloads(&encode(b"z\0\0").unwrap()).collect::<Vec<_>>(),
            [b"z\0\0"]
        );
        // Zeros alone are no record.
        assert_eq!(good(&[0; 16]), Vec::<String>::new());
    }

    #[test]
    fn a_bad_checksum_skips_that_record_only() {
        let mut log = log_of(&["one", "two", "three"]);
        // Flip a payload byte of "two".
        let at = log.windows(3).position(|w| w == b"two").unwrap();
        log[at] ^= 0x01;
        assert_eq!(good(&log), vec!["one", "three"]);
        let lines: Vec<Line> = records(&log).collect();
        assert_eq!(lines[1].record, Err(BadRecord::ChecksumMismatch));
        assert_eq!(lines[1].number, 2);
        // Upper-case hex is not the checksum's spelling (0x8cdc1683 for "x").
        let upper = format!("\n{:08X} x", crc32(b"x"));
        assert_eq!(upper, "\n8CDC1683 x");
        assert_eq!(
            records(upper.as_bytes()).next().map(|l| l.record),
            Some(Err(BadRecord::Malformed))
        );
        for junk in [
            &b"deadbeef"[..],
            b"deadbeefxpayload",
            b"zzzzzzzz payload",
            b" ",
        ] {
            assert_eq!(
                records(junk).next().map(|l| l.record),
                Some(Err(BadRecord::Malformed)),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn later_records_come_later() {
        // The replay rule: a reader folds records in order, so the last word wins.
        let log = log_of(&["k=1", "j=5", "k=2"]);
        let mut state = std::collections::BTreeMap::new();
        for p in payloads(&log) {
            let s = std::str::from_utf8(p).unwrap();
            let (k, v) = s.split_once('=').unwrap();
            state.insert(k.to_string(), v.to_string());
        }
        assert_eq!(state["k"], "2");
        assert_eq!(state["j"], "5");
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(data in vec(any::<u8>(), 0..512)) {
            let lines: Vec<Line> = records(&data).collect();
            prop_assert!(lines.len() <= data.len());
            for l in lines {
                if let Ok(p) = l.record {
                    prop_assert!(!p.contains(&b'\n'));
                }
            }
        }

        #[test]
        fn every_payload_without_newline_round_trips(
            payloads_in in vec(vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40), 0..8)
        ) {
            let mut log = Vec::new();
            for p in &payloads_in {
                encode_into(&mut log, p).unwrap();
            }
            let back: Vec<Vec<u8>> = payloads(&log).map(<[u8]>::to_vec).collect();
            prop_assert_eq!(back, payloads_in);
        }
    }
}
