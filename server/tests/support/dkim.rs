//! Verifies a relayed message's DKIM signatures with mail-auth, the key being the public
//! part of the configured one (as its selector record would publish it): the check a
//! receiving MTA makes (RFC 6376 §6), without any real DNS.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::Instant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::ResolverConfig;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
use mail_auth::{ResolverCache, Txt};
use mailsim_server::config::{DkimAlgorithm, DkimConfig};
use mailsim_server::dkim::SigningKey;

/// One `d=... s=... result` per signature of `message`, verified against `pem`'s public
/// key published at `selector._domainkey.example.org`.
pub fn verify(message: &[u8], selector: &str, pem: &str) -> Vec<String> {
    let key = SigningKey::load(
        0,
        &DkimConfig {
            domain: "example.org".into(),
            selector: selector.into(),
            algorithm: DkimAlgorithm::RsaSha256,
            key: None,
            key_pem: Some(pem.into()),
        },
    )
    .unwrap();
    let zone = OneKey {
        name: format!("{}.", key.dns_name()),
        txt: DomainKey::parse(key.dns_record().as_bytes()).into(),
    };
    let parsed = AuthenticatedMessage::parse(message).expect("a parsable message");
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![]),
        Default::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outputs =
        rt.block_on(authenticator.verify_dkim(Parameters::new(&parsed).with_txt_cache(&zone)));
    outputs
        .iter()
        .map(|o| {
            let who = o
                .signature()
                .map(|s| format!("d={} s={} ", s.d, s.s))
                .unwrap_or_default();
            let result = match o.result() {
                DkimResult::Pass => "pass".to_string(),
                other => format!("{other:?}"),
            };
            format!("{who}{result}")
        })
        .collect()
}

/// A resolver cache holding one TXT record; every other name is a temporary error, so
/// mail-auth's own resolver (built with no name servers) is never asked.
struct OneKey {
    name: String,
    txt: Txt,
}

impl ResolverCache<Box<str>, Txt> for OneKey {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let ours: Box<str> = self.name.clone().into_boxed_str();
        Some(if ours.borrow() == name {
            self.txt.clone()
        } else {
            Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
                "not the test's key".into(),
            )))
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
