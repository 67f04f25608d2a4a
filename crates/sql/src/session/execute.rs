//! A session: transaction control and statement dispatch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use duet_storage::{Interrupt, Isolation, StatementControl, Transaction};
use sqlparser::ast::{self, Statement as Ast};

use super::catalog_view::CatalogView;
use super::database::{is_admin, Database};
use super::settings::Settings;
use super::{
    Column, Describe, Notice, QueryResult, SessionContext, Statement, StatementInner,
    TransactionState,
};
use crate::catalog::{Catalog, DatabaseDef, ADMIN_ROLE};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::exec::{self, Executor};
use crate::expr::EvalEnv;
use crate::parser::{self, Parsed};
use crate::planner::Planner;
use crate::types::DataType;
use crate::value::{TimeZone, Value};

/// The server_version duet reports: the PostgreSQL release it follows.
pub const SERVER_VERSION: &str = "15.0";

pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (duet {}) on {}-linux, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Block {
    /// No explicit transaction: each statement commits on its own.
    Autocommit,
    InBlock,
    /// An error occurred in the block; only ROLLBACK is accepted.
    Failed,
}

/// Session facts that expressions and the planner read.
pub(crate) struct SessionState {
    pub(crate) db: Arc<Database>,
    pub(crate) user: String,
    pub(crate) database: DatabaseDef,
    pub(crate) backend_pid: i32,
    pub(crate) server_port: Option<u16>,
    pub(crate) settings: Settings,
    pub(crate) interrupt: Interrupt,
    pub(super) currvals: Mutex<HashMap<u32, i64>>,
    /// The latest sequence reservation (an LSN) whose values this session
    /// handed out since its last commit, which syncs it.
    pub(super) sequences_reserved_at: AtomicU64,
    pub(crate) is_admin: bool,
    /// Roles the user is a member of (transitively), itself included.
    pub(crate) roles: BTreeSet<String>,
    pub(crate) in_recovery: bool,
    /// Catalog version the role memberships above were read at.
    roles_version: u64,
    /// (snapshot sequence, catalog version) of the last statement: the
    /// version cannot change while the sequence number stays the same.
    last_catalog_version: (u64, u64),
    /// Counts this session on its database until it ends.
    _database_use: super::database::DatabaseUse,
}

/// One client connection's state: settings, transaction, prepared plans.
pub struct Session {
    pub(crate) state: SessionState,
    pub(crate) txn: Option<Transaction>,
    pub(super) block: Block,
    pub(super) txn_time: DateTime<Utc>,
    notices: Vec<Notice>,
    param_changes: Vec<(String, String)>,
    pub(super) savepoints: Vec<(String, BTreeMap<Vec<u8>, Option<Vec<u8>>>)>,
    /// Settings as they were at BEGIN: SET is undone by ROLLBACK.
    pub(super) settings_at_begin: Option<Settings>,
    /// Statements of one multi-statement query share one transaction.
    pub(super) implicit: bool,
    /// Recently parsed query strings.
    parsed: HashMap<String, Vec<Statement>>,
    /// A COPY FROM waiting for its data.
    pub(super) copy_in: Option<super::copy::CopyIn>,
    /// Open SQL cursors (DECLARE).
    pub(super) cursors: super::cursor::Cursors,
    /// Time the current statement spent committing: not counted against
    /// "short" statements (a lone commit writes and syncs inline, on this
    /// thread, and a COMMIT is no reason to leave it).
    pub(super) commit_wait: std::time::Duration,
    /// The store's install count this session's reads belong to (see
    /// [`Session::outlived_its_data`]).
    pub(super) installs_seen: u64,
}

/// How many distinct query strings a session keeps parsed.
const PARSE_CACHE_SIZE: usize = 256;

impl Session {
    pub(crate) fn new(
        db: Arc<Database>,
        ctx: SessionContext,
        database: DatabaseDef,
    ) -> SqlResult<Session> {
        let mut settings = Settings::default();
        let options: Vec<(String, String)> = ctx
            .startup_params
            .iter()
            .filter(|(k, _)| k == "options")
            .flat_map(|(_, v)| super::settings::parse_options(v))
            .collect();
        for (k, v) in db
            .session_defaults
            .iter()
            .chain(ctx.startup_params.iter().filter(|(k, _)| k != "options"))
            .chain(&options)
        {
            // Unknown startup parameters are ignored, as PostgreSQL ignores
            // unknown options only for custom (dotted) names; be lenient.
            let _ = settings.set(k, v);
        }
        let database_use = db.use_database(database.oid);
        let mut state = SessionState {
            _database_use: database_use,
            db,
            user: ctx.user,
            database,
            backend_pid: ctx.backend_pid,
            server_port: ctx.server_port,
            settings,
            interrupt: Interrupt::default(),
            currvals: Mutex::default(),
            sequences_reserved_at: AtomicU64::new(0),
            is_admin: false,
            roles: BTreeSet::new(),
            in_recovery: false,
            roles_version: 0,
            last_catalog_version: (u64::MAX, 0),
        };
        refresh_roles(&mut state)?;
        state
            .settings
            .set_internal("is_superuser", if state.is_admin { "on" } else { "off" });
        state
            .settings
            .set_internal("session_authorization", &state.user.clone());
        let state_installs = state.db.store().installs();
        let mut session = Session {
            state,
            txn: None,
            block: Block::Autocommit,
            txn_time: Utc::now(),
            notices: Vec::new(),
            param_changes: Vec::new(),
            savepoints: Vec::new(),
            commit_wait: std::time::Duration::ZERO,
            installs_seen: state_installs,
            settings_at_begin: None,
            implicit: false,
            parsed: HashMap::new(),
            copy_in: None,
            cursors: Default::default(),
        };
        // A secondary's sessions start read-only (reported at startup,
        // not as a change).
        session.follow_node_role();
        session.param_changes.clear();
        Ok(session)
    }

    /// Parses a query string into statements (empty for an empty query).
    /// Repeated query strings reuse their parsed statements (and with them
    /// cached plans and timings), so simple-protocol clients skip parsing.
    pub fn parse(&mut self, sql: &str) -> SqlResult<Vec<Statement>> {
        if let Some(cached) = self.parsed.get(sql) {
            return Ok(cached.clone());
        }
        let statements = self.parse_uncached(sql)?;
        if self.parsed.len() >= PARSE_CACHE_SIZE {
            self.parsed.clear();
        }
        self.parsed.insert(sql.to_string(), statements.clone());
        Ok(statements)
    }

    fn parse_uncached(&self, sql: &str) -> SqlResult<Vec<Statement>> {
        Ok(parser::parse(sql)?
            .into_iter()
            .map(|parsed| Statement {
                inner: Arc::new(StatementInner {
                    sql: sql.to_string(),
                    parsed,
                    plan_cache: Default::default(),
                    last_micros: std::sync::atomic::AtomicU64::new(u64::MAX),
                }),
            })
            .collect())
    }

    pub fn transaction_state(&self) -> TransactionState {
        match self.block {
            Block::Autocommit => TransactionState::Idle,
            Block::InBlock => TransactionState::InBlock,
            Block::Failed => TransactionState::Failed,
        }
    }

    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    pub fn reported_parameters(&self) -> Vec<(String, String)> {
        self.state.settings.reported()
    }

    pub fn take_parameter_changes(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.param_changes)
    }

    pub fn interrupt(&self) -> Interrupt {
        self.state.interrupt.clone()
    }

    pub fn time_zone(&self) -> &TimeZone {
        self.state.settings.time_zone()
    }

    /// Ends the session, rolling back any open transaction.
    pub async fn close(mut self) {
        if let Some(t) = self.txn.take() {
            t.rollback();
        }
    }

    pub(crate) fn notice(
        &mut self,
        severity: &str,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.notices.push(Notice {
            severity: severity.into(),
            code,
            message: message.into(),
        });
    }

    pub(crate) fn parameter_changed(&mut self, name: &str, value: &str) {
        self.param_changes
            .push((name.to_string(), value.to_string()));
    }

    fn isolation(&self) -> Isolation {
        match self
            .state
            .settings
            .get("default_transaction_isolation")
            .as_deref()
        {
            Some("repeatable read") => Isolation::RepeatableRead,
            Some("serializable") => Isolation::Serializable,
            _ => Isolation::ReadCommitted,
        }
    }

    /// The transaction for the current statement, started if needed.
    pub(crate) fn txn(&mut self) -> &mut Transaction {
        if self.txn.is_none() {
            self.txn_time = Utc::now();
        }
        let isolation = self.isolation();
        let db = self.state.db.clone();
        self.txn.get_or_insert_with(|| db.begin(isolation))
    }

    pub(super) fn control(&self) -> StatementControl {
        let timeout = self.state.settings.statement_timeout();
        StatementControl {
            interrupt: self.state.interrupt.clone(),
            deadline: (timeout > Duration::ZERO).then(|| Instant::now() + timeout),
        }
    }

    /// Describes a statement without running it.
    pub fn describe(&mut self, stmt: &Statement, param_types: &[DataType]) -> SqlResult<Describe> {
        if self.block == Block::Failed && !is_transaction_end(&stmt.inner.parsed) {
            return Err(SqlError::new(
                SqlState::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        let had_txn = self.txn.is_some();
        let tz = self.time_zone().clone();
        self.txn();
        let txn = self.take_txn()?;
        let result = (|| {
            let view = CatalogView {
                state: &self.state,
                txn: &txn,
            };
            let mut planner = Planner::new(&view, param_types.to_vec(), tz);
            let columns = match &stmt.inner.parsed {
                Parsed::Sql(ast) => match &**ast {
                    Ast::Query(q) => Some(planner.plan_query(q)?.columns),
                    Ast::Insert(i) => planner.plan_insert(i)?.returning.map(|r| r.columns),
                    Ast::Update(u) => planner.plan_update(u)?.returning.map(|r| r.columns),
                    Ast::Delete(d) => planner.plan_delete(d)?.returning.map(|r| r.columns),
                    Ast::ShowVariable { variable } => {
                        Some(vec![text_column(&super::settings::show_name(variable))])
                    }
                    Ast::Explain { .. } => Some(vec![text_column("QUERY PLAN")]),
                    Ast::Fetch { name, .. } => Some(self.fetch_columns(name)?),
                    _ => None,
                },
                Parsed::Replicate(crate::replicate::ReplicateStatement::ShowStatus) => self
                    .state
                    .db
                    .node_control()
                    .and_then(|c| c.view("replication_status"))
                    .map(|v| {
                        v.columns
                            .into_iter()
                            .map(|(name, data_type)| super::Column {
                                name,
                                data_type,
                                table_oid: 0,
                                column_id: 0,
                            })
                            .collect()
                    }),
                Parsed::CreateUser(_)
                | Parsed::GrantRole { .. }
                | Parsed::Replicate(_)
                | Parsed::Copy(_)
                | Parsed::Maintenance { .. }
                | Parsed::CreateDatabase { .. }
                | Parsed::DropDatabase { .. } => None,
            };
            Ok(Describe {
                params: planner.param_types(),
                columns,
            })
        })();
        if had_txn {
            self.txn = Some(txn);
        } else {
            txn.rollback();
        }
        result
    }

    /// Executes one statement with bound parameters.
    pub async fn execute(
        &mut self,
        stmt: &Statement,
        params: Vec<Value>,
    ) -> SqlResult<QueryResult> {
        self.state.interrupt.reset();
        self.follow_node_role();
        let parsed = &stmt.inner.parsed;
        if self.block == Block::Failed && !is_transaction_end(parsed) {
            return Err(SqlError::new(
                SqlState::IN_FAILED_SQL_TRANSACTION,
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        self.commit_wait = std::time::Duration::ZERO;
        super::metrics::statement(statement_class(parsed));
        let (result, polled) =
            time_polls(self.execute_statement(parsed, params, Some(&stmt.inner.plan_cache))).await;
        let busy = polled.saturating_sub(self.commit_wait);
        let micros = u64::try_from(busy.as_micros()).unwrap_or(u64::MAX);
        stmt.inner
            .last_micros
            .store(micros, std::sync::atomic::Ordering::Relaxed);
        // COPY FROM's statement goes on with the data that follows.
        let copying_in = matches!(
            &result,
            Ok(QueryResult {
                copy: Some(super::CopyResponse::In { .. }),
                ..
            })
        );
        if !copying_in {
            self.end_statement(result.is_ok()).await?;
        }
        result
    }

    /// The end of a statement: an error fails the transaction block (or
    /// rolls back the statement's own transaction); success commits an
    /// autocommit statement.
    pub(super) async fn end_statement(&mut self, ok: bool) -> SqlResult<()> {
        match (ok, self.block) {
            (false, Block::InBlock) => {
                self.block = Block::Failed;
                // Like PostgreSQL, an aborted transaction gives up its locks at
                // once (a deadlock victim must not keep blocking the other
                // side), unless a savepoint may still bring it back.
                if self.savepoints.is_empty() {
                    if let Some(t) = self.txn.take() {
                        t.rollback();
                    }
                }
            }
            (false, Block::Autocommit) => {
                if let Some(t) = self.txn.take() {
                    t.rollback();
                }
            }
            (true, Block::Autocommit) if !self.implicit => {
                if let Some(t) = self.txn.take() {
                    self.commit_txn(t).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn execute_statement(
        &mut self,
        parsed: &Parsed,
        params: Vec<Value>,
        cache: Option<&super::PlanCache>,
    ) -> SqlResult<QueryResult> {
        let ast = match parsed {
            Parsed::CreateUser(ast) => return self.create_role(ast, true).await,
            Parsed::GrantRole {
                roles,
                grantees,
                grant,
            } => return self.grant_roles(roles, grantees, *grant),
            Parsed::Replicate(statement) => return self.replicate(statement.clone()).await,
            Parsed::Copy(copy) => return self.copy(copy).await,
            Parsed::Maintenance { command, tables } => return self.maintenance(command, tables),
            Parsed::CreateDatabase { name, owner } => {
                return self.create_database(name, owner.as_deref())
            }
            Parsed::DropDatabase {
                name,
                if_exists,
                force,
            } => return self.drop_database(name, *if_exists, *force),
            Parsed::Sql(ast) => &**ast,
        };
        match ast {
            Ast::StartTransaction { modes, .. } => self.begin(modes),
            Ast::Commit { .. } => self.commit().await,
            Ast::Rollback {
                savepoint: Some(name),
                ..
            } => self.rollback_to(name),
            Ast::Rollback { .. } => Ok(self.rollback()),
            Ast::Savepoint { name } => self.savepoint(name),
            Ast::ReleaseSavepoint { name } => self.release(name),
            Ast::Query(q) => self.query(q, params, cache).await,
            Ast::Explain {
                statement,
                analyze: false,
                ..
            } => self.explain(statement, params),
            Ast::Insert(_) | Ast::Update(_) | Ast::Delete(_) => self.dml(ast, params, cache).await,
            Ast::Set(set) => self.set(set),
            Ast::ShowVariable { variable } => self.show(variable),
            Ast::CreateTable(_)
            | Ast::CreateIndex(_)
            | Ast::Drop { .. }
            | Ast::CreateSequence { .. } => {
                self.check_writable(ast)?;
                self.ddl(ast).await
            }
            Ast::CreateRole(_) => self.create_role(ast, false).await,
            Ast::AlterRole { .. } | Ast::Grant(_) | Ast::Revoke(_) => {
                self.role_statement(ast).await
            }
            Ast::Reset(r) => self.reset(&r.reset),
            Ast::CreateView(cv) => {
                self.check_writable(ast)?;
                self.create_view(cv).await
            }
            Ast::Declare { stmts } => match stmts.as_slice() {
                [d] => self.declare(d).await,
                _ => Err(SqlError::unsupported("one cursor per DECLARE")),
            },
            Ast::Fetch {
                name, direction, ..
            } => self.fetch(name, direction),
            Ast::Close { cursor } => self.close_cursor(cursor),
            Ast::AlterTable(at) => {
                self.check_writable(ast)?;
                self.alter_table(at).await
            }
            Ast::Truncate(t) => {
                self.check_writable(ast)?;
                self.truncate(t).await
            }
            Ast::Discard { .. } => Ok(tag("DISCARD ALL")),
            other => Err(SqlError::unsupported(format!(
                "statement not supported yet: {}",
                statement_kind(other)
            ))),
        }
    }

    /// VACUUM moves the memtable to disk and compacts the tables' key
    /// ranges (all of them without a list); ANALYZE has no statistics to
    /// gather. The tables must exist either way.
    fn maintenance(&mut self, command: &str, tables: &[ast::ObjectName]) -> SqlResult<QueryResult> {
        if command == "VACUUM" && self.block != Block::Autocommit {
            return Err(SqlError::new(
                SqlState::ACTIVE_SQL_TRANSACTION,
                "VACUUM cannot run inside a transaction block",
            ));
        }
        let tz = self.time_zone().clone();
        self.begin_statement()?;
        let view = CatalogView {
            state: &self.state,
            txn: self.current_txn()?,
        };
        let planner = Planner::new(&view, Vec::new(), tz);
        let mut ranges = Vec::new();
        for name in tables {
            let table = planner.resolve_table(name)?;
            let prefixes = std::iter::once(crate::catalog::table_rows_prefix(table.oid)).chain(
                table
                    .indexes
                    .iter()
                    .map(|i| crate::catalog::index_prefix(i.oid)),
            );
            for start in prefixes {
                if let Some(end) = duet_storage::keycode::prefix_end(&start) {
                    ranges.push((start, end));
                }
            }
        }
        if command == "VACUUM" {
            let engine = self.state.db.engine();
            let ranges = (!tables.is_empty()).then_some(ranges);
            duet_storage::blocking(|| engine.compact(ranges.as_deref()))?;
        }
        Ok(tag(command))
    }

    pub(crate) fn env<'a>(
        &'a self,
        params: &'a [Value],
        control: &'a StatementControl,
    ) -> EvalEnv<'a> {
        EvalEnv {
            params,
            tz: self.state.settings.time_zone(),
            txn_time: self.txn_time,
            session: &self.state,
            outer: &[],
            subqueries: None,
            control,
        }
    }

    pub(super) async fn query(
        &mut self,
        q: &ast::Query,
        params: Vec<Value>,
        cache: Option<&super::PlanCache>,
    ) -> SqlResult<QueryResult> {
        let control = self.control();
        let tz = self.time_zone().clone();
        let version = self.begin_statement()?;
        let qp = {
            let txn = self.current_txn()?;
            let view = CatalogView {
                state: &self.state,
                txn,
            };
            let types: Vec<DataType> = params.iter().map(crate::cast::type_of).collect();
            match super::cached_plan(cache, version, &types) {
                Some(super::Planned::Query(plan)) => plan,
                _ => {
                    let mut planner = Planner::new(&view, types.clone(), tz);
                    let plan = Arc::new(planner.plan_query(q)?);
                    super::store_plan(cache, version, types, &super::Planned::Query(plan.clone()));
                    plan
                }
            }
        };
        let locked_plan;
        let plan = if qp.lock_rows {
            locked_plan = self.lock_rows(&qp.plan, &params, &control).await?;
            &locked_plan
        } else {
            &qp.plan
        };
        let txn = self.current_txn()?;
        let view = CatalogView {
            state: &self.state,
            txn,
        };
        let exec = Executor::new(txn, &view);
        let env = EvalEnv {
            subqueries: Some(&exec),
            ..self.env(&params, &control)
        };
        let rows = exec::collect_rows(exec::run_plan(plan, &exec, &env)?)?;
        Ok(QueryResult {
            tag: format!("SELECT {}", rows.len()),
            columns: Some(qp.columns.clone()),
            rows,
            copy: None,
        })
    }

    /// SELECT ... FOR UPDATE: locks the rows the scan finds (waiting for
    /// concurrent writers), re-reads their latest committed versions and
    /// re-checks the filter, as UPDATE does; the rest of the plan then runs
    /// over those rows.
    async fn lock_rows(
        &mut self,
        plan: &crate::plan::Plan,
        params: &[Value],
        control: &StatementControl,
    ) -> SqlResult<crate::plan::Plan> {
        use crate::plan::Plan;
        let mut plan = plan.clone();
        let node = plan.lockable_scan_mut().map_err(SqlError::unsupported)?;
        let (scan, filter) = match &*node {
            Plan::Filter { input, predicate } => (&**input, Some(predicate)),
            scan => (scan, None),
        };
        let Plan::Scan {
            table,
            index,
            range,
        } = scan
        else {
            return Err(SqlError::internal("FOR UPDATE without a table scan"));
        };
        let mut txn = self.take_txn()?;
        let env = self.env(params, control);
        let rows = exec::locked_targets(
            &mut txn,
            table,
            index.as_ref(),
            range,
            filter,
            &NoViews,
            &env,
        )
        .await;
        self.txn = Some(txn);
        *node = Plan::Rows(rows?.into_iter().map(|(_, row)| row).collect());
        Ok(plan)
    }

    fn explain(&mut self, statement: &Ast, params: Vec<Value>) -> SqlResult<QueryResult> {
        let tz = self.time_zone().clone();
        self.begin_statement()?;
        let txn = self.current_txn()?;
        let view = CatalogView {
            state: &self.state,
            txn,
        };
        let types: Vec<DataType> = params.iter().map(crate::cast::type_of).collect();
        let mut planner = Planner::new(&view, types, tz);
        let lines = match statement {
            Ast::Query(q) => crate::explain::explain_plan(&planner.plan_query(q)?.plan),
            Ast::Update(u) => crate::explain::explain_update(&planner.plan_update(u)?),
            Ast::Delete(d) => crate::explain::explain_delete(&planner.plan_delete(d)?),
            Ast::Insert(i) => vec![format!("Insert on {}", planner.plan_insert(i)?.table.name)],
            other => {
                return Err(SqlError::unsupported(format!(
                    "EXPLAIN of {} is not supported",
                    statement_kind(other)
                )))
            }
        };
        Ok(QueryResult {
            tag: "EXPLAIN".into(),
            columns: Some(vec![text_column("QUERY PLAN")]),
            rows: lines.into_iter().map(|l| vec![Value::Text(l)]).collect(),
            copy: None,
        })
    }

    async fn dml(
        &mut self,
        ast: &Ast,
        params: Vec<Value>,
        cache: Option<&super::PlanCache>,
    ) -> SqlResult<QueryResult> {
        self.check_writable(ast)?;
        let control = self.control();
        let tz = self.time_zone().clone();
        let version = self.begin_statement()?;
        let mut txn = self.take_txn()?;
        let result = self
            .run_dml(ast, &params, &control, tz, &mut txn, (cache, version))
            .await;
        self.txn = Some(txn);
        result
    }

    async fn run_dml(
        &self,
        ast: &Ast,
        params: &[Value],
        control: &StatementControl,
        tz: TimeZone,
        txn: &mut Transaction,
        (cache, version): (Option<&super::PlanCache>, u64),
    ) -> SqlResult<QueryResult> {
        use super::Planned;
        let types: Vec<DataType> = params.iter().map(crate::cast::type_of).collect();
        // Plan with a read-only view; the borrow ends before the writes.
        let planned = match super::cached_plan(cache, version, &types) {
            Some(p @ (Planned::Insert(_) | Planned::Update(_) | Planned::Delete(_))) => p,
            _ => {
                let view = CatalogView {
                    state: &self.state,
                    txn,
                };
                let mut planner = Planner::new(&view, types.clone(), tz);
                let planned = match ast {
                    Ast::Insert(i) => Planned::Insert(Arc::new(planner.plan_insert(i)?)),
                    Ast::Update(u) => Planned::Update(Arc::new(planner.plan_update(u)?)),
                    Ast::Delete(d) => Planned::Delete(Arc::new(planner.plan_delete(d)?)),
                    _ => return Err(SqlError::internal("not a DML statement")),
                };
                super::store_plan(cache, version, types, &planned);
                planned
            }
        };
        // Catalog views are not visible to DML sources that read the
        // transaction being written; a snapshot of the views is enough.
        let views = NoViews;
        let env = self.env(params, control);
        let (result, returning, kind) = match &planned {
            Planned::Insert(p) => (
                exec::execute_insert(p, txn, &views, &env).await?,
                &p.returning,
                "INSERT 0",
            ),
            Planned::Update(p) => (
                exec::execute_update(p, txn, &views, &env).await?,
                &p.returning,
                "UPDATE",
            ),
            Planned::Delete(p) => (
                exec::execute_delete(p, txn, &views, &env).await?,
                &p.returning,
                "DELETE",
            ),
            Planned::Query(_) => return Err(SqlError::internal("not a DML statement")),
        };
        Ok(QueryResult {
            tag: format!("{kind} {}", result.count),
            columns: returning.as_ref().map(|r| r.columns.clone()),
            rows: result.returning,
            copy: None,
        })
    }

    /// Writes are refused in read-only transactions (and on secondaries).
    pub(crate) fn check_writable(&self, ast: &Ast) -> SqlResult<()> {
        self.check_read_only(&statement_kind(ast))
    }

    /// Refuses `command` in a read-only transaction (and on secondaries).
    pub(crate) fn check_read_only(&self, command: &str) -> SqlResult<()> {
        let read_only = self.state.in_recovery
            || self.state.settings.get("transaction_read_only").as_deref() == Some("on")
            || self
                .state
                .settings
                .get("default_transaction_read_only")
                .as_deref()
                == Some("on");
        if read_only {
            return Err(SqlError::read_only(command));
        }
        Ok(())
    }

    /// Starts a statement's snapshot and brings role memberships up to the
    /// catalog version it sees, so privilege changes by other sessions
    /// apply at once. Returns that version.
    pub(super) fn begin_statement(&mut self) -> SqlResult<u64> {
        self.txn().begin_statement();
        let txn = self.current_txn()?;
        let seq = txn.snapshot_sequence();
        let version = match self.state.last_catalog_version {
            (s, v) if s == seq && !txn.has_writes() => v,
            _ => {
                let v = crate::session::database::snapshot_catalog_version(txn)?;
                self.state.last_catalog_version = (seq, v);
                v
            }
        };
        if version != self.state.roles_version {
            self.refresh_roles()?;
            self.state.roles_version = version;
        }
        Ok(version)
    }

    /// The open transaction (every statement path starts one first).
    pub(crate) fn current_txn(&self) -> SqlResult<&Transaction> {
        self.txn
            .as_ref()
            .ok_or_else(|| SqlError::internal("no transaction"))
    }

    /// Takes the transaction out while a statement needs it mutably beside
    /// the session's state; the caller puts it back.
    pub(super) fn take_txn(&mut self) -> SqlResult<Transaction> {
        self.txn
            .take()
            .ok_or_else(|| SqlError::internal("no transaction"))
    }

    /// Refreshes role membership after role changes.
    pub(crate) fn refresh_roles(&mut self) -> SqlResult<()> {
        refresh_roles(&mut self.state)
    }
}

/// Virtual rows are not available inside DML (documented limitation).
struct NoViews;

impl exec::VirtualRows for NoViews {
    fn rows(&self, name: &str) -> SqlResult<Vec<crate::row::Row>> {
        Err(SqlError::unsupported(format!(
            "{name} cannot be read inside INSERT, UPDATE or DELETE yet"
        )))
    }
}

fn refresh_roles(state: &mut SessionState) -> SqlResult<()> {
    let txn = state.db.begin(Isolation::ReadCommitted);
    let cat = Catalog::new(&txn);
    let all = cat.roles()?;
    let me = all.iter().find(|r| r.name == state.user).cloned();
    state.is_admin = me.as_ref().is_some_and(|r| is_admin(r, &all));
    let mut roles = BTreeSet::from([state.user.clone()]);
    let mut stack: Vec<String> = me
        .map(|r| r.member_of.into_iter().collect())
        .unwrap_or_default();
    while let Some(r) = stack.pop() {
        if roles.insert(r.clone()) {
            if let Some(def) = all.iter().find(|d| d.name == r) {
                stack.extend(def.member_of.iter().cloned());
            }
        }
    }
    if state.is_admin {
        roles.insert(ADMIN_ROLE.into());
    }
    state.roles = roles;
    Ok(())
}

/// The `kind` label of duet_statements_total.
fn statement_class(parsed: &Parsed) -> &'static str {
    match parsed {
        Parsed::Sql(ast) => match &**ast {
            Ast::Query(_) => "select",
            Ast::Insert(_) => "insert",
            Ast::Update(_) => "update",
            Ast::Delete(_) => "delete",
            Ast::StartTransaction { .. } | Ast::Commit { .. } | Ast::Rollback { .. } => {
                "transaction"
            }
            Ast::CreateTable(_)
            | Ast::CreateIndex(_)
            | Ast::CreateView(_)
            | Ast::AlterTable(_)
            | Ast::Drop { .. }
            | Ast::Truncate(_)
            | Ast::CreateSequence { .. } => "ddl",
            _ => "other",
        },
        Parsed::Copy(_) => "copy",
        Parsed::Replicate(_) => "replicate",
        _ => "other",
    }
}

fn is_transaction_end(parsed: &Parsed) -> bool {
    matches!(parsed, Parsed::Sql(a) if matches!(**a, Ast::Commit { .. } | Ast::Rollback { .. }))
}

pub(crate) fn tag(t: &str) -> QueryResult {
    QueryResult {
        tag: t.to_string(),
        columns: None,
        rows: vec![],
        copy: None,
    }
}

pub(crate) fn text_column(name: &str) -> Column {
    Column {
        name: name.to_string(),
        data_type: DataType::Text,
        table_oid: 0,
        column_id: 0,
    }
}

/// The command name PostgreSQL uses in messages ("INSERT", "CREATE TABLE").
pub(crate) fn statement_kind(ast: &Ast) -> String {
    match ast {
        Ast::Insert(_) => "INSERT".into(),
        Ast::Update(_) => "UPDATE".into(),
        Ast::Delete(_) => "DELETE".into(),
        Ast::CreateTable(_) => "CREATE TABLE".into(),
        Ast::CreateIndex(_) => "CREATE INDEX".into(),
        Ast::CreateView(_) => "CREATE VIEW".into(),
        Ast::CreateSequence { .. } => "CREATE SEQUENCE".into(),
        Ast::Drop { object_type, .. } => format!("DROP {}", object_type.to_string().to_uppercase()),
        Ast::CreateRole(_) => "CREATE ROLE".into(),
        Ast::AlterTable(_) => "ALTER TABLE".into(),
        Ast::Truncate(_) => "TRUNCATE TABLE".into(),
        Ast::Copy { .. } => "COPY".into(),
        other => other
            .to_string()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase(),
    }
}

/// Runs a future and measures the time spent inside its polls: the time it
/// kept its thread busy, without the time it waited (for a row lock, a
/// group commit, a secondary) while other tasks ran.
async fn time_polls<F: std::future::Future>(future: F) -> (F::Output, Duration) {
    let mut future = std::pin::pin!(future);
    let mut polled = Duration::ZERO;
    let output = std::future::poll_fn(|cx| {
        let started = Instant::now();
        let poll = future.as_mut().poll(cx);
        polled += started.elapsed();
        poll
    })
    .await;
    (output, polled)
}
