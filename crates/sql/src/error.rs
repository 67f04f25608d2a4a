//! SQL errors carrying a PostgreSQL SQLSTATE.

use std::fmt;

/// A PostgreSQL SQLSTATE code (five characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(pub &'static str);

impl SqlState {
    pub const SUCCESSFUL_COMPLETION: SqlState = SqlState("00000");
    pub const WARNING: SqlState = SqlState("01000");
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    pub const INVALID_AUTHORIZATION: SqlState = SqlState("28000");
    pub const INVALID_PASSWORD: SqlState = SqlState("28P01");
    pub const SYNTAX_ERROR: SqlState = SqlState("42601");
    pub const INSUFFICIENT_PRIVILEGE: SqlState = SqlState("42501");
    pub const UNDEFINED_TABLE: SqlState = SqlState("42P01");
    pub const UNDEFINED_COLUMN: SqlState = SqlState("42703");
    pub const UNDEFINED_FUNCTION: SqlState = SqlState("42883");
    pub const UNDEFINED_OBJECT: SqlState = SqlState("42704");
    pub const UNDEFINED_PARAMETER: SqlState = SqlState("42P02");
    pub const DUPLICATE_TABLE: SqlState = SqlState("42P07");
    pub const DUPLICATE_OBJECT: SqlState = SqlState("42710");
    pub const DUPLICATE_COLUMN: SqlState = SqlState("42701");
    pub const AMBIGUOUS_COLUMN: SqlState = SqlState("42702");
    pub const DATATYPE_MISMATCH: SqlState = SqlState("42804");
    pub const WINDOWING_ERROR: SqlState = SqlState("42P20");
    pub const WRONG_OBJECT_TYPE: SqlState = SqlState("42809");
    pub const GROUPING_ERROR: SqlState = SqlState("42803");
    pub const INVALID_FOREIGN_KEY: SqlState = SqlState("42830");
    pub const INVALID_COLUMN_REFERENCE: SqlState = SqlState("42P10");
    pub const INVALID_TABLE_DEFINITION: SqlState = SqlState("42P16");
    pub const UNDEFINED_DATABASE: SqlState = SqlState("3D000");
    pub const INVALID_SCHEMA_NAME: SqlState = SqlState("3F000");
    pub const DEPENDENT_OBJECTS_STILL_EXIST: SqlState = SqlState("2BP01");
    pub const UNIQUE_VIOLATION: SqlState = SqlState("23505");
    pub const NULL_VALUE_NOT_ALLOWED: SqlState = SqlState("22004");
    pub const NOT_NULL_VIOLATION: SqlState = SqlState("23502");
    pub const FOREIGN_KEY_VIOLATION: SqlState = SqlState("23503");
    pub const CHECK_VIOLATION: SqlState = SqlState("23514");
    pub const CHARACTER_NOT_IN_REPERTOIRE: SqlState = SqlState("22021");
    pub const BAD_COPY_FILE_FORMAT: SqlState = SqlState("22P04");
    pub const INVALID_TEXT_REPRESENTATION: SqlState = SqlState("22P02");
    pub const INVALID_BINARY_REPRESENTATION: SqlState = SqlState("22P03");
    pub const NUMERIC_VALUE_OUT_OF_RANGE: SqlState = SqlState("22003");
    pub const DIVISION_BY_ZERO: SqlState = SqlState("22012");
    pub const STRING_DATA_RIGHT_TRUNCATION: SqlState = SqlState("22001");
    pub const INVALID_DATETIME_FORMAT: SqlState = SqlState("22007");
    pub const SUBSTRING_ERROR: SqlState = SqlState("22011");
    pub const INVALID_REGULAR_EXPRESSION: SqlState = SqlState("2201B");
    pub const DATETIME_FIELD_OVERFLOW: SqlState = SqlState("22008");
    pub const INVALID_PARAMETER_VALUE: SqlState = SqlState("22023");
    pub const CARDINALITY_VIOLATION: SqlState = SqlState("21000");
    pub const ACTIVE_SQL_TRANSACTION: SqlState = SqlState("25001");
    pub const NO_ACTIVE_SQL_TRANSACTION: SqlState = SqlState("25P01");
    pub const IN_FAILED_SQL_TRANSACTION: SqlState = SqlState("25P02");
    pub const READ_ONLY_SQL_TRANSACTION: SqlState = SqlState("25006");
    pub const SERIALIZATION_FAILURE: SqlState = SqlState("40001");
    pub const DEADLOCK_DETECTED: SqlState = SqlState("40P01");
    pub const QUERY_CANCELED: SqlState = SqlState("57014");
    pub const ADMIN_SHUTDOWN: SqlState = SqlState("57P01");
    pub const PROTOCOL_VIOLATION: SqlState = SqlState("08P01");
    pub const INVALID_SQL_STATEMENT_NAME: SqlState = SqlState("26000");
    pub const DUPLICATE_CURSOR: SqlState = SqlState("42P03");
    pub const INVALID_CURSOR_NAME: SqlState = SqlState("34000");
    pub const PROGRAM_LIMIT_EXCEEDED: SqlState = SqlState("54000");
    pub const STATEMENT_TOO_COMPLEX: SqlState = SqlState("54001");
    pub const TOO_MANY_CONNECTIONS: SqlState = SqlState("53300");
    pub const DISK_FULL: SqlState = SqlState("53100");
    pub const INTERNAL_ERROR: SqlState = SqlState("XX000");
    pub const IO_ERROR: SqlState = SqlState("58030");
    pub const REPLICATION_ERROR: SqlState = SqlState("59000");
    pub const REPLICATION_PRIMARY_ERROR: SqlState = SqlState("59001");
    pub const REPLICATION_SECONDARY_ERROR: SqlState = SqlState("59002");

    pub fn code(&self) -> &'static str {
        self.0
    }
}

/// An error reported to the client as an ErrorResponse.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlError {
    pub state: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// Where it happened (PostgreSQL's CONTEXT line), e.g. "COPY t, line 3".
    pub context: Option<String>,
}

impl SqlError {
    pub fn new(state: SqlState, message: impl Into<String>) -> Self {
        SqlError {
            state,
            message: message.into(),
            detail: None,
            hint: None,
            context: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(SqlState::SYNTAX_ERROR, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(SqlState::FEATURE_NOT_SUPPORTED, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(SqlState::INTERNAL_ERROR, message)
    }

    pub fn invalid_text(type_name: &str, input: &str) -> Self {
        Self::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type {type_name}: \"{input}\""),
        )
    }

    pub fn undefined_table(name: &str) -> Self {
        Self::new(
            SqlState::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
    }

    pub fn undefined_column(name: &str) -> Self {
        Self::new(
            SqlState::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        )
    }

    pub fn out_of_range(type_name: &str) -> Self {
        Self::new(
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{type_name} out of range"),
        )
    }

    pub fn division_by_zero() -> Self {
        Self::new(SqlState::DIVISION_BY_ZERO, "division by zero")
    }

    pub fn insufficient_privilege(message: impl Into<String>) -> Self {
        Self::new(SqlState::INSUFFICIENT_PRIVILEGE, message)
    }

    pub fn read_only(command: &str) -> Self {
        Self::new(
            SqlState::READ_ONLY_SQL_TRANSACTION,
            format!("cannot execute {command} in a read-only transaction"),
        )
    }

    pub fn canceled() -> Self {
        Self::new(
            SqlState::QUERY_CANCELED,
            "canceling statement due to user request",
        )
    }

    pub fn statement_timeout() -> Self {
        Self::new(
            SqlState::QUERY_CANCELED,
            "canceling statement due to statement timeout",
        )
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.state.0, self.message)
    }
}

impl std::error::Error for SqlError {}

impl From<duet_storage::StorageError> for SqlError {
    fn from(e: duet_storage::StorageError) -> Self {
        use duet_storage::StorageError as E;
        match e {
            E::Deadlock => SqlError::new(SqlState::DEADLOCK_DETECTED, "deadlock detected"),
            E::SerializationFailure => SqlError::new(
                SqlState::SERIALIZATION_FAILURE,
                "could not serialize access due to concurrent update",
            ),
            E::Canceled => SqlError::canceled(),
            E::Timeout => SqlError::statement_timeout(),
            E::DiskFull(msg) => SqlError::new(
                SqlState::DISK_FULL,
                format!("could not write to the data directory: {msg}"),
            ),
            E::ReadOnly => SqlError::read_only("COMMIT"),
            other => SqlError::new(SqlState::IO_ERROR, other.to_string()),
        }
    }
}

pub type SqlResult<T> = Result<T, SqlError>;
