//! The node's shared database state: storage engine, bootstrap, the table
//! cache, and sequence value allocation.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use duet_storage::{Engine, EngineOptions, Isolation, Store, Transaction};

use super::{DatabaseOptions, RoleInfo, Session, SessionContext};
use crate::catalog::{
    sequence_key, version_key, Catalog, DatabaseDef, Relation, RoleDef, TableDef, ADMIN_ROLE,
    ROOT_USER,
};
use crate::error::{SqlError, SqlResult, SqlState};

/// Sequence values are handed out from memory in blocks; only the end of
/// each block is written (PostgreSQL logs 32 values ahead too). The write
/// is not synced: the commit that uses a value syncs it (see
/// [`NextValue::reserved_at`]).
const SEQUENCE_BLOCK: i64 = 32;

/// A value nextval handed out.
pub(crate) struct NextValue {
    pub(crate) sequence: u32,
    pub(crate) value: i64,
    /// The LSN of the write that reserved the value's block: it must be on
    /// disk before the value's transaction reports its commit, else a
    /// crash could hand the value out again.
    pub(crate) reserved_at: u64,
}

#[derive(Default)]
struct TableCache {
    version: u64,
    tables: HashMap<(u32, String, String), Arc<TableDef>>,
}

/// Sequence definitions as of one catalog version (nextval reads one per
/// call, hidden rowid sequences on every insert into a table without a
/// primary key).
#[derive(Default)]
struct SequenceDefCache {
    version: u64,
    defs: HashMap<u32, Option<crate::catalog::SequenceDef>>,
}

struct SequenceState {
    /// Last value handed out.
    last: i64,
    /// Highest value reserved.
    reserved: i64,
    /// The LSN of that reservation's write (0: read from disk).
    reserved_at: u64,
}

/// A node's database. Shared by all sessions.
pub struct Database {
    store: Arc<Store>,
    /// Replication, once the server has attached it.
    control: std::sync::OnceLock<Arc<dyn crate::replicate::NodeControl>>,
    pub(crate) session_defaults: Vec<(String, String)>,
    tables: RwLock<TableCache>,
    sequences: Mutex<HashMap<u32, SequenceState>>,
    sequence_defs: Mutex<SequenceDefCache>,
    /// Open sessions per database OID (DROP DATABASE refuses while any).
    sessions_per_database: Arc<Mutex<HashMap<u32, usize>>>,
}

/// A session's claim on its database; released when the session ends.
pub(crate) struct DatabaseUse {
    oid: u32,
    counts: Arc<Mutex<HashMap<u32, usize>>>,
}

impl Drop for DatabaseUse {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.oid) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Database {
    /// Opens (creating and bootstrapping if empty) the database in `data_dir`.
    pub fn open(data_dir: &Path, options: DatabaseOptions) -> SqlResult<Arc<Database>> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            SqlError::new(
                SqlState::IO_ERROR,
                format!("cannot create data directory {}: {e}", data_dir.display()),
            )
        })?;
        let store = Store::open(data_dir, EngineOptions::default())?;
        let db = Arc::new(Database {
            store,
            control: std::sync::OnceLock::new(),
            session_defaults: options.session_defaults.clone(),
            tables: RwLock::default(),
            sequences: Mutex::default(),
            sequence_defs: Mutex::default(),
            sessions_per_database: Arc::default(),
        });
        db.bootstrap(&options)?;
        Ok(db)
    }

    /// Creates the default databases and the root/admin roles on first start.
    fn bootstrap(&self, options: &DatabaseOptions) -> SqlResult<()> {
        let mut txn = self.engine().begin(Isolation::ReadCommitted);
        let mut cat = Catalog::new(&mut txn);
        if cat.database("defaultdb")?.is_some() {
            return Ok(());
        }
        for (oid, name) in [(1u32, "postgres"), (16383u32, "defaultdb")] {
            cat.put_database(&DatabaseDef {
                oid,
                name: name.into(),
                owner: ROOT_USER.into(),
            })?;
        }
        cat.put_role(&RoleDef {
            oid: 16381,
            name: ADMIN_ROLE.into(),
            superuser: true,
            create_role: true,
            create_db: true,
            ..Default::default()
        })?;
        cat.put_role(&RoleDef {
            oid: 16382,
            name: ROOT_USER.into(),
            login: true,
            superuser: true,
            create_role: true,
            create_db: true,
            password: options
                .root_password
                .as_deref()
                .map(crate::scram::make_verifier),
            member_of: BTreeSet::from([ADMIN_ROLE.to_string()]),
            ..Default::default()
        })?;
        txn.commit_blocking()?;
        Ok(())
    }

    /// The storage engine in use now.
    pub fn engine(&self) -> Arc<Engine> {
        self.store.engine()
    }

    /// The node's storage (replication swaps engines and fences writes there).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Attaches the node's replication (once, at server start).
    pub fn set_node_control(&self, control: Arc<dyn crate::replicate::NodeControl>) {
        let _ = self.control.set(control);
    }

    pub(crate) fn node_control(&self) -> Option<&Arc<dyn crate::replicate::NodeControl>> {
        self.control.get()
    }

    /// True on a secondary: only the replication applier writes.
    pub fn is_read_only(&self) -> bool {
        !self.store.is_writable()
    }

    /// Forgets what was cached from storage: after a role change (another
    /// node may have handed out sequence values) or a fresh copy.
    pub fn reset_caches(&self) {
        self.sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = TableCache::default();
    }

    /// A fresh read-committed transaction.
    pub(crate) fn begin(&self, isolation: Isolation) -> Transaction {
        self.engine().begin(isolation)
    }

    /// Looks up a role for authentication.
    pub fn role(&self, name: &str) -> SqlResult<Option<RoleInfo>> {
        let txn = self.begin(Isolation::ReadCommitted);
        let cat = Catalog::new(&txn);
        let Some(role) = cat.role(name)? else {
            return Ok(None);
        };
        let roles = cat.roles()?;
        Ok(Some(RoleInfo {
            name: role.name.clone(),
            can_login: role.login,
            is_admin: is_admin(&role, &roles),
            replication: role.replication,
            scram_verifier: role.password.clone(),
        }))
    }

    /// Whether a database of that name exists.
    pub fn database_exists(&self, name: &str) -> SqlResult<bool> {
        let txn = self.begin(Isolation::ReadCommitted);
        Ok(Catalog::new(&txn).database(name)?.is_some())
    }

    /// Starts a session for an authenticated user.
    pub fn session(self: &Arc<Self>, ctx: SessionContext) -> SqlResult<Session> {
        let txn = self.begin(Isolation::ReadCommitted);
        let db = Catalog::new(&txn).database(&ctx.database)?.ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_DATABASE,
                format!("database \"{}\" does not exist", ctx.database),
            )
        })?;
        Session::new(self.clone(), ctx, db)
    }

    /// Registers a session on database `oid`.
    pub(crate) fn use_database(&self, oid: u32) -> DatabaseUse {
        *self
            .sessions_per_database
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(oid)
            .or_default() += 1;
        DatabaseUse {
            oid,
            counts: self.sessions_per_database.clone(),
        }
    }

    /// Sessions open on database `oid`.
    pub(crate) fn sessions_on(&self, oid: u32) -> usize {
        self.sessions_per_database
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&oid)
            .copied()
            .unwrap_or(0)
    }

    /// A table through the cache, valid for the catalog version `txn` sees.
    pub(crate) fn cached_table(
        &self,
        txn: &Transaction,
        database: u32,
        schema: &str,
        name: &str,
    ) -> SqlResult<Option<Arc<TableDef>>> {
        let version = snapshot_catalog_version(txn)?;
        let key = (database, schema.to_string(), name.to_string());
        {
            let cache = self.tables.read().unwrap_or_else(|e| e.into_inner());
            if cache.version == version {
                if let Some(t) = cache.tables.get(&key) {
                    return Ok(Some(t.clone()));
                }
            }
        }
        let table = Catalog::new(txn)
            .table(database, schema, name)?
            .map(Arc::new);
        // Only a transaction without its own catalog changes may fill the cache.
        if !txn.has_writes() {
            let mut cache = self.tables.write().unwrap_or_else(|e| e.into_inner());
            if version > cache.version || cache.version == 0 {
                cache.version = version;
                cache.tables.clear();
            }
            if cache.version == version {
                if let Some(t) = &table {
                    cache.tables.insert(key, t.clone());
                }
            }
        }
        Ok(table)
    }

    /// Finds a sequence's OID by name in the committed catalog; names of the
    /// form `#<oid>` are OIDs already (hidden rowid sequences, and names
    /// the planner resolved).
    pub(crate) fn sequence_oid(&self, database: u32, name: &str) -> SqlResult<u32> {
        if let Some(oid) = name.strip_prefix('#').and_then(|o| o.parse().ok()) {
            return Ok(oid);
        }
        sequence_oid_in(&self.begin(Isolation::ReadCommitted), database, name)
    }

    /// A sequence's name for messages: the committed catalog's, else the
    /// name the statement used.
    pub(crate) fn sequence_display_name(&self, oid: u32, used: &str) -> String {
        match self.sequence_def(oid) {
            Ok(Some(def)) => def.name,
            _ => used.trim_start_matches('#').to_string(),
        }
    }

    fn sequence_def(&self, oid: u32) -> SqlResult<Option<crate::catalog::SequenceDef>> {
        let txn = self.begin(Isolation::ReadCommitted);
        let version = snapshot_catalog_version(&txn)?;
        {
            let cache = self.sequence_defs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(def) = cache.defs.get(&oid).filter(|_| cache.version == version) {
                return Ok(def.clone());
            }
        }
        let def = match Catalog::new(&txn).relation(oid)? {
            Some(Relation::Sequence(s)) => Some(s),
            _ => None,
        };
        let mut cache = self.sequence_defs.lock().unwrap_or_else(|e| e.into_inner());
        if cache.version != version {
            cache.version = version;
            cache.defs.clear();
        }
        cache.defs.insert(oid, def.clone());
        Ok(def)
    }

    /// nextval(): the next value, reserving a new block when needed.
    pub(crate) fn nextval(&self, database: u32, name: &str) -> SqlResult<NextValue> {
        let oid = self.sequence_oid(database, name)?;
        let def = self.sequence_def(oid)?;
        let (increment, min, max, start) = def
            .as_ref()
            .map(|d| (d.increment, d.min, d.max, d.start))
            .unwrap_or((1, 1, i64::MAX, 1));
        let mut seqs = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
        if let Entry::Vacant(e) = seqs.entry(oid) {
            let stored = self
                .engine()
                .get_committed(&sequence_key(oid))?
                .and_then(|b| b.try_into().ok().map(i64::from_be_bytes));
            let last = stored.unwrap_or(start - increment);
            e.insert(SequenceState {
                last,
                reserved: last,
                reserved_at: 0,
            });
        }
        let state = seqs
            .get_mut(&oid)
            .ok_or_else(|| SqlError::internal("sequence state missing"))?;
        let next = state
            .last
            .checked_add(increment)
            .filter(|v| *v >= min && *v <= max)
            .ok_or_else(|| {
                let seq_name = self.sequence_display_name(oid, name);
                SqlError::new(
                    SqlState("2200H"),
                    format!(
                        "nextval: reached {} value of sequence \"{seq_name}\" ({})",
                        if increment > 0 { "maximum" } else { "minimum" },
                        if increment > 0 { max } else { min }
                    ),
                )
            })?;
        let beyond = if increment > 0 {
            next > state.reserved
        } else {
            next < state.reserved
        };
        if beyond {
            let reserve = next.saturating_add(increment.saturating_mul(SEQUENCE_BLOCK - 1));
            let reserve = if increment > 0 {
                reserve.min(max)
            } else {
                reserve.max(min)
            };
            state.reserved_at = self.engine().write_unsynced(vec![(
                sequence_key(oid),
                Some(reserve.to_be_bytes().to_vec()),
            )])?;
            state.reserved = reserve;
        }
        state.last = next;
        Ok(NextValue {
            sequence: oid,
            value: next,
            reserved_at: state.reserved_at,
        })
    }

    /// setval(): sets the last value durably.
    pub(crate) fn setval(
        &self,
        database: u32,
        name: &str,
        value: i64,
        is_called: bool,
    ) -> SqlResult<(u32, i64)> {
        let oid = self.sequence_oid(database, name)?;
        let increment = self.sequence_def(oid)?.map(|d| d.increment).unwrap_or(1);
        let last = if is_called { value } else { value - increment };
        let mut seqs = self.sequences.lock().unwrap_or_else(|e| e.into_inner());
        self.engine()
            .write_now_blocking(vec![(sequence_key(oid), Some(last.to_be_bytes().to_vec()))])?;
        seqs.insert(
            oid,
            SequenceState {
                last,
                reserved: last,
                reserved_at: 0,
            },
        );
        Ok((oid, value))
    }

    /// Forgets cached sequence state (after DROP / ALTER).
    pub(crate) fn forget_sequence(&self, oid: u32) {
        self.sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&oid);
    }
}

/// The catalog version as a transaction's snapshot sees it.
pub(crate) fn snapshot_catalog_version(txn: &Transaction) -> SqlResult<u64> {
    Ok(txn
        .get(&version_key())?
        .map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
        .unwrap_or(0))
}

/// Whether a role is root-like: superuser, or a member (transitively) of admin.
pub(crate) fn is_admin(role: &RoleDef, all: &[RoleDef]) -> bool {
    if role.superuser {
        return true;
    }
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = role.member_of.iter().cloned().collect();
    while let Some(r) = stack.pop() {
        if r == ADMIN_ROLE {
            return true;
        }
        if seen.insert(r.clone()) {
            if let Some(def) = all.iter().find(|d| d.name == r) {
                stack.extend(def.member_of.iter().cloned());
            }
        }
    }
    false
}

/// Finds a sequence's OID by (optionally schema-qualified) name as `txn`
/// sees the catalog: a sequence made earlier in that transaction included.
pub(crate) fn sequence_oid_in(txn: &Transaction, database: u32, name: &str) -> SqlResult<u32> {
    let (schema, rel) = name.split_once('.').unwrap_or(("public", name));
    let rel = rel.trim_matches('"');
    match Catalog::new(txn).relation_by_name(database, schema.trim_matches('"'), rel)? {
        Some(Relation::Sequence(s)) => Ok(s.oid),
        Some(_) => Err(SqlError::new(
            SqlState("42809"),
            format!("\"{rel}\" is not a sequence"),
        )),
        None => Err(SqlError::undefined_table(rel)),
    }
}
