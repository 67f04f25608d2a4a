//! ALTER TABLE: column and constraint changes. Each statement edits the
//! table definition operation by operation; if any operation changes how
//! rows are stored (a column added or dropped, a new key or unique index,
//! a new NOT NULL to check), the rows are rewritten once at the end, in
//! the statement's transaction.

use std::collections::HashSet;

use duet_storage::Transaction;
use sqlparser::ast::{self, AlterColumnOperation, AlterTableOperation as Op, TableConstraint};

use super::catalog_view::CatalogView;
use super::constraint_ddl::{drop_named_constraint, table_rows, NewConstraint};
use super::ddl::{check_schema, delete_prefix, truncate_name, SCHEMA};
use super::execute::{tag, Session};
use super::QueryResult;
use crate::catalog::{index_prefix, table_rows_prefix, Catalog, ColumnDef, IndexDef, TableDef};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::Expr;
use crate::planner::{convert_type, ident_name, serial_kind, split_name, Planner};
use crate::row::{
    encode_row, index_entry_key, index_values_prefix, primary_key_suffix, row_key, Row,
};
use crate::value::Value;

/// Where a column of the rewritten table takes its values from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// The column at this position of the table before the statement.
    Old(usize),
    /// A new column: its default, evaluated per row.
    Default,
}

/// The table as the operations leave it, and whether rows must be rewritten.
struct Altered {
    table: TableDef,
    sources: Vec<Source>,
    rewrite: bool,
    /// The hidden rowid sequence, when a primary key replaced it.
    dropped_sequence: Option<u32>,
    old_name: String,
    /// CHECK and FOREIGN KEY constraints to add once the rest is stored.
    deferred: Vec<NewConstraint>,
    /// Unique constraints dropped (their index relations go too).
    dropped_indexes: Vec<String>,
}

impl Session {
    pub(super) async fn alter_table(&mut self, at: &ast::AlterTable) -> SqlResult<QueryResult> {
        let (schema, name) = split_name(&at.name)?;
        check_schema(&schema)?;
        let control = self.control_for_ddl();
        let txn = self.txn();
        txn.lock(&crate::catalog::oid_counter_key(), &control)
            .await?;
        let database = self.state.database.oid;
        let Some(table) = Catalog::new(self.current_txn()?).table(database, SCHEMA, &name)? else {
            if at.if_exists {
                self.notice(
                    "NOTICE",
                    "00000",
                    format!("relation \"{name}\" does not exist, skipping"),
                );
                return Ok(tag("ALTER TABLE"));
            }
            return Err(SqlError::undefined_table(&name));
        };
        if !self.state.is_admin && table.owner != self.state.user {
            return Err(SqlError::insufficient_privilege(format!(
                "must be owner of table {name}"
            )));
        }
        // Views keep their query as text: renaming or dropping what they
        // name would break them.
        let reshapes = at.operations.iter().any(|op| {
            matches!(
                op,
                Op::RenameColumn { .. } | Op::RenameTable { .. } | Op::DropColumn { .. }
            )
        });
        if reshapes {
            if let Some(v) =
                super::view_ddl::dependent_views(self.current_txn()?, table.oid)?.first()
            {
                return Err(SqlError::unsupported(format!(
                    "cannot rename or drop columns of table {name} or rename it while view {} depends on it; drop the view first",
                    v.name
                )));
            }
        }
        // Foreign keys and CHECK constraints name columns by position and
        // by text: moving or renaming columns under them is refused until
        // they are rewritten along (drop the constraint first).
        let moves_columns = at.operations.iter().any(|op| {
            matches!(op, Op::DropColumn { .. } | Op::AddColumn { .. })
                || matches!(
                    op,
                    Op::AddConstraint {
                        constraint: TableConstraint::PrimaryKey(_),
                        ..
                    }
                )
        });
        if moves_columns && (!table.foreign_keys.is_empty() || !table.referenced_by.is_empty()) {
            return Err(SqlError::unsupported(format!(
                "adding or dropping columns of table {name} while foreign keys involve it is not supported yet; drop the foreign keys first"
            )));
        }
        let renames_or_drops = at
            .operations
            .iter()
            .any(|op| matches!(op, Op::DropColumn { .. } | Op::RenameColumn { .. }));
        if renames_or_drops && !table.checks.is_empty() {
            return Err(SqlError::unsupported(format!(
                "renaming or dropping columns of table {name} while it has CHECK constraints is not supported yet; drop the constraints first"
            )));
        }
        let old = table.clone();
        let mut altered = Altered {
            sources: (0..table.columns.len()).map(Source::Old).collect(),
            old_name: table.name.clone(),
            table,
            rewrite: false,
            dropped_sequence: None,
            deferred: Vec::new(),
            dropped_indexes: Vec::new(),
        };
        let mut notices = Vec::new();
        for op in &at.operations {
            self.apply_operation(&mut altered, op, &mut notices)?;
        }
        for n in notices {
            self.notice("NOTICE", "00000", n);
        }
        let mut txn = self.take_txn()?;
        let result = self.store_altered(&mut txn, &old, &altered);
        self.txn = Some(txn);
        result?;
        for c in altered.deferred {
            self.add_constraint_to(old.oid, c).await?;
        }
        Ok(tag("ALTER TABLE"))
    }

    fn apply_operation(
        &mut self,
        a: &mut Altered,
        op: &Op,
        notices: &mut Vec<String>,
    ) -> SqlResult<()> {
        let database = self.state.database.oid;
        match op {
            Op::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let col_name = ident_name(&column_def.name);
                if visible_column(&a.table, &col_name).is_some() {
                    if *if_not_exists {
                        notices.push(format!(
                            "column \"{col_name}\" of relation \"{}\" already exists, skipping",
                            a.table.name
                        ));
                        return Ok(());
                    }
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!(
                            "column \"{col_name}\" of relation \"{}\" already exists",
                            a.table.name
                        ),
                    ));
                }
                if serial_kind(&column_def.data_type).is_some() {
                    return Err(SqlError::unsupported(
                        "ALTER TABLE ADD COLUMN of a serial type is not supported yet; add an integer column with DEFAULT nextval(...)",
                    ));
                }
                let mut def = ColumnDef {
                    name: col_name,
                    data_type: convert_type(&column_def.data_type)?,
                    nullable: true,
                    default: None,
                };
                for opt in &column_def.options {
                    match &opt.option {
                        ast::ColumnOption::NotNull => def.nullable = false,
                        ast::ColumnOption::Null => def.nullable = true,
                        ast::ColumnOption::Default(e) => def.default = Some(e.to_string()),
                        other => {
                            return Err(SqlError::unsupported(format!(
                                "ALTER TABLE ADD COLUMN with {other} is not supported yet"
                            )))
                        }
                    }
                }
                let pos = visible_len(&a.table);
                a.table.columns.insert(pos, def);
                a.sources.insert(pos, Source::Default);
                shift_indexes(&mut a.table, pos, 1);
                a.rewrite = true;
            }
            Op::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for ident in column_names {
                    let col_name = ident_name(ident);
                    let Some(pos) = visible_column(&a.table, &col_name) else {
                        if *if_exists {
                            notices.push(format!(
                                "column \"{col_name}\" of relation \"{}\" does not exist, skipping",
                                a.table.name
                            ));
                            continue;
                        }
                        return Err(no_column(&col_name, &a.table.name));
                    };
                    if a.table.primary.columns.contains(&pos) {
                        return Err(SqlError::unsupported(format!(
                            "dropping primary key column \"{col_name}\" is not supported yet"
                        )));
                    }
                    a.table.columns.remove(pos);
                    a.sources.remove(pos);
                    // Indexes on the column go with it (their names too).
                    for index in a.table.indexes.iter().filter(|i| i.columns.contains(&pos)) {
                        a.dropped_indexes.push(index.name.clone());
                    }
                    a.table.indexes.retain(|i| !i.columns.contains(&pos));
                    shift_indexes(&mut a.table, pos, -1);
                    a.rewrite = true;
                }
            }
            Op::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (from, to) = (ident_name(old_column_name), ident_name(new_column_name));
                let pos = visible_column(&a.table, &from)
                    .ok_or_else(|| no_column(&from, &a.table.name))?;
                if a.table.column_index(&to).is_some() {
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!(
                            "column \"{to}\" of relation \"{}\" already exists",
                            a.table.name
                        ),
                    ));
                }
                a.table.columns[pos].name = to;
            }
            Op::RenameTable { table_name } => {
                let target = match table_name {
                    ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n) => n,
                };
                let new_name = split_name(target)?.1;
                let txn = self.current_txn()?;
                if Catalog::new(txn)
                    .relation_oid(database, SCHEMA, &new_name)?
                    .is_some()
                {
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_TABLE,
                        format!("relation \"{new_name}\" already exists"),
                    ));
                }
                a.table.name = new_name;
            }
            Op::AddConstraint {
                constraint: TableConstraint::Check(check),
                ..
            } => a.deferred.push(NewConstraint::Check {
                check: check.clone(),
                column: None,
            }),
            Op::AddConstraint {
                constraint: TableConstraint::ForeignKey(fk),
                ..
            } => a.deferred.push(NewConstraint::ForeignKey {
                fk: fk.clone(),
                column: None,
            }),
            Op::AddConstraint { constraint, .. } => self.add_constraint(a, constraint)?,
            Op::DropConstraint {
                if_exists, name, ..
            } => {
                let name = ident_name(name);
                let mut txn = self.take_txn()?;
                let dropped = drop_named_constraint(&mut txn, &mut a.table, &name);
                self.txn = Some(txn);
                if dropped? {
                    return Ok(());
                }
                if let Some(i) = a
                    .table
                    .indexes
                    .iter()
                    .position(|i| i.constraint && i.name == name)
                {
                    a.table.indexes.remove(i);
                    a.dropped_indexes.push(name);
                    a.rewrite = true;
                } else if a.table.primary.name == name && !a.table.has_hidden_key() {
                    return Err(SqlError::unsupported(
                        "dropping a primary key is not supported yet",
                    ));
                } else if *if_exists {
                    notices.push(format!(
                        "constraint \"{name}\" of relation \"{}\" does not exist, skipping",
                        a.table.name
                    ));
                } else {
                    return Err(SqlError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{name}\" of relation \"{}\" does not exist",
                            a.table.name
                        ),
                    ));
                }
            }
            Op::AlterColumn { column_name, op } => {
                let col_name = ident_name(column_name);
                let pos = visible_column(&a.table, &col_name)
                    .ok_or_else(|| no_column(&col_name, &a.table.name))?;
                match op {
                    AlterColumnOperation::SetNotNull => {
                        if a.table.columns[pos].nullable {
                            a.table.columns[pos].nullable = false;
                            a.rewrite = true;
                        }
                    }
                    AlterColumnOperation::DropNotNull => {
                        if a.table.primary.columns.contains(&pos) && !a.table.has_hidden_key() {
                            return Err(SqlError::new(
                                SqlState::INVALID_TABLE_DEFINITION,
                                format!("column \"{col_name}\" is in a primary key"),
                            ));
                        }
                        a.table.columns[pos].nullable = true;
                    }
                    AlterColumnOperation::SetDefault { value } => {
                        a.table.columns[pos].default = Some(value.to_string())
                    }
                    AlterColumnOperation::DropDefault => a.table.columns[pos].default = None,
                    other => {
                        return Err(SqlError::unsupported(format!(
                            "ALTER TABLE ALTER COLUMN {other} is not supported yet"
                        )))
                    }
                }
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "ALTER TABLE {other} is not supported yet"
                )))
            }
        }
        Ok(())
    }

    fn add_constraint(&mut self, a: &mut Altered, constraint: &TableConstraint) -> SqlResult<()> {
        let (name, columns, primary) = match constraint {
            TableConstraint::PrimaryKey(pk) => (pk.name.as_ref(), &pk.columns, true),
            TableConstraint::Unique(u) => (u.name.as_ref(), &u.columns, false),
            other => {
                return Err(SqlError::unsupported(format!(
                    "ALTER TABLE ADD {other} is not supported yet"
                )))
            }
        };
        let cols = columns
            .iter()
            .map(|ic| match &ic.column.expr {
                ast::Expr::Identifier(id) => {
                    let n = ident_name(id);
                    visible_column(&a.table, &n).ok_or_else(|| {
                        SqlError::new(
                            SqlState::UNDEFINED_COLUMN,
                            format!("column \"{n}\" named in key does not exist"),
                        )
                    })
                }
                other => Err(SqlError::unsupported(format!(
                    "constraint on expression {other} is not supported"
                ))),
            })
            .collect::<SqlResult<Vec<usize>>>()?;
        let col_names: Vec<&str> = cols
            .iter()
            .map(|&c| a.table.columns[c].name.as_str())
            .collect();
        let default_name = if primary {
            format!("{}_pkey", a.table.name)
        } else {
            format!("{}_{}_key", a.table.name, col_names.join("_"))
        };
        let index_name = truncate_name(name.map(ident_name).unwrap_or(default_name));
        let database = self.state.database.oid;
        let txn = self.txn();
        let taken = Catalog::new(&*txn)
            .relation_oid(database, SCHEMA, &index_name)?
            .is_some_and(|oid| oid != a.table.primary.oid || !a.table.has_hidden_key());
        if taken
            || a.table.all_indexes().any(|i| {
                i.name == index_name && !(primary && a.table.has_hidden_key() && i.primary)
            })
        {
            return Err(SqlError::new(
                SqlState::DUPLICATE_TABLE,
                format!("relation \"{index_name}\" already exists"),
            ));
        }
        if primary {
            if !a.table.has_hidden_key() {
                return Err(SqlError::new(
                    SqlState::INVALID_TABLE_DEFINITION,
                    format!(
                        "multiple primary keys for table \"{}\" are not allowed",
                        a.table.name
                    ),
                ));
            }
            // The key replaces the hidden rowid column (always the last).
            a.dropped_sequence = a.table.rowid_sequence.take();
            let hidden = a.table.columns.len() - 1;
            a.table.columns.remove(hidden);
            a.sources.remove(hidden);
            for &c in &cols {
                a.table.columns[c].nullable = false;
            }
            a.table.primary = IndexDef {
                oid: a.table.primary.oid,
                name: index_name,
                columns: cols,
                unique: true,
                primary: true,
                constraint: true,
            };
        } else {
            let oid = Catalog::new(&mut *txn).next_oid()?;
            a.table.indexes.push(IndexDef {
                oid,
                name: index_name,
                columns: cols,
                unique: true,
                primary: false,
                constraint: true,
            });
        }
        a.rewrite = true;
        Ok(())
    }

    /// Writes the new definition and, if needed, rewrites every row and
    /// index entry under it.
    fn store_altered(&self, txn: &mut Transaction, old: &TableDef, a: &Altered) -> SqlResult<()> {
        let database = self.state.database.oid;
        let defaults: Vec<Option<Expr>> = if a.sources.contains(&Source::Default) {
            let view = CatalogView {
                state: &self.state,
                txn,
            };
            Planner::new(&view, Vec::new(), self.time_zone().clone()).bind_defaults(&a.table)?
        } else {
            Vec::new()
        };
        if a.rewrite {
            let control = self.control_for_ddl();
            let env = self.env(&[], &control);
            let rows = table_rows(txn, old)?;
            delete_prefix(txn, table_rows_prefix(old.oid))?;
            for index in &old.indexes {
                delete_prefix(txn, index_prefix(index.oid))?;
            }
            let mut seen: Vec<HashSet<Vec<u8>>> = vec![HashSet::new(); a.table.indexes.len() + 1];
            for old_row in rows {
                let mut row: Row = Vec::with_capacity(a.sources.len());
                for (i, source) in a.sources.iter().enumerate() {
                    row.push(match source {
                        Source::Old(j) => old_row[*j].clone(),
                        Source::Default => match defaults.get(i).and_then(|d| d.as_ref()) {
                            Some(e) => crate::cast::cast(
                                e.eval(&[], &env)?,
                                &a.table.columns[i].data_type,
                                env.tz,
                                false,
                            )?,
                            None => Value::Null,
                        },
                    });
                }
                check_row(&a.table, &row, &mut seen)?;
                let pk = primary_key_suffix(&a.table, &row);
                for index in &a.table.indexes {
                    txn.put(index_entry_key(index, &row, &pk), pk.clone());
                }
                txn.put(row_key(&a.table, &row), encode_row(&row));
            }
        }
        let mut cat = Catalog::new(&mut *txn);
        for index in old
            .indexes
            .iter()
            .filter(|i| a.dropped_indexes.contains(&i.name))
        {
            cat.delete_relation(database, SCHEMA, &index.name, index.oid)?;
        }
        if a.old_name != a.table.name {
            cat.delete_relation(database, SCHEMA, &a.old_name, a.table.oid)?;
        }
        if let Some(seq) = a.dropped_sequence {
            if let Some(crate::catalog::Relation::Sequence(s)) = cat.relation(seq)? {
                cat.delete_relation(database, SCHEMA, &s.name, seq)?;
            }
        }
        cat.put_table(&a.table)
    }
}

/// NOT NULL and uniqueness of a rewritten row (`seen[0]` is the primary key,
/// then one set per secondary index).
fn check_row(table: &TableDef, row: &Row, seen: &mut [HashSet<Vec<u8>>]) -> SqlResult<()> {
    for (c, v) in table.columns.iter().zip(row) {
        if v.is_null() && !c.nullable {
            return Err(SqlError::new(
                SqlState::NOT_NULL_VIOLATION,
                format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    c.name, table.name
                ),
            ));
        }
    }
    for (i, index) in table.all_indexes().enumerate() {
        if !index.unique || index.columns.iter().any(|&c| row[c].is_null()) {
            continue;
        }
        if !seen[i].insert(index_values_prefix(index, row)) {
            return Err(table.duplicate_in_new_index(index, row));
        }
    }
    Ok(())
}

/// Columns a user can name: all but the hidden rowid.
fn visible_len(table: &TableDef) -> usize {
    table.columns.len() - usize::from(table.has_hidden_key())
}

fn visible_column(table: &TableDef, name: &str) -> Option<usize> {
    table.column_index(name).filter(|&i| i < visible_len(table))
}

/// Adjusts index column positions after a column was inserted at (`by` = 1)
/// or removed from (`by` = -1) position `at`.
fn shift_indexes(table: &mut TableDef, at: usize, by: isize) {
    let shift = |c: &mut usize| {
        if *c >= at && (by > 0 || *c > at) {
            *c = c.wrapping_add_signed(by);
        }
    };
    table.primary.columns.iter_mut().for_each(shift);
    for index in &mut table.indexes {
        index.columns.iter_mut().for_each(shift);
    }
}

fn no_column(name: &str, table: &str) -> SqlError {
    SqlError::new(
        SqlState::UNDEFINED_COLUMN,
        format!("column \"{name}\" of relation \"{table}\" does not exist"),
    )
}
