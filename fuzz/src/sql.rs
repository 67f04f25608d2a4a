use std::sync::{Arc, Mutex, OnceLock};

use duet_sql::{Database, DatabaseOptions, Session, SessionContext};

/// Tables (those the conformance corpus, hence the seeds, use most), an
/// index, a view and a sequence for the planner to resolve names against.
const SCHEMA: &str = "
    CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) CHECK (balance >= 0), opened timestamptz DEFAULT now());
    CREATE TABLE transfers (id bigserial PRIMARY KEY, src int REFERENCES accounts (id), dst int REFERENCES accounts (id), amount numeric, note jsonb);
    CREATE INDEX transfers_src ON transfers (src, id);
    CREATE VIEW rich AS SELECT owner, balance FROM accounts WHERE balance > 1000;
    CREATE SEQUENCE ticket;
    CREATE TABLE departments (id integer PRIMARY KEY, name text NOT NULL);
    CREATE TABLE docs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), doc jsonb, raw json, span interval, r real, c char(3));
    CREATE TABLE employees (id integer PRIMARY KEY, name text NOT NULL, dept_id integer, manager_id integer, salary integer);
    CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, qty integer DEFAULT 0, price numeric(8,2));
    CREATE TABLE kv (k text PRIMARY KEY, v integer NOT NULL, email text UNIQUE, hits integer DEFAULT 0);
    CREATE TABLE nums (n integer PRIMARY KEY, sq integer NOT NULL, m integer, label text);
    CREATE TABLE orders (id integer PRIMARY KEY, customer text NOT NULL, amount numeric(10,2), shipped boolean DEFAULT false);
    CREATE TABLE products (id integer PRIMARY KEY, name text NOT NULL CHECK (length(name) > 0), price numeric(8,2) CHECK (price >= 0));
    CREATE TABLE sales (id serial PRIMARY KEY, region text NOT NULL, product text NOT NULL, qty integer, price numeric(6,2), sold date);
    CREATE TABLE t (id integer PRIMARY KEY, v text NOT NULL, n integer);
    CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, email varchar(100) UNIQUE, score integer DEFAULT 10, active boolean DEFAULT true);
";

struct SqlFixture {
    _dir: tempfile::TempDir,
    _db: Arc<Database>,
    session: Session,
}

fn sql_fixture() -> &'static Mutex<SqlFixture> {
    static FIXTURE: OnceLock<Mutex<SqlFixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::open(dir.path(), DatabaseOptions::default()).expect("open database");
        let mut session = db
            .session(SessionContext {
                user: "root".into(),
                database: "defaultdb".into(),
                backend_pid: 1,
                client_addr: None,
                server_port: None,
                startup_params: Vec::new(),
            })
            .expect("session");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for stmt in session.parse(SCHEMA).expect("schema parses") {
            runtime
                .block_on(session.execute(&stmt, Vec::new()))
                .expect("schema statement");
        }
        Mutex::new(SqlFixture {
            _dir: dir,
            _db: db,
            session,
        })
    })
}

/// Parses `data` as a query string and plans every statement in it (the
/// Describe path: parameter and result types inferred, nothing executed).
pub fn sql_statement(data: &[u8]) {
    crate::panics_abort();
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let mut fixture = sql_fixture().lock().unwrap_or_else(|p| p.into_inner());
    let Ok(statements) = fixture.session.parse(sql) else {
        return;
    };
    for stmt in &statements {
        let _ = fixture.session.describe(stmt, &[]);
    }
}
