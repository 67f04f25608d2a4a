//! Shared harness for duet's end-to-end tests.
//!
//! A [`TestNode`] is a real `duet` process on a free loopback port with its
//! own temporary data directory (and, in secure mode, its own CA and
//! certificates made with `duet cert`). Tests talk to it with the real
//! `psql` ([`psql`]) and with tokio-postgres ([`TestNode::connect`]).
//!
//! [`TestServer`] is what a test that only needs "a PostgreSQL-compatible
//! server" uses: a fresh duet node, or, with `DUET_EXTERNAL_URL` set, a fresh
//! database on an existing server. That is how the tests are checked against
//! a real PostgreSQL 15 (see `sql/run-against-postgres.sh`).
//!
//! Environment:
//! * `DUET_BIN`: the duet binary to run. Without it the harness runs
//!   `cargo build -p duet` once per test process (when run by cargo) and uses
//!   `duet` next to the test executable.
//! * `DUET_TEST_KEEP=1`: keep every node's temporary directory (a failed
//!   test's is kept anyway, except under CI).
//! * `DUET_EXTERNAL_URL`: see [`TestServer`].

pub mod faults;
pub mod java;
mod numeric;
pub mod pair;
pub mod slt;

use std::fs::{self, File};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a node may take to accept connections and answer a query.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The password `root` gets on first start (`DUET_ROOT_PASSWORD`).
pub const ROOT_PASSWORD: &str = "root-test-password";

/// The database every connection uses unless told otherwise.
pub const DEFAULT_DB: &str = "defaultdb";

// ---------------------------------------------------------------------------
// Locating the binary: see binary.rs

mod binary;
pub use binary::{duet_bin, tests_dir};
pub use numeric::PgNumeric;

/// Runs a `duet` subcommand to completion (e.g. `duet cert create-ca`),
/// panicking with its output if it fails.
pub fn run_duet(args: &[&str]) -> String {
    let output = Command::new(duet_bin())
        .args(args)
        .env_remove("DUET_ROOT_PASSWORD")
        .output()
        .expect("failed to run duet");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "duet {} failed ({}):\n{}\n{}",
        args.join(" "),
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A fresh CA, a node certificate for localhost/127.0.0.1 and a client
/// certificate for root in `dir`, made with `duet cert`.
pub fn create_certs(dir: &Path) {
    let certs = dir.to_str().expect("utf-8 path");
    run_duet(&["cert", "create-ca", "--certs-dir", certs]);
    run_duet(&[
        "cert",
        "create-node",
        "localhost",
        "127.0.0.1",
        "--certs-dir",
        certs,
    ]);
    run_duet(&["cert", "create-client", "root", "--certs-dir", certs]);
}

// ---------------------------------------------------------------------------
// Ports

/// Picks `n` distinct free loopback ports (bound to :0 together, then
/// released for the server to take).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

// ---------------------------------------------------------------------------
// TestNode

/// Insecure (trust, no TLS) or secure (TLS, cert or SCRAM) mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Insecure,
    Secure,
}

/// A real duet server process; killed (SIGKILL) on drop. When the test is
/// panicking, the node's logs are printed, so failures show what the server
/// said.
pub struct TestNode {
    mode: Mode,
    /// Taken (and kept on disk) by Drop when the test failed.
    dir: Option<TempDir>,
    port: u16,
    http_port: u16,
    child: Option<Child>,
    /// Number of times the process was started (names the log files).
    starts: u32,
    /// DUET_* settings of this node.
    env: Vec<(String, String)>,
}

impl TestNode {
    /// Starts an insecure node (`--insecure`: trust auth, no TLS).
    pub fn insecure() -> TestNode {
        TestNode::start(Mode::Insecure)
    }

    /// Starts a secure node: a fresh CA, node certificate and a client
    /// certificate for root, TLS required, `root` password [`ROOT_PASSWORD`].
    pub fn secure() -> TestNode {
        TestNode::start(Mode::Secure)
    }

    pub fn start(mode: Mode) -> TestNode {
        TestNode::start_with_certs(mode, None)
    }

    /// Starts a secure node whose certificates are copies of `other`'s
    /// (same CA, node certificate for localhost/127.0.0.1, client
    /// certificates): the nodes of one replication pair trust each other.
    pub fn secure_sharing_certs(other: &TestNode) -> TestNode {
        TestNode::start_with_certs(Mode::Secure, Some(&other.certs_dir()))
    }

    /// Like [`TestNode::secure_sharing_certs`], with extra environment.
    pub fn secure_sharing_certs_with_env(other: &TestNode, env: &[(&str, &str)]) -> TestNode {
        TestNode::start_full(Mode::Secure, Some(&other.certs_dir()), env)
    }

    /// An insecure node with extra `DUET_*` settings.
    pub fn insecure_with_env(env: &[(&str, &str)]) -> TestNode {
        TestNode::start_full(Mode::Insecure, None, env)
    }

    /// A secure node with its own CA and extra `DUET_*` settings.
    pub fn secure_with_env(env: &[(&str, &str)]) -> TestNode {
        TestNode::start_full(Mode::Secure, None, env)
    }

    fn start_with_certs(mode: Mode, certs_from: Option<&Path>) -> TestNode {
        TestNode::start_full(mode, certs_from, &[])
    }

    fn start_full(mode: Mode, certs_from: Option<&Path>, env: &[(&str, &str)]) -> TestNode {
        let dir = tempfile::Builder::new()
            .prefix("duet-test-")
            .tempdir()
            .expect("create temp dir");
        fs::create_dir_all(dir.path().join("logs")).unwrap();
        let [port, http_port] = free_ports::<2>();
        let mut node = TestNode {
            mode,
            dir: Some(dir),
            port,
            http_port,
            child: None,
            starts: 0,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        match certs_from {
            Some(from) => {
                fs::create_dir_all(node.certs_dir()).unwrap();
                for entry in fs::read_dir(from).expect("read certs dir") {
                    let entry = entry.unwrap();
                    let to = node.certs_dir().join(entry.file_name());
                    fs::copy(entry.path(), &to).expect("copy certificate");
                }
            }
            None if mode == Mode::Secure => node.create_certs(),
            None => {}
        }
        node.spawn_and_wait();
        node
    }

    fn create_certs(&self) {
        create_certs(&self.certs_dir());
    }

    /// Creates `client.USER.crt` / `client.USER.key` signed by this node's CA.
    pub fn create_client_cert(&self, user: &str) {
        let certs = self.certs_dir();
        run_duet(&[
            "cert",
            "create-client",
            user,
            "--certs-dir",
            certs.to_str().unwrap(),
        ]);
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// GET `path` on the node's HTTP endpoint: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.http_port, path)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The node's temporary directory (data/, certs/, logs/).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("temp dir").path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.dir().join("certs")
    }

    /// Process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    // -- connection strings ---------------------------------------------

    /// libpq URL for `user` without a client certificate: plain TCP in
    /// insecure mode, `sslmode=verify-full` against the node's CA in secure
    /// mode (so the server will ask for a password).
    pub fn url(&self, user: &str) -> String {
        self.url_db(user, DEFAULT_DB)
    }

    pub fn url_db(&self, user: &str, db: &str) -> String {
        let base = format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port);
        match self.mode {
            Mode::Insecure => format!("{base}?sslmode=disable&connect_timeout=10"),
            Mode::Secure => format!(
                "{base}?sslmode=verify-full&sslrootcert={}&connect_timeout=10",
                self.certs_dir().join("ca.crt").display()
            ),
        }
    }

    /// libpq URL authenticating `user` with `client.USER.crt`/`.key`
    /// (secure mode).
    pub fn cert_url(&self, user: &str) -> String {
        let certs = self.certs_dir();
        format!(
            "{}&sslcert={}&sslkey={}",
            self.url(user),
            certs.join(format!("client.{user}.crt")).display(),
            certs.join(format!("client.{user}.key")).display()
        )
    }

    /// The URL the harness itself uses as root (certificate in secure mode).
    pub fn root_url(&self) -> String {
        match self.mode {
            Mode::Insecure => self.url("root"),
            Mode::Secure => self.cert_url("root"),
        }
    }

    /// Runs psql commands as root; see [`psql`].
    pub fn psql(&self, commands: &[&str]) -> PsqlOutput {
        psql(&self.root_url(), commands)
    }

    // -- tokio-postgres ---------------------------------------------------

    /// tokio-postgres config for `user` on `defaultdb` (insecure mode only:
    /// the tests use psql for TLS).
    pub fn pg_config(&self, user: &str) -> tokio_postgres::Config {
        assert_eq!(
            self.mode,
            Mode::Insecure,
            "tokio-postgres helpers connect without TLS; use psql for secure nodes"
        );
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(DEFAULT_DB)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// A tokio-postgres client as root (insecure mode).
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.pg_config("root")).await
    }

    // -- process control --------------------------------------------------

    /// Kills the server with SIGKILL (no shutdown, no flush) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's Child::kill is SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data directory and ports (killing
    /// it first with SIGKILL if it is still running) and waits until it
    /// answers queries.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait();
    }

    /// Stops the server with SIGTERM (its graceful shutdown) and waits
    /// until it has exited.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid().expect("node is running");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let status = wait_for("the node to exit after SIGTERM", START_TIMEOUT, || {
            self.has_exited()
        });
        self.child = None;
        status
    }

    /// Freezes the process (SIGSTOP): it holds its connections and answers
    /// nothing, as a stalled host would.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.pid().expect("node is running");
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name} {pid}");
    }

    /// Whether the server process has exited (reaping it if so).
    pub fn has_exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn spawn_and_wait(&mut self) {
        // A free port can be taken by a parallel test between our probe and
        // the server's bind: on a first start, move to new ports and retry.
        for attempt in 0.. {
            self.spawn();
            let Err(why) = self.wait_ready() else { return };
            self.kill9();
            let logs = self.logs();
            if self.starts == attempt + 1 && attempt < 3 && logs.contains("already in use") {
                [self.port, self.http_port] = free_ports::<2>();
                continue;
            }
            panic!("duet did not become ready: {why}\n{logs}");
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node is already running");
        self.starts += 1;
        let log = |stream: &str| {
            File::create(self.log_path(self.starts, stream)).expect("create log file")
        };
        let mut cmd = Command::new(duet_bin());
        cmd.arg("start")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--certs-dir")
            .arg(self.certs_dir());
        if self.mode == Mode::Insecure {
            cmd.arg("--insecure");
        }
        // Nothing from the developer's environment configures the node.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DUET_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.env("DUET_ROOT_PASSWORD", ROOT_PASSWORD)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log("stdout"))
            .stderr(log("stderr"));
        self.child = Some(cmd.spawn().expect("failed to spawn duet"));
    }

    /// Polls until a TCP connect succeeds and psql can run `SELECT 1`.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_error = String::from("never accepted a TCP connection");
        while Instant::now() < deadline {
            if let Some(status) = self.has_exited() {
                return Err(format!("the process exited with {status}"));
            }
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                let out = psql(&self.root_url(), &["SELECT 1"]);
                if out.success() {
                    return Ok(());
                }
                last_error = format!("psql: {}", out.stderr.trim());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "timed out after {START_TIMEOUT:?}; last error: {last_error}"
        ))
    }

    fn log_path(&self, start: u32, stream: &str) -> PathBuf {
        self.dir()
            .join("logs")
            .join(format!("duet.{start}.{stream}"))
    }

    /// Everything the process printed, in every start so far.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for start in 1..=self.starts {
            for stream in ["stdout", "stderr"] {
                let path = self.log_path(start, stream);
                let text = fs::read_to_string(&path).unwrap_or_default();
                out.push_str(&format!(
                    "----- {} ({} bytes) -----\n{}\n",
                    path.display(),
                    text.len(),
                    text.trim_end()
                ));
            }
        }
        out
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "===== duet node on port {} (test failed) =====\n{}",
                self.port,
                self.logs()
            );
        }
        let failed_locally = std::thread::panicking() && std::env::var_os("CI").is_none();
        if failed_locally || std::env::var_os("DUET_TEST_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("kept {}", dir.keep().display());
            }
        }
    }
}

/// Polls `check` every 20 ms until it returns Some, or panics with
/// `what` after `timeout`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `max` bytes (or a little less, at a character boundary) of
/// `text`.
pub fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

// ---------------------------------------------------------------------------
// psql

/// What a psql run printed and how it exited.
#[derive(Debug, Clone)]
pub struct PsqlOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: ExitStatus,
}

impl PsqlOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the output unless psql exited 0 and printed no ERROR.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.success() && !self.stderr.contains("ERROR"),
            "psql failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless psql failed and its stderr contains `needle`.
    #[track_caller]
    pub fn assert_err(&self, needle: &str) -> &Self {
        assert!(
            !self.success() && self.stderr.contains(needle),
            "expected psql to fail with {needle:?}, got ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// The psql binary: `DUET_PSQL`, else PostgreSQL 15's `/usr/bin/psql`.
pub fn psql_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DUET_PSQL") {
        return p.into();
    }
    let default = Path::new("/usr/bin/psql");
    if default.exists() {
        default.into()
    } else {
        "psql".into()
    }
}

/// A psql command for `conn` (a libpq URL or key=value string) that reads
/// no psqlrc, stops at the first error and inherits no `PG*` settings.
pub fn psql_command(conn: &str) -> Command {
    let mut cmd = Command::new(psql_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .env("PAGER", "")
        .env("PSQL_PAGER", "")
        .env("COLUMNS", "200")
        .arg("--no-psqlrc")
        .arg("--set=ON_ERROR_STOP=1")
        .arg("--dbname")
        .arg(conn)
        .stdin(Stdio::null());
    cmd
}

/// Runs psql, one `-c` per command (SQL or a backslash command).
pub fn psql(conn: &str, commands: &[&str]) -> PsqlOutput {
    run_psql(psql_command(conn), commands)
}

/// Like [`psql`], with `PGPASSWORD` set.
pub fn psql_with_password(conn: &str, password: &str, commands: &[&str]) -> PsqlOutput {
    let mut cmd = psql_command(conn);
    cmd.env("PGPASSWORD", password);
    run_psql(cmd, commands)
}

/// Runs a prepared psql command, one `-c` per command.
pub fn run_psql(mut cmd: Command, commands: &[&str]) -> PsqlOutput {
    for c in commands {
        cmd.arg("-c").arg(c);
    }
    let output = cmd
        .output()
        .expect("failed to run psql (is postgresql-client installed?)");
    PsqlOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        status: output.status,
    }
}

// ---------------------------------------------------------------------------
// tokio-postgres

/// Connects without TLS and drives the connection on a spawned task.
pub async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    try_connect(config)
        .await
        .unwrap_or_else(|e| panic!("connect to {:?}: {}", config.get_hosts(), describe(&e)))
}

pub async fn try_connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes
        // away; either way the test sees it through the client.
        let _ = connection.await;
    });
    Ok(client)
}

/// A tokio-postgres error with the server's SQLSTATE, message and detail
/// (its Display says only "db error").
pub fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" (DETAIL: {detail})"));
            }
            s
        }
        None => {
            // Display leaves the cause out; append the chain of sources.
            let mut s = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                s.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            s
        }
    }
}

/// The SQLSTATE of a tokio-postgres error ("" if it is not a server error).
pub fn sqlstate(err: &tokio_postgres::Error) -> &str {
    err.code().map(|c| c.code()).unwrap_or("")
}

/// Unwraps a server error, asserting its SQLSTATE.
#[track_caller]
pub fn assert_sqlstate<T: std::fmt::Debug>(
    result: Result<T, tokio_postgres::Error>,
    code: &str,
) -> tokio_postgres::error::DbError {
    match result {
        Ok(v) => panic!("expected SQLSTATE {code}, got success: {v:?}"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("expected SQLSTATE {code}, got a non-server error: {e}"))
                .clone();
            assert_eq!(db.code().code(), code, "unexpected error: {db}");
            db
        }
    }
}

/// Runs one query with psql in unaligned, tuples-only mode and returns its
/// rows, fields split at `|`. Panics if psql fails.
#[track_caller]
pub fn psql_rows(conn: &str, password: Option<&str>, sql: &str) -> Vec<Vec<String>> {
    let mut cmd = psql_command(conn);
    cmd.args(["--no-align", "--tuples-only", "--field-separator=|"]);
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    let out = run_psql(cmd, &[sql]);
    out.assert_ok();
    out.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// The rows of psql's aligned output (the default format): the lines
/// between the header's `---+---` rule and the `(N rows)` footer, with the
/// fields trimmed.
pub fn parse_aligned(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip_while(|l| !(l.starts_with('-') && l.chars().all(|c| c == '-' || c == '+')))
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with('('))
        .map(|l| l.split('|').map(|f| f.trim().to_owned()).collect())
        .collect()
}

// ---------------------------------------------------------------------------
// TestServer

/// "A PostgreSQL-compatible server with an empty database" for tests that
/// need nothing duet-specific: a fresh insecure duet node, or, when
/// `DUET_EXTERNAL_URL` (a libpq URL, no TLS) is set, a freshly created
/// database named after the test on that server, e.g. a PostgreSQL 15.
pub struct TestServer {
    node: Option<TestNode>,
    config: tokio_postgres::Config,
    url: String,
}

impl TestServer {
    pub async fn start(test_name: &str) -> TestServer {
        match external_url() {
            None => {
                let node = TestNode::insecure();
                TestServer {
                    config: node.pg_config("root"),
                    url: node.url("root"),
                    node: Some(node),
                }
            }
            Some(url) => {
                let db = format!("duet_test_{test_name}");
                let admin: tokio_postgres::Config = url.parse().expect("DUET_EXTERNAL_URL");
                let client = connect(&admin).await;
                for sql in [
                    format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                    format!("CREATE DATABASE {db}"),
                ] {
                    if let Err(e) = client.batch_execute(&sql).await {
                        panic!("{sql}: {}", describe(&e));
                    }
                }
                let mut config = admin.clone();
                config.dbname(&db);
                TestServer {
                    node: None,
                    config,
                    url: replace_url_dbname(&url, &db),
                }
            }
        }
    }

    /// The duet node, unless running against an external server.
    pub fn node(&self) -> Option<&TestNode> {
        self.node.as_ref()
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// libpq URL for psql.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.config).await
    }
}

/// A minimal HTTP/1.1 GET on 127.0.0.1:`port` (the node's health and
/// metrics endpoint): (status code, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("HTTP connect to 127.0.0.1:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("HTTP request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("HTTP response from 127.0.0.1:{port}{path}: {e}"));
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `DUET_EXTERNAL_URL`, if set and not empty.
pub fn external_url() -> Option<String> {
    std::env::var("DUET_EXTERNAL_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Returns true (and says so) when a test needs a duet node but runs against
/// an external server.
pub fn skip_if_external(test: &str) -> bool {
    if external_url().is_some() {
        let mut err = std::io::stderr();
        let _ = writeln!(
            err,
            "{test}: skipped (needs a duet node; DUET_EXTERNAL_URL is set)"
        );
        return true;
    }
    false
}

/// Replaces the path (database) of a `postgresql://` URL.
pub fn replace_url_dbname(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_dbname_is_replaced() {
        assert_eq!(
            replace_url_dbname("postgresql://u@h:5/postgres?sslmode=disable", "x"),
            "postgresql://u@h:5/x?sslmode=disable"
        );
        assert_eq!(
            replace_url_dbname("postgresql://u@h:5", "x"),
            "postgresql://u@h:5/x"
        );
    }

    #[test]
    fn aligned_output_is_parsed() {
        let out = " id | name \n----+------\n  1 | a b\n  2 | \n(2 rows)\n\n";
        assert_eq!(parse_aligned(out), vec![vec!["1", "a b"], vec!["2", ""]]);
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>();
        assert!(a != b && b != c && a != c);
    }
}
