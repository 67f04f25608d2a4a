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

/// Makes every panic fatal, even one the code under test catches (the
/// frontend codec catches decoder panics as a last line of defence): a
/// caught panic is still a bug, and libFuzzer aborts on it too, so the
/// replayed corpora in CI must fail the same way.
pub(crate) fn panics_abort() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            std::process::abort();
        }));
    });
}
pub use replication::{replication_frame, writebatch_apply};
pub use sql::sql_statement;
