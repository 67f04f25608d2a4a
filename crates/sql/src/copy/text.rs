//! COPY's text format: delimiter-separated fields, backslash escapes, `\N`
//! for NULL.

use super::CopyOptions;
use crate::error::SqlResult;

/// Splits one line into fields, undoing escapes; a field whose raw text is
/// the null string is NULL.
pub(super) fn decode_line(line: &str, options: &CopyOptions) -> SqlResult<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut raw_start = 0;
    let mut chars = line.char_indices().peekable();
    let mut push = |raw: &str| {
        fields.push(if raw == options.null {
            None
        } else {
            Some(unescape(raw))
        })
    };
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == options.delimiter {
            push(&line[raw_start..i]);
            raw_start = i + c.len_utf8();
        }
    }
    push(&line[raw_start..]);
    Ok(fields)
}

fn unescape(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        match e {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v & 0xff).unwrap_or('\u{fffd}'));
            }
            'x' if chars.peek().is_some_and(|d| d.is_ascii_hexdigit()) => {
                let mut v = 0;
                for _ in 0..2 {
                    match chars.peek().and_then(|d| d.to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            other => out.push(other),
        }
    }
    out
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
    }
}
