//! What replication relies on: every commit's LSN is known, concurrent
//! commits tile the sequence space, and replaying the shipped batches on a
//! copy gives the same LSNs and the same content.

use duet_storage::{CommittedBatch, EngineOptions, Isolation, Store};

fn options() -> EngineOptions {
    EngineOptions {
        sync_commits: false,
    }
}

/// Synced commits take long enough to meet in write groups.
fn synced() -> EngineOptions {
    EngineOptions { sync_commits: true }
}

async fn commit(store: &Store, keys: &[(&str, &str)]) -> u64 {
    let mut txn = store.engine().begin(Isolation::ReadCommitted);
    for (k, v) in keys {
        txn.put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
    }
    txn.commit().await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_tile_the_sequence_space() {
    tile_the_sequence_space(options()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_synced_commits_tile_the_sequence_space() {
    tile_the_sequence_space(synced()).await;
}

async fn tile_the_sequence_space(engine_options: EngineOptions) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), engine_options).unwrap();
    let mut feed = store.subscribe();
    let start = store.engine().latest_sequence_number();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                let k1 = format!("{t}-{i}-a");
                let k2 = format!("{t}-{i}-b");
                seqs.push(commit(&store, &[(&k1, "x"), (&k2, "y")]).await);
            }
            seqs
        }));
    }
    let mut seqs: Vec<u64> = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort();
    // 400 batches of two entries each: starts at start+1, +3, +5, ...
    let expected: Vec<u64> = (0..400).map(|i| start + 1 + 2 * i).collect();
    assert_eq!(seqs, expected);
    assert_eq!(store.engine().latest_sequence_number(), start + 800);

    // The feed saw each batch once, with its LSN in the header.
    let mut fed: Vec<CommittedBatch> = Vec::new();
    while let Ok(b) = feed.try_recv() {
        fed.push(b);
    }
    let mut fed_seqs: Vec<u64> = fed.iter().map(|b| b.seq).collect();
    fed_seqs.sort();
    assert_eq!(fed_seqs, expected);
    assert!(fed.iter().all(|b| b.count() == 2));

    // Replaying the WAL (where write groups are single records) on an
    // empty database gives the same content at the same LSN.
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = Store::open(copy_dir.path(), options()).unwrap().engine();
    assert_eq!(copy.latest_sequence_number(), start);
    for batch in store.engine().wal_after(start).unwrap() {
        let batch = batch.unwrap();
        if batch.seq > start {
            copy.apply_replicated(&batch.data, false, &[]).unwrap();
        }
    }
    assert_eq!(
        copy.content_checksum().unwrap(),
        store.engine().content_checksum().unwrap()
    );
}

#[tokio::test]
async fn replaying_the_wal_on_a_checkpoint_reproduces_lsns_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Store::open(&dir.path().join("primary"), options()).unwrap();
    commit(&primary, &[("a", "1"), ("b", "2")]).await;

    // A copy taken now, installed in another node's data directory.
    let secondary_dir = dir.path().join("secondary");
    let secondary = Store::open(&secondary_dir, options()).unwrap();
    let staging = secondary.staging_dir();
    primary.engine().checkpoint(&staging).unwrap();
    let old_dir = secondary.engine().path().to_path_buf();
    let copy = secondary.install(&staging).unwrap();
    // Nothing reads the replaced database: it is gone.
    assert!(!old_dir.exists());
    let copied_at = copy.latest_sequence_number();
    assert_eq!(copied_at, primary.engine().latest_sequence_number());

    // More commits on the primary, including a delete.
    commit(&primary, &[("c", "3")]).await;
    let mut txn = primary.engine().begin(Isolation::ReadCommitted);
    txn.delete(b"a".to_vec());
    txn.commit().await.unwrap();

    // Ship them from the WAL and apply them in order.
    let mut applied = 0;
    for batch in primary.engine().wal_after(copied_at).unwrap() {
        let batch = batch.unwrap();
        if batch.seq <= copied_at {
            continue;
        }
        copy.apply_replicated(&batch.data, true, &[]).unwrap();
        applied += 1;
    }
    assert_eq!(applied, 2);
    assert_eq!(
        copy.latest_sequence_number(),
        primary.engine().latest_sequence_number()
    );
    assert_eq!(
        copy.content_checksum().unwrap(),
        primary.engine().content_checksum().unwrap()
    );

    // A batch out of order is refused and changes nothing.
    let stale: Vec<_> = primary.engine().wal_after(0).unwrap().collect();
    let first = stale.into_iter().next().unwrap().unwrap();
    assert!(copy.apply_replicated(&first.data, true, &[]).is_err());
    assert_eq!(
        copy.latest_sequence_number(),
        primary.engine().latest_sequence_number()
    );

    // The secondary's fence blocks ordinary commits but not the applier.
    secondary.set_writable(false);
    let mut txn = secondary.engine().begin(Isolation::ReadCommitted);
    txn.put(b"z".to_vec(), b"1".to_vec());
    assert!(matches!(
        txn.commit().await,
        Err(duet_storage::StorageError::ReadOnly)
    ));

    // The install survives a restart of the secondary.
    drop(copy);
    drop(secondary);
    let reopened = Store::open(&secondary_dir, options()).unwrap();
    assert_eq!(
        reopened.engine().content_checksum().unwrap(),
        primary.engine().content_checksum().unwrap()
    );
}

/// After a crash of the machine the batch log may lack what RocksDB's WAL
/// has (its appends are synced in the background): at open it is refilled
/// from RocksDB's WAL, so a secondary still catches up from it.
#[tokio::test]
async fn a_batch_log_that_lost_its_tail_is_refilled_from_rocksdbs_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), synced()).unwrap();
    let start = store.engine().latest_sequence_number();
    let mut seqs = Vec::new();
    for i in 0..40 {
        seqs.push(commit(&store, &[(&format!("k{i}"), "v")]).await);
    }
    let segments = store.engine().batch_log().segments();
    assert_eq!(segments.len(), 1);
    drop(store);
    // What the machine lost: the log's second half.
    let segment = &segments[0].path;
    let len = std::fs::metadata(segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(len / 2 + 3)
        .unwrap();

    let store = Store::open(dir.path(), synced()).unwrap();
    let logged: Vec<u64> = store
        .engine()
        .wal_after(start)
        .unwrap()
        .map(|b| b.unwrap().seq)
        .filter(|seq| *seq > start)
        .collect();
    assert_eq!(logged, seqs);
    // And it goes on from there.
    let next = commit(&store, &[("after", "v")]).await;
    let last = store
        .engine()
        .wal_after(next - 1)
        .unwrap()
        .last()
        .unwrap()
        .unwrap();
    assert_eq!(last.seq, next);
}
