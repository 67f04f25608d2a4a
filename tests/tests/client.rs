//! A real driver (tokio-postgres) against a duet node: the extended protocol
//! with binary parameters and results, the simple protocol, transactions,
//! concurrent writers, SQLSTATEs, statement_timeout and cancellation.
//!
//! Every test also runs against PostgreSQL 15 with
//! `DUET_EXTERNAL_URL=postgresql://...` (see `sql/run-against-postgres.sh`).

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use duet_tests::{assert_sqlstate, PgNumeric, TestServer};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, SimpleQueryMessage};

/// Fails a test that hangs instead of letting it block the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

async fn within_timeout<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn timestamp(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> NaiveDateTime {
    date(y, m, d).and_hms_micro_opt(h, mi, s, micros).unwrap()
}

/// One row of the `typed` table, as Rust values.
#[derive(Debug, Clone, PartialEq)]
struct Typed {
    id: i32,
    i2: Option<i16>,
    i8: Option<i64>,
    f8: Option<f64>,
    num: Option<PgNumeric>,
    b: Option<bool>,
    t: Option<String>,
    vc: Option<String>,
    ba: Option<Vec<u8>>,
    d: Option<NaiveDate>,
    ts: Option<NaiveDateTime>,
    tstz: Option<DateTime<Utc>>,
}

impl Typed {
    fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.id, &self.i2, &self.i8, &self.f8, &self.num, &self.b, &self.t, &self.vc,
            &self.ba, &self.d, &self.ts, &self.tstz,
        ]
    }

    fn from_row(row: &tokio_postgres::Row) -> Typed {
        Typed {
            id: row.get(0),
            i2: row.get(1),
            i8: row.get(2),
            f8: row.get(3),
            num: row.get(4),
            b: row.get(5),
            t: row.get(6),
            vc: row.get(7),
            ba: row.get(8),
            d: row.get(9),
            ts: row.get(10),
            tstz: row.get(11),
        }
    }
}

const TYPED_COLUMNS: [Type; 12] = [
    Type::INT4,
    Type::INT2,
    Type::INT8,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::BOOL,
    Type::TEXT,
    Type::VARCHAR,
    Type::BYTEA,
    Type::DATE,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
];

#[tokio::test]
async fn parameters_of_every_type_round_trip_in_binary() {
    let server = TestServer::start("param_types").await;
    let client = server.connect().await;
    within_timeout(async {
        client
            .batch_execute(
                "CREATE TABLE typed (id integer PRIMARY KEY, i2 smallint, i8 bigint, \
                 f8 double precision, num numeric(12,3), b boolean, t text, vc varchar(10), \
                 ba bytea, d date, ts timestamp, tstz timestamptz)",
            )
            .await
            .unwrap();

        let rows = [
            Typed {
                id: 1,
                i2: Some(i16::MIN),
                i8: Some(i64::MAX),
                f8: Some(1.5e300),
                num: Some(PgNumeric::new("123456789.123")),
                b: Some(true),
                t: Some("héllo wörld ✓".into()),
                vc: Some("varchar".into()),
                ba: Some(vec![0, 1, 2, 0xfe, 0xff]),
                d: Some(date(2024, 2, 29)),
                ts: Some(timestamp(2024, 2, 29, 12, 34, 56, 789_012)),
                tstz: Some(timestamp(1999, 12, 31, 23, 59, 59, 999_999).and_utc()),
            },
            Typed {
                id: 2,
                i2: Some(-1),
                i8: Some(i64::MIN),
                f8: Some(-0.1),
                num: Some(PgNumeric::new("-0.001")),
                b: Some(false),
                t: Some(String::new()),
                vc: Some(String::new()),
                ba: Some(Vec::new()),
                d: Some(date(1970, 1, 1)),
                ts: Some(timestamp(2000, 1, 1, 0, 0, 0, 0)),
                tstz: Some(timestamp(2038, 1, 19, 3, 14, 8, 0).and_utc()),
            },
            Typed {
                id: 3,
                i2: None,
                i8: None,
                f8: None,
                num: None,
                b: None,
                t: None,
                vc: None,
                ba: None,
                d: None,
                ts: None,
                tstz: None,
            },
        ];

        // The server infers the parameter types from the target columns.
        let insert = client
            .prepare("INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
            .await
            .unwrap();
        assert_eq!(insert.params(), TYPED_COLUMNS);
        for row in &rows {
            assert_eq!(client.execute(&insert, &row.params()).await.unwrap(), 1);
        }

        // Binary results, with the right column types.
        let select = client
            .prepare("SELECT * FROM typed WHERE id = $1")
            .await
            .unwrap();
        assert_eq!(select.params(), [Type::INT4]);
        let types: Vec<Type> = select.columns().iter().map(|c| c.type_().clone()).collect();
        assert_eq!(types, TYPED_COLUMNS);
        for expected in &rows {
            let row = client.query_one(&select, &[&expected.id]).await.unwrap();
            assert_eq!(&Typed::from_row(&row), expected);
        }

        // Parameters of every type in a WHERE clause.
        let p = rows[0].params();
        let found = client
            .query(
                "SELECT id FROM typed WHERE i2 = $1 AND i8 = $2 AND f8 = $3 AND num = $4 \
                 AND b = $5 AND t = $6 AND vc = $7 AND ba = $8 AND d = $9 AND ts = $10 \
                 AND tstz = $11",
                &p[1..],
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].get::<_, i32>(0), 1);

        // Explicitly typed parameters in expressions.
        let row = client
            .query_one(
                "SELECT $1::bigint + 1, $2::text || '!', $3::numeric * 2",
                &[&41i64, &"hi", &PgNumeric::new("1.25")],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 42);
        assert_eq!(row.get::<_, String>(1), "hi!");
        assert_eq!(row.get::<_, PgNumeric>(2), PgNumeric::new("2.50"));

        // A statement prepared once runs many times.
        let by_flag = client
            .prepare("SELECT count(*) FROM typed WHERE b = $1")
            .await
            .unwrap();
        for (flag, count) in [(true, 1i64), (false, 1), (true, 1)] {
            assert_eq!(
                client
                    .query_one(&by_flag, &[&flag])
                    .await
                    .unwrap()
                    .get::<_, i64>(0),
                count
            );
        }
    })
    .await;
}

/// The values of the first row of a simple query.
async fn simple_row(client: &Client, sql: &str) -> Vec<Option<String>> {
    let messages = client.simple_query(sql).await.unwrap();
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no row from {sql}"));
    (0..row.len())
        .map(|i| row.get(i).map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn simple_query_returns_text() {
    let server = TestServer::start("simple_query").await;
    let client = server.connect().await;
    within_timeout(async {
        client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
        let values = simple_row(
            &client,
            "SELECT 1::smallint, 2::integer, 3::bigint, 1.5::double precision, \
             12.5::numeric(5,2), true, 'text'::text, 'vc'::varchar(4), '\\x01ff'::bytea, \
             '2024-01-02'::date, '2024-01-02 03:04:05.25'::timestamp, \
             '2024-01-02 03:04:05+02'::timestamptz, NULL::text",
        )
        .await;
        let expected = [
            "1",
            "2",
            "3",
            "1.5",
            "12.50",
            "t",
            "text",
            "vc",
            "\\x01ff",
            "2024-01-02",
            "2024-01-02 03:04:05.25",
            "2024-01-02 01:04:05+00",
        ];
        let mut expected: Vec<Option<String>> =
            expected.iter().map(|s| Some(s.to_string())).collect();
        expected.push(None);
        assert_eq!(values, expected);

        // Several statements in one Query message; each reports its own result.
        let messages = client
            .simple_query(
                "CREATE TABLE s (id integer PRIMARY KEY, v text); \
                 INSERT INTO s VALUES (1, 'a'), (2, 'b'); \
                 UPDATE s SET v = 'c' WHERE id = 2; \
                 SELECT id, v FROM s ORDER BY id",
            )
            .await
            .unwrap();
        let completions: Vec<u64> = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!(completions, [0, 2, 1, 2]);
        let rows: Vec<(String, String)> = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((r.get(0).unwrap().to_owned(), r.get(1).unwrap().to_owned()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(rows, [("1".into(), "a".into()), ("2".into(), "c".into())]);
    })
    .await;
}

async fn count(client: &impl GenericClient, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn transactions_commit_rollback_and_abort() {
    let server = TestServer::start("transactions").await;
    let mut a = server.connect().await;
    let b = server.connect().await;
    within_timeout(async {
        a.batch_execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
            .await
            .unwrap();

        // Committed: visible to the other session, but only after COMMIT.
        let tx = a.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1, 'committed')", &[])
            .await
            .unwrap();
        assert_eq!(count(&tx, "SELECT count(*) FROM t").await, 1);
        assert_eq!(count(&b, "SELECT count(*) FROM t").await, 0);
        tx.commit().await.unwrap();
        assert_eq!(count(&b, "SELECT count(*) FROM t").await, 1);

        // Rolled back: never visible.
        let tx = a.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (2, 'rolled back')", &[])
            .await
            .unwrap();
        tx.execute("DELETE FROM t WHERE id = 1", &[]).await.unwrap();
        tx.rollback().await.unwrap();
        let ids: Vec<i32> = b
            .query("SELECT id FROM t ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ids, [1]);

        // An error aborts the transaction block: 25P02 until ROLLBACK.
        a.batch_execute("BEGIN").await.unwrap();
        a.execute("INSERT INTO t VALUES (3, 'lost')", &[])
            .await
            .unwrap();
        assert_sqlstate(
            a.execute("INSERT INTO t VALUES (1, 'dup')", &[]).await,
            "23505",
        );
        let aborted = assert_sqlstate(a.query("SELECT 1", &[]).await, "25P02");
        assert_eq!(
            aborted.message(),
            "current transaction is aborted, commands ignored until end of transaction block"
        );
        assert_sqlstate(a.simple_query("SELECT 1").await, "25P02");
        assert_sqlstate(a.prepare("SELECT id FROM t").await, "25P02");
        a.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(count(&a, "SELECT count(*) FROM t").await, 1);

        // COMMIT of an aborted transaction rolls it back.
        a.batch_execute("BEGIN; INSERT INTO t VALUES (4, 'lost too')")
            .await
            .unwrap();
        assert_sqlstate(a.execute("SELECT 1 / 0", &[]).await, "22012");
        a.batch_execute("COMMIT").await.unwrap();
        assert_eq!(count(&b, "SELECT count(*) FROM t").await, 1);

        // The transaction API's drop without commit rolls back too.
        {
            let tx = a.transaction().await.unwrap();
            tx.execute("INSERT INTO t VALUES (5, 'dropped')", &[])
                .await
                .unwrap();
        }
        assert_eq!(count(&a, "SELECT count(*) FROM t").await, 1);
    })
    .await;
}

const WRITERS: usize = 8;
const INCREMENTS: usize = 50;

/// `WRITERS` sessions each run `INCREMENTS` times `work`, concurrently.
async fn hammer<F, Fut>(server: &TestServer, work: F)
where
    F: Fn(Client) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Client> + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        let client = server.connect().await;
        let work = work.clone();
        tasks.spawn(async move {
            let mut client = client;
            for _ in 0..INCREMENTS {
                client = work(client).await;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("writer failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_lose_an_update() {
    let server = TestServer::start("concurrent_writers").await;
    let client = server.connect().await;
    let total = (WRITERS * INCREMENTS) as i32;
    within_timeout(async {
        client
            .batch_execute(
                "CREATE TABLE counters (id integer PRIMARY KEY, n integer NOT NULL); \
                 INSERT INTO counters VALUES (1, 0), (2, 0)",
            )
            .await
            .unwrap();
        let read = |id: i32| {
            let client = &client;
            async move {
                client
                    .query_one("SELECT n FROM counters WHERE id = $1", &[&id])
                    .await
                    .unwrap()
                    .get::<_, i32>(0)
            }
        };

        // Autocommit: every UPDATE waits for the previous writer of the row
        // and then increments its committed value.
        hammer(&server, |client: Client| async move {
            client
                .execute("UPDATE counters SET n = n + 1 WHERE id = 1", &[])
                .await
                .expect("autocommit UPDATE failed");
            client
        })
        .await;
        assert_eq!(read(1).await, total);

        // Explicit transactions touching two rows, always in the same order.
        hammer(&server, |mut client: Client| async move {
            let tx = client.transaction().await.unwrap();
            tx.execute("UPDATE counters SET n = n + 1 WHERE id = 1", &[])
                .await
                .expect("UPDATE 1");
            tx.execute("UPDATE counters SET n = n - 1 WHERE id = 2", &[])
                .await
                .expect("UPDATE 2");
            tx.commit().await.expect("COMMIT failed");
            client
        })
        .await;
        assert_eq!(read(1).await, 2 * total);
        assert_eq!(read(2).await, -total);
    })
    .await;
}

#[tokio::test]
async fn errors_carry_sqlstates_and_leave_the_session_usable() {
    let server = TestServer::start("sqlstates").await;
    let client = server.connect().await;
    within_timeout(async {
        client
            .batch_execute(
                "CREATE TABLE e (id integer PRIMARY KEY, v text NOT NULL); \
                 INSERT INTO e VALUES (1, 'one')",
            )
            .await
            .unwrap();
        let cases = [
            (
                "SELECT * FROM no_such_table",
                "42P01",
                r#"relation "no_such_table" does not exist"#,
            ),
            (
                "SELECT no_such_column FROM e",
                "42703",
                r#"column "no_such_column" does not exist"#,
            ),
            (
                "INSERT INTO e VALUES (1, 'again')",
                "23505",
                r#"duplicate key value violates unique constraint "e_pkey""#,
            ),
            (
                "INSERT INTO e (id) VALUES (2)",
                "23502",
                r#"null value in column "v" of relation "e" violates not-null constraint"#,
            ),
            (
                "SELECT 'abc'::integer",
                "22P02",
                r#"invalid input syntax for type integer: "abc""#,
            ),
            ("SELEC 1", "42601", r#"syntax error at or near "SELEC""#),
        ];
        for (sql, code, message) in cases {
            // Over the extended protocol (prepare fails or execute fails)...
            let db = assert_sqlstate(client.execute(sql, &[]).await, code);
            assert_eq!(db.message(), message, "{sql}");
            assert_eq!(db.severity(), "ERROR");
            assert_eq!(
                count(&client, "SELECT count(*) FROM e").await,
                1,
                "after {sql}"
            );
            // ...and over the simple protocol.
            let db = assert_sqlstate(client.simple_query(sql).await, code);
            assert_eq!(db.message(), message, "{sql}");
            assert_eq!(
                count(&client, "SELECT count(*) FROM e").await,
                1,
                "after {sql}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn statement_timeout_cancels_a_long_query() {
    let server = TestServer::start("statement_timeout").await;
    let client = server.connect().await;
    within_timeout(async {
        client
            .batch_execute("SET statement_timeout = '100ms'")
            .await
            .unwrap();
        let started = Instant::now();
        let db = assert_sqlstate(
            client
                .query("SELECT count(*) FROM generate_series(1, 100000000)", &[])
                .await,
            "57014",
        );
        assert_eq!(db.message(), "canceling statement due to statement timeout");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );

        // The session survives; the timeout applies to every statement.
        assert_eq!(
            count(&client, "SELECT count(*) FROM generate_series(1, 1000)").await,
            1000
        );
        assert_sqlstate(
            client
                .simple_query("SELECT count(*) FROM generate_series(1, 100000000)")
                .await,
            "57014",
        );
        client
            .batch_execute("SET statement_timeout = 0")
            .await
            .unwrap();
        assert_eq!(count(&client, "SELECT 1::bigint").await, 1);
    })
    .await;
}

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let server = TestServer::start("cancel").await;
    let client = server.connect().await;
    within_timeout(async {
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            // Give the query time to start; cancelling before it runs would
            // be a no-op and the query would run to completion.
            tokio::time::sleep(Duration::from_millis(300)).await;
            token
                .cancel_query(tokio_postgres::NoTls)
                .await
                .expect("send CancelRequest");
        });
        let started = Instant::now();
        let db = assert_sqlstate(
            client
                .query("SELECT count(*) FROM generate_series(1, 100000000)", &[])
                .await,
            "57014",
        );
        assert_eq!(db.message(), "canceling statement due to user request");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        canceller.await.unwrap();

        // The session is still usable.
        assert_eq!(count(&client, "SELECT 7::bigint").await, 7);
    })
    .await;
}

#[tokio::test]
async fn a_multi_statement_query_is_one_transaction() {
    let server = TestServer::start("implicit_transaction").await;
    let client = server.connect().await;
    within_timeout(async {
        client
            .batch_execute("CREATE TABLE implicit_txn (id integer PRIMARY KEY)")
            .await
            .unwrap();
        // The third INSERT fails: the first two are rolled back with it.
        let result = client
            .batch_execute(
                "INSERT INTO implicit_txn VALUES (1); INSERT INTO implicit_txn VALUES (2); \
                 INSERT INTO implicit_txn VALUES (1)",
            )
            .await;
        assert_sqlstate(result, "23505");
        assert_eq!(count(&client, "SELECT count(*) FROM implicit_txn").await, 0);

        client
            .batch_execute(
                "INSERT INTO implicit_txn VALUES (1); INSERT INTO implicit_txn VALUES (2)",
            )
            .await
            .unwrap();
        assert_eq!(count(&client, "SELECT count(*) FROM implicit_txn").await, 2);
    })
    .await;
}

#[tokio::test]
async fn repeatable_read_conflicts_and_deadlocks_are_reported() {
    let server = TestServer::start("conflicts").await;
    let a = server.connect().await;
    let b = server.connect().await;
    within_timeout(async {
        a.batch_execute("CREATE TABLE acct (id integer PRIMARY KEY, n integer); INSERT INTO acct VALUES (1, 0), (2, 0)")
            .await
            .unwrap();

        // REPEATABLE READ: a row changed after the snapshot cannot be updated.
        a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
        assert_eq!(count(&a, "SELECT count(*) FROM acct").await, 2);
        b.batch_execute("UPDATE acct SET n = 10 WHERE id = 1").await.unwrap();
        assert_sqlstate(a.batch_execute("UPDATE acct SET n = n + 1 WHERE id = 1").await, "40001");
        a.batch_execute("ROLLBACK").await.unwrap();

        // READ COMMITTED acts on the latest version instead.
        a.batch_execute("BEGIN").await.unwrap();
        assert_eq!(count(&a, "SELECT count(*) FROM acct").await, 2);
        b.batch_execute("UPDATE acct SET n = 20 WHERE id = 1").await.unwrap();
        a.batch_execute("UPDATE acct SET n = n + 1 WHERE id = 1").await.unwrap();
        a.batch_execute("COMMIT").await.unwrap();
        let n: i32 = b.query_one("SELECT n FROM acct WHERE id = 1", &[]).await.unwrap().get(0);
        assert_eq!(n, 21);

        // Two transactions locking rows in opposite orders: one is chosen
        // as the deadlock victim (40P01), the other completes.
        a.batch_execute("BEGIN; UPDATE acct SET n = n + 1 WHERE id = 1").await.unwrap();
        b.batch_execute("BEGIN; UPDATE acct SET n = n + 1 WHERE id = 2").await.unwrap();
        // Whichever waits second closes the cycle and is the victim.
        let (ra, rb) = tokio::join!(
            a.batch_execute("UPDATE acct SET n = n + 1 WHERE id = 2"),
            b.batch_execute("UPDATE acct SET n = n + 1 WHERE id = 1")
        );
        let deadlocked = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Err(e) if e.code().map(|c| c.code()) == Some("40P01")))
            .count();
        assert_eq!(deadlocked, 1, "a: {ra:?}, b: {rb:?}");
        assert!(ra.is_ok() || rb.is_ok(), "a: {ra:?}, b: {rb:?}");
        a.batch_execute("ROLLBACK").await.unwrap();
        b.batch_execute("ROLLBACK").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn select_for_update_locks_the_rows_it_returns() {
    let server = TestServer::start("for_update").await;
    let a = server.connect().await;
    let b = server.connect().await;
    within_timeout(async {
        a.batch_execute("CREATE TABLE stock (id integer PRIMARY KEY, n integer); INSERT INTO stock VALUES (1, 5), (2, 5)")
            .await
            .unwrap();
        a.batch_execute("BEGIN").await.unwrap();
        let rows = a.query("SELECT id, n FROM stock WHERE id = 1 FOR UPDATE", &[]).await.unwrap();
        assert_eq!(rows.len(), 1);

        // B's update of the locked row waits for A's transaction.
        let b_update = b.execute("UPDATE stock SET n = n + 1 WHERE id = 1", &[]);
        tokio::pin!(b_update);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut b_update).await.is_err(),
            "the UPDATE did not wait for the FOR UPDATE lock"
        );
        a.execute("UPDATE stock SET n = 100 WHERE id = 1", &[]).await.unwrap();
        a.batch_execute("COMMIT").await.unwrap();
        assert_eq!(b_update.await.unwrap(), 1);
        let n: i32 = a.query_one("SELECT n FROM stock WHERE id = 1", &[]).await.unwrap().get(0);
        assert_eq!(n, 101, "B acted on A's committed value");

        assert_sqlstate(a.query("SELECT count(*) FROM stock FOR UPDATE", &[]).await, "0A000");
    })
    .await;
}
