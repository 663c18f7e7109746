//! SEARCH / UID SEARCH (RFC 3501 §6.4.4), with MODSEQ (RFC 7162 §3.1.5).
//!
//! Keys on flags, sizes, dates and numbers are answered from the index alone; keys on
//! headers or text read the messages first (one request for all of them). Matching is a
//! case-insensitive substring, as RFC 3501 asks, on the raw header values and body octets
//! (no MIME decoding: what Dovecot does without an FTS plugin is close to this). Only
//! US-ASCII and UTF-8 charsets are accepted (`[BADCHARSET]` otherwise).

use std::collections::BTreeMap;

use chrono::Datelike;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::datetime::NaiveDate;
use imap_codec::imap_types::search::SearchKey;

use super::fetch::contains;
use super::message::header_end;
use super::session::{Done, Failure, Output, Pending, Request, Session};
use crate::store::index::Entry;

#[derive(Debug)]
pub(super) struct SearchJob {
    tag: String,
    uid: bool,
    key: SearchKey<'static>,
}

/// Whether a key needs the message's bytes.
fn needs_bytes(key: &SearchKey<'_>) -> bool {
    use SearchKey::*;
    match key {
        And(keys) => keys.as_ref().iter().any(needs_bytes),
        Not(k) => needs_bytes(k),
        Or(a, b) => needs_bytes(a) || needs_bytes(b),
        Bcc(_) | Body(_) | Cc(_) | From(_) | Header(..) | Subject(_) | Text(_) | To(_)
        | SentBefore(_) | SentOn(_) | SentSince(_) => true,
        _ => false,
    }
}

/// Days since 1970-01-01 of a SEARCH date.
fn days(d: &NaiveDate) -> i64 {
    i64::from(d.as_ref().num_days_from_ce()) - 719_163
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let needle: Vec<u8> = needle.to_ascii_lowercase();
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(&needle))
}

/// The values of header `name` (unfolded), from the header block.
fn header_values(header: &[u8], name: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let folded = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if folded {
            if let Some(c) = current.as_mut() {
                c.extend_from_slice(trimmed);
            }
            continue;
        }
        if let Some(c) = current.take() {
            out.push(c);
        }
        if let Some(colon) = trimmed.iter().position(|&b| b == b':') {
            if trimmed[..colon].eq_ignore_ascii_case(name) {
                current = Some(trimmed[colon + 1..].to_vec());
            }
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
}

struct Ctx<'a> {
    seq: u32,
    max_seq: u32,
    max_uid: u32,
    entry: &'a Entry,
    bytes: &'a [u8],
}

impl Ctx<'_> {
    fn header_has(&self, name: &[u8], value: &[u8]) -> bool {
        let header = &self.bytes[..header_end(self.bytes)];
        header_values(header, name)
            .iter()
            .any(|v| contains_ci(v, value))
    }

    /// The Date: header's day (RFC 3501 SENTBEFORE/SENTON/SENTSINCE), if it parses.
    fn sent_day(&self) -> Option<i64> {
        let header = &self.bytes[..header_end(self.bytes)];
        let value = header_values(header, b"Date").into_iter().next()?;
        let mut msg = b"Date:".to_vec();
        msg.extend_from_slice(&value);
        msg.extend_from_slice(b"\r\n\r\n");
        let parsed = mail_parser::MessageParser::default().parse(&msg)?;
        let d = parsed.date()?;
        Some(d.to_timestamp().div_euclid(86_400))
    }

    fn matches(&self, key: &SearchKey<'_>) -> bool {
        use SearchKey::*;
        let e = self.entry;
        let day = (e.internal_date / 86_400) as i64;
        let flag = |f: &str| e.flags.contains(f);
        match key {
            And(keys) => keys.as_ref().iter().all(|k| self.matches(k)),
            SequenceSet(set) => contains(set, self.seq, self.max_seq),
            Uid(set) => contains(set, e.uid, self.max_uid),
            All => true,
            Answered => flag("\\Answered"),
            Deleted => flag("\\Deleted"),
            Draft => flag("\\Draft"),
            Flagged => flag("\\Flagged"),
            Seen => flag("\\Seen"),
            Unanswered => !flag("\\Answered"),
            Undeleted => !flag("\\Deleted"),
            Undraft => !flag("\\Draft"),
            Unflagged => !flag("\\Flagged"),
            Unseen => !flag("\\Seen"),
            Keyword(k) => flag(k.inner()),
            Unkeyword(k) => !flag(k.inner()),
            // No message is \Recent in this server (IMAP4rev2 dropped it).
            New | Recent => false,
            Old => true,
            Larger(n) => e.size > u64::from(*n),
            Smaller(n) => e.size < u64::from(*n),
            Before(d) => day < days(d),
            On(d) => day == days(d),
            Since(d) => day >= days(d),
            SentBefore(d) => self.sent_day().is_some_and(|s| s < days(d)),
            SentOn(d) => self.sent_day().is_some_and(|s| s == days(d)),
            SentSince(d) => self.sent_day().is_some_and(|s| s >= days(d)),
            Bcc(v) => self.header_has(b"Bcc", v.as_ref()),
            Cc(v) => self.header_has(b"Cc", v.as_ref()),
            From(v) => self.header_has(b"From", v.as_ref()),
            To(v) => self.header_has(b"To", v.as_ref()),
            Subject(v) => self.header_has(b"Subject", v.as_ref()),
            Header(name, v) => self.header_has(name.as_ref(), v.as_ref()),
            Body(v) => contains_ci(&self.bytes[header_end(self.bytes)..], v.as_ref()),
            Text(v) => contains_ci(self.bytes, v.as_ref()),
            Not(k) => !self.matches(k),
            Or(a, b) => self.matches(a) || self.matches(b),
            ModSequence { modseq, .. } => e.modseq >= *modseq,
        }
    }
}

impl Session {
    pub(super) fn search(
        &mut self,
        tag: String,
        charset: Option<&str>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
    ) {
        if let Some(c) = charset {
            if !c.eq_ignore_ascii_case("UTF-8") && !c.eq_ignore_ascii_case("US-ASCII") {
                return self.no(&tag, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
            }
        }
        let keys = criteria.into_inner();
        let key = match keys.len() {
            1 => keys.into_iter().next().expect("one key"),
            _ => match Vec1::try_from(keys) {
                Ok(k) => SearchKey::And(k),
                Err(_) => return self.bad(Some(&tag), "Empty search"),
            },
        };
        let job = SearchJob { tag, uid, key };
        let sel = self.sel();
        if needs_bytes(&job.key) && !sel.msgs.is_empty() {
            let uids = sel.msgs.iter().map(|e| e.uid).collect();
            let folder = sel.name.clone();
            return self.ask(
                Pending::Search(job),
                Output::Ask(Request::Read(folder, uids)),
            );
        }
        self.search_respond(job, &BTreeMap::new());
    }

    pub(super) fn search_answer(&mut self, job: SearchJob, r: Result<Done, Failure>) {
        match r {
            Ok(Done::Messages(m)) => {
                let bytes = m.into_iter().collect();
                self.search_respond(job, &bytes)
            }
            Ok(_) => self.failure(&job.tag, Failure::Failed("unexpected answer".into())),
            Err(f) => self.failure(&job.tag, f),
        }
    }

    fn search_respond(&mut self, job: SearchJob, bytes: &BTreeMap<u32, Vec<u8>>) {
        let sel = self.sel();
        let max_seq = sel.msgs.len() as u32;
        let max_uid = sel.msgs.last().map_or(0, |e| e.uid);
        let mut hits = Vec::new();
        let mut highest = 0;
        for (i, e) in sel.msgs.iter().enumerate() {
            let ctx = Ctx {
                seq: i as u32 + 1,
                max_seq,
                max_uid,
                entry: e,
                bytes: bytes.get(&e.uid).map_or(&[][..], Vec::as_slice),
            };
            if ctx.matches(&job.key) {
                hits.push(if job.uid { e.uid } else { i as u32 + 1 });
                highest = highest.max(e.modseq);
            }
        }
        let mut line = String::from("SEARCH");
        for h in &hits {
            line.push_str(&format!(" {h}"));
        }
        // RFC 7162 §3.1.5: a search on MODSEQ reports the highest MODSEQ of the hits.
        if has_modseq(&job.key) && !hits.is_empty() {
            line.push_str(&format!(" (MODSEQ {highest})"));
        }
        self.untagged(&line);
        let verb = if job.uid { "UID SEARCH" } else { "SEARCH" };
        self.ok(&job.tag, &format!("{verb} completed"));
    }
}

fn has_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::And(keys) => keys.as_ref().iter().any(has_modseq),
        SearchKey::Not(k) => has_modseq(k),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        _ => false,
    }
}
