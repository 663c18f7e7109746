//! Policy checks (see [`crate::policy`]): the session asks at connect, MAIL, RCPT and the end
//! of data, once its own rules have accepted, and applies the verdict itself: a refused MAIL
//! opens no transaction, a refused RCPT adds no recipient, a refused message is not
//! delivered, a refused connection gets 554 (or 421 when deferred) and is closed.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Awaiting, Open, Output, Phase, Reply, Session, Transaction};
use crate::mail::{Folder, Recipient};
use crate::policy::{Check, Client, Refusal, Stage, Verdict};

/// Whether `check` is the one the session is waiting for.
pub(super) fn matches(awaiting: &Awaiting, check: &Check) -> bool {
    matches!(
        (awaiting, &check.stage),
        (Awaiting::Connect, Stage::Connect)
            | (Awaiting::Mail { .. }, Stage::Mail { .. })
            | (Awaiting::Rcpt { .. }, Stage::Rcpt { .. })
            | (Awaiting::EndOfData, Stage::EndOfData { .. })
    )
}

/// A refusal as a reply of the class its verdict says (5xx for a reject, 4xx for a
/// deferral): a policy cannot turn a refusal into a success by a typo in its code.
fn refusal_reply(verdict_is_reject: bool, refusal: Refusal) -> Reply {
    let Refusal {
        code,
        enhanced,
        text,
    } = refusal;
    let (class, fallback, enhanced_fallback) = match verdict_is_reject {
        true => (5, 554, (5, 7, 1)),
        false => (4, 451, (4, 7, 1)),
    };
    if code / 100 == class && enhanced.0 == class as u8 {
        Reply::new(code, enhanced, text)
    } else {
        Reply::new(fallback, enhanced_fallback, text)
    }
}

impl Session {
    /// A check at `stage`, with what we know of the client now.
    pub(super) fn check(&mut self, stage: Stage) -> Check {
        let client = self.client.get_or_insert_with(|| {
            Arc::new(Client {
                remote: self.peer.remote,
                local: self.peer.local,
                helo: self.greeted.as_ref().map(|g| g.name.clone()),
                tls: self.tls,
                authenticated: self.authenticated.clone(),
            })
        });
        Check {
            client: client.clone(),
            stage,
        }
    }

    /// What checks say about the client changed: the next check describes it afresh.
    pub(super) fn client_changed(&mut self) {
        self.client = None;
    }

    /// Emits a check and waits for its verdict.
    pub(super) fn ask_policy(&mut self, awaiting: Awaiting, stage: Stage) {
        let check = self.check(stage);
        self.ask(awaiting, Output::Check(check));
    }

    /// Applies a verdict to what was waiting for it.
    pub(super) fn checked(&mut self, awaiting: Awaiting, check: Check, verdict: Verdict) {
        let mut marks = None;
        let refusal = match verdict {
            Verdict::Accept => None,
            Verdict::Mark(m) => {
                marks = Some(m);
                None
            }
            Verdict::Reject(r) => Some(refusal_reply(true, r)),
            Verdict::Defer(r) => Some(refusal_reply(false, r)),
        };
        match (awaiting, refusal) {
            (
                Awaiting::Mail {
                    declared_size,
                    binary,
                    dsn,
                    require_tls,
                    smtputf8,
                },
                None,
            ) => {
                let Stage::Mail { from, .. } = check.stage else {
                    return;
                };
                self.envelope = Some(Open {
                    mail_from: from,
                    recipients: Vec::new(),
                    mailboxes: BTreeSet::new(),
                    remote: BTreeSet::new(),
                    addresses: BTreeSet::new(),
                    declared_size,
                    binary,
                    chunks: None,
                    dsn,
                    require_tls,
                    smtputf8,
                    accepted: 0,
                });
                self.reply(Reply::new(250, (2, 1, 0), "Ok"));
            }
            (
                Awaiting::Rcpt {
                    mailboxes,
                    remote,
                    notify,
                    orcpt,
                },
                None,
            ) => {
                let Stage::Rcpt { to, .. } = check.stage else {
                    return;
                };
                self.add_recipient(Recipient {
                    address: to,
                    mailboxes,
                    remote,
                    notify,
                    orcpt,
                });
            }
            (Awaiting::Connect, None) => match self.config.limits.greet_pause() {
                pause if pause.is_zero() => self.greet(),
                pause => self.phase = Phase::GreetPause(self.accepted_at.plus(pause)),
            },
            (Awaiting::Connect, Some(reply)) if reply.code >= 500 => {
                // RFC 5321 §3.1: 554 instead of the greeting, and then the server waits
                // for QUIT, answering 503 to anything else (see `command_line`), rather
                // than closing on a client that may not have read the 554 yet.
                self.reply(Reply { code: 554, ..reply });
                self.refused = true;
            }
            (Awaiting::Connect, Some(reply)) => {
                // §3.8: 421 means the channel is closing.
                self.reply(Reply { code: 421, ..reply });
                self.close();
            }
            (Awaiting::EndOfData, None) => {
                let Stage::EndOfData {
                    mut envelope,
                    mut message,
                } = check.stage
                else {
                    return;
                };
                if let Some(marks) = marks {
                    message = marks.apply(&message);
                    envelope.folder = marks.folder;
                    if marks.folder != Folder::Inbox {
                        self.log
                            .push(format!("[message filed in {}]", marks.folder.name()));
                    }
                }
                self.phase = Phase::Await(Awaiting::Delivery);
                self.queue
                    .push_back(Output::Deliver(Transaction { envelope, message }));
            }
            (Awaiting::EndOfData, Some(reply)) => {
                let why = match reply.code >= 500 {
                    true => "rejected by policy",
                    false => "deferred by policy",
                };
                self.log.push(format!("[message discarded: {why}]"));
                if let Stage::EndOfData { message, .. } = &check.stage {
                    if message.spool().is_some() {
                        self.queue.push_back(Output::Unspool);
                    }
                }
                self.error(reply);
            }
            (_, Some(reply)) => self.error(reply),
            // Not a check's answer: `matches` let only checks through.
            (Awaiting::Delivery | Awaiting::Tls | Awaiting::Auth { .. }, None) => {}
        }
    }
}
