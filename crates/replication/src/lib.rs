//! Primary-secondary replication (SPEC section 4): node roles and their
//! persistent state, the connection a secondary opens to its primary, the
//! stream of committed RocksDB write batches, and the applier that replays
//! them on the secondary.

mod applier;
pub mod archive;
pub mod basebackup;
pub mod client;
pub mod error;
pub mod frame;
pub mod node;
pub mod receiver;
pub mod sender;
pub mod slots;
pub mod state;
pub mod status;
pub mod system;
mod tls;
pub mod url;

pub use error::{ReplError, ReplResult};
pub use node::{Command, Replication, ReplicationOptions, ServiceAction};
pub use state::{NodeState, Role, Service};

/// Runs blocking work (fsync, WAL reads, a full-keyspace scan) from async
/// code without stalling the worker's other tasks: on a multi-thread
/// runtime (the server's shards are) the worker hands its tasks to
/// another thread meanwhile; elsewhere (tests) it just runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
