//! Command lines: framing (LF or CRLF, the line limit, the skip after a too-long line),
//! the checks every line gets before it is parsed (control bytes, UTF-8), and dispatch to
//! the command families (`envelope.rs`, `tls.rs`, `auth.rs`); the simple commands are here.

use memchr::memchr;
use smtp_proto::{Error as ParseError, Request};

use super::path::{self, PathError};
use super::{auth, Awaiting, Greeted, Phase, Reply, Session, NOT_IMPLEMENTED};
use crate::mail::printable;

impl Session {
    /// Frames and handles one line; false when no complete line is buffered.
    pub(super) fn next_line(&mut self) -> bool {
        let limit = self.config.limits.command_line;
        let rest = &self.input[self.input_pos..];
        let window = &rest[..rest.len().min(limit)];
        match memchr(b'\n', window) {
            Some(p) => {
                // Borrow the line out of the buffer without copying it; handling a line
                // never touches the input buffer.
                let input = std::mem::take(&mut self.input);
                let start = self.input_pos;
                self.input_pos += p + 1;
                let line = &input[start..=start + p];
                match self.phase {
                    Phase::AuthResponse(mechanism) => self.auth_response(mechanism, line),
                    _ => self.command_line(line),
                }
                debug_assert!(self.input.is_empty());
                self.input = input;
                if matches!(self.phase, Phase::Await(Awaiting::Tls)) {
                    self.discard_input("after STARTTLS");
                }
                true
            }
            None if rest.len() >= limit => {
                // Longer than the limit whatever comes next: drop it up to its LF, and answer
                // then (see `Phase::SkipLine`).
                self.input_pos += limit;
                let head = &rest[..rest.len().min(64)];
                let shown = match self.phase {
                    Phase::AuthResponse(_) => auth::REDACTED.to_string(),
                    _ if verb(head) == "AUTH" => auth::redacted(head) + "...",
                    _ => printable(head) + "...",
                };
                self.phase = Phase::SkipLine {
                    shown: format!("{shown} [line too long]"),
                };
                true
            }
            None => false,
        }
    }

    /// Drops every buffered byte not consumed yet (logged when there was any).
    pub(super) fn discard_input(&mut self, why: &str) {
        let n = self.input.len() - self.input_pos;
        if n > 0 {
            self.log.push(format!("[{n} octets discarded {why}]"));
        }
        self.input.clear();
        self.input_pos = 0;
    }

    /// One complete command line, LF included.
    fn command_line(&mut self, line: &[u8]) {
        let text = strip_line_ending(line);
        let verb = verb(text);
        self.log.push(shown(text));
        if text.iter().any(|&b| b < 0x20 || b == 0x7f) {
            // NUL, bare CR, TAB, ESC...: never part of a valid command, and a classic way to
            // confuse a parser further down the line.
            return self.error(Reply::new(500, (5, 5, 2), "Error: command not recognized"));
        }
        if self.refused && verb != "QUIT" {
            // Greeted with 554 (RFC 5321 §3.1): no service here, whatever the command. Each
            // counts as an error, so a client that will not QUIT is hung up on at the limit.
            return self.error(Reply::new(503, (5, 5, 1), "Error: no SMTP service here"));
        }
        if self.draining && self.envelope.is_none() && verb != "QUIT" {
            // Shutting down and no transaction to finish: nothing new is started.
            return self.shutting_down_reply();
        }
        if NOT_IMPLEMENTED.contains(&verb.as_str()) || !self.knows(&verb) {
            return self.error(Reply::new(502, (5, 5, 1), "Command not implemented"));
        }
        if std::str::from_utf8(text).is_err() && matches!(verb.as_str(), "STARTTLS" | "AUTH") {
            return self.error(Reply::new(501, (5, 5, 4), "Error: invalid UTF-8"));
        }
        match verb.as_str() {
            // Parsed here: the arguments are ours to check (RFC 3207, RFC 4954).
            "STARTTLS" => return self.starttls(text),
            "AUTH" => return self.auth(text),
            // The path is ours to parse (`session/path.rs`), the parameters smtp-proto's.
            "MAIL" | "RCPT" => return self.path_command(&verb, line, text),
            // The chunk size is the framing of what follows: read here (`bdat_line`).
            "BDAT" => return self.bdat_command(text),
            _ => {}
        }
        match Request::parse(&mut line.iter()) {
            Ok(request) => {
                let request = request.into_owned();
                if std::str::from_utf8(text).is_err() {
                    return self.error(Reply::new(501, (5, 5, 4), "Error: invalid UTF-8"));
                }
                self.command(request, text);
            }
            Err(ParseError::UnknownCommand) => {
                self.error(Reply::new(500, (5, 5, 2), "Error: command not recognized"))
            }
            Err(e) => {
                // A known command with bad arguments: the sequence error wins, as it would
                // for the well-formed command.
                if let Some(r) = self.sequence_error(&verb) {
                    return self.error(r);
                }
                self.error(argument_error(&e, &verb));
            }
        }
    }

    /// MAIL or RCPT: the sequence first (a 503 wins over bad arguments, as it would for
    /// the well-formed command), then the path's syntax, then the command itself.
    fn path_command(&mut self, verb: &str, line: &[u8], text: &[u8]) {
        if let Some(r) = self.sequence_error(verb) {
            return self.error(r);
        }
        let Ok(text) = std::str::from_utf8(text) else {
            return self.error(Reply::new(501, (5, 5, 4), "Error: invalid UTF-8"));
        };
        let mail = verb == "MAIL";
        let (keyword, syntax) = match mail {
            true => ("FROM", "Syntax: MAIL FROM:<reverse-path> [parameters]"),
            false => ("TO", "Syntax: RCPT TO:<forward-path> [parameters]"),
        };
        match path::parse(text, keyword) {
            // `line[at..]` is the parameters with the line ending, as smtp-proto wants them.
            Ok((path, at)) if mail => self.mail(path, &line[at..]),
            Ok((path, at)) => self.rcpt(path, &line[at..]),
            Err(PathError::Syntax) => self.error(Reply::new(501, (5, 5, 4), syntax)),
            Err(PathError::Address) if mail => {
                self.error(Reply::new(501, (5, 1, 7), "Bad sender address syntax"))
            }
            Err(PathError::Address) => {
                self.error(Reply::new(501, (5, 1, 3), "Bad recipient address syntax"))
            }
        }
    }

    /// `BDAT chunk-size [LAST]` (RFC 3030 §2). A line that is not exactly that is 501; when
    /// its size can still be read (`BDAT 5 LAST x`, `BDAT 3 FIRST`), the client has sent, or
    /// is pipelining, that many octets after it, and they are read and dropped like any
    /// refused chunk's (`Phase::SkipOctets`): they are data, never commands. A size that
    /// cannot be read (`BDAT x`, more digits than we can count) leaves nothing to skip by,
    /// and the next line is read as a command. (Postfix 3.7 answers every malformed BDAT
    /// `521 5.5.4` and hangs up; we keep the session and its sync.)
    fn bdat_command(&mut self, text: &[u8]) {
        let syntax = || Reply::new(501, (5, 5, 4), "Syntax: BDAT chunk-size [LAST]");
        match bdat_line(text) {
            Ok((size, last)) => self.bdat(size, last),
            Err(Some(size)) => {
                self.phase = Phase::SkipOctets(size);
                self.error(syntax());
            }
            Err(None) => self.error(syntax()),
        }
    }

    /// 503 for a command given at the wrong point of the dialogue.
    fn sequence_error(&self, verb: &str) -> Option<Reply> {
        match verb {
            "MAIL" if self.greeted.is_none() => {
                Some(Reply::new(503, (5, 5, 1), "Error: send HELO/EHLO first"))
            }
            "MAIL" if self.envelope.is_some() => {
                Some(Reply::new(503, (5, 5, 1), "Error: nested MAIL command"))
            }
            "RCPT" | "DATA" if self.envelope.is_none() => {
                Some(Reply::new(503, (5, 5, 1), "Error: need MAIL command"))
            }
            // RFC 3030 does not say whether recipients may follow the first chunk; Postfix
            // 3.7 refuses them (503 5.5.1), and so do we: the message is under way, and a
            // recipient added now would have been refused by a DATA transaction.
            "RCPT" if self.envelope.as_ref().is_some_and(|e| e.chunks.is_some()) => {
                Some(Reply::new(503, (5, 5, 1), "Error: RCPT after BDAT"))
            }
            _ => None,
        }
    }

    fn command(&mut self, request: Request<String>, text: &[u8]) {
        if let Some(r) = self.sequence_error(request.name()) {
            return self.error(r);
        }
        match request {
            Request::Ehlo { host } => {
                self.reset_transaction();
                self.greeted = Some(Greeted {
                    name: host,
                    esmtp: true,
                });
                self.client_changed();
                let reply = self.ehlo_reply();
                self.reply(reply);
            }
            Request::Helo { host } => {
                self.reset_transaction();
                self.greeted = Some(Greeted {
                    name: host,
                    esmtp: false,
                });
                self.client_changed();
                self.reply(Reply::plain(250, self.config.hostname.clone()));
            }
            // RFC 5321 §4.1.1.4 and §4.1.1.5: `data = "DATA" CRLF`, `rset = "RSET" CRLF`.
            // Taking `DATA x` as DATA would read the next commands as message content, so
            // an argument is a syntax error (Postfix: 501 5.5.4 as well), and we stay in
            // command mode with the transaction untouched.
            Request::Data if has_argument(text) => {
                self.error(Reply::new(501, (5, 5, 4), "Syntax: DATA"))
            }
            Request::Rset if has_argument(text) => {
                self.error(Reply::new(501, (5, 5, 4), "Syntax: RSET"))
            }
            Request::Data => self.data(),
            Request::Rset => {
                self.reset_transaction();
                self.reply(Reply::new(250, (2, 0, 0), "Ok"));
            }
            Request::Noop { .. } => self.reply(Reply::new(250, (2, 0, 0), "Ok")),
            // `QUIT x` is out of grammar too, but the client wants to leave: it gets its 221
            // (Postfix does not check QUIT's syntax either), rather than a 501 that keeps a
            // connection open nobody wants.
            Request::Quit => {
                self.envelope = None;
                self.reply(Reply::new(221, (2, 0, 0), "Bye"));
                self.close();
            }
            // RFC 5321 §3.5.3: 252 when we will not verify, so harvesters learn nothing.
            Request::Vrfy { .. } => self.reply(Reply::new(
                252,
                (2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.reply(Reply::new(
                214,
                (2, 0, 0),
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            )),
            // LHLO is LMTP, not SMTP.
            Request::Lhlo { .. } => {
                self.error(Reply::new(500, (5, 5, 2), "Error: command not recognized"))
            }
            // Caught from the verb already (NOT_IMPLEMENTED, or handled before parsing).
            Request::Mail { .. }
            | Request::Rcpt { .. }
            | Request::Bdat { .. }
            | Request::Expn { .. }
            | Request::Auth { .. }
            | Request::StartTls
            | Request::Burl { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. } => {
                self.error(Reply::new(502, (5, 5, 1), "Command not implemented"))
            }
        }
    }
}

/// Maps a parse error of a known command to its reply.
pub(super) fn argument_error(e: &ParseError, verb: &str) -> Reply {
    match e {
        ParseError::InvalidSenderAddress => Reply::new(501, (5, 1, 7), "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, (5, 1, 3), "Bad recipient address syntax")
        }
        ParseError::UnsupportedParameter { .. } => {
            Reply::new(555, (5, 5, 4), "Unsupported parameter")
        }
        ParseError::InvalidParameter { param } => {
            Reply::new(501, (5, 5, 4), format!("Invalid {param} parameter"))
        }
        ParseError::SyntaxError { syntax } => {
            Reply::new(501, (5, 5, 4), format!("Syntax: {syntax}"))
        }
        _ => Reply::new(501, (5, 5, 4), format!("Syntax error in {verb} command")),
    }
}

/// `BDAT chunk-size [LAST]` (RFC 3030 §2: `chunk-size ::= 1*DIGIT`, `end-marker ::=
/// "LAST"`, any case; words separated by spaces, as every command here): the size and
/// whether it is the last chunk. `Err(Some(size))`: malformed, but with a size we can hold;
/// `Err(None)`: no such size (missing, not digits, or past `usize`: smtp-proto would wrap
/// it, and we could not know how much to read).
fn bdat_line(text: &[u8]) -> Result<(usize, bool), Option<usize>> {
    let mut words = text.split(|&b| b == b' ').filter(|w| !w.is_empty()).skip(1);
    let size = words
        .next()
        .filter(|w| w.iter().all(u8::is_ascii_digit))
        .and_then(|w| std::str::from_utf8(w).ok()?.parse::<usize>().ok())
        .ok_or(None)?;
    match (words.next(), words.next()) {
        (None, _) => Ok((size, false)),
        (Some(w), None) if w.eq_ignore_ascii_case(b"LAST") => Ok((size, true)),
        _ => Err(Some(size)),
    }
}

/// Whether anything but spaces follows the command word.
fn has_argument(text: &[u8]) -> bool {
    let text = text.trim_ascii();
    text.contains(&b' ')
}

/// The line without its LF or CRLF.
/// A command line as the trace shows it: printable, an AUTH line's credentials redacted.
pub(super) fn shown(text: &[u8]) -> String {
    match verb(text).as_str() {
        "AUTH" => auth::redacted(text),
        _ => printable(text),
    }
}

pub(super) fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The command word, upper-cased (for sequence checks and commands we refuse outright).
pub(super) fn verb(text: &[u8]) -> String {
    let text = text.trim_ascii_start();
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    String::from_utf8_lossy(&text[..end]).to_ascii_uppercase()
}
