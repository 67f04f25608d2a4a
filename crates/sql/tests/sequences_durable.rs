//! nextval reserves a block of values with a write that is not synced on
//! its own; the transaction that hands a value out syncs it before its
//! commit returns, even when it wrote nothing else.

mod common;

use duet_sql::{Database, DatabaseOptions};

#[tokio::test]
async fn a_read_only_nextval_is_durable_when_its_commit_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(dir.path(), DatabaseOptions::default()).expect("open");
    let mut s = common::root_session(&db);
    for sql in ["CREATE SEQUENCE s", "SELECT nextval('s')"] {
        let stmt = s.parse(sql).expect(sql).remove(0);
        s.execute(&stmt, vec![]).await.expect(sql);
        let engine = db.engine();
        assert!(
            engine.synced_lsn() >= engine.latest_sequence_number(),
            "{sql}: everything written is on disk"
        );
    }
}
