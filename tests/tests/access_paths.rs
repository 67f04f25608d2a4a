//! Point reads and range scans use the primary key or an index, never a
//! full scan: checked through EXPLAIN on a real node, then the rows the
//! index paths return are checked against a full scan's.

use duet_tests::TestServer;

async fn plan(client: &tokio_postgres::Client, sql: &str) -> String {
    let rows = client
        .simple_query(&format!("EXPLAIN {sql}"))
        .await
        .expect("EXPLAIN failed");
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn key_predicates_use_indexes() {
    let server = TestServer::start("access_paths").await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (a int, b int, v text, PRIMARY KEY (a, b)); \
             CREATE INDEX t_v_idx ON t (v); \
             INSERT INTO t SELECT g % 10, g, 'v' || (g % 7) FROM generate_series(1, 500) g",
        )
        .await
        .unwrap();

    let point = plan(&client, "SELECT * FROM t WHERE a = 3 AND b = 13").await;
    assert!(point.starts_with("Index Scan using t_pkey on t"), "{point}");
    assert!(point.contains("a = ? AND b = ?"), "{point}");

    let prefix_range = plan(
        &client,
        "SELECT * FROM t WHERE a = 3 AND b > 100 AND b <= 200",
    )
    .await;
    assert!(
        prefix_range.contains("Index Scan using t_pkey on t"),
        "{prefix_range}"
    );
    assert!(
        prefix_range.contains("a = ? AND b > ? AND b <= ?"),
        "{prefix_range}"
    );

    let secondary = plan(&client, "SELECT a FROM t WHERE v = 'v3'").await;
    assert!(
        secondary.contains("Index Scan using t_v_idx on t"),
        "{secondary}"
    );

    let prepared = client
        .prepare("SELECT v FROM t WHERE a = $1 AND b = $2")
        .await
        .unwrap();
    let row = client.query_one(&prepared, &[&3i32, &13i32]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "v6");

    let update = plan(&client, "UPDATE t SET v = 'x' WHERE a = 1 AND b = 11").await;
    assert!(update.contains("Index Scan using t_pkey on t"), "{update}");

    let full = plan(&client, "SELECT * FROM t WHERE b + 1 = 14").await;
    assert!(full.contains("Seq Scan on t"), "{full}");

    // The index paths return exactly what a full scan with the same filter does.
    for (indexed, scanned) in [
        (
            "SELECT b FROM t WHERE a = 3 AND b > 100 AND b <= 200 ORDER BY b",
            "SELECT b FROM t WHERE a + 0 = 3 AND b + 0 > 100 AND b + 0 <= 200 ORDER BY b",
        ),
        (
            "SELECT b FROM t WHERE v = 'v3' ORDER BY b",
            "SELECT b FROM t WHERE v || '' = 'v3' ORDER BY b",
        ),
        (
            "SELECT b FROM t WHERE a >= 8 ORDER BY b",
            "SELECT b FROM t WHERE a + 0 >= 8 ORDER BY b",
        ),
    ] {
        let a: Vec<i32> = client
            .query(indexed, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let b: Vec<i32> = client
            .query(scanned, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!a.is_empty(), "{indexed} returned nothing");
        assert_eq!(a, b, "{indexed}");
    }
}
