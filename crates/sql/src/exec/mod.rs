//! The executor: read plans stream rows (pull-based iterators over
//! RocksDB scans); writes run asynchronously because they take row locks.

mod aggregate;
mod dml;
mod integrity;
mod query;
mod scan;
mod window;

pub use dml::{execute_delete, execute_insert, execute_update, insert_rows, locked_targets};
pub(crate) use integrity::{find_parent, missing_reference, referenced_index};
pub(crate) use query::series_of;
pub use query::{collect_rows, run_plan, Executor, VirtualRows};
pub use scan::decode_table_row as decode_row_for;
