//! Schema changes: CREATE/DROP TABLE, CREATE/DROP INDEX, CREATE/DROP
//! SEQUENCE. DDL is transactional (it writes catalog keys in the same
//! transaction) and serialized by a lock on the OID counter.

use std::collections::BTreeMap;
use std::ops::Bound;

use duet_storage::keycode::prefix_end;
use duet_storage::Transaction;
use sqlparser::ast::{self, ColumnOption, Statement as Ast, TableConstraint};

use super::constraint_ddl::NewConstraint;
use super::execute::{tag, Session};
use super::QueryResult;
use crate::catalog::{
    index_prefix, table_rows_prefix, Catalog, ColumnDef, IndexDef, Relation, SequenceDef, TableDef,
};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::planner::{convert_type, ident_name, serial_kind, split_name};
use crate::row::{index_entry_key, index_values_prefix, primary_key_suffix};
use crate::types::DataType;

pub(super) const SCHEMA: &str = "public";
/// PostgreSQL truncates identifiers to 63 bytes.
const NAME_LIMIT: usize = 63;

pub(super) fn truncate_name(s: String) -> String {
    if s.len() <= NAME_LIMIT {
        return s;
    }
    let mut end = NAME_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

pub(super) fn check_schema(schema: &Option<String>) -> SqlResult<()> {
    match schema.as_deref() {
        None | Some("public") => Ok(()),
        Some(s) => Err(SqlError::new(
            SqlState::INVALID_SCHEMA_NAME,
            format!("schema \"{s}\" does not exist"),
        )),
    }
}

/// Deletes every key with the prefix (table rows or index entries).
pub(super) fn delete_prefix(txn: &mut Transaction, prefix: Vec<u8>) -> SqlResult<()> {
    let end = prefix_end(&prefix)
        .map(Bound::Excluded)
        .unwrap_or(Bound::Unbounded);
    let mut keys = Vec::new();
    let mut scan = txn.scan(Bound::Included(prefix), end);
    while let Some((k, _)) = scan.next_entry()? {
        keys.push(k);
    }
    drop(scan);
    for k in keys {
        txn.delete(k);
    }
    Ok(())
}

impl Session {
    pub(crate) async fn ddl(&mut self, ast: &Ast) -> SqlResult<QueryResult> {
        if let Ast::Drop {
            object_type: ast::ObjectType::Role | ast::ObjectType::User,
            ..
        } = ast
        {
            return self.role_statement(ast).await;
        }
        let control = self.control_for_ddl();
        let txn = self.txn();
        // One DDL statement at a time per node: lock the OID counter.
        txn.lock(&crate::catalog::oid_counter_key(), &control)
            .await?;
        let database = self.state.database.oid;
        let user = self.state.user.clone();
        let mut notices = Vec::new();
        // The field itself, not a method: the match below also borrows
        // self.state.
        let txn = self
            .txn
            .as_mut()
            .ok_or_else(|| SqlError::internal("no transaction"))?;
        let mut pending = Vec::new();
        let result = match ast {
            Ast::CreateTable(ct) => {
                create_table(txn, database, &user, ct, &mut notices, &mut pending)
            }
            Ast::CreateIndex(ci) => create_index(txn, database, ci, &mut notices, &self.state),
            Ast::CreateSequence {
                if_not_exists,
                name,
                ..
            } => create_sequence(txn, database, &user, name, *if_not_exists, &mut notices),
            Ast::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => drop_objects(
                txn,
                database,
                object_type,
                names,
                *if_exists,
                *cascade,
                &mut notices,
                &self.state,
            ),
            _ => Err(SqlError::internal("not a DDL statement")),
        };
        for n in notices {
            self.notice("NOTICE", "00000", n);
        }
        let result = result?;
        if let (Ast::CreateTable(ct), false) = (ast, pending.is_empty()) {
            let name = split_name(&ct.name)?.1;
            let oid = Catalog::new(self.current_txn()?)
                .relation_oid(database, SCHEMA, &name)?
                .ok_or_else(|| SqlError::internal("created table not found"))?;
            for c in pending {
                self.add_constraint_to(oid, c).await?;
            }
        }
        Ok(result)
    }

    /// TRUNCATE: deletes every row and index entry in the transaction.
    pub(crate) async fn truncate(&mut self, t: &ast::Truncate) -> SqlResult<QueryResult> {
        let database = self.state.database.oid;
        let mut tables = Vec::new();
        for target in &t.table_names {
            let (schema, name) = split_name(&target.name)?;
            check_schema(&schema)?;
            let table = Catalog::new(&*self.txn())
                .table(database, SCHEMA, &name)?
                .ok_or_else(|| SqlError::undefined_table(&name))?;
            if !self.state.is_admin
                && table.owner != self.state.user
                && !table
                    .acl
                    .get(&self.state.user)
                    .is_some_and(|p| p.contains(&crate::catalog::Privilege::Delete))
            {
                return Err(SqlError::insufficient_privilege(format!(
                    "permission denied for table {name}"
                )));
            }
            tables.push(table);
        }
        let cascade = matches!(t.cascade, Some(ast::CascadeOption::Cascade));
        let mut notices = Vec::new();
        let added = super::constraint_ddl::truncate_closure(
            self.current_txn()?,
            &tables,
            cascade,
            &mut notices,
        )?;
        tables.extend(added);
        for n in notices {
            self.notice("NOTICE", "00000", n);
        }
        let control = self.control_for_ddl();
        let txn = self.txn();
        for table in &tables {
            // Concurrent TRUNCATEs of one table serialize on this lock.
            txn.lock(&table_rows_prefix(table.oid), &control).await?;
            delete_prefix(txn, table_rows_prefix(table.oid))?;
            for index in &table.indexes {
                delete_prefix(txn, index_prefix(index.oid))?;
            }
        }
        Ok(tag("TRUNCATE TABLE"))
    }

    pub(super) fn control_for_ddl(&self) -> duet_storage::StatementControl {
        duet_storage::StatementControl {
            interrupt: self.state.interrupt.clone(),
            deadline: None,
        }
    }
}

/// Creates the table; its CHECK and FOREIGN KEY constraints are returned
/// in `pending`, to be added once the table exists.
fn create_table(
    txn: &mut Transaction,
    database: u32,
    owner: &str,
    ct: &ast::CreateTable,
    notices: &mut Vec<String>,
    pending: &mut Vec<NewConstraint>,
) -> SqlResult<QueryResult> {
    let (schema, name) = split_name(&ct.name)?;
    check_schema(&schema)?;
    if ct.temporary {
        return Err(SqlError::unsupported(
            "temporary tables are not supported yet",
        ));
    }
    if ct.query.is_some() || ct.like.is_some() {
        return Err(SqlError::unsupported(
            "CREATE TABLE AS / LIKE is not supported yet",
        ));
    }
    if Catalog::new(&*txn)
        .relation_oid(database, SCHEMA, &name)?
        .is_some()
    {
        if ct.if_not_exists {
            notices.push(format!("relation \"{name}\" already exists, skipping"));
            return Ok(tag("CREATE TABLE"));
        }
        return Err(SqlError::new(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{name}\" already exists"),
        ));
    }
    let mut cat = Catalog::new(&mut *txn);
    let oid = cat.next_oid()?;
    let mut columns: Vec<ColumnDef> = Vec::new();
    let mut primary: Option<Vec<usize>> = None;
    let mut uniques: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    let mut sequences: Vec<SequenceDef> = Vec::new();
    for (pos, c) in ct.columns.iter().enumerate() {
        let col_name = ident_name(&c.name);
        if columns.iter().any(|x| x.name == col_name) {
            return Err(SqlError::new(
                SqlState::DUPLICATE_COLUMN,
                format!("column \"{col_name}\" specified more than once"),
            ));
        }
        let serial = serial_kind(&c.data_type);
        let data_type = convert_type(&c.data_type)?;
        let mut def = ColumnDef {
            name: col_name.clone(),
            data_type: data_type.clone(),
            nullable: true,
            default: None,
        };
        if let Some(int_type) = serial {
            let seq_name = truncate_name(format!("{name}_{col_name}_seq"));
            let max = match int_type {
                DataType::Int2 => i16::MAX as i64,
                DataType::Int4 => i32::MAX as i64,
                _ => i64::MAX,
            };
            sequences.push(SequenceDef {
                oid: 0,
                database,
                schema: SCHEMA.into(),
                name: seq_name.clone(),
                owner: owner.into(),
                data_type: int_type,
                start: 1,
                increment: 1,
                min: 1,
                max,
                owned_by: Some((oid, pos)),
            });
            def.default = Some(format!("nextval('{seq_name}'::regclass)"));
            def.nullable = false;
        }
        for opt in &c.options {
            match &opt.option {
                ColumnOption::NotNull => def.nullable = false,
                ColumnOption::Null => def.nullable = true,
                ColumnOption::Default(e) => def.default = Some(e.to_string()),
                ColumnOption::PrimaryKey(_) => {
                    if primary.is_some() {
                        return Err(SqlError::new(
                            SqlState::INVALID_TABLE_DEFINITION,
                            format!("multiple primary keys for table \"{name}\" are not allowed"),
                        ));
                    }
                    primary = Some(vec![pos]);
                }
                ColumnOption::Unique(_) => {
                    uniques.push((opt.name.as_ref().map(ident_name), vec![pos]))
                }
                ColumnOption::Check(check) => {
                    let mut check = check.clone();
                    check.name = check.name.or_else(|| opt.name.clone());
                    pending.push(NewConstraint::Check {
                        check,
                        column: Some(pos),
                    })
                }
                ColumnOption::ForeignKey(fk) => {
                    let mut fk = fk.clone();
                    fk.name = fk.name.or_else(|| opt.name.clone());
                    pending.push(NewConstraint::ForeignKey {
                        fk,
                        column: Some(pos),
                    })
                }
                ColumnOption::Collation(_) | ColumnOption::Comment(_) => {}
                other => {
                    return Err(SqlError::unsupported(format!(
                        "column option not supported: {other}"
                    )))
                }
            }
        }
        columns.push(def);
    }
    let resolve = |cols: &[ast::IndexColumn], columns: &[ColumnDef]| -> SqlResult<Vec<usize>> {
        cols.iter()
            .map(|ic| {
                let n = match &ic.column.expr {
                    ast::Expr::Identifier(id) => ident_name(id),
                    other => {
                        return Err(SqlError::unsupported(format!(
                            "constraint on expression {other} is not supported"
                        )))
                    }
                };
                columns.iter().position(|c| c.name == n).ok_or_else(|| {
                    SqlError::new(
                        SqlState::UNDEFINED_COLUMN,
                        format!("column \"{n}\" named in key does not exist"),
                    )
                })
            })
            .collect()
    };
    for tc in &ct.constraints {
        match tc {
            TableConstraint::PrimaryKey(pk) => {
                if primary.is_some() {
                    return Err(SqlError::new(
                        SqlState::INVALID_TABLE_DEFINITION,
                        format!("multiple primary keys for table \"{name}\" are not allowed"),
                    ));
                }
                primary = Some(resolve(&pk.columns, &columns)?);
            }
            TableConstraint::Unique(u) => uniques.push((
                u.name.as_ref().map(ident_name),
                resolve(&u.columns, &columns)?,
            )),
            TableConstraint::Check(check) => pending.push(NewConstraint::Check {
                check: check.clone(),
                column: None,
            }),
            TableConstraint::ForeignKey(fk) => pending.push(NewConstraint::ForeignKey {
                fk: fk.clone(),
                column: None,
            }),
            other => {
                return Err(SqlError::unsupported(format!(
                    "table constraint not supported: {other}"
                )))
            }
        }
    }
    // A table without a primary key gets a hidden rowid key.
    let mut rowid_seq_index = None;
    let primary_cols = match primary {
        Some(cols) => {
            for &c in &cols {
                columns[c].nullable = false;
            }
            cols
        }
        None => {
            let mut hidden = "rowid".to_string();
            while columns.iter().any(|c| c.name == hidden) {
                hidden.push('_');
            }
            columns.push(ColumnDef {
                name: hidden.clone(),
                data_type: DataType::Int8,
                nullable: false,
                default: None,
            });
            rowid_seq_index = Some(sequences.len());
            sequences.push(SequenceDef {
                oid: 0,
                database,
                schema: SCHEMA.into(),
                name: truncate_name(format!("{name}_{hidden}_seq")),
                owner: owner.into(),
                data_type: DataType::Int8,
                start: 1,
                increment: 1,
                min: 1,
                max: i64::MAX,
                owned_by: Some((oid, columns.len() - 1)),
            });
            vec![columns.len() - 1]
        }
    };
    let primary = IndexDef {
        oid: cat.next_oid()?,
        name: truncate_name(format!("{name}_pkey")),
        columns: primary_cols,
        unique: true,
        primary: true,
        constraint: true,
    };
    let mut indexes = Vec::new();
    for (cname, cols) in uniques {
        if cols == primary.columns {
            continue;
        }
        let default_name = format!(
            "{name}_{}_key",
            cols.iter()
                .map(|&c| columns[c].name.as_str())
                .collect::<Vec<_>>()
                .join("_")
        );
        indexes.push(IndexDef {
            oid: cat.next_oid()?,
            name: truncate_name(cname.unwrap_or(default_name)),
            columns: cols,
            unique: true,
            primary: false,
            constraint: true,
        });
    }
    for seq in sequences.iter_mut() {
        seq.oid = cat.next_oid()?;
        cat.put_sequence(seq)?;
    }
    let rowid_sequence = rowid_seq_index.map(|i| sequences[i].oid);
    let table = TableDef {
        oid,
        database,
        schema: SCHEMA.into(),
        name: name.clone(),
        owner: owner.into(),
        columns,
        primary,
        indexes,
        rowid_sequence,
        acl: BTreeMap::new(),
        checks: Vec::new(),
        foreign_keys: Vec::new(),
        referenced_by: Vec::new(),
    };
    for index in table.all_indexes() {
        if cat.relation_oid(database, SCHEMA, &index.name)?.is_some() {
            return Err(SqlError::new(
                SqlState::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", index.name),
            ));
        }
    }
    cat.put_table(&table)?;
    Ok(tag("CREATE TABLE"))
}

fn create_index(
    txn: &mut Transaction,
    database: u32,
    ci: &ast::CreateIndex,
    notices: &mut Vec<String>,
    state: &super::execute::SessionState,
) -> SqlResult<QueryResult> {
    let (schema, table_name) = split_name(&ci.table_name)?;
    check_schema(&schema)?;
    let mut table = Catalog::new(&*txn)
        .table(database, SCHEMA, &table_name)?
        .ok_or_else(|| SqlError::undefined_table(&table_name))?;
    if !state.is_admin && table.owner != state.user {
        return Err(SqlError::insufficient_privilege(format!(
            "must be owner of table {table_name}"
        )));
    }
    if ci.predicate.is_some() || !ci.include.is_empty() {
        return Err(SqlError::unsupported(
            "partial and covering indexes are not supported yet",
        ));
    }
    let mut cols = Vec::new();
    for ic in &ci.columns {
        let n = match &ic.column.expr {
            ast::Expr::Identifier(id) => ident_name(id),
            other => {
                return Err(SqlError::unsupported(format!(
                    "index on expression {other} is not supported yet"
                )))
            }
        };
        cols.push(
            table
                .column_index(&n)
                .ok_or_else(|| SqlError::undefined_column(&n))?,
        );
    }
    let name = match &ci.name {
        Some(n) => split_name(n)?.1,
        None => {
            let base = format!(
                "{table_name}_{}_idx",
                cols.iter()
                    .map(|&c| table.columns[c].name.as_str())
                    .collect::<Vec<_>>()
                    .join("_")
            );
            let mut candidate = truncate_name(base.clone());
            let mut i = 1;
            while Catalog::new(&*txn)
                .relation_oid(database, SCHEMA, &candidate)?
                .is_some()
            {
                candidate = truncate_name(format!("{base}{i}"));
                i += 1;
            }
            candidate
        }
    };
    if Catalog::new(&*txn)
        .relation_oid(database, SCHEMA, &name)?
        .is_some()
    {
        if ci.if_not_exists {
            notices.push(format!("relation \"{name}\" already exists, skipping"));
            return Ok(tag("CREATE INDEX"));
        }
        return Err(SqlError::new(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{name}\" already exists"),
        ));
    }
    let index = IndexDef {
        oid: Catalog::new(&mut *txn).next_oid()?,
        name,
        columns: cols,
        unique: ci.unique,
        primary: false,
        constraint: false,
    };
    // Backfill from the rows the transaction sees.
    let prefix = table_rows_prefix(table.oid);
    let end = prefix_end(&prefix)
        .map(Bound::Excluded)
        .unwrap_or(Bound::Unbounded);
    let mut entries = Vec::new();
    {
        let mut scan = txn.scan(Bound::Included(prefix), end);
        let mut seen = std::collections::HashSet::new();
        while let Some((_, v)) = scan.next_entry()? {
            let row = crate::exec::decode_row_for(&table, &v)?;
            if index.unique
                && index.columns.iter().all(|&c| !row[c].is_null())
                && !seen.insert(index_values_prefix(&index, &row))
            {
                return Err(table.duplicate_in_new_index(&index, &row));
            }
            let pk = primary_key_suffix(&table, &row);
            entries.push((index_entry_key(&index, &row, &pk), pk));
        }
    }
    for (k, v) in entries {
        txn.put(k, v);
    }
    table.indexes.push(index);
    Catalog::new(&mut *txn).put_table(&table)?;
    Ok(tag("CREATE INDEX"))
}

fn create_sequence(
    txn: &mut Transaction,
    database: u32,
    owner: &str,
    name: &ast::ObjectName,
    if_not_exists: bool,
    notices: &mut Vec<String>,
) -> SqlResult<QueryResult> {
    let (schema, name) = split_name(name)?;
    check_schema(&schema)?;
    let mut cat = Catalog::new(&mut *txn);
    if cat.relation_oid(database, SCHEMA, &name)?.is_some() {
        if if_not_exists {
            notices.push(format!("relation \"{name}\" already exists, skipping"));
            return Ok(tag("CREATE SEQUENCE"));
        }
        return Err(SqlError::new(
            SqlState::DUPLICATE_TABLE,
            format!("relation \"{name}\" already exists"),
        ));
    }
    let oid = cat.next_oid()?;
    cat.put_sequence(&SequenceDef {
        oid,
        database,
        schema: SCHEMA.into(),
        name,
        owner: owner.into(),
        data_type: DataType::Int8,
        start: 1,
        increment: 1,
        min: 1,
        max: i64::MAX,
        owned_by: None,
    })?;
    Ok(tag("CREATE SEQUENCE"))
}

#[allow(clippy::too_many_arguments)]
fn drop_objects(
    txn: &mut Transaction,
    database: u32,
    object_type: &ast::ObjectType,
    names: &[ast::ObjectName],
    if_exists: bool,
    cascade: bool,
    notices: &mut Vec<String>,
    state: &super::execute::SessionState,
) -> SqlResult<QueryResult> {
    let kind = match object_type {
        ast::ObjectType::Table => "TABLE",
        ast::ObjectType::Index => "INDEX",
        ast::ObjectType::Sequence => "SEQUENCE",
        ast::ObjectType::View => "VIEW",
        other => {
            return Err(SqlError::unsupported(format!(
                "DROP {other} is not supported yet"
            )))
        }
    };
    for n in names {
        let (schema, name) = split_name(n)?;
        check_schema(&schema)?;
        let rel = Catalog::new(&*txn).relation_by_name(database, SCHEMA, &name)?;
        let mut missing = |what: &str| {
            if if_exists {
                notices.push(format!("{what} \"{name}\" does not exist, skipping"));
                Ok(())
            } else {
                Err(SqlError::new(
                    SqlState::UNDEFINED_TABLE,
                    format!("{what} \"{name}\" does not exist"),
                ))
            }
        };
        match (kind, rel) {
            ("TABLE", Some(Relation::Table(t))) => {
                if !state.is_admin && t.owner != state.user {
                    return Err(SqlError::insufficient_privilege(format!(
                        "must be owner of table {name}"
                    )));
                }
                let what = format!("table {name}");
                super::view_ddl::drop_dependent_views(txn, t.oid, &what, cascade, notices)?;
                super::constraint_ddl::detach_foreign_keys(txn, &t, cascade, notices)?;
                drop_table(txn, &t, state)?;
            }
            ("TABLE", _) => missing("table")?,
            ("VIEW", Some(Relation::View(v))) => {
                if !state.is_admin && v.owner != state.user {
                    return Err(SqlError::insufficient_privilege(format!(
                        "must be owner of view {name}"
                    )));
                }
                let what = format!("view {name}");
                super::view_ddl::drop_dependent_views(txn, v.oid, &what, cascade, notices)?;
                Catalog::new(&mut *txn).delete_relation(database, SCHEMA, &name, v.oid)?;
            }
            ("VIEW", _) => missing("view")?,
            ("INDEX", Some(Relation::Index { table })) => {
                let mut t = Catalog::new(&*txn)
                    .table_by_oid(table)?
                    .ok_or_else(|| SqlError::internal("index without table"))?;
                let Some(pos) = t.indexes.iter().position(|i| i.name == name) else {
                    let constraint = t.primary.name.clone();
                    return Err(SqlError::new(
                        SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!("cannot drop index {name} because constraint {constraint} on table {} requires it", t.name),
                    )
                    .with_hint(format!("You can drop constraint {constraint} on table {} instead.", t.name)));
                };
                if t.indexes[pos].constraint {
                    return Err(SqlError::new(
                        SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!("cannot drop index {name} because constraint {name} on table {} requires it", t.name),
                    ));
                }
                let index = t.indexes.remove(pos);
                delete_prefix(txn, index_prefix(index.oid))?;
                let mut cat = Catalog::new(&mut *txn);
                cat.delete_relation(database, SCHEMA, &index.name, index.oid)?;
                cat.put_table(&t)?;
            }
            ("INDEX", _) => missing("index")?,
            ("SEQUENCE", Some(Relation::Sequence(s))) => {
                if let Some((table, _)) = s.owned_by {
                    if Catalog::new(&*txn).table_by_oid(table)?.is_some() {
                        return Err(SqlError::new(
                            SqlState::DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "cannot drop sequence {name} because other objects depend on it"
                            ),
                        ));
                    }
                }
                Catalog::new(&mut *txn).delete_relation(database, SCHEMA, &name, s.oid)?;
                txn.delete(crate::catalog::sequence_key(s.oid));
                state.db.forget_sequence(s.oid);
            }
            ("SEQUENCE", _) => missing("sequence")?,
            _ => return Err(SqlError::internal("unexpected DROP object kind")),
        }
    }
    Ok(tag(&format!("DROP {kind}")))
}

pub(super) fn drop_table(
    txn: &mut Transaction,
    t: &TableDef,
    state: &super::execute::SessionState,
) -> SqlResult<()> {
    delete_prefix(txn, table_rows_prefix(t.oid))?;
    for index in &t.indexes {
        delete_prefix(txn, index_prefix(index.oid))?;
    }
    let mut cat = Catalog::new(&mut *txn);
    for index in t.all_indexes() {
        cat.delete_relation(t.database, &t.schema, &index.name, index.oid)?;
    }
    // Sequences owned by the table's columns go with it.
    for rel in cat.relations()? {
        if let Relation::Sequence(s) = rel {
            if s.owned_by.map(|(o, _)| o) == Some(t.oid) {
                cat.delete_relation(s.database, &s.schema, &s.name, s.oid)?;
                state.db.forget_sequence(s.oid);
            }
        }
    }
    cat.delete_relation(t.database, &t.schema, &t.name, t.oid)?;
    Ok(())
}
