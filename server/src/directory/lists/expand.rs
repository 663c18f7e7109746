//! Expanding the lists of one accepted message into copies, at delivery.
//!
//! One visited set for the whole message: a list reached twice (two lists that include each
//! other, or a list given as a recipient and also nested in another) is expanded once, and a
//! final recipient reached twice (directly and through a list, or through two lists) gets
//! one copy — Mailman's "avoid duplicates", and the session's own rule that each mailbox of
//! a transaction is delivered once. Nested lists are flattened into the copy of the list the
//! message was posted to: the member hears from the list they were sent it by, and that
//! list's owner hears the bounces.
//!
//! **Loops through the outside.** A local visited set cannot see a loop through a remote
//! forwarder (a member that forwards back to the list). The copy's `List-Id` can: a message
//! that already carries a list's `List-Id` is not expanded by that list again. It goes to the
//! list's owner, unmodified, instead of being dropped: the message was accepted with a 250,
//! so someone must get it, and the owner is who can fix the forwarding member (Mailman holds
//! such posts for the moderator for the same reason). A nested list whose `List-Id` the
//! message carries is skipped (it delivered this message once already), with a trace note.

use std::collections::BTreeSet;

use super::super::{Directory, RcptVerdict};
use super::List;
use crate::mail::header::header_section;
use crate::mail::Address;

/// One copy to deliver for a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCopy {
    /// The list it is for (the copy's recipient address).
    pub list: Address,
    /// The envelope sender: the list's bounce address; for a loop sent to the owner, the
    /// message's own sender.
    pub sender: Option<Address>,
    /// Headers to add after our `Received:` (empty for a loop sent to the owner).
    pub headers: String,
    pub mailboxes: Vec<String>,
    pub remote: Vec<Address>,
}

/// What was reached so far for one message: mailboxes, remote keys and lists.
#[derive(Debug, Default)]
pub struct Reached {
    pub mailboxes: BTreeSet<String>,
    pub remote: BTreeSet<String>,
    lists: BTreeSet<String>,
}

impl Directory {
    /// The copies the lists `lists` (keys, in recipient order) make of `message`, sent by
    /// `sender`, skipping what `reached` already has (and adding to it). Also trace notes.
    pub fn expand_lists(
        &self,
        lists: &[String],
        sender: Option<&Address>,
        message: &[u8],
        reached: &mut Reached,
    ) -> (Vec<ListCopy>, Vec<String>) {
        let carried = list_ids(message);
        let mut copies = Vec::new();
        let mut notes = Vec::new();
        for key in lists {
            let Some(list) = self.lists.by_key.get(key) else {
                continue;
            };
            if !reached.lists.insert(key.clone()) {
                continue;
            }
            let mut copy = ListCopy {
                list: list.address.clone(),
                sender: Some(list.bounce_address()),
                headers: list.headers(),
                mailboxes: Vec::new(),
                remote: Vec::new(),
            };
            if carried.contains(&list.id()) {
                notes.push(format!(
                    "list <{}>: message already carries its List-Id (a loop): to the owner <{}>",
                    list.address, list.owner
                ));
                copy.sender = sender.cloned();
                copy.headers.clear();
                self.add(self.owner_verdict(list), &mut copy, reached);
            } else {
                self.flatten(list, &carried, &mut copy, reached, &mut notes);
            }
            if copy.mailboxes.is_empty() && copy.remote.is_empty() {
                notes.push(format!("list <{}>: nobody left to reach", list.address));
                continue;
            }
            copies.push(copy);
        }
        (copies, notes)
    }

    /// Adds `list`'s members (nested lists flattened, depth first in member order).
    fn flatten(
        &self,
        list: &List,
        carried: &BTreeSet<String>,
        copy: &mut ListCopy,
        reached: &mut Reached,
        notes: &mut Vec<String>,
    ) {
        for member in &list.members {
            match self.resolve(member) {
                RcptVerdict::List(key) => {
                    let Some(nested) = self.lists.by_key.get(&key) else {
                        continue;
                    };
                    if !reached.lists.insert(key) {
                        continue;
                    }
                    if carried.contains(&nested.id()) {
                        notes.push(format!(
                            "list <{}>: nested list <{}> already delivered this message: skipped",
                            list.address, nested.address
                        ));
                        continue;
                    }
                    self.flatten(nested, carried, copy, reached, notes);
                }
                RcptVerdict::RelayDenied => self.add(
                    RcptVerdict::Forward {
                        mailboxes: Vec::new(),
                        remote: vec![member.clone()],
                    },
                    copy,
                    reached,
                ),
                v => self.add(v, copy, reached),
            }
        }
    }

    fn add(&self, verdict: RcptVerdict, copy: &mut ListCopy, reached: &mut Reached) {
        let (mailboxes, remote) = match verdict {
            RcptVerdict::Local(m) => (m, Vec::new()),
            RcptVerdict::Forward { mailboxes, remote } => (mailboxes, remote),
            // A member that went away since start-up (a disabled account): nothing to add.
            _ => return,
        };
        for m in mailboxes {
            if reached.mailboxes.insert(m.clone()) {
                copy.mailboxes.push(m);
            }
        }
        for a in remote {
            if reached.remote.insert(a.key()) {
                copy.remote.push(a);
            }
        }
    }
}

/// The list ids (`<...>` of every `List-Id:` field, lower-cased) in the message's header.
fn list_ids(message: &[u8]) -> BTreeSet<String> {
    let header = header_section(message);
    let mut ids = BTreeSet::new();
    let mut lines = header.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line.len() < 8 || !line[..8].eq_ignore_ascii_case(b"list-id:") {
            continue;
        }
        let mut field = line[8..].to_vec();
        while let Some(next) = lines.next_if(|l| l.starts_with(b" ") || l.starts_with(b"\t")) {
            field.extend_from_slice(next);
        }
        let text = String::from_utf8_lossy(&field);
        if let Some((_, rest)) = text.rsplit_once('<') {
            if let Some((id, _)) = rest.split_once('>') {
                ids.insert(id.trim().to_ascii_lowercase());
            }
        }
    }
    ids
}

/// `message` with `headers` inserted after its first header field when that is a
/// `Received:` (ours, which the session puts first), else at the very top.
pub fn with_list_headers(message: &[u8], headers: &str) -> Vec<u8> {
    let mut at = 0;
    if message.len() >= 9 && message[..9].eq_ignore_ascii_case(b"received:") {
        let mut pos = 0;
        while let Some(nl) = memchr::memchr(b'\n', &message[pos..]) {
            pos += nl + 1;
            if !matches!(message.get(pos), Some(b' ' | b'\t')) {
                break;
            }
        }
        at = pos;
        if memchr::memchr(b'\n', message).is_none() {
            at = message.len();
        }
    }
    let mut out = Vec::with_capacity(message.len() + headers.len());
    out.extend_from_slice(&message[..at]);
    out.extend_from_slice(headers.as_bytes());
    out.extend_from_slice(&message[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_go_after_our_folded_received() {
        let m = b"Received: from a\r\n\tby b; date\r\nSubject: x\r\n\r\nbody\r\n";
        let out = with_list_headers(m, "List-Id: <t.d>\r\n");
        assert_eq!(
            out,
            b"Received: from a\r\n\tby b; date\r\nList-Id: <t.d>\r\nSubject: x\r\n\r\nbody\r\n"
        );
        let out = with_list_headers(b"Subject: x\r\n\r\n", "L: 1\r\n");
        assert_eq!(out, b"L: 1\r\nSubject: x\r\n\r\n");
    }

    #[test]
    fn list_ids_are_read_from_the_header_only_and_unfolded() {
        let m = b"List-Id: Team\r\n <Team.Example.org>\r\nlist-id: <b.d>\r\n\r\nList-Id: <c.d>\r\n";
        let ids = list_ids(m);
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec!["b.d".to_string(), "team.example.org".to_string()]
        );
    }
}
