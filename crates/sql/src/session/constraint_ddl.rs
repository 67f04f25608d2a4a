//! CHECK and FOREIGN KEY constraints: added by CREATE TABLE or ALTER TABLE
//! ADD CONSTRAINT (existing rows are checked), dropped by ALTER TABLE DROP
//! CONSTRAINT, and what DROP TABLE and TRUNCATE must do about them.

use std::ops::Bound;

use duet_storage::keycode::prefix_end;
use duet_storage::Transaction;
use sqlparser::ast;

use super::catalog_view::CatalogView;
use super::ddl::{truncate_name, SCHEMA};
use super::execute::Session;
use crate::catalog::{table_rows_prefix, Catalog, CheckDef, FkAction, ForeignKeyDef, TableDef};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::Expr;
use crate::planner::{ident_name, split_name, Planner};
use crate::row::Row;
use crate::types::DataType;
use crate::value::Value;

/// A CHECK or FOREIGN KEY waiting to be added once its table exists.
#[derive(Debug, Clone)]
pub(super) enum NewConstraint {
    /// `column`: the column a column-level constraint was written on.
    Check {
        check: ast::CheckConstraint,
        column: Option<usize>,
    },
    ForeignKey {
        fk: ast::ForeignKeyConstraint,
        column: Option<usize>,
    },
}

impl Session {
    pub(super) async fn add_constraint_to(
        &mut self,
        table_oid: u32,
        c: NewConstraint,
    ) -> SqlResult<()> {
        match c {
            NewConstraint::Check { check, column } => self.add_check(table_oid, &check, column),
            NewConstraint::ForeignKey { fk, column } => {
                self.add_foreign_key(table_oid, &fk, column).await
            }
        }
    }

    fn add_check(
        &mut self,
        table_oid: u32,
        check: &ast::CheckConstraint,
        column: Option<usize>,
    ) -> SqlResult<()> {
        let mut table = self.table_for_ddl(table_oid)?;
        let bound = {
            let view = CatalogView {
                state: &self.state,
                txn: self.current_txn()?,
            };
            Planner::new(&view, Vec::new(), self.time_zone().clone())
                .bind_check(&table, &check.expr)?
        };
        let name = match &check.name {
            Some(n) => ident_name(n),
            None => {
                let column = column.or_else(|| single_column(&bound));
                let base = match column {
                    Some(c) => format!("{}_{}_check", table.name, table.columns[c].name),
                    None => format!("{}_check", table.name),
                };
                unused_name(&table, base)
            }
        };
        if constraint_exists(&table, &name) {
            return Err(duplicate_constraint(&name, &table.name));
        }
        // Existing rows must pass.
        let control = self.control_for_ddl();
        let env = self.env(&[], &control);
        for row in table_rows(self.current_txn()?, &table)? {
            if let Value::Bool(false) = bound.eval(&row, &env)? {
                return Err(SqlError::new(
                    SqlState::CHECK_VIOLATION,
                    format!(
                        "check constraint \"{name}\" of relation \"{}\" is violated by some row",
                        table.name
                    ),
                ));
            }
        }
        let txn = self.txn();
        let oid = Catalog::new(&mut *txn).next_oid()?;
        table.checks.push(CheckDef {
            oid,
            name,
            expr: check.expr.to_string(),
        });
        Catalog::new(&mut *txn).put_table(&table)
    }

    async fn add_foreign_key(
        &mut self,
        table_oid: u32,
        fk: &ast::ForeignKeyConstraint,
        column: Option<usize>,
    ) -> SqlResult<()> {
        let mut table = self.table_for_ddl(table_oid)?;
        let columns: Vec<usize> = match column {
            Some(c) => vec![c],
            None => fk
                .columns
                .iter()
                .map(|c| column_position(&table, &ident_name(c), "referencing"))
                .collect::<SqlResult<_>>()?,
        };
        let parent_name = split_name(&fk.foreign_table)?.1;
        let parent = if parent_name == table.name {
            table.clone()
        } else {
            Catalog::new(self.current_txn()?)
                .table(self.state.database.oid, SCHEMA, &parent_name)?
                .ok_or_else(|| SqlError::undefined_table(&parent_name))?
        };
        let parent_columns: Vec<usize> = if fk.referred_columns.is_empty() {
            if parent.has_hidden_key() {
                return Err(SqlError::new(
                    SqlState::INVALID_FOREIGN_KEY,
                    format!(
                        "there is no primary key for referenced table \"{}\"",
                        parent.name
                    ),
                ));
            }
            parent.primary.columns.clone()
        } else {
            fk.referred_columns
                .iter()
                .map(|c| column_position(&parent, &ident_name(c), "referenced"))
                .collect::<SqlResult<_>>()?
        };
        if columns.len() != parent_columns.len() {
            return Err(SqlError::new(
                SqlState::INVALID_FOREIGN_KEY,
                "number of referencing and referenced columns for foreign key disagree",
            ));
        }
        let names: Vec<&str> = columns
            .iter()
            .map(|&c| table.columns[c].name.as_str())
            .collect();
        let name = match &fk.name {
            Some(n) => ident_name(n),
            None => unused_name(&table, format!("{}_{}_fkey", table.name, names.join("_"))),
        };
        if constraint_exists(&table, &name) {
            return Err(duplicate_constraint(&name, &table.name));
        }
        for (&c, &p) in columns.iter().zip(&parent_columns) {
            let (ct, pt) = (&table.columns[c].data_type, &parent.columns[p].data_type);
            if !comparable(ct, pt) {
                return Err(SqlError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!("foreign key constraint \"{name}\" cannot be implemented"),
                )
                .with_detail(format!(
                    "Key columns \"{}\" and \"{}\" are of incompatible types: {} and {}.",
                    table.columns[c].name,
                    parent.columns[p].name,
                    ct.sql_name(),
                    pt.sql_name()
                )));
            }
        }
        let def = ForeignKeyDef {
            oid: Catalog::new(&mut *self.txn()).next_oid()?,
            name,
            columns,
            parent: parent.oid,
            parent_columns,
            on_delete: action(fk.on_delete),
            on_update: action(fk.on_update),
        };
        if crate::exec::referenced_index(&parent, &def).is_err() {
            return Err(SqlError::new(
                SqlState::INVALID_FOREIGN_KEY,
                format!(
                    "there is no unique constraint matching given keys for referenced table \"{}\"",
                    parent.name
                ),
            ));
        }
        self.check_existing_references(&table, &parent, &def)
            .await?;
        table.foreign_keys.push(def);
        if parent.oid == table.oid {
            if !table.referenced_by.contains(&table.oid) {
                table.referenced_by.push(table.oid);
            }
            return Catalog::new(&mut *self.txn()).put_table(&table);
        }
        let mut parent = parent;
        if !parent.referenced_by.contains(&table.oid) {
            parent.referenced_by.push(table.oid);
        }
        let mut cat = Catalog::new(&mut *self.txn());
        cat.put_table(&table)?;
        cat.put_table(&parent)
    }

    /// Every existing row of `table` must find its referenced row.
    async fn check_existing_references(
        &mut self,
        table: &TableDef,
        parent: &TableDef,
        fk: &ForeignKeyDef,
    ) -> SqlResult<()> {
        let rows = table_rows(self.current_txn()?, table)?;
        let control = self.control_for_ddl();
        let mut txn = self.take_txn()?;
        let result = async {
            let env = self.env(&[], &control);
            for row in rows {
                if fk.columns.iter().any(|&c| row[c].is_null()) {
                    continue;
                }
                if crate::exec::find_parent(&mut txn, parent, fk, &row, &env)
                    .await?
                    .is_none()
                {
                    return Err(crate::exec::missing_reference(
                        table, fk, &row, parent, &env,
                    ));
                }
            }
            Ok(())
        }
        .await;
        self.txn = Some(txn);
        result
    }

    fn table_for_ddl(&self, oid: u32) -> SqlResult<TableDef> {
        Catalog::new(self.current_txn()?)
            .table_by_oid(oid)?
            .ok_or_else(|| SqlError::internal(format!("table {oid} vanished during DDL")))
    }
}

/// Removes a CHECK or FOREIGN KEY by name from `table` (the caller stores
/// it). Returns false if the table has no such constraint.
pub(super) fn drop_named_constraint(
    txn: &mut Transaction,
    table: &mut TableDef,
    name: &str,
) -> SqlResult<bool> {
    if let Some(i) = table.checks.iter().position(|c| c.name == name) {
        table.checks.remove(i);
        return Ok(true);
    }
    let Some(i) = table.foreign_keys.iter().position(|f| f.name == name) else {
        return Ok(false);
    };
    let fk = table.foreign_keys.remove(i);
    let still = table.foreign_keys.iter().any(|f| f.parent == fk.parent);
    if fk.parent == table.oid {
        if !still {
            table.referenced_by.retain(|&o| o != table.oid);
        }
    } else if !still {
        forget_reference(txn, fk.parent, table.oid)?;
    }
    Ok(true)
}

/// `parent` is no longer referenced by `child`.
fn forget_reference(txn: &mut Transaction, parent: u32, child: u32) -> SqlResult<()> {
    let mut cat = Catalog::new(&mut *txn);
    if let Some(mut p) = cat.table_by_oid(parent)? {
        p.referenced_by.retain(|&o| o != child);
        cat.put_table(&p)?;
    }
    Ok(())
}

/// Before DROP TABLE: foreign keys of other tables into it go with
/// CASCADE (with a notice), else the DROP fails; its own foreign keys stop
/// counting as references to their tables.
pub(super) fn detach_foreign_keys(
    txn: &mut Transaction,
    table: &TableDef,
    cascade: bool,
    notices: &mut Vec<String>,
) -> SqlResult<()> {
    for &child_oid in table.referenced_by.iter().filter(|&&o| o != table.oid) {
        let Some(mut child) = Catalog::new(&*txn).table_by_oid(child_oid)? else {
            continue;
        };
        let names: Vec<String> = child
            .foreign_keys
            .iter()
            .filter(|f| f.parent == table.oid)
            .map(|f| f.name.clone())
            .collect();
        let Some(first) = names.first() else {
            continue;
        };
        if !cascade {
            return Err(SqlError::new(
                SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "cannot drop table {} because other objects depend on it",
                    table.name
                ),
            )
            .with_detail(format!(
                "constraint {first} on table {} depends on table {}",
                child.name, table.name
            ))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
        for n in &names {
            notices.push(format!(
                "drop cascades to constraint {n} on table {}",
                child.name
            ));
        }
        child.foreign_keys.retain(|f| f.parent != table.oid);
        Catalog::new(&mut *txn).put_table(&child)?;
    }
    let parents: Vec<u32> = table
        .foreign_keys
        .iter()
        .map(|f| f.parent)
        .filter(|&p| p != table.oid)
        .collect();
    for parent in parents {
        forget_reference(txn, parent, table.oid)?;
    }
    Ok(())
}

/// TRUNCATE of tables others reference: those others must be truncated
/// too, named or (with CASCADE) added. Returns the OIDs to add.
pub(super) fn truncate_closure(
    txn: &Transaction,
    tables: &[TableDef],
    cascade: bool,
    notices: &mut Vec<String>,
) -> SqlResult<Vec<TableDef>> {
    let mut added: Vec<TableDef> = Vec::new();
    let mut i = 0;
    let mut all: Vec<TableDef> = tables.to_vec();
    while i < all.len() {
        let t = all[i].clone();
        i += 1;
        for &child in &t.referenced_by {
            if all.iter().any(|x| x.oid == child) {
                continue;
            }
            let Some(c) = Catalog::new(txn).table_by_oid(child)? else {
                continue;
            };
            if !cascade {
                return Err(SqlError::unsupported(
                    "cannot truncate a table referenced in a foreign key constraint",
                )
                .with_detail(format!("Table \"{}\" references \"{}\".", c.name, t.name))
                .with_hint(format!(
                    "Truncate table \"{}\" at the same time, or use TRUNCATE ... CASCADE.",
                    c.name
                )));
            }
            notices.push(format!("truncate cascades to table \"{}\"", c.name));
            all.push(c.clone());
            added.push(c);
        }
    }
    Ok(added)
}

fn action(a: Option<ast::ReferentialAction>) -> FkAction {
    match a {
        None | Some(ast::ReferentialAction::NoAction) => FkAction::NoAction,
        Some(ast::ReferentialAction::Restrict) => FkAction::Restrict,
        Some(ast::ReferentialAction::Cascade) => FkAction::Cascade,
        Some(ast::ReferentialAction::SetNull) => FkAction::SetNull,
        Some(ast::ReferentialAction::SetDefault) => FkAction::SetDefault,
    }
}

/// Whether values of the two types compare as key values.
fn comparable(a: &DataType, b: &DataType) -> bool {
    use DataType as T;
    let family = |t: &DataType| match t {
        T::Int2 | T::Int4 | T::Int8 | T::Numeric(_) | T::Float4 | T::Float8 | T::Oid => 0,
        T::Text | T::Varchar(_) | T::Char(_) | T::Name => 1,
        _ => 2,
    };
    a == b || (family(a) == family(b) && family(a) < 2)
}

fn column_position(table: &TableDef, name: &str, which: &str) -> SqlResult<usize> {
    let visible = table.columns.len() - usize::from(table.has_hidden_key());
    table
        .column_index(name)
        .filter(|&i| i < visible)
        .ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_COLUMN,
                format!("column \"{name}\" {which} in foreign key constraint does not exist"),
            )
        })
}

/// The only column an expression reads, if it reads exactly one.
fn single_column(e: &Expr) -> Option<usize> {
    let mut seen: Vec<usize> = Vec::new();
    e.walk(&mut |x| {
        if let Expr::Column(i, _) = x {
            if !seen.contains(i) {
                seen.push(*i);
            }
        }
    });
    match seen.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

fn constraint_exists(table: &TableDef, name: &str) -> bool {
    table.checks.iter().any(|c| c.name == name)
        || table.foreign_keys.iter().any(|f| f.name == name)
        || table.all_indexes().any(|i| i.constraint && i.name == name)
}

/// `base`, or `base1`, `base2`, ... if the table already has it.
fn unused_name(table: &TableDef, base: String) -> String {
    let mut name = truncate_name(base.clone());
    let mut n = 1;
    while constraint_exists(table, &name) {
        name = truncate_name(format!("{base}{n}"));
        n += 1;
    }
    name
}

fn duplicate_constraint(name: &str, table: &str) -> SqlError {
    SqlError::new(
        SqlState::DUPLICATE_OBJECT,
        format!("constraint \"{name}\" for relation \"{table}\" already exists"),
    )
}

pub(super) fn table_rows(txn: &Transaction, table: &TableDef) -> SqlResult<Vec<Row>> {
    let prefix = table_rows_prefix(table.oid);
    let end = prefix_end(&prefix)
        .map(Bound::Excluded)
        .unwrap_or(Bound::Unbounded);
    let mut scan = txn.scan(Bound::Included(prefix), end);
    let mut rows = Vec::new();
    while let Some((_, v)) = scan.next_entry()? {
        rows.push(crate::exec::decode_row_for(table, &v)?);
    }
    Ok(rows)
}
