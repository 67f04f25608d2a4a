//! The session as the expression evaluator (SessionInfo) and the planner
//! and executor (CatalogView) see it.

use std::sync::Arc;

use duet_storage::{Isolation, Transaction};

use super::execute::SessionState;
use crate::catalog::{Catalog, Privilege, TableDef, ViewDef};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::exec;
use crate::expr::SessionInfo;
use crate::plan::VirtualTable;
use crate::planner::PlannerCatalog;

impl SessionInfo for SessionState {
    fn current_user(&self) -> &str {
        &self.user
    }
    fn current_database(&self) -> &str {
        &self.database.name
    }
    fn backend_pid(&self) -> i32 {
        self.backend_pid
    }
    fn server_port(&self) -> Option<u16> {
        self.server_port
    }
    fn in_recovery(&self) -> bool {
        self.in_recovery
    }
    fn wal_lsn(&self, function: &str) -> Option<u64> {
        self.db.node_control()?.lsn(function)
    }
    fn last_replay(&self) -> Option<std::time::SystemTime> {
        self.db.node_control()?.last_replay()
    }
    fn replication_epoch(&self) -> u64 {
        self.db.node_control().map_or(0, |c| c.epoch())
    }
    fn setting(&self, name: &str) -> Option<String> {
        self.settings.get(name)
    }
    fn nextval(&self, sequence: &str) -> SqlResult<i64> {
        let next = self.db.nextval(self.database.oid, sequence)?;
        self.sequences_reserved_at
            .fetch_max(next.reserved_at, std::sync::atomic::Ordering::Relaxed);
        self.currvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(next.sequence, next.value);
        Ok(next.value)
    }
    fn currval(&self, sequence: &str) -> SqlResult<i64> {
        let oid = self.db.sequence_oid(self.database.oid, sequence)?;
        self.currvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&oid)
            .copied()
            .ok_or_else(|| {
                SqlError::new(
                    SqlState("55000"),
                    format!(
                        "currval of sequence \"{}\" is not yet defined in this session",
                        self.db.sequence_display_name(oid, sequence)
                    ),
                )
            })
    }
    fn setval(&self, sequence: &str, value: i64, is_called: bool) -> SqlResult<i64> {
        let (oid, v) = self
            .db
            .setval(self.database.oid, sequence, value, is_called)?;
        if is_called {
            self.currvals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(oid, v);
        }
        Ok(v)
    }
    fn relation_oid(&self, name: &str) -> SqlResult<Option<u32>> {
        let txn = self.db.begin(Isolation::ReadCommitted);
        let (schema, rel) = name.split_once('.').unwrap_or(("public", name));
        Catalog::new(&txn).relation_oid(self.database.oid, schema, rel.trim_matches('"'))
    }
    fn describe_object(&self, kind: &str, oid: u32) -> SqlResult<Option<String>> {
        let txn = self.db.begin(Isolation::ReadCommitted);
        super::describe::describe(&txn, kind, oid)
    }
    fn role_name(&self, oid: u32) -> Option<String> {
        let txn = self.db.begin(Isolation::ReadCommitted);
        Catalog::new(&txn)
            .roles()
            .ok()?
            .into_iter()
            .find(|r| r.oid == oid)
            .map(|r| r.name)
    }
}

/// The planner's and executor's view of the catalog inside a transaction.
pub(crate) struct CatalogView<'a> {
    pub(crate) state: &'a SessionState,
    pub(crate) txn: &'a Transaction,
}

impl PlannerCatalog for CatalogView<'_> {
    fn table(&self, schema: Option<&str>, name: &str) -> SqlResult<Option<Arc<TableDef>>> {
        match schema {
            None | Some("public") => {
                self.state
                    .db
                    .cached_table(self.txn, self.state.database.oid, "public", name)
            }
            Some(_) => Ok(None),
        }
    }

    fn virtual_table(&self, schema: Option<&str>, name: &str) -> Option<VirtualTable> {
        super::views::lookup(schema, name)
    }

    fn table_by_oid(&self, oid: u32) -> SqlResult<Option<Arc<TableDef>>> {
        Ok(Catalog::new(self.txn).table_by_oid(oid)?.map(Arc::new))
    }

    fn view(&self, schema: Option<&str>, name: &str) -> SqlResult<Option<ViewDef>> {
        if !matches!(schema, None | Some("public")) {
            return Ok(None);
        }
        match Catalog::new(self.txn).relation_by_name(self.state.database.oid, "public", name)? {
            Some(crate::catalog::Relation::View(v)) => Ok(Some(v)),
            _ => Ok(None),
        }
    }

    fn sequence_oid(&self, name: &str) -> SqlResult<u32> {
        super::database::sequence_oid_in(self.txn, self.state.database.oid, name)
    }

    fn check_privilege(&self, table: &TableDef, privilege: Privilege) -> SqlResult<()> {
        let state = self.state;
        if state.is_admin || table.owner == state.user {
            return Ok(());
        }
        let granted = state
            .roles
            .iter()
            .chain(std::iter::once(&"public".to_string()))
            .any(|r| table.acl.get(r).is_some_and(|p| p.contains(&privilege)));
        if granted {
            Ok(())
        } else {
            Err(SqlError::insufficient_privilege(format!(
                "permission denied for table {}",
                table.name
            )))
        }
    }
}

impl exec::VirtualRows for CatalogView<'_> {
    fn rows(&self, name: &str) -> SqlResult<Vec<crate::row::Row>> {
        super::views::rows(name, self.state, self.txn)
    }
}
