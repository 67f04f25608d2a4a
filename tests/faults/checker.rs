//! Checks a run's history against the cluster's final state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use crate::faults::workload::{History, Op, Outcome, ACCOUNTS, TOTAL};

/// The converged cluster as read after the run (from every node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalState {
    pub registers: BTreeSet<i64>,
    pub ledger: BTreeMap<i64, (i32, i32, i64)>,
    pub balances: BTreeMap<i32, i64>,
}

/// What the checker found. `anomalies()` lists every violation.
#[derive(Debug, Default)]
pub struct Report {
    pub operations: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub unknown: usize,
    pub reads: u64,
    /// Acknowledged writes missing from the final state.
    pub lost_acknowledged: Vec<String>,
    /// Writes refused before commit that are in the final state anyway.
    pub failed_but_present: Vec<String>,
    /// Keys a secondary served that never made it into the final state.
    pub uncommitted_reads_on_secondary: Vec<i64>,
    /// Keys of refused writes that some node served.
    pub aborted_reads: Vec<i64>,
    pub bad_totals: Vec<String>,
    pub non_monotonic: Vec<String>,
    /// Epochs under which more than one node acknowledged writes.
    pub split_brain: Vec<String>,
    /// Final balances that do not follow from the final ledger.
    pub ledger_mismatch: Vec<String>,
    /// Nodes whose final state differs from the primary's.
    pub divergent_nodes: Vec<String>,
}

impl Report {
    /// Every violation, lost acknowledged writes included.
    pub fn anomalies(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |what: &str, items: Vec<String>| {
            if !items.is_empty() {
                let shown: Vec<&String> = items.iter().take(5).collect();
                out.push(format!("{} {what}: {shown:?}", items.len()));
            }
        };
        add("lost acknowledged writes", self.lost_acknowledged.clone());
        add("refused writes present", self.failed_but_present.clone());
        add(
            "uncommitted keys read on a secondary",
            self.uncommitted_reads_on_secondary
                .iter()
                .map(|k| k.to_string())
                .collect(),
        );
        add(
            "keys of refused writes read",
            self.aborted_reads.iter().map(|k| k.to_string()).collect(),
        );
        add("reads with a wrong total", self.bad_totals.clone());
        add("non-monotonic reads", self.non_monotonic.clone());
        add("split-brain epochs", self.split_brain.clone());
        add("ledger mismatches", self.ledger_mismatch.clone());
        add("divergent nodes", self.divergent_nodes.clone());
        out
    }

    /// Violations other than lost acknowledged writes (which asynchronous
    /// replication allows after a failover).
    pub fn anomalies_besides_loss(&self) -> Vec<String> {
        let mut anomalies = self.anomalies();
        anomalies.retain(|a| !a.contains("lost acknowledged writes"));
        anomalies
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "operations {} (acknowledged {}, refused {}, unknown {}), reads {}",
            self.operations, self.acknowledged, self.failed, self.unknown, self.reads
        )?;
        writeln!(
            f,
            "lost acknowledged writes {}",
            self.lost_acknowledged.len()
        )?;
        let anomalies = self.anomalies();
        if anomalies.is_empty() {
            write!(f, "anomalies: none")
        } else {
            write!(f, "anomalies:\n  {}", anomalies.join("\n  "))
        }
    }
}

/// Checks `history` against `finals` (one per node, the primary's first).
pub fn check(history: &History, finals: &[(u16, FinalState)]) -> Report {
    let (_, primary) = &finals[0];
    let mut report = Report {
        operations: history.writes.len(),
        ..Report::default()
    };
    let mut refused_keys = HashSet::new();
    let mut epochs: HashMap<i64, BTreeSet<u16>> = HashMap::new();
    for event in &history.writes {
        let present = match &event.op {
            Op::Register { key } => primary.registers.contains(key),
            Op::Transfer { id, .. } => primary.ledger.contains_key(id),
        };
        match &event.outcome {
            Outcome::Ok { epoch, port } => {
                report.acknowledged += 1;
                epochs.entry(*epoch).or_default().insert(*port);
                if !present {
                    report.lost_acknowledged.push(format!(
                        "{:?} acknowledged by port {port} in epoch {epoch}",
                        event.op
                    ));
                }
            }
            Outcome::Failed(why) => {
                report.failed += 1;
                if let Op::Register { key } = event.op {
                    refused_keys.insert(key);
                }
                if present {
                    report
                        .failed_but_present
                        .push(format!("{:?} ({why})", event.op));
                }
            }
            Outcome::Unknown(_) => report.unknown += 1,
        }
    }
    for (epoch, ports) in epochs {
        if ports.len() > 1 {
            report
                .split_brain
                .push(format!("epoch {epoch}: nodes on ports {ports:?}"));
        }
    }
    for log in &history.reads {
        report.reads += log.reads;
        report.bad_totals.extend(log.bad_totals.iter().cloned());
        report
            .non_monotonic
            .extend(log.non_monotonic.iter().cloned());
        report.uncommitted_reads_on_secondary.extend(
            log.seen_on_secondary
                .iter()
                .filter(|k| !primary.registers.contains(k)),
        );
        report
            .aborted_reads
            .extend(log.seen.iter().filter(|k| refused_keys.contains(k)));
    }
    report.uncommitted_reads_on_secondary.sort_unstable();
    report.uncommitted_reads_on_secondary.dedup();
    report.aborted_reads.sort_unstable();
    report.aborted_reads.dedup();

    // Balances follow from the ledger; money is neither made nor lost.
    let mut expected: BTreeMap<i32, i64> = (1..=ACCOUNTS as i32)
        .map(|a| (a, TOTAL / ACCOUNTS))
        .collect();
    for (from, to, amount) in primary.ledger.values() {
        *expected.entry(*from).or_default() -= amount;
        *expected.entry(*to).or_default() += amount;
    }
    if expected != primary.balances {
        report.ledger_mismatch.push(format!(
            "balances {:?}, ledger says {expected:?}",
            primary.balances
        ));
    }
    let total: i64 = primary.balances.values().sum();
    if total != TOTAL {
        report.bad_totals.push(format!("final total {total}"));
    }
    for (port, state) in &finals[1..] {
        if state != primary {
            report.divergent_nodes.push(format!(
                "port {port}: {} registers, {} ledger rows (primary: {}, {})",
                state.registers.len(),
                state.ledger.len(),
                primary.registers.len(),
                primary.ledger.len()
            ));
        }
    }
    report
}
