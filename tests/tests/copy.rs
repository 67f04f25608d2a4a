//! COPY FROM STDIN / TO STDOUT with real clients: tokio-postgres (the
//! extended protocol) and psql's `\copy` (the simple protocol), in text and
//! csv, with escapes, NULLs, defaults, errors that leave the session usable,
//! and transactions.
//!
//! Runs against PostgreSQL 15 too with `DUET_EXTERNAL_URL`.

use bytes::Bytes;
use duet_tests::{assert_sqlstate, describe, psql, TestServer};
use futures::{SinkExt, TryStreamExt};
use tokio_postgres::Client;

async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
}

async fn copy_in(client: &Client, sql: &str, data: &str) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    futures::pin_mut!(sink);
    // Split mid-row: rows may span CopyData messages.
    for chunk in data.as_bytes().chunks(7) {
        sink.send(Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await
}

async fn copy_out(client: &Client, sql: &str) -> String {
    let stream = client
        .copy_out(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    let chunks: Vec<Bytes> = stream
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    String::from_utf8(chunks.concat()).expect("utf8")
}

#[tokio::test]
async fn text_and_csv_round_trip_with_nulls_escapes_and_defaults() {
    let server = TestServer::start("copy_round_trip").await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE items (id serial PRIMARY KEY, name text, qty int DEFAULT 7, price numeric(8,2), seen date)",
    )
    .await;
    let text = "alpha\t1\t1.50\t2024-01-02\n\
                tab\\there\t\\N\t\\N\t\\N\n\
                back\\\\slash\\nnewline\t3\t0\t2024-02-29\n";
    let n = copy_in(
        &client,
        "COPY items (name, qty, price, seen) FROM STDIN",
        text,
    )
    .await
    .unwrap_or_else(|e| panic!("{}", describe(&e)));
    assert_eq!(n, 3);
    // Columns left out of the list take their defaults.
    let n = copy_in(
        &client,
        "COPY items (name) FROM STDIN WITH (FORMAT csv, HEADER true)",
        "name\n\"quoted, with comma\"\n\"\"\n\n",
    )
    .await
    .unwrap_or_else(|e| panic!("{}", describe(&e)));
    assert_eq!(n, 3);

    let out = copy_out(&client, "COPY items TO STDOUT").await;
    assert_eq!(
        out,
        "1\talpha\t1\t1.50\t2024-01-02\n\
         2\ttab\\there\t\\N\t\\N\t\\N\n\
         3\tback\\\\slash\\nnewline\t3\t0.00\t2024-02-29\n\
         4\tquoted, with comma\t7\t\\N\t\\N\n\
         5\t\t7\t\\N\t\\N\n\
         6\t\\N\t7\t\\N\t\\N\n"
    );
    let out = copy_out(
        &client,
        "COPY (SELECT id, name FROM items WHERE id >= 4 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
    )
    .await;
    assert_eq!(out, "id,name\n4,\"quoted, with comma\"\n5,\"\"\n6,\n");
}

#[tokio::test]
async fn bad_data_fails_the_copy_and_the_session_goes_on() {
    let server = TestServer::start("copy_errors").await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE t (a int PRIMARY KEY, b text NOT NULL)",
    )
    .await;

    let e = assert_sqlstate(
        copy_in(&client, "COPY t FROM STDIN", "1\tx\nzz\ty\n").await,
        "22P02",
    );
    assert_eq!(e.message(), "invalid input syntax for type integer: \"zz\"");
    assert_eq!(e.where_(), Some("COPY t, line 2, column a: \"zz\""));
    let e = assert_sqlstate(copy_in(&client, "COPY t FROM STDIN", "1\n").await, "22P04");
    assert_eq!(e.message(), "missing data for column \"b\"");
    let e = assert_sqlstate(
        copy_in(&client, "COPY t FROM STDIN", "1\tx\tz\n").await,
        "22P04",
    );
    assert_eq!(e.message(), "extra data after last expected column");
    assert_sqlstate(
        copy_in(&client, "COPY t FROM STDIN", "1\t\\N\n").await,
        "23502",
    );
    assert_sqlstate(
        copy_in(&client, "COPY t FROM STDIN", "1\tx\n1\ty\n").await,
        "23505",
    );
    // (Over the simple protocol: tokio-postgres's copy_in loses track of
    // the connection when the COPY fails before copy mode, with PostgreSQL
    // too.)
    assert_sqlstate(client.batch_execute("COPY nope FROM STDIN").await, "42P01");
    if server.node().is_some() {
        // duet's own limit (PostgreSQL accepts it): see docs/compatibility.md.
        assert_sqlstate(
            client.prepare("COPY t FROM STDIN (FORMAT binary)").await,
            "0A000",
        );
    }
    // Nothing of the failed COPYs is there, and the session still works.
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);

    // Inside a transaction block: a failed COPY aborts the block; a
    // successful one is rolled back with it.
    exec(&client, "BEGIN").await;
    copy_in(&client, "COPY t FROM STDIN", "1\tone\n2\ttwo\n")
        .await
        .unwrap();
    assert_sqlstate(
        copy_in(&client, "COPY t FROM STDIN", "x\tone\n").await,
        "22P02",
    );
    assert_sqlstate(client.query("SELECT 1", &[]).await, "25P02");
    exec(&client, "ROLLBACK").await;
    exec(&client, "BEGIN").await;
    copy_in(&client, "COPY t FROM STDIN", "1\tone\n2\ttwo\n")
        .await
        .unwrap();
    exec(&client, "COMMIT").await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
}

#[tokio::test]
async fn psql_backslash_copy_from_a_csv_file_and_back() {
    let server = TestServer::start("copy_psql").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "id,note\n1,plain\n2,\"multi\nline\"\n3,\n4,\"\"\"quoted\"\"\"\n",
    )
    .expect("write csv");
    let load = format!(
        "\\copy notes FROM '{}' WITH (FORMAT csv, HEADER)",
        input.display()
    );
    let out = psql(
        server.url(),
        &[
            "CREATE TABLE notes (id int PRIMARY KEY, note text)",
            &load,
            "COPY notes TO STDOUT WITH CSV",
        ],
    );
    out.assert_ok();
    assert_eq!(
        out.stdout,
        "CREATE TABLE\nCOPY 4\n1,plain\n2,\"multi\nline\"\n3,\n4,\"\"\"quoted\"\"\"\n"
    );
}
