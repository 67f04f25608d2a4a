//! The extended query protocol: Parse, Bind, Describe, Execute, Close
//! with named and unnamed prepared statements and portals.

use std::collections::HashMap;
use std::sync::Arc;

use duet_sql::{Column, DataType, Describe, QueryResult, SqlError, SqlState, Statement, Value};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe as DescribeMsg, Execute, Parse,
    ParseComplete, PortalSuspended, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse};
use pgwire::messages::PgWireBackendMessage;

use crate::connection::{run_statement, Backend, ConnError};
use crate::encode::{self, FORMAT_BINARY, FORMAT_TEXT};

/// A prepared statement.
pub(crate) struct Prepared {
    /// None for an empty query string.
    stmt: Option<Statement>,
    /// Parameter types given in Parse (Unknown where unspecified).
    given: Vec<DataType>,
    /// Parameter type OIDs as given in Parse, reported back for types
    /// duet does not know.
    given_oids: Vec<u32>,
    /// Inferred parameter types and result columns, computed once and
    /// shared with every portal bound from it.
    described: Option<Arc<Describe>>,
}

/// A bound statement, ready to run (or running, when suspended).
pub(crate) struct Portal {
    stmt: Option<Statement>,
    params: Vec<Value>,
    /// The statement's description at Bind (result columns).
    described: Arc<Describe>,
    /// Result format codes as sent in Bind.
    format_codes: Vec<i16>,
    /// Result format code per described column.
    formats: Vec<i16>,
    /// The result once executed, with the rows already sent.
    result: Option<Running>,
}

struct Running {
    result: QueryResult,
    sent: usize,
    complete: bool,
}

/// Per-connection extended-protocol state.
#[derive(Default)]
pub(crate) struct Extended {
    pub(crate) statements: HashMap<String, Prepared>,
    pub(crate) portals: HashMap<String, Portal>,
    /// After an error: skip messages until Sync.
    pub(crate) discarding: bool,
    /// The Executes up to the next Sync share one implicit transaction, as
    /// in PostgreSQL (a JDBC batch commits or fails as a whole).
    pub(crate) implicit: bool,
}

/// Errors with a `ConnError` to end the connection, or a `SqlError` to
/// report and skip to Sync.
pub(crate) enum ExtError {
    Sql(SqlError),
    Conn(ConnError),
}

impl From<SqlError> for ExtError {
    fn from(e: SqlError) -> Self {
        ExtError::Sql(e)
    }
}

impl From<ConnError> for ExtError {
    fn from(e: ConnError) -> Self {
        ExtError::Conn(e)
    }
}

fn statement_label(name: &str) -> String {
    if name.is_empty() {
        "unnamed prepared statement".to_string()
    } else {
        format!("prepared statement \"{name}\"")
    }
}

fn no_statement(name: &str) -> SqlError {
    SqlError::new(
        SqlState::INVALID_SQL_STATEMENT_NAME,
        format!("{} does not exist", statement_label(name)),
    )
}

fn no_portal(name: &str) -> SqlError {
    let label = if name.is_empty() {
        "unnamed portal".to_string()
    } else {
        format!("portal \"{name}\"")
    };
    SqlError::new(
        SqlState::INVALID_CURSOR_NAME,
        format!("{label} does not exist"),
    )
}

fn protocol(message: impl Into<String>) -> SqlError {
    SqlError::new(SqlState::PROTOCOL_VIOLATION, message)
}

/// Parameter format code per parameter.
fn param_formats(codes: &[i16], params: usize) -> Result<Vec<i16>, SqlError> {
    for &c in codes {
        if c != FORMAT_TEXT && c != FORMAT_BINARY {
            return Err(SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("unsupported format code: {c}"),
            ));
        }
    }
    match codes.len() {
        0 => Ok(vec![FORMAT_TEXT; params]),
        1 => Ok(vec![codes[0]; params]),
        n if n == params => Ok(codes.to_vec()),
        n => Err(protocol(format!(
            "bind message has {n} parameter formats but {params} parameters"
        ))),
    }
}

impl Prepared {
    /// Describes the statement once and caches the answer.
    fn describe(&mut self, session: &mut duet_sql::Session) -> Result<Arc<Describe>, SqlError> {
        if self.described.is_none() {
            let described = match &self.stmt {
                Some(stmt) => session.describe(stmt, &self.given)?,
                None => Describe {
                    params: self.given.clone(),
                    columns: None,
                },
            };
            self.described = Some(Arc::new(described));
        }
        match &self.described {
            Some(d) => Ok(d.clone()),
            None => Err(SqlError::internal("statement description missing")),
        }
    }

    /// ParameterDescription OIDs.
    fn param_oids(&self, described: &Describe) -> Vec<u32> {
        described
            .params
            .iter()
            .enumerate()
            .map(|(i, ty)| match (ty, self.given_oids.get(i)) {
                (DataType::Unknown, Some(&oid)) if oid != 0 => oid,
                _ => encode::reported_type(ty).oid(),
            })
            .collect()
    }
}

impl Backend {
    pub(crate) async fn on_parse(&mut self, msg: Parse) -> Result<(), ExtError> {
        let name = msg.name.unwrap_or_default();
        if !name.is_empty() && self.ext.statements.contains_key(&name) {
            return Err(SqlError::new(
                SqlState("42P05"),
                format!("prepared statement \"{name}\" already exists"),
            )
            .into());
        }
        let mut statements = self.session.parse(&msg.query)?;
        if statements.len() > 1 {
            return Err(SqlError::syntax(
                "cannot insert multiple commands into a prepared statement",
            )
            .into());
        }
        let given = msg
            .type_oids
            .iter()
            .map(|&oid| DataType::from_oid(oid).unwrap_or(DataType::Unknown))
            .collect();
        // An unnamed statement silently replaces the previous one.
        self.ext.statements.insert(
            name,
            Prepared {
                stmt: statements.pop(),
                given,
                given_oids: msg.type_oids,
                described: None,
            },
        );
        self.conn
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    pub(crate) async fn on_bind(&mut self, msg: Bind) -> Result<(), ExtError> {
        let portal_name = msg.portal_name.unwrap_or_default();
        let stmt_name = msg.statement_name.unwrap_or_default();
        if !portal_name.is_empty() && self.ext.portals.contains_key(&portal_name) {
            return Err(SqlError::new(
                SqlState("42P03"),
                format!("cursor \"{portal_name}\" already exists"),
            )
            .into());
        }
        let prepared = self
            .ext
            .statements
            .get_mut(&stmt_name)
            .ok_or_else(|| no_statement(&stmt_name))?;
        let described = prepared.describe(&mut self.session)?;
        let stmt = prepared.stmt.clone();

        let expected = described.params.len();
        if msg.parameters.len() != expected {
            return Err(protocol(format!(
                "bind message supplies {} parameters, but {} requires {expected}",
                msg.parameters.len(),
                statement_label(&stmt_name)
            ))
            .into());
        }
        let formats = param_formats(&msg.parameter_format_codes, expected)?;
        let mut params = Vec::with_capacity(expected);
        for (i, raw) in msg.parameters.iter().enumerate() {
            let ty = &described.params[i];
            let value = match raw {
                None => Value::Null,
                Some(bytes) if formats[i] == FORMAT_BINARY => Value::from_binary(ty, bytes)?,
                Some(bytes) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        SqlError::new(
                            SqlState("22021"),
                            "invalid byte sequence for encoding \"UTF8\"",
                        )
                    })?;
                    Value::from_text(ty, text, self.session.time_zone())?
                }
            };
            params.push(value);
        }

        let width = described.columns.as_ref().map_or(0, Vec::len);
        let result_formats = encode::expand_formats(&msg.result_column_format_codes, width)?;
        // An unnamed portal silently replaces the previous one.
        self.ext.portals.insert(
            portal_name,
            Portal {
                stmt,
                params,
                described,
                format_codes: msg.result_column_format_codes,
                formats: result_formats,
                result: None,
            },
        );
        self.conn
            .send(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    /// DEALLOCATE name | ALL: drops prepared statements of this connection
    /// (PostgreSQL's SQL and protocol prepared statements are one set).
    pub(crate) fn deallocate(&mut self, target: Option<String>) -> Result<QueryResult, SqlError> {
        let tag = match target {
            None => {
                self.ext.statements.retain(|name, _| name.is_empty());
                "DEALLOCATE ALL"
            }
            Some(name) => {
                if self.ext.statements.remove(&name).is_none() {
                    return Err(SqlError::new(
                        SqlState::INVALID_SQL_STATEMENT_NAME,
                        format!("prepared statement \"{name}\" does not exist"),
                    ));
                }
                "DEALLOCATE"
            }
        };
        Ok(QueryResult {
            tag: tag.into(),
            ..Default::default()
        })
    }

    pub(crate) async fn on_describe(&mut self, msg: DescribeMsg) -> Result<(), ExtError> {
        let name = msg.name.unwrap_or_default();
        match msg.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                let prepared = self
                    .ext
                    .statements
                    .get_mut(&name)
                    .ok_or_else(|| no_statement(&name))?;
                let described = prepared.describe(&mut self.session)?;
                let oids = prepared.param_oids(&described);
                self.conn
                    .send(PgWireBackendMessage::ParameterDescription(
                        ParameterDescription::new(oids),
                    ))
                    .await?;
                match &described.columns {
                    // A statement's columns are described in text format:
                    // the formats are only known at Bind.
                    Some(columns) => {
                        let formats = vec![FORMAT_TEXT; columns.len()];
                        self.conn
                            .send(encode::row_description(columns, &formats))
                            .await?
                    }
                    None => {
                        self.conn
                            .send(PgWireBackendMessage::NoData(NoData::new()))
                            .await?
                    }
                }
            }
            TARGET_TYPE_BYTE_PORTAL => {
                let Some(portal) = self.ext.portals.get(&name) else {
                    // A SQL cursor (DECLARE) is a portal too.
                    let columns = self
                        .session
                        .cursor_columns(&name)
                        .ok_or_else(|| no_portal(&name))?;
                    let formats = vec![FORMAT_TEXT; columns.len()];
                    self.conn
                        .send(encode::row_description(&columns, &formats))
                        .await?;
                    return Ok(());
                };
                let msg = match &portal.described.columns {
                    Some(columns) => encode::row_description(columns, &portal.formats),
                    None => PgWireBackendMessage::NoData(NoData::new()),
                };
                self.conn.send(msg).await?;
            }
            other => {
                return Err(protocol(format!("invalid DESCRIBE message subtype {other}")).into())
            }
        }
        Ok(())
    }

    pub(crate) async fn on_close(&mut self, msg: Close) -> Result<(), ExtError> {
        let name = msg.name.unwrap_or_default();
        match msg.target_type {
            TARGET_TYPE_BYTE_STATEMENT => {
                self.ext.statements.remove(&name);
            }
            TARGET_TYPE_BYTE_PORTAL => {
                self.ext.portals.remove(&name);
            }
            other => return Err(protocol(format!("invalid CLOSE message subtype {other}")).into()),
        }
        self.conn
            .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    pub(crate) async fn on_execute(&mut self, msg: Execute) -> Result<(), ExtError> {
        let name = msg.name.unwrap_or_default();
        // Taken out while it runs; put back unless it failed (a failed
        // portal cannot be run again).
        let mut portal = self
            .ext
            .portals
            .remove(&name)
            .ok_or_else(|| no_portal(&name))?;
        let Some(stmt) = portal.stmt.clone() else {
            self.conn
                .send(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            self.ext.portals.insert(name, portal);
            return Ok(());
        };
        if portal.result.is_none() {
            if !self.ext.implicit {
                self.session.begin_implicit();
                self.ext.implicit = true;
            }
            let params = std::mem::take(&mut portal.params);
            let result = match stmt.deallocation() {
                Some(target) => self.deallocate(target),
                None => run_statement(stmt.is_short(), self.session.execute(&stmt, params)).await,
            };
            let result = match result {
                Ok(r) if r.copy.is_some() => self.run_copy(r).await?,
                other => other,
            };
            self.send_notices().await?;
            portal.result = Some(Running {
                result: result?,
                sent: 0,
                complete: false,
            });
        }
        let outcome = self.send_portal_rows(&mut portal, msg.max_rows).await;
        if let Ok(()) | Err(ExtError::Conn(_)) = &outcome {
            self.ext.portals.insert(name, portal);
        }
        outcome
    }

    /// DataRows of a portal, at most `max_rows` (0 = all), then
    /// PortalSuspended or CommandComplete.
    async fn send_portal_rows(
        &mut self,
        portal: &mut Portal,
        max_rows: i32,
    ) -> Result<(), ExtError> {
        let Some(running) = portal.result.as_mut() else {
            return Err(SqlError::internal("portal has no result").into());
        };
        let Some(result_columns) = running.result.columns.as_ref() else {
            // No rows: just the command tag.
            running.complete = true;
            let tag = running.result.tag.clone();
            self.conn
                .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    tag,
                )))
                .await?;
            return Ok(());
        };
        // Encode with what the client was told at Describe, if it matches.
        let fallback_formats;
        let (columns, formats): (&[Column], &[i16]) = match &portal.described.columns {
            Some(described) if described.len() == result_columns.len() => {
                (described, &portal.formats)
            }
            _ => {
                fallback_formats =
                    encode::expand_formats(&portal.format_codes, result_columns.len())?;
                (result_columns, &fallback_formats)
            }
        };
        let start = running.sent;
        let total = running.result.rows.len();
        let end = if max_rows > 0 {
            total.min(start.saturating_add(max_rows as usize))
        } else {
            total
        };
        for row in &running.result.rows[start..end] {
            let msg = encode::data_row(row, columns, formats, self.session.time_zone())?;
            self.conn.send(msg).await?;
        }
        running.sent = end;
        if end < total {
            self.conn
                .send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                .await?;
            return Ok(());
        }
        // PostgreSQL tags the last fetch of a SELECT portal that was
        // suspended before with the rows of that fetch only.
        let tag = if (start > 0 || running.complete) && running.result.tag.starts_with("SELECT") {
            format!("SELECT {}", end - start)
        } else {
            running.result.tag.clone()
        };
        running.complete = true;
        self.conn
            .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )))
            .await?;
        Ok(())
    }
}
