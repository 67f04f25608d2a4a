//! How rows and index entries become keys and values.
//!
//! Row value: a compact tagged encoding of every column. Keys: the
//! order-preserving keycode of the key columns, so primary-key order is
//! RocksDB order and index range scans are key ranges.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use duet_storage::keycode;
use rust_decimal::Decimal;

use crate::catalog::{index_prefix, table_rows_prefix, IndexDef, TableDef};
use crate::error::{SqlError, SqlResult};
use crate::value::Value;

pub type Row = Vec<Value>;

// ---- row values ----------------------------------------------------------

mod vtag {
    pub const NULL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const INT: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const NUMERIC: u8 = 5;
    pub const TEXT: u8 = 6;
    pub const BYTEA: u8 = 7;
    pub const DATE: u8 = 8;
    pub const TIMESTAMP: u8 = 9;
    pub const TIMESTAMPTZ: u8 = 10;
    pub const ARRAY: u8 = 11;
    pub const UUID: u8 = 12;
    pub const JSON: u8 = 13;
    pub const INTERVAL: u8 = 14;
}

pub fn encode_row(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + row.len() * 8);
    out.extend_from_slice(&(row.len() as u16).to_be_bytes());
    for v in row {
        encode_value(&mut out, v);
    }
    out
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(vtag::NULL),
        Value::Bool(false) => out.push(vtag::FALSE),
        Value::Bool(true) => out.push(vtag::TRUE),
        Value::Int(i) => {
            out.push(vtag::INT);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Float(f) => {
            out.push(vtag::FLOAT);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Numeric(d) => {
            out.push(vtag::NUMERIC);
            out.extend_from_slice(&d.serialize());
        }
        Value::Text(s) => {
            out.push(vtag::TEXT);
            put_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytea(b) => {
            out.push(vtag::BYTEA);
            put_len(out, b.len());
            out.extend_from_slice(b);
        }
        Value::Date(d) => {
            out.push(vtag::DATE);
            out.extend_from_slice(
                &d.signed_duration_since(NaiveDate::default())
                    .num_days()
                    .to_be_bytes(),
            );
        }
        Value::Timestamp(t) => {
            out.push(vtag::TIMESTAMP);
            out.extend_from_slice(&t.and_utc().timestamp_micros().to_be_bytes());
        }
        Value::TimestampTz(t) => {
            out.push(vtag::TIMESTAMPTZ);
            out.extend_from_slice(&t.timestamp_micros().to_be_bytes());
        }
        Value::Array(items) => {
            out.push(vtag::ARRAY);
            put_len(out, items.len());
            for item in items {
                encode_value(out, item);
            }
        }
        Value::Uuid(u) => {
            out.push(vtag::UUID);
            out.extend_from_slice(&u.to_be_bytes());
        }
        Value::Json(j) => {
            out.push(vtag::JSON);
            put_len(out, j.len());
            out.extend_from_slice(j.as_bytes());
        }
        Value::Interval(i) => {
            out.push(vtag::INTERVAL);
            out.extend_from_slice(&i.months.to_be_bytes());
            out.extend_from_slice(&i.days.to_be_bytes());
            out.extend_from_slice(&i.micros.to_be_bytes());
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> SqlResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(corrupt)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> SqlResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> SqlResult<i64> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| corrupt())?,
        ))
    }

    fn len(&mut self) -> SqlResult<usize> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| corrupt())?) as usize)
    }
}

fn corrupt() -> SqlError {
    SqlError::internal("corrupt row encoding")
}

pub fn decode_row(buf: &[u8]) -> SqlResult<Row> {
    let mut r = Reader { buf, pos: 0 };
    let n = u16::from_be_bytes(r.take(2)?.try_into().map_err(|_| corrupt())?) as usize;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        row.push(decode_value(&mut r)?);
    }
    Ok(row)
}

fn decode_value(r: &mut Reader) -> SqlResult<Value> {
    Ok(match r.u8()? {
        vtag::NULL => Value::Null,
        vtag::FALSE => Value::Bool(false),
        vtag::TRUE => Value::Bool(true),
        vtag::INT => Value::Int(r.i64()?),
        vtag::FLOAT => Value::Float(f64::from_bits(r.i64()? as u64)),
        vtag::NUMERIC => Value::Numeric(Decimal::deserialize(
            r.take(16)?.try_into().map_err(|_| corrupt())?,
        )),
        vtag::TEXT => {
            let n = r.len()?;
            Value::Text(String::from_utf8(r.take(n)?.to_vec()).map_err(|_| corrupt())?)
        }
        vtag::BYTEA => {
            let n = r.len()?;
            Value::Bytea(r.take(n)?.to_vec())
        }
        vtag::DATE => Value::Date(NaiveDate::default() + chrono::Duration::days(r.i64()?)),
        vtag::TIMESTAMP => Value::Timestamp(
            DateTime::from_timestamp_micros(r.i64()?)
                .ok_or_else(corrupt)?
                .naive_utc(),
        ),
        vtag::TIMESTAMPTZ => {
            Value::TimestampTz(DateTime::from_timestamp_micros(r.i64()?).ok_or_else(corrupt)?)
        }
        vtag::UUID => Value::Uuid(u128::from_be_bytes(
            r.take(16)?.try_into().map_err(|_| corrupt())?,
        )),
        vtag::JSON => {
            let n = r.len()?;
            Value::Json(String::from_utf8(r.take(n)?.to_vec()).map_err(|_| corrupt())?)
        }
        vtag::INTERVAL => {
            let months = i32::from_be_bytes(r.take(4)?.try_into().map_err(|_| corrupt())?);
            let days = i32::from_be_bytes(r.take(4)?.try_into().map_err(|_| corrupt())?);
            Value::Interval(crate::value::Interval {
                months,
                days,
                micros: r.i64()?,
            })
        }
        vtag::ARRAY => {
            let n = r.len()?;
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(decode_value(r)?);
            }
            Value::Array(items)
        }
        _ => return Err(corrupt()),
    })
}

// ---- keys ----------------------------------------------------------------

/// Appends one value in order-preserving form (NULLs last, as ASC).
pub fn encode_key_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => keycode::put_null(out, false),
        Value::Bool(b) => keycode::put_bool(out, *b),
        Value::Int(i) => keycode::put_i64(out, *i),
        Value::Float(f) => keycode::put_f64(out, *f),
        Value::Numeric(d) => put_decimal(out, d),
        Value::Text(s) => keycode::put_bytes(out, s.as_bytes()),
        Value::Bytea(b) => keycode::put_bytes(out, b),
        Value::Date(d) => keycode::put_i64(out, micros_of_date(d)),
        Value::Timestamp(t) => keycode::put_i64(out, micros_of(t)),
        Value::TimestampTz(t) => keycode::put_i64(out, t.timestamp_micros()),
        Value::Uuid(u) => out.extend_from_slice(&u.to_be_bytes()),
        Value::Json(j) => keycode::put_bytes(out, j.as_bytes()),
        Value::Interval(i) => {
            // Order by the comparable span, then the exact fields so equal
            // spans of different spelling stay distinct keys.
            let key = i.sort_key();
            keycode::put_i64(out, (key >> 64) as i64);
            keycode::put_u64(out, key as u64);
            keycode::put_i64(out, i.months as i64);
            keycode::put_i64(out, i.days as i64);
        }
        Value::Array(items) => {
            for item in items {
                encode_key_value(out, item);
            }
        }
    }
}

/// Order-preserving exact decimal: a sign marker, then for positive numbers
/// the decimal exponent (biased) and the significant digits with a
/// terminator; negative numbers are the bitwise inverse.
fn put_decimal(out: &mut Vec<u8>, d: &Decimal) {
    const NUMERIC_TAG: u8 = 0x07;
    out.push(NUMERIC_TAG);
    let n = d.normalize();
    if n.is_zero() {
        out.push(0x80);
        return;
    }
    let digits = n.mantissa().unsigned_abs().to_string();
    let exponent = digits.len() as i64 - n.scale() as i64;
    let mut body = Vec::with_capacity(digits.len() + 5);
    body.extend_from_slice(&((exponent + (1 << 31)) as u32).to_be_bytes());
    body.extend_from_slice(digits.trim_end_matches('0').as_bytes());
    body.push(0);
    if n.is_sign_negative() {
        out.push(0x7F);
        out.extend(body.iter().map(|b| !b));
    } else {
        out.push(0x81);
        out.extend(body);
    }
}

fn micros_of(t: &NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

fn micros_of_date(d: &NaiveDate) -> i64 {
    micros_of(&d.and_time(chrono::NaiveTime::MIN))
}

/// The encoded key columns of a row for an index, without any prefix.
pub fn index_values_key(index: &IndexDef, row: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in &index.columns {
        encode_key_value(&mut out, &row[c]);
    }
    out
}

/// The key suffix identifying a row: its primary-key columns.
pub fn primary_key_suffix(table: &TableDef, row: &[Value]) -> Vec<u8> {
    index_values_key(&table.primary, row)
}

/// The full row key of a row.
pub fn row_key(table: &TableDef, row: &[Value]) -> Vec<u8> {
    let mut k = table_rows_prefix(table.oid);
    k.extend(primary_key_suffix(table, row));
    k
}

/// A secondary index entry key: prefix, indexed values, primary key.
pub fn index_entry_key(index: &IndexDef, row: &[Value], pk_suffix: &[u8]) -> Vec<u8> {
    let mut k = index_prefix(index.oid);
    k.extend(index_values_key(index, row));
    k.extend_from_slice(pk_suffix);
    k
}

/// The prefix of a unique index's entries for given indexed values, for
/// uniqueness checks.
pub fn index_values_prefix(index: &IndexDef, row: &[Value]) -> Vec<u8> {
    let mut k = index_prefix(index.oid);
    k.extend(index_values_key(index, row));
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let row = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-42),
            Value::Float(1.5),
            Value::Numeric("123.450".parse().unwrap()),
            Value::Text("héllo".into()),
            Value::Bytea(vec![0, 1, 255]),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(1999, 12, 31)
                    .unwrap()
                    .and_hms_micro_opt(23, 59, 59, 123456)
                    .unwrap(),
            ),
            Value::TimestampTz(DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap()),
            Value::Array(vec![Value::Int(1), Value::Null]),
        ];
        let back = decode_row(&encode_row(&row)).unwrap();
        assert_eq!(back, row);
        assert_eq!(
            back[4]
                .to_text(&crate::types::DataType::Numeric(None), &Default::default())
                .unwrap(),
            "123.450"
        );
    }

    #[test]
    fn truncated_rows_are_errors_not_panics() {
        let bytes = encode_row(&[Value::Text("abc".into())]);
        for n in 0..bytes.len() {
            assert!(decode_row(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn numeric_keys_order_exactly() {
        let enc = |v: &str| {
            let mut o = Vec::new();
            encode_key_value(&mut o, &Value::Numeric(v.parse().unwrap()));
            o
        };
        let vals = [
            "-1000",
            "-12.5",
            "-12.25",
            "-0.001",
            "0",
            "0.001",
            "0.0011",
            "1",
            "1.5",
            "12",
            "12.3",
            "100",
            "1000.0001",
        ];
        for w in vals.windows(2) {
            assert!(enc(w[0]) < enc(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(enc("1.50"), enc("1.5"));
        assert_ne!(enc("0.30000000000000000001"), enc("0.3"));
    }
}
