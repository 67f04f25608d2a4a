//! PostgreSQL's text formats: output of each type and parsing of input.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use rust_decimal::Decimal;

use super::{date_start, TimeZone, Value};
use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;

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

pub(super) fn rescale_for(d: &Decimal, ty: &DataType) -> Decimal {
    match ty {
        DataType::Numeric(Some((_, s))) => {
            let mut d = *d;
            d.rescale(*s);
            d
        }
        _ => *d,
    }
}

pub(super) fn format_numeric(d: &Decimal, ty: &DataType) -> String {
    rescale_for(d, ty).to_string()
}

pub(super) fn pad_char(s: &str, n: u32) -> String {
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

pub(super) fn format_time_part(t: &NaiveDateTime) -> String {
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

pub(super) fn quote_array_element(s: &str) -> String {
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

pub(super) fn parse_int(s: &str, min: i64, max: i64, type_name: &str) -> SqlResult<i64> {
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

pub(super) fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

pub(super) fn parse_bytea(s: &str) -> SqlResult<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
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
                } else if i + 3 < bytes.len()
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
pub(super) fn parse_timestamp(s: &str, type_name: &str) -> SqlResult<(NaiveDateTime, Option<i32>)> {
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
pub(super) fn invalid_datetime(type_name: &str, input: &str) -> SqlError {
    SqlError::new(
        SqlState::INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type {type_name}: \"{input}\""),
    )
}

pub(super) fn split_zone(rest: &str) -> Option<(&str, Option<i32>)> {
    let rest = rest.trim();
    // Byte offsets below come from ASCII searches, but the input may be
    // any text: `get` keeps a cut inside a character from panicking.
    for suffix in ["z", "utc", "gmt"] {
        let cut = rest.len().saturating_sub(suffix.len());
        if rest.len() >= suffix.len()
            && rest
                .get(cut..)
                .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
        {
            return Some((rest.get(..cut)?.trim(), Some(0)));
        }
    }
    if let Some(i) = rest.rfind(['+', '-']) {
        let (time, zone) = (rest[..i].trim(), &rest[i..]);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits = &zone[1..];
        let (h, m) = match digits.split_once(':') {
            Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
            None if digits.len() == 4 => (
                digits.get(..2)?.parse().ok()?,
                digits.get(2..)?.parse().ok()?,
            ),
            None => (digits.parse().ok()?, 0),
        };
        // PostgreSQL's range for a displacement is under 16 hours.
        if !(0..=15).contains(&h) || !(0..=59).contains(&m) {
            return None;
        }
        return Some((time, Some(sign * (h * 3600 + m * 60))));
    }
    Some((rest, None))
}

pub(super) fn parse_array(s: &str, elem: &DataType, tz: &TimeZone) -> SqlResult<Value> {
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
