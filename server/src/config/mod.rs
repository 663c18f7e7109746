//! Server configuration: who we are, which domains and mailboxes are ours, and the limits we
//! enforce. The same TOML shape is read by `mailsim serve --config` and by a scenario's
//! `[server]` table, so a scenario is also a worked example of a real config.

mod file;

pub use crate::policy::IpNet;
pub use crate::smtp::Limits;

pub use file::{parse, ConfigFileError, Location};

use crate::directory::{Directory, DirectoryError};

use std::collections::BTreeMap;
use std::net::SocketAddr;

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
    /// Clients in these networks may relay (send to any domain), like Postfix's
    /// `mynetworks`. Everyone else may only send to our own domains: no open relay.
    #[serde(default)]
    pub relay_networks: Vec<IpNet>,
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
}

impl AccountConfig {
    pub fn address(&self) -> &str {
        match self {
            AccountConfig::Address(a) => a,
            AccountConfig::Full(t) => &t.address,
        }
    }
}

/// Where the listeners bind. Loopback by default: `serve` must never surprise anyone by
/// opening a public port.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// The MX listener (inbound SMTP).
    pub smtp: SocketAddr,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            smtp: SocketAddr::from(([127, 0, 0, 1], 2525)),
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
}

impl ServerConfig {
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
        Ok(Directory::build(
            &self.domains,
            self.accounts.iter().map(AccountConfig::address),
            &self.aliases,
        )?)
    }
}
