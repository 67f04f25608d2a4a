//! date_part / EXTRACT and date_trunc.

use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::EvalEnv;
use crate::types::DataType;
use crate::value::Value;

use super::bad_arg;

fn timestamp_parts(v: &Value, env: &EvalEnv) -> SqlResult<chrono::NaiveDateTime> {
    Ok(match v {
        Value::Date(d) => d.and_time(chrono::NaiveTime::MIN),
        Value::Timestamp(t) => *t,
        Value::TimestampTz(t) => {
            t.naive_utc() + chrono::Duration::seconds(env.tz.offset_secs as i64)
        }
        Value::Text(s) => match Value::from_text(&DataType::Timestamp, s, env.tz)? {
            Value::Timestamp(t) => t,
            _ => return Err(SqlError::internal("timestamp expected")),
        },
        other => return Err(bad_arg("date_part", other)),
    })
}

pub(super) fn date_part(field: &str, v: &Value, env: &EvalEnv) -> SqlResult<f64> {
    use chrono::{Datelike, Timelike};
    let t = timestamp_parts(v, env)?;
    Ok(match field.to_ascii_lowercase().as_str() {
        "year" => t.year() as f64,
        "month" => t.month() as f64,
        "day" => t.day() as f64,
        "hour" => t.hour() as f64,
        "minute" => t.minute() as f64,
        "second" => t.second() as f64 + t.nanosecond() as f64 / 1e9,
        "dow" => t.weekday().num_days_from_sunday() as f64,
        "doy" => t.ordinal() as f64,
        "quarter" => ((t.month() - 1) / 3 + 1) as f64,
        "epoch" => match v {
            Value::TimestampTz(tz) => tz.timestamp_micros() as f64 / 1e6,
            _ => t.and_utc().timestamp_micros() as f64 / 1e6,
        },
        other => {
            return Err(SqlError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("unit \"{other}\" not supported for type timestamp"),
            ))
        }
    })
}

pub(super) fn date_trunc(field: &str, v: &Value, env: &EvalEnv) -> SqlResult<Value> {
    use chrono::{Datelike, NaiveDate, Timelike};
    let t = timestamp_parts(v, env)?;
    let d = t.date();
    let truncated = match field.to_ascii_lowercase().as_str() {
        "year" => {
            NaiveDate::from_ymd_opt(d.year(), 1, 1).map(|d| d.and_time(chrono::NaiveTime::MIN))
        }
        "month" => NaiveDate::from_ymd_opt(d.year(), d.month(), 1)
            .map(|d| d.and_time(chrono::NaiveTime::MIN)),
        "day" => Some(d.and_time(chrono::NaiveTime::MIN)),
        "hour" => d.and_hms_opt(t.hour(), 0, 0),
        "minute" => d.and_hms_opt(t.hour(), t.minute(), 0),
        "second" => d.and_hms_opt(t.hour(), t.minute(), t.second()),
        other => {
            return Err(SqlError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("unit \"{other}\" not recognized for type timestamp"),
            ))
        }
    }
    .ok_or_else(|| SqlError::internal("date_trunc failed"))?;
    Ok(match v {
        Value::TimestampTz(_) => Value::TimestampTz(env.tz.to_utc(&truncated).and_utc()),
        _ => Value::Timestamp(truncated),
    })
}
