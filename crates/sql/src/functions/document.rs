//! Functions of the uuid, json/jsonb and interval types, and a few string
//! functions: resolved by name and argument types, evaluated on values.

use serde_json::Value as J;

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;
use crate::value::{json, TimeZone, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocFunc {
    GenRandomUuid,
    JsonTypeof,
    JsonArrayLength,
    /// to_json / to_jsonb
    ToJson,
    /// json_build_object / jsonb_build_object
    BuildObject,
    /// json_build_array / jsonb_build_array
    BuildArray,
    SplitPart,
}

/// (function, result type) for a name and argument types, if it is one of
/// these.
pub fn resolve(name: &str, args: &[DataType]) -> Option<(DocFunc, DataType)> {
    use DataType as T;
    let doc_type = |n: &str| {
        if n.starts_with("jsonb") || n == "to_jsonb" {
            T::Jsonb
        } else {
            T::Json
        }
    };
    Some(match (name, args.len()) {
        ("gen_random_uuid" | "uuid_generate_v4", 0) => (DocFunc::GenRandomUuid, T::Uuid),
        ("json_typeof" | "jsonb_typeof", 1) => (DocFunc::JsonTypeof, T::Text),
        ("json_array_length" | "jsonb_array_length", 1) => (DocFunc::JsonArrayLength, T::Int4),
        ("to_json" | "to_jsonb", 1) => (DocFunc::ToJson, doc_type(name)),
        ("json_build_object" | "jsonb_build_object", n) if n % 2 == 0 => {
            (DocFunc::BuildObject, doc_type(name))
        }
        ("json_build_array" | "jsonb_build_array", _) => (DocFunc::BuildArray, doc_type(name)),
        ("split_part", 3) => (DocFunc::SplitPart, T::Text),
        _ => return None,
    })
}

impl DocFunc {
    pub fn is_volatile(&self) -> bool {
        *self == DocFunc::GenRandomUuid
    }

    /// Builders take NULL arguments; the rest are strict.
    pub fn is_strict(&self) -> bool {
        !matches!(
            self,
            DocFunc::BuildObject | DocFunc::BuildArray | DocFunc::ToJson
        )
    }

    pub fn eval(&self, args: &[Value], types: &[DataType], tz: &TimeZone) -> SqlResult<Value> {
        let doc = |i: usize| -> SqlResult<String> {
            match args.get(i) {
                Some(Value::Json(j) | Value::Text(j)) => Ok(j.clone()),
                other => Err(SqlError::internal(format!("json argument {other:?}"))),
            }
        };
        Ok(match self {
            DocFunc::GenRandomUuid => {
                // Version 4, variant 1 (RFC 4122), as PostgreSQL makes them.
                let mut u: u128 = rand::random();
                u = (u & !(0xF000u128 << 64)) | (0x4000u128 << 64);
                u = (u & !(0xC000u128 << 48)) | (0x8000u128 << 48);
                Value::Uuid(u)
            }
            DocFunc::JsonTypeof => Value::Text(json::type_of(&doc(0)?)?.to_string()),
            DocFunc::JsonArrayLength => Value::Int(json::array_length(&doc(0)?)?),
            DocFunc::ToJson => match args.first() {
                None | Some(Value::Null) => Value::Null,
                Some(v) => Value::Json(json::render(&to_json(v, types.first(), tz)?)),
            },
            DocFunc::BuildObject => {
                let mut pairs = Vec::new();
                for (i, pair) in args.chunks(2).enumerate() {
                    let key = match &pair[0] {
                        Value::Null => {
                            return Err(SqlError::new(
                                SqlState::NULL_VALUE_NOT_ALLOWED,
                                "argument 1: key must not be null",
                            ))
                        }
                        k => k
                            .to_text(types.get(2 * i).unwrap_or(&DataType::Text), tz)
                            .unwrap_or_default(),
                    };
                    pairs.push((key, to_json(&pair[1], types.get(2 * i + 1), tz)?));
                }
                Value::Json(json::build_object(pairs))
            }
            DocFunc::BuildArray => {
                let items = args
                    .iter()
                    .enumerate()
                    .map(|(i, v)| to_json(v, types.get(i), tz))
                    .collect::<SqlResult<Vec<J>>>()?;
                Value::Json(json::render(&J::Array(items)))
            }
            DocFunc::SplitPart => {
                let (s, delim) = (text(&args[0]), text(&args[1]));
                let n = args[2].as_i64().unwrap_or(0);
                if n == 0 {
                    return Err(SqlError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        "field position must not be zero",
                    ));
                }
                let parts: Vec<&str> = if delim.is_empty() {
                    vec![s.as_str()]
                } else {
                    s.split(delim.as_str()).collect()
                };
                let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
                Value::Text(
                    usize::try_from(idx)
                        .ok()
                        .and_then(|i| parts.get(i))
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                )
            }
        })
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// A SQL value as JSON, as to_json() converts it.
fn to_json(v: &Value, ty: Option<&DataType>, tz: &TimeZone) -> SqlResult<J> {
    Ok(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(_) | Value::Float(_) | Value::Numeric(_) => {
            let t = v
                .to_text(ty.unwrap_or(&crate::cast::type_of(v)), tz)
                .unwrap_or_default();
            match serde_json::from_str::<J>(&t) {
                Ok(n @ J::Number(_)) => n,
                // NaN and infinities are strings in JSON.
                _ => J::String(t),
            }
        }
        Value::Json(j) => json::parse("json", j)?,
        Value::Array(items) => {
            let elem = match ty {
                Some(DataType::Array(e)) => Some(&**e),
                _ => None,
            };
            J::Array(
                items
                    .iter()
                    .map(|i| to_json(i, elem, tz))
                    .collect::<SqlResult<_>>()?,
            )
        }
        Value::TimestampTz(t) => J::String(t.format("%Y-%m-%dT%H:%M:%S%.f%:z").to_string()),
        Value::Timestamp(t) => J::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        other => J::String(
            other
                .to_text(ty.unwrap_or(&crate::cast::type_of(other)), tz)
                .unwrap_or_default(),
        ),
    })
}
