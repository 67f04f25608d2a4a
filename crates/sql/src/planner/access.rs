//! Access paths: turning WHERE conjuncts on key columns into a key range of
//! the primary index or a secondary index, so point reads and range scans
//! never scan the table.

use crate::catalog::{IndexDef, TableDef};
use crate::expr::{BinOp, Expr};
use crate::plan::KeyRange;
use crate::types::DataType;

/// Splits a predicate into its AND-ed conjuncts.
pub fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Binary {
            op: BinOp::And,
            left,
            right,
            ..
        } => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        other => vec![other],
    }
}

/// A bound on a column found in a conjunct: `col op const`.
struct ColumnBound {
    column: usize,
    op: BinOp,
    value: Expr,
}

fn same_family(col: &DataType, val: &DataType) -> bool {
    use DataType as T;
    match (col, val) {
        (a, b) if a.is_integer() && b.is_integer() => true,
        (T::Float4 | T::Float8, T::Float4 | T::Float8) => true,
        (T::Numeric(_), T::Numeric(_)) => true,
        (a, b) if a.is_string() && b.is_string() => true,
        (a, b) => a == b,
    }
}

fn column_bound(e: &Expr, table: &TableDef) -> Option<ColumnBound> {
    let Expr::Binary {
        op, left, right, ..
    } = e
    else {
        return None;
    };
    if !op.is_comparison() || *op == BinOp::NotEq {
        return None;
    }
    let (column, value, op) = match (&**left, &**right) {
        (Expr::Column(c, _), v) if v.is_constant() => (*c, v, *op),
        (v, Expr::Column(c, _)) if v.is_constant() => (*c, v, op.flipped()),
        _ => return None,
    };
    let col_ty = &table.columns.get(column)?.data_type;
    if !same_family(col_ty, &value.data_type()) {
        return None;
    }
    Some(ColumnBound {
        column,
        op,
        value: value.clone(),
    })
}

/// The key range of `index` implied by the conjuncts, and how many leading
/// columns are fixed by equality (a score; higher is better).
fn range_for_index(
    index: &IndexDef,
    table: &TableDef,
    bounds: &[ColumnBound],
) -> (KeyRange, usize) {
    let mut range = KeyRange::full();
    range.key_types = index
        .columns
        .iter()
        .map(|&c| table.columns[c].data_type.clone())
        .collect();
    for &col in &index.columns {
        if let Some(b) = bounds.iter().find(|b| b.column == col && b.op == BinOp::Eq) {
            range.eq.push(b.value.clone());
            continue;
        }
        for b in bounds.iter().filter(|b| b.column == col) {
            match b.op {
                BinOp::Gt | BinOp::GtEq if range.lower.is_none() => {
                    range.lower = Some((b.value.clone(), b.op == BinOp::GtEq))
                }
                BinOp::Lt | BinOp::LtEq if range.upper.is_none() => {
                    range.upper = Some((b.value.clone(), b.op == BinOp::LtEq))
                }
                _ => {}
            }
        }
        break;
    }
    let score = range.eq.len() * 2 + usize::from(range.lower.is_some() || range.upper.is_some());
    (range, score)
}

/// Picks the best index for a predicate over `table`'s columns (row
/// positions 0..n). Returns None for the index when the primary key is used.
pub fn choose(table: &TableDef, predicate: Option<&Expr>) -> (Option<IndexDef>, KeyRange) {
    let Some(pred) = predicate else {
        return (None, KeyRange::full());
    };
    let bounds: Vec<ColumnBound> = conjuncts(pred)
        .into_iter()
        .filter_map(|c| column_bound(c, table))
        .collect();
    if bounds.is_empty() {
        return (None, KeyRange::full());
    }
    let (mut best_range, mut best_score) = range_for_index(&table.primary, table, &bounds);
    let mut best_index = None;
    // A full primary-key match is a point read: nothing beats it.
    if best_range.eq.len() == table.primary.columns.len() {
        return (None, best_range);
    }
    for index in &table.indexes {
        let (range, score) = range_for_index(index, table, &bounds);
        if score > best_score {
            best_score = score;
            best_range = range;
            best_index = Some(index.clone());
        }
    }
    (best_index, best_range)
}
