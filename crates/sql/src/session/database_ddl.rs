//! CREATE DATABASE and DROP DATABASE. A database is a catalog entry and
//! the relations that name it; dropping one removes them all.

use super::execute::{tag, Block, Session};
use super::QueryResult;
use crate::catalog::{Catalog, DatabaseDef, Relation};
use crate::error::{SqlError, SqlResult, SqlState};

impl Session {
    pub(super) fn create_database(
        &mut self,
        name: &str,
        owner: Option<&str>,
    ) -> SqlResult<QueryResult> {
        self.outside_block("CREATE DATABASE")?;
        self.check_read_only("CREATE DATABASE")?;
        let may = self.state.is_admin
            || Catalog::new(&self.state.db.begin(duet_storage::Isolation::ReadCommitted))
                .role(&self.state.user)?
                .is_some_and(|r| r.create_db);
        if !may {
            return Err(SqlError::insufficient_privilege(
                "permission denied to create database",
            ));
        }
        let owner = owner.unwrap_or(&self.state.user).to_string();
        let txn = self.txn();
        if Catalog::new(&*txn).role(&owner)?.is_none() {
            return Err(SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("role \"{owner}\" does not exist"),
            ));
        }
        if Catalog::new(&*txn).database(name)?.is_some() {
            return Err(SqlError::new(
                SqlState("42P04"),
                format!("database \"{name}\" already exists"),
            ));
        }
        let mut cat = Catalog::new(&mut *txn);
        let oid = cat.next_oid()?;
        cat.put_database(&DatabaseDef {
            oid,
            name: name.to_string(),
            owner,
        })?;
        Ok(tag("CREATE DATABASE"))
    }

    pub(super) fn drop_database(
        &mut self,
        name: &str,
        if_exists: bool,
        force: bool,
    ) -> SqlResult<QueryResult> {
        self.outside_block("DROP DATABASE")?;
        self.check_read_only("DROP DATABASE")?;
        let txn = self.txn();
        let Some(db) = Catalog::new(&*txn).database(name)? else {
            if if_exists {
                self.notice(
                    "NOTICE",
                    "00000",
                    format!("database \"{name}\" does not exist, skipping"),
                );
                return Ok(tag("DROP DATABASE"));
            }
            return Err(SqlError::new(
                SqlState::UNDEFINED_DATABASE,
                format!("database \"{name}\" does not exist"),
            ));
        };
        if db.oid == self.state.database.oid {
            return Err(SqlError::new(
                SqlState("55006"),
                "cannot drop the currently open database",
            ));
        }
        if !self.state.is_admin && db.owner != self.state.user {
            return Err(SqlError::insufficient_privilege(format!(
                "must be owner of database {name}"
            )));
        }
        let others = self.state.db.sessions_on(db.oid);
        if others > 0 {
            let e = SqlError::new(
                SqlState("55006"),
                format!("database \"{name}\" is being accessed by other users"),
            )
            .with_detail(if others == 1 {
                "There is 1 other session using the database.".to_string()
            } else {
                format!("There are {others} other sessions using the database.")
            });
            return Err(if force {
                e.with_hint("duet cannot end other sessions yet: close them first")
            } else {
                e
            });
        }
        self.txn();
        let txn = self
            .txn
            .as_mut()
            .ok_or_else(|| SqlError::internal("no transaction"))?;
        for rel in Catalog::new(&*txn).relations()? {
            match rel {
                Relation::Table(t) if t.database == db.oid => {
                    super::ddl::drop_table(txn, &t, &self.state)?;
                }
                Relation::Sequence(s) if s.database == db.oid => {
                    Catalog::new(&mut *txn)
                        .delete_relation(s.database, &s.schema, &s.name, s.oid)?;
                    txn.delete(crate::catalog::sequence_key(s.oid));
                    self.state.db.forget_sequence(s.oid);
                }
                Relation::View(v) if v.database == db.oid => {
                    Catalog::new(&mut *txn)
                        .delete_relation(v.database, &v.schema, &v.name, v.oid)?;
                }
                _ => {}
            }
        }
        Catalog::new(&mut *txn).delete_database(name)?;
        Ok(tag("DROP DATABASE"))
    }

    fn outside_block(&self, what: &str) -> SqlResult<()> {
        if self.block != Block::Autocommit || self.implicit {
            return Err(SqlError::new(
                SqlState::ACTIVE_SQL_TRANSACTION,
                format!("{what} cannot run inside a transaction block"),
            ));
        }
        Ok(())
    }
}
