//! [`Submission`]: what the server does to mail an authenticated client submits before it
//! is stored or queued.

use std::sync::Arc;

use super::Signer;
use crate::config::DkimAlgorithm;
use crate::env::Env;
use crate::mail::header::header_section;
use crate::mail::{Deliver, DeliveryError, Envelope, Message};
use crate::mime::{content_class, downgrade, ContentClass};

/// A [`Deliver`] around the server's sink. For submitted mail (`envelope.authenticated`
/// is some) it adds what RFC 6409 §8.3 and §8.4 let a submission server add when missing,
/// `Message-ID: <id@hostname>` (the id from the Env's RNG) and `Date:` (the Env's clock),
/// then DKIM-signs with every key of the `From:` domain. The signatures go above the
/// message's own header fields but below our `Received:` (which the session put first and
/// which is not signed: it is trace, and the next hop adds its own above it). Mail from an
/// MX peer passes through byte for byte.
#[derive(Clone)]
pub struct Submission<E, D> {
    env: E,
    signer: Arc<Signer>,
    hostname: Arc<str>,
    inner: D,
}

impl<E: Env, D: Deliver> Submission<E, D> {
    pub fn new(env: E, signer: Arc<Signer>, hostname: &str, inner: D) -> Self {
        Submission {
            env,
            signer,
            hostname: hostname.into(),
            inner,
        }
    }

    /// The submitted `message` completed and signed (see the type's docs).
    pub fn complete(&self, message: &[u8]) -> Vec<u8> {
        let (received, own) = split_received(message);
        let now = self.env.now();
        let fields = header_section(own);
        let mut content = Vec::with_capacity(own.len() + 256);
        if !has_field(fields, b"message-id") {
            let id = format!(
                "Message-ID: <{}.{:016x}@{}>\r\n",
                now.as_secs(),
                self.env.random_u64(),
                self.hostname
            );
            content.extend_from_slice(id.as_bytes());
        }
        if !has_field(fields, b"date") {
            let date = format!("Date: {}\r\n", crate::mail::date::rfc5322(now));
            content.extend_from_slice(date.as_bytes());
        }
        content.extend_from_slice(own);
        let content = self.seven_bit_for_signing(content);
        let mut out = Vec::with_capacity(content.len() + 1024);
        out.extend_from_slice(received);
        let signed = self.signer.sign(&content, now);
        if signed.is_empty() {
            self.env.trace(
                "dkim",
                format_args!("not signed: no key for the From: domain"),
            );
        }
        for s in signed {
            let (d, sel) = (&s.key.domain, &s.key.selector);
            let a = match s.key.algorithm {
                DkimAlgorithm::RsaSha256 => "rsa-sha256",
                DkimAlgorithm::Ed25519Sha256 => "ed25519-sha256",
            };
            match s.header {
                Ok(h) => {
                    self.env
                        .trace("dkim", format_args!("signed d={d} s={sel} a={a}"));
                    out.extend_from_slice(h.as_bytes());
                }
                // A key that fails to sign must not lose the mail: it goes unsigned by
                // that key, and the operator hears of it.
                Err(e) => self
                    .env
                    .warn("dkim", format_args!("signing d={d} s={sel} failed: {e}")),
            }
        }
        out.extend_from_slice(&content);
        out
    }
}

impl<E: Env, D: Deliver> Submission<E, D> {
    /// RFC 6376 §5.3: a signer SHOULD convert a message to a 7-bit transfer encoding before
    /// signing, because a relay to a peer without 8BITMIME converts it (RFC 6152 §3, our
    /// own outbound client among them, `queue::client::prepare`) and the body hash then
    /// fails. So a submitted 8-bit or binary message that is about to be signed has its
    /// parts re-encoded (quoted-printable or base64, `mime::downgrade`) first; it then
    /// goes everywhere, local mailboxes included, in the form that was signed. A message
    /// we will not sign is left as it came.
    fn seven_bit_for_signing(&self, content: Vec<u8>) -> Vec<u8> {
        if content_class(&content) == ContentClass::SevenBit
            || self.signer.signs_for(&content).is_none()
        {
            return content;
        }
        match downgrade(&content, false) {
            Some(d) => {
                self.env.trace(
                    "dkim",
                    format_args!(
                        "converted to 7-bit before signing (RFC 6376 §5.3): {} part(s) quoted-printable, {} base64",
                        d.quoted_printable, d.base64
                    ),
                );
                for note in &d.notes {
                    self.env.trace("dkim", format_args!("{note}"));
                }
                d.message
            }
            None => content,
        }
    }
}

impl<E: Env, D: Deliver> Deliver for Submission<E, D> {
    /// A spooled submission is read back whole: the body hash covers every octet and the
    /// signer (mail-auth) wants them in one slice. That costs memory only for
    /// authenticated clients (bounded by their sessions × `limits.message_size`); MX mail
    /// stays spooled.
    async fn deliver(
        &self,
        envelope: &Envelope,
        message: &Message,
    ) -> Result<String, DeliveryError> {
        if envelope.authenticated.is_none() {
            return self.inner.deliver(envelope, message).await;
        }
        let completed = match message.as_bytes() {
            Some(bytes) => self.complete(bytes),
            None => {
                let bytes = crate::env::read_message(&self.env, message)
                    .await
                    .map_err(|e| DeliveryError::from_io(&e))?;
                self.complete(&bytes)
            }
        };
        self.inner
            .deliver(envelope, &Message::inline(completed))
            .await
    }
}

/// Our `Received:` field (the first field, with its folded lines) and the rest. A message
/// that does not start with one (made by hand, in a test) is all rest.
fn split_received(message: &[u8]) -> (&[u8], &[u8]) {
    if message.len() < 9 || !message[..9].eq_ignore_ascii_case(b"received:") {
        return (&[], message);
    }
    let mut end = 0;
    loop {
        match memchr::memchr(b'\n', &message[end..]) {
            Some(nl) => end += nl + 1,
            None => return (message, &[]),
        }
        if !matches!(message.get(end), Some(b' ' | b'\t')) {
            return message.split_at(end);
        }
    }
}

/// The header section has a field called `name` (lower-case).
fn has_field(fields: &[u8], name: &[u8]) -> bool {
    fields.split(|&b| b == b'\n').any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()..].trim_ascii_start().first() == Some(&b':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_is_split_with_its_folded_lines() {
        let m = b"Received: from a\r\n\tby b; date\r\nFrom: x\r\n\r\nbody";
        let (r, rest) = split_received(m);
        assert_eq!(r, b"Received: from a\r\n\tby b; date\r\n");
        assert_eq!(rest, b"From: x\r\n\r\nbody");
        assert_eq!(split_received(b"From: x\r\n\r\n").0, b"");
    }

    #[test]
    fn field_names_match_whole_names_only() {
        let f = b"Message-IDs: no\r\nDATE : yes\r\n";
        assert!(!has_field(f, b"message-id"));
        assert!(has_field(f, b"date"));
        assert!(!has_field(b"X-Date: 1\r\n", b"date"));
    }
}
