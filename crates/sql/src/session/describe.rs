//! Text that catalog functions print for objects: pg_get_indexdef,
//! pg_get_constraintdef, and a relation's name for `oid::regclass`.

use crate::catalog::{Catalog, Relation, TableDef};
use crate::error::SqlResult;
use duet_storage::Transaction;

/// `kind` is "index", "index column N", "constraint" or "relation".
pub(super) fn describe(txn: &Transaction, kind: &str, oid: u32) -> SqlResult<Option<String>> {
    let relations = Catalog::new(txn).relations()?;
    if kind == "relation" {
        return Ok(relations.iter().find_map(|r| match r {
            Relation::Table(t) if t.oid == oid => Some(t.name.clone()),
            Relation::View(v) if v.oid == oid => Some(v.name.clone()),
            Relation::Sequence(s) if s.oid == oid => Some(s.name.clone()),
            _ => None,
        }));
    }
    let tables: Vec<&TableDef> = relations
        .iter()
        .filter_map(|r| match r {
            Relation::Table(t) => Some(t),
            _ => None,
        })
        .collect();
    let names = |t: &TableDef, cols: &[usize]| {
        cols.iter()
            .map(|&c| t.columns[c].name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let index_column: Option<usize> = kind
        .strip_prefix("index column ")
        .and_then(|n| n.parse().ok());
    for t in &tables {
        for ix in t.all_indexes() {
            if let (Some(n), true) = (index_column, ix.oid == oid) {
                return Ok(ix
                    .columns
                    .get(n.wrapping_sub(1))
                    .map(|&c| t.columns[c].name.clone()));
            }
            let cols = names(t, &ix.columns);
            if kind == "index" && ix.oid == oid {
                let unique = if ix.unique { "UNIQUE " } else { "" };
                return Ok(Some(format!(
                    "CREATE {unique}INDEX {} ON {}.{} USING btree ({cols})",
                    ix.name, t.schema, t.name
                )));
            }
            // Key constraints have no OID of their own: their index's, offset.
            if kind == "constraint" && ix.oid + 1_000_000 == oid {
                let what = if ix.primary { "PRIMARY KEY" } else { "UNIQUE" };
                return Ok(Some(format!("{what} ({cols})")));
            }
        }
        if kind != "constraint" {
            continue;
        }
        if let Some(c) = t.checks.iter().find(|c| c.oid == oid) {
            return Ok(Some(format!("CHECK ({})", c.expr)));
        }
        if let Some(fk) = t.foreign_keys.iter().find(|f| f.oid == oid) {
            let parent = tables.iter().find(|p| p.oid == fk.parent);
            let (parent_name, parent_cols) = match parent {
                Some(p) => (p.name.clone(), names(p, &fk.parent_columns)),
                None => (fk.parent.to_string(), String::new()),
            };
            let mut def = format!(
                "FOREIGN KEY ({}) REFERENCES {parent_name}({parent_cols})",
                names(t, &fk.columns)
            );
            for (event, action) in [("UPDATE", fk.on_update), ("DELETE", fk.on_delete)] {
                if action != crate::catalog::FkAction::NoAction {
                    def.push_str(&format!(" ON {event} {}", action.sql()));
                }
            }
            return Ok(Some(def));
        }
    }
    Ok(None)
}
