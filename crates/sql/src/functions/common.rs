//! More of PostgreSQL's everyday string, math and date/time functions.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;
use crate::value::{decimal_to_f64, Interval, TimeZone, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommonFunc {
    Reverse,
    Initcap,
    Translate,
    Chr,
    Ascii,
    RegexpReplace,
    StartsWith,
    Format,
    ToHex,
    QuoteIdent,
    QuoteLiteral,
    Sign,
    Exp,
    Ln,
    Log10,
    Log,
    Pi,
    Cbrt,
    Div,
    Gcd,
    ToChar,
    Age,
    MakeDate,
    MakeTimestamp,
    ToTimestamp,
    JustifyHours,
    JustifyDays,
}

pub fn resolve(name: &str, args: &[DataType]) -> Option<(CommonFunc, DataType)> {
    use CommonFunc as F;
    use DataType as T;
    let float_or_numeric = |t: Option<&DataType>| match t {
        Some(T::Float4 | T::Float8) => T::Float8,
        _ => T::Numeric(None),
    };
    Some(match (name, args.len()) {
        ("reverse", 1) => (F::Reverse, T::Text),
        ("initcap", 1) => (F::Initcap, T::Text),
        ("translate", 3) => (F::Translate, T::Text),
        ("chr", 1) => (F::Chr, T::Text),
        ("ascii", 1) => (F::Ascii, T::Int4),
        ("regexp_replace", 3 | 4) => (F::RegexpReplace, T::Text),
        ("starts_with", 2) => (F::StartsWith, T::Bool),
        ("format", 1..) => (F::Format, T::Text),
        ("to_hex", 1) => (F::ToHex, T::Text),
        ("quote_ident", 1) => (F::QuoteIdent, T::Text),
        ("quote_literal", 1) => (F::QuoteLiteral, T::Text),
        ("sign", 1) => (
            F::Sign,
            match args[0] {
                T::Int2 | T::Int4 | T::Int8 | T::Numeric(_) => T::Numeric(None),
                _ => T::Float8,
            },
        ),
        ("exp", 1) => (F::Exp, float_or_numeric(args.first())),
        ("ln", 1) => (F::Ln, float_or_numeric(args.first())),
        ("log10", 1) => (F::Log10, float_or_numeric(args.first())),
        ("log", 1) => (F::Log10, float_or_numeric(args.first())),
        ("log", 2) => (F::Log, T::Numeric(None)),
        ("pi", 0) => (F::Pi, T::Float8),
        ("cbrt", 1) => (F::Cbrt, T::Float8),
        ("div", 2) => (F::Div, T::Numeric(None)),
        ("gcd", 2) => (
            F::Gcd,
            if args.contains(&T::Int8) {
                T::Int8
            } else {
                T::Int4
            },
        ),
        ("to_char", 2) => (F::ToChar, T::Text),
        ("age", 1 | 2) => (F::Age, T::Interval),
        ("make_date", 3) => (F::MakeDate, T::Date),
        ("make_timestamp", 6) => (F::MakeTimestamp, T::Timestamp),
        ("to_timestamp", 1) => (F::ToTimestamp, T::TimestampTz),
        ("justify_hours", 1) => (F::JustifyHours, T::Interval),
        ("justify_days", 1) => (F::JustifyDays, T::Interval),
        _ => return None,
    })
}

fn text(v: &Value, tz: &TimeZone) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => other
            .to_text(&crate::cast::type_of(other), tz)
            .unwrap_or_default(),
    }
}

fn float(v: &Value) -> SqlResult<f64> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Numeric(d) => Ok(decimal_to_f64(d)),
        Value::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| SqlError::invalid_text("double precision", t)),
        other => Err(SqlError::internal(format!("not a number: {other:?}"))),
    }
}

fn int(v: &Value) -> SqlResult<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Ok(float(other)? as i64),
    }
}

/// A float result in the declared type (numeric results keep numeric).
fn number(f: f64, ty: &DataType) -> SqlResult<Value> {
    if !f.is_finite() {
        return Err(SqlError::new(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            "value out of range: overflow",
        ));
    }
    Ok(match ty {
        DataType::Numeric(_) => rust_decimal::Decimal::from_f64_retain(f)
            .map(|d| Value::Numeric(d.round_dp(16).normalize()))
            .unwrap_or(Value::Float(f)),
        _ => Value::Float(f),
    })
}

/// The argument of ln/log10, which must be positive.
fn log_of(v: &Value) -> SqlResult<f64> {
    let x = float(v)?;
    positive_log(
        x,
        if x == 0.0 {
            "zero"
        } else {
            "a negative number"
        },
    )
}

fn positive_log(x: f64, what: &str) -> SqlResult<f64> {
    if x <= 0.0 {
        return Err(SqlError::new(
            SqlState("2201E"),
            format!("cannot take logarithm of {what}"),
        ));
    }
    Ok(x)
}

impl CommonFunc {
    pub fn eval(&self, args: &[Value], ty: &DataType, tz: &TimeZone) -> SqlResult<Value> {
        use CommonFunc as F;
        let t = |i: usize| text(&args[i], tz);
        Ok(match self {
            F::Reverse => Value::Text(t(0).chars().rev().collect()),
            F::Initcap => {
                let mut out = String::new();
                let mut start = true;
                for c in t(0).chars() {
                    if c.is_alphanumeric() {
                        if start {
                            out.extend(c.to_uppercase());
                        } else {
                            out.extend(c.to_lowercase());
                        }
                        start = false;
                    } else {
                        out.push(c);
                        start = true;
                    }
                }
                Value::Text(out)
            }
            F::Translate => {
                let (from, to): (Vec<char>, Vec<char>) =
                    (t(1).chars().collect(), t(2).chars().collect());
                Value::Text(
                    t(0).chars()
                        .filter_map(|c| match from.iter().position(|&f| f == c) {
                            Some(i) => to.get(i).copied(),
                            None => Some(c),
                        })
                        .collect(),
                )
            }
            F::Chr => {
                let code = int(&args[0])?;
                let c = u32::try_from(code)
                    .ok()
                    .filter(|&c| c != 0)
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        SqlError::new(
                            SqlState::PROGRAM_LIMIT_EXCEEDED,
                            format!("requested character too large for encoding: {code}"),
                        )
                    })?;
                Value::Text(c.to_string())
            }
            F::Ascii => Value::Int(t(0).chars().next().map_or(0, |c| c as i64)),
            F::RegexpReplace => {
                let flags = if args.len() == 4 { t(3) } else { String::new() };
                let pattern = if flags.contains('i') {
                    format!("(?i){}", t(1))
                } else {
                    t(1)
                };
                let re = regex::Regex::new(&pattern).map_err(|e| {
                    SqlError::new(
                        SqlState::INVALID_REGULAR_EXPRESSION,
                        format!("invalid regular expression: {e}"),
                    )
                })?;
                // PostgreSQL writes \1 for a group; regex wants ${1}.
                let replacement = regex::Regex::new(r"\\(\d)")
                    .map(|r| r.replace_all(&t(2), "$${$1}").into_owned())
                    .unwrap_or_else(|_| t(2));
                let s = t(0);
                Value::Text(if flags.contains('g') {
                    re.replace_all(&s, replacement.as_str()).into_owned()
                } else {
                    re.replace(&s, replacement.as_str()).into_owned()
                })
            }
            F::StartsWith => Value::Bool(t(0).starts_with(&t(1))),
            F::Format => Value::Text(format(&t(0), &args[1..], tz)?),
            F::ToHex => Value::Text(format!("{:x}", int(&args[0])?)),
            F::QuoteIdent => Value::Text(quote_ident(&t(0))),
            F::QuoteLiteral => Value::Text(format!("'{}'", t(0).replace('\'', "''"))),
            F::Sign => number(
                float(&args[0])?.signum() * (float(&args[0])? != 0.0) as i32 as f64,
                ty,
            )?,
            F::Exp => number(float(&args[0])?.exp(), ty)?,
            F::Ln => number(log_of(&args[0])?.ln(), ty)?,
            F::Log10 => number(log_of(&args[0])?.log10(), ty)?,
            F::Log => {
                let (b, x) = (float(&args[0])?, float(&args[1])?);
                number(
                    positive_log(x, "a negative number")?.ln()
                        / positive_log(b, "a negative number")?.ln(),
                    ty,
                )?
            }
            F::Pi => Value::Float(std::f64::consts::PI),
            F::Cbrt => Value::Float(float(&args[0])?.cbrt()),
            F::Div => {
                let (a, b) = (float(&args[0])?, float(&args[1])?);
                if b == 0.0 {
                    return Err(SqlError::division_by_zero());
                }
                Value::Numeric(rust_decimal::Decimal::from((a / b).trunc() as i64))
            }
            F::Gcd => {
                let (mut a, mut b) = (int(&args[0])?.unsigned_abs(), int(&args[1])?.unsigned_abs());
                while b != 0 {
                    (a, b) = (b, a % b);
                }
                Value::Int(a as i64)
            }
            F::ToChar => Value::Text(to_char(&args[0], &t(1), tz)?),
            F::Age => {
                let now = || {
                    chrono::Utc::now()
                        .naive_utc()
                        .date()
                        .and_hms_opt(0, 0, 0)
                        .unwrap_or_default()
                };
                let ts = |v: &Value| match v {
                    Value::Timestamp(t) => Ok(*t),
                    Value::TimestampTz(t) => {
                        Ok(t.naive_utc() + chrono::Duration::seconds(tz.offset_secs as i64))
                    }
                    Value::Date(d) => Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default()),
                    other => Err(SqlError::internal(format!("age of {other:?}"))),
                };
                let (a, b) = if args.len() == 2 {
                    (ts(&args[0])?, ts(&args[1])?)
                } else {
                    (now(), ts(&args[0])?)
                };
                Value::Interval(age(&a, &b))
            }
            F::MakeDate => {
                let (y, m, d) = (int(&args[0])?, int(&args[1])?, int(&args[2])?);
                Value::Date(
                    NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32).ok_or_else(|| {
                        SqlError::new(
                            SqlState::DATETIME_FIELD_OVERFLOW,
                            format!("date field value out of range: {y}-{m:02}-{d:02}"),
                        )
                    })?,
                )
            }
            F::MakeTimestamp => {
                let date = NaiveDate::from_ymd_opt(
                    int(&args[0])? as i32,
                    int(&args[1])? as u32,
                    int(&args[2])? as u32,
                );
                let secs = float(&args[5])?;
                let time = chrono::NaiveTime::from_hms_micro_opt(
                    int(&args[3])? as u32,
                    int(&args[4])? as u32,
                    secs.trunc() as u32,
                    ((secs.fract() * 1e6).round()) as u32,
                );
                match (date, time) {
                    (Some(d), Some(t)) => Value::Timestamp(NaiveDateTime::new(d, t)),
                    _ => {
                        return Err(SqlError::new(
                            SqlState::DATETIME_FIELD_OVERFLOW,
                            "date/time field value out of range",
                        ))
                    }
                }
            }
            F::ToTimestamp => {
                let secs = float(&args[0])?;
                Value::TimestampTz(
                    chrono::DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
                        .ok_or_else(|| {
                            SqlError::new(
                                SqlState::DATETIME_FIELD_OVERFLOW,
                                "timestamp out of range",
                            )
                        })?,
                )
            }
            F::JustifyHours | F::JustifyDays => {
                let Value::Interval(mut i) = args[0] else {
                    return Err(SqlError::internal("justify of a non-interval"));
                };
                const DAY: i64 = 86_400_000_000;
                if *self == F::JustifyHours {
                    i.days += (i.micros / DAY) as i32;
                    i.micros %= DAY;
                } else {
                    i.months += i.days / 30;
                    i.days %= 30;
                }
                Value::Interval(i)
            }
        })
    }
}

/// age(a, b): years, months and days between two timestamps, counted on
/// the calendar as PostgreSQL does, then the time of day.
fn age(a: &NaiveDateTime, b: &NaiveDateTime) -> Interval {
    let (later, earlier, sign) = if a >= b { (a, b, 1) } else { (b, a, -1) };
    let mut months =
        (later.year() - earlier.year()) * 12 + later.month() as i32 - earlier.month() as i32;
    let mut day_diff = later.day() as i64 - earlier.day() as i64;
    let mut micros = (later.time() - earlier.time())
        .num_microseconds()
        .unwrap_or(0);
    if micros < 0 {
        micros += 86_400_000_000;
        day_diff -= 1;
    }
    if day_diff < 0 {
        months -= 1;
        // Borrow the length of the earlier date's month, as PostgreSQL does.
        let (y, m) = (earlier.year(), earlier.month());
        let days_in = NaiveDate::from_ymd_opt(
            if m == 12 { y + 1 } else { y },
            if m == 12 { 1 } else { m + 1 },
            1,
        )
        .and_then(|d| d.pred_opt())
        .map_or(30, |d| d.day() as i64);
        day_diff += days_in;
    }
    Interval {
        months: sign * months,
        days: sign * day_diff as i32,
        micros: sign as i64 * micros,
    }
}

fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// format(): %s (text), %I (identifier), %L (literal), %% ; positions
/// like %1$s.
fn format(fmt: &str, args: &[Value], tz: &TimeZone) -> SqlResult<String> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '$' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let kind = chars.next().ok_or_else(|| {
            SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "unterminated format() type specifier",
            )
        })?;
        if kind == '%' {
            out.push('%');
            continue;
        }
        let index = match spec.strip_suffix('$') {
            Some(n) => {
                n.parse::<usize>().map_err(|_| {
                    SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "invalid format() position",
                    )
                })? - 1
            }
            None => next,
        };
        next = index + 1;
        let arg = args.get(index).ok_or_else(|| {
            SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "too few arguments for format()",
            )
        })?;
        match kind {
            's' => out.push_str(&if arg.is_null() {
                String::new()
            } else {
                text(arg, tz)
            }),
            'I' => out.push_str(&quote_ident(&text(arg, tz))),
            'L' => out.push_str(&if arg.is_null() {
                "NULL".into()
            } else {
                format!("'{}'", text(arg, tz).replace('\'', "''"))
            }),
            other => {
                return Err(SqlError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("unrecognized format() type specifier \"{other}\""),
                ))
            }
        }
    }
    Ok(out)
}

/// to_char for timestamps, dates and numbers, with the common patterns.
fn to_char(v: &Value, fmt: &str, tz: &TimeZone) -> SqlResult<String> {
    let t: NaiveDateTime = match v {
        Value::Timestamp(t) => *t,
        Value::TimestampTz(t) => t.naive_utc() + chrono::Duration::seconds(tz.offset_secs as i64),
        Value::Date(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default(),
        Value::Int(_) | Value::Float(_) | Value::Numeric(_) => return Ok(number_to_char(v, fmt)),
        other => return Err(SqlError::internal(format!("to_char of {other:?}"))),
    };
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let month = MONTHS[t.month0() as usize];
    let day = DAYS[t.weekday().num_days_from_sunday() as usize];
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    // Longest patterns first.
    let patterns: Vec<(&str, String)> = vec![
        ("YYYY", format!("{:04}", t.year())),
        ("HH24", format!("{:02}", t.hour())),
        ("HH12", format!("{hour12:02}")),
        ("Month", format!("{month:<9}")),
        ("MONTH", format!("{:<9}", month.to_uppercase())),
        ("month", format!("{:<9}", month.to_lowercase())),
        ("Mon", month[..3].to_string()),
        ("MON", month[..3].to_uppercase()),
        ("mon", month[..3].to_lowercase()),
        ("Day", format!("{day:<9}")),
        ("DAY", format!("{:<9}", day.to_uppercase())),
        ("Dy", day[..3].to_string()),
        ("DDD", format!("{:03}", t.ordinal())),
        ("YY", format!("{:02}", t.year() % 100)),
        ("MM", format!("{:02}", t.month())),
        ("DD", format!("{:02}", t.day())),
        ("HH", format!("{hour12:02}")),
        ("MI", format!("{:02}", t.minute())),
        ("SS", format!("{:02}", t.second())),
        ("MS", format!("{:03}", t.nanosecond() / 1_000_000)),
        ("US", format!("{:06}", t.nanosecond() / 1_000)),
        ("AM", if t.hour() < 12 { "AM" } else { "PM" }.into()),
        ("PM", if t.hour() < 12 { "AM" } else { "PM" }.into()),
        ("am", if t.hour() < 12 { "am" } else { "pm" }.into()),
        ("pm", if t.hour() < 12 { "am" } else { "pm" }.into()),
        ("Q", ((t.month0() / 3) + 1).to_string()),
        ("D", (t.weekday().num_days_from_sunday() + 1).to_string()),
    ];
    let mut out = String::new();
    let mut rest = fmt;
    'outer: while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push_str(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        for (p, value) in &patterns {
            if let Some(after) = rest.strip_prefix(p) {
                out.push_str(value);
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// to_char(number, '999.99')-style formats: digits and one decimal point.
fn number_to_char(v: &Value, fmt: &str) -> String {
    let f = float(v).unwrap_or(0.0);
    let decimals = fmt.split_once(['.', 'D']).map_or(0, |(_, frac)| {
        frac.chars().filter(|c| *c == '9' || *c == '0').count()
    });
    let width = fmt
        .chars()
        .filter(|c| matches!(c, '9' | '0' | '.' | 'D'))
        .count()
        + 1;
    format!(
        "{:>width$.decimals$}",
        f,
        width = width,
        decimals = decimals
    )
}
