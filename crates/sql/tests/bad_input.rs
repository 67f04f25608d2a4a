//! Bad SQL gets an error with a SQLSTATE, never a panic, and the session
//! stays usable. A small deterministic fuzz over the SQL entry point.

mod common;

use duet_sql::{Database, DatabaseOptions, Value};

fn session(dir: &std::path::Path) -> duet_sql::Session {
    let db = Database::open(dir, DatabaseOptions::default()).expect("open");
    common::root_session(&db)
}

async fn run(s: &mut duet_sql::Session, sql: &str) -> Result<Vec<Vec<Value>>, duet_sql::SqlError> {
    let mut rows = Vec::new();
    for stmt in s.parse(sql)? {
        rows = s.execute(&stmt, vec![]).await?.rows;
    }
    Ok(rows)
}

#[tokio::test]
async fn garbage_sql_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = session(dir.path());
    run(
        &mut s,
        "CREATE TABLE t (a int PRIMARY KEY, b text, c numeric(5,2), d date)",
    )
    .await
    .expect("create");
    run(
        &mut s,
        "INSERT INTO t VALUES (1, 'x', 1.5, '2024-01-01'), (2, NULL, NULL, NULL)",
    )
    .await
    .expect("insert");

    for sql in [
        "SELECT 1/0",
        "SELECT 2147483647::int + 1",
        "SELECT 'abc'::int",
        "SELECT (SELECT a FROM t)",
        "SELECT a FROM t GROUP BY b",
        "SELECT nosuch FROM t",
        "SELECT * FROM nosuch",
        "INSERT INTO t VALUES (1)",
        "INSERT INTO t (a) VALUES (NULL)",
        "SELECT 12345.678::numeric(5,2)",
    ] {
        let e = run(&mut s, sql).await.expect_err(sql);
        assert_eq!(e.state.0.len(), 5, "{sql}: {e}");
    }

    let fragments = [
        "SELECT",
        "INSERT INTO t",
        "VALUES",
        "(",
        ")",
        ",",
        "*",
        "a",
        "b",
        "c",
        "d",
        "t",
        "FROM",
        "WHERE",
        "=",
        "<",
        "+",
        "-",
        "/",
        "1",
        "0",
        "-2147483649",
        "9223372036854775808",
        "'x'",
        "''",
        "NULL",
        "AND",
        "OR",
        "NOT",
        "GROUP BY",
        "ORDER BY",
        "HAVING",
        "count(*)",
        "sum(a)",
        "LIMIT",
        "OFFSET",
        "JOIN",
        "ON",
        "LEFT",
        "IN",
        "(SELECT 1)",
        "EXISTS",
        "CASE WHEN",
        "THEN",
        "ELSE",
        "END",
        "::int",
        "::date",
        "::numeric(2,1)",
        "$1",
        "UPDATE t SET",
        "DELETE FROM t",
        "DISTINCT",
        "UNION",
        "generate_series(1, 3)",
        "1e308 * 1e308",
        "'2024-02-30'",
        ";",
    ];
    let mut seed: u64 = 42;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let n = 1 + (next() % 10) as usize;
        let sql: Vec<&str> = (0..n)
            .map(|_| fragments[(next() % fragments.len() as u64) as usize])
            .collect();
        let sql = sql.join(" ");
        if let Err(e) = run(&mut s, &sql).await {
            assert_eq!(e.state.0.len(), 5, "{sql}: {e}");
        }
        // Leave any transaction the fragments opened, then check the session works.
        let _ = run(&mut s, "ROLLBACK").await;
    }
    let rows = run(&mut s, "SELECT count(*) FROM t").await.expect("count");
    assert!(matches!(rows[0][0], Value::Int(n) if n >= 0));
}
