//! Runtime values: comparison, casts from text, and the text and binary
//! wire formats of PostgreSQL.

use std::cmp::Ordering;
use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
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
    Array(Vec<Value>),
}

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

// ---- formatting ---------------------------------------------------------

/// Shortest round-trip float output, laid out as PostgreSQL 12+ does
/// (extra_float_digits = 1): plain notation for decimal exponents in
/// [-4, 15) (float8) or [-4, 6) (float4), scientific otherwise.
pub fn format_float(f: f64, is_float4: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = if is_float4 {
        format!("{:e}", f as f32)
    } else {
        format!("{f:e}")
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let max_exp = if is_float4 { 6 } else { 15 };
    if exp < -4 || exp >= max_exp {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else if is_float4 {
        format!("{}", f as f32)
    } else {
        format!("{f}")
    }
}

fn rescale_for(d: &Decimal, ty: &DataType) -> Decimal {
    match ty {
        DataType::Numeric(Some((_, s))) => {
            let mut d = *d;
            d.rescale(*s);
            d
        }
        _ => *d,
    }
}

fn format_numeric(d: &Decimal, ty: &DataType) -> String {
    rescale_for(d, ty).to_string()
}

fn pad_char(s: &str, n: u32) -> String {
    let len = s.chars().count();
    if len >= n as usize {
        s.to_string()
    } else {
        let mut out = s.to_string();
        out.extend(std::iter::repeat_n(' ', n as usize - len));
        out
    }
}

pub fn format_date(d: &NaiveDate) -> String {
    if d.year() <= 0 {
        format!("{:04}-{:02}-{:02} BC", 1 - d.year(), d.month(), d.day())
    } else {
        format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

fn format_time_part(t: &NaiveDateTime) -> String {
    let mut s = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    let micros = t.nanosecond() / 1000;
    if micros > 0 {
        let frac = format!("{micros:06}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

pub fn format_timestamp(t: &NaiveDateTime) -> String {
    format!("{} {}", format_date(&t.date()), format_time_part(t))
}

fn quote_array_element(s: &str) -> String {
    let needs_quotes = s.is_empty()
        || s.eq_ignore_ascii_case("null")
        || s.chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
    if !needs_quotes {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

// ---- parsing ------------------------------------------------------------

pub fn parse_bool(s: &str) -> Option<bool> {
    let t = s.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    let matches = |word: &str| word.starts_with(t.as_str());
    if t == "1"
        || (t.len() >= 2 && t.starts_with("on") && matches("on"))
        || matches("true")
        || matches("yes")
    {
        Some(true)
    } else if t == "0" || (t.len() >= 2 && matches("off")) || matches("false") || matches("no") {
        Some(false)
    } else {
        None
    }
}

fn parse_int(s: &str, min: i64, max: i64, type_name: &str) -> SqlResult<i64> {
    let t = s.trim();
    let v: i128 = t
        .parse()
        .map_err(|_| SqlError::invalid_text(type_name, s))?;
    if v < min as i128 || v > max as i128 {
        return Err(SqlError::new(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("value \"{s}\" is out of range for type {type_name}"),
        ));
    }
    Ok(v as i64)
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

fn parse_bytea(s: &str) -> SqlResult<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if digits.len() % 2 != 0 {
            return Err(SqlError::invalid_text("bytea", s));
        }
        digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| SqlError::invalid_text("bytea", s))
            })
            .collect()
    } else {
        // Escape format: backslash followed by three octal digits or a backslash.
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                if bytes.get(i + 1) == Some(&b'\\') {
                    out.push(b'\\');
                    i += 2;
                } else if i + 3 < bytes.len() + 0
                    && bytes[i + 1..i + 4]
                        .iter()
                        .all(|b| (b'0'..=b'7').contains(b))
                {
                    let v = (bytes[i + 1] - b'0') as u32 * 64
                        + (bytes[i + 2] - b'0') as u32 * 8
                        + (bytes[i + 3] - b'0') as u32;
                    out.push(v as u8);
                    i += 4;
                } else {
                    return Err(SqlError::invalid_text("bytea", s));
                }
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        Ok(out)
    }
}

pub fn parse_date(s: &str) -> SqlResult<NaiveDate> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let today = || Utc::now().date_naive();
    match lower.as_str() {
        "today" | "now" => return Ok(today()),
        "tomorrow" => return Ok(today() + chrono::Duration::days(1)),
        "yesterday" => return Ok(today() - chrono::Duration::days(1)),
        "epoch" => return Ok(NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")),
        _ => {}
    }
    let date_part = t.split([' ', 'T']).next().unwrap_or(t);
    NaiveDate::parse_from_str(date_part, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(date_part, "%Y%m%d"))
        .map_err(|_| {
            if date_part.split('-').count() == 3
                && date_part.split('-').all(|p| p.parse::<u32>().is_ok())
            {
                SqlError::new(
                    SqlState::DATETIME_FIELD_OVERFLOW,
                    format!("date/time field value out of range: \"{s}\""),
                )
            } else {
                invalid_datetime("date", s)
            }
        })
}

/// Parses a timestamp; returns the local date-time and, if the input named
/// one, its UTC offset in seconds.
fn parse_timestamp(s: &str, type_name: &str) -> SqlResult<(NaiveDateTime, Option<i32>)> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "now" => return Ok((Utc::now().naive_utc(), Some(0))),
        "epoch" => {
            return Ok((
                NaiveDate::from_ymd_opt(1970, 1, 1)
                    .expect("valid")
                    .and_time(NaiveTime::MIN),
                Some(0),
            ))
        }
        "today" | "tomorrow" | "yesterday" => return Ok((date_start(&parse_date(t)?), None)),
        _ => {}
    }
    let err = || invalid_datetime(type_name, s);
    let (date_str, rest) = match t.find([' ', 'T']) {
        Some(i) => (&t[..i], t[i + 1..].trim()),
        None => (t, ""),
    };
    let date = parse_date(date_str).map_err(|e| {
        if e.state == SqlState::INVALID_DATETIME_FORMAT {
            err()
        } else {
            e
        }
    })?;
    if rest.is_empty() {
        return Ok((date_start(&date), None));
    }
    // Split off a zone: Z, UTC, GMT, or +hh[:mm] / -hh[:mm].
    let (time_str, offset) = split_zone(rest).ok_or_else(err)?;
    let time = NaiveTime::parse_from_str(time_str, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(time_str, "%H:%M"))
        .map_err(|_| err())?;
    Ok((date.and_time(time), offset))
}

/// Malformed date/time input is 22007, not 22P02, in PostgreSQL.
fn invalid_datetime(type_name: &str, input: &str) -> SqlError {
    SqlError::new(
        SqlState::INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type {type_name}: \"{input}\""),
    )
}

fn split_zone(rest: &str) -> Option<(&str, Option<i32>)> {
    let rest = rest.trim();
    for suffix in ["z", "utc", "gmt"] {
        if rest.len() >= suffix.len()
            && rest[rest.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        {
            return Some((rest[..rest.len() - suffix.len()].trim(), Some(0)));
        }
    }
    if let Some(i) = rest.rfind(['+', '-']) {
        let (time, zone) = (rest[..i].trim(), &rest[i..]);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits = &zone[1..];
        let (h, m) = match digits.split_once(':') {
            Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
            None if digits.len() == 4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
            None => (digits.parse().ok()?, 0),
        };
        return Some((time, Some(sign * (h * 3600 + m * 60))));
    }
    Some((rest, None))
}

fn parse_array(s: &str, elem: &DataType, tz: &TimeZone) -> SqlResult<Value> {
    let t = s.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .ok_or_else(|| {
            SqlError::new(
                SqlState::INVALID_TEXT_REPRESENTATION,
                format!("malformed array literal: \"{s}\""),
            )
        })?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Ok(Value::Array(items));
    }
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = inner.chars();
    let push = |cur: &mut String, was_quoted: bool, items: &mut Vec<Value>| -> SqlResult<()> {
        let text = if was_quoted {
            cur.clone()
        } else {
            cur.trim().to_string()
        };
        if !was_quoted && text.eq_ignore_ascii_case("null") {
            items.push(Value::Null);
        } else {
            items.push(Value::from_text(elem, &text, tz)?);
        }
        cur.clear();
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if !quoted => {
                push(&mut cur, was_quoted, &mut items)?;
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    push(&mut cur, was_quoted, &mut items)?;
    Ok(Value::Array(items))
}

// ---- numeric binary format ----------------------------------------------

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;

/// PostgreSQL's numeric send format: base-10000 digits with a weight.
fn numeric_to_binary(d: &Decimal) -> Vec<u8> {
    let scale = d.scale();
    let mantissa = d.mantissa().unsigned_abs();
    let digits_str = mantissa.to_string();
    // Split into integer and fractional decimal digit strings.
    let (int_part, frac_part) = if (scale as usize) >= digits_str.len() {
        (
            String::new(),
            format!(
                "{}{}",
                "0".repeat(scale as usize - digits_str.len()),
                digits_str
            ),
        )
    } else {
        let split = digits_str.len() - scale as usize;
        (
            digits_str[..split].to_string(),
            digits_str[split..].to_string(),
        )
    };
    let int_part = int_part.trim_start_matches('0').to_string();
    // Group into base-10000 digits aligned at the decimal point.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let int_padded = format!("{}{}", "0".repeat(int_pad), int_part);
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_padded = format!("{}{}", frac_part, "0".repeat(frac_pad));
    let mut groups: Vec<i16> = Vec::new();
    for chunk in int_padded.as_bytes().chunks(4) {
        groups.push(
            std::str::from_utf8(chunk)
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
        );
    }
    let int_groups = groups.len() as i16;
    for chunk in frac_padded.as_bytes().chunks(4) {
        groups.push(
            std::str::from_utf8(chunk)
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
        );
    }
    let mut weight = int_groups - 1;
    // Strip leading zero groups (adjusting weight) and trailing zero groups.
    let mut start = 0;
    while start < groups.len() && groups[start] == 0 {
        start += 1;
        weight -= 1;
    }
    let mut end = groups.len();
    while end > start && groups[end - 1] == 0 {
        end -= 1;
    }
    let digits = &groups[start..end];
    if digits.is_empty() {
        weight = 0;
    }
    let sign = if d.is_sign_negative() && !digits.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    let mut out = Vec::with_capacity(8 + digits.len() * 2);
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in digits {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

fn numeric_from_binary(b: &[u8]) -> Option<Decimal> {
    if b.len() < 8 {
        return None;
    }
    let ndigits = i16::from_be_bytes([b[0], b[1]]);
    let weight = i16::from_be_bytes([b[2], b[3]]) as i32;
    let sign = u16::from_be_bytes([b[4], b[5]]);
    let dscale = u16::from_be_bytes([b[6], b[7]]) as u32;
    let ndigits = usize::try_from(ndigits).ok()?;
    if b.len() != 8 + ndigits * 2 || !matches!(sign, NUMERIC_POS | NUMERIC_NEG) {
        return None;
    }
    let mut result = Decimal::ZERO;
    for i in 0..ndigits {
        let digit = i16::from_be_bytes([b[8 + 2 * i], b[9 + 2 * i]]);
        if !(0..10000).contains(&digit) {
            return None;
        }
        let power = weight - i as i32;
        let mut term = Decimal::from(digit);
        if power >= 0 {
            for _ in 0..power {
                term = term.checked_mul(Decimal::from(10000))?;
            }
        } else {
            term.set_scale((-power * 4) as u32).ok()?;
        }
        result = result.checked_add(term)?;
    }
    if sign == NUMERIC_NEG {
        result.set_sign_negative(true);
    }
    result.rescale(dscale.min(28));
    Some(result)
}

// ---- time zones ---------------------------------------------------------

/// The session's TimeZone setting. Fixed UTC offsets are supported; named
/// zones other than UTC are accepted only as UTC aliases for now.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeZone {
    pub name: String,
    /// Seconds east of UTC.
    pub offset_secs: i32,
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone {
            name: "UTC".into(),
            offset_secs: 0,
        }
    }
}

impl TimeZone {
    /// Parses a TimeZone setting value; None if the zone is unknown.
    pub fn parse(s: &str) -> Option<TimeZone> {
        let t = s.trim().trim_matches('\'');
        let lower = t.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "utc" | "etc/utc" | "gmt" | "etc/gmt" | "z" | "zulu" | "universal" | "etc/universal"
        ) {
            return Some(TimeZone {
                name: t.to_string(),
                offset_secs: 0,
            });
        }
        // POSIX-style numeric offsets: SET TIME ZONE '+02', '-05:30', or an interval number.
        let (sign, digits) = match t.chars().next()? {
            '+' => (1, &t[1..]),
            '-' => (-1, &t[1..]),
            c if c.is_ascii_digit() => (1, t),
            _ => return None,
        };
        let (h, m) = match digits.split_once(':') {
            Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
            None => (digits.parse::<i32>().ok()?, 0),
        };
        if h > 15 {
            return None;
        }
        Some(TimeZone {
            name: t.to_string(),
            offset_secs: sign * (h * 3600 + m * 60),
        })
    }

    pub fn to_utc(&self, local: &NaiveDateTime) -> NaiveDateTime {
        *local - chrono::Duration::seconds(self.offset_secs as i64)
    }

    pub fn format(&self, t: &DateTime<Utc>) -> String {
        let local = t.naive_utc() + chrono::Duration::seconds(self.offset_secs as i64);
        let off = self.offset_secs.abs();
        let sign = if self.offset_secs < 0 { '-' } else { '+' };
        let mut zone = format!("{sign}{:02}", off / 3600);
        if off % 3600 != 0 {
            let _ = write!(zone, ":{:02}", (off % 3600) / 60);
        }
        format!("{}{}", format_timestamp(&local), zone)
    }
}

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
    fn numeric_binary_round_trips() {
        for s in [
            "0",
            "1",
            "-1",
            "12345.678",
            "0.0001",
            "10000",
            "99999999.99",
            "-0.5",
            "1.50",
        ] {
            let d: Decimal = s.parse().unwrap();
            let back = numeric_from_binary(&numeric_to_binary(&d)).unwrap();
            assert_eq!(back, d, "{s}");
            assert_eq!(back.to_string(), d.to_string(), "{s}");
        }
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
