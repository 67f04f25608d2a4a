//! Binding expressions: names to row positions, literals and parameters
//! typed from their context, functions resolved.

use sqlparser::ast::{self, BinaryOperator, UnaryOperator};

use super::{ident_name, Planner, Scope};
use crate::cast::cast;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{BinOp, Expr, SubqueryKind};
use crate::functions::{common_type, Func};
use crate::types::DataType;
use crate::value::Value;

/// Most parameters a Bind message can carry (its count is 16 bits).
const MAX_PARAMS: usize = 65_535;

impl Planner<'_> {
    /// Binds an expression in `scope` (enclosing scopes are searched for
    /// correlated references).
    pub fn bind_expr(&mut self, e: &ast::Expr, scope: &Scope) -> SqlResult<Expr> {
        use ast::Expr as A;
        crate::depth::check_stack()?;
        // Parentheses add nothing to bind: peel them without recursing, as
        // 9,999 of them are a statement PostgreSQL accepts.
        let mut e = e;
        while let A::Nested(inner) = e {
            e = inner;
        }
        Ok(match e {
            A::Identifier(id) => self.bind_column(None, &ident_name(id), scope)?,
            A::CompoundIdentifier(ids) => {
                let names: Vec<String> = ids.iter().map(ident_name).collect();
                match names.as_slice() {
                    [t, c] => self.bind_column(Some(t), c, scope)?,
                    [_, t, c] | [_, _, t, c] => self.bind_column(Some(t), c, scope)?,
                    _ => return Err(SqlError::syntax(format!("invalid column reference {e}"))),
                }
            }
            A::Value(v) => self.bind_value(&v.value)?,
            A::Nested(inner) => self.bind_expr(inner, scope)?,
            A::Collate { expr, .. } => self.bind_expr(expr, scope)?,
            A::BinaryOp { left, op, right } => {
                let l = self.bind_expr(left, scope)?;
                let r = self.bind_expr(right, scope)?;
                self.bind_binary(op, l, r)?
            }
            A::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => {
                    Expr::Not(Box::new(self.bind_as(expr, scope, &DataType::Bool)?))
                }
                UnaryOperator::Minus => match self.bind_expr(expr, scope)? {
                    Expr::Literal(Value::Int(i), _) => Expr::literal(Value::Int(-i)),
                    Expr::Literal(Value::Numeric(d), ty) => Expr::Literal(Value::Numeric(-d), ty),
                    Expr::Literal(Value::Float(f), ty) => Expr::Literal(Value::Float(-f), ty),
                    other => Expr::Neg(Box::new(other)),
                },
                UnaryOperator::Plus => self.bind_expr(expr, scope)?,
                other => {
                    return Err(SqlError::unsupported(format!(
                        "operator {other} is not supported"
                    )))
                }
            },
            A::IsNull(x) => Expr::IsNull {
                expr: Box::new(self.bind_expr(x, scope)?),
                negated: false,
            },
            A::IsNotNull(x) => Expr::IsNull {
                expr: Box::new(self.bind_expr(x, scope)?),
                negated: true,
            },
            A::IsTrue(x) => self.is_bool(x, scope, true, false)?,
            A::IsNotTrue(x) => self.is_bool(x, scope, true, true)?,
            A::IsFalse(x) => self.is_bool(x, scope, false, false)?,
            A::IsNotFalse(x) => self.is_bool(x, scope, false, true)?,
            A::IsUnknown(x) => Expr::IsNull {
                expr: Box::new(self.bind_expr(x, scope)?),
                negated: false,
            },
            A::IsNotUnknown(x) => Expr::IsNull {
                expr: Box::new(self.bind_expr(x, scope)?),
                negated: true,
            },
            A::IsDistinctFrom(l, r) | A::IsNotDistinctFrom(l, r) => {
                let (l, r) = self.bind_pair(l, r, scope)?;
                Expr::IsDistinct {
                    left: Box::new(l),
                    right: Box::new(r),
                    negated: matches!(e, A::IsNotDistinctFrom(..)),
                }
            }
            A::InList {
                expr,
                list,
                negated,
            } => {
                let x = self.bind_expr(expr, scope)?;
                let ty = x.data_type();
                let list = list
                    .iter()
                    .map(|i| {
                        let b = self.bind_expr(i, scope)?;
                        self.coerce(b, &ty)
                    })
                    .collect::<SqlResult<_>>()?;
                Expr::InList {
                    expr: Box::new(x),
                    list,
                    negated: *negated,
                }
            }
            A::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | A::AllOp {
                left,
                compare_op,
                right,
            } => {
                let l = self.bind_expr(left, scope)?;
                let array = self.bind_expr(right, scope)?;
                // Reuse the operator binding for the element comparison's typing.
                let op = match self.bind_binary(
                    compare_op,
                    l.clone(),
                    Expr::Literal(Value::Null, DataType::Unknown),
                )? {
                    Expr::Binary { op, .. } => op,
                    _ => return Err(SqlError::internal("comparison expected")),
                };
                if !op.is_comparison() {
                    return Err(SqlError::syntax("ANY/ALL needs a comparison operator"));
                }
                Expr::AnyAll {
                    left: Box::new(l),
                    op,
                    array: Box::new(array),
                    all: matches!(e, A::AllOp { .. }),
                }
            }
            A::CompoundFieldAccess { root, access_chain } => {
                // `t.col[1]` arrives as root `t` with `.col` first in the
                // chain: a qualified column name, then the rest.
                let mut chain = access_chain.as_slice();
                let mut x = match (&**root, chain.first()) {
                    (A::Identifier(q), Some(ast::AccessExpr::Dot(A::Identifier(c)))) => {
                        chain = &chain[1..];
                        self.bind_expr(&A::CompoundIdentifier(vec![q.clone(), c.clone()]), scope)?
                    }
                    _ => self.bind_expr(root, scope)?,
                };
                for access in chain {
                    if let (
                        ast::AccessExpr::Dot(ast::Expr::Identifier(field)),
                        DataType::Record(fields),
                    ) = (access, x.data_type())
                    {
                        let name = ident_name(field);
                        let i = fields.iter().position(|(n, _)| *n == name).ok_or_else(|| {
                            SqlError::new(
                                SqlState::UNDEFINED_COLUMN,
                                format!("could not identify column \"{name}\" in record data type"),
                            )
                        })?;
                        x = Expr::Func {
                            func: Func::RecordField(i),
                            args: vec![x],
                            ty: fields[i].1.clone(),
                        };
                        continue;
                    }
                    let ast::AccessExpr::Subscript(ast::Subscript::Index { index }) = access else {
                        return Err(SqlError::unsupported(format!(
                            "field access not supported: {access}"
                        )));
                    };
                    let ty = match x.data_type() {
                        DataType::Array(elem) => *elem,
                        other => {
                            return Err(SqlError::new(
                                SqlState::DATATYPE_MISMATCH,
                                format!(
                                    "cannot subscript type {} because it is not an array",
                                    other.sql_name()
                                ),
                            ))
                        }
                    };
                    let i = self.bind_as(index, scope, &DataType::Int4)?;
                    x = Expr::Func {
                        func: Func::Subscript,
                        args: vec![x, i],
                        ty,
                    };
                }
                x
            }
            A::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.bind_expr(expr, scope)?;
                let lo = self.bind_expr(low, scope)?;
                let hi = self.bind_expr(high, scope)?;
                let ge = self.bind_binary(&BinaryOperator::GtEq, x.clone(), lo)?;
                let le = self.bind_binary(&BinaryOperator::LtEq, x, hi)?;
                let both = Expr::Binary {
                    op: BinOp::And,
                    left: Box::new(ge),
                    right: Box::new(le),
                    ty: DataType::Bool,
                };
                if *negated {
                    Expr::Not(Box::new(both))
                } else {
                    both
                }
            }
            A::Like {
                negated,
                expr,
                pattern,
                ..
            }
            | A::ILike {
                negated,
                expr,
                pattern,
                ..
            } => {
                let x = self.bind_as(expr, scope, &DataType::Text)?;
                let p = self.bind_as(pattern, scope, &DataType::Text)?;
                Expr::Like {
                    expr: Box::new(x),
                    pattern: Box::new(p),
                    negated: *negated,
                    case_insensitive: matches!(e, A::ILike { .. }),
                }
            }
            A::Cast {
                expr, data_type, ..
            } => self.bind_cast(expr, data_type, scope)?,
            A::TypedString(ts) => {
                let ty = super::convert_type(&ts.data_type)?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                Expr::Literal(cast(Value::Text(text), &ty, &self.tz, true)?, ty)
            }
            A::Function(f) => self.bind_function(f, scope)?,
            A::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = operand
                    .as_ref()
                    .map(|o| self.bind_expr(o, scope))
                    .transpose()?;
                let op_ty = operand.as_ref().map(|o| o.data_type());
                let mut whens = Vec::new();
                let mut results = Vec::new();
                for cw in conditions {
                    let cond = self.bind_expr(&cw.condition, scope)?;
                    let cond = match &op_ty {
                        Some(t) => self.coerce(cond, t)?,
                        None => self.coerce(cond, &DataType::Bool)?,
                    };
                    whens.push(cond);
                    results.push(self.bind_expr(&cw.result, scope)?);
                }
                let else_ = else_result
                    .as_ref()
                    .map(|x| self.bind_expr(x, scope))
                    .transpose()?;
                let mut types: Vec<DataType> = results.iter().map(Expr::data_type).collect();
                if let Some(e) = &else_ {
                    types.push(e.data_type());
                }
                let ty = common_type(&types)?;
                let results = results
                    .into_iter()
                    .map(|r| self.coerce(r, &ty))
                    .collect::<SqlResult<Vec<_>>>()?;
                let else_ = else_.map(|x| self.coerce(x, &ty)).transpose()?;
                Expr::Case {
                    operand: operand.map(Box::new),
                    whens: whens.into_iter().zip(results).collect(),
                    else_: else_.map(Box::new),
                    ty,
                }
            }
            A::Extract { field, expr, .. } => {
                let x = self.bind_expr(expr, scope)?;
                let field = Expr::literal(Value::Text(field.to_string().to_lowercase()));
                let (func, ty) = Func::resolve("date_part", &[DataType::Text, x.data_type()])?;
                // EXTRACT is date_part returning numeric (PostgreSQL 14+).
                Expr::Cast {
                    expr: Box::new(Expr::Func {
                        func,
                        args: vec![field, x],
                        ty,
                    }),
                    ty: DataType::Numeric(None),
                }
            }
            A::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.bind_expr(expr, scope)?];
                args.push(match substring_from {
                    Some(f) => self.bind_as(f, scope, &DataType::Int4)?,
                    None => Expr::literal(Value::Int(1)),
                });
                if let Some(f) = substring_for {
                    args.push(self.bind_as(f, scope, &DataType::Int4)?);
                }
                Expr::Func {
                    func: Func::Substr,
                    args,
                    ty: DataType::Text,
                }
            }
            A::Trim {
                expr,
                trim_where,
                trim_what,
                ..
            } => {
                let func = match trim_where {
                    Some(ast::TrimWhereField::Leading) => Func::LTrim,
                    Some(ast::TrimWhereField::Trailing) => Func::RTrim,
                    _ => Func::Trim,
                };
                let mut args = vec![self.bind_as(expr, scope, &DataType::Text)?];
                if let Some(w) = trim_what {
                    args.push(self.bind_as(w, scope, &DataType::Text)?);
                }
                Expr::Func {
                    func,
                    args,
                    ty: DataType::Text,
                }
            }
            A::Position { expr, r#in } => {
                let needle = self.bind_as(expr, scope, &DataType::Text)?;
                let hay = self.bind_as(r#in, scope, &DataType::Text)?;
                Expr::Func {
                    func: Func::StrPos,
                    args: vec![hay, needle],
                    ty: DataType::Int4,
                }
            }
            A::Ceil { expr, .. } | A::Floor { expr, .. } => {
                let x = self.bind_expr(expr, scope)?;
                let name = if matches!(e, A::Ceil { .. }) {
                    "ceil"
                } else {
                    "floor"
                };
                let (func, ty) = Func::resolve(name, &[x.data_type()])?;
                Expr::Func {
                    func,
                    args: vec![x],
                    ty,
                }
            }
            A::Subquery(q) => {
                let plan = self.plan_subquery(q, scope)?;
                let ty = plan
                    .columns
                    .first()
                    .map(|c| c.data_type.clone())
                    .unwrap_or(DataType::Text);
                if plan.columns.len() != 1 {
                    return Err(SqlError::syntax("subquery must return only one column"));
                }
                Expr::Subquery {
                    kind: SubqueryKind::Scalar,
                    plan: Box::new(plan.plan),
                    ty,
                }
            }
            A::Exists { subquery, negated } => {
                let plan = self.plan_subquery(subquery, scope)?;
                Expr::Subquery {
                    kind: SubqueryKind::Exists { negated: *negated },
                    plan: Box::new(plan.plan),
                    ty: DataType::Bool,
                }
            }
            A::InSubquery {
                expr,
                subquery,
                negated,
            } => {
                let x = self.bind_expr(expr, scope)?;
                let plan = self.plan_subquery(subquery, scope)?;
                if plan.columns.len() != 1 {
                    return Err(SqlError::syntax("subquery has too many columns"));
                }
                Expr::Subquery {
                    kind: SubqueryKind::In {
                        expr: Box::new(x),
                        negated: *negated,
                    },
                    plan: Box::new(plan.plan),
                    ty: DataType::Bool,
                }
            }
            A::Interval(iv) => self.bind_interval(iv, scope)?,
            A::Array(array) => {
                let items = array
                    .elem
                    .iter()
                    .map(|e| self.bind_expr(e, scope))
                    .collect::<SqlResult<Vec<_>>>()?;
                let types: Vec<DataType> = items.iter().map(Expr::data_type).collect();
                let elem = match crate::functions::common_type(&types)? {
                    DataType::Unknown => DataType::Text,
                    t => t,
                };
                let items = items
                    .into_iter()
                    .map(|e| self.coerce(e, &elem))
                    .collect::<SqlResult<Vec<_>>>()?;
                Expr::Func {
                    func: Func::MakeArray,
                    args: items,
                    ty: DataType::Array(Box::new(elem)),
                }
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "expression not supported: {other}"
                )))
            }
        })
    }

    /// `INTERVAL '1 day'`, `INTERVAL '3' HOUR`.
    fn bind_interval(&mut self, iv: &ast::Interval, scope: &Scope) -> SqlResult<Expr> {
        let value = self.bind_expr(&iv.value, scope)?;
        let Expr::Literal(Value::Text(text), _) = &value else {
            return Err(SqlError::unsupported("INTERVAL needs a string literal"));
        };
        let text = match &iv.leading_field {
            Some(field) if iv.last_field.is_none() && !text.contains(char::is_alphabetic) => {
                format!("{text} {field}")
            }
            _ => text.clone(),
        };
        Ok(Expr::Literal(
            Value::from_text(&DataType::Interval, &text, &self.tz)?,
            DataType::Interval,
        ))
    }

    /// The json operators: their operand and result types.
    fn bind_json_op(&mut self, op: BinOp, l: Expr, r: Expr) -> SqlResult<Option<Expr>> {
        let result = match op {
            BinOp::JsonGet { as_text } | BinOp::JsonPath { as_text } => {
                let lt = l.data_type();
                let doc_type = match lt {
                    DataType::Json => DataType::Json,
                    _ => DataType::Jsonb,
                };
                let l = self.coerce(l, &doc_type)?;
                let r = match (op, r.data_type()) {
                    (BinOp::JsonPath { .. }, _) => {
                        self.coerce(r, &DataType::Array(Box::new(DataType::Text)))?
                    }
                    (_, t) if t.is_integer() => r,
                    _ => self.coerce(r, &DataType::Text)?,
                };
                let ty = if as_text { DataType::Text } else { doc_type };
                (l, r, ty)
            }
            BinOp::JsonContains | BinOp::JsonContainedIn => (
                self.coerce(l, &DataType::Jsonb)?,
                self.coerce(r, &DataType::Jsonb)?,
                DataType::Bool,
            ),
            BinOp::JsonHasKey => (
                self.coerce(l, &DataType::Jsonb)?,
                self.coerce(r, &DataType::Text)?,
                DataType::Bool,
            ),
            _ => return Ok(None),
        };
        let (l, r, ty) = result;
        let lt = l.data_type();
        if matches!(
            op,
            BinOp::JsonContains | BinOp::JsonContainedIn | BinOp::JsonHasKey
        ) && lt != DataType::Jsonb
        {
            return Err(SqlError::new(
                SqlState::UNDEFINED_FUNCTION,
                format!(
                    "operator does not exist: {} {} {}",
                    lt.sql_name(),
                    op.symbol(),
                    r.data_type().sql_name()
                ),
            ));
        }
        Ok(Some(Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty,
        }))
    }

    /// Binds an expression and coerces it to `ty`.
    pub fn bind_as(&mut self, e: &ast::Expr, scope: &Scope, ty: &DataType) -> SqlResult<Expr> {
        let b = self.bind_expr(e, scope)?;
        self.coerce(b, ty)
    }

    fn is_bool(
        &mut self,
        x: &ast::Expr,
        scope: &Scope,
        value: bool,
        negated: bool,
    ) -> SqlResult<Expr> {
        let x = self.bind_as(x, scope, &DataType::Bool)?;
        Ok(Expr::IsBool {
            expr: Box::new(x),
            value,
            negated,
        })
    }

    fn bind_pair(
        &mut self,
        l: &ast::Expr,
        r: &ast::Expr,
        scope: &Scope,
    ) -> SqlResult<(Expr, Expr)> {
        let l = self.bind_expr(l, scope)?;
        let r = self.bind_expr(r, scope)?;
        let (lt, rt) = (l.data_type(), r.data_type());
        Ok((self.coerce(l, &rt)?, self.coerce(r, &lt)?))
    }

    fn bind_column(
        &mut self,
        qualifier: Option<&str>,
        name: &str,
        scope: &Scope,
    ) -> SqlResult<Expr> {
        if let Some(i) = scope.resolve(qualifier, name)? {
            return Ok(Expr::Column(i, scope.columns[i].ty.clone()));
        }
        for (depth, outer) in self.outer.iter().rev().enumerate() {
            if let Some(i) = outer.resolve(qualifier, name)? {
                return Ok(Expr::OuterColumn {
                    depth: depth + 1,
                    index: i,
                    ty: outer.columns[i].ty.clone(),
                });
            }
        }
        // Keywords PostgreSQL treats as functions without parentheses.
        if qualifier.is_none() {
            if let Ok((func, ty)) = Func::resolve(name, &[]) {
                if matches!(
                    name,
                    "current_user"
                        | "session_user"
                        | "user"
                        | "current_role"
                        | "current_catalog"
                        | "current_schema"
                        | "current_date"
                        | "current_timestamp"
                        | "localtimestamp"
                ) {
                    return Ok(Expr::Func {
                        func,
                        args: vec![],
                        ty,
                    });
                }
            }
        }
        match qualifier {
            Some(q)
                if !scope.has_qualifier(q) && self.outer.iter().all(|s| !s.has_qualifier(q)) =>
            {
                Err(SqlError::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("missing FROM-clause entry for table \"{q}\""),
                ))
            }
            Some(q) => Err(SqlError::new(
                SqlState::UNDEFINED_COLUMN,
                format!("column {q}.{name} does not exist"),
            )),
            None => Err(SqlError::undefined_column(name)),
        }
    }

    fn bind_value(&mut self, v: &ast::Value) -> SqlResult<Expr> {
        use ast::Value as V;
        Ok(match v {
            V::Number(n, _) => {
                if let Ok(i) = n.parse::<i64>() {
                    Expr::literal(Value::Int(i))
                } else {
                    let d = n
                        .parse::<rust_decimal::Decimal>()
                        .or_else(|_| rust_decimal::Decimal::from_scientific(n))
                        .map_err(|_| SqlError::invalid_text("numeric", n))?;
                    Expr::Literal(Value::Numeric(d), DataType::Numeric(None))
                }
            }
            V::SingleQuotedString(s)
            | V::EscapedStringLiteral(s)
            | V::DoubleQuotedString(s)
            | V::UnicodeStringLiteral(s) => {
                Expr::Literal(Value::Text(s.clone()), DataType::Unknown)
            }
            V::DollarQuotedString(d) => {
                Expr::Literal(Value::Text(d.value.clone()), DataType::Unknown)
            }
            V::HexStringLiteral(h) => {
                Expr::Literal(Value::Text(format!("\\x{h}")), DataType::Unknown)
            }
            V::Boolean(b) => Expr::literal(Value::Bool(*b)),
            V::Null => Expr::Literal(Value::Null, DataType::Unknown),
            V::Placeholder(p) => {
                let n: usize = p
                    .trim_start_matches('$')
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| SqlError::syntax(format!("syntax error at or near \"{p}\"")))?;
                // The protocol carries at most 65535 parameters; a larger
                // number can never be bound (and must not size a vector).
                if n > MAX_PARAMS {
                    return Err(SqlError::new(
                        SqlState::UNDEFINED_PARAMETER,
                        format!("there is no parameter ${n}"),
                    ));
                }
                if self.params.len() < n {
                    self.params.resize(n, DataType::Unknown);
                }
                Expr::Param(n - 1, self.params[n - 1].clone())
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "literal not supported: {other}"
                )))
            }
        })
    }

    /// Makes `e` usable where type `ty` is expected: untyped literals are
    /// parsed as `ty`, untyped parameters take `ty`.
    pub fn coerce(&mut self, e: Expr, ty: &DataType) -> SqlResult<Expr> {
        if *ty == DataType::Unknown {
            return Ok(e);
        }
        // Length limits are checked on assignment (22001), not here.
        let ty = &match ty {
            DataType::Varchar(Some(_)) => DataType::Varchar(None),
            DataType::Char(_) => DataType::Text,
            other => other.clone(),
        };
        Ok(match e {
            Expr::Literal(Value::Null, DataType::Unknown) => Expr::Literal(Value::Null, ty.clone()),
            Expr::Literal(v, DataType::Unknown) => {
                Expr::Literal(cast(v, ty, &self.tz, true)?, ty.clone())
            }
            Expr::Param(i, DataType::Unknown) => {
                if let Some(slot) = self.params.get_mut(i) {
                    *slot = ty.clone();
                }
                Expr::Param(i, ty.clone())
            }
            other => other,
        })
    }

    /// Binary operator with operand coercion and result typing.
    pub fn bind_binary(&mut self, op: &BinaryOperator, l: Expr, r: Expr) -> SqlResult<Expr> {
        use BinaryOperator as B;
        let op = match op {
            B::Plus => BinOp::Add,
            B::Minus => BinOp::Sub,
            B::Multiply => BinOp::Mul,
            B::Divide => BinOp::Div,
            B::Modulo => BinOp::Mod,
            B::Eq => BinOp::Eq,
            B::NotEq => BinOp::NotEq,
            B::Lt => BinOp::Lt,
            B::LtEq => BinOp::LtEq,
            B::Gt => BinOp::Gt,
            B::GtEq => BinOp::GtEq,
            B::And => BinOp::And,
            B::Or => BinOp::Or,
            B::StringConcat => BinOp::Concat,
            B::PGRegexMatch => BinOp::RegexMatch {
                case_insensitive: false,
                negated: false,
            },
            B::PGRegexIMatch => BinOp::RegexMatch {
                case_insensitive: true,
                negated: false,
            },
            B::PGRegexNotMatch => BinOp::RegexMatch {
                case_insensitive: false,
                negated: true,
            },
            B::PGRegexNotIMatch => BinOp::RegexMatch {
                case_insensitive: true,
                negated: true,
            },
            B::BitwiseAnd => BinOp::BitAnd,
            B::BitwiseOr => BinOp::BitOr,
            B::Arrow => BinOp::JsonGet { as_text: false },
            B::LongArrow => BinOp::JsonGet { as_text: true },
            B::HashArrow => BinOp::JsonPath { as_text: false },
            B::HashLongArrow => BinOp::JsonPath { as_text: true },
            B::AtArrow => BinOp::JsonContains,
            B::ArrowAt => BinOp::JsonContainedIn,
            B::Question => BinOp::JsonHasKey,
            B::PGCustomBinaryOperator(parts) => match parts.last().map(String::as_str) {
                Some("~") => BinOp::RegexMatch {
                    case_insensitive: false,
                    negated: false,
                },
                Some("~*") => BinOp::RegexMatch {
                    case_insensitive: true,
                    negated: false,
                },
                Some("!~") => BinOp::RegexMatch {
                    case_insensitive: false,
                    negated: true,
                },
                Some("=") => BinOp::Eq,
                Some("<>") => BinOp::NotEq,
                _ => {
                    return Err(SqlError::unsupported(format!(
                        "operator {op} is not supported"
                    )))
                }
            },
            other => {
                return Err(SqlError::unsupported(format!(
                    "operator {other} is not supported"
                )))
            }
        };
        let (lt, rt) = (l.data_type(), r.data_type());
        if let Some(bound) = self.bind_json_op(op, l.clone(), r.clone())? {
            return Ok(bound);
        }
        let (l, r) = match op {
            BinOp::And | BinOp::Or => (
                self.coerce(l, &DataType::Bool)?,
                self.coerce(r, &DataType::Bool)?,
            ),
            BinOp::Concat
                if matches!(lt, DataType::Array(_)) || matches!(rt, DataType::Array(_)) =>
            {
                (l, r)
            }
            BinOp::Concat | BinOp::RegexMatch { .. } => (
                self.coerce(l, &DataType::Text)?,
                self.coerce(r, &DataType::Text)?,
            ),
            _ => {
                // Untyped sides take the other side's type.
                let (lt2, rt2) = (
                    if lt == DataType::Unknown {
                        rt.clone()
                    } else {
                        lt.clone()
                    },
                    if rt == DataType::Unknown {
                        lt.clone()
                    } else {
                        rt.clone()
                    },
                );
                (self.coerce(l, &lt2)?, self.coerce(r, &rt2)?)
            }
        };
        let (lt, rt) = (l.data_type(), r.data_type());
        let ty = match op {
            BinOp::Add
            | BinOp::Sub
            | BinOp::Mul
            | BinOp::Div
            | BinOp::Mod
            | BinOp::BitAnd
            | BinOp::BitOr => arith_type(op, &lt, &rt)?,
            BinOp::Concat => match (&lt, &rt) {
                (DataType::Array(e), _) | (_, DataType::Array(e)) => DataType::Array(e.clone()),
                _ => DataType::Text,
            },
            _ => DataType::Bool,
        };
        if op.is_comparison() {
            check_comparable(&lt, &rt, op)?;
        }
        Ok(Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty,
        })
    }

    fn bind_cast(
        &mut self,
        expr: &ast::Expr,
        data_type: &ast::DataType,
        scope: &Scope,
    ) -> SqlResult<Expr> {
        let is_regclass = matches!(data_type, ast::DataType::Regclass)
            || matches!(data_type, ast::DataType::Custom(n, _) if n.to_string().to_lowercase().ends_with("regclass"));
        let inner = self.bind_expr(expr, scope)?;
        if is_regclass {
            // 'name'::regclass: keep the name for nextval(), resolve otherwise.
            if let Expr::Literal(Value::Text(name), _) = &inner {
                if let Ok(i) = name.parse::<i64>() {
                    return Ok(Expr::Literal(Value::Int(i), DataType::Oid));
                }
                return Ok(Expr::Func {
                    func: Func::ToRegclass,
                    args: vec![Expr::literal(Value::Text(name.clone()))],
                    ty: DataType::Oid,
                });
            }
            // oid::regclass prints as the relation's name.
            if matches!(
                inner.data_type(),
                DataType::Oid | DataType::Int4 | DataType::Int8
            ) {
                return Ok(Expr::Func {
                    func: Func::RegclassName,
                    args: vec![inner],
                    ty: DataType::Name,
                });
            }
        }
        let is_regnamespace = matches!(data_type, ast::DataType::Custom(n, _) if n.to_string().to_lowercase().ends_with("regnamespace"));
        if is_regnamespace {
            if let Expr::Literal(Value::Text(name), _) = &inner {
                let oid = match name.as_str() {
                    "pg_catalog" => crate::catalog::PG_CATALOG_NAMESPACE_OID,
                    "public" => crate::catalog::PUBLIC_NAMESPACE_OID,
                    "information_schema" => crate::catalog::INFORMATION_SCHEMA_NAMESPACE_OID,
                    other => {
                        return Err(SqlError::new(
                            SqlState::INVALID_SCHEMA_NAME,
                            format!("schema \"{other}\" does not exist"),
                        ))
                    }
                };
                return Ok(Expr::Literal(Value::Int(oid as i64), DataType::Oid));
            }
        }
        let ty = super::convert_type(data_type)?;
        Ok(match inner {
            Expr::Literal(v, DataType::Unknown) => Expr::Literal(cast(v, &ty, &self.tz, true)?, ty),
            Expr::Param(i, DataType::Unknown) => {
                if let Some(slot) = self.params.get_mut(i) {
                    *slot = ty.clone();
                }
                Expr::Param(i, ty)
            }
            other => Expr::Cast {
                expr: Box::new(other),
                ty,
            },
        })
    }
}

pub fn contains_aggregate(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |x| {
        if matches!(x, Expr::Aggregate(_)) {
            found = true;
        }
    });
    found
}

fn arith_type(op: BinOp, l: &DataType, r: &DataType) -> SqlResult<DataType> {
    use DataType as T;
    let rank = |t: &DataType| match t {
        T::Int2 => Some(0),
        T::Int4 | T::Oid => Some(1),
        T::Int8 => Some(2),
        T::Numeric(_) => Some(3),
        T::Float4 => Some(4),
        T::Float8 => Some(5),
        T::Unknown => Some(1),
        _ => None,
    };
    match (l, r, op) {
        (T::Date, t, BinOp::Add | BinOp::Sub) | (t, T::Date, BinOp::Add) if t.is_integer() => {
            return Ok(T::Date)
        }
        (T::Date, T::Date, BinOp::Sub) => return Ok(T::Int4),
        // Interval arithmetic.
        (T::Date | T::Timestamp, T::Interval, BinOp::Add | BinOp::Sub)
        | (T::Interval, T::Date | T::Timestamp, BinOp::Add) => return Ok(T::Timestamp),
        (T::TimestampTz, T::Interval, BinOp::Add | BinOp::Sub)
        | (T::Interval, T::TimestampTz, BinOp::Add) => return Ok(T::TimestampTz),
        (T::Interval, T::Interval, BinOp::Add | BinOp::Sub) => return Ok(T::Interval),
        (a, b, BinOp::BitAnd | BinOp::BitOr) => {
            let a = if *a == T::Unknown { b } else { a };
            return if a.is_integer() && (b.is_integer() || *b == T::Unknown) {
                Ok(if *a == T::Int8 || *b == T::Int8 {
                    T::Int8
                } else {
                    a.clone()
                })
            } else {
                Err(SqlError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!(
                        "operator does not exist: {} {} {}",
                        a.sql_name(),
                        op.symbol(),
                        b.sql_name()
                    ),
                ))
            };
        }
        (T::Interval, t, BinOp::Mul | BinOp::Div) | (t, T::Interval, BinOp::Mul)
            if t.is_numeric() =>
        {
            return Ok(T::Interval)
        }
        (T::Timestamp, T::Timestamp, BinOp::Sub) | (T::TimestampTz, T::TimestampTz, BinOp::Sub) => {
            return Ok(T::Interval)
        }
        _ => {}
    }
    match (rank(l), rank(r)) {
        (Some(a), Some(b)) => Ok(match a.max(b) {
            0 => T::Int2,
            1 => T::Int4,
            2 => T::Int8,
            3 => T::Numeric(None),
            4 if a == b => T::Float4,
            _ => T::Float8,
        }),
        _ => Err(SqlError::new(
            SqlState::UNDEFINED_FUNCTION,
            format!("operator does not exist: {} {} {}", l.sql_name(), op.symbol(), r.sql_name()),
        )
        .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")),
    }
}

fn check_comparable(l: &DataType, r: &DataType, op: BinOp) -> SqlResult<()> {
    let family = |t: &DataType| match t {
        t if t.is_numeric() => 1,
        t if t.is_string() => 2,
        t if t.is_temporal() => 3,
        DataType::Bool => 4,
        DataType::Bytea => 5,
        DataType::Unknown | DataType::InternalChar => 0,
        DataType::Array(_) => 6,
        DataType::Uuid => 8,
        DataType::Json | DataType::Jsonb => 9,
        DataType::Interval => 10,
        _ => 7,
    };
    let (a, b) = (family(l), family(r));
    if a == 0 || b == 0 || a == b {
        Ok(())
    } else {
        Err(SqlError::new(
            SqlState::UNDEFINED_FUNCTION,
            format!("operator does not exist: {} {} {}", l.sql_name(), op.symbol(), r.sql_name()),
        )
        .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts."))
    }
}
