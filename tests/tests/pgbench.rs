//! pgbench 15, unmodified, against a real duet process: `pgbench -i` (its
//! DDL, COPY ... FROM STDIN WITH (FREEZE ON), VACUUM, ALTER TABLE ADD
//! PRIMARY KEY), then each built-in script (tpcb-like, simple-update `-N`,
//! select-only `-S`) in each query mode for a few seconds with 8 clients.
//! Every run must finish with zero failed transactions, and afterwards the
//! balances must add up: every committed transfer is in all four tables.
//!
//! Runs against PostgreSQL too with `DUET_EXTERNAL_URL` (see
//! `tests/sql/run-against-postgres.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use duet_tests::{describe, TestServer};

/// Scale of the test database (the benchmark uses 10; see bench/pgbench.sh).
const SCALE: &str = "2";
const SECONDS: &str = "2";

/// PostgreSQL 15's pgbench (`DUET_PGBENCH` overrides).
fn pgbench_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DUET_PGBENCH") {
        return p.into();
    }
    let debian = Path::new("/usr/lib/postgresql/15/bin/pgbench");
    if debian.exists() {
        debian.into()
    } else {
        "pgbench".into()
    }
}

fn pgbench(url: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(pgbench_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("pgbench runs (apt-get install postgresql-15)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

/// The number after `label` in pgbench's report.
fn reported(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no \"{label}\" in pgbench's output:\n{text}"))
}

async fn sums(server: &TestServer) -> [i64; 4] {
    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts)::int8, \
                    (SELECT sum(tbalance) FROM pgbench_tellers)::int8, \
                    (SELECT sum(bbalance) FROM pgbench_branches)::int8, \
                    (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::int8",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
    [row.get(0), row.get(1), row.get(2), row.get(3)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_init_and_every_script_in_every_mode() {
    let server = TestServer::start("pgbench").await;
    let url = server.url().to_string();
    let init = pgbench(&url, &["-i", "-s", SCALE]);
    assert!(init.contains("done in"), "{init}");

    let client = server.connect().await;
    let accounts: i64 = client
        .query_one("SELECT count(*) FROM pgbench_accounts", &[])
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)))
        .get(0);
    assert_eq!(accounts, 200_000);

    // tpcb-like first: afterwards every balance total equals the history.
    for (script, flag) in [
        ("tpcb-like", None),
        ("simple-update", Some("-N")),
        ("select-only", Some("-S")),
    ] {
        for mode in ["simple", "extended", "prepared"] {
            let mut args = vec!["-n", "-c", "8", "-j", "2", "-T", SECONDS, "-M", mode];
            args.extend(flag);
            let out = pgbench(&url, &args);
            let done = reported(&out, "number of transactions actually processed:");
            let failed = reported(&out, "number of failed transactions:");
            assert!(done > 0, "{script} {mode}: no transactions\n{out}");
            assert_eq!(failed, 0, "{script} {mode}: failed transactions\n{out}");
            eprintln!("{script} -M {mode}: {done} transactions, 0 failed");
        }
        let [accounts, tellers, branches, history] = sums(&server).await;
        match script {
            // Each transfer touches all four tables.
            "tpcb-like" => {
                assert_eq!(
                    [accounts, tellers, branches],
                    [history; 3],
                    "tpcb-like totals"
                )
            }
            // simple-update skips tellers and branches.
            _ => assert_eq!(accounts, history, "{script}: accounts vs history"),
        }
    }
}
