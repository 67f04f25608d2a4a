//! The SQL layer's counters. Every session counting into one shared
//! atomic made its cache line travel between cores on every statement (a
//! percent or two of a point query), so each thread counts into a slot of
//! its own and the totals are handed to the metrics recorder when it is
//! read ([`publish`], called by the /metrics endpoint).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::Histogram;

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

/// Commits, counted after the statement kinds.
const COMMITS: usize = KINDS.len();

/// Threads share slots beyond this many (still correct, just shared).
const SLOTS: usize = 16;

/// One thread's counts, alone on its cache lines.
#[repr(align(128))]
struct Slot([AtomicU64; KINDS.len() + 1]);

static COUNTS: [Slot; SLOTS] =
    [const { Slot([const { AtomicU64::new(0) }; KINDS.len() + 1]) }; SLOTS];

fn slot() -> &'static Slot {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
    }
    &COUNTS[MINE.with(|i| *i)]
}

/// Counts a statement of `kind` (one of [`KINDS`]; others count as "other").
pub(crate) fn statement(kind: &str) {
    let i = KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1);
    slot().0[i].fetch_add(1, Ordering::Relaxed);
}

/// Counts a commit that wrote something, and how long it took (the
/// histogram is recorded as it happens: commits are rarer than
/// statements, and a histogram cannot be summed later). Its handle is
/// looked up once, by the first commit, instead of by name in the
/// recorder's registry on every commit: commits only come from client
/// sessions, which start after the server installed its recorder.
pub(crate) fn commit(elapsed: Duration) {
    static COMMIT_SECONDS: OnceLock<Histogram> = OnceLock::new();
    slot().0[COMMITS].fetch_add(1, Ordering::Relaxed);
    COMMIT_SECONDS
        .get_or_init(|| metrics::histogram!("duet_commit_seconds"))
        .record(elapsed.as_secs_f64());
}

fn total(i: usize) -> u64 {
    COUNTS.iter().map(|s| s.0[i].load(Ordering::Relaxed)).sum()
}

/// Hands the totals to the metrics recorder.
pub fn publish() {
    for (i, kind) in KINDS.iter().enumerate() {
        metrics::counter!("duet_statements_total", "kind" => *kind).absolute(total(i));
    }
    metrics::counter!("duet_commits_total").absolute(total(COMMITS));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_add_up() {
        let before = total(0);
        let threads: Vec<_> = (0..20)
            .map(|_| std::thread::spawn(|| (0..100).for_each(|_| statement("select"))))
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(total(0) >= before + 2000);
    }
}
