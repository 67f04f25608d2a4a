//! The catalog: databases, roles, tables, indexes and sequences, stored as
//! JSON values under catalog keys in the same (replicated) keyspace as the
//! data, read through the session's transaction.

use std::borrow::{Borrow, BorrowMut};
use std::collections::{BTreeMap, BTreeSet};

use duet_storage::keycode;
use duet_storage::Transaction;
use serde::{Deserialize, Serialize};

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;

/// First OID handed to user objects, as in PostgreSQL.
pub const FIRST_USER_OID: u32 = 16384;
/// OID of the `public` schema in PostgreSQL.
pub const PUBLIC_NAMESPACE_OID: u32 = 2200;
pub const PG_CATALOG_NAMESPACE_OID: u32 = 11;
pub const INFORMATION_SCHEMA_NAMESPACE_OID: u32 = 13000;
pub const ADMIN_ROLE: &str = "admin";
pub const ROOT_USER: &str = "root";

/// Key prefixes of the keyspace.
pub mod prefix {
    /// Catalog entries.
    pub const CATALOG: u8 = 0x01;
    /// Sequence high-water marks.
    pub const SEQUENCE: u8 = 0x02;
    /// Table rows: [ROWS][table oid][primary key] -> row.
    pub const ROWS: u8 = 0x10;
    /// Secondary index entries: [INDEX][index oid][index key][primary key] -> primary key.
    pub const INDEX: u8 = 0x11;
}

mod kind {
    pub const DATABASE: u8 = b'D';
    pub const ROLE: u8 = b'R';
    pub const NAME: u8 = b'N';
    pub const OBJECT: u8 = b'O';
    pub const OID_COUNTER: u8 = b'C';
    /// Bumped by every DDL commit so caches on every node can tell.
    pub const VERSION: u8 = b'V';
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseDef {
    pub oid: u32,
    pub name: String,
    pub owner: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RoleDef {
    pub oid: u32,
    pub name: String,
    pub login: bool,
    pub replication: bool,
    /// Superuser-like: only the bootstrap `root` and the `admin` role itself.
    pub superuser: bool,
    pub create_role: bool,
    pub create_db: bool,
    /// SCRAM-SHA-256 verifier in PostgreSQL's format.
    pub password: Option<String>,
    /// Roles this role is a member of.
    pub member_of: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// DEFAULT expression as SQL text (re-parsed when used).
    pub default: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexDef {
    pub oid: u32,
    pub name: String,
    /// Column positions in the table.
    pub columns: Vec<usize>,
    pub unique: bool,
    pub primary: bool,
    /// Created by a UNIQUE/PRIMARY KEY constraint (vs CREATE INDEX).
    pub constraint: bool,
}

/// Table privileges, as in PostgreSQL's ACL letters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
}

impl Privilege {
    pub fn name(&self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
        }
    }

    pub fn acl_char(&self) -> char {
        match self {
            Privilege::Select => 'r',
            Privilege::Insert => 'a',
            Privilege::Update => 'w',
            Privilege::Delete => 'd',
        }
    }

    pub const ALL: [Privilege; 4] = [
        Privilege::Select,
        Privilege::Insert,
        Privilege::Update,
        Privilege::Delete,
    ];
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableDef {
    pub oid: u32,
    pub database: u32,
    pub schema: String,
    pub name: String,
    pub owner: String,
    pub columns: Vec<ColumnDef>,
    /// The primary index (columns of the row key). A table declared without
    /// a primary key gets a hidden `rowid` key from `rowid_sequence`.
    pub primary: IndexDef,
    pub indexes: Vec<IndexDef>,
    pub rowid_sequence: Option<u32>,
    pub acl: BTreeMap<String, BTreeSet<Privilege>>,
    #[serde(default)]
    pub checks: Vec<CheckDef>,
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// Tables with foreign keys to this one (itself for a self-reference).
    #[serde(default)]
    pub referenced_by: Vec<u32>,
}

/// A CHECK constraint: a boolean expression over the row, as SQL text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckDef {
    pub oid: u32,
    pub name: String,
    pub expr: String,
}

/// What a foreign key does to referencing rows when the referenced row is
/// deleted or its key changes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl FkAction {
    pub fn sql(&self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// FOREIGN KEY (columns) REFERENCES parent (parent_columns), MATCH SIMPLE:
/// a row with a NULL in the key references nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForeignKeyDef {
    pub oid: u32,
    pub name: String,
    pub columns: Vec<usize>,
    pub parent: u32,
    pub parent_columns: Vec<usize>,
    pub on_delete: FkAction,
    pub on_update: FkAction,
}

impl TableDef {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn has_hidden_key(&self) -> bool {
        self.rowid_sequence.is_some()
    }

    /// All indexes including the primary one.
    pub fn all_indexes(&self) -> impl Iterator<Item = &IndexDef> {
        std::iter::once(&self.primary).chain(self.indexes.iter())
    }

    /// `(a, b)=(1, x)`: key columns and a row's values in them, as
    /// PostgreSQL's error details print them.
    pub fn key_text(
        &self,
        columns: &[usize],
        row: &[crate::value::Value],
        tz: &crate::value::TimeZone,
    ) -> String {
        let names: Vec<&str> = columns
            .iter()
            .map(|&c| self.columns[c].name.as_str())
            .collect();
        let values: Vec<String> = columns
            .iter()
            .map(|&c| {
                row[c]
                    .to_text(&self.columns[c].data_type, tz)
                    .unwrap_or_else(|| "null".into())
            })
            .collect();
        format!("({})=({})", names.join(", "), values.join(", "))
    }

    /// 23505 from building a unique index over rows that repeat a key.
    pub fn duplicate_in_new_index(
        &self,
        index: &IndexDef,
        row: &[crate::value::Value],
    ) -> SqlError {
        SqlError::new(
            SqlState::UNIQUE_VIOLATION,
            format!("could not create unique index \"{}\"", index.name),
        )
        .with_detail(format!(
            "Key {} is duplicated.",
            self.key_text(&index.columns, row, &Default::default())
        ))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceDef {
    pub oid: u32,
    pub database: u32,
    pub schema: String,
    pub name: String,
    pub owner: String,
    pub data_type: DataType,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    /// (table oid, column position) for serial columns.
    pub owned_by: Option<(u32, usize)>,
}

/// A view: its query, kept as SQL text and planned where it is used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewDef {
    pub oid: u32,
    pub database: u32,
    pub schema: String,
    pub name: String,
    pub owner: String,
    pub sql: String,
    pub columns: Vec<(String, DataType)>,
    /// Tables and views the query reads (DROP needs CASCADE for them).
    pub depends_on: Vec<u32>,
}

/// Any object with a name in a schema (PostgreSQL's pg_class entries).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Relation {
    Table(TableDef),
    Sequence(SequenceDef),
    View(ViewDef),
    /// Indexes live inside their table's definition; this points there.
    Index {
        table: u32,
    },
}

// ---- keys ----------------------------------------------------------------

fn catalog_key(kind: u8) -> Vec<u8> {
    vec![prefix::CATALOG, kind]
}

pub fn database_key(name: &str) -> Vec<u8> {
    let mut k = catalog_key(kind::DATABASE);
    keycode::put_escaped(&mut k, name.as_bytes());
    k
}

pub fn role_key(name: &str) -> Vec<u8> {
    let mut k = catalog_key(kind::ROLE);
    keycode::put_escaped(&mut k, name.as_bytes());
    k
}

pub fn name_key(database: u32, schema: &str, name: &str) -> Vec<u8> {
    let mut k = catalog_key(kind::NAME);
    keycode::put_u32(&mut k, database);
    keycode::put_escaped(&mut k, schema.as_bytes());
    keycode::put_escaped(&mut k, name.as_bytes());
    k
}

pub fn object_key(oid: u32) -> Vec<u8> {
    let mut k = catalog_key(kind::OBJECT);
    keycode::put_u32(&mut k, oid);
    k
}

/// Locked by every DDL statement, so schema changes serialize.
pub fn oid_counter_key() -> Vec<u8> {
    catalog_key(kind::OID_COUNTER)
}

pub fn version_key() -> Vec<u8> {
    catalog_key(kind::VERSION)
}

pub fn sequence_key(oid: u32) -> Vec<u8> {
    let mut k = vec![prefix::SEQUENCE];
    keycode::put_u32(&mut k, oid);
    k
}

pub fn table_rows_prefix(table: u32) -> Vec<u8> {
    let mut k = vec![prefix::ROWS];
    keycode::put_u32(&mut k, table);
    k
}

pub fn index_prefix(index: u32) -> Vec<u8> {
    let mut k = vec![prefix::INDEX];
    keycode::put_u32(&mut k, index);
    k
}

/// The whole range of catalog keys of one kind.
fn kind_range(kind: u8) -> (Vec<u8>, Vec<u8>) {
    let start = catalog_key(kind);
    let end = keycode::prefix_end(&start).unwrap_or_default();
    (start, end)
}

// ---- access --------------------------------------------------------------

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> SqlResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| SqlError::internal(format!("corrupt catalog entry: {e}")))
}

fn encode<T: Serialize>(value: &T) -> SqlResult<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| SqlError::internal(format!("cannot encode catalog entry: {e}")))
}

/// Catalog reads (through `&Transaction`) and writes (through
/// `&mut Transaction`) in a transaction.
pub struct Catalog<T> {
    txn: T,
}

impl<T: Borrow<Transaction>> Catalog<T> {
    pub fn new(txn: T) -> Self {
        Catalog { txn }
    }

    fn t(&self) -> &Transaction {
        self.txn.borrow()
    }

    pub fn database(&self, name: &str) -> SqlResult<Option<DatabaseDef>> {
        self.t()
            .get(&database_key(name))?
            .map(|b| decode(&b))
            .transpose()
    }

    pub fn databases(&self) -> SqlResult<Vec<DatabaseDef>> {
        self.list(kind::DATABASE)
    }

    pub fn role(&self, name: &str) -> SqlResult<Option<RoleDef>> {
        self.t()
            .get(&role_key(name))?
            .map(|b| decode(&b))
            .transpose()
    }

    pub fn roles(&self) -> SqlResult<Vec<RoleDef>> {
        self.list(kind::ROLE)
    }

    fn list<U: for<'de> Deserialize<'de>>(&self, kind: u8) -> SqlResult<Vec<U>> {
        let (start, end) = kind_range(kind);
        let mut scan = self.t().scan(
            std::ops::Bound::Included(start),
            std::ops::Bound::Excluded(end),
        );
        let mut out = Vec::new();
        while let Some((_, v)) = scan.next_entry()? {
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    /// Looks up a relation's OID by name.
    pub fn relation_oid(&self, database: u32, schema: &str, name: &str) -> SqlResult<Option<u32>> {
        Ok(self
            .t()
            .get(&name_key(database, schema, name))?
            .and_then(|b| b.try_into().ok().map(u32::from_be_bytes)))
    }

    pub fn relation(&self, oid: u32) -> SqlResult<Option<Relation>> {
        self.t()
            .get(&object_key(oid))?
            .map(|b| decode(&b))
            .transpose()
    }

    pub fn relation_by_name(
        &self,
        database: u32,
        schema: &str,
        name: &str,
    ) -> SqlResult<Option<Relation>> {
        match self.relation_oid(database, schema, name)? {
            Some(oid) => self.relation(oid),
            None => Ok(None),
        }
    }

    pub fn table(&self, database: u32, schema: &str, name: &str) -> SqlResult<Option<TableDef>> {
        match self.relation_by_name(database, schema, name)? {
            Some(Relation::Table(t)) => Ok(Some(t)),
            _ => Ok(None),
        }
    }

    pub fn table_by_oid(&self, oid: u32) -> SqlResult<Option<TableDef>> {
        match self.relation(oid)? {
            Some(Relation::Table(t)) => Ok(Some(t)),
            _ => Ok(None),
        }
    }

    /// Every relation (all databases).
    pub fn relations(&self) -> SqlResult<Vec<Relation>> {
        self.list(kind::OBJECT)
    }
}

impl<T: BorrowMut<Transaction>> Catalog<T> {
    fn tm(&mut self) -> &mut Transaction {
        self.txn.borrow_mut()
    }

    pub fn put_database(&mut self, db: &DatabaseDef) -> SqlResult<()> {
        self.tm().put(database_key(&db.name), encode(db)?);
        self.bump_version()
    }

    pub fn put_role(&mut self, role: &RoleDef) -> SqlResult<()> {
        self.tm().put(role_key(&role.name), encode(role)?);
        self.bump_version()
    }

    pub fn delete_database(&mut self, name: &str) -> SqlResult<()> {
        self.tm().delete(database_key(name));
        self.bump_version()
    }

    pub fn delete_role(&mut self, name: &str) -> SqlResult<()> {
        self.tm().delete(role_key(name));
        self.bump_version()
    }

    pub fn put_table(&mut self, table: &TableDef) -> SqlResult<()> {
        self.tm().put(
            name_key(table.database, &table.schema, &table.name),
            table.oid.to_be_bytes().to_vec(),
        );
        for index in table.all_indexes() {
            self.tm().put(
                name_key(table.database, &table.schema, &index.name),
                index.oid.to_be_bytes().to_vec(),
            );
            self.tm().put(
                object_key(index.oid),
                encode(&Relation::Index { table: table.oid })?,
            );
        }
        self.tm().put(
            object_key(table.oid),
            encode(&Relation::Table(table.clone()))?,
        );
        self.bump_version()
    }

    pub fn put_view(&mut self, view: &ViewDef) -> SqlResult<()> {
        let key = name_key(view.database, &view.schema, &view.name);
        self.tm().put(key, view.oid.to_be_bytes().to_vec());
        self.tm()
            .put(object_key(view.oid), encode(&Relation::View(view.clone()))?);
        self.bump_version()
    }

    pub fn put_sequence(&mut self, seq: &SequenceDef) -> SqlResult<()> {
        self.tm().put(
            name_key(seq.database, &seq.schema, &seq.name),
            seq.oid.to_be_bytes().to_vec(),
        );
        self.tm().put(
            object_key(seq.oid),
            encode(&Relation::Sequence(seq.clone()))?,
        );
        self.bump_version()
    }

    /// Removes a relation's catalog entries (not its data).
    pub fn delete_relation(
        &mut self,
        database: u32,
        schema: &str,
        name: &str,
        oid: u32,
    ) -> SqlResult<()> {
        self.tm().delete(name_key(database, schema, name));
        self.tm().delete(object_key(oid));
        self.bump_version()
    }

    /// Allocates a new OID (DDL holds the lock on the counter).
    pub fn next_oid(&mut self) -> SqlResult<u32> {
        let key = catalog_key(kind::OID_COUNTER);
        let current = match self.t().get_latest(&key)? {
            Some(b) => u32::from_be_bytes(
                b.try_into()
                    .map_err(|_| SqlError::internal("corrupt OID counter"))?,
            ),
            None => FIRST_USER_OID,
        };
        self.tm().put(key, (current + 1).to_be_bytes().to_vec());
        Ok(current)
    }

    fn bump_version(&mut self) -> SqlResult<()> {
        let key = version_key();
        let v = match self.t().get(&key)? {
            Some(b) => u64::from_be_bytes(b.try_into().unwrap_or([0; 8])),
            None => 0,
        };
        self.tm().put(key, (v + 1).to_be_bytes().to_vec());
        Ok(())
    }
}

/// Error for a missing relation.
pub fn no_relation(name: &str) -> SqlError {
    SqlError::new(
        SqlState::UNDEFINED_TABLE,
        format!("relation \"{name}\" does not exist"),
    )
}
