//! SIGKILL at the awkward moments of replication: in the middle of an
//! initial copy, of a promotion and of a SERVICE STOP. After a restart the
//! node is in one state or the other, never in between, and everything
//! converges with nothing acknowledged lost.

use std::time::Duration;

use duet_tests::faults::{Fault, FaultProxy};
use duet_tests::pair::{query, scalar, wait_for_value};
use duet_tests::{psql, wait_for, TestNode};

fn primary_with_rows(rows: u32) -> TestNode {
    let primary = TestNode::insecure();
    primary
        .psql(&[
            "CREATE TABLE t (id int PRIMARY KEY, payload text)",
            &format!(
                "INSERT INTO t SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, {rows}) g"
            ),
            "REPLICATE SET ROLE PRIMARY;",
        ])
        .assert_ok();
    primary
}

fn url_through(link: &FaultProxy) -> String {
    format!(
        "postgresql://root@127.0.0.1:{}/defaultdb?sslmode=disable&connect_timeout=5",
        link.port()
    )
}

fn service_state(node: &TestNode) -> String {
    query(node, "SHOW REPLICATION STATUS")[0][3].clone()
}

fn role(node: &TestNode) -> String {
    query(node, "SHOW REPLICATION STATUS")[0][1].clone()
}

#[test]
fn a_copy_killed_halfway_is_redone_from_scratch() {
    let primary = primary_with_rows(60_000);
    // A slow link, so the copy is still running when the node dies.
    let link = FaultProxy::start(primary.addr());
    link.set(Fault::Bandwidth(2 << 20));
    let mut secondary = TestNode::insecure();
    secondary
        .psql(&[&format!("REPLICATE SET PRIMARY {};", url_through(&link))])
        .assert_ok();
    let url = secondary.root_url();
    let create = std::thread::spawn(move || psql(&url, &["REPLICATE SET SERVICE CREATE;"]));
    let before = link.forwarded_bytes();
    wait_for("the copy to be under way", Duration::from_secs(30), || {
        (link.forwarded_bytes() > before + (2 << 20)).then_some(())
    });
    secondary.kill9();
    assert!(
        !create.join().unwrap().success(),
        "the copy finished before the kill"
    );

    // Restarted: no half-installed copy, still a secondary without a
    // service; CREATE copies again and the data matches.
    link.set(Fault::None);
    secondary.restart();
    assert_eq!(role(&secondary), "SECONDARY");
    assert_eq!(service_state(&secondary), "NONE");
    let out = secondary.psql(&[
        "REPLICATE SET SERVICE CREATE;",
        "REPLICATE SET SERVICE START;",
    ]);
    out.assert_ok();
    assert!(out.stderr.contains("initial copy done"), "{}", out.stderr);
    primary
        .psql(&["INSERT INTO t VALUES (0, 'after the copy')"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM t", "60001");
    assert_eq!(
        scalar(&secondary, "SELECT sum(length(payload)) FROM t"),
        scalar(&primary, "SELECT sum(length(payload)) FROM t")
    );
    // Nothing of the interrupted copy is left in the data directory.
    let leftovers: Vec<_> = std::fs::read_dir(secondary.data_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("db"))
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

/// A primary-secondary pair, the secondary streaming through `link`.
fn pair(rows: u32) -> (TestNode, TestNode, FaultProxy) {
    let primary = primary_with_rows(rows);
    let link = FaultProxy::start(primary.addr());
    let secondary = TestNode::insecure();
    secondary
        .psql(&[
            &format!("REPLICATE SET PRIMARY {};", url_through(&link)),
            "REPLICATE SET SERVICE CREATE;",
            "REPLICATE SET SERVICE START;",
        ])
        .assert_ok();
    (primary, secondary, link)
}

#[test]
fn a_promotion_killed_at_any_point_is_all_or_nothing() {
    // psql takes some 20-40 ms to connect: the delays straddle the
    // promotion itself.
    for delay_ms in [0u64, 20, 30, 40, 50, 70, 100] {
        let (mut primary, mut secondary, _link) = pair(100);
        // Acknowledged by the secondary before the primary dies.
        primary
            .psql(&[
                "SET synchronous_commit = remote_apply",
                "INSERT INTO t VALUES (-1, 'acknowledged')",
            ])
            .assert_ok();
        primary.kill9();
        let url = secondary.root_url();
        let promote = std::thread::spawn(move || psql(&url, &["REPLICATE SET ROLE PRIMARY;"]));
        std::thread::sleep(Duration::from_millis(delay_ms));
        secondary.kill9();
        let promoted = promote.join().unwrap().success();
        secondary.restart();
        let after = role(&secondary);
        eprintln!(
            "killed {delay_ms} ms into the promotion (psql saw success: {promoted}): {after}"
        );
        match after.as_str() {
            "PRIMARY" => {}
            "SECONDARY" => {
                secondary.psql(&["REPLICATE SET ROLE PRIMARY;"]).assert_ok();
            }
            other => panic!("after the kill the node is {other}"),
        }
        assert!(
            !promoted || after == "PRIMARY",
            "a promotion that succeeded was undone"
        );
        secondary
            .psql(&["INSERT INTO t VALUES (-2, 'new primary')"])
            .assert_ok();
        assert_eq!(scalar(&secondary, "SELECT count(*) FROM t"), "102");
        assert_eq!(scalar(&secondary, "SELECT pg_is_in_recovery()"), "f");
    }
}

#[test]
fn a_stop_killed_on_either_side_resumes_and_stops_again() {
    for (kill_primary, delay_ms) in [
        (false, 30u64),
        (false, 60),
        (false, 120),
        (true, 30),
        (true, 60),
        (true, 120),
    ] {
        let (mut primary, mut secondary, _link) = pair(20_000);
        primary
            .psql(&["INSERT INTO t SELECT g, 'more' FROM generate_series(100001, 110000) g"])
            .assert_ok();
        let url = secondary.root_url();
        let stop = std::thread::spawn(move || psql(&url, &["REPLICATE SET SERVICE STOP;"]));
        std::thread::sleep(Duration::from_millis(delay_ms));
        if kill_primary {
            primary.kill9();
        } else {
            secondary.kill9();
        }
        let stopped = stop.join().unwrap().success();
        primary.restart();
        secondary.restart();
        let state = service_state(&secondary);
        eprintln!(
            "killed the {} {delay_ms} ms into STOP (STOP succeeded: {stopped}): service {state}",
            if kill_primary { "primary" } else { "secondary" }
        );
        if state == "STOPPED" {
            secondary
                .psql(&["REPLICATE SET SERVICE START;"])
                .assert_ok();
        } else {
            assert_eq!(state, "RUNNING", "after the kill the service is {state}");
            assert!(!stopped, "a STOP that succeeded was undone");
        }
        primary
            .psql(&["INSERT INTO t VALUES (0, 'after the restart')"])
            .assert_ok();
        wait_for_value(&secondary, "SELECT count(*) FROM t", "30001");
        let out = wait_for("a consistent STOP", Duration::from_secs(30), || {
            let out = secondary.psql(&["REPLICATE SET SERVICE STOP;"]);
            out.success().then_some(out)
        });
        assert!(out.stderr.contains("consistent at LSN"), "{}", out.stderr);
    }
}

/// A primary ships each commit before its own write is on disk, so a
/// crash of its machine can take commits that its secondary already has,
/// and it then writes others at the same LSNs. Simulated by putting back
/// a copy of the primary's data directory taken earlier (a SIGKILL leaves
/// the page cache, which a machine crash would not). The secondary must
/// notice that its last commits are not the primary's and re-copy, not go
/// on from its own LSN.
#[test]
fn a_secondary_holding_commits_its_primary_lost_recopies() {
    let (mut primary, secondary) = duet_tests::pair::pair();
    let insert = |node: &TestNode, what: &str, rows: u32| {
        node.psql(&[&format!(
            "INSERT INTO replication_test (test_data) SELECT '{what}' FROM generate_series(1, {rows})"
        )])
        .assert_ok();
    };
    let count = "SELECT count(*) FROM replication_test";
    insert(&primary, "kept", 100);
    wait_for_value(&secondary, count, "101");
    // The disk the crash will leave behind.
    primary.kill9();
    let disk = primary.dir().join("disk-at-crash");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(primary.data_dir())
        .arg(&disk)
        .status()
        .unwrap();
    assert!(copied.success());
    primary.restart();
    insert(&primary, "lost", 100);
    wait_for_value(&secondary, count, "201");
    // Paused, so that it reconnects only once the primary wrote again.
    secondary.psql(&["REPLICATE SET SERVICE STOP;"]).assert_ok();

    primary.kill9();
    std::fs::remove_dir_all(primary.data_dir()).unwrap();
    std::fs::rename(&disk, primary.data_dir()).unwrap();
    primary.restart();
    assert_eq!(scalar(&primary, count), "101");
    // Other commits at the lost ones' LSNs and past them.
    insert(&primary, "other", 300);
    secondary
        .psql(&["REPLICATE SET SERVICE START;"])
        .assert_ok();
    wait_for_value(&secondary, count, "401");
    assert_eq!(
        query(
            &secondary,
            "SELECT test_data, count(*) FROM replication_test GROUP BY 1 ORDER BY 1"
        ),
        query(
            &primary,
            "SELECT test_data, count(*) FROM replication_test GROUP BY 1 ORDER BY 1"
        )
    );
    assert_eq!(
        scalar(
            &secondary,
            "SELECT count(*) FROM replication_test WHERE test_data = 'lost'"
        ),
        "0"
    );
    assert!(
        secondary.logs().contains("differ from this node's"),
        "{}",
        duet_tests::tail(&secondary.logs(), 3000)
    );
    insert(&primary, "after", 1);
    wait_for_value(&secondary, count, "402");
}
