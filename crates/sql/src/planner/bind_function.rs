//! Function calls: aggregates, window calls and ordinary functions.

use sqlparser::ast;

use super::bind::contains_aggregate;
use super::{ident_name, Planner, Scope};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{AggCall, AggFunc, Expr, SubqueryKind};
use crate::functions::{common_type, Func};
use crate::types::DataType;
use crate::value::Value;

impl Planner<'_> {
    pub(super) fn bind_function(&mut self, f: &ast::Function, scope: &Scope) -> SqlResult<Expr> {
        let name = f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(ident_name)
            .ok_or_else(|| SqlError::syntax("invalid function name"))?;
        let (args, distinct, star) = match &f.args {
            ast::FunctionArguments::None => (vec![], false, false),
            ast::FunctionArguments::Subquery(q) => {
                // ARRAY(SELECT ...)
                let plan = self.plan_subquery(q, scope)?;
                let elem = plan
                    .columns
                    .first()
                    .map(|c| c.data_type.clone())
                    .unwrap_or(DataType::Text);
                return Ok(Expr::Subquery {
                    kind: SubqueryKind::Array,
                    plan: Box::new(plan.plan),
                    ty: DataType::Array(Box::new(elem)),
                });
            }
            ast::FunctionArguments::List(list) => {
                let distinct = matches!(
                    list.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                let mut args = Vec::new();
                let mut star = false;
                for a in &list.args {
                    match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => args.push(x),
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => star = true,
                        _ => {
                            return Err(SqlError::unsupported(format!(
                                "function argument not supported in {name}"
                            )))
                        }
                    }
                }
                (args, distinct, star)
            }
        };
        if let Some(over) = &f.over {
            return self.bind_window_call(&name, &args, distinct, star, over, scope);
        }
        if let Some(agg) = agg_func(&name, star) {
            let bound = args
                .iter()
                .map(|a| self.bind_expr(a, scope))
                .collect::<SqlResult<Vec<_>>>()?;
            if bound.iter().any(contains_aggregate) {
                return Err(SqlError::new(
                    SqlState::GROUPING_ERROR,
                    "aggregate function calls cannot be nested",
                ));
            }
            let ty = agg_type(agg, bound.first().map(|b| b.data_type()))?;
            let expected = match agg {
                AggFunc::CountStar => 0,
                AggFunc::StringAgg => 2,
                _ => 1,
            };
            if bound.len() != expected {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!(
                        "function {name} with {} arguments does not exist",
                        bound.len()
                    ),
                ));
            }
            let bound = match agg {
                AggFunc::StringAgg | AggFunc::BoolAnd | AggFunc::BoolOr => {
                    let t = if agg == AggFunc::StringAgg {
                        DataType::Text
                    } else {
                        DataType::Bool
                    };
                    bound
                        .into_iter()
                        .map(|b| self.coerce(b, &t))
                        .collect::<SqlResult<_>>()?
                }
                _ => bound,
            };
            let mut order_by = Vec::new();
            if let ast::FunctionArguments::List(list) = &f.args {
                for clause in &list.clauses {
                    if let ast::FunctionArgumentClause::OrderBy(keys) = clause {
                        for o in keys {
                            order_by.push(super::select::sort_key(
                                self.bind_expr(&o.expr, scope)?,
                                &o.options,
                            ));
                        }
                    }
                }
            }
            let filter = match &f.filter {
                Some(c) => {
                    let b = self.bind_expr(c, scope)?;
                    Some(Box::new(self.condition(b, "FILTER")?))
                }
                None => None,
            };
            return Ok(Expr::Aggregate(Box::new(AggCall {
                func: agg,
                args: bound,
                distinct,
                filter,
                order_by,
                ty,
            })));
        }
        let mut bound = Vec::with_capacity(args.len());
        for a in &args {
            bound.push(self.bind_expr(a, scope)?);
        }
        // nextval('seq'::regclass): the sequence name, not an OID.
        if matches!(name.as_str(), "nextval" | "currval" | "setval") {
            if let Some(Expr::Func {
                func: Func::ToRegclass,
                args,
                ..
            }) = bound.first().cloned()
            {
                bound[0] = args[0].clone();
            }
            bound[0] = match &bound[0] {
                // A constant name is looked up now, in the statement's
                // transaction, so that a sequence made earlier in it
                // counts (a plan is cached per catalog version).
                Expr::Literal(Value::Text(seq), _) => {
                    let oid = self.catalog.sequence_oid(seq)?;
                    Expr::Literal(Value::Int(oid.into()), DataType::Oid)
                }
                other => self.coerce(other.clone(), &DataType::Text)?,
            };
            for b in bound.iter_mut().skip(1) {
                let t = if matches!(b.data_type(), DataType::Bool) {
                    DataType::Bool
                } else {
                    DataType::Int8
                };
                *b = self.coerce(b.clone(), &t)?;
            }
        }
        let types: Vec<DataType> = bound.iter().map(Expr::data_type).collect();
        let (func, ty) = Func::resolve(&name, &types)?;
        // Untyped arguments take the function's common type (coalesce, greatest).
        if matches!(
            func,
            Func::Coalesce | Func::Greatest | Func::Least | Func::NullIf
        ) {
            let t = if func == Func::NullIf {
                common_type(&types)?
            } else {
                ty.clone()
            };
            bound = bound
                .into_iter()
                .map(|b| self.coerce(b, &t))
                .collect::<SqlResult<_>>()?;
        } else {
            bound = bound
                .into_iter()
                .map(|b| {
                    if b.data_type() == DataType::Unknown {
                        self.coerce(b, &DataType::Text)
                    } else {
                        Ok(b)
                    }
                })
                .collect::<SqlResult<_>>()?;
        }
        Ok(Expr::Func {
            func,
            args: bound,
            ty,
        })
    }
}

pub(super) fn agg_func(name: &str, star: bool) -> Option<AggFunc> {
    Some(match name {
        "count" if star => AggFunc::CountStar,
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        "bool_and" | "every" => AggFunc::BoolAnd,
        "bool_or" => AggFunc::BoolOr,
        "string_agg" => AggFunc::StringAgg,
        "array_agg" => AggFunc::ArrayAgg,
        _ => return None,
    })
}

pub(super) fn agg_type(agg: AggFunc, arg: Option<DataType>) -> SqlResult<DataType> {
    use DataType as T;
    Ok(match agg {
        AggFunc::CountStar | AggFunc::Count => T::Int8,
        AggFunc::Sum => match arg {
            Some(T::Int2 | T::Int4) => T::Int8,
            Some(T::Int8 | T::Numeric(_)) => T::Numeric(None),
            Some(T::Float4) => T::Float4,
            Some(T::Float8) => T::Float8,
            Some(T::Unknown) => T::Numeric(None),
            Some(other) => return Err(no_agg("sum", &other)),
            None => T::Numeric(None),
        },
        AggFunc::Avg => match arg {
            Some(T::Float4 | T::Float8) => T::Float8,
            Some(t) if t.is_numeric() || t == T::Unknown => T::Numeric(None),
            Some(other) => return Err(no_agg("avg", &other)),
            None => T::Numeric(None),
        },
        AggFunc::Min | AggFunc::Max => match arg {
            Some(T::Unknown) | None => T::Text,
            Some(t) => t,
        },
        AggFunc::BoolAnd | AggFunc::BoolOr => T::Bool,
        AggFunc::StringAgg => T::Text,
        AggFunc::ArrayAgg => match arg {
            Some(T::Unknown) | None => T::Array(Box::new(T::Text)),
            Some(t) => T::Array(Box::new(t)),
        },
    })
}

fn no_agg(name: &str, t: &DataType) -> SqlError {
    SqlError::new(SqlState::UNDEFINED_FUNCTION, format!("function {name}({}) does not exist", t.sql_name()))
        .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")
}
