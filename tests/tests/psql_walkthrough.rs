//! The seed walkthrough, typed into the real psql exactly as a user would:
//! a table with serial/default columns, a row, a replication user, and
//! psql's `\du`, `\dt` and `\d` describing them. Then, on a secure node, the
//! new user logs in over TLS with its password (SCRAM).
//!
//! `walkthrough_insecure` also runs against PostgreSQL 15 with
//! `DUET_EXTERNAL_URL` set, which is where the expected psql output comes
//! from.

use chrono::{DateTime, Utc};
use duet_tests::{
    external_url, parse_aligned, psql, psql_rows, psql_with_password, TestNode, TestServer,
};

const CREATE_TABLE: &str = "CREATE TABLE replication_test (id serial primary key, test_data text, created_at timestamptz default now());";
const INSERT: &str = "INSERT INTO replication_test (test_data) VALUES ('hello replication');";
const SELECT: &str = "SELECT * FROM replication_test;";
const CREATE_USER: &str = "CREATE USER replicator REPLICATION LOGIN ENCRYPTED PASSWORD 'password';";

/// `\d replication_test` as psql 15 prints it (trailing spaces trimmed).
const DESCRIBE: &str = r#"
                                       Table "public.replication_test"
   Column   |           Type           | Collation | Nullable |                   Default
------------+--------------------------+-----------+----------+----------------------------------------------
 id         | integer                  |           | not null | nextval('replication_test_id_seq'::regclass)
 test_data  | text                     |           |          |
 created_at | timestamp with time zone |           |          | now()
Indexes:
    "replication_test_pkey" PRIMARY KEY, btree (id)
"#;

fn trim_lines(text: &str) -> String {
    text.trim_matches('\n')
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the walkthrough as `owner` (a superuser/admin) on `url`.
fn walkthrough(url: &str, owner: &str) {
    let out = psql(url, &[CREATE_TABLE]);
    assert_eq!(out.assert_ok().stdout.trim(), "CREATE TABLE");

    let out = psql(url, &[INSERT]);
    assert_eq!(out.assert_ok().stdout.trim(), "INSERT 0 1");

    let out = psql(url, &[SELECT]);
    out.assert_ok();
    let header: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(header, ["id", "test_data", "created_at"], "{}", out.stdout);
    let rows = parse_aligned(&out.stdout);
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert_eq!(rows[0][0], "1");
    assert_eq!(rows[0][1], "hello replication");
    let created = DateTime::parse_from_str(&rows[0][2], "%Y-%m-%d %H:%M:%S%.f%#z")
        .unwrap_or_else(|e| panic!("created_at {:?} is not a timestamptz: {e}", rows[0][2]));
    let age = Utc::now().signed_duration_since(created);
    assert!(
        age.num_minutes().abs() < 10,
        "created_at {created} is not now()"
    );
    assert!(out.stdout.contains("(1 row)"), "{}", out.stdout);

    let out = psql(url, &[CREATE_USER]);
    assert_eq!(out.assert_ok().stdout.trim(), "CREATE ROLE");

    let out = psql(url, &["\\du replicator"]);
    out.assert_ok();
    assert!(out.stdout.contains("List of roles"), "{}", out.stdout);
    let rows = parse_aligned(&out.stdout);
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert_eq!(
        rows[0][..2],
        ["replicator", "Replication"],
        "{}",
        out.stdout
    );

    let out = psql(url, &["\\dt"]);
    out.assert_ok();
    assert!(out.stdout.contains("List of relations"), "{}", out.stdout);
    assert_eq!(
        parse_aligned(&out.stdout),
        [["public", "replication_test", "table", owner]],
        "{}",
        out.stdout
    );

    let out = psql(url, &["\\d replication_test"]);
    out.assert_ok();
    assert_eq!(trim_lines(&out.stdout), trim_lines(DESCRIBE));
}

#[test]
fn walkthrough_secure_then_replicator_logs_in_with_scram() {
    if duet_tests::skip_if_external("walkthrough_secure") {
        return;
    }
    let node = TestNode::secure();
    walkthrough(&node.root_url(), "root");

    // The new user, over TLS (verify-full) with its password.
    let url = node.url("replicator");
    let rows = psql_rows(&url, Some("password"), "SELECT current_user, 1 + 1");
    assert_eq!(rows, [["replicator", "2"]]);

    let out = psql_with_password(&url, "wrong", &["SELECT 1"]);
    out.assert_err("password authentication failed for user \"replicator\"");
}

#[tokio::test]
async fn walkthrough_insecure() {
    let server = TestServer::start("walkthrough").await;
    let url = server.url().to_owned();
    // Roles are global on a shared PostgreSQL; start from none.
    if external_url().is_some() {
        psql(&url, &["DROP ROLE IF EXISTS replicator"]).assert_ok();
    }
    let owner = psql_rows(&url, None, "SELECT current_user")
        .remove(0)
        .remove(0);
    tokio::task::spawn_blocking(move || walkthrough(&url, &owner))
        .await
        .unwrap();
    if external_url().is_some() {
        psql(server.url(), &["DROP ROLE replicator"]).assert_ok();
    }
}

/// psql's other describe commands run and list what exists.
#[tokio::test]
async fn psql_meta_commands_describe_the_catalog() {
    let server = TestServer::start("meta_commands").await;
    let url = server.url().to_owned();
    tokio::task::spawn_blocking(move || {
        psql(
            &url,
            &[
                "CREATE TABLE meta (id serial PRIMARY KEY, v text UNIQUE)",
                "CREATE INDEX meta_v_idx ON meta (v)",
            ],
        )
        .assert_ok();
        for (command, expected) in [
            ("\\l", "List of databases"),
            ("\\dn", "public"),
            ("\\di", "meta_v_idx"),
            ("\\ds", "meta_id_seq"),
            ("\\dt+", "meta"),
            ("\\d+ meta", "meta_v_key"),
        ] {
            let out = psql(&url, &[command]);
            let out = out.assert_ok();
            assert!(out.stdout.contains(expected), "{command}:\n{}", out.stdout);
        }
    })
    .await
    .unwrap();
}

/// `\d` of tables with CHECK and FOREIGN KEY constraints, and of a view,
/// as psql 15 prints them against PostgreSQL 15.
const DESCRIBE_CONSTRAINTS: &str = r#"
                 Table "public.p"
 Column |  Type   | Collation | Nullable | Default
--------+---------+-----------+----------+---------
 id     | integer |           | not null |
 v      | integer |           |          |
Indexes:
    "p_pkey" PRIMARY KEY, btree (id)
Check constraints:
    "p_v_check" CHECK (v > 0)
Referenced by:
    TABLE "c" CONSTRAINT "c_pid_fkey" FOREIGN KEY (pid) REFERENCES p(id) ON DELETE CASCADE

                 Table "public.c"
 Column |  Type   | Collation | Nullable | Default
--------+---------+-----------+----------+---------
 id     | integer |           | not null |
 pid    | integer |           |          |
Indexes:
    "c_pkey" PRIMARY KEY, btree (id)
Foreign-key constraints:
    "c_pid_fkey" FOREIGN KEY (pid) REFERENCES p(id) ON DELETE CASCADE

                 View "public.pv"
 Column |  Type   | Collation | Nullable | Default
--------+---------+-----------+----------+---------
 id     | integer |           |          |
 v      | integer |           |          |
"#;

#[tokio::test]
async fn describe_shows_constraints_and_views() {
    let server = TestServer::start("describe_constraints").await;
    let url = server.url();
    psql(
        url,
        &[
            "CREATE TABLE p (id int PRIMARY KEY, v int CHECK (v > 0))",
            "CREATE TABLE c (id int PRIMARY KEY, pid int REFERENCES p ON DELETE CASCADE)",
            "CREATE VIEW pv AS SELECT id, v FROM p WHERE v > 10",
        ],
    )
    .assert_ok();
    let out = psql(url, &["\\d p", "\\d c", "\\d pv"]);
    out.assert_ok();
    assert_eq!(trim_lines(&out.stdout), trim_lines(DESCRIBE_CONSTRAINTS));
}

/// `psql -c` with several statements sends them as one Query message: one
/// implicit transaction, so the INSERTs' nextval must find the sequence
/// the CREATE TABLE made moments before, still uncommitted.
#[tokio::test]
async fn one_message_creates_a_serial_table_and_fills_it() {
    let server = TestServer::start("one_message").await;
    let url = server.url().to_owned();
    let rows = tokio::task::spawn_blocking(move || {
        psql_rows(
            &url,
            None,
            "CREATE TABLE one_msg (id serial PRIMARY KEY, t text); \
             INSERT INTO one_msg (t) VALUES ('x'); \
             INSERT INTO one_msg DEFAULT VALUES; \
             SELECT id, coalesce(t, 'default') FROM one_msg ORDER BY id",
        )
    })
    .await
    .unwrap();
    // psql 15 prints every statement's result.
    let rows: Vec<String> = rows.iter().map(|r| r.join("|")).collect();
    assert_eq!(
        rows,
        [
            "CREATE TABLE",
            "INSERT 0 1",
            "INSERT 0 1",
            "1|x",
            "2|default"
        ]
    );
}
