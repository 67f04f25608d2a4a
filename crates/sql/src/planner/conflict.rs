//! INSERT ... ON CONFLICT: the arbiter index and the DO UPDATE action.

use sqlparser::ast;

use super::dml::{table_scope, Assignment};
use super::{ident_name, Planner, Scope};
use crate::catalog::{IndexDef, TableDef};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::Expr;

#[derive(Debug, Clone)]
pub struct OnConflict {
    /// The unique index a conflict is looked for in; None: any unique
    /// index (DO NOTHING without a target).
    pub index: Option<IndexDef>,
    pub action: ConflictAction,
}

#[derive(Debug, Clone)]
pub enum ConflictAction {
    Nothing,
    /// Assignments and filter evaluate over the existing row followed by
    /// the proposed one (`excluded`).
    Update {
        assignments: Vec<Assignment>,
        filter: Option<Expr>,
    },
}

impl Planner<'_> {
    pub(super) fn plan_on_conflict(
        &mut self,
        table: &TableDef,
        qualifier: &str,
        on: &ast::OnConflict,
    ) -> SqlResult<OnConflict> {
        let index = match &on.conflict_target {
            None => None,
            Some(ast::ConflictTarget::Columns(cols)) => {
                let mut wanted = cols
                    .iter()
                    .map(|c| {
                        let n = ident_name(c);
                        table
                            .column_index(&n)
                            .ok_or_else(|| SqlError::undefined_column(&n))
                    })
                    .collect::<SqlResult<Vec<usize>>>()?;
                wanted.sort_unstable();
                let found = table.all_indexes().find(|i| {
                    let mut cols = i.columns.clone();
                    cols.sort_unstable();
                    i.unique && cols == wanted && !(i.primary && table.has_hidden_key())
                });
                Some(found.cloned().ok_or_else(|| {
                    SqlError::new(
                        SqlState::INVALID_COLUMN_REFERENCE,
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification",
                    )
                })?)
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                let n = super::split_name(name)?.1;
                let found = table.all_indexes().find(|i| {
                    i.constraint && i.name == n && !(i.primary && table.has_hidden_key())
                });
                Some(found.cloned().ok_or_else(|| {
                    SqlError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{n}\" for table \"{}\" does not exist",
                            table.name
                        ),
                    )
                })?)
            }
        };
        let action = match &on.action {
            ast::OnConflictAction::DoNothing => ConflictAction::Nothing,
            ast::OnConflictAction::DoUpdate(update) => {
                if index.is_none() {
                    return Err(SqlError::syntax(
                        "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                    ));
                }
                // As in PostgreSQL, a bare column name is ambiguous here:
                // both the table and `excluded` have it.
                let excluded = table_scope(table, "excluded");
                let scope: Scope = table_scope(table, qualifier).join(&excluded);
                let assignments = self.bind_assignments(table, &update.assignments, &scope)?;
                let filter = match &update.selection {
                    Some(e) => {
                        let b = self.bind_expr(e, &scope)?;
                        Some(self.condition(b, "WHERE")?)
                    }
                    None => None,
                };
                ConflictAction::Update {
                    assignments,
                    filter,
                }
            }
        };
        Ok(OnConflict { index, action })
    }
}
