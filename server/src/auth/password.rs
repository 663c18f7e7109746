//! Password hashes: argon2 (RFC 9106) in the PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), the format every current server stores
//! (Dovecot's `ARGON2ID` scheme, Stalwart, PHP's `password_hash`). The string carries its own
//! parameters, so raising `[auth].argon2` later only changes new hashes; old ones still
//! verify with the cost they were made with.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

#[cfg(test)]
use crate::config::password::{check_params, check_phc};
use crate::config::Argon2Params;

/// Salts are 8 (argon2's minimum) to 48 octets (what fits the PHC string's 64 base64
/// characters).
const SALT_MIN: usize = 8;
const SALT_MAX: usize = 48;

/// Hashes `password` with argon2id and these parameters: the PHC string to put in an
/// account's `password`. `salt` should be 16 random octets (RFC 9106 §3.1); one shorter than
/// 8 is padded with zeros and one longer than 48 is cut, and parameters below argon2's
/// minimums are raised to them (`m_cost` ≥ 8 × `p_cost`, `t_cost` ≥ 1, `p_cost` ≥ 1), so this
/// never fails; `[auth].argon2` itself is checked when the config is.
pub fn hash_password(params: Argon2Params, password: &str, salt: &[u8]) -> String {
    let mut salt = salt[..salt.len().min(SALT_MAX)].to_vec();
    salt.resize(salt.len().max(SALT_MIN), 0);
    let p_cost = params.p_cost.clamp(Params::MIN_P_COST, Params::MAX_P_COST);
    let m_cost = params.m_cost.max(Params::MIN_M_COST).max(8 * p_cost);
    let t_cost = params.t_cost.max(Params::MIN_T_COST);
    argon2id(
        Argon2Params {
            m_cost,
            t_cost,
            p_cost,
        },
        password,
        &salt,
    )
    // Unreachable with the clamps above; an empty string never verifies.
    .unwrap_or_default()
}

fn argon2id(params: Argon2Params, password: &str, salt: &[u8]) -> Option<String> {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None).ok()?;
    let salt = SaltString::encode_b64(salt).ok()?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon.hash_password(password.as_bytes(), &salt).ok()?;
    Some(hash.to_string())
}

/// Whether `password` matches the PHC string, in constant time over the hash output. A PHC
/// string that does not parse (never the case once the config is checked) matches nothing.
pub(super) fn verify(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A PHC string no password matches, with these parameters: checking a password against it
/// costs what checking a real hash of the same parameters costs. Its output is 32 zero
/// octets, which argon2 gives for no input anyone can find (2^-256), and making it costs
/// nothing, so a server with many idle restarts does not pay a hash for each.
pub(super) fn dummy(params: Argon2Params) -> String {
    let b64 = |b: &[u8]| data_encoding::BASE64_NOPAD.encode(b);
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost,
        params.t_cost,
        params.p_cost,
        b64(b"mailsim-dummy-salt"),
        b64(&[0u8; 32])
    )
}

/// The parameters a PHC string was made with (none if it does not parse).
pub(super) fn params_of(phc: &str) -> Option<Argon2Params> {
    let hash = PasswordHash::new(phc).ok()?;
    let p = Params::try_from(&hash).ok()?;
    Some(Argon2Params {
        m_cost: p.m_cost(),
        t_cost: p.t_cost(),
        p_cost: p.p_cost(),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) const CHEAP: Argon2Params = Argon2Params {
        m_cost: 8,
        t_cost: 1,
        p_cost: 1,
    };

    /// Ready hashes for scenarios (made with [`hash_password`], cheap parameters, salts
    /// `alice-salt`, `bob-salt`, `carol-salt`): each must verify with its password, and only
    /// with it.
    pub(crate) const READY: [(&str, &str); 3] = [
        (
            "alice-secret",
            "$argon2id$v=19$m=8,t=1,p=1$YWxpY2Utc2FsdA$y2O8Aqn9BlL+zCNqT8KvSbr3BAzMVhv6w6uHau2y6as",
        ),
        (
            "bob-secret",
            "$argon2id$v=19$m=8,t=1,p=1$Ym9iLXNhbHQ$qAjYAdit+DtqlvHhj4AquGzzgfQNhSsj4AcDHkWYZag",
        ),
        (
            "carol-secret",
            "$argon2id$v=19$m=8,t=1,p=1$Y2Fyb2wtc2FsdA$ydAQw7n5/vR5iTwJrYwkEyVhAJwEi7zJNM/pOBpuUc8",
        ),
    ];

    #[test]
    fn a_cheap_hash_verifies_and_a_wrong_password_does_not() {
        let phc = hash_password(CHEAP, "alice-secret", b"0123456789abcdef");
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        check_phc(&phc).unwrap();
        assert!(verify(&phc, "alice-secret"));
        assert!(!verify(&phc, "alice-secreT"));
        assert!(!verify(&phc, ""));
        assert_eq!(params_of(&phc), Some(CHEAP));
    }

    #[test]
    fn ready_hashes_verify() {
        let salts: [&[u8]; 3] = [b"alice-salt", b"bob-salt", b"carol-salt"];
        for ((password, phc), salt) in READY.into_iter().zip(salts) {
            assert_eq!(hash_password(CHEAP, password, salt), phc);
            check_phc(phc).unwrap();
            assert!(verify(phc, password), "{password}");
            assert!(!verify(phc, "wrong"), "{password}");
        }
    }

    #[test]
    fn same_salt_same_hash_and_odd_salts_and_params_are_clamped() {
        let a = hash_password(CHEAP, "pw", b"0123456789abcdef");
        assert_eq!(a, hash_password(CHEAP, "pw", b"0123456789abcdef"));
        assert_ne!(a, hash_password(CHEAP, "pw", b"0123456789abcdeF"));
        for salt in [&b""[..], b"abc", &[7u8; 100]] {
            let phc = hash_password(CHEAP, "pw", salt);
            assert!(verify(&phc, "pw"), "{salt:?}");
        }
        let zero = Argon2Params {
            m_cost: 0,
            t_cost: 0,
            p_cost: 0,
        };
        let phc = hash_password(zero, "pw", b"0123456789abcdef");
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(verify(&phc, "pw"));
    }

    #[test]
    fn the_dummy_is_a_valid_hash_nothing_matches() {
        let d = dummy(CHEAP);
        check_phc(&d).unwrap();
        assert_eq!(params_of(&d), Some(CHEAP));
        for pw in ["", "pw", "mailsim-dummy", "\0mailsim-dummy\0"] {
            assert!(!verify(&d, pw));
        }
        check_phc(&dummy(Argon2Params::default())).unwrap();
    }

    #[test]
    fn bad_phc_strings_are_refused() {
        let good = hash_password(CHEAP, "pw", b"0123456789abcdef");
        let huge = good.replace("m=8,", "m=4000000,");
        for bad in [
            "",
            "secret",
            "$argon2id$",
            "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA",
            "$argon2id$v=19$m=8,t=1,p=1",
            "$argon2id$v=19$m=2,t=1,p=1$YWxpY2Utc2FsdA$aGFzaGhhc2hoYXNo",
            "$argon2id$v=99$m=8,t=1,p=1$YWxpY2Utc2FsdA$aGFzaGhhc2hoYXNo",
            &huge,
        ] {
            assert!(check_phc(bad).is_err(), "{bad:?}");
            // (Not the huge one: verifying it would allocate its 4 GB.)
            assert!(bad == huge || !verify(bad, "pw"), "{bad:?}");
        }
        assert!(check_params(CHEAP).is_ok());
        assert!(check_params(Argon2Params::default()).is_ok());
        assert!(check_params(Argon2Params {
            m_cost: 8,
            t_cost: 1,
            p_cost: 2
        })
        .is_err());
    }
}
