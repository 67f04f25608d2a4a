//! COPY FROM STDIN and COPY TO STDOUT.
//!
//! COPY FROM leaves the session in a copy-in state after `execute`: the
//! server feeds the CopyData that follows to [`Session::copy_data`] (rows
//! are inserted as they arrive, into the statement's transaction) and ends
//! with [`Session::copy_done`] (which commits an autocommit COPY) or
//! [`Session::copy_fail`].

use std::sync::Arc;

use duet_storage::StatementControl;
use sqlparser::ast::{self, Ident};

use super::catalog_view::CatalogView;
use super::execute::Session;
use super::{CopyResponse, QueryResult};
use crate::copy::{
    encode_row, CopyDirection, CopySource, CopyStatement, DecodedRow, Format, RowDecoder,
};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::exec;
use crate::planner::{ident_name, InsertPlan, Planner};
use crate::value::Value;

/// A COPY FROM in progress.
pub(crate) struct CopyIn {
    plan: Arc<InsertPlan>,
    decoder: RowDecoder,
    control: StatementControl,
    count: u64,
}

impl Session {
    pub(super) async fn copy(&mut self, stmt: &CopyStatement) -> SqlResult<QueryResult> {
        match stmt.direction {
            CopyDirection::In => self.copy_from(stmt),
            CopyDirection::Out => self.copy_to(stmt).await,
        }
    }

    fn copy_from(&mut self, stmt: &CopyStatement) -> SqlResult<QueryResult> {
        self.check_read_only("COPY FROM")?;
        let CopySource::Table { name, columns } = &stmt.source else {
            return Err(SqlError::internal("COPY (query) FROM"));
        };
        let control = self.control();
        let tz = self.time_zone().clone();
        self.begin_statement()?;
        let plan = {
            let view = CatalogView {
                state: &self.state,
                txn: self.current_txn()?,
            };
            Planner::new(&view, Vec::new(), tz).plan_copy_from(name, columns)?
        };
        let target_names: Vec<&str> = plan
            .targets
            .iter()
            .map(|&c| plan.table.columns[c].name.as_str())
            .collect();
        let force_not_null = column_flags(
            "FORCE_NOT_NULL",
            &stmt.options.force_not_null,
            &target_names,
        )?;
        let force_null = column_flags("FORCE_NULL", &stmt.options.force_null, &target_names)?;
        let decoder = RowDecoder::new(
            &plan.table.name,
            stmt.options.clone(),
            force_not_null,
            force_null,
        );
        let columns = plan.targets.len();
        self.copy_in = Some(CopyIn {
            plan: Arc::new(plan),
            decoder,
            control,
            count: 0,
        });
        Ok(QueryResult {
            copy: Some(CopyResponse::In {
                columns,
                csv: stmt.options.format == Format::Csv,
            }),
            ..Default::default()
        })
    }

    /// A CopyData message of a COPY FROM. On an error the COPY is over
    /// (failed); the caller reports it and drops the rest of the data.
    pub async fn copy_data(&mut self, data: &[u8]) -> SqlResult<()> {
        let rows = match self.copy_in.as_mut() {
            Some(c) => c.decoder.push(data),
            None => return Err(no_copy()),
        };
        match rows {
            Ok(rows) => self.insert_copied(rows).await,
            Err(e) => Err(self.abort_copy(e).await),
        }
    }

    /// CopyDone: inserts what is left, ends the statement, returns `COPY n`.
    pub async fn copy_done(&mut self) -> SqlResult<QueryResult> {
        let rows = match self.copy_in.as_mut() {
            Some(c) => c.decoder.finish(),
            None => return Err(no_copy()),
        };
        match rows {
            Ok(rows) => self.insert_copied(rows).await?,
            Err(e) => return Err(self.abort_copy(e).await),
        }
        let count = self.copy_in.take().map_or(0, |c| c.count);
        self.end_statement(true).await?;
        Ok(super::execute::tag(&format!("COPY {count}")))
    }

    /// CopyFail from the client: the COPY fails with its message.
    pub async fn copy_fail(&mut self, message: &str) -> SqlError {
        let e = SqlError::new(
            SqlState::QUERY_CANCELED,
            format!("COPY from stdin failed: {message}"),
        );
        self.abort_copy(e).await
    }

    /// True while a COPY FROM waits for data.
    pub fn is_copying_in(&self) -> bool {
        self.copy_in.is_some()
    }

    async fn abort_copy(&mut self, e: SqlError) -> SqlError {
        self.copy_in = None;
        match self.end_statement(false).await {
            Ok(()) => e,
            Err(other) => other,
        }
    }

    async fn insert_copied(&mut self, rows: Vec<DecodedRow>) -> SqlResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let Some(mut copy) = self.copy_in.take() else {
            return Err(no_copy());
        };
        let result = async {
            let source = self.copy_values(&copy, rows)?;
            let mut txn = self.take_txn()?;
            let env = self.env(&[], &copy.control);
            let result = exec::insert_rows(&copy.plan, &mut txn, source, &env).await;
            self.txn = Some(txn);
            result
        }
        .await;
        match result {
            Ok(r) => {
                copy.count += r.count;
                self.copy_in = Some(copy);
                Ok(())
            }
            Err(e) => Err(self.abort_copy(e).await),
        }
    }

    /// Fields to typed values, with PostgreSQL's errors and context.
    fn copy_values(
        &self,
        copy: &CopyIn,
        rows: Vec<DecodedRow>,
    ) -> SqlResult<Vec<Vec<Option<Value>>>> {
        let table = &copy.plan.table;
        let tz = self.time_zone();
        let context = |line: u64| format!("COPY {}, line {line}", table.name);
        rows.into_iter()
            .map(|row| {
                let targets = &copy.plan.targets;
                if row.fields.len() > targets.len() {
                    return Err(SqlError::new(
                        SqlState::BAD_COPY_FILE_FORMAT,
                        "extra data after last expected column",
                    )
                    .with_context(context(row.line)));
                }
                if let Some(&missing) = targets.get(row.fields.len()) {
                    return Err(SqlError::new(
                        SqlState::BAD_COPY_FILE_FORMAT,
                        format!(
                            "missing data for column \"{}\"",
                            table.columns[missing].name
                        ),
                    )
                    .with_context(context(row.line)));
                }
                row.fields
                    .into_iter()
                    .zip(targets)
                    .map(|(field, &c)| {
                        let column = &table.columns[c];
                        match field {
                            None => Ok(Some(Value::Null)),
                            Some(text) => Value::from_text(&column.data_type, &text, tz)
                                .map(Some)
                                .map_err(|e| {
                                    e.with_context(format!(
                                        "COPY {}, line {}, column {}: \"{text}\"",
                                        table.name, row.line, column.name
                                    ))
                                }),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    async fn copy_to(&mut self, stmt: &CopyStatement) -> SqlResult<QueryResult> {
        let query: Box<ast::Query> = match &stmt.source {
            CopySource::Query(q) => q.clone(),
            CopySource::Table { name, columns } => {
                let list = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let sql = format!("SELECT {list} FROM {name}");
                let mut parsed = crate::parser::parse_sql(&sql)?;
                match parsed.pop() {
                    Some(ast::Statement::Query(q)) => q,
                    _ => return Err(SqlError::internal("COPY TO query")),
                }
            }
        };
        let result = self.query(&query, Vec::new(), None).await?;
        let columns = result.columns.unwrap_or_default();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let force_quote = column_flags("FORCE_QUOTE", &stmt.options.force_quote, &names)?;
        let tz = self.time_zone();
        let mut data = Vec::with_capacity(result.rows.len() + 1);
        if stmt.options.header {
            let header: Vec<Option<String>> = names.iter().map(|n| Some(n.to_string())).collect();
            let mut line = Vec::new();
            encode_row(&header, &stmt.options, &[], &mut line);
            data.push(line);
        }
        for row in &result.rows {
            let fields: Vec<Option<String>> = row
                .iter()
                .zip(&columns)
                .map(|(v, c)| v.to_text(&c.data_type, tz))
                .collect();
            let mut line = Vec::new();
            encode_row(&fields, &stmt.options, &force_quote, &mut line);
            data.push(line);
        }
        Ok(QueryResult {
            tag: format!("COPY {}", result.rows.len()),
            copy: Some(CopyResponse::Out {
                columns: columns.len(),
                csv: stmt.options.format == Format::Csv,
                data,
            }),
            ..Default::default()
        })
    }
}

/// Per column of the COPY: is it named in a FORCE_* option? Naming a
/// column the COPY does not have is an error.
fn column_flags(option: &str, named: &[Ident], columns: &[&str]) -> SqlResult<Vec<bool>> {
    let named: Vec<String> = named.iter().map(ident_name).collect();
    if let Some(bad) = named.iter().find(|n| !columns.contains(&n.as_str())) {
        return Err(SqlError::new(
            SqlState::INVALID_COLUMN_REFERENCE,
            format!("{option} column \"{bad}\" not referenced by COPY"),
        ));
    }
    Ok(columns
        .iter()
        .map(|c| named.iter().any(|n| n == c))
        .collect())
}

fn no_copy() -> SqlError {
    SqlError::new(SqlState::PROTOCOL_VIOLATION, "no COPY in progress")
}
