//! The PostgreSQL protocol front end driven by a real client
//! (tokio-postgres) against an in-process server on 127.0.0.1:0.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use duet_server::config::{AuthMethod, ConnType, HbaRule};
use duet_server::{Config, Server, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

struct TestServer {
    addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            certs_dir: dir.path().join("certs"),
            insecure: true,
            http_listen: String::new(),
            ..Config::default()
        };
        tweak(&mut config);
        let server = Server::bind(config).await.expect("server starts");
        let addr = server.local_addr();
        let handle = server.handle();
        let task = tokio::spawn(async move {
            server
                .serve_until(std::future::pending())
                .await
                .expect("server runs");
        });
        TestServer {
            addr,
            handle,
            task,
            _dir: dir,
        }
    }

    fn conn_str(&self, user: &str, extra: &str) -> String {
        format!(
            "host={} port={} user={user} dbname=defaultdb {extra}",
            self.addr.ip(),
            self.addr.port()
        )
    }

    async fn try_connect_as(
        &self,
        user: &str,
        extra: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.conn_str(user, extra), NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    async fn try_connect(&self, extra: &str) -> Result<Client, tokio_postgres::Error> {
        self.try_connect_as("root", extra).await
    }

    async fn connect(&self) -> Client {
        self.try_connect("").await.expect("connects")
    }

    async fn stop(self) {
        self.handle.shutdown();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
    }
}

fn code(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.code()
}

/// The server's error message.
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|db| db.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

fn rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

fn completions(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simple_query_protocol() {
    let server = TestServer::start().await;
    let client = server.connect().await;

    let msgs = client
        .simple_query("SELECT 1 AS one, 'two' AS two")
        .await
        .expect("select");
    assert_eq!(
        rows(&msgs),
        vec![vec![Some("1".to_string()), Some("two".to_string())]]
    );
    match msgs
        .iter()
        .find(|m| matches!(m, SimpleQueryMessage::RowDescription(_)))
    {
        Some(SimpleQueryMessage::RowDescription(cols)) => {
            assert_eq!(cols[0].name(), "one");
            assert_eq!(cols[1].name(), "two");
        }
        _ => panic!("no RowDescription"),
    }

    let msgs = client
        .simple_query(
            "CREATE TABLE t (id INT PRIMARY KEY, name TEXT); \
             INSERT INTO t VALUES (1, 'a'), (2, NULL); \
             SELECT id, name FROM t ORDER BY id",
        )
        .await
        .expect("multi-statement query");
    assert_eq!(completions(&msgs), vec![0, 2, 2]);
    assert_eq!(
        rows(&msgs),
        vec![
            vec![Some("1".into()), Some("a".into())],
            vec![Some("2".into()), None]
        ]
    );

    // an empty query is answered with EmptyQueryResponse
    let msgs = client.simple_query("").await.expect("empty query");
    assert!(rows(&msgs).is_empty());

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prepared_statements_with_params_and_binary_results() {
    let server = TestServer::start().await;
    let client = server.connect().await;

    client
        .batch_execute(
            "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             price DOUBLE PRECISION, active BOOLEAN)",
        )
        .await
        .expect("create table");

    let insert = client
        .prepare("INSERT INTO items (id, name, price, active) VALUES ($1, $2, $3, $4)")
        .await
        .expect("prepare insert");
    assert_eq!(insert.params().len(), 4);
    for (id, name, price, active) in [(1i64, "apple", 1.5f64, true), (2, "pear", 2.25, false)] {
        let n = client
            .execute(&insert, &[&id, &name, &price, &active])
            .await
            .expect("insert");
        assert_eq!(n, 1);
    }

    // tokio-postgres asks for binary results
    let select = client
        .prepare("SELECT id, name, price, active FROM items WHERE id = $1")
        .await
        .expect("prepare select");
    assert_eq!(select.columns().len(), 4);
    assert_eq!(
        select.columns()[0].type_(),
        &tokio_postgres::types::Type::INT8
    );
    let row = client.query_one(&select, &[&2i64]).await.expect("select");
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, String>(1), "pear");
    assert_eq!(row.get::<_, f64>(2), 2.25);
    assert!(!row.get::<_, bool>(3));

    let none = client
        .query_opt(&select, &[&99i64])
        .await
        .expect("select none");
    assert!(none.is_none());

    // an int4 parameter inferred from a cast
    let row = client
        .query_one("SELECT $1::int4 + 1", &[&41i32])
        .await
        .expect("cast");
    assert_eq!(row.get::<_, i32>(0), 42);

    // statements without results
    let n = client
        .execute(
            "UPDATE items SET price = price * 2 WHERE active = $1",
            &[&true],
        )
        .await
        .expect("update");
    assert_eq!(n, 1);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_keep_the_session_usable() {
    let server = TestServer::start().await;
    let client = server.connect().await;

    let err = client
        .simple_query("SELECT * FROM no_such_table")
        .await
        .expect_err("missing table");
    assert_eq!(code(&err), Some(&SqlState::UNDEFINED_TABLE));

    // the statements after a failing one in the same query do not run
    client
        .batch_execute("CREATE TABLE e (a INT)")
        .await
        .expect("create");
    let err = client
        .batch_execute("INSERT INTO e VALUES (1); SELECT nope FROM e; INSERT INTO e VALUES (2)")
        .await
        .expect_err("second statement fails");
    assert_eq!(code(&err), Some(&SqlState::UNDEFINED_COLUMN));

    let msgs = client.simple_query("SELECT 1").await.expect("still usable");
    assert_eq!(rows(&msgs), vec![vec![Some("1".into())]]);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extended_protocol_error_recovery() {
    let server = TestServer::start().await;
    let client = server.connect().await;

    // Parse error
    let err = client.prepare("SELEC 1").await.expect_err("syntax error");
    assert_eq!(code(&err), Some(&SqlState::SYNTAX_ERROR));

    // more than one statement in a prepared statement
    let err = client
        .prepare("SELECT 1; SELECT 2")
        .await
        .expect_err("two statements");
    assert_eq!(code(&err), Some(&SqlState::SYNTAX_ERROR));

    // Execute error: the rest of the pipeline is skipped until Sync
    let err = client
        .query_one("SELECT 1 / $1::int4", &[&0i32])
        .await
        .expect_err("division by zero");
    assert_eq!(code(&err), Some(&SqlState::DIVISION_BY_ZERO));

    let row = client
        .query_one("SELECT $1::int4 * 2", &[&21i32])
        .await
        .expect("usable after the error");
    assert_eq!(row.get::<_, i32>(0), 42);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn portal_suspension() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE p (a INT PRIMARY KEY); INSERT INTO p VALUES (1), (2), (3), (4), (5)",
        )
        .await
        .expect("setup");

    let tx = client.transaction().await.expect("begin");
    let portal = tx
        .bind("SELECT a FROM p ORDER BY a", &[])
        .await
        .expect("bind");
    let mut seen = Vec::new();
    for expected in [2usize, 2, 1, 0] {
        let batch = tx.query_portal(&portal, 2).await.expect("fetch");
        assert_eq!(batch.len(), expected);
        seen.extend(batch.iter().map(|r| r.get::<_, i32>(0)));
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    tx.commit().await.expect("commit");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_a_running_statement() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // Only meaningful if the engine has pg_sleep.
    if let Err(e) = client.simple_query("SELECT pg_sleep(0)").await {
        eprintln!("skipping: pg_sleep unsupported ({e})");
        server.stop().await;
        return;
    }
    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let r = client.simple_query("SELECT pg_sleep(5)").await;
        (r, client)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(NoTls).await.expect("cancel request");
    let (result, client) = sleeper.await.expect("join");
    let err = result.expect_err("statement canceled");
    assert_eq!(code(&err), Some(&SqlState::QUERY_CANCELED));
    assert!(started.elapsed() < Duration::from_secs(4));
    client
        .simple_query("SELECT 1")
        .await
        .expect("usable after cancel");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn startup_errors() {
    let server = TestServer::start_with(|c| c.max_connections = 2).await;

    let err = server
        .try_connect("dbname=no_such_db")
        .await
        .expect_err("unknown database");
    assert_eq!(code(&err), Some(&SqlState::INVALID_CATALOG_NAME));
    assert!(message(&err).contains("database \"no_such_db\" does not exist"));

    let a = server.connect().await;
    let _b = server.connect().await;
    let err = server
        .try_connect("")
        .await
        .expect_err("third session refused");
    assert_eq!(code(&err), Some(&SqlState::TOO_MANY_CONNECTIONS));
    drop(a);
    // the slot is released once the session ends
    let mut ok = false;
    for _ in 0..50 {
        if server.try_connect("").await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a slot frees up when a session closes");

    server.stop().await;
}

/// Reads backend messages until one of type `until`; returns them all.
async fn read_until(stream: &mut TcpStream, until: u8) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let mut header = [0u8; 5];
        if stream.read_exact(&mut header).await.is_err() {
            return out;
        }
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).await.expect("body");
        let t = header[0];
        out.push((t, body));
        if t == until {
            return out;
        }
    }
}

async fn raw_session(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let params = b"user\0root\0database\0defaultdb\0\0";
    let mut startup = Vec::new();
    startup.extend_from_slice(&((8 + params.len()) as i32).to_be_bytes());
    startup.extend_from_slice(&196608i32.to_be_bytes());
    startup.extend_from_slice(params);
    stream.write_all(&startup).await.expect("startup");
    let msgs = read_until(&mut stream, b'Z').await;
    assert!(msgs.iter().any(|(t, _)| *t == b'K'), "BackendKeyData sent");
    assert!(msgs.iter().any(|(t, _)| *t == b'S'), "ParameterStatus sent");
    stream
}

fn frame(buf: &mut Vec<u8>, t: u8, body: &[u8]) {
    buf.push(t);
    buf.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    buf.extend_from_slice(body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn protocol_violation_is_fatal() {
    let server = TestServer::start().await;
    let mut stream = raw_session(server.addr).await;
    stream.write_all(b"!\0\0\0\x04").await.expect("garbage");
    let msgs = read_until(&mut stream, b'E').await;
    let (_, body) = msgs.last().expect("an error");
    let text = String::from_utf8_lossy(body);
    assert!(text.contains("FATAL"), "{text}");
    assert!(text.contains("08P01"), "{text}");
    // and the server closes the connection
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extended_messages_without_describe() {
    // Parse/Bind/Execute/Sync without Describe: no RowDescription.
    let server = TestServer::start().await;
    let mut stream = raw_session(server.addr).await;
    let mut buf = Vec::new();
    frame(&mut buf, b'P', b"\0SELECT 1\0\0\0");
    frame(&mut buf, b'B', b"\0\0\0\0\0\0\0\0");
    frame(&mut buf, b'E', b"\0\0\0\0\0");
    frame(&mut buf, b'S', b"");
    stream.write_all(&buf).await.expect("pipeline");
    let msgs = read_until(&mut stream, b'Z').await;
    let types: Vec<u8> = msgs.iter().map(|(t, _)| *t).collect();
    assert_eq!(types, vec![b'1', b'2', b'D', b'C', b'Z']);

    // an error skips everything up to Sync
    let mut buf = Vec::new();
    frame(&mut buf, b'P', b"\0SELEC 1\0\0\0");
    frame(&mut buf, b'B', b"\0\0\0\0\0\0\0\0");
    frame(&mut buf, b'E', b"\0\0\0\0\0");
    frame(&mut buf, b'S', b"");
    stream.write_all(&buf).await.expect("pipeline");
    let msgs = read_until(&mut stream, b'Z').await;
    let types: Vec<u8> = msgs.iter().map(|(t, _)| *t).collect();
    assert_eq!(types, vec![b'E', b'Z']);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scram_authentication() {
    let server = TestServer::start_with(|c| {
        c.root_password = Some(duet_server::config::Secret("s3cret".into()));
        c.hba = vec![HbaRule {
            conn_type: ConnType::Host,
            database: "all".into(),
            user: "all".into(),
            address: "all".into(),
            method: AuthMethod::ScramSha256,
        }];
    })
    .await;

    let client = server
        .try_connect("password=s3cret")
        .await
        .expect("right password");
    client.simple_query("SELECT 1").await.expect("query");

    let err = server
        .try_connect("password=wrong")
        .await
        .expect_err("wrong password");
    assert_eq!(code(&err), Some(&SqlState::INVALID_PASSWORD));
    assert!(message(&err).contains("password authentication failed for user \"root\""));

    // an unknown user fails exactly like a wrong password
    let err = server
        .try_connect_as("ghost", "password=x")
        .await
        .expect_err("unknown user");
    assert_eq!(code(&err), Some(&SqlState::INVALID_PASSWORD));
    assert!(message(&err).contains("password authentication failed for user \"ghost\""));

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hba_no_entry() {
    let server = TestServer::start_with(|c| {
        c.hba = vec![HbaRule {
            conn_type: ConnType::Host,
            database: "all".into(),
            user: "nobody".into(),
            address: "all".into(),
            method: AuthMethod::Trust,
        }];
    })
    .await;
    let err = server.try_connect("").await.expect_err("no hba entry");
    assert_eq!(
        code(&err),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    assert!(message(&err).contains("no pg_hba.conf entry"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_closes_sessions() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.simple_query("SELECT 1").await.expect("query");
    let addr = server.addr;
    server.stop().await;
    assert!(client.is_closed() || client.simple_query("SELECT 1").await.is_err());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_statements_do_not_stall_other_sessions() {
    let server = TestServer::start().await;
    let probe = server.connect().await;
    if let Err(e) = probe.simple_query("SELECT pg_sleep(0)").await {
        eprintln!("skipping: pg_sleep unsupported ({e})");
        server.stop().await;
        return;
    }
    // More sleeping sessions than runtime worker threads: they still run
    // side by side, and other sessions stay responsive.
    let all = Instant::now();
    let mut sleepers = Vec::new();
    for _ in 0..3 {
        let client = server.connect().await;
        sleepers.push(tokio::spawn(async move {
            client.simple_query("SELECT pg_sleep(2)").await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let other = server.connect().await;
    other.simple_query("SELECT 1").await.expect("other session");
    probe.simple_query("SELECT 1").await.expect("idle session");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "other sessions waited {:?} for sleeping ones",
        started.elapsed()
    );
    for s in sleepers {
        s.await.expect("join").expect("sleep completes");
    }
    assert!(
        all.elapsed() < Duration::from_millis(3500),
        "three 2 s sleeps took {:?}: statements were serialized",
        all.elapsed()
    );
    server.stop().await;
}

/// Parse/Bind/Execute of one SQL text, for pipelines.
fn execute_frames(buf: &mut Vec<u8>, sql: &str) {
    let mut parse = vec![0u8];
    parse.extend_from_slice(sql.as_bytes());
    parse.extend_from_slice(b"\0\0\0");
    frame(buf, b'P', &parse);
    frame(buf, b'B', b"\0\0\0\0\0\0\0\0");
    frame(buf, b'E', b"\0\0\0\0\0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executes_before_a_sync_are_one_transaction() {
    let server = TestServer::start().await;
    let mut stream = raw_session(server.addr).await;
    let mut buf = Vec::new();
    execute_frames(&mut buf, "CREATE TABLE batch (id int PRIMARY KEY)");
    frame(&mut buf, b'S', b"");
    stream.write_all(&buf).await.expect("create");
    read_until(&mut stream, b'Z').await;

    // A batch whose third row fails: none of it is kept (as with a JDBC
    // executeBatch in autocommit mode on PostgreSQL).
    let mut buf = Vec::new();
    for id in [1, 2, 1] {
        execute_frames(&mut buf, &format!("INSERT INTO batch VALUES ({id})"));
    }
    frame(&mut buf, b'S', b"");
    stream.write_all(&buf).await.expect("batch");
    let msgs = read_until(&mut stream, b'Z').await;
    assert!(msgs
        .iter()
        .any(|(t, body)| *t == b'E' && String::from_utf8_lossy(body).contains("23505")));
    assert_eq!(
        msgs.last().map(|(_, body)| body.clone()),
        Some(b"I".to_vec()),
        "idle after Sync"
    );

    let client = server.connect().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM batch", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);

    // A batch that succeeds is committed at Sync.
    let mut buf = Vec::new();
    for id in [1, 2, 3] {
        execute_frames(&mut buf, &format!("INSERT INTO batch VALUES ({id})"));
    }
    frame(&mut buf, b'S', b"");
    stream.write_all(&buf).await.expect("batch");
    read_until(&mut stream, b'Z').await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM batch", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 3);
    server.stop().await;
}
