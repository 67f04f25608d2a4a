//! The checksum of a node's whole keyspace at one snapshot, with that
//! snapshot's LSN: a primary and its secondary at the same LSN must agree
//! on it (`REPLICATE SET SERVICE STOP` compares them).

use crate::error::StorageResult;
use crate::txn::OwnedSnapshot;

/// A snapshot to compute a content checksum at (see
/// [`crate::Engine::content_snapshot`]).
pub struct ContentSnapshot {
    snapshot: OwnedSnapshot,
}

impl ContentSnapshot {
    pub(crate) fn new(snapshot: OwnedSnapshot) -> ContentSnapshot {
        ContentSnapshot { snapshot }
    }

    pub fn lsn(&self) -> u64 {
        self.snapshot.sequence()
    }

    /// Scans every key and value at the snapshot (the whole database).
    pub fn checksum(&self) -> StorageResult<String> {
        let mut iter = self.snapshot.raw_iterator();
        iter.seek_to_first();
        let mut hasher = crc32fast::Hasher::new();
        let mut keys: u64 = 0;
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            hasher.update(&(k.len() as u64).to_le_bytes());
            hasher.update(k);
            hasher.update(&(v.len() as u64).to_le_bytes());
            hasher.update(v);
            keys += 1;
            iter.next();
        }
        iter.status()?;
        Ok(format!("{keys}:{:08x}", hasher.finalize()))
    }
}
