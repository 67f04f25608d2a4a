//! No client can take a node down: statements that are very deep or very
//! long are answered as PostgreSQL 15 answers them (measured on 15.20 with
//! its default max_stack_depth: the result or the same SQLSTATE), over the
//! simple and the extended protocol, and a panic inside one session ends
//! that session only. Afterwards the node serves and its secondary streams.

use duet_tests::pair::{pair_with, scalar, wait_for_value};
use duet_tests::{assert_sqlstate, wait_for, TestNode};
use std::time::Duration;

/// A statement, and PostgreSQL 15's answer: a value or a SQLSTATE.
struct Case {
    name: &'static str,
    sql: String,
    answer: Result<&'static str, &'static str>,
}

fn cases() -> Vec<Case> {
    let chain = |terms: usize| format!("SELECT 1{}", "+1".repeat(terms - 1));
    let nested = |open: &str, close: &str, n: usize| {
        format!("SELECT {}1{}", open.repeat(n), close.repeat(n))
    };
    let items = vec!["12345"; 1_750_000].join(",");
    vec![
        Case { name: "1,000,000-term + chain", sql: chain(1_000_000), answer: Err("54001") },
        Case { name: "3,001-term + chain", sql: chain(3_001), answer: Ok("3001") },
        Case { name: "10,000 nested parentheses", sql: nested("(", ")", 10_000), answer: Err("42601") },
        Case { name: "9,990 nested parentheses", sql: nested("(", ")", 9_990), answer: Ok("1") },
        Case {
            name: "10,000 nested subqueries",
            sql: nested("(SELECT ", ")", 10_000),
            answer: Err("42601"),
        },
        Case {
            name: "10 MB array literal",
            sql: format!("SELECT cardinality('{{{items}}}'::int[])"),
            answer: Ok("1750000"),
        },
        Case {
            name: "10 MB ARRAY[...]",
            sql: format!("SELECT cardinality(ARRAY[{items}])"),
            answer: Ok("1750000"),
        },
        Case { name: "100-deep view chain", sql: "SELECT x FROM v99".into(), answer: Ok("100") },
    ]
}

fn view_chain() -> Vec<String> {
    let mut ddl = vec!["CREATE VIEW v0 AS SELECT 1 AS x".to_string()];
    ddl.extend((1..100).map(|i| format!("CREATE VIEW v{i} AS SELECT x + 1 AS x FROM v{}", i - 1)));
    ddl
}

fn first_value(rows: &[tokio_postgres::SimpleQueryMessage]) -> String {
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_and_long_statements_get_postgresqls_answer_over_both_protocols() {
    let node = TestNode::insecure();
    let client = node.connect().await;
    for ddl in view_chain() {
        client.batch_execute(&ddl).await.expect("view");
    }
    for case in cases() {
        // Simple protocol.
        let simple = client.simple_query(&case.sql).await;
        match case.answer {
            Ok(v) => assert_eq!(first_value(&simple.expect(case.name)), v, "{}", case.name),
            Err(code) => {
                assert_sqlstate(simple, code);
            }
        }
        // Extended protocol (Parse, Bind, Execute).
        let extended = client.query(case.sql.as_str(), &[]).await;
        match case.answer {
            Ok(v) => {
                let rows = extended.unwrap_or_else(|e| panic!("{}: {e}", case.name));
                let got: String = match rows[0].columns()[0].type_().name() {
                    "int4" => rows[0].get::<_, i32>(0).to_string(),
                    _ => rows[0].get::<_, i64>(0).to_string(),
                };
                assert_eq!(got, v, "{}", case.name);
            }
            Err(code) => {
                assert_sqlstate(extended, code);
            }
        }
        // The session goes on.
        let one: i32 = client.query_one("SELECT 1", &[]).await.expect("after").get(0);
        assert_eq!(one, 1, "after {}", case.name);
    }
}

#[test]
fn deep_statements_leave_the_primary_serving_and_the_secondary_streaming() {
    let (primary, secondary) = pair_with(&[]);
    let file = primary.dir().join("statement.sql");
    primary.psql(&view_chain().iter().map(String::as_str).collect::<Vec<_>>()).assert_ok();
    for case in cases() {
        std::fs::write(&file, format!("{};\n", case.sql)).expect("write statement");
        let include = format!("\\i {}", file.display());
        let out = primary.psql(&["\\set VERBOSITY verbose", &include]);
        match case.answer {
            Ok(v) => assert_eq!(out.assert_ok().stdout.lines().nth(2).map(str::trim), Some(v), "{}", case.name),
            Err(code) => {
                out.assert_err(&format!("ERROR:  {code}:"));
            }
        }
    }
    primary.psql(&["INSERT INTO replication_test (test_data) VALUES ('after')"]).assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "2");
    assert_eq!(scalar(&secondary, "SELECT x FROM v99"), "100");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_ends_its_session_only() {
    let node = TestNode::insecure_with_env(&[("DUET_TEST_HOOKS", "1")]);
    let bystander = node.connect().await;
    bystander.batch_execute("CREATE TABLE t (a int PRIMARY KEY); CREATE TABLE u (a int)").await.expect("tables");
    bystander.batch_execute("BEGIN; INSERT INTO t VALUES (1)").await.expect("bystander");
    let victim = node.connect().await;
    victim.batch_execute("BEGIN; INSERT INTO u VALUES (1)").await.expect("victim");
    let err = assert_sqlstate(victim.simple_query("SELECT duet_test_panic('boom')").await, "XX000");
    assert!(err.message().contains("boom"), "{err}");
    assert!(victim.is_closed() || victim.simple_query("SELECT 1").await.is_err());

    // The other session and its transaction go on; the node takes new ones.
    bystander.batch_execute("INSERT INTO t VALUES (2); COMMIT").await.expect("bystander commits");
    let fresh = node.connect().await;
    let n: i64 = fresh.query_one("SELECT count(*) FROM t", &[]).await.expect("count").get(0);
    assert_eq!(n, 2);
    // The panicked session's transaction was rolled back.
    let n: i64 = fresh.query_one("SELECT count(*) FROM u", &[]).await.expect("count").get(0);
    assert_eq!(n, 0);
    fresh.batch_execute("INSERT INTO u VALUES (2)").await.expect("u writable");
    wait_for("the panic in the log", Duration::from_secs(10), || {
        let logs = node.logs();
        (logs.contains("session panicked") && logs.contains("SELECT duet_test_panic('boom')")).then_some(())
    });
    // Without test hooks the function does not exist.
    let plain = TestNode::insecure();
    let c = plain.connect().await;
    assert_sqlstate(c.simple_query("SELECT duet_test_panic('boom')").await, "42883");
}

#[test]
fn a_panic_on_the_primary_leaves_its_secondary_streaming() {
    let (mut primary, secondary) = pair_with(&[("DUET_TEST_HOOKS", "1")]);
    primary
        .psql(&["\\set VERBOSITY verbose", "SELECT duet_test_panic('boom')"])
        .assert_err("XX000");
    assert!(primary.has_exited().is_none(), "the primary process ended");
    primary.psql(&["INSERT INTO replication_test (test_data) VALUES ('after')"]).assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "2");
}
