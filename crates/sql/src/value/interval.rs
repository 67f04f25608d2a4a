//! PostgreSQL's interval: months, days and microseconds kept apart (a
//! month is not a fixed number of days, nor a day of hours across DST),
//! with its text input and output ("1 year 2 mons 3 days 04:05:06").

use chrono::{Months, NaiveDateTime};

use crate::error::{SqlError, SqlResult, SqlState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

fn bad(input: &str) -> SqlError {
    SqlError::new(
        SqlState::INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type interval: \"{input}\""),
    )
}

fn overflow() -> SqlError {
    SqlError::new(SqlState::DATETIME_FIELD_OVERFLOW, "interval out of range")
}

impl Interval {
    /// The span as comparable microseconds (a month counts as 30 days and
    /// a day as 24 hours, as PostgreSQL compares intervals).
    pub fn sort_key(&self) -> i128 {
        (self.months as i128 * 30 + self.days as i128) * MICROS_PER_DAY as i128
            + self.micros as i128
    }

    pub fn negate(&self) -> SqlResult<Interval> {
        Ok(Interval {
            months: self.months.checked_neg().ok_or_else(overflow)?,
            days: self.days.checked_neg().ok_or_else(overflow)?,
            micros: self.micros.checked_neg().ok_or_else(overflow)?,
        })
    }

    pub fn add(&self, other: &Interval) -> SqlResult<Interval> {
        Ok(Interval {
            months: self.months.checked_add(other.months).ok_or_else(overflow)?,
            days: self.days.checked_add(other.days).ok_or_else(overflow)?,
            micros: self.micros.checked_add(other.micros).ok_or_else(overflow)?,
        })
    }

    /// interval * factor, fractions of months and days cascading down as
    /// PostgreSQL does (a month is 30 days, a day 24 hours).
    pub fn scale(&self, factor: f64) -> SqlResult<Interval> {
        let months = self.months as f64 * factor;
        let whole_months = months.trunc();
        let days = self.days as f64 * factor + (months - whole_months) * 30.0;
        let whole_days = days.trunc();
        let micros = self.micros as f64 * factor + (days - whole_days) * MICROS_PER_DAY as f64;
        let fits = |v: f64, max: f64| v.is_finite() && v.abs() <= max;
        if !fits(whole_months, i32::MAX as f64)
            || !fits(whole_days, i32::MAX as f64)
            || !fits(micros, i64::MAX as f64)
        {
            return Err(overflow());
        }
        Ok(Interval {
            months: whole_months as i32,
            days: whole_days as i32,
            micros: micros.round() as i64,
        })
    }

    /// timestamp + interval: months first (clamped to the month's end),
    /// then days, then the time part.
    pub fn add_to(&self, t: &NaiveDateTime) -> SqlResult<NaiveDateTime> {
        let out_of_range =
            || SqlError::new(SqlState::DATETIME_FIELD_OVERFLOW, "timestamp out of range");
        let t = if self.months >= 0 {
            t.checked_add_months(Months::new(self.months as u32))
        } else {
            t.checked_sub_months(Months::new(self.months.unsigned_abs()))
        }
        .ok_or_else(out_of_range)?;
        t.checked_add_signed(chrono::Duration::days(self.days as i64))
            .and_then(|t| t.checked_add_signed(chrono::Duration::microseconds(self.micros)))
            .ok_or_else(out_of_range)
    }

    /// The difference of two timestamps, as PostgreSQL's timestamp -
    /// timestamp: whole days and the rest as time.
    pub fn between(a: &NaiveDateTime, b: &NaiveDateTime) -> Interval {
        let micros = (*a - *b).num_microseconds().unwrap_or(i64::MAX);
        Interval {
            months: 0,
            days: (micros / MICROS_PER_DAY) as i32,
            micros: micros % MICROS_PER_DAY,
        }
    }

    /// PostgreSQL's default (IntervalStyle = postgres) output: a positive
    /// field right after a negative one carries a "+".
    pub fn format(&self) -> String {
        let mut out = String::new();
        let mut previous_negative = false;
        let mut part = |out: &mut String, n: i64, one: &str, many: &str| {
            if n == 0 {
                return;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            let sign = if previous_negative && n > 0 { "+" } else { "" };
            out.push_str(&format!("{sign}{n} {}", if n == 1 { one } else { many }));
            previous_negative = n < 0;
        };
        part(&mut out, (self.months / 12) as i64, "year", "years");
        part(&mut out, (self.months % 12) as i64, "mon", "mons");
        part(&mut out, self.days as i64, "day", "days");
        if self.micros != 0 || out.is_empty() {
            let total = self.micros.unsigned_abs();
            let secs = total / MICROS_PER_SECOND as u64;
            let frac = total % MICROS_PER_SECOND as u64;
            if !out.is_empty() {
                out.push(' ');
            }
            if self.micros < 0 {
                out.push('-');
            } else if previous_negative {
                out.push('+');
            }
            out.push_str(&format!(
                "{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            ));
            if frac != 0 {
                out.push('.');
                out.push_str(format!("{frac:06}").trim_end_matches('0'));
            }
        }
        out
    }

    /// PostgreSQL's interval input: "1 day 2 hours", "3 days 04:05:06.5",
    /// "-1 mons", "1 year ago", "01:02", ISO 8601 "P1Y2M3DT4H5M6S".
    pub fn parse(input: &str) -> SqlResult<Interval> {
        let s = input.trim();
        if s.is_empty() {
            return Err(bad(input));
        }
        if let Some(iso) = s.strip_prefix('P').or_else(|| s.strip_prefix('p')) {
            return parse_iso(iso).ok_or_else(|| bad(input));
        }
        let mut acc = Acc::default();
        let lower = s.to_lowercase();
        let mut tokens: Vec<&str> = lower.split_whitespace().collect();
        let mut ago = false;
        if tokens.last() == Some(&"ago") {
            ago = true;
            tokens.pop();
        }
        if tokens.first() == Some(&"@") {
            tokens.remove(0);
        }
        let mut i = 0;
        while i < tokens.len() {
            let tok = tokens[i];
            if tok.contains(':') {
                acc.time(tok).ok_or_else(|| bad(input))?;
                i += 1;
                continue;
            }
            // "3days" and "3 days" both work.
            let split = tok
                .find(|c: char| c.is_ascii_alphabetic())
                .unwrap_or(tok.len());
            let (number, mut unit) = tok.split_at(split);
            if number.is_empty() {
                return Err(bad(input));
            }
            let value: f64 = number
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| bad(input))?;
            if unit.is_empty() {
                match tokens.get(i + 1) {
                    Some(u) if u.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                        unit = u;
                        i += 1;
                    }
                    // A bare number is seconds.
                    _ => unit = "second",
                }
            }
            acc.unit(value, unit).ok_or_else(|| bad(input))?;
            i += 1;
        }
        let interval = acc.finish().ok_or_else(overflow)?;
        if ago {
            interval.negate()
        } else {
            Ok(interval)
        }
    }
}

/// Accumulates fields with fractions cascading to smaller units.
#[derive(Default)]
struct Acc {
    months: f64,
    days: f64,
    micros: f64,
}

impl Acc {
    fn unit(&mut self, v: f64, unit: &str) -> Option<()> {
        let u = unit.trim_end_matches('s');
        match u {
            "microsecond" | "u" | "usec" | "microsecon" => self.micros += v,
            "millisecond" | "m" if unit == "ms" => self.micros += v * 1000.0,
            "millisecond" | "msec" => self.micros += v * 1000.0,
            "second" | "sec" | "" => self.micros += v * MICROS_PER_SECOND as f64,
            "minute" | "min" | "m" => self.micros += v * 60.0 * MICROS_PER_SECOND as f64,
            "hour" | "hr" | "h" => self.micros += v * 3600.0 * MICROS_PER_SECOND as f64,
            "day" | "d" => self.days += v,
            "week" | "w" => self.days += v * 7.0,
            "month" | "mon" => self.months += v,
            "year" | "yr" | "y" => self.months += v * 12.0,
            "decade" => self.months += v * 120.0,
            "century" | "centurie" => self.months += v * 1200.0,
            "millennium" | "millennia" => self.months += v * 12000.0,
            _ => return None,
        }
        Some(())
    }

    /// "[-]hh:mm[:ss[.frac]]"
    fn time(&mut self, tok: &str) -> Option<()> {
        let (negative, body) = match tok.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, tok.strip_prefix('+').unwrap_or(tok)),
        };
        let fields: Vec<&str> = body.split(':').collect();
        if fields.len() < 2 || fields.len() > 3 {
            return None;
        }
        let field = |t: &str| t.parse::<f64>().ok().filter(|v| v.is_finite());
        let hours = field(fields[0])?;
        let minutes = field(fields[1])?;
        let seconds = match fields.get(2) {
            Some(s) => field(s)?,
            None => 0.0,
        };
        let micros = ((hours * 60.0 + minutes) * 60.0 + seconds) * MICROS_PER_SECOND as f64;
        self.micros += if negative { -micros } else { micros };
        Some(())
    }

    fn finish(self) -> Option<Interval> {
        let months = self.months.trunc();
        let days = self.days + (self.months - months) * 30.0;
        let whole_days = days.trunc();
        let micros = self.micros + (days - whole_days) * MICROS_PER_DAY as f64;
        if months.abs() > i32::MAX as f64
            || whole_days.abs() > i32::MAX as f64
            || micros.abs() > i64::MAX as f64
        {
            return None;
        }
        Some(Interval {
            months: months as i32,
            days: whole_days as i32,
            micros: micros.round() as i64,
        })
    }
}

/// ISO 8601 duration after the P: "1Y2M3DT4H5M6S", "T1H", "2W".
fn parse_iso(s: &str) -> Option<Interval> {
    let mut acc = Acc::default();
    let mut in_time = false;
    let mut number = String::new();
    for c in s.chars() {
        match c {
            'T' | 't' => in_time = true,
            c if c.is_ascii_digit() || c == '.' || c == '-' => number.push(c),
            unit => {
                let v: f64 = number.parse().ok()?;
                number.clear();
                let name = match (unit.to_ascii_uppercase(), in_time) {
                    ('Y', false) => "year",
                    ('M', false) => "month",
                    ('W', false) => "week",
                    ('D', false) => "day",
                    ('H', true) => "hour",
                    ('M', true) => "minute",
                    ('S', true) => "second",
                    _ => return None,
                };
                acc.unit(v, name)?;
            }
        }
    }
    if !number.is_empty() {
        return None;
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &str, expected: &str) {
        assert_eq!(
            Interval::parse(input).unwrap().format(),
            expected,
            "{input}"
        );
    }

    #[test]
    fn text_forms_print_like_postgres() {
        round_trip("1 day", "1 day");
        round_trip("1 day 2 hours", "1 day 02:00:00");
        round_trip(
            "1 year 2 months 3 days 04:05:06.5",
            "1 year 2 mons 3 days 04:05:06.5",
        );
        round_trip("-1 days", "-1 days");
        round_trip("90 minutes", "01:30:00");
        round_trip("1.5 days", "1 day 12:00:00");
        round_trip("2 weeks", "14 days");
        round_trip("0", "00:00:00");
        round_trip("-00:30", "-00:30:00");
        round_trip("1 day ago", "-1 days");
        round_trip("P1Y2M3DT4H5M6S", "1 year 2 mons 3 days 04:05:06");
        round_trip("1 mon -1 days", "1 mon -1 days");
        round_trip("-1 mons 3 days -00:00:01.5", "-1 mons +3 days -00:00:01.5");
        round_trip("-1 days 02:00", "-1 days +02:00:00");
        round_trip("3 days -04:00", "3 days -04:00:00");
        assert!(Interval::parse("soon").is_err());
        assert!(Interval::parse("nan:00").is_err());
        assert!(Interval::parse("inf days").is_err());
        assert!(Interval::parse("").is_err());
    }

    #[test]
    fn adding_months_clamps_to_the_month_end() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 31)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        let one_month = Interval::parse("1 month").unwrap();
        assert_eq!(
            one_month.add_to(&t).unwrap().to_string(),
            "2024-02-29 12:00:00"
        );
    }
}
