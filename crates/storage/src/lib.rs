//! duet's storage layer: an ordered key-value store on RocksDB with
//! snapshot reads, buffered write sets committed as one WriteBatch each,
//! row locks with deadlock detection, and an order-preserving key encoding.
//!
//! The SQL layer maps tables, indexes and the catalog onto keys built with
//! [`keycode`]; this crate knows nothing about SQL.

pub mod batch;
pub mod batch_format;
pub mod batch_log;
mod content_checksum;
mod digest;
pub mod engine;
pub mod error;
mod group_commit;
pub mod interrupt;
pub mod keycode;
pub mod lock;
mod lsn;
mod row_cache;
pub mod store;
pub mod txn;

pub use batch::CommittedBatch;
pub use batch_log::Segment;
pub use content_checksum::ContentSnapshot;
pub use digest::{digest_range, RangeDigest, VERIFY_WINDOW};
pub use engine::{Engine, EngineOptions, WalBatches};
pub use error::{StorageError, StorageResult};
pub use interrupt::{Interrupt, StatementControl};
pub use lsn::{blocking, format_lsn, parse_lsn};
pub use store::Store;
pub use txn::{Isolation, Scan, Transaction};
