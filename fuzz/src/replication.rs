use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use duet_replication::applier::Applier;
use duet_replication::frame::{PrimaryMessage, SecondaryMessage};
use duet_replication::status::StatusBoard;
use duet_storage::{Engine, EngineOptions, Isolation, Store};

/// Decodes `data` as a frame from either side; whatever decodes must
/// encode back to a frame that decodes the same.
pub fn replication_frame(data: &[u8]) {
    crate::panics_abort();
    if let Ok(msg) = PrimaryMessage::decode(Bytes::copy_from_slice(data)) {
        assert_eq!(PrimaryMessage::decode(msg.encode()), Ok(msg));
    }
    if let Ok(msg) = SecondaryMessage::decode(data) {
        assert_eq!(SecondaryMessage::decode(&msg.encode()), Ok(msg));
    }
}

/// One RocksDB database for the whole fuzzing process.
struct ApplyFixture {
    _dir: tempfile::TempDir,
    _store: Arc<Store>,
    engine: Arc<Engine>,
    status: StatusBoard,
}

fn apply_fixture() -> &'static Mutex<ApplyFixture> {
    static FIXTURE: OnceLock<Mutex<ApplyFixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), EngineOptions::default()).expect("open store");
        let engine = store.engine();
        Mutex::new(ApplyFixture {
            _dir: dir,
            _store: store,
            engine,
            status: StatusBoard::default(),
        })
    })
}

/// Feeds `data` to an applier as a stream of shipped batches: chunks of
/// `[u16 length][batch bytes]`, each stamped with the LSN the stream
/// expects next (as a primary would). The applier takes each batch whole or
/// refuses it; afterwards the database holds exactly what was applied and
/// still takes ordinary commits (a bad batch never poisons the engine).
pub fn writebatch_apply(data: &[u8]) {
    crate::panics_abort();
    let fixture = apply_fixture().lock().unwrap_or_else(|p| p.into_inner());
    let engine = &fixture.engine;
    let start = engine.latest_sequence_number();
    let mut applier = Applier::new(start);
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        let lsn = applier.received + 1;
        let mut batch = chunk.to_vec();
        if let Some(seq) = batch.get_mut(..8) {
            seq.copy_from_slice(&lsn.to_le_bytes());
        }
        if applier.receive(lsn, &Bytes::from(batch)).is_err() {
            break;
        }
    }
    applier
        .flush(engine, &fixture.status)
        .expect("validated batches apply");
    assert_eq!(engine.latest_sequence_number(), applier.applied);
    let mut txn = engine.begin(Isolation::ReadCommitted);
    txn.put(
        b"\xfffuzz-check".to_vec(),
        data.len().to_le_bytes().to_vec(),
    );
    txn.commit_blocking()
        .expect("the engine still takes commits after the stream");
}
