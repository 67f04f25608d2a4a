//! The listener: opens the database, loads TLS, accepts connections and
//! hands each to its own task; shuts down gracefully on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use duet_sql::{Database, DatabaseOptions, Interrupt, SqlError};
use pgwire::messages::startup::SecretKey;
use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::config::{Config, HbaRule};
use crate::hba::{self, HbaError};
use crate::tls::{self, TlsError};

/// How long shutdown waits for sessions to end before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server could not start (or stopped). Every message says what to
/// do about it. Underlying errors are part of the message (they often carry
/// the fix themselves) and deliberately not chained as `source()`, so that
/// printing the error with its causes does not repeat them.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the database in {dir}: {cause}")]
    Database { dir: String, cause: SqlError },
    #[error(
        "cannot load TLS certificates: {0}; or pass --insecure for local development without TLS"
    )]
    Tls(Box<TlsError>),
    #[error("invalid hba configuration: {0}")]
    Hba(HbaError),
    #[error("address {addr} is already in use; stop the other server or pass --listen")]
    AddressInUse { addr: String },
    #[error("cannot listen on {addr}: permission denied; use a port above 1023 or pass --listen")]
    PermissionDenied { addr: String },
    #[error("cannot listen on {addr}: the address is not available on this host; pass --listen with a local address, e.g. 127.0.0.1:26257")]
    AddressNotAvailable { addr: String },
    #[error("invalid listen address \"{addr}\": expected HOST:PORT, e.g. 127.0.0.1:26257")]
    BadAddress { addr: String },
    #[error("cannot listen on {addr}: {cause}")]
    Listen { addr: String, cause: io::Error },
    #[error("cannot install signal handlers: {0}")]
    Signal(io::Error),
    #[error("cannot start replication: {0}")]
    Replication(duet_replication::ReplError),
}

/// Cancel keys of the running sessions: pid -> (secret, interrupt).
#[derive(Default)]
pub(crate) struct CancelRegistry {
    map: Mutex<HashMap<i32, (i32, Interrupt)>>,
}

impl CancelRegistry {
    pub(crate) fn register(&self, pid: i32, secret: i32, interrupt: Interrupt) {
        if let Ok(mut map) = self.map.lock() {
            map.insert(pid, (secret, interrupt));
        }
    }

    pub(crate) fn unregister(&self, pid: i32) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&pid);
        }
    }

    /// Cancels the statement of session `pid` if `key` is its secret.
    pub(crate) fn cancel(&self, pid: i32, key: &SecretKey) -> bool {
        let interrupt = match self.map.lock() {
            Ok(map) => match map.get(&pid) {
                Some((secret, interrupt)) if key.as_i32() == Some(*secret) => interrupt.clone(),
                _ => return false,
            },
            Err(_) => return false,
        };
        interrupt.cancel();
        true
    }

    fn cancel_all(&self) {
        if let Ok(map) = self.map.lock() {
            for (_, interrupt) in map.values() {
                interrupt.cancel();
            }
        }
    }
}

/// State shared by every connection of one server.
pub(crate) struct Shared {
    pub(crate) db: Arc<Database>,
    pub(crate) replication: Arc<duet_replication::Replication>,
    pub(crate) config: Config,
    pub(crate) hba: RwLock<Arc<Vec<HbaRule>>>,
    /// TLS for new connections (None: insecure); SIGHUP may replace it.
    tls: RwLock<Option<TlsAcceptor>>,
    pub(crate) cancel: CancelRegistry,
    /// Sessions past the connection limit check.
    pub(crate) sessions: AtomicUsize,
    /// The SQL listener's address.
    pub(crate) local_addr: SocketAddr,
    next_pid: AtomicI32,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Set at shutdown once the node is closed for writes: replication
    /// streams then drain to a final LSN.
    pub(crate) streams_drain: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn hba_rules(&self) -> Arc<Vec<HbaRule>> {
        match self.hba.read() {
            Ok(rules) => rules.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn current_tls(&self) -> Option<TlsAcceptor> {
        match self.tls.read() {
            Ok(tls) => tls.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A fresh backend pid for BackendKeyData and pg_backend_pid().
    pub(crate) fn next_pid(&self) -> i32 {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        if pid > 0 {
            pid
        } else {
            // wrapped around after two billion connections: start over
            self.next_pid.store(10_001, Ordering::Relaxed);
            10_000
        }
    }
}

/// Holds a session slot; released on drop.
pub(crate) struct SessionSlot<'a>(&'a AtomicUsize);

impl Drop for SessionSlot<'_> {
    fn drop(&mut self) {
        let now = self.0.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
        metrics::gauge!("duet_connections").set(now as f64);
    }
}

impl Shared {
    /// Takes a session slot, or None when `max_connections` are in use.
    pub(crate) fn try_session_slot(&self) -> Option<SessionSlot<'_>> {
        let prev = self.sessions.fetch_add(1, Ordering::SeqCst);
        let slot = SessionSlot(&self.sessions);
        if prev >= self.config.max_connections {
            None
        } else {
            metrics::counter!("duet_connections_total").increment(1);
            metrics::gauge!("duet_connections").set((prev + 1) as f64);
            Some(slot)
        }
    }
}

/// The hba rules in effect: the configured ones, or the defaults.
fn effective_rules(config: &Config) -> Result<Vec<HbaRule>, HbaError> {
    if config.hba.is_empty() {
        Ok(hba::default_rules(config.insecure))
    } else {
        hba::validate_rules(&config.hba)?;
        Ok(config.hba.clone())
    }
}

/// A bound server, not yet accepting. Tests start one in-process on
/// 127.0.0.1:0 and read [`Server::local_addr`].
pub struct Server {
    listener: TcpListener,
    /// The HTTP endpoint's listener (None when `http_listen` is empty).
    http_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown_tx: Arc<watch::Sender<bool>>,
}

/// Controls a running server from elsewhere (tests, signal handlers,
/// configuration reloads).
#[derive(Clone)]
pub struct ServerHandle {
    shutdown_tx: Arc<watch::Sender<bool>>,
    shared: Arc<Shared>,
}

impl ServerHandle {
    /// Stops accepting and closes every session.
    pub fn shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }

    /// Replaces the hba rules for new connections (SIGHUP).
    pub fn reload_hba(&self, rules: Vec<HbaRule>) -> Result<(), HbaError> {
        let rules = if rules.is_empty() {
            hba::default_rules(self.shared.config.insecure)
        } else {
            hba::validate_rules(&rules)?;
            rules
        };
        match self.shared.hba.write() {
            Ok(mut guard) => *guard = Arc::new(rules),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(rules),
        }
        Ok(())
    }

    /// Applies a re-read configuration (SIGHUP): hba rules and, in secure
    /// mode, the certificates in its certs directory, for new connections;
    /// open sessions keep theirs. Nothing changes unless both load. Other
    /// keys need a restart.
    pub fn reload(&self, config: &Config) -> Result<(), ServerError> {
        let rules = effective_rules(config).map_err(ServerError::Hba)?;
        let tls = if self.shared.config.insecure {
            None
        } else {
            let tls_config = tls::load_server_tls(&config.certs_dir)
                .map_err(|e| ServerError::Tls(Box::new(e)))?;
            Some(TlsAcceptor::from(tls_config))
        };
        match self.shared.hba.write() {
            Ok(mut guard) => *guard = Arc::new(rules),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(rules),
        }
        match self.shared.tls.write() {
            Ok(mut guard) => *guard = tls,
            Err(poisoned) => *poisoned.into_inner() = tls,
        }
        Ok(())
    }

    /// Sessions currently open.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.load(Ordering::SeqCst)
    }
}

/// Attaches replication to the database: the SQL layer runs REPLICATE
/// statements through it, and it tells the SQL layer to drop its caches
/// when the node's data or role changes.
fn open_replication(
    db: &Arc<Database>,
    settings: &crate::config::ReplicationSettings,
) -> Result<Arc<duet_replication::Replication>, ServerError> {
    let weak = Arc::downgrade(db);
    let replication = duet_replication::Replication::open(
        db.store().clone(),
        Box::new(move || {
            if let Some(db) = weak.upgrade() {
                db.reset_caches();
            }
        }),
        duet_replication::ReplicationOptions {
            archive_dir: settings.archive_dir.clone(),
        },
    )
    .map_err(ServerError::Replication)?;
    replication.spawn_janitor(settings.max_slot_wal_keep_size_mb.saturating_mul(1 << 20));
    db.set_node_control(Arc::new(crate::node_control::ReplicationControl {
        replication: replication.clone(),
        sync_timeout: std::time::Duration::from_millis(settings.sync_timeout_ms),
        fallback_async: settings.sync_fallback.eq_ignore_ascii_case("async"),
        synchronous: duet_sql::SyncLevel::from_setting(&settings.synchronous_commit).is_some(),
    }));
    Ok(replication)
}

impl Server {
    /// Opens the database in `config.data_dir`, loads TLS (unless
    /// insecure) and binds `config.listen`.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let db = Database::open(
            &config.data_dir,
            DatabaseOptions {
                root_password: config.root_password.as_ref().map(|s| s.0.clone()),
                session_defaults: vec![(
                    "synchronous_commit".into(),
                    config.replication.synchronous_commit.clone(),
                )],
            },
        )
        .map_err(|cause| ServerError::Database {
            dir: config.data_dir.display().to_string(),
            cause,
        })?;
        Self::bind_with_database(config, db).await
    }

    /// Like [`Server::bind`] with an already open database.
    pub async fn bind_with_database(
        config: Config,
        db: Arc<Database>,
    ) -> Result<Server, ServerError> {
        let rules = effective_rules(&config).map_err(ServerError::Hba)?;
        let replication = open_replication(&db, &config.replication)?;
        let tls = if config.insecure {
            None
        } else {
            let tls_config = tls::load_server_tls(&config.certs_dir)
                .map_err(|e| ServerError::Tls(Box::new(e)))?;
            Some(TlsAcceptor::from(tls_config))
        };
        let listener = bind_listener(&config.listen).await?;
        let http_listener = match config.http_listen.as_str() {
            "" => None,
            addr => Some(bind_listener(addr).await?),
        };
        crate::http::metrics_handle();
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: config.listen.clone(),
                cause: source,
            })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            db,
            replication,
            config,
            hba: RwLock::new(Arc::new(rules)),
            tls: RwLock::new(tls),
            cancel: CancelRegistry::default(),
            sessions: AtomicUsize::new(0),
            local_addr,
            next_pid: AtomicI32::new(10_000 + (std::process::id() as i32 % 10_000)),
            shutdown: shutdown_rx,
            streams_drain: watch::channel(false).0,
        });
        Ok(Server {
            listener,
            http_listener,
            local_addr,
            shared,
            shutdown_tx: Arc::new(shutdown_tx),
        })
    }

    /// The address actually bound (with the real port for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The database this server serves.
    pub fn database(&self) -> Arc<Database> {
        self.shared.db.clone()
    }

    /// A handle to stop the server or reload its rules.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shutdown_tx: self.shutdown_tx.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Accepts connections until SIGINT, SIGTERM or [`ServerHandle::shutdown`].
    pub async fn serve(self) -> Result<(), ServerError> {
        let signal = shutdown_signal()?;
        self.serve_until(signal).await
    }

    /// Accepts connections until `signal` completes or
    /// [`ServerHandle::shutdown`] is called, then closes every session.
    pub async fn serve_until<F>(self, signal: F) -> Result<(), ServerError>
    where
        F: Future<Output = ()>,
    {
        let Server {
            listener,
            http_listener,
            local_addr,
            shared,
            shutdown_tx,
        } = self;
        let mut shutdown_rx = shared.shutdown.clone();
        if let Some(http) = http_listener {
            if let Ok(addr) = http.local_addr() {
                info!("HTTP endpoint (health checks, /metrics) on {addr}");
            }
            tokio::spawn(crate::http::serve(
                http,
                shared.replication.clone(),
                shared.shutdown.clone(),
            ));
        }
        let mut tasks = JoinSet::new();
        // PostgreSQL's floor for max_stack_depth is 100kB.
        let max_stack_depth = (shared.config.max_stack_depth_kb.max(100) as usize) << 10;
        duet_sql::depth::set_max_stack_depth(max_stack_depth);
        if std::env::var_os("DUET_TEST_HOOKS").is_some_and(|v| v == "1") {
            tracing::warn!("DUET_TEST_HOOKS=1: test-only functions (duet_test_panic) are on");
            duet_sql::testing::enable_panic_hook();
        }
        let stack_size = duet_sql::depth::session_stack_size(max_stack_depth);
        let shards = crate::shards::Shards::new(stack_size).map_err(|cause| ServerError::Listen {
            addr: local_addr.to_string(),
            cause,
        })?;
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => break,
                _ = shutdown_signalled(&mut shutdown_rx) => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        debug!(%peer, "connection accepted");
                        // The socket moves to its shard's I/O driver.
                        match tcp.into_std() {
                            Ok(tcp) => {
                                let (tls, shared) = (shared.current_tls(), shared.clone());
                                // Every log line of a session carries its
                                // client, and after startup its pid, user
                                // and database.
                                let span = tracing::info_span!(
                                    "session",
                                    %peer,
                                    pid = tracing::field::Empty,
                                    user = tracing::field::Empty,
                                    db = tracing::field::Empty,
                                );
                                tasks.spawn_on(
                                    tracing::Instrument::instrument(
                                        async move {
                                            match tokio::net::TcpStream::from_std(tcp) {
                                                Ok(tcp) => crate::connection::handle(tcp, peer, tls, shared).await,
                                                Err(e) => warn!(%peer, error = %e, "cannot register a connection"),
                                            }
                                        },
                                        span,
                                    ),
                                    &shards.next(),
                                );
                            }
                            Err(e) => warn!(%peer, error = %e, "cannot hand a connection to a shard"),
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => log_task_end(done),
            }
        }
        drop(listener);
        info!(addr = %local_addr, sessions = tasks.len(), "shutting down: no longer accepting connections");
        shutdown_tx.send_replace(true);
        shared.cancel.cancel_all();
        // No commit may land after a stream's last check: close the node
        // for writes (this waits for commits already past the fence), and
        // only then let the streams drain to the final LSN.
        shared.db.store().set_writable(false);
        shared.streams_drain.send_replace(true);
        let drain = async {
            while let Some(done) = tasks.join_next().await {
                log_task_end(done);
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            warn!(
                sessions = tasks.len(),
                "sessions did not close in time; dropping them"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        let engine = shared.db.store().engine();
        match duet_storage::blocking(|| engine.flush_for_shutdown()) {
            Ok(()) => info!("data flushed to disk"),
            Err(e) => warn!("flush at shutdown failed (the WAL has every commit): {e}"),
        }
        info!("server stopped");
        Ok(())
    }
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            error!(error = %e, "connection task panicked");
        }
    }
}

/// Completes once shutdown has been signalled.
pub(crate) async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            // sender gone: never signalled
            std::future::pending::<()>().await;
        }
    }
}

async fn bind_listener(addr: &str) -> Result<TcpListener, ServerError> {
    if !addr.contains(':') {
        return Err(ServerError::BadAddress { addr: addr.into() });
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => ServerError::AddressInUse { addr: addr.into() },
            io::ErrorKind::PermissionDenied => ServerError::PermissionDenied { addr: addr.into() },
            io::ErrorKind::AddrNotAvailable => {
                ServerError::AddressNotAvailable { addr: addr.into() }
            }
            io::ErrorKind::InvalidInput => ServerError::BadAddress { addr: addr.into() },
            _ if source.to_string().contains("lookup")
                || source.to_string().contains("resolve") =>
            {
                ServerError::BadAddress { addr: addr.into() }
            }
            _ => ServerError::Listen {
                addr: addr.into(),
                cause: source,
            },
        })
}

/// Completes on SIGINT or SIGTERM.
fn shutdown_signal() -> Result<impl Future<Output = ()>, ServerError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => info!("received SIGTERM"),
                _ = int.recv() => info!("received SIGINT"),
            }
            crate::systemd::stopping();
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
            info!("received Ctrl-C");
        })
    }
}

/// Re-reads the node's configuration (file, environment, flags) on SIGHUP.
pub type Reloader = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Runs a node's SQL server until SIGINT/SIGTERM.
pub async fn run(config: Config) -> Result<(), ServerError> {
    run_with_reload(config, None).await
}

/// Runs a node's SQL server until SIGINT/SIGTERM; on SIGHUP `reload`
/// (if any) re-reads the configuration and its hba rules and certificates
/// take effect for new connections.
pub async fn run_with_reload(config: Config, reload: Option<Reloader>) -> Result<(), ServerError> {
    let server = Server::bind(config).await?;
    let tls = if server.shared.current_tls().is_some() {
        "TLS"
    } else {
        "insecure, no TLS"
    };
    info!("listening on {} ({tls})", server.local_addr());
    if let Some(reload) = reload {
        spawn_reload_on_sighup(server.handle(), reload)?;
    }
    crate::systemd::ready();
    server.serve().await
}

/// Reloads on every SIGHUP; a configuration that does not load is logged
/// and the running one stays.
fn spawn_reload_on_sighup(handle: ServerHandle, reload: Reloader) -> Result<(), ServerError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).map_err(ServerError::Signal)?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                crate::systemd::reloading();
                match reload().and_then(|config| {
                    handle.reload(&config).map_err(|e| e.to_string())?;
                    Ok(config)
                }) {
                    Ok(config) => info!(
                        hba_rules = config.hba.len(),
                        certs_dir = %config.certs_dir.display(),
                        "SIGHUP: reloaded hba rules and certificates for new connections"
                    ),
                    Err(e) => {
                        error!("SIGHUP: configuration not reloaded, the running one stays: {e}")
                    }
                }
                crate::systemd::reloaded();
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (handle, reload);
    Ok(())
}
