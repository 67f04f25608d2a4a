//! Primary-secondary replication between real duet processes in secure
//! mode (TLS, certificates made by `duet cert`), set up with the KWDB
//! statements exactly as an operator types them in psql.

use std::time::Instant;

use duet_tests::pair::{kwdb_url, pair, pair_with, query, scalar, wait_for_value, CATCH_UP};
use duet_tests::{psql_rows, wait_for, TestNode};

#[test]
fn kwdb_statements_set_up_a_pair_that_serves_reads_and_refuses_writes() {
    let (primary, secondary) = pair();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "1");
    assert_eq!(
        query(&secondary, "SELECT id, test_data FROM replication_test"),
        vec![vec!["1".to_string(), "hello replication".to_string()]]
    );

    // Hot standby: reads yes, writes and DDL 25006.
    assert_eq!(scalar(&secondary, "SELECT pg_is_in_recovery()"), "t");
    assert_eq!(scalar(&secondary, "SHOW transaction_read_only"), "on");
    assert_eq!(scalar(&primary, "SELECT pg_is_in_recovery()"), "f");
    for write in [
        "INSERT INTO replication_test (test_data) VALUES ('nope')",
        "UPDATE replication_test SET test_data = 'x'",
        "CREATE TABLE t2 (a int)",
    ] {
        secondary
            .psql(&["\\set VERBOSITY verbose", write])
            .assert_err("ERROR:  25006: cannot execute");
    }

    // New commits, DDL and users on the primary reach the secondary.
    primary
        .psql(&[
            "INSERT INTO replication_test (test_data) SELECT 'row ' || g FROM generate_series(2, 200) g",
            "CREATE TABLE other (k int primary key, v text)",
            "INSERT INTO other VALUES (1, 'one')",
            "CREATE USER replicator REPLICATION LOGIN ENCRYPTED PASSWORD 'password'",
        ])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "200");
    wait_for_value(
        &primary,
        "SELECT state, replay_lag IS NOT NULL, sync_state FROM pg_stat_replication",
        "streaming",
    );
    assert_eq!(
        query(
            &primary,
            "SELECT replay_lag IS NOT NULL, sync_state FROM pg_stat_replication"
        ),
        vec![vec!["t".to_string(), "async".to_string()]]
    );
    assert_eq!(
        scalar(&secondary, "SELECT status FROM pg_stat_wal_receiver"),
        "streaming"
    );
    wait_for_value(&secondary, "SELECT v FROM other WHERE k = 1", "one");
    wait_for_value(
        &secondary,
        "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'",
        "t",
    );
    assert_eq!(
        scalar(&secondary, "SELECT max(id) FROM replication_test"),
        scalar(&primary, "SELECT max(id) FROM replication_test")
    );

    // Load balancers ask the HTTP endpoint which node is which.
    assert_eq!(primary.http_get("/health").0, 200);
    assert_eq!(primary.http_get("/primary").0, 200);
    assert_eq!(primary.http_get("/replica").0, 503);
    assert_eq!(secondary.http_get("/primary").0, 503);
    let (status, body) = secondary.http_get("/replica");
    assert_eq!(
        (status, body.trim()),
        (200, "role: SECONDARY, stream: streaming")
    );
    let metrics = primary.http_get("/metrics").1;
    for line in [
        "duet_role 1",
        "duet_replication_secondaries 1",
        "duet_commits_total",
        "duet_commit_seconds_count",
    ] {
        assert!(
            metrics.contains(line),
            "no {line:?} in /metrics:\n{metrics}"
        );
    }
    assert!(secondary.http_get("/metrics").1.contains("duet_role 2"));
    // Lag and the slot's WAL (the janitor measures it about once a second)
    // on the primary; the stream's age and lag on the secondary.
    wait_for("replication metrics", CATCH_UP, || {
        let metrics = primary.http_get("/metrics").1;
        (metrics.contains("duet_replication_replay_lag_seconds{application_name=")
            && metrics.contains("duet_slot_wal_retained_bytes{slot="))
        .then_some(())
    });
    let metrics = secondary.http_get("/metrics").1;
    for line in [
        "duet_replication_last_message_age_seconds",
        "duet_replication_lag_lsn",
    ] {
        assert!(
            metrics.contains(line),
            "no {line:?} in /metrics:\n{metrics}"
        );
    }

    // libpq picks the primary among both hosts for read-write sessions.
    let multi = format!(
        "postgresql://root@127.0.0.1:{},127.0.0.1:{}/defaultdb?target_session_attrs=read-write&sslmode=verify-full&sslrootcert={c}/ca.crt&sslcert={c}/client.root.crt&sslkey={c}/client.root.key",
        secondary.port(),
        primary.port(),
        c = primary.certs_dir().display()
    );
    let rows = psql_rows(&multi, None, "SELECT pg_is_in_recovery()");
    assert_eq!(rows, vec![vec!["f".to_string()]]);
}

#[test]
fn stop_returns_a_consistent_lsn_and_start_resumes() {
    let (primary, secondary) = pair();
    primary
        .psql(&["INSERT INTO replication_test (test_data) SELECT 'r' FROM generate_series(1, 50)"])
        .assert_ok();
    let out = secondary.psql(&["REPLICATE SET SERVICE STOP;"]);
    out.assert_ok();
    assert!(
        out.stderr
            .contains("replication stopped, consistent at LSN"),
        "{}",
        out.stderr
    );
    // Everything committed before STOP is there.
    assert_eq!(
        scalar(&secondary, "SELECT count(*) FROM replication_test"),
        "51"
    );
    let status = query(&secondary, "SHOW REPLICATION STATUS");
    assert_eq!(status[0][3], "STOPPED", "{status:?}");

    // Paused: new commits wait on the primary until START (no stream is
    // attached to carry them).
    wait_for_value(&primary, "SELECT count(*) FROM pg_stat_replication", "0");
    primary
        .psql(&["INSERT INTO replication_test (test_data) VALUES ('after stop')"])
        .assert_ok();
    assert_eq!(
        scalar(&secondary, "SELECT count(*) FROM replication_test"),
        "51"
    );
    assert_eq!(
        scalar(&primary, "SELECT count(*) FROM pg_stat_replication"),
        "0"
    );
    // STOP twice is a state error naming the state.
    secondary
        .psql(&["\\set VERBOSITY verbose", "REPLICATE SET SERVICE STOP;"])
        .assert_err("59002");
    secondary
        .psql(&["REPLICATE SET SERVICE START;"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "52");

    // Hundreds of commits made while stopped: catching up on them, the
    // secondary writes bursts of many in the background, entries sorted by
    // key, and still ends equal to the primary (STOP compares checksums).
    secondary.psql(&["REPLICATE SET SERVICE STOP;"]).assert_ok();
    let commits: Vec<String> = (0..400)
        .map(|i| match i % 4 {
            0 => format!("INSERT INTO replication_test (test_data) VALUES ('n{i}')"),
            _ => format!(
                "UPDATE replication_test SET test_data = 'u{i}' WHERE id = {}",
                (i * 37) % 52 + 1
            ),
        })
        .collect();
    let commits: Vec<&str> = commits.iter().map(String::as_str).collect();
    primary.psql(&commits).assert_ok();
    secondary
        .psql(&["REPLICATE SET SERVICE START;"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "152");
    let out = secondary.psql(&["REPLICATE SET SERVICE STOP;"]);
    out.assert_ok();
    assert!(out.stderr.contains("consistent at LSN"), "{}", out.stderr);
    let content =
        "SELECT string_agg(id || ':' || test_data, ',' ORDER BY id) FROM replication_test";
    assert_eq!(scalar(&secondary, content), scalar(&primary, content));
}

#[test]
fn each_node_restarting_mid_stream_resumes_by_itself() {
    let (mut primary, mut secondary) = pair();
    primary
        .psql(&["INSERT INTO replication_test (test_data) SELECT 'a' FROM generate_series(1, 20)"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "21");

    secondary.restart();
    assert_eq!(scalar(&secondary, "SELECT pg_is_in_recovery()"), "t");
    primary
        .psql(&["INSERT INTO replication_test (test_data) SELECT 'b' FROM generate_series(1, 20)"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "41");

    primary.kill9();
    primary.restart();
    primary
        .psql(&["INSERT INTO replication_test (test_data) SELECT 'c' FROM generate_series(1, 20)"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "61");

    // The secondary is down while the primary commits and is killed: the
    // primary's batch log (not synced on commit) still has those commits
    // when it is back, and the secondary catches up from it, no re-copy.
    let active = std::fs::read_to_string(secondary.data_dir().join("ACTIVE_DB")).ok();
    secondary.kill9();
    for i in 0..20 {
        primary
            .psql(&[&format!(
                "INSERT INTO replication_test (test_data) VALUES ('d{i}')"
            )])
            .assert_ok();
    }
    primary.kill9();
    primary.restart();
    secondary.restart();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "81");
    assert_eq!(
        std::fs::read_to_string(secondary.data_dir().join("ACTIVE_DB")).ok(),
        active
    );
}

#[test]
fn promotion_after_the_primary_dies_and_the_old_primary_rejoins() {
    let (mut primary, secondary) = pair();
    primary
        .psql(&[
            "INSERT INTO replication_test (test_data) SELECT 'before' FROM generate_series(1, 100)",
        ])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "101");
    primary.kill9();

    // Promotion works with the primary gone.
    let started = Instant::now();
    secondary.psql(&["REPLICATE SET ROLE PRIMARY;"]).assert_ok();
    let promote = started.elapsed();
    secondary
        .psql(&["INSERT INTO replication_test (test_data) VALUES ('new primary')"])
        .assert_ok();
    assert_eq!(scalar(&secondary, "SELECT pg_is_in_recovery()"), "f");
    eprintln!("promotion took {promote:?} (psql included)");
    // The promoted node now answers the load balancer's primary check.
    assert_eq!(secondary.http_get("/primary").0, 200);
    assert_eq!(secondary.http_get("/replica").0, 503);
    // Serial values continue past everything replicated.
    assert_eq!(
        scalar(&secondary, "SELECT max(id) > 101 FROM replication_test"),
        "t"
    );

    // The old primary comes back (still PRIMARY in its own eyes) and takes
    // a write the new primary never sees: its history diverges.
    primary.restart();
    primary
        .psql(&["INSERT INTO replication_test (test_data) VALUES ('lost on the old primary')"])
        .assert_ok();
    // Re-attached as a secondary of the new primary, it re-copies by
    // itself and converges.
    let url = kwdb_url(&secondary, &primary.certs_dir());
    let set_primary = format!("REPLICATE SET PRIMARY {url};");
    primary
        .psql(&[
            "REPLICATE SET ROLE SECONDARY;",
            &set_primary,
            "REPLICATE SET SERVICE CREATE;",
            "REPLICATE SET SERVICE START;",
        ])
        .assert_ok();
    secondary
        .psql(&["INSERT INTO replication_test (test_data) VALUES ('after rejoin')"])
        .assert_ok();
    wait_for_value(
        &primary,
        "SELECT count(*) FROM replication_test WHERE test_data = 'after rejoin'",
        "1",
    );
    assert_eq!(
        scalar(
            &primary,
            "SELECT count(*) FROM replication_test WHERE test_data = 'lost on the old primary'"
        ),
        "0"
    );
    // The status view says what the re-copy threw away, and the node
    // follows the new primary's epoch.
    let status = query(&primary, "SHOW REPLICATION STATUS");
    assert!(
        status[0][15].contains("were discarded by the re-copy"),
        "{status:?}"
    );
    assert_eq!(status[0][2], "1", "{status:?}");
    assert_eq!(
        query(
            &primary,
            "SELECT id, test_data FROM replication_test ORDER BY id"
        ),
        query(
            &secondary,
            "SELECT id, test_data FROM replication_test ORDER BY id"
        )
    );
    primary
        .psql(&[
            "\\set VERBOSITY verbose",
            "INSERT INTO replication_test (test_data) VALUES ('x')",
        ])
        .assert_err("25006");
}

#[test]
fn replication_needs_admin_and_a_trusted_certificate() {
    let primary = TestNode::secure();
    primary
        .psql(&[
            "REPLICATE SET ROLE PRIMARY;",
            "CREATE USER app LOGIN PASSWORD 'app-password'",
        ])
        .assert_ok();
    // A non-admin may not run REPLICATE statements.
    let app = duet_tests::psql_with_password(
        &primary.url("app"),
        "app-password",
        &["\\set VERBOSITY verbose", "REPLICATE SET ROLE DEFAULT;"],
    );
    app.assert_err("42501");
    // On the PRIMARY, SET PRIMARY is a role error.
    primary
        .psql(&[
            "\\set VERBOSITY verbose",
            "REPLICATE SET PRIMARY postgresql://root@localhost:1/defaultdb;",
        ])
        .assert_err("59001");

    // A node with its own CA cannot verify the primary's certificate.
    let stranger = TestNode::secure();
    let url = kwdb_url(&primary, &stranger.certs_dir());
    let out = stranger.psql(&[
        "\\set VERBOSITY verbose",
        &format!("REPLICATE SET PRIMARY {url};"),
    ]);
    out.assert_err("59000");
    assert!(out.stderr.contains("tls"), "{}", out.stderr);
    assert_eq!(scalar(&stranger, "SELECT pg_is_in_recovery()"), "f");

    // A user without REPLICATION (and not admin) cannot open a stream.
    let trusted = TestNode::secure_sharing_certs(&primary);
    let url = format!(
        "postgresql://app:app-password@localhost:{}/defaultdb?sslmode=verify-full&sslrootcert={}/ca.crt",
        primary.port(),
        trusted.certs_dir().display()
    );
    let out = trusted.psql(&[
        "\\set VERBOSITY verbose",
        &format!("REPLICATE SET PRIMARY {url};"),
    ]);
    out.assert_err("59000");
    assert!(
        out.stderr.contains("permission denied to start WAL sender"),
        "{}",
        out.stderr
    );
    // The password never shows.
    assert!(!out.stderr.contains("app-password"), "{}", out.stderr);
}

/// Runs writers against `node` until `stop` is set; returns the ids whose
/// INSERT was acknowledged (psql exited 0 after COMMIT returned).
fn write_load(
    url: String,
    writers: u32,
    mode: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<u32>>> {
    (0..writers)
        .map(|w| {
            let url = url.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let id = w * 1_000_000 + i;
                    let set = format!("SET synchronous_commit = {mode}");
                    let insert = format!("INSERT INTO acked VALUES ({id}, {w})");
                    if duet_tests::psql(&url, &[&set, &insert]).success() {
                        acked.push(id);
                    }
                }
                acked
            })
        })
        .collect()
}

#[test]
fn synchronous_commits_survive_a_primary_sigkill_and_promotion() {
    let (mut primary, secondary) = pair();
    primary
        .psql(&["CREATE TABLE acked (id int primary key, writer int)"])
        .assert_ok();
    wait_for_value(
        &secondary,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'acked'",
        "1",
    );

    // remote_apply: once COMMIT returns, the row is visible on the
    // secondary, with no waiting.
    for i in 0..5 {
        primary
            .psql(&[
                "SET synchronous_commit = remote_apply",
                &format!("INSERT INTO acked VALUES ({}, 99)", 9_000_000 + i),
            ])
            .assert_ok();
        assert_eq!(
            scalar(
                &secondary,
                &format!("SELECT count(*) FROM acked WHERE id = {}", 9_000_000 + i)
            ),
            "1"
        );
    }

    // Four writers in `on` mode; the primary dies under them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = write_load(primary.root_url(), 4, "on", stop.clone());
    wait_for("100 commits under load", CATCH_UP, || {
        (scalar(&secondary, "SELECT count(*) FROM acked")
            .parse::<u32>()
            .unwrap_or(0)
            >= 105)
            .then_some(())
    });
    primary.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked: Vec<u32> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer thread"))
        .collect();
    assert!(
        acked.len() >= 50,
        "only {} commits acknowledged",
        acked.len()
    );

    secondary.psql(&["REPLICATE SET ROLE PRIMARY;"]).assert_ok();
    let present: std::collections::HashSet<u32> = query(&secondary, "SELECT id FROM acked")
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect();
    let lost: Vec<&u32> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged commits missing on the new primary: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    secondary
        .psql(&["INSERT INTO acked VALUES (8000000, 1)"])
        .assert_ok();
}

#[test]
fn synchronous_commit_without_a_secondary_times_out_or_falls_back() {
    let primary = TestNode::secure_with_env(&[
        ("DUET_REPLICATION_SYNCHRONOUS_COMMIT", "on"),
        ("DUET_REPLICATION_SYNC_TIMEOUT_MS", "200"),
    ]);
    primary
        .psql(&["CREATE TABLE t (a int)", "REPLICATE SET ROLE PRIMARY;"])
        .assert_ok();
    assert_eq!(scalar(&primary, "SHOW synchronous_commit"), "on");
    // No secondary: the wait times out, the COMMIT fails with 57014 and
    // says the row is committed here.
    let out = primary.psql(&["\\set VERBOSITY verbose", "INSERT INTO t VALUES (1)"]);
    out.assert_err("57014");
    assert!(out.stderr.contains("committed locally"), "{}", out.stderr);
    assert_eq!(scalar(&primary, "SELECT count(*) FROM t"), "1");
    // Per session, async commits do not wait.
    primary
        .psql(&["SET synchronous_commit = off", "INSERT INTO t VALUES (2)"])
        .assert_ok();

    let lenient = TestNode::secure_with_env(&[
        ("DUET_REPLICATION_SYNCHRONOUS_COMMIT", "remote_apply"),
        ("DUET_REPLICATION_SYNC_TIMEOUT_MS", "200"),
        ("DUET_REPLICATION_SYNC_FALLBACK", "async"),
    ]);
    lenient
        .psql(&["CREATE TABLE t (a int)", "REPLICATE SET ROLE PRIMARY;"])
        .assert_ok();
    let out = lenient.psql(&["INSERT INTO t VALUES (1)"]);
    out.assert_ok();
    assert!(
        out.stderr.contains("WARNING") && out.stderr.contains("asynchronously"),
        "{}",
        out.stderr
    );
}

/// Found by the consistency harness: a commit whose wait for the secondary
/// was still running when the node was demoted used to be confirmed.
#[test]
fn a_commit_waiting_for_its_secondary_is_not_confirmed_by_a_demotion() {
    let primary = TestNode::secure_with_env(&[
        ("DUET_REPLICATION_SYNCHRONOUS_COMMIT", "on"),
        ("DUET_REPLICATION_SYNC_TIMEOUT_MS", "20000"),
    ]);
    primary
        .psql(&["CREATE TABLE t (a int)", "REPLICATE SET ROLE PRIMARY;"])
        .assert_ok();
    let url = primary.root_url();
    let waiting = std::thread::spawn(move || {
        duet_tests::psql(
            &url,
            &["\\set VERBOSITY verbose", "INSERT INTO t VALUES (1)"],
        )
    });
    wait_for("the commit to wait", CATCH_UP, || {
        (scalar(&primary, "SELECT count(*) FROM t") == "1").then_some(())
    });
    primary.psql(&["REPLICATE SET ROLE SECONDARY;"]).assert_ok();
    let out = waiting.join().expect("psql thread");
    out.assert_err("57014");
    assert!(
        out.stderr.contains("this node was demoted"),
        "{}",
        out.stderr
    );
}

#[test]
fn three_nodes_fail_over_and_the_other_secondary_follows_the_new_primary() {
    let (mut primary, s1) = pair();
    let s2 = TestNode::secure_sharing_certs(&primary);
    let url = kwdb_url(&primary, &s2.certs_dir());
    s2.psql(&[
        &format!("REPLICATE SET PRIMARY {url};"),
        "REPLICATE SET SERVICE CREATE;",
        "REPLICATE SET SERVICE START;",
    ])
    .assert_ok();
    primary
        .psql(&["INSERT INTO replication_test (test_data) SELECT 'x' FROM generate_series(1, 30)"])
        .assert_ok();
    wait_for_value(&s1, "SELECT count(*) FROM replication_test", "31");
    wait_for_value(&s2, "SELECT count(*) FROM replication_test", "31");
    // The primary sees both.
    assert_eq!(
        scalar(&primary, "SELECT count(*) FROM pg_stat_replication"),
        "2"
    );

    primary.kill9();
    s1.psql(&["REPLICATE SET ROLE PRIMARY;"]).assert_ok();
    let url = kwdb_url(&s1, &s2.certs_dir());
    let out = s2.psql(&[&format!("REPLICATE SET PRIMARY {url};")]);
    out.assert_ok();
    s1.psql(&["INSERT INTO replication_test (test_data) VALUES ('epoch 1')"])
        .assert_ok();
    wait_for_value(
        &s2,
        "SELECT count(*) FROM replication_test WHERE test_data = 'epoch 1'",
        "1",
    );
    assert_eq!(
        query(
            &s2,
            "SELECT id, test_data FROM replication_test ORDER BY id"
        ),
        query(
            &s1,
            "SELECT id, test_data FROM replication_test ORDER BY id"
        )
    );
    let status = query(&s2, "SHOW REPLICATION STATUS");
    assert_eq!(status[0][1], "SECONDARY", "{status:?}");
    assert_eq!(
        status[0][2], "1",
        "epoch follows the new primary: {status:?}"
    );
}

#[test]
fn planned_switchover_loses_nothing_and_needs_no_copy() {
    let (old_primary, old_secondary) = pair();
    old_primary
        .psql(&[
            "INSERT INTO replication_test (test_data) SELECT 'before' FROM generate_series(1, 40)",
        ])
        .assert_ok();
    // SPEC 5's sequence: STOP on the secondary, demote the primary,
    // promote the secondary, re-attach the old primary.
    old_secondary
        .psql(&["REPLICATE SET SERVICE STOP;"])
        .assert_ok();
    // Applications still writing after the STOP: these commits are taken
    // over by the promotion below.
    old_primary
        .psql(&["INSERT INTO replication_test (test_data) VALUES ('after the stop')"])
        .assert_ok();
    old_primary
        .psql(&["REPLICATE SET ROLE SECONDARY;"])
        .assert_ok();
    old_primary
        .psql(&[
            "\\set VERBOSITY verbose",
            "INSERT INTO replication_test (test_data) VALUES ('no')",
        ])
        .assert_err("25006");
    let promoted = old_secondary.psql(&["REPLICATE SET ROLE PRIMARY;"]);
    promoted.assert_ok();
    assert!(
        promoted
            .stderr
            .contains("took over the old primary's commits after the stop point"),
        "{}",
        promoted.stderr
    );
    let url = kwdb_url(&old_secondary, &old_primary.certs_dir());
    let out = old_primary.psql(&[
        &format!("REPLICATE SET PRIMARY {url};"),
        "REPLICATE SET SERVICE CREATE;",
        "REPLICATE SET SERVICE START;",
    ]);
    out.assert_ok();
    assert!(out.stderr.contains("no copy needed"), "{}", out.stderr);
    old_secondary
        .psql(&["INSERT INTO replication_test (test_data) VALUES ('after switchover')"])
        .assert_ok();
    wait_for_value(&old_primary, "SELECT count(*) FROM replication_test", "43");
    assert_eq!(
        scalar(
            &old_secondary,
            "SELECT count(*) FROM replication_test WHERE test_data = 'after the stop'"
        ),
        "1"
    );
    assert_eq!(
        query(
            &old_primary,
            "SELECT id, test_data FROM replication_test ORDER BY id"
        ),
        query(
            &old_secondary,
            "SELECT id, test_data FROM replication_test ORDER BY id"
        )
    );
}

/// A promotion takes the old primary's last commits over only from a
/// demoted primary: a secondary that replays another primary's stream is
/// not writable either, but its data still grows, so it refuses.
#[test]
fn only_a_demoted_primary_hands_its_tail_over() {
    let (_primary, secondary) = pair();
    let walsender = format!("{}&replication=database", secondary.root_url());
    duet_tests::psql(
        &walsender,
        &["START_REPLICATION SLOT probe LSN 0 EPOCH 1:0:0 SYSTEM unknown HANDOVER true"],
    )
    .assert_err("only a demoted primary hands over");
}

#[test]
fn a_secondary_too_far_behind_loses_its_slot_and_recopies_by_itself() {
    let (primary, mut secondary) =
        pair_with(&[("DUET_REPLICATION_MAX_SLOT_WAL_KEEP_SIZE_MB", "1")]);
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "1");
    wait_for_value(
        &primary,
        "SELECT wal_status FROM pg_replication_slots",
        "reserved",
    );
    assert_eq!(
        scalar(&primary, "SELECT active FROM pg_replication_slots"),
        "t"
    );

    // While the secondary is down, the primary writes more WAL than the
    // slot may hold.
    secondary.kill9();
    for _ in 0..8 {
        primary
            .psql(&["INSERT INTO replication_test (test_data) SELECT repeat('w', 500) FROM generate_series(1, 1000)"])
            .assert_ok();
    }
    wait_for_value(
        &primary,
        "SELECT wal_status FROM pg_replication_slots",
        "lost",
    );

    // Back up, it finds its position gone, re-copies and streams again.
    secondary.restart();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "8001");
    wait_for_value(
        &primary,
        "SELECT wal_status FROM pg_replication_slots",
        "reserved",
    );
    primary
        .psql(&["INSERT INTO replication_test (test_data) VALUES ('after re-copy')"])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "8002");
}

#[test]
fn with_a_wal_archive_directory_a_long_outage_needs_no_copy() {
    let archive = tempfile::tempdir().unwrap();
    let archive_dir = archive.path().to_str().unwrap().to_string();
    let (primary, mut secondary) = pair_with(&[
        ("DUET_REPLICATION_MAX_SLOT_WAL_KEEP_SIZE_MB", "1"),
        ("DUET_REPLICATION_ARCHIVE_DIR", &archive_dir),
    ]);
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "1");
    let active = std::fs::read_to_string(secondary.data_dir().join("ACTIVE_DB")).unwrap();

    secondary.kill9();
    for _ in 0..8 {
        primary
            .psql(&["INSERT INTO replication_test (test_data) SELECT repeat('w', 500) FROM generate_series(1, 1000)"])
            .assert_ok();
    }
    // The WAL went past the slot limit into the archive directory; the
    // slot is not lost.
    wait_for("WAL files in the archive directory", CATCH_UP, || {
        (std::fs::read_dir(archive.path()).unwrap().count() >= 2).then_some(())
    });
    assert_eq!(
        scalar(&primary, "SELECT wal_status FROM pg_replication_slots"),
        "reserved"
    );

    secondary.restart();
    wait_for_value(&secondary, "SELECT count(*) FROM replication_test", "8001");
    // Caught up from the archive: the same copy of the data, no re-copy.
    assert_eq!(
        std::fs::read_to_string(secondary.data_dir().join("ACTIVE_DB")).unwrap(),
        active
    );
    assert_eq!(
        query(&secondary, "SELECT count(*), max(id) FROM replication_test"),
        query(&primary, "SELECT count(*), max(id) FROM replication_test")
    );
}

#[test]
fn a_replication_user_pairs_with_its_password_from_pgpass() {
    let primary = TestNode::secure();
    primary
        .psql(&[
            "CREATE USER replicator REPLICATION LOGIN ENCRYPTED PASSWORD 'pgpass-secret';",
            "CREATE TABLE t (k int PRIMARY KEY);",
            "INSERT INTO t VALUES (1);",
            "REPLICATE SET ROLE PRIMARY;",
        ])
        .assert_ok();
    // The password is only in the secondary's .pgpass (mode 0600, as libpq
    // wants it), not in the URL, and no client certificate is given.
    let dir = tempfile::tempdir().expect("tempdir");
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("localhost:{}:*:replicator:pgpass-secret\n", primary.port()),
    )
    .expect("write .pgpass");
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod .pgpass");
    let secondary = TestNode::secure_sharing_certs_with_env(
        &primary,
        &[("PGPASSFILE", pgpass.to_str().expect("utf-8"))],
    );
    let url = format!(
        "postgresql://replicator@localhost:{}/defaultdb?sslmode=verify-full&sslrootcert={}",
        primary.port(),
        secondary.certs_dir().join("ca.crt").display()
    );
    secondary
        .psql(&[
            &format!("REPLICATE SET PRIMARY {url};"),
            "REPLICATE SET SERVICE CREATE;",
            "REPLICATE SET SERVICE START;",
        ])
        .assert_ok();
    wait_for_value(&secondary, "SELECT count(*) FROM t", "1");
    // Nowhere is the password shown.
    let status = query(&secondary, "SHOW REPLICATION STATUS");
    assert!(!format!("{status:?}").contains("pgpass-secret"));
    assert!(!secondary.logs().contains("pgpass-secret"));
}
