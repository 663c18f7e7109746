//! Distribution lists (issue #8 item 4): a list address is a valid recipient at RCPT time
//! ([`RcptVerdict::List`]), but its members are only worked out at delivery (Postfix's
//! `:include:`, Mailman): each member then gets a copy whose envelope sender is the list's
//! bounce address, so a member's bounce reaches whoever runs the list, not the poster.
//!
//! Each list also answers two helper addresses, as Mailman's do: `<local>-bounces@` (the
//! envelope sender of every copy) and `<local>-request@` (the `List-Unsubscribe` target);
//! both reach the owner, since we run no list robot.
//!
//! Built from plain values ([`ListDef`]), not from the config type, like the rest of the
//! directory. The expansion itself is in `lists/expand.rs`.

mod expand;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use self::expand::{with_list_headers, ListCopy, Reached};
use super::{Directory, DirectoryError, RcptVerdict};
use crate::mail::{Address, AddressError};

/// Who may post to a list (the directory's copy of the config's `ListPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PostPolicy {
    #[default]
    Anyone,
    /// Envelope senders that are direct members or moderators.
    Members,
    Moderators,
}

/// One list as configured (borrowed from the config).
#[derive(Clone, Copy, Debug)]
pub struct ListDef<'a> {
    pub address: &'a str,
    pub members: &'a [String],
    pub policy: PostPolicy,
    pub moderators: &'a [String],
    pub owner: Option<&'a str>,
    pub description: &'a str,
}

/// A list that does not make sense.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListError {
    #[error("list {list:?}: invalid address {address:?}: {error}")]
    BadAddress {
        list: String,
        address: String,
        error: AddressError,
    },
    #[error("list {0:?} is not in a local domain")]
    NotLocal(String),
    #[error("list {0:?} (or its -bounces/-request address) is also an account, alias or list")]
    Taken(String),
    #[error("list {list:?}: member {member:?} is in a local domain but nobody has it")]
    UnknownMember { list: String, member: String },
    #[error("list {list:?}: owner {owner:?} must be an account, an alias or a remote address")]
    BadOwner { list: String, owner: String },
    #[error("alias {alias:?} targets list {list:?}: make it a member of the list instead")]
    AliasTargetsList { alias: String, list: String },
}

impl ListError {
    /// The address (as written in the config) the error is about, to point at it.
    pub fn culprit(&self) -> &str {
        match self {
            ListError::BadAddress { address, .. } => address,
            ListError::NotLocal(l) | ListError::Taken(l) => l,
            ListError::UnknownMember { member, .. } => member,
            ListError::BadOwner { owner, .. } => owner,
            ListError::AliasTargetsList { list, .. } => list,
        }
    }
}

/// A list, resolved at start-up.
#[derive(Clone, Debug)]
pub struct List {
    pub address: Address,
    members: Vec<Address>,
    /// Lookup keys of the direct members and of the moderators, for the posting policy.
    member_keys: BTreeSet<String>,
    moderator_keys: BTreeSet<String>,
    policy: PostPolicy,
    pub owner: Address,
    description: String,
}

/// Every list, by lookup key; also the `-bounces` and `-request` keys, to their list.
#[derive(Clone, Debug, Default)]
pub struct Lists {
    by_key: BTreeMap<String, List>,
    helpers: BTreeMap<String, String>,
}

impl List {
    /// RFC 2919 §2: `list-label "." namespace`; we use the address with `@` as a dot, as
    /// Mailman does (`team@example.org` is `team.example.org`). Characters a dot-atom cannot
    /// hold become `-`.
    pub fn id(&self) -> String {
        let label: String = self
            .address
            .local
            .to_ascii_lowercase()
            .chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                    true => c,
                    false => '-',
                },
            )
            .collect();
        format!("{label}.{}", self.address.domain)
    }

    /// Where the copies' bounces go: `<local>-bounces@<domain>`, which reaches the owner.
    pub fn bounce_address(&self) -> Address {
        Address {
            local: format!("{}-bounces", self.address.local),
            domain: self.address.domain.clone(),
        }
    }

    /// The headers every copy gets, each ending in CRLF: `List-Id` (RFC 2919) and
    /// `List-Post`/`List-Unsubscribe` (RFC 2369 §3.4, §3.2).
    pub fn headers(&self) -> String {
        let phrase = phrase(&self.description);
        let sep = if phrase.is_empty() { "" } else { " " };
        let (local, domain) = (&self.address.local, &self.address.domain);
        format!(
            "List-Id: {phrase}{sep}<{}>\r\nList-Post: <mailto:{local}@{domain}>\r\n\
             List-Unsubscribe: <mailto:{local}-request@{domain}?subject=unsubscribe>\r\n",
            self.id()
        )
    }

    /// May `sender` post? `Err` names who may ("members", "moderators") for the 550.
    pub fn may_post(&self, sender: Option<&Address>) -> Result<(), &'static str> {
        let key = sender.map(|a| untagged(&a.key()));
        let is = |set: &BTreeSet<String>| key.as_ref().is_some_and(|k| set.contains(k));
        match self.policy {
            PostPolicy::Anyone => Ok(()),
            PostPolicy::Members if is(&self.member_keys) || is(&self.moderator_keys) => Ok(()),
            PostPolicy::Members => Err("members"),
            PostPolicy::Moderators if is(&self.moderator_keys) => Ok(()),
            PostPolicy::Moderators => Err("moderators"),
        }
    }
}

/// The description as an RFC 5322 phrase: atoms as they are, anything else quoted; line
/// breaks (which would inject a header) become spaces.
fn phrase(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    let atom = |c: char| c.is_ascii_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if text.chars().all(atom) {
        return text.to_string();
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `alice+news@d` → `alice@d` (the `+` delimiter, as the directory's `resolve`).
fn untagged(key: &str) -> String {
    match key.split_once('@') {
        Some((local, domain)) => match local.split_once('+') {
            Some((base, _)) => format!("{base}@{domain}"),
            None => key.to_string(),
        },
        None => key.to_string(),
    }
}

impl Lists {
    /// The list an address (tag ignored) is, if any.
    pub fn get(&self, rcpt: &Address) -> Option<&List> {
        self.by_key.get(&untagged(&rcpt.key()))
    }

    /// The list whose `-bounces` or `-request` address this is.
    fn helper(&self, rcpt: &Address) -> Option<&List> {
        self.helpers
            .get(&untagged(&rcpt.key()))
            .and_then(|k| self.by_key.get(k))
    }
}

impl Directory {
    /// Adds the lists and checks them against the rest of the directory: addresses valid
    /// and local, not taken by an account or alias, members and owner resolvable, no alias
    /// pointing at a list (an alias expands at RCPT time, a list at delivery).
    pub fn with_lists<'a>(
        mut self,
        defs: impl IntoIterator<Item = ListDef<'a>>,
    ) -> Result<Directory, DirectoryError> {
        let parse = |list: &str, a: &str| {
            Address::parse(a).map_err(|error| ListError::BadAddress {
                list: list.to_string(),
                address: a.to_string(),
                error,
            })
        };
        let mut lists = Lists::default();
        for d in defs {
            let address = parse(d.address, d.address)?;
            if !self.is_local_domain(&address.domain) {
                return Err(ListError::NotLocal(d.address.into()).into());
            }
            let members = d
                .members
                .iter()
                .map(|m| parse(d.address, m))
                .collect::<Result<Vec<_>, _>>()?;
            let moderators = d
                .moderators
                .iter()
                .map(|m| parse(d.address, m).map(|a| untagged(&a.key())))
                .collect::<Result<BTreeSet<_>, _>>()?;
            let owner = match d.owner {
                Some(o) => parse(d.address, o)?,
                None => Address {
                    local: "postmaster".into(),
                    domain: address.domain.clone(),
                },
            };
            let list = List {
                member_keys: members.iter().map(|m| untagged(&m.key())).collect(),
                members,
                moderator_keys: moderators,
                policy: d.policy,
                owner,
                description: d.description.to_string(),
                address,
            };
            let key = list.address.key();
            for k in [
                key.clone(),
                helper_key(&list, "bounces"),
                helper_key(&list, "request"),
            ] {
                let taken = self.has_account(&k)
                    || self.aliases.contains_key(&k)
                    || lists.by_key.contains_key(&k)
                    || lists.helpers.contains_key(&k);
                if taken {
                    return Err(ListError::Taken(d.address.into()).into());
                }
            }
            lists
                .helpers
                .insert(helper_key(&list, "bounces"), key.clone());
            lists
                .helpers
                .insert(helper_key(&list, "request"), key.clone());
            lists.by_key.insert(key, list);
        }
        for (alias, targets) in &self.aliases {
            if let Some(t) = targets
                .iter()
                .find(|t| lists.by_key.contains_key(&untagged(t)))
            {
                return Err(ListError::AliasTargetsList {
                    alias: alias.clone(),
                    list: t.clone(),
                }
                .into());
            }
        }
        self.lists = lists;
        for list in self.lists.by_key.values() {
            let name = list.address.to_string();
            for m in &list.members {
                if self.resolve(m) == RcptVerdict::UnknownUser {
                    return Err(ListError::UnknownMember {
                        list: name,
                        member: m.to_string(),
                    }
                    .into());
                }
            }
            let explicit = list.owner.local != "postmaster";
            let bad_owner = match self.resolve(&list.owner) {
                RcptVerdict::List(_) => true,
                RcptVerdict::UnknownUser => explicit,
                _ => false,
            };
            if bad_owner {
                return Err(ListError::BadOwner {
                    list: name,
                    owner: list.owner.to_string(),
                }
                .into());
            }
        }
        Ok(self)
    }

    /// The list this address is, if any.
    pub fn list(&self, rcpt: &Address) -> Option<&List> {
        self.lists.get(rcpt)
    }

    /// The verdict for a list address or one of its helper addresses; `None` for any other
    /// address. Called by [`Directory::resolve`] for local domains.
    pub(super) fn list_verdict(&self, rcpt: &Address) -> Option<RcptVerdict> {
        if let Some(list) = self.lists.get(rcpt) {
            return Some(RcptVerdict::List(list.address.key()));
        }
        let list = self.lists.helper(rcpt)?;
        Some(self.owner_verdict(list))
    }

    /// Where the owner's mail goes: their mailbox(es) if local, the queue if remote.
    pub fn owner_verdict(&self, list: &List) -> RcptVerdict {
        match self.resolve(&list.owner) {
            RcptVerdict::RelayDenied => RcptVerdict::Forward {
                mailboxes: Vec::new(),
                remote: vec![list.owner.clone()],
            },
            // Validation refuses an owner that is a list; be safe anyway.
            RcptVerdict::List(_) => RcptVerdict::UnknownUser,
            v => v,
        }
    }
}

fn helper_key(list: &List, suffix: &str) -> String {
    format!(
        "{}-{suffix}@{}",
        list.address.local.to_lowercase(),
        list.address.domain
    )
}
