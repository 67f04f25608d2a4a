//! Query plans: the tree the planner builds and the executor runs.

use std::sync::Arc;

use crate::catalog::{IndexDef, TableDef};
use crate::expr::{AggCall, Expr};
use crate::session::Column;
use crate::types::DataType;

/// How a table is read: a key range of the primary index or of a
/// secondary index. Equality on leading key columns, then an optional
/// range on the next one. No bounds means a full scan.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRange {
    pub eq: Vec<Expr>,
    pub lower: Option<(Expr, bool)>,
    pub upper: Option<(Expr, bool)>,
    /// Types of the key columns, to cast bound values before encoding.
    pub key_types: Vec<DataType>,
}

impl KeyRange {
    pub fn full() -> Self {
        KeyRange {
            eq: vec![],
            lower: None,
            upper: None,
            key_types: vec![],
        }
    }

    pub fn is_full(&self) -> bool {
        self.eq.is_empty() && self.lower.is_none() && self.upper.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    /// FULL JOIN: also the right rows nothing matched, NULL-padded on the
    /// left (`left_width` columns).
    Full {
        left_width: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

/// A catalog view computed on the fly (pg_catalog, information_schema).
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualTable {
    pub name: String,
    pub columns: Vec<(String, DataType)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// One row with no columns: SELECT without FROM.
    Empty,
    Values {
        rows: Vec<Vec<Expr>>,
        width: usize,
    },
    /// Rows computed before the plan runs (rows locked by FOR UPDATE).
    Rows(Vec<Vec<crate::value::Value>>),
    /// Rows of a table through its primary index (`index` None) or a
    /// secondary index.
    Scan {
        table: Arc<TableDef>,
        index: Option<IndexDef>,
        range: KeyRange,
    },
    /// generate_series(start, stop[, step]).
    Series {
        start: Expr,
        stop: Expr,
        step: Option<Expr>,
        ty: DataType,
    },
    Virtual(VirtualTable),
    /// unnest(array): one row per element.
    Unnest {
        array: Expr,
    },
    Filter {
        input: Box<Plan>,
        predicate: Expr,
    },
    Project {
        input: Box<Plan>,
        exprs: Vec<Expr>,
    },
    /// Nested-loop join; the right side is materialized once.
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        on: Option<Expr>,
        right_width: usize,
    },
    /// Output: group-by values, then aggregate results.
    Aggregate {
        input: Box<Plan>,
        group_by: Vec<Expr>,
        aggs: Vec<AggCall>,
    },
    Sort {
        input: Box<Plan>,
        keys: Vec<SortKey>,
    },
    Limit {
        input: Box<Plan>,
        limit: Option<Expr>,
        offset: Option<Expr>,
    },
    Distinct {
        input: Box<Plan>,
    },
    /// Drops trailing helper columns (ORDER BY expressions not selected).
    Truncate {
        input: Box<Plan>,
        width: usize,
    },
    SetOp {
        left: Box<Plan>,
        right: Box<Plan>,
        op: SetOpKind,
        all: bool,
    },
    /// WITH RECURSIVE: the anchor's rows, then `step` run again and again
    /// over the previous round's rows (its `WorkTable`) until it yields
    /// nothing new.
    RecursiveUnion {
        id: usize,
        anchor: Box<Plan>,
        step: Box<Plan>,
        all: bool,
    },
    /// The rows of the current round of RecursiveUnion `id`.
    WorkTable {
        id: usize,
    },
    /// Set-returning functions of a SELECT list: each input row followed
    /// by one value of each function, as many rows as the longest returns.
    ProjectSet {
        input: Box<Plan>,
        srfs: Vec<Expr>,
    },
    /// Input row followed by one value per window function call.
    Window {
        input: Box<Plan>,
        calls: Vec<crate::expr::WindowCall>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOpKind {
    Union,
    Intersect,
    Except,
}

/// A planned SELECT: the plan and its output columns.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    pub plan: Plan,
    pub columns: Vec<Column>,
    /// SELECT ... FOR UPDATE / FOR SHARE: lock the rows read.
    pub lock_rows: bool,
}

impl Plan {
    /// For FOR UPDATE: the single table scan (with the filter right above
    /// it) the rows come from, or why there is none.
    pub fn lockable_scan_mut(&mut self) -> Result<&mut Plan, &'static str> {
        match self {
            Plan::Filter { input, .. } if matches!(**input, Plan::Scan { .. }) => Ok(self),
            Plan::Scan { .. } => Ok(self),
            Plan::Project { input, .. }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Truncate { input, .. }
            | Plan::Filter { input, .. } => input.lockable_scan_mut(),
            Plan::Aggregate { .. } => {
                Err("FOR UPDATE is not allowed with aggregate functions or GROUP BY")
            }
            Plan::Window { .. } => Err("FOR UPDATE is not allowed with window functions"),
            Plan::ProjectSet { .. } => {
                Err("FOR UPDATE is not allowed with set-returning functions in the target list")
            }
            Plan::Distinct { .. } => Err("FOR UPDATE is not allowed with DISTINCT clause"),
            Plan::SetOp { .. } | Plan::RecursiveUnion { .. } => {
                Err("FOR UPDATE is not allowed with UNION/INTERSECT/EXCEPT")
            }
            Plan::Join { .. } => Err("FOR UPDATE of a join is not supported yet"),
            _ => Err("FOR UPDATE needs a table to lock rows of"),
        }
    }
}
