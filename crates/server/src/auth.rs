//! Client authentication for the method an hba rule picked: trust, reject,
//! SCRAM-SHA-256 against stored verifiers, cleartext password (TLS only)
//! and client certificates.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Buf, BytesMut};
use duet_sql::{RoleInfo, SqlError, SqlState};
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret, ScramServerAuth};
use pgwire::error::PgWireError;
use pgwire::messages::startup::{Authentication, PasswordMessageFamily};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::AuthMethod;
use crate::connection::{Conn, ConnError};
use crate::tls;

const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// Iterations of the mock verifier for unknown users (PostgreSQL's default).
const MOCK_ITERATIONS: usize = 4096;

/// Who is connecting, for messages.
pub(crate) struct Login<'a> {
    pub(crate) user: &'a str,
    pub(crate) database: &'a str,
    /// A physical replication connection.
    pub(crate) replication: bool,
}

/// Runs the exchange for `method`; Ok means the client proved it is `user`
/// (or the method needs no proof). Does not send AuthenticationOk.
pub(crate) async fn authenticate(
    conn: &mut Conn,
    method: AuthMethod,
    login: &Login<'_>,
    role: Option<&RoleInfo>,
) -> Result<(), ConnError> {
    match method {
        AuthMethod::Trust => Ok(()),
        AuthMethod::Reject => Err(fatal(
            SqlState::INVALID_AUTHORIZATION,
            reject_message(conn, login),
        )),
        AuthMethod::ScramSha256 => scram(conn, login.user, role).await,
        AuthMethod::Password => password(conn, login.user, role).await,
        AuthMethod::Cert => cert(conn, login.user),
        AuthMethod::CertOrScramSha256 => {
            if conn.client_certificate().is_some() {
                cert(conn, login.user)
            } else {
                scram(conn, login.user, role).await
            }
        }
    }
}

fn fatal(state: SqlState, message: impl Into<String>) -> ConnError {
    ConnError::Fatal(SqlError::new(state, message))
}

fn password_failed(user: &str) -> ConnError {
    fatal(
        SqlState::INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

fn reject_message(conn: &Conn, login: &Login<'_>) -> String {
    let host = conn.peer.ip().to_canonical();
    let enc = if conn.ssl {
        "SSL encryption"
    } else {
        "no encryption"
    };
    if login.replication {
        format!(
            "pg_hba.conf rejects replication connection for host \"{host}\", user \"{}\", {enc}",
            login.user
        )
    } else {
        format!(
            "pg_hba.conf rejects connection for host \"{host}\", user \"{}\", database \"{}\", {enc}",
            login.user, login.database
        )
    }
}

/// Cryptographically random bytes.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], ConnError> {
    let mut buf = [0u8; N];
    SystemRandom::new().fill(&mut buf).map_err(|_| {
        fatal(
            SqlState::INTERNAL_ERROR,
            "could not generate random numbers",
        )
    })?;
    Ok(buf)
}

/// Parses PostgreSQL's verifier format
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64).
pub(crate) fn parse_verifier(verifier: &str) -> Option<ScramSecret> {
    let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
    let (iter_salt, keys) = rest.split_once('$')?;
    let (iterations, salt) = iter_salt.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    let iterations: usize = iterations.parse().ok().filter(|&i| i > 0)?;
    let salt = STANDARD.decode(salt).ok()?;
    let stored_key = STANDARD.decode(stored_key).ok()?;
    let server_key = STANDARD.decode(server_key).ok()?;
    if salt.is_empty() || stored_key.len() != 32 || server_key.len() != 32 {
        return None;
    }
    Some(ScramSecret::Verifier {
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

/// A verifier nobody knows the password of, so that unknown users and
/// users without a password go through the same exchange and fail the same
/// way as a wrong password.
fn mock_secret() -> Result<ScramSecret, ConnError> {
    Ok(ScramSecret::Verifier {
        salt: random_bytes::<16>()?.to_vec(),
        iterations: MOCK_ITERATIONS,
        stored_key: random_bytes::<32>()?.to_vec(),
        server_key: random_bytes::<32>()?.to_vec(),
    })
}

/// The stored secret of `role`, or a mock one; the flag says which.
fn secret_for(role: Option<&RoleInfo>) -> Result<(ScramSecret, bool), ConnError> {
    match role
        .and_then(|r| r.scram_verifier.as_deref())
        .and_then(parse_verifier)
    {
        Some(secret) => Ok((secret, true)),
        None => Ok((mock_secret()?, false)),
    }
}

/// The body of the next 'p' message; EOF ends the connection quietly (the
/// client gave up, e.g. psql asking for a password and reconnecting).
async fn next_password_message(conn: &mut Conn, expected: &str) -> Result<BytesMut, ConnError> {
    match conn.recv().await? {
        None => Err(ConnError::Closed),
        Some(PgWireFrontendMessage::PasswordMessageFamily(PasswordMessageFamily::Raw(body))) => {
            Ok(body)
        }
        Some(PgWireFrontendMessage::Terminate(_)) => Err(ConnError::Closed),
        Some(_) => Err(fatal(
            SqlState::PROTOCOL_VIOLATION,
            format!("expected {expected}, got another message type"),
        )),
    }
}

fn malformed_scram(detail: impl Into<String>) -> ConnError {
    ConnError::Fatal(
        SqlError::new(SqlState::PROTOCOL_VIOLATION, "malformed SCRAM message").with_detail(detail),
    )
}

/// Splits a SASLInitialResponse body: mechanism name and optional data.
fn parse_sasl_initial(mut body: BytesMut) -> Result<(String, Option<BytesMut>), ConnError> {
    let nul = body
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| malformed_scram("SASLInitialResponse without a mechanism name"))?;
    let name = String::from_utf8_lossy(&body[..nul]).into_owned();
    body.advance(nul + 1);
    if body.remaining() < 4 {
        return Err(malformed_scram("SASLInitialResponse too short"));
    }
    let len = body.get_i32();
    if len < 0 {
        return Ok((name, None));
    }
    if body.remaining() < len as usize {
        return Err(malformed_scram(
            "SASLInitialResponse length exceeds the message",
        ));
    }
    Ok((name, Some(body.split_to(len as usize))))
}

async fn scram(conn: &mut Conn, user: &str, role: Option<&RoleInfo>) -> Result<(), ConnError> {
    let (secret, genuine) = secret_for(role)?;
    conn.send(PgWireBackendMessage::Authentication(Authentication::SASL(
        vec![SCRAM_SHA_256.to_string()],
    )))
    .await?;
    conn.flush().await?;

    let body = next_password_message(conn, "SASL response").await?;
    let (mechanism, data) = parse_sasl_initial(body)?;
    if mechanism != SCRAM_SHA_256 {
        return Err(fatal(
            SqlState::PROTOCOL_VIOLATION,
            "client selected an invalid SASL authentication mechanism",
        ));
    }
    let data = data.ok_or_else(|| malformed_scram("empty client-first message"))?;
    let (server_first, waiting) = ScramServerAuth::new()
        .on_client_first_message_with_secret(&data, secret)
        .map_err(|e| malformed_scram(e.to_string()))?;
    conn.send(PgWireBackendMessage::Authentication(
        Authentication::SASLContinue(server_first.into_bytes().into()),
    ))
    .await?;
    conn.flush().await?;

    let body = next_password_message(conn, "SASL response").await?;
    match waiting.on_client_final_message(&body) {
        Ok(server_final) if genuine => {
            conn.send(PgWireBackendMessage::Authentication(
                Authentication::SASLFinal(server_final.into_bytes().into()),
            ))
            .await?;
            Ok(())
        }
        Ok(_) | Err(PgWireError::InvalidPassword(_)) => Err(password_failed(user)),
        Err(e) => Err(malformed_scram(e.to_string())),
    }
}

/// Whether `password` matches the verifier `secret`.
pub(crate) fn check_password(password: &str, secret: &ScramSecret) -> bool {
    let ScramSecret::Verifier {
        salt,
        iterations,
        stored_key,
        server_key,
    } = secret
    else {
        return false;
    };
    let salted = gen_salted_password(password, salt, *iterations);
    match ScramSecret::verifier_from_salted_password(salt.clone(), salted, *iterations) {
        ScramSecret::Verifier {
            stored_key: sk,
            server_key: svk,
            ..
        } => constant_time_eq(&sk, stored_key) & constant_time_eq(&svk, server_key),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn password(conn: &mut Conn, user: &str, role: Option<&RoleInfo>) -> Result<(), ConnError> {
    if !conn.ssl {
        return Err(fatal(
            SqlState::INVALID_AUTHORIZATION,
            format!(
                "password authentication for user \"{user}\" requires an SSL connection; connect with sslmode=require or use scram-sha-256"
            ),
        ));
    }
    let (secret, genuine) = secret_for(role)?;
    conn.send(PgWireBackendMessage::Authentication(
        Authentication::CleartextPassword,
    ))
    .await?;
    conn.flush().await?;
    let body = next_password_message(conn, "password response").await?;
    let password = match body.iter().position(|&b| b == 0) {
        Some(nul) => String::from_utf8_lossy(&body[..nul]).into_owned(),
        None => {
            return Err(fatal(
                SqlState::PROTOCOL_VIOLATION,
                "invalid password packet size",
            ))
        }
    };
    // Always hash, so unknown users take as long as wrong passwords.
    let matches = check_password(&password, &secret);
    if matches && genuine && !password.is_empty() {
        Ok(())
    } else {
        Err(password_failed(user))
    }
}

fn cert(conn: &Conn, user: &str) -> Result<(), ConnError> {
    let Some(cert) = conn.client_certificate() else {
        return Err(fatal(
            SqlState::INVALID_AUTHORIZATION,
            "connection requires a valid client certificate",
        ));
    };
    match tls::client_cert_common_name(&cert) {
        Some(cn) if cn == user => Ok(()),
        _ => Err(fatal(
            SqlState::INVALID_AUTHORIZATION,
            format!("certificate authentication failed for user \"{user}\""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a verifier the way PostgreSQL does.
    fn verifier(password: &str, salt: &[u8], iterations: usize) -> String {
        let salted = gen_salted_password(password, salt, iterations);
        match ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, iterations) {
            ScramSecret::Verifier {
                stored_key,
                server_key,
                ..
            } => format!(
                "SCRAM-SHA-256${iterations}:{}${}:{}",
                STANDARD.encode(salt),
                STANDARD.encode(stored_key),
                STANDARD.encode(server_key)
            ),
            _ => unreachable!(),
        }
    }

    #[test]
    fn verifier_round_trip() {
        let v = verifier("secret", b"0123456789abcdef", 4096);
        let secret = parse_verifier(&v).expect("parses");
        assert!(check_password("secret", &secret));
        assert!(!check_password("Secret", &secret));
    }

    #[test]
    fn postgres_verifier_parses() {
        // a verifier in the format PostgreSQL stores
        let v = "SCRAM-SHA-256$4096:yGiHIYHFnsE1NSxZBNZ7Ug==$9Bc16+IBYYUmA1pMn2zBfx+uYjKNh/eP/4n7LFLXl34=:c0JROkDDsx0ji3g3mwyrbiYrZGS96/Cd+tBH5UxUY4s=";
        assert!(parse_verifier(v).is_some());
        assert!(parse_verifier("md5abc").is_none());
        assert!(parse_verifier("SCRAM-SHA-256$x:yy$zz:ww").is_none());
    }

    #[test]
    fn sasl_initial_parsing() {
        let mut body = BytesMut::new();
        body.extend_from_slice(b"SCRAM-SHA-256\0");
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        let (name, data) = parse_sasl_initial(body).expect("parses");
        assert_eq!(name, "SCRAM-SHA-256");
        assert_eq!(&data.expect("data")[..], b"abc");

        let mut short = BytesMut::new();
        short.extend_from_slice(b"SCRAM-SHA-256\0");
        short.extend_from_slice(&30i32.to_be_bytes());
        assert!(parse_sasl_initial(short).is_err());
    }
}
