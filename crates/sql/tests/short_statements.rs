//! A statement counts as short (the server runs it inline on its shard
//! next time) by the time it kept its thread busy, not by how long it
//! waited for another transaction.

mod common;

use std::time::Duration;

use common::root_session;
use duet_sql::{Database, DatabaseOptions, Value};

async fn run(s: &mut duet_sql::Session, sql: &str) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for stmt in s.parse(sql).expect(sql) {
        rows = s.execute(&stmt, vec![]).await.expect(sql).rows;
    }
    rows
}

#[tokio::test]
async fn waiting_for_a_row_lock_does_not_make_a_statement_long() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(dir.path(), DatabaseOptions::default()).expect("open");
    let mut holder = root_session(&db);
    let mut waiter = root_session(&db);
    run(&mut holder, "CREATE TABLE t (id int PRIMARY KEY, v int)").await;
    run(&mut holder, "INSERT INTO t VALUES (1, 0)").await;

    let update = waiter
        .parse("UPDATE t SET v = v + 1 WHERE id = 1")
        .expect("parse")
        .remove(0);
    waiter.execute(&update, vec![]).await.expect("warm-up");

    run(&mut holder, "BEGIN").await;
    run(&mut holder, "UPDATE t SET v = v + 10 WHERE id = 1").await;
    let (waited, ()) = tokio::join!(waiter.execute(&update, vec![]), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        run(&mut holder, "COMMIT").await;
    });
    waited.expect("update after the lock holder committed");
    let busy = update.last_busy();
    assert!(
        busy < Duration::from_millis(40),
        "50 ms in a lock queue are not work: busy {busy:?}"
    );
    assert_eq!(
        run(&mut holder, "SELECT v FROM t").await,
        vec![vec![Value::Int(12)]]
    );
}
