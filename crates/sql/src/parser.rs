//! Parsing: sqlparser's PostgreSQL dialect, plus the statements it does
//! not know in PostgreSQL's form (wrapped here, DFParser-style).

use sqlparser::ast::Statement as Ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{SqlError, SqlResult};

/// A statement as duet understands it.
#[derive(Debug, Clone)]
pub enum Parsed {
    Sql(Box<Ast>),
    /// CREATE USER is CREATE ROLE with LOGIN by default.
    CreateUser(Box<Ast>),
}

/// Splits a query string into statements and parses each.
pub fn parse(sql: &str) -> SqlResult<Vec<Parsed>> {
    let dialect = PostgreSqlDialect {};
    let mut out = Vec::new();
    // Most queries are one statement: skip the splitting pass for them.
    let texts = if sql.contains(';') {
        split_statements(sql)?
    } else {
        vec![sql.to_string()]
    };
    for text in texts {
        let (text, is_user) = rewrite_create_user(&text);
        let statements = Parser::parse_sql(&dialect, &text).map_err(syntax_error)?;
        for s in statements {
            out.push(if is_user {
                Parsed::CreateUser(Box::new(s))
            } else {
                Parsed::Sql(Box::new(s))
            });
        }
    }
    Ok(out)
}

/// Splits on top-level semicolons using sqlparser's tokenizer (so quoted
/// semicolons are kept), dropping empty statements.
fn split_statements(sql: &str) -> SqlResult<Vec<String>> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| SqlError::syntax(e.to_string()))?;
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut meaningful = false;
    for t in tokens {
        match t {
            Token::SemiColon => {
                if meaningful {
                    parts.push(std::mem::take(&mut cur));
                }
                cur.clear();
                meaningful = false;
            }
            Token::Whitespace(_) => cur.push_str(&t.to_string()),
            other => {
                meaningful = true;
                cur.push_str(&other.to_string());
            }
        }
    }
    if meaningful {
        parts.push(cur);
    }
    Ok(parts)
}

/// `CREATE USER x ...` -> `CREATE ROLE x ...` (remembering it was a user),
/// and the noise word ENCRYPTED dropped from role statements, which
/// sqlparser does not accept.
fn rewrite_create_user(text: &str) -> (String, bool) {
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let is_role_statement = matches!(
        words.as_slice(),
        [a, b] if (a.eq_ignore_ascii_case("create") || a.eq_ignore_ascii_case("alter"))
            && (b.eq_ignore_ascii_case("user") || b.eq_ignore_ascii_case("role"))
    );
    if !is_role_statement {
        return (text.to_string(), false);
    }
    let is_user = words[0].eq_ignore_ascii_case("create") && words[1].eq_ignore_ascii_case("user");
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, text).tokenize() else {
        return (text.to_string(), false);
    };
    let mut out = String::new();
    let mut seen_user = false;
    for t in tokens {
        match &t {
            Token::Word(w)
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("encrypted") =>
            {
                continue
            }
            Token::Word(w)
                if is_user
                    && !seen_user
                    && w.quote_style.is_none()
                    && w.value.eq_ignore_ascii_case("user") =>
            {
                seen_user = true;
                out.push_str("ROLE");
            }
            other => out.push_str(&other.to_string()),
        }
    }
    (out, is_user)
}

fn syntax_error(e: sqlparser::parser::ParserError) -> SqlError {
    let msg = match e {
        sqlparser::parser::ParserError::ParserError(m)
        | sqlparser::parser::ParserError::TokenizerError(m) => m,
        sqlparser::parser::ParserError::RecursionLimitExceeded => {
            "statement is too deeply nested".into()
        }
    };
    // PostgreSQL words it as: syntax error at or near "x"
    let near = msg
        .split("found: ")
        .nth(1)
        .map(|f| f.split(" at Line").next().unwrap_or(f).to_string());
    match near {
        Some(tok) if tok != "EOF" => SqlError::syntax(format!("syntax error at or near \"{tok}\"")),
        Some(_) => SqlError::syntax("syntax error at end of input"),
        None => SqlError::syntax(format!("syntax error: {msg}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_keeps_quoted_semicolons() {
        let p = parse("SELECT 'a;b'; ; SELECT 2;").unwrap();
        assert_eq!(p.len(), 2);
        assert!(parse("").unwrap().is_empty());
        assert!(parse(" ; -- comment").unwrap().is_empty());
    }

    #[test]
    fn create_user_becomes_create_role() {
        let p = parse("CREATE USER replicator REPLICATION LOGIN ENCRYPTED PASSWORD 'password'")
            .unwrap();
        assert!(matches!(p[0], Parsed::CreateUser(_)));
    }

    #[test]
    fn syntax_errors_name_the_token() {
        let e = parse("SELEC 1").unwrap_err();
        assert_eq!(e.state.0, "42601");
        assert!(e.message.contains("SELEC"), "{}", e.message);
    }
}
