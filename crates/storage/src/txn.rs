//! Transactions: reads from a RocksDB snapshot overlaid with the
//! transaction's own writes; writes buffered in a write set that becomes
//! the commit's single WriteBatch; row locks held until the end.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use rocksdb::{ReadOptions, SnapshotWithThreadMode, DB};

use crate::batch::RawBatch;

use crate::engine::Engine;
use crate::error::StorageResult;
use crate::interrupt::StatementControl;
use crate::lock::TxnId;

/// Isolation levels. Read committed takes a fresh snapshot per statement;
/// the others keep the first one for the whole transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

/// A snapshot that owns a handle on its database, so it can live in a
/// session without borrowing.
pub(crate) struct OwnedSnapshot {
    // Field order matters: the snapshot is dropped before the database.
    snapshot: SnapshotWithThreadMode<'static, DB>,
    db: Arc<DB>,
}

impl OwnedSnapshot {
    pub(crate) fn new(db: &Arc<DB>) -> Self {
        let snapshot = db.snapshot();
        // SAFETY: the snapshot borrows the DB, which lives in an Arc held by
        // this struct and dropped only after the snapshot (field order).
        let snapshot: SnapshotWithThreadMode<'static, DB> =
            unsafe { std::mem::transmute(snapshot) };
        OwnedSnapshot {
            snapshot,
            db: db.clone(),
        }
    }

    /// The sequence number it reads at.
    pub(crate) fn sequence(&self) -> u64 {
        self.snapshot.sequence_number()
    }

    /// An iterator over everything the snapshot sees.
    pub(crate) fn raw_iterator(&self) -> rocksdb::DBRawIteratorWithThreadMode<'_, DB> {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snapshot);
        self.db.raw_iterator_opt(opts)
    }
}

pub struct Transaction {
    engine: Arc<Engine>,
    id: TxnId,
    isolation: Isolation,
    snapshot: Arc<OwnedSnapshot>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    locked: Vec<Vec<u8>>,
}

impl Transaction {
    pub(crate) fn new(engine: Arc<Engine>, id: TxnId, isolation: Isolation) -> Self {
        let snapshot = engine.snapshot();
        Transaction {
            engine,
            id,
            isolation,
            snapshot,
            writes: BTreeMap::new(),
            locked: Vec::new(),
        }
    }

    pub fn id(&self) -> TxnId {
        self.id
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    pub fn set_isolation(&mut self, isolation: Isolation) {
        self.isolation = isolation;
    }

    /// Called at the start of every statement: read committed sees
    /// everything committed before the statement began.
    pub fn begin_statement(&mut self) {
        if self.isolation == Isolation::ReadCommitted {
            self.snapshot = self.engine.snapshot();
        }
    }

    /// The RocksDB sequence number the snapshot reads at: equal numbers
    /// mean identical committed data.
    pub fn snapshot_sequence(&self) -> u64 {
        self.snapshot.sequence()
    }

    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Reads a key as of the snapshot, seeing this transaction's own writes.
    pub fn get(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        self.get_at_snapshot(key)
    }

    /// The committed value the snapshot sees, from the row cache if it
    /// holds it.
    fn get_at_snapshot(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        let seq = self.snapshot_sequence();
        if let Some(value) = self.engine.rows.lookup(key, seq) {
            return Ok(value);
        }
        let value = self.snapshot.snapshot.get(key)?;
        self.engine.rows.fill(key, seq, &value);
        Ok(value)
    }

    /// Reads the latest committed version (plus own writes). Used after
    /// locking a row, to act on its newest version as PostgreSQL does.
    pub fn get_latest(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        self.engine.get_committed(key)
    }

    /// True if the key's latest committed version differs from the one in
    /// this transaction's snapshot (a concurrent update committed since).
    pub fn changed_since_snapshot(&self, key: &[u8]) -> StorageResult<bool> {
        if self.writes.contains_key(key) {
            return Ok(false);
        }
        Ok(self.get_at_snapshot(key)? != self.engine.get_committed(key)?)
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Locks a key until the transaction ends, waiting for another holder.
    /// Returns true if this call took the lock (false: already held).
    pub async fn lock(&mut self, key: &[u8], ctl: &StatementControl) -> StorageResult<bool> {
        let taken = self.engine.locks.lock(self.id, key, ctl).await?;
        if taken {
            self.locked.push(key.to_vec());
        }
        Ok(taken)
    }

    /// Releases the lock most recently taken, if it is `key`'s: a lock
    /// taken on a row that turned out not to exist protects nothing.
    pub fn unlock_last(&mut self, key: &[u8]) {
        if self.locked.last().is_some_and(|k| k == key) {
            if let Some(key) = self.locked.pop() {
                self.engine.locks.release_all(self.id, [&key]);
            }
        }
    }

    /// Scans keys in [start, end) as of the snapshot, merged with own writes.
    pub fn scan(&self, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Scan {
        Scan::new(self, start, end, false)
    }

    /// Like [`scan`](Self::scan) but reading the latest committed data.
    /// [`Transaction::scan_latest`] over the keys that start with `prefix`.
    pub fn scan_prefix_latest(&self, prefix: &[u8]) -> Scan {
        let end = crate::keycode::prefix_end(prefix)
            .map(Bound::Excluded)
            .unwrap_or(Bound::Unbounded);
        self.scan_latest(Bound::Included(prefix.to_vec()), end)
    }

    pub fn scan_latest(&self, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Scan {
        Scan::new(self, start, end, true)
    }

    /// Saves the write set, for SAVEPOINT.
    pub fn savepoint(&self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.writes.clone()
    }

    /// Restores a saved write set, for ROLLBACK TO SAVEPOINT.
    pub fn rollback_to(&mut self, saved: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        self.writes = saved;
    }

    /// Writes the write set as one batch (one WAL record) and releases
    /// locks. Returns the batch's LSN (None if there was nothing to write).
    pub async fn commit(mut self) -> StorageResult<Option<u64>> {
        let result = match self.take_batch() {
            Some(batch) => self.engine.write_batch(batch).await.map(Some),
            None => Ok(None),
        };
        self.release_locks();
        result
    }

    /// Commits from synchronous code (bootstrap, tools).
    pub fn commit_blocking(mut self) -> StorageResult<Option<u64>> {
        let batch = self.take_batch();
        let result = match batch {
            Some(b) => self.engine.write_batch_blocking(b).map(Some),
            None => Ok(None),
        };
        self.release_locks();
        result
    }

    fn take_batch(&mut self) -> Option<RawBatch> {
        let writes = std::mem::take(&mut self.writes);
        if writes.is_empty() {
            return None;
        }
        let mut batch = RawBatch::new();
        for (k, v) in writes {
            match v {
                Some(v) => batch.put(&k, &v),
                None => batch.delete(&k),
            }
        }
        Some(batch)
    }

    /// Discards the write set and releases locks.
    pub fn rollback(mut self) {
        self.writes.clear();
        self.release_locks();
    }

    fn release_locks(&mut self) {
        if self.locked.is_empty() {
            return;
        }
        let locked = std::mem::take(&mut self.locked);
        self.engine.locks.release_all(self.id, locked.iter());
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // A transaction dropped without commit (session gone) must not keep locks.
        self.release_locks();
    }
}

/// An iterator over a key range: snapshot (or latest) data merged with the
/// transaction's write set, deletions applied.
pub struct Scan {
    iter: rocksdb::DBRawIteratorWithThreadMode<'static, DB>,
    // Keeps the snapshot (and DB) alive for the iterator above.
    _snapshot: Arc<OwnedSnapshot>,
    _db: Arc<DB>,
    pending: std::collections::VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Scan {
    fn new(txn: &Transaction, start: Bound<Vec<u8>>, end: Bound<Vec<u8>>, latest: bool) -> Scan {
        let mut opts = ReadOptions::default();
        if !latest {
            opts.set_snapshot(&txn.snapshot.snapshot);
        }
        let upper = match &end {
            Bound::Excluded(e) => Some(e.clone()),
            Bound::Included(e) => {
                let mut e = e.clone();
                e.push(0);
                Some(e)
            }
            Bound::Unbounded => None,
        };
        if let Some(u) = &upper {
            opts.set_iterate_upper_bound(u.clone());
        }
        let mut iter = txn.engine.db.raw_iterator_opt(opts);
        match &start {
            Bound::Included(s) => iter.seek(s),
            Bound::Excluded(s) => {
                let mut s = s.clone();
                s.push(0);
                iter.seek(&s)
            }
            Bound::Unbounded => iter.seek_to_first(),
        }
        // SAFETY: the iterator borrows the DB and (through ReadOptions) the
        // snapshot; both are kept alive by the Arcs stored alongside it.
        let iter: rocksdb::DBRawIteratorWithThreadMode<'static, DB> =
            unsafe { std::mem::transmute(iter) };
        let pending = txn
            .writes
            .range((start, end))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Scan {
            iter,
            _snapshot: txn.snapshot.clone(),
            _db: txn.engine.db.clone(),
            pending,
        }
    }

    /// The next live (key, value) pair.
    pub fn next_entry(&mut self) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
        loop {
            if !self.iter.valid() {
                self.iter.status()?;
            }
            let db_key = if self.iter.valid() {
                self.iter.key()
            } else {
                None
            };
            let take_pending = match (db_key, self.pending.front()) {
                (None, None) => return Ok(None),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(k), Some((pk, _))) => pk.as_slice() <= k,
            };
            if take_pending {
                let Some((pk, pv)) = self.pending.pop_front() else {
                    return Ok(None);
                };
                // The write set shadows the stored version of the same key.
                if self.iter.valid() && self.iter.key() == Some(pk.as_slice()) {
                    self.iter.next();
                }
                match pv {
                    Some(v) => return Ok(Some((pk, v))),
                    None => continue,
                }
            }
            let (k, v) = match (self.iter.key(), self.iter.value()) {
                (Some(k), Some(v)) => (k.to_vec(), v.to_vec()),
                _ => return Ok(None),
            };
            self.iter.next();
            return Ok(Some((k, v)));
        }
    }
}
