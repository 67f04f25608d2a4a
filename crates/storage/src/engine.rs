//! The RocksDB instance behind a node. Every commit is one WriteBatch
//! written with the WAL on and fsync'd; RocksDB groups concurrent synced
//! writers into one WAL write and one fsync (group commit), so commits are
//! issued concurrently from blocking threads rather than behind a mutex.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rocksdb::{Options, WriteBatch, WriteOptions, DB};

use crate::error::StorageResult;
use crate::lock::{LockManager, TxnId};
use crate::txn::{Isolation, Transaction};

/// Tuning knobs for the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// fsync every commit (the default; only tests of non-durable paths turn it off).
    pub sync_commits: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { sync_commits: true }
    }
}

pub struct Engine {
    pub(crate) db: Arc<DB>,
    pub(crate) locks: LockManager,
    next_txn: AtomicU64,
    sync_commits: bool,
    /// Commits currently writing (to choose between writing inline and
    /// joining a write group from a blocking thread).
    commits_in_flight: AtomicU64,
}

impl Engine {
    /// Opens (or creates) the RocksDB database at `path`.
    pub fn open(path: &Path, options: EngineOptions) -> StorageResult<Arc<Engine>> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // Concurrent writers pipeline WAL and memtable writes.
        opts.set_enable_pipelined_write(true);
        opts.increase_parallelism(2);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let mut block_opts = rocksdb::BlockBasedOptions::default();
        block_opts.set_bloom_filter(10.0, false);
        block_opts.set_block_cache(&rocksdb::Cache::new_lru_cache(128 << 20));
        block_opts.set_cache_index_and_filter_blocks(true);
        opts.set_block_based_table_factory(&block_opts);
        let db = DB::open(&opts, path)?;
        Ok(Arc::new(Engine {
            db: Arc::new(db),
            locks: LockManager::default(),
            next_txn: AtomicU64::new(1),
            sync_commits: options.sync_commits,
            commits_in_flight: AtomicU64::new(0),
        }))
    }

    /// Starts a transaction reading from a fresh snapshot.
    pub fn begin(self: &Arc<Self>, isolation: Isolation) -> Transaction {
        let id: TxnId = self.next_txn.fetch_add(1, Ordering::Relaxed);
        Transaction::new(self.clone(), id, isolation)
    }

    /// Reads the latest committed value of a key, outside any transaction.
    pub fn get_committed(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get(key)?)
    }

    /// Writes a batch durably, outside any transaction (sequence blocks).
    pub fn write_now_blocking(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        self.write_batch_blocking(batch)
    }

    pub(crate) fn write_batch_blocking(&self, batch: WriteBatch) -> StorageResult<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync_commits);
        Ok(self.db.write_opt(batch, &wo)?)
    }

    /// Writes one batch with the WAL on, fsync'd unless disabled. When other
    /// commits are in flight it runs on a blocking thread, so that concurrent
    /// commits meet in RocksDB's write group (one fsync for many); a lone
    /// commit writes directly and saves the two thread hand-offs.
    pub(crate) async fn write_batch(&self, batch: WriteBatch) -> StorageResult<()> {
        struct InFlight<'a>(&'a AtomicU64);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let others = self.commits_in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(&self.commits_in_flight);
        if others == 0 {
            return self.write_batch_blocking(batch);
        }
        let db = self.db.clone();
        let sync = self.sync_commits;
        tokio::task::spawn_blocking(move || {
            let mut wo = WriteOptions::default();
            wo.set_sync(sync);
            db.write_opt(batch, &wo)
        })
        .await
        .map_err(|e| crate::StorageError::Engine(format!("commit task failed: {e}")))??;
        Ok(())
    }

    /// The sequence number of the last committed write (the node's LSN).
    pub fn latest_sequence_number(&self) -> u64 {
        self.db.latest_sequence_number()
    }
}
