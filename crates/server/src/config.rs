//! Server configuration: what `duet start` resolves from the TOML file,
//! `DUET_*` environment variables and flags (in that order of precedence,
//! lowest first; the binary does the merging).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the server needs to run one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SQL listen address (PostgreSQL protocol).
    pub listen: String,
    /// HTTP listen address: health checks and /metrics; empty: none.
    pub http_listen: String,
    /// Data directory (RocksDB and node-local state).
    pub data_dir: PathBuf,
    /// Directory holding ca.crt, node.crt, node.key.
    pub certs_dir: PathBuf,
    /// Trust authentication without TLS, for local development only.
    pub insecure: bool,
    /// Client connections beyond this are refused with 53300.
    pub max_connections: usize,
    /// Seconds a client may take to authenticate.
    pub authentication_timeout: u64,
    /// Microseconds a session alone on its shard keeps polling its socket
    /// after a reply before it sleeps (see busy_poll.rs); 0: never.
    pub busy_poll_us: u64,
    /// Stack a statement may use, in kB (PostgreSQL's max_stack_depth):
    /// threads that run sessions get this plus a red zone, and deeper
    /// recursion fails with 54001.
    pub max_stack_depth_kb: u64,
    /// Host-based authentication rules, first match wins.
    pub hba: Vec<HbaRule>,
    /// Log format: "human" or "json".
    pub log_format: String,
    /// The `[replication]` table.
    pub replication: ReplicationSettings,
    /// Password for `root`, used only when the data directory is
    /// bootstrapped. Never read from the config file: it comes from
    /// `DUET_ROOT_PASSWORD` or `--root-password-file`.
    #[serde(skip)]
    pub root_password: Option<Secret>,
}

/// A value that never appears in Debug output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:26257".into(),
            http_listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./duet-data"),
            certs_dir: PathBuf::from("./certs"),
            insecure: false,
            max_connections: 100,
            authentication_timeout: 60,
            busy_poll_us: 200,
            max_stack_depth_kb: (duet_sql::depth::DEFAULT_MAX_STACK_DEPTH / 1024) as u64,
            hba: Vec::new(),
            log_format: "human".into(),
            replication: ReplicationSettings::default(),
            root_password: None,
        }
    }
}

/// Commit modes and retention of replication (SPEC 4.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationSettings {
    /// Default `synchronous_commit` of sessions: off / local (async),
    /// remote_write, on (secondary flushed), remote_apply (visible there).
    pub synchronous_commit: String,
    /// How long a synchronous commit waits for the secondary (ms).
    pub sync_timeout_ms: u64,
    /// After the timeout: "error" (the COMMIT fails; it is committed
    /// locally) or "async" (it succeeds with a WARNING).
    pub sync_fallback: String,
    /// Most WAL (MB) a primary keeps for its slots; a slot that needs more
    /// is lost and its secondary re-copies.
    pub max_slot_wal_keep_size_mb: u64,
    /// Where a primary copies WAL files before deleting them, so that a
    /// secondary offline for long catches up without a full copy.
    pub archive_dir: Option<PathBuf>,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            synchronous_commit: "off".into(),
            sync_timeout_ms: 10_000,
            sync_fallback: "error".into(),
            max_slot_wal_keep_size_mb: 1024,
            archive_dir: None,
        }
    }
}

/// Connection type of an hba rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnType {
    /// Unix socket connections.
    Local,
    /// TCP with or without TLS.
    Host,
    /// TCP with TLS only.
    Hostssl,
    /// TCP without TLS only.
    Hostnossl,
}

/// Authentication method of an hba rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    Trust,
    Reject,
    /// SCRAM-SHA-256 against the stored verifier. Spelled as in
    /// pg_hba.conf (kebab-case alone would give "scram-sha256").
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// Cleartext password checked against the verifier; only over TLS.
    Password,
    /// Client certificate verified against the CA, CN = user name.
    Cert,
    /// A verified client certificate with CN = user if one was presented,
    /// SCRAM-SHA-256 otherwise. The default in secure mode.
    #[serde(rename = "cert-or-scram-sha-256")]
    CertOrScramSha256,
}

/// One host-based authentication rule, like a pg_hba.conf line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HbaRule {
    #[serde(rename = "type")]
    pub conn_type: ConnType,
    /// "all", "replication", or a comma-separated list of database names.
    #[serde(default = "all")]
    pub database: String,
    /// "all" or a comma-separated list of user names.
    #[serde(default = "all")]
    pub user: String,
    /// "all" or an address/CIDR such as "127.0.0.1/32" or "::1/128".
    #[serde(default = "all")]
    pub address: String,
    pub method: AuthMethod,
}

fn all() -> String {
    "all".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_root_password() {
        let config = Config {
            root_password: Some(Secret("hunter2".into())),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("********"), "{shown}");
    }
}
