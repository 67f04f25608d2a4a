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
    /// GRANT role [, ...] TO role [, ...] / REVOKE role [, ...] FROM role [, ...]:
    /// role membership, which sqlparser does not parse.
    GrantRole {
        roles: Vec<String>,
        grantees: Vec<String>,
        grant: bool,
    },
    /// REPLICATE ... and SHOW REPLICATION STATUS.
    Replicate(crate::replicate::ReplicateStatement),
    /// COPY ... FROM STDIN / TO STDOUT.
    Copy(Box<crate::copy::CopyStatement>),
    /// CREATE DATABASE name [[WITH] option [=] value ...]
    CreateDatabase {
        name: String,
        owner: Option<String>,
    },
    /// DROP DATABASE [IF EXISTS] name [[WITH] (FORCE)]
    DropDatabase {
        name: String,
        if_exists: bool,
        force: bool,
    },
    /// VACUUM / ANALYZE: `command` is the tag, `tables` must exist.
    Maintenance {
        command: &'static str,
        tables: Vec<sqlparser::ast::ObjectName>,
    },
}

/// Splits a query string into statements and parses each.
pub fn parse(sql: &str) -> SqlResult<Vec<Parsed>> {
    // A bare primary URL is not SQL: REPLICATE is recognised on the whole
    // text before it is split into statements.
    if let Some(replicate) = crate::replicate::parse(sql) {
        return Ok(vec![Parsed::Replicate(replicate?)]);
    }
    // Before any syntax tree is built: one too deep to drop safely is not.
    crate::depth::check_statement(sql)?;
    let mut out = Vec::new();
    // Most queries are one statement: skip the splitting pass for them.
    let texts = if sql.contains(';') {
        split_statements(sql)?
    } else {
        vec![sql.to_string()]
    };
    for text in texts {
        if let Some(grant) = parse_grant_role(&text)? {
            out.push(grant);
            continue;
        }
        if let Some(d) = parse_database_statement(&text) {
            out.push(d?);
            continue;
        }
        if let Some(m) = parse_maintenance(&text) {
            out.push(m?);
            continue;
        }
        if let Some(copy) = crate::copy::parse_copy(&text) {
            out.push(Parsed::Copy(Box::new(copy?)));
            continue;
        }
        let (text, is_user) = rewrite_create_user(&text);
        let statements = parse_sql(&text)?;
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

/// sqlparser's parser as duet configures it: PostgreSQL's dialect, and
/// nesting up to [`crate::depth::MAX_PARSER_NESTING`] levels.
pub(crate) fn new_parser(dialect: &PostgreSqlDialect) -> Parser<'_> {
    Parser::new(dialect).with_recursion_limit(crate::depth::MAX_PARSER_NESTING)
}

/// Parses standard SQL statements (what sqlparser knows).
pub(crate) fn parse_sql(sql: &str) -> SqlResult<Vec<Ast>> {
    new_parser(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(syntax_error)
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

/// `VACUUM [FULL] [FREEZE] [VERBOSE] [ANALYZE] [(options)] [table [(columns)], ...]`
/// and `ANALYZE [VERBOSE] [(options)] [table [(columns)], ...]`: accepted
/// (an LSM tree compacts by itself; there are no statistics to gather) once
/// the tables are known to exist.
fn parse_maintenance(text: &str) -> Option<SqlResult<Parsed>> {
    use sqlparser::keywords::Keyword;
    let first = text.split_whitespace().next().unwrap_or("");
    let command = if first.eq_ignore_ascii_case("vacuum") {
        "VACUUM"
    } else if first.eq_ignore_ascii_case("analyze") || first.eq_ignore_ascii_case("analyse") {
        "ANALYZE"
    } else {
        return None;
    };
    let dialect = PostgreSqlDialect {};
    let parse = || -> Result<Vec<sqlparser::ast::ObjectName>, sqlparser::parser::ParserError> {
        let mut p = new_parser(&dialect).try_with_sql(text)?;
        p.next_token();
        if p.consume_token(&Token::LParen) {
            while !p.consume_token(&Token::RParen) {
                if p.next_token().token == Token::EOF {
                    return p.expected(")", p.peek_token());
                }
            }
        }
        while p
            .parse_one_of_keywords(&[
                Keyword::FULL,
                Keyword::FREEZE,
                Keyword::VERBOSE,
                Keyword::ANALYZE,
            ])
            .is_some()
        {}
        let mut tables = Vec::new();
        if p.peek_token().token == Token::EOF {
            return Ok(tables);
        }
        loop {
            tables.push(p.parse_object_name(false)?);
            p.parse_parenthesized_column_list(sqlparser::parser::IsOptional::Optional, false)?;
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        p.expect_token(&Token::EOF)?;
        Ok(tables)
    };
    Some(
        parse()
            .map(|tables| Parsed::Maintenance { command, tables })
            .map_err(syntax_error),
    )
}

/// CREATE DATABASE and DROP DATABASE in PostgreSQL's forms (sqlparser
/// knows neither the option list nor FORCE).
fn parse_database_statement(text: &str) -> Option<SqlResult<Parsed>> {
    use sqlparser::keywords::Keyword;
    let mut words = text.split_whitespace();
    let (first, second) = (words.next()?, words.next()?);
    let create = first.eq_ignore_ascii_case("create");
    if !(create || first.eq_ignore_ascii_case("drop")) || !second.eq_ignore_ascii_case("database") {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let parse = || -> Result<Parsed, sqlparser::parser::ParserError> {
        let mut p = new_parser(&dialect).try_with_sql(text)?;
        p.next_token();
        p.next_token();
        if create {
            let name = crate::planner::ident_name(&p.parse_identifier()?);
            let _with = p.parse_keyword(Keyword::WITH);
            let mut owner = None;
            // option [=] value, any number: OWNER matters, the rest
            // (TEMPLATE, ENCODING, LOCALE, ...) are accepted as is.
            while let Token::Word(w) = p.peek_token().token {
                p.next_token();
                let option = w.value.to_lowercase();
                if option == "connection" {
                    p.expect_keyword(Keyword::LIMIT)?;
                }
                let _eq = p.consume_token(&Token::Eq);
                let token = p.next_token();
                let value = match token.token {
                    Token::Word(v) if v.quote_style.is_some() => v.value,
                    Token::Word(v) => v.value.to_lowercase(),
                    Token::SingleQuotedString(v) => v,
                    Token::Number(v, _) => v,
                    Token::Minus => match p.next_token().token {
                        Token::Number(v, _) => format!("-{v}"),
                        _ => return p.expected("a value", token),
                    },
                    _ => return p.expected("a value", token),
                };
                if option == "owner" {
                    owner = Some(value);
                }
            }
            p.expect_token(&Token::EOF)?;
            return Ok(Parsed::CreateDatabase { name, owner });
        }
        let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = crate::planner::ident_name(&p.parse_identifier()?);
        let _with = p.parse_keyword(Keyword::WITH);
        let mut force = false;
        if p.consume_token(&Token::LParen) {
            force = p.parse_keyword(Keyword::FORCE);
            if !force {
                return p.expected("FORCE", p.peek_token());
            }
            p.expect_token(&Token::RParen)?;
        }
        p.expect_token(&Token::EOF)?;
        Ok(Parsed::DropDatabase {
            name,
            if_exists,
            force,
        })
    };
    Some(parse().map_err(syntax_error))
}

/// Recognizes role-membership GRANT/REVOKE (no ON clause).
fn parse_grant_role(text: &str) -> SqlResult<Option<Parsed>> {
    let first = text.split_whitespace().next().unwrap_or("");
    let grant = first.eq_ignore_ascii_case("grant");
    if !grant && !first.eq_ignore_ascii_case("revoke") {
        return Ok(None);
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize()
        .map_err(|e| SqlError::syntax(e.to_string()))?;
    let words: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let keyword = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    if words.iter().any(|t| keyword(t, "on")) {
        return Ok(None);
    }
    let separator = if grant { "to" } else { "from" };
    let Some(split) = words.iter().position(|t| keyword(t, separator)) else {
        return Ok(None);
    };
    let names = |ts: &[&Token]| -> SqlResult<Vec<String>> {
        let mut out = Vec::new();
        for t in ts {
            match t {
                Token::Comma => {}
                Token::Word(w) if w.quote_style.is_some() => out.push(w.value.clone()),
                Token::Word(w) if keyword(t, "with") || keyword(t, "granted") => {
                    return Err(SqlError::unsupported(format!(
                        "{} options are not supported",
                        w.value.to_uppercase()
                    )))
                }
                Token::Word(w) => out.push(w.value.to_lowercase()),
                other => {
                    return Err(SqlError::syntax(format!(
                        "syntax error at or near \"{other}\""
                    )))
                }
            }
        }
        if out.is_empty() {
            return Err(SqlError::syntax("syntax error: role name expected"));
        }
        Ok(out)
    };
    Ok(Some(Parsed::GrantRole {
        roles: names(&words[1..split])?,
        grantees: names(&words[split + 1..])?,
        grant,
    }))
}

pub(crate) fn syntax_error(e: sqlparser::parser::ParserError) -> SqlError {
    let msg = match e {
        sqlparser::parser::ParserError::ParserError(m)
        | sqlparser::parser::ParserError::TokenizerError(m) => m,
        // PostgreSQL's grammar stops at 10,000 levels the same way.
        sqlparser::parser::ParserError::RecursionLimitExceeded => {
            return SqlError::syntax("memory exhausted");
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
    fn role_membership_grants_parse() {
        match &parse("GRANT admin, \"Ops\" TO carol").unwrap()[0] {
            Parsed::GrantRole {
                roles,
                grantees,
                grant,
            } => {
                assert_eq!(
                    (roles.as_slice(), grantees.as_slice(), *grant),
                    (
                        &["admin".to_string(), "Ops".to_string()][..],
                        &["carol".to_string()][..],
                        true
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("REVOKE admin FROM carol").unwrap()[0],
            Parsed::GrantRole { grant: false, .. }
        ));
        assert!(matches!(
            parse("GRANT SELECT ON t TO carol").unwrap()[0],
            Parsed::Sql(_)
        ));
    }

    #[test]
    fn syntax_errors_name_the_token() {
        let e = parse("SELEC 1").unwrap_err();
        assert_eq!(e.state.0, "42601");
        assert!(e.message.contains("SELEC"), "{}", e.message);
    }
}
