//! Mailbox commands (RFC 3501 §6.3, §6.4.2, §6.4.3): SELECT/EXAMINE, CLOSE, UNSELECT
//! (RFC 3691), EXPUNGE and UID EXPUNGE (RFC 4315), CREATE, LIST/LSUB with SPECIAL-USE
//! attributes (RFC 6154), STATUS; and the dispatch of the selected-state commands to their
//! files.
//!
//! Folder names from the client go through [`FolderName::parse`], the store's single
//! check (no `..`, `/` at the ends, `\`, `.`, wildcards, controls; see `store/index/name.rs`),
//! and are only ever looked up in the logged-in account, so no name reaches another user's
//! mail. LIST patterns are matched against the account's own folder list, never turned
//! into paths.

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::status::StatusDataItemName;

use super::session::{Done, Failure, Output, Pending, Request, Selected, Session, State};
use super::wire;
use crate::store::index::{Entry, FolderName};

/// The STATUS items we answer (RFC 3501 §6.3.10, RFC 7162 §3.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    HighestModSeq,
}

/// A client's mailbox argument as a folder of this account.
pub(super) fn folder(mailbox: &Mailbox<'_>) -> Result<FolderName, String> {
    let raw = match mailbox {
        Mailbox::Inbox => return Ok(FolderName::inbox()),
        Mailbox::Other(o) => o.as_ref(),
    };
    let name = std::str::from_utf8(raw).map_err(|_| "Mailbox name is not UTF-8".to_string())?;
    FolderName::parse(name).map_err(|e| e.to_string())
}

/// The SPECIAL-USE attribute of a folder (RFC 6154 §2), by its conventional name.
fn special_use(name: &FolderName) -> Option<&'static str> {
    match name.as_str() {
        "Sent" => Some("\\Sent"),
        "Drafts" => Some("\\Drafts"),
        "Junk" => Some("\\Junk"),
        "Trash" => Some("\\Trash"),
        "Archive" => Some("\\Archive"),
        _ => None,
    }
}

/// RFC 3501 §6.3.8 wildcards: `*` matches anything, `%` anything but the delimiter.
/// Iterative with backtracking on the last star, so a hostile pattern stays linear-ish.
pub(super) fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((b'%', rest)) => {
                let stop = n.iter().position(|&b| b == b'/').unwrap_or(n.len());
                (0..=stop).any(|i| go(rest, &n[i..]))
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    // Runs of wildcards mean the same as one; collapsing them bounds the backtracking.
    let mut p = Vec::with_capacity(pattern.len());
    for &b in pattern {
        if (b == b'*' || b == b'%') && p.last().is_some_and(|&l| l == b'*' || l == b'%') {
            if b == b'*' {
                *p.last_mut().expect("checked") = b'*';
            }
            continue;
        }
        p.push(b);
    }
    go(&p, name)
}

pub(super) fn dispatch(s: &mut Session, tag: String, body: CommandBody<'static>) {
    use CommandBody::*;
    match body {
        Select {
            mailbox,
            parameters,
        } => s.select(tag, &mailbox, false, !parameters.is_empty()),
        Examine {
            mailbox,
            parameters,
        } => s.select(tag, &mailbox, true, !parameters.is_empty()),
        Close => s.close_mailbox(tag, true),
        Unselect => s.close_mailbox(tag, false),
        Expunge => s.expunge(tag, None),
        ExpungeUid { sequence_set } => s.expunge(tag, Some(sequence_set)),
        Create { mailbox } => match folder(&mailbox) {
            Ok(name) if name.is_inbox() => s.no(&tag, "[ALREADYEXISTS] INBOX always exists"),
            Ok(name) => s.ask(Pending::Create { tag }, Output::Ask(Request::Create(name))),
            Err(why) => s.no(&tag, &format!("[CANNOT] {why}")),
        },
        Delete { .. } | Rename { .. } => s.no(
            &tag,
            "[CANNOT] DELETE and RENAME are not supported by this server yet",
        ),
        Subscribe { mailbox } => match folder(&mailbox) {
            // Every folder is subscribed (LSUB lists them all), so this only checks it.
            Ok(_) => s.finish(&tag, "SUBSCRIBE completed"),
            Err(why) => s.no(&tag, &format!("[CANNOT] {why}")),
        },
        Unsubscribe { .. } => s.no(&tag, "[CANNOT] Every folder is subscribed on this server"),
        List {
            reference,
            mailbox_wildcard,
        } => s.list(tag, false, &reference, &mailbox_wildcard),
        Lsub {
            reference,
            mailbox_wildcard,
        } => s.list(tag, true, &reference, &mailbox_wildcard),
        Status {
            mailbox,
            item_names,
        } => {
            let items = item_names
                .iter()
                .filter_map(|i| match i {
                    StatusDataItemName::Messages => Some(StatusItem::Messages),
                    StatusDataItemName::Recent => Some(StatusItem::Recent),
                    StatusDataItemName::UidNext => Some(StatusItem::UidNext),
                    StatusDataItemName::UidValidity => Some(StatusItem::UidValidity),
                    StatusDataItemName::Unseen => Some(StatusItem::Unseen),
                    StatusDataItemName::HighestModSeq => Some(StatusItem::HighestModSeq),
                    _ => None,
                })
                .collect();
            match folder(&mailbox) {
                Ok(name) => s.ask(
                    Pending::Status {
                        tag,
                        name: name.clone(),
                        items,
                    },
                    Output::Ask(Request::Status(name)),
                ),
                Err(why) => s.no(&tag, &format!("[CANNOT] {why}")),
            }
        }
        Append {
            mailbox,
            flags,
            message,
            ..
        } => s.append(tag, &mailbox, &flags, message),
        Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            modifiers,
        } => s.fetch(tag, &sequence_set, macro_or_item_names, uid, &modifiers),
        Store {
            sequence_set,
            kind,
            response,
            flags,
            uid,
            modifiers,
        } => s.store(tag, &sequence_set, kind, response, &flags, uid, &modifiers),
        Copy {
            sequence_set,
            mailbox,
            uid,
        } => s.copy(tag, &sequence_set, &mailbox, uid, false),
        Move {
            sequence_set,
            mailbox,
            uid,
        } => s.copy(tag, &sequence_set, &mailbox, uid, true),
        Search {
            charset,
            criteria,
            uid,
        } => s.search(tag, charset.as_ref().map(|c| c.as_ref()), criteria, uid),
        _ => s.bad(Some(&tag), "Command not supported"),
    }
}

impl Session {
    fn select(&mut self, tag: String, mailbox: &Mailbox<'_>, read_only: bool, condstore: bool) {
        // RFC 3501 §6.3.1: a SELECT, even a failing one, first deselects.
        if matches!(self.state, State::Selected(_)) {
            self.state = State::Authenticated;
            self.dirty = false;
            self.untagged("OK [CLOSED] Previous mailbox closed");
        }
        if condstore {
            self.condstore = true;
        }
        match folder(mailbox) {
            Ok(name) => self.ask(
                Pending::Select {
                    tag,
                    name: name.clone(),
                    read_only,
                },
                Output::Ask(Request::Select(name)),
            ),
            Err(why) => self.no(&tag, &format!("[CANNOT] {why}")),
        }
    }

    pub(super) fn selected_answer(
        &mut self,
        tag: String,
        name: FolderName,
        read_only: bool,
        r: Result<Done, Failure>,
    ) {
        let (status, entries) = match r {
            Ok(Done::Selected { status, entries }) => (status, entries),
            Ok(_) => return self.failure(&tag, Failure::Failed("unexpected answer".into())),
            Err(f) => return self.failure(&tag, f),
        };
        self.untagged("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
        let perm = if read_only {
            "PERMANENTFLAGS ()"
        } else {
            "PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"
        };
        self.untagged(&format!("OK [{perm}] Flags permitted"));
        self.untagged(&format!("{} EXISTS", entries.len()));
        self.untagged("0 RECENT");
        if let Some(i) = entries.iter().position(|e| !e.flags.contains("\\Seen")) {
            self.untagged(&format!("OK [UNSEEN {}] First unseen", i + 1));
        }
        self.untagged(&format!(
            "OK [UIDVALIDITY {}] UIDs valid",
            status.uidvalidity
        ));
        self.untagged(&format!(
            "OK [UIDNEXT {}] Predicted next UID",
            status.uidnext
        ));
        self.untagged(&format!(
            "OK [HIGHESTMODSEQ {}] Highest",
            status.highest_modseq.max(1)
        ));
        let (code, verb) = match read_only {
            true => ("READ-ONLY", "EXAMINE"),
            false => ("READ-WRITE", "SELECT"),
        };
        self.state = State::Selected(Selected {
            name,
            read_only,
            msgs: entries,
        });
        self.dirty = false;
        self.ok(&tag, &format!("[{code}] {verb} completed"));
    }

    pub(super) fn sel(&self) -> &Selected {
        match &self.state {
            State::Selected(s) => s,
            _ => unreachable!("selected-state commands are only dispatched when selected"),
        }
    }

    /// CLOSE (expunging `\Deleted` messages silently, unless read-only) or UNSELECT.
    fn close_mailbox(&mut self, tag: String, expunge: bool) {
        let sel = self.sel();
        let deleted: Vec<u32> = deleted(&sel.msgs, None);
        if expunge && !sel.read_only && !deleted.is_empty() {
            let name = sel.name.clone();
            return self.ask(
                Pending::Expunge { tag, close: true },
                Output::Ask(Request::Expunge(name, deleted)),
            );
        }
        self.state = State::Authenticated;
        self.dirty = false;
        let verb = if expunge { "CLOSE" } else { "UNSELECT" };
        self.ok(&tag, &format!("{verb} completed"));
    }

    fn expunge(
        &mut self,
        tag: String,
        uids: Option<imap_codec::imap_types::sequence::SequenceSet>,
    ) {
        let sel = self.sel();
        if sel.read_only {
            return self.no(&tag, "[READ-ONLY] Mailbox is read-only");
        }
        let set = uids.map(|set| super::fetch::uid_filter(&set, &sel.msgs));
        let deleted = deleted(&sel.msgs, set.as_ref());
        let name = sel.name.clone();
        self.ask(
            Pending::Expunge { tag, close: false },
            Output::Ask(Request::Expunge(name, deleted)),
        );
    }

    pub(super) fn expunge_answer(&mut self, tag: String, close: bool, r: Result<Done, Failure>) {
        if let Err(f) = r {
            return self.failure(&tag, f);
        }
        if close {
            self.state = State::Authenticated;
            self.dirty = false;
            return self.ok(&tag, "CLOSE completed");
        }
        // The snapshot shows them gone: EXPUNGE responses come from the diff, so this
        // session and every other one on the folder are told the same way.
        self.sync(Some(tag), "EXPUNGE completed".into());
    }

    fn list(
        &mut self,
        tag: String,
        lsub: bool,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
    ) {
        let reference = match reference {
            Mailbox::Inbox => "INBOX".to_string(),
            Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).to_string(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).to_string(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).to_string(),
        };
        if pattern.is_empty() && !lsub {
            // RFC 3501 §6.3.8: the hierarchy delimiter and root.
            self.untagged("LIST (\\Noselect) \"/\" \"\"");
            return self.finish(&tag, "LIST completed");
        }
        self.ask(
            Pending::List {
                tag,
                lsub,
                reference,
                pattern,
            },
            Output::Ask(Request::Folders),
        );
    }

    pub(super) fn list_answer(
        &mut self,
        tag: String,
        lsub: bool,
        reference: &str,
        pattern: &str,
        r: Result<Done, Failure>,
    ) {
        let folders = match r {
            Ok(Done::Folders(f)) => f,
            Ok(_) => Vec::new(),
            Err(f) => return self.failure(&tag, f),
        };
        let full = format!("{reference}{pattern}");
        let verb = if lsub { "LSUB" } else { "LIST" };
        for f in &folders {
            let name = f.as_str();
            // INBOX matches case-insensitively (RFC 3501 §5.1).
            let matches = wildcard_match(full.as_bytes(), name.as_bytes())
                || (f.is_inbox() && wildcard_match(full.to_ascii_uppercase().as_bytes(), b"INBOX"));
            if !matches {
                continue;
            }
            let prefix = format!("{name}/");
            let children = folders.iter().any(|o| o.as_str().starts_with(&prefix));
            let mut attrs = vec![if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            if let Some(u) = special_use(f) {
                attrs.push(u);
            }
            let mut line = format!("* {verb} ({}) \"/\" ", attrs.join(" ")).into_bytes();
            wire::mailbox(&mut line, name);
            line.extend_from_slice(b"\r\n");
            self.send(line);
        }
        self.finish(&tag, &format!("{verb} completed"));
    }

    pub(super) fn status_answer(
        &mut self,
        tag: String,
        name: FolderName,
        items: Vec<StatusItem>,
        r: Result<Done, Failure>,
    ) {
        let (status, unseen) = match r {
            Ok(Done::Status { status, unseen }) => (status, unseen),
            Ok(_) => return self.failure(&tag, Failure::Failed("unexpected answer".into())),
            Err(f) => return self.failure(&tag, f),
        };
        let values: Vec<String> = items
            .iter()
            .map(|i| match i {
                StatusItem::Messages => format!("MESSAGES {}", status.messages),
                StatusItem::Recent => "RECENT 0".into(),
                StatusItem::UidNext => format!("UIDNEXT {}", status.uidnext),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", status.uidvalidity),
                StatusItem::Unseen => format!("UNSEEN {unseen}"),
                StatusItem::HighestModSeq => {
                    format!("HIGHESTMODSEQ {}", status.highest_modseq.max(1))
                }
            })
            .collect();
        let mut line = b"* STATUS ".to_vec();
        wire::mailbox(&mut line, name.as_str());
        line.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        self.send(line);
        self.finish(&tag, "STATUS completed");
    }
}

impl Session {
    /// Diffs a fresh snapshot of the selected folder into this session's view and sends
    /// what changed: EXPUNGE (highest sequence number first, so the lower ones stay
    /// valid), then EXISTS for new messages, then FETCH FLAGS for changed flags.
    pub(super) fn refresh(&mut self, snapshot: Vec<Entry>) {
        let condstore = self.condstore;
        let State::Selected(sel) = &mut self.state else {
            return;
        };
        let live: std::collections::BTreeMap<u32, &Entry> =
            snapshot.iter().map(|e| (e.uid, e)).collect();
        let mut lines = Vec::new();
        for i in (0..sel.msgs.len()).rev() {
            if !live.contains_key(&sel.msgs[i].uid) {
                sel.msgs.remove(i);
                lines.push(format!("* {} EXPUNGE", i + 1));
            }
        }
        for (i, m) in sel.msgs.iter_mut().enumerate() {
            if let Some(e) = live.get(&m.uid) {
                if e.flags != m.flags || e.modseq != m.modseq {
                    let changed = e.flags != m.flags;
                    *m = (*e).clone();
                    if changed || condstore {
                        lines.push(fetch_flags_line(i + 1, m, condstore));
                    }
                }
            }
        }
        let last = sel.msgs.last().map_or(0, |m| m.uid);
        let before = sel.msgs.len();
        sel.msgs
            .extend(snapshot.iter().filter(|e| e.uid > last).cloned());
        if sel.msgs.len() != before {
            lines.push(format!("* {} EXISTS", sel.msgs.len()));
        }
        for l in lines {
            self.send_line(l);
        }
    }
}

/// `* n FETCH (UID u FLAGS (…) [MODSEQ (m)])`: what a session is told of a flag change.
pub(super) fn fetch_flags_line(seq: usize, e: &Entry, condstore: bool) -> String {
    let mut line = format!("* {seq} FETCH (UID {} FLAGS ({})", e.uid, e.flags);
    if condstore {
        line.push_str(&format!(" MODSEQ ({})", e.modseq));
    }
    line.push(')');
    line
}

/// The UIDs of `\Deleted` messages (within `only`, if given).
fn deleted(msgs: &[Entry], only: Option<&Vec<u32>>) -> Vec<u32> {
    msgs.iter()
        .filter(|e| e.flags.is_deleted())
        .filter(|e| only.is_none_or(|o| o.binary_search(&e.uid).is_ok()))
        .map(|e| e.uid)
        .collect()
}
