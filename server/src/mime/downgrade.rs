//! The 8BITMIME downgrade (RFC 6152 §3): a message that holds 8-bit (or binary) content, for
//! a peer that does not take it as is, is re-encoded one MIME leaf part at a time.
//!
//! mail-parser finds the parts and their offsets; everything outside the bodies that are
//! re-encoded — header sections, multipart preambles, boundaries, epilogues, 7-bit parts —
//! is copied byte for byte. A re-encoded part gets
//! - quoted-printable if it is `text/*` and at least half ASCII (it stays readable, RFC 2045 §6.7),
//!   base64 otherwise (RFC 2045 §6.8, 76-character lines),
//! - its `Content-Transfer-Encoding` field replaced (or added at the end of its header
//!   section); a top-level non-MIME message also gets `MIME-Version: 1.0` (RFC 2045 §4),
//!   without which the new field would mean nothing.
//!
//! The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1): mail-parser's part
//! end excludes it, so it stays outside the encoded text; a single-part message's final CRLF
//! is content and is encoded with the rest (base64 output ends in CRLF there).
//!
//! `message/rfc822` parts may only be 7bit, 8bit or binary (RFC 2046 §5.2.1): they are never
//! encoded themselves; their own parts are downgraded instead (mail-parser parses them in
//! place, so their offsets are offsets into the same message). A `multipart/*` or
//! `message/*` leaf that mail-parser could not take apart is left alone, as are 8-bit octets
//! in header fields (RFC 2047 encoded words are not made here): [`Downgraded::notes`] says
//! so, for the transcript.
//!
//! The downgrade breaks any DKIM signature over the body (RFC 6376 §5.3 asks signers to
//! sign 7-bit forms for that reason). Mail we submit is downgraded before it is signed (see
//! `dkim::submission`); relayed third-party mail cannot be re-signed and loses its
//! signature's validity, as with any converting relay.

use mail_parser::{Encoding, Message, MessageParser, MimeHeaders, PartType};

use super::{has_binary_octets, qp};

/// The outcome of [`downgrade`] when anything was re-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downgraded {
    pub message: Vec<u8>,
    /// Parts re-encoded as quoted-printable and as base64.
    pub quoted_printable: usize,
    pub base64: usize,
    /// What could not be made 7-bit, for the transcript.
    pub notes: Vec<String>,
}

/// One replacement of `raw[start..end]`.
struct Edit {
    start: usize,
    end: usize,
    with: Vec<u8>,
}

/// Re-encodes every leaf part whose body holds binary octets (NUL, bare CR/LF) and, unless
/// `keep_8bit` (the peer offers 8BITMIME), every one with 8-bit octets; see the module docs.
/// `None` when nothing needed re-encoding (or the message has no header section).
pub fn downgrade(raw: &[u8], keep_8bit: bool) -> Option<Downgraded> {
    let parsed = MessageParser::default().parse(raw)?;
    let mut w = Walk {
        raw,
        keep_8bit,
        edits: Vec::new(),
        out: Downgraded {
            message: Vec::new(),
            quoted_printable: 0,
            base64: 0,
            notes: Vec::new(),
        },
        eight_bit_headers: false,
    };
    w.message(&parsed, true);
    if w.eight_bit_headers {
        w.out
            .notes
            .push("8-bit octets in MIME part header fields sent as is (no RFC 2047)".into());
    }
    if w.edits.is_empty() {
        return None;
    }
    w.edits.sort_by_key(|e| (e.start, e.end));
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3 + 256);
    let mut at = 0;
    for e in &w.edits {
        if e.start < at {
            continue; // overlapping (cannot happen with sane offsets): keep the first
        }
        out.extend_from_slice(&raw[at..e.start]);
        out.extend_from_slice(&e.with);
        at = e.end;
    }
    out.extend_from_slice(&raw[at..]);
    w.out.message = out;
    Some(w.out)
}

struct Walk<'a> {
    raw: &'a [u8],
    keep_8bit: bool,
    edits: Vec<Edit>,
    out: Downgraded,
    eight_bit_headers: bool,
}

impl Walk<'_> {
    /// The parts of one message; `top` is the message itself (not a nested one).
    fn message(&mut self, msg: &Message<'_>, top: bool) {
        for (i, part) in msg.parts.iter().enumerate() {
            let (h, b, e) = (
                part.offset_header as usize,
                part.offset_body as usize,
                part.offset_end as usize,
            );
            if !(h <= b && b <= e && e <= self.raw.len()) {
                continue;
            }
            if !(top && i == 0) && self.raw[h..b].iter().any(|&c| c >= 0x80) {
                self.eight_bit_headers = true;
            }
            match &part.body {
                PartType::Multipart(_) => {}
                // Parsed in place (not from decoded bytes) only when it is not encoded.
                PartType::Message(nested) if part.encoding == Encoding::None => {
                    self.message(nested, false)
                }
                PartType::Message(_) => {}
                _ => self.leaf(part, top && i == 0, h, b, e),
            }
        }
    }

    fn leaf(
        &mut self,
        part: &mail_parser::MessagePart<'_>,
        root: bool,
        h: usize,
        b: usize,
        e: usize,
    ) {
        let body = &self.raw[b..e];
        let eight = body.iter().any(|&c| c >= 0x80);
        if part.encoding != Encoding::None || !(has_binary_octets(body) || eight && !self.keep_8bit)
        {
            return;
        }
        let ctype = part.content_type();
        let main = ctype.map(|c| c.ctype().to_ascii_lowercase());
        if matches!(main.as_deref(), Some("multipart" | "message")) {
            self.out.notes.push(format!(
                "a {} part with 8-bit or binary content sent as is (it may not be encoded, RFC 2046 §5)",
                main.unwrap_or_default()
            ));
            return;
        }
        // RFC 2045 §5.2: no Content-Type is text/plain.
        let text = main.as_deref().is_none_or(|m| m == "text");
        let escaped = body
            .iter()
            .filter(|&&c| !(32..127).contains(&c) && c != b'\r' && c != b'\n' && c != b'\t')
            .count();
        let use_qp = text && escaped * 2 <= body.len();
        let mut encoded = Vec::new();
        let cte = if use_qp {
            qp::encode(body, &mut encoded);
            self.out.quoted_printable += 1;
            "quoted-printable"
        } else {
            encoded = data_encoding::BASE64_MIME.encode(body).into_bytes();
            // Inside a multipart the delimiter's CRLF ends the last line already.
            if e < self.raw.len() && encoded.ends_with(b"\r\n") {
                encoded.truncate(encoded.len() - 2);
            }
            self.out.base64 += 1;
            "base64"
        };
        self.header(h, b, cte, root);
        self.edits.push(Edit {
            start: b,
            end: e,
            with: encoded,
        });
    }

    /// Replaces (or adds) the Content-Transfer-Encoding field of the header section
    /// `raw[h..b]`.
    fn header(&mut self, h: usize, b: usize, cte: &str, root: bool) {
        let field = format!("Content-Transfer-Encoding: {cte}\r\n").into_bytes();
        let raw = self.raw;
        let fields = fields(&raw[h..b]);
        let named = |name: &[u8]| {
            fields.iter().find(|&&(s, _)| {
                let line = &raw[h + s..];
                line.len() > name.len()
                    && line[..name.len()].eq_ignore_ascii_case(name)
                    && line[name.len()..].trim_ascii_start().first() == Some(&b':')
            })
        };
        if let Some(&(s, e)) = named(b"content-transfer-encoding") {
            self.edits.push(Edit {
                start: h + s,
                end: h + e,
                with: field,
            });
            return;
        }
        let end = fields.last().map_or(0, |&(_, e)| e);
        let mut add = Vec::new();
        if root && named(b"mime-version").is_none() {
            add.extend_from_slice(b"MIME-Version: 1.0\r\n");
        }
        add.extend_from_slice(&field);
        self.edits.push(Edit {
            start: h + end,
            end: h + end,
            with: add,
        });
    }
}

/// The fields of a header section, as (start, end) ranges with their folded lines and line
/// end, up to the empty line.
fn fields(section: &[u8]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < section.len() {
        let end = memchr::memchr(b'\n', &section[at..]).map_or(section.len(), |n| at + n + 1);
        let line = &section[at..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        match (line[0], out.last_mut()) {
            (b' ' | b'\t', Some(last)) => last.1 = end,
            _ => out.push((at, end)),
        }
        at = end;
    }
    out
}

#[cfg(test)]
mod tests;
