//! What a write must check besides NOT NULL and unique keys: the CHECK
//! constraints of the tables it touches and the foreign keys into and out
//! of them. Planned once per statement (plans are cached per catalog
//! version), so rows are checked without catalog reads.

use std::collections::HashMap;
use std::sync::Arc;

use super::bind::contains_aggregate;
use super::dml::{parse_expr, table_scope};
use super::Planner;
use crate::catalog::TableDef;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::Expr;

/// The tables a write may reach through foreign keys (its own, the parents
/// it must find, the children its deletes and key changes act on, theirs
/// in turn), each with its bound CHECK constraints and defaults.
#[derive(Debug, Clone, Default)]
pub struct Integrity {
    pub tables: HashMap<u32, IntegrityTable>,
}

#[derive(Debug, Clone)]
pub struct IntegrityTable {
    pub table: Arc<TableDef>,
    /// (constraint name, boolean expression over the row)
    pub checks: Vec<(String, Expr)>,
    /// Bound DEFAULT of every column, for ON DELETE SET DEFAULT.
    pub defaults: Vec<Option<Expr>>,
}

impl Integrity {
    pub fn table(&self, oid: u32) -> SqlResult<&IntegrityTable> {
        self.tables
            .get(&oid)
            .ok_or_else(|| SqlError::internal(format!("table {oid} missing from the write's plan")))
    }
}

impl Planner<'_> {
    /// The integrity closure of a write to `table`.
    pub(crate) fn plan_integrity(&mut self, table: &Arc<TableDef>) -> SqlResult<Arc<Integrity>> {
        let mut out = Integrity::default();
        let mut pending = vec![table.clone()];
        while let Some(t) = pending.pop() {
            if out.tables.contains_key(&t.oid) {
                continue;
            }
            let related = t
                .foreign_keys
                .iter()
                .map(|fk| fk.parent)
                .chain(t.referenced_by.iter().copied());
            for oid in related {
                if !out.tables.contains_key(&oid) {
                    let other = self.catalog.table_by_oid(oid)?.ok_or_else(|| {
                        SqlError::internal(format!("foreign key names a missing table {oid}"))
                    })?;
                    pending.push(other);
                }
            }
            let checks = self.bind_checks(&t)?;
            let defaults = if t.referenced_by.is_empty() && t.foreign_keys.is_empty() {
                Vec::new()
            } else {
                self.bind_defaults(&t)?
            };
            out.tables.insert(
                t.oid,
                IntegrityTable {
                    table: t,
                    checks,
                    defaults,
                },
            );
        }
        Ok(Arc::new(out))
    }

    /// A table's CHECK constraints, bound over its row.
    pub(crate) fn bind_checks(&mut self, table: &TableDef) -> SqlResult<Vec<(String, Expr)>> {
        table
            .checks
            .iter()
            .map(|c| {
                Ok((
                    c.name.clone(),
                    self.bind_check(table, &parse_expr(&c.expr)?)?,
                ))
            })
            .collect()
    }

    /// Binds a CHECK expression: boolean, no aggregates, no subqueries.
    pub(crate) fn bind_check(
        &mut self,
        table: &TableDef,
        e: &sqlparser::ast::Expr,
    ) -> SqlResult<Expr> {
        let scope = table_scope(table, &table.name);
        let bound = self.bind_expr(e, &scope)?;
        let bound = self.condition(bound, "CHECK")?;
        if contains_aggregate(&bound) {
            return Err(SqlError::new(
                SqlState::GROUPING_ERROR,
                "aggregate functions are not allowed in check constraints",
            ));
        }
        let mut subquery = false;
        bound.walk(&mut |x| subquery |= matches!(x, Expr::Subquery { .. }));
        if subquery {
            return Err(SqlError::unsupported(
                "cannot use subquery in check constraint",
            ));
        }
        Ok(bound)
    }
}
