//! Replays shipped batches on a secondary. Consecutive batches are merged
//! into one RocksDB write per burst: a WriteBatch gives its entries
//! consecutive sequence numbers, so batches (seq s, n entries) and
//! (seq s+n, m entries) written as one batch (seq s, n+m entries) land at
//! exactly the primary's sequence numbers, in one write and one flush.
//! Readers still see whole batches only (several at once).

use std::time::SystemTime;

use bytes::Bytes;
use duet_storage::batch::HEADER_LEN;
use duet_storage::batch_format::validate;
use duet_storage::Engine;

use crate::error::{ReplError, ReplResult};
use crate::status::StatusBoard;

/// Largest merged write (bytes) before it is applied mid-burst.
const MAX_MERGED: usize = 8 << 20;

pub struct Applier {
    /// Last LSN received (checked for continuity).
    pub received: u64,
    /// Last LSN written to this node's database.
    pub applied: u64,
    /// The merged batch not yet written: header, then entries.
    merged: Vec<u8>,
    merged_count: u64,
    /// The batches merged, as received: this node's batch log keeps them
    /// one by one, as the primary's does, so that after a promotion a
    /// secondary can resume from any of them.
    parts: Vec<Bytes>,
}

impl Applier {
    pub fn new(lsn: u64) -> Applier {
        Applier {
            received: lsn,
            applied: lsn,
            merged: Vec::new(),
            merged_count: 0,
            parts: Vec::new(),
        }
    }

    /// Takes a batch from the stream: it must start right after the last
    /// one received.
    pub fn receive(&mut self, engine: &Engine, lsn: u64, data: &Bytes) -> ReplResult<()> {
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
        if self.merged.is_empty() {
            self.merged.extend_from_slice(&lsn.to_le_bytes());
            self.merged.extend_from_slice(&[0; 4]);
        }
        self.merged.extend_from_slice(&data[HEADER_LEN..]);
        self.merged_count += count;
        self.parts.push(data.clone());
        self.received = lsn + count - 1;
        if self.merged.len() >= MAX_MERGED {
            self.apply(engine)?;
        }
        Ok(())
    }

    /// Writes what was received (unsynced; see [`Applier::flush`]).
    pub fn apply(&mut self, engine: &Engine) -> ReplResult<()> {
        if self.merged.is_empty() {
            return Ok(());
        }
        let count = u32::try_from(self.merged_count)
            .map_err(|_| ReplError::Failed("merged batch too large".into()))?;
        self.merged[8..12].copy_from_slice(&count.to_le_bytes());
        let parts: Vec<&[u8]> = self.parts.iter().map(|p| p.as_ref()).collect();
        engine.apply_replicated(&self.merged, false, &parts)?;
        self.applied = self.received;
        self.merged.clear();
        self.merged_count = 0;
        self.parts.clear();
        Ok(())
    }

    /// Applies and makes it durable; updates the status board.
    pub fn flush(&mut self, engine: &Engine, status: &StatusBoard) -> ReplResult<()> {
        let had_work = !self.merged.is_empty();
        self.apply(engine)?;
        engine.flush_wal()?;
        let applied = self.applied;
        status.update_receiver(|r| {
            r.received_lsn = applied;
            r.applied_lsn = applied;
            r.flushed_lsn = applied;
            r.primary_lsn = r.primary_lsn.max(applied);
            r.last_message = Some(SystemTime::now());
            if had_work {
                r.last_replay = Some(SystemTime::now());
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use duet_storage::{EngineOptions, Isolation, Store};

    #[test]
    fn merged_batches_land_at_the_primarys_sequence_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let primary = Store::open(&dir.path().join("p"), EngineOptions::default()).unwrap();
        let secondary = Store::open(&dir.path().join("s"), EngineOptions::default()).unwrap();
        let staging = secondary.staging_dir();
        primary.engine().checkpoint(&staging).unwrap();
        let copy = secondary.install(&staging).unwrap();
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
            applier.receive(&copy, batch.seq, &batch.data).unwrap();
        }
        // Out of order: refused before anything is written.
        assert!(applier
            .receive(&copy, start + 1, &Bytes::from_static(b"x"))
            .is_err());
        applier.flush(&copy, &status).unwrap();
        // In order but malformed (a miscounted header): refused whole.
        let next = applier.received + 1;
        let mut forged = next.to_le_bytes().to_vec();
        forged.extend_from_slice(&2u32.to_le_bytes());
        forged.extend_from_slice(&[1, 1, b'k', 1, b'v']);
        assert!(applier.receive(&copy, next, &Bytes::from(forged)).is_err());
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
}
