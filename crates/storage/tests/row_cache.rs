//! Point reads are served from a cache of latest committed values
//! (row_cache.rs); under concurrent writers, grouped commits and bulk
//! batches it must never show a snapshot a value other than RocksDB's.

use std::sync::Arc;

use duet_storage::{EngineOptions, Isolation, StatementControl, Store};

const KEYS: usize = 4;
const WRITERS: usize = 6;
const INCREMENTS: u64 = 150;

fn key(i: usize) -> Vec<u8> {
    format!("counter{i}").into_bytes()
}

fn number(value: Option<Vec<u8>>) -> u64 {
    value.map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

/// Writers increment counters under row locks (read the latest value,
/// write it plus one); a checker meanwhile asserts that a transaction
/// begun after a commit returned sees it, and that a repeatable-read
/// snapshot never moves. No increment may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_reads_never_lose_or_hide_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        EngineOptions {
            sync_commits: false,
        },
    )
    .unwrap();
    let engine = store.engine();
    let committed: Arc<Vec<std::sync::atomic::AtomicU64>> =
        Arc::new((0..KEYS).map(|_| Default::default()).collect());

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let engine = engine.clone();
        let committed = committed.clone();
        tasks.push(tokio::spawn(async move {
            let ctl = StatementControl::default();
            for n in 0..INCREMENTS {
                let k = (w + n as usize) % KEYS;
                let mut txn = engine.begin(Isolation::ReadCommitted);
                txn.lock(&key(k), &ctl).await.unwrap();
                // Both reads go through the cache.
                let seen = number(txn.get(&key(k)).unwrap());
                let latest = number(txn.get_latest(&key(k)).unwrap());
                assert!(seen <= latest, "snapshot {seen} ahead of latest {latest}");
                txn.put(key(k), (latest + 1).to_string().into_bytes());
                // Now and then a bulk batch (too many keys to mark one by one).
                if n % 50 == 7 {
                    for j in 0..300 {
                        txn.put(
                            format!("bulk{w}-{j}").into_bytes(),
                            n.to_string().into_bytes(),
                        );
                    }
                }
                txn.commit().await.unwrap();
                committed[k].fetch_max(latest + 1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    let checker = {
        let engine = engine.clone();
        let committed = committed.clone();
        tokio::spawn(async move {
            for _ in 0..2000 {
                let floor: Vec<u64> = committed
                    .iter()
                    .map(|c| c.load(std::sync::atomic::Ordering::SeqCst))
                    .collect();
                let txn = engine.begin(Isolation::RepeatableRead);
                for (k, floor) in floor.iter().enumerate() {
                    let first = number(txn.get(&key(k)).unwrap());
                    assert!(
                        first >= *floor,
                        "key {k}: read {first} after {floor} committed"
                    );
                    tokio::task::yield_now().await;
                    let again = number(txn.get(&key(k)).unwrap());
                    assert_eq!(first, again, "key {k}: a snapshot's value moved");
                }
                txn.rollback();
            }
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    checker.await.unwrap();

    let txn = engine.begin(Isolation::ReadCommitted);
    let total: u64 = (0..KEYS).map(|k| number(txn.get(&key(k)).unwrap())).sum();
    assert_eq!(total, WRITERS as u64 * INCREMENTS);
    assert_eq!(
        number(engine.get_committed(b"bulk0-299").unwrap()),
        (INCREMENTS - 1) / 50 * 50 + 7
    );
}
