//! The connection a secondary opens to its primary (SPEC 4.3): the same port
//! and protocol as clients, TLS per `sslmode` (ring provider only), a client
//! certificate per `sslcert`/`sslkey`, SCRAM-SHA-256 through pgwire's client,
//! and, for the stream, `replication=database` in the StartupMessage like a
//! PostgreSQL walsender connection. Errors say which step failed, because
//! `REPLICATE SET PRIMARY` reports exactly that to the DBA.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;
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
use pgwire::tokio::TlsConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::{Error as PemError, PemObject};

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
    /// of all DataRows (NULL as `None`). An ErrorResponse becomes
    /// [`ConnectError::Server`] once ReadyForQuery arrived, so the connection
    /// stays usable. A statement that starts COPY is a protocol error: use
    /// [`Self::client`] for streams.
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, ConnectError> {
        let query = PgWireFrontendMessage::Query(Query::new(sql.to_string()));
        self.client.send(query).await.map_err(|e| self.lost(e))?;
        let (mut rows, mut error) = (Vec::new(), None);
        loop {
            let message = match self.client.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(self.lost(e)),
                None => return Err(self.lost("connection closed")),
            };
            match message {
                PgWireBackendMessage::DataRow(row) if error.is_none() => {
                    rows.push(decode_data_row(row)?)
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
                    return error.map_or(Ok(rows), Err);
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
fn display_address(url: &PrimaryUrl) -> String {
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

/// The TLS connector for the URL's sslmode (`None` for disable), built on
/// the ring provider only. Reads sslrootcert/sslcert/sslkey now, so a bad
/// file is reported before any network traffic.
pub fn tls_connector(url: &PrimaryUrl) -> Result<Option<TlsConnector>, ConnectError> {
    if url.sslmode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |e: rustls::Error| ConnectError::Tls {
        address: display_address(url),
        reason: e.to_string(),
    };
    let roots = match (&url.sslrootcert, url.sslmode) {
        (Some(path), SslMode::VerifyCa | SslMode::VerifyFull) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("sslrootcert", path)? {
                roots
                    .add(cert)
                    .map_err(|e| cert_error("sslrootcert", path, e))?;
            }
            Some(Arc::new(roots))
        }
        (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
            return Err(ConnectError::Certificate {
                param: "sslrootcert",
                path: String::new(),
                reason: format!("sslmode={} needs sslrootcert", url.sslmode),
            })
        }
        _ => None,
    };
    let verifier = Arc::new(PrimaryCertVerifier {
        roots,
        check_name: url.sslmode == SslMode::VerifyFull,
        provider: provider.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&url.sslcert, &url.sslkey) {
        (Some(cert_path), Some(key_path)) => {
            let certs = read_certs("sslcert", cert_path)?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| match e {
                PemError::NoItemsFound => cert_error("sslkey", key_path, "no PEM private key"),
                e => cert_error("sslkey", key_path, e),
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                cert_error("sslkey", key_path, format!("unusable with sslcert: {e}"))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

fn cert_error(param: &'static str, path: &Path, reason: impl std::fmt::Display) -> ConnectError {
    ConnectError::Certificate {
        param,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// All PEM certificates of a file; an empty file is an error.
fn read_certs(
    param: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| cert_error(param, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(param, path, e))?;
    if certs.is_empty() {
        return Err(cert_error(param, path, "no PEM certificate"));
    }
    Ok(certs)
}

/// One verifier for every TLS sslmode. With `roots` (verify-ca/-full) the
/// chain must lead to sslrootcert, and with `check_name` (verify-full) the
/// certificate must name the URL's host. Without roots (allow/prefer/
/// require) any certificate is accepted, as in libpq. Handshake signatures
/// are always checked, so the peer must hold the certificate's key.
#[derive(Debug)]
struct PrimaryCertVerifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PrimaryCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            let algorithms = self.provider.signature_verification_algorithms.all;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                algorithms,
            )?;
            if self.check_name {
                verify_server_name(&cert, server_name)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::server::WebPkiClientVerifier;
    use rustls::ServerConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A CA, a server certificate for `primary.test` and a client
    /// certificate for `root`, as PEM files in a temp dir.
    struct Pki {
        dir: tempfile::TempDir,
        server: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    }

    fn write(dir: &Path, name: &str, pem: String) -> String {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    }

    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (cert, Issuer::new(params, key))
        };
        let (ca_cert, issuer) = ca("duet test CA");
        write(dir.path(), "ca.crt", ca_cert.pem());
        write(dir.path(), "other-ca.crt", ca("another CA").0.pem());
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            (params.signed_by(&key, &issuer).unwrap(), key)
        };
        let (client, client_key) = leaf(vec![], "root");
        write(dir.path(), "client.root.crt", client.pem());
        write(dir.path(), "client.root.key", client_key.serialize_pem());
        write(dir.path(), "garbage.crt", "not a certificate".into());
        let other_key = KeyPair::generate().unwrap().serialize_pem();
        write(dir.path(), "other.key", other_key);
        let (server, server_key) = leaf(vec!["primary.test".into()], "node");
        let key = PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).unwrap();
        Pki {
            dir,
            server: (vec![server.der().clone()], key),
        }
    }

    impl Pki {
        fn url(&self, host: &str, params: &str) -> PrimaryUrl {
            let params = params.replace("DIR", &self.dir.path().display().to_string());
            PrimaryUrl::parse(&format!(
                "postgresql://root@{host}:26257/defaultdb?{params}"
            ))
            .unwrap()
        }

        fn server_config(&self, client_auth: bool) -> Arc<ServerConfig> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = if client_auth {
                let mut roots = RootCertStore::empty();
                let ca = self.dir.path().join("ca.crt");
                roots
                    .add(CertificateDer::from_pem_file(ca).unwrap())
                    .unwrap();
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
                builder.with_client_cert_verifier(verifier.build().unwrap())
            } else {
                builder.with_no_client_auth()
            };
            let (chain, key) = (self.server.0.clone(), self.server.1.clone_key());
            Arc::new(builder.with_single_cert(chain, key).unwrap())
        }

        /// A TLS handshake over an in-memory pipe; Ok(CN of the client
        /// certificate the server saw, if any).
        async fn handshake(&self, url: &PrimaryUrl, client_auth: bool) -> Result<bool, String> {
            let connector = tls_connector(url).map_err(|e| e.to_string())?.unwrap();
            let (client_io, server_io) = tokio::io::duplex(64 * 1024);
            let acceptor = tokio_rustls::TlsAcceptor::from(self.server_config(client_auth));
            let server = tokio::spawn(async move {
                let mut tls = acceptor
                    .accept(server_io)
                    .await
                    .map_err(|e| e.to_string())?;
                let saw_cert = tls.get_ref().1.peer_certificates().is_some();
                tls.write_all(b"x").await.map_err(|e| e.to_string())?;
                Ok::<_, String>(saw_cert)
            });
            let name = ServerName::try_from(url.host.clone()).unwrap();
            let client = connector.connect(name, client_io).await;
            let mut client = client.map_err(|e| format!("client: {e}"))?;
            let mut byte = [0u8; 1];
            let read = client.read_exact(&mut byte).await;
            let saw_cert = server.await.unwrap().map_err(|e| format!("server: {e}"))?;
            read.map_err(|e| format!("client read: {e}"))?;
            Ok(saw_cert)
        }
    }

    #[tokio::test]
    async fn tls_modes_verify_what_they_promise() {
        let pki = pki();
        let full = "sslmode=verify-full&sslrootcert=DIR/ca.crt";
        assert_eq!(
            pki.handshake(&pki.url("primary.test", full), false).await,
            Ok(false)
        );
        let err = pki
            .handshake(&pki.url("other.test", full), false)
            .await
            .unwrap_err();
        assert!(err.contains("not valid for name \"other.test\""), "{err}");
        // verify-ca checks the chain only
        let ca = "sslmode=verify-ca&sslrootcert=DIR/ca.crt";
        assert!(pki
            .handshake(&pki.url("other.test", ca), false)
            .await
            .is_ok());
        let wrong_ca = "sslmode=verify-ca&sslrootcert=DIR/other-ca.crt";
        let err = pki
            .handshake(&pki.url("primary.test", wrong_ca), false)
            .await
            .unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
        // require (and prefer) accept any certificate
        assert!(pki
            .handshake(&pki.url("127.0.0.1", "sslmode=require"), false)
            .await
            .is_ok());
        assert!(tls_connector(&pki.url("h", "sslmode=disable"))
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn client_certificate_is_presented() {
        let pki = pki();
        let kwdb = "sslmode=verify-ca&sslcert=DIR/client.root.crt&sslkey=DIR/client.root.key&sslrootcert=DIR/ca.crt";
        assert_eq!(
            pki.handshake(&pki.url("localhost", kwdb), true).await,
            Ok(true)
        );
        let without = pki
            .handshake(&pki.url("localhost", "sslmode=require"), true)
            .await;
        assert!(without.is_err(), "{without:?}");
    }

    #[test]
    fn unreadable_certificate_files_are_named() {
        let pki = pki();
        let cases = [
            (
                "sslmode=verify-ca&sslrootcert=DIR/missing.crt",
                "sslrootcert",
                "missing.crt",
            ),
            (
                "sslmode=verify-ca&sslrootcert=DIR/garbage.crt",
                "sslrootcert",
                "garbage.crt",
            ),
            (
                "sslmode=require&sslcert=DIR/nope.crt&sslkey=DIR/client.root.key",
                "sslcert",
                "nope.crt",
            ),
            (
                "sslmode=require&sslcert=DIR/client.root.crt&sslkey=DIR/ca.crt",
                "sslkey",
                "ca.crt: no PEM private key",
            ),
            (
                "sslmode=require&sslcert=DIR/client.root.crt&sslkey=DIR/other.key",
                "sslkey",
                "other.key: unusable with sslcert",
            ),
        ];
        for (params, param, file) in cases {
            let err = tls_connector(&pki.url("h", params)).err().unwrap();
            assert_eq!(err.step(), "certificate");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("cannot use {param} file ")),
                "{text}"
            );
            assert!(text.contains(file), "{text}");
        }
    }

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(((body.len() + 4) as i32).to_be_bytes());
        out.extend(body);
        out
    }

    fn error_response(code: &str, text: &str) -> Vec<u8> {
        let body = format!("SFATAL\0C{code}\0M{text}\0\0");
        message(b'E', body.as_bytes())
    }

    async fn read_body(socket: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut body = vec![0; len];
        socket.read_exact(&mut body).await.unwrap();
        body
    }

    /// A minimal primary: refuses TLS, records the startup parameters,
    /// answers `reject` to the startup or else AuthenticationOk, then
    /// answers each Query with one row ("1", NULL) or, for "bad", an error.
    async fn fake_primary(reject: Option<Vec<u8>>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let params = loop {
                let Ok(len) = socket.read_i32().await else {
                    return vec![]; // the client gave up after the TLS refusal
                };
                let body = read_body(&mut socket, len as usize - 4).await;
                if body[..4] == 80877103i32.to_be_bytes() {
                    socket.write_all(b"N").await.unwrap();
                    continue;
                }
                let text = String::from_utf8(body[4..].to_vec()).unwrap();
                break text
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
            };
            if let Some(reject) = reject {
                socket.write_all(&reject).await.unwrap();
                return params;
            }
            let mut out = message(b'R', &0i32.to_be_bytes());
            out.extend(message(b'S', b"in_hot_standby\0off\0"));
            out.extend(message(b'K', &[0, 0, 0, 7, 0, 0, 0, 9]));
            out.extend(message(b'Z', b"I"));
            socket.write_all(&out).await.unwrap();
            while let Ok(tag) = socket.read_u8().await {
                let len = socket.read_i32().await.unwrap() as usize;
                let body = read_body(&mut socket, len - 4).await;
                if tag != b'Q' {
                    break;
                }
                let mut out = if body.starts_with(b"bad") {
                    error_response("42P01", "relation \"nope\" does not exist")
                } else {
                    let mut row = 2i16.to_be_bytes().to_vec();
                    row.extend(1i32.to_be_bytes());
                    row.extend(b"1");
                    row.extend((-1i32).to_be_bytes());
                    let mut out = message(b'D', &row);
                    out.extend(message(b'C', b"SELECT 1\0"));
                    out
                };
                out.extend(message(b'Z', b"I"));
                socket.write_all(&out).await.unwrap();
            }
            params
        });
        (port, task)
    }

    #[tokio::test]
    async fn replication_startup_and_simple_query() {
        let (port, server) = fake_primary(None).await;
        let url = PrimaryUrl::parse(&format!(
            "postgresql://repl@127.0.0.1:{port}/app?sslmode=prefer"
        ))
        .unwrap();
        let mut conn = connect(&url, true).await.unwrap();
        assert_eq!(conn.server_parameter("in_hot_standby"), Some("off"));
        assert_eq!(conn.process_id(), 7);
        let rows = conn.simple_query("SELECT 1, NULL").await.unwrap();
        assert_eq!(rows, vec![vec![Some("1".to_string()), None]]);
        let err = conn.simple_query("bad").await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("42P01"));
        assert_eq!(err.step(), "server");
        // the connection is still usable after an error
        assert_eq!(conn.simple_query("SELECT 1").await.unwrap().len(), 1);
        conn.close().await.unwrap();
        let params = server.await.unwrap();
        for pair in [
            ["user", "repl"],
            ["database", "app"],
            ["application_name", DEFAULT_APPLICATION_NAME],
            ["replication", "database"],
        ] {
            assert!(
                params.windows(2).any(|w| w == pair),
                "{pair:?} not in {params:?}"
            );
        }
    }

    #[tokio::test]
    async fn each_failing_step_is_named() {
        let rejection = error_response("28P01", "password authentication failed for user \"root\"");
        let (port, _server) = fake_primary(Some(rejection)).await;
        let url = PrimaryUrl::parse(&format!(
            "postgresql://root:hunter2@127.0.0.1:{port}?sslmode=disable&application_name=s2"
        ))
        .unwrap();
        let err = connect(&url, false).await.err().unwrap();
        assert_eq!((err.step(), err.sqlstate()), ("auth", Some("28P01")));
        assert!(!format!("{err} {err:?}").contains("hunter2"));

        let (port, _server) = fake_primary(Some(error_response("3D000", "no such db"))).await;
        let url =
            PrimaryUrl::parse(&format!("postgresql://127.0.0.1:{port}?sslmode=disable")).unwrap();
        let err = connect(&url, false).await.err().unwrap();
        assert_eq!((err.step(), err.sqlstate()), ("server", Some("3D000")));

        // TLS required but refused by the primary
        let (port, _server) = fake_primary(None).await;
        let url =
            PrimaryUrl::parse(&format!("postgresql://127.0.0.1:{port}?sslmode=require")).unwrap();
        let err = connect(&url, false).await.err().unwrap();
        assert_eq!(err.step(), "tls", "{err}");

        // nothing listening
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url =
            PrimaryUrl::parse(&format!("postgresql://127.0.0.1:{port}?sslmode=disable")).unwrap();
        let err = connect(&url, false).await.err().unwrap();
        assert_eq!(err.step(), "connect");
        assert!(err
            .to_string()
            .starts_with(&format!("cannot reach primary at 127.0.0.1:{port}: ")));
    }
}
