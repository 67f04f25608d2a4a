//! Session parameters: SET, RESET, SHOW, and the ParameterStatus values
//! reported to clients.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlparser::ast;

use super::execute::{tag, text_column, Session, SERVER_VERSION};
use super::QueryResult;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::value::{TimeZone, Value};

/// (canonical name, default, reported to the client as ParameterStatus)
const PARAMETERS: &[(&str, &str, bool)] = &[
    ("application_name", "", true),
    ("client_encoding", "UTF8", true),
    ("DateStyle", "ISO, MDY", true),
    ("default_transaction_isolation", "read committed", false),
    ("default_transaction_read_only", "off", true),
    ("extra_float_digits", "1", false),
    ("in_hot_standby", "off", true),
    ("integer_datetimes", "on", true),
    ("IntervalStyle", "postgres", true),
    ("is_superuser", "off", true),
    ("lock_timeout", "0", false),
    ("idle_in_transaction_session_timeout", "0", false),
    ("max_identifier_length", "63", false),
    ("search_path", "\"$user\", public", false),
    ("server_encoding", "UTF8", true),
    ("server_version", SERVER_VERSION, true),
    ("server_version_num", "150000", false),
    ("session_authorization", "", true),
    ("standard_conforming_strings", "on", true),
    ("statement_timeout", "0", false),
    ("synchronous_commit", "on", false),
    ("TimeZone", "UTC", true),
    ("transaction_isolation", "read committed", false),
    ("transaction_read_only", "off", false),
    ("bytea_output", "hex", false),
    ("client_min_messages", "notice", false),
    ("row_security", "on", false),
    ("max_connections", "100", false),
    // The node's value replaces this default (see Settings::default).
    ("max_stack_depth", "16384kB", false),
];

/// Parameters that only the server sets.
const READ_ONLY: &[&str] = &[
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
    "in_hot_standby",
    "is_superuser",
    "max_identifier_length",
    "session_authorization",
    "max_stack_depth",
];

/// The canonical spelling of a parameter name, looked up case-insensitively.
fn canonical(name: &str) -> Option<&'static str> {
    static BY_LOWER: std::sync::OnceLock<std::collections::HashMap<String, &'static str>> =
        std::sync::OnceLock::new();
    let map = BY_LOWER.get_or_init(|| {
        PARAMETERS
            .iter()
            .map(|(n, _, _)| (n.to_ascii_lowercase(), *n))
            .collect()
    });
    match map.get(name) {
        Some(n) => Some(n),
        None => map.get(&name.to_ascii_lowercase()).copied(),
    }
}

/// A session's parameters. Cloning is cheap (copy on write): every
/// transaction block keeps the settings it began with, to undo its SETs on
/// ROLLBACK, and most blocks change nothing.
#[derive(Debug, Clone)]
pub struct Settings {
    inner: std::sync::Arc<SettingsInner>,
}

#[derive(Debug, Clone)]
struct SettingsInner {
    values: BTreeMap<&'static str, String>,
    /// Custom (dotted) parameters such as `myapp.flag`.
    custom: BTreeMap<String, String>,
    tz: TimeZone,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            inner: std::sync::Arc::new(SettingsInner {
                values: PARAMETERS
                    .iter()
                    .map(|(n, d, _)| match *n {
                        "max_stack_depth" => (*n, crate::depth::show_max_stack_depth()),
                        _ => (*n, d.to_string()),
                    })
                    .collect(),
                custom: BTreeMap::new(),
                tz: TimeZone::default(),
            }),
        }
    }
}

impl Settings {
    pub fn get(&self, name: &str) -> Option<String> {
        match canonical(name) {
            Some(n) => self.inner.values.get(n).cloned(),
            None => self.inner.custom.get(&name.to_ascii_lowercase()).cloned(),
        }
    }

    /// True if neither has been changed since one was cloned from the other.
    pub fn unchanged_since(&self, other: &Settings) -> bool {
        std::sync::Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// True if the parameter has its built-in default value.
    pub fn is_default(&self, name: &str) -> bool {
        let Some(n) = canonical(name) else {
            return false;
        };
        let default = PARAMETERS.iter().find(|(p, _, _)| *p == n).map(|p| p.1);
        self.inner.values.get(n).map(String::as_str) == default
    }

    fn inner_mut(&mut self) -> &mut SettingsInner {
        std::sync::Arc::make_mut(&mut self.inner)
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.inner.tz
    }

    pub fn statement_timeout(&self) -> Duration {
        self.get("statement_timeout")
            .and_then(|v| parse_duration_ms(&v))
            .map(Duration::from_millis)
            .unwrap_or_default()
    }

    /// Sets a parameter from SET or a startup packet; returns the canonical
    /// name and normalized value.
    pub fn set(&mut self, name: &str, value: &str) -> SqlResult<(String, String)> {
        let Some(n) = canonical(name) else {
            if name.contains('.') {
                self.inner_mut()
                    .custom
                    .insert(name.to_ascii_lowercase(), value.to_string());
                return Ok((name.to_string(), value.to_string()));
            }
            return Err(SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            ));
        };
        if READ_ONLY.contains(&n) {
            return Err(SqlError::new(
                SqlState("55P02"),
                format!("parameter \"{n}\" cannot be changed"),
            ));
        }
        let value = match n {
            "TimeZone" => {
                let tz = TimeZone::parse(value).ok_or_else(|| {
                    SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("invalid value for parameter \"TimeZone\": \"{value}\""),
                    )
                })?;
                let v = tz.name.clone();
                self.inner_mut().tz = tz;
                v
            }
            "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
                let ms = parse_duration_ms(value).ok_or_else(|| {
                    SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("invalid value for parameter \"{n}\": \"{value}\""),
                    )
                })?;
                if ms == 0 {
                    "0".to_string()
                } else {
                    format_ms(ms)
                }
            }
            "client_encoding" => {
                let v = value.to_ascii_uppercase().replace('-', "");
                if v != "UTF8" && v != "UNICODE" {
                    return Err(SqlError::new(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        format!("encoding \"{value}\" is not supported; duet uses UTF8"),
                    ));
                }
                "UTF8".into()
            }
            "DateStyle" => {
                let v = value.to_ascii_uppercase();
                if !v.contains("ISO") {
                    return Err(SqlError::new(
                        SqlState::FEATURE_NOT_SUPPORTED,
                        format!("DateStyle \"{value}\" is not supported; duet uses ISO"),
                    ));
                }
                if v.contains("DMY") {
                    "ISO, DMY".into()
                } else if v.contains("YMD") {
                    "ISO, YMD".into()
                } else {
                    "ISO, MDY".into()
                }
            }
            "transaction_read_only" | "default_transaction_read_only" => {
                let b = crate::value::parse_bool(value).ok_or_else(|| {
                    SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("parameter \"{n}\" requires a Boolean value"),
                    )
                })?;
                if b { "on" } else { "off" }.into()
            }
            "default_transaction_isolation" | "transaction_isolation" => {
                let v = value.to_ascii_lowercase();
                if ![
                    "read committed",
                    "repeatable read",
                    "serializable",
                    "read uncommitted",
                ]
                .contains(&v.as_str())
                {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("invalid value for parameter \"{n}\": \"{value}\""),
                    ));
                }
                if v == "read uncommitted" {
                    "read committed".into()
                } else {
                    v
                }
            }
            "synchronous_commit" => {
                let v = value.to_ascii_lowercase();
                if ![
                    "on",
                    "off",
                    "local",
                    "remote_write",
                    "remote_apply",
                    "true",
                    "false",
                    "yes",
                    "no",
                    "1",
                    "0",
                ]
                .contains(&v.as_str())
                {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("invalid value for parameter \"synchronous_commit\": \"{value}\""),
                    ));
                }
                v
            }
            _ => value.to_string(),
        };
        self.inner_mut().values.insert(n, value.clone());
        Ok((n.to_string(), value))
    }

    /// Sets a server-controlled parameter.
    pub fn set_internal(&mut self, name: &'static str, value: &str) {
        if let Some(n) = canonical(name) {
            self.inner_mut().values.insert(n, value.to_string());
        }
    }

    pub fn reset(&mut self, name: &str) -> SqlResult<(String, String)> {
        let n = canonical(name).ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })?;
        let default = PARAMETERS
            .iter()
            .find(|(p, _, _)| *p == n)
            .map(|(_, d, _)| d.to_string())
            .unwrap_or_default();
        if n == "TimeZone" {
            self.inner_mut().tz = TimeZone::default();
        }
        self.inner_mut().values.insert(n, default.clone());
        Ok((n.to_string(), default))
    }

    pub fn is_reported(name: &str) -> bool {
        PARAMETERS.iter().any(|(n, _, r)| *r && *n == name)
    }

    pub fn reported(&self) -> Vec<(String, String)> {
        PARAMETERS
            .iter()
            .filter(|(_, _, r)| *r)
            .map(|(n, _, _)| {
                (
                    n.to_string(),
                    self.inner.values.get(n).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    pub fn all(&self) -> Vec<(String, String)> {
        self.inner
            .values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

/// The settings in a startup `options` string (libpq's PGOPTIONS):
/// `-c name=value` or `--name=value`, separated by spaces, with `\` escaping
/// the next character.
pub(crate) fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut iter = words.into_iter();
    while let Some(w) = iter.next() {
        let pair = if w == "-c" {
            iter.next()
        } else {
            w.strip_prefix("--")
                .or_else(|| w.strip_prefix("-c"))
                .map(str::to_string)
        };
        if let Some((k, v)) = pair.as_deref().and_then(|p| p.split_once('=')) {
            out.push((k.replace('-', "_"), v.to_string()));
        }
    }
    out
}

/// "100ms", "1s", "5min", "250" (milliseconds).
fn parse_duration_ms(v: &str) -> Option<u64> {
    let t = v.trim().trim_matches('\'').to_ascii_lowercase();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((n * factor) as u64)
}

fn format_ms(ms: u64) -> String {
    if ms.is_multiple_of(60_000) {
        format!("{}min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The column name SHOW uses.
pub fn show_name(variable: &[ast::Ident]) -> String {
    let name = variable
        .iter()
        .map(|i| i.value.clone())
        .collect::<Vec<_>>()
        .join(" ");
    match name.to_ascii_lowercase().as_str() {
        "time zone" => "TimeZone".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "all" => "name".into(),
        n => canonical(n).map(str::to_string).unwrap_or(n.to_string()),
    }
}

fn set_value_text(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            ast::Value::Number(n, _) => n.clone(),
            ast::Value::Boolean(b) => if *b { "on" } else { "off" }.into(),
            other => other.to_string(),
        },
        ast::Expr::Identifier(id) => id.value.clone(),
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => format!("-{}", set_value_text(expr)),
        other => other.to_string(),
    }
}

impl Session {
    pub(crate) fn set(&mut self, set: &ast::Set) -> SqlResult<QueryResult> {
        let (name, value) = match set {
            ast::Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string();
                let is_default = values.len() == 1
                    && matches!(&values[0], ast::Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default"));
                if is_default {
                    let (n, v) = self.state.settings.reset(&name)?;
                    self.after_set(&n, &v);
                    return Ok(tag("SET"));
                }
                (
                    name,
                    values
                        .iter()
                        .map(set_value_text)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
            ast::Set::SetTimeZone { value, .. } => ("TimeZone".to_string(), set_value_text(value)),
            ast::Set::SetNames { charset_name, .. } => {
                ("client_encoding".to_string(), charset_name.value.clone())
            }
            ast::Set::SetTransaction { modes, .. } => {
                for m in modes {
                    match m {
                        ast::TransactionMode::AccessMode(a) => {
                            let v = if matches!(a, ast::TransactionAccessMode::ReadOnly) {
                                "on"
                            } else {
                                "off"
                            };
                            self.state.settings.set("transaction_read_only", v)?;
                        }
                        ast::TransactionMode::IsolationLevel(l) => {
                            let v = l.to_string().to_lowercase();
                            self.state.settings.set("transaction_isolation", &v)?;
                        }
                    }
                }
                return Ok(tag("SET"));
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "SET form not supported: {other}"
                )))
            }
        };
        let (n, v) = self.state.settings.set(&name, &value)?;
        self.after_set(&n, &v);
        Ok(tag("SET"))
    }

    fn after_set(&mut self, name: &str, value: &str) {
        if Settings::is_reported(name) {
            self.parameter_changed(name, value);
        }
    }

    pub(crate) fn reset(&mut self, reset: &ast::Reset) -> SqlResult<QueryResult> {
        match reset {
            ast::Reset::ConfigurationParameter(name) => {
                let (n, v) = self.state.settings.reset(&name.to_string())?;
                self.after_set(&n, &v);
            }
            _ => {
                let reported_before = self.state.settings.reported();
                let keep: Vec<(&'static str, String)> = ["is_superuser", "session_authorization"]
                    .iter()
                    .filter_map(|k| self.state.settings.get(k).map(|v| (*k, v)))
                    .collect();
                self.state.settings = Settings::default();
                for (k, v) in keep {
                    self.state.settings.set_internal(k, &v);
                }
                for (k, v) in self.state.settings.reported() {
                    if !reported_before.contains(&(k.clone(), v.clone())) {
                        self.parameter_changed(&k, &v);
                    }
                }
            }
        }
        Ok(tag("RESET"))
    }

    pub(crate) fn show(&mut self, variable: &[ast::Ident]) -> SqlResult<QueryResult> {
        let col = show_name(variable);
        if col == "name" {
            let rows = self
                .state
                .settings
                .all()
                .into_iter()
                .map(|(k, v)| vec![Value::Text(k), Value::Text(v)])
                .collect();
            return Ok(QueryResult {
                tag: "SHOW".into(),
                columns: Some(vec![text_column("name"), text_column("setting")]),
                rows,
                copy: None,
            });
        }
        let value = self.state.settings.get(&col).ok_or_else(|| {
            SqlError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{col}\""),
            )
        })?;
        Ok(QueryResult {
            tag: "SHOW".into(),
            columns: Some(vec![text_column(&col)]),
            rows: vec![vec![Value::Text(value)]],
            copy: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ms("100ms"), Some(100));
        assert_eq!(parse_duration_ms("2s"), Some(2000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("1min"), Some(60000));
        assert_eq!(parse_duration_ms("abc"), None);
    }

    #[test]
    fn set_validates_and_normalizes() {
        let mut s = Settings::default();
        assert_eq!(s.set("timezone", "UTC").unwrap().0, "TimeZone");
        assert!(s.set("no_such_thing", "1").is_err());
        assert!(s.set("myapp.flag", "1").is_ok());
        assert_eq!(s.set("statement_timeout", "1000").unwrap().1, "1s");
        assert!(s.set("server_version", "1").is_err());
    }
}

#[cfg(test)]
mod options_tests {
    use super::parse_options;

    #[test]
    fn pgoptions_strings_become_settings() {
        assert_eq!(
            parse_options(
                "-c synchronous_commit=on --statement-timeout=5s -cDateStyle=ISO\\,\\ DMY"
            ),
            vec![
                ("synchronous_commit".to_string(), "on".to_string()),
                ("statement_timeout".to_string(), "5s".to_string()),
                ("DateStyle".to_string(), "ISO, DMY".to_string()),
            ]
        );
        assert!(parse_options("").is_empty());
    }
}
