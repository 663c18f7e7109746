//! `mailsim admin`: the postmaster's commands (issue #8): domains, accounts, passwords,
//! aliases, lists, quotas, DKIM keys, the DNS records to publish, and a "why can't I send"
//! check. The argument structs and exit codes are `cli.rs`'s; the logic is here, with plain
//! parameters, so both binaries (`mailsim-server admin`, `mailsim admin`) run the same code.
//!
//! Config edits go through toml_edit ([`doc`]): comments and formatting survive, every edit
//! is validated by the config parser before it is written, and writes are atomic
//! ([`files`]). Like `cli.rs`, this is process plumbing: it runs outside any world, on the
//! real disk and the real resolver.

pub mod accounts;
pub mod check;
pub mod dkim;
pub mod doc;
pub mod files;
pub mod lists;
pub mod passwd;
pub mod quota;
pub mod records;
pub mod report;
pub mod spf;

pub use check::{CheckWorld, Lookup, Report, Status};
pub use doc::ConfigDoc;

use crate::config::ServerConfig;
use crate::env::real::{RealEnv, RealOptions};
use crate::env::{DnsError, Env, Record, RecordKind};

/// The server's own resolver (`env/real/dns.rs`: system configuration, NXDOMAIN/NODATA
/// told apart from temporary failures), driven one question at a time.
pub struct RealLookup {
    runtime: tokio::runtime::Runtime,
    env: RealEnv,
}

impl RealLookup {
    pub fn new() -> Result<RealLookup, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        // The Env wants a data root; nothing is written there by lookups.
        let env = RealEnv::new(std::env::temp_dir(), RealOptions::default())
            .map_err(|e| format!("resolver: {e}"))?;
        Ok(RealLookup { runtime, env })
    }
}

impl Lookup for RealLookup {
    fn lookup(&mut self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        self.runtime.block_on(self.env.lookup(name, kind))
    }
}

/// `check` against the live DNS: our addresses are the configured listen addresses (when
/// they are public), else whatever our host name resolves to.
pub fn real_world(config: ServerConfig) -> Result<CheckWorld, String> {
    Ok(CheckWorld {
        addresses: records::listen_addresses(&config),
        config,
        lookup: Box::new(RealLookup::new()?),
        source: "the system resolver".to_string(),
    })
}
