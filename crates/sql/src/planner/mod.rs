//! The planner: binds sqlparser's AST against the catalog (names to row
//! positions, types inferred, parameters typed) and builds plans.

mod access;
mod bind;
mod bind_function;
mod conflict;
mod cte;
mod dml;
mod integrity;
mod scope;
mod select;
mod table_function;
mod types;
mod window;

use std::sync::Arc;

use sqlparser::ast::{Ident, ObjectName};

pub use conflict::ConflictAction;
pub use dml::{DeletePlan, InsertPlan, InsertSource, Returning, UpdatePlan};
pub use integrity::{Integrity, IntegrityTable};
pub use scope::{Scope, ScopeColumn};
pub use types::convert_type;
pub use types::serial_kind;

use crate::catalog::{Privilege, TableDef, ViewDef};
use crate::error::{SqlError, SqlResult};
use crate::plan::VirtualTable;
use crate::types::DataType;
use crate::value::TimeZone;

/// What the planner needs to know about the database.
pub trait PlannerCatalog {
    /// A table by (optional schema and) name.
    fn table(&self, schema: Option<&str>, name: &str) -> SqlResult<Option<Arc<TableDef>>>;
    /// A pg_catalog / information_schema view by name.
    fn virtual_table(&self, schema: Option<&str>, name: &str) -> Option<VirtualTable>;
    /// A table by OID (foreign keys name their tables so).
    fn table_by_oid(&self, oid: u32) -> SqlResult<Option<Arc<TableDef>>>;
    /// A user-defined view by (optional schema and) name.
    fn view(&self, schema: Option<&str>, name: &str) -> SqlResult<Option<ViewDef>>;
    /// A sequence's OID by name, as the statement's transaction sees the
    /// catalog (42P01 if there is none, 42809 if it is not a sequence).
    fn sequence_oid(&self, name: &str) -> SqlResult<u32>;
    /// Errors with 42501 unless the current user holds the privilege.
    fn check_privilege(&self, table: &TableDef, privilege: Privilege) -> SqlResult<()>;
}

pub struct Planner<'a> {
    pub catalog: &'a dyn PlannerCatalog,
    /// Parameter types, inferred from context where not given.
    pub params: Vec<DataType>,
    pub tz: TimeZone,
    /// Scopes of enclosing queries, for correlated subqueries (innermost last).
    outer: Vec<Scope>,
    /// WITH queries in scope (innermost last).
    ctes: Vec<cte::CteDef>,
    /// Ids handed to recursive CTEs' work tables.
    work_tables: usize,
    /// OIDs of the tables and views the statement reads (a view's
    /// dependencies).
    pub referenced: Vec<u32>,
}

impl<'a> Planner<'a> {
    pub fn new(catalog: &'a dyn PlannerCatalog, params: Vec<DataType>, tz: TimeZone) -> Self {
        Planner {
            catalog,
            params,
            tz,
            outer: Vec::new(),
            ctes: Vec::new(),
            work_tables: 0,
            referenced: Vec::new(),
        }
    }

    /// Parameter types after planning: still-unknown ones default to text.
    pub fn param_types(&self) -> Vec<DataType> {
        self.params
            .iter()
            .map(|t| {
                if *t == DataType::Unknown {
                    DataType::Text
                } else {
                    t.clone()
                }
            })
            .collect()
    }

    /// Coerces a WHERE/HAVING/ON condition to boolean, or 42804.
    pub fn condition(
        &mut self,
        e: crate::expr::Expr,
        clause: &str,
    ) -> SqlResult<crate::expr::Expr> {
        let e = self.coerce(e, &DataType::Bool)?;
        match e.data_type() {
            DataType::Bool => Ok(e),
            other => Err(SqlError::new(
                crate::error::SqlState::DATATYPE_MISMATCH,
                format!(
                    "argument of {clause} must be type boolean, not type {}",
                    other.sql_name()
                ),
            )),
        }
    }

    /// Resolves a table name to its definition, or 42P01.
    pub fn resolve_table(&self, name: &ObjectName) -> SqlResult<Arc<TableDef>> {
        let (schema, table) = split_name(name)?;
        self.catalog
            .table(schema.as_deref(), &table)?
            .ok_or_else(|| SqlError::undefined_table(&table))
    }
}

/// PostgreSQL folds unquoted identifiers to lower case.
pub fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// Splits `schema.name` (or `db.schema.name`) into its parts.
pub fn split_name(name: &ObjectName) -> SqlResult<(Option<String>, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(ident_name)
                .ok_or_else(|| SqlError::syntax(format!("invalid name {name}")))
        })
        .collect::<SqlResult<_>>()?;
    match parts.as_slice() {
        [n] => Ok((None, n.clone())),
        [s, n] => Ok((Some(s.clone()), n.clone())),
        [_, s, n] => Ok((Some(s.clone()), n.clone())),
        _ => Err(SqlError::syntax(format!(
            "improper qualified name (too many dotted names): {name}"
        ))),
    }
}
