//! Window functions: binding `f(...) OVER (PARTITION BY ... ORDER BY ...
//! frame)` and moving the calls of a SELECT into a Window plan below its
//! projection.

use sqlparser::ast;

use super::bind_function::{agg_func, agg_type};
use super::select::sort_key;
use super::{Planner, Scope};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{Expr, Frame, FrameBound, WindowCall, WindowFunc};
use crate::plan::Plan;
use crate::types::DataType;
use crate::value::Value;

fn ranking(name: &str) -> Option<WindowFunc> {
    Some(match name {
        "row_number" => WindowFunc::RowNumber,
        "rank" => WindowFunc::Rank,
        "dense_rank" => WindowFunc::DenseRank,
        "percent_rank" => WindowFunc::PercentRank,
        "cume_dist" => WindowFunc::CumeDist,
        "ntile" => WindowFunc::Ntile,
        "lag" => WindowFunc::Lag,
        "lead" => WindowFunc::Lead,
        "first_value" => WindowFunc::FirstValue,
        "last_value" => WindowFunc::LastValue,
        "nth_value" => WindowFunc::NthValue,
        _ => return None,
    })
}

impl Planner<'_> {
    pub(super) fn bind_window_call(
        &mut self,
        name: &str,
        args: &[&ast::Expr],
        distinct: bool,
        star: bool,
        over: &ast::WindowType,
        scope: &Scope,
    ) -> SqlResult<Expr> {
        let spec = match over {
            ast::WindowType::WindowSpec(spec) if spec.window_name.is_none() => spec,
            _ => {
                return Err(SqlError::unsupported(
                    "named windows (WINDOW w AS ...) are not supported yet",
                ))
            }
        };
        let mut bound = args
            .iter()
            .map(|a| self.bind_expr(a, scope))
            .collect::<SqlResult<Vec<_>>>()?;
        if bound.iter().any(contains_window) {
            return Err(SqlError::new(
                SqlState::WINDOWING_ERROR,
                "window function calls cannot be nested",
            ));
        }
        let (func, ty) = if let Some(agg) = agg_func(name, star) {
            let ty = agg_type(agg, bound.first().map(|b| b.data_type()))?;
            (WindowFunc::Aggregate(agg), ty)
        } else if let Some(func) = ranking(name) {
            let arity_ok = match func {
                WindowFunc::RowNumber
                | WindowFunc::Rank
                | WindowFunc::DenseRank
                | WindowFunc::PercentRank
                | WindowFunc::CumeDist => bound.is_empty(),
                WindowFunc::Ntile | WindowFunc::FirstValue | WindowFunc::LastValue => {
                    bound.len() == 1
                }
                WindowFunc::NthValue => bound.len() == 2,
                _ => (1..=3).contains(&bound.len()),
            };
            if !arity_ok {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!(
                        "function {name} with {} arguments does not exist",
                        bound.len()
                    ),
                ));
            }
            let ty = match func {
                WindowFunc::RowNumber | WindowFunc::Rank | WindowFunc::DenseRank => DataType::Int8,
                WindowFunc::Ntile => DataType::Int4,
                WindowFunc::PercentRank | WindowFunc::CumeDist => DataType::Float8,
                _ => bound[0].data_type(),
            };
            // Offsets and counts are integers; lag/lead's default takes
            // the value's type.
            for i in 1..bound.len() {
                let target = if i == 2 { ty.clone() } else { DataType::Int8 };
                let b =
                    std::mem::replace(&mut bound[i], Expr::Literal(Value::Null, DataType::Unknown));
                bound[i] = self.coerce(b, &target)?;
            }
            if func == WindowFunc::Ntile {
                let b =
                    std::mem::replace(&mut bound[0], Expr::Literal(Value::Null, DataType::Unknown));
                bound[0] = self.coerce(b, &DataType::Int8)?;
            }
            (func, ty)
        } else {
            return Err(SqlError::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!(
                    "OVER specified, but {name} is not a window function nor an aggregate function"
                ),
            ));
        };
        let partition_by = spec
            .partition_by
            .iter()
            .map(|e| self.bind_expr(e, scope))
            .collect::<SqlResult<Vec<_>>>()?;
        let mut order_by = Vec::new();
        for o in &spec.order_by {
            order_by.push(sort_key(self.bind_expr(&o.expr, scope)?, &o.options));
        }
        let frame = match &spec.window_frame {
            None => Frame {
                rows: false,
                start: FrameBound::UnboundedPreceding,
                // Without ORDER BY every row is a peer: the whole partition.
                end: FrameBound::CurrentRow,
            },
            Some(f) => self.frame(f, !order_by.is_empty())?,
        };
        Ok(Expr::Window(Box::new(WindowCall {
            func,
            args: bound,
            distinct,
            partition_by,
            order_by,
            frame,
            ty,
        })))
    }

    fn frame(&mut self, f: &ast::WindowFrame, ordered: bool) -> SqlResult<Frame> {
        let rows = match f.units {
            ast::WindowFrameUnits::Rows => true,
            ast::WindowFrameUnits::Range => false,
            ast::WindowFrameUnits::Groups => {
                return Err(SqlError::unsupported("GROUPS frames are not supported yet"))
            }
        };
        let mut bound = |b: &ast::WindowFrameBound, start: bool| -> SqlResult<FrameBound> {
            let offset = |e: &ast::Expr, this: &mut Self| -> SqlResult<u64> {
                if !rows {
                    return Err(SqlError::unsupported(
                        "RANGE frames with an offset are not supported yet; use ROWS",
                    ));
                }
                match this.bind_expr(e, &Scope::default())? {
                    Expr::Literal(Value::Int(n), _) if n >= 0 => Ok(n as u64),
                    Expr::Literal(Value::Text(t), _) if t.parse::<u64>().is_ok() => {
                        Ok(t.parse().unwrap_or(0))
                    }
                    _ => Err(SqlError::new(
                        SqlState("22013"),
                        "frame starting or ending offset must be a non-negative integer",
                    )),
                }
            };
            Ok(match b {
                ast::WindowFrameBound::CurrentRow => FrameBound::CurrentRow,
                ast::WindowFrameBound::Preceding(None) if start => FrameBound::UnboundedPreceding,
                ast::WindowFrameBound::Following(None) if !start => FrameBound::UnboundedFollowing,
                ast::WindowFrameBound::Preceding(Some(e)) => {
                    FrameBound::Preceding(offset(e, self)?)
                }
                ast::WindowFrameBound::Following(Some(e)) => {
                    FrameBound::Following(offset(e, self)?)
                }
                _ => {
                    return Err(SqlError::syntax(if start {
                        "frame start cannot be UNBOUNDED FOLLOWING"
                    } else {
                        "frame end cannot be UNBOUNDED PRECEDING"
                    }))
                }
            })
        };
        let start = bound(&f.start_bound, true)?;
        let end = match &f.end_bound {
            Some(b) => bound(b, false)?,
            None => FrameBound::CurrentRow,
        };
        let _ = ordered;
        Ok(Frame { rows, start, end })
    }
}

pub(super) fn contains_window(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |x| found |= matches!(x, Expr::Window(_)));
    found
}

/// Replaces the set-returning function calls in `exprs` by columns after
/// the input's `input_width` columns, under a ProjectSet plan that
/// computes them (nothing changes when there are none).
pub(super) fn plan_set_returning(
    plan: Plan,
    input_width: usize,
    exprs: &mut [&mut Expr],
) -> SqlResult<Plan> {
    let is_srf = |x: &Expr| matches!(x, Expr::Func { func, .. } if func.is_set_returning());
    let mut srfs: Vec<Expr> = Vec::new();
    for e in exprs.iter_mut() {
        let mut found = false;
        e.walk(&mut |x| found |= is_srf(x));
        if !found {
            continue;
        }
        let taken = std::mem::replace(&mut **e, Expr::Literal(Value::Null, DataType::Unknown));
        **e = taken.transform(&mut |x| {
            if !is_srf(&x) {
                return Ok(x);
            }
            let ty = x.data_type();
            let i = match srfs.iter().position(|s| *s == x) {
                Some(i) => i,
                None => {
                    srfs.push(x);
                    srfs.len() - 1
                }
            };
            Ok(Expr::Column(input_width + i, ty))
        })?;
    }
    if srfs.is_empty() {
        return Ok(plan);
    }
    Ok(Plan::ProjectSet {
        input: Box::new(plan),
        srfs,
    })
}

/// Replaces the window calls in `exprs` by columns after the input's
/// `input_width` columns, and puts a Window plan over `plan` to compute
/// them (nothing changes when there are none). Returns the plan and the
/// number of columns added.
pub(super) fn plan_windows(
    plan: Plan,
    input_width: usize,
    exprs: &mut [&mut Expr],
) -> SqlResult<(Plan, usize)> {
    let mut calls: Vec<WindowCall> = Vec::new();
    for e in exprs.iter_mut() {
        if !contains_window(e) {
            continue;
        }
        let taken = std::mem::replace(&mut **e, Expr::Literal(Value::Null, DataType::Unknown));
        **e = taken.transform(&mut |x| match x {
            Expr::Window(call) => {
                let i = match calls.iter().position(|c| *c == *call) {
                    Some(i) => i,
                    None => {
                        calls.push(*call.clone());
                        calls.len() - 1
                    }
                };
                Ok(Expr::Column(input_width + i, call.ty.clone()))
            }
            other => Ok(other),
        })?;
    }
    if calls.is_empty() {
        return Ok((plan, 0));
    }
    let added = calls.len();
    Ok((
        Plan::Window {
            input: Box::new(plan),
            calls,
        },
        added,
    ))
}
