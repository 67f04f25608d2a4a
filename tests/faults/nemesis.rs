//! The nemesis and the run that ties cluster, workload and checker
//! together: faults are drawn from a seeded generator and injected one at
//! a time while the workload runs; then everything is healed, the cluster
//! converges, and the checker reads every node.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::faults::checker::{check, FinalState, Report};
use crate::faults::cluster::Cluster;
use crate::faults::proxy::Fault as LinkFault;
use crate::faults::workload::{Rng, Workload, SCHEMA};
use crate::pair::query;

/// A fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// SIGKILL the primary, promote a secondary, restart and re-attach
    /// the old primary (it re-copies if its history diverged).
    Failover,
    /// Planned switchover with the SPEC 5 statements.
    Switchover,
    /// SIGKILL a secondary, restart it (it resumes by itself).
    KillSecondary,
    /// SIGSTOP a secondary for a while.
    PauseSecondary,
    /// SIGSTOP the primary for a while.
    PausePrimary,
    /// Refuse and reset the replication link for a while.
    CutLink,
    /// Freeze the open replication connections for good.
    HalfOpenLink,
    /// Delay the replication link.
    SlowLink,
    /// Flip a byte in what the primary sends a secondary.
    CorruptLink,
    /// For a while, connections go silent towards the secondary after a
    /// few chunks (mid-handshake or mid-stream), without closing.
    StallLink,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::Failover,
        Fault::Switchover,
        Fault::KillSecondary,
        Fault::PauseSecondary,
        Fault::PausePrimary,
        Fault::CutLink,
        Fault::HalfOpenLink,
        Fault::SlowLink,
        Fault::CorruptLink,
        Fault::StallLink,
    ];
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub nodes: usize,
    /// `synchronous_commit` of the writers.
    pub sync_mode: &'static str,
    /// How long faults are injected.
    pub duration: Duration,
    pub writers: usize,
    pub seed: u64,
    pub faults: Vec<Fault>,
}

impl RunConfig {
    /// Duration and seed from `DUET_FAULTS_SECONDS` / `DUET_FAULTS_SEED`
    /// (the long form is the same test with a longer duration).
    pub fn from_env(nodes: usize, sync_mode: &'static str, default_seconds: u64) -> RunConfig {
        let seconds = std::env::var("DUET_FAULTS_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_seconds);
        let seed = std::env::var("DUET_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        RunConfig {
            nodes,
            sync_mode,
            duration: Duration::from_secs(seconds),
            writers: 4,
            seed,
            faults: Fault::ALL.to_vec(),
        }
    }
}

impl RunConfig {
    /// The same run without one kind of fault.
    pub fn without(mut self, fault: Fault) -> RunConfig {
        self.faults.retain(|f| *f != fault);
        self
    }
}

#[derive(Debug)]
pub struct RunResult {
    pub report: Report,
    pub injected: BTreeMap<Fault, u32>,
    pub elapsed: Duration,
    /// LSNs the nodes reported discarding when they re-copied after a
    /// divergence (their logs' "were discarded by the re-copy" lines).
    pub discarded_lsns: u64,
}

impl std::fmt::Display for RunResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "run of {:.0?}; faults injected:", self.elapsed)?;
        for (fault, n) in &self.injected {
            writeln!(f, "  {fault:?}: {n}")?;
        }
        writeln!(
            f,
            "LSNs reported discarded by re-copies: {}",
            self.discarded_lsns
        )?;
        write!(f, "{}", self.report)
    }
}

/// Node settings for fault runs: synchronous commits give up after 2 s
/// (an Unknown outcome) instead of stalling the writers for 10.
const NODE_ENV: &[(&str, &str)] = &[
    ("DUET_REPLICATION_SYNC_TIMEOUT_MS", "2000"),
    ("DUET_REPLICATION_SYNC_FALLBACK", "error"),
];

/// Runs the workload under the nemesis and checks the outcome.
pub fn run(config: &RunConfig) -> RunResult {
    eprintln!(
        "fault run: {} nodes, synchronous_commit={}, {:?}, seed {} (DUET_FAULTS_SEED)",
        config.nodes, config.sync_mode, config.duration, config.seed
    );
    let started = Instant::now();
    let mut cluster = Cluster::start(config.nodes, NODE_ENV, SCHEMA);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("workload runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let workload = Workload {
        ports: cluster.ports(),
        writers: config.writers,
        sync_mode: config.sync_mode,
        seed: config.seed,
    };
    let running = {
        let stop = stop.clone();
        runtime.spawn(async move { workload.run(stop).await })
    };

    let mut rng = Rng::new(config.seed ^ 0x5eed);
    let mut injected = BTreeMap::new();
    let deadline = Instant::now() + config.duration;
    while Instant::now() < deadline {
        idle(&mut rng, 300, 1500);
        let fault = config.faults[rng.below(config.faults.len() as u64) as usize];
        eprintln!(
            "[{:>5.1?}] nemesis: {fault:?} (primary on port {})",
            started.elapsed(),
            cluster.node(cluster.primary()).port()
        );
        inject(&mut cluster, fault, &mut rng);
        *injected.entry(fault).or_insert(0) += 1;
    }
    // A last stretch without faults, so the run ends with work done.
    idle(&mut rng, 1000, 1001);
    stop.store(true, Ordering::SeqCst);
    let history = runtime.block_on(running).expect("workload");
    cluster.heal();
    cluster.wait_converged();
    let mut order = vec![cluster.primary()];
    order.extend(cluster.secondaries());
    let finals: Vec<(u16, FinalState)> = order
        .into_iter()
        .map(|i| (cluster.node(i).port(), final_state(&cluster, i)))
        .collect();
    let report = check(&history, &finals);
    let discarded_lsns = cluster
        .members
        .iter()
        .map(|m| discarded_in(&m.node.logs()))
        .sum();
    RunResult {
        report,
        injected,
        elapsed: started.elapsed(),
        discarded_lsns,
    }
}

/// Sums the "(N LSNs, epoch E) were discarded by the re-copy" reports.
fn discarded_in(logs: &str) -> u64 {
    logs.lines()
        .filter(|l| l.contains("were discarded by the re-copy"))
        .filter_map(|l| {
            let before = l.split(" LSNs, epoch").next()?;
            before.rsplit('(').next()?.trim().parse::<u64>().ok()
        })
        .sum()
}

fn idle(rng: &mut Rng, min_ms: u64, max_ms: u64) {
    let ms = min_ms + rng.below(max_ms - min_ms);
    std::thread::sleep(Duration::from_millis(ms));
}

fn inject(cluster: &mut Cluster, fault: Fault, rng: &mut Rng) {
    let secondaries = cluster.secondaries();
    let secondary = secondaries[rng.below(secondaries.len() as u64) as usize];
    let primary = cluster.primary();
    match fault {
        Fault::Failover => {
            cluster.failover();
        }
        Fault::Switchover => {
            cluster.switchover();
        }
        Fault::KillSecondary => {
            cluster.kill(secondary);
            idle(rng, 200, 1500);
            cluster.restart(secondary);
            cluster.wait_streaming(secondary);
        }
        Fault::PauseSecondary => {
            cluster.pause(secondary);
            idle(rng, 300, 2500);
            cluster.resume(secondary);
        }
        Fault::PausePrimary => {
            cluster.pause(primary);
            idle(rng, 300, 1500);
            cluster.resume(primary);
        }
        Fault::CutLink => {
            cluster.members[primary].link.cut();
            idle(rng, 300, 3000);
            cluster.members[primary].link.heal();
        }
        Fault::HalfOpenLink => {
            cluster.members[primary].link.half_open();
            idle(rng, 300, 1500);
        }
        Fault::SlowLink => {
            let delay = Duration::from_millis(10 + rng.below(150));
            cluster.members[primary].link.set(LinkFault::Latency(delay));
            idle(rng, 500, 3000);
            cluster.members[primary].link.set(LinkFault::None);
        }
        Fault::CorruptLink => {
            cluster.members[primary].link.corrupt_to_client(1);
            idle(rng, 300, 1000);
            cluster.members[primary].link.stop_corrupting();
        }
        Fault::StallLink => {
            let after = 1 + rng.below(4) as u32;
            cluster.members[primary]
                .link
                .set(LinkFault::StallAfter(after));
            idle(rng, 500, 3000);
            cluster.members[primary].link.set(LinkFault::None);
        }
    }
}

/// Everything the checker compares, read from node `i`.
fn final_state(cluster: &Cluster, i: usize) -> FinalState {
    let node = cluster.node(i);
    let registers: BTreeSet<i64> = query(node, "SELECT k FROM registers")
        .into_iter()
        .map(|r| r[0].parse().expect("key"))
        .collect();
    let ledger = query(node, "SELECT id, src, dst, amount FROM ledger")
        .into_iter()
        .map(|r| {
            (
                r[0].parse().expect("id"),
                (
                    r[1].parse().expect("src"),
                    r[2].parse().expect("dst"),
                    r[3].parse().expect("amount"),
                ),
            )
        })
        .collect();
    let balances = query(node, "SELECT id, balance FROM accounts")
        .into_iter()
        .map(|r| (r[0].parse().expect("id"), r[1].parse().expect("balance")))
        .collect();
    FinalState {
        registers,
        ledger,
        balances,
    }
}
