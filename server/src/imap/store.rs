//! STORE / UID STORE (RFC 3501 §6.4.6, UNCHANGEDSINCE from RFC 7162 §3.1.3), COPY / UID COPY
//! with COPYUID (RFC 4315), MOVE / UID MOVE (RFC 6851) and APPEND with APPENDUID.
//!
//! Every change is made durable by the index before the tagged OK (the index fsyncs its
//! log first); the untagged FETCH/EXPUNGE that other sessions see come from the index's
//! broadcast, so all sessions are told the same way.

use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::sequence::SequenceSet;

use super::fetch::resolve;
use super::mailbox::fetch_flags_line;
use super::mailbox::folder;
use super::session::{Done, Failure, FlagOp, Output, Pending, Request, Session, State};
use super::wire;
use crate::store::index::Flags;

#[derive(Debug)]
pub(super) struct StoreJob {
    tag: String,
    uid: bool,
    silent: bool,
    uids: Vec<u32>,
}

/// A client's flag list as stored flags (`\Recent` and unknown system flags refused).
fn parse_flags(flags: &[Flag<'_>]) -> Result<Flags, String> {
    let mut out = Flags::new();
    for f in flags {
        out.insert(&f.to_string()).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store(
        &mut self,
        tag: String,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        modifiers: &[StoreModifier],
    ) {
        let flags = match parse_flags(flags) {
            Ok(f) => f,
            Err(why) => return self.bad(Some(&tag), &why),
        };
        let sel = self.sel();
        if sel.read_only {
            return self.no(&tag, "[READ-ONLY] Mailbox is read-only");
        }
        let uids = match resolve(set, uid, &sel.msgs) {
            Ok(u) => u,
            Err(why) => return self.bad(Some(&tag), &why),
        };
        let unchanged_since = modifiers
            .iter()
            .map(|StoreModifier::UnchangedSince(n)| *n)
            .next();
        let op = match kind {
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
            StoreType::Replace => FlagOp::Replace,
        };
        let request = Request::SetFlags {
            folder: sel.name.clone(),
            uids: uids.clone(),
            op,
            flags,
            unchanged_since,
        };
        if unchanged_since.is_some() {
            self.condstore = true;
        }
        let job = StoreJob {
            tag,
            uid,
            silent: response == StoreResponse::Silent,
            uids,
        };
        self.ask(Pending::Store(job), Output::Ask(request));
    }

    pub(super) fn store_answer(&mut self, job: StoreJob, r: Result<Done, Failure>) {
        let (changed, modified) = match r {
            Ok(Done::Stored { changed, modified }) => (changed, modified),
            Ok(_) => return self.failure(&job.tag, Failure::Failed("unexpected answer".into())),
            Err(f) => return self.failure(&job.tag, f),
        };
        self.update_view(&changed);
        let condstore = self.condstore;
        let sel = self.sel();
        let mut lines = Vec::new();
        for uid in &job.uids {
            if modified.contains(uid) {
                continue;
            }
            let Ok(i) = sel.msgs.binary_search_by_key(uid, |m| m.uid) else {
                continue;
            };
            let was_changed = changed.iter().any(|c| c.uid == *uid);
            // .SILENT still reports a MODSEQ change (RFC 7162 §3.1.3).
            if !job.silent || (condstore && was_changed) {
                lines.push(fetch_flags_line(i + 1, &sel.msgs[i], condstore));
            }
        }
        for l in lines {
            self.send_line(l);
        }
        let verb = if job.uid { "UID STORE" } else { "STORE" };
        if modified.is_empty() {
            self.ok(&job.tag, &format!("{verb} completed"));
        } else {
            let set = if job.uid {
                wire::uid_set(&modified)
            } else {
                let sel = self.sel();
                let seqs: Vec<u32> = modified
                    .iter()
                    .filter_map(|u| sel.msgs.binary_search_by_key(u, |m| m.uid).ok())
                    .map(|i| i as u32 + 1)
                    .collect();
                wire::uid_set(&seqs)
            };
            self.ok(
                &job.tag,
                &format!("[MODIFIED {set}] Conditional {verb} failed"),
            );
        }
    }

    pub(super) fn copy(
        &mut self,
        tag: String,
        set: &SequenceSet,
        mailbox: &Mailbox<'_>,
        uid: bool,
        moved: bool,
    ) {
        let to = match folder(mailbox) {
            Ok(f) => f,
            Err(why) => return self.no(&tag, &format!("[CANNOT] {why}")),
        };
        let sel = self.sel();
        if moved && sel.read_only {
            return self.no(&tag, "[READ-ONLY] Mailbox is read-only");
        }
        if moved && to == sel.name {
            return self.no(&tag, "[CANNOT] Cannot move into the same mailbox");
        }
        let uids = match resolve(set, uid, &sel.msgs) {
            Ok(u) => u,
            Err(why) => return self.bad(Some(&tag), &why),
        };
        let into_selected = to == sel.name;
        let request = Request::Copy {
            from: sel.name.clone(),
            to,
            uids,
            remove: moved,
        };
        if into_selected {
            self.dirty = true;
        }
        self.ask(Pending::Copy { tag, moved, uid }, Output::Ask(request));
    }

    pub(super) fn copy_answer(
        &mut self,
        tag: String,
        moved: bool,
        uid: bool,
        r: Result<Done, Failure>,
    ) {
        let (uidvalidity, pairs) = match r {
            Ok(Done::Copied { uidvalidity, pairs }) => (uidvalidity, pairs),
            Ok(_) => return self.failure(&tag, Failure::Failed("unexpected answer".into())),
            Err(Failure::NotFound) => return self.no(&tag, "[TRYCREATE] No such mailbox"),
            Err(f) => return self.failure(&tag, f),
        };
        let verb = match (uid, moved) {
            (false, false) => "COPY",
            (true, false) => "UID COPY",
            (false, true) => "MOVE",
            (true, true) => "UID MOVE",
        };
        let code = if pairs.is_empty() {
            String::new()
        } else {
            let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
            let dst: Vec<u32> = pairs.iter().map(|p| p.1).collect();
            format!(
                "[COPYUID {uidvalidity} {} {}] ",
                wire::uid_set(&src),
                wire::uid_set(&dst)
            )
        };
        if moved {
            // RFC 6851 §4.3: COPYUID in an untagged OK, then the EXPUNGEs, then the tag.
            if !code.is_empty() {
                self.untagged(&format!("OK {}Moved", code));
            }
            self.dirty = true;
            return self.finish(&tag, &format!("{verb} completed"));
        }
        self.finish(&tag, &format!("{code}{verb} completed"));
    }

    pub(super) fn append(
        &mut self,
        tag: String,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        message: LiteralOrLiteral8<'_>,
    ) {
        let folder = match folder(mailbox) {
            Ok(f) => f,
            Err(why) => return self.no(&tag, &format!("[CANNOT] {why}")),
        };
        let flags = match parse_flags(flags) {
            Ok(f) => f,
            Err(why) => return self.bad(Some(&tag), &why),
        };
        let message = match message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
        };
        if message.is_empty() {
            return self.no(&tag, "[CANNOT] Empty message");
        }
        if matches!(&self.state, State::Selected(s) if s.name == folder) {
            self.dirty = true;
        }
        self.ask(
            Pending::Append { tag },
            Output::Ask(Request::Append {
                folder,
                message,
                flags,
            }),
        );
    }

    pub(super) fn append_answer(&mut self, tag: String, r: Result<Done, Failure>) {
        match r {
            Ok(Done::Appended { uidvalidity, uid }) => self.finish(
                &tag,
                &format!("[APPENDUID {uidvalidity} {uid}] APPEND completed"),
            ),
            Ok(_) => self.failure(&tag, Failure::Failed("unexpected answer".into())),
            Err(Failure::NotFound) => self.no(&tag, "[TRYCREATE] No such mailbox"),
            Err(f) => self.failure(&tag, f),
        }
    }
}
