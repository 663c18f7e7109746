//! The config's passwords, checked when the config is: each account's argon2 PHC string
//! (`$argon2id$v=19$m=...`) and `[auth].argon2`. Only their form is checked here, with the
//! argon2 crate's parser; hashing and verifying are `auth/`'s (which depends on the config,
//! never the other way round, like the directory).

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Params, Version};

use super::{AccountConfig, Argon2Params, ServerConfig};

/// The most memory a stored hash may ask for, in KiB (1 GiB). Verification allocates it on
/// every attempt, so a typo in a config (`m=19456000`) must fail at start-up, not exhaust the
/// host's memory at the first AUTH.
const MAX_M_COST: u32 = 1 << 20;

/// A password setting the accounts cannot work with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("account {0:?}: password is not a usable argon2 PHC string: {1}")]
    BadPassword(String, String),
    #[error("[auth] argon2: {0}")]
    BadParams(String),
}

/// `[auth].argon2` and every account's password.
pub(crate) fn check(config: &ServerConfig) -> Result<(), PasswordError> {
    check_params(config.auth.argon2).map_err(PasswordError::BadParams)?;
    for account in &config.accounts {
        if let AccountConfig::Full(t) = account {
            if let Some(phc) = &t.password {
                check_phc(phc).map_err(|why| PasswordError::BadPassword(t.address.clone(), why))?;
            }
        }
    }
    Ok(())
}

/// Why a stored password is not a usable argon2 hash (`Ok`: it is).
pub(crate) fn check_phc(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    Algorithm::try_from(hash.algorithm)
        .map_err(|_| format!("algorithm {:?} is not argon2", hash.algorithm.as_str()))?;
    if let Some(v) = hash.version {
        Version::try_from(v).map_err(|_| format!("unknown argon2 version {v}"))?;
    }
    let params = Params::try_from(&hash).map_err(|e| e.to_string())?;
    if params.m_cost() > MAX_M_COST {
        return Err(format!(
            "m={} KiB is more than the {MAX_M_COST} KiB allowed",
            params.m_cost()
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("no salt or no hash".into());
    }
    Ok(())
}

/// `[auth].argon2` as argon2 parameters, or why they are not.
pub(crate) fn check_params(params: Argon2Params) -> Result<(), String> {
    Params::new(params.m_cost, params.t_cost, params.p_cost, None)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "m_cost={} t_cost={} p_cost={}: {e}",
                params.m_cost, params.t_cost, params.p_cost
            )
        })
}
