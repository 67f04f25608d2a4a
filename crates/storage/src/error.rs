//! Storage errors.

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("deadlock detected")]
    Deadlock,
    #[error("could not serialize access due to concurrent update")]
    SerializationFailure,
    #[error("canceling statement due to user request")]
    Canceled,
    #[error("canceling statement due to statement timeout")]
    Timeout,
    #[error("no space left in the data directory: {0}")]
    DiskFull(String),
    #[error("data directory {path} is locked by another duet process")]
    Locked { path: String },
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The node is a secondary (or is being demoted): only the replication
    /// applier writes.
    #[error("cannot commit: this node is read-only")]
    ReadOnly,
}

impl StorageError {
    /// Classifies a RocksDB error message.
    pub(crate) fn from_message(msg: String) -> StorageError {
        if msg.contains("No space left") {
            StorageError::DiskFull(msg)
        } else if msg.contains("lock hold by current process")
            || msg.contains("LOCK: Resource temporarily unavailable")
        {
            StorageError::Locked { path: msg }
        } else {
            StorageError::Engine(msg)
        }
    }
}

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        StorageError::from_message(e.into_string())
    }
}

pub type StorageResult<T> = Result<T, StorageError>;
