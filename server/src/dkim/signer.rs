//! DKIM signatures (RFC 6376 §5) with mail-auth's canonicalization and keys, at a time the
//! caller gives.
//!
//! mail-auth's `DkimSigner::sign` takes `t=` from `SystemTime::now()`: inside the
//! simulation that would be the real clock, and a signature's bytes (so the trace) would
//! change from run to run. Its building blocks are public, so this is its `sign_stream`
//! with `now` as a parameter: canonicalize, hash the body, sign the headers plus the
//! signature field with an empty `b=`.

use mail_auth::common::crypto::SigningKey as _;
use mail_auth::common::headers::{HeaderStream, HeaderWriter, Writable, Writer};
use mail_auth::dkim::{Canonicalization, Signature};

use super::keys::{DkimKeyError, SigningKey};
use crate::config::DkimConfig;
use crate::mail::Timestamp;

/// The header fields we sign when the message has them (RFC 6376 §5.4.1's "SHOULD be
/// included" list, cut to what a reader sees or a thread depends on), and any `List-*`
/// field (RFC 2369, RFC 2919). `From:` is signed once more than it occurs (RFC 6376
/// §8.15): a second `From:` added on the way breaks the signature. Fields the message does
/// not have are not listed, so a list that adds `List-Id` later does not break it.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "In-Reply-To",
    "References",
];

/// Every `[[dkim]]` key, loaded.
#[derive(Debug, Default)]
pub struct Signer {
    keys: Vec<SigningKey>,
}

/// One signature made (or not) by one key.
#[derive(Debug)]
pub struct Signed<'a> {
    pub key: &'a SigningKey,
    /// The `DKIM-Signature:` field, folded, with its CRLF; or why signing failed.
    pub header: Result<String, String>,
}

impl Signer {
    /// Loads every key of `config.dkim`; the first that cannot sign is the error, naming it
    /// `dkim[i]`.
    pub fn from_config(dkim: &[DkimConfig]) -> Result<Signer, DkimKeyError> {
        let keys = dkim
            .iter()
            .enumerate()
            .map(|(i, c)| SigningKey::load(i, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Signer { keys })
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Signs `message` (header section and body, CRLF) with every key of its `From:`
    /// domain, in config order (RFC 8463 §3: rsa and ed25519 side by side, so verifiers
    /// that know only one still find one). Empty when there is no `From:` or no key for
    /// its domain.
    pub fn sign(&self, message: &[u8], now: Timestamp) -> Vec<Signed<'_>> {
        let Some(domain) = from_domain(message) else {
            return Vec::new();
        };
        let mut keys = self.keys.iter().filter(|k| k.domain == domain).peekable();
        if keys.peek().is_none() {
            return Vec::new();
        }
        let headers = headers_to_sign(message);
        keys.map(|key| Signed {
            key,
            header: sign_with(key, message, &headers, now.as_secs()),
        })
        .collect()
    }

    /// Signs `message` with every key, whatever its `From:` says: what a remote sender in
    /// the simulation does when its signing domain is the organisation of the author's
    /// subdomain, or a third party (DMARC alignment cases).
    pub fn sign_with_every_key(&self, message: &[u8], now: Timestamp) -> Vec<Signed<'_>> {
        let headers = headers_to_sign(message);
        self.keys
            .iter()
            .map(|key| Signed {
                key,
                header: sign_with(key, message, &headers, now.as_secs()),
            })
            .collect()
    }

    /// The `From:` domain of `message`, lower-case, if it has one we have a key for.
    pub fn signs_for(&self, message: &[u8]) -> Option<String> {
        from_domain(message).filter(|d| self.keys.iter().any(|k| &k.domain == d))
    }
}

/// The domain of the first address of the first `From:` field, lower-case.
fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

/// `h=` for this message: the [`SIGNED_HEADERS`] and `List-*` fields it has, in our
/// spelling, each once, then `From` once more.
fn headers_to_sign(message: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut has_from = false;
    for (name, _) in Fields::new(message) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let name = name.trim();
        let ours = SIGNED_HEADERS
            .iter()
            .find(|h| h.eq_ignore_ascii_case(name))
            .map(|h| h.to_string())
            .or_else(|| {
                (name.len() > 5 && name[..5].eq_ignore_ascii_case("list-"))
                    .then(|| name.to_string())
            });
        if let Some(h) = ours {
            has_from |= h == "From";
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&h)) {
                out.push(h);
            }
        }
    }
    if has_from {
        out.push("From".into());
    }
    out
}

fn sign_with(
    key: &SigningKey,
    message: &[u8],
    headers: &[String],
    now: u64,
) -> Result<String, String> {
    let mut signature = Signature {
        v: 1,
        a: key.key.algorithm(),
        d: key.domain.clone(),
        s: key.selector.clone(),
        h: headers.to_vec(),
        ch: Canonicalization::Relaxed,
        cb: Canonicalization::Relaxed,
        ..Default::default()
    };
    let (_, canonical_headers, signed_headers, canonical_body) =
        signature.canonicalize(Fields::new(message));
    if signed_headers.is_empty() {
        return Err("no header field to sign".into());
    }
    signature.bh = key.key.hash(canonical_body).as_ref().to_vec();
    signature.t = now;
    signature.h = signed_headers;
    signature.b = key
        .key
        .sign(Signable {
            headers: canonical_headers,
            signature: &signature,
        })
        .map_err(|e| e.to_string())?;
    Ok(signature.to_header())
}

/// What the signature covers (RFC 6376 §3.7): the canonical signed header fields, then the
/// `DKIM-Signature` field itself with an empty `b=` and no CRLF.
struct Signable<'a> {
    headers: mail_auth::dkim::canonicalize::CanonicalHeaders<'a>,
    signature: &'a Signature,
}

impl Writable for Signable<'_> {
    fn write(self, writer: &mut impl Writer) {
        self.headers.write(writer);
        self.signature.write(writer, false);
    }
}

/// The header fields of a CRLF message as mail-auth's canonicalization reads them: the name
/// (up to the colon) and the value (after it, folded lines and final CRLF included); then
/// the body, after the empty line. mail-auth's own iterator is crate-private.
struct Fields<'x> {
    message: &'x [u8],
    pos: usize,
    body: usize,
}

impl<'x> Fields<'x> {
    fn new(message: &'x [u8]) -> Self {
        Fields {
            message,
            pos: 0,
            body: message.len(),
        }
    }
}

impl<'x> Iterator for Fields<'x> {
    type Item = (&'x [u8], &'x [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.message.get(self.pos..).unwrap_or_default();
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            self.body =
                (self.pos + usize::from(rest.starts_with(b"\r")) + 1).min(self.message.len());
            self.pos = self.message.len();
            return None;
        }
        let mut end = self.pos;
        loop {
            match memchr::memchr(b'\n', &self.message[end..]) {
                Some(nl) => end += nl + 1,
                None => {
                    end = self.message.len();
                    break;
                }
            }
            if !matches!(self.message.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        let field = &self.message[self.pos..end];
        self.pos = end;
        self.body = self.message.len();
        Some(match memchr::memchr(b':', field) {
            Some(colon) => (&field[..colon], &field[colon + 1..]),
            None => (field, &[][..]),
        })
    }
}

impl<'x> HeaderStream<'x> for Fields<'x> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        self.next()
    }

    fn body(&mut self) -> &'x [u8] {
        // Past every field first, if the caller stopped early.
        while self.pos < self.message.len() && self.next().is_some() {}
        &self.message[self.body.min(self.message.len())..]
    }
}
