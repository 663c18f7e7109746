//! The envelope of an accepted message (RFC 5321 §2.3.1: the originator and recipient
//! addresses that travel with it), resolved to where it goes, and the [`Deliver`] trait that
//! takes it there.

use std::future::Future;

use super::{Address, DeliveryError, EnvelopeDsn, Message, Notify, Timestamp};

/// One accepted recipient, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recipient {
    /// The address as the client gave it.
    pub address: Address,
    /// The local mailboxes (account keys) it expands to, minus those an earlier recipient of
    /// the same envelope already reaches: possibly empty.
    pub mailboxes: Vec<String>,
    /// Remote forward-paths for the outbound queue: the address itself when a client that
    /// may relay sends to a foreign domain, or an alias's remote targets. Like `mailboxes`,
    /// disjoint across the recipients of one envelope.
    pub remote: Vec<Address>,
    /// `NOTIFY=` (RFC 3461 §4.1); default: not given.
    pub notify: Notify,
    /// `ORCPT=rfc822;...` (RFC 3461 §4.2), xtext-decoded: the address the original sender
    /// used, for the DSN's `Original-Recipient` and the next hop.
    pub orcpt: Option<String>,
}

/// Who sent a message, who gets it, and when it arrived.
#[derive(Clone, Debug, Default)]
pub struct Envelope {
    /// The HELO/EHLO name the client gave (our own host name for mail we make ourselves).
    pub helo: String,
    /// The reverse path; `None` is the null sender `<>`.
    pub mail_from: Option<Address>,
    pub recipients: Vec<Recipient>,
    /// When the end of data arrived.
    pub received_at: Timestamp,
    /// The SASL identity of the client that submitted this message (RFC 4954), `None` for
    /// mail that arrived unauthenticated (an MX peer) or that we made ourselves. Submitted
    /// mail is what we DKIM-sign, complete (Message-ID, Date) and hold to sender rules.
    pub authenticated: Option<String>,
    /// `RET=` and `ENVID=` of MAIL FROM (RFC 3461).
    pub dsn: EnvelopeDsn,
    /// `REQUIRETLS` (RFC 8689): every hop must be over TLS to a peer that offers REQUIRETLS.
    pub require_tls: bool,
    /// Where the local mailboxes file it: the inbox, or Junk when a check said so (DMARC
    /// `p=quarantine`, a spam score over the junk threshold). Remote copies ignore it.
    pub folder: Folder,
}

/// A folder of a local mailbox. The store keeps them Maildir++-style: the inbox is the
/// mailbox's own `new/`, every other folder a dot-directory beside it (`.Junk/new/`), so
/// no folder name can collide with the inbox's own directories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Folder {
    #[default]
    Inbox,
    /// RFC 6154's `\Junk` special-use folder.
    Junk,
}

impl Folder {
    /// Every folder the store creates for a mailbox.
    pub const ALL: [Folder; 2] = [Folder::Inbox, Folder::Junk];

    /// The folder's IMAP name.
    pub fn name(self) -> &'static str {
        match self {
            Folder::Inbox => "INBOX",
            Folder::Junk => "Junk",
        }
    }

    /// A folder by its IMAP name (INBOX in any case, RFC 3501 §5.1).
    pub fn from_name(name: &str) -> Option<Folder> {
        Folder::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

impl Envelope {
    /// Every mailbox to deliver to, each exactly once, in recipient order.
    pub fn mailboxes(&self) -> Vec<&str> {
        self.recipients
            .iter()
            .flat_map(|r| r.mailboxes.iter().map(String::as_str))
            .collect()
    }

    /// Every remote forward-path, each exactly once, in recipient order.
    pub fn remote_recipients(&self) -> Vec<&Address> {
        self.recipients
            .iter()
            .flat_map(|r| r.remote.iter())
            .collect()
    }
}

/// Where accepted mail goes. An implementation makes the message durable for every
/// recipient of the envelope before it returns `Ok` — the SMTP session's 250 rests on it —
/// and returns an id for the reply (`250 2.0.0 Ok: queued as <id>`). A spooled message's
/// file is only valid until then (see [`crate::mail::Spooled`]): copy, never keep.
pub trait Deliver: Clone + Send + Sync + 'static {
    fn deliver(
        &self,
        envelope: &Envelope,
        message: &Message,
    ) -> impl Future<Output = Result<String, DeliveryError>> + Send;
}
