//! The primary's side of the stream (the walsender): the replication
//! commands a secondary sends, and the shipper that feeds it committed
//! batches in LSN order — from the WAL while catching up, then live from
//! the commit feed, reordered (commits finish slightly out of order).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use duet_storage::{digest_range, CommittedBatch, Engine, RangeDigest, VERIFY_WINDOW};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::archive::WalArchive;
use crate::error::{ReplError, ReplResult};
use crate::frame::{PrimaryMessage, SecondaryMessage};
use crate::node::Replication;
use crate::state::Role;
use crate::system;

/// Batches read from the WAL per refill (bounds the shipper's memory).
const WAL_READ_LIMIT: usize = 1024;

/// A command on a replication connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationCommand {
    IdentifySystem,
    BaseBackup,
    StartReplication(StartRequest),
    /// CREATE_REPLICATION_SLOT name LSN n
    CreateSlot {
        name: String,
        lsn: u64,
    },
    /// DROP_REPLICATION_SLOT name
    DropSlot {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    pub slot: String,
    /// The secondary's last applied LSN: shipping starts after it.
    pub lsn: u64,
    /// The epoch the secondary's data is in (its last epoch record).
    pub epoch: system::Epoch,
    pub system_id: String,
    /// A former secondary being promoted collects this demoted node's last
    /// commits, then stops (see `receiver::take_over_tail`).
    pub handover: bool,
    /// The digest of the secondary's last LSNs, which must be this node's
    /// (see `duet_storage::RangeDigest`).
    pub verify: Option<RangeDigest>,
}

impl ReplicationCommand {
    /// Recognises a replication command; None for ordinary SQL.
    pub fn parse(sql: &str) -> Option<ReplicationCommand> {
        let words: Vec<&str> = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .collect();
        let first = words.first()?.to_ascii_uppercase();
        match first.as_str() {
            "IDENTIFY_SYSTEM" if words.len() == 1 => Some(ReplicationCommand::IdentifySystem),
            "BASE_BACKUP" if words.len() == 1 => Some(ReplicationCommand::BaseBackup),
            "CREATE_REPLICATION_SLOT" => match words.as_slice() {
                [_, name, lsn_kw, lsn] if lsn_kw.eq_ignore_ascii_case("LSN") => {
                    Some(ReplicationCommand::CreateSlot {
                        name: valid_slot_name(name)?,
                        lsn: lsn.parse().ok()?,
                    })
                }
                _ => None,
            },
            "DROP_REPLICATION_SLOT" => match words.as_slice() {
                [_, name] => Some(ReplicationCommand::DropSlot {
                    name: valid_slot_name(name)?,
                }),
                _ => None,
            },
            "START_REPLICATION" => {
                let mut req = StartRequest {
                    slot: String::new(),
                    lsn: 0,
                    epoch: system::Epoch {
                        epoch: 0,
                        start: 0,
                        token: 0,
                    },
                    system_id: String::new(),
                    handover: false,
                    verify: None,
                };
                for pair in words[1..].chunks(2) {
                    let [key, value] = pair else { return None };
                    match key.to_ascii_uppercase().as_str() {
                        "SLOT" => req.slot = valid_slot_name(value)?,
                        "LSN" => req.lsn = value.parse().ok()?,
                        "EPOCH" => req.epoch = system::Epoch::from_text(value)?,
                        "SYSTEM" => req.system_id = value.to_string(),
                        "HANDOVER" => req.handover = value.eq_ignore_ascii_case("true"),
                        "VERIFY" => req.verify = Some(RangeDigest::from_text(value)?),
                        _ => return None,
                    }
                }
                (!req.slot.is_empty()).then_some(ReplicationCommand::StartReplication(req))
            }
            _ => None,
        }
    }
}

/// Slot names as PostgreSQL allows them: lower-case letters, digits, `_`.
fn valid_slot_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then(|| name.to_string())
}

/// Why START_REPLICATION was refused.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The secondary must re-copy (SQLSTATE 55000; it does so by itself).
    #[error("copy required: {0}")]
    CopyRequired(String),
    #[error(transparent)]
    Repl(#[from] ReplError),
}

impl From<duet_storage::StorageError> for StartError {
    fn from(e: duet_storage::StorageError) -> Self {
        StartError::Repl(e.into())
    }
}

/// Checks that the secondary's last commits are this node's. This node
/// ships a commit before its own write is on disk, and may lose the last
/// ones it shipped (see `Engine::write_raw`), then write others at the same
/// LSNs; a secondary that has the lost ones must re-copy.
fn verify_tail(
    engine: &Engine,
    archive: Option<&WalArchive>,
    req: &StartRequest,
) -> Result<(), StartError> {
    let Some(verify) = req.verify.filter(|v| v.through == req.lsn) else {
        return Err(StartError::CopyRequired(format!(
            "the secondary did not send the digest of its commits up to LSN {}",
            req.lsn
        )));
    };
    if verify.from > verify.through {
        return Ok(()); // it has no commits of its own since its copy
    }
    // From the log, or from the archive directory's copies of what the
    // log dropped.
    let digest = crate::blocking(|| {
        let archived = match archive {
            Some(archive) => archive.batches_from(verify.from, VERIFY_WINDOW as usize)?,
            None => Vec::new(),
        };
        let logged = engine.wal_after(verify.from.saturating_sub(1))?;
        let batches = archived.into_iter().map(Ok).chain(logged);
        Ok::<_, ReplError>(digest_range(batches, verify.from, verify.through)?)
    })?;
    match digest {
        Some(value) if value == verify.value => Ok(()),
        Some(_) => Err(StartError::CopyRequired(format!(
            "the secondary's commits at LSNs {} to {} differ from this node's: this node \
             lost commits it had shipped (a crash of its machine or a failed write) and wrote others",
            verify.from, verify.through
        ))),
        None => Err(StartError::CopyRequired(format!(
            "this node no longer holds LSNs {} to {} to check the secondary's last commits against",
            verify.from, verify.through
        ))),
    }
}

/// Who is on the other end, for pg_stat_replication.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub pid: i32,
    pub application_name: String,
    pub client_addr: String,
    pub user: String,
}

impl Replication {
    /// IDENTIFY_SYSTEM: (column, value) pairs.
    pub fn identify(&self) -> ReplResult<Vec<(&'static str, String)>> {
        let engine = self.store.engine();
        let history = system::epoch_history(&engine)?;
        Ok(vec![
            ("systemid", system::system_id(&engine)?.unwrap_or_default()),
            ("epoch", system::current_epoch(&history).epoch.to_string()),
            ("role", self.role().to_string()),
            // Settled: a secondary that got a commit before this node
            // wrote it must not look ahead of it.
            (
                "lsn",
                crate::blocking(|| engine.settled_sequence_number()).to_string(),
            ),
            (
                "history",
                history
                    .iter()
                    .map(system::Epoch::to_text)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("log_origin", engine.log_origin().to_string()),
        ])
    }

    /// BASE_BACKUP: the frames of a fresh checkpoint.
    pub fn base_backup(&self) -> ReplResult<tokio::sync::mpsc::Receiver<ReplResult<Bytes>>> {
        crate::basebackup::send(&self.store)
    }

    /// START_REPLICATION: checks that the secondary can continue from its
    /// position, then returns the shipper that feeds it.
    pub fn start_shipper(
        self: &Arc<Self>,
        req: &StartRequest,
        peer: Peer,
    ) -> Result<Shipper, StartError> {
        let role = self.role();
        if req.handover {
            // Only a demoted node, whose data no longer grows, hands over.
            if self.store.is_writable() {
                return Err(ReplError::Failed(
                    "this node still accepts writes; demote it before the hand-over".into(),
                )
                .into());
            }
            if self.has_receiver() {
                return Err(ReplError::Failed(
                    "this node replays another primary's stream; only a demoted primary \
                     hands over"
                        .into(),
                )
                .into());
            }
        } else if role == Role::Secondary {
            return Err(ReplError::Failed(
                "this node is a SECONDARY; replicate from the PRIMARY".into(),
            )
            .into());
        }
        let generation = self.generation();
        // Subscribe before looking at the WAL, so no batch falls between.
        let feed = self.store.subscribe();
        let engine = self.store.engine();
        let history = system::epoch_history(&engine)?;
        let epoch = system::current_epoch(&history).epoch;
        let system_id = system::system_id(&engine)?.unwrap_or_default();
        if req.system_id != system_id {
            return Err(StartError::CopyRequired(format!(
                "the secondary holds another system's data ({} vs {system_id})",
                req.system_id
            )));
        }
        if req.epoch.epoch > epoch {
            // A secondary of a newer primary: this node was superseded.
            // It stays read-only, across restarts too.
            self.superseded()?;
            warn!(
                our_epoch = epoch,
                their_epoch = req.epoch.epoch,
                "a node of a later epoch connected: this node no longer accepts writes"
            );
            return Err(ReplError::Failed(format!(
                "this node is in epoch {epoch} but the secondary is in epoch {}: \
                 this node has been superseded and is now read-only",
                req.epoch.epoch
            ))
            .into());
        }
        let latest = crate::blocking(|| engine.settled_sequence_number());
        if !system::can_follow(&history, req.epoch, req.lsn) || req.lsn > latest {
            return Err(StartError::CopyRequired(format!(
                "the secondary's history (epoch {}, LSN {}) diverged from this node's",
                req.epoch.epoch, req.lsn
            )));
        }
        verify_tail(&engine, self.archive.as_ref(), req)?;
        if req.lsn < latest {
            let in_wal = match engine.wal_after(req.lsn) {
                Ok(mut batches) => batches.next().transpose()?.map(|b| b.seq) == Some(req.lsn + 1),
                Err(_) => false,
            };
            let in_archive = match &self.archive {
                Some(archive) => archive.oldest()?.is_some_and(|first| first <= req.lsn + 1),
                None => false,
            };
            if !in_wal && !in_archive {
                return Err(StartError::CopyRequired(format!(
                    "the WAL after LSN {} is no longer kept",
                    req.lsn
                )));
            }
        }
        // The slot holds the WAL from here on (created, or revived after
        // a re-copy).
        self.create_slot(&req.slot, req.lsn)?;
        info!(slot = %req.slot, from = req.lsn, peer = %peer.client_addr, "secondary attached");
        self.status.update_sender(peer.pid, |s| {
            s.pid = peer.pid;
            s.application_name = peer.application_name.clone();
            s.client_addr = peer.client_addr.clone();
            s.user = peer.user.clone();
            s.slot = req.slot.clone();
            s.state = "catchup".into();
            s.sent_lsn = req.lsn;
            s.write_lsn = req.lsn;
            s.flush_lsn = req.lsn;
            s.replay_lsn = req.lsn;
            s.started = Some(SystemTime::now());
        });
        let mut keepalive = tokio::time::interval(Duration::from_secs(1));
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Shipper {
            node: self.clone(),
            engine,
            feed,
            epoch,
            next: req.lsn + 1,
            pending: BTreeMap::new(),
            queue: VecDeque::new(),
            catching_up: true,
            stop: None,
            done: false,
            keepalive,
            pid: peer.pid,
            slot: req.slot.clone(),
            in_flight: VecDeque::new(),
            wal: None,
            generation,
            flushed: 0,
        })
    }
}

/// Feeds one secondary.
pub struct Shipper {
    node: Arc<Replication>,
    engine: Arc<Engine>,
    feed: broadcast::Receiver<CommittedBatch>,
    epoch: u64,
    /// The LSN the next batch sent must start at.
    next: u64,
    /// Live batches that arrived ahead of `next`.
    pending: BTreeMap<u64, CommittedBatch>,
    /// Batches ready to send, in order.
    queue: VecDeque<CommittedBatch>,
    /// Reading the WAL until it is exhausted.
    catching_up: bool,
    /// SERVICE STOP: the stop point once asked for.
    stop: Option<StopPoint>,
    done: bool,
    keepalive: tokio::time::Interval,
    pid: i32,
    slot: String,
    /// (last LSN of a sent batch, when it was sent), for the lag times.
    in_flight: VecDeque<(u64, std::time::Instant)>,
    /// The WAL iterator of a catch-up in progress, and the LSN it is at.
    wal: Option<(duet_storage::WalBatches, u64)>,
    /// The node's generation when the stream started (see
    /// [`Replication::generation`]).
    generation: u64,
    /// The last LSN the secondary acknowledged as flushed.
    flushed: u64,
}

/// Where a SERVICE STOP ends the stream: the LSN and the checksum of
/// everything up to it, which the secondary must match.
struct StopPoint {
    lsn: u64,
    checksum: StopChecksum,
}

enum StopChecksum {
    Computing(tokio::task::JoinHandle<duet_storage::StorageResult<String>>),
    Ready(String),
}

/// Sent batches remembered for lag times (older ones are dropped).
const LAG_SAMPLES: usize = 10_000;

impl Drop for Shipper {
    fn drop(&mut self) {
        self.node.status.remove_sender(self.pid);
    }
}

impl Shipper {
    /// The next frame to send; None once the stop point was sent.
    /// Cancel-safe: it only awaits the feed and the keepalive timer.
    pub async fn next_frame(&mut self) -> ReplResult<Option<Bytes>> {
        loop {
            if self.node.generation() != self.generation {
                return Err(ReplError::Failed(
                    "this node's role or data changed; the stream ends".into(),
                ));
            }
            if let Some(stop) = self.stop.as_mut().filter(|stop| self.next > stop.lsn) {
                // Everything up to the stop point is sent: the stop point
                // goes once its checksum is ready (keepalives meanwhile,
                // so the secondary knows this node is alive).
                let checksum = match &mut stop.checksum {
                    StopChecksum::Ready(checksum) => checksum.clone(),
                    StopChecksum::Computing(task) => tokio::select! {
                        done = task => {
                            let checksum = done
                                .map_err(|e| ReplError::Failed(format!("the stop point's checksum failed: {e}")))??;
                            stop.checksum = StopChecksum::Ready(checksum);
                            continue;
                        }
                        _ = self.keepalive.tick() => {
                            return Ok(Some(PrimaryMessage::Keepalive {
                                lsn: self.engine.latest_sequence_number(),
                                reply_requested: false,
                            }.encode()));
                        }
                    },
                };
                if self.done {
                    return Ok(None);
                }
                self.done = true;
                return Ok(Some(
                    PrimaryMessage::StopPoint {
                        lsn: stop.lsn,
                        checksum,
                    }
                    .encode(),
                ));
            }
            if let Some(batch) = self.queue.pop_front() {
                if batch.next_seq() <= self.next {
                    continue; // sent already (WAL and feed overlap)
                }
                if batch.seq != self.next {
                    return Err(ReplError::Failed(format!(
                        "batch at LSN {} does not follow LSN {}",
                        batch.seq,
                        self.next - 1
                    )));
                }
                self.next = batch.next_seq();
                if self
                    .pending
                    .first_key_value()
                    .is_some_and(|(k, _)| *k < self.next)
                {
                    // Sent from the WAL meanwhile.
                    self.pending = self.pending.split_off(&self.next);
                }
                let sent = self.next - 1;
                if self.in_flight.len() >= LAG_SAMPLES {
                    self.in_flight.pop_front();
                }
                self.in_flight.push_back((sent, std::time::Instant::now()));
                self.node
                    .status
                    .update_sender(self.pid, |s| s.sent_lsn = sent);
                return Ok(Some(
                    PrimaryMessage::Batch {
                        epoch: self.epoch,
                        lsn: batch.seq,
                        data: batch.data,
                    }
                    .encode(),
                ));
            }
            if let Some(lsn) = self.stop.as_ref().map(|stop| stop.lsn) {
                if crate::blocking(|| self.refill_from_wal())?.0 == 0 {
                    return Err(ReplError::Failed(format!(
                        "the WAL up to the stop point (LSN {lsn}) is not readable"
                    )));
                }
                continue;
            }
            if self.catching_up {
                let (read, exhausted) = crate::blocking(|| self.refill_from_wal())?;
                if exhausted {
                    self.catching_up = false;
                    let next = self.next;
                    self.node.status.update_sender(self.pid, |s| {
                        if s.state == "catchup" && s.sent_lsn + 1 >= next {
                            s.state = "streaming".into();
                        }
                    });
                }
                if read > 0 {
                    continue;
                }
            }
            if let Some(batch) = self.pending.remove(&self.next) {
                self.queue.push_back(batch);
                continue;
            }
            tokio::select! {
                received = self.feed.recv() => match received {
                    // A commit sent before it was written failed to
                    // write (see `Engine::write_raw`).
                    Ok(batch) if batch.data.is_empty() => {
                        return Err(ReplError::Failed(format!(
                            "LSN {} was shipped but could not be written on this node; \
                             the stream restarts",
                            batch.seq
                        )));
                    }
                    Ok(batch) => {
                        if batch.next_seq() > self.next {
                            self.pending.insert(batch.seq, batch);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.pending.clear();
                        self.catching_up = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(ReplError::Failed("the commit feed closed".into()));
                    }
                },
                _ = self.keepalive.tick() => {
                    // Behind with nothing coming (a gap that outlived a
                    // tick, e.g. a commit that failed after taking its
                    // sequence numbers): read the WAL.
                    if !self.pending.is_empty()
                        || self.next <= self.engine.latest_sequence_number()
                    {
                        self.catching_up = true;
                    }
                    return Ok(Some(PrimaryMessage::Keepalive {
                        lsn: self.engine.latest_sequence_number(),
                        reply_requested: false,
                    }.encode()));
                }
            }
        }
    }

    /// Queues up to WAL_READ_LIMIT batches from the WAL after `next - 1`:
    /// the batch log, or the archive directory's copies for what the log
    /// no longer has. Returns how many, and whether that was the end of
    /// the WAL (what follows comes from the live feed).
    fn refill_from_wal(&mut self) -> ReplResult<(usize, bool)> {
        let stop_at = self.stop.as_ref().map(|stop| stop.lsn);
        // Continue the open WAL iterator if it stopped where we are (a
        // fresh one scans its file from the start); else open one.
        let mut wal = match self.wal.take() {
            Some((iter, at)) if at == self.next => Some(iter),
            _ => self.engine.wal_after(self.next - 1).ok(),
        };
        let first = match wal.as_mut() {
            Some(iter) => iter.next().transpose()?,
            None => None,
        };
        // The log no longer has `next`: it starts later, or it is empty
        // while commits exist past `next` (all archived).
        let gap = match (&wal, &first) {
            (None, _) => true,
            (Some(_), Some(batch)) => batch.seq != self.next,
            (Some(_), None) => self.next <= self.engine.latest_sequence_number(),
        };
        if gap {
            if let Some(archive) = &self.node.archive {
                let batches = archive.batches_from(self.next, WAL_READ_LIMIT)?;
                let read = batches.len();
                tracing::debug!(
                    next = self.next,
                    log_first = ?first.as_ref().map(|b| b.seq),
                    from_archive = read,
                    "reading the archive directory"
                );
                self.queue.extend(
                    batches
                        .into_iter()
                        .take_while(|b| stop_at.is_none_or(|l| b.seq <= l)),
                );
                if read > 0 {
                    return Ok((read, false));
                }
            }
            // Not there either: what the log has is queued, and the
            // continuity check in next_frame ends the stream (the
            // secondary then re-copies).
        }
        if gap && first.is_none() && self.next <= self.engine.latest_sequence_number() {
            return Err(ReplError::Failed(format!(
                "the WAL after LSN {} is no longer kept; the secondary must re-copy",
                self.next - 1
            )));
        }
        let mut read = 0;
        let mut next_seq = self.next;
        let mut batches = first.into_iter().map(Ok).chain(std::iter::from_fn(|| {
            wal.as_mut().and_then(|iter| iter.next())
        }));
        while read < WAL_READ_LIMIT {
            let Some(batch) = batches.next() else { break };
            let batch = batch?;
            if stop_at.is_some_and(|l| batch.seq > l) {
                return Ok((read, true));
            }
            next_seq = batch.next_seq();
            self.queue.push_back(batch);
            read += 1;
        }
        drop(batches);
        if read < WAL_READ_LIMIT {
            return Ok((read, true));
        }
        self.wal = wal.map(|iter| (iter, next_seq));
        Ok((read, false))
    }

    /// True once the secondary has acknowledged flushing every commit on
    /// this node up to now (a stream that is over has nothing more to send).
    pub fn secondary_has_everything(&self) -> bool {
        self.done || self.flushed >= self.engine.latest_sequence_number()
    }

    /// Handles a CopyData frame from the secondary.
    pub fn on_message(&mut self, frame: &[u8]) -> ReplResult<()> {
        match SecondaryMessage::decode(frame).map_err(|e| ReplError::Failed(e.to_string()))? {
            // Acknowledgements of a stream that started before a role or
            // data change confirm nothing (a demotion may be under way).
            SecondaryMessage::Status { .. } if self.node.generation() != self.generation => {}
            SecondaryMessage::Status {
                written,
                flushed,
                applied,
            } => {
                let lag = |acked: u64| {
                    self.in_flight
                        .iter()
                        .take_while(|(lsn, _)| *lsn <= acked)
                        .last()
                        .map(|(_, sent)| sent.elapsed())
                };
                let (write_lag, flush_lag, replay_lag) = (lag(written), lag(flushed), lag(applied));
                let done = written.min(flushed).min(applied);
                while self.in_flight.front().is_some_and(|(lsn, _)| *lsn <= done) {
                    self.in_flight.pop_front();
                }
                self.node.status.update_sender(self.pid, |s| {
                    s.write_lsn = written;
                    s.flush_lsn = flushed;
                    s.replay_lsn = applied;
                    s.last_reply = Some(SystemTime::now());
                    s.write_lag = write_lag.or(s.write_lag);
                    s.flush_lag = flush_lag.or(s.flush_lag);
                    s.replay_lag = replay_lag.or(s.replay_lag);
                });
                // Never credit more than this stream sent (a secondary of
                // another history must not release synchronous commits).
                let sent = self.next - 1;
                self.node.status.acknowledge(
                    written.min(sent),
                    flushed.min(sent),
                    applied.min(sent),
                );
                self.node.advance_slot(&self.slot, flushed);
                self.flushed = self.flushed.max(flushed.min(sent));
            }
            SecondaryMessage::Stop => {
                if self.stop.is_some() {
                    return Ok(());
                }
                // The LSN is fixed now; the checksum scans the whole
                // database, which may take longer than the secondary
                // waits for a message, so it runs aside.
                let snapshot = crate::blocking(|| self.engine.content_snapshot());
                let lsn = snapshot.lsn();
                let task = tokio::task::spawn_blocking(move || snapshot.checksum());
                info!(lsn, "secondary asked to stop; stop point fixed");
                self.node
                    .status
                    .update_sender(self.pid, |s| s.state = "stopping".into());
                self.stop = Some(StopPoint {
                    lsn,
                    checksum: StopChecksum::Computing(task),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_replication_carries_the_digest_of_the_secondarys_last_commits() {
        let start = |tail: &str| {
            ReplicationCommand::parse(&format!(
                "START_REPLICATION SLOT s1 LSN 90 EPOCH 1:0:7 SYSTEM abc{tail}"
            ))
        };
        let Some(ReplicationCommand::StartReplication(req)) = start(" VERIFY 30:90:00ff") else {
            panic!("not parsed");
        };
        assert_eq!(
            req.verify,
            Some(RangeDigest {
                from: 30,
                through: 90,
                value: 0xff
            })
        );
        assert_eq!((req.slot.as_str(), req.lsn), ("s1", 90));
        let Some(ReplicationCommand::StartReplication(req)) = start("") else {
            panic!("not parsed");
        };
        assert_eq!(req.verify, None);
        assert_eq!(start(" VERIFY 30:90"), None);
        assert_eq!(start(" VERIFY 30:90:zz"), None);
    }
}
