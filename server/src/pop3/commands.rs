//! One method per POP3 command, and the answers to the session's requests.

use super::session::{Answer, Asked, Maildrop, OpenError, Output, Session, State, Transaction};
use super::wire::write_multiline;
use crate::smtp::{AuthAnswer, AuthMechanism, Credentials};

/// The log form of a line: printable, credentials masked.
fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut words = text.splitn(2, ' ');
    let verb = words.next().unwrap_or("").to_ascii_uppercase();
    let masked = match verb.as_str() {
        "PASS" => "PASS ****".to_string(),
        "AUTH" => match text.split(' ').nth(1) {
            Some(m) if text.split(' ').count() > 2 => format!("AUTH {m} ****"),
            _ => text.to_string(),
        },
        _ => text.to_string(),
    };
    masked
        .chars()
        .map(|c| match c {
            c if c.is_control() => format!("\\x{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// A message number argument (RFC 1939: 1-based, not past the last).
fn number(arg: Option<&str>, count: usize) -> Result<usize, &'static str> {
    let n: usize = arg
        .ok_or("Message number required")?
        .parse()
        .map_err(|_| "Invalid message number")?;
    if n == 0 || n > count {
        return Err("No such message");
    }
    Ok(n)
}

impl Session {
    /// Runs one command line.
    pub(super) fn command(&mut self, line: &[u8]) {
        if matches!(self.state, State::SaslWait) {
            self.log.push("****".into());
            return self.sasl_response(line);
        }
        self.log.push(shown(line));
        let Ok(text) = std::str::from_utf8(line) else {
            return self.err("Invalid command (not UTF-8)");
        };
        let mut parts = text.split(' ');
        let verb = parts.next().unwrap_or("").to_ascii_uppercase();
        let args: Vec<&str> = parts.collect();
        let authorization = matches!(self.state, State::Authorization { .. });
        match (verb.as_str(), authorization) {
            ("CAPA", _) => self.capa(),
            ("QUIT", _) => self.quit(),
            ("NOOP", false) => self.ok(""),
            ("USER", true) => self.user(&args),
            ("PASS", true) => self.pass(text),
            ("AUTH", true) => self.auth(&args),
            ("STLS", true) => self.stls(),
            ("STAT", false) => self.stat(),
            ("LIST", false) => self.list(&args),
            ("UIDL", false) => self.uidl(&args),
            ("RETR", false) => self.retr(&args),
            ("TOP", false) => self.top(&args),
            ("DELE", false) => self.dele(&args),
            ("RSET", false) => self.rset(),
            ("", _) => self.err("Empty command"),
            ("NOOP" | "STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET", true) => {
                self.err("Not logged in")
            }
            ("USER" | "PASS" | "AUTH" | "STLS", false) => self.err("Already logged in"),
            _ => self.err("Unknown command"),
        }
    }

    /// Whether a login may be tried now: over TLS, or where plaintext is allowed.
    fn auth_allowed(&self) -> bool {
        self.tls || self.config.plaintext_auth
    }

    /// RFC 2449 §5. USER and SASL only where a login is allowed; STLS only before TLS.
    fn capa(&mut self) {
        let mut caps = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"];
        let authorization = matches!(self.state, State::Authorization { .. });
        if authorization && self.auth_allowed() {
            caps.extend(["USER", "SASL PLAIN"]);
        }
        if authorization && self.config.starttls && !self.tls {
            caps.push("STLS");
        }
        caps.push("IMPLEMENTATION mailsim");
        let mut body = Vec::new();
        for c in caps {
            body.extend_from_slice(c.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b".\r\n");
        self.ok_multi("Capability list follows", body);
    }

    fn refuse_plaintext(&mut self) {
        self.err("[AUTH] Plaintext authentication disallowed without TLS: use STLS");
    }

    fn user(&mut self, args: &[&str]) {
        if !self.auth_allowed() {
            return self.refuse_plaintext();
        }
        match args {
            [name] if !name.is_empty() => {
                self.state = State::Authorization {
                    user: Some(name.to_string()),
                };
                self.ok("Send your password");
            }
            _ => self.err("Usage: USER name"),
        }
    }

    fn pass(&mut self, text: &str) {
        if !self.auth_allowed() {
            return self.refuse_plaintext();
        }
        // The password is the rest of the line (RFC 1939 §7: it may contain spaces).
        let password = text.get(5..).unwrap_or("");
        let user = match &mut self.state {
            State::Authorization { user } => user.take(),
            _ => None,
        };
        let Some(user) = user else {
            return self.err("USER first");
        };
        if password.is_empty() {
            return self.err("Usage: PASS password");
        }
        self.login_with(Credentials {
            mechanism: AuthMechanism::Plain,
            authcid: user,
            authzid: String::new(),
            password: password.to_string(),
        });
    }

    /// RFC 5034: `AUTH PLAIN [initial-response]`; `AUTH` alone lists the mechanisms.
    fn auth(&mut self, args: &[&str]) {
        if !self.auth_allowed() {
            return self.refuse_plaintext();
        }
        match args {
            [] => self.ok_multi("", b"PLAIN\r\n.\r\n".to_vec()),
            [m] if m.eq_ignore_ascii_case("PLAIN") => {
                self.state = State::SaslWait;
                self.send(b"+ \r\n".to_vec(), "+ ".into());
            }
            [m, response] if m.eq_ignore_ascii_case("PLAIN") => {
                self.sasl_plain(response.as_bytes())
            }
            _ => self.err("Unsupported authentication mechanism"),
        }
    }

    fn sasl_response(&mut self, line: &[u8]) {
        self.state = State::Authorization { user: None };
        if line == b"*" {
            return self.err("Authentication cancelled");
        }
        self.sasl_plain(line);
    }

    fn sasl_plain(&mut self, base64: &[u8]) {
        // `=` is an empty initial response (RFC 5034 §4): no credentials in it.
        let creds = data_encoding::BASE64
            .decode(base64)
            .ok()
            .and_then(|d| crate::smtp::session::decode_plain(&d));
        match creds {
            Some(c) => self.login_with(c),
            None => self.err("Invalid SASL PLAIN response"),
        }
    }

    fn login_with(&mut self, credentials: Credentials) {
        self.login = Some(credentials.clone());
        self.ask(Asked::Auth, Output::Authenticate(credentials));
    }

    /// RFC 2595 §4: STLS only before login, only once.
    fn stls(&mut self) {
        if !self.config.starttls || self.tls {
            return self.err("STLS not available");
        }
        self.ok("Begin TLS negotiation");
        self.input.clear();
        self.ask(Asked::Tls, Output::StartTls);
    }

    fn quit(&mut self) {
        let deleted: Vec<u32> = match &self.state {
            State::Transaction(t) => t.messages.iter().filter(|m| m.2).map(|m| m.0).collect(),
            _ => Vec::new(),
        };
        if deleted.is_empty() {
            self.ok("Logging out");
            return self.close();
        }
        self.ask(Asked::Expunge, Output::Expunge(deleted));
    }

    fn tx(&self) -> &Transaction {
        match &self.state {
            State::Transaction(t) => t,
            _ => unreachable!("TRANSACTION commands are only dispatched in that state"),
        }
    }

    /// The message `arg` names, if it exists and is not marked deleted (RFC 1939 §5).
    fn message(&mut self, arg: Option<&str>) -> Option<(usize, u32, u64)> {
        let t = self.tx();
        match number(arg, t.messages.len()) {
            Ok(n) if t.messages[n - 1].2 => {
                self.err("Message is deleted");
                None
            }
            Ok(n) => Some((n, t.messages[n - 1].0, t.messages[n - 1].1)),
            Err(e) => {
                self.err(e);
                None
            }
        }
    }

    fn live(&self) -> impl Iterator<Item = (usize, u32, u64)> + '_ {
        self.tx()
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.2)
            .map(|(i, m)| (i + 1, m.0, m.1))
    }

    fn stat(&mut self) {
        let (n, size) = self.live().fold((0, 0), |(n, s), m| (n + 1, s + m.2));
        self.ok(&format!("{n} {size}"));
    }

    fn list(&mut self, args: &[&str]) {
        self.listing(args, |_, _, size| size.to_string());
    }

    fn uidl(&mut self, args: &[&str]) {
        let uv = self.tx().uidvalidity;
        self.listing(args, |_, uid, _| format!("{uv}.{uid}"));
    }

    /// LIST and UIDL: one message (a one-line `+OK n x`) or all live ones (multi-line).
    fn listing(&mut self, args: &[&str], f: impl Fn(usize, u32, u64) -> String) {
        match args {
            [] => {
                let mut body = Vec::new();
                let lines: Vec<String> = self
                    .live()
                    .map(|(n, uid, size)| format!("{n} {}\r\n", f(n, uid, size)))
                    .collect();
                for l in lines {
                    body.extend_from_slice(l.as_bytes());
                }
                body.extend_from_slice(b".\r\n");
                self.ok_multi("", body);
            }
            [arg] => {
                if let Some((n, uid, size)) = self.message(Some(arg)) {
                    self.ok(&format!("{n} {}", f(n, uid, size)));
                }
            }
            _ => self.err("Too many arguments"),
        }
    }

    fn retr(&mut self, args: &[&str]) {
        if args.len() > 1 {
            return self.err("Too many arguments");
        }
        if let Some((_, uid, _)) = self.message(args.first().copied()) {
            self.ask(Asked::Read(None), Output::Read(uid));
        }
    }

    fn top(&mut self, args: &[&str]) {
        let [n, lines] = args else {
            return self.err("Usage: TOP msg lines");
        };
        let Ok(lines) = lines.parse::<usize>() else {
            return self.err("Invalid line count");
        };
        if let Some((_, uid, _)) = self.message(Some(n)) {
            self.ask(Asked::Read(Some(lines)), Output::Read(uid));
        }
    }

    fn dele(&mut self, args: &[&str]) {
        if args.len() > 1 {
            return self.err("Too many arguments");
        }
        if let Some((n, _, _)) = self.message(args.first().copied()) {
            if let State::Transaction(t) = &mut self.state {
                t.messages[n - 1].2 = true;
            }
            self.ok(&format!("Message {n} deleted"));
        }
    }

    fn rset(&mut self) {
        if let State::Transaction(t) = &mut self.state {
            t.messages.iter_mut().for_each(|m| m.2 = false);
        }
        let (n, size) = self.live().fold((0, 0), |(n, s), m| (n + 1, s + m.2));
        self.ok(&format!("{n} messages ({size} octets)"));
    }

    /// The one entry point for answers; an answer nobody asked for is ignored.
    pub fn answer(&mut self, answer: Answer) {
        let Some(asked) = self.asked else { return };
        match (asked, answer) {
            (Asked::Tls, Answer::TlsUp) => {
                // RFC 2595 §4: everything from before TLS is forgotten.
                self.tls = true;
                self.input.clear();
                self.state = State::Authorization { user: None };
            }
            (Asked::Tls, Answer::TlsFailed) => self.close(),
            (Asked::Auth, Answer::Authenticated(a)) => {
                self.asked = None;
                return self.authenticated(a);
            }
            (Asked::Open, Answer::Opened(r)) => {
                self.asked = None;
                return self.opened(r);
            }
            (Asked::Read(lines), Answer::Read(r)) => match r {
                Ok(bytes) => {
                    let mut body = Vec::with_capacity(bytes.len() + 64);
                    write_multiline(&mut body, &bytes, lines);
                    let first = match lines {
                        None => format!("{} octets", bytes.len()),
                        Some(_) => "Top of message follows".into(),
                    };
                    self.ok_multi(&first, body);
                }
                Err(why) => {
                    let line = format!("-ERR [SYS/TEMP] Cannot read message: {why}");
                    self.send(format!("{line}\r\n").into_bytes(), line);
                }
            },
            (Asked::Expunge, Answer::Expunged(r)) => {
                self.asked = None;
                match r {
                    Ok(()) => self.ok("Logging out, messages deleted"),
                    Err(why) => {
                        // RFC 1939 §6: the UPDATE failed; the deletions did not happen.
                        let line = format!("-ERR [SYS/TEMP] Deleting messages failed: {why}");
                        self.send(format!("{line}\r\n").into_bytes(), line);
                    }
                }
                return self.close();
            }
            _ => return,
        }
        self.asked = None;
    }

    fn authenticated(&mut self, answer: AuthAnswer) {
        let login = self.login.take();
        let account = match (answer, login) {
            (AuthAnswer::AcceptedAs(a), _) => a,
            (AuthAnswer::Accepted, Some(c)) if !c.authzid.is_empty() => c.authzid,
            (AuthAnswer::Accepted, Some(c)) => c.authcid,
            (AuthAnswer::Refused(reply), _) if reply.code == 421 => {
                self.err("[AUTH] Too many authentication failures");
                return self.close();
            }
            (AuthAnswer::Refused(_), _) => {
                return self.err("[SYS/TEMP] Temporary authentication failure")
            }
            _ => return self.err("[AUTH] Authentication failed"),
        };
        self.ask(Asked::Open, Output::Open(account));
    }

    fn opened(&mut self, result: Result<Maildrop, OpenError>) {
        match result {
            Ok(drop) => {
                if !matches!(self.state, State::Authorization { .. }) {
                    return;
                }
                let n = drop.messages.len();
                let size: u64 = drop.messages.iter().map(|m| m.1).sum();
                self.state = State::Transaction(Transaction {
                    uidvalidity: drop.uidvalidity,
                    messages: drop
                        .messages
                        .into_iter()
                        .map(|(u, s)| (u, s, false))
                        .collect(),
                });
                self.ok(&format!("Logged in: {n} messages ({size} octets)"));
            }
            Err(OpenError::InUse) => self.err("[IN-USE] Mailbox is locked by another POP3 session"),
            Err(OpenError::Failed(why)) => {
                let line = format!("-ERR [SYS/TEMP] Cannot open mailbox: {why}");
                self.send(format!("{line}\r\n").into_bytes(), line);
            }
        }
    }
}
