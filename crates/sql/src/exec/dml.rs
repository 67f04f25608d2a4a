//! INSERT, UPDATE and DELETE: row locks, PostgreSQL's read-committed
//! re-check of the latest row version, constraint checks, index upkeep.

use std::collections::HashSet;

use duet_storage::{Isolation, Transaction};

use super::integrity::{check_constraints, check_parents, on_parent_change};
use super::query::{collect_rows, run_plan, Executor, VirtualRows};
use super::scan::{decode_table_row, TableScan};
use crate::cast::cast;
use crate::catalog::{IndexDef, TableDef};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::EvalEnv;
use crate::planner::{ConflictAction, DeletePlan, InsertPlan, InsertSource, Returning, UpdatePlan};
use crate::row::{
    encode_row, index_entry_key, index_values_prefix, primary_key_suffix, row_key, Row,
};
use crate::value::Value;

/// Rows affected and RETURNING rows.
#[derive(Default)]
pub struct DmlResult {
    pub count: u64,
    pub returning: Vec<Row>,
}

fn returning_row(
    returning: &Option<Returning>,
    row: &Row,
    env: &EvalEnv,
    out: &mut Vec<Row>,
) -> SqlResult<()> {
    if let Some(r) = returning {
        out.push(
            r.exprs
                .iter()
                .map(|e| e.eval(row, env))
                .collect::<SqlResult<_>>()?,
        );
    }
    Ok(())
}

/// Applies assignment casts and NOT NULL checks to a full row.
pub(super) fn check_row(table: &TableDef, row: Row, env: &EvalEnv) -> SqlResult<Row> {
    row.into_iter()
        .zip(&table.columns)
        .map(|(v, c)| {
            if v.is_null() && !c.nullable {
                return Err(SqlError::new(
                    SqlState::NOT_NULL_VIOLATION,
                    format!("null value in column \"{}\" of relation \"{}\" violates not-null constraint", c.name, table.name),
                ));
            }
            cast(v, &c.data_type, env.tz, false)
        })
        .collect()
}

fn unique_violation(table: &TableDef, index: &IndexDef, row: &Row, env: &EvalEnv) -> SqlError {
    SqlError::new(
        SqlState::UNIQUE_VIOLATION,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            index.name
        ),
    )
    .with_detail(format!(
        "Key {} already exists.",
        table.key_text(&index.columns, row, env.tz)
    ))
}

/// Checks unique secondary indexes for `row` (ignoring the row's own
/// entries) after locking the indexed values, so concurrent inserts of the
/// same value serialize.
async fn check_unique_indexes(
    txn: &mut Transaction,
    table: &TableDef,
    row: &Row,
    own_pk: &[u8],
    env: &EvalEnv<'_>,
) -> SqlResult<()> {
    for index in table.indexes.iter().filter(|i| i.unique) {
        if index.columns.iter().any(|&c| row[c].is_null()) {
            continue; // NULLs are distinct
        }
        let prefix = index_values_prefix(index, row);
        txn.lock(&prefix, env.control).await?;
        let mut scan = txn.scan_prefix_latest(&prefix);
        while let Some((_, pk)) = scan.next_entry()? {
            if pk != own_pk {
                return Err(unique_violation(table, index, row, env));
            }
        }
    }
    Ok(())
}

fn put_index_entries(txn: &mut Transaction, table: &TableDef, row: &Row, pk: &[u8]) {
    for index in &table.indexes {
        txn.put(index_entry_key(index, row, pk), pk.to_vec());
    }
}

pub(super) fn delete_index_entries(txn: &mut Transaction, table: &TableDef, row: &Row, pk: &[u8]) {
    for index in &table.indexes {
        txn.delete(index_entry_key(index, row, pk));
    }
}

/// Replaces row `old` (stored at `key`) by `new`: a changed primary key
/// moves the row; index entries follow.
pub(super) async fn write_updated_row(
    txn: &mut Transaction,
    table: &TableDef,
    key: &[u8],
    old: &Row,
    new: &Row,
    env: &EvalEnv<'_>,
) -> SqlResult<()> {
    let old_pk = primary_key_suffix(table, old);
    let new_pk = primary_key_suffix(table, new);
    let new_key = row_key(table, new);
    if new_key != key {
        txn.lock(&new_key, env.control).await?;
        if txn.get_latest(&new_key)?.is_some() {
            return Err(unique_violation(table, &table.primary, new, env));
        }
        txn.delete(key.to_vec());
    }
    // The old entries go first: a row keeping its unique values while its
    // primary key changes must not conflict with itself.
    delete_index_entries(txn, table, old, &old_pk);
    check_unique_indexes(txn, table, new, &new_pk, env).await?;
    put_index_entries(txn, table, new, &new_pk);
    txn.put(new_key, encode_row(new));
    Ok(())
}

/// The existing row (locked, latest version) a proposed row conflicts
/// with in `index`, or in any unique index when None.
async fn find_conflict(
    txn: &mut Transaction,
    table: &TableDef,
    index: Option<&IndexDef>,
    row: &Row,
    env: &EvalEnv<'_>,
) -> SqlResult<Option<(Vec<u8>, Row)>> {
    let candidates: Vec<&IndexDef> = match index {
        Some(i) => vec![i],
        None => table.all_indexes().filter(|i| i.unique).collect(),
    };
    for index in candidates {
        let key = if index.primary {
            row_key(table, row)
        } else {
            if index.columns.iter().any(|&c| row[c].is_null()) {
                continue; // NULLs never conflict
            }
            let prefix = index_values_prefix(index, row);
            txn.lock(&prefix, env.control).await?;
            let Some((_, pk)) = txn.scan_prefix_latest(&prefix).next_entry()? else {
                continue;
            };
            let mut key = crate::catalog::table_rows_prefix(table.oid);
            key.extend_from_slice(&pk);
            key
        };
        txn.lock(&key, env.control).await?;
        if let Some(bytes) = txn.get_latest(&key)? {
            return Ok(Some((key, decode_table_row(table, &bytes)?)));
        }
    }
    Ok(None)
}

pub async fn execute_insert(
    plan: &InsertPlan,
    txn: &mut Transaction,
    virtual_rows: &dyn VirtualRows,
    env: &EvalEnv<'_>,
) -> SqlResult<DmlResult> {
    // Source rows first: INSERT ... SELECT reads before it writes.
    let source: Vec<Vec<Option<Value>>> = match &plan.source {
        InsertSource::Values(rows) => rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|c| c.as_ref().map(|e| e.eval(&[], env)).transpose())
                    .collect()
            })
            .collect::<SqlResult<_>>()?,
        InsertSource::Query(qp) => {
            let exec = Executor::new(txn, virtual_rows);
            let exec_env = EvalEnv {
                subqueries: Some(&exec),
                ..env.clone()
            };
            let rows = collect_rows(run_plan(&qp.plan, &exec, &exec_env)?)?;
            rows.into_iter()
                .map(|r| r.into_iter().map(Some).collect())
                .collect()
        }
    };
    insert_rows(plan, txn, source, env).await
}

/// Inserts source rows (one value or None = DEFAULT per target column):
/// defaults, casts, constraint checks, row locks, index entries. COPY FROM
/// feeds its rows here too.
pub async fn insert_rows(
    plan: &InsertPlan,
    txn: &mut Transaction,
    source: Vec<Vec<Option<Value>>>,
    env: &EvalEnv<'_>,
) -> SqlResult<DmlResult> {
    let table = &plan.table;
    let own = plan.integrity.table(table.oid)?;
    let mut result = DmlResult::default();
    // Rows this statement wrote, for ON CONFLICT DO UPDATE's "second time" rule.
    let mut written: HashSet<Vec<u8>> = HashSet::new();
    for src in source {
        env.check_interrupt()?;
        let mut row: Row = vec![Value::Null; table.columns.len()];
        let mut given = vec![false; table.columns.len()];
        for (value, &col) in src.into_iter().zip(&plan.targets) {
            if let Some(v) = value {
                row[col] = v;
                given[col] = true;
            }
        }
        for (i, default) in plan.defaults.iter().enumerate() {
            if !given[i] {
                if let Some(d) = default {
                    row[i] = d.eval(&[], env)?;
                }
            }
        }
        if let Some(seq) = table.rowid_sequence {
            let last = row.len() - 1;
            row[last] = Value::Int(env.session.nextval(&format!("#{seq}"))?);
        }
        let row = check_row(table, row, env)?;
        if let Some(on_conflict) = &plan.on_conflict {
            if let Some((old_key, existing)) =
                find_conflict(txn, table, on_conflict.index.as_ref(), &row, env).await?
            {
                let ConflictAction::Update {
                    assignments,
                    filter,
                } = &on_conflict.action
                else {
                    continue;
                };
                if !written.insert(old_key.clone()) {
                    return Err(SqlError::new(
                        SqlState::CARDINALITY_VIOLATION,
                        "ON CONFLICT DO UPDATE command cannot affect row a second time",
                    )
                    .with_hint("Ensure that no rows proposed for insertion within the same command have duplicate constrained values."));
                }
                let both: Row = existing.iter().chain(row.iter()).cloned().collect();
                if let Some(f) = filter {
                    if !f.eval(&both, env)?.is_true() {
                        continue;
                    }
                }
                let mut new = existing.clone();
                for a in assignments {
                    new[a.column] = a.value.eval(&both, env)?;
                }
                let new = check_row(table, new, env)?;
                check_constraints(own, &new, env)?;
                check_parents(txn, &plan.integrity, table, &new, env).await?;
                write_updated_row(txn, table, &old_key, &existing, &new, env).await?;
                // A changed key is this statement's row too.
                written.insert(row_key(table, &new));
                on_parent_change(txn, &plan.integrity, table, &existing, Some(&new), env, 0)
                    .await?;
                returning_row(&plan.returning, &new, env, &mut result.returning)?;
                result.count += 1;
                continue;
            }
        }
        check_constraints(own, &row, env)?;
        check_parents(txn, &plan.integrity, table, &row, env).await?;
        let key = row_key(table, &row);
        if plan.on_conflict.is_some() {
            written.insert(key.clone());
        }
        // A hidden row id was just drawn from its sequence, which hands a
        // value out once: no other transaction can write that key, so
        // there is nothing to lock or look up (a bulk COPY spent a fifth
        // of its time there).
        if table.rowid_sequence.is_none() {
            txn.lock(&key, env.control).await?;
            if txn.get_latest(&key)?.is_some() {
                return Err(unique_violation(table, &table.primary, &row, env));
            }
        }
        let pk = primary_key_suffix(table, &row);
        check_unique_indexes(txn, table, &row, &pk, env).await?;
        txn.put(key, encode_row(&row));
        put_index_entries(txn, table, &row, &pk);
        returning_row(&plan.returning, &row, env, &mut result.returning)?;
        result.count += 1;
    }
    Ok(result)
}

/// What an UPDATE/DELETE may act on, before any lock is taken.
enum Candidates {
    /// Read committed, one row by its whole primary key: it is locked and
    /// read at its latest version straight away (reading it as of the
    /// statement's snapshot first would only be repeated after the lock,
    /// as PostgreSQL re-reads a row a concurrent commit changed).
    Point(Vec<u8>),
    /// (row key, row as of the snapshot) that match the filter.
    Rows(Vec<(Vec<u8>, Row)>),
}

fn candidates(
    txn: &Transaction,
    table: &TableDef,
    index: Option<&IndexDef>,
    range: &crate::plan::KeyRange,
    filter: Option<&crate::expr::Expr>,
    virtual_rows: &dyn VirtualRows,
    env: &EvalEnv,
) -> SqlResult<Candidates> {
    let exec = Executor::new(txn, virtual_rows);
    let env = EvalEnv {
        subqueries: Some(&exec),
        ..env.clone()
    };
    let mut scan = TableScan::new(txn, table, index, range, &env)?;
    if txn.isolation() == Isolation::ReadCommitted {
        if let Some(key) = scan.take_point() {
            return Ok(Candidates::Point(key));
        }
    }
    let mut out = Vec::new();
    while let Some((k, row)) = scan.next_row()? {
        if filter
            .map(|f| f.eval(&row, &env))
            .transpose()?
            .is_none_or(|v| v.is_true())
        {
            out.push((k, row));
        }
    }
    Ok(Candidates::Rows(out))
}

/// Locks a candidate row and returns the version to act on: the latest
/// committed one, re-checked against the filter (read committed), or a
/// serialization failure if it changed (repeatable read / serializable).
/// A row that is gone or no longer matches is not left locked.
async fn lock_latest(
    txn: &mut Transaction,
    table: &TableDef,
    key: &[u8],
    filter: Option<&crate::expr::Expr>,
    virtual_rows: &dyn VirtualRows,
    env: &EvalEnv<'_>,
) -> SqlResult<Option<Row>> {
    let taken = txn.lock(key, env.control).await?;
    if txn.isolation() != Isolation::ReadCommitted && txn.changed_since_snapshot(key)? {
        return Err(duet_storage::StorageError::SerializationFailure.into());
    }
    let row = latest_matching(txn, table, key, filter, virtual_rows, env)?;
    if row.is_none() && taken {
        txn.unlock_last(key);
    }
    Ok(row)
}

/// The latest version of a row, if it still matches the filter (whose
/// subqueries read the statement's snapshot).
fn latest_matching(
    txn: &Transaction,
    table: &TableDef,
    key: &[u8],
    filter: Option<&crate::expr::Expr>,
    virtual_rows: &dyn VirtualRows,
    env: &EvalEnv<'_>,
) -> SqlResult<Option<Row>> {
    let Some(bytes) = txn.get_latest(key)? else {
        return Ok(None);
    };
    let row = decode_table_row(table, &bytes)?;
    if let Some(f) = filter {
        let exec = Executor::new(txn, virtual_rows);
        let env = EvalEnv {
            subqueries: Some(&exec),
            ..env.clone()
        };
        if !f.eval(&row, &env)?.is_true() {
            return Ok(None);
        }
    }
    Ok(Some(row))
}

/// The rows an UPDATE or DELETE acts on, each locked and at its latest
/// committed version (re-checked against the filter).
#[allow(clippy::too_many_arguments)]
pub async fn locked_targets(
    txn: &mut Transaction,
    table: &TableDef,
    index: Option<&IndexDef>,
    range: &crate::plan::KeyRange,
    filter: Option<&crate::expr::Expr>,
    virtual_rows: &dyn VirtualRows,
    env: &EvalEnv<'_>,
) -> SqlResult<Vec<(Vec<u8>, Row)>> {
    let rows = match candidates(txn, table, index, range, filter, virtual_rows, env)? {
        Candidates::Point(key) => {
            let row = lock_latest(txn, table, &key, filter, virtual_rows, env).await?;
            return Ok(row.map(|row| (key, row)).into_iter().collect());
        }
        Candidates::Rows(rows) => rows,
    };
    let mut out = Vec::with_capacity(rows.len());
    for (key, _) in rows {
        env.check_interrupt()?;
        if let Some(latest) = lock_latest(txn, table, &key, filter, virtual_rows, env).await? {
            out.push((key, latest));
        }
    }
    Ok(out)
}

pub async fn execute_update(
    plan: &UpdatePlan,
    txn: &mut Transaction,
    virtual_rows: &dyn VirtualRows,
    env: &EvalEnv<'_>,
) -> SqlResult<DmlResult> {
    let table = &plan.table;
    let rows = locked_targets(
        txn,
        table,
        plan.index.as_ref(),
        &plan.range,
        plan.filter.as_ref(),
        virtual_rows,
        env,
    )
    .await?;
    let own = plan.integrity.table(table.oid)?;
    let mut result = DmlResult::default();
    // Foreign-key actions run after every row is written, as
    // PostgreSQL's end-of-statement checks do: a cascade must not change a
    // row this loop has yet to write, and NO ACTION looks at the result.
    let mut changed: Vec<(Row, Row)> = Vec::new();
    for (key, old) in rows {
        let mut new = old.clone();
        for a in &plan.assignments {
            new[a.column] = a.value.eval(&old, env)?;
        }
        let new = check_row(table, new, env)?;
        check_constraints(own, &new, env)?;
        if table
            .foreign_keys
            .iter()
            .any(|fk| fk.columns.iter().any(|&c| !old[c].sql_eq(&new[c])))
        {
            check_parents(txn, &plan.integrity, table, &new, env).await?;
        }
        write_updated_row(txn, table, &key, &old, &new, env).await?;
        if !table.referenced_by.is_empty() {
            changed.push((old, new.clone()));
        }
        returning_row(&plan.returning, &new, env, &mut result.returning)?;
        result.count += 1;
    }
    for (old, new) in &changed {
        on_parent_change(txn, &plan.integrity, table, old, Some(new), env, 0).await?;
    }
    Ok(result)
}

pub async fn execute_delete(
    plan: &DeletePlan,
    txn: &mut Transaction,
    virtual_rows: &dyn VirtualRows,
    env: &EvalEnv<'_>,
) -> SqlResult<DmlResult> {
    let table = &plan.table;
    let rows = locked_targets(
        txn,
        table,
        plan.index.as_ref(),
        &plan.range,
        plan.filter.as_ref(),
        virtual_rows,
        env,
    )
    .await?;
    let mut result = DmlResult::default();
    let mut deleted: Vec<Row> = Vec::new();
    for (key, old) in rows {
        let pk = primary_key_suffix(table, &old);
        delete_index_entries(txn, table, &old, &pk);
        txn.delete(key);
        returning_row(&plan.returning, &old, env, &mut result.returning)?;
        result.count += 1;
        if !table.referenced_by.is_empty() {
            deleted.push(old);
        }
    }
    // As for UPDATE: the actions see the statement's result.
    for old in &deleted {
        on_parent_change(txn, &plan.integrity, table, old, None, env, 0).await?;
    }
    Ok(result)
}
