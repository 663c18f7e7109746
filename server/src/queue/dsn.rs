//! Delivery status notifications: RFC 3464 DSNs wrapped in an RFC 6522 `multipart/report`.
//!
//! [`build_dsn`] is a pure function: everything it needs (the time included) comes in through
//! [`DsnInput`], and the same input always gives the same bytes. The MIME structure is built
//! with mail-builder:
//!
//! ```text
//! multipart/report; report-type="delivery-status"
//! ├── text/plain               the human explanation (Postfix-like wording)
//! ├── message/delivery-status  per-message fields, then one group per recipient (7bit)
//! └── text/rfc822-headers      the original header section (default), or
//!     message/rfc822           the whole original message (`return_full`)
//! ```
//!
//! # Determinism
//!
//! mail-builder invents a random MIME boundary unless the `Content-Type` carries one, and adds
//! `Date`/`Message-ID` headers from the real clock unless they are present. We always supply
//! all three: the date is [`DsnInput::now`], the Message-ID is [`DsnInput::message_id`], and
//! the boundary is derived from the Message-ID with a fixed hash (FNV-1a, then splitmix64).
//! Should a candidate boundary occur anywhere in the content of a part (an attacker can put
//! any text in the returned message or the remote's reply), the next candidate is tried, so
//! the returned content can never end the report early. No hasher with a per-process seed,
//! no clock and no RNG is involved.
//!
//! # Encoding
//!
//! Every line ends in CRLF (a bare LF or CR in the original message becomes CRLF, as the SMTP
//! session does for stored messages). The delivery-status part is always 7-bit, as RFC 3464
//! requires: control characters become spaces, runs of white space collapse to one space, and
//! non-ASCII characters are written as RFC 6533 `\x{HEX}` escapes; addresses that are not
//! ASCII use the RFC 6533 `utf-8` address type. Long fields (a remote's verbose reply) are
//! folded at spaces to 78 columns. The returned headers or message are never re-encoded
//! (`message/rfc822` may only be 7bit or 8bit): the part is labelled `8bit` when it has 8-bit
//! octets, `7bit` otherwise. The human part is UTF-8; mail-builder picks 7bit or
//! quoted-printable for it.
//!
//! The DSN itself must be sent with the null reverse path (`MAIL FROM:<>`), and only when
//! [`should_send_dsn`] says so: a bounce is never bounced.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use mail_builder::headers::address::Address as MbAddress;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;

use crate::env::Timestamp;
use crate::mail::header::header_section;
use crate::mail::Address;

mod fields;
mod returned;
#[cfg(test)]
mod tests;

use self::fields::*;
use self::returned::*;

/// Which notification this is: it decides the subject and the human explanation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DsnKind {
    /// At least one recipient failed permanently (or its message expired).
    Failure,
    /// A warning: some recipients are still being retried.
    Delay,
    /// A success notice (RFC 3461 `NOTIFY=SUCCESS`): delivered to a mailbox here, or relayed
    /// to a system that does not offer DSN.
    Success,
}

impl DsnKind {
    /// The `Subject:` of the notification.
    pub fn subject(self) -> &'static str {
        match self {
            DsnKind::Failure => "Undelivered Mail Returned to Sender",
            DsnKind::Delay => "Delayed Mail (still being retried)",
            DsnKind::Success => "Successful Mail Delivery Report",
        }
    }
}

/// The RFC 3464 §2.3.3 `Action` of one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DsnAction {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl DsnAction {
    /// The value of the `Action:` field.
    pub fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
            DsnAction::Expanded => "expanded",
        }
    }
}

/// One recipient of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient: rfc822;<address>` (`utf-8;` with `\x{HEX}` escapes if not ASCII).
    pub address: Address,
    /// `Original-Recipient`: the ORCPT value as `type;address` (e.g. `rfc822;bob@example.net`),
    /// or a bare address, which is taken as `rfc822`.
    pub original: Option<String>,
    pub action: DsnAction,
    /// The RFC 3463 enhanced status code, e.g. `(5, 1, 1)`.
    pub status: (u8, u16, u16),
    /// `Remote-MTA: dns;<host>`: the host that gave the reply.
    pub remote_mta: Option<String>,
    /// `Diagnostic-Code: smtp;<reply>`: the remote's reply text, e.g.
    /// `550 5.1.1 <bob@example.net>: user unknown`. The lines of a multi-line reply may be
    /// separated by CRLF; they are joined with spaces.
    pub diagnostic: Option<String>,
    /// `Last-Attempt-Date`.
    pub last_attempt: Option<Timestamp>,
    /// `Will-Retry-Until`: written only for [`DsnAction::Delayed`] (RFC 3464 §2.3.8).
    pub will_retry_until: Option<Timestamp>,
}

/// Everything a notification is made of. See the module docs.
#[derive(Clone, Debug)]
pub struct DsnInput<'a> {
    pub kind: DsnKind,
    /// Our hostname: `Reporting-MTA: dns;<host>` and `From: MAILER-DAEMON@<host>`.
    pub reporting_mta: &'a str,
    /// The ENVID of the original transaction, xtext-decoded (as Postfix stores it). Printable
    /// ASCII is written as is; any other octet as xtext `+HH`, to keep the field 7-bit.
    pub original_envelope_id: Option<&'a str>,
    /// When we accepted the original message: `Arrival-Date`.
    pub arrival_date: Timestamp,
    /// Now: the `Date:` of the notification.
    pub now: Timestamp,
    /// The original envelope sender: the `To:` of the notification.
    pub sender: &'a Address,
    pub recipients: &'a [DsnRecipient],
    /// The original message as stored (CRLF line ends expected; bare LF/CR are fixed up).
    pub original_message: &'a [u8],
    /// A unique Message-ID, with or without the angle brackets. The MIME boundary is derived
    /// from it.
    pub message_id: String,
    /// Return the whole message (`message/rfc822`) instead of its header section
    /// (`text/rfc822-headers`, the default of RFC 3461 `RET=HDRS`).
    pub return_full: bool,
}

/// Whether a DSN may be sent for a message whose `MAIL FROM` was `mail_from` (`None` for the
/// null reverse path `<>`). A notification is never sent for a notification (RFC 5321
/// §4.5.5, RFC 3464 §2): that is how bounce loops are avoided.
pub fn should_send_dsn(mail_from: Option<&Address>) -> bool {
    mail_from.is_some()
}

/// A date in RFC 5322 form, in UTC: `Thu, 01 Jan 2026 00:00:00 +0000` — the one formatter
/// of [`crate::mail::date`], so a DSN's dates read like our `Received:` headers. Sub-second
/// precision is dropped.
pub fn rfc5322_date(t: Timestamp) -> String {
    crate::mail::date::rfc5322(t)
}

/// Builds the notification: a complete message with CRLF line ends, ready to be queued with
/// the null reverse path to [`DsnInput::sender`]. Deterministic: the same input gives the same
/// bytes.
pub fn build_dsn(input: &DsnInput) -> Vec<u8> {
    let host = host_text(input.reporting_mta);
    let original = crlf_normalized(input.original_message);
    let returned: &[u8] = if input.return_full {
        &original
    } else {
        header_section(&original)
    };

    // Brackets optional; nothing that could end the header line gets through.
    let message_id: String = input
        .message_id
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, '<' | '>'))
        .collect();
    let human = human_text(input, &host);
    let status = delivery_status(input, &host);
    let boundary = choose_boundary(
        &message_id,
        &[human.as_bytes(), status.as_bytes(), returned],
    );

    let returned_encoding = if returned.is_ascii() { "7bit" } else { "8bit" };
    let (returned_type, returned_description) = match (input.return_full, input.kind) {
        (true, DsnKind::Failure) => ("message/rfc822", "Undelivered Message"),
        (true, DsnKind::Delay) => ("message/rfc822", "Delayed Message"),
        (false, DsnKind::Failure) => ("text/rfc822-headers", "Undelivered Message Headers"),
        (false, DsnKind::Delay) => ("text/rfc822-headers", "Delayed Message Headers"),
        (true, DsnKind::Success) => ("message/rfc822", "Delivered Message"),
        (false, DsnKind::Success) => ("text/rfc822-headers", "Message Headers"),
    };

    let parts = vec![
        MimePart::new(
            ContentType::new("text/plain").attribute("charset", "utf-8"),
            BodyPart::Text(human.into()),
        )
        .header("Content-Description", Text::new("Notification")),
        // Binary, not Text: mail-builder would add `charset=utf-8` to a text body. The
        // explicit Content-Transfer-Encoding makes it write the content as is.
        MimePart::new(
            ContentType::new("message/delivery-status"),
            BodyPart::Binary(status.into_bytes().into()),
        )
        .header("Content-Description", Text::new("Delivery report"))
        .transfer_encoding("7bit"),
        MimePart::new(
            ContentType::new(returned_type),
            BodyPart::Binary(Cow::Borrowed(returned)),
        )
        .header("Content-Description", Text::new(returned_description))
        .transfer_encoding(returned_encoding),
    ];

    let builder = MessageBuilder::new()
        .header("Date", Raw::new(rfc5322_date(input.now)))
        .from(MbAddress::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{host}"),
        ))
        .to(MbAddress::new_address(None::<&str>, mailbox(input.sender)))
        .subject(input.kind.subject())
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .message_id(MessageId::new(message_id))
        .header("MIME-Version", Raw::new("1.0"))
        .body(MimePart::new(
            ContentType::new("multipart/report")
                .attribute("report-type", "delivery-status")
                .attribute("boundary", boundary),
            parts,
        ));

    let mut out = Vec::with_capacity(returned.len() + 4096);
    builder.serialize(&mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The human-readable part
// ---------------------------------------------------------------------------------------------

/// Width the explanation is wrapped to; mail-builder keeps a text part 7bit while its lines
/// stay under 76 octets.
const TEXT_WIDTH: usize = 72;

fn human_text(input: &DsnInput, host: &str) -> String {
    let mut t = String::new();
    let _ = write!(t, "This is the mail system at host {host}.\n\n");
    match input.kind {
        DsnKind::Failure => {
            t.push_str(
                "I'm sorry to have to inform you that your message could not\n\
                 be delivered to one or more recipients. ",
            );
            t.push_str(if input.return_full {
                "It's attached below.\n\n"
            } else {
                "Its headers are attached below.\n\n"
            });
        }
        DsnKind::Success => {
            // Postfix's wording.
            t.push_str(
                "Your message was successfully delivered to the destination(s)\n\
                 listed below. If the message was delivered to mailbox you will\n\
                 receive no further notifications. Otherwise you may still receive\n\
                 notifications of mail delivery errors from other systems.\n\n",
            );
        }
        DsnKind::Delay => {
            t.push_str(
                "####################################################################\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
                 ####################################################################\n\n",
            );
            let delayed = input.now.since(input.arrival_date);
            let _ = writeln!(
                t,
                "Your message could not be delivered for more than {}.",
                human_duration(delayed)
            );
            let until = input
                .recipients
                .iter()
                .filter(|r| r.action == DsnAction::Delayed)
                .filter_map(|r| r.will_retry_until)
                .max();
            if let Some(until) = until {
                let _ = writeln!(
                    t,
                    "It will be retried until it is {} old.",
                    human_duration(until.since(input.arrival_date))
                );
            }
            t.push('\n');
        }
    }
    t.push_str("For further assistance, please send mail to postmaster.\n\n");
    if input.return_full {
        t.push_str(
            "If you do so, please include this problem report. You can\n\
             delete your own text from the attached returned message.\n\n",
        );
    } else {
        t.push_str("If you do so, please include this problem report.\n\n");
    }
    t.push_str("                   The mail system\n");
    for r in input.recipients {
        t.push('\n');
        wrap(&mut t, &recipient_line(r), TEXT_WIDTH, "    ");
    }
    t.replace('\n', "\r\n")
}

/// `<bob@example.net>: host mx.example.net said: 550 5.1.1 ...`, Postfix style.
fn recipient_line(r: &DsnRecipient) -> String {
    let mut line = format!("<{}>", mailbox(&r.address));
    if let Some(original) = &r.original {
        let shown = original_address(original);
        if !shown.eq_ignore_ascii_case(&mailbox(&r.address)) {
            let _ = write!(line, " (expanded from <{}>)", human_clean(shown));
        }
    }
    line.push_str(": ");
    let remote = r.remote_mta.as_deref().map(host_text);
    let diagnostic = r
        .diagnostic
        .as_deref()
        .map(human_clean)
        .filter(|d| !d.is_empty());
    let (c, s, d) = r.status;
    match (diagnostic, remote) {
        (Some(diag), Some(remote)) => match r.action {
            DsnAction::Failed | DsnAction::Delayed => {
                let _ = write!(line, "host {remote} said: {diag}");
            }
            DsnAction::Delivered | DsnAction::Relayed | DsnAction::Expanded => {
                let _ = write!(line, "delivery via {remote}: {diag}");
            }
        },
        (Some(diag), None) => line.push_str(&diag),
        (None, remote) => {
            line.push_str(match r.action {
                DsnAction::Failed => "delivery failed",
                DsnAction::Delayed => "delivery temporarily suspended",
                DsnAction::Delivered => "delivered",
                DsnAction::Relayed => "relayed to a system that does not report delivery",
                DsnAction::Expanded => "delivered to the members of a list or alias",
            });
            if let Some(remote) = remote {
                let _ = write!(line, " (host {remote})");
            }
            let _ = write!(line, ", status {c}.{s}.{d}");
        }
    }
    line
}

/// Greedy word wrap to `width` columns; continuation lines start with `indent`. A word longer
/// than a line stays whole.
fn wrap(out: &mut String, text: &str, width: usize, indent: &str) {
    let mut column = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if column > 0 && column + 1 + len > width {
            out.push('\n');
            out.push_str(indent);
            column = indent.len();
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
    }
    out.push('\n');
}

/// `4 hour(s)`, `5 day(s)`: whole days when exact, else floored to the largest unit.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 86_400 && secs.is_multiple_of(86_400) {
        format!("{} day(s)", secs / 86_400)
    } else if secs >= 3_600 {
        format!("{} hour(s)", secs / 3_600)
    } else if secs >= 60 {
        format!("{} minute(s)", secs / 60)
    } else {
        format!("{secs} second(s)")
    }
}

/// Text for the human part: UTF-8 kept, control characters and runs of white space become one
/// space.
fn human_clean(s: &str) -> String {
    collapse(s.chars().map(|c| if c.is_control() { ' ' } else { c }))
}

// ---------------------------------------------------------------------------------------------
// The message/delivery-status part
// ---------------------------------------------------------------------------------------------

/// Fold target for the delivery-status fields (RFC 5322 §2.1.1 "SHOULD" limit).
const FOLD_WIDTH: usize = 78;
/// A word that would push a line past this is cut (the 998-octet limit is a MUST).
const HARD_WIDTH: usize = 900;

fn delivery_status(input: &DsnInput, host: &str) -> String {
    let mut s = String::new();
    if let Some(envid) = input.original_envelope_id {
        field(&mut s, "Original-Envelope-Id", &envelope_id(envid));
    }
    field(
        &mut s,
        "Reporting-MTA",
        &format!("dns;{}", ascii_clean(host)),
    );
    field(&mut s, "Arrival-Date", &rfc5322_date(input.arrival_date));
    for r in input.recipients {
        s.push_str("\r\n");
        if let Some(original) = &r.original {
            field(&mut s, "Original-Recipient", &original_recipient(original));
        }
        field(
            &mut s,
            "Final-Recipient",
            &typed_address(&mailbox(&r.address)),
        );
        field(&mut s, "Action", r.action.as_str());
        let (c, sub, d) = r.status;
        field(&mut s, "Status", &format!("{c}.{sub}.{d}"));
        if let Some(remote) = &r.remote_mta {
            let remote = ascii_clean(&host_text(remote));
            field(&mut s, "Remote-MTA", &format!("dns;{remote}"));
        }
        if let Some(diagnostic) = &r.diagnostic {
            let text = ascii_clean(diagnostic);
            if !text.is_empty() {
                field(&mut s, "Diagnostic-Code", &format!("smtp;{text}"));
            }
        }
        if let Some(at) = r.last_attempt {
            field(&mut s, "Last-Attempt-Date", &rfc5322_date(at));
        }
        if r.action == DsnAction::Delayed {
            if let Some(until) = r.will_retry_until {
                field(&mut s, "Will-Retry-Until", &rfc5322_date(until));
            }
        }
    }
    s
}

/// Appends `Name: value` CRLF, folding before a space so no line passes [`FOLD_WIDTH`] when
/// the words allow it. `value` is ASCII with single spaces (see [`ascii_clean`]), so
/// unfolding gives it back exactly.
fn field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    let mut column = name.len() + 1;
    let mut first = true;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        let mut word = word;
        if first {
            out.push(' ');
            column += 1;
            first = false;
        } else if column + 1 + word.len() > FOLD_WIDTH {
            out.push_str("\r\n ");
            column = 1;
        } else {
            out.push(' ');
            column += 1;
        }
        // Pathological words: cut them so no line breaks the 998-octet limit.
        while column + word.len() > HARD_WIDTH {
            let mut cut = HARD_WIDTH.saturating_sub(column).max(1);
            while !word.is_char_boundary(cut) {
                cut += 1;
            }
            let (head, tail) = word.split_at(cut);
            out.push_str(head);
            out.push_str("\r\n ");
            column = 1;
            word = tail;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push_str("\r\n");
}
