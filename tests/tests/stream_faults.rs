//! The replication stream under link faults, one at a time: corrupted
//! bytes, a half-open connection, and a secondary that stops taking data.
//! The pair runs in insecure mode so the proxy can flip bytes in the
//! clear (under TLS a flipped byte fails the record's MAC instead).

use std::time::Duration;

use duet_tests::faults::cluster::Cluster;
use duet_tests::faults::Fault;
use duet_tests::pair::{query, scalar, wait_for_value, CATCH_UP};
use duet_tests::wait_for;

const SCHEMA: &[&str] = &["CREATE TABLE t (id int PRIMARY KEY, payload text)"];

fn insert(cluster: &Cluster, from: i32, to: i32) {
    cluster
        .node(cluster.primary())
        .psql(&[&format!(
            "INSERT INTO t SELECT g, repeat('p', 200) FROM generate_series({from}, {to}) g"
        )])
        .assert_ok();
}

#[test]
fn corrupted_frames_are_detected_and_nothing_wrong_is_applied() {
    let cluster = Cluster::start(2, &[], SCHEMA);
    let (p, s) = (cluster.primary(), cluster.secondaries()[0]);
    insert(&cluster, 1, 100);
    wait_for_value(cluster.node(s), "SELECT count(*) FROM t", "100");
    // Flip a byte in each of the next chunks the primary sends, while it
    // ships batches.
    for round in 0..5 {
        cluster.members[p].link.corrupt_to_client(2);
        insert(&cluster, 1000 * (round + 1), 1000 * (round + 1) + 99);
    }
    wait_for_value(cluster.node(s), "SELECT count(*) FROM t", "600");
    // A consistent stop: same LSN and the same checksum of everything.
    let out = cluster.node(s).psql(&["REPLICATE SET SERVICE STOP;"]);
    out.assert_ok();
    assert!(out.stderr.contains("consistent at LSN"), "{}", out.stderr);
    assert_eq!(
        query(cluster.node(s), "SELECT id, payload FROM t ORDER BY id"),
        query(cluster.node(p), "SELECT id, payload FROM t ORDER BY id")
    );
    let logs = cluster.node(s).logs();
    let resets = logs.matches("replication stream interrupted").count();
    eprintln!("stream resets after corruption: {resets}");
    assert!(resets >= 1, "no corruption was noticed:\n{logs}");
}

#[test]
fn a_half_open_stream_is_noticed_and_reopened() {
    let cluster = Cluster::start(2, &[], SCHEMA);
    let (p, s) = (cluster.primary(), cluster.secondaries()[0]);
    insert(&cluster, 1, 10);
    wait_for_value(cluster.node(s), "SELECT count(*) FROM t", "10");
    let accepted = cluster.members[p].link.accepted();
    // The stream's connection freezes: neither end hears from the other.
    cluster.members[p].link.half_open();
    insert(&cluster, 11, 20);
    // The secondary gives up on the silent connection and opens another.
    wait_for(
        "a new replication connection",
        Duration::from_secs(30),
        || (cluster.members[p].link.accepted() > accepted).then_some(()),
    );
    wait_for_value(cluster.node(s), "SELECT count(*) FROM t", "20");
    let logs = cluster.node(s).logs();
    assert!(logs.contains("no message from the primary"), "{logs}");
}

#[test]
fn a_handshake_that_goes_half_open_is_given_up_and_retried() {
    let cluster = Cluster::start(2, &[], SCHEMA);
    let (p, s) = (cluster.primary(), cluster.secondaries()[0]);
    let link = &cluster.members[p].link;
    insert(&cluster, 1, 10);
    wait_for_value(cluster.node(s), "SELECT count(*) FROM t", "10");
    // The stream breaks; its next connection goes silent right after the
    // startup handshake (IDENTIFY_SYSTEM is never answered) and stays so,
    // while later connections would work.
    link.set(Fault::StallAfter(1));
    let accepted = link.accepted();
    link.reset_connections();
    wait_for(
        "a new connection to stall after its handshake",
        Duration::from_secs(30),
        || (link.last_stalled() > accepted).then_some(()),
    );
    link.half_open();
    link.set(Fault::None);
    insert(&cluster, 11, 20);
    wait_for(
        "the secondary to give up and reconnect",
        Duration::from_secs(90),
        || (scalar(cluster.node(s), "SELECT count(*) FROM t") == "20").then_some(()),
    );
    let logs = cluster.node(s).logs();
    assert!(logs.contains("did not finish the handshake"), "{logs}");
}

/// Resident memory of a process, from /proc.
fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[test]
fn a_stalled_secondary_costs_the_primary_bounded_memory_and_its_slot() {
    let mut cluster = Cluster::start(
        2,
        &[("DUET_REPLICATION_MAX_SLOT_WAL_KEEP_SIZE_MB", "2")],
        SCHEMA,
    );
    let (p, s) = (cluster.primary(), cluster.secondaries()[0]);
    insert(&cluster, 1, 10);
    wait_for_value(cluster.node(s), "SELECT count(*) FROM t", "10");
    // The secondary stops taking data (SIGSTOP); the link also crawls.
    cluster.pause(s);
    cluster.members[p].link.set(Fault::Bandwidth(64 << 10));
    let before = rss_mb(cluster.node(p).pid().expect("primary runs"));
    for round in 0..10 {
        insert(&cluster, 10_000 * (round + 1), 10_000 * (round + 1) + 4_999);
    }
    let after = rss_mb(cluster.node(p).pid().expect("primary runs"));
    eprintln!(
        "primary RSS {before} MB before, {after} MB after 50 000 rows behind a stalled secondary"
    );
    assert!(
        after < before + 256,
        "primary memory grew from {before} to {after} MB"
    );
    // The lag outgrew the slot limit: the slot is lost, not the primary.
    wait_for_value(
        cluster.node(p),
        "SELECT wal_status FROM pg_replication_slots",
        "lost",
    );
    // Back, the secondary re-copies by itself and catches up.
    cluster.members[p].link.set(Fault::None);
    cluster.resume(s);
    wait_for("the secondary to catch up", CATCH_UP * 2, || {
        (scalar(cluster.node(s), "SELECT count(*) FROM t") == "50010").then_some(())
    });
}
