//! Replication connections (startup parameter `replication`): besides
//! SQL they accept the commands a secondary sends — IDENTIFY_SYSTEM,
//! BASE_BACKUP (CopyOut of a checkpoint) and START_REPLICATION (CopyBoth:
//! batches out, acknowledgements in), as PostgreSQL's walsender does.

use duet_replication::sender::{Peer, ReplicationCommand, StartError};
use duet_sql::{Column, DataType, QueryResult, SqlError, SqlState, Value};
use futures::FutureExt;
use pgwire::messages::copy::{CopyBothResponse, CopyData, CopyDone, CopyOutResponse};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::connection::{Backend, ConnError};

/// Who the replication connection belongs to.
#[derive(Debug, Clone)]
pub(crate) struct WalSender {
    pub(crate) pid: i32,
    pub(crate) user: String,
    pub(crate) application_name: String,
}

/// How long a shutting-down primary waits for its secondary to flush the
/// last commits before it closes the stream.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a draining stream checks whether the secondary has it all.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// A secondary reports every second; silent this long (or not taking what
/// is sent), it is gone (a crash, a half-open connection) and the stream
/// ends, as with PostgreSQL's wal_sender_timeout.
const SENDER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn replication_timeout() -> ConnError {
    tracing::warn!("the secondary stopped answering; its stream ends");
    ConnError::Fatal(SqlError::new(
        SqlState::QUERY_CANCELED,
        "terminating walsender process due to replication timeout",
    ))
}

fn repl_error(e: duet_replication::ReplError) -> SqlError {
    SqlError::new(SqlState(e.sqlstate()), e.to_string())
}

impl Backend {
    /// Runs a replication command; ReadyForQuery follows.
    pub(crate) async fn replication_command(
        &mut self,
        sender: WalSender,
        command: ReplicationCommand,
    ) -> Result<(), ConnError> {
        let result = match command {
            ReplicationCommand::IdentifySystem => self.identify_system().await?,
            ReplicationCommand::BaseBackup => self.base_backup().await?,
            ReplicationCommand::CreateSlot { name, lsn } => {
                let done = self.replication().create_slot(&name, lsn);
                self.slot_result(done, "CREATE_REPLICATION_SLOT").await?
            }
            ReplicationCommand::DropSlot { name } => {
                let done = self.replication().drop_slot(&name);
                self.slot_result(done, "DROP_REPLICATION_SLOT").await?
            }
            ReplicationCommand::StartReplication(req) => {
                let peer = Peer {
                    pid: sender.pid,
                    application_name: sender.application_name.clone(),
                    client_addr: self.conn.peer.ip().to_string(),
                    user: sender.user.clone(),
                };
                let shipper = self.replication().start_shipper(&req, peer);
                match shipper {
                    Ok(shipper) => self.stream(shipper).await?,
                    Err(StartError::CopyRequired(why)) => Err(SqlError::new(
                        SqlState(duet_replication::receiver::COPY_REQUIRED),
                        format!("copy required: {why}"),
                    )),
                    Err(StartError::Repl(e)) => Err(repl_error(e)),
                }
            }
        };
        if let Err(e) = result {
            self.send_error(&e).await?;
        }
        self.ready_for_query().await
    }

    async fn slot_result(
        &mut self,
        done: duet_replication::ReplResult<()>,
        tag: &str,
    ) -> Result<Result<(), SqlError>, ConnError> {
        if let Err(e) = done {
            return Ok(Err(repl_error(e)));
        }
        self.conn
            .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag.into(),
            )))
            .await?;
        Ok(Ok(()))
    }

    fn replication(&self) -> &std::sync::Arc<duet_replication::Replication> {
        &self.replication
    }

    async fn identify_system(&mut self) -> Result<Result<(), SqlError>, ConnError> {
        let fields = match self.replication().identify() {
            Ok(f) => f,
            Err(e) => return Ok(Err(repl_error(e))),
        };
        let result = QueryResult {
            tag: "IDENTIFY_SYSTEM".into(),
            columns: Some(
                fields
                    .iter()
                    .map(|(name, _)| Column {
                        name: name.to_string(),
                        data_type: DataType::Text,
                        table_oid: 0,
                        column_id: 0,
                    })
                    .collect(),
            ),
            rows: vec![fields.into_iter().map(|(_, v)| Value::Text(v)).collect()],
            copy: None,
        };
        self.send_simple_result(result).await
    }

    async fn base_backup(&mut self) -> Result<Result<(), SqlError>, ConnError> {
        let mut frames = match self.replication().base_backup() {
            Ok(f) => f,
            Err(e) => return Ok(Err(repl_error(e))),
        };
        self.conn
            .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                1,
                0,
                vec![],
            )))
            .await?;
        while let Some(frame) = frames.recv().await {
            match frame {
                Ok(data) => {
                    self.conn
                        .send(PgWireBackendMessage::CopyData(CopyData::new(data)))
                        .await?
                }
                // After CopyOutResponse an error ends the copy.
                Err(e) => return Ok(Err(repl_error(e))),
            }
        }
        self.conn
            .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
            .await?;
        self.conn
            .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                "BASE_BACKUP".into(),
            )))
            .await?;
        Ok(Ok(()))
    }

    /// Sends `first` and whatever else is ready without waiting, then
    /// flushes once (next_frame is cancel-safe).
    async fn send_frames(
        &mut self,
        shipper: &mut duet_replication::sender::Shipper,
        first: bytes::Bytes,
    ) -> Result<Result<(), SqlError>, ConnError> {
        self.conn
            .send(PgWireBackendMessage::CopyData(CopyData::new(first)))
            .await?;
        for _ in 0..256 {
            match shipper.next_frame().now_or_never() {
                Some(Ok(Some(data))) => {
                    self.conn
                        .send(PgWireBackendMessage::CopyData(CopyData::new(data)))
                        .await?;
                }
                Some(Err(e)) => return Ok(Err(repl_error(e))),
                // Stop point sent or nothing ready: the next turn of the
                // stream loop sees it.
                Some(Ok(None)) | None => break,
            }
        }
        self.conn.flush().await?;
        Ok(Ok(()))
    }

    /// START_REPLICATION: ships until the secondary stops or goes away.
    async fn stream(
        &mut self,
        mut shipper: duet_replication::sender::Shipper,
    ) -> Result<Result<(), SqlError>, ConnError> {
        self.conn
            .send(PgWireBackendMessage::CopyBothResponse(
                CopyBothResponse::new(1, 0, vec![]),
            ))
            .await?;
        self.conn.flush().await?;
        let mut sending = true;
        // At shutdown the stream goes on until the secondary has flushed
        // every commit (or SHUTDOWN_DRAIN passes), then ends with CopyDone
        // and FATAL 57P01, as PostgreSQL's walsender does.
        let mut drain_rx = self.streams_drain.clone();
        let shutdown = crate::server::shutdown_signalled(&mut drain_rx);
        tokio::pin!(shutdown);
        let mut draining: Option<tokio::time::Instant> = None;
        let mut drain_tick = tokio::time::interval(DRAIN_POLL);
        let mut heard = tokio::time::Instant::now();
        loop {
            if let Some(deadline) = draining {
                if shipper.secondary_has_everything() || tokio::time::Instant::now() >= deadline {
                    if sending {
                        self.conn
                            .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
                            .await?;
                    }
                    return Err(ConnError::Fatal(crate::connection::admin_shutdown()));
                }
            }
            tokio::select! {
                _ = &mut shutdown, if draining.is_none() => {
                    draining = Some(tokio::time::Instant::now() + SHUTDOWN_DRAIN);
                }
                _ = drain_tick.tick(), if draining.is_some() => {}
                _ = tokio::time::sleep_until(heard + SENDER_TIMEOUT) => {
                    return Err(replication_timeout());
                }
                frame = shipper.next_frame(), if sending => match frame {
                    Ok(Some(data)) => {
                        let sent = tokio::time::timeout_at(
                            heard + SENDER_TIMEOUT,
                            self.send_frames(&mut shipper, data),
                        );
                        match sent.await {
                            Ok(result) => {
                                if let Err(e) = result? {
                                    return Ok(Err(e));
                                }
                            }
                            Err(_) => return Err(replication_timeout()),
                        }
                    }
                    Ok(None) => {
                        // Stop point sent: the copy is over from our side.
                        self.conn.send(PgWireBackendMessage::CopyDone(CopyDone::new())).await?;
                        self.conn.flush().await?;
                        sending = false;
                    }
                    Err(e) => return Ok(Err(repl_error(e))),
                },
                msg = self.conn.recv() => match msg? {
                    Some(PgWireFrontendMessage::CopyData(d)) => {
                        heard = tokio::time::Instant::now();
                        if let Err(e) = shipper.on_message(&d.data) {
                            return Ok(Err(repl_error(e)));
                        }
                    }
                    Some(PgWireFrontendMessage::CopyDone(_)) => {
                        if sending {
                            self.conn.send(PgWireBackendMessage::CopyDone(CopyDone::new())).await?;
                        }
                        break;
                    }
                    Some(PgWireFrontendMessage::CopyFail(f)) => {
                        return Ok(Err(SqlError::new(
                            SqlState::QUERY_CANCELED,
                            format!("replication stream failed on the secondary: {}", f.message),
                        )));
                    }
                    Some(PgWireFrontendMessage::Terminate(_)) | None => return Err(ConnError::Closed),
                    Some(_) => {
                        return Err(crate::connection::fatal(
                            SqlState::PROTOCOL_VIOLATION,
                            "unexpected message during a replication stream",
                        ))
                    }
                },
            }
        }
        self.conn
            .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                "START_REPLICATION".into(),
            )))
            .await?;
        Ok(Ok(()))
    }
}
