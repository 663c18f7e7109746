//! `dkim-keygen DOMAIN SELECTOR`: a new signing key, its `[[dkim]]` entry, and the TXT
//! record to publish (RFC 6376 §3.6.1). RSA keys are PKCS#8 with the public key published
//! as SubjectPublicKeyInfo (what every verifier reads; RFC 8301 asks for ≥ 1024 bits, 2048
//! recommended, and ring signs with no less than 2048); Ed25519 keys (RFC 8463) publish
//! the raw 32-octet key.

use std::path::{Path, PathBuf};

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use toml_edit::Table;

use super::doc::{array_of_tables, ConfigDoc};
use super::files;
use crate::config::DkimAlgorithm;

/// The public half of a configured key, as DKIM publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// `k=` (`rsa` or `ed25519`).
    pub k: &'static str,
    /// `p=`, base64.
    pub p: String,
}

impl PublicKey {
    /// The TXT record's text.
    pub fn txt(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.k, self.p)
    }
}

/// The public key of a private key PEM (PKCS#8, or PKCS#1 for RSA).
pub fn public_key(algorithm: DkimAlgorithm, pem: &str) -> Result<PublicKey, String> {
    let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
    match algorithm {
        DkimAlgorithm::RsaSha256 => {
            let key = RsaPrivateKey::from_pkcs8_pem(pem)
                .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
                .map_err(|e| format!("not an RSA private key (PKCS#8 or PKCS#1 PEM): {e}"))?;
            let der = RsaPublicKey::from(&key)
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            Ok(PublicKey {
                k: "rsa",
                p: b64(der.as_bytes()),
            })
        }
        DkimAlgorithm::Ed25519Sha256 => {
            let key = rcgen::KeyPair::from_pem(pem)
                .map_err(|e| format!("not an Ed25519 private key (PKCS#8 PEM): {e}"))?;
            if !key.is_compatible(&rcgen::PKCS_ED25519) {
                return Err("the key is not an Ed25519 key".to_string());
            }
            Ok(PublicKey {
                k: "ed25519",
                p: b64(key.public_key_raw()),
            })
        }
    }
}

/// A new private key, PEM (PKCS#8).
pub fn generate(algorithm: DkimAlgorithm, bits: usize) -> Result<String, String> {
    match algorithm {
        DkimAlgorithm::RsaSha256 => {
            // RFC 8301 allows 1024, but ring (our signer's crypto) signs only with 2048 and up.
            if !(2048..=4096).contains(&bits) {
                return Err(format!(
                    "--bits {bits}: RSA DKIM keys are 2048 to 4096 bits (RFC 8301; ring signs no smaller)"
                ));
            }
            let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| format!("RSA key generation: {e}"))?;
            key.to_pkcs8_pem(LineEnding::LF)
                .map(|pem| pem.to_string())
                .map_err(|e| e.to_string())
        }
        DkimAlgorithm::Ed25519Sha256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map(|k| k.serialize_pem())
            .map_err(|e| format!("Ed25519 key generation: {e}")),
    }
}

/// The key file's name, next to the config.
pub fn key_file_name(domain: &str, selector: &str) -> String {
    format!("dkim-{selector}.{domain}.pem")
}

/// A selector is one or more DNS labels (RFC 6376 §3.1).
fn check_selector(selector: &str) -> Result<(), String> {
    let ok = !selector.is_empty()
        && selector.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid selector {selector:?}: letters, digits, '-' and dots"
        ))
    }
}

/// `dkim-keygen`: adds the entry, writes the key (0600), then the config; prints the record.
pub fn keygen(
    doc: &mut ConfigDoc,
    domain: &str,
    selector: &str,
    algorithm: DkimAlgorithm,
    bits: usize,
) -> Result<String, String> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    check_selector(selector)?;
    if !doc
        .config
        .domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain))
    {
        return Err(format!(
            "{domain} is not one of our domains (domain add it first)"
        ));
    }
    if doc
        .config
        .dkim
        .iter()
        .any(|k| k.domain.eq_ignore_ascii_case(&domain) && k.selector == selector)
    {
        return Err(format!(
            "a [[dkim]] key for {selector}._domainkey.{domain} exists"
        ));
    }
    let name = key_file_name(&domain, selector);
    let key_path: PathBuf = files::base_dir(&doc.path).join(&name);
    if key_path.exists() {
        return Err(format!(
            "{} exists; not overwriting a key",
            key_path.display()
        ));
    }
    let mut entry = Table::new();
    entry.insert("domain", toml_edit::value(domain.as_str()));
    entry.insert("selector", toml_edit::value(selector));
    entry.insert("algorithm", toml_edit::value(algorithm_name(algorithm)));
    entry.insert("key", toml_edit::value(name.as_str()));
    doc.item_or("dkim", array_of_tables)
        .as_array_of_tables_mut()
        .ok_or("`dkim` is not an array of tables; edit it by hand")?
        .push(entry);
    // Everything that can be refused is checked before the key is made or written.
    let text = doc.checked_text()?;
    let pem = generate(algorithm, bits)?;
    let public = public_key(algorithm, &pem)?;
    files::write_private(&key_path, &pem).map_err(|e| e.to_string())?;
    if let Err(e) = files::write_atomic(&doc.path, &text) {
        files::remove(&key_path);
        return Err(e.to_string());
    }
    Ok(format!(
        "wrote {} (mode 0600) and its [[dkim]] entry; publish:\n{}\n",
        key_path.display(),
        super::records::txt_line(&format!("{selector}._domainkey.{domain}"), &public.txt())
    ))
}

pub fn algorithm_name(a: DkimAlgorithm) -> &'static str {
    match a {
        DkimAlgorithm::RsaSha256 => "rsa-sha256",
        DkimAlgorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}

/// The configured key's public half, from its PEM (read by the loader).
pub fn configured_public(key: &crate::config::DkimConfig) -> Result<PublicKey, String> {
    let pem = key.key_pem.as_deref().ok_or_else(|| {
        format!(
            "[[dkim]] {}._domainkey.{}: no key (key or key_pem)",
            key.selector, key.domain
        )
    })?;
    public_key(key.algorithm, pem).map_err(|e| {
        let file = key.key.as_deref().unwrap_or(Path::new("key_pem"));
        format!("[[dkim]] {} ({}): {e}", key.selector, file.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_key_round_trips_to_a_32_octet_public_key() {
        let pem = generate(DkimAlgorithm::Ed25519Sha256, 0).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let p = public_key(DkimAlgorithm::Ed25519Sha256, &pem).unwrap();
        assert_eq!(
            data_encoding::BASE64.decode(p.p.as_bytes()).unwrap().len(),
            32
        );
        assert!(p.txt().starts_with("v=DKIM1; k=ed25519; p="));
    }

    #[test]
    fn a_key_of_the_other_algorithm_is_an_error() {
        let pem = generate(DkimAlgorithm::Ed25519Sha256, 0).unwrap();
        assert!(public_key(DkimAlgorithm::RsaSha256, &pem).is_err());
        assert!(public_key(DkimAlgorithm::Ed25519Sha256, "garbage").is_err());
    }

    #[test]
    fn rsa_bits_outside_the_rfc_range_are_refused() {
        assert!(generate(DkimAlgorithm::RsaSha256, 512)
            .unwrap_err()
            .contains("RFC 8301"));
    }

    #[test]
    fn selectors_are_dns_labels() {
        assert!(check_selector("s2026.mail").is_ok());
        assert!(check_selector("a b").is_err());
        assert!(check_selector("").is_err());
        assert!(check_selector("a..b").is_err());
    }
}
