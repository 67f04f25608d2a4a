//! Startup: the startup packet (or a CancelRequest), protocol version,
//! connection limit, hba rule, authentication, role and database checks,
//! then the session and its ParameterStatus / BackendKeyData.

use duet_sql::{Session, SessionContext, SqlError, SqlState};
use pgwire::messages::response::ReadyForQuery;
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, SecretKey, Startup,
};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tracing::debug;

use crate::auth::{self, Login};
use crate::codec::Phase;
use crate::connection::{fatal, Conn, ConnError};
use crate::encode;
use crate::hba;
use crate::server::{SessionSlot, Shared};

/// Protocol 3.0, the only version spoken.
const PROTOCOL_3_0: i32 = 196608;

pub(crate) struct Started<'a> {
    pub(crate) session: Session,
    pub(crate) pid: i32,
    pub(crate) user: String,
    pub(crate) database: String,
    pub(crate) slot: SessionSlot<'a>,
    /// Set on a replication connection.
    pub(crate) walsender: Option<crate::walsender::WalSender>,
}

/// What the `replication` startup parameter asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replication {
    No,
    /// `replication=true`: physical (walsender) connection.
    Physical,
    /// `replication=database`: logical replication connection.
    Logical,
}

fn parse_replication(value: &str) -> Result<Replication, ConnError> {
    match value.to_ascii_lowercase().as_str() {
        "database" => Ok(Replication::Logical),
        "true" | "on" | "yes" | "1" => Ok(Replication::Physical),
        "false" | "off" | "no" | "0" => Ok(Replication::No),
        _ => Err(ConnError::Fatal(
            SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"replication\": \"{value}\""),
            )
            .with_hint("Valid values are: \"false\", 0, \"true\", 1, \"database\"."),
        )),
    }
}

/// Reads the startup packet, authenticates and starts the session. None
/// for a CancelRequest connection (already served).
pub(crate) async fn startup<'a>(
    conn: &mut Conn,
    shared: &'a Shared,
) -> Result<Option<Started<'a>>, ConnError> {
    let startup: Startup = match conn.recv().await? {
        None => return Err(ConnError::Closed),
        Some(PgWireFrontendMessage::CancelRequest(cancel)) => {
            if shared.cancel.cancel(cancel.pid, &cancel.secret_key) {
                debug!(pid = cancel.pid, "cancel request served");
            } else {
                debug!(pid = cancel.pid, "cancel request with unknown key ignored");
            }
            return Ok(None);
        }
        Some(PgWireFrontendMessage::Startup(s)) => s,
        Some(_) => {
            return Err(fatal(
                SqlState::PROTOCOL_VIOLATION,
                "invalid startup packet",
            ))
        }
    };
    conn.set_phase(Phase::Normal);

    // Only 3.0 is spoken: newer minor versions and protocol options
    // (`_pq_.*`) are declined the way PostgreSQL declines them.
    let unsupported: Vec<String> = startup
        .parameters
        .keys()
        .filter(|k| k.starts_with("_pq_."))
        .cloned()
        .collect();
    if startup.protocol_number_minor > 0 || !unsupported.is_empty() {
        conn.send(PgWireBackendMessage::NegotiateProtocolVersion(
            NegotiateProtocolVersion::new(PROTOCOL_3_0, unsupported),
        ))
        .await?;
    }

    let mut user = None;
    let mut database = None;
    let mut replication = Replication::No;
    let mut startup_params = Vec::new();
    let mut application_name: Option<String> = None;
    for (key, value) in &startup.parameters {
        match key.as_str() {
            "user" => user = Some(value.clone()),
            "database" => database = Some(value.clone()),
            "replication" => replication = parse_replication(value)?,
            "application_name" => {
                application_name = Some(value.clone());
                startup_params.push((key.clone(), value.clone()));
            }
            k if k.starts_with("_pq_.") => {}
            _ => startup_params.push((key.clone(), value.clone())),
        }
    }
    let user = match user {
        Some(u) if !u.is_empty() => u,
        _ => {
            return Err(fatal(
                SqlState::INVALID_AUTHORIZATION,
                "no PostgreSQL user name specified in startup packet",
            ))
        }
    };
    let database = match database {
        Some(d) if !d.is_empty() => d,
        _ => user.clone(),
    };

    let Some(slot) = shared.try_session_slot() else {
        return Err(fatal(
            SqlState::TOO_MANY_CONNECTIONS,
            "sorry, too many clients already",
        ));
    };

    // hba: physical replication connections match only the `replication`
    // keyword, as in PostgreSQL.
    let physical = replication == Replication::Physical;
    let addr = conn.peer.ip().to_canonical();
    let rules = shared.hba_rules();
    let Some(rule) = hba::find_rule(&rules, conn.ssl, addr, &database, &user, physical) else {
        let message = if physical {
            hba::no_replication_entry_message(addr, &user, conn.ssl)
        } else {
            hba::no_entry_message(addr, &user, &database, conn.ssl)
        };
        return Err(fatal(SqlState::INVALID_AUTHORIZATION, message));
    };
    let method = rule.method;

    let role = shared.db.role(&user).map_err(ConnError::Fatal)?;
    let login = Login {
        user: &user,
        database: &database,
        replication: physical,
    };
    auth::authenticate(conn, method, &login, role.as_ref()).await?;
    conn.send(PgWireBackendMessage::Authentication(Authentication::Ok))
        .await?;

    let Some(role) = role else {
        return Err(fatal(
            SqlState::INVALID_AUTHORIZATION,
            format!("role \"{user}\" does not exist"),
        ));
    };
    if !role.can_login {
        return Err(fatal(
            SqlState::INVALID_AUTHORIZATION,
            format!("role \"{user}\" is not permitted to log in"),
        ));
    }
    if replication != Replication::No && !(role.replication || role.is_admin) {
        return Err(ConnError::Fatal(
            SqlError::new(
                SqlState::INSUFFICIENT_PRIVILEGE,
                "permission denied to start WAL sender",
            )
            .with_detail(
                "Only roles with the REPLICATION attribute or members of admin may start a WAL sender process.",
            ),
        ));
    }
    if !shared
        .db
        .database_exists(&database)
        .map_err(ConnError::Fatal)?
    {
        return Err(fatal(
            SqlState::UNDEFINED_DATABASE,
            format!("database \"{database}\" does not exist"),
        ));
    }

    let pid = shared.next_pid();
    let secret = i32::from_be_bytes(auth::random_bytes::<4>()?);
    let mut session = shared
        .db
        .session(SessionContext {
            user: user.clone(),
            database: database.clone(),
            backend_pid: pid,
            client_addr: Some(conn.peer),
            server_port: Some(shared.local_addr.port()),
            startup_params,
        })
        .map_err(ConnError::Fatal)?;
    shared.cancel.register(pid, secret, session.interrupt());

    for (name, value) in session.reported_parameters() {
        conn.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
            name, value,
        )))
        .await?;
    }
    // Already reported in full.
    let _ = session.take_parameter_changes();
    for notice in session.take_notices() {
        conn.send(encode::notice_response(&notice)).await?;
    }
    conn.send(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
        pid,
        SecretKey::I32(secret),
    )))
    .await?;
    conn.send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
        encode::transaction_status(session.transaction_state()),
    )))
    .await?;
    if let Err(e) = conn.flush().await {
        shared.cancel.unregister(pid);
        session.close().await;
        return Err(e);
    }
    conn.deadline = None;
    let walsender = (replication != Replication::No).then(|| crate::walsender::WalSender {
        pid,
        user: user.clone(),
        application_name: application_name.unwrap_or_default(),
    });
    Ok(Some(Started {
        session,
        pid,
        user,
        database,
        slot,
        walsender,
    }))
}
