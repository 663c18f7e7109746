//! `passwd ACCOUNT`: the password is read from stdin when stdin is not a terminal (scripts,
//! tests), else from a no-echo prompt asked twice — never from argv, where `ps` and shell
//! history would show it. It is stored only as an argon2id PHC string (RFC 9106) with the
//! `[auth.argon2]` cost and a random 16-octet salt.

use std::io::{BufRead, IsTerminal};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::TryRngCore;
use toml_edit::Value;

use super::doc::ConfigDoc;
use crate::config::Argon2Params;

/// The new password, from stdin or the terminal. Never echoed, never logged.
pub fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = rpassword::prompt_password("New password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ; nothing changed".to_string());
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password from stdin: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err("empty password; nothing changed".to_string());
    }
    Ok(password)
}

/// An argon2id PHC string for `password`.
pub fn hash(password: &str, p: Argon2Params) -> Result<String, String> {
    let params = Params::new(p.m_cost, p.t_cost, p.p_cost, None)
        .map_err(|e| format!("[auth.argon2]: {e}"))?;
    let mut salt = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|e| format!("OS random numbers: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing: {e}"))
}

/// Sets the account's `password` to a new hash of `password`.
pub fn passwd(doc: &mut ConfigDoc, account: &str, password: &str) -> Result<String, String> {
    super::accounts::account_index(doc, account)?;
    let phc = hash(password, doc.config.auth.argon2)?;
    super::accounts::account_set(doc, account, "password", Some(Value::from(phc)))?;
    Ok(format!("password of {account} changed\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    const CHEAP: Argon2Params = Argon2Params {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn the_hash_is_argon2id_with_the_configured_cost_and_verifies() {
        let h = hash("s3cret", CHEAP).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default()
            .verify_password(b"s3cret", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
    }

    #[test]
    fn each_hash_has_its_own_salt() {
        assert_ne!(hash("same", CHEAP).unwrap(), hash("same", CHEAP).unwrap());
    }

    #[test]
    fn impossible_parameters_are_an_error_not_a_panic() {
        let bad = Argon2Params {
            m_cost: 1,
            t_cost: 0,
            p_cost: 1,
        };
        assert!(hash("x", bad).unwrap_err().contains("[auth.argon2]"));
    }

    #[test]
    fn the_example_configs_development_password_verifies() {
        let config = crate::config::parse(
            "serve.example.toml".as_ref(),
            include_str!("../../../serve.example.toml"),
        )
        .unwrap();
        let dev = config
            .accounts
            .iter()
            .map(|a| a.table())
            .find(|a| a.address == "dev@example.org")
            .unwrap();
        let phc = dev.password.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"dev-password", &parsed)
            .is_ok());
    }
}
