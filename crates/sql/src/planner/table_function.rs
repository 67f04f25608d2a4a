//! Functions in FROM: generate_series, unnest, pg_partition_ancestors.

use sqlparser::ast;

use super::{ident_name, Planner, Scope, ScopeColumn};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::Expr;
use crate::plan::Plan;
use crate::types::DataType;

impl Planner<'_> {
    pub(super) fn plan_table_function(
        &mut self,
        name: &str,
        args: &[ast::FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Plan, Scope)> {
        // Arguments may refer to an enclosing query's columns (as outer
        // references), which psql's catalog queries rely on for unnest().
        let scope = Scope::default();
        let mut bound = Vec::new();
        for a in args {
            match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                    bound.push(self.bind_expr(e, &scope)?)
                }
                _ => return Err(SqlError::unsupported("named arguments are not supported")),
            }
        }
        let qualifier = alias
            .map(|a| ident_name(&a.name))
            .unwrap_or_else(|| name.to_string());
        let col_name = alias
            .and_then(|a| a.columns.first().map(|c| ident_name(&c.name)))
            .or_else(|| alias.map(|a| ident_name(&a.name)))
            .unwrap_or_else(|| name.to_string());
        if name == "unnest" {
            let [array] = <[Expr; 1]>::try_from(bound).map_err(|_| {
                SqlError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    "function unnest needs one argument",
                )
            })?;
            let ty = match array.data_type() {
                DataType::Array(e) => *e,
                _ => DataType::Text,
            };
            let scope = Scope::new(vec![ScopeColumn {
                qualifier: Some(qualifier),
                name: col_name,
                ty,
                table_oid: 0,
                attnum: 0,
                hidden: false,
            }]);
            return Ok((Plan::Unnest { array }, scope));
        }
        if name == "pg_partition_ancestors" {
            // duet has no partitions: a table is its only ancestor (depth
            // 1, for WITH ORDINALITY's second column).
            let [relid] = <[Expr; 1]>::try_from(bound).map_err(|_| {
                SqlError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    "function pg_partition_ancestors needs one argument",
                )
            })?;
            let names: Vec<String> = alias
                .map(|a| a.columns.iter().map(|c| ident_name(&c.name)).collect())
                .unwrap_or_default();
            let mut row = vec![relid];
            let mut columns = vec![(names.first().cloned().unwrap_or(col_name), DataType::Oid)];
            if names.len() > 1 {
                row.push(Expr::Literal(crate::value::Value::Int(1), DataType::Int8));
                columns.push((names[1].clone(), DataType::Int8));
            }
            let scope = Scope::new(
                columns
                    .into_iter()
                    .map(|(name, ty)| ScopeColumn {
                        qualifier: Some(qualifier.clone()),
                        name,
                        ty,
                        table_oid: 0,
                        attnum: 0,
                        hidden: false,
                    })
                    .collect(),
            );
            let width = row.len();
            return Ok((
                Plan::Values {
                    rows: vec![row],
                    width,
                },
                scope,
            ));
        }
        if name != "generate_series" {
            return Err(SqlError::new(
                SqlState::UNDEFINED_FUNCTION,
                format!("function {name} does not exist"),
            ));
        }
        if !(2..=3).contains(&bound.len()) {
            return Err(SqlError::new(
                SqlState::UNDEFINED_FUNCTION,
                "function generate_series needs 2 or 3 arguments",
            ));
        }
        let types: Vec<DataType> = bound.iter().map(Expr::data_type).collect();
        let ty = match crate::functions::common_type(&types)? {
            DataType::Int2 | DataType::Int4 | DataType::Text => DataType::Int4,
            DataType::Int8 => DataType::Int8,
            DataType::Numeric(_) => DataType::Numeric(None),
            other => {
                return Err(SqlError::unsupported(format!(
                    "generate_series over {} is not supported yet",
                    other.sql_name()
                )))
            }
        };
        let mut it = bound.into_iter().map(|b| self.coerce(b, &ty));
        let start = it
            .next()
            .transpose()?
            .ok_or_else(|| SqlError::internal("missing argument"))?;
        let stop = it
            .next()
            .transpose()?
            .ok_or_else(|| SqlError::internal("missing argument"))?;
        let step = it.next().transpose()?;
        let scope = Scope::new(vec![ScopeColumn {
            qualifier: Some(qualifier),
            name: col_name,
            ty: ty.clone(),
            table_oid: 0,
            attnum: 0,
            hidden: false,
        }]);
        Ok((
            Plan::Series {
                start,
                stop,
                step,
                ty,
            },
            scope,
        ))
    }
}
