//! Table access: point reads and key-range scans of the primary index or
//! a secondary index.

use std::ops::Bound;

use duet_storage::keycode::prefix_end;
use duet_storage::{Scan, Transaction};

use crate::cast::cast;
use crate::catalog::{index_prefix, table_rows_prefix, IndexDef, TableDef};
use crate::error::SqlResult;
use crate::expr::EvalEnv;
use crate::plan::KeyRange;
use crate::row::{decode_row, encode_key_value, Row};
use crate::value::Value;

/// Evaluated key bounds: [start, end) over encoded keys.
struct Bounds {
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    /// The equality prefix covers the whole key: a point read.
    point: Option<Vec<u8>>,
}

/// Evaluates a key range into byte bounds; None if it can match nothing
/// (a NULL or out-of-range equality value).
fn evaluate_bounds(
    prefix: Vec<u8>,
    range: &KeyRange,
    key_len: usize,
    env: &EvalEnv,
) -> SqlResult<Option<Bounds>> {
    let mut key = prefix.clone();
    let base_end = prefix_end(&prefix);
    for (i, e) in range.eq.iter().enumerate() {
        let v = e.eval(&[], env)?;
        if v.is_null() {
            return Ok(None);
        }
        let Ok(v) = cast(v.clone(), &range.key_types[i], env.tz, false) else {
            return Ok(None);
        };
        // A value that changed when cast (1.5 for an integer key) matches nothing.
        encode_key_value(&mut key, &v);
    }
    if range.eq.len() == key_len && range.lower.is_none() && range.upper.is_none() {
        return Ok(Some(Bounds {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
            point: Some(key),
        }));
    }
    let col_ty = range.key_types.get(range.eq.len());
    let bound_key = |e: &crate::expr::Expr| -> SqlResult<Option<Vec<u8>>> {
        let v = e.eval(&[], env)?;
        let Some(ty) = col_ty else { return Ok(None) };
        if v.is_null() {
            return Ok(None);
        }
        match cast(v, ty, env.tz, false) {
            Ok(v) => {
                let mut k = key.clone();
                encode_key_value(&mut k, &v);
                Ok(Some(k))
            }
            Err(_) => Ok(None),
        }
    };
    let start = match &range.lower {
        Some((e, inclusive)) => match bound_key(e)? {
            Some(k) if *inclusive => Bound::Included(k),
            Some(k) => match prefix_end(&k) {
                Some(k) => Bound::Included(k),
                None => return Ok(None),
            },
            None => Bound::Included(key.clone()),
        },
        None => Bound::Included(key.clone()),
    };
    let end = match &range.upper {
        Some((e, inclusive)) => match bound_key(e)? {
            Some(k) if *inclusive => prefix_end(&k)
                .map(Bound::Excluded)
                .unwrap_or(Bound::Unbounded),
            Some(k) => Bound::Excluded(k),
            None => prefix_end(&key)
                .map(Bound::Excluded)
                .unwrap_or(Bound::Unbounded),
        },
        None => match prefix_end(&key) {
            Some(k) => Bound::Excluded(k),
            None => base_end.map(Bound::Excluded).unwrap_or(Bound::Unbounded),
        },
    };
    Ok(Some(Bounds {
        start,
        end,
        point: None,
    }))
}

/// Decodes a stored row, padding columns added after it was written.
pub fn decode_table_row(table: &TableDef, bytes: &[u8]) -> SqlResult<Row> {
    let mut row = decode_row(bytes)?;
    if row.len() < table.columns.len() {
        row.resize(table.columns.len(), Value::Null);
    }
    Ok(row)
}

/// Streams (row key, row) pairs of a table for a key range.
pub struct TableScan<'a> {
    txn: &'a Transaction,
    table: &'a TableDef,
    state: ScanState,
    env: &'a EvalEnv<'a>,
    count: u64,
}

enum ScanState {
    Done,
    Point(Vec<u8>),
    Primary(Scan),
    Index(Scan),
}

impl<'a> TableScan<'a> {
    /// Starts a scan of `range` over the primary index or `index`.
    pub fn new(
        txn: &'a Transaction,
        table: &'a TableDef,
        index: Option<&IndexDef>,
        range: &KeyRange,
        env: &'a EvalEnv<'a>,
    ) -> SqlResult<Self> {
        let (prefix, key_len) = match index {
            None => (table_rows_prefix(table.oid), table.primary.columns.len()),
            Some(ix) => (
                index_prefix(ix.oid),
                ix.columns.len() + table.primary.columns.len(),
            ),
        };
        let state = match evaluate_bounds(prefix, range, key_len, env)? {
            None => ScanState::Done,
            Some(Bounds { point: Some(k), .. }) if index.is_none() => ScanState::Point(k),
            Some(Bounds { point: Some(k), .. }) => ScanState::Index(
                txn.scan(
                    Bound::Included(k.clone()),
                    prefix_end(&k)
                        .map(Bound::Excluded)
                        .unwrap_or(Bound::Unbounded),
                ),
            ),
            Some(b) if index.is_none() => ScanState::Primary(txn.scan(b.start, b.end)),
            Some(b) => ScanState::Index(txn.scan(b.start, b.end)),
        };
        Ok(TableScan {
            txn,
            table,
            state,
            env,
            count: 0,
        })
    }

    /// Takes the row key out of a scan that reads one row by its whole
    /// primary key and has not read it yet (the scan is then done).
    pub fn take_point(&mut self) -> Option<Vec<u8>> {
        match std::mem::replace(&mut self.state, ScanState::Done) {
            ScanState::Point(key) => Some(key),
            state => {
                self.state = state;
                None
            }
        }
    }

    /// The next (row key, row).
    pub fn next_row(&mut self) -> SqlResult<Option<(Vec<u8>, Row)>> {
        self.count += 1;
        if self.count.is_multiple_of(1024) {
            self.env.check_interrupt()?;
        }
        loop {
            match &mut self.state {
                ScanState::Done => return Ok(None),
                ScanState::Point(k) => {
                    let k = std::mem::take(k);
                    let got = self.txn.get(&k)?;
                    self.state = ScanState::Done;
                    return match got {
                        Some(v) => Ok(Some((k, decode_table_row(self.table, &v)?))),
                        None => Ok(None),
                    };
                }
                ScanState::Primary(scan) => {
                    return match scan.next_entry()? {
                        Some((k, v)) => Ok(Some((k, decode_table_row(self.table, &v)?))),
                        None => {
                            self.state = ScanState::Done;
                            Ok(None)
                        }
                    }
                }
                ScanState::Index(scan) => {
                    let Some((_, pk_suffix)) = scan.next_entry()? else {
                        self.state = ScanState::Done;
                        return Ok(None);
                    };
                    let mut key = table_rows_prefix(self.table.oid);
                    key.extend_from_slice(&pk_suffix);
                    // An index entry always has its row in the same snapshot.
                    if let Some(v) = self.txn.get(&key)? {
                        return Ok(Some((key, decode_table_row(self.table, &v)?)));
                    }
                }
            }
        }
    }
}
