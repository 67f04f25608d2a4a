//! Fault injection and consistency checking for end-to-end tests, in the
//! spirit of Jepsen:
//!
//! * [`proxy`]: a TCP proxy that disturbs links (latency, bandwidth, black
//!   hole, resets, half-open connections, corrupted bytes);
//! * [`cluster`]: real nodes behind such proxies, with the operator's
//!   failover, switchover and re-attach statements;
//! * [`workload`]: writers (unique keys, bank transfers) and readers on
//!   every node, recording every outcome;
//! * [`nemesis`]: faults drawn from a seed and injected during the
//!   workload, then healing and convergence;
//! * [`checker`]: lost acknowledged writes, reads of uncommitted data,
//!   non-monotonic reads, total-balance violations, split brain.

pub mod checker;
pub mod cluster;
pub mod nemesis;
pub mod proxy;
pub mod workload;

pub use nemesis::{run, Fault as Nemesis, RunConfig, RunResult};
pub use proxy::{Fault, FaultProxy};
