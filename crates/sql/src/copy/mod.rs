//! COPY: the statement (parsed here, in both PostgreSQL's option list form
//! and the pre-9.0 keyword form that psql's `\copy` still sends) and the
//! text and csv data formats.

mod csv;
mod statement;
mod text;

pub use statement::{parse_copy, CopyDirection, CopyOptions, CopySource, CopyStatement, Format};

use crate::error::{SqlError, SqlResult, SqlState};

/// One row of COPY FROM data: its fields (None = NULL) and the line it
/// starts on.
#[derive(Debug, PartialEq)]
pub struct DecodedRow {
    pub line: u64,
    pub fields: Vec<Option<String>>,
}

/// Splits COPY FROM data into rows of fields (None = NULL) as it arrives.
#[derive(Debug)]
pub struct RowDecoder {
    /// The table's name, for error context.
    table: String,
    options: CopyOptions,
    /// Per column: FORCE_NOT_NULL and FORCE_NULL (csv).
    force_not_null: Vec<bool>,
    force_null: Vec<bool>,
    buffer: Vec<u8>,
    /// Line number of the next row, for error messages.
    line: u64,
    header_pending: bool,
    /// `\.` seen: everything after it is ignored.
    ended: bool,
}

impl RowDecoder {
    pub fn new(
        table: &str,
        options: CopyOptions,
        force_not_null: Vec<bool>,
        force_null: Vec<bool>,
    ) -> Self {
        RowDecoder {
            table: table.to_string(),
            force_not_null,
            force_null,
            header_pending: options.header,
            options,
            buffer: Vec::new(),
            line: 1,
            ended: false,
        }
    }

    /// Adds data and returns the complete rows in it.
    pub fn push(&mut self, data: &[u8]) -> SqlResult<Vec<DecodedRow>> {
        if self.ended {
            return Ok(Vec::new());
        }
        self.buffer.extend_from_slice(data);
        self.drain(false)
    }

    /// The end of the data: a last line without a newline is a row too.
    pub fn finish(&mut self) -> SqlResult<Vec<DecodedRow>> {
        if self.ended {
            return Ok(Vec::new());
        }
        self.drain(true)
    }

    fn drain(&mut self, at_end: bool) -> SqlResult<Vec<DecodedRow>> {
        let mut rows = Vec::new();
        let mut start = 0;
        while start < self.buffer.len() {
            let rest = &self.buffer[start..];
            let Some(len) = self.record_len(rest, at_end)? else {
                break;
            };
            let record = &rest[..len];
            start += len;
            let line = strip_newline(record);
            if line == b"\\." {
                self.ended = true;
                break;
            }
            let text = std::str::from_utf8(line).map_err(|_| {
                SqlError::new(
                    SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                    "invalid byte sequence for encoding \"UTF8\"",
                )
                .with_context(format!("COPY {}, line {}", self.table, self.line))
            })?;
            let at = self.line;
            self.line += record.iter().filter(|&&b| b == b'\n').count().max(1) as u64;
            if std::mem::take(&mut self.header_pending) {
                continue;
            }
            let fields = match self.options.format {
                Format::Csv => {
                    csv::decode_record(text, &self.options, &self.force_not_null, &self.force_null)
                }
                _ => text::decode_line(text, &self.options),
            }
            .map_err(|e| e.with_context(format!("COPY {}, line {at}", self.table)))?;
            rows.push(DecodedRow { line: at, fields });
        }
        self.buffer.drain(..start);
        Ok(rows)
    }

    /// Length of the first complete record in `data` (with its newline).
    fn record_len(&self, data: &[u8], at_end: bool) -> SqlResult<Option<usize>> {
        let len = match self.options.format {
            Format::Csv => csv::record_len(data, &self.options),
            _ => data.iter().position(|&b| b == b'\n').map(|i| i + 1),
        };
        match len {
            Some(len) => Ok(Some(len)),
            None if at_end && !data.is_empty() => {
                if self.options.format == Format::Csv
                    && csv::record_len(data, &self.options).is_none()
                    && csv::in_quotes(data, &self.options)
                {
                    return Err(SqlError::new(
                        SqlState::BAD_COPY_FILE_FORMAT,
                        "unterminated CSV quoted field",
                    )
                    .with_context(format!("COPY {}, line {}", self.table, self.line)));
                }
                Ok(Some(data.len()))
            }
            None => Ok(None),
        }
    }
}

fn strip_newline(record: &[u8]) -> &[u8] {
    let r = record.strip_suffix(b"\n").unwrap_or(record);
    r.strip_suffix(b"\r").unwrap_or(r)
}

/// Renders one row of COPY TO output (with its newline); `force_quote[i]`
/// quotes column i (csv).
pub fn encode_row(
    fields: &[Option<String>],
    options: &CopyOptions,
    force_quote: &[bool],
    out: &mut Vec<u8>,
) {
    match options.format {
        Format::Csv => csv::encode_record(fields, options, force_quote, out),
        _ => text::encode_line(fields, options, out),
    }
    out.push(b'\n');
}
