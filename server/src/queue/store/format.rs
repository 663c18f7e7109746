//! The on-disk format of a queue file, version 1. See [`super`] for the layout and why.
//!
//! Everything textual is ASCII: envelope strings and SMTP replies are percent-escaped
//! ([`escape`]), so a field can never contain the space, comma, `=` or newline that separate
//! fields and records, and a queue file can be read with `less`. Parsing is strict: numbers
//! are plain digits, escapes are canonical, and anything unexpected makes the file (or, in
//! the state tail, the one record) invalid rather than half-understood.

use std::fmt::Write as _;
use std::ops::Range;
use std::time::Duration;

use memchr::memchr;

use super::{MessageOptions, NewRecipient, RecipientState};
use crate::durable::crc::Crc32;
use crate::durable::log::{self, NewlineInPayload};
use crate::env::Timestamp;
use crate::mail::{Address, EnvelopeDsn, Notify, Ret};

/// First word of every queue file.
pub(super) const MAGIC: &str = "mailsim-queue";
/// The format version this code writes and reads.
pub(super) const VERSION: &str = "1";
/// The header line is short; a file whose first newline is further away is not ours.
const MAX_HEADER: usize = 128;

/// Why a queue file cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum FormatError {
    /// A queue file of another version: left alone for the software that wrote it.
    Unsupported(String),
    /// Not a (complete, intact) queue file.
    Corrupt(String),
}

/// The part of a queued message that never changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Envelope {
    pub queued_at: Timestamp,
    pub mail_from: Option<Address>,
    pub recipients: Vec<NewRecipient>,
    pub options: MessageOptions,
}

/// A checked queue file: its envelope, where the body is, where the state tail starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Parsed {
    pub envelope: Envelope,
    pub body: Range<usize>,
    pub tail: usize,
}

/// One change in a state record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change {
    Warned,
    Recipient(usize, RecipientState),
}

/// Serializes a new queue file: header line, envelope, body; no state records yet.
///
/// The DSN and REQUIRETLS parts (a `dsn`, a `requiretls` and a `tlsrequired-no` line after
/// `from` (the last for `TLS-Required: No`, RFC 8689 §5), `notify=`
/// and `orcpt=` on a `rcpt` line) are written only when present, so a message without them
/// is byte for byte what version 1 always wrote, and a version 1 file reads as a message
/// without them: no version change was needed for these optional parts.
#[cfg(test)]
pub(super) fn encode_message(
    queued_at: Timestamp,
    mail_from: Option<&Address>,
    options: &MessageOptions,
    recipients: &[NewRecipient],
    body: &[u8],
) -> Vec<u8> {
    encode_spliced(queued_at, mail_from, options, recipients, body, None)
}

/// A new queue file whose body is `head` followed by `rest` (octets, CRC-32) more octets
/// that the caller copies in after the returned bytes (a spooled message: the file is
/// assembled by `Env::write_spliced`). The checksum covers the whole body all the same: the
/// rest's CRC, computed as it was spooled, is combined in without reading it back.
pub(super) fn encode_spliced(
    queued_at: Timestamp,
    mail_from: Option<&Address>,
    options: &MessageOptions,
    recipients: &[NewRecipient],
    head: &[u8],
    rest: Option<(u64, u32)>,
) -> Vec<u8> {
    let mut env = String::with_capacity(64 + 48 * recipients.len());
    env.push_str("created ");
    push_timestamp(&mut env, queued_at);
    env.push_str("\nfrom");
    if let Some(a) = mail_from {
        push_address(&mut env, a);
    }
    env.push('\n');
    let dsn = &options.dsn;
    if dsn.ret.is_some() || dsn.envid.is_some() {
        env.push_str("dsn");
        if let Some(ret) = dsn.ret {
            env.push_str(" ret=");
            env.push_str(ret.as_str());
        }
        if let Some(envid) = &dsn.envid {
            env.push_str(" envid=");
            escape(envid, &mut env);
        }
        env.push('\n');
    }
    if options.require_tls {
        env.push_str("requiretls\n");
    }
    if options.tls_required_no {
        env.push_str("tlsrequired-no\n");
    }
    for r in recipients {
        env.push_str("rcpt");
        push_address(&mut env, &r.address);
        if let Some(n) = r.notify.keyword() {
            env.push_str(" notify=");
            env.push_str(&n);
        }
        if let Some(o) = &r.orcpt {
            env.push_str(" orcpt=");
            escape(o, &mut env);
        }
        env.push('\n');
    }
    let rest_len = rest.map_or(0, |(len, _)| len);
    let body_len = head.len() as u64 + rest_len;
    let prefix = format!("{MAGIC} {VERSION} {} {body_len} ", env.len());
    let mut crc = Crc32::new();
    crc.update(prefix.as_bytes());
    crc.update(env.as_bytes());
    crc.update(head);
    let crc = match rest {
        None => crc.finish(),
        Some((len, rest_crc)) => crate::durable::crc::combine(crc.finish(), rest_crc, len),
    };
    let mut out = Vec::with_capacity(prefix.len() + 9 + env.len() + head.len());
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(format!("{crc:08x}\n").as_bytes());
    out.extend_from_slice(env.as_bytes());
    out.extend_from_slice(head);
    out
}

/// Checks and parses a queue file (without its state tail, see [`parse_tail`]).
pub(super) fn parse_message(data: &[u8]) -> Result<Parsed, FormatError> {
    let corrupt = |why: &str| FormatError::Corrupt(why.to_string());
    let nl = memchr(b'\n', &data[..data.len().min(MAX_HEADER)])
        .ok_or_else(|| corrupt("no header line"))?;
    let header = std::str::from_utf8(&data[..nl]).map_err(|_| corrupt("header not UTF-8"))?;
    let fields: Vec<&str> = header.split(' ').collect();
    if fields[0] != MAGIC {
        return Err(corrupt("not a queue file"));
    }
    match fields.get(1) {
        Some(&VERSION) => {}
        Some(v) => return Err(FormatError::Unsupported((*v).to_string())),
        None => return Err(corrupt("no version")),
    }
    let &[_, _, env_len, body_len, crc] = fields.as_slice() else {
        return Err(corrupt("bad header"));
    };
    let env_len = parse_usize(env_len).ok_or_else(|| corrupt("bad envelope length"))?;
    let body_len = parse_usize(body_len).ok_or_else(|| corrupt("bad body length"))?;
    let crc = parse_hex32(crc).ok_or_else(|| corrupt("bad checksum field"))?;
    let start = nl + 1;
    let avail = data.len() - start;
    if env_len > avail || body_len > avail - env_len {
        return Err(corrupt("truncated"));
    }
    let body_start = start + env_len;
    let body_end = body_start + body_len;
    let mut sum = Crc32::new();
    sum.update(&data[..nl - 8]);
    sum.update(&data[start..body_end]);
    if sum.finish() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let envelope = parse_envelope(&data[start..body_start]).map_err(corrupt)?;
    Ok(Parsed {
        envelope,
        body: body_start..body_end,
        tail: body_end,
    })
}

fn parse_envelope(env: &[u8]) -> Result<Envelope, &'static str> {
    let env = std::str::from_utf8(env).map_err(|_| "envelope not UTF-8")?;
    let env = env
        .strip_suffix('\n')
        .ok_or("envelope not newline-terminated")?;
    let mut lines = env.split('\n');
    let created = lines
        .next()
        .and_then(|l| l.strip_prefix("created "))
        .ok_or("no created line")?;
    let queued_at = parse_timestamp(created).ok_or("bad created time")?;
    let from = lines.next().ok_or("no from line")?;
    let mail_from = match from {
        "from" => None,
        _ => Some(
            from.strip_prefix("from ")
                .and_then(parse_address)
                .ok_or("bad from line")?,
        ),
    };
    let mut lines = lines.peekable();
    let mut options = MessageOptions::default();
    if let Some(dsn) = lines.next_if(|l| l.starts_with("dsn")) {
        options.dsn = parse_dsn_line(dsn).ok_or("bad dsn line")?;
    }
    options.require_tls = lines.next_if_eq(&"requiretls").is_some();
    options.tls_required_no = lines.next_if_eq(&"tlsrequired-no").is_some();
    let mut recipients = Vec::new();
    for line in lines {
        let r = line
            .strip_prefix("rcpt ")
            .and_then(parse_rcpt)
            .ok_or("bad rcpt line")?;
        recipients.push(r);
    }
    if recipients.is_empty() {
        return Err("no recipients");
    }
    Ok(Envelope {
        queued_at,
        mail_from,
        recipients,
        options,
    })
}

/// `dsn[ ret=FULL|HDRS][ envid=<escaped>]`, in that order, at least one of them: exactly
/// what [`encode_message`] writes.
fn parse_dsn_line(line: &str) -> Option<EnvelopeDsn> {
    let mut dsn = EnvelopeDsn::default();
    let mut fields = line.strip_prefix("dsn ")?.split(' ').peekable();
    if let Some(ret) = fields.next_if(|f| f.starts_with("ret=")) {
        dsn.ret = Some(match &ret[4..] {
            "FULL" => Ret::Full,
            "HDRS" => Ret::Hdrs,
            _ => return None,
        });
    }
    if let Some(envid) = fields.next_if(|f| f.starts_with("envid=")) {
        dsn.envid = Some(unescape(&envid[6..])?);
    }
    let some = dsn.ret.is_some() || dsn.envid.is_some();
    (fields.next().is_none() && some).then_some(dsn)
}

/// `<local> <domain>[ notify=<list>][ orcpt=<escaped>]`, in that order.
fn parse_rcpt(s: &str) -> Option<NewRecipient> {
    let mut fields = s.split(' ').peekable();
    let address = Address {
        local: unescape(fields.next()?)?,
        domain: unescape(fields.next()?)?,
    };
    let mut notify = Notify::default();
    if let Some(n) = fields.next_if(|f| f.starts_with("notify=")) {
        notify = Notify::parse(&n[7..])?;
        // Canonical only: the spelling `keyword` writes.
        if notify.keyword().as_deref() != Some(&n[7..]) {
            return None;
        }
    }
    let mut orcpt = None;
    if let Some(o) = fields.next_if(|f| f.starts_with("orcpt=")) {
        orcpt = Some(unescape(&o[6..])?);
    }
    fields.next().is_none().then_some(NewRecipient {
        address,
        notify,
        orcpt,
    })
}

/// One state record: a [log](crate::durable::log) record whose payload is space-separated
/// changes. The log's framing (a leading newline, then the CRC) is what lets a reader
/// resynchronise after a torn record. Fails only if a payload could not be framed, which
/// escaping rules out (every string is percent-escaped, numbers are digits).
pub(super) fn encode_record(changes: &[Change]) -> Result<Vec<u8>, NewlineInPayload> {
    let mut payload = String::new();
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            payload.push(' ');
        }
        match c {
            Change::Warned => payload.push_str("warned"),
            Change::Recipient(idx, state) => {
                let _ = write!(payload, "{idx}=");
                match state {
                    RecipientState::Pending => payload.push_str("pending"),
                    RecipientState::Deferred {
                        attempts,
                        last_reply,
                        next_attempt,
                    } => {
                        let _ = write!(payload, "deferred,{attempts},");
                        push_timestamp(&mut payload, *next_attempt);
                        payload.push(',');
                        escape(last_reply, &mut payload);
                    }
                    RecipientState::Delivered { reply } => {
                        payload.push_str("delivered,");
                        escape(reply, &mut payload);
                    }
                    RecipientState::Failed { reply } => {
                        payload.push_str("failed,");
                        escape(reply, &mut payload);
                    }
                }
            }
        }
    }
    log::encode(payload.as_bytes())
}

/// Parses the state tail: the records that check out, in order, and for every line that
/// does not, its line number and why (a torn append, or damage). A bad record is skipped
/// whole: a record is all-or-nothing, like the `record` call that wrote it.
pub(super) fn parse_tail(tail: &[u8], recipients: usize) -> (Vec<Vec<Change>>, Vec<String>) {
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for line in log::records(tail) {
        match line
            .record
            .map_err(log::BadRecord::as_str)
            .and_then(|payload| parse_payload(payload, recipients))
        {
            Ok(r) => records.push(r),
            Err(why) => skipped.push(format!("state line {}: {why}", line.number)),
        }
    }
    (records, skipped)
}

fn parse_payload(payload: &[u8], recipients: usize) -> Result<Vec<Change>, &'static str> {
    let payload = std::str::from_utf8(payload).map_err(|_| "record not UTF-8")?;
    payload
        .split(' ')
        .map(|token| parse_change(token, recipients))
        .collect()
}

fn parse_change(token: &str, recipients: usize) -> Result<Change, &'static str> {
    if token == "warned" {
        return Ok(Change::Warned);
    }
    let (idx, state) = token.split_once('=').ok_or("unknown change")?;
    let idx = parse_usize(idx).ok_or("bad recipient index")?;
    if idx >= recipients {
        return Err("recipient index out of range");
    }
    let (kind, rest) = state.split_once(',').unwrap_or((state, ""));
    let state = match kind {
        "pending" if state == "pending" => RecipientState::Pending,
        "deferred" => {
            let mut parts = rest.splitn(3, ',');
            let attempts = parts
                .next()
                .and_then(parse_usize)
                .and_then(|a| u32::try_from(a).ok())
                .ok_or("bad attempts")?;
            let next_attempt = parts
                .next()
                .and_then(parse_timestamp)
                .ok_or("bad next attempt")?;
            let last_reply = parts.next().and_then(unescape).ok_or("bad reply")?;
            RecipientState::Deferred {
                attempts,
                last_reply,
                next_attempt,
            }
        }
        "delivered" if state.contains(',') => RecipientState::Delivered {
            reply: unescape(rest).ok_or("bad reply")?,
        },
        "failed" if state.contains(',') => RecipientState::Failed {
            reply: unescape(rest).ok_or("bad reply")?,
        },
        _ => return Err("unknown state"),
    };
    Ok(Change::Recipient(idx, state))
}

/// Bytes that stand for themselves: printable ASCII except the escape character and the
/// field separators.
fn is_plain(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'%' | b',' | b'=')
}

/// Percent-escapes every other byte (`%XX`, upper-case hex).
pub(super) fn escape(s: &str, out: &mut String) {
    for b in s.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The inverse of [`escape`]; `None` unless the input is exactly what `escape` writes.
pub(super) fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                return None;
            }
            let v = u8::from_str_radix(hex, 16).ok()?;
            if is_plain(v) {
                return None;
            }
            out.push(v);
            i += 3;
        } else if is_plain(b[i]) {
            out.push(b[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

fn push_address(out: &mut String, a: &Address) {
    out.push(' ');
    escape(&a.local, out);
    out.push(' ');
    escape(&a.domain, out);
}

/// `<local> <domain>`, each escaped. Built directly, not through `Address::parse`: the file
/// holds exactly what was queued, and its checksum vouches for it.
fn parse_address(s: &str) -> Option<Address> {
    let (local, domain) = s.split_once(' ')?;
    Some(Address {
        local: unescape(local)?,
        domain: unescape(domain)?,
    })
}

/// `<secs>.<nanos, 9 digits>`: exact, so a timestamp survives a round trip unchanged.
fn push_timestamp(out: &mut String, t: Timestamp) {
    let _ = write!(out, "{}.{:09}", t.0.as_secs(), t.0.subsec_nanos());
}

fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let (secs, nanos) = s.split_once('.')?;
    if nanos.len() != 9 {
        return None;
    }
    let secs = parse_usize(secs).and_then(|v| u64::try_from(v).ok())?;
    let nanos = u32::try_from(parse_usize(nanos)?).ok()?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    Some(Timestamp(Duration::new(secs, nanos)))
}

/// Plain decimal digits only (no sign, no spaces), without overflow.
fn parse_usize(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Exactly eight lower-case hex digits.
fn parse_hex32(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(local: &str, domain: &str) -> Address {
        Address {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn message_round_trip_and_layout() {
        let from = addr("Alice", "example.org");
        let rcpts = [addr("bob", "example.net"), addr("we ird%,=\n", "ÿ.example")];
        let t = Timestamp(Duration::new(1_700_000_000, 123_456_789));
        let none = MessageOptions::default();
        let rcpts = rcpts.map(NewRecipient::from);
        let data = encode_message(t, Some(&from), &none, &rcpts, b"Subject: x\r\n\r\nhi\r\n");
        let text = String::from_utf8(data.clone()).unwrap();
        let (header, rest) = text.split_once('\n').unwrap();
        assert!(header.starts_with("mailsim-queue 1 "), "{header}");
        assert!(rest.starts_with(
            "created 1700000000.123456789\nfrom Alice example.org\nrcpt bob example.net\n\
             rcpt we%20ird%25%2C%3D%0A %C3%BF.example\nSubject: x"
        ));
        let p = parse_message(&data).unwrap();
        assert_eq!(p.envelope.queued_at, t);
        assert_eq!(p.envelope.mail_from, Some(from));
        assert_eq!(p.envelope.recipients, rcpts);
        assert_eq!(&data[p.body.clone()], b"Subject: x\r\n\r\nhi\r\n");
        assert_eq!(p.tail, data.len());

        let null = encode_message(t, None, &none, &rcpts[..1], b"");
        let p = parse_message(&null).unwrap();
        assert_eq!(p.envelope.mail_from, None);
        assert!(p.body.is_empty());
    }

    fn dsn_options() -> MessageOptions {
        MessageOptions {
            dsn: EnvelopeDsn {
                ret: Some(Ret::Full),
                envid: Some("QQ 31=4,%".into()),
            },
            require_tls: true,
            tls_required_no: false,
        }
    }

    fn dsn_rcpt(local: &str, domain: &str) -> NewRecipient {
        NewRecipient {
            address: addr(local, domain),
            notify: Notify {
                success: true,
                failure: true,
                ..Notify::default()
            },
            orcpt: Some("Bob B=1@example.net".into()),
        }
    }

    #[test]
    fn dsn_parts_round_trip_and_are_optional() {
        let t = Timestamp::from_secs(9);
        let never = NewRecipient {
            notify: Notify {
                never: true,
                ..Notify::default()
            },
            ..addr("n", "x.example").into()
        };
        let rcpts = [
            dsn_rcpt("bob", "example.net"),
            never,
            addr("c", "y.example").into(),
        ];
        let data = encode_message(t, None, &dsn_options(), &rcpts, b"x\r\n");
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains(
            "\nfrom\ndsn ret=FULL envid=QQ%2031%3D4%2C%25\nrequiretls\n\
             rcpt bob example.net notify=SUCCESS,FAILURE orcpt=Bob%20B%3D1@example.net\n\
             rcpt n x.example notify=NEVER\nrcpt c y.example\nx\r\n"
        ));
        let p = parse_message(&data).unwrap();
        assert_eq!(p.envelope.options, dsn_options());
        assert_eq!(p.envelope.recipients, rcpts);
        // Only RET, only ENVID.
        for dsn in [
            EnvelopeDsn {
                ret: Some(Ret::Hdrs),
                envid: None,
            },
            EnvelopeDsn {
                ret: None,
                envid: Some("e".into()),
            },
        ] {
            // With `TLS-Required: No` (RFC 8689 §5) recorded, too.
            let options = MessageOptions {
                dsn,
                require_tls: false,
                tls_required_no: true,
            };
            let data = encode_message(t, None, &options, &rcpts[2..], b"");
            assert!(String::from_utf8_lossy(&data).contains("\ntlsrequired-no\nrcpt c y.example\n"));
            assert_eq!(parse_message(&data).unwrap().envelope.options, options);
        }
    }

    /// Envelope sections that are not exactly what `encode_message` writes are corrupt.
    #[test]
    fn odd_dsn_parts_are_corrupt() {
        for env in [
            "created 1.000000000\nfrom\ndsn\nrcpt a b\n",
            "created 1.000000000\nfrom\ndsn ret=ALL\nrcpt a b\n",
            "created 1.000000000\nfrom\ndsn envid=x ret=FULL\nrcpt a b\n",
            "created 1.000000000\nfrom\ndsn ret=FULL x=y\nrcpt a b\n",
            "created 1.000000000\nfrom\nrequiretls\ndsn ret=FULL\nrcpt a b\n",
            "created 1.000000000\nfrom\nrcpt a b notify=never\n",
            "created 1.000000000\nfrom\nrcpt a b notify=DELAY,SUCCESS\n",
            "created 1.000000000\nfrom\nrcpt a b notify=NEVER,DELAY\n",
            "created 1.000000000\nfrom\nrcpt a b orcpt=x notify=NEVER\n",
            "created 1.000000000\nfrom\nrcpt a b orcpt=a%2\n",
            "created 1.000000000\nfrom\nrcpt a b extra\n",
        ] {
            assert!(parse_envelope(env.as_bytes()).is_err(), "{env}");
        }
        let ok = parse_envelope(b"created 1.000000000\nfrom\nrcpt a b notify=DELAY\n").unwrap();
        assert!(ok.recipients[0].notify.delay);
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_detected() {
        let data = encode_message(
            Timestamp::from_secs(5),
            None,
            &dsn_options(),
            &[dsn_rcpt("a", "b.example")],
            b"body\r\n",
        );
        for len in 0..data.len() {
            assert!(parse_message(&data[..len]).is_err(), "truncated to {len}");
        }
        for i in 0..data.len() {
            for bit in 0..8 {
                let mut bad = data.clone();
                bad[i] ^= 1 << bit;
                assert!(parse_message(&bad).is_err(), "flip byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn versions_and_garbage() {
        assert_eq!(
            parse_message(b"mailsim-queue 2 whatever\n"),
            Err(FormatError::Unsupported("2".into()))
        );
        for junk in [
            &b""[..],
            b"\n",
            b"hello world\n",
            b"mailsim-queue\n",
            b"mailsim-queue 1\n",
            b"mailsim-queue 1 1 1 0000000g\nxx",
            b"mailsim-queue 1 +1 1 00000000\nxx",
            b"mailsim-queue 1 99999999999999999999999 1 00000000\nxx",
            &[0u8; 4096][..],
        ] {
            assert!(
                matches!(parse_message(junk), Err(FormatError::Corrupt(_))),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn records_round_trip_and_torn_records_are_skipped() {
        let changes = vec![
            Change::Recipient(
                0,
                RecipientState::Deferred {
                    attempts: 3,
                    last_reply: "451 4.7.1 greylisted, try again".into(),
                    next_attempt: Timestamp(Duration::new(99, 5)),
                },
            ),
            Change::Warned,
            Change::Recipient(
                1,
                RecipientState::Delivered {
                    reply: "250 ok".into(),
                },
            ),
            Change::Recipient(2, RecipientState::Failed { reply: "".into() }),
            Change::Recipient(3, RecipientState::Pending),
        ];
        let rec = encode_record(&changes).unwrap();
        assert!(rec.starts_with(b"\n"));
        let (got, skipped) = parse_tail(&rec, 4);
        assert_eq!(got, vec![changes.clone()]);
        assert!(skipped.is_empty());

        // A torn record followed by a good one: the good one is still read.
        let second = encode_record(&[Change::Warned]).unwrap();
        for cut in 1..rec.len() {
            let mut tail = rec[..cut].to_vec();
            tail.extend_from_slice(&second);
            let (got, skipped) = parse_tail(&tail, 4);
            assert_eq!(got, vec![vec![Change::Warned]], "cut at {cut}");
            assert_eq!(skipped.len(), usize::from(cut > 1), "cut at {cut}");
        }
        // Zeros (a crash after the size grew but before the data landed) are skipped too.
        let mut tail = vec![0u8; 100];
        tail.extend_from_slice(&second);
        let (got, skipped) = parse_tail(&tail, 4);
        assert_eq!(got, vec![vec![Change::Warned]]);
        assert_eq!(skipped.len(), 1);
        // An index past the recipients invalidates the whole record.
        let (got, skipped) = parse_tail(&rec, 3);
        assert!(got.is_empty());
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn escaping_is_canonical() {
        for s in ["", "plain", "a b", "%", "%41", "é", "x,y=z", "\r\n"] {
            let mut e = String::new();
            escape(s, &mut e);
            assert!(e.bytes().all(is_plain) || e.contains('%'), "{e}");
            assert!(!e.contains([' ', ',', '=', '\n']), "{e}");
            assert_eq!(unescape(&e).as_deref(), Some(s));
        }
        for bad in ["%4", "%zz", "%41", "%2c", "a b", "a,b", "%FF"] {
            assert_eq!(unescape(bad), None, "{bad}");
        }
    }
}
