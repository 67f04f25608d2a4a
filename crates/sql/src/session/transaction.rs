//! Transaction control: BEGIN/COMMIT/ROLLBACK, savepoints, and the
//! implicit transactions of multi-statement queries and pipelines.

use duet_storage::Isolation;
use sqlparser::ast;

use super::execute::{tag, Block, Session};
use super::QueryResult;
use crate::error::{SqlError, SqlResult, SqlState};

impl Session {
    /// Starts an implicit transaction: the statements of one multi-statement
    /// simple query commit together (or not at all), as in PostgreSQL.
    pub fn begin_implicit(&mut self) {
        self.implicit = true;
    }

    /// Ends the implicit transaction, committing what it did.
    pub async fn end_implicit(&mut self) -> SqlResult<()> {
        self.implicit = false;
        if self.block == Block::Autocommit {
            if let Some(t) = self.txn.take() {
                self.commit_txn(t).await?;
            }
        }
        Ok(())
    }

    pub(super) fn begin(&mut self, modes: &[ast::TransactionMode]) -> SqlResult<QueryResult> {
        if self.block != Block::Autocommit {
            self.notice(
                "WARNING",
                "25001",
                "there is already a transaction in progress",
            );
            return Ok(tag("BEGIN"));
        }
        self.block = Block::InBlock;
        self.savepoints.clear();
        self.settings_at_begin = Some(self.state.settings.clone());
        let isolation = modes.iter().find_map(|m| match m {
            ast::TransactionMode::IsolationLevel(l) => Some(match l {
                ast::TransactionIsolationLevel::RepeatableRead => Isolation::RepeatableRead,
                ast::TransactionIsolationLevel::Serializable => Isolation::Serializable,
                _ => Isolation::ReadCommitted,
            }),
            _ => None,
        });
        let txn = self.txn();
        if let Some(i) = isolation {
            txn.set_isolation(i);
        }
        Ok(tag("BEGIN"))
    }

    pub(super) async fn commit(&mut self) -> SqlResult<QueryResult> {
        match self.block {
            Block::Autocommit => {
                self.notice("WARNING", "25P01", "there is no transaction in progress");
                // COMMIT inside a multi-statement query commits what came before.
                if let Some(t) = self.txn.take() {
                    self.commit_txn(t).await?;
                }
                Ok(tag("COMMIT"))
            }
            Block::Failed => Ok(self.rollback()),
            Block::InBlock => {
                self.block = Block::Autocommit;
                self.savepoints.clear();
                self.end_transaction_settings(true);
                if let Some(t) = self.txn.take() {
                    self.commit_txn(t).await?;
                }
                Ok(tag("COMMIT"))
            }
        }
    }

    pub(super) fn rollback(&mut self) -> QueryResult {
        if self.block == Block::Autocommit {
            self.notice("WARNING", "25P01", "there is no transaction in progress");
        }
        self.block = Block::Autocommit;
        self.savepoints.clear();
        self.end_transaction_settings(false);
        if let Some(t) = self.txn.take() {
            t.rollback();
        }
        tag("ROLLBACK")
    }

    /// At transaction end: transaction-scoped settings reset, and on
    /// rollback every SET made in the block is undone.
    fn end_transaction_settings(&mut self, committed: bool) {
        self.cursors.end_transaction();
        let saved = self.settings_at_begin.take();
        // The common case: no SET in the transaction, nothing to undo.
        let untouched = saved
            .as_ref()
            .is_none_or(|s| s.unchanged_since(&self.state.settings));
        if untouched
            && TRANSACTION_SCOPED
                .iter()
                .all(|n| self.state.settings.is_default(n))
        {
            return;
        }
        let before = self.state.settings.reported();
        if let (false, Some(saved)) = (committed, saved) {
            self.state.settings = saved;
        }
        for name in TRANSACTION_SCOPED {
            let _ = self.state.settings.reset(name);
        }
        for (k, v) in self.state.settings.reported() {
            if !before.contains(&(k.clone(), v.clone())) {
                self.parameter_changed(&k, &v);
            }
        }
    }

    pub(super) fn savepoint(&mut self, name: &ast::Ident) -> SqlResult<QueryResult> {
        if self.block == Block::Autocommit {
            return Err(SqlError::new(
                SqlState::NO_ACTIVE_SQL_TRANSACTION,
                "SAVEPOINT can only be used in transaction blocks",
            ));
        }
        let saved = self.txn().savepoint();
        self.savepoints
            .push((crate::planner::ident_name(name), saved));
        Ok(tag("SAVEPOINT"))
    }

    /// Where the named savepoint is on the stack (the newest of that name).
    fn savepoint_position(&self, name: &ast::Ident) -> SqlResult<usize> {
        let n = crate::planner::ident_name(name);
        self.savepoints
            .iter()
            .rposition(|(s, _)| *s == n)
            .ok_or_else(|| {
                SqlError::new(
                    SqlState("3B001"),
                    format!("savepoint \"{n}\" does not exist"),
                )
            })
    }

    pub(super) fn rollback_to(&mut self, name: &ast::Ident) -> SqlResult<QueryResult> {
        let pos = self.savepoint_position(name)?;
        self.savepoints.truncate(pos + 1);
        let saved = self.savepoints[pos].1.clone();
        self.txn().rollback_to(saved);
        self.block = Block::InBlock;
        Ok(tag("ROLLBACK"))
    }

    pub(super) fn release(&mut self, name: &ast::Ident) -> SqlResult<QueryResult> {
        let pos = self.savepoint_position(name)?;
        self.savepoints.truncate(pos);
        Ok(tag("RELEASE"))
    }
}

/// Settings that last for one transaction.
const TRANSACTION_SCOPED: [&str; 2] = ["transaction_read_only", "transaction_isolation"];
