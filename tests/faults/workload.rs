//! The workload of the consistency harness: writers that register unique
//! keys and move money between accounts on whichever node is primary, and
//! readers on every node. Every operation's outcome is recorded; readers
//! check what they can on the spot (totals, monotonic reads) and keep what
//! they saw for the checker.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{Client, Config};

/// Schema and initial data, run on the primary before the secondaries copy.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE registers (k bigint PRIMARY KEY, writer int NOT NULL)",
    "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)",
    "CREATE TABLE ledger (id bigint PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL)",
    "INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 8) g",
];
pub const ACCOUNTS: i64 = 8;
pub const TOTAL: i64 = 8 * 1000;

/// An operation's outcome as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged, by the node on `port` under `epoch`.
    Ok { epoch: i64, port: u16 },
    /// Definitely not applied (refused before commit).
    Failed(String),
    /// May or may not have been applied (connection lost, commit timed
    /// out waiting for the secondary, ...).
    Unknown(String),
}

#[derive(Debug, Clone)]
pub enum Op {
    Register {
        key: i64,
    },
    Transfer {
        id: i64,
        from: i32,
        to: i32,
        amount: i64,
    },
}

#[derive(Debug, Clone)]
pub struct WriteEvent {
    pub op: Op,
    pub outcome: Outcome,
}

/// What one reader saw on one node.
#[derive(Debug, Default)]
pub struct ReadLog {
    pub port: u16,
    pub reads: u64,
    /// Keys read while the node was a secondary streaming from a primary.
    /// (A demoted primary not yet re-attached is a secondary too, but what
    /// it serves is its own history, which a re-copy may discard.)
    pub seen_on_secondary: HashSet<i64>,
    /// Keys read in any role.
    pub seen: HashSet<i64>,
    /// Reads whose account total was not [`TOTAL`].
    pub bad_totals: Vec<String>,
    /// A connection that saw fewer keys than it had seen before.
    pub non_monotonic: Vec<String>,
}

/// The whole run's history.
#[derive(Debug, Default)]
pub struct History {
    pub writes: Vec<WriteEvent>,
    pub reads: Vec<ReadLog>,
}

/// How long one operation may take before it counts as Unknown (a node
/// paused by the nemesis answers nothing).
const OP_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs writers and readers until `stop` is set, then returns the history.
pub struct Workload {
    pub ports: Vec<u16>,
    pub writers: usize,
    /// `synchronous_commit` of the writers' sessions.
    pub sync_mode: &'static str,
    pub seed: u64,
}

impl Workload {
    pub async fn run(&self, stop: Arc<AtomicBool>) -> History {
        let ids = Arc::new(AtomicU64::new(1));
        let writers: Vec<_> = (0..self.writers)
            .map(|w| {
                tokio::spawn(writer(
                    w as i64,
                    self.ports.clone(),
                    self.sync_mode,
                    self.seed.wrapping_add(w as u64 * 7919),
                    ids.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let readers: Vec<_> = self
            .ports
            .iter()
            .map(|&port| tokio::spawn(reader(port, stop.clone())))
            .collect();
        let mut history = History::default();
        for w in writers {
            history.writes.extend(w.await.expect("writer task"));
        }
        for r in readers {
            history.reads.push(r.await.expect("reader task"));
        }
        history
    }
}

/// A small deterministic generator (xorshift64*): runs are replayable
/// from their seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn primary_config(ports: &[u16]) -> Config {
    let mut config = Config::new();
    for &port in ports {
        config.host("127.0.0.1").port(port);
    }
    config
        .user("root")
        .dbname(crate::DEFAULT_DB)
        .connect_timeout(CONNECT_TIMEOUT)
        .target_session_attrs(TargetSessionAttrs::ReadWrite);
    config
}

fn node_config(port: u16) -> Config {
    let mut config = Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("root")
        .dbname(crate::DEFAULT_DB)
        .connect_timeout(CONNECT_TIMEOUT);
    config
}

/// Runs `op` with [`OP_TIMEOUT`]; a timeout is a lost connection.
async fn timed<T>(
    op: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::from(e)),
        Err(_) => Err(Failure::Connection("timed out".into())),
    }
}

/// Why an operation did not succeed.
enum Failure {
    /// The server answered with an error.
    Sql { code: String, message: String },
    /// The connection broke or stalled: the client no longer knows.
    Connection(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(db) => Failure::Sql {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => Failure::Connection(e.to_string()),
        }
    }
}

impl Failure {
    /// Errors a server raises before it commits anything: read-only node,
    /// serialization failure, deadlock, constraint violation, bad SQL.
    fn before_commit(&self) -> bool {
        matches!(self, Failure::Sql { code, .. }
            if code == "25006" || code == "40001" || code == "40P01"
                || code.starts_with("23") || code.starts_with("42"))
    }

    fn outcome(self, committing: bool) -> Outcome {
        let definite = !committing || self.before_commit();
        let text = match self {
            Failure::Sql { code, message } => format!("{code}: {message}"),
            Failure::Connection(why) => format!("connection: {why}"),
        };
        if definite {
            Outcome::Failed(text)
        } else {
            Outcome::Unknown(text)
        }
    }

    /// False when the session is gone or its node is no longer the one to
    /// write to (read-only: it was demoted).
    fn keeps_connection(&self) -> bool {
        matches!(self, Failure::Sql { code, .. }
            if !code.starts_with("57") && !code.starts_with("08") && code != "25006")
    }
}

async fn connect(config: &Config) -> Option<Client> {
    let (client, connection) =
        match tokio::time::timeout(OP_TIMEOUT, config.connect(tokio_postgres::NoTls)).await {
            Ok(Ok(pair)) => pair,
            _ => return None,
        };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

async fn writer(
    writer: i64,
    ports: Vec<u16>,
    sync_mode: &'static str,
    seed: u64,
    ids: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<WriteEvent> {
    let config = primary_config(&ports);
    let mut rng = Rng::new(seed);
    let mut events = Vec::new();
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = client.as_mut() else {
            client = connect(&config).await;
            if let Some(c) = client.as_mut() {
                let set = format!("SET synchronous_commit = {sync_mode}");
                if timed(c.batch_execute(&set)).await.is_err() {
                    client = None;
                }
            }
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        let id = ids.fetch_add(1, Ordering::SeqCst) as i64;
        let (op, result) = if rng.below(2) == 0 {
            let key = writer * 1_000_000_000 + id;
            (Op::Register { key }, register(c, writer, key).await)
        } else {
            let from = 1 + rng.below(ACCOUNTS as u64) as i32;
            let to = 1 + (from as u64 % ACCOUNTS as u64) as i32;
            let amount = 1 + rng.below(50) as i64;
            let op = Op::Transfer {
                id,
                from,
                to,
                amount,
            };
            (op, transfer(c, id, from, to, amount).await)
        };
        let outcome = match result {
            Ok(ok) => ok,
            Err((failure, committing)) => {
                if !failure.keeps_connection() {
                    client = None;
                }
                failure.outcome(committing)
            }
        };
        events.push(WriteEvent { op, outcome });
    }
    events
}

type OpResult = Result<Outcome, (Failure, bool)>;

fn acknowledged(row: &tokio_postgres::Row) -> Outcome {
    Outcome::Ok {
        epoch: row.get::<_, i64>(0),
        port: row.get::<_, i32>(1) as u16,
    }
}

/// One autocommit INSERT: its error may come from the commit itself.
async fn register(client: &Client, writer: i64, key: i64) -> OpResult {
    let row = timed(client.query_one(
        "INSERT INTO registers (k, writer) VALUES ($1, $2::int) \
         RETURNING duet_replication_epoch(), inet_server_port()",
        &[&key, &(writer as i32)],
    ))
    .await
    .map_err(|f| (f, true))?;
    Ok(acknowledged(&row))
}

/// A transfer and its ledger row in one transaction.
async fn transfer(client: &mut Client, id: i64, from: i32, to: i32, amount: i64) -> OpResult {
    let txn = timed(client.transaction()).await.map_err(|f| (f, false))?;
    let body = async {
        txn.execute(
            "UPDATE accounts SET balance = balance - $2 WHERE id = $1",
            &[&from, &amount],
        )
        .await?;
        txn.execute(
            "UPDATE accounts SET balance = balance + $2 WHERE id = $1",
            &[&to, &amount],
        )
        .await?;
        txn.execute(
            "INSERT INTO ledger VALUES ($1, $2, $3, $4)",
            &[&id, &from, &to, &amount],
        )
        .await?;
        txn.query_one("SELECT duet_replication_epoch(), inet_server_port()", &[])
            .await
    };
    let row = timed(body).await.map_err(|f| (f, false))?;
    timed(txn.commit()).await.map_err(|f| (f, true))?;
    Ok(acknowledged(&row))
}

async fn reader(port: u16, stop: Arc<AtomicBool>) -> ReadLog {
    let config = node_config(port);
    let mut log = ReadLog {
        port,
        ..ReadLog::default()
    };
    let mut connection = 0u64;
    let mut client: Option<Client> = None;
    // Keys seen on the current connection.
    let mut last_count = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = client.as_ref() else {
            client = connect(&config).await;
            connection += 1;
            last_count = 0;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        let read = async {
            let head = c
                .query_one(
                    "SELECT pg_is_in_recovery(), coalesce(sum(balance), 0)::bigint, count(*), \
                     (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming') \
                     FROM accounts",
                    &[],
                )
                .await?;
            let keys = c.query("SELECT k FROM registers", &[]).await?;
            Ok::<_, tokio_postgres::Error>((head, keys))
        };
        match timed(read).await {
            Ok((head, keys)) => {
                log.reads += 1;
                let in_recovery: bool = head.get(0);
                let total: i64 = head.get(1);
                let accounts: i64 = head.get(2);
                let streaming = head.get::<_, i64>(3) > 0;
                if total != TOTAL || accounts != ACCOUNTS {
                    log.bad_totals.push(format!(
                        "port {port}: {accounts} accounts holding {total} (recovery: {in_recovery})"
                    ));
                }
                if keys.len() < last_count {
                    log.non_monotonic.push(format!(
                        "port {port}, connection {connection}: {} keys after {last_count}",
                        keys.len()
                    ));
                }
                last_count = keys.len();
                for row in keys {
                    let k: i64 = row.get(0);
                    if in_recovery && streaming {
                        log.seen_on_secondary.insert(k);
                    }
                    log.seen.insert(k);
                }
            }
            Err(failure) => {
                if !failure.keeps_connection() {
                    client = None;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log
}
