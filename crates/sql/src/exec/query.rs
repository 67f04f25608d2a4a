//! Running read plans as pull-based row iterators.

use std::collections::{HashMap, HashSet};

use duet_storage::Transaction;

use super::aggregate::aggregate;
use super::scan::TableScan;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{EvalEnv, SubqueryRunner};
use crate::plan::{JoinKind, Plan, SetOpKind, SortKey};
use crate::row::Row;
use crate::value::Value;

pub type RowIter<'a> = Box<dyn Iterator<Item = SqlResult<Row>> + 'a>;

/// Rows of the catalog views (pg_catalog, information_schema).
pub trait VirtualRows: Send + Sync {
    fn rows(&self, name: &str) -> SqlResult<Vec<Row>>;
}

/// Runs plans against one transaction's view of the data.
pub struct Executor<'a> {
    pub txn: &'a Transaction,
    pub virtual_rows: &'a dyn VirtualRows,
    /// The current round's rows of each running recursive CTE.
    pub work_tables: WorkTables,
}

pub type WorkTables = std::sync::Mutex<HashMap<usize, std::sync::Arc<Vec<Row>>>>;

impl<'a> Executor<'a> {
    pub fn new(txn: &'a Transaction, virtual_rows: &'a dyn VirtualRows) -> Self {
        Executor {
            txn,
            virtual_rows,
            work_tables: WorkTables::default(),
        }
    }
}

impl SubqueryRunner for Executor<'_> {
    fn run(&self, plan: &Plan, outer: &[Vec<Value>], env: &EvalEnv) -> SqlResult<Vec<Row>> {
        let inner = EvalEnv {
            outer,
            ..env.clone()
        };
        let rows = collect_rows(run_plan(plan, self, &inner)?)?;
        Ok(rows)
    }
}

pub fn collect_rows(iter: RowIter) -> SqlResult<Vec<Row>> {
    iter.collect()
}

/// FULL JOIN by nested loops: matched pairs and unmatched left rows in
/// left order, then the right rows nothing matched.
fn full_join(
    left: RowIter,
    right_rows: &[Row],
    on: Option<&crate::expr::Expr>,
    left_width: usize,
    right_width: usize,
    env: &EvalEnv,
) -> SqlResult<Vec<Row>> {
    let mut matched = vec![false; right_rows.len()];
    let mut out = Vec::new();
    for l in left {
        let l = l?;
        let mut any = false;
        for (i, r) in right_rows.iter().enumerate() {
            let mut row = l.clone();
            row.extend(r.iter().cloned());
            if on
                .map(|p| p.eval(&row, env))
                .transpose()?
                .is_none_or(|v| v.is_true())
            {
                matched[i] = true;
                any = true;
                out.push(row);
            }
        }
        if !any {
            let mut row = l;
            row.extend(std::iter::repeat_n(Value::Null, right_width));
            out.push(row);
        }
    }
    for (r, _) in right_rows.iter().zip(&matched).filter(|(_, m)| !**m) {
        let mut row: Row = std::iter::repeat_n(Value::Null, left_width).collect();
        row.extend(r.iter().cloned());
        out.push(row);
    }
    Ok(out)
}

/// Set-returning functions in a SELECT list: each input row becomes as
/// many rows as its longest function result (the shorter padded with
/// NULLs), or none if all are empty.
fn project_set<'a>(
    input: RowIter<'a>,
    srfs: &'a [crate::expr::Expr],
    env: &'a EvalEnv<'a>,
) -> impl Iterator<Item = SqlResult<Row>> + 'a {
    input.flat_map(move |row| -> Vec<SqlResult<Row>> {
        let row = match row {
            Ok(r) => r,
            Err(e) => return vec![Err(e)],
        };
        let mut sets = Vec::with_capacity(srfs.len());
        for f in srfs {
            match f.eval(&row, env) {
                Ok(Value::Array(items)) => sets.push(items),
                Ok(_) => sets.push(Vec::new()),
                Err(e) => return vec![Err(e)],
            }
        }
        let n = sets.iter().map(Vec::len).max().unwrap_or(0);
        (0..n)
            .map(|i| {
                let mut out = row.clone();
                out.extend(
                    sets.iter()
                        .map(|s| s.get(i).cloned().unwrap_or(Value::Null)),
                );
                Ok(out)
            })
            .collect()
    })
}

/// Runs a recursive CTE to its fixpoint. UNION (without ALL) drops rows
/// already produced, which is what ends most recursions.
fn recursive_union(
    id: usize,
    anchor: &Plan,
    step: &Plan,
    all: bool,
    exec: &Executor,
    env: &EvalEnv,
) -> SqlResult<Vec<Row>> {
    let mut seen = HashSet::new();
    let mut fresh = |rows: Vec<Row>| -> Vec<Row> {
        if all {
            return rows;
        }
        rows.into_iter()
            .filter(|r| {
                let mut key = Vec::new();
                for v in r {
                    v.group_key(&mut key);
                }
                seen.insert(key)
            })
            .collect()
    };
    let mut out = fresh(collect_rows(run_plan(anchor, exec, env)?)?);
    let mut working = out.clone();
    while !working.is_empty() {
        env.check_interrupt()?;
        exec.work_tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, std::sync::Arc::new(working));
        let next = fresh(collect_rows(run_plan(step, exec, env)?)?);
        out.extend(next.iter().cloned());
        working = next;
    }
    exec.work_tables
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    Ok(out)
}

/// Builds the row iterator for a plan.
pub fn run_plan<'a>(
    plan: &'a Plan,
    exec: &'a Executor<'a>,
    env: &'a EvalEnv<'a>,
) -> SqlResult<RowIter<'a>> {
    Ok(match plan {
        Plan::Empty => Box::new(std::iter::once(Ok(vec![]))),
        Plan::Values { rows, .. } => Box::new(
            rows.iter()
                .map(move |r| r.iter().map(|e| e.eval(&[], env)).collect()),
        ),
        Plan::Scan {
            table,
            index,
            range,
        } => {
            let mut scan = TableScan::new(exec.txn, table, index.as_ref(), range, env)?;
            Box::new(std::iter::from_fn(move || {
                scan.next_row().transpose().map(|r| r.map(|(_, row)| row))
            }))
        }
        Plan::Series {
            start, stop, step, ..
        } => series(start, stop, step.as_ref(), env)?,
        Plan::Rows(rows) => Box::new(rows.iter().cloned().map(Ok)),
        Plan::Unnest { array } => match array.eval(&[], env)? {
            Value::Array(items) => Box::new(items.into_iter().map(|v| Ok(vec![v]))),
            _ => Box::new(std::iter::empty()),
        },
        Plan::Virtual(vt) => Box::new(exec.virtual_rows.rows(&vt.name)?.into_iter().map(Ok)),
        Plan::Filter { input, predicate } => {
            let input = run_plan(input, exec, env)?;
            Box::new(input.filter_map(move |r| match r {
                Ok(row) => match predicate.eval(&row, env) {
                    Ok(Value::Bool(true)) => Some(Ok(row)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                },
                Err(e) => Some(Err(e)),
            }))
        }
        Plan::Project { input, exprs } => {
            let input = run_plan(input, exec, env)?;
            Box::new(
                input.map(move |r| {
                    r.and_then(|row| exprs.iter().map(|e| e.eval(&row, env)).collect())
                }),
            )
        }
        Plan::Join {
            left,
            right,
            kind,
            on,
            right_width,
        } => {
            let right_rows = collect_rows(run_plan(right, exec, env)?)?;
            let left = run_plan(left, exec, env)?;
            if let JoinKind::Full { left_width } = kind {
                let rows = full_join(
                    left,
                    &right_rows,
                    on.as_ref(),
                    *left_width,
                    *right_width,
                    env,
                )?;
                return Ok(Box::new(rows.into_iter().map(Ok)));
            }
            let (kind, width) = (*kind, *right_width);
            Box::new(left.flat_map(move |l| -> Vec<SqlResult<Row>> {
                let l = match l {
                    Ok(l) => l,
                    Err(e) => return vec![Err(e)],
                };
                let mut out = Vec::new();
                for r in &right_rows {
                    let mut row = l.clone();
                    row.extend(r.iter().cloned());
                    match on.as_ref().map(|p| p.eval(&row, env)) {
                        None | Some(Ok(Value::Bool(true))) => out.push(Ok(row)),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return vec![Err(e)],
                    }
                }
                if out.is_empty() && kind == JoinKind::Left {
                    let mut row = l;
                    row.extend(std::iter::repeat_n(Value::Null, width));
                    out.push(Ok(row));
                }
                out
            }))
        }
        Plan::Aggregate {
            input,
            group_by,
            aggs,
        } => {
            let input = run_plan(input, exec, env)?;
            Box::new(aggregate(input, group_by, aggs, env)?.into_iter().map(Ok))
        }
        Plan::Sort { input, keys } => {
            let rows = collect_rows(run_plan(input, exec, env)?)?;
            Box::new(sort_rows(rows, keys, env)?.into_iter().map(Ok))
        }
        Plan::Limit {
            input,
            limit,
            offset,
        } => {
            let count = |e: &Option<crate::expr::Expr>, what: &str| -> SqlResult<Option<usize>> {
                match e.as_ref().map(|e| e.eval(&[], env)).transpose()? {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Int(n)) if n >= 0 => Ok(Some(n as usize)),
                    Some(Value::Int(_)) => Err(SqlError::new(
                        SqlState("2201W"),
                        format!("{what} must not be negative"),
                    )),
                    Some(other) => Err(SqlError::new(
                        SqlState::DATATYPE_MISMATCH,
                        format!("invalid {what}: {other:?}"),
                    )),
                }
            };
            let limit = count(limit, "LIMIT")?;
            let offset = count(offset, "OFFSET")?.unwrap_or(0);
            let input = run_plan(input, exec, env)?.skip(offset);
            match limit {
                Some(n) => Box::new(input.take(n)),
                None => Box::new(input),
            }
        }
        Plan::Distinct { input } => {
            let mut seen = HashSet::new();
            let input = run_plan(input, exec, env)?;
            Box::new(input.filter(move |r| match r {
                Ok(row) => seen.insert(row_key(row)),
                Err(_) => true,
            }))
        }
        Plan::Truncate { input, width } => {
            let width = *width;
            Box::new(run_plan(input, exec, env)?.map(move |r| {
                r.map(|mut row| {
                    row.truncate(width);
                    row
                })
            }))
        }
        Plan::ProjectSet { input, srfs } => {
            let input = run_plan(input, exec, env)?;
            Box::new(project_set(input, srfs, env))
        }
        Plan::Window { input, calls } => {
            let rows = collect_rows(run_plan(input, exec, env)?)?;
            Box::new(super::window::window(rows, calls, env)?.into_iter().map(Ok))
        }
        Plan::RecursiveUnion {
            id,
            anchor,
            step,
            all,
        } => Box::new(
            recursive_union(*id, anchor, step, *all, exec, env)?
                .into_iter()
                .map(Ok),
        ),
        Plan::WorkTable { id } => {
            let rows = exec
                .work_tables
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned()
                .unwrap_or_default();
            Box::new((0..rows.len()).map(move |i| Ok(rows[i].clone())))
        }
        Plan::SetOp {
            left,
            right,
            op,
            all,
        } => {
            let l = collect_rows(run_plan(left, exec, env)?)?;
            let r = collect_rows(run_plan(right, exec, env)?)?;
            Box::new(set_op(l, r, *op, *all).into_iter().map(Ok))
        }
    })
}

fn row_key(row: &[Value]) -> Vec<u8> {
    let mut k = Vec::new();
    for v in row {
        v.group_key(&mut k);
    }
    k
}

fn set_op(left: Vec<Row>, right: Vec<Row>, op: SetOpKind, all: bool) -> Vec<Row> {
    match op {
        SetOpKind::Union => {
            let rows = left.into_iter().chain(right);
            if all {
                rows.collect()
            } else {
                let mut seen = HashSet::new();
                rows.filter(|r| seen.insert(row_key(r))).collect()
            }
        }
        SetOpKind::Intersect | SetOpKind::Except => {
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            for r in &right {
                *counts.entry(row_key(r)).or_default() += 1;
            }
            let mut emitted = HashSet::new();
            let mut out = Vec::new();
            for r in left {
                let k = row_key(&r);
                let in_right = counts.get(&k).copied().unwrap_or(0) > 0;
                let keep = match op {
                    SetOpKind::Intersect => in_right,
                    _ => !in_right,
                };
                if all {
                    if op == SetOpKind::Intersect && in_right {
                        if let Some(c) = counts.get_mut(&k) {
                            *c -= 1;
                        }
                        out.push(r);
                    } else if op == SetOpKind::Except {
                        if in_right {
                            if let Some(c) = counts.get_mut(&k) {
                                *c -= 1;
                            }
                        } else {
                            out.push(r);
                        }
                    }
                } else if keep && emitted.insert(k) {
                    out.push(r);
                }
            }
            out
        }
    }
}

/// Sorts rows by the keys (stable, as PostgreSQL's output for equal keys
/// is unspecified anyway).
/// Orders two rows' sort-key values by the keys' directions and NULL
/// placement.
pub(super) fn sort_cmp(a: &[Value], b: &[Value], keys: &[SortKey]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for (i, k) in keys.iter().enumerate() {
        let (x, y) = (&a[i], &b[i]);
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if k.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if k.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ if k.desc => x.total_cmp(y).reverse(),
            _ => x.total_cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

pub fn sort_rows(rows: Vec<Row>, keys: &[SortKey], env: &EvalEnv) -> SqlResult<Vec<Row>> {
    let mut keyed: Vec<(Vec<Value>, Row)> = rows
        .into_iter()
        .map(|r| {
            Ok((
                keys.iter()
                    .map(|k| k.expr.eval(&r, env))
                    .collect::<SqlResult<Vec<_>>>()?,
                r,
            ))
        })
        .collect::<SqlResult<_>>()?;
    keyed.sort_by(|(a, _), (b, _)| sort_cmp(a, b, keys));
    Ok(keyed.into_iter().map(|(_, r)| r).collect())
}

fn series<'a>(
    start: &crate::expr::Expr,
    stop: &crate::expr::Expr,
    step: Option<&crate::expr::Expr>,
    env: &'a EvalEnv<'a>,
) -> SqlResult<RowIter<'a>> {
    let (a, b) = (start.eval(&[], env)?, stop.eval(&[], env)?);
    let s = match step {
        Some(e) => e.eval(&[], env)?,
        None => Value::Int(1),
    };
    series_of(a, b, s, env)
}

/// generate_series over evaluated bounds and step.
pub(crate) fn series_of<'a>(
    a: Value,
    b: Value,
    s: Value,
    env: &'a EvalEnv<'a>,
) -> SqlResult<RowIter<'a>> {
    match (a, b, s) {
        (Value::Null, _, _) | (_, Value::Null, _) | (_, _, Value::Null) => {
            Ok(Box::new(std::iter::empty()))
        }
        (Value::Int(a), Value::Int(b), Value::Int(s)) => {
            if s == 0 {
                return Err(SqlError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "step size cannot equal zero",
                ));
            }
            let mut cur = Some(a);
            let mut n: u64 = 0;
            Ok(Box::new(std::iter::from_fn(move || {
                let v = cur?;
                if (s > 0 && v > b) || (s < 0 && v < b) {
                    return None;
                }
                n += 1;
                if n.is_multiple_of(4096) {
                    if let Err(e) = env.check_interrupt() {
                        cur = None;
                        return Some(Err(e));
                    }
                }
                cur = v.checked_add(s);
                Some(Ok(vec![Value::Int(v)]))
            })))
        }
        (a, b, s) => {
            let d = |v: Value| match v {
                Value::Int(i) => Ok(rust_decimal::Decimal::from(i)),
                Value::Numeric(d) => Ok(d),
                other => Err(SqlError::unsupported(format!(
                    "generate_series over {other:?}"
                ))),
            };
            let (a, b, s) = (d(a)?, d(b)?, d(s)?);
            if s.is_zero() {
                return Err(SqlError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "step size cannot equal zero",
                ));
            }
            let mut cur = Some(a);
            Ok(Box::new(std::iter::from_fn(move || {
                let v = cur?;
                if (s.is_sign_positive() && v > b) || (s.is_sign_negative() && v < b) {
                    return None;
                }
                cur = v.checked_add(s);
                Some(Ok(vec![Value::Numeric(v)]))
            })))
        }
    }
}
