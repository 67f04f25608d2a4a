//! SQL cursors: DECLARE ... CURSOR FOR, FETCH, CLOSE (psycopg's server-side
//! cursors are these). A cursor's rows are computed at DECLARE, from the
//! transaction's snapshot, and kept in the session; without WITH HOLD the
//! cursor ends with its transaction.

use std::collections::HashMap;

use sqlparser::ast::{self, FetchDirection};

use super::execute::{tag, Block, Session};
use super::{Column, QueryResult};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::planner::ident_name;
use crate::row::Row;

pub(crate) struct Cursor {
    columns: Vec<Column>,
    rows: Vec<Row>,
    /// 0: before the first row; rows.len() + 1: after the last.
    position: usize,
    hold: bool,
}

#[derive(Default)]
pub(crate) struct Cursors {
    open: HashMap<String, Cursor>,
}

impl Cursors {
    /// At transaction end, only WITH HOLD cursors stay open.
    pub(super) fn end_transaction(&mut self) {
        self.open.retain(|_, c| c.hold);
    }

    /// The columns FETCH from this cursor returns (Describe of a portal
    /// of that name, as psycopg 3 asks after DECLARE).
    pub(super) fn columns(&self, name: &str) -> Option<Vec<Column>> {
        self.open.get(name).map(|c| c.columns.clone())
    }
}

fn no_cursor(name: &str) -> SqlError {
    SqlError::new(
        SqlState::INVALID_CURSOR_NAME,
        format!("cursor \"{name}\" does not exist"),
    )
}

fn count(v: &ast::ValueWithSpan) -> SqlResult<i64> {
    v.to_string()
        .parse()
        .map_err(|_| SqlError::syntax(format!("syntax error at or near \"{v}\"")))
}

impl Session {
    pub(super) async fn declare(&mut self, declare: &ast::Declare) -> SqlResult<QueryResult> {
        let name = declare
            .names
            .first()
            .map(ident_name)
            .ok_or_else(|| SqlError::syntax("DECLARE needs a cursor name"))?;
        let Some(query) = &declare.for_query else {
            return Err(SqlError::unsupported(
                "DECLARE of variables is not supported; use DECLARE ... CURSOR FOR",
            ));
        };
        let hold = declare.hold.unwrap_or(false);
        // (Stricter than PostgreSQL only for a multi-statement simple
        // query, whose implicit transaction it would accept.)
        if !hold && self.block == Block::Autocommit {
            return Err(SqlError::new(
                SqlState::NO_ACTIVE_SQL_TRANSACTION,
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        if self.cursors.open.contains_key(&name) {
            return Err(SqlError::new(
                SqlState::DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        let result = self.query(query, Vec::new(), None).await?;
        self.cursors.open.insert(
            name,
            Cursor {
                columns: result.columns.unwrap_or_default(),
                rows: result.rows,
                position: 0,
                hold,
            },
        );
        Ok(tag("DECLARE CURSOR"))
    }

    pub(super) fn fetch(
        &mut self,
        name: &ast::Ident,
        direction: &FetchDirection,
    ) -> SqlResult<QueryResult> {
        let name = ident_name(name);
        let cursor = self
            .cursors
            .open
            .get_mut(&name)
            .ok_or_else(|| no_cursor(&name))?;
        let n = cursor.rows.len() as i64;
        let p = cursor.position as i64;
        // (rows to return, in order, as 1-based positions; new position)
        let (picked, position): (Vec<i64>, i64) = match direction {
            FetchDirection::Next => forward(p, 1, n),
            FetchDirection::Prior => backward(p, 1),
            FetchDirection::Count { limit } => step(p, count(limit)?, n),
            FetchDirection::Forward { limit } => {
                step(p, limit.as_ref().map(count).transpose()?.unwrap_or(1), n)
            }
            FetchDirection::Backward { limit } => step(
                p,
                limit
                    .as_ref()
                    .map(count)
                    .transpose()?
                    .unwrap_or(1)
                    .saturating_neg(),
                n,
            ),
            FetchDirection::All | FetchDirection::ForwardAll => forward(p, n + 1, n),
            FetchDirection::BackwardAll => backward(p, n + 1),
            FetchDirection::First => absolute(1, n),
            FetchDirection::Last => absolute(-1, n),
            FetchDirection::Absolute { limit } => absolute(count(limit)?, n),
            FetchDirection::Relative { limit } => absolute_from(p.saturating_add(count(limit)?), n),
        };
        cursor.position = position.clamp(0, n + 1) as usize;
        let rows: Vec<Row> = picked
            .into_iter()
            .map(|i| cursor.rows[(i - 1) as usize].clone())
            .collect();
        Ok(QueryResult {
            tag: format!("FETCH {}", rows.len()),
            columns: Some(cursor.columns.clone()),
            rows,
            copy: None,
        })
    }

    pub(super) fn close_cursor(&mut self, which: &ast::CloseCursor) -> SqlResult<QueryResult> {
        match which {
            ast::CloseCursor::All => self.cursors.open.clear(),
            ast::CloseCursor::Specific { name } => {
                let name = ident_name(name);
                self.cursors
                    .open
                    .remove(&name)
                    .ok_or_else(|| no_cursor(&name))?;
            }
        }
        Ok(tag("CLOSE CURSOR"))
    }

    /// Columns of a FETCH, for Describe.
    pub(super) fn fetch_columns(&self, name: &ast::Ident) -> SqlResult<Vec<Column>> {
        let name = ident_name(name);
        self.cursors.columns(&name).ok_or_else(|| no_cursor(&name))
    }

    /// The columns of an open cursor, if there is one of that name.
    pub fn cursor_columns(&self, name: &str) -> Option<Vec<Column>> {
        self.cursors.columns(name)
    }
}

fn step(p: i64, k: i64, n: i64) -> (Vec<i64>, i64) {
    if k == 0 {
        // FETCH FORWARD 0: the current row again.
        return absolute_from(p, n);
    }
    if k > 0 {
        forward(p, k, n)
    } else {
        backward(p, -k)
    }
}

/// The next `k` rows after position `p`.
fn forward(p: i64, k: i64, n: i64) -> (Vec<i64>, i64) {
    let rows: Vec<i64> = ((p + 1)..=(p.saturating_add(k)).min(n)).collect();
    let position = p.saturating_add(k).min(n + 1);
    (rows, position)
}

/// The `k` rows before position `p`, nearest first.
fn backward(p: i64, k: i64) -> (Vec<i64>, i64) {
    let rows: Vec<i64> = (p.saturating_sub(k).max(1)..p).rev().collect();
    let position = p.saturating_sub(k).max(0);
    (rows, position)
}

/// Row `i` (negative: from the end).
fn absolute(i: i64, n: i64) -> (Vec<i64>, i64) {
    absolute_from(if i < 0 { n + 1 + i } else { i }, n)
}

fn absolute_from(i: i64, n: i64) -> (Vec<i64>, i64) {
    if (1..=n).contains(&i) {
        (vec![i], i)
    } else {
        (Vec::new(), if i < 1 { 0 } else { n + 1 })
    }
}
