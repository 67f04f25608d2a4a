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
