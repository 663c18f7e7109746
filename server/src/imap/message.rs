//! What FETCH and SEARCH read out of a message: sections (RFC 3501 §6.4.5 `BODY[...]`),
//! ENVELOPE and BODYSTRUCTURE (§7.4.2), parsed with mail-parser. Sections are byte slices
//! of the stored message, never re-encoded, so `BODY[]` gives back exactly what was
//! delivered.

use mail_parser::{Address, MessageParser, MessagePart, MimeHeaders, PartType};

use super::wire;

/// The end of the header block: just past the empty line (or the whole message if none).
pub fn header_end(bytes: &[u8]) -> usize {
    if bytes.starts_with(b"\r\n") {
        return 2;
    }
    if let Some(i) = memchr::memmem::find(bytes, b"\r\n\r\n") {
        return i + 4;
    }
    if let Some(i) = memchr::memmem::find(bytes, b"\n\n") {
        return i + 2;
    }
    bytes.len()
}

/// The header fields of `header` whose names are (`not`: are not) in `names`, each with its
/// continuation lines, then the empty line (RFC 3501 HEADER.FIELDS / HEADER.FIELDS.NOT).
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let folded = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !folded {
            let name_end = line.iter().position(|&b| b == b':').unwrap_or(0);
            let name = &line[..name_end];
            let listed = names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
            keep = listed != not && name_end > 0;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Which bytes of a body part a section names.
pub enum Slice {
    Whole,
    Header,
    Fields(Vec<String>, bool),
    Text,
    Mime,
}

/// The octets of section `part` (`[]` for the message itself) and `slice` of it, or `None`
/// if the message has no such part (RFC 3501 then returns an empty string).
pub fn section(bytes: &[u8], part: &[u32], slice: &Slice) -> Option<Vec<u8>> {
    if part.is_empty() {
        let end = header_end(bytes);
        return Some(match slice {
            Slice::Whole => bytes.to_vec(),
            Slice::Header | Slice::Mime => bytes[..end].to_vec(),
            Slice::Fields(names, not) => header_fields(&bytes[..end], names, *not),
            Slice::Text => bytes[end..].to_vec(),
        });
    }
    let message = MessageParser::default().parse(bytes)?;
    let mut nested = &message;
    let mut current = message.root_part();
    for (depth, n) in part.iter().enumerate() {
        let idx = (*n as usize).checked_sub(1)?;
        // Below the top, a message/rfc822 part's numbers index the message it holds.
        if depth > 0 {
            if let PartType::Message(m) = &current.body {
                nested = m;
                current = m.root_part();
            }
        }
        current = match &current.body {
            PartType::Multipart(children) => nested.part(*children.get(idx)?)?,
            // A part that is not multipart has one part, numbered 1 (RFC 3501 §6.4.5).
            _ if idx == 0 => current,
            _ => return None,
        };
    }
    let (h, b, e) = (
        current.offset_header as usize,
        current.offset_body as usize,
        current.offset_end as usize,
    );
    let raw = nested.raw_message();
    let (h, b, e) = (h.min(raw.len()), b.min(raw.len()), e.min(raw.len()));
    let body = &raw[b.max(h)..e.max(b)];
    Some(match slice {
        Slice::Whole => body.to_vec(),
        Slice::Mime => raw[h..b.max(h)].to_vec(),
        // HEADER/TEXT of a part are those of the message/rfc822 it holds.
        Slice::Header => body[..header_end(body)].to_vec(),
        Slice::Fields(names, not) => header_fields(&body[..header_end(body)], names, *not),
        Slice::Text => body[header_end(body)..].to_vec(),
    })
}

/// `ENVELOPE` (RFC 3501 §7.4.2): date, subject, from, sender, reply-to, to, cc, bcc,
/// in-reply-to, message-id. Sender and reply-to default to from, as the RFC says.
pub fn envelope(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(m) = MessageParser::default().parse(bytes) else {
        out.extend_from_slice(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        return out;
    };
    let raw = |name: &str| m.header_raw(name).map(|v| v.trim().as_bytes().to_vec());
    out.push(b'(');
    wire::nstring(&mut out, raw("Date").as_deref());
    out.push(b' ');
    wire::nstring(&mut out, m.subject().map(str::as_bytes));
    let from = m.from();
    for a in [
        from,
        m.sender().or(from),
        m.reply_to().or(from),
        m.to(),
        m.cc(),
        m.bcc(),
    ] {
        out.push(b' ');
        addresses(&mut out, a);
    }
    out.push(b' ');
    wire::nstring(&mut out, raw("In-Reply-To").as_deref());
    out.push(b' ');
    wire::nstring(&mut out, raw("Message-ID").as_deref());
    out.push(b')');
    out
}

fn addresses(out: &mut Vec<u8>, a: Option<&Address<'_>>) {
    let list: Vec<_> = a.map(|a| a.iter().collect()).unwrap_or_default();
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for addr in list {
        let full = addr.address.as_deref().unwrap_or("");
        let (mailbox, host) = full.rsplit_once('@').unwrap_or((full, ""));
        out.push(b'(');
        wire::nstring(out, addr.name.as_deref().map(str::as_bytes));
        out.extend_from_slice(b" NIL ");
        wire::nstring(out, Some(mailbox.as_bytes()));
        out.push(b' ');
        wire::nstring(out, (!host.is_empty()).then_some(host.as_bytes()));
        out.push(b')');
    }
    out.push(b')');
}

/// `BODYSTRUCTURE` (RFC 3501 §7.4.2), non-extensible form (`BODY`) with the extension data
/// clients rely on left out: type, subtype, parameters, id, description, encoding, size,
/// and lines for text parts; the envelope, structure and lines of a message/rfc822.
pub fn bodystructure(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match MessageParser::default().parse(bytes) {
        Some(m) => structure(&mut out, &m, m.root_part(), 0),
        None => out.extend_from_slice(
            b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
        ),
    }
    out
}

fn structure(out: &mut Vec<u8>, m: &mail_parser::Message<'_>, p: &MessagePart<'_>, depth: u32) {
    if let (PartType::Multipart(children), true) = (&p.body, depth < 32) {
        out.push(b'(');
        for c in children {
            if let Some(child) = m.part(*c) {
                structure(out, m, child, depth + 1);
            }
        }
        let sub = p
            .content_type()
            .and_then(|c| c.subtype())
            .unwrap_or("mixed")
            .to_ascii_lowercase();
        out.push(b' ');
        wire::string(out, sub.as_bytes());
        out.push(b')');
        return;
    }
    let raw = m.raw_message();
    let (b, e) = (p.offset_body as usize, p.offset_end as usize);
    let body = raw
        .get(b.min(e).min(raw.len())..e.min(raw.len()))
        .unwrap_or(&[]);
    let (ctype, sub) = match p.content_type() {
        Some(c) => (
            c.ctype().to_ascii_lowercase(),
            c.subtype().unwrap_or("plain").to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into()),
    };
    out.push(b'(');
    wire::string(out, ctype.as_bytes());
    out.push(b' ');
    wire::string(out, sub.as_bytes());
    out.push(b' ');
    let attrs: Vec<(String, String)> = p
        .content_type()
        .and_then(|c| c.attributes())
        .map(|a| {
            a.iter()
                .map(|at| (at.name.to_ascii_lowercase(), at.value.to_string()))
                .collect()
        })
        .unwrap_or_default();
    if attrs.is_empty() && ctype == "text" {
        out.extend_from_slice(b"(\"charset\" \"us-ascii\")");
    } else if attrs.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        for (i, (k, v)) in attrs.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            wire::string(out, k.as_bytes());
            out.push(b' ');
            wire::string(out, v.as_bytes());
        }
        out.push(b')');
    }
    out.push(b' ');
    wire::nstring(out, p.content_id().map(str::as_bytes));
    out.push(b' ');
    wire::nstring(out, p.content_description().map(str::as_bytes));
    out.push(b' ');
    let cte = p
        .content_transfer_encoding()
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    wire::string(out, cte.as_bytes());
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    if let (PartType::Message(inner), true) = (&p.body, depth < 32) {
        out.push(b' ');
        out.extend_from_slice(&envelope(inner.raw_message()));
        out.push(b' ');
        structure(out, inner, inner.root_part(), depth + 1);
        out.extend_from_slice(format!(" {lines}").as_bytes());
    } else if ctype == "text" {
        out.extend_from_slice(format!(" {lines}").as_bytes());
    }
    out.push(b')');
}
