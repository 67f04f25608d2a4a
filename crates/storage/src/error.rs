//! Storage errors.

#[derive(Debug, thiserror::Error)]
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
}

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        let msg = e.into_string();
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

pub type StorageResult<T> = Result<T, StorageError>;
