//! Type conversions: explicit CAST / `::`, and the assignment casts applied
//! when a value is stored into a column.

use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;
use crate::value::{TimeZone, Value};

/// Converts `v` to type `to`. `explicit` is true for CAST/`::` (which may
/// truncate varchar(n)); false for assignment (which errors instead).
pub fn cast(v: Value, to: &DataType, tz: &TimeZone, explicit: bool) -> SqlResult<Value> {
    use DataType as T;
    if v.is_null() || *to == T::Unknown {
        return Ok(v);
    }
    Ok(match (v, to) {
        (Value::Text(s), T::Text | T::Name) => Value::Text(s),
        (Value::Text(s), T::Varchar(_) | T::Char(..)) => {
            let limit = match to {
                T::Varchar(n) => *n,
                T::Char(n) => Some(*n),
                _ => None,
            };
            Value::Text(fit_length(s, limit, to, explicit)?)
        }
        (Value::Text(s), ty) => match Value::from_text(ty, &s, tz)? {
            Value::Numeric(d) => match ty {
                T::Numeric(ps) => Value::Numeric(fit_numeric(d, ps)?),
                _ => Value::Numeric(d),
            },
            v => v,
        },
        (v, T::Text | T::Name) => Value::Text(v.to_text(&type_of(&v), tz).unwrap_or_default()),
        (v, T::Varchar(n)) => Value::Text(fit_length(
            v.to_text(&type_of(&v), tz).unwrap_or_default(),
            *n,
            to,
            explicit,
        )?),
        (v, T::Char(n)) => Value::Text(fit_length(
            v.to_text(&type_of(&v), tz).unwrap_or_default(),
            Some(*n),
            to,
            explicit,
        )?),
        (Value::Int(i), T::Int2 | T::Int4 | T::Int8 | T::Oid) => int_in_range(i, to)?,
        (Value::Int(i), T::Float4 | T::Float8) => Value::Float(i as f64),
        (Value::Int(i), T::Numeric(ps)) => Value::Numeric(fit_numeric(Decimal::from(i), ps)?),
        (Value::Int(i), T::Bool) => Value::Bool(i != 0),
        (Value::Float(f), T::Int2 | T::Int4 | T::Int8) => {
            if !f.is_finite() {
                return Err(SqlError::out_of_range(&to.type_name()));
            }
            // rint(): round half to even, as PostgreSQL does.
            let r = f.round_ties_even();
            if r < i64::MIN as f64 || r > i64::MAX as f64 {
                return Err(SqlError::out_of_range(&to.type_name()));
            }
            int_in_range(r as i64, to)?
        }
        (Value::Float(f), T::Float4) => {
            if f.is_finite() && (f as f32).is_infinite() {
                return Err(SqlError::new(
                    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                    "value out of range: overflow",
                ));
            }
            Value::Float(f as f32 as f64)
        }
        (Value::Float(f), T::Float8) => Value::Float(f),
        (Value::Float(f), T::Numeric(ps)) => {
            if f.is_nan() || f.is_infinite() {
                return Err(SqlError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    "cannot convert NaN or infinity to numeric",
                ));
            }
            let d = Decimal::from_f64(f).ok_or_else(|| SqlError::out_of_range("numeric"))?;
            Value::Numeric(fit_numeric(d, ps)?)
        }
        (Value::Numeric(d), T::Int2 | T::Int4 | T::Int8) => {
            let r = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
            int_in_range(
                r.to_i64()
                    .ok_or_else(|| SqlError::out_of_range(&to.type_name()))?,
                to,
            )?
        }
        (Value::Numeric(d), T::Float4 | T::Float8) => Value::Float(d.to_f64().unwrap_or(f64::NAN)),
        (Value::Numeric(d), T::Numeric(ps)) => Value::Numeric(fit_numeric(d, ps)?),
        (Value::Bool(b), T::Bool) => Value::Bool(b),
        (Value::Bool(b), T::Int4) => Value::Int(b as i64),
        (Value::Bytea(b), T::Bytea) => Value::Bytea(b),
        (Value::Uuid(u), T::Uuid) => Value::Uuid(u),
        (Value::Json(j), T::Json) => Value::Json(j),
        (Value::Json(j), T::Jsonb) => Value::Json(crate::value::json::jsonb_in(&j)?),
        (Value::Interval(i), T::Interval) => Value::Interval(i),
        (Value::Date(d), T::Date) => Value::Date(d),
        (Value::Date(d), T::Timestamp) => Value::Timestamp(d.and_time(chrono::NaiveTime::MIN)),
        (Value::Date(d), T::TimestampTz) => {
            Value::TimestampTz(tz.to_utc(&d.and_time(chrono::NaiveTime::MIN)).and_utc())
        }
        (Value::Timestamp(t), T::Timestamp) => Value::Timestamp(t),
        (Value::Timestamp(t), T::Date) => Value::Date(t.date()),
        (Value::Timestamp(t), T::TimestampTz) => Value::TimestampTz(tz.to_utc(&t).and_utc()),
        (Value::TimestampTz(t), T::TimestampTz) => Value::TimestampTz(t),
        (Value::TimestampTz(t), T::Timestamp) => {
            Value::Timestamp(t.naive_utc() + chrono::Duration::seconds(tz.offset_secs as i64))
        }
        (Value::TimestampTz(t), T::Date) => {
            Value::Date((t.naive_utc() + chrono::Duration::seconds(tz.offset_secs as i64)).date())
        }
        (Value::Array(items), T::Array(elem)) => Value::Array(
            items
                .into_iter()
                .map(|i| cast(i, elem, tz, explicit))
                .collect::<SqlResult<_>>()?,
        ),
        (v, to) => {
            return Err(SqlError::new(
                SqlState::DATATYPE_MISMATCH,
                format!(
                    "cannot cast type {} to {}",
                    type_of(&v).type_name(),
                    to.sql_name()
                ),
            ))
        }
    })
}

/// The natural type of a runtime value (for formatting during casts).
pub fn type_of(v: &Value) -> DataType {
    match v {
        Value::Null => DataType::Unknown,
        Value::Bool(_) => DataType::Bool,
        Value::Int(_) => DataType::Int8,
        Value::Float(_) => DataType::Float8,
        Value::Numeric(_) => DataType::Numeric(None),
        Value::Text(_) => DataType::Text,
        Value::Bytea(_) => DataType::Bytea,
        Value::Date(_) => DataType::Date,
        Value::Uuid(_) => DataType::Uuid,
        Value::Json(_) => DataType::Jsonb,
        Value::Interval(_) => DataType::Interval,
        Value::Timestamp(_) => DataType::Timestamp,
        Value::TimestampTz(_) => DataType::TimestampTz,
        Value::Array(_) => DataType::Array(Box::new(DataType::Text)),
    }
}

fn int_in_range(i: i64, to: &DataType) -> SqlResult<Value> {
    let ok = match to {
        DataType::Int2 => i16::try_from(i).is_ok(),
        DataType::Int4 => i32::try_from(i).is_ok(),
        DataType::Oid => u32::try_from(i).is_ok(),
        _ => true,
    };
    if ok {
        Ok(Value::Int(i))
    } else {
        Err(SqlError::out_of_range(&to.type_name()))
    }
}

fn fit_length(s: String, limit: Option<u32>, to: &DataType, explicit: bool) -> SqlResult<String> {
    let Some(n) = limit else { return Ok(s) };
    let len = s.chars().count();
    if len <= n as usize {
        return Ok(match to {
            // char(n) stores without trailing blanks; output pads them back.
            DataType::Char(_) => s.trim_end_matches(' ').to_string(),
            _ => s,
        });
    }
    // Trailing blanks may be dropped to fit, as in PostgreSQL.
    let truncated: String = s.chars().take(n as usize).collect();
    if explicit || s.chars().skip(n as usize).all(|c| c == ' ') {
        return Ok(truncated);
    }
    Err(SqlError::new(
        SqlState::STRING_DATA_RIGHT_TRUNCATION,
        format!("value too long for type {}", to.sql_name()),
    ))
}

fn fit_numeric(d: Decimal, ps: &Option<(u32, u32)>) -> SqlResult<Decimal> {
    let Some((precision, scale)) = *ps else {
        return Ok(d);
    };
    let mut r = d.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(scale);
    let int_digits = r.trunc().abs().to_string().trim_start_matches('0').len() as u32;
    if int_digits > precision.saturating_sub(scale) {
        return Err(SqlError::new(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "numeric field overflow").with_detail(format!(
            "A field with precision {precision}, scale {scale} must round to an absolute value less than 10^{}.",
            precision - scale
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_casts_check_lengths_and_ranges() {
        let tz = TimeZone::default();
        assert!(cast(
            Value::Text("abcdef".into()),
            &DataType::Varchar(Some(3)),
            &tz,
            false
        )
        .is_err());
        assert_eq!(
            cast(
                Value::Text("abcdef".into()),
                &DataType::Varchar(Some(3)),
                &tz,
                true
            )
            .unwrap(),
            Value::Text("abc".into())
        );
        assert!(cast(Value::Int(70000), &DataType::Int2, &tz, false).is_err());
        assert_eq!(
            cast(Value::Float(2.5), &DataType::Int4, &tz, false).unwrap(),
            Value::Int(2)
        );
        assert_eq!(
            cast(Value::Float(3.5), &DataType::Int4, &tz, false).unwrap(),
            Value::Int(4)
        );
        let n = cast(
            Value::Text("12.345".into()),
            &DataType::Numeric(Some((5, 2))),
            &tz,
            false,
        )
        .unwrap();
        assert_eq!(n, Value::Numeric("12.35".parse().unwrap()));
        assert!(cast(
            Value::Text("1234.5".into()),
            &DataType::Numeric(Some((5, 2))),
            &tz,
            false
        )
        .is_err());
    }
}
