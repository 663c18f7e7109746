//! Signed messages verify with mail-auth's verifier against the published key (both
//! algorithms); submitted mail is completed; MX mail is not touched.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::ResolverConfig;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
use mail_auth::{ResolverCache, Txt};

use super::*;
use crate::config::{DkimAlgorithm, DkimConfig};
use crate::env::fake::FakeEnv;
use crate::env::Env as _;
use crate::mail::{Deliver, DeliveryError, Envelope, Message, Timestamp};

const RSA: &str = include_str!("testdata/rsa2048.pem");
const RSA_OTHER: &str = include_str!("testdata/rsa2048-other.pem");
const ED25519: &str = include_str!("testdata/ed25519.pem");

fn entry(domain: &str, selector: &str, algorithm: DkimAlgorithm, pem: &str) -> DkimConfig {
    DkimConfig {
        domain: domain.into(),
        selector: selector.into(),
        algorithm,
        key: None,
        key_pem: Some(pem.into()),
    }
}

fn both_keys() -> Signer {
    Signer::from_config(&[
        entry("example.org", "rsa1", DkimAlgorithm::RsaSha256, RSA),
        entry("example.org", "ed1", DkimAlgorithm::Ed25519Sha256, ED25519),
        entry("other.net", "x", DkimAlgorithm::RsaSha256, RSA_OTHER),
    ])
    .unwrap()
}

/// TXT answers from a map, as the simulation's zones answer; a name it lacks is NXDOMAIN.
#[derive(Default)]
struct Zone(Mutex<BTreeMap<Box<str>, Txt>>);

impl Zone {
    fn publish(&self, name: &str, record: &str) {
        let txt: Txt = DomainKey::parse(record.as_bytes()).into();
        self.0
            .lock()
            .unwrap()
            .insert(format!("{name}.").into_boxed_str(), txt);
    }
}

impl ResolverCache<Box<str>, Txt> for Zone {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let zone = self.0.lock().unwrap();
        let found = zone.iter().find(|(k, _)| (*k).borrow() == name);
        Some(match found {
            Some((_, v)) => v.clone(),
            None => Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(
                mail_auth::hickory_resolver::proto::op::ResponseCode::NXDomain,
            ))),
        })
    }
    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: Txt, _: Instant) {}
}

/// Every DKIM result of `message`, with `zone` as the whole DNS.
fn verify(message: &[u8], zone: &Zone) -> Vec<DkimResult> {
    let auth = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![]),
        Default::default(),
    )
    .unwrap();
    let parsed = AuthenticatedMessage::parse(message).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(auth.verify_dkim(Parameters::new(&parsed).with_txt_cache(zone)))
        .into_iter()
        .map(|o| o.result().clone())
        .collect()
}

fn published(signer: &Signer) -> Zone {
    let zone = Zone::default();
    for k in signer.keys() {
        zone.publish(&k.dns_name(), &k.dns_record());
    }
    zone
}

const MESSAGE: &[u8] = b"From: Alice <alice@Example.ORG>\r\nTo: bob@other.net\r\n\
Subject: Hello   there\r\nX-Unsigned: 1\r\n\r\nHi Bob,\r\n\r\n\r\n";

#[test]
fn rsa_and_ed25519_signatures_verify_against_the_published_keys() {
    let signer = both_keys();
    let signed = signer.sign(MESSAGE, Timestamp::from_secs(1_767_225_600));
    assert_eq!(signed.len(), 2, "both keys of example.org, not other.net's");
    let mut message = Vec::new();
    for s in &signed {
        message.extend_from_slice(s.header.as_ref().unwrap().as_bytes());
    }
    let first = signed[0].header.as_ref().unwrap();
    assert!(
        first.starts_with(
            "DKIM-Signature: v=1; a=rsa-sha256; s=rsa1; d=example.org; c=relaxed/relaxed;"
        ),
        "{first}"
    );
    assert!(first.contains("t=1767225600"), "{first}");
    assert!(
        first.contains("h=Subject:To:From:From"),
        "From oversigned: {first}"
    );
    assert!(signed[1]
        .header
        .as_ref()
        .unwrap()
        .contains("a=ed25519-sha256"));
    message.extend_from_slice(MESSAGE);
    assert_eq!(
        verify(&message, &published(&signer)),
        vec![DkimResult::Pass, DkimResult::Pass]
    );

    // Relaxed/relaxed: refolding a header and trailing blank lines do not matter...
    let refolded = String::from_utf8(message.clone())
        .unwrap()
        .replace("Subject: Hello   there", "Subject: Hello\r\n there")
        .replace("Hi Bob,\r\n\r\n\r\n", "Hi Bob,\r\n");
    assert_eq!(
        verify(refolded.as_bytes(), &published(&signer)),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
    // ...an unsigned header does not; a changed body or signed header fails.
    let unsigned = String::from_utf8(message.clone())
        .unwrap()
        .replace("X-Unsigned: 1", "X-Unsigned: 2");
    assert_eq!(
        verify(unsigned.as_bytes(), &published(&signer)),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
    let tampered = String::from_utf8(message.clone())
        .unwrap()
        .replace("To: bob@", "To: eve@");
    assert!(verify(tampered.as_bytes(), &published(&signer))
        .iter()
        .all(|r| matches!(r, DkimResult::Fail(_))));
    // A second From: added below fails too (the oversigned From).
    let mut added = message.clone();
    let at = memchr::memmem::find(&added, b"To: bob").unwrap();
    added.splice(at..at, b"From: mallory@example.org\r\n".iter().copied());
    assert!(verify(&added, &published(&signer))
        .iter()
        .all(|r| !matches!(r, DkimResult::Pass)));
}

#[test]
fn a_wrong_published_key_fails() {
    let signer = both_keys();
    let mut message = Vec::new();
    for s in signer.sign(MESSAGE, Timestamp::from_secs(5)) {
        message.extend_from_slice(s.header.unwrap().as_bytes());
    }
    message.extend_from_slice(MESSAGE);
    let zone = published(&signer);
    let other = &signer.keys()[2];
    zone.publish("rsa1._domainkey.example.org", &other.dns_record());
    let results = verify(&message, &zone);
    assert!(matches!(results[0], DkimResult::Fail(_)), "{results:?}");
    assert_eq!(results[1], DkimResult::Pass);
    // No record at all: a permanent error, not a pass.
    let results = verify(&message, &Zone::default());
    assert!(results
        .iter()
        .all(|r| matches!(r, DkimResult::PermError(_))));
}

#[test]
fn no_from_or_no_key_for_its_domain_means_no_signature() {
    let signer = both_keys();
    assert!(signer
        .sign(b"To: a@b\r\n\r\nx\r\n", Timestamp::default())
        .is_empty());
    assert!(signer
        .sign(b"From: a@elsewhere.com\r\n\r\nx\r\n", Timestamp::default())
        .is_empty());
    assert_eq!(signer.signs_for(MESSAGE).as_deref(), Some("example.org"));
}

#[test]
fn bad_keys_are_config_errors_naming_the_entry() {
    let cases = [
        (
            entry("example.org", "s", DkimAlgorithm::RsaSha256, ED25519),
            "not a usable RSA",
        ),
        (
            entry("example.org", "s", DkimAlgorithm::Ed25519Sha256, RSA),
            "not an Ed25519",
        ),
        (
            entry("example.org", "s", DkimAlgorithm::RsaSha256, "garbage"),
            "not a PEM",
        ),
        (
            entry("exa mple.org", "s", DkimAlgorithm::RsaSha256, RSA),
            "domain",
        ),
        (
            entry("example.org", "", DkimAlgorithm::RsaSha256, RSA),
            "selector",
        ),
    ];
    for (bad, want) in cases {
        let err = Signer::from_config(&[
            entry("example.org", "ok", DkimAlgorithm::Ed25519Sha256, ED25519),
            bad,
        ])
        .unwrap_err();
        assert_eq!(err.index, 1);
        let text = err.to_string();
        assert!(text.starts_with("dkim[1] ("), "{text}");
        assert!(text.contains(want), "{text}");
    }
    let mut no_key = entry("example.org", "s", DkimAlgorithm::RsaSha256, RSA);
    no_key.key_pem = None;
    assert!(Signer::from_config(&[no_key])
        .unwrap_err()
        .to_string()
        .contains("no key"));
}

#[test]
fn records_name_the_selector_and_key_type() {
    let signer = both_keys();
    let rsa = &signer.keys()[0];
    assert_eq!(rsa.dns_name(), "rsa1._domainkey.example.org");
    // SubjectPublicKeyInfo of a 2048-bit key: `MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A...`, as
    // `openssl rsa -pubout` prints it.
    assert!(rsa
        .dns_record()
        .starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"));
    let ed = &signer.keys()[1];
    assert!(ed.dns_record().starts_with("v=DKIM1; k=ed25519; p="));
    assert_eq!(ed.dns_record().len(), "v=DKIM1; k=ed25519; p=".len() + 44);
}

/// Records what reached it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl Deliver for Recorder {
    async fn deliver(&self, _: &Envelope, message: &Message) -> Result<String, DeliveryError> {
        self.0
            .lock()
            .unwrap()
            .push(message.as_bytes().unwrap().to_vec());
        Ok("id".into())
    }
}

fn envelope(authenticated: Option<&str>) -> Envelope {
    Envelope {
        helo: "client".into(),
        mail_from: None,
        recipients: Vec::new(),
        received_at: Timestamp::from_secs(1_767_225_600),
        authenticated: authenticated.map(str::to_string),
        ..Default::default()
    }
}

const RECEIVED: &[u8] = b"Received: from client ([192.0.2.9]) by mx.example.org with ESMTPSA;\r\n\tThu, 01 Jan 2026 00:00:00 +0000\r\n";

fn submit(authenticated: Option<&str>, own: &[u8]) -> (Vec<u8>, Vec<String>) {
    let env = FakeEnv::new();
    env.set_now(Timestamp::from_secs(1_767_225_600));
    let sink = Recorder::default();
    let sub = Submission::new(
        env.clone(),
        Arc::new(both_keys()),
        "mx.example.org",
        sink.clone(),
    );
    let mut message = RECEIVED.to_vec();
    message.extend_from_slice(own);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(sub.deliver(&envelope(authenticated), &Message::inline(message)))
        .unwrap();
    let out = sink.0.lock().unwrap().pop().unwrap();
    (out, env.traced())
}

#[test]
fn submitted_mail_gets_message_id_date_and_signatures_below_our_received() {
    let (out, traced) = submit(Some("alice@example.org"), MESSAGE);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.starts_with(std::str::from_utf8(RECEIVED).unwrap()),
        "{text}"
    );
    let rest = &text[RECEIVED.len()..];
    let lines: Vec<&str> = rest
        .split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .collect();
    assert!(
        lines[0].starts_with("DKIM-Signature: v=1; a=rsa-sha256"),
        "{rest}"
    );
    assert!(
        lines[1].starts_with("DKIM-Signature: v=1; a=ed25519-sha256"),
        "{rest}"
    );
    assert!(lines[2].starts_with("Message-ID: <1767225600."), "{rest}");
    assert!(lines[2].ends_with("@mx.example.org>"), "{rest}");
    assert_eq!(lines[3], "Date: Thu, 01 Jan 2026 00:00:00 +0000");
    assert!(rest.ends_with(std::str::from_utf8(MESSAGE).unwrap()));
    // The Message-ID and Date we added are signed (each signature's h= names them).
    let unfolded = rest.replace("\r\n\t", " ").replace("\r\n ", " ");
    for sig in unfolded
        .lines()
        .filter(|l| l.starts_with("DKIM-Signature:"))
    {
        let h = sig
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .replace(' ', "");
        // Bottom-up, as mail-auth lists them (RFC 6376 §5.4.2), then the extra From.
        assert_eq!(h, "Subject:To:From:Date:Message-ID:From", "{sig}");
    }
    assert_eq!(
        verify(&out, &published(&both_keys())),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
    assert!(
        traced
            .iter()
            .any(|t| t.contains("signed d=example.org s=ed1")),
        "{traced:?}"
    );
}

#[test]
fn message_id_and_date_are_kept_when_present() {
    let own = b"Date: Mon, 5 Jan 2026 10:00:00 +0100\r\nMessage-Id: <mine@client>\r\n\
From: alice@example.org\r\n\r\nbody\r\n";
    let (out, _) = submit(Some("alice@example.org"), own);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(
        text.matches("Message-I").count(),
        1 + 2,
        "one field, named in two h=: {text}"
    );
    assert_eq!(text.matches("\nDate:").count(), 1, "{text}");
    assert!(text.contains("Message-Id: <mine@client>"));
    assert_eq!(
        verify(&out, &published(&both_keys())),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
}

#[test]
fn mx_mail_passes_through_untouched() {
    let (out, traced) = submit(None, MESSAGE);
    let mut want = RECEIVED.to_vec();
    want.extend_from_slice(MESSAGE);
    assert_eq!(out, want);
    assert!(traced.iter().all(|t| !t.contains("dkim")), "{traced:?}");
}

#[test]
fn submitted_mail_of_a_domain_without_a_key_is_completed_not_signed() {
    let (out, traced) = submit(
        Some("carol@example.com"),
        b"From: carol@example.com\r\n\r\nhi\r\n",
    );
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("DKIM-Signature"));
    assert!(text.contains("\r\nMessage-ID: <") && text.contains("\r\nDate: "));
    assert!(
        traced.iter().any(|t| t.contains("not signed")),
        "{traced:?}"
    );
}

/// A spooled submission is read back whole and signed like an inline one: the signed
/// output is the same octets as for the same message in memory.
#[test]
fn a_spooled_submission_is_signed_like_an_inline_one() {
    let (inline, _) = submit(Some("alice@example.org"), MESSAGE);
    let env = FakeEnv::new();
    env.set_now(Timestamp::from_secs(1_767_225_600));
    let sink = Recorder::default();
    let sub = Submission::new(
        env.clone(),
        Arc::new(both_keys()),
        "mx.example.org",
        sink.clone(),
    );
    // The head is our Received: and the first 10 octets of the content; the rest spooled.
    let (own_head, own_rest) = MESSAGE.split_at(10);
    let mut head = RECEIVED.to_vec();
    head.extend_from_slice(own_head);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(env.write(std::path::Path::new("spool-1"), own_rest))
        .unwrap();
    let message = Message::spooled(
        head,
        crate::mail::Spooled {
            path: "spool-1".into(),
            len: own_rest.len() as u64,
            crc: 0,
        },
    );
    rt.block_on(sub.deliver(&envelope(Some("alice@example.org")), &message))
        .unwrap();
    let out = sink.0.lock().unwrap().pop().unwrap();
    assert!(out == inline, "{}", String::from_utf8_lossy(&out));
}

/// RFC 6376 §5.3: an 8-bit submission is made 7-bit before it is signed, so a relay to a
/// peer without 8BITMIME (which must convert it, RFC 6152 §3) no longer changes what the
/// body hash covers: the signed message is already what such a peer gets.
#[test]
fn an_8bit_submission_is_made_7bit_before_signing_and_survives_a_7bit_peer() {
    let own = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n"
        .as_bytes();
    let (out, traced) = submit(Some("alice@example.org"), own);
    assert_eq!(
        crate::mime::content_class(&out),
        crate::mime::ContentClass::SevenBit,
        "{}",
        String::from_utf8_lossy(&out)
    );
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.contains("Content-Transfer-Encoding: quoted-printable\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n"),
        "{text}"
    );
    assert!(
        traced
            .iter()
            .any(|t| t.contains("converted to 7-bit before signing")),
        "{traced:?}"
    );
    let zone = published(&both_keys());
    assert_eq!(
        verify(&out, &zone),
        vec![DkimResult::Pass, DkimResult::Pass]
    );
    // What a peer without 8BITMIME would be sent is the signed message itself.
    assert_eq!(crate::mime::downgrade(&out, false), None);
}

/// Without a key for the From: domain nothing is signed, so nothing is converted either.
#[test]
fn an_8bit_submission_without_a_key_is_left_8bit() {
    let own = "From: carol@example.com\r\nSubject: hi\r\n\r\nGrüße\r\n".as_bytes();
    let (out, _) = submit(Some("carol@example.com"), own);
    assert!(out.ends_with("\r\n\r\nGrüße\r\n".as_bytes()));
}
