//! DKIM verification by the world's remote MTAs (RFC 6376 §6), with mail-auth, every key
//! taken from the world's DNS.
//!
//! mail-auth's verifier asks its resolver caches first (`Parameters::with_txt_cache`) and
//! only on a miss its `TokioResolver`, which would use the real network. So before
//! verifying, the remote resolves each signature's `SELECTOR._domainkey.DOMAIN` TXT record
//! over the simulated network from the world's DNS host (faults, latency and the DNS trace
//! included, as for any other host) and fills the cache with the answers; the cache answers
//! every other name with a temporary error, so the real resolver (built with no name
//! servers anyway) is never reached.
//!
//! mail-auth compares a signature's `x=` (expiry) with `SystemTime::now()`; our server
//! never sets `x=`, so no verdict here depends on the real clock.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::ResolverConfig;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
use mail_auth::{ResolverCache, Txt};
use mailsim_server::env::{DnsError, Record, RecordKind};

use crate::clock::SimClock;

/// How long a remote waits for one DNS answer.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// What a remote concluded about one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `pass` if any signature verified, else the first signature's result (`fail`,
    /// `neutral`, `permerror`, `temperror`; RFC 8601 §2.7.1's names), `none` if unsigned.
    pub result: String,
    /// One `d=... s=... result` per signature, for the trace.
    pub signatures: Vec<String>,
}

/// Verifies every DKIM signature of `message`, resolving keys through the DNS host at
/// `dns` (none: every key lookup is a temporary error).
pub async fn verify(message: &[u8], dns: Option<SocketAddr>, clock: &SimClock) -> Verdict {
    let none = || Verdict {
        result: "none".into(),
        signatures: Vec::new(),
    };
    let Some(parsed) = AuthenticatedMessage::parse(message) else {
        return none();
    };
    if parsed.dkim_headers.is_empty() && !parsed.has_dkim_errors {
        return none();
    }
    let cache = Zone::default();
    for h in &parsed.dkim_headers {
        let name = format!("{}._domainkey.{}", h.header.s, h.header.d).to_ascii_lowercase();
        if cache.has(&name) {
            continue;
        }
        let answer = match dns {
            Some(server) => {
                let deadline = clock.now().plus(DNS_TIMEOUT);
                let c = clock.clone();
                crate::dns::client::query(server, &name, RecordKind::Txt, 1, async move {
                    c.sleep_until(deadline).await
                })
                .await
            }
            None => Err(DnsError::Temporary("no DNS in this world".into())),
        };
        cache.put(&name, txt_of(answer));
    }
    let Ok(authenticator) = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![]),
        Default::default(),
    ) else {
        return none();
    };
    let outputs = authenticator
        .verify_dkim(Parameters::new(&parsed).with_txt_cache(&cache))
        .await;
    let mut signatures = Vec::new();
    let mut results = Vec::new();
    for o in &outputs {
        let name = mailsim_server::policy::auth::dkim_name(o.result());
        let detail = match o.result() {
            DkimResult::Pass | DkimResult::None => String::new(),
            DkimResult::Fail(e)
            | DkimResult::Neutral(e)
            | DkimResult::PermError(e)
            | DkimResult::TempError(e) => format!(" ({e})"),
        };
        let who = o
            .signature()
            .map(|s| format!("d={} s={} ", s.d, s.s))
            .unwrap_or_default();
        signatures.push(format!("{who}{name}{detail}"));
        results.push(name);
    }
    let result = if results.contains(&"pass") {
        "pass"
    } else {
        results.first().copied().unwrap_or("none")
    };
    Verdict {
        result: result.into(),
        signatures,
    }
}

/// A TXT answer as mail-auth caches it: the first record that parses as a DKIM key, or the
/// DNS error the verifier would have seen from its own resolver.
fn txt_of(answer: Result<Vec<Record>, DnsError>) -> Txt {
    let not_found = |code| {
        Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(
            code,
        )))
    };
    match answer {
        Ok(records) => {
            let mut out = not_found(ResponseCode::NoError);
            for r in records {
                if let Record::Txt(text) = r {
                    out = DomainKey::parse(text.as_bytes()).into();
                    if matches!(out, Txt::DomainKey(_)) {
                        break;
                    }
                }
            }
            out
        }
        Err(DnsError::NxDomain) => not_found(ResponseCode::NXDomain),
        Err(DnsError::NoRecords) => not_found(ResponseCode::NoError),
        Err(DnsError::Temporary(why)) => {
            Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(why)))
        }
    }
}

/// The TXT answers fetched for one message, as mail-auth's cache (fully qualified,
/// lower-case names, as mail-auth asks for them). Never misses: an unknown name is a
/// temporary error, so mail-auth's own resolver is never asked.
#[derive(Default)]
struct Zone(Mutex<BTreeMap<Box<str>, Txt>>);

impl Zone {
    fn has(&self, name: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .contains_key(format!("{name}.").as_str())
    }

    fn put(&self, name: &str, txt: Txt) {
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
        Some(
            zone.iter()
                .find(|(k, _)| (*k).borrow() == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| {
                    Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
                        "not looked up in the world's DNS".into(),
                    )))
                }),
        )
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    // mail-auth stores what its own resolver found; ours never runs.
    fn insert(&self, _: Box<str>, _: Txt, _: Instant) {}
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use mailsim_server::config::{DkimAlgorithm, DkimConfig};
    use mailsim_server::dkim::Signer;
    use mailsim_server::env::Timestamp;

    use super::*;
    use crate::dns::zone::ZoneSpec;
    use crate::trace::Trace;

    const RSA: &str = include_str!("../../scenarios/submission/keys/rsa2048.pem");
    const ED25519: &str = include_str!("../../scenarios/submission/keys/ed25519.pem");
    const OTHER: &str = include_str!("../../scenarios/submission/keys/rsa2048-other.pem");

    fn signer(keys: &[(&str, DkimAlgorithm, &str)]) -> Signer {
        let config: Vec<DkimConfig> = keys
            .iter()
            .map(|(selector, algorithm, pem)| DkimConfig {
                domain: "example.org".into(),
                selector: selector.to_string(),
                algorithm: *algorithm,
                key: None,
                key_pem: Some(pem.to_string()),
            })
            .collect();
        Signer::from_config(&config).unwrap()
    }

    /// Verifies each message on a client host of a world whose DNS publishes `published`'s
    /// keys (plus `extra` record lines in example.org); the verdicts and the trace.
    fn verdicts(
        published: &Signer,
        extra: &[&str],
        messages: Vec<Vec<u8>>,
    ) -> (Vec<Verdict>, String) {
        let mut zones = BTreeMap::from([(
            "example.org".to_string(),
            ZoneSpec {
                records: extra.iter().map(|s| s.to_string()).collect(),
            },
        )]);
        let records: Vec<(String, String, String)> = published
            .keys()
            .iter()
            .map(|k| (k.dns_name(), k.dns_record(), k.domain.clone()))
            .collect();
        crate::dns::dkim::publish(&mut zones, &records);
        let zones = crate::dns::build_zones(&zones).unwrap();
        let mut sim = turmoil::Builder::new().rng_seed(7).build();
        let clock = SimClock::new(Timestamp::from_secs(1_767_225_600));
        let trace = Trace::new(clock.clone());
        let (c, t) = (clock.clone(), trace.clone());
        sim.host("10.0.0.53", move || {
            crate::dns::serve(
                zones.clone(),
                Vec::new(),
                c.clone(),
                t.clone(),
                "dns".into(),
            )
        });
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        sim.client("10.0.0.1", async move {
            let dns = SocketAddr::from(([10, 0, 0, 53], 53));
            for m in messages {
                let v = verify(&m, Some(dns), &clock).await;
                o.lock().unwrap().push(v);
            }
            Ok(())
        });
        sim.run().unwrap();
        let v = out.lock().unwrap().clone();
        (v, trace.to_text())
    }

    fn signed(signer: &Signer) -> Vec<u8> {
        let body = b"From: alice@example.org\r\nTo: bob@other.net\r\nSubject: hi\r\n\r\nHello\r\n";
        let mut out = Vec::new();
        for s in signer.sign(body, Timestamp::from_secs(1_767_225_600)) {
            out.extend_from_slice(s.header.unwrap().as_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn remotes_verify_with_the_worlds_zones() {
        let both = signer(&[
            ("rsa1", DkimAlgorithm::RsaSha256, RSA),
            ("ed1", DkimAlgorithm::Ed25519Sha256, ED25519),
        ]);
        let unsigned = b"From: a@example.org\r\n\r\nx\r\n".to_vec();
        let (v, trace) = verdicts(&both, &[], vec![signed(&both), unsigned]);
        assert_eq!(v[0].result, "pass");
        assert_eq!(
            v[0].signatures,
            ["d=example.org s=rsa1 pass", "d=example.org s=ed1 pass"]
        );
        assert_eq!(v[1].result, "none");
        assert!(v[1].signatures.is_empty());
        // The keys came over the simulated network, from the DNS host.
        assert!(trace.contains("rsa1._domainkey.example.org"), "{trace}");
    }

    #[test]
    fn a_wrong_or_missing_key_does_not_pass() {
        let rsa = signer(&[("rsa1", DkimAlgorithm::RsaSha256, RSA)]);
        let other = signer(&[("rsa1", DkimAlgorithm::RsaSha256, OTHER)]);
        // The scenario publishes another key at the selector: ours is not added over it.
        let wrong = format!("rsa1._domainkey TXT \"{}\"", other.keys()[0].dns_record());
        let (v, _) = verdicts(&rsa, &[&wrong], vec![signed(&rsa)]);
        assert_eq!(v[0].result, "fail", "{v:?}");
        // Nothing published for that selector: a permanent error.
        let (v, _) = verdicts(&signer(&[]), &[], vec![signed(&rsa)]);
        assert_eq!(v[0].result, "permerror", "{v:?}");
    }
}
