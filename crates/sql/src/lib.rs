//! duet's SQL layer: parsing (sqlparser plus duet's own statements),
//! planning and execution over the storage layer's transactions.
//!
//! The server crate drives it through [`Database`] (shared, one per node) and
//! [`Session`] (one per client connection).

mod cast;
pub mod catalog;
mod copy;
pub mod depth;
pub mod testing;
pub mod error;
mod exec;
mod explain;
mod expr;
mod functions;
mod parser;
mod plan;
mod planner;
pub mod replicate;
mod row;
pub mod scram;
pub mod session;
pub mod types;
pub mod value;

pub use error::{SqlError, SqlResult, SqlState};
pub use replicate::{NodeControl, NodeRole, ReplicateStatement, ServiceVerb, SyncLevel, ViewRows};
pub use session::{
    Column, CopyResponse, Database, DatabaseOptions, Describe, Interrupt, Notice, QueryResult,
    RoleInfo, Session, SessionContext, Statement, TransactionState,
};
pub use types::DataType;
pub use value::{TimeZone, Value};
