//! Operators on values: comparison with text coercion, arithmetic with
//! PostgreSQL's overflow and scale rules, LIKE.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::{BinOp, EvalEnv};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;
use crate::value::{decimal_to_f64, TimeZone, Value};

pub fn type_of_value(v: &Value) -> &'static str {
    match v {
        Value::Null => "unknown",
        Value::Bool(_) => "boolean",
        Value::Int(_) => "integer",
        Value::Float(_) => "double precision",
        Value::Numeric(_) => "numeric",
        Value::Text(_) => "text",
        Value::Bytea(_) => "bytea",
        Value::Date(_) => "date",
        Value::Timestamp(_) => "timestamp without time zone",
        Value::TimestampTz(_) => "timestamp with time zone",
        Value::Uuid(_) => "uuid",
        Value::Json(_) => "jsonb",
        Value::Interval(_) => "interval",
        Value::Array(_) => "array",
    }
}

/// Compares two non-null values, casting text to the other side's kind
/// (an untyped literal or parameter compared with a typed value).
pub fn compare(l: &Value, r: &Value, tz: &TimeZone) -> SqlResult<Ordering> {
    let coerce = |text: &str, other: &Value| -> SqlResult<Value> {
        let ty = match other {
            Value::Bool(_) => DataType::Bool,
            Value::Int(_) => DataType::Int8,
            Value::Float(_) => DataType::Float8,
            Value::Numeric(_) => DataType::Numeric(None),
            Value::Date(_) => DataType::Date,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::TimestampTz(_) => DataType::TimestampTz,
            Value::Bytea(_) => DataType::Bytea,
            Value::Uuid(_) => DataType::Uuid,
            Value::Interval(_) => DataType::Interval,
            Value::Json(_) => DataType::Jsonb,
            _ => DataType::Text,
        };
        Value::from_text(&ty, text, tz)
    };
    match (l, r) {
        (Value::Text(s), other) if !matches!(other, Value::Text(_)) => {
            Ok(coerce(s, other)?.total_cmp(other))
        }
        (other, Value::Text(s)) if !matches!(other, Value::Text(_)) => {
            Ok(other.total_cmp(&coerce(s, other)?))
        }
        _ => Ok(l.total_cmp(r)),
    }
}

/// The json operators (operands already checked non-null).
fn json_op(op: BinOp, l: &Value, r: &Value, ty: &DataType) -> SqlResult<Option<Value>> {
    use crate::value::json::{self, Step};
    let doc = || match l {
        Value::Json(j) | Value::Text(j) => Ok(j.as_str()),
        other => Err(SqlError::internal(format!("json operator on {other:?}"))),
    };
    let text_of = |v: &Value| match v {
        Value::Json(j) | Value::Text(j) => Ok(j.clone()),
        other => Err(SqlError::internal(format!("json operator on {other:?}"))),
    };
    let wrap = |found: Option<String>, as_text: bool| match found {
        None => Value::Null,
        Some(s) if as_text => Value::Text(s),
        Some(s) => Value::Json(s),
    };
    Ok(Some(match op {
        BinOp::JsonGet { as_text } => {
            let step = match r {
                Value::Int(i) => Step::Index(*i),
                Value::Text(k) => Step::Key(k),
                other => return Err(SqlError::internal(format!("json key {other:?}"))),
            };
            let jsonb = *ty == DataType::Jsonb || as_text;
            wrap(json::get(doc()?, &[step], as_text, jsonb)?, as_text)
        }
        BinOp::JsonPath { as_text } => {
            let Value::Array(items) = r else {
                return Err(SqlError::internal("json path is not an array"));
            };
            let keys: Vec<String> = items
                .iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_default())
                .collect();
            let path: Vec<Step> = keys
                .iter()
                .map(|k| match k.parse::<i64>() {
                    Ok(i) => Step::Index(i),
                    Err(_) => Step::Key(k),
                })
                .collect();
            // A path step that is a number also names an object key.
            let found = json::get(doc()?, &path, as_text, true)?.or(json::get(
                doc()?,
                &keys.iter().map(|k| Step::Key(k)).collect::<Vec<_>>(),
                as_text,
                true,
            )?);
            wrap(found, as_text)
        }
        BinOp::JsonContains => Value::Bool(json::contains(doc()?, &text_of(r)?)?),
        BinOp::JsonContainedIn => Value::Bool(json::contains(&text_of(r)?, doc()?)?),
        BinOp::JsonHasKey => Value::Bool(json::has_key(doc()?, &text_of(r)?)?),
        _ => return Ok(None),
    }))
}

/// Arithmetic with intervals: timestamp ± interval, interval ± interval,
/// interval × number, timestamp - timestamp.
fn interval_op(
    op: BinOp,
    l: &Value,
    r: &Value,
    ty: &DataType,
    tz: &TimeZone,
) -> SqlResult<Option<Value>> {
    use crate::value::Interval;
    let as_timestamp = |v: &Value| -> Option<chrono::NaiveDateTime> {
        match v {
            Value::Date(d) => Some(d.and_time(chrono::NaiveTime::MIN)),
            Value::Timestamp(t) => Some(*t),
            _ => None,
        }
    };
    // timestamptz arithmetic happens in the session's time zone, so that
    // adding a day across a DST change keeps the wall-clock time.
    let local = |t: &chrono::DateTime<chrono::Utc>| {
        t.naive_utc() + chrono::Duration::seconds(tz.offset_secs as i64)
    };
    let to_utc = |t: chrono::NaiveDateTime| tz.to_utc(&t).and_utc();
    let factor = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Numeric(d) => Some(decimal_to_f64(d)),
        _ => None,
    };
    Ok(Some(match (l, r, op) {
        (Value::Interval(a), Value::Interval(b), BinOp::Add) => Value::Interval(a.add(b)?),
        (Value::Interval(a), Value::Interval(b), BinOp::Sub) => {
            Value::Interval(a.add(&b.negate()?)?)
        }
        (Value::TimestampTz(t), Value::Interval(i), BinOp::Add)
        | (Value::Interval(i), Value::TimestampTz(t), BinOp::Add) => {
            Value::TimestampTz(to_utc(i.add_to(&local(t))?))
        }
        (Value::TimestampTz(t), Value::Interval(i), BinOp::Sub) => {
            Value::TimestampTz(to_utc(i.negate()?.add_to(&local(t))?))
        }
        (Value::TimestampTz(a), Value::TimestampTz(b), BinOp::Sub) => {
            Value::Interval(Interval::between(&a.naive_utc(), &b.naive_utc()))
        }
        (Value::Interval(i), t, BinOp::Add) | (t, Value::Interval(i), BinOp::Add)
            if as_timestamp(t).is_some() =>
        {
            Value::Timestamp(i.add_to(&as_timestamp(t).unwrap_or_default())?)
        }
        (t, Value::Interval(i), BinOp::Sub) if as_timestamp(t).is_some() => {
            Value::Timestamp(i.negate()?.add_to(&as_timestamp(t).unwrap_or_default())?)
        }
        (Value::Timestamp(a), Value::Timestamp(b), BinOp::Sub) if *ty == DataType::Interval => {
            Value::Interval(Interval::between(a, b))
        }
        (Value::Interval(i), n, BinOp::Mul) | (n, Value::Interval(i), BinOp::Mul)
            if factor(n).is_some() =>
        {
            Value::Interval(i.scale(factor(n).unwrap_or(1.0))?)
        }
        (Value::Interval(i), n, BinOp::Div) if factor(n).is_some() => {
            let f = factor(n).unwrap_or(1.0);
            if f == 0.0 {
                return Err(SqlError::division_by_zero());
            }
            Value::Interval(i.scale(1.0 / f)?)
        }
        _ => return Ok(None),
    }))
}

fn int_range(ty: &DataType) -> (i64, i64, &'static str) {
    match ty {
        DataType::Int2 => (i16::MIN as i64, i16::MAX as i64, "smallint"),
        DataType::Int4 => (i32::MIN as i64, i32::MAX as i64, "integer"),
        _ => (i64::MIN, i64::MAX, "bigint"),
    }
}

fn checked_int(v: Option<i64>, ty: &DataType) -> SqlResult<Value> {
    let (min, max, name) = int_range(ty);
    match v {
        Some(i) if i >= min && i <= max => Ok(Value::Int(i)),
        _ => Err(SqlError::out_of_range(name)),
    }
}

fn to_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Numeric(d) => Some(*d),
        Value::Float(f) => Decimal::from_f64_retain(*f),
        _ => None,
    }
}

fn to_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Numeric(d) => Some(decimal_to_f64(d)),
        _ => None,
    }
}

pub(super) fn binary_op(
    op: BinOp,
    l: Value,
    r: Value,
    ty: &DataType,
    lt: &DataType,
    rt: &DataType,
    env: &EvalEnv,
) -> SqlResult<Value> {
    // Array concatenation treats a NULL array as empty, like array_cat.
    if op == BinOp::Concat
        && (matches!(ty, DataType::Array(_))
            || matches!(l, Value::Array(_))
            || matches!(r, Value::Array(_)))
    {
        let mut items = match l {
            Value::Array(a) => a,
            Value::Null => vec![],
            other => vec![other],
        };
        match r {
            Value::Array(b) => items.extend(b),
            Value::Null => {}
            other => items.push(other),
        }
        return Ok(Value::Array(items));
    }
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    if let Some(v) = json_op(op, &l, &r, ty)? {
        return Ok(v);
    }
    if let Some(v) = interval_op(op, &l, &r, ty, env.tz)? {
        return Ok(v);
    }
    if op.is_comparison() {
        let o = compare(&l, &r, env.tz)?;
        return Ok(Value::Bool(match op {
            BinOp::Eq => o == Ordering::Equal,
            BinOp::NotEq => o != Ordering::Equal,
            BinOp::Lt => o == Ordering::Less,
            BinOp::LtEq => o != Ordering::Greater,
            BinOp::Gt => o == Ordering::Greater,
            _ => o != Ordering::Less,
        }));
    }
    match op {
        BinOp::Concat => {
            let tz = env.tz;
            // char(n) loses its padding on the way to text, as in PostgreSQL.
            let s = |v: &Value, t: &DataType| match t {
                DataType::Char(_) => v
                    .to_text(t, tz)
                    .map(|x| x.trim_end_matches(' ').to_string())
                    .unwrap_or_default(),
                _ => v.to_text(t, tz).unwrap_or_default(),
            };
            return Ok(Value::Text(s(&l, lt) + &s(&r, rt)));
        }
        BinOp::RegexMatch {
            case_insensitive,
            negated,
        } => {
            let (Value::Text(s), Value::Text(p)) = (&l, &r) else {
                return Err(SqlError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    "operator does not exist: ~",
                ));
            };
            return Ok(Value::Bool(
                crate::functions::regex_match(s, p, case_insensitive)? != negated,
            ));
        }
        _ => {}
    }
    // Date arithmetic: date ± integer days, date - date.
    let shift = |d: &chrono::NaiveDate, n: i64| -> SqlResult<Value> {
        chrono::Duration::try_days(n)
            .and_then(|days| d.checked_add_signed(days))
            .map(Value::Date)
            .ok_or_else(|| SqlError::new(SqlState::DATETIME_FIELD_OVERFLOW, "date out of range"))
    };
    match (&l, &r, op) {
        (Value::Date(d), Value::Int(n), BinOp::Add)
        | (Value::Int(n), Value::Date(d), BinOp::Add) => return shift(d, *n),
        (Value::Date(d), Value::Int(n), BinOp::Sub) => {
            return shift(d, n.checked_neg().unwrap_or(i64::MAX))
        }
        (Value::Date(a), Value::Date(b), BinOp::Sub) => {
            return Ok(Value::Int((*a - *b).num_days()))
        }
        _ => {}
    }
    match ty {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => {
            let (a, b) = match (&l, &r) {
                (Value::Int(a), Value::Int(b)) => (*a, *b),
                _ => return Err(op_error(op, &l, &r)),
            };
            let v = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div => {
                    if b == 0 {
                        return Err(SqlError::division_by_zero());
                    }
                    a.checked_div(b)
                }
                BinOp::Mod => {
                    if b == 0 {
                        return Err(SqlError::division_by_zero());
                    }
                    a.checked_rem(b)
                }
                BinOp::BitAnd => Some(a & b),
                BinOp::BitOr => Some(a | b),
                _ => return Err(op_error(op, &l, &r)),
            };
            checked_int(v, ty)
        }
        DataType::Float4 | DataType::Float8 => {
            let (a, b) = match (to_f64(&l), to_f64(&r)) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(op_error(op, &l, &r)),
            };
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => {
                    if b == 0.0 {
                        return Err(SqlError::division_by_zero());
                    }
                    a / b
                }
                BinOp::Mod => a % b,
                _ => return Err(op_error(op, &l, &r)),
            };
            if v.is_infinite() && a.is_finite() && b.is_finite() {
                return Err(SqlError::new(
                    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                    "value out of range: overflow",
                ));
            }
            Ok(Value::Float(v))
        }
        DataType::Numeric(_) => {
            let (a, b) = match (to_decimal(&l), to_decimal(&r)) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(op_error(op, &l, &r)),
            };
            let v = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div => {
                    if b.is_zero() {
                        return Err(SqlError::division_by_zero());
                    }
                    a.checked_div(b).map(|q| numeric_div_scale(q, &a, &b))
                }
                BinOp::Mod => {
                    if b.is_zero() {
                        return Err(SqlError::division_by_zero());
                    }
                    a.checked_rem(b)
                }
                _ => return Err(op_error(op, &l, &r)),
            };
            v.map(Value::Numeric).ok_or_else(|| {
                SqlError::new(
                    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                    "value overflows numeric format",
                )
            })
        }
        _ => Err(op_error(op, &l, &r)),
    }
}

/// PostgreSQL's select_div_scale: the quotient gets at least 16
/// significant digits, computed in its base-10000 representation, and at
/// least the display scale of either input.
pub fn numeric_div_scale(q: Decimal, a: &Decimal, b: &Decimal) -> Decimal {
    /// (weight, first base-10000 digit) of a non-zero decimal.
    fn weight_and_first(d: &Decimal) -> Option<(i64, i64)> {
        if d.is_zero() {
            return None;
        }
        let digits = d.mantissa().unsigned_abs().to_string();
        let exponent = digits.len() as i64 - 1 - d.scale() as i64;
        let weight = exponent.div_euclid(4);
        let take = (exponent - 4 * weight + 1) as usize;
        let mut lead: String = digits.chars().take(take).collect();
        while lead.len() < take {
            lead.push('0');
        }
        Some((weight, lead.parse().unwrap_or(0)))
    }
    let qweight = match (weight_and_first(a), weight_and_first(b)) {
        (Some((w1, f1)), Some((w2, f2))) => w1 - w2 - i64::from(f1 < f2),
        _ => 0,
    };
    let scale = (16 - qweight * 4)
        .max(a.scale() as i64)
        .max(b.scale() as i64)
        .clamp(0, 28) as u32;
    q.round_dp(scale).normalize_to(scale)
}

trait NormalizeTo {
    fn normalize_to(self, scale: u32) -> Decimal;
}

impl NormalizeTo for Decimal {
    fn normalize_to(mut self, scale: u32) -> Decimal {
        self.rescale(scale);
        self
    }
}

fn op_error(op: BinOp, l: &Value, r: &Value) -> SqlError {
    SqlError::new(
        SqlState::UNDEFINED_FUNCTION,
        format!("operator does not exist: {} {} {}", type_of_value(l), op.symbol(), type_of_value(r)),
    )
    .with_hint("No operator matches the given name and argument types. You might need to add explicit type casts.")
}

/// SQL LIKE with % and _ and backslash escapes.
pub fn like(s: &str, pattern: &str, case_insensitive: bool) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = if case_insensitive {
        (
            s.to_lowercase().chars().collect(),
            pattern.to_lowercase().chars().collect(),
        )
    } else {
        (s.chars().collect(), pattern.chars().collect())
    };
    fn matches(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('%') => (0..=s.len()).any(|i| matches(&s[i..], &p[1..])),
            Some('_') => !s.is_empty() && matches(&s[1..], &p[1..]),
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && matches(&s[1..], &p[2..]),
            Some(c) => s.first() == Some(c) && matches(&s[1..], &p[1..]),
        }
    }
    matches(&s, &p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", false));
        assert!(like("hello", "_ello", false));
        assert!(!like("hello", "H%", false));
        assert!(like("hello", "H%", true));
        assert!(like("50%", "50\\%", false));
        assert!(!like("500", "50\\%", false));
    }

    #[test]
    fn numeric_division_scale_matches_postgres() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(
            numeric_div_scale(d("1") / d("3"), &d("1"), &d("3")).to_string(),
            "0.33333333333333333333"
        );
        assert_eq!(
            numeric_div_scale(d("10") / d("4"), &d("10"), &d("4")).to_string(),
            "2.5000000000000000"
        );
        assert_eq!(
            numeric_div_scale(d("10.0") / d("4"), &d("10.0"), &d("4")).to_string(),
            "2.5000000000000000"
        );
        assert_eq!(
            numeric_div_scale(d("100000") / d("3"), &d("100000"), &d("3")).to_string(),
            "33333.333333333333"
        );
    }
}
