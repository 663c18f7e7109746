//! The config of submission and accounts (issue #8): TLS, SMTP AUTH, DKIM signing, lists and
//! quotas. Declared here, in one place, so that the TOML a postmaster writes is one coherent
//! shape; each piece's behaviour lives with its module (`tls/`, `auth/`, `dkim/`,
//! `directory/`, `store/`), which also checks what serde cannot.
//!
//! Files named in the config (certificate, keys) are read once by the loader
//! ([`ServerConfig::read_files`](super::ServerConfig::read_files)), relative to the config
//! file, into the `*_pem` fields: the server itself never opens them, so a scenario can give
//! the same material inline and the simulated server never touches the real filesystem.

use std::path::PathBuf;

use serde::Deserialize;

/// `[tls]`: the server's certificate, for STARTTLS and implicit TLS (TLS 1.2 and 1.3 only).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain, PEM, leaf first (a path, relative to the config file).
    pub cert: Option<PathBuf>,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// The same material inline (scenarios; and what `cert`/`key` are read into).
    pub cert_pem: Option<String>,
    pub key_pem: Option<String>,
    /// Offer STARTTLS on the MX listener too (submission always offers it). Postfix's
    /// `smtpd_tls_security_level = may`: opportunistic, never required of a peer MTA.
    pub mx_starttls: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            cert_pem: None,
            key_pem: None,
            mx_starttls: true,
        }
    }
}

/// A SASL mechanism name as written in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "LOGIN")]
    Login,
}

/// `[auth]`: SMTP AUTH (RFC 4954) on the submission listeners, and how failures are slowed
/// down and locked out (per client IP and per account, each with its own counter).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Mechanisms offered, in this order, once TLS is active.
    pub mechanisms: Vec<SaslMechanism>,
    /// Allow AUTH before TLS (testing only; never on a real network).
    pub allow_plaintext: bool,
    /// The delay before the first `535 5.7.8`, in milliseconds; it doubles with each further
    /// failure of the same client or account, up to `max_failure_delay_ms`.
    pub failure_delay_ms: u64,
    pub max_failure_delay_ms: u64,
    /// Failures (per client IP, and separately per account) before a lockout.
    pub max_failures: u32,
    /// How long a lockout lasts, and how long a failure is remembered.
    pub lockout_secs: u64,
    /// Parameters for new password hashes (`mailsim admin passwd`); verification reads them
    /// from each stored PHC string.
    pub argon2: Argon2Params,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mechanisms: vec![SaslMechanism::Plain, SaslMechanism::Login],
            allow_plaintext: false,
            failure_delay_ms: 1000,
            max_failure_delay_ms: 16_000,
            max_failures: 5,
            lockout_secs: 900,
            argon2: Argon2Params::default(),
        }
    }
}

/// Argon2id cost parameters (RFC 9106). The default is OWASP's recommendation
/// (m = 19 MiB, t = 2, p = 1); scenarios may choose cheap ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Argon2Params {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// DKIM signature algorithms we sign with (RFC 6376, RFC 8463).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum DkimAlgorithm {
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

/// `[[dkim]]`: one signing key. Mail submitted with a `From:` in `domain` is signed with it
/// (relaxed/relaxed); with several keys for one domain, each signs (rsa and ed25519 side by
/// side, as RFC 8463 §3 suggests).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// Private key, PEM (PKCS#8; PKCS#1 for RSA too), a path relative to the config file.
    pub key: Option<PathBuf>,
    /// The key inline (scenarios; and what `key` is read into).
    pub key_pem: Option<String>,
}

/// Who may post to a list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListPolicy {
    /// Anyone (the envelope sender is not checked).
    #[default]
    Anyone,
    /// Only an envelope sender that is a member (or a moderator).
    Members,
    /// Only a moderator.
    Moderators,
}

/// `[[lists]]`: a distribution list, expanded at delivery (not at RCPT like an alias): each
/// member gets a copy with `List-Id` and `List-Post`/`List-Unsubscribe` headers, and the
/// envelope sender becomes the list's bounce address (`<list>-bounces@<domain>`), which
/// reaches the owner, so a member's bounce goes to whoever runs the list.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    pub address: String,
    /// Local or remote addresses, or other lists (expanded once each; no loop).
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub policy: ListPolicy,
    #[serde(default)]
    pub moderators: Vec<String>,
    /// Who receives the list's bounces and problems (default: postmaster of its domain).
    pub owner: Option<String>,
    /// A human description, in `List-Id`'s phrase.
    #[serde(default)]
    pub description: String,
}

/// What happens to a message that does not fit its recipient's quota at the end of data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverQuota {
    /// `452 4.2.2`: the sender retries, maybe after the owner made room. The default, as in
    /// RFC 5321 §4.5.3.1.10's advice that a full mailbox is a temporary condition.
    #[default]
    Temporary,
    /// `552 5.2.2`: bounce at once (Dovecot's `quota_full_tempfail = no`).
    Permanent,
}

/// `[quota]`: defaults for accounts that set none, and the end-of-data answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Octets per account (none: unlimited).
    pub default_bytes: Option<u64>,
    /// Messages per account (none: unlimited).
    pub default_messages: Option<u64>,
    pub over_quota: OverQuota,
}
