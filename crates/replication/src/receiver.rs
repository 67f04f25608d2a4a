//! The secondary's side of the stream: validates the primary, makes the
//! initial copy when needed, then replays the primary's batches in LSN
//! order, acknowledging what it wrote, flushed and applied. Runs as a task
//! that reconnects by itself until it is stopped or aborted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use duet_storage::format_lsn;
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::messages::copy::CopyData;
use pgwire::messages::simplequery::Query;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::applier::Applier;
use crate::basebackup;
use crate::client::{self, ConnectError, PrimaryConnection};
use crate::error::{ReplError, ReplResult};
use crate::frame::{PrimaryMessage, SecondaryMessage};
use crate::node::Replication;
use crate::replay::Replay;
use crate::system;
use crate::url::PrimaryUrl;

/// SQLSTATE the primary answers START_REPLICATION with when this node
/// cannot continue from where it is (other system, diverged history, WAL
/// gone): the receiver then re-copies by itself.
pub const COPY_REQUIRED: &str = "55000";

/// How often a running initial copy logs its progress.
const COPY_LOG_INTERVAL: Duration = Duration::from_secs(2);

/// First wait before reconnecting; doubles up to MAX_BACKOFF.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Without any message (the primary sends keepalives every second) for
/// this long, the connection counts as dead and is reopened.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Outside the stream (handshake, commands, the initial copy), how long
/// the primary may stay silent before the connection counts as dead.
const SILENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most messages taken from the socket before they are applied, flushed
/// and acknowledged.
const MAX_BURST: usize = 1024;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

type StopReply = oneshot::Sender<ReplResult<(u64, String)>>;

pub(crate) struct ReceiverHandle {
    task: tokio::task::JoinHandle<()>,
    stop: mpsc::Sender<StopReply>,
}

impl ReceiverHandle {
    pub(crate) fn abort(self) {
        self.task.abort();
    }

    /// Aborts the task and waits until it has ended (it may be in the
    /// middle of applying a batch on another thread).
    pub(crate) async fn abort_and_wait(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Asks the stream to stop at a point both nodes agree on.
    pub(crate) async fn stop(self) -> ReplResult<(u64, String)> {
        let (tx, rx) = oneshot::channel();
        if self.stop.send(tx).await.is_err() {
            return Err(ReplError::Failed("the replication stream has ended".into()));
        }
        let result = rx
            .await
            .unwrap_or_else(|_| Err(ReplError::Failed("the replication stream has ended".into())));
        if result.is_err() {
            self.task.abort();
        }
        result
    }
}

/// What the primary said about itself (IDENTIFY_SYSTEM).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub system_id: String,
    pub epoch: u64,
    pub role: String,
    pub lsn: u64,
    pub history: Vec<system::Epoch>,
    /// Where the primary's own history starts (`Engine::log_origin`):
    /// the last commits this node proves at START_REPLICATION start there
    /// at the earliest.
    pub log_origin: u64,
}

fn failed(step: &str, url: &PrimaryUrl, e: ConnectError) -> ReplError {
    ReplError::Failed(format!(
        "primary {} failed at step \"{step}\": {e}",
        url.masked()
    ))
}

async fn connect(url: &PrimaryUrl) -> ReplResult<PrimaryConnection> {
    client::connect(url, true).await.map_err(|e| {
        let step = e.step();
        failed(step, url, e)
    })
}

async fn identify(conn: &mut PrimaryConnection, url: &PrimaryUrl) -> ReplResult<Identity> {
    let rows = conn
        .simple_query("IDENTIFY_SYSTEM")
        .await
        .map_err(|e| failed("identify", url, e))?;
    let row = rows
        .first()
        .ok_or_else(|| ReplError::Failed("IDENTIFY_SYSTEM returned no row".into()))?;
    let col = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let num = |i: usize| col(i).parse::<u64>().unwrap_or(0);
    let history = col(4)
        .split(',')
        .map(|text| {
            system::Epoch::from_text(text).ok_or_else(|| {
                ReplError::Failed(format!("IDENTIFY_SYSTEM: malformed epoch {text:?}"))
            })
        })
        .collect::<ReplResult<Vec<_>>>()?;
    Ok(Identity {
        system_id: col(0),
        epoch: num(1),
        role: col(2),
        lsn: num(3),
        history,
        log_origin: num(5),
    })
}

/// Connects for replication and identifies the primary, which must be a
/// PRIMARY (the error names the failed step).
async fn attach(url: &PrimaryUrl) -> ReplResult<(PrimaryConnection, Identity)> {
    // A connection that goes half-open during the handshake must not hold
    // the stream task for good.
    let handshake = async {
        let mut conn = connect(url).await?;
        let ident = identify(&mut conn, url).await?;
        Ok::<_, ReplError>((conn, ident))
    };
    let (conn, ident) = within("the handshake", url, handshake).await?;
    if ident.role != "PRIMARY" {
        let _ = conn.close().await;
        return Err(ReplError::Failed(format!(
            "primary {} failed at step \"role\": it is a {} node, not a PRIMARY",
            url.masked(),
            ident.role
        )));
    }
    Ok((conn, ident))
}

/// Checks a primary URL before it is stored: it parses, the primary is
/// reachable, accepts our credentials for replication, and is a PRIMARY.
pub(crate) async fn validate_primary(url: &PrimaryUrl) -> ReplResult<()> {
    let (conn, _) = attach(url).await?;
    let _ = conn.close().await;
    Ok(())
}

/// Whether this node's data can continue from the primary's stream.
fn can_continue(node: &Replication, ident: &Identity) -> ReplResult<bool> {
    let engine = node.store.engine();
    if system::system_id(&engine)?.as_deref() != Some(ident.system_id.as_str()) {
        return Ok(false);
    }
    let current = system::current_epoch(&system::epoch_history(&engine)?);
    let lsn = engine.latest_sequence_number();
    Ok(system::can_follow(&ident.history, current, lsn) && lsn <= ident.lsn)
}

/// SERVICE CREATE: checks the primary and copies its data if this node's
/// cannot continue from it. Returns whether a copy was made.
pub(crate) async fn prepare(node: &Replication, url: &PrimaryUrl, slot: &str) -> ReplResult<bool> {
    let (mut conn, ident) = attach(url).await?;
    if can_continue(node, &ident)? {
        let lsn = node.store.engine().latest_sequence_number();
        create_slot(&mut conn, url, slot, lsn).await?;
        let _ = conn.close().await;
        return Ok(false);
    }
    recopy(node, &mut conn, url, &ident, slot).await?;
    let _ = conn.close().await;
    Ok(true)
}

/// A full copy that replaces this node's data, reporting (log and status
/// view) the commits of its own that the copy throws away.
async fn recopy(
    node: &Replication,
    conn: &mut PrimaryConnection,
    url: &PrimaryUrl,
    ident: &Identity,
    slot: &str,
) -> ReplResult<()> {
    let lost = diverged_tail(node, ident)?;
    full_copy(node, conn, url, ident, slot).await?;
    if let Some(lost) = lost {
        warn!("{lost}");
        node.status.update_receiver(|r| r.discarded = Some(lost));
    }
    Ok(())
}

/// Creates (or revives) this node's slot on the primary at `lsn`.
async fn create_slot(
    conn: &mut PrimaryConnection,
    url: &PrimaryUrl,
    slot: &str,
    lsn: u64,
) -> ReplResult<()> {
    let create = async {
        conn.simple_query(&format!("CREATE_REPLICATION_SLOT {slot} LSN {lsn}"))
            .await
            .map_err(|e| failed("slot", url, e))
    };
    within("creating the slot", url, create).await?;
    Ok(())
}

/// SERVICE DROP: removes this node's slot on the primary, if reachable.
pub(crate) async fn drop_slot(url: &PrimaryUrl, slot: &str) -> ReplResult<()> {
    let drop = async {
        let mut conn = connect(url).await?;
        conn.simple_query(&format!("DROP_REPLICATION_SLOT {slot}"))
            .await
            .map_err(|e| failed("slot", url, e))?;
        Ok(conn)
    };
    let conn = within("dropping the slot", url, drop).await?;
    let _ = conn.close().await;
    Ok(())
}

/// Receives a checkpoint of the primary and makes it this node's data.
/// The slot is created first, at the primary's LSN before the copy, so
/// the WAL the copy will need afterwards is kept.
async fn full_copy(
    node: &Replication,
    conn: &mut PrimaryConnection,
    url: &PrimaryUrl,
    ident: &Identity,
    slot: &str,
) -> ReplResult<()> {
    create_slot(conn, url, slot, ident.lsn).await?;
    info!(primary_lsn = ident.lsn, "initial copy from the primary");
    node.status.update_receiver(|r| {
        r.state = "copying".into();
        r.copy_progress = Some((0, 0));
    });
    let staging = node.store.staging_dir();
    let mut sink = basebackup::Receiver::new(&staging)?;
    let mut last_log = std::time::Instant::now();
    let client = conn.client();
    client
        .send(PgWireFrontendMessage::Query(Query::new(
            "BASE_BACKUP".into(),
        )))
        .await
        .map_err(|e| ReplError::Failed(format!("sending BASE_BACKUP: {e}")))?;
    loop {
        match next_message(client).await? {
            PgWireBackendMessage::CopyOutResponse(_) => {}
            PgWireBackendMessage::CopyData(d) => {
                crate::blocking(|| sink.handle(&d.data))?;
                let progress = (sink.received_bytes, sink.total_bytes);
                node.status
                    .update_receiver(|r| r.copy_progress = Some(progress));
                if last_log.elapsed() >= COPY_LOG_INTERVAL {
                    last_log = std::time::Instant::now();
                    info!(
                        received_mb = progress.0 >> 20,
                        total_mb = progress.1 >> 20,
                        "initial copy in progress"
                    );
                }
            }
            PgWireBackendMessage::CopyDone(_) | PgWireBackendMessage::CommandComplete(_) => {}
            PgWireBackendMessage::ReadyForQuery(_) => break,
            PgWireBackendMessage::ErrorResponse(e) => return Err(server_error(&e.fields)),
            _ => {}
        }
    }
    if !sink.is_done() {
        return Err(ReplError::Failed("the initial copy ended early".into()));
    }
    let engine = node.store.install(&staging)?;
    node.new_generation();
    // WAL copies of the history this node just left must never be shipped.
    if let Some(archive) = &node.archive {
        archive.clear()?;
    }
    (node.on_change)();
    info!(
        lsn = engine.latest_sequence_number(),
        bytes = sink.received_bytes,
        "initial copy installed"
    );
    Ok(())
}

fn server_error(fields: &[(u8, String)]) -> ReplError {
    let get = |c: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    ReplError::Failed(format!(
        "primary returned an error: {} (SQLSTATE {})",
        get(b'M'),
        get(b'C')
    ))
}

/// Runs a step that needs the primary, giving up after SILENCE_TIMEOUT.
async fn within<T>(
    step: &str,
    url: &PrimaryUrl,
    work: impl std::future::Future<Output = ReplResult<T>>,
) -> ReplResult<T> {
    tokio::time::timeout(SILENCE_TIMEOUT, work)
        .await
        .map_err(|_| {
            ReplError::Failed(format!(
                "primary {} did not finish {step} within {} s",
                url.masked(),
                SILENCE_TIMEOUT.as_secs()
            ))
        })?
}

async fn next_message(client: &mut client::PgWireClient) -> ReplResult<PgWireBackendMessage> {
    let next = tokio::time::timeout(SILENCE_TIMEOUT, client.next())
        .await
        .map_err(|_| {
            ReplError::Failed(format!(
                "no answer from the primary for {} s",
                SILENCE_TIMEOUT.as_secs()
            ))
        })?;
    match next {
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(ReplError::Failed(format!("replication connection: {e}"))),
        None => Err(ReplError::Failed(
            "the primary closed the connection".into(),
        )),
    }
}

/// Starts the stream task.
pub(crate) fn spawn(node: Arc<Replication>, url: PrimaryUrl, slot: String) -> ReceiverHandle {
    let (stop_tx, stop_rx) = mpsc::channel(1);
    // Every log line of the stream carries its primary and slot.
    let span = tracing::info_span!("replication_stream", primary = %url.masked(), slot = %slot);
    let task = tokio::spawn(tracing::Instrument::instrument(
        run(node, url, slot, stop_rx),
        span,
    ));
    ReceiverHandle {
        task,
        stop: stop_tx,
    }
}

async fn run(
    node: Arc<Replication>,
    url: PrimaryUrl,
    slot: String,
    mut stop_rx: mpsc::Receiver<StopReply>,
) {
    let mut backoff = INITIAL_BACKOFF;
    let mut force_copy = false;
    loop {
        node.status.update_receiver(|r| r.state = "starting".into());
        match stream(
            &node,
            &url,
            &slot,
            &mut stop_rx,
            &mut force_copy,
            &mut backoff,
        )
        .await
        {
            Ok(()) => {
                node.status.update_receiver(|r| r.state = "stopped".into());
                return;
            }
            Err(StreamError::CopyRequired(why)) => {
                info!(reason = %why, "the primary requires a fresh copy");
                force_copy = true;
                continue;
            }
            Err(StreamError::Repl(e)) => {
                warn!(error = %e, "replication stream interrupted; reconnecting");
                let message = e.to_string();
                node.status.update_receiver(|r| {
                    r.state = "error".into();
                    r.last_error = Some(message);
                });
            }
        }
        // Wait before reconnecting; a STOP while disconnected fails.
        let deadline = tokio::time::sleep(backoff);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                req = stop_rx.recv() => match req {
                    Some(reply) => {
                        let _ = reply.send(Err(ReplError::Failed(
                            "cannot stop consistently: the primary is not connected".into(),
                        )));
                    }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum StreamError {
    CopyRequired(String),
    Repl(ReplError),
}

impl<E: Into<ReplError>> From<E> for StreamError {
    fn from(e: E) -> Self {
        StreamError::Repl(e.into())
    }
}

/// One connection's worth of streaming. Ok(()) after a completed STOP.
async fn stream(
    node: &Arc<Replication>,
    url: &PrimaryUrl,
    slot: &str,
    stop_rx: &mut mpsc::Receiver<StopReply>,
    force_copy: &mut bool,
    backoff: &mut Duration,
) -> Result<(), StreamError> {
    let (mut conn, ident) = attach(url).await?;
    if *force_copy || !can_continue(node, &ident)? {
        recopy(node, &mut conn, url, &ident, slot).await?;
        *force_copy = false;
    }
    follow(node, conn, ident, slot, stop_rx, backoff, false).await
}

/// Before a re-copy: describes the commits of this node's own that the
/// primary does not have (a former primary's unreplicated tail), which the
/// copy replaces. None when the node holds nothing the primary lacks.
fn diverged_tail(node: &Replication, ident: &Identity) -> ReplResult<Option<String>> {
    let engine = node.store.engine();
    let lsn = engine.latest_sequence_number();
    if system::system_id(&engine)?.as_deref() != Some(ident.system_id.as_str()) {
        return Ok(None);
    }
    let current = system::current_epoch(&system::epoch_history(&engine)?);
    let branch = match ident.history.iter().position(|e| *e == current) {
        // The primary went on in a later epoch from `start`: what this node
        // wrote from there on is its own.
        Some(i) => match ident.history.get(i + 1) {
            Some(next) => next.start,
            // Same epoch, but ahead of the primary (e.g. a primary that
            // lost unsynced WAL): what lies past its LSN is ours alone.
            None if lsn > ident.lsn => ident.lsn + 1,
            None => return Ok(None),
        },
        // An epoch the primary never had: everything since it began.
        None => current.start,
    };
    if lsn < branch {
        return Ok(None);
    }
    Ok(Some(format!(
        "history diverged from the primary's: this node's commits from LSN {} to {} \
         ({} LSNs, epoch {}) were discarded by the re-copy",
        format_lsn(branch),
        format_lsn(lsn),
        lsn - branch + 1,
        current.epoch
    )))
}

/// How long a promotion tries to reach the old primary for its last
/// commits (a dead primary must not hold the promotion up).
const HANDOVER_CONNECT: Duration = Duration::from_secs(3);

/// Promotion after a consistent SERVICE STOP (a planned switchover): the
/// old primary may have committed more after the stop point, before it was
/// demoted. If it is reachable, demoted (so its data can no longer grow)
/// and on this node's history, its remaining commits are streamed here and
/// checked like a STOP (same LSN, same checksum), so the switchover loses
/// nothing. Returns the LSN range taken over; None when there was nothing
/// to take or the old primary cannot give it (gone, or still a PRIMARY:
/// the caller warns).
pub(crate) async fn take_over_tail(
    node: &Arc<Replication>,
    url: &PrimaryUrl,
    slot: &str,
) -> ReplResult<Handover> {
    let Ok(connected) = tokio::time::timeout(HANDOVER_CONNECT, connect(url)).await else {
        return Ok(Handover::Unreachable);
    };
    let Ok(mut conn) = connected else {
        return Ok(Handover::Unreachable);
    };
    let ident = within("IDENTIFY_SYSTEM", url, identify(&mut conn, url)).await?;
    if ident.role == "PRIMARY" {
        let _ = conn.close().await;
        return Ok(Handover::StillPrimary);
    }
    let from = node.store.engine().latest_sequence_number();
    if ident.lsn <= from || !can_continue(node, &ident)? {
        let _ = conn.close().await;
        return Ok(Handover::Nothing);
    }
    // A stream that stops at once: the old primary ships up to its last
    // commit, then the stop point.
    let (stop_tx, mut stop_rx) = mpsc::channel(1);
    let (reply_tx, reply_rx) = oneshot::channel();
    let _ = stop_tx.try_send(reply_tx);
    let mut backoff = INITIAL_BACKOFF;
    let streamed = follow(node, conn, ident, slot, &mut stop_rx, &mut backoff, true).await;
    // The stop request may still sit in the channel: drop it, so the
    // reply below cannot wait forever.
    drop(stop_rx);
    drop(stop_tx);
    let to = node.store.engine().latest_sequence_number();
    let stopped_at = match streamed {
        Ok(()) => reply_rx.await,
        Err(StreamError::Repl(e)) => return Err(e),
        Err(StreamError::CopyRequired(why)) => return Err(ReplError::Failed(why)),
    };
    match stopped_at {
        Ok(Ok((lsn, _))) => Ok(Handover::Took { from, to: lsn }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ReplError::Failed(format!(
            "the old primary's last commits stopped arriving at LSN {to}"
        ))),
    }
}

/// What [`take_over_tail`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handover {
    /// LSNs `from`+1 ..= `to` came from the old primary.
    Took {
        from: u64,
        to: u64,
    },
    /// This node already had everything.
    Nothing,
    Unreachable,
    StillPrimary,
}

/// Streams from an attached primary until a STOP completes (Ok) or the
/// stream breaks. `handover`: the primary is a demoted one that ships its
/// remaining commits and stops.
async fn follow(
    node: &Arc<Replication>,
    mut conn: PrimaryConnection,
    ident: Identity,
    slot: &str,
    stop_rx: &mut mpsc::Receiver<StopReply>,
    backoff: &mut Duration,
    handover: bool,
) -> Result<(), StreamError> {
    let mut state = node.state();
    if state.epoch != ident.epoch {
        state.epoch = ident.epoch;
        node.save(state)?;
    }
    let engine = node.store.engine();
    let local_epoch = system::current_epoch(&system::epoch_history(&engine)?).to_text();
    let applied = engine.latest_sequence_number();
    let mut start = format!(
        "START_REPLICATION SLOT {slot} LSN {applied} EPOCH {local_epoch} SYSTEM {}",
        ident.system_id
    );
    if handover {
        start.push_str(" HANDOVER true");
    }
    // The primary checks that this node's last commits are its own.
    if let Some(digest) = crate::blocking(|| engine.tail_digest(ident.log_origin))? {
        start.push_str(&format!(" VERIFY {}", digest.to_text()));
    }
    let client = conn.client();
    client
        .send(PgWireFrontendMessage::Query(Query::new(start)))
        .await
        .map_err(|e| ReplError::Failed(format!("sending START_REPLICATION: {e}")))?;
    match next_message(client).await? {
        PgWireBackendMessage::CopyBothResponse(_) => {}
        PgWireBackendMessage::ErrorResponse(e) => {
            let code = e
                .fields
                .iter()
                .find(|(k, _)| *k == b'C')
                .map(|(_, v)| v.as_str());
            if code == Some(COPY_REQUIRED) {
                return Err(StreamError::CopyRequired(
                    server_error(&e.fields).to_string(),
                ));
            }
            return Err(server_error(&e.fields).into());
        }
        other => {
            return Err(ReplError::Failed(format!(
                "unexpected answer to START_REPLICATION: {other:?}"
            ))
            .into())
        }
    }
    info!(
        from_lsn = applied,
        epoch = ident.epoch,
        "streaming from the primary"
    );
    *backoff = INITIAL_BACKOFF;
    node.status.update_receiver(|r| {
        r.state = "streaming".into();
        r.last_error = None;
        r.copy_progress = None;
        r.applied_lsn = applied;
        r.flushed_lsn = applied;
        r.received_lsn = applied;
    });
    let mut stopping: Option<StopReply> = None;
    let mut keepalive = tokio::time::interval(Duration::from_secs(1));
    let mut replay = Replay::new(applied, engine.clone(), node.status.clone());
    // Measured from the last message received, not per wait: our own
    // status ticks must not hide a primary gone silent (a half-open
    // connection).
    let mut heard = tokio::time::Instant::now();
    loop {
        let flushed = replay.applier.flushed;
        // Also while the primary computes a STOP's checksum (a scan of
        // the whole keyspace) it sends keepalives: a connection that goes
        // half-open during a STOP fails the STOP, which the operator
        // retries, instead of hanging it.
        let message = tokio::select! {
            biased;
            m = next_message(client) => m?,
            written = replay.written(), if replay.is_writing() => {
                written?;
                // Nothing more has come (the stream would have been
                // read first): catching up is over, sync what is written.
                if replay.applier.flushed < replay.applier.applied {
                    replay.flush().await?;
                }
                send_status(client, replay.applier.flushed).await?;
                continue;
            }
            _ = tokio::time::sleep_until(heard + RECEIVE_TIMEOUT) => {
                return Err(ReplError::Failed(format!(
                    "no message from the primary for {} s",
                    RECEIVE_TIMEOUT.as_secs()
                ))
                .into());
            }
            req = stop_rx.recv(), if stopping.is_none() => {
                if let Some(reply) = req {
                    send(client, SecondaryMessage::Stop).await?;
                    stopping = Some(reply);
                }
                continue;
            }
            _ = keepalive.tick() => {
                send_status(client, flushed).await?;
                continue;
            }
        };
        // Take this message and whatever else already arrived, then write
        // them as one burst (see `Replay::end_burst`) and acknowledge.
        let mut next = Some(message);
        // Bounded, so a long catch-up still flushes and acknowledges (and
        // the primary hears from us) regularly.
        let mut taken = 0;
        while let Some(message) = next.take() {
            taken += 1;
            match handle(node, &ident, message, &mut replay.applier)? {
                Handled::Continue => {}
                Handled::PrimaryClosed => {
                    // A primary shutting down ends the stream once we have
                    // flushed everything; acknowledge what arrived first.
                    replay.flush().await?;
                    let _ = send_status(client, replay.applier.flushed).await;
                    return Err(ReplError::Failed(
                        "the primary closed the stream (it is shutting down)".into(),
                    )
                    .into());
                }
                Handled::StopPoint { lsn, checksum } => {
                    replay.flush().await?;
                    let result = crate::blocking(|| check_stop_point(&engine, lsn, &checksum));
                    let _ = send_status(client, replay.applier.flushed).await;
                    let _ = client
                        .send(PgWireFrontendMessage::CopyDone(
                            pgwire::messages::copy::CopyDone::new(),
                        ))
                        .await;
                    let ok = result.is_ok();
                    if let Some(reply) = stopping.take() {
                        let _ = reply.send(result);
                    }
                    return if ok {
                        Ok(())
                    } else {
                        Err(ReplError::Failed("stop point mismatch".into()).into())
                    };
                }
            }
            if taken >= MAX_BURST || replay.applier.burst_full() {
                break;
            }
            let arrived = match client.next().now_or_never() {
                Some(m) => m,
                // The previous burst is still being written: go on filling
                // this one until it is done, so that bursts grow as long
                // as writing them takes.
                None if replay.is_writing() => tokio::select! {
                    biased;
                    done = replay.written() => {
                        done?;
                        None
                    }
                    m = client.next() => m,
                },
                None => None,
            };
            if let Some(m) = arrived {
                next =
                    Some(m.map_err(|e| ReplError::Failed(format!("replication connection: {e}")))?);
            }
        }
        heard = tokio::time::Instant::now();
        replay.end_burst(taken).await?;
        send_status(client, replay.applier.flushed).await?;
    }
}

enum Handled {
    Continue,
    PrimaryClosed,
    StopPoint { lsn: u64, checksum: String },
}

fn handle(
    node: &Replication,
    ident: &Identity,
    message: PgWireBackendMessage,
    applier: &mut Applier,
) -> ReplResult<Handled> {
    let data = match message {
        PgWireBackendMessage::CopyData(CopyData { data, .. }) => data,
        PgWireBackendMessage::ErrorResponse(e) => return Err(server_error(&e.fields)),
        PgWireBackendMessage::CopyDone(_) => return Ok(Handled::PrimaryClosed),
        _ => return Ok(Handled::Continue),
    };
    match PrimaryMessage::decode(data).map_err(|e| ReplError::Failed(e.to_string()))? {
        PrimaryMessage::Batch { epoch, lsn, data } => {
            if epoch != ident.epoch {
                return Err(ReplError::Failed(format!(
                    "batch at LSN {lsn} is from epoch {epoch}, the stream is in epoch {}",
                    ident.epoch
                )));
            }
            applier.receive(lsn, &data)?;
            Ok(Handled::Continue)
        }
        PrimaryMessage::Keepalive { lsn, .. } => {
            node.status.update_receiver(|r| {
                r.primary_lsn = lsn;
                r.last_message = Some(SystemTime::now());
            });
            Ok(Handled::Continue)
        }
        PrimaryMessage::StopPoint { lsn, checksum } => Ok(Handled::StopPoint { lsn, checksum }),
    }
}

fn check_stop_point(
    engine: &duet_storage::Engine,
    lsn: u64,
    checksum: &str,
) -> ReplResult<(u64, String)> {
    let (local_lsn, local_sum) = engine.content_checksum()?;
    if local_lsn != lsn || local_sum != checksum {
        return Err(ReplError::Failed(format!(
            "not consistent: primary at LSN {lsn} with checksum {checksum}, \
             secondary at LSN {local_lsn} with checksum {local_sum}"
        )));
    }
    Ok((lsn, checksum.to_string()))
}

async fn send(client: &mut client::PgWireClient, message: SecondaryMessage) -> ReplResult<()> {
    let bytes: Bytes = message.encode();
    client
        .send(PgWireFrontendMessage::CopyData(CopyData::new(bytes)))
        .await
        .map_err(|e| ReplError::Failed(format!("replication connection: {e}")))
}

async fn send_status(client: &mut client::PgWireClient, applied: u64) -> ReplResult<()> {
    send(
        client,
        SecondaryMessage::Status {
            written: applied,
            flushed: applied,
            applied,
        },
    )
    .await
}
