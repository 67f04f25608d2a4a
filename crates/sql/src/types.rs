//! SQL data types: names, PostgreSQL OIDs and wire sizes.

use serde::{Deserialize, Serialize};

/// A column or expression type. Integer widths and varchar lengths are kept
/// so that the wire protocol reports exactly what PostgreSQL reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// numeric(precision, scale); `None` for unconstrained numeric.
    Numeric(Option<(u32, u32)>),
    Text,
    /// varchar(n); `None` for unbounded varchar.
    Varchar(Option<u32>),
    /// char(n), blank-padded.
    Char(u32),
    Bytea,
    Date,
    Timestamp,
    TimestampTz,
    /// PostgreSQL's `name` (catalog identifiers).
    Name,
    /// Object identifier.
    Oid,
    /// PostgreSQL's one-byte `"char"` (catalog flags such as relkind).
    InternalChar,
    Uuid,
    /// json: the text as given.
    Json,
    /// jsonb: normalized text.
    Jsonb,
    Interval,
    /// A row value with named fields (held as an array of values).
    Record(Vec<(String, DataType)>),
    /// One-dimensional array of an element type.
    Array(Box<DataType>),
    /// A literal or parameter whose type is not yet known.
    Unknown,
}

impl DataType {
    /// The pg_type OID.
    pub fn oid(&self) -> u32 {
        match self {
            DataType::Bool => 16,
            DataType::Bytea => 17,
            DataType::InternalChar => 18,
            DataType::Name => 19,
            DataType::Int8 => 20,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Text => 25,
            DataType::Oid => 26,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Unknown => 705,
            DataType::Char(_) => 1042,
            DataType::Varchar(_) => 1043,
            DataType::Date => 1082,
            DataType::Timestamp => 1114,
            DataType::TimestampTz => 1184,
            DataType::Numeric(_) => 1700,
            DataType::Uuid => 2950,
            DataType::Json => 114,
            DataType::Jsonb => 3802,
            DataType::Interval => 1186,
            DataType::Record(_) => 2249,
            DataType::Array(elem) => match **elem {
                DataType::Bool => 1000,
                DataType::Bytea => 1001,
                DataType::InternalChar => 1002,
                DataType::Name => 1003,
                DataType::Int2 => 1005,
                DataType::Int4 => 1007,
                DataType::Text => 1009,
                DataType::Oid => 1028,
                DataType::Char(_) => 1014,
                DataType::Varchar(_) => 1015,
                DataType::Int8 => 1016,
                DataType::Float4 => 1021,
                DataType::Float8 => 1022,
                DataType::Timestamp => 1115,
                DataType::Date => 1182,
                DataType::TimestampTz => 1185,
                DataType::Numeric(_) => 1231,
                DataType::Uuid => 2951,
                DataType::Json => 199,
                DataType::Jsonb => 3807,
                DataType::Interval => 1187,
                _ => 1009,
            },
        }
    }

    /// The type for a pg_type OID, as sent by clients in Parse messages.
    pub fn from_oid(oid: u32) -> Option<DataType> {
        Some(match oid {
            16 => DataType::Bool,
            17 => DataType::Bytea,
            18 => DataType::InternalChar,
            19 => DataType::Name,
            20 => DataType::Int8,
            21 => DataType::Int2,
            23 => DataType::Int4,
            25 => DataType::Text,
            26 => DataType::Oid,
            700 => DataType::Float4,
            701 => DataType::Float8,
            705 | 0 => DataType::Unknown,
            1042 => DataType::Char(1),
            1043 => DataType::Varchar(None),
            1082 => DataType::Date,
            1114 => DataType::Timestamp,
            1184 => DataType::TimestampTz,
            1700 => DataType::Numeric(None),
            2950 => DataType::Uuid,
            114 => DataType::Json,
            3802 => DataType::Jsonb,
            1186 => DataType::Interval,
            1000 => DataType::Array(Box::new(DataType::Bool)),
            1005 => DataType::Array(Box::new(DataType::Int2)),
            1007 => DataType::Array(Box::new(DataType::Int4)),
            1009 => DataType::Array(Box::new(DataType::Text)),
            1016 => DataType::Array(Box::new(DataType::Int8)),
            1022 => DataType::Array(Box::new(DataType::Float8)),
            _ => return None,
        })
    }

    /// pg_type.typlen: fixed width in bytes, or -1 for variable length.
    pub fn typlen(&self) -> i16 {
        match self {
            DataType::Bool | DataType::InternalChar => 1,
            DataType::Int2 => 2,
            DataType::Int4 | DataType::Float4 | DataType::Date | DataType::Oid => 4,
            DataType::Int8 | DataType::Float8 | DataType::Timestamp | DataType::TimestampTz => 8,
            DataType::Uuid | DataType::Interval => 16,
            DataType::Name => 64,
            DataType::Unknown => -2,
            _ => -1,
        }
    }

    /// pg_attribute.atttypmod as PostgreSQL computes it.
    pub fn typmod(&self) -> i32 {
        match self {
            DataType::Varchar(Some(n)) => *n as i32 + 4,
            DataType::Char(n) => *n as i32 + 4,
            DataType::Numeric(Some((p, s))) => (((*p as i32) << 16) | *s as i32) + 4,
            _ => -1,
        }
    }

    /// The name PostgreSQL's format_type() prints.
    pub fn sql_name(&self) -> String {
        match self {
            DataType::Bool => "boolean".into(),
            DataType::Int2 => "smallint".into(),
            DataType::Int4 => "integer".into(),
            DataType::Int8 => "bigint".into(),
            DataType::Float4 => "real".into(),
            DataType::Float8 => "double precision".into(),
            DataType::Numeric(None) => "numeric".into(),
            DataType::Numeric(Some((p, s))) => format!("numeric({p},{s})"),
            DataType::Text => "text".into(),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Char(n) => format!("character({n})"),
            DataType::Bytea => "bytea".into(),
            DataType::Date => "date".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
            DataType::TimestampTz => "timestamp with time zone".into(),
            DataType::Name => "name".into(),
            DataType::Oid => "oid".into(),
            DataType::InternalChar => "\"char\"".into(),
            DataType::Uuid => "uuid".into(),
            DataType::Json => "json".into(),
            DataType::Jsonb => "jsonb".into(),
            DataType::Interval => "interval".into(),
            DataType::Record(_) => "record".into(),
            DataType::Array(elem) => format!("{}[]", elem.sql_name()),
            DataType::Unknown => "unknown".into(),
        }
    }

    /// The short name used in error messages ("integer", "bigint", ...).
    pub fn type_name(&self) -> String {
        match self {
            DataType::Varchar(_) => "character varying".into(),
            DataType::Char(_) => "character".into(),
            DataType::Numeric(_) => "numeric".into(),
            other => other.sql_name(),
        }
    }

    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Oid
        )
    }

    pub fn is_numeric(&self) -> bool {
        self.is_integer()
            || matches!(
                self,
                DataType::Float4 | DataType::Float8 | DataType::Numeric(_)
            )
    }

    pub fn is_string(&self) -> bool {
        matches!(
            self,
            DataType::Text
                | DataType::Varchar(_)
                | DataType::Char(_)
                | DataType::Name
                | DataType::Unknown
        )
    }

    pub fn is_temporal(&self) -> bool {
        matches!(
            self,
            DataType::Date | DataType::Timestamp | DataType::TimestampTz
        )
    }

    /// Type category letter as in pg_type.typcategory.
    pub fn category(&self) -> char {
        match self {
            DataType::Bool => 'B',
            DataType::Int2 | DataType::Int4 | DataType::Int8 | DataType::Oid => 'N',
            DataType::Float4 | DataType::Float8 | DataType::Numeric(_) => 'N',
            DataType::Date | DataType::Timestamp | DataType::TimestampTz => 'D',
            DataType::Interval => 'T',
            DataType::Array(_) => 'A',
            DataType::Unknown => 'X',
            DataType::Bytea => 'U',
            _ => 'S',
        }
    }
}
