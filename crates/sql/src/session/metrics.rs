//! A session's handles on the SQL layer's metrics, looked up once per
//! connection: looking a metric up by name and labels on every statement
//! cost a few percent of a point query. Sessions are created after the
//! server installed its recorder.

use metrics::{Counter, Histogram};

/// The values of `duet_statements_total`'s `kind` label.
const KINDS: [&str; 9] = [
    "select",
    "insert",
    "update",
    "delete",
    "transaction",
    "ddl",
    "copy",
    "replicate",
    "other",
];

pub(super) struct SessionMetrics {
    statements: [Counter; KINDS.len()],
    commits: Counter,
    commit_seconds: Histogram,
}

impl SessionMetrics {
    pub(super) fn new() -> SessionMetrics {
        SessionMetrics {
            statements: KINDS
                .map(|kind| metrics::counter!("duet_statements_total", "kind" => kind)),
            commits: metrics::counter!("duet_commits_total"),
            commit_seconds: metrics::histogram!("duet_commit_seconds"),
        }
    }

    /// Counts a statement of `kind` (one of [`KINDS`]; others count as "other").
    pub(super) fn statement(&self, kind: &str) {
        let i = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        self.statements[i].increment(1);
    }

    pub(super) fn commit(&self, elapsed: std::time::Duration) {
        self.commits.increment(1);
        self.commit_seconds.record(elapsed.as_secs_f64());
    }
}
