//! Scalar functions: name resolution with argument types, and evaluation.

use rand::Rng;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::cast::cast;
use crate::error::{SqlError, SqlResult, SqlState};
use crate::expr::EvalEnv;
use crate::types::DataType;
use crate::value::{decimal_to_f64, Value};

mod common;
mod datetime;
mod document;

use datetime::{date_part, date_trunc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// uuid, json and interval functions (see `document`).
    Doc(document::DocFunc),
    /// String, math and date/time functions (see `common`).
    Common(common::CommonFunc),
    /// Set-returning functions in a SELECT list: evaluate to an array of
    /// their results, which a ProjectSet plan turns into rows.
    GenerateSeries,
    Unnest,
    /// information_schema._pg_expandarray: (element, position) records.
    ExpandArray,
    /// A field of a record, by position.
    RecordField(usize),
    /// ARRAY[a, b, ...]
    MakeArray,
    Now,
    LocalTimestamp,
    ClockTimestamp,
    CurrentDate,
    Version,
    CurrentDatabase,
    CurrentUser,
    CurrentSchema,
    CurrentSetting,
    BackendPid,
    InetServerPort,
    IsInRecovery,
    CurrentWalLsn,
    ReceiveLsn,
    ReplayLsn,
    LastReplayTimestamp,
    ReplicationEpoch,
    WalLsnDiff,
    NextVal,
    CurrVal,
    SetVal,
    Coalesce,
    NullIf,
    Greatest,
    Least,
    Lower,
    Upper,
    Length,
    OctetLength,
    Abs,
    Round,
    Floor,
    Ceil,
    Trunc,
    Mod,
    Power,
    Sqrt,
    Concat,
    Substr,
    Trim,
    LTrim,
    RTrim,
    Replace,
    StrPos,
    Left,
    Right,
    Lpad,
    Rpad,
    Repeat,
    Random,
    PgSleep,
    /// `duet_test_panic(text)`: panics, to test that a panic ends only its
    /// session; exists only on a node started with test hooks on
    /// (`crate::testing`).
    TestPanic,
    FormatType,
    TableIsVisible,
    ObjDescription,
    GetUserById,
    Md5,
    DatePart,
    DateTrunc,
    ToRegclass,
    ArrayToString,
    GetExpr,
    GetIndexDef,
    GetConstraintDef,
    RegclassName,
    PartitionAncestors,
    RelationIsPublishable,
    HasPrivilege,
    ArrayUpper,
    EncodingToChar,
    RelationSize,
    SizePretty,
    ArrayLength,
    Cardinality,
    Subscript,
}

impl Func {
    /// Functions whose value changes between rows (never constant-folded).
    pub fn is_volatile(&self) -> bool {
        matches!(
            self,
            Func::NextVal
                | Func::SetVal
                | Func::Random
                | Func::ClockTimestamp
                | Func::PgSleep
                | Func::TestPanic
        ) || matches!(self, Func::Doc(d) if d.is_volatile())
    }

    /// Returns a set of rows (planned into a ProjectSet).
    pub fn is_set_returning(&self) -> bool {
        matches!(
            self,
            Func::GenerateSeries | Func::Unnest | Func::ExpandArray
        )
    }

    /// Resolves a function by name and argument types; returns the result type.
    pub fn resolve(name: &str, args: &[DataType]) -> SqlResult<(Func, DataType)> {
        use DataType as T;
        if let Some((f, ty)) = document::resolve(name, args) {
            return Ok((Func::Doc(f), ty));
        }
        if let Some((f, ty)) = common::resolve(name, args) {
            return Ok((Func::Common(f), ty));
        }
        match (name, args.len()) {
            ("generate_series", 2 | 3) => {
                let ty = common_type(args)?;
                if !ty.is_integer() && ty != T::Unknown {
                    return Err(SqlError::unsupported(
                        "generate_series in a SELECT list takes integers; use it in FROM",
                    ));
                }
                return Ok((
                    Func::GenerateSeries,
                    if ty == T::Int8 { T::Int8 } else { T::Int4 },
                ));
            }
            ("unnest", 1) => {
                let elem = match &args[0] {
                    T::Array(e) => (**e).clone(),
                    _ => T::Text,
                };
                return Ok((Func::Unnest, elem));
            }
            ("_pg_expandarray", 1) => {
                return Ok((
                    Func::ExpandArray,
                    T::Record(vec![("x".into(), T::Int4), ("n".into(), T::Int4)]),
                ))
            }
            _ => {}
        }
        let n = args.len();
        let first = args.first().cloned().unwrap_or(T::Unknown);
        let numeric_result = |t: &DataType| match t {
            T::Int2 | T::Int4 | T::Int8 | T::Numeric(_) | T::Unknown => T::Numeric(None),
            _ => T::Float8,
        };
        let common = || common_type(args);
        let f = match (name, n) {
            ("now" | "transaction_timestamp" | "statement_timestamp" | "current_timestamp", 0) => {
                (Func::Now, T::TimestampTz)
            }
            ("localtimestamp", 0) => (Func::LocalTimestamp, T::Timestamp),
            ("clock_timestamp", 0) => (Func::ClockTimestamp, T::TimestampTz),
            ("current_date", 0) => (Func::CurrentDate, T::Date),
            ("version", 0) => (Func::Version, T::Text),
            ("current_database" | "current_catalog", 0) => (Func::CurrentDatabase, T::Name),
            ("current_user" | "user" | "session_user" | "current_role", 0) => {
                (Func::CurrentUser, T::Name)
            }
            ("current_schema", 0) => (Func::CurrentSchema, T::Name),
            ("current_setting", 1 | 2) => (Func::CurrentSetting, T::Text),
            ("pg_backend_pid", 0) => (Func::BackendPid, T::Int4),
            ("inet_server_port", 0) => (Func::InetServerPort, T::Int4),
            ("pg_is_in_recovery", 0) => (Func::IsInRecovery, T::Bool),
            (
                "pg_current_wal_lsn" | "pg_current_wal_insert_lsn" | "pg_current_wal_flush_lsn",
                0,
            ) => (Func::CurrentWalLsn, T::Text),
            ("pg_last_wal_receive_lsn", 0) => (Func::ReceiveLsn, T::Text),
            ("pg_last_wal_replay_lsn", 0) => (Func::ReplayLsn, T::Text),
            ("pg_last_xact_replay_timestamp", 0) => (Func::LastReplayTimestamp, T::TimestampTz),
            // duet's own: the epoch a write was accepted under.
            ("duet_replication_epoch", 0) => (Func::ReplicationEpoch, T::Int8),
            ("pg_wal_lsn_diff", 2) => (Func::WalLsnDiff, T::Numeric(None)),
            ("nextval", 1) => (Func::NextVal, T::Int8),
            ("currval", 1) => (Func::CurrVal, T::Int8),
            ("setval", 2 | 3) => (Func::SetVal, T::Int8),
            ("coalesce", 1..) => (Func::Coalesce, common()?),
            ("nullif", 2) => (Func::NullIf, first),
            ("greatest", 1..) => (Func::Greatest, common()?),
            ("least", 1..) => (Func::Least, common()?),
            ("lower", 1) => (Func::Lower, T::Text),
            ("upper", 1) => (Func::Upper, T::Text),
            ("length" | "char_length" | "character_length", 1) => (Func::Length, T::Int4),
            ("octet_length", 1) => (Func::OctetLength, T::Int4),
            ("abs", 1) => (
                Func::Abs,
                if first == T::Unknown {
                    T::Float8
                } else {
                    first
                },
            ),
            ("round", 1 | 2) => (
                Func::Round,
                if n == 2 {
                    T::Numeric(None)
                } else {
                    numeric_result(&first)
                },
            ),
            ("floor", 1) => (Func::Floor, numeric_result(&first)),
            ("ceil" | "ceiling", 1) => (Func::Ceil, numeric_result(&first)),
            ("trunc", 1 | 2) => (
                Func::Trunc,
                if n == 2 {
                    T::Numeric(None)
                } else {
                    numeric_result(&first)
                },
            ),
            ("mod", 2) => (Func::Mod, common()?),
            ("power" | "pow", 2) => (Func::Power, numeric_result(&common()?)),
            ("sqrt", 1) => (Func::Sqrt, numeric_result(&first)),
            ("concat", _) => (Func::Concat, T::Text),
            ("substr" | "substring", 2 | 3) => (Func::Substr, T::Text),
            ("btrim", 1 | 2) => (Func::Trim, T::Text),
            ("ltrim", 1 | 2) => (Func::LTrim, T::Text),
            ("rtrim", 1 | 2) => (Func::RTrim, T::Text),
            ("replace", 3) => (Func::Replace, T::Text),
            ("strpos", 2) => (Func::StrPos, T::Int4),
            ("left", 2) => (Func::Left, T::Text),
            ("right", 2) => (Func::Right, T::Text),
            ("lpad", 2 | 3) => (Func::Lpad, T::Text),
            ("rpad", 2 | 3) => (Func::Rpad, T::Text),
            ("repeat", 2) => (Func::Repeat, T::Text),
            ("random", 0) => (Func::Random, T::Float8),
            ("pg_sleep", 1) => (Func::PgSleep, T::Unknown),
            ("duet_test_panic", 1) if crate::testing::panic_hook_enabled() => {
                (Func::TestPanic, T::Text)
            }
            ("format_type", 2) => (Func::FormatType, T::Text),
            ("pg_table_is_visible", 1) => (Func::TableIsVisible, T::Bool),
            ("obj_description" | "col_description" | "shobj_description", 1 | 2) => {
                (Func::ObjDescription, T::Text)
            }
            // Introspection of objects duet does not have: always NULL.
            (
                "pg_get_statisticsobjdef_columns"
                | "pg_get_partkeydef"
                | "pg_get_triggerdef"
                | "pg_get_viewdef"
                | "pg_get_ruledef",
                _,
            ) => (Func::ObjDescription, T::Text),
            ("pg_get_userbyid", 1) => (Func::GetUserById, T::Name),
            ("md5", 1) => (Func::Md5, T::Text),
            ("date_part", 2) => (Func::DatePart, T::Float8),
            ("date_trunc", 2) => (
                Func::DateTrunc,
                if args.get(1) == Some(&T::Timestamp) {
                    T::Timestamp
                } else {
                    T::TimestampTz
                },
            ),
            ("to_regclass", 1) => (Func::ToRegclass, T::Oid),
            ("array_to_string", 2 | 3) => (Func::ArrayToString, T::Text),
            ("pg_get_expr", 2 | 3) => (Func::GetExpr, T::Text),
            ("array_upper", 2) => (Func::ArrayUpper, T::Int4),
            ("pg_encoding_to_char", 1) => (Func::EncodingToChar, T::Name),
            (
                "pg_table_size"
                | "pg_relation_size"
                | "pg_total_relation_size"
                | "pg_indexes_size"
                | "pg_database_size",
                1 | 2,
            ) => (Func::RelationSize, T::Int8),
            ("pg_size_pretty", 1) => (Func::SizePretty, T::Text),
            ("array_lower", 2) => (Func::ArrayLength, T::Int4),
            ("array_length", 2) => (Func::ArrayLength, T::Int4),
            ("cardinality", 1) => (Func::Cardinality, T::Int4),
            ("pg_get_indexdef", 1 | 3) => (Func::GetIndexDef, T::Text),
            ("pg_get_constraintdef", 1 | 2) => (Func::GetConstraintDef, T::Text),
            // duet has no partitions: a table is its only ancestor.
            ("pg_partition_ancestors", 1) => (Func::PartitionAncestors, T::Oid),
            ("pg_relation_is_publishable", 1) => (Func::RelationIsPublishable, T::Bool),
            ("has_table_privilege" | "has_schema_privilege" | "has_database_privilege", 2 | 3) => {
                (Func::HasPrivilege, T::Bool)
            }
            _ => {
                let types: Vec<String> = args.iter().map(|t| t.sql_name()).collect();
                return Err(SqlError::new(
                    SqlState::UNDEFINED_FUNCTION,
                    format!("function {}({}) does not exist", name, types.join(", ")),
                )
                .with_hint("No function matches the given name and argument types. You might need to add explicit type casts."));
            }
        };
        Ok(f)
    }

    pub fn eval(&self, args: Vec<Value>, ty: &DataType, env: &EvalEnv) -> SqlResult<Value> {
        use Value as V;
        // Most functions are strict: NULL in, NULL out.
        let strict = !matches!(
            self,
            Func::Coalesce
                | Func::Concat
                | Func::Greatest
                | Func::Least
                | Func::NullIf
                | Func::CurrentSetting
                | Func::ObjDescription
                | Func::MakeArray
        ) && !matches!(self, Func::Doc(d) if !d.is_strict());
        if strict && args.iter().any(Value::is_null) {
            return Ok(V::Null);
        }

        let text = |i: usize| -> String {
            match args.get(i) {
                Some(V::Text(s)) => s.clone(),
                Some(v) => v
                    .to_text(&crate::cast::type_of(v), env.tz)
                    .unwrap_or_default(),
                None => String::new(),
            }
        };
        let int = |i: usize| -> SqlResult<i64> {
            match args.get(i) {
                Some(V::Int(n)) => Ok(*n),
                Some(V::Text(s)) => s
                    .trim()
                    .parse()
                    .map_err(|_| SqlError::invalid_text("integer", s)),
                Some(V::Float(f)) => Ok(*f as i64),
                Some(V::Numeric(d)) => d.to_i64().ok_or_else(|| SqlError::out_of_range("integer")),
                _ => Err(SqlError::internal("integer argument expected")),
            }
        };
        Ok(match self {
            Func::Doc(d) => return d.eval(&args, &[], env.tz),
            Func::Common(c) => return c.eval(&args, ty, env.tz),
            Func::GenerateSeries => {
                let mut it = args.into_iter();
                let (a, b) = (it.next().unwrap_or(V::Null), it.next().unwrap_or(V::Null));
                let s = it.next().unwrap_or(V::Int(1));
                V::Array(
                    crate::exec::series_of(a, b, s, env)?
                        .map(|r| r.map(|mut row| row.pop().unwrap_or(V::Null)))
                        .collect::<SqlResult<_>>()?,
                )
            }
            Func::Unnest => match args.into_iter().next() {
                Some(V::Array(items)) => V::Array(items),
                _ => V::Array(Vec::new()),
            },
            Func::ExpandArray => {
                // An array, or an int2vector's text ("1 2").
                let items: Vec<V> = match args.into_iter().next() {
                    Some(V::Array(items)) => items,
                    Some(V::Text(t)) => t
                        .split_whitespace()
                        .map(|x| x.parse::<i64>().map(V::Int).unwrap_or(V::Null))
                        .collect(),
                    _ => Vec::new(),
                };
                V::Array(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, x)| V::Array(vec![x, V::Int(i as i64 + 1)]))
                        .collect(),
                )
            }
            Func::MakeArray => V::Array(args),
            Func::RecordField(i) => match args.into_iter().next() {
                Some(V::Array(fields)) => fields.get(*i).cloned().unwrap_or(V::Null),
                _ => V::Null,
            },
            Func::Now => V::TimestampTz(env.txn_time),
            Func::ClockTimestamp => V::TimestampTz(chrono::Utc::now()),
            Func::LocalTimestamp => cast(
                V::TimestampTz(env.txn_time),
                &DataType::Timestamp,
                env.tz,
                true,
            )?,
            Func::CurrentDate => cast(V::TimestampTz(env.txn_time), &DataType::Date, env.tz, true)?,
            Func::Version => V::Text(crate::session::version_string()),
            Func::CurrentDatabase => V::Text(env.session.current_database().to_string()),
            Func::CurrentUser => V::Text(env.session.current_user().to_string()),
            Func::CurrentSchema => V::Text("public".into()),
            Func::CurrentSetting => {
                let name = text(0);
                match env.session.setting(&name.to_ascii_lowercase()) {
                    Some(v) => V::Text(v),
                    None if args.get(1) == Some(&V::Bool(true)) => V::Null,
                    None => {
                        return Err(SqlError::new(
                            SqlState::UNDEFINED_OBJECT,
                            format!("unrecognized configuration parameter \"{name}\""),
                        ))
                    }
                }
            }
            Func::BackendPid => V::Int(env.session.backend_pid() as i64),
            Func::InetServerPort => env
                .session
                .server_port()
                .map_or(V::Null, |p| V::Int(i64::from(p))),
            Func::IsInRecovery => V::Bool(env.session.in_recovery()),
            Func::CurrentWalLsn | Func::ReceiveLsn | Func::ReplayLsn => {
                let function = match self {
                    Func::CurrentWalLsn => "pg_current_wal_lsn",
                    Func::ReceiveLsn => "pg_last_wal_receive_lsn",
                    _ => "pg_last_wal_replay_lsn",
                };
                if *self == Func::CurrentWalLsn && env.session.in_recovery() {
                    return Err(SqlError::new(SqlState("55000"), "recovery is in progress")
                        .with_hint("WAL control functions cannot be executed during recovery."));
                }
                match env.session.wal_lsn(function) {
                    Some(lsn) => V::Text(duet_storage::format_lsn(lsn)),
                    None => V::Null,
                }
            }
            Func::ReplicationEpoch => V::Int(env.session.replication_epoch() as i64),
            // Bytes between two LSNs (`X/X` text; duet has no pg_lsn type).
            Func::WalLsnDiff => {
                let lsn = |i: usize| {
                    let t = text(i);
                    duet_storage::parse_lsn(&t).ok_or_else(|| SqlError::invalid_text("pg_lsn", &t))
                };
                V::Numeric(Decimal::from(i128::from(lsn(0)?) - i128::from(lsn(1)?)))
            }
            Func::LastReplayTimestamp => match env.session.last_replay() {
                Some(t) => V::TimestampTz(chrono::DateTime::<chrono::Utc>::from(t)),
                None => V::Null,
            },
            Func::NextVal => V::Int(env.session.nextval(&sequence_name(&args[0], env)?)?),
            Func::CurrVal => V::Int(env.session.currval(&sequence_name(&args[0], env)?)?),
            Func::SetVal => {
                let called = !matches!(args.get(2), Some(V::Bool(false)));
                V::Int(
                    env.session
                        .setval(&sequence_name(&args[0], env)?, int(1)?, called)?,
                )
            }
            Func::Coalesce => {
                let v = args.into_iter().find(|v| !v.is_null()).unwrap_or(V::Null);
                cast(v, ty, env.tz, false)?
            }
            Func::NullIf => {
                if !args[0].is_null()
                    && !args[1].is_null()
                    && crate::expr::compare(&args[0], &args[1], env.tz)?.is_eq()
                {
                    V::Null
                } else {
                    args[0].clone()
                }
            }
            Func::Greatest | Func::Least => {
                let mut best: Option<Value> = None;
                for v in args.into_iter().filter(|v| !v.is_null()) {
                    let v = cast(v, ty, env.tz, false)?;
                    best = Some(match best {
                        None => v,
                        Some(b) => {
                            let o = v.total_cmp(&b);
                            if (*self == Func::Greatest) == o.is_gt() {
                                v
                            } else {
                                b
                            }
                        }
                    });
                }
                best.unwrap_or(V::Null)
            }
            Func::Lower => V::Text(text(0).to_lowercase()),
            Func::Upper => V::Text(text(0).to_uppercase()),
            Func::Length => match &args[0] {
                V::Bytea(b) => V::Int(b.len() as i64),
                _ => V::Int(text(0).chars().count() as i64),
            },
            Func::OctetLength => match &args[0] {
                V::Bytea(b) => V::Int(b.len() as i64),
                _ => V::Int(text(0).len() as i64),
            },
            Func::Abs => match &args[0] {
                V::Int(i) => V::Int(
                    i.checked_abs()
                        .ok_or_else(|| SqlError::out_of_range(&ty.type_name()))?,
                ),
                V::Float(f) => V::Float(f.abs()),
                V::Numeric(d) => V::Numeric(d.abs()),
                other => return Err(bad_arg("abs", other)),
            },
            Func::Round | Func::Trunc => {
                let places = if args.len() == 2 { int(1)? } else { 0 };
                let strategy = if *self == Func::Round {
                    RoundingStrategy::MidpointAwayFromZero
                } else {
                    RoundingStrategy::ToZero
                };
                match (&args[0], ty) {
                    (V::Float(f), DataType::Float8) if args.len() == 1 => {
                        V::Float(if *self == Func::Round {
                            f.round_ties_even()
                        } else {
                            f.trunc()
                        })
                    }
                    (v, _) => {
                        let d = to_decimal(v)?;
                        let mut r = if places >= 0 {
                            d.round_dp_with_strategy(places as u32, strategy)
                        } else {
                            let factor = Decimal::from(10i64.pow((-places).min(18) as u32));
                            (d / factor).round_dp_with_strategy(0, strategy) * factor
                        };
                        if places >= 0 {
                            r.rescale(places as u32);
                        }
                        V::Numeric(r)
                    }
                }
            }
            Func::Floor | Func::Ceil => match &args[0] {
                V::Float(f) => V::Float(if *self == Func::Floor {
                    f.floor()
                } else {
                    f.ceil()
                }),
                v => {
                    let d = to_decimal(v)?;
                    V::Numeric(if *self == Func::Floor {
                        d.floor()
                    } else {
                        d.ceil()
                    })
                }
            },
            Func::Mod => {
                let env_ty = ty.clone();
                return crate::expr::Expr::Binary {
                    op: crate::expr::BinOp::Mod,
                    left: Box::new(crate::expr::Expr::Literal(args[0].clone(), env_ty.clone())),
                    right: Box::new(crate::expr::Expr::Literal(args[1].clone(), env_ty.clone())),
                    ty: env_ty,
                }
                .eval(&[], env);
            }
            Func::Power => {
                let (a, b) = (to_f64(&args[0])?, to_f64(&args[1])?);
                let r = a.powf(b);
                match ty {
                    DataType::Numeric(_) => V::Numeric(
                        Decimal::from_f64(r).ok_or_else(|| SqlError::out_of_range("numeric"))?,
                    ),
                    _ => V::Float(r),
                }
            }
            Func::Sqrt => {
                let a = to_f64(&args[0])?;
                if a < 0.0 {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "cannot take square root of a negative number",
                    )
                    .with_hint(""));
                }
                match ty {
                    DataType::Numeric(_) => {
                        V::Numeric(Decimal::from_f64(a.sqrt()).unwrap_or_default())
                    }
                    _ => V::Float(a.sqrt()),
                }
            }
            Func::Concat => V::Text(
                args.iter()
                    .filter(|v| !v.is_null())
                    .map(|v| {
                        v.to_text(&crate::cast::type_of(v), env.tz)
                            .unwrap_or_default()
                    })
                    .collect(),
            ),
            Func::Substr => {
                let s: Vec<char> = text(0).chars().collect();
                let start = int(1)?;
                let (from, to) = if args.len() == 3 {
                    let len = int(2)?;
                    if len < 0 {
                        return Err(SqlError::new(
                            SqlState::SUBSTRING_ERROR,
                            "negative substring length not allowed",
                        ));
                    }
                    (start, start.saturating_add(len))
                } else {
                    (start, i64::MAX)
                };
                let from = (from.max(1) - 1) as usize;
                let to = (to.max(1) - 1).min(s.len() as i64) as usize;
                V::Text(if from < to {
                    s[from..to].iter().collect()
                } else {
                    String::new()
                })
            }
            Func::Trim | Func::LTrim | Func::RTrim => {
                let s = text(0);
                let chars: Vec<char> = if args.len() == 2 {
                    text(1).chars().collect()
                } else {
                    vec![' ']
                };
                let f = |c: char| chars.contains(&c);
                V::Text(match self {
                    Func::Trim => s.trim_matches(f).to_string(),
                    Func::LTrim => s.trim_start_matches(f).to_string(),
                    _ => s.trim_end_matches(f).to_string(),
                })
            }
            Func::Replace => {
                let from = text(1);
                if from.is_empty() {
                    V::Text(text(0))
                } else {
                    V::Text(text(0).replace(&from, &text(2)))
                }
            }
            Func::StrPos => {
                let s = text(0);
                V::Int(
                    s.find(&text(1))
                        .map(|i| s[..i].chars().count() as i64 + 1)
                        .unwrap_or(0),
                )
            }
            Func::Left | Func::Right => {
                let s: Vec<char> = text(0).chars().collect();
                let n = int(1)?;
                let len = s.len() as i64;
                let keep = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
                V::Text(if *self == Func::Left {
                    s[..keep].iter().collect()
                } else {
                    s[s.len() - keep..].iter().collect()
                })
            }
            Func::Lpad | Func::Rpad => {
                let s: Vec<char> = text(0).chars().collect();
                let n = int(1)?.max(0) as usize;
                // At least one byte per character.
                check_text_len(n as u64)?;
                let fill: Vec<char> = if args.len() == 3 {
                    text(2).chars().collect()
                } else {
                    vec![' ']
                };
                if s.len() >= n {
                    V::Text(s[..n].iter().collect())
                } else if fill.is_empty() {
                    V::Text(s.iter().collect())
                } else {
                    let pad: String = fill.iter().cycle().take(n - s.len()).collect();
                    let body: String = s.iter().collect();
                    V::Text(if *self == Func::Lpad {
                        pad + &body
                    } else {
                        body + &pad
                    })
                }
            }
            Func::Repeat => {
                let s = text(0);
                let n = int(1)?.max(0) as u64;
                check_text_len((s.len() as u64).saturating_mul(n))?;
                V::Text(s.repeat(n as usize))
            }
            Func::Random => V::Float(rand::rng().random::<f64>()),
            Func::TestPanic => panic!("duet_test_panic: {}", text(0)),
            Func::PgSleep => {
                // Sleeps in small steps so cancel and statement_timeout apply.
                let secs = to_f64(&args[0])?;
                let end = std::time::Instant::now()
                    + std::time::Duration::from_secs_f64(secs.clamp(0.0, 1e6));
                while std::time::Instant::now() < end {
                    env.check_interrupt()?;
                    std::thread::sleep(
                        std::time::Duration::from_millis(5).min(end - std::time::Instant::now()),
                    );
                }
                V::Null
            }
            Func::FormatType => {
                let oid = int(0)? as u32;
                let typmod = int(1).unwrap_or(-1);
                V::Text(format_type(oid, typmod))
            }
            Func::TableIsVisible => V::Bool(true),
            Func::ObjDescription => V::Null,
            Func::GetUserById => V::Text(
                env.session
                    .role_name(int(0)? as u32)
                    .unwrap_or_else(|| format!("unknown (OID={})", int(0).unwrap_or(0))),
            ),
            Func::Md5 => V::Text(md5_hex(text(0).as_bytes())),
            Func::DatePart => V::Float(date_part(&text(0), &args[1], env)?),
            Func::DateTrunc => date_trunc(&text(0), &args[1], env)?,
            Func::ToRegclass => match env.session.relation_oid(&text(0))? {
                Some(oid) => V::Int(oid as i64),
                None => V::Null,
            },
            Func::GetExpr => V::Text(text(0)),
            Func::EncodingToChar => V::Text(if int(0)? == 6 { "UTF8" } else { "" }.into()),
            // Sizes are not tracked per relation yet.
            Func::RelationSize => V::Int(0),
            Func::SizePretty => V::Text(size_pretty(int(0)?)),
            Func::ArrayUpper | Func::ArrayLength | Func::Cardinality => match &args[0] {
                // One-dimensional arrays with lower bound 1: upper = length.
                V::Array(items) if items.is_empty() => V::Null,
                V::Array(items) => V::Int(items.len() as i64),
                other => return Err(bad_arg("array_upper", other)),
            },
            Func::Subscript => match &args[0] {
                V::Array(items) => {
                    let i = int(1)?;
                    if i >= 1 {
                        items.get(i as usize - 1).cloned().unwrap_or(V::Null)
                    } else {
                        V::Null
                    }
                }
                other => return Err(bad_arg("subscript", other)),
            },
            // pg_get_indexdef(oid[, column, pretty]): column 0 is the
            // whole definition, column n its n-th key column.
            Func::GetIndexDef => {
                let column = if args.len() == 3 { int(1)? } else { 0 };
                let kind = if column > 0 {
                    format!("index column {column}")
                } else {
                    "index".to_string()
                };
                env.session
                    .describe_object(&kind, int(0)? as u32)?
                    .map(V::Text)
                    .unwrap_or(V::Null)
            }
            Func::GetConstraintDef => env
                .session
                .describe_object("constraint", int(0)? as u32)?
                .map(V::Text)
                .unwrap_or(V::Null),
            Func::RegclassName => {
                let oid = int(0)? as u32;
                V::Text(
                    env.session
                        .describe_object("relation", oid)?
                        .unwrap_or_else(|| oid.to_string()),
                )
            }
            Func::PartitionAncestors => V::Int(int(0)?),
            Func::RelationIsPublishable => V::Bool(false),
            Func::HasPrivilege => V::Bool(true),
            Func::ArrayToString => match &args[0] {
                V::Array(items) => {
                    let sep = text(1);
                    let null_str = if args.len() == 3 { Some(text(2)) } else { None };
                    let parts: Vec<String> = items
                        .iter()
                        .filter_map(|v| match v {
                            V::Null => null_str.clone(),
                            v => v.to_text(&crate::cast::type_of(v), env.tz),
                        })
                        .collect();
                    V::Text(parts.join(&sep))
                }
                other => return Err(bad_arg("array_to_string", other)),
            },
        })
    }
}

fn bad_arg(name: &str, v: &Value) -> SqlError {
    SqlError::new(
        SqlState::UNDEFINED_FUNCTION,
        format!(
            "function {name}({}) does not exist",
            crate::expr::type_of_value(v)
        ),
    )
}

fn to_decimal(v: &Value) -> SqlResult<Decimal> {
    match v {
        Value::Int(i) => Ok(Decimal::from(*i)),
        Value::Numeric(d) => Ok(*d),
        Value::Float(f) => Decimal::from_f64(*f).ok_or_else(|| SqlError::out_of_range("numeric")),
        Value::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| SqlError::invalid_text("numeric", s)),
        other => Err(bad_arg("numeric", other)),
    }
}

fn to_f64(v: &Value) -> SqlResult<f64> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Numeric(d) => Ok(decimal_to_f64(d)),
        Value::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| SqlError::invalid_text("double precision", s)),
        other => Err(bad_arg("float8", other)),
    }
}

/// The common type of several arguments (COALESCE, GREATEST, CASE).
pub fn common_type(types: &[DataType]) -> SqlResult<DataType> {
    use DataType as T;
    let mut result = T::Unknown;
    for t in types {
        result = match (&result, t) {
            (T::Unknown, t) => t.clone(),
            (r, T::Unknown) => r.clone(),
            (a, b) if a == b => a.clone(),
            (a, b) if a.is_numeric() && b.is_numeric() => {
                let rank = |t: &DataType| match t {
                    T::Int2 => 0,
                    T::Int4 | T::Oid => 1,
                    T::Int8 => 2,
                    T::Numeric(_) => 3,
                    T::Float4 => 4,
                    _ => 5,
                };
                if rank(a) >= rank(b) {
                    a.clone()
                } else {
                    b.clone()
                }
            }
            (a, b) if a.is_string() && b.is_string() => T::Text,
            (a, b) if a.is_temporal() && b.is_temporal() => {
                if *a == T::TimestampTz || *b == T::TimestampTz {
                    T::TimestampTz
                } else {
                    T::Timestamp
                }
            }
            (a, b) => {
                return Err(SqlError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!(
                        "types {} and {} cannot be matched",
                        a.sql_name(),
                        b.sql_name()
                    ),
                ))
            }
        };
    }
    Ok(if result == T::Unknown {
        T::Text
    } else {
        result
    })
}

/// The sequence named by a nextval() argument (text or regclass).
fn sequence_name(v: &Value, _env: &EvalEnv) -> SqlResult<String> {
    match v {
        Value::Text(s) => Ok(s.clone()),
        Value::Int(oid) => Ok(format!("#{oid}")),
        other => Err(bad_arg("nextval", other)),
    }
}

/// PostgreSQL's pg_size_pretty: bytes, kB, MB, GB, TB (rounded, units of 1024).
fn size_pretty(bytes: i64) -> String {
    let mut size = bytes as f64;
    for unit in ["bytes", "kB", "MB", "GB", "TB"] {
        if size.abs() < 10.0 * 1024.0 || unit == "TB" {
            return format!("{} {unit}", size.round() as i64);
        }
        size /= 1024.0;
    }
    format!("{bytes} bytes")
}

/// PostgreSQL's format_type(oid, typmod).
pub fn format_type(oid: u32, typmod: i64) -> String {
    let Some(mut ty) = DataType::from_oid(oid) else {
        return "???".into();
    };
    match &mut ty {
        DataType::Varchar(n) => {
            *n = if typmod >= 4 {
                Some((typmod - 4) as u32)
            } else {
                None
            }
        }
        DataType::Char(n) => *n = if typmod >= 4 { (typmod - 4) as u32 } else { 1 },
        DataType::Numeric(ps) => {
            *ps = if typmod >= 4 {
                let t = typmod - 4;
                Some(((t >> 16) as u32, (t & 0xffff) as u32))
            } else {
                None
            }
        }
        _ => {}
    }
    ty.sql_name()
}

pub fn regex_match(s: &str, pattern: &str, case_insensitive: bool) -> SqlResult<bool> {
    let re = regex::RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| {
            SqlError::new(
                SqlState::INVALID_REGULAR_EXPRESSION,
                format!("invalid regular expression: {e}"),
            )
        })?;
    Ok(re.is_match(s))
}

fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}


/// PostgreSQL's largest value (MaxAllocSize less the varlena header): a
/// function asked to build a longer text fails before allocating it.
pub const MAX_TEXT_BYTES: u64 = (1 << 30) - 1 - 4;

fn check_text_len(bytes: u64) -> SqlResult<()> {
    if bytes > MAX_TEXT_BYTES {
        return Err(SqlError::new(
            SqlState::PROGRAM_LIMIT_EXCEEDED,
            "requested length too large",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_reference() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn format_type_uses_typmod() {
        assert_eq!(format_type(1043, 14), "character varying(10)");
        assert_eq!(format_type(1700, ((10 << 16) | 2) + 4), "numeric(10,2)");
        assert_eq!(format_type(23, -1), "integer");
    }
}
