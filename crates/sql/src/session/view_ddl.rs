//! CREATE VIEW and what DROP must know about views: the objects that
//! depend on a table or view (dropped with CASCADE, else 2BP01).

use duet_storage::Transaction;
use sqlparser::ast;

use super::catalog_view::CatalogView;
use super::ddl::{check_schema, SCHEMA};
use super::execute::{tag, Session};
use super::QueryResult;
use crate::catalog::{Catalog, Relation, ViewDef};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::planner::{ident_name, split_name, Planner};
use crate::types::DataType;

impl Session {
    pub(super) async fn create_view(&mut self, cv: &ast::CreateView) -> SqlResult<QueryResult> {
        if cv.materialized {
            return Err(SqlError::unsupported(
                "materialized views are not supported",
            ));
        }
        if cv.temporary {
            return Err(SqlError::unsupported("temporary views are not supported"));
        }
        let (schema, name) = split_name(&cv.name)?;
        check_schema(&schema)?;
        let control = self.control_for_ddl();
        self.txn()
            .lock(&crate::catalog::oid_counter_key(), &control)
            .await?;
        let database = self.state.database.oid;
        let (columns, depends_on) = {
            let view = CatalogView {
                state: &self.state,
                txn: self.current_txn()?,
            };
            let mut planner = Planner::new(&view, Vec::new(), self.time_zone().clone());
            let qp = planner.plan_query(&cv.query)?;
            if !planner.params.is_empty() {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_PARAMETER,
                    "there is no parameter $1",
                ));
            }
            if cv.columns.len() > qp.columns.len() {
                return Err(SqlError::syntax(
                    "CREATE VIEW specifies more column names than columns",
                ));
            }
            let mut columns: Vec<(String, DataType)> = Vec::new();
            for (i, c) in qp.columns.into_iter().enumerate() {
                let name = cv
                    .columns
                    .get(i)
                    .map(|d| ident_name(&d.name))
                    .unwrap_or(c.name);
                if columns.iter().any(|(n, _)| *n == name) {
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_COLUMN,
                        format!("column \"{name}\" specified more than once"),
                    ));
                }
                let ty = match c.data_type {
                    DataType::Unknown => DataType::Text,
                    t => t,
                };
                columns.push((name, ty));
            }
            let mut deps = planner.referenced;
            deps.sort_unstable();
            deps.dedup();
            (columns, deps)
        };
        let txn = self.txn();
        let existing = Catalog::new(&*txn).relation_by_name(database, SCHEMA, &name)?;
        let oid = match existing {
            None => Catalog::new(&mut *txn).next_oid()?,
            Some(Relation::View(old)) if cv.or_replace => {
                check_replacement(&old, &columns)?;
                old.oid
            }
            Some(Relation::View(_)) if cv.if_not_exists => {
                self.notice(
                    "NOTICE",
                    "00000",
                    format!("relation \"{name}\" already exists, skipping"),
                );
                return Ok(tag("CREATE VIEW"));
            }
            Some(_) => {
                return Err(SqlError::new(
                    SqlState::DUPLICATE_TABLE,
                    format!("relation \"{name}\" already exists"),
                ))
            }
        };
        let view = ViewDef {
            oid,
            database,
            schema: SCHEMA.into(),
            name,
            owner: self.state.user.clone(),
            sql: cv.query.to_string(),
            columns,
            depends_on,
        };
        Catalog::new(&mut *self.txn()).put_view(&view)?;
        Ok(tag("CREATE VIEW"))
    }
}

/// CREATE OR REPLACE VIEW may add columns at the end, nothing else.
fn check_replacement(old: &ViewDef, new: &[(String, DataType)]) -> SqlResult<()> {
    if new.len() < old.columns.len() {
        return Err(SqlError::new(
            SqlState::INVALID_TABLE_DEFINITION,
            "cannot drop columns from view",
        ));
    }
    for ((old_name, old_type), (new_name, new_type)) in old.columns.iter().zip(new) {
        if old_name != new_name {
            return Err(SqlError::new(
                SqlState::INVALID_TABLE_DEFINITION,
                format!("cannot change name of view column \"{old_name}\" to \"{new_name}\""),
            ));
        }
        if old_type != new_type {
            return Err(SqlError::new(
                SqlState::INVALID_TABLE_DEFINITION,
                format!(
                    "cannot change data type of view column \"{old_name}\" from {} to {}",
                    old_type.sql_name(),
                    new_type.sql_name()
                ),
            ));
        }
    }
    Ok(())
}

/// Views that read `oid`, directly or through other views, nearest first.
pub(super) fn dependent_views(txn: &Transaction, oid: u32) -> SqlResult<Vec<ViewDef>> {
    let views: Vec<ViewDef> = Catalog::new(txn)
        .relations()?
        .into_iter()
        .filter_map(|r| match r {
            Relation::View(v) => Some(v),
            _ => None,
        })
        .collect();
    let mut out: Vec<ViewDef> = Vec::new();
    let mut frontier = vec![oid];
    while let Some(target) = frontier.pop() {
        for v in &views {
            if v.depends_on.contains(&target) && !out.iter().any(|o| o.oid == v.oid) {
                frontier.push(v.oid);
                out.push(v.clone());
            }
        }
    }
    Ok(out)
}

/// Before dropping `what` ("table t"): its dependent views go too with
/// CASCADE (and a notice), else the DROP fails with 2BP01.
pub(super) fn drop_dependent_views(
    txn: &mut Transaction,
    oid: u32,
    what: &str,
    cascade: bool,
    notices: &mut Vec<String>,
) -> SqlResult<()> {
    let dependents = dependent_views(txn, oid)?;
    let Some(first) = dependents.first() else {
        return Ok(());
    };
    if !cascade {
        return Err(SqlError::new(
            SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
            format!("cannot drop {what} because other objects depend on it"),
        )
        .with_detail(format!("view {} depends on {what}", first.name))
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
    }
    notices.push(match dependents.as_slice() {
        [one] => format!("drop cascades to view {}", one.name),
        many => format!("drop cascades to {} other objects", many.len()),
    });
    let mut cat = Catalog::new(&mut *txn);
    for v in &dependents {
        cat.delete_relation(v.database, &v.schema, &v.name, v.oid)?;
    }
    Ok(())
}
