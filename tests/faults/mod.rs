//! Fault injection for end-to-end tests: a TCP proxy that disturbs links
//! ([`proxy`]).

pub mod proxy;

pub use proxy::{Fault, FaultProxy};
