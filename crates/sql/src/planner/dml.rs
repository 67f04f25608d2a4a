//! Planning INSERT, UPDATE and DELETE.

use std::sync::Arc;

use sqlparser::ast;

use super::access;
use super::bind::contains_aggregate;
use super::select::column_name;
use super::{ident_name, split_name, Planner, Scope, ScopeColumn};
use crate::catalog::{IndexDef, Privilege, TableDef};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::Expr;
use crate::plan::{KeyRange, QueryPlan};
use crate::session::Column;
use crate::types::DataType;

/// Where INSERT rows come from. A `None` cell is the DEFAULT keyword.
#[derive(Debug, Clone)]
pub enum InsertSource {
    Values(Vec<Vec<Option<Expr>>>),
    Query(QueryPlan),
}

#[derive(Debug, Clone)]
pub struct Returning {
    pub exprs: Vec<Expr>,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone)]
pub struct InsertPlan {
    pub table: Arc<TableDef>,
    /// Table column position of each source column.
    pub targets: Vec<usize>,
    pub source: InsertSource,
    /// DEFAULT expression of every table column (None = NULL).
    pub defaults: Vec<Option<Expr>>,
    pub returning: Option<Returning>,
    pub on_conflict: Option<super::conflict::OnConflict>,
    pub integrity: Arc<super::Integrity>,
}

#[derive(Debug, Clone)]
pub struct Assignment {
    pub column: usize,
    pub value: Expr,
}

#[derive(Debug, Clone)]
pub struct UpdatePlan {
    pub table: Arc<TableDef>,
    pub index: Option<IndexDef>,
    pub range: KeyRange,
    pub filter: Option<Expr>,
    pub assignments: Vec<Assignment>,
    pub returning: Option<Returning>,
    pub integrity: Arc<super::Integrity>,
}

#[derive(Debug, Clone)]
pub struct DeletePlan {
    pub table: Arc<TableDef>,
    pub index: Option<IndexDef>,
    pub range: KeyRange,
    pub filter: Option<Expr>,
    pub returning: Option<Returning>,
    pub integrity: Arc<super::Integrity>,
}

/// The scope of a single table's row.
pub fn table_scope(table: &TableDef, qualifier: &str) -> Scope {
    Scope::new(
        table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ScopeColumn {
                qualifier: Some(qualifier.to_string()),
                name: c.name.clone(),
                ty: c.data_type.clone(),
                table_oid: table.oid,
                attnum: i as i16 + 1,
                hidden: table.has_hidden_key() && i == table.columns.len() - 1,
            })
            .collect(),
    )
}

/// Table column positions of an INSERT's (or COPY's) column list; all
/// visible columns when the list is empty.
fn insert_targets(table: &TableDef, columns: &[String]) -> SqlResult<Vec<usize>> {
    let targets: Vec<usize> = if columns.is_empty() {
        (0..table.columns.len())
            .filter(|i| !(table.has_hidden_key() && *i == table.columns.len() - 1))
            .collect()
    } else {
        columns
            .iter()
            .map(|n| {
                table.column_index(n).ok_or_else(|| {
                    SqlError::new(
                        SqlState::UNDEFINED_COLUMN,
                        format!(
                            "column \"{n}\" of relation \"{}\" does not exist",
                            table.name
                        ),
                    )
                })
            })
            .collect::<SqlResult<_>>()?
    };
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].contains(t) {
            return Err(SqlError::new(
                SqlState::DUPLICATE_COLUMN,
                format!(
                    "column \"{}\" specified more than once",
                    table.columns[*t].name
                ),
            ));
        }
    }
    Ok(targets)
}

impl Planner<'_> {
    pub fn plan_insert(&mut self, ins: &ast::Insert) -> SqlResult<InsertPlan> {
        let name = match &ins.table {
            ast::TableObject::TableName(n) => n,
            _ => {
                return Err(SqlError::unsupported(
                    "INSERT into a table function is not supported",
                ))
            }
        };
        let table = self.resolve_table(name)?;
        self.catalog.check_privilege(&table, Privilege::Insert)?;
        let names: Vec<String> = ins
            .columns
            .iter()
            .map(|c| split_name(c).map(|(_, n)| n))
            .collect::<SqlResult<_>>()?;
        let targets = insert_targets(&table, &names)?;
        let source = match ins.source.as_deref() {
            // DEFAULT VALUES: one row of every column's default.
            None if names.is_empty() => InsertSource::Values(vec![vec![None; targets.len()]]),
            None => {
                return Err(SqlError::syntax(
                    "INSERT ... DEFAULT VALUES takes no column list",
                ))
            }
            Some(query) => self.plan_insert_source(&table, &targets, query)?,
        };
        let defaults = self.bind_defaults(&table)?;
        let returning = self.plan_returning(&table, ins.returning.as_deref())?;
        let qualifier = ins
            .table_alias
            .as_ref()
            .map(|a| ident_name(&a.alias))
            .unwrap_or_else(|| table.name.clone());
        let on_conflict = match &ins.on {
            None => None,
            Some(ast::OnInsert::OnConflict(on)) => {
                if on.action != ast::OnConflictAction::DoNothing {
                    self.catalog.check_privilege(&table, Privilege::Update)?;
                }
                Some(self.plan_on_conflict(&table, &qualifier, on)?)
            }
            Some(_) => {
                return Err(SqlError::unsupported(
                    "ON DUPLICATE KEY is MySQL syntax; use ON CONFLICT",
                ))
            }
        };
        let integrity = self.plan_integrity(&table)?;
        Ok(InsertPlan {
            table,
            targets,
            source,
            defaults,
            returning,
            on_conflict,
            integrity,
        })
    }

    /// The rows of an INSERT: VALUES lists (a `None` is DEFAULT) or a query.
    fn plan_insert_source(
        &mut self,
        table: &TableDef,
        targets: &[usize],
        query: &ast::Query,
    ) -> SqlResult<InsertSource> {
        Ok(match &*query.body {
            ast::SetExpr::Values(v) if query.order_by.is_none() && query.limit_clause.is_none() => {
                let empty = Scope::default();
                let mut rows = Vec::with_capacity(v.rows.len());
                for r in &v.rows {
                    if r.len() > targets.len() {
                        return Err(SqlError::syntax(
                            "INSERT has more expressions than target columns",
                        ));
                    }
                    if r.len() < targets.len() {
                        return Err(SqlError::syntax(
                            "INSERT has more target columns than expressions",
                        ));
                    }
                    let mut row = Vec::with_capacity(r.len());
                    for (e, &col) in r.iter().zip(targets) {
                        if is_default_keyword(e) {
                            row.push(None);
                            continue;
                        }
                        let b = self.bind_expr(e, &empty)?;
                        if contains_aggregate(&b) {
                            return Err(SqlError::new(
                                SqlState::GROUPING_ERROR,
                                "aggregate functions are not allowed in VALUES",
                            ));
                        }
                        row.push(Some(self.coerce(b, &table.columns[col].data_type)?));
                    }
                    rows.push(row);
                }
                InsertSource::Values(rows)
            }
            _ => {
                let qp = self.plan_query(query)?;
                if qp.columns.len() > targets.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more expressions than target columns",
                    ));
                }
                if qp.columns.len() < targets.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more target columns than expressions",
                    ));
                }
                InsertSource::Query(qp)
            }
        })
    }

    /// The INSERT that COPY FROM feeds its rows to.
    pub fn plan_copy_from(
        &mut self,
        name: &ast::ObjectName,
        columns: &[ast::Ident],
    ) -> SqlResult<InsertPlan> {
        let table = self.resolve_table(name)?;
        self.catalog.check_privilege(&table, Privilege::Insert)?;
        let names: Vec<String> = columns.iter().map(ident_name).collect();
        let targets = insert_targets(&table, &names)?;
        let defaults = self.bind_defaults(&table)?;
        let integrity = self.plan_integrity(&table)?;
        Ok(InsertPlan {
            table,
            targets,
            source: InsertSource::Values(Vec::new()),
            defaults,
            returning: None,
            on_conflict: None,
            integrity,
        })
    }

    /// `SET col = expr, ...` of an UPDATE (or ON CONFLICT DO UPDATE), with
    /// expressions bound in `scope`.
    pub(super) fn bind_assignments(
        &mut self,
        table: &TableDef,
        items: &[ast::Assignment],
        scope: &Scope,
    ) -> SqlResult<Vec<Assignment>> {
        let mut assignments = Vec::new();
        for a in items {
            let names = match &a.target {
                ast::AssignmentTarget::ColumnName(n) => vec![n.clone()],
                ast::AssignmentTarget::Tuple(ns) => ns.clone(),
            };
            if names.len() != 1 {
                return Err(SqlError::unsupported(
                    "multiple-column assignment is not supported yet",
                ));
            }
            let col_name = split_name(&names[0])?.1;
            let column = table.column_index(&col_name).ok_or_else(|| {
                SqlError::new(
                    SqlState::UNDEFINED_COLUMN,
                    format!(
                        "column \"{col_name}\" of relation \"{}\" does not exist",
                        table.name
                    ),
                )
            })?;
            let value = if is_default_keyword(&a.value) {
                match &table.columns[column].default {
                    Some(sql) => {
                        let ast = parse_expr(sql)?;
                        self.bind_expr(&ast, &Scope::default())?
                    }
                    None => Expr::Literal(
                        crate::value::Value::Null,
                        table.columns[column].data_type.clone(),
                    ),
                }
            } else {
                self.bind_expr(&a.value, scope)?
            };
            if contains_aggregate(&value) {
                return Err(SqlError::new(
                    SqlState::GROUPING_ERROR,
                    "aggregate functions are not allowed in UPDATE",
                ));
            }
            let value = self.coerce(value, &table.columns[column].data_type)?;
            assignments.push(Assignment { column, value });
        }
        Ok(assignments)
    }

    /// Binds every column's DEFAULT expression (stored as SQL text).
    pub(crate) fn bind_defaults(&mut self, table: &TableDef) -> SqlResult<Vec<Option<Expr>>> {
        let empty = Scope::default();
        table
            .columns
            .iter()
            .map(|c| match &c.default {
                None => Ok(None),
                Some(sql) => {
                    let ast = parse_expr(sql)?;
                    let b = self.bind_expr(&ast, &empty)?;
                    Ok(Some(self.coerce(b, &c.data_type)?))
                }
            })
            .collect()
    }

    fn plan_returning(
        &mut self,
        table: &TableDef,
        items: Option<&[ast::SelectItem]>,
    ) -> SqlResult<Option<Returning>> {
        let Some(items) = items else { return Ok(None) };
        let scope = table_scope(table, &table.name);
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        for item in items {
            match item {
                ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..) => {
                    for (i, c) in scope.columns.iter().enumerate().filter(|(_, c)| !c.hidden) {
                        exprs.push(Expr::Column(i, c.ty.clone()));
                        columns.push(Column {
                            name: c.name.clone(),
                            data_type: c.ty.clone(),
                            table_oid: table.oid,
                            column_id: i as i16 + 1,
                        });
                    }
                }
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let b = self.bind_expr(e, &scope)?;
                    let name = match item {
                        ast::SelectItem::ExprWithAlias { alias, .. } => ident_name(alias),
                        _ => column_name(e),
                    };
                    let ty = match b.data_type() {
                        DataType::Unknown => DataType::Text,
                        t => t,
                    };
                    columns.push(Column {
                        name,
                        data_type: ty,
                        table_oid: 0,
                        column_id: 0,
                    });
                    exprs.push(b);
                }
                _ => return Err(SqlError::unsupported("RETURNING item not supported")),
            }
        }
        Ok(Some(Returning { exprs, columns }))
    }

    fn single_table(&mut self, twj: &ast::TableWithJoins) -> SqlResult<(Arc<TableDef>, String)> {
        if !twj.joins.is_empty() {
            return Err(SqlError::unsupported(
                "joins in UPDATE/DELETE targets are not supported",
            ));
        }
        match &twj.relation {
            ast::TableFactor::Table { name, alias, .. } => {
                let table = self.resolve_table(name)?;
                let q = alias
                    .as_ref()
                    .map(|a| ident_name(&a.name))
                    .unwrap_or_else(|| table.name.clone());
                Ok((table, q))
            }
            _ => Err(SqlError::unsupported(
                "UPDATE/DELETE target must be a table",
            )),
        }
    }

    fn plan_filter(
        &mut self,
        table: &TableDef,
        selection: Option<&ast::Expr>,
        scope: &Scope,
    ) -> SqlResult<(Option<Expr>, Option<IndexDef>, KeyRange)> {
        let filter = match selection {
            Some(e) => {
                let b = self.bind_expr(e, scope)?;
                let b = self.condition(b, "WHERE")?;
                if contains_aggregate(&b) {
                    return Err(SqlError::new(
                        SqlState::GROUPING_ERROR,
                        "aggregate functions are not allowed in WHERE",
                    ));
                }
                Some(b)
            }
            None => None,
        };
        let (index, range) = access::choose(table, filter.as_ref());
        Ok((filter, index, range))
    }

    pub fn plan_update(&mut self, upd: &ast::Update) -> SqlResult<UpdatePlan> {
        if upd.from.is_some() {
            return Err(SqlError::unsupported(
                "UPDATE ... FROM is not supported yet",
            ));
        }
        let (table, qualifier) = self.single_table(&upd.table)?;
        self.catalog.check_privilege(&table, Privilege::Update)?;
        let scope = table_scope(&table, &qualifier);
        let assignments = self.bind_assignments(&table, &upd.assignments, &scope)?;
        let (filter, index, range) = self.plan_filter(&table, upd.selection.as_ref(), &scope)?;
        let returning = self.plan_returning(&table, upd.returning.as_deref())?;
        let integrity = self.plan_integrity(&table)?;
        Ok(UpdatePlan {
            table,
            index,
            range,
            filter,
            assignments,
            returning,
            integrity,
        })
    }

    pub fn plan_delete(&mut self, del: &ast::Delete) -> SqlResult<DeletePlan> {
        if del.using.is_some() {
            return Err(SqlError::unsupported(
                "DELETE ... USING is not supported yet",
            ));
        }
        let tables = match &del.from {
            ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
        };
        let [twj] = tables.as_slice() else {
            return Err(SqlError::unsupported(
                "DELETE from several tables is not supported",
            ));
        };
        let (table, qualifier) = self.single_table(twj)?;
        self.catalog.check_privilege(&table, Privilege::Delete)?;
        let scope = table_scope(&table, &qualifier);
        let (filter, index, range) = self.plan_filter(&table, del.selection.as_ref(), &scope)?;
        let returning = self.plan_returning(&table, del.returning.as_deref())?;
        let integrity = self.plan_integrity(&table)?;
        Ok(DeletePlan {
            table,
            index,
            range,
            filter,
            returning,
            integrity,
        })
    }
}

fn is_default_keyword(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}

/// Parses a stored SQL expression (a column DEFAULT).
pub fn parse_expr(sql: &str) -> SqlResult<ast::Expr> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    crate::parser::new_parser(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::internal(format!("cannot parse stored expression {sql}: {e}")))
}
