//! The bodies of duet's fuzz targets, one per input boundary:
//!
//! * [`frontend_message`]: the PostgreSQL frontend-message decoder every
//!   client byte goes through (startup packets, then typed messages).
//! * [`sql_statement`]: the SQL entry point, parser through planner
//!   (statements are parsed and described against a small schema, never
//!   executed).
//! * [`replication_frame`]: the replication stream's frame decoder, both
//!   directions.
//! * [`writebatch_apply`]: a secondary's applier fed shipped batches.
//!
//! Each must return for every input: no panic, no hang, no allocation
//! beyond the input's own size. `fuzz_targets/` runs them under libFuzzer;
//! `tests/regressions.rs` replays the committed corpora in CI.

mod frontend;
mod replication;
mod sql;

pub use frontend::frontend_message;
pub use replication::{replication_frame, writebatch_apply};
pub use sql::sql_statement;
