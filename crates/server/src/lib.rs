//! duet's PostgreSQL front end: accepts connections, negotiates TLS,
//! authenticates (hba rules, SCRAM-SHA-256, client certificates) and runs
//! each session's simple and extended query protocol against `duet-sql`.

pub mod config;
pub mod hba;
pub mod tls;

mod auth;
mod busy_poll;
pub mod codec;
mod connection;
mod copy;
pub mod encode;
mod extended;
mod frame_check;
mod http;
mod node_control;
pub mod server;
mod shards;
mod startup;
mod systemd;
mod walsender;

pub use config::Config;
pub use server::{run, run_with_reload, Reloader, Server, ServerError, ServerHandle};
