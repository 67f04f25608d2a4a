//! The interface the server drives: a shared [`Database`] and one
//! [`Session`] per connection.

mod alter;
mod catalog_view;
mod constraint_ddl;
mod copy;
mod cursor;
mod database;
mod database_ddl;
mod ddl;
mod describe;
mod execute;
pub mod metrics;
mod replication;
mod roles;
mod settings;
mod transaction;
mod view_ddl;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

pub use database::Database;
pub use duet_storage::Interrupt;
pub use execute::{version_string, Session};

use crate::types::DataType;
use crate::value::Value;

/// Statements that last ran faster than this are run inline.
const SHORT_STATEMENT_MICROS: u64 = 250;

/// Options for opening a node's database.
#[derive(Debug, Clone, Default)]
pub struct DatabaseOptions {
    /// Password for `root` set on first start (stored as a SCRAM verifier).
    pub root_password: Option<String>,
    /// Session parameter defaults from the server's configuration
    /// (e.g. synchronous_commit), applied before startup parameters.
    pub session_defaults: Vec<(String, String)>,
}

/// What authentication needs to know about a role.
#[derive(Debug, Clone)]
pub struct RoleInfo {
    pub name: String,
    pub can_login: bool,
    pub is_admin: bool,
    pub replication: bool,
    /// `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` as PostgreSQL stores it.
    pub scram_verifier: Option<String>,
}

/// Who a session is and where it comes from.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub user: String,
    pub database: String,
    pub backend_pid: i32,
    pub client_addr: Option<SocketAddr>,
    /// The port the client connected to (inet_server_port()).
    pub server_port: Option<u16>,
    /// Startup parameters other than user/database (application_name,
    /// client_encoding, DateStyle, TimeZone, options, ...).
    pub startup_params: Vec<(String, String)>,
}

/// A parsed statement, cheap to clone (prepared statements keep one).
#[derive(Debug, Clone)]
pub struct Statement {
    pub(crate) inner: Arc<StatementInner>,
}

#[derive(Debug)]
pub(crate) struct StatementInner {
    pub(crate) sql: String,
    pub(crate) parsed: crate::parser::Parsed,
    /// The last plan of a query, reused while the catalog version and the
    /// parameter types stay the same (prepared statements skip planning).
    pub(crate) plan_cache: std::sync::Mutex<Option<CachedPlan>>,
    /// Microseconds the last execution took (u64::MAX before the first).
    pub(crate) last_micros: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
pub(crate) struct CachedPlan {
    pub(crate) catalog_version: u64,
    pub(crate) param_types: Vec<DataType>,
    pub(crate) plan: Planned,
}

/// A planned statement, as cached on a prepared statement.
#[derive(Debug, Clone)]
pub(crate) enum Planned {
    Query(Arc<crate::plan::QueryPlan>),
    Insert(Arc<crate::planner::InsertPlan>),
    Update(Arc<crate::planner::UpdatePlan>),
    Delete(Arc<crate::planner::DeletePlan>),
}

pub(crate) type PlanCache = std::sync::Mutex<Option<CachedPlan>>;

/// The cached plan if it was made for this catalog version and these
/// parameter types.
pub(crate) fn cached_plan(
    cache: Option<&PlanCache>,
    version: u64,
    types: &[DataType],
) -> Option<Planned> {
    let guard = cache?.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .as_ref()
        .filter(|p| p.catalog_version == version && p.param_types == types)
        .map(|p| p.plan.clone())
}

pub(crate) fn store_plan(
    cache: Option<&PlanCache>,
    version: u64,
    types: Vec<DataType>,
    plan: &Planned,
) {
    if let Some(c) = cache {
        *c.lock().unwrap_or_else(|e| e.into_inner()) = Some(CachedPlan {
            catalog_version: version,
            param_types: types,
            plan: plan.clone(),
        });
    }
}

impl Statement {
    /// The statement's SQL text.
    pub fn sql(&self) -> &str {
        &self.inner.sql
    }

    /// For `DEALLOCATE [PREPARE] name | ALL`: the statement name, or None
    /// for ALL. Prepared statements belong to the server's connection,
    /// which runs these itself.
    pub fn deallocation(&self) -> Option<Option<String>> {
        match &self.inner.parsed {
            crate::parser::Parsed::Sql(ast) => match &**ast {
                sqlparser::ast::Statement::Deallocate { name, .. } => {
                    if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                        Some(None)
                    } else {
                        Some(Some(crate::planner::ident_name(name)))
                    }
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// True if the last execution was quick enough to run on an async
    /// worker without stalling other sessions (unknown counts as long).
    pub fn is_short(&self) -> bool {
        self.last_busy() < std::time::Duration::from_micros(SHORT_STATEMENT_MICROS)
    }

    /// How long its last execution kept the thread busy (its waits for
    /// locks and commits not counted); `Duration::MAX` before the first.
    pub fn last_busy(&self) -> std::time::Duration {
        match self
            .inner
            .last_micros
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            u64::MAX => std::time::Duration::MAX,
            micros => std::time::Duration::from_micros(micros),
        }
    }
}

/// A result column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    /// OID of the table the column comes from, 0 if none.
    pub table_oid: u32,
    /// Attribute number in that table, 0 if none.
    pub column_id: i16,
}

/// What Describe reports for a statement.
#[derive(Debug, Clone)]
pub struct Describe {
    pub params: Vec<DataType>,
    /// None when the statement returns no rows (NoData).
    pub columns: Option<Vec<Column>>,
}

/// The result of one statement.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// CommandComplete tag: "SELECT 3", "INSERT 0 1", "BEGIN", ...
    pub tag: String,
    /// Some for statements that return rows (even zero rows).
    pub columns: Option<Vec<Column>>,
    pub rows: Vec<Vec<Value>>,
    /// Set when the statement is a COPY: the server switches to the copy
    /// sub-protocol (see [`Session::copy_data`]).
    pub copy: Option<CopyResponse>,
}

/// What a COPY statement asks of the server.
#[derive(Debug, Clone)]
pub enum CopyResponse {
    /// COPY FROM STDIN: send CopyInResponse, then feed CopyData to
    /// [`Session::copy_data`] and end with [`Session::copy_done`] or
    /// [`Session::copy_fail`].
    In { columns: usize, csv: bool },
    /// COPY TO STDOUT: CopyOutResponse, one CopyData per chunk, CopyDone,
    /// then the tag.
    Out {
        columns: usize,
        csv: bool,
        data: Vec<Vec<u8>>,
    },
}

/// Transaction state, for ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    Idle,
    InBlock,
    Failed,
}

/// A NOTICE or WARNING to send to the client.
#[derive(Debug, Clone)]
pub struct Notice {
    /// "WARNING", "NOTICE", ...
    pub severity: String,
    pub code: &'static str,
    pub message: String,
}
