//! COPY's csv format: RFC 4180 quoting with PostgreSQL's NULL rules (an
//! unquoted null string is NULL, a quoted one is a string).

use super::CopyOptions;
use crate::error::{SqlError, SqlResult, SqlState};

/// Length of the first complete record (through its newline; quoted
/// newlines belong to the field), or None if it is not complete yet.
pub(super) fn record_len(data: &[u8], options: &CopyOptions) -> Option<usize> {
    scan(data, options).0
}

/// True if `data` ends inside a quoted field.
pub(super) fn in_quotes(data: &[u8], options: &CopyOptions) -> bool {
    scan(data, options).1
}

fn scan(data: &[u8], options: &CopyOptions) -> (Option<usize>, bool) {
    let (quote, escape) = (options.quote as u8, options.escape as u8);
    let mut quoted = false;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if quoted {
            if b == escape && escape != quote && data.get(i + 1).is_some() {
                i += 2;
                continue;
            }
            if b == quote {
                // A doubled quote (escape == quote) stays inside the field.
                if escape == quote && data.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                quoted = false;
            }
        } else if b == quote {
            quoted = true;
        } else if b == b'\n' {
            return (Some(i + 1), false);
        }
        i += 1;
    }
    (None, quoted)
}

/// Splits one record into fields. `force_not_null[i]`: an unquoted null
/// string in column i is an empty string; `force_null[i]`: a quoted one
/// is NULL.
pub(super) fn decode_record(
    record: &str,
    options: &CopyOptions,
    force_not_null: &[bool],
    force_null: &[bool],
) -> SqlResult<Vec<Option<String>>> {
    let (quote, escape, delimiter) = (options.quote, options.escape, options.delimiter);
    let mut fields = Vec::new();
    let mut value = String::new();
    let mut was_quoted = false;
    let mut quoted = false;
    let mut chars = record.chars().peekable();
    let mut finish = |value: &mut String, was_quoted: &mut bool| {
        let i = fields.len();
        let is_null_text = *value == options.null;
        let null = if *was_quoted {
            is_null_text && force_null.get(i).copied().unwrap_or(false)
        } else {
            is_null_text && !force_not_null.get(i).copied().unwrap_or(false)
        };
        fields.push(if null {
            None
        } else {
            Some(std::mem::take(value))
        });
        value.clear();
        *was_quoted = false;
    };
    while let Some(c) = chars.next() {
        if quoted {
            if c == escape
                && chars.peek().is_some_and(|&n| n == quote || n == escape)
                && (escape != quote || chars.peek() == Some(&quote))
            {
                if let Some(n) = chars.next() {
                    value.push(n);
                }
            } else if c == quote {
                quoted = false;
            } else {
                value.push(c);
            }
        } else if c == quote {
            quoted = true;
            was_quoted = true;
        } else if c == delimiter {
            finish(&mut value, &mut was_quoted);
        } else {
            value.push(c);
        }
    }
    if quoted {
        return Err(SqlError::new(
            SqlState::BAD_COPY_FILE_FORMAT,
            "unterminated CSV quoted field",
        ));
    }
    finish(&mut value, &mut was_quoted);
    Ok(fields)
}

/// One csv record (without the newline); `force_quote[i]` quotes column i
/// even when it needs no quotes.
pub(super) fn encode_record(
    fields: &[Option<String>],
    options: &CopyOptions,
    force_quote: &[bool],
    out: &mut Vec<u8>,
) {
    let mut buf = [0u8; 4];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(options.delimiter.encode_utf8(&mut buf).as_bytes());
        }
        let Some(text) = field else {
            out.extend_from_slice(options.null.as_bytes());
            continue;
        };
        let needs_quotes = options.force_quote_all
            || force_quote.get(i).copied().unwrap_or(false)
            || *text == options.null
            || text == "\\."
            || text.contains([options.delimiter, options.quote, '\n', '\r']);
        if !needs_quotes {
            out.extend_from_slice(text.as_bytes());
            continue;
        }
        out.extend_from_slice(options.quote.encode_utf8(&mut buf).as_bytes());
        for c in text.chars() {
            if c == options.quote || c == options.escape {
                out.extend_from_slice(options.escape.encode_utf8(&mut buf).as_bytes());
            }
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.extend_from_slice(options.quote.encode_utf8(&mut buf).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::parse_copy;

    fn options() -> CopyOptions {
        parse_copy("copy t from stdin csv")
            .unwrap()
            .unwrap()
            .options
    }

    #[test]
    fn quoting_and_nulls() {
        let o = options();
        let fields = decode_record("1,,\"\",\"a,\"\"b\"\"\nc\"", &o, &[], &[]).unwrap();
        assert_eq!(
            fields,
            vec![
                Some("1".into()),
                None,
                Some(String::new()),
                Some("a,\"b\"\nc".into())
            ]
        );
        let mut out = Vec::new();
        encode_record(&fields, &o, &[], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1,,\"\",\"a,\"\"b\"\"\nc\""
        );
    }

    #[test]
    fn records_span_quoted_newlines() {
        let o = options();
        assert_eq!(record_len(b"a,\"x\ny\"\nb\n", &o), Some(8));
        assert_eq!(record_len(b"a,\"x\n", &o), None);
        assert!(in_quotes(b"a,\"x\n", &o));
        assert!(decode_record("\"abc", &o, &[], &[]).is_err());
    }
}
