//! One client connection: TLS negotiation, startup, authentication, then
//! the message loop (simple query here, extended protocol in
//! `extended.rs`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use duet_sql::{Session, SqlError, SqlState};
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse, ReadyForQuery};
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, MaybeTls};
use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::{Framed, FramedParts};
use tracing::debug;

use duet_replication::sender::ReplicationCommand;

use crate::busy_poll::BusyPoll;
use crate::codec::{CodecError, PgCodec, Phase};
use crate::encode::{self, Severity};
use crate::extended::{ExtError, Extended};
use crate::server::{shutdown_signalled, CancelRegistry, Shared};
use crate::startup;

/// Why a connection ends.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// The socket failed; nothing more can be sent.
    Io(io::Error),
    /// Send this as a FATAL ErrorResponse, then close.
    Fatal(SqlError),
    /// The client went away.
    Closed,
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        ConnError::Io(e)
    }
}

pub(crate) fn fatal(state: SqlState, message: impl Into<String>) -> ConnError {
    ConnError::Fatal(SqlError::new(state, message))
}

/// Ends a session whose node installed a fresh copy of its primary (see
/// `Session::outlived_its_data`).
fn replaced_by_copy() -> SqlError {
    SqlError::new(
        SqlState::SERIALIZATION_FAILURE,
        "terminating connection due to conflict with recovery",
    )
    .with_detail("This node replaced its data with a fresh copy of its primary's.")
    .with_hint(
        "In a moment you should be able to reconnect to the database and repeat your command.",
    )
}

pub(crate) fn admin_shutdown() -> SqlError {
    SqlError::new(
        SqlState::ADMIN_SHUTDOWN,
        "terminating connection due to administrator command",
    )
}

/// The framed socket of one client.
pub(crate) struct Conn {
    framed: Framed<MaybeTls, PgCodec>,
    pub(crate) peer: SocketAddr,
    pub(crate) ssl: bool,
    /// End of the authentication window; None once the session runs.
    pub(crate) deadline: Option<Instant>,
    busy_poll: BusyPoll,
}

impl Conn {
    fn new(
        negotiated: Framed<MaybeTls, pgwire::tokio::server::PgWireMessageServerCodec<()>>,
        peer: SocketAddr,
        deadline: Instant,
        busy_poll: BusyPoll,
    ) -> Conn {
        let old = negotiated.into_parts();
        let ssl = matches!(old.io, MaybeTls::Tls(_));
        let mut parts = FramedParts::new(old.io, PgCodec::new());
        parts.read_buf = old.read_buf;
        parts.write_buf = old.write_buf;
        Conn {
            framed: Framed::from_parts(parts),
            peer,
            ssl,
            deadline: Some(deadline),
            busy_poll,
        }
    }

    /// The client's leaf certificate (DER), if it presented one; rustls has
    /// already verified it against the CA.
    pub(crate) fn client_certificate(&self) -> Option<Vec<u8>> {
        match self.framed.get_ref() {
            MaybeTls::Tls(tls) => tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|c| c.as_ref().to_vec()),
            _ => None,
        }
    }

    /// Queues a message (sent at the next flush or when the buffer fills).
    pub(crate) async fn send(&mut self, msg: PgWireBackendMessage) -> Result<(), ConnError> {
        match self.deadline {
            Some(d) => tokio::time::timeout_at(d, self.framed.feed(msg))
                .await
                .map_err(|_| auth_timeout())??,
            None => self.framed.feed(msg).await?,
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<(), ConnError> {
        match self.deadline {
            Some(d) => {
                tokio::time::timeout_at(d, SinkExt::<PgWireBackendMessage>::flush(&mut self.framed))
                    .await
                    .map_err(|_| auth_timeout())??
            }
            None => SinkExt::<PgWireBackendMessage>::flush(&mut self.framed).await?,
        }
        Ok(())
    }

    /// The next message; None at EOF.
    pub(crate) async fn recv(&mut self) -> Result<Option<PgWireFrontendMessage>, ConnError> {
        let next = match self.deadline {
            Some(d) => tokio::time::timeout_at(d, self.framed.next())
                .await
                .map_err(|_| auth_timeout())?,
            None => self.framed.next().await,
        };
        self.busy_poll.end_wait();
        frame_result(next)
    }

    /// The next message of a running session if it is already here or
    /// arrives while busy polling (see busy_poll.rs); None: wait for it
    /// with [`Conn::recv`].
    pub(crate) async fn recv_soon(
        &mut self,
    ) -> Option<Result<Option<PgWireFrontendMessage>, ConnError>> {
        if let Some(next) = self.framed.next().now_or_never() {
            return Some(frame_result(next));
        }
        let deadline = self.busy_poll.start_wait()?;
        while BusyPoll::keep_polling(deadline) {
            // Yielding to the runtime lets the shard poll its I/O driver
            // without blocking (and run any task that turns up) before
            // this task goes on; yielding the CPU lets a thread woken on
            // it (the client, on a small machine) run at once.
            std::thread::yield_now();
            tokio::task::yield_now().await;
            if let Some(next) = self.framed.next().now_or_never() {
                self.busy_poll.end_wait();
                return Some(frame_result(next));
            }
        }
        None
    }

    pub(crate) fn set_phase(&mut self, phase: Phase) {
        self.framed.codec_mut().phase = phase;
    }

    /// Best effort: FATAL ErrorResponse, flush, close.
    async fn send_fatal(&mut self, err: &SqlError) {
        self.deadline = Some(Instant::now() + Duration::from_secs(5));
        if self
            .send(encode::error_response(err, Severity::Fatal))
            .await
            .is_ok()
        {
            let _ = self.flush().await;
        }
        // A peer that takes nothing (half-open) must not hold the task.
        let close = SinkExt::<PgWireBackendMessage>::close(&mut self.framed);
        let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
    }
}

/// A decoded frame (or its error) as a message for the session.
fn frame_result(
    next: Option<Result<PgWireFrontendMessage, CodecError>>,
) -> Result<Option<PgWireFrontendMessage>, ConnError> {
    match next {
        None => Ok(None),
        Some(Ok(msg)) => Ok(Some(msg)),
        Some(Err(CodecError::Io(e))) => Err(ConnError::Io(e)),
        Some(Err(CodecError::Protocol(m))) => Err(fatal(SqlState::PROTOCOL_VIOLATION, m)),
        Some(Err(CodecError::Unsupported(m))) => Err(fatal(SqlState::FEATURE_NOT_SUPPORTED, m)),
    }
}

/// Runs a statement's future. The engine does blocking work inside
/// `execute` (RocksDB I/O, long scans, pg_sleep); on a multi-thread runtime
/// the worker first hands its other tasks to a fresh thread, so accepting,
/// cancel requests and the other sessions never stall behind a statement.
/// Statements that were quick last time (point reads and writes) run inline:
/// the hand-off costs more than they do.
pub(crate) async fn run_statement<F: std::future::Future>(short: bool, statement: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if short {
        return statement.await;
    }
    // (Looking the runtime up clones a handle shared by every task.)
    let handle = Handle::current();
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(statement))
    } else {
        statement.await
    }
}

fn auth_timeout() -> ConnError {
    fatal(
        SqlState::QUERY_CANCELED,
        "canceling authentication due to timeout",
    )
}

/// Serves one accepted TCP connection to its end.
pub(crate) async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let timeout = Duration::from_secs(shared.config.authentication_timeout.max(1));
    let deadline = Instant::now() + timeout;
    let mut shutdown = shared.shutdown.clone();

    let negotiated = tokio::select! {
        r = tokio::time::timeout_at(deadline, negotiate_tls::<()>(tcp, tls)) => r,
        _ = shutdown_signalled(&mut shutdown) => return,
    };
    let framed = match negotiated {
        Ok(Ok(Some(framed))) => framed,
        Ok(Ok(None)) => {
            debug!(%peer, "direct TLS connection but TLS is not configured (insecure mode)");
            return;
        }
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "TLS negotiation failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "no startup message before the authentication timeout");
            return;
        }
    };
    let busy_poll = BusyPoll::new(Duration::from_micros(shared.config.busy_poll_us));
    let mut conn = Conn::new(framed, peer, deadline, busy_poll);

    let outcome = tokio::select! {
        r = startup::startup(&mut conn, &shared) => r,
        _ = shutdown_signalled(&mut shutdown) => Err(ConnError::Fatal(admin_shutdown())),
    };
    let started = match outcome {
        Ok(Some(started)) => started,
        Ok(None) => return,
        Err(e) => {
            end_with(&mut conn, e).await;
            return;
        }
    };
    let startup::Started {
        session,
        pid,
        user,
        database,
        slot,
        walsender,
    } = started;
    let _cancel_key = CancelKey {
        registry: &shared.cancel,
        pid,
    };
    let span = tracing::Span::current();
    span.record("pid", pid);
    span.record("user", user.as_str());
    span.record("db", database.as_str());
    debug!(tls = conn.ssl, "session started");

    let mut backend = Backend {
        conn,
        session,
        ext: Extended::default(),
        shutdown,
        streams_drain: shared.streams_drain.subscribe(),
        walsender,
        replication: shared.replication.clone(),
        statement: String::new(),
    };
    // A panic in this session's code ends this session only: the client
    // gets XX000, the log the statement, and the node goes on.
    let result = match std::panic::AssertUnwindSafe(backend.run()).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(session_panicked(&*panic, &backend.statement)),
    };
    let Backend {
        mut conn, session, ..
    } = backend;
    if let Err(e) = result {
        end_with(&mut conn, e).await;
    }
    // Closing rolls back the open transaction; if that panics too, the
    // task ends here (tokio catches it) and the node still goes on.
    if let Err(panic) = std::panic::AssertUnwindSafe(session.close()).catch_unwind().await {
        tracing::error!(panic = panic_message(&*panic), "closing a session panicked");
    }
    drop(slot);
    debug!(%peer, %user, pid, "session ended");
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Logs a session's panic with its statement and makes the client's error.
fn session_panicked(panic: &(dyn std::any::Any + Send), statement: &str) -> ConnError {
    let message = panic_message(panic);
    tracing::error!(panic = message, statement, "session panicked; ending it");
    fatal(
        SqlState::INTERNAL_ERROR,
        format!("internal error: {message}; the session was ended"),
    )
}

async fn end_with(conn: &mut Conn, e: ConnError) {
    match e {
        ConnError::Fatal(err) => {
            debug!(peer = %conn.peer, code = err.state.0, message = %err.message, "closing connection with FATAL error");
            conn.send_fatal(&err).await;
        }
        ConnError::Io(e) => debug!(peer = %conn.peer, error = %e, "connection failed"),
        ConnError::Closed => debug!(peer = %conn.peer, "client closed the connection"),
    }
}

/// Removes a session's cancel key when the session ends.
struct CancelKey<'a> {
    registry: &'a CancelRegistry,
    pid: i32,
}

impl Drop for CancelKey<'_> {
    fn drop(&mut self) {
        self.registry.unregister(self.pid);
    }
}

/// A running session: the socket, the SQL session and the extended
/// protocol state.
pub(crate) struct Backend {
    pub(crate) conn: Conn,
    pub(crate) session: Session,
    pub(crate) ext: Extended,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// See `Shared::streams_drain`.
    pub(crate) streams_drain: watch::Receiver<bool>,
    /// Set on a replication connection: it also takes replication commands.
    walsender: Option<crate::walsender::WalSender>,
    pub(crate) replication: Arc<duet_replication::Replication>,
    /// The text of the last Query or Parse, for the log if a panic ends
    /// the session (the buffer is reused).
    statement: String,
}

impl Backend {
    async fn run(&mut self) -> Result<(), ConnError> {
        // One shutdown future for the whole session, not one per message:
        // registering a waiter per message showed up in profiles.
        let mut shutdown_rx = self.shutdown.clone();
        let shutdown = shutdown_signalled(&mut shutdown_rx);
        tokio::pin!(shutdown);
        loop {
            // A message that is already there (or comes while busy
            // polling) goes first: the shutdown future is only polled when
            // the session would wait anyway
            // (polling it per message showed up in profiles); a shutdown
            // also cancels running statements through the cancel registry.
            let msg = match self.conn.recv_soon().await {
                Some(msg) => msg?,
                None => tokio::select! {
                    biased;
                    msg = self.conn.recv() => msg?,
                    _ = &mut shutdown => {
                        return Err(ConnError::Fatal(admin_shutdown()));
                    }
                },
            };
            let Some(msg) = msg else {
                return Ok(());
            };
            if self.session.outlived_its_data() {
                return Err(ConnError::Fatal(replaced_by_copy()));
            }
            // After an error in an extended-protocol message everything up
            // to the next Sync is skipped.
            if self.ext.discarding
                && !matches!(
                    msg,
                    PgWireFrontendMessage::Sync(_) | PgWireFrontendMessage::Terminate(_)
                )
            {
                continue;
            }
            match msg {
                PgWireFrontendMessage::Query(q) => {
                    self.statement.clear();
                    self.statement.push_str(&q.query);
                    let command = self
                        .walsender
                        .as_ref()
                        .and_then(|_| ReplicationCommand::parse(&q.query));
                    match (command, self.walsender.clone()) {
                        (Some(command), Some(sender)) => {
                            self.replication_command(sender, command).await?
                        }
                        _ => self.simple_query(&q.query).await?,
                    }
                }
                PgWireFrontendMessage::Parse(m) => {
                    self.statement.clear();
                    self.statement.push_str(&m.query);
                    let r = self.on_parse(m).await;
                    self.extended_outcome(r).await?;
                }
                PgWireFrontendMessage::Bind(m) => {
                    let r = self.on_bind(m).await;
                    self.extended_outcome(r).await?;
                }
                PgWireFrontendMessage::Describe(m) => {
                    let r = self.on_describe(m).await;
                    self.extended_outcome(r).await?;
                }
                PgWireFrontendMessage::Execute(m) => {
                    let r = self.on_execute(m).await;
                    self.extended_outcome(r).await?;
                }
                PgWireFrontendMessage::Close(m) => {
                    let r = self.on_close(m).await;
                    self.extended_outcome(r).await?;
                }
                PgWireFrontendMessage::Sync(_) => {
                    self.ext.discarding = false;
                    if std::mem::take(&mut self.ext.implicit) {
                        if let Err(e) = self.session.end_implicit().await {
                            self.send_error(&e).await?;
                        }
                    }
                    self.ready_for_query().await?;
                }
                PgWireFrontendMessage::Flush(_) => self.conn.flush().await?,
                PgWireFrontendMessage::Terminate(_) => return Ok(()),
                // Left over from a failed COPY: ignored, as PostgreSQL does.
                PgWireFrontendMessage::CopyData(_)
                | PgWireFrontendMessage::CopyDone(_)
                | PgWireFrontendMessage::CopyFail(_) => {}
                other => {
                    return Err(fatal(
                        SqlState::PROTOCOL_VIOLATION,
                        format!("invalid frontend message type {}", message_name(&other)),
                    ))
                }
            }
        }
    }

    /// Sends the error of an extended-protocol message and starts skipping
    /// to the next Sync.
    async fn extended_outcome(&mut self, r: Result<(), ExtError>) -> Result<(), ConnError> {
        match r {
            Ok(()) => Ok(()),
            Err(ExtError::Conn(e)) => Err(e),
            Err(ExtError::Sql(e)) => {
                self.check_shutdown(&e)?;
                self.send_notices().await?;
                self.send_error(&e).await?;
                self.ext.discarding = true;
                Ok(())
            }
        }
    }

    /// A statement canceled, or refused by the write fence, because the
    /// server is shutting down ends the session with 57P01 instead of
    /// reporting the cancel (or a read-only node it is not).
    fn check_shutdown(&self, e: &SqlError) -> Result<(), ConnError> {
        let by_shutdown =
            e.state == SqlState::QUERY_CANCELED || e.state == SqlState::READ_ONLY_SQL_TRANSACTION;
        if by_shutdown && *self.shutdown.borrow() {
            Err(ConnError::Fatal(admin_shutdown()))
        } else {
            Ok(())
        }
    }

    pub(crate) async fn send_error(&mut self, e: &SqlError) -> Result<(), ConnError> {
        debug!(code = e.state.0, message = %e.message, "statement failed");
        self.conn
            .send(encode::error_response(e, Severity::Error))
            .await
    }

    pub(crate) async fn send_notices(&mut self) -> Result<(), ConnError> {
        for notice in self.session.take_notices() {
            self.conn.send(encode::notice_response(&notice)).await?;
        }
        Ok(())
    }

    /// Notices, changed parameters, ReadyForQuery, flush.
    pub(crate) async fn ready_for_query(&mut self) -> Result<(), ConnError> {
        self.send_notices().await?;
        for (name, value) in self.session.take_parameter_changes() {
            self.conn
                .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await?;
        }
        let state = self.session.transaction_state();
        if state == duet_sql::TransactionState::Idle {
            // Portals live until the end of their transaction.
            self.ext.portals.clear();
        }
        self.conn
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                encode::transaction_status(state),
            )))
            .await?;
        self.conn.flush().await
    }

    async fn simple_query(&mut self, sql: &str) -> Result<(), ConnError> {
        self.ext.portals.remove("");
        match self.session.parse(sql) {
            Err(e) => {
                self.send_notices().await?;
                self.send_error(&e).await?;
            }
            Ok(statements) if statements.is_empty() => {
                self.conn
                    .send(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            Ok(statements) => {
                let implicit = statements.len() > 1;
                if implicit {
                    self.session.begin_implicit();
                }
                let mut failed = false;
                for stmt in &statements {
                    let result = match stmt.deallocation() {
                        Some(target) => self.deallocate(target),
                        None => {
                            run_statement(stmt.is_short(), self.session.execute(stmt, Vec::new()))
                                .await
                        }
                    };
                    self.send_notices().await?;
                    let result = match result {
                        Ok(r) if r.copy.is_some() => self.run_copy(r).await?,
                        other => other,
                    };
                    let outcome = match result {
                        Ok(result) => self.send_simple_result(result).await?,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = outcome {
                        self.check_shutdown(&e)?;
                        self.send_error(&e).await?;
                        failed = true;
                        break;
                    }
                }
                if implicit {
                    if let Err(e) = self.session.end_implicit().await {
                        if !failed {
                            self.send_error(&e).await?;
                        }
                    }
                }
            }
        }
        self.ready_for_query().await
    }

    /// RowDescription, DataRows (text) and CommandComplete of one
    /// statement of a simple query. The inner error is an encoding failure
    /// to report as the statement's error.
    pub(crate) async fn send_simple_result(
        &mut self,
        result: duet_sql::QueryResult,
    ) -> Result<Result<(), SqlError>, ConnError> {
        if let Some(columns) = &result.columns {
            let formats = vec![encode::FORMAT_TEXT; columns.len()];
            self.conn
                .send(encode::row_description(columns, &formats))
                .await?;
            for row in &result.rows {
                match encode::data_row(row, columns, &formats, self.session.time_zone()) {
                    Ok(msg) => self.conn.send(msg).await?,
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
        self.conn
            .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                result.tag,
            )))
            .await?;
        Ok(Ok(()))
    }
}

fn message_name(msg: &PgWireFrontendMessage) -> &'static str {
    match msg {
        PgWireFrontendMessage::PasswordMessageFamily(_) => "112 ('p') outside authentication",
        PgWireFrontendMessage::PortalSuspended(_) => "115 ('s')",
        PgWireFrontendMessage::Startup(_) => "startup packet after startup",
        PgWireFrontendMessage::CancelRequest(_) => "cancel request after startup",
        PgWireFrontendMessage::SslNegotiation(_) => "SSL request after startup",
        _ => "unexpected here",
    }
}
