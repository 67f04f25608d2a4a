//! Replication errors, with the SQLSTATE each maps to (KWDB's codes:
//! 59001 wrong role for a role/primary statement, 59002 wrong role or
//! state for a service statement, 59000 the operation itself failed).

#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    /// The statement may not run in this node's role.
    #[error("{0}")]
    WrongRole(String),
    /// A SERVICE statement in the wrong role or service state.
    #[error("{0}")]
    WrongServiceState(String),
    /// The operation failed (primary unreachable, refused, stream broken).
    #[error("{0}")]
    Failed(String),
    /// The node-local state file could not be read or written.
    #[error("replication state: {0}")]
    State(String),
    #[error(transparent)]
    Storage(#[from] duet_storage::StorageError),
}

impl ReplError {
    /// The SQLSTATE a client sees.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ReplError::WrongRole(_) => "59001",
            ReplError::WrongServiceState(_) => "59002",
            ReplError::Failed(_) | ReplError::State(_) | ReplError::Storage(_) => "59000",
        }
    }
}

pub type ReplResult<T> = Result<T, ReplError>;
