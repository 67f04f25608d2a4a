//! Crash durability: a commit that was acknowledged survives SIGKILL of the
//! server, and nothing of an uncommitted transaction does.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duet_tests::{describe, skip_if_external, TestNode};

/// Restarts (or kills) the node from async code without stalling the runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

const AUTOCOMMIT_CLIENTS: i32 = 2;
const TRANSACTION_CLIENTS: i32 = 2;
const ROWS_PER_TRANSACTION: i32 = 5;
/// Kill the server once this many rows were acknowledged.
const KILL_AFTER: usize = 400;
/// Upper bound on each client's work, should the kill never come.
const MAX_ROWS_PER_CLIENT: i32 = 20_000;

/// Inserts rows (client, seq..seq + n): one autocommit INSERT per row, or
/// all of them in one explicit transaction.
async fn insert_rows(
    client: &mut tokio_postgres::Client,
    id: i32,
    seq: i32,
    n: i32,
    in_transaction: bool,
) -> Result<(), tokio_postgres::Error> {
    const INSERT: &str = "INSERT INTO acked VALUES ($1, $2)";
    if !in_transaction {
        for s in seq..seq + n {
            client.execute(INSERT, &[&id, &s]).await?;
        }
        return Ok(());
    }
    let tx = client.transaction().await?;
    for s in seq..seq + n {
        tx.execute(INSERT, &[&id, &s]).await?;
    }
    tx.commit().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_sigkill() {
    if skip_if_external("acknowledged_commits_survive_sigkill") {
        return;
    }
    let mut node = TestNode::insecure();
    let client = node.connect().await;
    client
        .batch_execute(
            "CREATE TABLE acked (client integer, seq integer, PRIMARY KEY (client, seq))",
        )
        .await
        .unwrap();

    // Writers insert until the server dies under them, remembering every
    // row whose commit was acknowledged.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for id in 0..AUTOCOMMIT_CLIENTS + TRANSACTION_CLIENTS {
        let mut client = node.connect().await;
        let counter = acknowledged.clone();
        let in_transactions = id >= AUTOCOMMIT_CLIENTS;
        writers.spawn(async move {
            let mut acked = Vec::new();
            let mut seq = 0;
            while seq < MAX_ROWS_PER_CLIENT {
                let batch = if in_transactions {
                    ROWS_PER_TRANSACTION
                } else {
                    1
                };
                let result = insert_rows(&mut client, id, seq, batch, in_transactions).await;
                if result.is_err() {
                    break; // the server is gone
                }
                acked.extend((seq..seq + batch).map(|s| (id, s)));
                counter.fetch_add(batch as usize, Ordering::Relaxed);
                seq += batch;
            }
            acked
        });
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "writers too slow: {acknowledged:?} rows in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    blocking(|| node.kill9());
    let mut acked = HashSet::new();
    while let Some(rows) = writers.join_next().await {
        acked.extend(rows.unwrap());
    }
    assert!(acked.len() >= KILL_AFTER);

    blocking(|| node.restart());
    let client = node.connect().await;
    let present: HashSet<(i32, i32)> = client
        .query("SELECT client, seq FROM acked", &[])
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut lost: Vec<_> = acked.difference(&present).collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged rows lost after SIGKILL, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );

    // Transactions are atomic across the crash: all of their rows or none.
    let mut per_transaction: BTreeMap<(i32, i32), i32> = BTreeMap::new();
    for &(c, s) in present.iter().filter(|(c, _)| *c >= AUTOCOMMIT_CLIENTS) {
        *per_transaction
            .entry((c, s / ROWS_PER_TRANSACTION))
            .or_default() += 1;
    }
    for (txn, rows) in per_transaction {
        assert_eq!(
            rows, ROWS_PER_TRANSACTION,
            "transaction {txn:?} is partly there"
        );
    }

    // And the node takes writes again.
    client
        .execute("INSERT INTO acked VALUES (-1, -1)", &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncommitted_work_is_gone_after_sigkill() {
    if skip_if_external("uncommitted_work_is_gone_after_sigkill") {
        return;
    }
    let mut node = TestNode::insecure();
    let mut client = node.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id integer PRIMARY KEY, v text); \
             INSERT INTO t VALUES (1, 'committed')",
        )
        .await
        .unwrap();

    // A transaction that inserts, updates and deletes, then never commits.
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(
        "INSERT INTO t SELECT g, 'uncommitted' FROM generate_series(100, 1099) AS g; \
         UPDATE t SET v = 'changed' WHERE id = 1; \
         CREATE TABLE never (x integer)",
    )
    .await
    .unwrap();
    assert_eq!(
        tx.query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1001
    );

    blocking(|| node.kill9());
    drop(tx);
    blocking(|| node.restart());

    let client = node.connect().await;
    let rows = client
        .query("SELECT id, v FROM t ORDER BY id", &[])
        .await
        .unwrap();
    let rows: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, [(1, "committed".to_owned())]);
    let err = client.query("SELECT * FROM never", &[]).await.unwrap_err();
    assert_eq!(duet_tests::sqlstate(&err), "42P01", "{}", describe(&err));
    // No leftover locks or keys from the dead transaction.
    client
        .execute("INSERT INTO t VALUES (100, 'new')", &[])
        .await
        .unwrap();
    client
        .execute("UPDATE t SET v = 'updated' WHERE id = 1", &[])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_and_sequences_survive_sigkill() {
    if skip_if_external("schema_and_sequences_survive_sigkill") {
        return;
    }
    let mut node = TestNode::insecure();
    let client = node.connect().await;
    client
        .batch_execute(
            "CREATE TABLE s (id serial PRIMARY KEY, v integer NOT NULL); \
             CREATE INDEX s_v_idx ON s (v)",
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for v in 0..50 {
        let row = client
            .query_one("INSERT INTO s (v) VALUES ($1) RETURNING id", &[&v])
            .await
            .unwrap();
        ids.push(row.get::<_, i32>(0));
    }

    blocking(|| node.kill9());
    blocking(|| node.restart());

    let client = node.connect().await;
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM s", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        50
    );
    // The index still answers...
    let row = client
        .query_one("SELECT id FROM s WHERE v = 49", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), ids[49]);
    // ...and the sequence never hands out a value it handed out before.
    let max_before = *ids.iter().max().unwrap();
    for v in 50..60 {
        let row = client
            .query_one("INSERT INTO s (v) VALUES ($1) RETURNING id", &[&v])
            .await
            .unwrap();
        let id: i32 = row.get(0);
        assert!(
            id > max_before,
            "serial reused or went back: {id} <= {max_before}"
        );
    }
}
