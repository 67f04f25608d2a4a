//! Bound expressions (names resolved to row positions, types known) and
//! their evaluation.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::cast::cast;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::functions::Func;
use crate::types::DataType;
use crate::value::{TimeZone, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
    /// PostgreSQL's regular-expression match `~` (and `!~`, `~*`, `!~*`).
    RegexMatch {
        case_insensitive: bool,
        negated: bool,
    },
    /// json `->` (as_text false) and `->>`: an element or field.
    JsonGet {
        as_text: bool,
    },
    /// json `#>` and `#>>`: the value at a path (a text array).
    JsonPath {
        as_text: bool,
    },
    /// jsonb `@>`
    JsonContains,
    /// jsonb `<@`
    JsonContainedIn,
    /// jsonb `?`
    JsonHasKey,
    /// Integer `&` and `|`.
    BitAnd,
    BitOr,
}

impl BinOp {
    pub fn is_comparison(&self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
        )
    }

    pub fn symbol(&self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "=",
            BinOp::NotEq => "<>",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Concat => "||",
            BinOp::RegexMatch { .. } => "~",
            BinOp::JsonGet { as_text: false } => "->",
            BinOp::JsonGet { as_text: true } => "->>",
            BinOp::JsonPath { as_text: false } => "#>",
            BinOp::JsonPath { as_text: true } => "#>>",
            BinOp::JsonContains => "@>",
            BinOp::JsonContainedIn => "<@",
            BinOp::JsonHasKey => "?",
            BinOp::BitAnd => "&",
            BinOp::BitOr => "|",
        }
    }

    /// The operator with its operands swapped (a < b  <=>  b > a).
    pub fn flipped(&self) -> BinOp {
        match self {
            BinOp::Lt => BinOp::Gt,
            BinOp::LtEq => BinOp::GtEq,
            BinOp::Gt => BinOp::Lt,
            BinOp::GtEq => BinOp::LtEq,
            other => *other,
        }
    }
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    StringAgg,
    ArrayAgg,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggCall {
    pub func: AggFunc,
    pub args: Vec<Expr>,
    pub distinct: bool,
    /// FILTER (WHERE ...): rows for which it is not true are skipped.
    pub filter: Option<Box<Expr>>,
    /// `agg(x ORDER BY ...)`: the order values are fed in.
    pub order_by: Vec<crate::plan::SortKey>,
    pub ty: DataType,
}

/// A window function: ranking, offset, or an aggregate over a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFunc {
    RowNumber,
    Rank,
    DenseRank,
    PercentRank,
    CumeDist,
    Ntile,
    Lag,
    Lead,
    FirstValue,
    LastValue,
    NthValue,
    Aggregate(AggFunc),
}

/// Where a frame starts or ends, relative to the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameBound {
    UnboundedPreceding,
    Preceding(u64),
    CurrentRow,
    Following(u64),
    UnboundedFollowing,
}

/// The rows an aggregate (or first/last/nth_value) sees. RANGE frames
/// count peers (rows equal in ORDER BY) as one step; ROWS frames count rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub rows: bool,
    pub start: FrameBound,
    pub end: FrameBound,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowCall {
    pub func: WindowFunc,
    pub args: Vec<Expr>,
    pub distinct: bool,
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<crate::plan::SortKey>,
    pub frame: Frame,
    pub ty: DataType,
}

impl WindowCall {
    fn exprs_mut(&mut self) -> impl Iterator<Item = &mut Expr> {
        self.args
            .iter_mut()
            .chain(self.partition_by.iter_mut())
            .chain(self.order_by.iter_mut().map(|k| &mut k.expr))
    }

    fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.args
            .iter()
            .chain(self.partition_by.iter())
            .chain(self.order_by.iter().map(|k| &k.expr))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value, DataType),
    /// A column of the input row.
    Column(usize, DataType),
    /// A bind parameter ($1 is index 0).
    Param(usize, DataType),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
        ty: DataType,
    },
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// IS [NOT] TRUE / FALSE.
    IsBool {
        expr: Box<Expr>,
        value: bool,
        negated: bool,
    },
    /// IS [NOT] DISTINCT FROM.
    IsDistinct {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    Cast {
        expr: Box<Expr>,
        ty: DataType,
    },
    Func {
        func: Func,
        args: Vec<Expr>,
        ty: DataType,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        else_: Option<Box<Expr>>,
        ty: DataType,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `x op ANY (array)` / `x op ALL (array)`.
    AnyAll {
        left: Box<Expr>,
        op: BinOp,
        array: Box<Expr>,
        all: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    /// A column of an enclosing query's row (correlated subquery):
    /// `depth` 1 is the immediately enclosing query.
    OuterColumn {
        depth: usize,
        index: usize,
        ty: DataType,
    },
    /// A subquery used as an expression.
    Subquery {
        kind: SubqueryKind,
        plan: Box<crate::plan::Plan>,
        ty: DataType,
    },
    /// Only during binding: replaced by a column of the aggregate's output.
    Aggregate(Box<AggCall>),
    /// A window function call; the planner moves it into a Window plan.
    Window(Box<WindowCall>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SubqueryKind {
    /// (SELECT x ...): one value, NULL if no row, error if several.
    Scalar,
    /// EXISTS (SELECT ...).
    Exists { negated: bool },
    /// x [NOT] IN (SELECT ...).
    In { expr: Box<Expr>, negated: bool },
    /// ARRAY(SELECT ...).
    Array,
}

/// Runs subquery plans for expression evaluation.
pub trait SubqueryRunner: Send + Sync {
    /// Executes `plan` with `outer` as the enclosing rows (innermost last).
    fn run(
        &self,
        plan: &crate::plan::Plan,
        outer: &[Vec<Value>],
        env: &EvalEnv,
    ) -> SqlResult<Vec<Vec<Value>>>;
}

/// What expression evaluation may need from the session.
#[derive(Clone)]
pub struct EvalEnv<'a> {
    pub params: &'a [Value],
    pub tz: &'a TimeZone,
    /// Transaction start time: now() and current_timestamp.
    pub txn_time: DateTime<Utc>,
    pub session: &'a dyn SessionInfo,
    /// Enclosing rows for correlated subqueries, innermost last.
    pub outer: &'a [Vec<Value>],
    pub subqueries: Option<&'a dyn SubqueryRunner>,
    pub control: &'a duet_storage::StatementControl,
}

impl EvalEnv<'_> {
    /// Errors if the statement was canceled or timed out.
    pub fn check_interrupt(&self) -> SqlResult<()> {
        Ok(self.control.check()?)
    }
}

/// Session facts that functions read, and sequence access for nextval().
pub trait SessionInfo: Send + Sync {
    fn current_user(&self) -> &str;
    fn current_database(&self) -> &str;
    fn backend_pid(&self) -> i32;
    /// The port the session's client connected to, if over TCP.
    fn server_port(&self) -> Option<u16>;
    fn in_recovery(&self) -> bool;
    /// An LSN function's value (see [`crate::replicate::NodeControl::lsn`]).
    fn wal_lsn(&self, function: &str) -> Option<u64>;
    /// When the last replicated batch was applied (secondary).
    fn last_replay(&self) -> Option<std::time::SystemTime>;
    /// The node's replication epoch (0 before any promotion).
    fn replication_epoch(&self) -> u64;
    fn setting(&self, name: &str) -> Option<String>;
    fn nextval(&self, sequence: &str) -> SqlResult<i64>;
    fn currval(&self, sequence: &str) -> SqlResult<i64>;
    fn setval(&self, sequence: &str, value: i64, is_called: bool) -> SqlResult<i64>;
    fn relation_oid(&self, name: &str) -> SqlResult<Option<u32>>;
    fn role_name(&self, oid: u32) -> Option<String>;
    /// Definitions for pg_get_indexdef / pg_get_constraintdef.
    fn describe_object(&self, kind: &str, oid: u32) -> SqlResult<Option<String>>;
}

impl Expr {
    pub fn data_type(&self) -> DataType {
        match self {
            Expr::Literal(_, ty) | Expr::Column(_, ty) | Expr::Param(_, ty) => ty.clone(),
            Expr::OuterColumn { ty, .. } | Expr::Subquery { ty, .. } => ty.clone(),
            Expr::Binary { ty, .. }
            | Expr::Func { ty, .. }
            | Expr::Case { ty, .. }
            | Expr::Cast { ty, .. } => ty.clone(),
            Expr::Neg(e) => e.data_type(),
            Expr::Aggregate(a) => a.ty.clone(),
            Expr::Window(w) => w.ty.clone(),
            Expr::Not(_)
            | Expr::IsNull { .. }
            | Expr::IsBool { .. }
            | Expr::IsDistinct { .. }
            | Expr::InList { .. }
            | Expr::AnyAll { .. }
            | Expr::Like { .. } => DataType::Bool,
        }
    }

    pub fn literal(v: Value) -> Expr {
        let ty = match &v {
            Value::Null => DataType::Unknown,
            Value::Bool(_) => DataType::Bool,
            Value::Int(i) if i32::try_from(*i).is_ok() => DataType::Int4,
            Value::Int(_) => DataType::Int8,
            Value::Float(_) => DataType::Float8,
            Value::Numeric(_) => DataType::Numeric(None),
            Value::Text(_) => DataType::Text,
            Value::Bytea(_) => DataType::Bytea,
            Value::Date(_) => DataType::Date,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::TimestampTz(_) => DataType::TimestampTz,
            Value::Uuid(_) => DataType::Uuid,
            Value::Json(_) => DataType::Jsonb,
            Value::Interval(_) => DataType::Interval,
            Value::Array(_) => DataType::Array(Box::new(DataType::Text)),
        };
        Expr::Literal(v, ty)
    }

    /// True if the expression reads no column (constant per execution).
    pub fn is_constant(&self) -> bool {
        let mut constant = true;
        self.walk(&mut |e| {
            if matches!(
                e,
                Expr::Column(..)
                    | Expr::Aggregate(_)
                    | Expr::Window(_)
                    | Expr::OuterColumn { .. }
                    | Expr::Subquery { .. }
            ) {
                constant = false;
            }
            if let Expr::Func { func, .. } = e {
                if func.is_volatile() {
                    constant = false;
                }
            }
        });
        constant
    }

    /// Visits this expression and all sub-expressions.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Binary { left, right, .. } | Expr::IsDistinct { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Expr::Not(e)
            | Expr::Neg(e)
            | Expr::IsNull { expr: e, .. }
            | Expr::IsBool { expr: e, .. }
            | Expr::Cast { expr: e, .. } => e.walk(f),
            Expr::Func { args, .. } => args.iter().for_each(|a| a.walk(f)),
            Expr::Case {
                operand,
                whens,
                else_,
                ..
            } => {
                if let Some(o) = operand {
                    o.walk(f);
                }
                for (w, t) in whens {
                    w.walk(f);
                    t.walk(f);
                }
                if let Some(e) = else_ {
                    e.walk(f);
                }
            }
            Expr::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|a| a.walk(f));
            }
            Expr::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            Expr::AnyAll { left, array, .. } => {
                left.walk(f);
                array.walk(f);
            }
            Expr::Aggregate(a) => {
                a.args.iter().for_each(|x| x.walk(f));
                if let Some(c) = &a.filter {
                    c.walk(f);
                }
                a.order_by.iter().for_each(|k| k.expr.walk(f));
            }
            Expr::Window(w) => w.exprs().for_each(|x| x.walk(f)),
            Expr::Subquery {
                kind: SubqueryKind::In { expr, .. },
                ..
            } => expr.walk(f),
            Expr::Literal(..)
            | Expr::Column(..)
            | Expr::Param(..)
            | Expr::OuterColumn { .. }
            | Expr::Subquery { .. } => {}
        }
    }

    /// Rewrites the tree bottom-up; `f` may replace a node.
    pub fn transform(self, f: &mut dyn FnMut(Expr) -> SqlResult<Expr>) -> SqlResult<Expr> {
        crate::depth::check_stack()?;
        let e = self.map_children(&mut |c| c.transform(f))?;
        f(e)
    }

    /// Applies `f` to each direct child expression (not recursively).
    pub fn map_children(self, f: &mut dyn FnMut(Expr) -> SqlResult<Expr>) -> SqlResult<Expr> {
        let mut boxed = |e: Box<Expr>| -> SqlResult<Box<Expr>> { Ok(Box::new(f(*e)?)) };
        Ok(match self {
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } => Expr::Binary {
                op,
                left: boxed(left)?,
                right: boxed(right)?,
                ty,
            },
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => Expr::IsDistinct {
                left: boxed(left)?,
                right: boxed(right)?,
                negated,
            },
            Expr::Not(e) => Expr::Not(boxed(e)?),
            Expr::Neg(e) => Expr::Neg(boxed(e)?),
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: boxed(expr)?,
                negated,
            },
            Expr::IsBool {
                expr,
                value,
                negated,
            } => Expr::IsBool {
                expr: boxed(expr)?,
                value,
                negated,
            },
            Expr::Cast { expr, ty } => Expr::Cast {
                expr: boxed(expr)?,
                ty,
            },
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => Expr::Like {
                expr: boxed(expr)?,
                pattern: boxed(pattern)?,
                negated,
                case_insensitive,
            },
            Expr::AnyAll {
                left,
                op,
                array,
                all,
            } => Expr::AnyAll {
                left: boxed(left)?,
                op,
                array: boxed(array)?,
                all,
            },
            Expr::Func { func, args, ty } => Expr::Func {
                func,
                args: args.into_iter().map(&mut *f).collect::<SqlResult<_>>()?,
                ty,
            },
            Expr::Case {
                operand,
                whens,
                else_,
                ty,
            } => {
                let operand = match operand {
                    Some(o) => Some(Box::new(f(*o)?)),
                    None => None,
                };
                let whens = whens
                    .into_iter()
                    .map(|(w, t)| Ok((f(w)?, f(t)?)))
                    .collect::<SqlResult<_>>()?;
                let else_ = match else_ {
                    Some(e) => Some(Box::new(f(*e)?)),
                    None => None,
                };
                Expr::Case {
                    operand,
                    whens,
                    else_,
                    ty,
                }
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let expr = Box::new(f(*expr)?);
                Expr::InList {
                    expr,
                    list: list.into_iter().map(&mut *f).collect::<SqlResult<_>>()?,
                    negated,
                }
            }
            Expr::Subquery {
                kind: SubqueryKind::In { expr, negated },
                plan,
                ty,
            } => Expr::Subquery {
                kind: SubqueryKind::In {
                    expr: Box::new(f(*expr)?),
                    negated,
                },
                plan,
                ty,
            },
            Expr::Aggregate(mut a) => {
                a.args = std::mem::take(&mut a.args)
                    .into_iter()
                    .map(&mut *f)
                    .collect::<SqlResult<_>>()?;
                if let Some(c) = a.filter.take() {
                    a.filter = Some(Box::new(f(*c)?));
                }
                for k in a.order_by.iter_mut() {
                    let e = std::mem::replace(
                        &mut k.expr,
                        Expr::Literal(Value::Null, DataType::Unknown),
                    );
                    k.expr = f(e)?;
                }
                Expr::Aggregate(a)
            }
            Expr::Window(mut w) => {
                for e in w.exprs_mut() {
                    let taken = std::mem::replace(e, Expr::Literal(Value::Null, DataType::Unknown));
                    *e = f(taken)?;
                }
                Expr::Window(w)
            }
            other => other,
        })
    }

    /// Evaluates against one input row.
    pub fn eval(&self, row: &[Value], env: &EvalEnv) -> SqlResult<Value> {
        crate::depth::check_stack()?;
        match self {
            Expr::Literal(v, _) => Ok(v.clone()),
            Expr::Column(i, _) => row
                .get(*i)
                .cloned()
                .ok_or_else(|| SqlError::internal("column index out of range")),
            Expr::Param(i, ty) => {
                let v = env.params.get(*i).cloned().ok_or_else(|| {
                    SqlError::new(
                        SqlState::UNDEFINED_PARAMETER,
                        format!("there is no parameter ${}", i + 1),
                    )
                })?;
                // Text-format parameters of inferred types arrive typed; be lenient otherwise.
                match (&v, ty) {
                    (Value::Text(s), ty) if !ty.is_string() && *ty != DataType::Unknown => {
                        Value::from_text(ty, s, env.tz)
                    }
                    _ => Ok(v),
                }
            }
            Expr::OuterColumn { depth, index, .. } => env
                .outer
                .len()
                .checked_sub(*depth)
                .and_then(|i| env.outer.get(i))
                .and_then(|r| r.get(*index))
                .cloned()
                .ok_or_else(|| SqlError::internal("outer column out of range")),
            Expr::Subquery { kind, plan, .. } => eval_subquery(kind, plan, row, env),
            Expr::Binary {
                op,
                left,
                right,
                ty,
            } => {
                let l = left.eval(row, env)?;
                // Short-circuit AND/OR with SQL's three-valued logic.
                match op {
                    BinOp::And => {
                        if l == Value::Bool(false) {
                            return Ok(Value::Bool(false));
                        }
                        let r = right.eval(row, env)?;
                        return Ok(match (l, r) {
                            (_, Value::Bool(false)) => Value::Bool(false),
                            (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                            _ => Value::Null,
                        });
                    }
                    BinOp::Or => {
                        if l == Value::Bool(true) {
                            return Ok(Value::Bool(true));
                        }
                        let r = right.eval(row, env)?;
                        return Ok(match (l, r) {
                            (_, Value::Bool(true)) => Value::Bool(true),
                            (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                            _ => Value::Null,
                        });
                    }
                    _ => {}
                }
                let r = right.eval(row, env)?;
                binary_op(*op, l, r, ty, &left.data_type(), &right.data_type(), env)
            }
            Expr::Not(e) => Ok(match e.eval(row, env)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            }),
            Expr::Neg(e) => match e.eval(row, env)? {
                Value::Null => Ok(Value::Null),
                Value::Int(i) => i
                    .checked_neg()
                    .map(Value::Int)
                    .ok_or_else(|| SqlError::out_of_range(&e.data_type().type_name())),
                Value::Float(f) => Ok(Value::Float(-f)),
                Value::Numeric(d) => Ok(Value::Numeric(-d)),
                other => Err(SqlError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!("operator does not exist: - {}", type_of_value(&other)),
                )),
            },
            Expr::IsNull { expr, negated } => {
                Ok(Value::Bool(expr.eval(row, env)?.is_null() != *negated))
            }
            Expr::IsBool {
                expr,
                value,
                negated,
            } => {
                let v = expr.eval(row, env)?;
                Ok(Value::Bool((v == Value::Bool(*value)) != *negated))
            }
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => {
                let (l, r) = (left.eval(row, env)?, right.eval(row, env)?);
                let distinct = match (&l, &r) {
                    (Value::Null, Value::Null) => false,
                    (Value::Null, _) | (_, Value::Null) => true,
                    _ => !l.sql_eq(&r),
                };
                Ok(Value::Bool(distinct != *negated))
            }
            Expr::Cast { expr, ty } => cast(expr.eval(row, env)?, ty, env.tz, true),
            Expr::Func { func, args, ty } => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(row, env))
                    .collect::<SqlResult<Vec<_>>>()?;
                func.eval(vals, ty, env)
            }
            Expr::Case {
                operand,
                whens,
                else_,
                ty,
            } => {
                let op = operand.as_ref().map(|o| o.eval(row, env)).transpose()?;
                for (w, then) in whens {
                    let hit = match &op {
                        Some(v) => {
                            let wv = w.eval(row, env)?;
                            !v.is_null() && !wv.is_null() && v.sql_eq(&wv)
                        }
                        None => w.eval(row, env)?.is_true(),
                    };
                    if hit {
                        return cast(then.eval(row, env)?, ty, env.tz, false);
                    }
                }
                match else_ {
                    Some(e) => cast(e.eval(row, env)?, ty, env.tz, false),
                    None => Ok(Value::Null),
                }
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(row, env)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in list {
                    let iv = item.eval(row, env)?;
                    if iv.is_null() {
                        saw_null = true;
                    } else if compare(&v, &iv, env.tz)? == Ordering::Equal {
                        return Ok(Value::Bool(!negated));
                    }
                }
                Ok(if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                })
            }
            Expr::AnyAll {
                left,
                op,
                array,
                all,
            } => {
                let l = left.eval(row, env)?;
                let items = match array.eval(row, env)? {
                    Value::Array(items) => items,
                    Value::Null => return Ok(Value::Null),
                    other => vec![other],
                };
                // Three-valued: ANY is true if one is true, NULL if none is but one was NULL.
                let mut saw_null = false;
                for item in items {
                    match binary_op(
                        *op,
                        l.clone(),
                        item,
                        &DataType::Bool,
                        &left.data_type(),
                        &DataType::Unknown,
                        env,
                    )? {
                        Value::Bool(b) if b != *all => return Ok(Value::Bool(b)),
                        Value::Null => saw_null = true,
                        _ => {}
                    }
                }
                Ok(if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*all)
                })
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let (v, p) = (expr.eval(row, env)?, pattern.eval(row, env)?);
                match (v, p) {
                    (Value::Text(s), Value::Text(p)) => {
                        Ok(Value::Bool(like(&s, &p, *case_insensitive) != *negated))
                    }
                    (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
                    _ => Err(SqlError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        "operator does not exist for LIKE",
                    )),
                }
            }
            Expr::Aggregate(_) => Err(SqlError::new(
                SqlState::GROUPING_ERROR,
                "aggregate functions are not allowed here",
            )),
            Expr::Window(_) => Err(SqlError::new(
                SqlState("42P20"),
                "window functions are not allowed here",
            )),
        }
    }
}

fn eval_subquery(
    kind: &SubqueryKind,
    plan: &crate::plan::Plan,
    row: &[Value],
    env: &EvalEnv,
) -> SqlResult<Value> {
    let runner = env
        .subqueries
        .ok_or_else(|| SqlError::unsupported("subqueries are not supported here"))?;
    let mut outer = env.outer.to_vec();
    outer.push(row.to_vec());
    let rows = runner.run(plan, &outer, env)?;
    match kind {
        SubqueryKind::Scalar => match rows.len() {
            0 => Ok(Value::Null),
            1 => Ok(rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next())
                .unwrap_or(Value::Null)),
            _ => Err(SqlError::new(
                SqlState::CARDINALITY_VIOLATION,
                "more than one row returned by a subquery used as an expression",
            )),
        },
        SubqueryKind::Exists { negated } => Ok(Value::Bool(rows.is_empty() == *negated)),
        SubqueryKind::Array => Ok(Value::Array(
            rows.into_iter()
                .filter_map(|r| r.into_iter().next())
                .collect(),
        )),
        SubqueryKind::In { expr, negated } => {
            let v = expr.eval(row, env)?;
            if v.is_null() {
                return Ok(if rows.is_empty() {
                    Value::Bool(*negated)
                } else {
                    Value::Null
                });
            }
            let mut saw_null = false;
            for r in rows {
                match r.into_iter().next() {
                    Some(Value::Null) | None => saw_null = true,
                    Some(x) => {
                        if compare(&v, &x, env.tz)? == Ordering::Equal {
                            return Ok(Value::Bool(!negated));
                        }
                    }
                }
            }
            Ok(if saw_null {
                Value::Null
            } else {
                Value::Bool(*negated)
            })
        }
    }
}

mod ops;

use ops::binary_op;
pub use ops::{compare, like, numeric_div_scale, type_of_value};
