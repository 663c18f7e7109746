//! What an actor knows the server promised: for each message acknowledged with `250 ...
//! queued as <id>`, the envelope the actor had gotten accepted (MAIL FROM and every RCPT
//! that got a 2xx in that transaction). This is the ground truth the run's invariants
//! check the world's end state against (`crate::invariants`): it comes from the client's
//! side of the wire, never from the server's own trace.

/// One acknowledged message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    /// The id in the server's `250 2.0.0 Ok: queued as <id>`.
    pub id: String,
    /// The MAIL FROM path as sent, without the angle brackets (empty: the null sender).
    pub mail_from: String,
    /// Accepted recipients, in order.
    pub recipients: Vec<Rcpt>,
    /// The actor's name, for the report.
    pub actor: String,
}

/// One accepted recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rcpt {
    /// As sent, without the angle brackets.
    pub address: String,
    /// `NOTIFY=NEVER` (RFC 3461): no DSN is due if it fails.
    pub notify_never: bool,
}

/// The transaction an actor's session is in, followed command by command.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    mail_from: Option<String>,
    recipients: Vec<Rcpt>,
    pub acked: Vec<Acked>,
}

impl Ledger {
    /// The reply `reply` to the command line `line` (as sent, without CRLF).
    pub fn command(&mut self, line: &str, reply: &str) {
        let verb: String = line
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let ok = reply.starts_with('2');
        match verb.as_str() {
            "MAIL" => {
                self.reset();
                if ok {
                    self.mail_from = Some(path_of(line));
                }
            }
            "RCPT" if ok && self.mail_from.is_some() => self.recipients.push(Rcpt {
                address: path_of(line),
                notify_never: line.to_ascii_uppercase().contains("NOTIFY=NEVER"),
            }),
            "RSET" | "HELO" | "EHLO" | "STARTTLS" => self.reset(),
            _ => {}
        }
    }

    /// The reply to a message body (the end of DATA): a 250 naming a queue id is a promise.
    pub fn end_of_data(&mut self, actor: &str, reply: &str) {
        if let (true, Some(id), Some(from)) = (
            reply.starts_with("250"),
            queued_id(reply),
            self.mail_from.as_ref(),
        ) {
            if !self.recipients.is_empty() {
                self.acked.push(Acked {
                    id,
                    mail_from: from.clone(),
                    recipients: self.recipients.clone(),
                    actor: actor.to_string(),
                });
            }
        }
        // Whatever the reply, the transaction is over (RFC 5321 §4.1.1.4).
        self.reset();
    }

    /// The connection ended: no transaction survives it.
    pub fn disconnected(&mut self) {
        self.reset();
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }
}

/// `MAIL FROM:<a@b> SIZE=10` → `a@b`; `RCPT TO:<c@d>` → `c@d`.
fn path_of(line: &str) -> String {
    let after = line
        .split_once(':')
        .map_or("", |(_, rest)| rest)
        .trim_start();
    match after.strip_prefix('<') {
        Some(rest) => rest.split('>').next().unwrap_or("").to_string(),
        None => after.split(' ').next().unwrap_or("").to_string(),
    }
}

/// The id in `250 2.0.0 Ok: queued as <id>` (the server's wording).
fn queued_id(reply: &str) -> Option<String> {
    let (_, rest) = reply.split_once("queued as ")?;
    let id: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(address: &str) -> Rcpt {
        Rcpt {
            address: address.into(),
            notify_never: false,
        }
    }

    #[test]
    fn follows_a_transaction_to_its_acknowledgement() {
        let mut l = Ledger::default();
        l.command("EHLO a.test", "250 mx");
        l.command("MAIL FROM:<a@a.test> SIZE=10", "250 2.1.0 Ok");
        l.command("RCPT TO:<bob@example.org>", "250 2.1.5 Ok");
        l.command("RCPT TO:<nobody@example.org>", "550 5.1.1 no");
        l.command("rcpt to:<carol@example.org>", "250 2.1.5 Ok");
        l.command("DATA", "354 go");
        l.end_of_data("a", "250 2.0.0 Ok: queued as 17.1.abc");
        assert_eq!(
            l.acked,
            [Acked {
                id: "17.1.abc".into(),
                mail_from: "a@a.test".into(),
                recipients: vec![rcpt("bob@example.org"), rcpt("carol@example.org")],
                actor: "a".into(),
            }]
        );
        // The next transaction starts empty; a refusal is no promise.
        l.command("MAIL FROM:<>", "250 2.1.0 Ok");
        l.command("RCPT TO:<bob@example.org>", "250 2.1.5 Ok");
        l.end_of_data("a", "451 4.3.0 try later");
        l.command("RCPT TO:<bob@example.org>", "503 5.5.1 MAIL first");
        l.end_of_data("a", "250 2.0.0 Ok: queued as 2");
        assert_eq!(l.acked.len(), 1);
        // RSET and a refused MAIL end a transaction.
        l.command("MAIL FROM:<a@a.test>", "250 Ok");
        l.command("RCPT TO:<bob@example.org>", "250 Ok");
        l.command("RSET", "250 Ok");
        l.end_of_data("a", "250 2.0.0 Ok: queued as 3");
        assert_eq!(l.acked.len(), 1);
        l.command("MAIL FROM:<>", "250 Ok");
        l.command("RCPT TO:<bob@example.org> NOTIFY=NEVER", "250 Ok");
        l.end_of_data("a", "250 2.0.0 Ok: queued as 4");
        assert_eq!(l.acked[1].mail_from, "");
        assert!(l.acked[1].recipients[0].notify_never);
    }
}
