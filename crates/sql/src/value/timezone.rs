//! The session's TimeZone setting.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::text::format_timestamp;

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
        if !(0..=15).contains(&h) || !(0..=59).contains(&m) {
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
