//! Planning queries: FROM (tables, joins, derived tables, generate_series,
//! catalog views), WHERE with access paths, GROUP BY/aggregates/HAVING,
//! projection, DISTINCT, ORDER BY, LIMIT/OFFSET, set operations.

use sqlparser::ast::{self, SelectItem, SetExpr, TableFactor};

use super::access;
use super::bind::contains_aggregate;
use super::{ident_name, split_name, Planner, Scope, ScopeColumn};
use crate::catalog::Privilege;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::{AggCall, Expr};
use crate::plan::{JoinKind, KeyRange, Plan, QueryPlan, SetOpKind, SortKey};
use crate::session::Column;
use crate::types::DataType;

/// An ORDER BY key before it is placed: an output position or an extra
/// expression to compute alongside the projection.
enum OrderTarget {
    Output(usize),
    Extra(Expr),
}

impl Planner<'_> {
    /// Plans a query (SELECT, VALUES, set operation) with ORDER BY/LIMIT.
    pub fn plan_query(&mut self, q: &ast::Query) -> SqlResult<QueryPlan> {
        crate::depth::check_stack()?;
        let Some(with) = &q.with else {
            return self.plan_query_body(q);
        };
        // The WITH queries are visible in the body and its subqueries only.
        let mark = self.ctes.len();
        let result = self.plan_with(with).and_then(|()| self.plan_query_body(q));
        self.ctes.truncate(mark);
        result
    }

    fn plan_query_body(&mut self, q: &ast::Query) -> SqlResult<QueryPlan> {
        let order_by: Vec<ast::OrderByExpr> = match &q.order_by {
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(e) => e.clone(),
                ast::OrderByKind::All(_) => {
                    return Err(SqlError::unsupported("ORDER BY ALL is not supported"))
                }
            },
            None => vec![],
        };
        let (mut plan, columns) = match &*q.body {
            SetExpr::Select(s) => self.plan_select(s, &order_by)?,
            other => {
                let (plan, columns) = self.plan_set_expr(other)?;
                let plan = self.order_by_output(plan, &columns, &order_by)?;
                (plan, columns)
            }
        };
        if let Some(limit) = &q.limit_clause {
            let (limit, offset) = match limit {
                ast::LimitClause::LimitOffset { limit, offset, .. } => {
                    (limit.clone(), offset.as_ref().map(|o| o.value.clone()))
                }
                ast::LimitClause::OffsetCommaLimit { offset, limit } => {
                    (Some(limit.clone()), Some(offset.clone()))
                }
            };
            let empty = Scope::default();
            let limit = match limit {
                Some(l) => {
                    let b = self.bind_expr(&l, &empty)?;
                    Some(self.coerce(b, &DataType::Int8)?)
                }
                None => None,
            };
            let offset = match offset {
                Some(o) => {
                    let b = self.bind_expr(&o, &empty)?;
                    Some(self.coerce(b, &DataType::Int8)?)
                }
                None => None,
            };
            plan = Plan::Limit {
                input: Box::new(plan),
                limit,
                offset,
            };
        }
        let lock_rows = !q.locks.is_empty();
        if lock_rows {
            plan.lockable_scan_mut().map_err(SqlError::unsupported)?;
        }
        Ok(QueryPlan {
            plan,
            columns,
            lock_rows,
        })
    }

    /// Plans a subquery that may refer to `scope` (correlated).
    pub(super) fn plan_subquery(&mut self, q: &ast::Query, scope: &Scope) -> SqlResult<QueryPlan> {
        self.outer.push(scope.clone());
        let result = self.plan_query(q);
        self.outer.pop();
        result
    }

    pub(super) fn plan_set_expr(&mut self, body: &SetExpr) -> SqlResult<(Plan, Vec<Column>)> {
        crate::depth::check_stack()?;
        match body {
            SetExpr::Select(s) => self.plan_select(s, &[]),
            SetExpr::Query(q) => {
                let qp = self.plan_query(q)?;
                Ok((qp.plan, qp.columns))
            }
            SetExpr::Values(v) => self.plan_values(v),
            SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let (lp, lc) = self.plan_set_expr(left)?;
                let (rp, rc) = self.plan_set_expr(right)?;
                if lc.len() != rc.len() {
                    return Err(SqlError::syntax(format!(
                        "each {} query must have the same number of columns",
                        op.to_string().to_uppercase()
                    )));
                }
                let op = match op {
                    ast::SetOperator::Union => SetOpKind::Union,
                    ast::SetOperator::Intersect => SetOpKind::Intersect,
                    ast::SetOperator::Except => SetOpKind::Except,
                    other => {
                        return Err(SqlError::unsupported(format!("{other} is not supported")))
                    }
                };
                let all = matches!(set_quantifier, ast::SetQuantifier::All);
                let columns = lc
                    .into_iter()
                    .zip(rc)
                    .map(|(l, r)| {
                        let ty =
                            crate::functions::common_type(&[l.data_type.clone(), r.data_type])?;
                        Ok(Column {
                            name: l.name,
                            data_type: ty,
                            table_oid: 0,
                            column_id: 0,
                        })
                    })
                    .collect::<SqlResult<_>>()?;
                Ok((
                    Plan::SetOp {
                        left: Box::new(lp),
                        right: Box::new(rp),
                        op,
                        all,
                    },
                    columns,
                ))
            }
            other => Err(SqlError::unsupported(format!(
                "query not supported: {other}"
            ))),
        }
    }

    fn plan_values(&mut self, v: &ast::Values) -> SqlResult<(Plan, Vec<Column>)> {
        let empty = Scope::default();
        let mut rows = Vec::new();
        let width = v.rows.first().map(|r| r.len()).unwrap_or(0);
        for r in &v.rows {
            if r.len() != width {
                return Err(SqlError::syntax("VALUES lists must all be the same length"));
            }
            rows.push(
                r.iter()
                    .map(|e| self.bind_expr(e, &empty))
                    .collect::<SqlResult<Vec<_>>>()?,
            );
        }
        let mut columns = Vec::new();
        for i in 0..width {
            let types: Vec<DataType> = rows.iter().map(|r| r[i].data_type()).collect();
            let ty = crate::functions::common_type(&types)?;
            for r in rows.iter_mut() {
                r[i] = self.coerce(r[i].clone(), &ty)?;
            }
            columns.push(Column {
                name: format!("column{}", i + 1),
                data_type: ty,
                table_oid: 0,
                column_id: 0,
            });
        }
        Ok((Plan::Values { rows, width }, columns))
    }

    /// ORDER BY for VALUES and set operations: output columns only.
    fn order_by_output(
        &mut self,
        plan: Plan,
        columns: &[Column],
        order_by: &[ast::OrderByExpr],
    ) -> SqlResult<Plan> {
        if order_by.is_empty() {
            return Ok(plan);
        }
        let scope = Scope::new(
            columns
                .iter()
                .map(|c| ScopeColumn {
                    qualifier: None,
                    name: c.name.clone(),
                    ty: c.data_type.clone(),
                    table_oid: 0,
                    attnum: 0,
                    hidden: false,
                })
                .collect(),
        );
        let mut keys = Vec::new();
        for o in order_by {
            let expr = match output_position(&o.expr, columns.len())? {
                Some(i) => Expr::Column(i, columns[i].data_type.clone()),
                None => self.bind_expr(&o.expr, &scope)?,
            };
            keys.push(sort_key(expr, &o.options));
        }
        Ok(Plan::Sort {
            input: Box::new(plan),
            keys,
        })
    }

    fn plan_select(
        &mut self,
        s: &ast::Select,
        order_by: &[ast::OrderByExpr],
    ) -> SqlResult<(Plan, Vec<Column>)> {
        let (mut plan, scope) = if s.from.is_empty() {
            (Plan::Empty, Scope::default())
        } else {
            self.plan_from(&s.from)?
        };

        if let Some(selection) = &s.selection {
            let pred = self.bind_expr(selection, &scope)?;
            let pred = self.condition(pred, "WHERE")?;
            if super::window::contains_window(&pred) {
                return Err(SqlError::new(
                    SqlState::WINDOWING_ERROR,
                    "window functions are not allowed in WHERE",
                ));
            }
            if contains_aggregate(&pred) {
                return Err(SqlError::new(
                    SqlState::GROUPING_ERROR,
                    "aggregate functions are not allowed in WHERE",
                ));
            }
            if let Plan::Scan {
                table,
                index,
                range,
            } = &mut plan
            {
                if index.is_none() && range.is_full() {
                    let (i, r) = access::choose(table, Some(&pred));
                    *index = i;
                    *range = r;
                }
            }
            plan = Plan::Filter {
                input: Box::new(plan),
                predicate: pred,
            };
        }

        // Projection.
        let mut items: Vec<(Expr, String)> = Vec::new();
        for item in &s.projection {
            match item {
                SelectItem::Wildcard(_) => {
                    if s.from.is_empty() {
                        return Err(SqlError::syntax(
                            "SELECT * with no tables specified is not valid",
                        ));
                    }
                    for (i, c) in scope.columns.iter().enumerate().filter(|(_, c)| !c.hidden) {
                        items.push((Expr::Column(i, c.ty.clone()), c.name.clone()));
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let q = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => split_name(n)?.1,
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => e.to_string(),
                    };
                    if !scope.has_qualifier(&q) {
                        return Err(SqlError::new(
                            SqlState::UNDEFINED_TABLE,
                            format!("missing FROM-clause entry for table \"{q}\""),
                        ));
                    }
                    for (i, c) in scope.columns.iter().enumerate() {
                        if c.qualifier.as_deref() == Some(q.as_str()) && !c.hidden {
                            items.push((Expr::Column(i, c.ty.clone()), c.name.clone()));
                        }
                    }
                }
                SelectItem::UnnamedExpr(e) => {
                    let b = self.bind_expr(e, &scope)?;
                    items.push((b, column_name(e)));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let b = self.bind_expr(expr, &scope)?;
                    items.push((b, ident_name(alias)));
                }
                SelectItem::ExprWithAliases { .. } => {
                    return Err(SqlError::unsupported("multiple aliases are not supported"))
                }
            }
        }

        // GROUP BY (positions and output names allowed, as in PostgreSQL).
        let mut groups = Vec::new();
        if let ast::GroupByExpr::Expressions(exprs, _) = &s.group_by {
            for g in exprs {
                if let Some(i) = output_position(g, items.len())? {
                    groups.push(items[i].0.clone());
                    continue;
                }
                if let ast::Expr::Identifier(id) = g {
                    let name = ident_name(id);
                    if scope.resolve(None, &name)?.is_none() {
                        if let Some((e, _)) = items.iter().find(|(_, n)| *n == name) {
                            groups.push(e.clone());
                            continue;
                        }
                    }
                }
                let b = self.bind_expr(g, &scope)?;
                if contains_aggregate(&b) {
                    return Err(SqlError::new(
                        SqlState::GROUPING_ERROR,
                        "aggregate functions are not allowed in GROUP BY",
                    ));
                }
                groups.push(b);
            }
        }
        let having = match &s.having {
            Some(h) => {
                let b = self.bind_expr(h, &scope)?;
                Some(self.condition(b, "HAVING")?)
            }
            None => None,
        };

        // ORDER BY keys: output positions/names first, then input expressions.
        let mut order_targets = Vec::new();
        for o in order_by {
            let target = if let Some(i) = output_position(&o.expr, items.len())? {
                OrderTarget::Output(i)
            } else if let Some(i) = match &o.expr {
                ast::Expr::Identifier(id) => {
                    let name = ident_name(id);
                    let matches: Vec<usize> = items
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, n))| *n == name)
                        .map(|(i, _)| i)
                        .collect();
                    // An output name wins over an input column of the same name.
                    match matches.as_slice() {
                        [i] => Some(*i),
                        [i, ..]
                            if items
                                .iter()
                                .filter(|(_, n)| *n == name)
                                .all(|(e, _)| *e == items[*i].0) =>
                        {
                            Some(*i)
                        }
                        [_, _, ..] => {
                            return Err(SqlError::new(
                                SqlState::AMBIGUOUS_COLUMN,
                                format!("ORDER BY \"{name}\" is ambiguous"),
                            ))
                        }
                        [] => None,
                    }
                }
                _ => None,
            } {
                OrderTarget::Output(i)
            } else {
                let b = self.bind_expr(&o.expr, &scope)?;
                match items.iter().position(|(e, _)| *e == b) {
                    Some(i) => OrderTarget::Output(i),
                    None => OrderTarget::Extra(b),
                }
            };
            order_targets.push((target, &o.options));
        }

        let has_agg = !groups.is_empty()
            || items.iter().any(|(e, _)| contains_aggregate(e))
            || having.as_ref().is_some_and(contains_aggregate)
            || order_targets
                .iter()
                .any(|(t, _)| matches!(t, OrderTarget::Extra(e) if contains_aggregate(e)));

        if having.as_ref().is_some_and(super::window::contains_window) {
            return Err(SqlError::new(
                SqlState::WINDOWING_ERROR,
                "window functions are not allowed in HAVING",
            ));
        }
        let mut having = having;
        let mut input_width = scope.columns.len();
        if has_agg {
            let mut aggs: Vec<AggCall> = Vec::new();
            for (e, _) in items.iter_mut() {
                *e = rewrite_aggregate(e.clone(), &groups, &mut aggs, &scope)?;
            }
            for (t, _) in order_targets.iter_mut() {
                if let OrderTarget::Extra(e) = t {
                    *e = rewrite_aggregate(e.clone(), &groups, &mut aggs, &scope)?;
                }
            }
            having = having
                .map(|h| rewrite_aggregate(h, &groups, &mut aggs, &scope))
                .transpose()?;
            input_width = groups.len() + aggs.len();
            plan = Plan::Aggregate {
                input: Box::new(plan),
                group_by: groups,
                aggs,
            };
        } else if having.is_some() {
            return Err(SqlError::new(
                SqlState::GROUPING_ERROR,
                "HAVING requires GROUP BY or an aggregate",
            ));
        }
        if let Some(h) = having {
            plan = Plan::Filter {
                input: Box::new(plan),
                predicate: h,
            };
        }

        {
            let mut targets: Vec<&mut Expr> = items.iter_mut().map(|(e, _)| e).collect();
            for (t, _) in order_targets.iter_mut() {
                if let OrderTarget::Extra(e) = t {
                    targets.push(e);
                }
            }
            let (windowed, added) = super::window::plan_windows(plan, input_width, &mut targets)?;
            plan = super::window::plan_set_returning(windowed, input_width + added, &mut targets)?;
        }
        let width = items.len();
        let mut exprs: Vec<Expr> = items.iter().map(|(e, _)| e.clone()).collect();
        let mut keys = Vec::new();
        for (target, options) in order_targets {
            let pos = match target {
                OrderTarget::Output(i) => i,
                OrderTarget::Extra(e) => {
                    exprs.push(e);
                    exprs.len() - 1
                }
            };
            keys.push(sort_key(Expr::Column(pos, exprs[pos].data_type()), options));
        }
        let has_extra = exprs.len() > width;
        plan = Plan::Project {
            input: Box::new(plan),
            exprs,
        };
        match &s.distinct {
            Some(ast::Distinct::Distinct) => {
                if has_extra {
                    return Err(SqlError::new(
                        SqlState::INVALID_COLUMN_REFERENCE,
                        "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                    ));
                }
                plan = Plan::Distinct {
                    input: Box::new(plan),
                };
            }
            Some(ast::Distinct::On(_)) => {
                return Err(SqlError::unsupported("DISTINCT ON is not supported yet"))
            }
            _ => {}
        }
        if !keys.is_empty() {
            plan = Plan::Sort {
                input: Box::new(plan),
                keys,
            };
        }
        if has_extra {
            plan = Plan::Truncate {
                input: Box::new(plan),
                width,
            };
        }

        let columns = items
            .iter()
            .map(|(e, name)| {
                let (table_oid, column_id) = match e {
                    Expr::Column(i, _) if !has_agg => scope
                        .columns
                        .get(*i)
                        .map(|c| (c.table_oid, c.attnum))
                        .unwrap_or((0, 0)),
                    _ => (0, 0),
                };
                let ty = match e.data_type() {
                    DataType::Unknown => DataType::Text,
                    t => t,
                };
                Column {
                    name: name.clone(),
                    data_type: ty,
                    table_oid,
                    column_id,
                }
            })
            .collect();
        Ok((plan, columns))
    }

    fn plan_from(&mut self, from: &[ast::TableWithJoins]) -> SqlResult<(Plan, Scope)> {
        let mut result: Option<(Plan, Scope)> = None;
        for twj in from {
            let item = self.plan_table_with_joins(twj)?;
            result = Some(match result {
                None => item,
                Some((lp, ls)) => {
                    let scope = ls.join(&item.1);
                    let right_width = item.1.columns.len();
                    (
                        Plan::Join {
                            left: Box::new(lp),
                            right: Box::new(item.0),
                            kind: JoinKind::Inner,
                            on: None,
                            right_width,
                        },
                        scope,
                    )
                }
            });
        }
        result.ok_or_else(|| SqlError::syntax("empty FROM clause"))
    }

    fn plan_table_with_joins(&mut self, twj: &ast::TableWithJoins) -> SqlResult<(Plan, Scope)> {
        let (mut plan, mut scope) = self.plan_table_factor(&twj.relation)?;
        for join in &twj.joins {
            let (rp, rs) = self.plan_table_factor(&join.relation)?;
            use ast::JoinOperator as J;
            let (kind, constraint, swap) = match &join.join_operator {
                J::Join(c) | J::Inner(c) => (JoinKind::Inner, Some(c), false),
                J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, Some(c), false),
                J::Right(c) | J::RightOuter(c) => (JoinKind::Left, Some(c), true),
                J::CrossJoin(_) => (JoinKind::Inner, None, false),
                J::FullOuter(c) => (
                    JoinKind::Full {
                        left_width: scope.columns.len(),
                    },
                    Some(c),
                    false,
                ),
                other => {
                    return Err(SqlError::unsupported(format!(
                        "join type not supported yet: {other:?}"
                    )))
                }
            };
            let joined = scope.join(&rs);
            let on = match constraint {
                Some(ast::JoinConstraint::On(e)) => {
                    let b = self.bind_expr(e, &joined)?;
                    Some(self.condition(b, "JOIN/ON")?)
                }
                Some(ast::JoinConstraint::Using(cols)) => {
                    let mut cond: Option<Expr> = None;
                    for c in cols {
                        let name = split_name(c)?.1;
                        let li = scope
                            .resolve(None, &name)?
                            .ok_or_else(|| SqlError::undefined_column(&name))?;
                        let ri = rs
                            .resolve(None, &name)?
                            .ok_or_else(|| SqlError::undefined_column(&name))?;
                        let eq = self.bind_binary(
                            &ast::BinaryOperator::Eq,
                            Expr::Column(li, scope.columns[li].ty.clone()),
                            Expr::Column(scope.columns.len() + ri, rs.columns[ri].ty.clone()),
                        )?;
                        cond = Some(match cond {
                            None => eq,
                            Some(c) => Expr::Binary {
                                op: crate::expr::BinOp::And,
                                left: Box::new(c),
                                right: Box::new(eq),
                                ty: DataType::Bool,
                            },
                        });
                    }
                    cond
                }
                Some(ast::JoinConstraint::Natural) => {
                    return Err(SqlError::unsupported("NATURAL JOIN is not supported yet"))
                }
                _ => None,
            };
            if swap {
                // a RIGHT JOIN b = b LEFT JOIN a, with columns put back in order.
                let (lw, rw) = (scope.columns.len(), rs.columns.len());
                let remap = |i: usize| if i < lw { i + rw } else { i - lw };
                let on = on
                    .map(|e| {
                        e.transform(&mut |x| {
                            Ok(match x {
                                Expr::Column(i, t) => Expr::Column(remap(i), t),
                                other => other,
                            })
                        })
                    })
                    .transpose()?;
                let join = Plan::Join {
                    left: Box::new(rp),
                    right: Box::new(plan),
                    kind,
                    on,
                    right_width: lw,
                };
                let exprs = (0..lw)
                    .map(|i| Expr::Column(rw + i, scope.columns[i].ty.clone()))
                    .chain((0..rw).map(|i| Expr::Column(i, rs.columns[i].ty.clone())))
                    .collect();
                plan = Plan::Project {
                    input: Box::new(join),
                    exprs,
                };
            } else {
                let right_width = rs.columns.len();
                plan = Plan::Join {
                    left: Box::new(plan),
                    right: Box::new(rp),
                    kind,
                    on,
                    right_width,
                };
            }
            scope = joined;
        }
        Ok((plan, scope))
    }

    fn plan_table_factor(&mut self, tf: &TableFactor) -> SqlResult<(Plan, Scope)> {
        crate::depth::check_stack()?;
        match tf {
            TableFactor::Table {
                name,
                alias,
                args,
                sample,
                ..
            } => {
                if sample.is_some() {
                    return Err(SqlError::unsupported("TABLESAMPLE is not supported yet"));
                }
                let (schema, table_name) = split_name(name)?;
                if let Some(args) = args {
                    return self.plan_table_function(&table_name, &args.args, alias.as_ref());
                }
                if schema.is_none() {
                    if let Some(found) = self.cte_reference(&table_name, alias.as_ref()) {
                        return Ok(found);
                    }
                }
                let qualifier = alias
                    .as_ref()
                    .map(|a| ident_name(&a.name))
                    .unwrap_or_else(|| table_name.clone());
                if let Some(vt) = self.catalog.virtual_table(schema.as_deref(), &table_name) {
                    let scope = Scope::new(
                        vt.columns
                            .iter()
                            .map(|(n, t)| ScopeColumn {
                                qualifier: Some(qualifier.clone()),
                                name: n.clone(),
                                ty: t.clone(),
                                table_oid: 0,
                                attnum: 0,
                                hidden: false,
                            })
                            .collect(),
                    );
                    return Ok((Plan::Virtual(vt), scope));
                }
                let Some(table) = self.catalog.table(schema.as_deref(), &table_name)? else {
                    let view = self
                        .catalog
                        .view(schema.as_deref(), &table_name)?
                        .ok_or_else(|| SqlError::undefined_table(&table_name))?;
                    return self.plan_view(&view, &qualifier, alias.as_ref());
                };
                self.referenced.push(table.oid);
                self.catalog.check_privilege(&table, Privilege::Select)?;
                let mut columns = Vec::new();
                for (i, c) in table.columns.iter().enumerate() {
                    let name = match alias.as_ref().and_then(|a| a.columns.get(i)) {
                        Some(col) => ident_name(&col.name),
                        None => c.name.clone(),
                    };
                    columns.push(ScopeColumn {
                        qualifier: Some(qualifier.clone()),
                        name,
                        ty: c.data_type.clone(),
                        table_oid: table.oid,
                        attnum: i as i16 + 1,
                        hidden: table.has_hidden_key() && i == table.columns.len() - 1,
                    });
                }
                Ok((
                    Plan::Scan {
                        table,
                        index: None,
                        range: KeyRange::full(),
                    },
                    Scope::new(columns),
                ))
            }
            TableFactor::Derived {
                subquery,
                alias,
                lateral,
                ..
            } => {
                if *lateral {
                    return Err(SqlError::unsupported("LATERAL is not supported yet"));
                }
                // A derived table cannot see the enclosing FROM items.
                let saved = std::mem::take(&mut self.outer);
                let qp = self.plan_query(subquery);
                self.outer = saved;
                let qp = qp?;
                let qualifier = alias.as_ref().map(|a| ident_name(&a.name));
                let scope = Scope::of_derived(
                    qp.columns.iter().map(|c| (c.name.as_str(), &c.data_type)),
                    qualifier,
                    alias.as_ref(),
                );
                Ok((qp.plan, scope))
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                let fname = split_name(name)?.1;
                self.plan_table_function(&fname, args, alias.as_ref())
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let (plan, mut scope) = self.plan_table_with_joins(table_with_joins)?;
                if let Some(a) = alias {
                    let q = ident_name(&a.name);
                    for c in scope.columns.iter_mut() {
                        c.qualifier = Some(q.clone());
                    }
                }
                Ok((plan, scope))
            }
            other => Err(SqlError::unsupported(format!(
                "FROM item not supported: {other}"
            ))),
        }
    }
}

pub(super) fn sort_key(expr: Expr, options: &ast::OrderByOptions) -> SortKey {
    let desc = options
        .sort
        .as_ref()
        .is_some_and(|s| matches!(s, ast::OrderBySort::Desc));
    // PostgreSQL: NULLS LAST for ASC, NULLS FIRST for DESC by default.
    let nulls_first = options.nulls_first.unwrap_or(desc);
    SortKey {
        expr,
        desc,
        nulls_first,
    }
}

/// `ORDER BY 2` / `GROUP BY 1`: a 0-based output position.
fn output_position(e: &ast::Expr, width: usize) -> SqlResult<Option<usize>> {
    if let ast::Expr::Value(v) = e {
        if let ast::Value::Number(n, _) = &v.value {
            let pos: usize = n
                .parse()
                .map_err(|_| SqlError::syntax(format!("non-integer constant in ORDER BY: {n}")))?;
            if pos == 0 || pos > width {
                return Err(SqlError::new(
                    SqlState::INVALID_COLUMN_REFERENCE,
                    format!("ORDER BY position {pos} is not in select list"),
                ));
            }
            return Ok(Some(pos - 1));
        }
    }
    Ok(None)
}

/// Replaces group-by expressions and aggregate calls with references to
/// the aggregate node's output; any other column reference is an error.
fn rewrite_aggregate(
    e: Expr,
    groups: &[Expr],
    aggs: &mut Vec<AggCall>,
    scope: &Scope,
) -> SqlResult<Expr> {
    if let Some(i) = groups.iter().position(|g| *g == e) {
        return Ok(Expr::Column(i, e.data_type()));
    }
    match e {
        Expr::Aggregate(call) => {
            let i = match aggs.iter().position(|a| *a == *call) {
                Some(i) => i,
                None => {
                    aggs.push(*call.clone());
                    aggs.len() - 1
                }
            };
            Ok(Expr::Column(groups.len() + i, call.ty))
        }
        Expr::Column(i, _) => {
            let c = scope.columns.get(i);
            let name = c.map(|c| match &c.qualifier {
                Some(q) => format!("{q}.{}", c.name),
                None => c.name.clone(),
            });
            Err(SqlError::new(
                SqlState::GROUPING_ERROR,
                format!("column \"{}\" must appear in the GROUP BY clause or be used in an aggregate function", name.unwrap_or_default()),
            ))
        }
        other => other.map_children(&mut |c| rewrite_aggregate(c, groups, aggs, scope)),
    }
}

/// PostgreSQL's default output column name for an expression.
pub fn column_name(e: &ast::Expr) -> String {
    use ast::Expr as A;
    match e {
        A::Identifier(id) => ident_name(id),
        A::CompoundIdentifier(ids) => ids.last().map(ident_name).unwrap_or_default(),
        A::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(ident_name)
            .unwrap_or_else(|| "?column?".into()),
        A::Cast {
            expr, data_type, ..
        } => match column_name(expr).as_str() {
            "?column?" => cast_type_name(data_type),
            n => n.to_string(),
        },
        A::Nested(inner) | A::Collate { expr: inner, .. } => column_name(inner),
        A::Case { .. } => "case".into(),
        A::Exists { .. } => "exists".into(),
        A::Extract { .. } => "extract".into(),
        A::Substring { .. } => "substring".into(),
        A::Trim { .. } => "btrim".into(),
        A::Position { .. } => "position".into(),
        A::Ceil { .. } => "ceil".into(),
        A::Floor { .. } => "floor".into(),
        A::TypedString(ts) => cast_type_name(&ts.data_type),
        A::Value(v) if matches!(v.value, ast::Value::Boolean(_)) => "bool".into(),
        A::Subquery(q) => match &*q.body {
            SetExpr::Select(s) => match s.projection.first() {
                Some(SelectItem::UnnamedExpr(e)) => column_name(e),
                Some(SelectItem::ExprWithAlias { alias, .. }) => ident_name(alias),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        _ => "?column?".into(),
    }
}

fn cast_type_name(t: &ast::DataType) -> String {
    use ast::DataType as T;
    match t {
        T::Int(_) | T::Integer(_) | T::Int4(_) => "int4".into(),
        T::BigInt(_) | T::Int8(_) => "int8".into(),
        T::SmallInt(_) | T::Int2(_) => "int2".into(),
        T::Text => "text".into(),
        T::Varchar(_) | T::CharacterVarying(_) => "varchar".into(),
        T::Boolean | T::Bool => "bool".into(),
        T::Numeric(_) | T::Decimal(_) => "numeric".into(),
        T::Real | T::Float4 => "float4".into(),
        T::DoublePrecision | T::Float8 => "float8".into(),
        T::Date => "date".into(),
        T::Timestamp(_, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) => {
            "timestamptz".into()
        }
        T::Timestamp(..) => "timestamp".into(),
        T::Bytea => "bytea".into(),
        T::Regclass => "regclass".into(),
        other => other.to_string().to_lowercase(),
    }
}
