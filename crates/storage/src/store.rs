//! The node's storage: the current engine, which a secondary replaces
//! wholesale when it installs a fresh copy (checkpoint) of its primary.
//!
//! The data directory holds the RocksDB directories and a small file,
//! `ACTIVE_DB`, naming the one in use (written with fsync + rename, so a
//! crash during an install leaves either the old or the new copy active).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::batch::CommittedBatch;
use crate::engine::{Engine, EngineOptions, EngineShared};
use crate::error::{StorageError, StorageResult};

const ACTIVE_FILE: &str = "ACTIVE_DB";
const DEFAULT_DB: &str = "db";

pub struct Store {
    data_dir: PathBuf,
    options: EngineOptions,
    shared: Arc<EngineShared>,
    current: RwLock<Arc<Engine>>,
    /// Replaced databases, removed once nothing uses them any more.
    retired: std::sync::Mutex<Vec<(std::sync::Weak<rocksdb::DB>, PathBuf)>>,
    /// Copies installed since the node started (sessions opened before an
    /// install end: their reads would otherwise jump to another history).
    installs: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens the active database in `data_dir` (creating `db` on first
    /// start) and removes copies left over from earlier installs.
    pub fn open(data_dir: &Path, options: EngineOptions) -> StorageResult<Arc<Store>> {
        let active = active_name(data_dir)?;
        remove_inactive(data_dir, &active);
        let shared = EngineShared::new();
        let engine = Engine::open_shared(&data_dir.join(&active), options.clone(), shared.clone())?;
        Ok(Arc::new(Store {
            data_dir: data_dir.to_path_buf(),
            options,
            shared,
            current: RwLock::new(engine),
            retired: std::sync::Mutex::default(),
            installs: Default::default(),
        }))
    }

    /// The engine in use now. Transactions keep the engine they began on.
    pub fn engine(&self) -> Arc<Engine> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A fresh directory inside the data directory to receive a copy into.
    pub fn staging_dir(&self) -> PathBuf {
        self.data_dir.join("db-incoming")
    }

    /// Makes the copy in `staging` (see [`Store::staging_dir`]) the active
    /// database. Later transactions use it; ones already running finish on
    /// the old engine, whose directory is removed at the next start.
    pub fn install(&self, staging: &Path) -> StorageResult<Arc<Engine>> {
        let name = format!(
            "db-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0)
        );
        let target = self.data_dir.join(&name);
        std::fs::rename(staging, &target).map_err(|e| io_error("install the copy", &target, e))?;
        let engine = Engine::open_shared(&target, self.options.clone(), self.shared.clone())?;
        write_active(&self.data_dir, &name)?;
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            engine.clone(),
        );
        self.installs.fetch_add(1, Ordering::SeqCst);
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Arc::downgrade(&old.db), old.path().to_path_buf()));
        drop(old);
        self.remove_retired();
        Ok(engine)
    }

    /// How many copies [`Store::install`] has made active since the node
    /// started.
    pub fn installs(&self) -> u64 {
        self.installs.load(Ordering::SeqCst)
    }

    /// Deletes replaced databases that no transaction reads any more
    /// (called after an install and periodically).
    pub fn remove_retired(&self) {
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired.retain(|(db, path)| {
            if db.strong_count() > 0 {
                return true;
            }
            if let Err(e) = std::fs::remove_dir_all(path) {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove a replaced database copy");
            }
            false
        });
    }

    /// Closes (false) or opens (true) the node for writes. After closing,
    /// waits until commits that got past the fence have written, so the
    /// LSN no longer moves except through the replication applier.
    pub fn set_writable(&self, writable: bool) {
        self.shared.writable.store(writable, Ordering::SeqCst);
        if !writable {
            let engine = self.engine();
            crate::blocking(|| engine.wait_for_commits());
        }
    }

    pub fn is_writable(&self) -> bool {
        self.shared.writable.load(Ordering::SeqCst)
    }

    /// Subscribes to batches as they commit.
    pub fn subscribe(&self) -> broadcast::Receiver<CommittedBatch> {
        self.shared.feed.subscribe()
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::Engine(format!("cannot {what} at {}: {e}", path.display()))
}

fn active_name(data_dir: &Path) -> StorageResult<String> {
    let path = data_dir.join(ACTIVE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(name) => {
            let name = name.trim().to_string();
            if name.is_empty() || name.contains('/') || name.contains("..") {
                return Err(StorageError::Corrupt(format!(
                    "{} names no database directory",
                    path.display()
                )));
            }
            Ok(name)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_DB.into()),
        Err(e) => Err(io_error("read", &path, e)),
    }
}

/// Writes `ACTIVE_DB` atomically: temp file, fsync, rename, fsync the directory.
fn write_active(data_dir: &Path, name: &str) -> StorageResult<()> {
    use std::io::Write;
    let tmp = data_dir.join(format!("{ACTIVE_FILE}.tmp"));
    let path = data_dir.join(ACTIVE_FILE);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(name.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(|e| io_error("write", &path, e))
}

/// Removes database directories other than the active one (copies being
/// received when the node stopped, replaced by an install, or being sent).
fn remove_inactive(data_dir: &Path, active: &str) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Also checkpoints a primary was streaming to a secondary when it
        // stopped (replication's backup-*): hard links that pin old files.
        let is_db = name == DEFAULT_DB || name.starts_with("db-") || name.starts_with("backup-");
        if is_db && name != active && entry.path().is_dir() {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove an old database copy");
            }
        }
    }
}
