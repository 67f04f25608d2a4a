//! Backend message building: RowDescription and DataRow from duet-sql
//! columns and values, ErrorResponse and NoticeResponse from SQL errors and
//! notices.

use bytes::{BufMut, BytesMut};
use duet_sql::{Column, DataType, Notice, SqlError, SqlResult, SqlState, TimeZone, Value};
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};
use pgwire::messages::response::{ErrorResponse, NoticeResponse, TransactionStatus};
use pgwire::messages::PgWireBackendMessage;

/// SQLSTATE program_limit_exceeded.
const PROGRAM_LIMIT_EXCEEDED: SqlState = SqlState("54000");

/// Format code for text.
pub const FORMAT_TEXT: i16 = 0;
/// Format code for binary.
pub const FORMAT_BINARY: i16 = 1;

/// The type a column or parameter is reported as. Unresolved literals are
/// reported as text, as PostgreSQL does since version 10.
pub fn reported_type(ty: &DataType) -> DataType {
    match ty {
        DataType::Unknown => DataType::Text,
        other => other.clone(),
    }
}

/// RowDescription for `columns`, one format code per column.
pub fn row_description(columns: &[Column], formats: &[i16]) -> PgWireBackendMessage {
    let fields = columns
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let ty = reported_type(&col.data_type);
            FieldDescription::new(
                col.name.clone(),
                col.table_oid as i32,
                col.column_id,
                ty.oid(),
                ty.typlen(),
                ty.typmod(),
                formats.get(i).copied().unwrap_or(FORMAT_TEXT),
            )
        })
        .collect();
    PgWireBackendMessage::RowDescription(RowDescription::new(fields))
}

/// One DataRow: each value in its column's type and format.
pub fn data_row(
    row: &[Value],
    columns: &[Column],
    formats: &[i16],
    tz: &TimeZone,
) -> SqlResult<PgWireBackendMessage> {
    let mut data = BytesMut::new();
    for (i, value) in row.iter().enumerate() {
        let ty = columns
            .get(i)
            .map(|c| reported_type(&c.data_type))
            .unwrap_or(DataType::Text);
        let format = formats.get(i).copied().unwrap_or(FORMAT_TEXT);
        let bytes = if format == FORMAT_BINARY {
            value.to_binary(&ty)?
        } else {
            value.to_text(&ty, tz).map(String::into_bytes)
        };
        match bytes {
            None => data.put_i32(-1),
            Some(b) => {
                let len = i32::try_from(b.len()).map_err(|_| {
                    SqlError::new(PROGRAM_LIMIT_EXCEEDED, "result value is too large to send")
                })?;
                data.put_i32(len);
                data.put_slice(&b);
            }
        }
    }
    let count = i16::try_from(row.len()).map_err(|_| {
        SqlError::new(
            PROGRAM_LIMIT_EXCEEDED,
            "result row has too many columns to send",
        )
    })?;
    Ok(PgWireBackendMessage::DataRow(DataRow::new(data, count)))
}

/// Expands the result format codes of a Bind message to one per column:
/// none means all text, one applies to every column, otherwise one each.
pub fn expand_formats(codes: &[i16], columns: usize) -> SqlResult<Vec<i16>> {
    for &c in codes {
        if c != FORMAT_TEXT && c != FORMAT_BINARY {
            return Err(SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("unsupported format code: {c}"),
            ));
        }
    }
    match codes.len() {
        0 => Ok(vec![FORMAT_TEXT; columns]),
        1 => Ok(vec![codes[0]; columns]),
        n if n == columns => Ok(codes.to_vec()),
        n => Err(SqlError::new(
            SqlState::PROTOCOL_VIOLATION,
            format!("bind message has {n} result formats but query has {columns} columns"),
        )),
    }
}

/// Severity of an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// ErrorResponse for a SQL error.
pub fn error_response(err: &SqlError, severity: Severity) -> PgWireBackendMessage {
    let sev = severity.as_str().to_string();
    let mut fields = vec![
        (b'S', sev.clone()),
        (b'V', sev),
        (b'C', err.state.0.to_string()),
        (b'M', err.message.clone()),
    ];
    if let Some(detail) = &err.detail {
        fields.push((b'D', detail.clone()));
    }
    if let Some(hint) = &err.hint {
        fields.push((b'H', hint.clone()));
    }
    if let Some(context) = &err.context {
        fields.push((b'W', context.clone()));
    }
    PgWireBackendMessage::ErrorResponse(ErrorResponse::new(fields))
}

/// NoticeResponse for a notice or warning.
pub fn notice_response(notice: &Notice) -> PgWireBackendMessage {
    let fields = vec![
        (b'S', notice.severity.clone()),
        (b'V', notice.severity.clone()),
        (b'C', notice.code.to_string()),
        (b'M', notice.message.clone()),
    ];
    PgWireBackendMessage::NoticeResponse(NoticeResponse::new(fields))
}

/// ReadyForQuery status byte for a session transaction state.
pub fn transaction_status(state: duet_sql::TransactionState) -> TransactionStatus {
    match state {
        duet_sql::TransactionState::Idle => TransactionStatus::Idle,
        duet_sql::TransactionState::InBlock => TransactionStatus::Transaction,
        duet_sql::TransactionState::Failed => TransactionStatus::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: DataType) -> Column {
        Column {
            name: name.into(),
            data_type: ty,
            table_oid: 0,
            column_id: 0,
        }
    }

    #[test]
    fn data_row_text_and_binary() {
        let cols = vec![col("a", DataType::Int4), col("b", DataType::Text)];
        let row = vec![Value::Int(7), Value::Null];
        let tz = TimeZone::default();
        let msg = data_row(&row, &cols, &[FORMAT_BINARY, FORMAT_TEXT], &tz).unwrap();
        match msg {
            PgWireBackendMessage::DataRow(r) => {
                assert_eq!(r.field_count, 2);
                assert_eq!(
                    &r.data[..],
                    &[0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff]
                );
            }
            _ => panic!("not a DataRow"),
        }
        let msg = data_row(&[Value::Int(42)], &cols, &[], &tz).unwrap();
        match msg {
            PgWireBackendMessage::DataRow(r) => assert_eq!(&r.data[..], b"\0\0\0\x0242"),
            _ => panic!("not a DataRow"),
        }
    }

    #[test]
    fn format_expansion() {
        assert_eq!(expand_formats(&[], 2).unwrap(), vec![0, 0]);
        assert_eq!(expand_formats(&[1], 3).unwrap(), vec![1, 1, 1]);
        assert_eq!(expand_formats(&[0, 1], 2).unwrap(), vec![0, 1]);
        assert_eq!(expand_formats(&[0, 1], 3).unwrap_err().state.0, "08P01");
        assert_eq!(expand_formats(&[2], 1).unwrap_err().state.0, "22023");
    }

    #[test]
    fn unknown_is_reported_as_text() {
        match row_description(&[col("?column?", DataType::Unknown)], &[]) {
            PgWireBackendMessage::RowDescription(d) => {
                assert_eq!(d.fields[0].type_id, 25);
                assert_eq!(d.fields[0].type_size, -1);
            }
            _ => panic!("not a RowDescription"),
        }
    }
}
