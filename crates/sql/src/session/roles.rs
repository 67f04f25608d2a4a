//! Users, roles and privileges: CREATE/ALTER/DROP ROLE|USER, GRANT and
//! REVOKE of role membership and table privileges. Only admins manage
//! roles (42501 otherwise).

use std::collections::BTreeSet;

use sqlparser::ast::{self, Statement as Ast};

use super::execute::{tag, Session};
use super::QueryResult;
use crate::catalog::{Catalog, Privilege, Relation, RoleDef, ADMIN_ROLE, ROOT_USER};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::planner::{ident_name, split_name};

fn password_verifier(p: &ast::Password) -> SqlResult<Option<String>> {
    match p {
        ast::Password::NullPassword => Ok(None),
        ast::Password::Password(ast::Expr::Value(v)) => match &v.value {
            ast::Value::SingleQuotedString(s) => Ok(Some(if s.starts_with("SCRAM-SHA-256$") {
                s.clone()
            } else {
                crate::scram::make_verifier(s)
            })),
            ast::Value::Null => Ok(None),
            other => Err(SqlError::syntax(format!(
                "syntax error at or near \"{other}\""
            ))),
        },
        other => Err(SqlError::syntax(format!("invalid password {other:?}"))),
    }
}

impl Session {
    fn require_admin(&self, what: &str) -> SqlResult<()> {
        if self.state.is_admin {
            Ok(())
        } else {
            Err(
                SqlError::insufficient_privilege(format!("permission denied to {what}"))
                    .with_detail("Only members of the admin role may manage roles."),
            )
        }
    }

    pub(crate) async fn create_role(&mut self, ast: &Ast, is_user: bool) -> SqlResult<QueryResult> {
        let Ast::CreateRole(cr) = ast else {
            return Err(SqlError::internal("not CREATE ROLE"));
        };
        self.check_writable(ast)?;
        self.require_admin("create role")?;
        let txn = self.txn();
        let mut cat = Catalog::new(&mut *txn);
        for name in &cr.names {
            let role_name = split_name(name)?.1;
            if cat.role(&role_name)?.is_some() {
                if cr.if_not_exists {
                    continue;
                }
                return Err(SqlError::new(
                    SqlState::DUPLICATE_OBJECT,
                    format!("role \"{role_name}\" already exists"),
                ));
            }
            let mut member_of: BTreeSet<String> = cr
                .in_role
                .iter()
                .chain(cr.in_group.iter())
                .map(ident_name)
                .collect();
            for r in &member_of {
                if cat.role(r)?.is_none() {
                    return Err(SqlError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("role \"{r}\" does not exist"),
                    ));
                }
            }
            if cr.superuser == Some(true) {
                // duet has no separate superuser: admin membership is the equivalent.
                member_of.insert(ADMIN_ROLE.into());
            }
            let role = RoleDef {
                oid: cat.next_oid()?,
                name: role_name,
                login: cr.login.unwrap_or(is_user),
                replication: cr.replication.unwrap_or(false),
                superuser: false,
                create_role: cr.create_role.unwrap_or(false),
                create_db: cr.create_db.unwrap_or(false),
                password: cr
                    .password
                    .as_ref()
                    .map(password_verifier)
                    .transpose()?
                    .flatten(),
                member_of,
            };
            cat.put_role(&role)?;
        }
        // CREATE USER too: PostgreSQL's tag is CREATE ROLE for both.
        Ok(tag("CREATE ROLE"))
    }

    pub(crate) async fn role_statement(&mut self, ast: &Ast) -> SqlResult<QueryResult> {
        self.check_writable(ast)?;
        let result = match ast {
            Ast::AlterRole { name, operation } => self.alter_role(&ident_name(name), operation),
            Ast::Drop {
                object_type: ast::ObjectType::Role | ast::ObjectType::User,
                names,
                if_exists,
                ..
            } => self.drop_roles(names, *if_exists),
            Ast::Grant(g) => self.grant(&g.privileges, g.objects.as_ref(), &g.grantees, true),
            Ast::Revoke(r) => self.grant(&r.privileges, r.objects.as_ref(), &r.grantees, false),
            _ => Err(SqlError::internal("not a role statement")),
        };
        self.refresh_roles()?;
        result
    }

    fn alter_role(&mut self, name: &str, op: &ast::AlterRoleOperation) -> SqlResult<QueryResult> {
        // Users may change their own password; everything else needs admin.
        let own_password = name == self.state.user
            && matches!(op, ast::AlterRoleOperation::WithOptions { options } if options.iter().all(|o| matches!(o, ast::RoleOption::Password(_))));
        if !own_password {
            self.require_admin("alter role")?;
        }
        let txn = self.txn();
        let mut cat = Catalog::new(&mut *txn);
        let mut role = cat.role(name)?.ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("role \"{name}\" does not exist"),
            )
        })?;
        match op {
            ast::AlterRoleOperation::WithOptions { options } => {
                for o in options {
                    match o {
                        ast::RoleOption::Login(b) => role.login = *b,
                        ast::RoleOption::Replication(b) => role.replication = *b,
                        ast::RoleOption::CreateDB(b) => role.create_db = *b,
                        ast::RoleOption::CreateRole(b) => role.create_role = *b,
                        ast::RoleOption::Password(p) => role.password = password_verifier(p)?,
                        ast::RoleOption::SuperUser(b) => {
                            if *b {
                                role.member_of.insert(ADMIN_ROLE.into());
                            } else {
                                role.member_of.remove(ADMIN_ROLE);
                            }
                        }
                        ast::RoleOption::Inherit(_)
                        | ast::RoleOption::BypassRLS(_)
                        | ast::RoleOption::ConnectionLimit(_)
                        | ast::RoleOption::ValidUntil(_) => {}
                    }
                }
            }
            ast::AlterRoleOperation::RenameRole { role_name } => {
                let new = ident_name(role_name);
                if cat.role(&new)?.is_some() {
                    return Err(SqlError::new(
                        SqlState::DUPLICATE_OBJECT,
                        format!("role \"{new}\" already exists"),
                    ));
                }
                cat.delete_role(name)?;
                role.name = new;
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "ALTER ROLE {other} is not supported"
                )))
            }
        }
        cat.put_role(&role)?;
        Ok(tag("ALTER ROLE"))
    }

    fn drop_roles(&mut self, names: &[ast::ObjectName], if_exists: bool) -> SqlResult<QueryResult> {
        self.require_admin("drop role")?;
        let current = self.state.user.clone();
        let mut notices = Vec::new();
        let txn = self.txn();
        let mut cat = Catalog::new(&mut *txn);
        for n in names {
            let name = split_name(n)?.1;
            if name == ROOT_USER || name == ADMIN_ROLE {
                return Err(SqlError::new(
                    SqlState("55006"),
                    format!("cannot drop role \"{name}\": it is required by duet"),
                ));
            }
            if name == current {
                return Err(SqlError::new(
                    SqlState("55006"),
                    "current user cannot be dropped",
                ));
            }
            if cat.role(&name)?.is_none() {
                if if_exists {
                    notices.push(format!("role \"{name}\" does not exist, skipping"));
                    continue;
                }
                return Err(SqlError::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!("role \"{name}\" does not exist"),
                ));
            }
            cat.delete_role(&name)?;
            for mut other in cat.roles()? {
                if other.member_of.remove(&name) {
                    cat.put_role(&other)?;
                }
            }
        }
        for n in notices {
            self.notice("NOTICE", "00000", n);
        }
        Ok(tag("DROP ROLE"))
    }

    /// GRANT role TO user / REVOKE role FROM user.
    pub(crate) fn grant_roles(
        &mut self,
        roles: &[String],
        grantees: &[String],
        grant: bool,
    ) -> SqlResult<QueryResult> {
        if self.state.in_recovery {
            return Err(SqlError::read_only(if grant { "GRANT" } else { "REVOKE" }));
        }
        self.require_admin("grant role membership")?;
        let txn = self.txn();
        let mut cat = Catalog::new(&mut *txn);
        for r in roles {
            if cat.role(r)?.is_none() {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!("role \"{r}\" does not exist"),
                ));
            }
        }
        for g in grantees {
            let mut role = cat.role(g)?.ok_or_else(|| {
                SqlError::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!("role \"{g}\" does not exist"),
                )
            })?;
            for r in roles {
                if r == g {
                    return Err(SqlError::new(
                        SqlState("0LP01"),
                        format!("role \"{r}\" is a member of role \"{g}\""),
                    ));
                }
                if grant {
                    role.member_of.insert(r.clone());
                } else {
                    role.member_of.remove(r);
                }
            }
            cat.put_role(&role)?;
        }
        self.refresh_roles()?;
        Ok(tag(if grant { "GRANT ROLE" } else { "REVOKE ROLE" }))
    }

    fn grant(
        &mut self,
        privileges: &ast::Privileges,
        objects: Option<&ast::GrantObjects>,
        grantees: &[ast::Grantee],
        grant: bool,
    ) -> SqlResult<QueryResult> {
        let grantee_names: Vec<String> = grantees
            .iter()
            .map(|g| match &g.name {
                Some(ast::GranteeName::ObjectName(n)) => split_name(n).map(|(_, n)| n),
                _ => Ok("public".to_string()),
            })
            .collect::<SqlResult<_>>()?;
        let verb = if grant { "GRANT" } else { "REVOKE" };
        match objects {
            None => Err(SqlError::syntax("GRANT and REVOKE of privileges need ON")),
            Some(ast::GrantObjects::Tables(tables)) => {
                let privs: Vec<Privilege> = match privileges {
                    ast::Privileges::All { .. } => Privilege::ALL.to_vec(),
                    ast::Privileges::Actions(actions) => actions
                        .iter()
                        .map(|a| match a {
                            ast::Action::Select { .. } => Ok(Privilege::Select),
                            ast::Action::Insert { .. } => Ok(Privilege::Insert),
                            ast::Action::Update { .. } => Ok(Privilege::Update),
                            ast::Action::Delete => Ok(Privilege::Delete),
                            other => Err(SqlError::unsupported(format!(
                                "privilege {other} is not supported"
                            ))),
                        })
                        .collect::<SqlResult<_>>()?,
                };
                let database = self.state.database.oid;
                let (is_admin, user) = (self.state.is_admin, self.state.user.clone());
                let txn = self.txn();
                let mut cat = Catalog::new(&mut *txn);
                for g in &grantee_names {
                    if g != "public" && cat.role(g)?.is_none() {
                        return Err(SqlError::new(
                            SqlState::UNDEFINED_OBJECT,
                            format!("role \"{g}\" does not exist"),
                        ));
                    }
                }
                for t in tables {
                    let name = split_name(t)?.1;
                    let mut table = match cat.relation_by_name(database, "public", &name)? {
                        Some(Relation::Table(t)) => t,
                        _ => return Err(SqlError::undefined_table(&name)),
                    };
                    if !is_admin && table.owner != user {
                        return Err(SqlError::insufficient_privilege(format!(
                            "permission denied for table {name}"
                        )));
                    }
                    for g in &grantee_names {
                        let entry = table.acl.entry(g.clone()).or_default();
                        for p in &privs {
                            if grant {
                                entry.insert(*p);
                            } else {
                                entry.remove(p);
                            }
                        }
                        if entry.is_empty() {
                            table.acl.remove(g);
                        }
                    }
                    cat.put_table(&table)?;
                }
                Ok(tag(verb))
            }
            Some(other) => Err(SqlError::unsupported(format!(
                "{verb} on {other:?} is not supported yet"
            ))),
        }
    }
}
