//! Group commit: commits that arrive while others are writing are handed
//! to one committer thread, which appends every waiting batch into one
//! WriteBatch and writes it with one WAL write and one fsync.
//!
//! RocksDB groups concurrent writers by itself, but each writer needs a
//! thread of its own, and a writer waiting for its group's leader first
//! spins (a fixed loop of 200 `pause` instructions), then sleeps on its own
//! condition variable. On a small machine that spinning and the two
//! thread hand-offs per commit cost more CPU than the commit itself (a
//! quarter of a write-heavy profile). Here a waiting commit is a parked
//! task, woken once when its group is durable.
//!
//! The WAL ends up the same either way: RocksDB's leader also writes its
//! group as one record. Each commit keeps its own LSN (its first sequence
//! number inside the group) and is published to the replication feed on
//! its own, with that LSN in its header.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Weak;

use tokio::sync::oneshot;

use crate::batch::RawBatch;
use crate::engine::Engine;
use crate::error::{StorageError, StorageResult};

/// A group stops growing at this size; a bigger commit is written alone
/// (a bulk load is not copied into a group).
const MAX_GROUP_BYTES: usize = 1 << 20;

/// One commit waiting for the committer. It counts in the engine's
/// commits in flight until its group is written.
pub(crate) struct Request {
    pub(crate) batch: RawBatch,
    pub(crate) reply: oneshot::Sender<StorageResult<u64>>,
}

/// Starts the committer thread of an engine; it ends when the engine (the
/// only sender) is dropped.
pub(crate) fn start(engine: Weak<Engine>) -> std::io::Result<mpsc::Sender<Request>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("duet-commit".into())
        .spawn(move || run(engine, rx))?;
    Ok(tx)
}

fn run(engine: Weak<Engine>, rx: mpsc::Receiver<Request>) {
    let mut held_over: Option<Request> = None;
    loop {
        let first = match held_over.take() {
            Some(request) => request,
            None => match rx.recv() {
                Ok(request) => request,
                Err(_) => return,
            },
        };
        let mut bytes = first.batch.data().len();
        let mut group = vec![first];
        while let Ok(request) = rx.try_recv() {
            let len = request.batch.data().len();
            if bytes + len > MAX_GROUP_BYTES {
                held_over = Some(request);
                break;
            }
            bytes += len;
            group.push(request);
        }
        match engine.upgrade() {
            Some(engine) => write_group(&engine, group),
            None => {
                for request in group {
                    let _ = request.reply.send(Err(StorageError::Engine(
                        "the database was closed before the commit was written".into(),
                    )));
                }
            }
        }
    }
}

fn write_group(engine: &Engine, mut group: Vec<Request>) {
    let result = if let [request] = group.as_mut_slice() {
        engine
            .write_and_publish(&mut request.batch)
            .map(|lsn| vec![lsn])
    } else {
        let mut merged = RawBatch::concat(group.iter().map(|r| r.batch.data()));
        let commits: Vec<&[u8]> = group.iter().map(|r| r.batch.data()).collect();
        engine
            .write_commits(&mut merged, &commits)
            .map(|first| lsns(first, &group))
    };
    // Written (or failed) as a whole: none of these is in flight any more.
    engine
        .commits_in_flight
        .fetch_sub(group.len() as u64, Ordering::SeqCst);
    match result {
        Ok(lsns) => {
            for (request, lsn) in group.into_iter().zip(lsns) {
                let _ = request.reply.send(Ok(lsn));
            }
        }
        Err(e) => {
            for request in group {
                let _ = request.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Each commit's LSN in a group written from `first` on: its first
/// sequence number, after the entries of the commits before it.
fn lsns(first: u64, group: &[Request]) -> Vec<u64> {
    group
        .iter()
        .scan(first, |next, request| {
            let lsn = *next;
            *next += request.batch.count();
            Some(lsn)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::header_seq;
    use crate::engine::EngineOptions;

    fn request(keys: &[&str]) -> (Request, oneshot::Receiver<StorageResult<u64>>) {
        let mut batch = RawBatch::new();
        for k in keys {
            batch.put(k.as_bytes(), b"v");
        }
        let (reply, done) = oneshot::channel();
        (Request { batch, reply }, done)
    }

    #[test]
    fn a_group_is_one_wal_record_and_each_commit_keeps_its_lsn() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let mut feed = engine.shared.feed.subscribe();
        let start = engine.latest_sequence_number();

        let (a, a_done) = request(&["a"]);
        let (b, b_done) = request(&["b1", "b2"]);
        let (c, c_done) = request(&["c1", "c2", "c3"]);
        engine.commits_in_flight.fetch_add(3, Ordering::SeqCst);
        write_group(&engine, vec![a, b, c]);

        let lsns: Vec<u64> = [a_done, b_done, c_done]
            .into_iter()
            .map(|done| done.blocking_recv().unwrap().unwrap())
            .collect();
        assert_eq!(lsns, [start + 1, start + 2, start + 4]);
        assert_eq!(engine.latest_sequence_number(), start + 6);
        assert_eq!(engine.commits_in_flight.load(Ordering::SeqCst), 0);
        assert_eq!(engine.get_committed(b"c3").unwrap(), Some(b"v".to_vec()));

        // The feed has each commit on its own, its LSN in its header.
        let fed: Vec<_> = std::iter::from_fn(|| feed.try_recv().ok()).collect();
        let fed: Vec<(u64, Option<u64>, u64)> = fed
            .iter()
            .map(|b| (b.seq, header_seq(&b.data), b.count()))
            .collect();
        assert_eq!(
            fed,
            [
                (start + 1, Some(start + 1), 1),
                (start + 2, Some(start + 2), 2),
                (start + 4, Some(start + 4), 3)
            ]
        );

        // The batch log has each commit on its own too.
        let logged: Vec<_> = engine
            .wal_after(start)
            .unwrap()
            .map(|b| b.unwrap())
            .filter(|b| b.seq > start)
            .map(|b| (b.seq, header_seq(&b.data), b.count()))
            .collect();
        assert_eq!(logged, fed);
        // So a secondary that stopped between two commits of a group
        // (it applied them one by one from the feed) resumes from the log.
        let resumed = engine
            .wal_after(start + 1)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(resumed.seq, start + 2);
    }

    #[test]
    fn commits_sent_after_the_engine_closed_fail() {
        let committer = start(Weak::new()).unwrap();
        let (a, a_done) = request(&["a"]);
        committer.send(a).unwrap();
        assert!(a_done.blocking_recv().unwrap().is_err());
    }
}
