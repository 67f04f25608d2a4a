//! sqlparser data types to duet's.

use sqlparser::ast::{CharacterLength, DataType as AstType, ExactNumberInfo, TimezoneInfo};

use crate::error::{SqlError, SqlResult, SqlState};
use crate::types::DataType;

/// Converts a declared type. `serial` types come back as their integer
/// type; callers check for them with [`serial_kind`].
pub fn convert_type(t: &AstType) -> SqlResult<DataType> {
    use AstType as A;
    let char_len = |l: &Option<CharacterLength>| match l {
        Some(CharacterLength::IntegerLength { length, .. }) => Some(*length as u32),
        _ => None,
    };
    Ok(match t {
        A::SmallInt(_) | A::Int2(_) => DataType::Int2,
        A::Int(_) | A::Integer(_) | A::Int4(_) => DataType::Int4,
        A::BigInt(_) | A::Int8(_) => DataType::Int8,
        A::Real | A::Float4 => DataType::Float4,
        A::Float8 | A::DoublePrecision | A::Double(_) => DataType::Float8,
        A::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p <= 24 => DataType::Float4,
            _ => DataType::Float8,
        },
        A::Numeric(info) | A::Decimal(info) | A::Dec(info) => match info {
            ExactNumberInfo::None => DataType::Numeric(None),
            ExactNumberInfo::Precision(p) => DataType::Numeric(Some((*p as u32, 0))),
            ExactNumberInfo::PrecisionAndScale(p, s) => {
                DataType::Numeric(Some((*p as u32, (*s).max(0) as u32)))
            }
        },
        A::Bool | A::Boolean => DataType::Bool,
        A::Text | A::String(None) => DataType::Text,
        A::Varchar(l) | A::CharacterVarying(l) | A::CharVarying(l) => {
            DataType::Varchar(char_len(l))
        }
        A::Char(l) | A::Character(l) => DataType::Char(char_len(l).unwrap_or(1)),
        A::Bytea => DataType::Bytea,
        A::Date => DataType::Date,
        A::Timestamp(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => DataType::TimestampTz,
            _ => DataType::Timestamp,
        },
        A::Regclass => DataType::Oid,
        A::Uuid => DataType::Uuid,
        A::JSON => DataType::Json,
        A::JSONB => DataType::Jsonb,
        A::Interval { .. } => DataType::Interval,
        A::Array(elem) => match elem {
            sqlparser::ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | sqlparser::ast::ArrayElemTypeDef::AngleBracket(inner)
            | sqlparser::ast::ArrayElemTypeDef::Parenthesis(inner) => {
                DataType::Array(Box::new(convert_type(inner)?))
            }
            _ => DataType::Array(Box::new(DataType::Text)),
        },
        A::Custom(name, _) => {
            let n = name.to_string().to_lowercase();
            let n = n.trim_start_matches("pg_catalog.");
            match n {
                "serial" | "serial4" => DataType::Int4,
                "bigserial" | "serial8" => DataType::Int8,
                "smallserial" | "serial2" => DataType::Int2,
                "int2" => DataType::Int2,
                "int4" => DataType::Int4,
                "int8" => DataType::Int8,
                "float4" => DataType::Float4,
                "float8" => DataType::Float8,
                "bool" => DataType::Bool,
                "timestamptz" => DataType::TimestampTz,
                "name" => DataType::Name,
                "oid" | "regclass" | "regtype" | "regproc" | "regnamespace" | "regrole" => {
                    DataType::Oid
                }
                "\"char\"" | "char" => DataType::InternalChar,
                "text" => DataType::Text,
                "varchar" => DataType::Varchar(None),
                "numeric" | "decimal" => DataType::Numeric(None),
                "uuid" => DataType::Uuid,
                "json" => DataType::Json,
                "jsonb" => DataType::Jsonb,
                "interval" => DataType::Interval,
                other => return Err(unknown_type(other)),
            }
        }
        other => return Err(unknown_type(&other.to_string())),
    })
}

fn unknown_type(name: &str) -> SqlError {
    SqlError::new(
        SqlState::UNDEFINED_OBJECT,
        format!("type \"{name}\" does not exist"),
    )
}

/// For `serial` / `bigserial` / `smallserial`, the integer type; else None.
pub fn serial_kind(t: &AstType) -> Option<DataType> {
    if let AstType::Custom(name, _) = t {
        match name.to_string().to_lowercase().as_str() {
            "serial" | "serial4" => Some(DataType::Int4),
            "bigserial" | "serial8" => Some(DataType::Int8),
            "smallserial" | "serial2" => Some(DataType::Int2),
            _ => None,
        }
    } else {
        None
    }
}
