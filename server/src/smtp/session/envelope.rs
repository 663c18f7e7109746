//! The mail transaction (RFC 5321 §3.3): MAIL, RCPT, DATA and the end of data, with their
//! parameters, the recipient rules (the directory, the relay rule) and our `Received:`
//! header. Each step asks the policy (`session/asking.rs`) before it takes effect.

use std::net::IpAddr;

use memchr::memchr;
use smtp_proto::{
    MailFrom, RcptTo, MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8,
};

use super::data::{BodyRules, DataBody, Rejection};
use super::extensions::Extension;
use super::{Awaiting, Greeted, Output, Phase, Reply, Session};
use crate::directory::RcptVerdict;
use crate::mail::{Address, DeliveryError, Envelope, Message, Recipient, Spooled, Timestamp};
use crate::policy::Stage;
use crate::smtp::LongLines;

impl Session {
    pub(super) fn mail(&mut self, from: MailFrom<String>, text: &[u8]) {
        if let Some(r) = self.auth_required() {
            return self.error(r);
        }
        let mail_from = if from.address.is_empty() {
            // smtp-proto also returns "" for `<postmaster>`, which is no reverse-path.
            if !angle_content(text).is_some_and(|c| c.is_empty()) {
                return self.error(Reply::new(501, (5, 1, 7), "Bad sender address syntax"));
            }
            None
        } else {
            match Address::parse(&from.address) {
                Ok(a) => Some(a),
                Err(_) => {
                    return self.error(Reply::new(501, (5, 1, 7), "Bad sender address syntax"))
                }
            }
        };
        let (dsn, require_tls) = match self.mail_dsn(&from, text) {
            Ok(v) => v,
            Err(r) => return self.error(r),
        };
        if let Err(r) = self.mail_params(&from) {
            return self.error(r);
        }
        if let Some(r) = self.sender_refusal(mail_from.as_ref()) {
            return self.error(r);
        }
        // The sender travels in the check and comes back with its answer: no copy.
        let stage = Stage::Mail {
            from: mail_from,
            declared_size: from.size,
        };
        self.ask_policy(
            Awaiting::Mail {
                declared_size: from.size,
                binary: from.flags & MAIL_BODY_BINARYMIME != 0,
                dsn,
                require_tls,
            },
            stage,
        );
    }

    /// MAIL parameters: only those of extensions we offer (RFC 5321 §4.1.1.11: 555 for the
    /// rest), and none after HELO.
    fn mail_params(&self, from: &MailFrom<String>) -> Result<(), Reply> {
        // RET, REQUIRETLS (and ENVID) are decided by `mail_dsn`.
        let mut allowed = super::dsn::MAIL_FLAGS;
        if self.offers(Extension::EightBitMime) {
            allowed |= MAIL_BODY_8BITMIME | MAIL_BODY_7BIT;
        }
        if self.offers(Extension::SmtpUtf8) {
            allowed |= MAIL_SMTPUTF8;
        }
        if self.offers(Extension::BinaryMime) {
            allowed |= MAIL_BODY_BINARYMIME;
        }
        let unsupported = from.flags & !allowed != 0
            || (from.size != 0 && !self.offers(Extension::Size))
            || from.trans_id.is_some()
            || from.by != 0
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.auth.is_some()
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0;
        if unsupported {
            return Err(Reply::new(555, (5, 5, 4), "Unsupported parameter"));
        }
        if from.size > self.config.limits.message_size {
            return Err(Reply::new(
                552,
                (5, 3, 4),
                "Message size exceeds fixed limit",
            ));
        }
        Ok(())
    }

    /// RCPT parameters: NOTIFY/ORCPT are decided by `rcpt_dsn`; no others.
    fn rcpt_params(&self, to: &RcptTo<String>) -> Result<(), Reply> {
        if to.flags & !super::dsn::RCPT_FLAGS != 0 || to.rrvs != 0 {
            return Err(Reply::new(555, (5, 5, 4), "Unsupported parameter"));
        }
        Ok(())
    }

    pub(super) fn rcpt(&mut self, to: RcptTo<String>, text: &[u8]) {
        let resolved = if to.address.is_empty() {
            // `<>` is no forward-path; `<postmaster>` (no domain) must be accepted (RFC 5321
            // §4.1.1.3), and smtp-proto gives "" for both.
            match angle_content(text) {
                Some(c) if c.eq_ignore_ascii_case(b"postmaster") => self.postmaster(),
                _ => return self.error(Reply::new(501, (5, 1, 3), "Bad recipient address syntax")),
            }
        } else {
            match Address::parse(&to.address) {
                Ok(a) => {
                    let verdict = self.config.directory.resolve(&a);
                    (a, verdict)
                }
                Err(_) => {
                    return self.error(Reply::new(501, (5, 1, 3), "Bad recipient address syntax"))
                }
            }
        };
        if let Err(r) = self.rcpt_params(&to) {
            return self.error(r);
        }
        let (notify, orcpt) = match self.rcpt_dsn(&to, text) {
            Ok(v) => v,
            Err(r) => return self.error(r),
        };
        let max = self.config.limits.recipients;
        let Some(env) = self.envelope.as_mut() else {
            // sequence_error has checked this already.
            return self.error(Reply::new(503, (5, 5, 1), "Error: need MAIL command"));
        };
        if env.recipients.len() >= max {
            // RFC 5321 §4.5.3.1.10: 452, and the client retries the rest later. Following the
            // protocol is no error of the client's, so this does not count towards the limit.
            return self.reply(Reply::new(452, (4, 5, 3), "Too many recipients"));
        }
        let (address, verdict) = resolved;
        // Postfix's permit_mynetworks, permit_sasl_authenticated.
        let may_relay = self.authenticated.is_some()
            || self
                .config
                .relay_networks
                .iter()
                .any(|n| n.contains(self.peer.remote.ip()));
        let (mailboxes, remote) = match verdict {
            RcptVerdict::Local(mailboxes) => (mailboxes, Vec::new()),
            RcptVerdict::Forward { mailboxes, remote } => (mailboxes, remote),
            RcptVerdict::RelayDenied if may_relay => (Vec::new(), vec![address.clone()]),
            // No `_` arm here or in `refuse_rcpt`: a new verdict must say what it does.
            refused @ (RcptVerdict::UnknownUser
            | RcptVerdict::Disabled
            | RcptVerdict::RelayDenied) => return self.refuse_rcpt(&address, refused),
            // Expanded at delivery; here only its posting policy (`directory/lists.rs`).
            RcptVerdict::List(_) => match self.config.directory.list(&address) {
                Some(list) => match list.may_post(env.mail_from.as_ref()) {
                    Ok(()) => (Vec::new(), Vec::new()),
                    Err(who) => return self.refuse_post(&address, who),
                },
                None => return self.refuse_rcpt(&address, RcptVerdict::UnknownUser),
            },
        };
        if let Some(reply) = self.quota_refusal(&address, &mailboxes) {
            return self.reply(reply);
        }
        let Some(env) = self.envelope.as_mut() else {
            return self.error(Reply::new(503, (5, 5, 1), "Error: need MAIL command"));
        };
        // The address travels in the check and comes back with its answer: no copy.
        let stage = Stage::Rcpt {
            from: env.mail_from.clone(),
            to: address,
            accepted: env.recipients.len(),
        };
        self.ask_policy(
            Awaiting::Rcpt {
                mailboxes,
                remote,
                notify,
                orcpt,
            },
            stage,
        );
    }

    /// A recipient the policy let through: recorded (minus what earlier recipients already
    /// reach), and 250.
    pub(super) fn add_recipient(&mut self, recipient: Recipient) {
        let Recipient {
            address,
            mailboxes,
            remote,
            notify,
            orcpt,
        } = recipient;
        let Some(env) = self.envelope.as_mut() else {
            return self.error(Reply::new(503, (5, 5, 1), "Error: need MAIL command"));
        };
        if env.addresses.insert(address.key()) {
            let mailboxes = mailboxes
                .into_iter()
                .filter(|m| env.mailboxes.insert(m.clone()))
                .collect();
            let remote = remote
                .into_iter()
                .filter(|a| env.remote.insert(a.key()))
                .collect();
            env.recipients.push(Recipient {
                address,
                mailboxes,
                remote,
                notify,
                orcpt,
            });
        }
        self.reply(Reply::new(250, (2, 1, 5), "Ok"));
    }

    /// The reply for a recipient we do not take: an unknown local user, a disabled
    /// account, or relay denied.
    fn refuse_rcpt(&mut self, address: &Address, verdict: RcptVerdict) {
        self.error(match verdict {
            RcptVerdict::Disabled => Reply::new(550, (5, 2, 1), "Mailbox disabled"),
            RcptVerdict::RelayDenied => {
                Reply::new(554, (5, 7, 1), format!("<{address}>: Relay access denied"))
            }
            // Local, Forward and List are never refused here; the unknown-user text is the
            // safe one.
            RcptVerdict::UnknownUser
            | RcptVerdict::Local(_)
            | RcptVerdict::Forward { .. }
            | RcptVerdict::List(_) => Reply::new(
                550,
                (5, 1, 1),
                format!("<{address}>: Recipient address rejected: User unknown"),
            ),
        })
    }

    /// `RCPT TO:<postmaster>` without a domain: the postmaster of our host name, or else of
    /// the first local domain (in the directory's stable order) that has one.
    fn postmaster(&self) -> (Address, RcptVerdict) {
        let dir = &self.config.directory;
        let mut domains = vec![self.config.hostname.to_ascii_lowercase()];
        for account in dir.accounts() {
            if let Some((_, d)) = account.rsplit_once('@') {
                if !domains.iter().any(|x| x == d) {
                    domains.push(d.to_string());
                }
            }
        }
        let mut first = None;
        for d in domains {
            let Ok(a) = Address::parse(&format!("postmaster@{d}")) else {
                continue;
            };
            let verdict = dir.resolve(&a);
            if matches!(verdict, RcptVerdict::Local(_) | RcptVerdict::Forward { .. }) {
                return (a, verdict);
            }
            first.get_or_insert((a, verdict));
        }
        first.unwrap_or_else(|| {
            (
                Address {
                    local: "postmaster".into(),
                    domain: self.config.hostname.to_ascii_lowercase(),
                },
                RcptVerdict::UnknownUser,
            )
        })
    }

    pub(super) fn data(&mut self) {
        if let Some(open) = self.envelope.as_ref() {
            // RFC 3030 §3: no DATA in a BDAT transaction, nor for a BINARYMIME message.
            if open.chunks.is_some() {
                return self.error(Reply::new(
                    503,
                    (5, 5, 1),
                    "Error: DATA after BDAT in one transaction",
                ));
            }
            if open.binary {
                return self.error(Reply::new(
                    503,
                    (5, 5, 1),
                    "Error: BODY=BINARYMIME requires BDAT",
                ));
            }
        }
        if self
            .envelope
            .as_ref()
            .is_some_and(|e| e.recipients.is_empty())
        {
            return self.error(Reply::new(554, (5, 5, 1), "No valid recipients"));
        }
        let declared = self.envelope.as_ref().map_or(0, |e| e.declared_size);
        let rules = self.body_rules(false);
        self.phase = Phase::Data(Box::new(DataBody::new(rules, declared)));
        self.reply(Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
    }

    /// `BDAT size [LAST]` (RFC 3030): the next `size` octets are a chunk of the message.
    /// A chunk that cannot be taken (no transaction, no recipients, a transaction a chunk
    /// already failed) is still read, and dropped: its octets are not commands.
    pub(super) fn bdat(&mut self, size: usize, last: bool) {
        let refusal = match self.envelope.as_ref() {
            None => Some(Reply::new(503, (5, 5, 1), "Error: need MAIL command")),
            Some(e) if e.recipients.is_empty() => {
                Some(Reply::new(554, (5, 5, 1), "No valid recipients"))
            }
            Some(_) => None,
        };
        if let Some(reply) = refusal {
            self.phase = Phase::SkipOctets(size);
            return self.error(reply);
        }
        let rules = self.body_rules(self.envelope.as_ref().is_some_and(|e| e.binary));
        let Some(open) = self.envelope.as_mut() else {
            return;
        };
        let declared = open.declared_size;
        let mut body = open
            .chunks
            .take()
            .unwrap_or_else(|| Box::new(DataBody::chunked(rules, declared)));
        body.next_chunk(size, last);
        self.phase = Phase::Data(body);
    }

    /// A BDAT chunk without LAST was read: `250`, and the body waits for the next one.
    /// A chunk that broke a limit fails the transaction at once (RFC 3030 §3: the client
    /// sends no more chunks after an error reply, and the server need not wait for LAST).
    pub(super) fn chunk_received(&mut self) {
        let Phase::Data(body) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        if let Some(rejection) = body.rejection() {
            let spooled = body.spooled();
            self.envelope = None;
            self.log
                .push(format!("[message discarded: {}]", rejection.reason()));
            if spooled {
                self.queue.push_back(Output::Unspool);
            }
            return self.body_refused(rejection);
        }
        let octets = body.octets();
        if let Some(open) = self.envelope.as_mut() {
            open.chunks = Some(body);
        }
        self.reply(Reply::new(
            250,
            (2, 0, 0),
            format!("Ok: {octets} octets received"),
        ));
    }

    /// How a body of this session is limited and kept.
    fn body_rules(&self, binary: bool) -> BodyRules {
        let limits = &self.config.limits;
        BodyRules {
            max_line: match limits.long_lines {
                LongLines::Keep => None,
                LongLines::Reject => Some(limits.text_line),
            },
            max_size: limits.message_size,
            binary,
            spool_header_cap: self.spool.as_ref().map(|_| limits.header_block),
        }
    }

    /// The reply for a body that is not stored.
    fn body_refused(&mut self, rejection: Rejection) {
        match rejection {
            Rejection::TooBig => self.error(Reply::new(
                552,
                (5, 3, 4),
                "Message size exceeds fixed limit",
            )),
            Rejection::LineTooLong => self.error(Reply::new(500, (5, 5, 6), "Line too long")),
            // Our disk, not the client's fault: not counted as an error.
            Rejection::SpoolFailed => {
                self.reply(Reply::new(452, (4, 3, 1), "Insufficient system storage"))
            }
        }
    }

    pub(super) fn end_of_data(&mut self, now: Timestamp) {
        let Phase::Data(body) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        let spooled = body.spooled();
        let finished = body.finish();
        self.log.push(format!(
            "[message {} octets, {} lines]",
            finished.octets, finished.lines
        ));
        let envelope = self.envelope.take();
        if let Some(rejection) = finished.rejection {
            self.log
                .push(format!("[message discarded: {}]", rejection.reason()));
            if spooled {
                self.queue.push_back(Output::Unspool);
            }
            return self.body_refused(rejection);
        }
        let (Some(envelope), Some(greeted)) = (envelope, self.greeted.as_ref()) else {
            // Unreachable: DATA needs an envelope, which needs a greeting.
            return self.error(Reply::new(503, (5, 5, 1), "Error: need MAIL command"));
        };
        if let Some(r) = self.author_refusal(&finished.content) {
            self.log
                .push("[message discarded: From: not owned by the user]".into());
            if spooled {
                self.queue.push_back(Output::Unspool);
            }
            return self.error(r);
        }
        let header = self.received_header(greeted, now);
        // Put the header in front of the content in place: no second body-sized buffer.
        let mut message = finished.content;
        let (h, len) = (header.len(), message.len());
        message.resize(len + h, 0);
        message.copy_within(..len, h);
        message[..h].copy_from_slice(header.as_bytes());
        let message = match (finished.spooled, &self.spool) {
            (Some((len, crc)), Some(path)) => Message::spooled(
                message,
                Spooled {
                    path: path.clone(),
                    len,
                    crc,
                },
            ),
            _ => Message::inline(message),
        };
        let envelope = Envelope {
            helo: greeted.name.clone(),
            mail_from: envelope.mail_from,
            recipients: envelope.recipients,
            received_at: now,
            authenticated: self.authenticated.clone(),
            dsn: envelope.dsn,
            require_tls: envelope.require_tls,
        };
        self.ask_policy(Awaiting::EndOfData, Stage::EndOfData { envelope, message });
    }

    /// The store's answer to [`Output::Deliver`].
    pub(super) fn delivered(&mut self, result: Result<String, DeliveryError>) {
        // Not the client's fault: these do not count towards the error limit.
        let reply = match result {
            Ok(id) => Reply::new(250, (2, 0, 0), format!("Ok: queued as {id}")),
            Err(DeliveryError::Temporary(_)) => Reply::new(
                451,
                (4, 3, 0),
                "Requested action aborted: local error in processing",
            ),
            Err(DeliveryError::Full) => Reply::new(452, (4, 3, 1), "Insufficient system storage"),
            Err(DeliveryError::OverQuota {
                permanent: false, ..
            }) => Reply::new(452, (4, 2, 2), "Mailbox full, try again later"),
            Err(DeliveryError::OverQuota {
                permanent: true, ..
            }) => Reply::new(552, (5, 2, 2), "Mailbox full"),
        };
        self.reply(reply);
    }

    /// RFC 5321 §4.4 trace header, folded before a part that would pass 78 columns:
    /// `Received: from {helo} ([ip]) by {hostname} with ESMTP; {date}`.
    ///
    /// The peer IP is written as an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) as
    /// the TCP-info grammar of §4.4 wants. "with" is ESMTP after EHLO and SMTP after HELO
    /// (RFC 3848). The HELO name is client-chosen text: characters that could fake header
    /// structure (`;`, `(`, ...) are replaced by `_` here; [`Transaction::helo`] keeps it as
    /// given.
    fn received_header(&self, greeted: &Greeted, now: Timestamp) -> String {
        let ip = match self.peer.remote.ip() {
            IpAddr::V4(ip) => format!("[{ip}]"),
            IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
        };
        let helo: String = greeted
            .name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let with = if greeted.esmtp { "ESMTP" } else { "SMTP" };
        let parts = [
            format!("from {helo} ({ip})"),
            format!("by {}", self.config.hostname),
            format!("with {with};"),
            crate::mail::date::rfc5322(now),
        ];
        let mut out = String::from("Received:");
        let mut column = out.len();
        for part in parts {
            if column + 1 + part.len() > 78 && column > "Received:".len() {
                out.push_str("\r\n\t");
                column = 1;
            } else {
                out.push(' ');
                column += 1;
            }
            column += part.len();
            out.push_str(&part);
        }
        out.push_str("\r\n");
        out
    }
}

/// What is between the first `<` and the next `>`, trimmed.
fn angle_content(text: &[u8]) -> Option<&[u8]> {
    let open = memchr(b'<', text)?;
    let rest = &text[open + 1..];
    let close = memchr(b'>', rest)?;
    Some(rest[..close].trim_ascii())
}
