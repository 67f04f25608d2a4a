//! The RocksDB instance behind a node. Every commit is one WriteBatch
//! written with the WAL on and fsync'd; commits that meet are written
//! together, one WAL write and one fsync for many (group_commit.rs).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};

use rocksdb::{Options, DB};
use tokio::sync::broadcast;

use crate::batch::{header_seq, CommittedBatch, RawBatch, HEADER_LEN};
use crate::batch_log::{BatchLog, BatchLogReader};
use crate::content_checksum::ContentSnapshot;
use crate::digest::{self, RangeDigest, VERIFY_WINDOW};
use crate::error::{StorageError, StorageResult};
use crate::group_commit;
use crate::lock::{LockManager, TxnId};
use crate::row_cache::RowCache;
use crate::txn::{Isolation, OwnedSnapshot, Transaction};

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

/// State that outlives any one engine instance: the write fence and the
/// feed of committed batches (a secondary swaps its engine when it installs
/// a fresh copy of its primary; both survive the swap).
pub(crate) struct EngineShared {
    /// False on a secondary: commits fail with `ReadOnly`; only the
    /// replication applier writes.
    pub(crate) writable: AtomicBool,
    /// Every committed batch, for the replication shipper. Sent to only
    /// when someone listens.
    pub(crate) feed: broadcast::Sender<CommittedBatch>,
}

impl EngineShared {
    pub(crate) fn new() -> Arc<EngineShared> {
        Arc::new(EngineShared {
            writable: AtomicBool::new(true),
            feed: broadcast::channel(FEED_CAPACITY).0,
        })
    }
}

/// Whether a write goes to the replication feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Publish,
    /// A secondary's replay of its primary's batches.
    Skip,
}

/// WAL files RocksDB keeps to reuse: a commit's fsync into an overwritten
/// file does not also write the file's size and extents (see batch_log.rs).
const RECYCLED_WAL_FILES: usize = 4;

/// RocksDB switches memtables at this size; a ceiling only, well above
/// what a WAL file's worth of batches takes in a memtable (about twice
/// its bytes for small rows), so that [`WAL_FILE_BYTES`] decides.
const MEMTABLE_BYTES: usize = 32 << 20;

/// A WAL file is ended (the memtable switched, which starts the next
/// file) once it holds this many bytes of batches. RocksDB truncates a
/// WAL file to its length when it closes it, and a recycled file's next
/// life overwrites only that many bytes: past them, each commit's fsync
/// grows the file and so also writes its size and extents (30-40 us more
/// per fsync on this project's test machines). Files that all end at the
/// same length keep every commit an overwrite, as in PostgreSQL's
/// zero-filled WAL segments. Ending the file also moves a bulk write
/// (COPY, a table rewrite) on to disk tables at once, before a memtable
/// of millions of entries slows every point read.
const WAL_FILE_BYTES: u64 = 8 << 20;

/// What RocksDB adds to a batch in its WAL: a recyclable record's header.
const WAL_RECORD_HEADER_BYTES: u64 = 11;

/// The batch log's directory inside the RocksDB directory (it goes with
/// the database when a secondary installs a fresh copy).
const BATCH_LOG_DIR: &str = "batch-log";

/// Batches a slow shipper may fall behind the live feed before it must go
/// back to reading the WAL.
const FEED_CAPACITY: usize = 8192;

pub struct Engine {
    pub(crate) db: Arc<DB>,
    pub(crate) locks: LockManager,
    next_txn: AtomicU64,
    sync_commits: bool,
    /// Commits currently writing (to choose between writing inline and
    /// joining a write group, and so that demotion can wait for the last
    /// of them).
    pub(crate) commits_in_flight: AtomicU64,
    /// Set when a commit already sent to the replication feed failed to
    /// write: its LSN must not be given to another commit while its
    /// secondary may have it (and may have acknowledged it), so this node
    /// takes no more commits until it is restarted.
    shipped_write_failed: AtomicBool,
    /// The highest LSN known to be on disk (see [`Engine::sync_through`]).
    synced_lsn: AtomicU64,
    /// Bytes written to the current WAL file (see [`WAL_FILE_BYTES`]).
    wal_file_bytes: AtomicU64,
    /// The group committer, started by the first commit that meets another.
    committer: OnceLock<mpsc::Sender<group_commit::Request>>,
    pub(crate) shared: Arc<EngineShared>,
    path: PathBuf,
    /// Keys' latest committed values (see row_cache.rs).
    pub(crate) rows: RowCache,
    /// Every committed batch, for replication (see batch_log.rs).
    log: Arc<BatchLog>,
    /// The snapshot taken last, shared by the transactions and statements
    /// that start while nothing new is committed: taking and releasing a
    /// RocksDB snapshot locks the database's mutex (a few percent of a
    /// point query, contended across cores).
    latest_snapshot: std::sync::Mutex<Option<Arc<OwnedSnapshot>>>,
}

impl Engine {
    /// Opens (or creates) a standalone RocksDB database at `path`.
    pub fn open(path: &Path, options: EngineOptions) -> StorageResult<Arc<Engine>> {
        Engine::open_shared(path, options, EngineShared::new())
    }

    pub(crate) fn open_shared(
        path: &Path,
        options: EngineOptions,
        shared: Arc<EngineShared>,
    ) -> StorageResult<Arc<Engine>> {
        // Recovery leaves the WAL it replayed in place (the memtables are
        // flushed later, as usual), so that the batch log can take from it
        // whatever the machine lost of its own tail.
        let mut opts = Options::default().get_options_from_string(format!(
            "avoid_flush_during_recovery=true;recycle_log_file_num={RECYCLED_WAL_FILES}"
        ))?;
        opts.create_if_missing(true);
        // A write group's leader writes the WAL and every member's memtable
        // entries itself, so a waiting member is woken once, when its
        // commit is done (pipelined or parallel memtable writes wake each
        // member once more, and commits here are small). Members sleep
        // instead of spinning: on a small machine the spinning took CPU the
        // other sessions need (a quarter of a write-heavy profile).
        opts.set_enable_pipelined_write(false);
        opts.set_allow_concurrent_memtable_write(false);
        opts.set_enable_write_thread_adaptive_yield(false);
        opts.increase_parallelism(2);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_write_buffer_size(MEMTABLE_BYTES);
        // Point reads (most of a SQL workload) skip the memtable's
        // skiplist when a bloom filter over its keys says the key is not
        // there. Its size is this ratio of the memtable ceiling: 1.6 MB,
        // tens of bits per key of a memtable that its WAL file ends.
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.05);
        let mut block_opts = rocksdb::BlockBasedOptions::default();
        block_opts.set_bloom_filter(10.0, false);
        // A hash index inside each data block: a point read finds its key
        // without a binary search over the block's restart points.
        block_opts.set_data_block_index_type(rocksdb::DataBlockIndexType::BinaryAndHash);
        block_opts.set_data_block_hash_ratio(0.75);
        // A lock-free cache: an LRU cache's shard mutexes showed up in
        // profiles of concurrent point reads. Index and filter blocks stay
        // with their table readers rather than going through the cache
        // on every read.
        block_opts.set_block_cache(&rocksdb::Cache::new_hyper_clock_cache(128 << 20, 0));
        block_opts.set_cache_index_and_filter_blocks(false);
        opts.set_block_based_table_factory(&block_opts);
        let db = DB::open(&opts, path)?;
        let log = BatchLog::open(&path.join(BATCH_LOG_DIR))?;
        fill_batch_log(&db, &log);
        // What RocksDB recovered is on disk.
        let recovered = db.latest_sequence_number();
        let rows = RowCache::new(recovered);
        Ok(Arc::new(Engine {
            db: Arc::new(db),
            locks: LockManager::default(),
            next_txn: AtomicU64::new(1),
            sync_commits: options.sync_commits,
            commits_in_flight: AtomicU64::new(0),
            shipped_write_failed: AtomicBool::new(false),
            synced_lsn: AtomicU64::new(recovered),
            wal_file_bytes: AtomicU64::new(0),
            committer: OnceLock::new(),
            shared,
            path: path.to_path_buf(),
            rows,
            log,
            latest_snapshot: Default::default(),
        }))
    }

    /// The RocksDB directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a transaction reading from a fresh snapshot.
    pub fn begin(self: &Arc<Self>, isolation: Isolation) -> Transaction {
        let id: TxnId = self.next_txn.fetch_add(1, Ordering::Relaxed);
        Transaction::new(self.clone(), id, isolation)
    }

    /// A snapshot of everything committed so far.
    pub(crate) fn snapshot(&self) -> Arc<OwnedSnapshot> {
        // A snapshot at the latest sequence number sees exactly what a new
        // one would.
        let latest = self.db.latest_sequence_number();
        let mut cached = self
            .latest_snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(snapshot) = cached.as_ref().filter(|s| s.sequence() == latest) {
            return snapshot.clone();
        }
        let snapshot = Arc::new(OwnedSnapshot::new(&self.db));
        *cached = Some(snapshot.clone());
        snapshot
    }

    /// Reads the latest committed value of a key, outside any transaction.
    pub fn get_committed(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        if let Some(value) = self.rows.lookup(key, u64::MAX) {
            return Ok(value);
        }
        // Whatever the read sees was committed at or after this sequence.
        let seq = self.db.latest_sequence_number();
        let value = self.db.get(key)?;
        self.rows.fill(key, seq, &value);
        Ok(value)
    }

    /// Writes a batch durably, outside any transaction (setval).
    pub fn write_now_blocking(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> StorageResult<()> {
        self.write_batch_blocking(raw_batch(writes)).map(|_| ())
    }

    /// Writes a batch outside any transaction without waiting for the
    /// disk, and returns its LSN: a sequence block's reservation, made
    /// durable by the commits that use its values (see
    /// [`Engine::sync_through`]), as PostgreSQL's sequence WAL records are
    /// flushed by the commit of the transaction that logged them.
    pub fn write_unsynced(&self, writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> StorageResult<u64> {
        let mut batch = raw_batch(writes);
        let _in_flight = self.enter_commit()?;
        let seq = self.write_raw(&mut batch, false, &[], Feed::Publish)?;
        Ok(seq)
    }

    /// The highest LSN known to be on disk.
    pub fn synced_lsn(&self) -> u64 {
        self.synced_lsn.load(Ordering::SeqCst)
    }

    /// Makes every write up to `lsn` durable. Usually a synced commit has
    /// already done it (RocksDB's WAL is one sequence, and a synced write
    /// syncs every WAL file before its own); otherwise the WAL is synced now.
    pub fn sync_through(&self, lsn: u64) -> StorageResult<()> {
        if !self.sync_commits || self.synced_lsn() >= lsn {
            return Ok(());
        }
        self.flush_wal()
    }

    /// Writes one batch now, on this thread; returns its sequence number.
    pub(crate) fn write_batch_blocking(&self, mut batch: RawBatch) -> StorageResult<u64> {
        let _in_flight = self.enter_commit()?;
        self.write_and_publish(&mut batch)
    }

    /// Writes one batch with the WAL on, fsync'd unless disabled, and
    /// returns its sequence number. A lone commit of the only task on its
    /// runtime writes directly on this thread (no hand-off); any other goes
    /// to the group committer, which writes all that are waiting with one
    /// fsync.
    pub(crate) async fn write_batch(self: &Arc<Self>, mut batch: RawBatch) -> StorageResult<u64> {
        let in_flight = self.enter_commit()?;
        if in_flight.others == 0 && alone_on_runtime() {
            return self.write_and_publish(&mut batch);
        }
        let Some(committer) = self.committer() else {
            return self.write_and_publish(&mut batch);
        };
        // The request counts itself in flight (taken before this future's
        // count is released, so the count never dips to zero in between),
        // and the committer drops the count when the write ends, not when
        // this future is next polled: a demotion waiting for it may be
        // blocking this very thread.
        let (reply, done) = tokio::sync::oneshot::channel();
        self.commits_in_flight.fetch_add(1, Ordering::SeqCst);
        drop(in_flight);
        if let Err(mpsc::SendError(request)) =
            committer.send(group_commit::Request { batch, reply })
        {
            // The committer is gone (it never exits while the engine lives).
            let mut batch = request.batch;
            let _in_flight = InFlight {
                counter: &self.commits_in_flight,
                others: 1,
            };
            return self.write_and_publish(&mut batch);
        }
        done.await
            .map_err(|_| StorageError::Engine("the group committer stopped".into()))?
    }

    fn committer(self: &Arc<Self>) -> Option<&mpsc::Sender<group_commit::Request>> {
        if let Some(committer) = self.committer.get() {
            return Some(committer);
        }
        match group_commit::start(Arc::downgrade(self)) {
            // A racing start loses: its thread ends with its sender.
            Ok(committer) => Some(self.committer.get_or_init(|| committer)),
            Err(e) => {
                tracing::warn!("could not start the group committer: {e}");
                None
            }
        }
    }

    /// Counts a commit in flight, then checks the fence (in this order, so
    /// that [`Engine::wait_for_commits`] after closing the fence sees every
    /// commit that got past it).
    fn enter_commit(&self) -> StorageResult<InFlight<'_>> {
        let others = self.commits_in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight {
            counter: &self.commits_in_flight,
            others,
        };
        if !self.shared.writable.load(Ordering::SeqCst) {
            return Err(StorageError::ReadOnly);
        }
        Ok(guard)
    }

    pub(crate) fn write_and_publish(&self, batch: &mut RawBatch) -> StorageResult<u64> {
        self.write_commits(batch, &[])
    }

    /// Writes a batch (a commit, or a group of them: `commits` are their
    /// batches, which the batch log keeps and the feed ships one by one);
    /// returns its first sequence number.
    pub(crate) fn write_commits(
        &self,
        batch: &mut RawBatch,
        commits: &[&[u8]],
    ) -> StorageResult<u64> {
        let seq = self.write_raw(batch, self.sync_commits, commits, Feed::Publish)?;
        self.end_wal_file_when_full();
        Ok(seq)
    }

    /// Sends a batch's commits (the batch itself when `commits` is empty)
    /// to the replication feed, each with its LSN in its header.
    fn publish(&self, first: u64, data: &[u8], commits: &[&[u8]]) {
        if self.shared.feed.receiver_count() == 0 {
            return;
        }
        let whole = [data];
        let mut seq = first;
        for part in if commits.is_empty() {
            &whole[..]
        } else {
            commits
        } {
            let mut data = bytes::BytesMut::from(*part);
            if let Some(header) = data.get_mut(0..8) {
                header.copy_from_slice(&seq.to_le_bytes());
            }
            let _ = self.shared.feed.send(CommittedBatch {
                seq,
                data: data.freeze(),
            });
            seq += crate::batch::header_count(part).unwrap_or(0);
        }
    }

    /// Writes a batch, keeping the row cache right, appends it (or the
    /// `commits` it is made of) to the batch log, and with `Feed::Publish`
    /// sends it to the replication feed; returns the batch's first
    /// sequence number.
    ///
    /// A synced commit is sent before it is written, so that a secondary
    /// writes and syncs it while this node syncs it too: a synchronous
    /// commit then waits for the slower of the two fsyncs, not for both in
    /// turn. This node may lose what it sent and had not synced (an
    /// operating-system crash, a failed write); at most
    /// [`VERIFY_WINDOW`] LSNs are ever in that state (a write that would
    /// go past it is synced and sent after), so a secondary that
    /// reconnects proves its last `VERIFY_WINDOW` LSNs against this node's
    /// (see digest.rs). A failed write retracts what it sent.
    fn write_raw(
        &self,
        batch: &mut RawBatch,
        sync: bool,
        commits: &[&[u8]],
        feed: Feed,
    ) -> StorageResult<u64> {
        let publish = feed == Feed::Publish;
        if publish && self.shipped_write_failed.load(Ordering::SeqCst) {
            return Err(StorageError::Engine(
                "a commit shipped to the secondary could not be written here; \
                 this node takes no more commits until it is restarted"
                    .into(),
            ));
        }
        let marked = self.rows.begin_write(batch.data());
        let mut log = self.log.appender();
        // Under the batch log's lock no other write takes sequence
        // numbers: this batch's first is the next one.
        let first = self.db.latest_sequence_number() + 1;
        let unsynced = (first + batch.count()).saturating_sub(self.synced_lsn() + 1);
        // An unsynced write that would leave too much sent and not synced
        // is synced after all.
        let sync = sync || (publish && self.sync_commits && unsynced > VERIFY_WINDOW);
        let early =
            publish && sync && unsynced <= VERIFY_WINDOW && self.shared.feed.receiver_count() > 0;
        if early {
            self.publish(first, batch.data(), commits);
        }
        let result = batch.write(&self.db, sync);
        match &result {
            Ok(written) if publish && !early => self.publish(*written, batch.data(), commits),
            // Sent with the wrong LSNs: cannot happen while every write
            // takes the batch log's lock.
            Ok(written) if early && *written != first => self.retract(first),
            Err(_) if early => self.retract(first),
            _ => {}
        }
        let last = match &result {
            Ok(first) => {
                let last = first + batch.count().saturating_sub(1);
                let bytes = batch.data().len() as u64 + WAL_RECORD_HEADER_BYTES;
                self.wal_file_bytes.fetch_add(bytes, Ordering::Relaxed);
                if sync {
                    self.synced_lsn.fetch_max(last, Ordering::SeqCst);
                }
                // The commit is durable whatever happens to its copy: a
                // failed append leaves a hole (a secondary that needs it
                // re-copies), not a failed commit.
                let appended = match commits {
                    [] => log.append(*first, &[batch.data()]),
                    _ => log.append(*first, commits),
                };
                if let Err(e) = appended {
                    tracing::warn!(error = %e, "batch log: a commit could not be appended");
                }
                last
            }
            Err(_) => self.db.latest_sequence_number(),
        };
        drop(log);
        self.rows.end_write(marked, last);
        result
    }

    /// Tells the shippers that the batches sent from `lsn` on were not
    /// written: their streams end, and a secondary that has them is
    /// refused at its next start (the digest of its last LSNs differs).
    fn retract(&self, lsn: u64) {
        tracing::error!(
            lsn,
            "a commit sent to the replication feed could not be written; \
             no more commits until a restart"
        );
        self.shipped_write_failed.store(true, Ordering::SeqCst);
        let _ = self.shared.feed.send(CommittedBatch {
            seq: lsn,
            data: bytes::Bytes::new(),
        });
    }

    /// Switches to the next WAL file once this one holds
    /// [`WAL_FILE_BYTES`]; the memtable it ends is flushed in the background.
    fn end_wal_file_when_full(&self) {
        if self.wal_file_bytes.load(Ordering::Relaxed) < WAL_FILE_BYTES
            || self.wal_file_bytes.swap(0, Ordering::Relaxed) < WAL_FILE_BYTES
        {
            return;
        }
        let mut options = rocksdb::FlushOptions::default();
        options.set_wait(false);
        if let Err(e) = self.db.flush_opt(&options) {
            tracing::warn!("switching to the next WAL file failed: {e}");
        }
    }

    /// Before a memtable flush that ends the WAL file early (VACUUM), fills
    /// the file up to [`WAL_FILE_BYTES`] with one WAL-only record
    /// (RocksDB's log data: no key, no sequence number), so that it is as
    /// long as the others when RocksDB recycles it; PostgreSQL zero-fills a
    /// WAL segment before using it for the same reason.
    fn fill_wal_file(&self) -> StorageResult<()> {
        let written = self.wal_file_bytes.load(Ordering::Relaxed);
        let missing =
            WAL_FILE_BYTES.saturating_sub(written + WAL_RECORD_HEADER_BYTES + HEADER_LEN as u64);
        // With an empty memtable the flush switches nothing.
        let entries = self
            .db
            .property_int_value("rocksdb.num-entries-active-mem-table")?;
        if written == 0 || missing == 0 || entries == Some(0) {
            return Ok(());
        }
        let mut filler = rocksdb::WriteBatch::default();
        filler.put_log_data(vec![0; missing as usize]);
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(self.sync_commits);
        Ok(self.db.write_opt(filler, &options)?)
    }

    /// Flushes the memtable, which also ends the current WAL file.
    fn flush_memtable(&self) -> StorageResult<()> {
        self.wal_file_bytes.store(0, Ordering::Relaxed);
        Ok(self.db.flush()?)
    }

    /// VACUUM: the memtable goes to disk and the key ranges (all when
    /// None) are compacted, so reads find each key in one place.
    pub fn compact(&self, ranges: Option<&[(Vec<u8>, Vec<u8>)]>) -> StorageResult<()> {
        self.fill_wal_file()?;
        self.flush_memtable()?;
        match ranges {
            None => self.db.compact_range::<&[u8], &[u8]>(None, None),
            Some(ranges) => {
                for (start, end) in ranges {
                    self.db.compact_range(Some(start), Some(end));
                }
            }
        }
        Ok(())
    }

    /// Waits until no commit is writing (after the fence was closed).
    pub fn wait_for_commits(&self) {
        while self.commits_in_flight.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Replays a batch shipped from the primary. It must start exactly at
    /// the next sequence number, so that LSNs stay equal on both nodes.
    /// Bypasses the write fence: on a secondary only this path writes.
    /// `commits` are the shipped batches `data` merges, if it does: the
    /// batch log keeps them one by one.
    pub fn apply_replicated(
        &self,
        data: &[u8],
        sync: bool,
        commits: &[&[u8]],
    ) -> StorageResult<u64> {
        let expected = self.latest_sequence_number() + 1;
        let shipped = header_seq(data).unwrap_or(0);
        if shipped != expected {
            return Err(StorageError::Corrupt(format!(
                "replicated batch starts at LSN {shipped}, expected {expected}"
            )));
        }
        let mut batch = RawBatch::from_data(data)?;
        let seq = self.write_raw(&mut batch, sync && self.sync_commits, commits, Feed::Skip)?;
        self.end_wal_file_when_full();
        if seq != expected {
            return Err(StorageError::Corrupt(format!(
                "replicated batch was written at LSN {seq}, expected {expected}"
            )));
        }
        Ok(seq)
    }

    /// Writes node-level keys (replication's system id and epoch history)
    /// durably, past the write fence: promotion writes its epoch before the
    /// node opens for writes. Returns the batch's LSN; shipped like any
    /// other commit.
    pub fn write_unfenced(&self, writes: &[(Vec<u8>, Vec<u8>)]) -> StorageResult<u64> {
        let mut batch = RawBatch::new();
        for (k, v) in writes {
            batch.put(k, v);
        }
        let others = self.commits_in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight {
            counter: &self.commits_in_flight,
            others,
        };
        self.write_and_publish(&mut batch)
    }

    /// Makes every write so far durable (the applier writes without
    /// syncing, then syncs once per burst of batches).
    pub fn flush_wal(&self) -> StorageResult<()> {
        // Everything up to the last published sequence number is in the WAL.
        let covered = self.db.latest_sequence_number();
        self.db.flush_wal(true)?;
        self.synced_lsn.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// At shutdown: syncs the WAL and writes the memtables to table files,
    /// so that the next start has no WAL to replay.
    pub fn flush_for_shutdown(&self) -> StorageResult<()> {
        self.db.flush_wal(true)?;
        self.log.sync()?;
        self.flush_memtable()
    }

    /// Committed batches from the batch log, from the one holding `lsn + 1`
    /// on, in order. The first starts past `lsn + 1` if the log no longer
    /// holds that far back.
    pub fn wal_after(&self, lsn: u64) -> StorageResult<WalBatches> {
        Ok(self.log.read_after(lsn))
    }

    /// The digest of this node's last [`VERIFY_WINDOW`] LSNs, from
    /// `not_before` at the earliest (its primary's
    /// [`Engine::log_origin`]), which a secondary sends its primary when it
    /// starts streaming. The range starts where a batch of this node's
    /// does (a burst written in key order only counts whole), or where
    /// its batch log does: what comes before came with its copy. None
    /// when its batch log has a hole there.
    pub fn tail_digest(&self, not_before: u64) -> StorageResult<Option<RangeDigest>> {
        let through = self.latest_sequence_number();
        let target = (through + 1).saturating_sub(VERIFY_WINDOW).max(not_before);
        let mut batches = self.log.read_after(target.saturating_sub(1)).peekable();
        let from = match batches.peek() {
            Some(Ok(batch)) => batch.seq.min(through + 1),
            Some(Err(_)) | None => through + 1,
        };
        Ok(
            digest::digest_range(batches, from, through)?.map(|value| RangeDigest {
                from,
                through,
                value,
            }),
        )
    }

    /// Where this node's own history starts: the first LSN of its batch
    /// log if no segment was ever dropped from it (everything before came
    /// with its copy, or there is nothing), else 0. A secondary's digest
    /// starts there at the earliest.
    pub fn log_origin(&self) -> u64 {
        if self.log.trimmed() {
            return 0;
        }
        match self.log.segments().first() {
            Some(segment) => segment.first_seq,
            None => self.latest_sequence_number() + 1,
        }
    }

    /// The latest sequence number once the write in flight, if any, is
    /// done: every batch already sent to the replication feed is at or
    /// before it.
    pub fn settled_sequence_number(&self) -> u64 {
        drop(self.log.appender());
        self.latest_sequence_number()
    }

    /// The digest of the entries at LSNs `from..=through` of this node's
    /// batch log; None if it no longer holds them all.
    pub fn digest_range(&self, from: u64, through: u64) -> StorageResult<Option<u64>> {
        digest::digest_range(self.log.read_after(from.saturating_sub(1)), from, through)
    }

    /// The batch log (replication slots trim it).
    pub fn batch_log(&self) -> &BatchLog {
        &self.log
    }

    /// Writes a consistent copy of the database into `dir` (which must not
    /// exist): hard links to the SST files plus the WAL tail.
    pub fn checkpoint(&self, dir: &Path) -> StorageResult<()> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db)?;
        // It flushes the memtable, which ends the WAL file.
        self.wal_file_bytes.store(0, Ordering::Relaxed);
        checkpoint.create_checkpoint(dir)?;
        Ok(())
    }

    /// The sequence number of the last committed write (the node's LSN).
    pub fn latest_sequence_number(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    /// A checksum of every key and value at one snapshot, and the LSN of
    /// that snapshot: two nodes at the same LSN must agree on it.
    pub fn content_checksum(&self) -> StorageResult<(u64, String)> {
        let snapshot = self.content_snapshot();
        Ok((snapshot.lsn(), snapshot.checksum()?))
    }

    /// Fixes the snapshot (and LSN) a checksum is taken at, now; the scan
    /// itself can run later, elsewhere ([`ContentSnapshot::checksum`]).
    /// It holds every batch already sent to the replication feed: a write
    /// in flight (sent before it is written) ends first.
    pub fn content_snapshot(&self) -> ContentSnapshot {
        self.settled_sequence_number();
        ContentSnapshot::new(OwnedSnapshot::new(&self.db))
    }
}

struct InFlight<'a> {
    counter: &'a AtomicU64,
    /// Commits that were already writing when this one started.
    others: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Batches read back from the batch log, in sequence order.
pub type WalBatches = BatchLogReader;

/// True when no other task shares the current runtime (or there is none):
/// a commit that waits for its fsync on this thread then holds up nobody.
/// The server runs one single-worker runtime per CPU, and a commit written
/// inline there stalls every other session of that shard for the fsync
/// (and leaves the group committer a smaller group).
fn alone_on_runtime() -> bool {
    tokio::runtime::Handle::try_current().map_or(true, |h| h.metrics().num_alive_tasks() <= 1)
}

/// A batch of puts (`Some`) and deletes (`None`).
fn raw_batch(writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> RawBatch {
    let mut batch = RawBatch::new();
    for (k, v) in writes {
        match v {
            Some(v) => batch.put(&k, &v),
            None => batch.delete(&k),
        }
    }
    batch
}

/// Appends to the batch log what RocksDB has past its end: after a crash
/// of the machine, the batches whose appends were lost (RocksDB's
/// recovery leaves the WAL it replayed in place for this); after an
/// upgrade from a version without the log, whatever RocksDB's WAL archive
/// held. What RocksDB no longer has stays a hole.
fn fill_batch_log(db: &DB, log: &BatchLog) {
    let latest = db.latest_sequence_number();
    let next = log.next_seq().max(1);
    if next > latest {
        return;
    }
    // (The Rust binding yields the batches starting after its argument.)
    let batches = match db.get_updates_since(next - 1) {
        Ok(batches) => batches,
        Err(e) => {
            tracing::warn!(from = next, error = %e, "batch log: RocksDB's WAL has nothing to refill it from");
            return;
        }
    };
    let mut appender = log.appender();
    let mut filled = 0;
    for batch in batches {
        let (seq, batch) = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "batch log: reading RocksDB's WAL to refill it failed");
                break;
            }
        };
        // A batch with no entries is a WAL file's filler (fill_wal_file).
        if batch.is_empty() || seq + batch.len() as u64 <= next {
            continue;
        }
        if let Err(e) = appender.append(seq, &[batch.data()]) {
            tracing::warn!(error = %e, "batch log: refilling from RocksDB's WAL failed");
            break;
        }
        filled += 1;
    }
    if filled > 0 {
        tracing::info!(
            from = next,
            batches = filled,
            "batch log: refilled from RocksDB's WAL"
        );
    }
    drop(appender);
    // Earlier versions had RocksDB archive its WAL files; the log has
    // taken what they held.
    let archive = db.path().join("archive");
    if archive.exists() {
        if let Err(e) = std::fs::remove_dir_all(&archive) {
            tracing::warn!(dir = %archive.display(), error = %e, "cannot remove RocksDB's old WAL archive");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_put(key: &[u8]) -> RawBatch {
        raw_batch(vec![(key.to_vec(), Some(b"v".to_vec()))])
    }

    fn single_worker_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_commit_writes_inline_only_when_its_task_is_alone_on_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let runtime = single_worker_runtime();

        let alone = runtime.spawn({
            let engine = engine.clone();
            async move { engine.write_batch(one_put(b"a")).await }
        });
        runtime.block_on(alone).unwrap().unwrap();
        assert!(
            engine.committer.get().is_none(),
            "a lone task writes inline"
        );

        // Another session on the same runtime (parked, waiting for its
        // client): an inline fsync would hold it up, so the committer writes.
        let (_wake, parked) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(parked);
        let shared = runtime.spawn({
            let engine = engine.clone();
            async move { engine.write_batch(one_put(b"b")).await }
        });
        runtime.block_on(shared).unwrap().unwrap();
        assert!(engine.committer.get().is_some(), "the committer wrote");
        assert_eq!(engine.get_committed(b"b").unwrap(), Some(b"v".to_vec()));
    }

    /// Sizes of the RocksDB WAL files in `dir`, oldest first.
    fn wal_file_sizes(dir: &Path) -> Vec<u64> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| path.metadata().unwrap().len())
            .collect()
    }

    /// An engine whose commits are not fsync'd (these tests write a lot).
    fn unsynced_engine(dir: &Path) -> Arc<Engine> {
        let options = EngineOptions {
            sync_commits: false,
        };
        Engine::open(dir, options).unwrap()
    }

    #[test]
    fn every_wal_file_ends_at_the_same_length() {
        let dir = tempfile::tempdir().unwrap();
        let engine = unsynced_engine(dir.path());
        // Small rows take about twice their WAL bytes in a memtable: with
        // a 16 MB memtable deciding, these files ended near 7.5 MB.
        let mut key = 0u64;
        let mut largest_batch = 0;
        while engine.latest_sequence_number() < 1 << 21 {
            let writes = (0..1000)
                .map(|_| {
                    key += 1;
                    (
                        key.to_be_bytes().repeat(2),
                        Some(key.to_le_bytes().to_vec()),
                    )
                })
                .collect();
            let mut batch = raw_batch(writes);
            largest_batch = largest_batch.max(batch.data().len() as u64);
            engine.write_and_publish(&mut batch).unwrap();
        }
        // Several files ended; the current one is the newest, and may be in
        // its first life (still growing) or a recycled one.
        let mut sizes = wal_file_sizes(dir.path());
        if sizes.last().is_some_and(|&size| size < WAL_FILE_BYTES) {
            sizes.pop();
        }
        assert!(sizes.len() >= 2, "WAL files: {sizes:?}");
        let limit = WAL_FILE_BYTES + largest_batch + WAL_RECORD_HEADER_BYTES;
        for &size in &sizes {
            assert!(
                size >= WAL_FILE_BYTES && size <= limit,
                "WAL files: {sizes:?}, each should end between {WAL_FILE_BYTES} and {limit}"
            );
        }
    }

    #[test]
    fn vacuum_fills_the_wal_file_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let engine = unsynced_engine(dir.path());
        engine.write_batch_blocking(one_put(b"k")).unwrap();
        engine.compact(None).unwrap();
        let sizes = wal_file_sizes(dir.path());
        assert!(
            sizes.len() == 2 && sizes[0] >= WAL_FILE_BYTES && sizes[1] == 0,
            "WAL files: {sizes:?}"
        );
        // Nothing in the memtable: no switch, and so nothing to fill.
        engine.compact(None).unwrap();
        assert_eq!(wal_file_sizes(dir.path()), sizes);
        assert_eq!(engine.get_committed(b"k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn what_is_sent_and_not_synced_stays_within_the_verify_window() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let mut feed = engine.shared.feed.subscribe();
        let small = engine
            .write_unsynced(vec![(b"a".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        assert!(engine.synced_lsn() < small);
        // Unsynced, it would leave more than the window sent and not on
        // disk: it is synced.
        let writes = (0..VERIFY_WINDOW)
            .map(|i| (i.to_be_bytes().to_vec(), Some(b"v".to_vec())))
            .collect();
        let big = engine.write_unsynced(writes).unwrap();
        assert!(engine.synced_lsn() >= big + VERIFY_WINDOW - 1);
        let sent: Vec<u64> = std::iter::from_fn(|| feed.try_recv().ok())
            .map(|b| b.seq)
            .collect();
        assert_eq!(sent, [small, big]);
        // What a secondary sends when it starts streaming covers the last
        // window, and matches this node's own digest of it.
        let tail = engine.tail_digest(0).unwrap().unwrap();
        assert_eq!(tail.through, engine.latest_sequence_number());
        assert_eq!(tail.through + 1 - tail.from, VERIFY_WINDOW);
        assert_eq!(
            engine.digest_range(tail.from, tail.through).unwrap(),
            Some(tail.value)
        );
    }

    #[test]
    fn an_unsynced_write_is_synced_by_a_later_commit_or_by_sync_through() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let synced = || engine.synced_lsn();

        let first = engine
            .write_unsynced(vec![(b"s1".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        assert!(synced() < first);
        let commit = engine.write_batch_blocking(one_put(b"k")).unwrap();
        assert!(commit > first && synced() >= commit);

        let second = engine
            .write_unsynced(vec![(b"s2".to_vec(), Some(b"2".to_vec()))])
            .unwrap();
        assert!(synced() < second);
        engine.sync_through(second).unwrap();
        assert!(synced() >= second);
        assert_eq!(engine.get_committed(b"s2").unwrap(), Some(b"2".to_vec()));
    }
}
