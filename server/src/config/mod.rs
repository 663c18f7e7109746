//! Server configuration: who we are, which domains and mailboxes are ours, and the limits we
//! enforce. The same TOML shape is read by `mailsim serve --config` and by a scenario's
//! `[server]` table, so a scenario is also a worked example of a real config.

mod file;
pub(crate) mod password;
mod submission;

pub use crate::policy::auth::config::SenderAuthConfig;
pub use crate::policy::dnsbl::DnsListConfig;
pub use crate::policy::greylist::config::{GreylistConfig, GreylistConfigError};
pub use crate::policy::score::{ScoreConfig, ScoreError};
pub use crate::policy::IpNet;
pub use crate::smtp::Limits;

pub use file::{parse, ConfigFileError, Location};
pub use password::PasswordError;
pub use submission::{
    Argon2Params, AuthConfig, DkimAlgorithm, DkimConfig, ListConfig, ListPolicy, OverQuota,
    QuotaConfig, SaslMechanism, TlsConfig,
};

use crate::directory::{AccountEntry, Directory, DirectoryError};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// The whole server config. Unknown keys are errors: a typo must not silently do nothing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Our host name, used in the greeting, `Received:` headers and EHLO.
    pub hostname: String,
    /// Domains we accept mail for (final destination).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Local accounts: each is a mailbox.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Alias address → target addresses (local or remote). A domain-less key like
    /// `postmaster` applies to every local domain.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Domain aliases: mail for the key domain is handled as mail for the value domain
    /// (`"example.net" = "example.org"`: `bob@example.net` reaches `bob@example.org`). The
    /// value must be in `domains`; the key then counts as local too (never relayed).
    #[serde(default)]
    pub domain_aliases: BTreeMap<String, String>,
    /// Catch-all per local domain: an unknown local part of the key domain goes to the
    /// value address instead of getting 550 5.1.1. Accounts and aliases win, a disabled
    /// account's mail is not caught, and the target must reach a mailbox (or be remote). It
    /// gives its target no right to send as the addresses it catches (see `send_as`).
    #[serde(default)]
    pub catch_all: BTreeMap<String, String>,
    /// Distribution lists, expanded at delivery.
    #[serde(default)]
    pub lists: Vec<ListConfig>,
    /// Quota defaults and the over-quota answer.
    #[serde(default)]
    pub quota: QuotaConfig,
    /// The certificate for STARTTLS and implicit TLS; none: a self-signed one is made at
    /// start (and the log says so).
    #[serde(default)]
    pub tls: TlsConfig,
    /// SMTP AUTH on the submission listeners.
    #[serde(default)]
    pub auth: AuthConfig,
    /// DKIM signing keys for submitted mail.
    #[serde(default)]
    pub dkim: Vec<DkimConfig>,
    /// Clients in these networks may relay (send to any domain), like Postfix's
    /// `mynetworks`. Everyone else may only send to our own domains: no open relay.
    #[serde(default)]
    pub relay_networks: Vec<IpNet>,
    /// DNS block lists (RFC 5782) the MX listener consults, e.g.
    /// `[[dnsbl]] zone = "zen.spamhaus.org"`, `codes = ["127.0.0.2"]`, `stage = "rcpt"`
    /// (see `policy/dnsbl.rs`).
    #[serde(default)]
    pub dnsbl: Vec<DnsListConfig>,
    /// Test builds only (`planted.rs`): deliberate bugs for the simulator to catch.
    #[cfg(feature = "planted-bugs")]
    #[serde(default)]
    pub planted_bugs: crate::planted::PlantedBugs,
    /// DNS allow lists: a client listed in one is never checked against `dnsbl`.
    #[serde(default)]
    pub dnswl: Vec<DnsListConfig>,
    /// SPF, DKIM, DMARC and iprev on the MX, and what their results do
    /// (`policy/auth/config.rs`); absent: no checks.
    #[serde(default)]
    pub sender_auth: Option<SenderAuthConfig>,
    /// Greylisting on the MX listener (RFC 6647, `policy/greylist/`); off by default.
    #[serde(default)]
    pub greylist: GreylistConfig,
    /// Content scoring (`policy/score/`): thresholds, score overrides, `[[scoring.rule]]`.
    #[serde(default)]
    pub scoring: ScoreConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub listen: ListenConfig,
    /// The outbound queue: retry schedule, lifetime, delay warnings.
    #[serde(default)]
    pub queue: crate::queue::QueueConfig,
}

/// An account: a plain address string, or a table for more settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum AccountConfig {
    Address(String),
    Full(AccountTable),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountTable {
    pub address: String,
    /// The password as an argon2 PHC string (`$argon2id$v=19$m=...`), never in plain text;
    /// `mailsim admin passwd` writes it. None: the account cannot authenticate.
    #[serde(default)]
    pub password: Option<String>,
    /// A disabled account receives nothing (550 5.2.1) and cannot authenticate.
    #[serde(default)]
    pub disabled: bool,
    /// Quota in octets and in messages (none: `[quota]`'s defaults).
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    #[serde(default)]
    pub quota_messages: Option<u64>,
    /// Further envelope senders and `From:` addresses this account may use when it submits
    /// (beyond its own address and the aliases that reach it); `*@domain` allows a domain.
    #[serde(default)]
    pub send_as: Vec<String>,
}

impl AccountConfig {
    pub fn address(&self) -> &str {
        match self {
            AccountConfig::Address(a) => a,
            AccountConfig::Full(t) => &t.address,
        }
    }

    /// The account's settings as a table (a plain address has every default).
    pub fn table(&self) -> AccountTable {
        match self {
            AccountConfig::Address(a) => AccountTable {
                address: a.clone(),
                password: None,
                disabled: false,
                quota_bytes: None,
                quota_messages: None,
                send_as: Vec::new(),
            },
            AccountConfig::Full(t) => t.clone(),
        }
    }
}

/// Where the listeners bind. Loopback by default: `serve` must never surprise anyone by
/// opening a public port.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// The MX listener (inbound SMTP, port 25 in production).
    pub smtp: SocketAddr,
    /// Message submission with STARTTLS and AUTH required (RFC 6409, port 587).
    pub submission: Option<SocketAddr>,
    /// Message submission over implicit TLS (RFC 8314, port 465).
    pub submissions: Option<SocketAddr>,
    /// POP3 with STLS (RFC 1939, RFC 2595; port 110).
    pub pop3: Option<SocketAddr>,
    /// POP3 over implicit TLS (RFC 8314; port 995).
    pub pop3s: Option<SocketAddr>,
    /// IMAP with STARTTLS (RFC 3501; port 143).
    pub imap: Option<SocketAddr>,
    /// IMAP over implicit TLS (RFC 8314; port 993).
    pub imaps: Option<SocketAddr>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            smtp: SocketAddr::from(([127, 0, 0, 1], 2525)),
            submission: None,
            submissions: None,
            pop3: None,
            pop3s: None,
            imap: None,
            imaps: None,
        }
    }
}

/// A config that does not make sense (beyond what serde checks).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("limit {0} is below the RFC 5321 minimum of {1}")]
    LimitTooLow(&'static str, usize),
    #[error("{0}")]
    Queue(#[from] crate::queue::config::QueueConfigError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A `[[dkim]]` key that cannot sign (`dkim::DkimKeyError`'s text: the entry, why).
    /// Checked when the server starts: `dkim` reads this module's types, so this module
    /// cannot call it without a module cycle.
    #[error("{0}")]
    Dkim(String),
    /// A `[[dnsbl]]`/`[[dnswl]]` entry that cannot be queried; `zone` as written, so the
    /// file loader can point at it.
    #[error("{message}")]
    DnsList { zone: String, message: String },
    /// A `[sender_auth]` setting that cannot apply; `key` is its path.
    #[error("{message}")]
    SenderAuth { key: String, message: String },
    /// A `[greylist]` value that cannot work.
    #[error("{0}")]
    Greylist(GreylistConfigError),
    /// Something wrong in `[scoring]` (a bad regex, an unknown override, ...).
    #[error("{0}")]
    Scoring(ScoreError),
}

impl ServerConfig {
    /// Reads the files the config names (TLS certificate and key, DKIM keys) into their
    /// inline `*_pem` fields, relative to `base` (the config file's folder). The loader's job,
    /// so the server never opens a file outside its Env. Errors name the file.
    pub fn read_files(
        &mut self,
        mut read: impl FnMut(&Path) -> std::io::Result<String>,
        base: &Path,
    ) -> Result<(), String> {
        let mut load = |p: &Path| {
            let path = base.join(p);
            read(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        if let Some(p) = &self.tls.cert {
            self.tls.cert_pem = Some(load(p)?);
        }
        if let Some(p) = &self.tls.key {
            self.tls.key_pem = Some(load(p)?);
        }
        for key in &mut self.dkim {
            if let Some(p) = &key.key {
                key.key_pem = Some(load(p)?);
            }
        }
        Ok(())
    }

    /// Checks what serde cannot and builds the recipient directory.
    pub fn validate(&self) -> Result<Directory, ConfigError> {
        if self.limits.command_line < 512 {
            return Err(ConfigError::LimitTooLow("command_line", 512));
        }
        if self.limits.text_line < 1000 {
            return Err(ConfigError::LimitTooLow("text_line", 1000));
        }
        if self.limits.recipients < 1 {
            return Err(ConfigError::LimitTooLow("recipients", 1));
        }
        self.queue.validate()?;
        for (key, lists) in [("dnsbl", &self.dnsbl), ("dnswl", &self.dnswl)] {
            for l in lists {
                l.validate().map_err(|e| ConfigError::DnsList {
                    zone: l.zone.clone(),
                    message: format!("{key}: {e}"),
                })?;
            }
        }
        if let Some(l) = self
            .dnsbl
            .iter()
            .find(|l| l.stage == crate::policy::dnsbl::ListStage::Score && !self.scoring.enabled)
        {
            return Err(ConfigError::DnsList {
                zone: l.zone.clone(),
                message: "dnsbl: stage = \"score\" needs [scoring] enabled = true".into(),
            });
        }
        if let Some(auth) = &self.sender_auth {
            auth.validate()
                .map_err(|(key, message)| ConfigError::SenderAuth { key, message })?;
        }
        self.greylist.validate().map_err(ConfigError::Greylist)?;
        self.scoring.validate().map_err(ConfigError::Scoring)?;
        password::check(self)?;
        let accounts = self.accounts.iter().map(|a| match a {
            AccountConfig::Address(address) => AccountEntry::from(address.as_str()),
            AccountConfig::Full(t) => AccountEntry {
                address: &t.address,
                disabled: t.disabled,
                send_as: &t.send_as,
            },
        });
        Ok(Directory::build(&self.domains, accounts, &self.aliases)?
            .with_domain_aliases(&self.domain_aliases)?
            .with_catch_all(&self.catch_all)?
            .with_lists(self.lists.iter().map(ListConfig::def))?)
    }
}

impl ListConfig {
    /// The list as the directory takes it (the directory does not know the config types).
    pub fn def(&self) -> crate::directory::ListDef<'_> {
        use crate::directory::PostPolicy;
        crate::directory::ListDef {
            address: &self.address,
            members: &self.members,
            policy: match self.policy {
                ListPolicy::Anyone => PostPolicy::Anyone,
                ListPolicy::Members => PostPolicy::Members,
                ListPolicy::Moderators => PostPolicy::Moderators,
            },
            moderators: &self.moderators,
            owner: self.owner.as_deref(),
            description: &self.description,
        }
    }
}

impl ServerConfig {
    /// The store's quotas: `[quota]`'s defaults, and each account's own
    /// `quota_bytes`/`quota_messages` (keyed like the directory's mailboxes).
    pub fn quotas(&self) -> crate::store::Quotas {
        use crate::store::{Limit, Quotas};
        let q = &self.quota;
        let default = Limit {
            bytes: q.default_bytes,
            messages: q.default_messages,
        };
        let mut quotas = Quotas::new(default, q.over_quota == OverQuota::Permanent);
        for account in &self.accounts {
            let t = account.table();
            let limit = Limit {
                bytes: t.quota_bytes,
                messages: t.quota_messages,
            };
            if let (Ok(a), true) = (
                crate::mail::Address::parse(&t.address),
                limit != Limit::default(),
            ) {
                quotas = quotas.with_limit(&a.key(), limit);
            }
        }
        quotas
    }
}
