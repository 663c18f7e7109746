//! The mail transaction (RFC 5321 §3.3): MAIL, RCPT, DATA and the end of data, with their
//! parameters, the recipient rules (the directory, the relay rule) and our `Received:`
//! header. Each step asks the policy (`session/asking.rs`) before it takes effect.

use std::net::IpAddr;

use smtp_proto::request::parser::Rfc5321Parser;
use smtp_proto::{
    MailFrom, RcptTo, MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8,
};

use super::commands::argument_error;
use super::data::{BodyRules, DataBody, Rejection};
use super::extensions::Extension;
use super::path::Path;
use super::{Awaiting, Greeted, Output, Phase, Reply, Session};
use crate::directory::RcptVerdict;
use crate::mail::{
    Address, DeliveryError, Envelope, Folder, Message, Recipient, Spooled, Timestamp,
};
use crate::policy::Stage;
use crate::smtp::LongLines;

impl Session {
    /// MAIL with its path parsed (`session/path.rs`); `params` is the rest of the line,
    /// from the space after `>` (or the line ending) on.
    pub(super) fn mail(&mut self, path: Path, params: &[u8]) {
        if let Some(r) = self.auth_required() {
            return self.error(r);
        }
        let mail_from = match path {
            Path::Null => None,
            Path::Mailbox(a) => Some(a),
            // `<postmaster>` is a forward-path only (RFC 5321 §4.1.1.3).
            Path::Postmaster => {
                return self.error(Reply::new(501, (5, 1, 7), "Bad sender address syntax"))
            }
        };
        if let Err(r) = self.parameter_shapes(params, super::params::MAIL) {
            return self.error(r);
        }
        let declared = match self.size_param(params) {
            Ok(size) => size,
            Err(r) => return self.error(r),
        };
        let address = mail_from
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let mut from =
            match Rfc5321Parser::new(&mut params.iter()).mail_from_parameters(address.into()) {
                Ok(from) => from.into_owned(),
                Err(e) => return self.error(argument_error(&e, "MAIL")),
            };
        if let Some(size) = declared {
            from.size = size;
        }
        let (dsn, require_tls) = match self.mail_dsn(&from, params) {
            Ok(v) => v,
            Err(r) => return self.error(r),
        };
        if let Err(r) = self.mail_params(&from) {
            return self.error(r);
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && mail_from.as_ref().is_some_and(|a| !is_ascii(a)) {
            return self.error(needs_smtputf8());
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
                smtputf8,
            },
            stage,
        );
    }

    /// RFC 1870 §6 `SIZE=size-value`, read from the parameter text ourselves: smtp-proto's
    /// number parser saturates at 20 digits and then starts over (`SIZE=` with 23 digits
    /// came out small and was accepted). A value of digits only is a size, however long:
    /// over our limit it is 552 5.3.4 (saturated, so 21+ digits are simply too big); empty
    /// or with anything but digits it is 501 5.5.4. `None` when there is no SIZE (or SIZE
    /// is not offered, which `mail_params` answers with 555).
    fn size_param(&self, params: &[u8]) -> Result<Option<usize>, Reply> {
        if !self.offers(Extension::Size) {
            return Ok(None);
        }
        let params = super::commands::strip_line_ending(params);
        let mut size = None;
        for param in params.split(|&b| b == b' ').filter(|p| !p.is_empty()) {
            let Some((key, value)) = param.split_at_checked(4) else {
                continue;
            };
            let Some(value) = value.strip_prefix(b"=") else {
                continue;
            };
            if !key.eq_ignore_ascii_case(b"SIZE") {
                continue;
            }
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(Reply::new(501, (5, 5, 4), "Invalid SIZE parameter"));
            }
            let n = value.iter().fold(0usize, |n, &d| {
                n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
            });
            if n > self.config.limits.message_size {
                return Err(Reply::new(
                    552,
                    (5, 3, 4),
                    "Message size exceeds fixed limit",
                ));
            }
            size = Some(n);
        }
        Ok(size)
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

    /// RCPT with its path parsed (`session/path.rs`); `params` as for [`Session::mail`].
    pub(super) fn rcpt(&mut self, path: Path, params: &[u8]) {
        let resolved = match path {
            // `<>` is no forward-path; `<postmaster>` (no domain) must be accepted (RFC 5321
            // §4.1.1.3).
            Path::Null => {
                return self.error(Reply::new(501, (5, 1, 3), "Bad recipient address syntax"))
            }
            Path::Postmaster => self.postmaster(),
            Path::Mailbox(a) => self.resolve_rcpt(a),
        };
        if let Err(r) = self.parameter_shapes(params, super::params::RCPT) {
            return self.error(r);
        }
        let to = match Rfc5321Parser::new(&mut params.iter())
            .rcpt_to_parameters(resolved.0.to_string().into())
        {
            Ok(to) => to.into_owned(),
            Err(e) => return self.error(argument_error(&e, "RCPT")),
        };
        if let Err(r) = self.rcpt_params(&to) {
            return self.error(r);
        }
        let (notify, orcpt) = match self.rcpt_dsn(&to, params) {
            Ok(v) => v,
            Err(r) => return self.error(r),
        };
        let max = self.config.limits.recipients;
        let Some(env) = self.envelope.as_mut() else {
            // sequence_error has checked this already.
            return self.error(Reply::new(503, (5, 5, 1), "Error: need MAIL command"));
        };
        if !env.smtputf8 && !is_ascii(&resolved.0) {
            // RFC 6531 §3.4: a UTF-8 forward-path needs SMTPUTF8 on this transaction's MAIL.
            return self.error(needs_smtputf8());
        }
        if env.accepted >= max {
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
        // Every accepted RCPT counts toward `limits.recipients`, a repeated address too
        // (Postfix counts commands, not distinct addresses): otherwise a client could keep a
        // transaction going with any number of RCPTs.
        env.accepted += 1;
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
        let mut first = None;
        for d in self.own_domains() {
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

    /// Our host name, then every domain with an account (in the directory's stable order):
    /// where a local part without a domain of ours (`<postmaster>`, `user@[our IP]`) is
    /// looked for.
    fn own_domains(&self) -> Vec<String> {
        let mut domains = vec![self.config.hostname.to_ascii_lowercase()];
        for account in self.config.directory.accounts() {
            if let Some((_, d)) = account.rsplit_once('@') {
                if !domains.iter().any(|x| x == d) {
                    domains.push(d.to_string());
                }
            }
        }
        domains
    }

    /// A recipient and what the directory says of it. An address literal of the address
    /// the client connected to is us (RFC 1123 §5.2.17: the literal must be recognised as
    /// the host's own): `user@[our IP]` is `user@` our host name, or else `user@` the first
    /// domain with an account where the local part exists — as Postfix resolves
    /// `user@[$inet_interfaces]` like `user@$myhostname`. The address recorded is that
    /// local one. Any other literal is just a domain that is not ours: the relay rule
    /// decides (554 5.7.1 for an MX client, relayed for one that may relay).
    fn resolve_rcpt(&self, a: Address) -> (Address, RcptVerdict) {
        let dir = &self.config.directory;
        let ours = a
            .literal_ip()
            .is_some_and(|ip| ip.to_canonical() == self.peer.local.ip().to_canonical());
        if !ours {
            let verdict = dir.resolve(&a);
            return (a, verdict);
        }
        for domain in self.own_domains() {
            let local = Address {
                local: a.local.clone(),
                domain,
            };
            match dir.resolve(&local) {
                RcptVerdict::UnknownUser | RcptVerdict::RelayDenied => {}
                verdict => return (local, verdict),
            }
        }
        (a, RcptVerdict::UnknownUser)
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
        let header = self.received_header(greeted, envelope.smtputf8, now);
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
            folder: Folder::Inbox,
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
    /// the TCP-info grammar of §4.4 wants. "with" is the protocol type of [`with_protocol`].
    /// The HELO name is client-chosen text: characters that could fake header
    /// structure (`;`, `(`, ...) are replaced by `_` here; [`Transaction::helo`] keeps it as
    /// given.
    fn received_header(&self, greeted: &Greeted, smtputf8: bool, now: Timestamp) -> String {
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
        let with = with_protocol(
            greeted.esmtp,
            self.tls,
            self.authenticated.is_some(),
            smtputf8,
        );
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

/// Whether an address is all ASCII (else it needs SMTPUTF8, RFC 6531 §3.4).
fn is_ascii(a: &Address) -> bool {
    a.local.is_ascii() && a.domain.is_ascii()
}

/// RFC 6531 §3.4: a UTF-8 address in a transaction without the SMTPUTF8 parameter (the
/// text is Postfix's).
fn needs_smtputf8() -> Reply {
    Reply::new(
        553,
        (5, 6, 7),
        "Must declare SMTPUTF8 to send unicode address",
    )
}

/// The `with` protocol type of our `Received:` header (the Mail Transmission Types
/// registry): `SMTP` after HELO, `ESMTP` after EHLO, with `S` for TLS and `A` for a
/// successful AUTH (RFC 3848: `ESMTPS`, `ESMTPA`, `ESMTPSA`), and `UTF8SMTP` instead of
/// `ESMTP` when the transaction used SMTPUTF8 (RFC 6531 §3.7.3: `UTF8SMTPS`, `UTF8SMTPA`,
/// `UTF8SMTPSA`). HELO has no parameters, hence no SMTPUTF8, and RFC 3848 registers no
/// TLS/AUTH variant of plain `SMTP`.
pub(super) fn with_protocol(esmtp: bool, tls: bool, auth: bool, smtputf8: bool) -> String {
    if !esmtp {
        return "SMTP".into();
    }
    let base = if smtputf8 { "UTF8SMTP" } else { "ESMTP" };
    let s = if tls { "S" } else { "" };
    let a = if auth { "A" } else { "" };
    format!("{base}{s}{a}")
}
