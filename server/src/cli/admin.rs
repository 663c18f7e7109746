//! `admin`'s arguments and exit codes: 0 done (or, for `check`, all ok), 1 `check` found
//! problems, 2 a usage or config error (nothing was changed). The commands themselves are
//! in `crate::admin`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::admin::{self, accounts, lists, CheckWorld, ConfigDoc};
use crate::config::{DkimAlgorithm, ListPolicy};

/// `admin`: edit and inspect a server config.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// The server config to read and edit (TOML; see serve.example.toml).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum AdminCommand {
    /// Local domains: add, remove, list.
    #[command(subcommand)]
    Domain(NameOp),
    /// Accounts (mailboxes): add, remove, list.
    #[command(subcommand)]
    Account(AccountOp),
    /// Set an account's password: from stdin when it is not a terminal, else asked twice
    /// without echo. Stored as an argon2id hash ([auth.argon2] cost).
    Passwd { account: String },
    /// Disable an account: it receives nothing (550 5.2.1) and cannot authenticate.
    Disable { account: String },
    /// Enable a disabled account again.
    Enable { account: String },
    /// Aliases: add ADDR TARGET..., remove ADDR, list.
    #[command(subcommand)]
    Alias(AliasOp),
    /// Distribution lists.
    #[command(subcommand)]
    List(ListOp),
    /// Each account's use (octets, messages) against its quota. Read-only.
    Quota {
        /// Where mailboxes live (as given to `serve`).
        #[arg(long, default_value = "mailsim-data")]
        data_dir: PathBuf,
    },
    /// Make a DKIM signing key next to the config, add its [[dkim]] entry, print its TXT.
    DkimKeygen {
        domain: String,
        selector: String,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: KeyAlgorithm,
        /// RSA key size (2048 to 4096).
        #[arg(long, default_value_t = 2048)]
        bits: usize,
    },
    /// The DNS records DOMAIN needs, in zone-file syntax.
    Dns { domain: String },
    /// Look DOMAIN's records up and report ok / missing / wrong with the fix; exit 1 if
    /// anything is not ok.
    Check {
        domain: String,
        /// Answer from this scenario's [dns] zones instead of the real DNS (the `mailsim`
        /// binary only); its [server] is the config unless --config is given.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Also list accounts at 90% of their quota or more.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum NameOp {
    Add { name: String },
    Remove { name: String },
    List,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum AccountOp {
    Add {
        account: String,
        #[arg(long)]
        quota_bytes: Option<u64>,
        #[arg(long)]
        quota_messages: Option<u64>,
    },
    Remove {
        account: String,
    },
    List,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum AliasOp {
    /// A new alias, or more targets for an existing one.
    Add {
        alias: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    Remove {
        alias: String,
    },
    List,
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum ListOp {
    Add {
        list: String,
        #[arg(long, value_enum)]
        policy: Option<Policy>,
        #[arg(long)]
        owner: Option<String>,
    },
    Remove {
        list: String,
    },
    Show {
        list: String,
    },
    /// Members: add|remove LIST ADDR.
    #[command(subcommand)]
    Member(MemberOp),
}

#[derive(clap::Subcommand, Clone, Debug)]
pub enum MemberOp {
    Add { list: String, member: String },
    Remove { list: String, member: String },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Policy {
    Anyone,
    Members,
    Moderators,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum KeyAlgorithm {
    Rsa,
    Ed25519,
}

/// Builds the `check` world from a scenario file (the simulator's binary provides it).
pub type ScenarioWorld<'a> = &'a dyn Fn(&Path) -> Result<CheckWorld, String>;

/// Runs one admin command. `prog` prefixes errors; `scenario` answers `check --scenario`.
pub fn admin(args: &AdminArgs, prog: &str, scenario: Option<ScenarioWorld<'_>>) -> ExitCode {
    match run(args, scenario) {
        Ok((out, problems)) => {
            print!("{out}");
            if problems {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(2)
        }
    }
}

fn config_path(args: &AdminArgs) -> Result<&Path, String> {
    args.config
        .as_deref()
        .ok_or_else(|| "--config FILE is required".to_string())
}

/// Opens the config, applies `edit`, saves it (validated, atomically).
fn edit(
    args: &AdminArgs,
    f: impl FnOnce(&mut ConfigDoc) -> Result<String, String>,
) -> Result<(String, bool), String> {
    let mut doc = ConfigDoc::open(config_path(args)?)?;
    let out = f(&mut doc)?;
    doc.save()?;
    Ok((out, false))
}

fn read(
    args: &AdminArgs,
    f: impl FnOnce(&ConfigDoc) -> Result<String, String>,
) -> Result<(String, bool), String> {
    let doc = ConfigDoc::open(config_path(args)?)?;
    Ok((f(&doc)?, false))
}

fn run(args: &AdminArgs, scenario: Option<ScenarioWorld<'_>>) -> Result<(String, bool), String> {
    use AdminCommand as C;
    match &args.command {
        C::Domain(NameOp::Add { name }) => edit(args, |d| accounts::domain_add(d, name)),
        C::Domain(NameOp::Remove { name }) => edit(args, |d| accounts::domain_remove(d, name)),
        C::Domain(NameOp::List) => read(args, |d| Ok(accounts::domain_list(d))),
        C::Account(AccountOp::Add {
            account,
            quota_bytes,
            quota_messages,
        }) => edit(args, |d| {
            accounts::account_add(d, account, *quota_bytes, *quota_messages)
        }),
        C::Account(AccountOp::Remove { account }) => {
            edit(args, |d| accounts::account_remove(d, account))
        }
        C::Account(AccountOp::List) => read(args, |d| Ok(accounts::account_list(d))),
        C::Passwd { account } => {
            // Check the account before asking for a password nobody can use.
            let mut doc = ConfigDoc::open(config_path(args)?)?;
            accounts::account_index(&mut doc, account)?;
            let password = admin::passwd::read_password()?;
            let out = admin::passwd::passwd(&mut doc, account, &password)?;
            doc.save()?;
            Ok((out, false))
        }
        C::Disable { account } => edit(args, |d| accounts::set_disabled(d, account, true)),
        C::Enable { account } => edit(args, |d| accounts::set_disabled(d, account, false)),
        C::Alias(AliasOp::Add { alias, targets }) => {
            edit(args, |d| accounts::alias_add(d, alias, targets))
        }
        C::Alias(AliasOp::Remove { alias }) => edit(args, |d| accounts::alias_remove(d, alias)),
        C::Alias(AliasOp::List) => read(args, |d| Ok(accounts::alias_list(d))),
        C::List(ListOp::Add {
            list,
            policy,
            owner,
        }) => edit(args, |d| {
            lists::add(d, list, policy.map(list_policy), owner.as_deref())
        }),
        C::List(ListOp::Remove { list }) => edit(args, |d| lists::remove(d, list)),
        C::List(ListOp::Show { list }) => read(args, |d| lists::show(d, list)),
        C::List(ListOp::Member(MemberOp::Add { list, member })) => {
            edit(args, |d| lists::member_add(d, list, member))
        }
        C::List(ListOp::Member(MemberOp::Remove { list, member })) => {
            edit(args, |d| lists::member_remove(d, list, member))
        }
        C::Quota { data_dir } => read(args, |d| {
            Ok(admin::quota::report(&admin::quota::usage(
                &d.config, data_dir,
            )?))
        }),
        C::DkimKeygen {
            domain,
            selector,
            algorithm,
            bits,
        } => {
            let alg = match algorithm {
                KeyAlgorithm::Rsa => DkimAlgorithm::RsaSha256,
                KeyAlgorithm::Ed25519 => DkimAlgorithm::Ed25519Sha256,
            };
            let mut doc = ConfigDoc::open(config_path(args)?)?;
            // keygen writes the key and the config itself (key first, removed on failure).
            Ok((
                admin::dkim::keygen(&mut doc, domain, selector, alg, *bits)?,
                false,
            ))
        }
        C::Dns { domain } => {
            let config =
                admin::files::load_config(config_path(args)?).map_err(|e| e.to_string())?;
            Ok((admin::records::dns(&config, domain)?, false))
        }
        C::Check {
            domain,
            scenario: file,
            data_dir,
        } => {
            let mut world = match (file, scenario) {
                (Some(f), Some(build)) => {
                    let mut w = build(f)?;
                    if let Some(p) = &args.config {
                        w.config = admin::files::load_config(p).map_err(|e| e.to_string())?;
                    }
                    w
                }
                (Some(_), None) => {
                    return Err(
                        "--scenario needs the simulator: use `mailsim admin check`".to_string()
                    )
                }
                (None, _) => {
                    let p = config_path(args)?;
                    admin::real_world(admin::files::load_config(p).map_err(|e| e.to_string())?)?
                }
            };
            let domain = admin::records::local_domain(&world.config, domain)?;
            let usage = match data_dir {
                Some(dir) => Some(admin::quota::usage(&world.config, dir)?),
                None => None,
            };
            let report = admin::check::check(&mut world, &domain, usage.as_deref());
            let head = format!("checking {domain} (answers from {})\n", world.source);
            Ok((format!("{head}{report}"), report.problems() > 0))
        }
    }
}

fn list_policy(p: Policy) -> ListPolicy {
    match p {
        Policy::Anyone => ListPolicy::Anyone,
        Policy::Members => ListPolicy::Members,
        Policy::Moderators => ListPolicy::Moderators,
    }
}
