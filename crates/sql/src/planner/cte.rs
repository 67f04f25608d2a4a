//! WITH queries and views. A WITH query is planned once, where it is
//! declared, and its plan is copied into every reference (no
//! materialization: the queries are read-only, so running one twice gives
//! the same rows). WITH RECURSIVE becomes a RecursiveUnion over a work
//! table. A view's stored query is planned where the view is used.

use sqlparser::ast::{self, SetExpr};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::{ident_name, Planner, Scope};
use crate::catalog::ViewDef;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::plan::Plan;
use crate::session::Column;

pub(super) struct CteDef {
    name: String,
    plan: Plan,
    columns: Vec<Column>,
}

impl Planner<'_> {
    pub(super) fn plan_with(&mut self, with: &ast::With) -> SqlResult<()> {
        let first = self.ctes.len();
        for cte in &with.cte_tables {
            let name = ident_name(&cte.alias.name);
            if self.ctes[first..].iter().any(|c| c.name == name) {
                return Err(SqlError::new(
                    SqlState("42712"),
                    format!("WITH query name \"{name}\" specified more than once"),
                ));
            }
            let aliases: Vec<String> = cte
                .alias
                .columns
                .iter()
                .map(|c| ident_name(&c.name))
                .collect();
            let recursive = with.recursive && mentions(&cte.query, &name);
            let (plan, columns) = match recursive_parts(&cte.query) {
                Some((anchor, step, all)) if recursive => {
                    self.plan_recursive(&name, &aliases, anchor, step, all)?
                }
                _ => {
                    let qp = self.isolated(|p| p.plan_query(&cte.query))?;
                    (qp.plan, rename(&name, qp.columns, &aliases)?)
                }
            };
            self.ctes.push(CteDef {
                name,
                plan,
                columns,
            });
        }
        Ok(())
    }

    fn plan_recursive(
        &mut self,
        name: &str,
        aliases: &[String],
        anchor: &SetExpr,
        step: &SetExpr,
        all: bool,
    ) -> SqlResult<(Plan, Vec<Column>)> {
        let (anchor_plan, anchor_columns) = self.isolated(|p| p.plan_set_expr(anchor))?;
        let columns = rename(name, anchor_columns, aliases)?;
        let id = self.work_tables;
        self.work_tables += 1;
        self.ctes.push(CteDef {
            name: name.to_string(),
            plan: Plan::WorkTable { id },
            columns: columns.clone(),
        });
        let step = self.isolated(|p| p.plan_set_expr(step));
        self.ctes.pop();
        let (step_plan, step_columns) = step?;
        if step_columns.len() != columns.len() {
            return Err(SqlError::syntax(
                "each UNION query must have the same number of columns",
            ));
        }
        for (i, (a, s)) in columns.iter().zip(&step_columns).enumerate() {
            if a.data_type != s.data_type && s.data_type != crate::types::DataType::Unknown {
                return Err(SqlError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!(
                        "recursive query \"{name}\" column {} has type {} in non-recursive term but type {} overall",
                        i + 1,
                        a.data_type.sql_name(),
                        s.data_type.sql_name()
                    ),
                )
                .with_hint("Cast the output of the non-recursive term to the correct type."));
            }
        }
        Ok((
            Plan::RecursiveUnion {
                id,
                anchor: Box::new(anchor_plan),
                step: Box::new(step_plan),
                all,
            },
            columns,
        ))
    }

    /// Plans without the enclosing FROM items in scope (a WITH query, like
    /// a derived table, cannot see them).
    fn isolated<T>(&mut self, f: impl FnOnce(&mut Self) -> SqlResult<T>) -> SqlResult<T> {
        let saved = std::mem::take(&mut self.outer);
        let result = f(self);
        self.outer = saved;
        result
    }

    /// A view in FROM: its query planned in place (without the statement's
    /// WITH queries, which it cannot see).
    pub(super) fn plan_view(
        &mut self,
        view: &ViewDef,
        qualifier: &str,
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Plan, Scope)> {
        self.referenced.push(view.oid);
        let query = parse_view_query(&view.sql)?;
        let ctes = std::mem::take(&mut self.ctes);
        let planned = self.isolated(|p| p.plan_query(&query));
        self.ctes = ctes;
        let qp = planned?;
        let scope = Scope::of_derived(
            view.columns
                .iter()
                .zip(&qp.columns)
                .map(|((name, _), c)| (name.as_str(), &c.data_type)),
            Some(qualifier.to_string()),
            alias,
        );
        Ok((qp.plan, scope))
    }

    /// A FROM item naming a WITH query in scope: its plan and columns.
    pub(super) fn cte_reference(
        &self,
        name: &str,
        alias: Option<&ast::TableAlias>,
    ) -> Option<(Plan, Scope)> {
        let cte = self.ctes.iter().rev().find(|c| c.name == name)?;
        let qualifier = alias
            .map(|a| ident_name(&a.name))
            .unwrap_or_else(|| name.to_string());
        let scope = Scope::of_derived(
            cte.columns.iter().map(|c| (c.name.as_str(), &c.data_type)),
            Some(qualifier),
            alias,
        );
        Some((cte.plan.clone(), scope))
    }
}

/// A view's stored query text back to a query.
pub(crate) fn parse_view_query(sql: &str) -> SqlResult<Box<ast::Query>> {
    let mut statements = crate::parser::parse_sql(sql)?;
    match statements.pop() {
        Some(ast::Statement::Query(q)) if statements.is_empty() => Ok(q),
        _ => Err(SqlError::internal(format!(
            "view query is not a query: {sql}"
        ))),
    }
}

/// `anchor UNION [ALL] step`, the only shape a recursive query may have.
fn recursive_parts(q: &ast::Query) -> Option<(&SetExpr, &SetExpr, bool)> {
    if q.order_by.is_some() || q.limit_clause.is_some() {
        return None;
    }
    match &*q.body {
        SetExpr::SetOperation {
            op: ast::SetOperator::Union,
            set_quantifier,
            left,
            right,
        } => Some((
            left,
            right,
            matches!(set_quantifier, ast::SetQuantifier::All),
        )),
        _ => None,
    }
}

/// Whether the query text names `name` (a recursive reference).
fn mentions(q: &ast::Query, name: &str) -> bool {
    let text = q.to_string();
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, &text).tokenize() else {
        return false;
    };
    tokens.iter().any(|t| match t {
        Token::Word(w) if w.quote_style.is_some() => w.value == name,
        Token::Word(w) => w.value.to_lowercase() == name,
        _ => false,
    })
}

/// Applies a WITH query's column aliases.
fn rename(name: &str, mut columns: Vec<Column>, aliases: &[String]) -> SqlResult<Vec<Column>> {
    if aliases.len() > columns.len() {
        return Err(SqlError::new(
            SqlState::INVALID_COLUMN_REFERENCE,
            format!(
                "WITH query \"{name}\" has {} columns available but {} columns specified",
                columns.len(),
                aliases.len()
            ),
        ));
    }
    for (c, a) in columns.iter_mut().zip(aliases) {
        c.name = a.clone();
    }
    Ok(columns)
}
