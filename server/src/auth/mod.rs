//! The accounts' side of SMTP AUTH (RFC 4954): who may log in, with which password, and how
//! failures are slowed down and locked out. [`Accounts`] is the [`Authenticator`] the
//! submission listeners use; the session only frames the SASL exchange
//! (`smtp/session/auth.rs`).
//!
//! - Passwords are argon2 PHC strings in the config ([`password`]); checking one is tens of
//!   milliseconds of CPU, run through [`Env::compute`] (off the async workers in the real
//!   world, inline in the simulation).
//! - No oracle: an unknown account, a disabled one, one without a password, a wrong password
//!   and a foreign authzid all get the same `535 5.7.8` after the same work (an unknown
//!   account is checked against a dummy hash of the usual cost) and the same delay; unknown
//!   names are counted and locked out like real ones.
//! - Failures ([`throttle`]): each `535` waits `failure_delay_ms · 2^(n-1)` (capped) on the
//!   Env clock, n being the larger of the client's and the account's recent failures. The
//!   failure that reaches `max_failures` for a client is answered `421 4.7.0` (the session
//!   closes) and so is every AUTH from it until `lockout_secs` pass; for an account,
//!   `454 4.7.0` for that account from anywhere, even with the right password. A success
//!   clears both counters.
//! - The trace names the client and a known account (never a password, nor the name an
//!   unknown login gave, which is often a password typed into the wrong field).

pub mod password;
#[cfg(test)]
mod tests;
mod throttle;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use self::password::hash_password;
use self::throttle::{ClientKey, Limits, Table, CAPACITY};
use crate::config::ServerConfig;
use crate::env::Env;
use crate::mail::Address;
use crate::smtp::{AuthAnswer, Authenticator, Credentials, Reply};

/// A config the accounts cannot work with (the check [`ServerConfig::validate`] makes too).
pub use crate::config::PasswordError as AuthError;

/// The accounts that may authenticate, and the failure counters; cheap to clone (shared).
#[derive(Clone)]
pub struct Accounts<E: Env> {
    env: E,
    inner: Arc<Inner>,
}

struct Inner {
    /// By lookup key (the address lower-cased).
    accounts: BTreeMap<String, Account>,
    /// What an unknown account's password is checked against, so it costs the same time.
    dummy: String,
    limits: Limits,
    state: Mutex<State>,
}

struct Account {
    /// The canonical address: the identity a login gives, as the directory keys it.
    address: String,
    password: Option<String>,
    disabled: bool,
}

struct State {
    clients: Table<ClientKey>,
    accounts: Table<String>,
}

/// How the login name is looked up: as an address (its key), else lower-cased as given.
fn name_key(name: &str) -> String {
    match Address::parse(name) {
        Ok(a) => a.key(),
        Err(_) => name.to_lowercase(),
    }
}

/// Why a login failed, for the trace (the client only ever sees `535`).
#[derive(Clone, Copy)]
enum Why {
    Unknown,
    NoPassword,
    Disabled,
    WrongPassword,
    Authzid,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Unknown => "unknown account",
            Why::NoPassword => "account has no password",
            Why::Disabled => "account disabled",
            Why::WrongPassword => "wrong password",
            Why::Authzid => "authzid is not the account",
        }
    }
}

impl<E: Env> Accounts<E> {
    /// The accounts of `config`, whose passwords are checked as [`ServerConfig::validate`]
    /// checks them.
    pub fn new(env: E, config: &ServerConfig) -> Result<Self, AuthError> {
        crate::config::password::check(config)?;
        let mut accounts = BTreeMap::new();
        for a in &config.accounts {
            let t = a.table();
            let key = name_key(&t.address);
            accounts.insert(
                key.clone(),
                Account {
                    address: key,
                    password: t.password,
                    disabled: t.disabled,
                },
            );
        }
        // The dummy costs what a real check costs: the parameters of the first stored hash,
        // else those new hashes get.
        let params = accounts
            .values()
            .find_map(|a| a.password.as_deref().and_then(password::params_of))
            .unwrap_or(config.auth.argon2);
        let dummy = password::dummy(params);
        Ok(Accounts {
            env,
            inner: Arc::new(Inner {
                accounts,
                dummy,
                limits: Limits::of(&config.auth),
                state: Mutex::new(State {
                    clients: Table::new(CAPACITY),
                    accounts: Table::new(CAPACITY),
                }),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the counters inconsistent: keep using them.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn too_many_failures() -> Reply {
    Reply::new(421, (4, 7, 0), "Too many authentication failures")
}

fn account_locked() -> Reply {
    Reply::new(454, (4, 7, 0), "Temporary authentication failure")
}

impl<E: Env> Authenticator for Accounts<E> {
    async fn authenticate(&self, client: SocketAddr, credentials: &Credentials) -> AuthAnswer {
        let inner = &self.inner;
        let limits = inner.limits;
        let ip = client.ip();
        let client_key = ClientKey::of(ip);
        let name = name_key(&credentials.authcid);
        let account = inner.accounts.get(&name);
        let shown = account.map_or("(unknown account)", |a| a.address.as_str());
        let now = self.env.now();
        {
            let mut state = self.state();
            if state.clients.locked(&client_key, now, &limits) {
                self.env.trace(
                    "auth",
                    format_args!("{ip} locked out: 421 for {shown} without a check"),
                );
                return AuthAnswer::Refused(too_many_failures());
            }
            if state.accounts.locked(&name, now, &limits) {
                self.env.trace(
                    "auth",
                    format_args!("{shown} locked out: 454 to {ip} without a check"),
                );
                return AuthAnswer::Refused(account_locked());
            }
        }
        let phc = account
            .and_then(|a| a.password.clone())
            .unwrap_or_else(|| inner.dummy.clone());
        let given = credentials.password.clone();
        let matched = self
            .env
            .compute(move || password::verify(&phc, &given))
            .await;
        let authzid_ok = credentials.authzid.is_empty() || name_key(&credentials.authzid) == name;
        let why = match account {
            None => Why::Unknown,
            Some(a) if a.password.is_none() => Why::NoPassword,
            Some(a) if a.disabled => Why::Disabled,
            Some(_) if !matched => Why::WrongPassword,
            Some(_) if !authzid_ok => Why::Authzid,
            Some(a) => {
                let mut state = self.state();
                state.clients.clear(&client_key);
                state.accounts.clear(&name);
                drop(state);
                self.env.trace(
                    "auth",
                    format_args!("{} authenticated from {ip}", a.address),
                );
                return AuthAnswer::AcceptedAs(a.address.clone());
            }
        };
        let now = self.env.now();
        let (n, client_locked, account_locked_now) = {
            let mut state = self.state();
            let (nc, lc) = state.clients.fail(&client_key, now, &limits);
            let (na, la) = state.accounts.fail(&name, now, &limits);
            (nc.max(na), lc, la)
        };
        let delay = limits.delay_for(n);
        self.env.trace(
            "auth",
            format_args!(
                "failure {n} for {shown} from {ip} ({}): answer in {} ms",
                why.as_str(),
                delay.as_millis()
            ),
        );
        let lockout = limits.lockout.as_secs();
        if client_locked {
            self.env
                .trace("auth", format_args!("{ip} locked out for {lockout} s"));
        }
        if account_locked_now {
            self.env
                .trace("auth", format_args!("{shown} locked out for {lockout} s"));
        }
        self.env.sleep_until(now.plus(delay)).await;
        match (client_locked, account_locked_now) {
            (true, _) => AuthAnswer::Refused(too_many_failures()),
            (false, true) => AuthAnswer::Refused(account_locked()),
            (false, false) => AuthAnswer::Rejected,
        }
    }
}
