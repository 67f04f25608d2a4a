//! Statements that are very deep or very long: each is answered as
//! PostgreSQL 15 answers it (the result, or the same SQLSTATE), on a thread
//! with the stack a node gives its session threads, and never takes the
//! thread down. The expected answers were measured on PostgreSQL 15.20 with
//! its default max_stack_depth (2MB); the end-to-end test `limits` sends
//! the same statements to a real node.

mod common;

use duet_sql::depth::{session_stack_size, DEFAULT_MAX_STACK_DEPTH};
use duet_sql::{Database, DatabaseOptions, Session, SqlError, Value};

/// Runs `body` with a session on a thread sized as a node sizes its shards.
fn on_session_thread(body: impl FnOnce(&mut Session) + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(session_stack_size(DEFAULT_MAX_STACK_DEPTH))
        .spawn(move || {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Database::open(dir.path(), DatabaseOptions::default()).expect("open");
            let mut s = common::root_session(&db);
            body(&mut s);
        })
        .expect("spawn")
        .join()
        .expect("the session thread survived");
}

fn run(s: &mut Session, sql: &str) -> Result<Vec<Vec<Value>>, SqlError> {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let mut rows = Vec::new();
        for stmt in s.parse(sql)? {
            rows = s.execute(&stmt, vec![]).await?.rows;
        }
        Ok(rows)
    })
}

/// The first value of the first row, as the tests compare it.
fn text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Text(t) | Value::Json(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

fn one(s: &mut Session, sql: &str) -> String {
    match run(s, sql) {
        Ok(rows) => text(&rows[0][0]),
        Err(e) => panic!("{}...: {e}", &sql[..sql.len().min(60)]),
    }
}

fn state(s: &mut Session, sql: &str) -> String {
    match run(s, sql) {
        Ok(rows) => panic!("{}... succeeded: {rows:?}", &sql[..sql.len().min(60)]),
        Err(e) => e.state.0.to_string(),
    }
}

fn chain(terms: usize) -> String {
    format!("SELECT 1{}", "+1".repeat(terms - 1))
}

fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("SELECT {}{inner}{}", open.repeat(n), close.repeat(n))
}

#[test]
fn long_chains_evaluate_as_far_as_postgresql_and_fail_with_54001_past_that() {
    on_session_thread(|s| {
        // PostgreSQL 15 evaluates 3,001 terms and refuses 5,001 with 54001.
        assert_eq!(one(s, &chain(301)), "301");
        assert_eq!(one(s, &chain(3001)), "3001");
        for terms in [1_000_000, 100_000, 99_990, 20_000] {
            assert_eq!(state(s, &chain(terms)), "54001", "{terms} terms");
        }
        // Concatenation and comparison chains too.
        let concat = format!("SELECT length('a'{})", "||'a'".repeat(2000));
        assert_eq!(one(s, &concat), "2001");
        let concat = format!("SELECT length('a'{})", "||'a'".repeat(100_000));
        assert_eq!(state(s, &concat), "54001");
        // AND lists too (PostgreSQL's grammar makes them flat, so it runs
        // even 100,000 terms; duet does not flatten them yet).
        let and = format!("SELECT count(*) FROM (SELECT 1) t WHERE {}", vec!["true"; 3_000].join(" AND "));
        assert_eq!(one(s, &and), "1");
        assert_eq!(one(s, "SELECT 1 + 1"), "2");
    });
}

#[test]
fn nesting_fails_in_the_parser_where_postgresqls_does() {
    on_session_thread(|s| {
        assert_eq!(one(s, &nested("(", "1", ")", 9_990)), "1");
        assert_eq!(state(s, &nested("(", "1", ")", 10_000)), "42601");
        assert_eq!(one(s, &nested("(SELECT ", "1", ")", 100)), "1");
        assert_eq!(state(s, &nested("(SELECT ", "1", ")", 10_000)), "42601");
        // Between the two PostgreSQL answers 54001 (3,000) or 42601 (5,000);
        // duet answers one of them, and survives.
        for n in [2_000, 3_000, 5_000] {
            match run(s, &nested("(SELECT ", "1", ")", n)) {
                Ok(rows) => assert_eq!(text(&rows[0][0]), "1"),
                Err(e) => assert!(["54001", "42601"].contains(&e.state.0), "{n}: {e}"),
            }
        }
        assert_eq!(one(s, "SELECT 1 + 1"), "2");
    });
}

#[test]
fn views_over_views_and_large_literals() {
    on_session_thread(|s| {
        run(s, "CREATE VIEW v0 AS SELECT 1 AS x").expect("v0");
        for i in 1..100 {
            run(s, &format!("CREATE VIEW v{i} AS SELECT x + 1 AS x FROM v{}", i - 1)).expect("view");
        }
        assert_eq!(one(s, "SELECT x FROM v99"), "100");
        // 10 MB of array literal, as a string and as ARRAY[...].
        let items = vec!["12345"; 1_750_000].join(",");
        assert_eq!(one(s, &format!("SELECT cardinality('{{{items}}}'::int[])")), "1750000");
        assert_eq!(one(s, &format!("SELECT cardinality(ARRAY[{items}])")), "1750000");
        // JSON: 10,000 levels parse, 100,000 are 54001.
        let json = |n: usize| format!("SELECT '{}{}'::jsonb", "[".repeat(n), "]".repeat(n));
        assert!(one(s, &json(10_000)).starts_with("[[["));
        assert_eq!(state(s, &json(100_000)), "54001");
        assert_eq!(one(s, "SELECT 1 + 1"), "2");
    });
}


#[test]
fn functions_build_values_up_to_postgresqls_one_gigabyte_limit() {
    on_session_thread(|s| {
        // PostgreSQL builds these in full (duet once cut repeat at 1 MiB).
        assert_eq!(one(s, "SELECT length(repeat('x', 2000000))"), "2000000");
        assert_eq!(one(s, "SELECT length(lpad('x', 2000000, 'ab'))"), "2000000");
        // Past 1 GB: 54000 "requested length too large", before allocating.
        for sql in [
            "SELECT length(repeat('x', 1073741824))",
            "SELECT length(repeat('abc', 400000000))",
            "SELECT length(lpad('x', 1073741824))",
            "SELECT length(rpad('x', 1073741824, 'y'))",
        ] {
            assert_eq!(state(s, sql), "54000", "{sql}");
        }
        assert_eq!(one(s, "SELECT 1 + 1"), "2");
    });
}
