//! pg_catalog and information_schema views, computed from the catalog on
//! each read so they always match it.

use duet_storage::Transaction;

use super::execute::SessionState;
use crate::catalog::{
    Catalog, Relation, TableDef, INFORMATION_SCHEMA_NAMESPACE_OID, PG_CATALOG_NAMESPACE_OID,
    PUBLIC_NAMESPACE_OID,
};
use crate::error::SqlResult;
use crate::plan::VirtualTable;
use crate::row::Row;
use crate::types::DataType as T;
use crate::value::Value;

/// Column lists of the views.
fn columns(name: &str) -> Option<Vec<(&'static str, T)>> {
    let name_t = T::Name;
    Some(match name {
        "pg_namespace" => vec![
            ("oid", T::Oid),
            ("nspname", name_t),
            ("nspowner", T::Oid),
            ("nspacl", T::Text),
        ],
        "pg_class" => vec![
            ("oid", T::Oid),
            ("relname", T::Name),
            ("relnamespace", T::Oid),
            ("reltype", T::Oid),
            ("relowner", T::Oid),
            ("relam", T::Oid),
            ("relfilenode", T::Oid),
            ("reltablespace", T::Oid),
            ("relpages", T::Int4),
            ("reltuples", T::Float4),
            ("reltoastrelid", T::Oid),
            ("relhasindex", T::Bool),
            ("relisshared", T::Bool),
            ("relpersistence", T::InternalChar),
            ("relkind", T::InternalChar),
            ("relnatts", T::Int2),
            ("relchecks", T::Int2),
            ("relhasrules", T::Bool),
            ("relhastriggers", T::Bool),
            ("relhassubclass", T::Bool),
            ("relrowsecurity", T::Bool),
            ("relforcerowsecurity", T::Bool),
            ("relispopulated", T::Bool),
            ("relreplident", T::InternalChar),
            ("relispartition", T::Bool),
            ("reloftype", T::Oid),
            ("relacl", T::Array(Box::new(T::Text))),
            ("reloptions", T::Array(Box::new(T::Text))),
            ("relpartbound", T::Text),
        ],
        "pg_attribute" => vec![
            ("attrelid", T::Oid),
            ("attname", T::Name),
            ("atttypid", T::Oid),
            ("attlen", T::Int2),
            ("attnum", T::Int2),
            ("atttypmod", T::Int4),
            ("attnotnull", T::Bool),
            ("atthasdef", T::Bool),
            ("attidentity", T::InternalChar),
            ("attgenerated", T::InternalChar),
            ("attisdropped", T::Bool),
            ("attcollation", T::Oid),
            ("attstorage", T::InternalChar),
            ("attcompression", T::InternalChar),
            ("attstattarget", T::Int2),
        ],
        "pg_type" => vec![
            ("oid", T::Oid),
            ("typname", T::Name),
            ("typnamespace", T::Oid),
            ("typowner", T::Oid),
            ("typlen", T::Int2),
            ("typbyval", T::Bool),
            ("typtype", T::InternalChar),
            ("typcategory", T::InternalChar),
            ("typisdefined", T::Bool),
            ("typdelim", T::InternalChar),
            ("typrelid", T::Oid),
            ("typelem", T::Oid),
            ("typarray", T::Oid),
            ("typbasetype", T::Oid),
            ("typtypmod", T::Int4),
            ("typnotnull", T::Bool),
            ("typcollation", T::Oid),
            ("typinput", T::Oid),
        ],
        "pg_index" => vec![
            ("indexrelid", T::Oid),
            ("indrelid", T::Oid),
            ("indnatts", T::Int2),
            ("indisunique", T::Bool),
            ("indisprimary", T::Bool),
            ("indisclustered", T::Bool),
            ("indisvalid", T::Bool),
            ("indisreplident", T::Bool),
            ("indkey", T::Text),
            ("indoption", T::Array(Box::new(T::Int2))),
            ("indexprs", T::Text),
            ("indpred", T::Text),
        ],
        "pg_roles" | "pg_authid" => vec![
            ("oid", T::Oid),
            ("rolname", T::Name),
            ("rolsuper", T::Bool),
            ("rolinherit", T::Bool),
            ("rolcreaterole", T::Bool),
            ("rolcreatedb", T::Bool),
            ("rolcanlogin", T::Bool),
            ("rolreplication", T::Bool),
            ("rolconnlimit", T::Int4),
            ("rolpassword", T::Text),
            ("rolvaliduntil", T::TimestampTz),
            ("rolbypassrls", T::Bool),
        ],
        "pg_user" => vec![
            ("usename", T::Name),
            ("usesysid", T::Oid),
            ("usecreatedb", T::Bool),
            ("usesuper", T::Bool),
            ("userepl", T::Bool),
            ("usebypassrls", T::Bool),
            ("passwd", T::Text),
            ("valuntil", T::TimestampTz),
        ],
        "pg_auth_members" => vec![
            ("roleid", T::Oid),
            ("member", T::Oid),
            ("grantor", T::Oid),
            ("admin_option", T::Bool),
        ],
        "pg_database" => vec![
            ("oid", T::Oid),
            ("datname", T::Name),
            ("datdba", T::Oid),
            ("encoding", T::Int4),
            ("datcollate", T::Name),
            ("datctype", T::Name),
            ("datistemplate", T::Bool),
            ("datallowconn", T::Bool),
            ("datconnlimit", T::Int4),
            ("datacl", T::Array(Box::new(T::Text))),
            ("datlocprovider", T::InternalChar),
            ("daticulocale", T::Text),
        ],
        "pg_settings" => vec![
            ("name", T::Text),
            ("setting", T::Text),
            ("unit", T::Text),
            ("category", T::Text),
            ("short_desc", T::Text),
            ("context", T::Text),
            ("vartype", T::Text),
            ("source", T::Text),
        ],
        "pg_am" => vec![
            ("oid", T::Oid),
            ("amname", T::Name),
            ("amhandler", T::Oid),
            ("amtype", T::InternalChar),
        ],
        "pg_attrdef" => vec![
            ("oid", T::Oid),
            ("adrelid", T::Oid),
            ("adnum", T::Int2),
            ("adbin", T::Text),
        ],
        "pg_constraint" => vec![
            ("oid", T::Oid),
            ("conname", T::Name),
            ("connamespace", T::Oid),
            ("contype", T::InternalChar),
            ("condeferrable", T::Bool),
            ("condeferred", T::Bool),
            ("convalidated", T::Bool),
            ("conrelid", T::Oid),
            ("conindid", T::Oid),
            ("confrelid", T::Oid),
            ("conkey", T::Array(Box::new(T::Int2))),
            ("confkey", T::Array(Box::new(T::Int2))),
            ("conparentid", T::Oid),
        ],
        "pg_description" => vec![
            ("objoid", T::Oid),
            ("classoid", T::Oid),
            ("objsubid", T::Int4),
            ("description", T::Text),
        ],
        "pg_tables" => vec![
            ("schemaname", T::Name),
            ("tablename", T::Name),
            ("tableowner", T::Name),
            ("tablespace", T::Name),
            ("hasindexes", T::Bool),
            ("hasrules", T::Bool),
            ("hastriggers", T::Bool),
            ("rowsecurity", T::Bool),
        ],
        "pg_views" => vec![
            ("schemaname", T::Name),
            ("viewname", T::Name),
            ("viewowner", T::Name),
            ("definition", T::Text),
        ],
        "pg_sequences" => vec![
            ("schemaname", T::Name),
            ("sequencename", T::Name),
            ("sequenceowner", T::Name),
            ("start_value", T::Int8),
            ("increment_by", T::Int8),
        ],
        // Empty catalogs psql consults.
        "pg_policy" => vec![
            ("oid", T::Oid),
            ("polname", T::Name),
            ("polrelid", T::Oid),
            ("polcmd", T::InternalChar),
            ("polpermissive", T::Bool),
            ("polroles", T::Array(Box::new(T::Oid))),
            ("polqual", T::Text),
            ("polwithcheck", T::Text),
        ],
        "pg_inherits" => vec![
            ("inhrelid", T::Oid),
            ("inhparent", T::Oid),
            ("inhseqno", T::Int4),
            ("inhdetachpending", T::Bool),
        ],
        "pg_trigger" => vec![
            ("oid", T::Oid),
            ("tgrelid", T::Oid),
            ("tgparentid", T::Oid),
            ("tgname", T::Name),
            ("tgfoid", T::Oid),
            ("tgtype", T::Int2),
            ("tgenabled", T::InternalChar),
            ("tgisinternal", T::Bool),
            ("tgconstraint", T::Oid),
        ],
        "pg_depend" => vec![
            ("classid", T::Oid),
            ("objid", T::Oid),
            ("objsubid", T::Int4),
            ("refclassid", T::Oid),
            ("refobjid", T::Oid),
            ("refobjsubid", T::Int4),
            ("deptype", T::InternalChar),
        ],
        "pg_statistic_ext" => vec![
            ("oid", T::Oid),
            ("stxrelid", T::Oid),
            ("stxname", T::Name),
            ("stxnamespace", T::Oid),
            ("stxowner", T::Oid),
            ("stxstattarget", T::Int4),
            ("stxkeys", T::Text),
            ("stxkind", T::Array(Box::new(T::InternalChar))),
        ],
        "pg_publication" => vec![
            ("oid", T::Oid),
            ("pubname", T::Name),
            ("pubowner", T::Oid),
            ("puballtables", T::Bool),
            ("pubinsert", T::Bool),
            ("pubupdate", T::Bool),
            ("pubdelete", T::Bool),
            ("pubtruncate", T::Bool),
            ("pubviaroot", T::Bool),
        ],
        "pg_publication_rel" => vec![
            ("oid", T::Oid),
            ("prpubid", T::Oid),
            ("prrelid", T::Oid),
            ("prqual", T::Text),
            ("prattrs", T::Array(Box::new(T::Int2))),
        ],
        "pg_publication_namespace" => {
            vec![("oid", T::Oid), ("pnpubid", T::Oid), ("pnnspid", T::Oid)]
        }
        "pg_collation" => vec![
            ("oid", T::Oid),
            ("collname", T::Name),
            ("collnamespace", T::Oid),
        ],
        "pg_rewrite" => vec![("oid", T::Oid), ("rulename", T::Name), ("ev_class", T::Oid)],
        "pg_foreign_table" => vec![("ftrelid", T::Oid), ("ftserver", T::Oid)],
        "pg_extension" => vec![
            ("oid", T::Oid),
            ("extname", T::Name),
            ("extversion", T::Text),
        ],
        "pg_stat_replication" | "pg_stat_wal_receiver" | "pg_replication_slots" => {
            return crate::replicate::view_columns(name)
        }
        "pg_stat_activity" => vec![
            ("datname", T::Name),
            ("pid", T::Int4),
            ("usename", T::Name),
            ("application_name", T::Text),
            ("state", T::Text),
            ("query", T::Text),
        ],
        "tables" => vec![
            ("table_catalog", T::Name),
            ("table_schema", T::Name),
            ("table_name", T::Name),
            ("table_type", T::Text),
        ],
        "columns" => vec![
            ("table_catalog", T::Name),
            ("table_schema", T::Name),
            ("table_name", T::Name),
            ("column_name", T::Name),
            ("ordinal_position", T::Int4),
            ("column_default", T::Text),
            ("is_nullable", T::Text),
            ("data_type", T::Text),
            ("character_maximum_length", T::Int4),
            ("numeric_precision", T::Int4),
            ("numeric_scale", T::Int4),
        ],
        "views" => vec![
            ("table_catalog", T::Name),
            ("table_schema", T::Name),
            ("table_name", T::Name),
            ("view_definition", T::Text),
        ],
        "schemata" => vec![
            ("catalog_name", T::Name),
            ("schema_name", T::Name),
            ("schema_owner", T::Name),
        ],
        _ => return None,
    })
}

const INFORMATION_SCHEMA_VIEWS: &[&str] = &["tables", "columns", "views", "schemata"];

/// Finds a view by (optional schema and) name.
pub fn lookup(schema: Option<&str>, name: &str) -> Option<VirtualTable> {
    let qualified = match schema {
        Some("information_schema") if INFORMATION_SCHEMA_VIEWS.contains(&name) => {
            format!("information_schema.{name}")
        }
        Some("pg_catalog") | None if !INFORMATION_SCHEMA_VIEWS.contains(&name) => name.to_string(),
        _ => return None,
    };
    let cols = columns(name)?;
    Some(VirtualTable {
        name: qualified,
        columns: cols.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
    })
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn oid(o: u32) -> Value {
    Value::Int(o as i64)
}

/// Types listed in pg_type.
const TYPES: &[T] = &[
    T::Bool,
    T::Bytea,
    T::InternalChar,
    T::Name,
    T::Int8,
    T::Int2,
    T::Int4,
    T::Text,
    T::Oid,
    T::Float4,
    T::Float8,
    T::Char(1),
    T::Varchar(None),
    T::Date,
    T::Timestamp,
    T::TimestampTz,
    T::Numeric(None),
];

fn type_name(t: &T) -> &'static str {
    match t {
        T::Bool => "bool",
        T::Bytea => "bytea",
        T::InternalChar => "char",
        T::Name => "name",
        T::Int8 => "int8",
        T::Int2 => "int2",
        T::Int4 => "int4",
        T::Text => "text",
        T::Oid => "oid",
        T::Float4 => "float4",
        T::Float8 => "float8",
        T::Char(_) => "bpchar",
        T::Varchar(_) => "varchar",
        T::Date => "date",
        T::Timestamp => "timestamp",
        T::TimestampTz => "timestamptz",
        T::Numeric(_) => "numeric",
        _ => "unknown",
    }
}

fn visible_columns(t: &TableDef) -> impl Iterator<Item = (usize, &crate::catalog::ColumnDef)> {
    let hidden = t.has_hidden_key();
    let n = t.columns.len();
    t.columns
        .iter()
        .enumerate()
        .filter(move |(i, _)| !(hidden && *i == n - 1))
}

/// Computes a view's rows.
pub fn rows(name: &str, state: &SessionState, txn: &Transaction) -> SqlResult<Vec<Row>> {
    let cat = Catalog::new(txn);
    let db = state.database.oid;
    let roles = cat.roles()?;
    let role_oid = |n: &str| {
        roles
            .iter()
            .find(|r| r.name == n)
            .map(|r| r.oid)
            .unwrap_or(10)
    };
    let relations: Vec<Relation> = cat.relations()?;
    let tables: Vec<&TableDef> = relations
        .iter()
        .filter_map(|r| match r {
            Relation::Table(t) if t.database == db => Some(t),
            _ => None,
        })
        .collect();
    let mut out: Vec<Row> = Vec::new();
    match name {
        "pg_stat_replication" | "pg_stat_wal_receiver" | "pg_replication_slots" => {
            if let Some(view) = state.db.node_control().and_then(|c| c.view(name)) {
                out.extend(view.rows);
            }
        }
        "pg_namespace" => {
            for (o, n) in [
                (PG_CATALOG_NAMESPACE_OID, "pg_catalog"),
                (PUBLIC_NAMESPACE_OID, "public"),
                (INFORMATION_SCHEMA_NAMESPACE_OID, "information_schema"),
            ] {
                out.push(vec![
                    oid(o),
                    text(n),
                    oid(role_oid(crate::catalog::ROOT_USER)),
                    Value::Null,
                ]);
            }
        }
        "pg_class" => {
            for r in &relations {
                let (o, relname, owner, kind, natts, has_index) = match r {
                    Relation::Table(t) if t.database == db => (
                        t.oid,
                        t.name.clone(),
                        t.owner.clone(),
                        "r",
                        visible_columns(t).count(),
                        true,
                    ),
                    Relation::Sequence(s) if s.database == db => {
                        (s.oid, s.name.clone(), s.owner.clone(), "S", 3, false)
                    }
                    Relation::View(v) if v.database == db => (
                        v.oid,
                        v.name.clone(),
                        v.owner.clone(),
                        "v",
                        v.columns.len(),
                        false,
                    ),
                    _ => continue,
                };
                let mut row =
                    class_row(o, &relname, role_oid(&owner), kind, natts as i64, has_index);
                if let Relation::Table(t) = r {
                    // relchecks, relhastriggers: psql's \d looks for
                    // constraints only when these say there are some.
                    row[16] = Value::Int(t.checks.len() as i64);
                    row[18] =
                        Value::Bool(!t.foreign_keys.is_empty() || !t.referenced_by.is_empty());
                }
                out.push(row);
            }
            for t in &tables {
                for ix in t.all_indexes() {
                    out.push(class_row(
                        ix.oid,
                        &ix.name,
                        role_oid(&t.owner),
                        "i",
                        ix.columns.len() as i64,
                        false,
                    ));
                }
            }
        }
        "pg_attribute" => {
            for t in &tables {
                for (i, c) in visible_columns(t) {
                    out.push(vec![
                        oid(t.oid),
                        text(&c.name),
                        oid(c.data_type.oid()),
                        Value::Int(c.data_type.typlen() as i64),
                        Value::Int(i as i64 + 1),
                        Value::Int(c.data_type.typmod() as i64),
                        Value::Bool(!c.nullable),
                        Value::Bool(c.default.is_some()),
                        text(""),
                        text(""),
                        Value::Bool(false),
                        oid(if c.data_type.is_string() { 100 } else { 0 }),
                        text(if c.data_type.typlen() > 0 { "p" } else { "x" }),
                        text(""),
                        Value::Int(-1),
                    ]);
                }
            }
            for v in user_views(&relations, db) {
                for (i, (name, ty)) in v.columns.iter().enumerate() {
                    out.push(vec![
                        oid(v.oid),
                        text(name),
                        oid(ty.oid()),
                        Value::Int(ty.typlen() as i64),
                        Value::Int(i as i64 + 1),
                        Value::Int(ty.typmod() as i64),
                        Value::Bool(false),
                        Value::Bool(false),
                        text(""),
                        text(""),
                        Value::Bool(false),
                        oid(if ty.is_string() { 100 } else { 0 }),
                        text(if ty.typlen() > 0 { "p" } else { "x" }),
                        text(""),
                        Value::Int(-1),
                    ]);
                }
            }
        }
        "pg_type" => {
            for t in TYPES {
                let elem = 0;
                out.push(vec![
                    oid(t.oid()),
                    text(type_name(t)),
                    oid(PG_CATALOG_NAMESPACE_OID),
                    oid(10),
                    Value::Int(t.typlen() as i64),
                    Value::Bool(t.typlen() > 0 && t.typlen() <= 8),
                    text("b"),
                    text(&t.category().to_string()),
                    Value::Bool(true),
                    text(","),
                    oid(0),
                    oid(elem),
                    oid(T::Array(Box::new(t.clone())).oid()),
                    oid(0),
                    Value::Int(-1),
                    Value::Bool(false),
                    oid(if t.is_string() { 100 } else { 0 }),
                    oid(0),
                ]);
            }
        }
        "pg_index" => {
            for t in &tables {
                for ix in t.all_indexes() {
                    if t.has_hidden_key() && ix.primary {
                        continue;
                    }
                    let key = ix
                        .columns
                        .iter()
                        .map(|c| (c + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(" ");
                    out.push(vec![
                        oid(ix.oid),
                        oid(t.oid),
                        Value::Int(ix.columns.len() as i64),
                        Value::Bool(ix.unique),
                        Value::Bool(ix.primary),
                        Value::Bool(false),
                        Value::Bool(true),
                        Value::Bool(false),
                        text(&key),
                        // No DESC or NULLS FIRST key columns.
                        Value::Array(vec![Value::Int(0); ix.columns.len()]),
                        Value::Null,
                        Value::Null,
                    ]);
                }
            }
        }
        "pg_roles" | "pg_authid" => {
            for r in &roles {
                out.push(vec![
                    oid(r.oid),
                    text(&r.name),
                    Value::Bool(r.superuser),
                    Value::Bool(true),
                    Value::Bool(r.create_role || r.superuser),
                    Value::Bool(r.create_db || r.superuser),
                    Value::Bool(r.login),
                    Value::Bool(r.replication),
                    Value::Int(-1),
                    text("********"),
                    Value::Null,
                    Value::Bool(false),
                ]);
            }
        }
        "pg_user" => {
            for r in roles.iter().filter(|r| r.login) {
                out.push(vec![
                    text(&r.name),
                    oid(r.oid),
                    Value::Bool(r.create_db || r.superuser),
                    Value::Bool(r.superuser),
                    Value::Bool(r.replication),
                    Value::Bool(false),
                    text("********"),
                    Value::Null,
                ]);
            }
        }
        "pg_auth_members" => {
            for r in &roles {
                for m in &r.member_of {
                    out.push(vec![
                        oid(role_oid(m)),
                        oid(r.oid),
                        oid(10),
                        Value::Bool(false),
                    ]);
                }
            }
        }
        "pg_database" => {
            for d in cat.databases()? {
                out.push(vec![
                    oid(d.oid),
                    text(&d.name),
                    oid(role_oid(&d.owner)),
                    Value::Int(6),
                    text("C.UTF-8"),
                    text("C.UTF-8"),
                    Value::Bool(false),
                    Value::Bool(true),
                    Value::Int(-1),
                    Value::Null,
                    text("c"),
                    Value::Null,
                ]);
            }
        }
        "pg_settings" => {
            for (k, v) in state.settings.all() {
                out.push(vec![
                    text(&k),
                    text(&v),
                    Value::Null,
                    text("duet"),
                    text(""),
                    text("user"),
                    text("string"),
                    text("default"),
                ]);
            }
        }
        "pg_am" => {
            out.push(vec![oid(403), text("btree"), oid(0), text("i")]);
            out.push(vec![oid(2), text("heap"), oid(0), text("t")]);
        }
        "pg_attrdef" => {
            for t in &tables {
                for (i, c) in visible_columns(t) {
                    if let Some(d) = &c.default {
                        out.push(vec![
                            oid(t.oid.wrapping_mul(1000).wrapping_add(i as u32)),
                            oid(t.oid),
                            Value::Int(i as i64 + 1),
                            text(d),
                        ]);
                    }
                }
            }
        }
        "pg_constraint" => {
            for t in &tables {
                for ix in t.all_indexes().filter(|i| i.constraint) {
                    if t.has_hidden_key() && ix.primary {
                        continue;
                    }
                    out.push(vec![
                        oid(ix.oid + 1_000_000),
                        text(&ix.name),
                        oid(PUBLIC_NAMESPACE_OID),
                        text(if ix.primary { "p" } else { "u" }),
                        Value::Bool(false),
                        Value::Bool(false),
                        Value::Bool(true),
                        oid(t.oid),
                        oid(ix.oid),
                        oid(0),
                        Value::Array(
                            ix.columns
                                .iter()
                                .map(|c| Value::Int(*c as i64 + 1))
                                .collect(),
                        ),
                        Value::Null,
                        oid(0),
                    ]);
                }
                for c in &t.checks {
                    out.push(vec![
                        oid(c.oid),
                        text(&c.name),
                        oid(PUBLIC_NAMESPACE_OID),
                        text("c"),
                        Value::Bool(false),
                        Value::Bool(false),
                        Value::Bool(true),
                        oid(t.oid),
                        oid(0),
                        oid(0),
                        Value::Null,
                        Value::Null,
                        oid(0),
                    ]);
                }
                for fk in &t.foreign_keys {
                    let attnums = |cols: &[usize]| {
                        Value::Array(cols.iter().map(|c| Value::Int(*c as i64 + 1)).collect())
                    };
                    out.push(vec![
                        oid(fk.oid),
                        text(&fk.name),
                        oid(PUBLIC_NAMESPACE_OID),
                        text("f"),
                        Value::Bool(false),
                        Value::Bool(false),
                        Value::Bool(true),
                        oid(t.oid),
                        oid(0),
                        oid(fk.parent),
                        attnums(&fk.columns),
                        attnums(&fk.parent_columns),
                        oid(0),
                    ]);
                }
            }
        }
        "pg_tables" => {
            for t in &tables {
                out.push(vec![
                    text(&t.schema),
                    text(&t.name),
                    text(&t.owner),
                    Value::Null,
                    Value::Bool(!t.indexes.is_empty() || !t.has_hidden_key()),
                    Value::Bool(false),
                    Value::Bool(false),
                    Value::Bool(false),
                ]);
            }
        }
        "pg_sequences" => {
            for r in &relations {
                if let Relation::Sequence(s) = r {
                    if s.database == db {
                        out.push(vec![
                            text(&s.schema),
                            text(&s.name),
                            text(&s.owner),
                            Value::Int(s.start),
                            Value::Int(s.increment),
                        ]);
                    }
                }
            }
        }
        "information_schema.tables" => {
            for t in &tables {
                out.push(vec![
                    text(&state.database.name),
                    text(&t.schema),
                    text(&t.name),
                    text("BASE TABLE"),
                ]);
            }
            for v in user_views(&relations, db) {
                out.push(vec![
                    text(&state.database.name),
                    text(&v.schema),
                    text(&v.name),
                    text("VIEW"),
                ]);
            }
        }
        "pg_views" => {
            for v in user_views(&relations, db) {
                out.push(vec![
                    text(&v.schema),
                    text(&v.name),
                    text(&v.owner),
                    text(&format!(" {};", v.sql)),
                ]);
            }
        }
        "information_schema.columns" => {
            for t in &tables {
                for (i, c) in visible_columns(t) {
                    let (len, prec, scale) = match &c.data_type {
                        T::Varchar(n) => (
                            n.map(|n| Value::Int(n as i64)).unwrap_or(Value::Null),
                            Value::Null,
                            Value::Null,
                        ),
                        T::Char(n) => (Value::Int(*n as i64), Value::Null, Value::Null),
                        T::Int2 => (Value::Null, Value::Int(16), Value::Int(0)),
                        T::Int4 => (Value::Null, Value::Int(32), Value::Int(0)),
                        T::Int8 => (Value::Null, Value::Int(64), Value::Int(0)),
                        T::Numeric(Some((p, s))) => {
                            (Value::Null, Value::Int(*p as i64), Value::Int(*s as i64))
                        }
                        _ => (Value::Null, Value::Null, Value::Null),
                    };
                    out.push(vec![
                        text(&state.database.name),
                        text(&t.schema),
                        text(&t.name),
                        text(&c.name),
                        Value::Int(i as i64 + 1),
                        c.default.as_deref().map(text).unwrap_or(Value::Null),
                        text(if c.nullable { "YES" } else { "NO" }),
                        text(&c.data_type.type_name()),
                        len,
                        prec,
                        scale,
                    ]);
                }
            }
        }
        "information_schema.views" => {
            for v in user_views(&relations, db) {
                out.push(vec![
                    text(&state.database.name),
                    text(&v.schema),
                    text(&v.name),
                    text(&format!(" {};", v.sql)),
                ]);
            }
        }
        "information_schema.schemata" => {
            for s in ["pg_catalog", "public", "information_schema"] {
                out.push(vec![text(&state.database.name), text(s), text("root")]);
            }
        }
        _ => {}
    }
    Ok(out)
}

fn user_views(relations: &[Relation], db: u32) -> impl Iterator<Item = &crate::catalog::ViewDef> {
    relations.iter().filter_map(move |r| match r {
        Relation::View(v) if v.database == db => Some(v),
        _ => None,
    })
}

fn class_row(o: u32, name: &str, owner: u32, kind: &str, natts: i64, has_index: bool) -> Row {
    vec![
        oid(o),
        text(name),
        oid(PUBLIC_NAMESPACE_OID),
        oid(0),
        oid(owner),
        oid(if kind == "i" {
            403
        } else if kind == "r" {
            2
        } else {
            0
        }),
        oid(o),
        oid(0),
        Value::Int(0),
        Value::Float(-1.0),
        oid(0),
        Value::Bool(has_index),
        Value::Bool(false),
        text("p"),
        text(kind),
        Value::Int(natts),
        Value::Int(0),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(false),
        Value::Bool(true),
        text("d"),
        Value::Bool(false),
        oid(0),
        Value::Null,
        Value::Null,
        Value::Null,
    ]
}
