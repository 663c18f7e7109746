//! The built-in rules: what each looks at, its default score, and where it comes from.
//! Names are SpamAssassin's where SpamAssassin has the rule (so an operator's knowledge and
//! their `tests=` filters carry over), rspamd's for the attachment checks (SpamAssassin
//! leaves those to plugins), ours otherwise. Scores are SpamAssassin's defaults rounded,
//! or chosen so that no single weak sign reaches the 5.0 junk threshold alone.

use mail_parser::{Address, HeaderName, HeaderValue, Message, MessagePart, MimeHeaders, PartType};
use regex::Regex;

use super::Signals;

/// A built-in rule: name, default score, what it means.
pub(super) struct Builtin {
    pub name: &'static str,
    pub score: f64,
}

const fn rule(name: &'static str, score: f64) -> Builtin {
    Builtin { name, score }
}

/// Every built-in rule. `RCVD_IN_<ZONE>` (one per DNS list the client is in) is made per
/// zone, with [`DNSBL_SCORE`] unless `[scoring.scores]` names it.
pub(super) const BUILTINS: &[Builtin] = &[
    // SpamAssassin MISSING_DATE: RFC 5322 §3.6 requires an origination date.
    rule("MISSING_DATE", 1.4),
    // SpamAssassin MISSING_MID: every real MUA and MSA adds one (RFC 5322 §3.6.4 SHOULD).
    rule("MISSING_MID", 0.5),
    // SpamAssassin MISSING_FROM: RFC 5322 §3.6 requires a From.
    rule("MISSING_FROM", 1.0),
    // SpamAssassin MISSING_SUBJECT: no Subject field at all.
    rule("MISSING_SUBJECT", 1.0),
    // Ours: a Subject field that is there but blank (SpamAssassin folds it into other rules).
    rule("EMPTY_SUBJECT", 0.5),
    // SpamAssassin SUBJ_ALL_CAPS: a subject of several words, all in capitals.
    rule("SUBJ_ALL_CAPS", 1.0),
    // SpamAssassin MIME_HTML_ONLY: text/html with no text/plain alternative.
    rule("MIME_HTML_ONLY", 0.7),
    // After SpamAssassin's FromNameSpoof plugin: `"support@bank.example" <x@elsewhere>`.
    rule("FROMNAME_SPOOF", 2.5),
    // rspamd MIME_BAD_EXTENSION: an attachment Windows would run (.exe, .js, .scr, ...).
    rule("MIME_BAD_EXTENSION", 4.0),
    // rspamd MIME_DOUBLE_BAD_EXTENSION: one dressed as a document, `invoice.pdf.exe`.
    rule("MIME_DOUBLE_BAD_EXTENSION", 6.0),
    // SpamAssassin SPF_FAIL / SPF_SOFTFAIL (RFC 7208 §8.4, §8.5), for MAIL FROM.
    rule("SPF_FAIL", 2.0),
    rule("SPF_SOFTFAIL", 1.0),
    // SpamAssassin DKIM_INVALID: a signature is there but does not verify (RFC 6376 §6.1).
    rule("DKIM_INVALID", 1.0),
    // Ours: DMARC fail (RFC 7489 §6.6.2) whatever the domain's policy; SpamAssassin 4
    // splits it per policy (DMARC_REJECT, DMARC_QUAR, ...), the policy acts here elsewhere.
    rule("DMARC_FAIL", 3.0),
    // Like SpamAssassin RDNS_NONE, in the stricter sense of Postfix's
    // `reject_unknown_client_hostname`: no PTR, or one whose name does not resolve back.
    rule("RDNS_NOT_FCRDNS", 0.8),
];

/// Each DNS list the client is in (SpamAssassin's RCVD_IN_* rules).
pub(super) const DNSBL_SCORE: f64 = 2.0;

/// Attachment extensions Windows runs or opens with a script host: rspamd's `bad_extensions`
/// core, and Outlook's Level 1 blocked list.
const BAD_EXTENSIONS: &[&str] = &[
    "bat", "chm", "cmd", "com", "cpl", "exe", "hta", "jar", "js", "jse", "lnk", "msc", "msi",
    "pif", "ps1", "reg", "scr", "vb", "vbe", "vbs", "wsc", "wsf", "wsh",
];

/// Extensions a recipient takes for a harmless document: `invoice.pdf.exe` hides its real
/// type behind one of these (Windows hides the last extension by default).
const DOCUMENT_EXTENSIONS: &[&str] = &[
    "doc", "docx", "gif", "htm", "html", "jpeg", "jpg", "odt", "pdf", "png", "rtf", "txt", "xls",
    "xlsx", "zip",
];

/// Nested `message/rfc822` parts looked into for attachments, at most this deep.
const MAX_DEPTH: usize = 4;

/// The rule for a DNS list: `zen.spamhaus.org` → `RCVD_IN_ZEN_SPAMHAUS_ORG`.
pub fn dnsbl_rule(zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    let mut name = String::from("RCVD_IN_");
    name.extend(zone.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    name.truncate(64);
    name
}

/// Calls `hit` with the name of every built-in rule that fires (at most once each).
/// `message` is `None` when nothing could be parsed: only the signal rules can fire then.
pub(super) fn builtin_hits(
    message: Option<&Message<'_>>,
    signals: &Signals,
    addr_in_name: &Regex,
    hit: &mut dyn FnMut(&'static str),
) {
    if let Some(m) = message {
        let has = |name: HeaderName<'_>| m.headers().iter().any(|h| h.name == name);
        if !has(HeaderName::Date) {
            hit("MISSING_DATE");
        }
        if !has(HeaderName::MessageId) {
            hit("MISSING_MID");
        }
        if !has(HeaderName::From) {
            hit("MISSING_FROM");
        }
        match m.header(HeaderName::Subject) {
            None if !has(HeaderName::Subject) => hit("MISSING_SUBJECT"),
            None | Some(HeaderValue::Empty) => hit("EMPTY_SUBJECT"),
            Some(v) => match v.as_text() {
                Some(s) if s.trim().is_empty() => hit("EMPTY_SUBJECT"),
                Some(s) if all_caps(s) => hit("SUBJ_ALL_CAPS"),
                _ => {}
            },
        }
        if html_only(m) {
            hit("MIME_HTML_ONLY");
        }
        if m.from().is_some_and(|f| from_name_spoof(f, addr_in_name)) {
            hit("FROMNAME_SPOOF");
        }
        let (bad, double) = attachments(m, 0);
        if bad {
            hit("MIME_BAD_EXTENSION");
        }
        if double {
            hit("MIME_DOUBLE_BAD_EXTENSION");
        }
    }
    let is = |s: &Option<String>, v: &str| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(v));
    if is(&signals.spf, "fail") {
        hit("SPF_FAIL");
    }
    if is(&signals.spf, "softfail") {
        hit("SPF_SOFTFAIL");
    }
    if is(&signals.dkim, "fail") {
        hit("DKIM_INVALID");
    }
    if is(&signals.dmarc, "fail") {
        hit("DMARC_FAIL");
    }
    if signals.fcrdns == Some(false) {
        hit("RDNS_NOT_FCRDNS");
    }
}

/// SpamAssassin's `subject_is_all_caps`: at least two words and ten characters, letters
/// among them, and none of those in lower case (`RE: OK` and `URGENT` alone are not shouting).
fn all_caps(subject: &str) -> bool {
    let s = subject.trim();
    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
    s.chars().count() >= 10
        && s.split_whitespace().nth(1).is_some()
        && letters >= 5
        && !s.chars().any(char::is_lowercase)
}

fn is_attachment(m: &Message<'_>, i: usize) -> bool {
    m.attachments.iter().any(|&a| a as usize == i)
}

/// Some text/html part and no text/plain one, attachments aside.
fn html_only(m: &Message<'_>) -> bool {
    let mut html = false;
    for (i, p) in m.parts.iter().enumerate() {
        match p.body {
            PartType::Text(_) if !is_attachment(m, i) => return false,
            PartType::Html(_) if !is_attachment(m, i) => html = true,
            _ => {}
        }
    }
    html
}

/// The display name holds an address whose domain is not the From address's domain (nor
/// a parent or child of it: `news@mail.shop.example` may call itself `shop.example`).
fn from_name_spoof(from: &Address<'_>, addr_in_name: &Regex) -> bool {
    from.iter().any(|a| {
        let (Some(name), Some(address)) = (a.name.as_deref(), a.address.as_deref()) else {
            return false;
        };
        let Some((_, real)) = address.rsplit_once('@') else {
            return false;
        };
        let real = real.trim_end_matches('.').to_ascii_lowercase();
        addr_in_name.captures_iter(name).any(|c| {
            let shown = c[1].trim_end_matches('.').to_ascii_lowercase();
            !related(&shown, &real)
        })
    })
}

fn related(a: &str, b: &str) -> bool {
    let under = |child: &str, parent: &str| {
        child.len() > parent.len()
            && child.ends_with(parent)
            && child.as_bytes()[child.len() - parent.len() - 1] == b'.'
    };
    a == b || under(a, b) || under(b, a)
}

/// (a risky attachment, one with a double extension), over every part, nested messages
/// included (a forwarded message is still opened by the recipient).
fn attachments(m: &Message<'_>, depth: usize) -> (bool, bool) {
    let (mut bad, mut double) = (false, false);
    for p in &m.parts {
        if let Some(name) = p.attachment_name() {
            match classify(name) {
                Some(true) => double = true,
                Some(false) => bad = true,
                None => {}
            }
        }
        if let PartType::Message(inner) = &p.body {
            if depth < MAX_DEPTH {
                let (b, d) = attachments(inner, depth + 1);
                bad |= b;
                double |= d;
            }
        }
    }
    (bad, double)
}

/// `None`: harmless; `Some(false)`: a risky extension; `Some(true)`: a risky one behind a
/// document's. Trailing dots and spaces go first, as Windows drops them (`a.exe. ` runs).
/// mail-parser has already joined and decoded RFC 2231 `filename*` parameters.
pub(super) fn classify(filename: &str) -> Option<bool> {
    let name = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(filename)
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_ascii_lowercase();
    let mut parts = name.rsplit('.');
    let last = parts.next()?;
    let before = parts.next();
    // A name with no dot has no extension.
    before?;
    if !BAD_EXTENSIONS.contains(&last) {
        return None;
    }
    let before = before.map(str::trim);
    let disguised =
        parts.next().is_some() && before.is_some_and(|b| DOCUMENT_EXTENSIONS.contains(&b));
    Some(disguised)
}

/// The text parts that are the message (not attachments), in order.
pub(super) fn text_parts<'a>(m: &'a Message<'a>) -> impl Iterator<Item = &'a MessagePart<'a>> {
    m.parts
        .iter()
        .enumerate()
        .filter(move |(i, p)| {
            matches!(p.body, PartType::Text(_) | PartType::Html(_)) && !is_attachment(m, *i)
        })
        .map(|(_, p)| p)
}
