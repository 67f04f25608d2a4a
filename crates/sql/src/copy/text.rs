//! COPY's text format: delimiter-separated fields, backslash escapes, `\N`
//! for NULL.

use super::CopyOptions;
use crate::error::{SqlError, SqlResult, SqlState};

/// Splits one line into fields, undoing escapes; a field whose raw text is
/// the null string is NULL.
pub(super) fn decode_line(line: &str, options: &CopyOptions) -> SqlResult<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut raw_start = 0;
    let mut chars = line.char_indices().peekable();
    let mut push = |raw: &str| -> SqlResult<()> {
        fields.push(if raw == options.null {
            None
        } else {
            Some(unescape(raw)?)
        });
        Ok(())
    };
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == options.delimiter {
            push(&line[raw_start..i])?;
            raw_start = i + c.len_utf8();
        }
    }
    push(&line[raw_start..])?;
    Ok(fields)
}

/// Undoes text-format escapes. Octal and hex escapes give bytes (so
/// `\303\251` is one UTF-8 "é"); the result must be valid UTF-8.
fn unescape(raw: &str) -> SqlResult<String> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = chars.next() else {
            out.push(b'\\');
            break;
        };
        match e {
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '0'..='7' => {
                let first = e.to_digit(8).unwrap_or(0);
                out.push((more_digits(&mut chars, first, 8, 2) & 0xff) as u8)
            }
            'x' if chars.peek().is_some_and(|d| d.is_ascii_hexdigit()) => {
                let first = chars.next().and_then(|d| d.to_digit(16)).unwrap_or(0);
                out.push(more_digits(&mut chars, first, 16, 1) as u8)
            }
            other => out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes()),
        }
    }
    String::from_utf8(out).map_err(|_| {
        SqlError::new(
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
            "invalid byte sequence for encoding \"UTF8\"",
        )
    })
}

/// `first` followed by up to `more` digits of `radix` taken from `chars`.
fn more_digits(
    chars: &mut std::iter::Peekable<std::str::Chars>,
    first: u32,
    radix: u32,
    more: usize,
) -> u32 {
    let mut v = first;
    for _ in 0..more {
        match chars.peek().and_then(|d| d.to_digit(radix)) {
            Some(d) => {
                v = v * radix + d;
                chars.next();
            }
            None => break,
        }
    }
    v
}

/// One row of text output (without the newline).
pub(super) fn encode_line(fields: &[Option<String>], options: &CopyOptions, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(options.delimiter.encode_utf8(&mut buf).as_bytes());
        }
        let Some(text) = field else {
            out.extend_from_slice(options.null.as_bytes());
            continue;
        };
        for c in text.chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' if options.delimiter == '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                '\u{b}' => out.extend_from_slice(b"\\v"),
                c if c == options.delimiter => {
                    out.push(b'\\');
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::parse_copy;

    fn options() -> CopyOptions {
        parse_copy("copy t from stdin").unwrap().unwrap().options
    }

    #[test]
    fn escapes_round_trip() {
        let o = options();
        let fields = vec![
            Some("a\tb\\c\nd".to_string()),
            None,
            Some(String::new()),
            Some("\\N".to_string()),
        ];
        let mut out = Vec::new();
        encode_line(&fields, &o, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line, "a\\tb\\\\c\\nd\t\\N\t\t\\\\N");
        assert_eq!(decode_line(&line, &o).unwrap(), fields);
    }

    #[test]
    fn octal_and_hex_escapes() {
        let o = options();
        assert_eq!(
            decode_line("\\101\\x42\\q", &o).unwrap(),
            vec![Some("ABq".to_string())]
        );
        // Escaped bytes of one UTF-8 character.
        assert_eq!(
            decode_line("\\303\\251|\\xC3\\xA9", &o).unwrap(),
            vec![Some("é|é".to_string())]
        );
        assert!(decode_line("\\377", &o).is_err());
    }
}
