//! The REPLICATE statements of SPEC 4.2 (KWDB's grammar, accepted exactly
//! as its reference writes them, including a bare, unquoted primary URL)
//! and SHOW REPLICATION STATUS. The SQL layer parses them and checks who
//! may run them; the replication layer runs them through [`NodeControl`].

use crate::error::{SqlError, SqlResult};
use crate::types::DataType;
use crate::value::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicateStatement {
    /// REPLICATE SET PRIMARY <url> (bare or quoted).
    SetPrimary(String),
    /// REPLICATE SET ROLE DEFAULT | PRIMARY | SECONDARY
    SetRole(NodeRole),
    /// REPLICATE SET SERVICE CREATE | START | STOP | DROP
    Service(ServiceVerb),
    /// SHOW REPLICATION STATUS
    ShowStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Default,
    Primary,
    Secondary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceVerb {
    Create,
    Start,
    Stop,
    Drop,
}

/// How far a commit on the primary waits for its secondary
/// (`synchronous_commit`): written, flushed (`on`), or visible there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncLevel {
    RemoteWrite,
    Flush,
    RemoteApply,
}

impl SyncLevel {
    /// The level a `synchronous_commit` value asks for; None for off/local.
    pub fn from_setting(value: &str) -> Option<SyncLevel> {
        match value.to_ascii_lowercase().as_str() {
            "remote_write" => Some(SyncLevel::RemoteWrite),
            "on" | "true" | "yes" | "1" => Some(SyncLevel::Flush),
            "remote_apply" => Some(SyncLevel::RemoteApply),
            _ => None,
        }
    }
}

/// Rows of a replication view.
#[derive(Debug, Clone, Default)]
pub struct ViewRows {
    pub columns: Vec<(String, DataType)>,
    pub rows: Vec<Vec<Value>>,
}

/// The node's replication, as the SQL layer sees it (implemented by the
/// server on top of the replication crate).
#[async_trait::async_trait]
pub trait NodeControl: Send + Sync {
    /// Runs a REPLICATE statement; Ok is the message for the client.
    async fn replicate(&self, statement: ReplicateStatement) -> SqlResult<String>;
    /// A replication view by name: "replication_status" (columns of its
    /// own), or "pg_stat_replication", "pg_stat_wal_receiver",
    /// "pg_replication_slots" (rows in the column order of
    /// [`view_columns`]).
    fn view(&self, name: &str) -> Option<ViewRows>;
    /// Waits until the secondary has reached `level` for the commit at
    /// `lsn` (returns at once unless this node is a PRIMARY). Ok(Some) is
    /// a warning: the wait timed out and fell back to asynchronous.
    async fn wait_for_replication(&self, lsn: u64, level: SyncLevel) -> SqlResult<Option<String>>;
    /// When the last replicated batch was applied on this secondary.
    fn last_replay(&self) -> Option<std::time::SystemTime>;
    /// The node's replication epoch (bumped by every promotion).
    fn epoch(&self) -> u64;
    /// An LSN function: "pg_current_wal_lsn", "pg_last_wal_receive_lsn",
    /// "pg_last_wal_replay_lsn"; None where PostgreSQL returns NULL.
    fn lsn(&self, function: &str) -> Option<u64>;
}

/// Columns of the PostgreSQL-shaped replication views (LSNs and lags as
/// text: duet has no pg_lsn or interval type yet).
pub fn view_columns(name: &str) -> Option<Vec<(&'static str, DataType)>> {
    use DataType as T;
    Some(match name {
        "pg_stat_replication" => vec![
            ("pid", T::Int4),
            ("usename", T::Name),
            ("application_name", T::Text),
            ("client_addr", T::Text),
            ("backend_start", T::TimestampTz),
            ("state", T::Text),
            ("sent_lsn", T::Text),
            ("write_lsn", T::Text),
            ("flush_lsn", T::Text),
            ("replay_lsn", T::Text),
            ("write_lag", T::Text),
            ("flush_lag", T::Text),
            ("replay_lag", T::Text),
            ("sync_priority", T::Int4),
            ("sync_state", T::Text),
            ("reply_time", T::TimestampTz),
        ],
        "pg_stat_wal_receiver" => vec![
            ("pid", T::Int4),
            ("status", T::Text),
            ("written_lsn", T::Text),
            ("flushed_lsn", T::Text),
            ("latest_end_lsn", T::Text),
            ("last_msg_receipt_time", T::TimestampTz),
            ("slot_name", T::Text),
            ("sender_host", T::Text),
            ("sender_port", T::Int4),
            ("conninfo", T::Text),
        ],
        "pg_replication_slots" => vec![
            ("slot_name", T::Name),
            ("plugin", T::Name),
            ("slot_type", T::Text),
            ("active", T::Bool),
            ("restart_lsn", T::Text),
            ("confirmed_flush_lsn", T::Text),
            ("wal_status", T::Text),
        ],
        _ => return None,
    })
}

/// Recognises REPLICATE and SHOW REPLICATION STATUS; None for other SQL.
pub fn parse(text: &str) -> Option<SqlResult<ReplicateStatement>> {
    let trimmed = text.trim().trim_end_matches(';').trim();
    let mut words = trimmed.split_whitespace();
    let first = words.next()?.to_ascii_uppercase();
    if first == "SHOW" {
        let rest: Vec<String> = words.map(|w| w.to_ascii_uppercase()).collect();
        return (rest == ["REPLICATION", "STATUS"]).then_some(Ok(ReplicateStatement::ShowStatus));
    }
    if first != "REPLICATE" {
        return None;
    }
    Some(parse_replicate(trimmed))
}

fn parse_replicate(text: &str) -> SqlResult<ReplicateStatement> {
    let usage = || {
        SqlError::syntax(
            "expected REPLICATE SET PRIMARY <url>, REPLICATE SET ROLE DEFAULT|PRIMARY|SECONDARY \
             or REPLICATE SET SERVICE CREATE|START|STOP|DROP",
        )
    };
    // "REPLICATE SET <what> <rest>", the rest kept verbatim (a URL).
    let mut rest = text;
    let mut next_word = || {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (w, r) = t.split_at(end);
        rest = r;
        w.to_ascii_uppercase()
    };
    let _replicate = next_word();
    if next_word() != "SET" {
        return Err(usage());
    }
    let what = next_word();
    let arg = rest.trim();
    match what.as_str() {
        "PRIMARY" => {
            let url = unquote(arg)?;
            if url.is_empty() {
                return Err(SqlError::syntax("REPLICATE SET PRIMARY needs a URL"));
            }
            Ok(ReplicateStatement::SetPrimary(url))
        }
        "ROLE" => Ok(ReplicateStatement::SetRole(
            match arg.to_ascii_uppercase().as_str() {
                "DEFAULT" => NodeRole::Default,
                "PRIMARY" => NodeRole::Primary,
                "SECONDARY" => NodeRole::Secondary,
                _ => return Err(usage()),
            },
        )),
        "SERVICE" => Ok(ReplicateStatement::Service(
            match arg.to_ascii_uppercase().as_str() {
                "CREATE" => ServiceVerb::Create,
                "START" => ServiceVerb::Start,
                "STOP" => ServiceVerb::Stop,
                "DROP" => ServiceVerb::Drop,
                _ => return Err(usage()),
            },
        )),
        _ => Err(usage()),
    }
}

/// 'quoted' (with '' for a quote) or bare.
fn unquote(arg: &str) -> SqlResult<String> {
    let Some(inner) = arg.strip_prefix('\'') else {
        return Ok(arg.to_string());
    };
    let inner = inner
        .strip_suffix('\'')
        .ok_or_else(|| SqlError::syntax("unterminated quoted string in REPLICATE SET PRIMARY"))?;
    Ok(inner.replace("''", "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwdb_statements_parse_as_written() {
        let url = "postgresql://root@localhost:26257/defaultdb?sslmode=verify-ca&sslcert=./certs/client.root.crt&sslkey=./certs/client.root.key&sslrootcert=./certs/ca.crt";
        assert_eq!(
            parse(&format!("REPLICATE SET PRIMARY {url};"))
                .unwrap()
                .unwrap(),
            ReplicateStatement::SetPrimary(url.into())
        );
        assert_eq!(
            parse(&format!("replicate set primary '{url}'"))
                .unwrap()
                .unwrap(),
            ReplicateStatement::SetPrimary(url.into())
        );
        assert_eq!(
            parse("REPLICATE SET ROLE SECONDARY;").unwrap().unwrap(),
            ReplicateStatement::SetRole(NodeRole::Secondary)
        );
        assert_eq!(
            parse("REPLICATE SET SERVICE STOP").unwrap().unwrap(),
            ReplicateStatement::Service(ServiceVerb::Stop)
        );
        assert_eq!(
            parse("show replication status;").unwrap().unwrap(),
            ReplicateStatement::ShowStatus
        );
        assert!(parse("SELECT 1").is_none());
        assert!(parse("SHOW search_path").is_none());
    }

    #[test]
    fn malformed_replicate_statements_are_syntax_errors() {
        for bad in [
            "REPLICATE",
            "REPLICATE SET",
            "REPLICATE SET ROLE LEADER",
            "REPLICATE SET SERVICE PAUSE",
            "REPLICATE SET PRIMARY",
            "REPLICATE SET PRIMARY 'unterminated",
            "REPLICATE GET ROLE",
        ] {
            let err = parse(bad).unwrap().unwrap_err();
            assert_eq!(err.state.0, "42601", "{bad}");
        }
    }
}
