//! sqllogictest adapter: runs `.slt` records over tokio-postgres with either
//! the simple query protocol (text results as the server sends them) or the
//! extended protocol (binary results, rendered here exactly as PostgreSQL's
//! text output functions would print them).
//!
//! Both engines must print the same text for the same query, so one corpus
//! checks both protocols. Conventions of the rendering:
//! * NULL is `NULL`, the empty string is `(empty)`;
//! * errors display as `ERROR 23505: duplicate key value ...` (severity,
//!   SQLSTATE, message), so `statement error 23505: duplicate key` checks
//!   the code and the text at once;
//! * timestamptz values are rendered in UTC by the extended engine, so a
//!   file that prints timestamptz must `SET TIME ZONE 'UTC'` first.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Which half of the PostgreSQL wire protocol an engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `Query` messages; results in text format.
    Simple,
    /// `Parse`/`Bind`/`Execute`; results in binary format.
    Extended,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error from the server (or the connection), or a value the extended
/// engine cannot render.
#[derive(Debug)]
pub enum SltError {
    Pg(tokio_postgres::Error),
    Unsupported(String),
}

impl fmt::Display for SltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SltError::Pg(e) => match e.as_db_error() {
                Some(db) => write!(
                    f,
                    "{} {}: {}",
                    db.severity(),
                    db.code().code(),
                    db.message()
                ),
                None => f.write_str(&crate::describe(e)),
            },
            SltError::Unsupported(what) => write!(f, "extended engine: {what}"),
        }
    }
}

impl std::error::Error for SltError {}

impl From<tokio_postgres::Error> for SltError {
    fn from(e: tokio_postgres::Error) -> Self {
        SltError::Pg(e)
    }
}

/// One connection, as sqllogictest's `AsyncDB`.
pub struct PgEngine {
    client: Client,
    protocol: Protocol,
}

impl PgEngine {
    pub async fn connect(
        config: &tokio_postgres::Config,
        protocol: Protocol,
    ) -> Result<PgEngine, SltError> {
        let client = crate::try_connect(config).await?;
        Ok(PgEngine { client, protocol })
    }

    async fn run_simple(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let mut columns = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for message in self.client.simple_query(sql).await? {
            match message {
                SimpleQueryMessage::RowDescription(desc) => columns = Some(desc.len()),
                SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push((0..row.len()).map(|i| render_text(row.get(i))).collect());
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn run_extended(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let statement = self.client.prepare(sql).await?;
        if statement.columns().is_empty() {
            let count = self.client.execute(&statement, &[]).await?;
            return Ok(DBOutput::StatementComplete(count));
        }
        let mut rows = Vec::new();
        for row in self.client.query(&statement, &[]).await? {
            let mut values = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                let raw: Option<Raw> = row.try_get(i)?;
                values.push(match raw {
                    None => "NULL".to_owned(),
                    Some(Raw(bytes)) => render_binary(column.type_(), bytes)?,
                });
            }
            rows.push(values);
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; statement.columns().len()],
            rows,
        })
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for PgEngine {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        match self.protocol {
            Protocol::Simple => self.run_simple(sql).await,
            Protocol::Extended => self.run_extended(sql).await,
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        match self.protocol {
            Protocol::Simple => "postgres-simple",
            Protocol::Extended => "postgres-extended",
        }
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await
    }

    async fn run_command(command: Command) -> std::io::Result<std::process::Output> {
        tokio::process::Command::from(command).output().await
    }

    fn error_sql_state(err: &SltError) -> Option<String> {
        match err {
            SltError::Pg(e) => e.code().map(|c| c.code().to_owned()),
            SltError::Unsupported(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering

fn render_text(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some("") => "(empty)".to_owned(),
        Some(s) => s.to_owned(),
    }
}

/// The undecoded bytes of a binary-format value of any type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Renders a binary-format value as PostgreSQL's text output function for
/// its type prints it (DateStyle ISO, IntervalStyle postgres,
/// extra_float_digits 1, timestamptz in UTC).
pub fn render_binary(ty: &Type, b: &[u8]) -> Result<String, SltError> {
    let text = render_value(ty, b)?;
    Ok(if text.is_empty() {
        "(empty)".to_owned()
    } else {
        text
    })
}

/// One-dimensional arrays as `{a,b,NULL}`, elements quoted as
/// PostgreSQL's array_out quotes them.
fn render_array(elem: &Type, b: &[u8]) -> Result<String, SltError> {
    let bad = || SltError::Unsupported(format!("malformed {}[] value {b:?}", elem.name()));
    let int = |at: usize| -> Result<i32, SltError> {
        Ok(i32::from_be_bytes(
            b.get(at..at + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ))
    };
    let ndim = int(0)?;
    if ndim == 0 {
        return Ok("{}".into());
    }
    if ndim != 1 {
        return Err(SltError::Unsupported("multi-dimensional arrays".into()));
    }
    let len = int(12)?;
    let mut at = 20;
    let mut parts = Vec::new();
    for _ in 0..len {
        let n = int(at)?;
        at += 4;
        if n < 0 {
            parts.push("NULL".to_string());
            continue;
        }
        let item = b.get(at..at + n as usize).ok_or_else(bad)?;
        at += n as usize;
        let text = render_value(elem, item)?;
        let needs_quotes = text.is_empty()
            || text.eq_ignore_ascii_case("null")
            || text.contains([',', '{', '}', '"', '\\', ' ']);
        parts.push(if needs_quotes {
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        } else {
            text
        });
    }
    Ok(format!("{{{}}}", parts.join(",")))
}

fn render_value(ty: &Type, b: &[u8]) -> Result<String, SltError> {
    let bad = || SltError::Unsupported(format!("malformed {} value {b:?}", ty.name()));
    if let tokio_postgres::types::Kind::Array(elem) = ty.kind() {
        return render_array(elem, b);
    }
    let text = match *ty {
        Type::BOOL => match b {
            [0] => "f".to_owned(),
            [_] => "t".to_owned(),
            _ => return Err(bad()),
        },
        Type::INT2 => i16::from_be_bytes(b.try_into().map_err(|_| bad())?).to_string(),
        Type::INT4 => i32::from_be_bytes(b.try_into().map_err(|_| bad())?).to_string(),
        Type::INT8 => i64::from_be_bytes(b.try_into().map_err(|_| bad())?).to_string(),
        Type::OID => u32::from_be_bytes(b.try_into().map_err(|_| bad())?).to_string(),
        Type::FLOAT4 => {
            let v = f32::from_be_bytes(b.try_into().map_err(|_| bad())?);
            format_float(v.is_nan(), v.is_infinite(), &format!("{v:e}"), 6)
        }
        Type::FLOAT8 => {
            let v = f64::from_be_bytes(b.try_into().map_err(|_| bad())?);
            format_float(v.is_nan(), v.is_infinite(), &format!("{v:e}"), 15)
        }
        Type::NUMERIC => format_numeric(b).ok_or_else(bad)?,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            String::from_utf8(b.to_vec()).map_err(|_| bad())?
        }
        Type::JSONB => match b.split_first() {
            Some((1, json)) => String::from_utf8(json.to_vec()).map_err(|_| bad())?,
            _ => return Err(bad()),
        },
        Type::BYTEA => {
            let mut s = String::from("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Type::UUID => {
            let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
            if hex.len() != 32 {
                return Err(bad());
            }
            format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )
        }
        Type::DATE => format_date(i32::from_be_bytes(b.try_into().map_err(|_| bad())?)),
        Type::TIME => format_time(i64::from_be_bytes(b.try_into().map_err(|_| bad())?)),
        Type::TIMESTAMP => {
            format_timestamp(i64::from_be_bytes(b.try_into().map_err(|_| bad())?), "")
        }
        Type::TIMESTAMPTZ => {
            format_timestamp(i64::from_be_bytes(b.try_into().map_err(|_| bad())?), "+00")
        }
        Type::INTERVAL => {
            if b.len() != 16 {
                return Err(bad());
            }
            format_interval(
                i64::from_be_bytes(b[..8].try_into().unwrap()),
                i32::from_be_bytes(b[8..12].try_into().unwrap()),
                i32::from_be_bytes(b[12..].try_into().unwrap()),
            )
        }
        _ => {
            return Err(SltError::Unsupported(format!(
                "no renderer for type {}",
                ty.name()
            )))
        }
    };
    Ok(text)
}

/// float4out/float8out with extra_float_digits = 1: the shortest exact
/// digits, fixed notation for decimal exponents in [-4, threshold), else
/// `d.ddde+XX`. `sci` is Rust's `{:e}` rendering (also shortest digits).
fn format_float(nan: bool, infinite: bool, sci: &str, threshold: i32) -> String {
    if nan {
        return "NaN".to_owned();
    }
    let negative = sci.starts_with('-');
    let sign = if negative { "-" } else { "" };
    if infinite {
        return format!("{sign}Infinity");
    }
    let (mantissa, exp) = sci.split_once('e').expect("{:e} output");
    let exp: i32 = exp.parse().expect("exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if digits == "0" {
        return format!("{sign}0");
    }
    if exp < -4 || exp >= threshold {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{dot}{rest}e{exp_sign}{:02}", exp.abs())
    } else if exp < 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

/// numeric_out for the binary format: ndigits, weight, sign, dscale, then
/// base-10000 digits.
fn format_numeric(b: &[u8]) -> Option<String> {
    let word =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?)) };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i32;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".to_owned()),
        0xD000 => return Some("Infinity".to_owned()),
        0xF000 => return Some("-Infinity".to_owned()),
        _ => return None,
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    let digit = |i: i32| -> u16 {
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            0
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for i in 1..=weight {
            out.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    Some(out)
}

const USECS_PER_DAY: i64 = 86_400_000_000;

fn pg_epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()
}

/// `YYYY-MM-DD` and whether the date is BC.
fn date_parts(days: i64) -> Option<(String, bool)> {
    let date = pg_epoch().checked_add_signed(chrono::Duration::days(days))?;
    let (year, bc) = if date.year() <= 0 {
        (1 - date.year(), true)
    } else {
        (date.year(), false)
    };
    Some((
        format!("{year:04}-{:02}-{:02}", date.month(), date.day()),
        bc,
    ))
}

fn format_date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        _ => match date_parts(days as i64) {
            Some((d, true)) => format!("{d} BC"),
            Some((d, false)) => d,
            None => format!("<date {days}>"),
        },
    }
}

/// `HH:MM:SS[.ffffff]` (trailing zeros of the fraction dropped).
fn format_time(usecs: i64) -> String {
    let secs = usecs / 1_000_000;
    let frac = usecs % 1_000_000;
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        s.push_str(format!(".{frac:06}").trim_end_matches('0'));
    }
    s
}

fn format_timestamp(usecs: i64, zone: &str) -> String {
    match usecs {
        i64::MAX => return "infinity".to_owned(),
        i64::MIN => return "-infinity".to_owned(),
        _ => {}
    }
    let days = usecs.div_euclid(USECS_PER_DAY);
    let time = format_time(usecs.rem_euclid(USECS_PER_DAY));
    match date_parts(days) {
        Some((d, bc)) => format!("{d} {time}{zone}{}", if bc { " BC" } else { "" }),
        None => format!("<timestamp {usecs}>"),
    }
}

/// interval_out with IntervalStyle = postgres, e.g. `1 year 2 mons -3 days
/// +04:05:06.5`.
fn format_interval(usecs: i64, days: i32, months: i32) -> String {
    let mut out = Vec::new();
    let mut is_before = false;
    let mut is_zero = true;
    let mut field = |value: i64, unit: &str, out: &mut Vec<String>| {
        if value != 0 {
            let plus = if is_before && value > 0 { "+" } else { "" };
            let s = if value == 1 { "" } else { "s" };
            out.push(format!("{plus}{value} {unit}{s}"));
            is_before = value < 0;
            is_zero = false;
        }
    };
    field((months / 12) as i64, "year", &mut out);
    field((months % 12) as i64, "mon", &mut out);
    field(days as i64, "day", &mut out);
    if is_zero || usecs != 0 {
        let sign = if usecs < 0 {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        let abs = usecs.unsigned_abs();
        let secs = abs / 1_000_000;
        let frac = abs % 1_000_000;
        let mut t = format!(
            "{sign}{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        if frac != 0 {
            t.push_str(format!(".{frac:06}").trim_end_matches('0'));
        }
        out.push(t);
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f8(v: f64) -> String {
        format_float(v.is_nan(), v.is_infinite(), &format!("{v:e}"), 15)
    }

    fn f4(v: f32) -> String {
        format_float(v.is_nan(), v.is_infinite(), &format!("{v:e}"), 6)
    }

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(f8(0.0), "0");
        assert_eq!(f8(-0.0), "-0");
        assert_eq!(f8(1.5), "1.5");
        assert_eq!(f8(100.0), "100");
        assert_eq!(f8(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(f8(1e15), "1e+15");
        assert_eq!(f8(123456789012345.0), "123456789012345");
        assert_eq!(f8(0.0001), "0.0001");
        assert_eq!(f8(0.00001), "1e-05");
        assert_eq!(f8(-2.5e-10), "-2.5e-10");
        assert_eq!(f8(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(f8(f64::NAN), "NaN");
        assert_eq!(f8(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(f4(1234567.0), "1.234567e+06");
        assert_eq!(f4(123456.0), "123456");
        assert_eq!(f4(0.1), "0.1");
    }

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> String {
        let mut b = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
            b.extend_from_slice(&w.to_be_bytes());
        }
        format_numeric(&b).unwrap()
    }

    #[test]
    fn numerics_print_like_postgres() {
        assert_eq!(numeric(0, 0, 0, 0, &[]), "0");
        assert_eq!(numeric(0, 0, 0, 2, &[]), "0.00");
        assert_eq!(numeric(2, 0, 0, 2, &[12, 3400]), "12.34");
        assert_eq!(numeric(2, 1, 0x4000, 0, &[1, 0]), "-10000");
        assert_eq!(numeric(1, -1, 0, 4, &[5]), "0.0005");
        assert_eq!(numeric(1, -2, 0, 6, &[500]), "0.000005");
        assert_eq!(numeric(1, -2, 0, 6, &[5]), "0.000000");
        assert_eq!(numeric(3, 1, 0, 5, &[12, 3456, 7800]), "123456.78000");
        assert_eq!(numeric(0, 0, 0xC000, 0, &[]), "NaN");
    }

    #[test]
    fn datetimes_print_like_postgres() {
        assert_eq!(format_date(0), "2000-01-01");
        assert_eq!(format_date(-1), "1999-12-31");
        assert_eq!(format_date(i32::MAX), "infinity");
        assert_eq!(format_timestamp(0, ""), "2000-01-01 00:00:00");
        assert_eq!(format_timestamp(-1, ""), "1999-12-31 23:59:59.999999");
        assert_eq!(
            format_timestamp(1_500_000, "+00"),
            "2000-01-01 00:00:01.5+00"
        );
        assert_eq!(format_time(45_296_000_000), "12:34:56");
        assert_eq!(format_interval(0, 0, 0), "00:00:00");
        assert_eq!(
            format_interval(3_723_500_000, 3, 14),
            "1 year 2 mons 3 days 01:02:03.5"
        );
        assert_eq!(format_interval(-3_600_000_000, 1, 0), "1 day -01:00:00");
        assert_eq!(
            format_interval(3_600_000_000, -1, -1),
            "-1 mons -1 days +01:00:00"
        );
    }
}
