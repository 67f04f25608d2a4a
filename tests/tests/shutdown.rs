//! Graceful shutdown (SIGTERM, as `systemctl stop` sends): transactions
//! in flight finish or roll back, nothing acknowledged is lost, the data is
//! flushed, and a primary hands its secondary every commit before it
//! closes the stream.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use duet_tests::pair::{pair, query, scalar, wait_for_value, CATCH_UP};
use duet_tests::{try_connect, wait_for, TestNode};

/// Ids whose two-row transaction a writer saw committed.
async fn writer(
    config: tokio_postgres::Config,
    w: i32,
    acked: Arc<AtomicUsize>,
) -> (Vec<i32>, Option<String>) {
    let mut mine = Vec::new();
    let client = match try_connect(&config).await {
        Ok(c) => c,
        Err(e) => return (mine, Some(e.to_string())),
    };
    for i in 0.. {
        let id = w * 1_000_000 + i;
        let txn = format!(
            "BEGIN; INSERT INTO acked VALUES ({id}, {w}); \
             INSERT INTO shadow VALUES ({id}); COMMIT"
        );
        match client.batch_execute(&txn).await {
            Ok(()) => {
                mine.push(id);
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => return (mine, Some(duet_tests::describe(&e))),
        }
    }
    (mine, None)
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_commit() {
    if duet_tests::skip_if_external("shutdown") {
        return;
    }
    let mut node = TestNode::insecure();
    node.psql(&[
        "CREATE TABLE acked (id int PRIMARY KEY, w int)",
        "CREATE TABLE shadow (id int PRIMARY KEY)",
    ])
    .assert_ok();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| runtime.spawn(writer(node.pg_config("root"), w, acked.clone())))
        .collect();
    wait_for("200 commits under load", CATCH_UP, || {
        (acked.load(Ordering::SeqCst) >= 200).then_some(())
    });

    let status = node.terminate();
    assert!(status.success(), "exit status {status}\n{}", node.logs());
    let mut committed = HashSet::new();
    for w in writers {
        let (ids, error) = runtime.block_on(w).expect("writer task");
        // Each writer ran until the shutdown ended its session.
        let error = error.expect("a writer outlived the server");
        assert!(
            error.contains("57P01") || error.contains("closed") || error.contains("connection"),
            "{error}"
        );
        committed.extend(ids);
    }
    let logs = node.logs();
    assert!(logs.contains("data flushed to disk"), "{logs}");
    assert!(!logs.contains("did not close in time"), "{logs}");

    node.restart();
    let ids = |table: &str| -> HashSet<i32> {
        query(&node, &format!("SELECT id FROM {table}"))
            .into_iter()
            .map(|r| r[0].parse().expect("id"))
            .collect()
    };
    let (rows, shadows) = (ids("acked"), ids("shadow"));
    let lost: Vec<_> = committed.difference(&rows).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged commits lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    // Whatever was in flight committed whole or not at all.
    assert_eq!(rows, shadows);
}

#[test]
fn a_primary_shutting_down_hands_its_secondary_every_commit() {
    let (mut primary, secondary) = pair();
    primary
        .psql(&["CREATE TABLE acked (id int PRIMARY KEY, w int)"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM acked", "0");

    // Asynchronous writers keep committing while the primary stops.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (url, stop) = (primary.root_url(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = w * 1_000_000 + i;
                    let insert = format!("INSERT INTO acked VALUES ({id}, {w})");
                    if !duet_tests::psql(&url, &[&insert]).success() {
                        break;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    wait_for("commits under load", CATCH_UP, || {
        (scalar(&secondary, "SELECT count(*) FROM acked")
            .parse::<u32>()
            .unwrap_or(0)
            >= 30)
            .then_some(())
    });
    let status = primary.terminate();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer thread");
    }
    assert!(status.success(), "exit status {status}\n{}", primary.logs());
    let logs = primary.logs();
    assert!(!logs.contains("did not close in time"), "{logs}");

    // The secondary says why the stream ended, and has every commit the
    // primary made (read while the primary is down).
    let line = wait_for("the secondary to see the shutdown", CATCH_UP, || {
        secondary
            .logs()
            .lines()
            .find(|l| l.contains("the primary closed the stream (it is shutting down)"))
            .map(str::to_string)
    });
    // Logged in the stream's span, which names the primary and the slot.
    assert!(line.contains("replication_stream{primary="), "{line}");
    let on_secondary = scalar(&secondary, "SELECT count(*) FROM acked");
    let lsn_on_secondary = scalar(&secondary, "SELECT pg_last_wal_replay_lsn()");
    primary.restart();
    assert_eq!(scalar(&primary, "SELECT count(*) FROM acked"), on_secondary);
    assert_eq!(
        scalar(&primary, "SELECT pg_current_wal_lsn()"),
        lsn_on_secondary
    );
    // And it follows the restarted primary again.
    primary
        .psql(&["INSERT INTO acked VALUES (-1, -1)"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM acked WHERE id = -1", "1");
}
