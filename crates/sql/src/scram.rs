//! SCRAM-SHA-256 verifiers in PostgreSQL's storage format. Passwords are
//! never stored, only `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use std::num::NonZeroU32;

pub const ITERATIONS: u32 = 4096;

/// Creates a verifier for a password with a fresh random salt.
pub fn make_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    // The system RNG failing is unrecoverable for key generation anyway.
    let _ = ring::rand::SystemRandom::new().fill(&mut salt);
    verifier_with_salt(password, &salt, ITERATIONS)
}

pub fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN),
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key.as_ref()),
        STANDARD.encode(server_key.as_ref())
    )
}

/// Parsed verifier parts: (iterations, salt, stored key, server key).
pub fn parse_verifier(v: &str) -> Option<(u32, Vec<u8>, Vec<u8>, Vec<u8>)> {
    let rest = v.strip_prefix("SCRAM-SHA-256$")?;
    let (iter_salt, keys) = rest.split_once('$')?;
    let (iterations, salt) = iter_salt.split_once(':')?;
    let (stored, server) = keys.split_once(':')?;
    Some((
        iterations.parse().ok()?,
        STANDARD.decode(salt).ok()?,
        STANDARD.decode(stored).ok()?,
        STANDARD.decode(server).ok()?,
    ))
}

/// Checks a cleartext password against a verifier (for `password` auth).
pub fn check_password(verifier: &str, password: &str) -> bool {
    match parse_verifier(verifier) {
        Some((iterations, salt, _, _)) => {
            verifier_with_salt(password, &salt, iterations) == verifier
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_matches_postgres_format_and_checks() {
        let v = make_verifier("secret");
        assert!(v.starts_with("SCRAM-SHA-256$4096:"));
        let (iters, salt, stored, server) = parse_verifier(&v).unwrap();
        assert_eq!(
            (iters, salt.len(), stored.len(), server.len()),
            (4096, 16, 32, 32)
        );
        assert!(check_password(&v, "secret"));
        assert!(!check_password(&v, "Secret"));
    }

    #[test]
    fn known_vector() {
        // Computed with PostgreSQL's algorithm (RFC 7677 parameters).
        let v = verifier_with_salt(
            "pencil",
            &STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
            4096,
        );
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }
}
