//! REPLICATE statements and SHOW REPLICATION STATUS in a session, and the
//! session following its node's role (read-only on a secondary).

use duet_storage::Transaction;

use super::execute::{tag, Block, Session};
use super::{Column, QueryResult};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::replicate::ReplicateStatement;

impl Session {
    pub(crate) async fn replicate(
        &mut self,
        statement: ReplicateStatement,
    ) -> SqlResult<QueryResult> {
        let control = self.state.db.node_control().cloned().ok_or_else(|| {
            SqlError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "replication is not available in this process",
            )
        })?;
        if statement == ReplicateStatement::ShowStatus {
            let view = control.view("replication_status").unwrap_or_default();
            return Ok(QueryResult {
                tag: format!("SHOW {}", view.rows.len()),
                columns: Some(
                    view.columns
                        .into_iter()
                        .map(|(name, data_type)| Column {
                            name,
                            data_type,
                            table_oid: 0,
                            column_id: 0,
                        })
                        .collect(),
                ),
                rows: view.rows,
                copy: None,
            });
        }
        if !self.state.is_admin {
            return Err(SqlError::insufficient_privilege(
                "permission denied to run REPLICATE statements",
            )
            .with_detail("Only members of the admin role may change replication."));
        }
        if self.block != Block::Autocommit || self.implicit {
            return Err(SqlError::new(
                SqlState::ACTIVE_SQL_TRANSACTION,
                "REPLICATE cannot run inside a transaction block",
            ));
        }
        // Nothing of this session's may stay open across a role change.
        if let Some(txn) = self.txn.take() {
            txn.rollback();
        }
        let result = control.replicate(statement).await;
        // A copy this statement made is no surprise to this session.
        self.installs_seen = self.state.db.store().installs();
        let message = result?;
        self.notice("NOTICE", "00000", message);
        self.follow_node_role();
        Ok(tag("REPLICATE"))
    }

    /// Commits, then waits for the secondary as `synchronous_commit` asks
    /// (the commit is visible on this node meanwhile, as in PostgreSQL).
    pub(crate) async fn commit_txn(&mut self, txn: Transaction) -> SqlResult<()> {
        let started = std::time::Instant::now();
        let result = self
            .commit_and_wait(txn)
            .await
            .and_then(|wrote| self.sync_sequences().map(|()| wrote));
        let elapsed = started.elapsed();
        self.commit_wait += elapsed;
        if let Ok(true) = result {
            super::metrics::commit(elapsed);
        }
        result.map(|_| ())
    }

    /// Makes the sequence blocks this session took values from durable
    /// (the commit's own synced write usually did already).
    fn sync_sequences(&self) -> SqlResult<()> {
        let reserved_at = self
            .state
            .sequences_reserved_at
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        if reserved_at > 0 {
            self.state.db.engine().sync_through(reserved_at)?;
        }
        Ok(())
    }

    /// Commits, then waits as synchronous_commit asks; true if the
    /// transaction wrote anything.
    async fn commit_and_wait(&mut self, txn: Transaction) -> SqlResult<bool> {
        let Some(lsn) = txn.commit().await? else {
            return Ok(false);
        };
        let setting = self
            .state
            .settings
            .get("synchronous_commit")
            .unwrap_or_default();
        let Some(level) = crate::replicate::SyncLevel::from_setting(&setting) else {
            return Ok(true);
        };
        let Some(control) = self.state.db.node_control().cloned() else {
            return Ok(true);
        };
        if let Some(warning) = control.wait_for_replication(lsn, level).await? {
            self.notice("WARNING", "01000", warning);
        }
        Ok(true)
    }

    /// Makes the session read-only on a secondary (and says so through
    /// in_hot_standby, as PostgreSQL 14+ does), writable again after a
    /// promotion.
    /// True once the node has installed a fresh copy of its primary's data
    /// (a re-copy after its history diverged or its slot was lost) that
    /// this session did not ask for: what it read came from a history that
    /// is gone, so it must end rather than see the data jump (PostgreSQL
    /// ends sessions that conflict with recovery the same way).
    pub fn outlived_its_data(&self) -> bool {
        self.state.db.store().installs() != self.installs_seen
    }

    pub(crate) fn follow_node_role(&mut self) {
        let read_only = self.state.db.is_read_only();
        if read_only == self.state.in_recovery {
            return;
        }
        self.state.in_recovery = read_only;
        let value = if read_only { "on" } else { "off" };
        for name in ["in_hot_standby", "default_transaction_read_only"] {
            self.state.settings.set_internal(name, value);
            self.parameter_changed(name, value);
        }
        self.state
            .settings
            .set_internal("transaction_read_only", value);
    }
}
