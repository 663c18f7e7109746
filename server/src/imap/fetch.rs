//! FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8), with CONDSTORE's MODSEQ item and
//! CHANGEDSINCE modifier (RFC 7162 §3.1.4).
//!
//! A FETCH runs in up to three steps, each a request to the store: set `\Seen` on the
//! messages a non-PEEK body item reads (durable before any byte of them is sent, RFC 3501
//! §6.4.5), read the messages whose bytes an item needs, then answer. FLAGS/UID/size-only
//! fetches never read a message file.

use std::collections::BTreeMap;

use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::message::{self, Slice};
use super::session::{Done, Failure, FlagOp, Output, Pending, Request, Session};
use super::wire;
use crate::env::Timestamp;
use crate::store::index::{Entry, Flags};

#[derive(Debug, Clone)]
pub(super) enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    ModSeq,
    Envelope,
    BodyStructure,
    Body {
        /// `BODY[<this>]` as it is echoed back.
        label: String,
        part: Vec<u32>,
        slice: SliceSpec,
        partial: Option<(u32, u32)>,
        peek: bool,
    },
    Rfc822,
    Rfc822Header,
    Rfc822Text,
}

#[derive(Debug, Clone)]
pub(super) enum SliceSpec {
    Whole,
    Header,
    Fields(Vec<String>, bool),
    Text,
    Mime,
}

impl SliceSpec {
    fn slice(&self) -> Slice {
        match self {
            SliceSpec::Whole => Slice::Whole,
            SliceSpec::Header => Slice::Header,
            SliceSpec::Fields(n, not) => Slice::Fields(n.clone(), *not),
            SliceSpec::Text => Slice::Text,
            SliceSpec::Mime => Slice::Mime,
        }
    }
}

impl Item {
    fn needs_bytes(&self) -> bool {
        matches!(
            self,
            Item::Envelope
                | Item::BodyStructure
                | Item::Body { .. }
                | Item::Rfc822
                | Item::Rfc822Header
                | Item::Rfc822Text
        )
    }

    /// RFC 3501 §6.4.5: BODY[...] (not PEEK), RFC822 and RFC822.TEXT set `\Seen`.
    fn sets_seen(&self) -> bool {
        matches!(
            self,
            Item::Body { peek: false, .. } | Item::Rfc822 | Item::Rfc822Text
        )
    }
}

#[derive(Debug)]
pub(super) struct FetchJob {
    tag: String,
    uid: bool,
    items: Vec<Item>,
    /// The messages, in sequence order.
    uids: Vec<u32>,
    /// Messages whose `\Seen` this FETCH set (their FLAGS go out too).
    seen: Vec<u32>,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Seen,
    Read,
}

/// Whether `n` is in `set`, `*` being `largest` (RFC 3501 §9 `seq-range`: either order).
pub(super) fn contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(v) => value(v) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (value(a), value(b));
            a.min(b) <= n && n <= a.max(b)
        }
    })
}

/// The UIDs of `msgs` that a UID set names (UIDs not there are ignored, RFC 3501 §6.4.8).
pub(super) fn uid_filter(set: &SequenceSet, msgs: &[Entry]) -> Vec<u32> {
    let largest = msgs.last().map_or(0, |m| m.uid);
    msgs.iter()
        .filter(|m| contains(set, m.uid, largest))
        .map(|m| m.uid)
        .collect()
}

/// The UIDs a sequence set (or, with `uid`, a UID set) names, in sequence order. A sequence
/// number past the last message is an error (RFC 3501 §9: a client may only name messages
/// it has been told of).
pub(super) fn resolve(set: &SequenceSet, uid: bool, msgs: &[Entry]) -> Result<Vec<u32>, String> {
    if uid {
        return Ok(uid_filter(set, msgs));
    }
    let n = msgs.len() as u32;
    for s in set.0.as_ref() {
        let values = match s {
            Sequence::Single(v) => vec![*v],
            Sequence::Range(a, b) => vec![*a, *b],
        };
        for v in values {
            if let SeqOrUid::Value(v) = v {
                if v.get() > n {
                    return Err(format!("Invalid message sequence number {v} (of {n})"));
                }
            }
        }
    }
    Ok(msgs
        .iter()
        .enumerate()
        .filter(|(i, _)| contains(set, *i as u32 + 1, n))
        .map(|(_, m)| m.uid)
        .collect())
}

fn part_numbers(part: &Option<Part>) -> Vec<u32> {
    part.as_ref()
        .map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
        .unwrap_or_default()
}

fn field_names(names: &[imap_codec::imap_types::core::AString<'_>]) -> Vec<String> {
    names
        .iter()
        .map(|n| String::from_utf8_lossy(n.as_ref()).to_ascii_uppercase())
        .collect()
}

/// A section as our items hold it, and its label (`1.HEADER.FIELDS (FROM TO)`).
fn section_item(section: &Option<Section<'_>>) -> (Vec<u32>, SliceSpec, String) {
    let (part, spec) = match section {
        None => (Vec::new(), SliceSpec::Whole),
        Some(Section::Part(p)) => (part_numbers(&Some(p.clone())), SliceSpec::Whole),
        Some(Section::Header(p)) => (part_numbers(p), SliceSpec::Header),
        Some(Section::HeaderFields(p, names)) => (
            part_numbers(p),
            SliceSpec::Fields(field_names(names.as_ref()), false),
        ),
        Some(Section::HeaderFieldsNot(p, names)) => (
            part_numbers(p),
            SliceSpec::Fields(field_names(names.as_ref()), true),
        ),
        Some(Section::Text(p)) => (part_numbers(p), SliceSpec::Text),
        Some(Section::Mime(p)) => (part_numbers(&Some(p.clone())), SliceSpec::Mime),
    };
    let mut label: Vec<String> = part.iter().map(u32::to_string).collect();
    match &spec {
        SliceSpec::Whole => {}
        SliceSpec::Header => label.push("HEADER".into()),
        SliceSpec::Fields(names, not) => {
            let verb = if *not {
                "HEADER.FIELDS.NOT"
            } else {
                "HEADER.FIELDS"
            };
            label.push(format!("{verb} ({})", names.join(" ")));
        }
        SliceSpec::Text => label.push("TEXT".into()),
        SliceSpec::Mime => label.push("MIME".into()),
    }
    (part, spec, label.join("."))
}

fn items_of(names: MacroOrMessageDataItemNames<'_>) -> Result<Vec<Item>, String> {
    let names = match names {
        MacroOrMessageDataItemNames::Macro(m) => m
            .expand()
            .into_iter()
            .map(|n| n.into_static_name())
            .collect(),
        MacroOrMessageDataItemNames::MessageDataItemNames(n) => n,
    };
    let mut items = Vec::new();
    for n in names {
        items.push(match n {
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::ModSeq => Item::ModSeq,
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::BodyStructure | MessageDataItemName::Body => Item::BodyStructure,
            MessageDataItemName::BodyExt {
                section,
                partial,
                peek,
            } => {
                let (part, slice, label) = section_item(&section);
                Item::Body {
                    label,
                    part,
                    slice,
                    partial: partial.map(|(o, l)| (o, l.get())),
                    peek,
                }
            }
            MessageDataItemName::Rfc822 => Item::Rfc822,
            MessageDataItemName::Rfc822Header => Item::Rfc822Header,
            MessageDataItemName::Rfc822Text => Item::Rfc822Text,
            MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. } => {
                return Err("BINARY is not supported".into())
            }
        });
    }
    Ok(items)
}

/// `Macro::expand` borrows the macro; the names it gives hold no data, so this is a copy.
trait IntoStaticName {
    fn into_static_name(self) -> MessageDataItemName<'static>;
}

impl IntoStaticName for MessageDataItemName<'_> {
    fn into_static_name(self) -> MessageDataItemName<'static> {
        use bounded_static::IntoBoundedStatic;
        self.into_static()
    }
}

impl Session {
    pub(super) fn fetch(
        &mut self,
        tag: String,
        set: &SequenceSet,
        names: MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: &[FetchModifier],
    ) {
        let mut items = match items_of(names) {
            Ok(i) => i,
            Err(why) => return self.bad(Some(&tag), &why),
        };
        let sel = self.sel();
        let mut uids = match resolve(set, uid, &sel.msgs) {
            Ok(u) => u,
            Err(why) => return self.bad(Some(&tag), &why),
        };
        for m in modifiers {
            if let FetchModifier::ChangedSince(since) = m {
                // RFC 7162 §3.1.4.1: only messages changed since, and MODSEQ with them.
                let since = since.get();
                let changed: std::collections::BTreeSet<u32> = sel
                    .msgs
                    .iter()
                    .filter(|e| e.modseq > since)
                    .map(|e| e.uid)
                    .collect();
                uids.retain(|u| changed.contains(u));
                items.push(Item::ModSeq);
            } else {
                return self.bad(Some(&tag), "VANISHED needs QRESYNC, which is not offered");
            }
        }
        if !modifiers.is_empty() {
            self.condstore = true;
        }
        // RFC 3501 §6.4.8: UID FETCH always includes UID.
        if uid && !items.iter().any(|i| matches!(i, Item::Uid)) {
            items.insert(0, Item::Uid);
        }
        let sel = self.sel();
        let seen: Vec<u32> = if items.iter().any(Item::sets_seen) && !sel.read_only {
            let by_uid: BTreeMap<u32, &Entry> = sel.msgs.iter().map(|e| (e.uid, e)).collect();
            uids.iter()
                .copied()
                .filter(|u| by_uid.get(u).is_some_and(|e| !e.flags.contains("\\Seen")))
                .collect()
        } else {
            Vec::new()
        };
        let folder = sel.name.clone();
        let mut job = FetchJob {
            tag,
            uid,
            items,
            uids,
            seen,
            stage: Stage::Seen,
        };
        if !job.seen.is_empty() {
            let mut flags = Flags::new();
            let _ = flags.insert("\\Seen");
            let request = Request::SetFlags {
                folder,
                uids: job.seen.clone(),
                op: FlagOp::Add,
                flags,
                unchanged_since: None,
            };
            return self.ask(Pending::Fetch(job), Output::Ask(request));
        }
        self.fetch_read(&mut job);
    }

    /// Step two: read what the items need, or answer at once.
    fn fetch_read(&mut self, job: &mut FetchJob) {
        if job.items.iter().any(Item::needs_bytes) && !job.uids.is_empty() {
            job.stage = Stage::Read;
            let folder = self.sel().name.clone();
            let uids = job.uids.clone();
            let job = std::mem::replace(
                job,
                FetchJob {
                    tag: String::new(),
                    uid: false,
                    items: Vec::new(),
                    uids: Vec::new(),
                    seen: Vec::new(),
                    stage: Stage::Read,
                },
            );
            return self.ask(
                Pending::Fetch(job),
                Output::Ask(Request::Read(folder, uids)),
            );
        }
        self.fetch_respond(job, BTreeMap::new());
    }

    pub(super) fn fetch_answer(&mut self, mut job: FetchJob, r: Result<Done, Failure>) {
        match (job.stage, r) {
            (Stage::Seen, Ok(Done::Stored { changed, .. })) => {
                self.update_view(&changed);
                self.fetch_read(&mut job);
            }
            (Stage::Read, Ok(Done::Messages(messages))) => {
                let bytes = messages.into_iter().collect();
                self.fetch_respond(&job, bytes);
            }
            (_, Ok(_)) => self.failure(&job.tag, Failure::Failed("unexpected answer".into())),
            (_, Err(f)) => self.failure(&job.tag, f),
        }
    }

    /// Folds changed entries (from this session's own STORE or FETCH) into the view.
    pub(super) fn update_view(&mut self, changed: &[Entry]) {
        if let super::session::State::Selected(sel) = &mut self.state {
            for e in changed {
                if let Ok(i) = sel.msgs.binary_search_by_key(&e.uid, |m| m.uid) {
                    sel.msgs[i] = e.clone();
                }
            }
        }
    }

    fn fetch_respond(&mut self, job: &FetchJob, bytes: BTreeMap<u32, Vec<u8>>) {
        let sel = self.sel();
        let mut out = Vec::new();
        for uid in &job.uids {
            let Ok(i) = sel.msgs.binary_search_by_key(uid, |m| m.uid) else {
                continue;
            };
            let e = &sel.msgs[i];
            // A message expunged under us has no bytes: RFC 2180 §4.1.2 allows a NO, but
            // sending what we know (and no body) keeps the client's numbering intact.
            let body = bytes.get(uid).map(Vec::as_slice);
            out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
            let mut first = true;
            let mut items = job.items.clone();
            if job.seen.contains(uid) && !items.iter().any(|i| matches!(i, Item::Flags)) {
                items.push(Item::Flags);
            }
            for item in &items {
                if !first {
                    out.push(b' ');
                }
                first = false;
                write_item(&mut out, item, e, body);
            }
            out.extend_from_slice(b")\r\n");
        }
        if !out.is_empty() {
            self.send(out);
        }
        let verb = if job.uid { "UID FETCH" } else { "FETCH" };
        self.ok(&job.tag, &format!("{verb} completed"));
    }
}

fn write_item(out: &mut Vec<u8>, item: &Item, e: &Entry, body: Option<&[u8]>) {
    let bytes = body.unwrap_or(&[]);
    match item {
        Item::Uid => out.extend_from_slice(format!("UID {}", e.uid).as_bytes()),
        Item::Flags => {
            out.extend_from_slice(b"FLAGS ");
            wire::flags(out, &e.flags);
        }
        Item::InternalDate => {
            let date = crate::mail::date::imap(Timestamp::from_secs(e.internal_date));
            out.extend_from_slice(format!("INTERNALDATE \"{date}\"").as_bytes());
        }
        Item::Size => out.extend_from_slice(format!("RFC822.SIZE {}", e.size).as_bytes()),
        Item::ModSeq => out.extend_from_slice(format!("MODSEQ ({})", e.modseq).as_bytes()),
        Item::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            out.extend_from_slice(&message::envelope(bytes));
        }
        Item::BodyStructure => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            out.extend_from_slice(&message::bodystructure(bytes));
        }
        Item::Body {
            label,
            part,
            slice,
            partial,
            ..
        } => {
            let data = message::section(bytes, part, &slice.slice()).unwrap_or_default();
            out.extend_from_slice(format!("BODY[{label}]").as_bytes());
            match partial {
                Some((origin, len)) => {
                    out.extend_from_slice(format!("<{origin}> ").as_bytes());
                    let start = (*origin as usize).min(data.len());
                    let end = start.saturating_add(*len as usize).min(data.len());
                    wire::literal(out, &data[start..end]);
                }
                None => {
                    out.push(b' ');
                    wire::literal(out, &data);
                }
            }
        }
        Item::Rfc822 => {
            out.extend_from_slice(b"RFC822 ");
            wire::literal(out, bytes);
        }
        Item::Rfc822Header => {
            out.extend_from_slice(b"RFC822.HEADER ");
            wire::literal(out, &bytes[..message::header_end(bytes)]);
        }
        Item::Rfc822Text => {
            out.extend_from_slice(b"RFC822.TEXT ");
            wire::literal(out, &bytes[message::header_end(bytes)..]);
        }
    }
}
