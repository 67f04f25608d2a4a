//! CREATE DATABASE / DROP DATABASE with a real driver: a new database is
//! empty and separate, cannot be dropped while in use or from inside a
//! transaction block, and is gone after DROP.
//!
//! Runs against PostgreSQL 15 too with `DUET_EXTERNAL_URL`.

use duet_tests::{assert_sqlstate, describe, TestServer};

#[tokio::test]
async fn databases_are_created_used_and_dropped() {
    let server = TestServer::start("databases").await;
    let admin = server.connect().await;
    let run = |sql: &'static str| {
        let admin = &admin;
        async move {
            admin
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)))
        }
    };
    run("DROP DATABASE IF EXISTS duet_extra").await;
    run("CREATE DATABASE duet_extra WITH ENCODING 'UTF8' TEMPLATE template0").await;
    assert_sqlstate(
        admin.batch_execute("CREATE DATABASE duet_extra").await,
        "42P04",
    );
    run("CREATE TABLE here (id int PRIMARY KEY)").await;

    let mut config = server.config().clone();
    config.dbname("duet_extra");
    let (extra, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    let connection = tokio::spawn(connection);
    // A new database does not see the other's tables.
    assert_sqlstate(extra.query("SELECT * FROM here", &[]).await, "42P01");
    extra
        .batch_execute("CREATE TABLE here (v text); INSERT INTO here VALUES ('extra')")
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    let row = extra
        .query_one("SELECT current_database(), v FROM here", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("duet_extra".into(), "extra".into())
    );

    // In use: refused.
    let e = assert_sqlstate(
        admin.batch_execute("DROP DATABASE duet_extra").await,
        "55006",
    );
    assert_eq!(
        e.message(),
        "database \"duet_extra\" is being accessed by other users"
    );
    assert_sqlstate(
        extra.batch_execute("DROP DATABASE duet_extra").await,
        "55006",
    );
    drop(extra);
    let _ = connection.await;

    assert_sqlstate(
        admin
            .batch_execute("BEGIN; DROP DATABASE duet_extra; COMMIT")
            .await,
        "25001",
    );
    run("ROLLBACK").await;
    // The session may take a moment to be gone on the server.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match admin.batch_execute("DROP DATABASE duet_extra").await {
            Ok(()) => break,
            Err(e)
                if std::time::Instant::now() < deadline
                    && e.code().map(|c| c.code()) == Some("55006") =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("{}", describe(&e)),
        }
    }
    assert_sqlstate(
        config.connect(tokio_postgres::NoTls).await.map(|_| ()),
        "3D000",
    );
    run("DROP DATABASE IF EXISTS duet_extra").await;
}
