//! Snapshots are shared between transactions that start with nothing
//! committed in between: sharing must never hide a commit from a
//! transaction that starts after it, nor show one to a transaction that
//! started before it.

use duet_storage::{EngineOptions, Isolation, Store};

#[tokio::test]
async fn a_shared_snapshot_never_hides_an_earlier_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), EngineOptions::default()).unwrap();
    let engine = store.engine();

    let before = engine.begin(Isolation::RepeatableRead);
    let also_before = engine.begin(Isolation::RepeatableRead);
    assert_eq!(before.snapshot_sequence(), also_before.snapshot_sequence());

    let mut writer = engine.begin(Isolation::ReadCommitted);
    writer.put(b"k".to_vec(), b"1".to_vec());
    let lsn = writer.commit().await.unwrap().unwrap();

    let after = engine.begin(Isolation::RepeatableRead);
    assert_eq!(after.snapshot_sequence(), lsn);
    assert_eq!(after.get(b"k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(before.get(b"k").unwrap(), None);
    assert_eq!(also_before.get(b"k").unwrap(), None);

    // Read committed moves to a new statement's snapshot.
    let mut reader = engine.begin(Isolation::ReadCommitted);
    let mut writer = engine.begin(Isolation::ReadCommitted);
    writer.put(b"k".to_vec(), b"2".to_vec());
    writer.commit().await.unwrap();
    assert_eq!(reader.get(b"k").unwrap(), Some(b"1".to_vec()));
    reader.begin_statement();
    assert_eq!(reader.get(b"k").unwrap(), Some(b"2".to_vec()));
}
