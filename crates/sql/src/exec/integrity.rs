//! CHECK constraints and foreign keys at write time.
//!
//! A referencing row locks the row it references (so that row cannot be
//! deleted or re-keyed before the referencing transaction ends); deleting
//! or re-keying a referenced row finds the rows that reference it (through
//! an index whose leading columns are the foreign key, else by a scan of
//! the referencing table, as PostgreSQL does) and applies the key's action.

use std::future::Future;
use std::pin::Pin;

use duet_storage::Transaction;

use super::dml::{check_row, delete_index_entries, write_updated_row};
use super::scan::decode_table_row;
use crate::cast::cast;
use crate::catalog::{table_rows_prefix, FkAction, ForeignKeyDef, IndexDef, TableDef};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::EvalEnv;
use crate::planner::{Integrity, IntegrityTable};
use crate::row::{encode_key_value, index_values_prefix, primary_key_suffix, row_key, Row};
use crate::value::Value;

type Pending<'a> = Pin<Box<dyn Future<Output = SqlResult<()>> + Send + 'a>>;

/// Cascades deeper than this are taken for a cycle gone wrong.
const MAX_CASCADE_DEPTH: usize = 1000;

/// "Failing row contains (1, null, x)." as PostgreSQL words it.
fn failing_row(table: &TableDef, row: &Row, env: &EvalEnv) -> String {
    let visible = table.columns.len() - usize::from(table.has_hidden_key());
    let values: Vec<String> = table.columns[..visible]
        .iter()
        .zip(row)
        .map(|(c, v)| {
            v.to_text(&c.data_type, env.tz)
                .unwrap_or_else(|| "null".into())
        })
        .collect();
    format!("Failing row contains ({}).", values.join(", "))
}

/// The table's CHECK constraints hold for `row` (NULL counts as true).
pub(super) fn check_constraints(it: &IntegrityTable, row: &Row, env: &EvalEnv) -> SqlResult<()> {
    for (name, check) in &it.checks {
        if let Value::Bool(false) = check.eval(row, env)? {
            return Err(SqlError::new(
                SqlState::CHECK_VIOLATION,
                format!(
                    "new row for relation \"{}\" violates check constraint \"{name}\"",
                    it.table.name
                ),
            )
            .with_detail(failing_row(&it.table, row, env)));
        }
    }
    Ok(())
}

/// 23503: a new or changed row references a row that is not there.
pub(crate) fn missing_reference(
    table: &TableDef,
    fk: &ForeignKeyDef,
    row: &Row,
    parent: &TableDef,
    env: &EvalEnv,
) -> SqlError {
    SqlError::new(
        SqlState::FOREIGN_KEY_VIOLATION,
        format!(
            "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
            table.name, fk.name
        ),
    )
    .with_detail(format!(
        "Key {} is not present in table \"{}\".",
        table.key_text(&fk.columns, row, env.tz),
        parent.name
    ))
}

/// Every foreign key of `table` finds its referenced row (which is locked).
pub(super) async fn check_parents(
    txn: &mut Transaction,
    integrity: &Integrity,
    table: &TableDef,
    row: &Row,
    env: &EvalEnv<'_>,
) -> SqlResult<()> {
    for fk in &table.foreign_keys {
        if fk.columns.iter().any(|&c| row[c].is_null()) {
            continue; // MATCH SIMPLE: a NULL references nothing
        }
        let parent = &integrity.table(fk.parent)?.table;
        if find_parent(txn, parent, fk, row, env).await?.is_none() {
            return Err(missing_reference(table, fk, row, parent, env));
        }
    }
    Ok(())
}

/// The unique index of `parent` a foreign key references.
pub(crate) fn referenced_index<'t>(
    parent: &'t TableDef,
    fk: &ForeignKeyDef,
) -> SqlResult<&'t IndexDef> {
    parent
        .all_indexes()
        .find(|i| {
            let mut a = i.columns.clone();
            let mut b = fk.parent_columns.clone();
            a.sort_unstable();
            b.sort_unstable();
            i.unique && a == b
        })
        .ok_or_else(|| {
            SqlError::internal(format!("no unique index behind foreign key {}", fk.name))
        })
}

/// The key of the row of `parent` that `child_row` references, locked; None
/// if there is none.
pub(crate) async fn find_parent(
    txn: &mut Transaction,
    parent: &TableDef,
    fk: &ForeignKeyDef,
    child_row: &Row,
    env: &EvalEnv<'_>,
) -> SqlResult<Option<Vec<u8>>> {
    let mut probe = vec![Value::Null; parent.columns.len()];
    for (&c, &p) in fk.columns.iter().zip(&fk.parent_columns) {
        probe[p] = cast(
            child_row[c].clone(),
            &parent.columns[p].data_type,
            env.tz,
            false,
        )?;
    }
    let index = referenced_index(parent, fk)?;
    let key = if index.primary {
        row_key(parent, &probe)
    } else {
        let prefix = index_values_prefix(index, &probe);
        let pk = txn.scan_prefix_latest(&prefix).next_entry()?;
        let Some((_, pk)) = pk else {
            return Ok(None);
        };
        let mut key = table_rows_prefix(parent.oid);
        key.extend_from_slice(&pk);
        key
    };
    txn.lock(&key, env.control).await?;
    let Some(bytes) = txn.get_latest(&key)? else {
        return Ok(None);
    };
    // Found through a unique index: the row may have changed its key
    // between the index read and the lock.
    if !index.primary {
        let row = decode_table_row(parent, &bytes)?;
        if fk.parent_columns.iter().any(|&p| !row[p].sql_eq(&probe[p])) {
            return Ok(None);
        }
    }
    Ok(Some(key))
}

/// Rows of `child` whose foreign key `fk` holds `values` (the referenced
/// row's key, in `fk.parent_columns` order), at their latest versions.
fn referencing_rows(
    txn: &Transaction,
    child: &TableDef,
    fk: &ForeignKeyDef,
    values: &[Value],
    env: &EvalEnv,
) -> SqlResult<Vec<(Vec<u8>, Row)>> {
    // The key in the child's column types; a value those types cannot
    // hold exactly (5000000000 for an integer column, 1.5 for an
    // integer) is held by no child row.
    let mut wanted: Vec<Value> = Vec::with_capacity(values.len());
    for (&c, v) in fk.columns.iter().zip(values) {
        match cast(v.clone(), &child.columns[c].data_type, env.tz, false) {
            Ok(w) if w.sql_eq(v) => wanted.push(w),
            _ => return Ok(Vec::new()),
        }
    }
    let matches = |row: &Row| {
        fk.columns
            .iter()
            .zip(&wanted)
            .all(|(&c, v)| row[c].sql_eq(v))
    };
    let mut out = Vec::new();
    // An index led by the key's columns narrows the search.
    if let Some(index) = child.indexes.iter().find(|i| {
        i.columns.len() >= fk.columns.len() && i.columns[..fk.columns.len()] == fk.columns[..]
    }) {
        let mut prefix = crate::catalog::index_prefix(index.oid);
        for v in &wanted {
            encode_key_value(&mut prefix, v);
        }
        let mut scan = txn.scan_prefix_latest(&prefix);
        let mut keys = Vec::new();
        while let Some((_, pk)) = scan.next_entry()? {
            let mut key = table_rows_prefix(child.oid);
            key.extend_from_slice(&pk);
            keys.push(key);
        }
        for key in keys {
            if let Some(bytes) = txn.get_latest(&key)? {
                let row = decode_table_row(child, &bytes)?;
                if matches(&row) {
                    out.push((key, row));
                }
            }
        }
        return Ok(out);
    }
    let prefix = table_rows_prefix(child.oid);
    let mut scan = txn.scan_prefix_latest(&prefix);
    while let Some((key, bytes)) = scan.next_entry()? {
        env.check_interrupt()?;
        let row = decode_table_row(child, &bytes)?;
        if matches(&row) {
            out.push((key, row));
        }
    }
    Ok(out)
}

fn still_referenced(
    parent: &TableDef,
    fk: &ForeignKeyDef,
    child: &TableDef,
    old: &Row,
    env: &EvalEnv,
) -> SqlError {
    SqlError::new(
        SqlState::FOREIGN_KEY_VIOLATION,
        format!(
            "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
            parent.name, fk.name, child.name
        ),
    )
    .with_detail(format!(
        "Key {} is still referenced from table \"{}\".",
        parent.key_text(&fk.parent_columns, old, env.tz),
        child.name
    ))
}

/// What happens to the rows referencing `old` (a row of `table`) when it
/// is deleted (`new` None) or its referenced key changes to `new`'s.
pub(super) fn on_parent_change<'a>(
    txn: &'a mut Transaction,
    integrity: &'a Integrity,
    table: &'a TableDef,
    old: &'a Row,
    new: Option<&'a Row>,
    env: &'a EvalEnv<'a>,
    depth: usize,
) -> Pending<'a> {
    Box::pin(async move {
        if table.referenced_by.is_empty() {
            return Ok(());
        }
        if depth > MAX_CASCADE_DEPTH {
            return Err(SqlError::new(
                SqlState("54001"),
                "foreign key cascade is too deep",
            ));
        }
        for &child_oid in &table.referenced_by {
            let child = integrity.table(child_oid)?;
            for fk in child
                .table
                .foreign_keys
                .iter()
                .filter(|fk| fk.parent == table.oid)
            {
                let values: Vec<Value> =
                    fk.parent_columns.iter().map(|&c| old[c].clone()).collect();
                if values.iter().any(Value::is_null) {
                    continue;
                }
                if let Some(new) = new {
                    if fk.parent_columns.iter().all(|&c| old[c].sql_eq(&new[c])) {
                        continue; // the referenced key did not change
                    }
                }
                let rows = referencing_rows(txn, &child.table, fk, &values, env)?;
                if rows.is_empty() {
                    continue;
                }
                let action = if new.is_some() {
                    fk.on_update
                } else {
                    fk.on_delete
                };
                for (key, _) in rows {
                    txn.lock(&key, env.control).await?;
                    let Some(bytes) = txn.get_latest(&key)? else {
                        continue; // already gone (a cascade got here first)
                    };
                    let row = decode_table_row(&child.table, &bytes)?;
                    act_on_child(
                        txn, integrity, child, fk, action, &key, row, table, old, new, env, depth,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
async fn act_on_child(
    txn: &mut Transaction,
    integrity: &Integrity,
    child: &IntegrityTable,
    fk: &ForeignKeyDef,
    action: FkAction,
    key: &[u8],
    row: Row,
    parent: &TableDef,
    old: &Row,
    new: Option<&Row>,
    env: &EvalEnv<'_>,
    depth: usize,
) -> SqlResult<()> {
    let table = &*child.table;
    let updated = match (action, new) {
        (FkAction::NoAction | FkAction::Restrict, _) => {
            return Err(still_referenced(parent, fk, table, old, env))
        }
        (FkAction::Cascade, None) => {
            let pk = primary_key_suffix(table, &row);
            delete_index_entries(txn, table, &row, &pk);
            txn.delete(key.to_vec());
            return on_parent_change(txn, integrity, table, &row, None, env, depth + 1).await;
        }
        (FkAction::Cascade, Some(new)) => {
            let mut updated = row.clone();
            for (&c, &p) in fk.columns.iter().zip(&fk.parent_columns) {
                updated[c] = new[p].clone();
            }
            updated
        }
        (FkAction::SetNull, _) => {
            let mut updated = row.clone();
            for &c in &fk.columns {
                updated[c] = Value::Null;
            }
            updated
        }
        (FkAction::SetDefault, _) => {
            let mut updated = row.clone();
            for &c in &fk.columns {
                updated[c] = match child.defaults.get(c).and_then(|d| d.as_ref()) {
                    Some(d) => d.eval(&[], env)?,
                    None => Value::Null,
                };
            }
            updated
        }
    };
    let updated = check_row(table, updated, env)?;
    check_constraints(child, &updated, env)?;
    if action == FkAction::SetDefault {
        check_parents(txn, integrity, table, &updated, env).await?;
    }
    write_updated_row(txn, table, key, &row, &updated, env).await?;
    on_parent_change(txn, integrity, table, &row, Some(&updated), env, depth + 1).await
}
