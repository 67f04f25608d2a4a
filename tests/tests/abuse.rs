//! Bad input and abuse at the front door: garbage before and during
//! startup, oversized messages and statements, clients that never finish
//! connecting, connection floods past max_connections, and replication
//! without TLS where TLS is required. Each must get a clear error (or a
//! closed socket) while the server keeps serving everybody else.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use duet_tests::pair::kwdb_url;
use duet_tests::{sqlstate, try_connect, TestNode};

/// A startup packet for `user` on defaultdb (protocol 3.0).
fn startup(user: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for s in ["user", user, "database", "defaultdb", ""] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

fn raw(node: &TestNode) -> TcpStream {
    let stream = TcpStream::connect(node.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes the connection (or 10 s
/// pass without a byte).
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("server neither answered nor closed: {e}"),
        }
    }
}

/// Reads until ReadyForQuery ('Z'), returning what came.
fn read_until_ready(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out
        .windows(6)
        .any(|w| w[0] == b'Z' && w[1..5] == [0, 0, 0, 5])
    {
        let n = stream.read(&mut buf).expect("server answers");
        assert!(n > 0, "closed before ReadyForQuery: {out:?}");
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_serves(node: &TestNode) {
    node.psql(&["SELECT 1"]).assert_ok();
}

#[test]
fn garbage_before_and_during_startup_is_refused_cleanly() {
    let node = TestNode::insecure();

    // An HTTP request where a startup packet belongs.
    let mut s = raw(&node);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let answer = text(&read_to_close(&mut s));
    assert!(answer.contains("08P01"), "{answer:?}");

    // A protocol version from the future.
    let mut s = raw(&node);
    let mut packet = startup("root");
    packet[4..8].copy_from_slice(&0x0009_0000i32.to_be_bytes());
    s.write_all(&packet).unwrap();
    let answer = text(&read_to_close(&mut s));
    assert!(
        answer.contains("unsupported frontend protocol"),
        "{answer:?}"
    );

    // After startup: an unknown message type, then a Bind whose value
    // runs past the end of the message.
    let mut s = raw(&node);
    s.write_all(&startup("root")).unwrap();
    read_until_ready(&mut s);
    s.write_all(&[b'!', 0, 0, 0, 4]).unwrap();
    let answer = text(&read_to_close(&mut s));
    assert!(answer.contains("08P01"), "{answer:?}");

    let mut s = raw(&node);
    s.write_all(&startup("root")).unwrap();
    read_until_ready(&mut s);
    let mut bind = vec![b'B', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    bind.extend_from_slice(&0x00ff_0000i32.to_be_bytes());
    bind.extend_from_slice(b"abc\0\0");
    let len = (bind.len() - 1) as i32;
    bind[1..5].copy_from_slice(&len.to_be_bytes());
    s.write_all(&bind).unwrap();
    let answer = text(&read_to_close(&mut s));
    assert!(
        answer.contains("insufficient data left in message"),
        "{answer:?}"
    );
    assert_serves(&node);
}

#[test]
fn oversized_messages_are_refused_and_large_statements_work() {
    let node = TestNode::insecure();
    // A Query claiming 2 GB: refused from its header, nothing allocated.
    let mut s = raw(&node);
    s.write_all(&startup("root")).unwrap();
    read_until_ready(&mut s);
    s.write_all(&[b'Q', 0x7f, 0xff, 0xff, 0xff]).unwrap();
    let answer = text(&read_to_close(&mut s));
    assert!(answer.contains("invalid message length"), "{answer:?}");

    // A startup packet past PostgreSQL's 10 000-byte limit.
    let mut s = raw(&node);
    s.write_all(&100_000i32.to_be_bytes()).unwrap();
    s.write_all(&196_608i32.to_be_bytes()).unwrap();
    let answer = text(&read_to_close(&mut s));
    assert!(
        answer.contains("invalid length of startup packet"),
        "{answer:?}"
    );

    // An 8 MB statement is just a statement.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = node.connect().await;
        let sql = format!("SELECT length('{}')", "x".repeat(8 << 20));
        let rows = client.simple_query(&sql).await.expect("large statement");
        let value = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        assert_eq!(value.as_deref(), Some("8388608"));
    });
    assert_serves(&node);
}

#[test]
fn clients_that_never_finish_connecting_are_dropped() {
    let node = TestNode::insecure_with_env(&[("DUET_AUTHENTICATION_TIMEOUT", "1")]);
    // Nothing at all, half a length field, a startup packet cut short.
    let mut silent = raw(&node);
    let mut partial = raw(&node);
    partial.write_all(&[0, 0]).unwrap();
    let mut cut = raw(&node);
    cut.write_all(&startup("root")[..12]).unwrap();
    let started = Instant::now();
    for s in [&mut silent, &mut partial, &mut cut] {
        read_to_close(s);
    }
    // Closed by the server (well before read_to_close's own 10 s).
    assert!(started.elapsed() < Duration::from_secs(9));
    assert_serves(&node);
}

#[test]
fn a_connection_flood_gets_53300_and_the_server_stays_up() {
    let node = TestNode::insecure_with_env(&[("DUET_MAX_CONNECTIONS", "5")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(node.connect().await);
        }
        for _ in 0..20 {
            let err = try_connect(&node.pg_config("root"))
                .await
                .expect_err("a sixth session is refused");
            assert_eq!(sqlstate(&err), "53300", "{err}");
        }
        // Raw sockets that never log in do not take the server down.
        let idle: Vec<TcpStream> = (0..200).map(|_| raw(&node)).collect();
        // The server frees the slot once it has seen the close, which
        // takes a moment: until then a new session may still get 53300.
        held.pop();
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = loop {
            match try_connect(&node.pg_config("root")).await {
                Ok(client) => break client,
                Err(e) if sqlstate(&e) == "53300" && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("no session after one was closed: {e}"),
            }
        };
        client.simple_query("SELECT 1").await.expect("served again");
        drop(idle);
    });
}

#[test]
fn replication_without_tls_is_refused_where_tls_is_required() {
    let primary = TestNode::secure();
    primary.psql(&["REPLICATE SET ROLE PRIMARY;"]).assert_ok();
    let secondary = TestNode::secure_sharing_certs(&primary);
    let url =
        kwdb_url(&primary, &secondary.certs_dir()).replace("sslmode=verify-ca", "sslmode=disable");
    let out = secondary.psql(&[
        "\\set VERBOSITY verbose",
        &format!("REPLICATE SET PRIMARY {url};"),
    ]);
    out.assert_err("59000");
    assert!(out.stderr.contains("no encryption"), "{}", out.stderr);
    assert_eq!(
        duet_tests::pair::scalar(&secondary, "SELECT pg_is_in_recovery()"),
        "f"
    );
}

#[test]
fn a_password_in_the_primary_url_shows_nowhere() {
    const SECRET: &str = "url-secret-8d1f";
    let primary = TestNode::secure();
    primary
        .psql(&[
            &format!("CREATE USER replicator REPLICATION LOGIN PASSWORD '{SECRET}'"),
            "REPLICATE SET ROLE PRIMARY;",
        ])
        .assert_ok();
    let secondary = TestNode::secure_sharing_certs(&primary);
    let url = format!(
        "postgresql://replicator:{SECRET}@localhost:{}/defaultdb?sslmode=verify-full&sslrootcert={}/ca.crt",
        primary.port(),
        secondary.certs_dir().display()
    );
    let out = secondary.psql(&[
        &format!("REPLICATE SET PRIMARY {url};"),
        "REPLICATE SET SERVICE CREATE;",
        "REPLICATE SET SERVICE START;",
    ]);
    out.assert_ok();
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    let views = [
        "SHOW REPLICATION STATUS",
        "SELECT * FROM pg_stat_wal_receiver",
    ];
    for sql in views {
        let rows = duet_tests::pair::query(&secondary, sql);
        let text = format!("{rows:?}");
        assert!(!text.contains(SECRET), "{sql}: {text}");
    }
    let status = duet_tests::run_duet(&["status", "--url", &secondary.root_url()]);
    assert!(!status.contains(SECRET), "{status}");
    assert!(!secondary.logs().contains(SECRET));
    assert!(!primary.logs().contains(SECRET));
}

#[test]
fn a_client_cut_off_mid_transaction_leaves_nothing_behind() {
    use duet_tests::faults::FaultProxy;
    let node = TestNode::insecure();
    node.psql(&[
        "CREATE TABLE t (id int PRIMARY KEY, v int)",
        "INSERT INTO t VALUES (1, 0)",
    ])
    .assert_ok();
    // The client reaches the node through a proxy that then resets.
    let link = FaultProxy::start(node.addr());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(link.port())
            .user("root")
            .dbname("defaultdb");
        let cut_off = duet_tests::connect(&config).await;
        cut_off
            .batch_execute("BEGIN; UPDATE t SET v = 1 WHERE id = 1")
            .await
            .unwrap();
        link.reset_connections();
        assert!(cut_off.simple_query("SELECT 1").await.is_err());
        // Its transaction is rolled back and its row lock released.
        let other = node.connect().await;
        other
            .batch_execute("SET statement_timeout = '10s'; UPDATE t SET v = 2 WHERE id = 1")
            .await
            .expect("the cut-off session's lock was released");
        let row = other
            .query_one("SELECT v FROM t WHERE id = 1", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
    });
}
