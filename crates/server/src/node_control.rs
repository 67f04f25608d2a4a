//! The SQL layer's view of replication ([`NodeControl`]), implemented on
//! the replication crate: REPLICATE statements, the status views and the
//! LSN functions.

use std::sync::Arc;
use std::time::SystemTime;

use duet_replication::status::AckLevel;
use duet_replication::{Command, Replication, Role, ServiceAction, SyncWait};
use duet_sql::{
    DataType, NodeControl, NodeRole, ReplicateStatement, ServiceVerb, SqlError, SqlResult,
    SqlState, SyncLevel, Value, ViewRows,
};
use duet_storage::format_lsn;

pub(crate) struct ReplicationControl {
    pub(crate) replication: Arc<Replication>,
    /// How long a synchronous commit waits for the secondary.
    pub(crate) sync_timeout: std::time::Duration,
    /// After the timeout, succeed with a WARNING instead of failing.
    pub(crate) fallback_async: bool,
    /// Whether commits wait for the secondary by default (sync_state).
    pub(crate) synchronous: bool,
}

fn command(statement: ReplicateStatement) -> Option<Command> {
    Some(match statement {
        ReplicateStatement::SetPrimary(url) => Command::SetPrimary(url),
        ReplicateStatement::SetRole(role) => Command::SetRole(match role {
            NodeRole::Default => Role::Default,
            NodeRole::Primary => Role::Primary,
            NodeRole::Secondary => Role::Secondary,
        }),
        ReplicateStatement::Service(verb) => Command::Service(match verb {
            ServiceVerb::Create => ServiceAction::Create,
            ServiceVerb::Start => ServiceAction::Start,
            ServiceVerb::Stop => ServiceAction::Stop,
            ServiceVerb::Drop => ServiceAction::Drop,
        }),
        ReplicateStatement::ShowStatus => return None,
    })
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn opt_text(s: Option<String>) -> Value {
    s.map(Value::Text).unwrap_or(Value::Null)
}

fn lsn_value(lsn: u64) -> Value {
    text(format_lsn(lsn))
}

fn time_value(t: Option<SystemTime>) -> Value {
    match t {
        Some(t) => Value::TimestampTz(chrono::DateTime::<chrono::Utc>::from(t)),
        None => Value::Null,
    }
}

/// An interval as PostgreSQL prints one under a second: `00:00:00.000123`.
fn format_interval(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_micros()
    )
}

fn columns(spec: &[(&str, DataType)]) -> Vec<(String, DataType)> {
    spec.iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

#[async_trait::async_trait]
impl NodeControl for ReplicationControl {
    async fn replicate(&self, statement: ReplicateStatement) -> SqlResult<String> {
        let Some(command) = command(statement) else {
            return Err(SqlError::internal("not a REPLICATE command"));
        };
        self.replication
            .execute(command)
            .await
            .map_err(|e| SqlError::new(SqlState(e.sqlstate()), e.to_string()))
    }

    fn view(&self, name: &str) -> Option<ViewRows> {
        let repl = &self.replication;
        match name {
            "replication_status" => {
                let state = repl.state();
                let receiver = repl.status.receiver();
                let engine_lsn = repl.local_lsn();
                let primary_url = state.primary_url.as_deref().map(|u| {
                    duet_replication::url::PrimaryUrl::parse(u)
                        .map(|p| p.masked())
                        .unwrap_or_else(|_| "(invalid URL)".into())
                });
                let lag = receiver.primary_lsn.saturating_sub(receiver.applied_lsn);
                let (copied, total) = receiver.copy_progress.unwrap_or((0, 0));
                let mut rows = vec![vec![
                    text("local"),
                    text(state.role.to_string()),
                    Value::Int(state.epoch as i64),
                    text(state.service.to_string()),
                    opt_text(primary_url),
                    opt_text(state.slot.clone()),
                    text(if state.role == Role::Secondary {
                        receiver.state.clone()
                    } else {
                        "-".into()
                    }),
                    lsn_value(engine_lsn),
                    lsn_value(receiver.flushed_lsn),
                    lsn_value(receiver.applied_lsn),
                    Value::Int(lag as i64),
                    Value::Null,
                    time_value(receiver.last_message),
                    opt_text(
                        receiver
                            .copy_progress
                            .map(|_| format!("{copied}/{total} bytes")),
                    ),
                    opt_text(receiver.last_error.clone()),
                    opt_text(receiver.discarded.clone()),
                ]];
                for s in repl.status.senders() {
                    rows.push(vec![
                        text(format!("secondary {}", s.client_addr)),
                        text("SECONDARY"),
                        Value::Int(state.epoch as i64),
                        text(s.state.clone()),
                        Value::Null,
                        text(s.slot.clone()),
                        text(s.state.clone()),
                        lsn_value(s.sent_lsn),
                        lsn_value(s.flush_lsn),
                        lsn_value(s.replay_lsn),
                        Value::Int(engine_lsn.saturating_sub(s.replay_lsn) as i64),
                        s.replay_lag
                            .map(|d| Value::Float(d.as_secs_f64() * 1000.0))
                            .unwrap_or(Value::Null),
                        time_value(s.last_reply),
                        Value::Null,
                        Value::Null,
                        Value::Null,
                    ]);
                }
                Some(ViewRows {
                    columns: columns(&[
                        ("node", DataType::Text),
                        ("role", DataType::Text),
                        ("epoch", DataType::Int8),
                        ("service", DataType::Text),
                        ("primary_url", DataType::Text),
                        ("slot", DataType::Text),
                        ("stream", DataType::Text),
                        ("lsn", DataType::Text),
                        ("flushed_lsn", DataType::Text),
                        ("applied_lsn", DataType::Text),
                        ("lag_lsn", DataType::Int8),
                        ("lag_ms", DataType::Float8),
                        ("last_message", DataType::TimestampTz),
                        ("copy_progress", DataType::Text),
                        ("last_error", DataType::Text),
                        ("discarded", DataType::Text),
                    ]),
                    rows,
                })
            }
            "pg_stat_replication" => {
                let sync = self.synchronous;
                let rows = repl
                    .status
                    .senders()
                    .into_iter()
                    .map(|s| {
                        let interval = |lag: Option<std::time::Duration>| match lag {
                            Some(d) => text(format_interval(d)),
                            None => Value::Null,
                        };
                        vec![
                            Value::Int(s.pid as i64),
                            text(s.user.clone()),
                            text(s.application_name.clone()),
                            text(s.client_addr.clone()),
                            time_value(s.started),
                            text(s.state.clone()),
                            lsn_value(s.sent_lsn),
                            lsn_value(s.write_lsn),
                            lsn_value(s.flush_lsn),
                            lsn_value(s.replay_lsn),
                            interval(s.write_lag),
                            interval(s.flush_lag),
                            interval(s.replay_lag),
                            Value::Int(if sync { 1 } else { 0 }),
                            text(if sync { "sync" } else { "async" }),
                            time_value(s.last_reply),
                        ]
                    })
                    .collect();
                Some(ViewRows {
                    columns: Vec::new(),
                    rows,
                })
            }
            "pg_stat_wal_receiver" => {
                let state = repl.state();
                if state.role != Role::Secondary
                    || state.service != duet_replication::Service::Running
                {
                    return Some(ViewRows::default());
                }
                let r = repl.status.receiver();
                let url = state
                    .primary_url
                    .as_deref()
                    .and_then(|u| duet_replication::url::PrimaryUrl::parse(u).ok());
                Some(ViewRows {
                    columns: Vec::new(),
                    rows: vec![vec![
                        Value::Int(std::process::id() as i64),
                        text(r.state.clone()),
                        lsn_value(r.received_lsn),
                        lsn_value(r.flushed_lsn),
                        lsn_value(r.primary_lsn),
                        time_value(r.last_message),
                        opt_text(state.slot.clone()),
                        opt_text(url.as_ref().map(|u| u.host.clone())),
                        url.as_ref()
                            .map(|u| Value::Int(u.port as i64))
                            .unwrap_or(Value::Null),
                        opt_text(url.map(|u| u.masked())),
                    ]],
                })
            }
            "pg_replication_slots" => {
                let attached: Vec<String> =
                    repl.status.senders().into_iter().map(|s| s.slot).collect();
                let rows = repl
                    .state()
                    .slots
                    .into_iter()
                    .map(|(name, slot)| {
                        vec![
                            text(name.clone()),
                            Value::Null,
                            text("physical"),
                            Value::Bool(attached.contains(&name)),
                            lsn_value(slot.restart_lsn),
                            Value::Null,
                            text(if slot.lost { "lost" } else { "reserved" }),
                        ]
                    })
                    .collect();
                Some(ViewRows {
                    columns: Vec::new(),
                    rows,
                })
            }
            _ => None,
        }
    }

    async fn wait_for_replication(&self, lsn: u64, level: SyncLevel) -> SqlResult<Option<String>> {
        let level = match level {
            SyncLevel::RemoteWrite => AckLevel::Written,
            SyncLevel::Flush => AckLevel::Flushed,
            SyncLevel::RemoteApply => AckLevel::Applied,
        };
        let waited = self
            .replication
            .wait_for_secondary(lsn, level, self.sync_timeout)
            .await;
        match waited {
            SyncWait::Confirmed => return Ok(None),
            // Not a timeout: no fallback, the commit is not confirmed.
            SyncWait::RoleChanged => {
                return Err(SqlError::new(
                    SqlState::QUERY_CANCELED,
                    format!(
                        "canceling wait for synchronous replication: this node was demoted \
                         before a secondary confirmed LSN {}",
                        format_lsn(lsn)
                    ),
                )
                .with_detail(
                    "The transaction has already committed locally, but might not have been replicated to the secondary.",
                ))
            }
            SyncWait::TimedOut => {}
        }
        let message = format!(
            "no secondary confirmed LSN {} within replication.sync_timeout ({} ms)",
            format_lsn(lsn),
            self.sync_timeout.as_millis()
        );
        tracing::warn!(lsn, fallback_async = self.fallback_async, "{message}");
        if self.fallback_async {
            Ok(Some(format!(
                "{message}; the commit continued asynchronously (replication.sync_fallback = async)"
            )))
        } else {
            Err(SqlError::new(
                SqlState::QUERY_CANCELED,
                format!("canceling wait for synchronous replication: {message}"),
            )
            .with_detail(
                "The transaction has already committed locally, but might not have been replicated to the secondary.",
            ))
        }
    }

    fn last_replay(&self) -> Option<SystemTime> {
        self.replication.status.receiver().last_replay
    }

    fn epoch(&self) -> u64 {
        self.replication.state().epoch
    }

    fn lsn(&self, function: &str) -> Option<u64> {
        let repl = &self.replication;
        let secondary = repl.role() == Role::Secondary;
        match function {
            "pg_current_wal_lsn" => Some(repl.local_lsn()),
            "pg_last_wal_receive_lsn" if secondary => Some(repl.status.receiver().received_lsn),
            "pg_last_wal_replay_lsn" if secondary => Some(repl.local_lsn()),
            _ => None,
        }
    }
}
