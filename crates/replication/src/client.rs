//! The connection a secondary opens to its primary (SPEC 4.3): the same port
//! and protocol as clients, TLS per `sslmode` (ring provider only), a client
//! certificate per `sslcert`/`sslkey`, SCRAM-SHA-256 through pgwire's client,
//! and, for the stream, `replication=database` in the StartupMessage like a
//! PostgreSQL walsender connection. Errors say which step failed, because
//! `REPLICATE SET PRIMARY` reports exactly that to the DBA.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, Stream, StreamExt};
use pgwire::api::client::auth::{DefaultStartupHandler, StartupHandler};
use pgwire::api::client::{ClientInfo, Config, ServerInformation};
use pgwire::error::{ErrorInfo, PgWireClientError, PgWireClientResult, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::response::ReadyForQuery;
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Authentication, BackendKeyData, Startup};
use pgwire::messages::terminate::Terminate;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
pub use pgwire::tokio::client::PgWireClient;

pub use crate::tls::tls_connector;
use crate::url::{PrimaryUrl, SslMode};

/// `application_name` sent when the URL sets none.
pub const DEFAULT_APPLICATION_NAME: &str = "duet-secondary";

/// Why talking to the primary failed, by step. Never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach primary at {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("TLS handshake with primary at {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error("cannot use {param} file {path}: {reason}")]
    Certificate {
        param: &'static str,
        path: String,
        reason: String,
    },
    #[error("primary rejected authentication of user \"{user}\": {message} (SQLSTATE {code})")]
    Auth {
        user: String,
        code: String,
        message: String,
    },
    #[error("primary returned an error: {message} (SQLSTATE {code})")]
    Server { code: String, message: String },
    #[error("protocol error talking to primary: {0}")]
    Protocol(String),
}

impl ConnectError {
    /// The step that failed, for status views: connect, tls, certificate,
    /// auth, server or protocol.
    pub fn step(&self) -> &'static str {
        match self {
            ConnectError::Connect { .. } => "connect",
            ConnectError::Tls { .. } => "tls",
            ConnectError::Certificate { .. } => "certificate",
            ConnectError::Auth { .. } => "auth",
            ConnectError::Server { .. } => "server",
            ConnectError::Protocol(_) => "protocol",
        }
    }

    /// The primary's SQLSTATE, when the primary sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ConnectError::Auth { code, .. } | ConnectError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// What [`PrimaryConnection::query`] returns: column names and rows of
/// text values (NULL as `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl QueryRows {
    /// The value of `column` in row `row`; None for NULL or no such cell.
    pub fn get(&self, row: usize, column: &str) -> Option<&str> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(index)?.as_deref()
    }
}

/// An open, authenticated session on the primary.
pub struct PrimaryConnection {
    client: PgWireClient,
    address: String,
}

impl std::fmt::Debug for PrimaryConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryConnection")
            .field("address", &self.address)
            .field("process_id", &self.process_id())
            .finish_non_exhaustive()
    }
}

impl PrimaryConnection {
    /// The underlying pgwire client, e.g. to drive a CopyBoth stream.
    pub fn client(&mut self) -> &mut PgWireClient {
        &mut self.client
    }

    pub fn into_client(self) -> PgWireClient {
        self.client
    }

    /// `host:port` as connected to (IPv6 in brackets), for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// ParameterStatus values the primary reported (kept current).
    pub fn server_parameters(&self) -> &BTreeMap<String, String> {
        self.client.server_parameters()
    }

    pub fn server_parameter(&self, name: &str) -> Option<&str> {
        self.server_parameters().get(name).map(String::as_str)
    }

    pub fn process_id(&self) -> i32 {
        self.client.process_id()
    }

    /// Runs `sql` with the simple query protocol and returns the text values
    /// of all DataRows (NULL as `None`). See [`Self::query`].
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, ConnectError> {
        self.query(sql).await.map(|result| result.rows)
    }

    /// Runs one statement with the simple query protocol: its column names
    /// and the text values of its rows (NULL as `None`). An ErrorResponse
    /// becomes [`ConnectError::Server`] once ReadyForQuery arrived, so the
    /// connection stays usable. A statement that starts COPY is a protocol
    /// error: use [`Self::client`] for streams.
    pub async fn query(&mut self, sql: &str) -> Result<QueryRows, ConnectError> {
        let query = PgWireFrontendMessage::Query(Query::new(sql.to_string()));
        self.client.send(query).await.map_err(|e| self.lost(e))?;
        let (mut result, mut error) = (QueryRows::default(), None);
        loop {
            let message = match self.client.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(self.lost(e)),
                None => return Err(self.lost("connection closed")),
            };
            match message {
                PgWireBackendMessage::RowDescription(description) if error.is_none() => {
                    result.columns = description.fields.into_iter().map(|f| f.name).collect()
                }
                PgWireBackendMessage::DataRow(row) if error.is_none() => {
                    result.rows.push(decode_data_row(row)?)
                }
                PgWireBackendMessage::ErrorResponse(response) => {
                    let info = ErrorInfo::from(response);
                    error.get_or_insert(ConnectError::Server {
                        code: info.code,
                        message: info.message,
                    });
                }
                PgWireBackendMessage::ParameterStatus(status) => {
                    self.client.set_server_parameter(status.name, status.value)
                }
                PgWireBackendMessage::ReadyForQuery(ready) => {
                    self.client.set_transaction_status(ready.status);
                    return error.map_or(Ok(result), Err);
                }
                PgWireBackendMessage::CopyInResponse(_)
                | PgWireBackendMessage::CopyOutResponse(_)
                | PgWireBackendMessage::CopyBothResponse(_) => {
                    return Err(ConnectError::Protocol(
                        "the statement started a COPY stream, which simple_query cannot read"
                            .into(),
                    ))
                }
                _ => {}
            }
        }
    }

    /// Sends Terminate and closes the socket.
    pub async fn close(mut self) -> Result<(), ConnectError> {
        let terminate = PgWireFrontendMessage::Terminate(Terminate::new());
        self.client
            .send(terminate)
            .await
            .map_err(|e| self.lost(e))?;
        self.client.close().await.map_err(|e| self.lost(e))
    }

    fn lost(&self, e: impl std::fmt::Display) -> ConnectError {
        ConnectError::Protocol(format!(
            "connection to primary at {} failed: {e}",
            self.address
        ))
    }
}

/// Splits a DataRow into text values without trusting its lengths.
fn decode_data_row(row: DataRow) -> Result<Vec<Option<String>>, ConnectError> {
    let bad = || ConnectError::Protocol("malformed DataRow from primary".into());
    let mut data: &[u8] = &row.data;
    let mut values = Vec::with_capacity(row.field_count.max(0) as usize);
    for _ in 0..row.field_count {
        let (len, rest) = data.split_first_chunk::<4>().ok_or_else(bad)?;
        data = rest;
        let len = i32::from_be_bytes(*len);
        if len < 0 {
            values.push(None);
            continue;
        }
        let (value, rest) = data.split_at_checked(len as usize).ok_or_else(bad)?;
        data = rest;
        values.push(Some(String::from_utf8_lossy(value).into_owned()));
    }
    Ok(values)
}

/// `host:port`, IPv6 in brackets.
pub(crate) fn display_address(url: &PrimaryUrl) -> String {
    if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    }
}

/// Opens a session on the primary: resolve, TCP, TLS per sslmode, startup
/// and authentication, each resolved address in turn (like libpq). With
/// `replication`, the StartupMessage carries `replication=database`.
/// `connect_timeout` bounds TCP connect plus startup, per address.
pub async fn connect(
    url: &PrimaryUrl,
    replication: bool,
) -> Result<PrimaryConnection, ConnectError> {
    let address = display_address(url);
    let tls = tls_connector(url)?;
    let password = url.resolve_password();
    tracing::debug!(url = %url.masked(), replication, "connecting to primary");
    let timeout = url.connect_timeout;
    let unreachable = |reason: String| ConnectError::Connect {
        address: address.clone(),
        reason,
    };
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((url.host.as_str(), url.port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => return Err(unreachable(format!("cannot resolve host name: {e}"))),
        Err(_) => return Err(unreachable("host name lookup timed out".into())),
    };
    let mut last = unreachable("the host name resolved to no address".into());
    for addr in addrs {
        let mut config: Config = format!("sslmode={}", pgwire_ssl_mode(url.sslmode))
            .parse()
            .map_err(|e| ConnectError::Protocol(format!("client configuration: {e}")))?;
        config
            .host(url.host.as_str())
            .hostaddr(addr.ip())
            .port(addr.port())
            .user(url.user.as_str())
            .dbname(url.database.as_str())
            .application_name(
                url.application_name
                    .as_deref()
                    .unwrap_or(DEFAULT_APPLICATION_NAME),
            )
            .connect_timeout(timeout);
        if let Some(password) = &password {
            config.password(password);
        }
        let started = Arc::new(AtomicBool::new(false));
        let handler = SecondaryStartup {
            inner: DefaultStartupHandler::new(),
            replication,
            started: started.clone(),
        };
        let attempt = PgWireClient::connect(Arc::new(config), handler, tls.clone());
        let started_startup = || started.load(Ordering::SeqCst);
        let error = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(client)) => {
                return Ok(PrimaryConnection {
                    client,
                    address: address.clone(),
                })
            }
            Err(_) if started_startup() => ConnectError::Protocol(format!(
                "primary at {address} did not finish startup within {} s (connect_timeout)",
                timeout.as_secs()
            )),
            Err(_) => unreachable(format!(
                "no answer within {} s (connect_timeout)",
                timeout.as_secs()
            )),
            Ok(Err(e)) if started_startup() => startup_error(e, url, password.is_some(), &address),
            Ok(Err(e)) => transport_error(e, tls.is_some(), &address),
        };
        match error {
            ConnectError::Connect { .. } => last = error,
            other => return Err(other),
        }
    }
    Err(last)
}

/// pgwire's client knows disable/prefer/require; verification is ours.
fn pgwire_ssl_mode(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Allow | SslMode::Prefer => "prefer",
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => "require",
    }
}

/// Classifies a failure before the StartupMessage was sent: TCP or TLS.
fn transport_error(e: PgWireClientError, tls: bool, address: &str) -> ConnectError {
    let (address, text) = (address.to_string(), e.to_string());
    if let PgWireClientError::IoError(io) = &e {
        let inner = io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(tls_error) = inner {
            let reason = tls_error.to_string();
            return ConnectError::Tls { address, reason };
        }
        let tcp = matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::TimedOut
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::NetworkDown
                | ErrorKind::AddrNotAvailable
                | ErrorKind::PermissionDenied
        );
        if tcp || !tls {
            return ConnectError::Connect {
                address,
                reason: text,
            };
        }
    }
    let reason = if text.contains("TLS is not enabled") {
        "the primary does not accept TLS connections".to_string()
    } else if text.contains("Expect SslResponse") {
        "the primary closed the connection instead of answering the TLS request".to_string()
    } else {
        text
    };
    ConnectError::Tls { address, reason }
}

/// Classifies a failure after the StartupMessage was sent.
fn startup_error(
    e: PgWireClientError,
    url: &PrimaryUrl,
    had_password: bool,
    address: &str,
) -> ConnectError {
    let auth = |code: &str, message: String| ConnectError::Auth {
        user: url.user.clone(),
        code: code.to_string(),
        message,
    };
    match e {
        PgWireClientError::RemoteError(info) if info.code.starts_with("28") => {
            let mut message = info.message;
            if info.code == "28P01" && !had_password {
                message.push_str(" (no password was found in the URL or .pgpass)");
            }
            auth(&info.code, message)
        }
        PgWireClientError::RemoteError(info) => ConnectError::Server {
            code: info.code,
            message: info.message,
        },
        PgWireClientError::ScramError(m) => {
            auth("28000", format!("SCRAM-SHA-256 exchange failed: {m}"))
        }
        PgWireClientError::UnsupportedSASLAuthMethods(m) => auth(
            "28000",
            format!("the primary offers only unsupported SASL mechanisms {m:?}"),
        ),
        PgWireClientError::UnexpectedMessage(m)
            if matches!(*m, PgWireBackendMessage::Authentication(_)) =>
        {
            auth(
                "28000",
                "the primary asked for an unsupported authentication method".into(),
            )
        }
        other => {
            ConnectError::Protocol(format!("startup with primary at {address} failed: {other}"))
        }
    }
}

/// DefaultStartupHandler (SCRAM etc.) with our own StartupMessage, which
/// adds `replication=database` and notes that the transport is up.
struct SecondaryStartup {
    inner: DefaultStartupHandler,
    replication: bool,
    started: Arc<AtomicBool>,
}

#[async_trait]
impl StartupHandler for SecondaryStartup {
    async fn startup<C>(&mut self, client: &mut C) -> PgWireClientResult<()>
    where
        C: ClientInfo + Sink<PgWireFrontendMessage> + Unpin + Send,
        PgWireClientError: From<<C as Sink<PgWireFrontendMessage>>::Error>,
    {
        self.started.store(true, Ordering::SeqCst);
        let config = client.config();
        let mut startup = Startup::new();
        let (major, minor) = config.get_protocol_version().version_number();
        startup.protocol_number_major = major;
        startup.protocol_number_minor = minor;
        let params = [
            ("user", config.get_user()),
            ("database", config.get_dbname()),
            ("application_name", config.get_application_name()),
            ("replication", self.replication.then_some("database")),
        ];
        for (name, value) in params {
            if let Some(value) = value {
                startup
                    .parameters
                    .insert(name.to_string(), value.to_string());
            }
        }
        client.send(PgWireFrontendMessage::Startup(startup)).await?;
        Ok(())
    }

    async fn on_authentication<C>(
        &mut self,
        client: &mut C,
        message: Authentication,
    ) -> PgWireClientResult<()>
    where
        C: ClientInfo
            + Stream<Item = PgWireResult<PgWireBackendMessage>>
            + Sink<PgWireFrontendMessage>
            + Unpin
            + Send,
        PgWireClientError: From<<C as Sink<PgWireFrontendMessage>>::Error>,
    {
        self.inner.on_authentication(client, message).await
    }

    async fn on_backend_key<C>(
        &mut self,
        client: &mut C,
        message: BackendKeyData,
    ) -> PgWireClientResult<()>
    where
        C: ClientInfo + Sink<PgWireFrontendMessage> + Unpin + Send,
        PgWireClientError: From<<C as Sink<PgWireFrontendMessage>>::Error>,
    {
        self.inner.on_backend_key(client, message).await
    }

    async fn on_ready_for_query<C>(
        &mut self,
        client: &mut C,
        message: ReadyForQuery,
    ) -> PgWireClientResult<ServerInformation>
    where
        C: ClientInfo + Sink<PgWireFrontendMessage> + Unpin + Send,
        PgWireClientError: From<<C as Sink<PgWireFrontendMessage>>::Error>,
    {
        self.inner.on_ready_for_query(client, message).await
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
