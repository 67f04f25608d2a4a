//! Parsing COPY. sqlparser's COPY expects the data inline after the
//! statement and knows neither `FREEZE on` nor every legacy option, so the
//! statement is parsed here with sqlparser's parser primitives.

use sqlparser::ast::{self, Ident, ObjectName};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{IsOptional, Parser, ParserError};
use sqlparser::tokenizer::Token;

use crate::error::{SqlError, SqlResult, SqlState};

#[derive(Debug, Clone)]
pub enum CopySource {
    Table {
        name: ObjectName,
        columns: Vec<Ident>,
    },
    /// COPY (query) TO ...
    Query(Box<ast::Query>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDirection {
    /// FROM STDIN
    In,
    /// TO STDOUT
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Binary,
}

#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub format: Format,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
    /// Columns always quoted on output (csv); `force_quote_all` for `*`.
    pub force_quote: Vec<Ident>,
    pub force_quote_all: bool,
    /// Columns whose unquoted null string is read as an empty string (csv).
    pub force_not_null: Vec<Ident>,
    /// Columns whose quoted null string is read as NULL (csv).
    pub force_null: Vec<Ident>,
}

#[derive(Debug, Clone)]
pub struct CopyStatement {
    pub source: CopySource,
    pub direction: CopyDirection,
    pub options: CopyOptions,
}

/// True if the statement text starts with COPY.
fn is_copy(text: &str) -> bool {
    text.trim_start()
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
        && text
            .trim_start()
            .as_bytes()
            .get(4)
            .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_')
}

/// Parses a COPY statement; None if the text is not one.
pub fn parse_copy(text: &str) -> Option<SqlResult<CopyStatement>> {
    if !is_copy(text) {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let parsed = crate::parser::new_parser(&dialect)
        .try_with_sql(text)
        .map_err(crate::parser::syntax_error)
        .and_then(|mut p| parse(&mut p));
    Some(parsed)
}

fn parse(p: &mut Parser) -> SqlResult<CopyStatement> {
    let err = crate::parser::syntax_error;
    p.expect_keyword(Keyword::COPY).map_err(err)?;
    let source = if p.consume_token(&Token::LParen) {
        let query = p.parse_query().map_err(err)?;
        p.expect_token(&Token::RParen).map_err(err)?;
        CopySource::Query(query)
    } else {
        let name = p.parse_object_name(false).map_err(err)?;
        let columns = p
            .parse_parenthesized_column_list(IsOptional::Optional, false)
            .map_err(err)?;
        CopySource::Table { name, columns }
    };
    let direction = match p.parse_one_of_keywords(&[Keyword::FROM, Keyword::TO]) {
        Some(Keyword::FROM) => CopyDirection::In,
        Some(_) => CopyDirection::Out,
        None => return Err(near(p)),
    };
    if matches!(source, CopySource::Query(_)) && direction == CopyDirection::In {
        return Err(SqlError::syntax("syntax error at or near \"FROM\""));
    }
    let endpoint = p.next_token().token;
    match (&endpoint, direction) {
        (Token::Word(w), CopyDirection::In) if w.keyword == Keyword::STDIN => {}
        (Token::Word(w), CopyDirection::Out) if w.keyword == Keyword::STDOUT => {}
        (Token::SingleQuotedString(_), _) => {
            return Err(SqlError::unsupported(
                "COPY to or from a server file is not supported; use COPY ... FROM STDIN or TO STDOUT (psql's \\copy)",
            ))
        }
        (Token::Word(w), _) if w.keyword == Keyword::PROGRAM => {
            return Err(SqlError::unsupported(
                "COPY to or from a program is not supported; use COPY ... FROM STDIN or TO STDOUT",
            ))
        }
        (other, _) => return Err(SqlError::syntax(format!("syntax error at or near \"{other}\""))),
    }
    let mut options = OptionSet::default();
    let _with = p.parse_keyword(Keyword::WITH);
    if p.consume_token(&Token::LParen) {
        loop {
            let name = word(p)?;
            let value = match p.peek_token().token {
                Token::Comma | Token::RParen => None,
                Token::LParen => Some(OptionValue::Columns(columns_in_parens(p)?)),
                Token::Mul => {
                    p.next_token();
                    Some(OptionValue::Star)
                }
                _ => Some(OptionValue::Text(scalar(p)?)),
            };
            options.set(&name, value)?;
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::RParen).map_err(err)?;
    } else {
        parse_legacy_options(p, &mut options)?;
    }
    if p.parse_keyword(Keyword::WHERE) {
        return Err(SqlError::unsupported(
            "COPY FROM ... WHERE is not supported",
        ));
    }
    if p.peek_token().token != Token::EOF {
        return Err(near(p));
    }
    Ok(CopyStatement {
        source,
        direction,
        options: options.finish(direction)?,
    })
}

/// `[BINARY] [DELIMITER [AS] 'c'] [NULL [AS] 's'] [CSV [HEADER] [QUOTE [AS] 'c']
/// [ESCAPE [AS] 'c'] [FORCE QUOTE cols|*] [FORCE NOT NULL cols]]`
fn parse_legacy_options(p: &mut Parser, options: &mut OptionSet) -> SqlResult<()> {
    loop {
        let token = p.peek_token().token;
        let Token::Word(w) = token else {
            return Ok(());
        };
        let name = w.value.to_lowercase();
        match name.as_str() {
            "binary" | "csv" => {
                p.next_token();
                options.set("format", Some(OptionValue::Text(name)))?;
            }
            "header" => {
                p.next_token();
                options.set("header", None)?;
            }
            "delimiter" | "null" | "quote" | "escape" => {
                p.next_token();
                let _as = p.parse_keyword(Keyword::AS);
                let value = p
                    .parse_literal_string()
                    .map_err(crate::parser::syntax_error)?;
                options.set(&name, Some(OptionValue::Text(value)))?;
            }
            "force" => {
                p.next_token();
                if p.parse_keyword(Keyword::QUOTE) {
                    let value = if p.consume_token(&Token::Mul) {
                        OptionValue::Star
                    } else {
                        OptionValue::Columns(
                            p.parse_identifiers().map_err(crate::parser::syntax_error)?,
                        )
                    };
                    options.set("force_quote", Some(value))?;
                } else if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                    let cols = p.parse_identifiers().map_err(crate::parser::syntax_error)?;
                    options.set("force_not_null", Some(OptionValue::Columns(cols)))?;
                } else {
                    return Err(near(p));
                }
            }
            _ => return Ok(()),
        }
    }
}

fn near(p: &Parser) -> SqlError {
    match p.peek_token().token {
        Token::EOF => SqlError::syntax("syntax error at end of input"),
        t => SqlError::syntax(format!("syntax error at or near \"{t}\"")),
    }
}

fn word(p: &mut Parser) -> SqlResult<String> {
    match p.next_token().token {
        Token::Word(w) => Ok(w.value.to_lowercase()),
        other => Err(SqlError::syntax(format!(
            "syntax error at or near \"{other}\""
        ))),
    }
}

fn scalar(p: &mut Parser) -> SqlResult<String> {
    match p.next_token().token {
        Token::Word(w) => Ok(w.value.to_lowercase()),
        Token::SingleQuotedString(s) | Token::EscapedStringLiteral(s) => Ok(s),
        Token::Number(n, _) => Ok(n),
        other => Err(SqlError::syntax(format!(
            "syntax error at or near \"{other}\""
        ))),
    }
}

fn columns_in_parens(p: &mut Parser) -> SqlResult<Vec<Ident>> {
    p.parse_parenthesized_column_list(IsOptional::Mandatory, false)
        .map_err(|e: ParserError| crate::parser::syntax_error(e))
}

enum OptionValue {
    Text(String),
    Columns(Vec<Ident>),
    Star,
}

#[derive(Default)]
struct OptionSet {
    format: Option<Format>,
    delimiter: Option<String>,
    null: Option<String>,
    header: Option<bool>,
    quote: Option<String>,
    escape: Option<String>,
    force_quote: Option<(Vec<Ident>, bool)>,
    force_not_null: Option<Vec<Ident>>,
    force_null: Option<Vec<Ident>>,
    freeze: Option<bool>,
    seen: Vec<String>,
}

fn redundant() -> SqlError {
    SqlError::syntax("conflicting or redundant options")
}

fn bool_option(name: &str, value: Option<OptionValue>) -> SqlResult<bool> {
    match value {
        None => Ok(true),
        Some(OptionValue::Text(v)) => crate::value::text::parse_bool(&v)
            .ok_or_else(|| SqlError::syntax(format!("{name} requires a Boolean value"))),
        Some(_) => Err(SqlError::syntax(format!("{name} requires a Boolean value"))),
    }
}

fn text_option(name: &str, value: Option<OptionValue>) -> SqlResult<String> {
    match value {
        Some(OptionValue::Text(v)) => Ok(v),
        _ => Err(SqlError::syntax(format!("{name} requires a parameter"))),
    }
}

fn column_option(name: &str, value: Option<OptionValue>) -> SqlResult<(Vec<Ident>, bool)> {
    match value {
        Some(OptionValue::Columns(c)) => Ok((c, false)),
        Some(OptionValue::Star) => Ok((Vec::new(), true)),
        _ => Err(SqlError::syntax(format!(
            "argument to option \"{name}\" must be a list of column names"
        ))),
    }
}

impl OptionSet {
    fn set(&mut self, name: &str, value: Option<OptionValue>) -> SqlResult<()> {
        if self.seen.iter().any(|s| s == name) {
            return Err(redundant());
        }
        self.seen.push(name.to_string());
        match name {
            "format" => {
                self.format = Some(match text_option(name, value)?.as_str() {
                    "text" => Format::Text,
                    "csv" => Format::Csv,
                    "binary" => Format::Binary,
                    other => {
                        return Err(SqlError::new(
                            SqlState::INVALID_PARAMETER_VALUE,
                            format!("COPY format \"{other}\" not recognized"),
                        ))
                    }
                })
            }
            "freeze" => self.freeze = Some(bool_option(name, value)?),
            "header" => {
                self.header = Some(match value {
                    Some(OptionValue::Text(v)) if v == "match" => {
                        return Err(SqlError::unsupported("COPY HEADER MATCH is not supported"))
                    }
                    v => bool_option(name, v)?,
                })
            }
            "delimiter" => self.delimiter = Some(text_option(name, value)?),
            "null" => self.null = Some(text_option(name, value)?),
            "quote" => self.quote = Some(text_option(name, value)?),
            "escape" => self.escape = Some(text_option(name, value)?),
            "encoding" => {
                let e = text_option(name, value)?
                    .to_lowercase()
                    .replace(['-', '_'], "");
                if e != "utf8" && e != "sqlascii" {
                    return Err(SqlError::unsupported(format!(
                        "COPY encoding \"{e}\" is not supported; duet speaks UTF8 only"
                    )));
                }
            }
            "force_quote" => self.force_quote = Some(column_option(name, value)?),
            "force_not_null" => self.force_not_null = Some(column_option(name, value)?.0),
            "force_null" => self.force_null = Some(column_option(name, value)?.0),
            other => {
                return Err(SqlError::syntax(format!(
                    "option \"{other}\" not recognized"
                )))
            }
        }
        Ok(())
    }

    fn finish(self, direction: CopyDirection) -> SqlResult<CopyOptions> {
        let format = self.format.unwrap_or(Format::Text);
        let csv = format == Format::Csv;
        if format == Format::Binary {
            return Err(SqlError::unsupported(
                "COPY in binary format is not supported; use text or csv",
            ));
        }
        let single = |what: &str, v: &Option<String>, default: char| -> SqlResult<char> {
            match v {
                None => Ok(default),
                Some(s) if s.len() == 1 => Ok(s.chars().next().unwrap_or(default)),
                Some(_) => Err(SqlError::unsupported(format!(
                    "COPY {what} must be a single one-byte character"
                ))),
            }
        };
        let only_csv = |what: &str, set: bool| -> SqlResult<()> {
            if set && !csv {
                Err(SqlError::unsupported(format!(
                    "COPY {what} available only in CSV mode"
                )))
            } else {
                Ok(())
            }
        };
        only_csv("quote", self.quote.is_some())?;
        only_csv("escape", self.escape.is_some())?;
        only_csv("force quote", self.force_quote.is_some())?;
        only_csv("force not null", self.force_not_null.is_some())?;
        only_csv("force null", self.force_null.is_some())?;
        if self.force_quote.is_some() && direction == CopyDirection::In {
            return Err(SqlError::unsupported(
                "COPY force quote only available using COPY TO",
            ));
        }
        if (self.force_not_null.is_some() || self.force_null.is_some())
            && direction == CopyDirection::Out
        {
            return Err(SqlError::unsupported(
                "COPY force not null and force null only available using COPY FROM",
            ));
        }
        let delimiter = single("delimiter", &self.delimiter, if csv { ',' } else { '\t' })?;
        if delimiter == '\n' || delimiter == '\r' {
            return Err(SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "COPY delimiter cannot be newline or carriage return",
            ));
        }
        if !csv && (delimiter == '\\' || delimiter.is_ascii_alphanumeric() || delimiter == '.') {
            return Err(SqlError::unsupported(format!(
                "COPY delimiter cannot be \"{delimiter}\""
            )));
        }
        let quote = single("quote", &self.quote, '"')?;
        let escape = single("escape", &self.escape, quote)?;
        if csv && delimiter == quote {
            return Err(SqlError::unsupported(
                "COPY delimiter and quote must be different",
            ));
        }
        let null = self
            .null
            .unwrap_or_else(|| if csv { String::new() } else { "\\N".into() });
        if null.contains(['\n', '\r']) {
            return Err(SqlError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "COPY null representation cannot use newline or carriage return",
            ));
        }
        let (force_quote, force_quote_all) = self.force_quote.unwrap_or_default();
        // FREEZE is a visibility hint for PostgreSQL's heap; nothing to do here.
        let _ = self.freeze;
        Ok(CopyOptions {
            format,
            delimiter,
            null,
            header: self.header.unwrap_or(false),
            quote,
            escape,
            force_quote,
            force_quote_all,
            force_not_null: self.force_not_null.unwrap_or_default(),
            force_null: self.force_null.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(sql: &str) -> CopyStatement {
        parse_copy(sql).expect("a COPY").expect("parses")
    }

    #[test]
    fn pgbench_and_psql_forms() {
        let s = parse_ok("copy pgbench_accounts from stdin with (freeze on)");
        assert_eq!(s.direction, CopyDirection::In);
        assert_eq!(s.options.format, Format::Text);
        let s = parse_ok("COPY t (a, \"B\") FROM STDIN with csv header delimiter as ';'");
        assert_eq!(s.options.format, Format::Csv);
        assert!(s.options.header);
        assert_eq!(s.options.delimiter, ';');
        match s.source {
            CopySource::Table { columns, .. } => assert_eq!(columns.len(), 2),
            _ => panic!(),
        }
        let s = parse_ok("copy (select 1) to stdout (format csv, force_quote *)");
        assert!(s.options.force_quote_all);
        assert!(parse_copy("copycat").is_none());
    }

    #[test]
    fn bad_options_are_errors() {
        let code = |sql: &str| parse_copy(sql).unwrap().unwrap_err().state.0;
        assert_eq!(code("copy t from stdin (format binary)"), "0A000");
        assert_eq!(code("copy t from stdin (bogus 1)"), "42601");
        assert_eq!(
            code("copy t from stdin (delimiter ',', delimiter ';')"),
            "42601"
        );
        assert_eq!(code("copy t from stdin (quote '\"')"), "0A000");
        assert_eq!(code("copy t from '/etc/passwd'"), "0A000");
        assert_eq!(code("copy (select 1) from stdin"), "42601");
    }
}
