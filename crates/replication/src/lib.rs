//! Primary-secondary replication (SPEC section 4): node roles and their
//! persistent state, the connection a secondary opens to its primary, the
//! stream of committed RocksDB write batches, and the applier that replays
//! them on the secondary.

pub mod applier;
pub mod archive;
pub mod basebackup;
pub mod client;
pub mod error;
pub mod frame;
pub mod node;
pub mod receiver;
pub mod replay;
pub mod sender;
pub mod slots;
pub mod state;
pub mod status;
pub mod system;
mod tls;
pub mod url;

pub use error::{ReplError, ReplResult};
pub use node::{Command, Replication, ReplicationOptions, ServiceAction, SyncWait};
pub use state::{NodeState, Role, Service};

pub(crate) use duet_storage::blocking;
