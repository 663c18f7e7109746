//! The `[[dkim]]` keys: loaded from their PEM, checked against the configured algorithm,
//! and described as the selector TXT record the domain must publish.

use std::fmt;

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

use crate::config::{DkimAlgorithm, DkimConfig};

/// A `[[dkim]]` entry that cannot sign: which one (its index in the config) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dkim[{index}] ({domain}, selector {selector:?}): {message}")]
pub struct DkimKeyError {
    pub index: usize,
    pub domain: String,
    pub selector: String,
    pub message: String,
}

impl From<DkimKeyError> for crate::config::ConfigError {
    fn from(e: DkimKeyError) -> Self {
        crate::config::ConfigError::Dkim(e.to_string())
    }
}

/// One loaded signing key: `d=` `domain`, `s=` `selector`.
pub struct SigningKey {
    /// Lower-case, no trailing dot.
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub(super) key: DkimKey,
    /// The `p=` value's bytes: SubjectPublicKeyInfo for RSA (RFC 6376 §3.6.1), the raw
    /// 32-octet key for Ed25519 (RFC 8463 §4).
    public: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    // Never the private key, even in a debug dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads `config` (entry `index` of `[[dkim]]`): its PEM must hold a private key of the
    /// configured algorithm (PKCS#8, or PKCS#1 for RSA).
    pub fn load(index: usize, config: &DkimConfig) -> Result<SigningKey, DkimKeyError> {
        let err = |message: String| DkimKeyError {
            index,
            domain: config.domain.clone(),
            selector: config.selector.clone(),
            message,
        };
        let domain = config.domain.trim_end_matches('.').to_ascii_lowercase();
        check_name(&domain).map_err(|m| err(format!("domain: {m}")))?;
        check_name(&config.selector).map_err(|m| err(format!("selector: {m}")))?;
        let pem = config
            .key_pem
            .as_deref()
            .ok_or_else(|| err("no key (give `key`, a PEM file, or `key_pem`)".into()))?;
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| err(format!("not a PEM private key: {e}")))?;
        let (key, public) = match config.algorithm {
            DkimAlgorithm::RsaSha256 => {
                let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| {
                    err(format!(
                        "not a usable RSA private key (the entry says rsa-sha256): {e}"
                    ))
                })?;
                let public = rsa_spki(&key.public_key());
                (DkimKey::Rsa(key), public)
            }
            DkimAlgorithm::Ed25519Sha256 => {
                let PrivateKeyDer::Pkcs8(pkcs8) = der else {
                    return Err(err(
                        "an Ed25519 key must be PKCS#8 (`-----BEGIN PRIVATE KEY-----`)".into(),
                    ));
                };
                // "Maybe unchecked": accepts PKCS#8 v1 (no public key inside), which is
                // what `openssl genpkey -algorithm ed25519` writes.
                let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der())
                    .map_err(|e| {
                        err(format!(
                            "not an Ed25519 private key (the entry says ed25519-sha256): {e}"
                        ))
                    })?;
                let public = key.public_key();
                (DkimKey::Ed25519(key), public)
            }
        };
        Ok(SigningKey {
            domain,
            selector: config.selector.clone(),
            algorithm: config.algorithm,
            key,
            public,
        })
    }

    /// Where the public key is published: `SELECTOR._domainkey.DOMAIN` (RFC 6376 §3.6.2.1).
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record's text: `v=DKIM1; k=rsa; p=...` (or `k=ed25519`).
    pub fn dns_record(&self) -> String {
        let k = match self.algorithm {
            DkimAlgorithm::RsaSha256 => "rsa",
            DkimAlgorithm::Ed25519Sha256 => "ed25519",
        };
        format!(
            "v=DKIM1; k={k}; p={}",
            data_encoding::BASE64.encode(&self.public)
        )
    }
}

/// A domain or selector: dot-separated labels of letters, digits, `-` and `_`, none empty
/// (RFC 6376 §3.1's sub-domain, and what a DNS owner name can hold).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.len() > 253 {
        return Err("longer than 253 octets".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} has an empty or over-long label"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("{name:?} is not a DNS name"));
        }
    }
    Ok(())
}

/// ring gives an RSA public key as PKCS#1 `RSAPublicKey`; DKIM publishes the
/// SubjectPublicKeyInfo around it (RFC 6376 §3.6.1, what `openssl rsa -pubout` prints):
/// `SEQUENCE { AlgorithmIdentifier rsaEncryption NULL, BIT STRING { RSAPublicKey } }`.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x03];
    der_len(pkcs1.len() + 1, &mut bits);
    bits.push(0); // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(RSA_ALGORITHM.len() + bits.len(), &mut out);
    out.extend_from_slice(&RSA_ALGORITHM);
    out.extend_from_slice(&bits);
    out
}

/// A DER length: short form below 128, else `0x80 | n` and n big-endian octets.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        for (len, want) in [
            (5usize, vec![5u8]),
            (127, vec![127]),
            (128, vec![0x81, 128]),
            (270, vec![0x82, 1, 14]),
        ] {
            let mut out = Vec::new();
            der_len(len, &mut out);
            assert_eq!(out, want, "{len}");
        }
    }

    #[test]
    fn names() {
        assert!(check_name("example.org").is_ok());
        assert!(check_name("s2026._x").is_ok());
        for bad in ["", "a..b", "a b", "a;b", ".a"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
