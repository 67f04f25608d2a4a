//! Runtime values: comparison, casts from text, and the text and binary
//! wire formats of PostgreSQL.

use std::cmp::Ordering;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;

/// A single SQL value. Integers of every width are held as i64 and floats of
/// both widths as f64; the column or expression type says which width the
/// wire protocol uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Numeric(Decimal),
    Text(String),
    Bytea(Vec<u8>),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Uuid(u128),
    /// json or jsonb text (jsonb normalized; see `value::json`).
    Json(String),
    Interval(Interval),
    Array(Vec<Value>),
}

pub use interval::Interval;

/// PostgreSQL's epoch for dates and timestamps on the wire: 2000-01-01.
fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
}

fn pg_epoch() -> NaiveDateTime {
    pg_epoch_date().and_hms_opt(0, 0, 0).expect("valid time")
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Three-valued truth: NULL is neither true nor false.
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// Total order used by ORDER BY, indexes and comparisons. NULL sorts
    /// last (PostgreSQL's default for ascending order). Numbers of different
    /// representations compare by value.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => cmp_f64(*a, *b),
            (Numeric(a), Numeric(b)) => a.cmp(b),
            (Int(a), Float(b)) => cmp_f64(*a as f64, *b),
            (Float(a), Int(b)) => cmp_f64(*a, *b as f64),
            (Int(a), Numeric(b)) => Decimal::from(*a).cmp(b),
            (Numeric(a), Int(b)) => a.cmp(&Decimal::from(*b)),
            (Float(a), Numeric(b)) => cmp_f64(*a, decimal_to_f64(b)),
            (Numeric(a), Float(b)) => cmp_f64(decimal_to_f64(a), *b),
            (Text(a), Text(b)) => a.cmp(b),
            (Bytea(a), Bytea(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Date(a), Timestamp(b)) => date_start(a).cmp(b),
            (Timestamp(a), Date(b)) => a.cmp(&date_start(b)),
            (Timestamp(a), TimestampTz(b)) => a.and_utc().cmp(b),
            (TimestampTz(a), Timestamp(b)) => a.cmp(&b.and_utc()),
            (Date(a), TimestampTz(b)) => date_start(a).and_utc().cmp(b),
            (TimestampTz(a), Date(b)) => a.cmp(&date_start(b).and_utc()),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Json(a), Json(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => a.sort_key().cmp(&b.sort_key()),
            (Array(a), Array(b)) => {
                for (x, y) in a.iter().zip(b.iter()) {
                    let o = x.total_cmp(y);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    /// Orders values of unrelated kinds deterministically.
    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::Int(_) | Value::Float(_) | Value::Numeric(_) => 1,
            Value::Text(_) => 2,
            Value::Bytea(_) => 3,
            Value::Date(_) | Value::Timestamp(_) | Value::TimestampTz(_) => 4,
            Value::Array(_) => 5,
            Value::Uuid(_) => 7,
            Value::Json(_) => 8,
            Value::Interval(_) => 9,
            Value::Null => 6,
        }
    }

    /// SQL equality (NULL handled by the caller).
    pub fn sql_eq(&self, other: &Value) -> bool {
        self.total_cmp(other) == Ordering::Equal
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A hashable, equality-preserving key for GROUP BY, DISTINCT and hash joins.
    pub fn group_key(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Bool(b) => {
                out.push(1);
                out.push(*b as u8)
            }
            // Numbers that compare equal must produce the same key.
            Value::Int(i) => {
                out.push(2);
                out.extend_from_slice(Decimal::from(*i).normalize().to_string().as_bytes());
                out.push(0)
            }
            Value::Numeric(d) => {
                out.push(2);
                out.extend_from_slice(d.normalize().to_string().as_bytes());
                out.push(0)
            }
            Value::Float(f) => {
                match Decimal::from_f64_retain(*f) {
                    Some(d) if f.fract() == 0.0 || d.scale() < 20 => {
                        out.push(2);
                        out.extend_from_slice(d.normalize().to_string().as_bytes());
                    }
                    _ => {
                        out.push(3);
                        out.extend_from_slice(&f.to_bits().to_be_bytes());
                    }
                }
                out.push(0)
            }
            Value::Text(s) => {
                out.push(4);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes())
            }
            Value::Bytea(b) => {
                out.push(5);
                out.extend_from_slice(&(b.len() as u32).to_be_bytes());
                out.extend_from_slice(b)
            }
            Value::Date(d) => {
                out.push(6);
                out.extend_from_slice(&date_start(d).and_utc().timestamp_micros().to_be_bytes())
            }
            Value::Timestamp(t) => {
                out.push(6);
                out.extend_from_slice(&t.and_utc().timestamp_micros().to_be_bytes())
            }
            Value::TimestampTz(t) => {
                out.push(6);
                out.extend_from_slice(&t.timestamp_micros().to_be_bytes())
            }
            Value::Array(items) => {
                out.push(7);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for item in items {
                    item.group_key(out);
                }
            }
            Value::Uuid(u) => {
                out.push(8);
                out.extend_from_slice(&u.to_be_bytes())
            }
            Value::Json(j) => {
                out.push(9);
                out.extend_from_slice(&(j.len() as u32).to_be_bytes());
                out.extend_from_slice(j.as_bytes())
            }
            // Intervals that compare equal ('1 day' = '24 hours') group together.
            Value::Interval(i) => {
                out.push(10);
                out.extend_from_slice(&i.sort_key().to_be_bytes())
            }
        }
    }

    // ---- text format -------------------------------------------------------

    /// PostgreSQL's text output for this value as type `ty`; None for NULL.
    pub fn to_text(&self, ty: &DataType, tz: &TimeZone) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f, matches!(ty, DataType::Float4)),
            Value::Numeric(d) => format_numeric(d, ty),
            Value::Text(s) => match ty {
                DataType::Char(n) => pad_char(s, *n),
                _ => s.clone(),
            },
            Value::Bytea(b) => {
                let mut s = String::with_capacity(2 + b.len() * 2);
                s.push_str("\\x");
                for byte in b {
                    let _ = write!(s, "{byte:02x}");
                }
                s
            }
            Value::Date(d) => format_date(d),
            Value::Timestamp(t) => format_timestamp(t),
            Value::TimestampTz(t) => tz.format(t),
            Value::Uuid(u) => format_uuid(*u),
            Value::Json(j) => j.clone(),
            Value::Interval(i) => i.format(),
            Value::Array(fields) if matches!(ty, DataType::Record(_)) => {
                let DataType::Record(types) = ty else {
                    return None;
                };
                let parts: Vec<String> = fields
                    .iter()
                    .zip(types)
                    .map(|(v, (_, t))| v.to_text(t, tz).unwrap_or_default())
                    .collect();
                format!("({})", parts.join(","))
            }
            Value::Array(items) => {
                let elem_ty = match ty {
                    DataType::Array(e) => (**e).clone(),
                    _ => DataType::Text,
                };
                let mut s = String::from("{");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    match item.to_text(&elem_ty, tz) {
                        None => s.push_str("NULL"),
                        Some(t) => s.push_str(&quote_array_element(&t)),
                    }
                }
                s.push('}');
                s
            }
        })
    }

    /// Parses PostgreSQL text input for type `ty` (casts from text literals
    /// and text-format parameters).
    pub fn from_text(ty: &DataType, s: &str, tz: &TimeZone) -> SqlResult<Value> {
        let name = ty.type_name();
        Ok(match ty {
            DataType::Bool => {
                Value::Bool(parse_bool(s).ok_or_else(|| SqlError::invalid_text("boolean", s))?)
            }
            DataType::Int2 => {
                Value::Int(parse_int(s, i16::MIN as i64, i16::MAX as i64, "smallint")?)
            }
            DataType::Int4 => {
                Value::Int(parse_int(s, i32::MIN as i64, i32::MAX as i64, "integer")?)
            }
            DataType::Int8 => Value::Int(parse_int(s, i64::MIN, i64::MAX, "bigint")?),
            DataType::Oid => Value::Int(parse_int(s, 0, u32::MAX as i64, "oid")?),
            DataType::Float4 | DataType::Float8 => {
                let f = parse_float(s).ok_or_else(|| SqlError::invalid_text(&name, s))?;
                if matches!(ty, DataType::Float4) && f.is_finite() && (f as f32).is_infinite() {
                    return Err(SqlError::new(
                        SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                        format!("\"{s}\" is out of range for type real"),
                    ));
                }
                Value::Float(f)
            }
            DataType::Numeric(_) => {
                let t = s.trim();
                let d = t
                    .parse::<Decimal>()
                    .or_else(|_| Decimal::from_scientific(t))
                    .map_err(|_| SqlError::invalid_text("numeric", s))?;
                Value::Numeric(d)
            }
            DataType::Text
            | DataType::Varchar(_)
            | DataType::Char(_)
            | DataType::Name
            | DataType::Unknown => Value::Text(s.to_string()),
            DataType::InternalChar => Value::Text(s.chars().take(1).collect()),
            DataType::Bytea => Value::Bytea(parse_bytea(s)?),
            DataType::Date => Value::Date(parse_date(s)?),
            DataType::Timestamp => Value::Timestamp(parse_timestamp(s, "timestamp")?.0),
            DataType::TimestampTz => {
                let (local, offset) = parse_timestamp(s, "timestamp with time zone")?;
                let utc = match offset {
                    Some(secs) => local - chrono::Duration::seconds(secs as i64),
                    None => tz.to_utc(&local),
                };
                Value::TimestampTz(utc.and_utc())
            }
            DataType::Uuid => Value::Uuid(parse_uuid(s)?),
            DataType::Json => Value::Json(json::json_in(s)?),
            DataType::Jsonb => Value::Json(json::jsonb_in(s)?),
            DataType::Interval => Value::Interval(Interval::parse(s)?),
            DataType::Record(_) => {
                return Err(SqlError::unsupported(
                    "input of anonymous record types is not supported",
                ))
            }
            DataType::Array(elem) => parse_array(s, elem, tz)?,
        })
    }

    // ---- binary format -----------------------------------------------------

    /// PostgreSQL's binary send format; None for NULL.
    pub fn to_binary(&self, ty: &DataType) -> SqlResult<Option<Vec<u8>>> {
        Ok(Some(match (self, ty) {
            (Value::Null, _) => return Ok(None),
            (Value::Bool(b), _) => vec![*b as u8],
            (Value::Int(i), DataType::Int2) => (*i as i16).to_be_bytes().to_vec(),
            (Value::Int(i), DataType::Int4) => (*i as i32).to_be_bytes().to_vec(),
            (Value::Int(i), DataType::Oid) => (*i as u32).to_be_bytes().to_vec(),
            (Value::Int(i), DataType::Numeric(_)) => numeric_to_binary(&Decimal::from(*i)),
            (Value::Int(i), DataType::Float8) => (*i as f64).to_be_bytes().to_vec(),
            (Value::Int(i), _) => i.to_be_bytes().to_vec(),
            (Value::Float(f), DataType::Float4) => (*f as f32).to_be_bytes().to_vec(),
            (Value::Float(f), _) => f.to_be_bytes().to_vec(),
            (Value::Numeric(d), DataType::Float8) => decimal_to_f64(d).to_be_bytes().to_vec(),
            (Value::Numeric(d), ty) => numeric_to_binary(&rescale_for(d, ty)),
            (Value::Text(s), DataType::Char(n)) => pad_char(s, *n).into_bytes(),
            (Value::Text(s), DataType::InternalChar) => s.bytes().take(1).collect(),
            (Value::Text(s), _) => s.as_bytes().to_vec(),
            (Value::Bytea(b), _) => b.clone(),
            (Value::Uuid(u), _) => u.to_be_bytes().to_vec(),
            (Value::Json(j), DataType::Jsonb) => {
                let mut out = Vec::with_capacity(j.len() + 1);
                out.push(1); // jsonb binary format version
                out.extend_from_slice(j.as_bytes());
                out
            }
            (Value::Json(j), _) => j.as_bytes().to_vec(),
            (Value::Interval(i), _) => {
                let mut out = Vec::with_capacity(16);
                out.extend_from_slice(&i.micros.to_be_bytes());
                out.extend_from_slice(&i.days.to_be_bytes());
                out.extend_from_slice(&i.months.to_be_bytes());
                out
            }
            (Value::Date(d), _) => ((*d - pg_epoch_date()).num_days() as i32)
                .to_be_bytes()
                .to_vec(),
            (Value::Timestamp(t), _) => micros_since_pg_epoch(t).to_be_bytes().to_vec(),
            (Value::TimestampTz(t), _) => {
                micros_since_pg_epoch(&t.naive_utc()).to_be_bytes().to_vec()
            }
            (Value::Array(items), ty) => {
                let elem_ty = match ty {
                    DataType::Array(e) => (**e).clone(),
                    _ => DataType::Text,
                };
                let mut out = Vec::new();
                let has_null = items.iter().any(Value::is_null);
                out.extend_from_slice(&(if items.is_empty() { 0i32 } else { 1 }).to_be_bytes());
                out.extend_from_slice(&(has_null as i32).to_be_bytes());
                out.extend_from_slice(&elem_ty.oid().to_be_bytes());
                if !items.is_empty() {
                    out.extend_from_slice(&(items.len() as i32).to_be_bytes());
                    out.extend_from_slice(&1i32.to_be_bytes());
                }
                for item in items {
                    match item.to_binary(&elem_ty)? {
                        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                        Some(b) => {
                            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                            out.extend_from_slice(&b);
                        }
                    }
                }
                out
            }
        }))
    }

    /// Decodes a binary-format parameter of type `ty`.
    pub fn from_binary(ty: &DataType, b: &[u8]) -> SqlResult<Value> {
        let bad = || {
            SqlError::new(
                SqlState::INVALID_BINARY_REPRESENTATION,
                format!(
                    "incorrect binary data format in bind parameter of type {}",
                    ty.type_name()
                ),
            )
        };
        let fixed = |n: usize| -> SqlResult<&[u8]> {
            if b.len() == n {
                Ok(b)
            } else {
                Err(bad())
            }
        };
        Ok(match ty {
            DataType::Bool => Value::Bool(fixed(1)?[0] != 0),
            DataType::Int2 => {
                Value::Int(i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| bad())?) as i64)
            }
            DataType::Int4 => {
                Value::Int(i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?) as i64)
            }
            DataType::Oid => {
                Value::Int(u32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?) as i64)
            }
            DataType::Int8 => {
                Value::Int(i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?))
            }
            DataType::Float4 => {
                Value::Float(f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?) as f64)
            }
            DataType::Float8 => {
                Value::Float(f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?))
            }
            DataType::Numeric(_) => Value::Numeric(numeric_from_binary(b).ok_or_else(bad)?),
            DataType::Bytea => Value::Bytea(b.to_vec()),
            DataType::Date => {
                let days = i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| bad())?);
                Value::Date(
                    pg_epoch_date()
                        .checked_add_signed(chrono::Duration::days(days as i64))
                        .ok_or_else(bad)?,
                )
            }
            DataType::Timestamp | DataType::TimestampTz => {
                let micros = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad())?);
                let t = pg_epoch()
                    .checked_add_signed(chrono::Duration::microseconds(micros))
                    .ok_or_else(bad)?;
                if matches!(ty, DataType::Timestamp) {
                    Value::Timestamp(t)
                } else {
                    Value::TimestampTz(t.and_utc())
                }
            }
            DataType::Uuid => Value::Uuid(u128::from_be_bytes(
                fixed(16)?.try_into().map_err(|_| bad())?,
            )),
            DataType::Json => {
                Value::Json(json::json_in(std::str::from_utf8(b).map_err(|_| bad())?)?)
            }
            DataType::Jsonb => match b.split_first() {
                Some((1, text)) => Value::Json(json::jsonb_in(
                    std::str::from_utf8(text).map_err(|_| bad())?,
                )?),
                _ => return Err(bad()),
            },
            DataType::Interval => {
                let b = fixed(16)?;
                let four = |at: usize| -> SqlResult<[u8; 4]> {
                    b[at..at + 4].try_into().map_err(|_| bad())
                };
                Value::Interval(Interval {
                    micros: i64::from_be_bytes(b[0..8].try_into().map_err(|_| bad())?),
                    days: i32::from_be_bytes(four(8)?),
                    months: i32::from_be_bytes(four(12)?),
                })
            }
            DataType::Array(_) => {
                return Err(SqlError::unsupported(
                    "binary array parameters are not supported",
                ))
            }
            _ => Value::Text(String::from_utf8(b.to_vec()).map_err(|_| bad())?),
        })
    }
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    // PostgreSQL: NaN equals NaN and sorts above every other value.
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

pub fn decimal_to_f64(d: &Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}

fn date_start(d: &NaiveDate) -> NaiveDateTime {
    d.and_time(NaiveTime::MIN)
}

fn micros_since_pg_epoch(t: &NaiveDateTime) -> i64 {
    (*t - pg_epoch()).num_microseconds().unwrap_or(i64::MAX)
}

mod interval;
pub(crate) mod json;
mod numeric;
pub(crate) mod text;
mod timezone;

/// "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
fn format_uuid(u: u128) -> String {
    let h = format!("{u:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// uuid input: 32 hex digits, hyphens anywhere between groups of four,
/// optionally in braces, as PostgreSQL accepts.
fn parse_uuid(s: &str) -> SqlResult<u128> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|&c| c != '-').collect();
    let well_formed = hex.len() == 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && !t.starts_with('-')
        && !t.ends_with('-')
        && !t.contains("--");
    if !well_formed {
        return Err(SqlError::invalid_text("uuid", s));
    }
    u128::from_str_radix(&hex, 16).map_err(|_| SqlError::invalid_text("uuid", s))
}

use numeric::{numeric_from_binary, numeric_to_binary};
pub use text::{format_date, format_float, format_timestamp, parse_bool, parse_date};
use text::{
    format_numeric, pad_char, parse_array, parse_bytea, parse_float, parse_int, parse_timestamp,
    quote_array_element, rescale_for,
};
pub use timezone::TimeZone;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float(1.5, false), "1.5");
        assert_eq!(format_float(0.1, false), "0.1");
        assert_eq!(format_float(1e20, false), "1e+20");
        assert_eq!(format_float(1.25e-5, false), "1.25e-05");
        assert_eq!(format_float(123456789012345.0, false), "123456789012345");
        assert_eq!(format_float(1e15, false), "1e+15");
        assert_eq!(format_float(f64::NAN, false), "NaN");
        assert_eq!(format_float(3.4, true), "3.4");
    }

    #[test]
    fn parses_timestamps_with_zones() {
        let tz = TimeZone::default();
        let v = Value::from_text(&DataType::TimestampTz, "2024-01-02 03:04:05.5+02", &tz).unwrap();
        assert_eq!(
            v.to_text(&DataType::TimestampTz, &tz).unwrap(),
            "2024-01-02 01:04:05.5+00"
        );
        let v = Value::from_text(&DataType::Timestamp, "2024-01-02T03:04:05", &tz).unwrap();
        assert_eq!(
            v.to_text(&DataType::Timestamp, &tz).unwrap(),
            "2024-01-02 03:04:05"
        );
    }

    /// Arbitrary bytes as binary parameters and arbitrary text as input of
    /// every type give errors, never panics.
    #[test]
    fn garbage_input_is_an_error_not_a_panic() {
        let types = [
            DataType::Bool,
            DataType::Int2,
            DataType::Int4,
            DataType::Int8,
            DataType::Float4,
            DataType::Float8,
            DataType::Numeric(None),
            DataType::Numeric(Some((5, 2))),
            DataType::Text,
            DataType::Varchar(Some(3)),
            DataType::Char(2),
            DataType::Bytea,
            DataType::Date,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Array(Box::new(DataType::Int4)),
        ];
        let tz = TimeZone::default();
        let mut seed: u64 = 0x9E3779B97F4A7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let texts = [
            "",
            " ",
            "-",
            "1e999999",
            "99999999999999999999999",
            "NaN",
            "2024-13-45",
            "{1,",
            "\\x4",
            "t",
            "'",
            "+-1",
            "0001-01-01 BC",
            "24:61:61",
        ];
        for ty in &types {
            for len in 0..20 {
                for _ in 0..50 {
                    let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    let _ = Value::from_binary(ty, &bytes);
                    let text: String = bytes.iter().map(|b| (b % 95 + 32) as char).collect();
                    let _ = Value::from_text(ty, &text, &tz);
                }
            }
            for t in texts {
                let _ = Value::from_text(ty, t, &tz);
            }
            // Extremes of the binary formats.
            for b in [
                vec![0x7f, 0xff, 0xff, 0xff],
                vec![0x80, 0, 0, 0],
                vec![0x7f; 8],
                vec![0x80, 0, 0, 0, 0, 0, 0, 0],
            ] {
                let _ = Value::from_binary(ty, &b);
            }
        }
    }

    #[test]
    fn bools_parse_like_postgres() {
        for t in ["t", "TRUE", "yes", "on", "1", "y"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["f", "false", "NO", "off", "0", "n"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("o"), None);
        assert_eq!(parse_bool("maybe"), None);
    }
}
