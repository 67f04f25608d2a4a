//! Name resolution scopes: the columns visible to an expression.

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;

#[derive(Debug, Clone, PartialEq)]
pub struct ScopeColumn {
    /// Table name or alias the column can be qualified with.
    pub qualifier: Option<String>,
    pub name: String,
    pub ty: DataType,
    pub table_oid: u32,
    pub attnum: i16,
    /// Not expanded by `*` (a table's hidden rowid).
    pub hidden: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    pub fn new(columns: Vec<ScopeColumn>) -> Self {
        Scope { columns }
    }

    /// The scope of a subquery's output in FROM (derived table, WITH
    /// query, view): `(name, type)` columns, renamed by the alias's column
    /// list where it has one.
    pub fn of_derived<'a>(
        columns: impl IntoIterator<Item = (&'a str, &'a crate::types::DataType)>,
        qualifier: Option<String>,
        alias: Option<&sqlparser::ast::TableAlias>,
    ) -> Scope {
        Scope::new(
            columns
                .into_iter()
                .enumerate()
                .map(|(i, (name, ty))| ScopeColumn {
                    qualifier: qualifier.clone(),
                    name: alias
                        .and_then(|a| a.columns.get(i))
                        .map(|c| super::ident_name(&c.name))
                        .unwrap_or_else(|| name.to_string()),
                    ty: ty.clone(),
                    table_oid: 0,
                    attnum: 0,
                    hidden: false,
                })
                .collect(),
        )
    }

    /// Concatenates two scopes (a join's output row).
    pub fn join(&self, right: &Scope) -> Scope {
        let mut columns = self.columns.clone();
        columns.extend(right.columns.iter().cloned());
        Scope { columns }
    }

    /// Finds a column by optional qualifier and name. Errors if ambiguous.
    pub fn resolve(&self, qualifier: Option<&str>, name: &str) -> SqlResult<Option<usize>> {
        let mut found = None;
        for (i, c) in self.columns.iter().enumerate() {
            if c.name != name {
                continue;
            }
            if let Some(q) = qualifier {
                if c.qualifier.as_deref() != Some(q) {
                    continue;
                }
            }
            if found.is_some() {
                return Err(SqlError::new(
                    SqlState::AMBIGUOUS_COLUMN,
                    format!("column reference \"{name}\" is ambiguous"),
                ));
            }
            found = Some(i);
        }
        Ok(found)
    }

    /// True if some column carries this qualifier (for `t.*` and errors).
    pub fn has_qualifier(&self, qualifier: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.qualifier.as_deref() == Some(qualifier))
    }
}
