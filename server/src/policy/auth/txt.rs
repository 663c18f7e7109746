//! DKIM keys and DMARC records for mail-auth, fetched through the [`Env`] resolver.
//!
//! mail-auth's DKIM and DMARC verifiers look every TXT record up in a cache first
//! (`Parameters::with_txt_cache`) and only on a miss in their own hickory resolver, which
//! would use the real network (DESIGN.md, "mail-auth in the simulation"). [`TxtAnswers`] is
//! such a cache that never misses: a name it has not fetched yet answers with a temporary
//! error and is written down. [`TxtAnswers::fetch_missing`] then fetches those names
//! through the Env (the world's DNS host in the simulation, with its faults, latency and
//! trace), and the verification runs again, until a run asks for nothing new. The names a
//! verifier needs depend on earlier answers (DMARC's tree walk, RFC 9989 §4.10, goes label
//! by label), so they cannot all be known up front; a handful of rounds is the price, each a
//! few microseconds of parsing next to a DNS round trip.
//!
//! Only TXT lookups go through here: DKIM and DMARC need nothing else, except DMARC's
//! RFC 8020 existence check for `np=`, which falls to mail-auth's resolver. That resolver is
//! built with no name servers, so the check fails at once without leaving the process, and
//! mail-auth then applies `sp=` — the RFC 7489 behaviour, `np=` being a DMARCbis addition.
//!
//! **How a miss learns its name.** `ResolverCache::get` is generic over the borrowed key
//! type (`Q` with `Box<str>: Borrow<Q>`), so the cache cannot read the name as a `&str`.
//! It can hash it: `str`'s `Hash` writes the name's bytes (then a 0xff terminator byte), so
//! a hasher that keeps what it is given recovers the name exactly.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{ResolverCache, Txt};

use crate::env::{DnsError, Env, Record, RecordKind};

/// TXT answers by name (lower case, no final dot), as the Env resolver gave them.
#[derive(Default)]
pub struct TxtAnswers {
    answers: Mutex<BTreeMap<String, Result<Vec<String>, DnsError>>>,
    missing: Mutex<BTreeSet<String>>,
}

impl TxtAnswers {
    /// Fetches every name a verification asked for and did not find; false when there was
    /// none (the last run saw every answer it needed).
    pub async fn fetch_missing<E: Env>(&self, env: &E) -> bool {
        let missing = std::mem::take(&mut *self.missing.lock().unwrap());
        if missing.is_empty() {
            return false;
        }
        for name in missing {
            let answer = env.lookup(&name, RecordKind::Txt).await.map(|records| {
                records
                    .into_iter()
                    .filter_map(|r| match r {
                        Record::Txt(t) => Some(t),
                        _ => None,
                    })
                    .collect()
            });
            self.answers.lock().unwrap().insert(name, answer);
        }
        true
    }

    /// The raw TXT strings at `name`, if fetched and found.
    pub fn raw(&self, name: &str) -> Option<Vec<String>> {
        match self.answers.lock().unwrap().get(name) {
            Some(Ok(texts)) => Some(texts.clone()),
            _ => None,
        }
    }
}

/// A hasher that keeps the bytes it is fed: what `str::hash` writes is the string itself.
#[derive(Default)]
struct NameOf(Vec<u8>);

impl Hasher for NameOf {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// `str`'s terminator (and nothing else a `str` key writes).
    fn write_u8(&mut self, _: u8) {}
}

fn name_of<Q: Hash + ?Sized>(key: &Q) -> String {
    let mut h = NameOf::default();
    key.hash(&mut h);
    String::from_utf8_lossy(&h.0)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The one DMARC record among a name's TXT strings: RFC 7489 §6.6.3 step 5, more than
/// one is as good as none.
pub(super) fn the_dmarc_record(texts: &[String]) -> Option<&String> {
    let mut records = texts.iter().filter(|t| {
        t.trim_start()
            .get(..8)
            .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
    });
    match (records.next(), records.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// An answer as mail-auth caches it: parsed for what the name is (a DMARC record at
/// `_dmarc.`, a DKIM key under `_domainkey.`), or the error its own resolver would give.
fn parsed(name: &str, answer: &Result<Vec<String>, DnsError>) -> Txt {
    let not_found = |code| {
        Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(
            code,
        )))
    };
    let texts = match answer {
        Ok(t) => t,
        Err(DnsError::NxDomain) => return not_found(ResponseCode::NXDomain),
        Err(DnsError::NoRecords) => return not_found(ResponseCode::NoError),
        Err(DnsError::Temporary(why)) => {
            return Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
                why.clone(),
            )))
        }
    };
    if name.starts_with("_dmarc.") {
        return match the_dmarc_record(texts) {
            Some(one) => Dmarc::parse(one.as_bytes()).into(),
            None => not_found(ResponseCode::NoError),
        };
    }
    if name.contains("._domainkey.") {
        let mut out = not_found(ResponseCode::NoError);
        for t in texts {
            out = DomainKey::parse(t.as_bytes()).into();
            if matches!(out, Txt::DomainKey(_)) {
                break;
            }
        }
        return out;
    }
    // ATPS and the rest: not something we verify.
    not_found(ResponseCode::NoError)
}

impl ResolverCache<Box<str>, Txt> for TxtAnswers {
    fn get<Q>(&self, key: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let name = name_of(key);
        if let Some(answer) = self.answers.lock().unwrap().get(&name) {
            return Some(parsed(&name, answer));
        }
        self.missing.lock().unwrap().insert(name);
        Some(Txt::Error(mail_auth::Error::Dns(
            mail_auth::DnsError::Resolver("not fetched yet".into()),
        )))
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    /// Never called: every `get` answers, so mail-auth never resolves on its own.
    fn insert(&self, _: Box<str>, _: Txt, _: Instant) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_learns_its_name_from_the_hash() {
        let cache = TxtAnswers::default();
        let key: Box<str> = "Sel._DomainKey.Example.ORG.".into();
        assert!(matches!(cache.get::<str>(&key), Some(Txt::Error(_))));
        assert_eq!(
            *cache.missing.lock().unwrap(),
            BTreeSet::from(["sel._domainkey.example.org".to_string()])
        );
        assert_eq!(name_of(&key), name_of::<str>("sel._domainkey.example.org"));
    }

    #[test]
    fn answers_parse_for_what_the_name_is() {
        let one = Ok(vec!["v=DMARC1; p=reject".to_string()]);
        assert!(matches!(parsed("_dmarc.example.org", &one), Txt::Dmarc(_)));
        let two = Ok(vec!["v=DMARC1; p=reject".into(), "v=DMARC1; p=none".into()]);
        assert!(matches!(parsed("_dmarc.example.org", &two), Txt::Error(_)));
        assert!(matches!(
            parsed("_dmarc.example.org", &Err(DnsError::NxDomain)),
            Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(
                ResponseCode::NXDomain
            )))
        ));
        assert!(matches!(
            parsed("_dmarc.example.org", &Err(DnsError::Temporary("x".into()))),
            Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(_)))
        ));
    }
}
