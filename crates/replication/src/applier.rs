//! Replays shipped batches on a secondary. Consecutive batches are merged
//! into one RocksDB write per burst: a WriteBatch gives its entries
//! consecutive sequence numbers, so batches (seq s, n entries) and
//! (seq s+n, m entries) written as one batch (seq s, n+m entries) take
//! exactly the primary's range of sequence numbers, in one write and one
//! flush, and the node's LSN after it is the primary's. Within a burst the
//! entries are put in key order (a key's own writes keep theirs), which
//! the memtable inserts faster; readers see whole bursts only, so no
//! reader sees the difference.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use duet_storage::batch::HEADER_LEN;
use duet_storage::batch_format::{sorted_by_key, validate};
use duet_storage::Engine;

use crate::error::{ReplError, ReplResult};
use crate::status::StatusBoard;

/// Largest merged write (bytes): past it the burst is written before more
/// is received.
const MAX_MERGED: usize = 8 << 20;

pub struct Applier {
    /// Last LSN received (checked for continuity).
    pub received: u64,
    /// Last LSN written to this node's database.
    pub applied: u64,
    /// Last LSN synced to disk (what is acknowledged to the primary).
    pub flushed: u64,
    /// The burst being merged, not yet written.
    burst: Burst,
}

/// Consecutive batches merged into one write.
#[derive(Default)]
pub struct Burst {
    /// Header, then every batch's entries.
    merged: Vec<u8>,
    count: u64,
    /// The batches merged, as received: this node's batch log keeps them
    /// one by one, as the primary's does, so that after a promotion a
    /// secondary can resume from any of them.
    parts: Vec<Bytes>,
    /// LSN of the last entry.
    last: u64,
}

impl Applier {
    pub fn new(lsn: u64) -> Applier {
        Applier {
            received: lsn,
            applied: lsn,
            flushed: lsn,
            burst: Burst::default(),
        }
    }

    /// Takes a batch from the stream: it must start right after the last
    /// one received.
    pub fn receive(&mut self, lsn: u64, data: &Bytes) -> ReplResult<()> {
        if lsn != self.received + 1 {
            return Err(ReplError::Failed(format!(
                "batch at LSN {lsn} does not follow LSN {}",
                self.received
            )));
        }
        // Checked whole before anything is merged: a malformed batch resets
        // the stream with nothing of it applied.
        let count = validate(data)
            .map_err(|e| ReplError::Failed(format!("batch at LSN {lsn} is malformed: {e}")))?;
        let burst = &mut self.burst;
        if burst.merged.is_empty() {
            burst.merged.extend_from_slice(&lsn.to_le_bytes());
            burst.merged.extend_from_slice(&[0; 4]);
        }
        burst.merged.extend_from_slice(&data[HEADER_LEN..]);
        burst.count += count;
        burst.parts.push(data.clone());
        burst.last = lsn + count - 1;
        self.received = burst.last;
        Ok(())
    }

    /// Whether the burst is as large as one write may be: write it before
    /// receiving more.
    pub fn burst_full(&self) -> bool {
        self.burst.merged.len() >= MAX_MERGED
    }

    /// The batches received since the last take (or write), as one write.
    pub fn take(&mut self) -> ReplResult<Option<Burst>> {
        if self.burst.merged.is_empty() {
            return Ok(None);
        }
        let mut burst = std::mem::take(&mut self.burst);
        let count = u32::try_from(burst.count)
            .map_err(|_| ReplError::Failed("merged batch too large".into()))?;
        burst.merged[8..12].copy_from_slice(&count.to_le_bytes());
        // In key order the memtable inserts it about twice as cheaply (see
        // `sorted_by_key`); done here, on the stream's thread, while a
        // catching-up secondary writes the previous burst.
        if burst.parts.len() > 1 {
            if let Some(sorted) = sorted_by_key(&burst.merged) {
                burst.merged = sorted;
            }
        }
        Ok(Some(burst))
    }

    /// Writes what was received (unsynced; see [`Applier::flush`]).
    pub fn apply(&mut self, engine: &Engine) -> ReplResult<()> {
        if let Some(burst) = self.take()? {
            burst.write(engine)?;
            self.applied = burst.last;
        }
        Ok(())
    }

    /// Applies and makes it durable; updates the status board.
    pub fn flush(&mut self, engine: &Engine, status: &StatusBoard) -> ReplResult<()> {
        let had_work = !self.burst.merged.is_empty();
        self.apply(engine)?;
        engine.flush_wal()?;
        self.flushed = self.applied;
        report(status, self.applied, true, had_work);
        Ok(())
    }

    /// Counts a burst written in the background (see [`BackgroundWrite`]).
    pub fn written(&mut self, done: Written) {
        self.applied = done.lsn;
        if done.synced {
            self.flushed = done.lsn;
        }
    }
}

impl Burst {
    /// Writes the burst, unsynced, at the primary's sequence numbers.
    pub fn write(&self, engine: &Engine) -> ReplResult<()> {
        let parts: Vec<&[u8]> = self.parts.iter().map(|p| p.as_ref()).collect();
        engine.apply_replicated(&self.merged, false, &parts)?;
        Ok(())
    }
}

/// Puts `applied` on the status board as received and applied, and as
/// flushed if `synced`.
fn report(status: &StatusBoard, applied: u64, synced: bool, had_work: bool) {
    status.update_receiver(|r| {
        r.received_lsn = applied;
        r.applied_lsn = applied;
        if synced {
            r.flushed_lsn = applied;
        }
        r.primary_lsn = r.primary_lsn.max(applied);
        r.last_message = Some(SystemTime::now());
        if had_work {
            r.last_replay = Some(SystemTime::now());
        }
    });
}

/// What a [`BackgroundWrite`] did.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// The burst's last LSN.
    pub lsn: u64,
    /// Whether the WAL was synced after it.
    pub synced: bool,
}

/// A burst being written (and, if asked, synced) on a blocking thread while
/// the stream goes on reading the next one.
/// Dropping it (the stream's task aborted) waits until the write is done,
/// so that nothing writes to the database once the stream has ended.
pub struct BackgroundWrite {
    job: Option<tokio::task::JoinHandle<ReplResult<Written>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl BackgroundWrite {
    pub fn start(
        burst: Burst,
        sync: bool,
        engine: Arc<Engine>,
        status: Arc<StatusBoard>,
    ) -> BackgroundWrite {
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let job = tokio::task::spawn_blocking(move || {
            let result = (|| {
                burst.write(&engine)?;
                if sync {
                    engine.flush_wal()?;
                }
                report(&status, burst.last, sync, true);
                Ok(Written {
                    lsn: burst.last,
                    synced: sync,
                })
            })();
            let _ = done_tx.send(());
            result
        });
        BackgroundWrite {
            job: Some(job),
            done,
        }
    }

    /// Waits for the write.
    pub async fn finish(&mut self) -> ReplResult<Written> {
        let job = self
            .job
            .as_mut()
            .ok_or_else(|| ReplError::Failed("burst write already finished".into()))?;
        let result = job
            .await
            .map_err(|e| ReplError::Failed(format!("writing a burst of batches: {e}")));
        self.job = None;
        result?
    }
}

impl Drop for BackgroundWrite {
    fn drop(&mut self) {
        if self.job.is_some() {
            // Returns when the job has sent, or ended without sending.
            let _ = self.done.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_storage::{EngineOptions, Isolation, Store};

    /// A primary's store, and a secondary's store with the engine made
    /// from the primary's checkpoint.
    fn primary_and_copy(dir: &std::path::Path) -> (Arc<Store>, Arc<Store>, Arc<Engine>) {
        let primary = Store::open(&dir.join("p"), EngineOptions::default()).unwrap();
        let secondary = Store::open(&dir.join("s"), EngineOptions::default()).unwrap();
        let staging = secondary.staging_dir();
        primary.engine().checkpoint(&staging).unwrap();
        let copy = secondary.install(&staging).unwrap();
        (primary, secondary, copy)
    }

    #[test]
    fn merged_batches_land_at_the_primarys_sequence_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (primary, _secondary, copy) = primary_and_copy(dir.path());
        let start = copy.latest_sequence_number();
        for i in 0..5u8 {
            let mut txn = primary.engine().begin(Isolation::ReadCommitted);
            for k in 0..=i {
                txn.put(vec![i, k], vec![k; 10]);
            }
            if i == 3 {
                txn.delete(vec![1, 0]);
            }
            txn.commit_blocking().unwrap();
        }
        let status = StatusBoard::default();
        let mut applier = Applier::new(start);
        for batch in primary.engine().wal_after(start).unwrap() {
            let batch = batch.unwrap();
            applier.receive(batch.seq, &batch.data).unwrap();
        }
        // Out of order: refused before anything is written.
        assert!(applier
            .receive(start + 1, &Bytes::from_static(b"x"))
            .is_err());
        applier.flush(&copy, &status).unwrap();
        // In order but malformed (a miscounted header): refused whole.
        let next = applier.received + 1;
        let mut forged = next.to_le_bytes().to_vec();
        forged.extend_from_slice(&2u32.to_le_bytes());
        forged.extend_from_slice(&[1, 1, b'k', 1, b'v']);
        assert!(applier.receive(next, &Bytes::from(forged)).is_err());
        applier.flush(&copy, &status).unwrap();
        assert_eq!(
            copy.latest_sequence_number(),
            primary.engine().latest_sequence_number()
        );
        assert_eq!(
            copy.content_checksum().unwrap(),
            primary.engine().content_checksum().unwrap()
        );
        assert_eq!(status.receiver().applied_lsn, copy.latest_sequence_number());
        // The secondary's batch log has the primary's commits one by one.
        let logged = |engine: &Engine| -> Vec<u64> {
            engine
                .wal_after(start)
                .unwrap()
                .map(|b| b.unwrap().seq)
                .filter(|seq| *seq > start)
                .collect()
        };
        assert_eq!(logged(&copy), logged(&primary.engine()));
        assert_eq!(logged(&copy).len(), 5);
    }

    /// Catching up: bursts written in the background, one at a time, the
    /// unsynced ones counted as applied but not flushed until a sync.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_writes_count_as_flushed_only_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (primary, _secondary, copy) = primary_and_copy(dir.path());
        let start = copy.latest_sequence_number();
        for i in 0..4u8 {
            let mut txn = primary.engine().begin(Isolation::ReadCommitted);
            txn.put(vec![i], vec![i; 10]);
            txn.commit_blocking().unwrap();
        }
        let batches: Vec<_> = primary
            .engine()
            .wal_after(start)
            .unwrap()
            .map(|b| b.unwrap())
            .filter(|b| b.seq > start)
            .collect();
        assert_eq!(batches.len(), 4);
        let status = Arc::new(StatusBoard::default());
        let mut applier = Applier::new(start);
        // Two batches in the first burst, written unsynced.
        for b in &batches[..2] {
            applier.receive(b.seq, &b.data).unwrap();
        }
        let burst = applier.take().unwrap().unwrap();
        assert!(applier.take().unwrap().is_none());
        let mut first = BackgroundWrite::start(burst, false, copy.clone(), status.clone());
        // The next batch is received meanwhile.
        applier.receive(batches[2].seq, &batches[2].data).unwrap();
        applier.written(first.finish().await.unwrap());
        assert_eq!(applier.applied, batches[1].seq);
        assert_eq!(applier.flushed, start);
        assert_eq!(status.receiver().flushed_lsn, 0);
        assert_eq!(copy.latest_sequence_number(), batches[1].seq);
        // A synced one counts as flushed.
        let burst = applier.take().unwrap().unwrap();
        let mut second = BackgroundWrite::start(burst, true, copy.clone(), status.clone());
        applier.written(second.finish().await.unwrap());
        assert_eq!(applier.flushed, batches[2].seq);
        assert_eq!(status.receiver().flushed_lsn, batches[2].seq);
        // Dropped unfinished (an aborted stream): the drop waits for it.
        applier.receive(batches[3].seq, &batches[3].data).unwrap();
        let burst = applier.take().unwrap().unwrap();
        drop(BackgroundWrite::start(burst, false, copy.clone(), status));
        assert_eq!(
            copy.latest_sequence_number(),
            primary.engine().latest_sequence_number()
        );
        assert_eq!(
            copy.content_checksum().unwrap(),
            primary.engine().content_checksum().unwrap()
        );
    }
}
