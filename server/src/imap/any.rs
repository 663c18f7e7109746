//! Commands valid in any state and the ones that log in (RFC 3501 §6.1, §6.2), with ID
//! (RFC 2971), ENABLE (RFC 5161) and NAMESPACE (RFC 2342), and the dispatcher that checks
//! each command's state before running it.

use imap_codec::imap_types::auth::AuthMechanism as ImapMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::extensions::enable::CapabilityEnable;

use super::session::{Done, Failure, Output, Pending, Request, Session, State};
use crate::smtp::{AuthAnswer, AuthMechanism, Credentials};

/// The trace form of a command: its first line, with credentials masked.
pub(super) fn shown_command(command: &Command<'_>, bytes: &[u8]) -> String {
    let tag = command.tag.inner();
    match &command.body {
        CommandBody::Login { username, .. } => {
            let user = String::from_utf8_lossy(username.as_ref()).to_string();
            format!(
                "{tag} LOGIN {} ****",
                super::session::shown_line(user.as_bytes())
            )
        }
        CommandBody::Authenticate { mechanism, .. } => {
            format!("{tag} AUTHENTICATE {} ****", mechanism.as_ref())
        }
        _ => super::session::shown_line(bytes),
    }
}

/// Which states a command may run in.
enum Needs {
    Any,
    NotAuthenticated,
    Authenticated,
    Selected,
}

fn needs(body: &CommandBody<'_>) -> Needs {
    use CommandBody::*;
    match body {
        Capability | Noop | Logout | Id { .. } => Needs::Any,
        StartTLS | Login { .. } | Authenticate { .. } => Needs::NotAuthenticated,
        Check
        | Close
        | Unselect
        | Expunge
        | ExpungeUid { .. }
        | Search { .. }
        | Fetch { .. }
        | Store { .. }
        | Copy { .. }
        | Move { .. } => Needs::Selected,
        _ => Needs::Authenticated,
    }
}

pub(super) fn dispatch(s: &mut Session, command: Command<'static>) {
    let tag = command.tag.inner().to_string();
    let state_ok = matches!(
        (needs(&command.body), &s.state),
        (Needs::Any, _)
            | (Needs::NotAuthenticated, State::NotAuthenticated)
            | (
                Needs::Authenticated,
                State::Authenticated | State::Selected(_)
            )
            | (Needs::Selected, State::Selected(_))
    );
    if !state_ok {
        let why = match s.state {
            State::NotAuthenticated => "Log in first",
            State::Selected(_) | State::Authenticated
                if matches!(needs(&command.body), Needs::Selected) =>
            {
                "No mailbox selected"
            }
            _ => "Already logged in",
        };
        return s.bad(Some(&tag), why);
    }
    use CommandBody::*;
    match command.body {
        Capability => {
            let caps = s.capabilities();
            s.untagged(&format!("CAPABILITY {caps}"));
            s.ok(&tag, "CAPABILITY completed");
        }
        Noop => s.noop(&tag, "NOOP completed"),
        Check => s.noop(&tag, "CHECK completed"),
        Logout => {
            s.untagged("BYE Logging out");
            s.ok(&tag, "LOGOUT completed");
            s.close();
        }
        StartTLS => s.starttls(&tag),
        Login { username, password } => {
            let user = String::from_utf8_lossy(username.as_ref()).to_string();
            let pass = String::from_utf8_lossy(password.declassify().as_ref()).to_string();
            s.login(
                &tag,
                Credentials {
                    mechanism: AuthMechanism::Plain,
                    authcid: user,
                    authzid: String::new(),
                    password: pass,
                },
            )
        }
        Authenticate {
            mechanism,
            initial_response,
        } => {
            if !matches!(mechanism, ImapMechanism::Plain) {
                return s.no(&tag, "[CANNOT] Unsupported authentication mechanism");
            }
            if !s.auth_allowed() {
                return s.refuse_plaintext(&tag);
            }
            match initial_response {
                Some(r) => {
                    let bytes = r.declassify().to_vec();
                    s.sasl_plain(tag, &bytes)
                }
                None => {
                    s.sasl = Some(tag);
                    s.send_line("+ ".into());
                }
            }
        }
        Id { .. } => {
            s.untagged("ID (\"name\" \"mailsim\")");
            s.ok(&tag, "ID completed");
        }
        Enable { capabilities } => {
            let mut enabled = Vec::new();
            for c in capabilities.as_ref() {
                if matches!(c, CapabilityEnable::CondStore) && !s.condstore {
                    s.condstore = true;
                    enabled.push("CONDSTORE");
                }
            }
            s.untagged(format!("ENABLED {}", enabled.join(" ")).trim_end());
            s.ok(&tag, "ENABLE completed");
        }
        Namespace => {
            s.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
            s.ok(&tag, "NAMESPACE completed");
        }
        Idle => s.idle(tag),
        body => super::mailbox::dispatch(s, tag, body),
    }
}

impl Session {
    /// RFC 3501 §7.2.1, with what this session can do now.
    pub(super) fn capabilities(&self) -> String {
        let mut caps = vec!["IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"];
        if matches!(self.state, State::NotAuthenticated) {
            if self.config.starttls && !self.tls {
                caps.push("STARTTLS");
            }
            if self.auth_allowed() {
                caps.push("AUTH=PLAIN");
            } else {
                caps.push("LOGINDISABLED");
            }
        } else {
            caps.extend([
                "NAMESPACE",
                "UIDPLUS",
                "MOVE",
                "UNSELECT",
                "SPECIAL-USE",
                "CONDSTORE",
                "CHILDREN",
            ]);
        }
        let mut out = caps.join(" ");
        out.push_str(&format!(" APPENDLIMIT={}", self.config.max_literal));
        out
    }

    pub(super) fn auth_allowed(&self) -> bool {
        self.tls || self.config.plaintext_auth
    }

    pub(super) fn refuse_plaintext(&mut self, tag: &str) {
        self.no(
            tag,
            "[PRIVACYREQUIRED] Plaintext authentication disallowed: use STARTTLS",
        );
    }

    /// NOOP and CHECK: a rescan of the selected folder, so updates reach even a client
    /// whose delivery notification was missed (RFC 3501 §6.1.2 "polling").
    fn noop(&mut self, tag: &str, text: &str) {
        if matches!(self.state, State::Selected(_)) {
            self.sync(Some(tag.to_string()), text.to_string());
        } else {
            self.ok(tag, text);
        }
    }

    /// RFC 3501 §6.2.1: only before login, only once.
    fn starttls(&mut self, tag: &str) {
        if !self.config.starttls || self.tls {
            return self.bad(Some(tag), "STARTTLS not available");
        }
        self.ok(tag, "Begin TLS negotiation now");
        self.ask(Pending::Tls, Output::StartTls);
    }

    fn login(&mut self, tag: &str, credentials: Credentials) {
        if !self.auth_allowed() {
            return self.refuse_plaintext(tag);
        }
        self.check_login(tag.to_string(), credentials);
    }

    fn check_login(&mut self, tag: String, credentials: Credentials) {
        let shown = credentials.clone();
        self.ask(Pending::Auth { tag }, Output::Authenticate(credentials));
        self.account = Some(if shown.authzid.is_empty() {
            shown.authcid
        } else {
            shown.authzid
        });
    }

    pub(super) fn sasl_response(&mut self, tag: String, bytes: &[u8]) {
        let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"*" {
            return self.bad(Some(&tag), "Authentication cancelled");
        }
        self.sasl_plain(tag, line);
    }

    /// RFC 4616 PLAIN; `bytes` is already base64-decoded by imap-codec when it came as the
    /// initial response, and base64 when it came as a continuation line.
    fn sasl_plain(&mut self, tag: String, bytes: &[u8]) {
        let decoded = data_encoding::BASE64.decode(bytes).ok();
        let creds = decoded
            .as_deref()
            .and_then(crate::smtp::session::decode_plain)
            .or_else(|| crate::smtp::session::decode_plain(bytes));
        match creds {
            Some(c) => self.check_login(tag, c),
            None => self.bad(Some(&tag), "Invalid SASL PLAIN response"),
        }
    }

    pub(super) fn authenticated(&mut self, tag: String, answer: AuthAnswer) {
        let claimed = self.account.take();
        let account = match (answer, claimed) {
            (AuthAnswer::AcceptedAs(a), _) => a,
            (AuthAnswer::Accepted, Some(c)) => c,
            (AuthAnswer::Refused(reply), _) if reply.code == 421 => {
                self.no(&tag, "[UNAVAILABLE] Too many authentication failures");
                return self.bye("Too many authentication failures");
            }
            (AuthAnswer::Refused(_), _) => {
                return self.no(&tag, "[UNAVAILABLE] Temporary authentication failure")
            }
            _ => return self.no(&tag, "[AUTHENTICATIONFAILED] Authentication failed"),
        };
        self.ask(
            Pending::Login {
                tag,
                account: account.clone(),
            },
            Output::Ask(Request::Login(account)),
        );
    }

    pub(super) fn logged_in(&mut self, tag: String, account: String, r: Result<Done, Failure>) {
        match r {
            Ok(_) => {
                self.account = Some(account);
                self.state = State::Authenticated;
                let caps = self.capabilities();
                self.ok(&tag, &format!("[CAPABILITY {caps}] Logged in"));
            }
            Err(f) => self.failure(&tag, f),
        }
    }

    /// RFC 2177: `+ idling`, then untagged updates as they happen, until DONE.
    fn idle(&mut self, tag: String) {
        self.send_line("+ idling".into());
        self.idling = Some(tag);
        // Anything already known to have changed goes out at once.
        if matches!(self.state, State::Selected(_)) {
            self.dirty = true;
        }
    }
}
