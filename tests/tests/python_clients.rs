//! Python drivers against a real duet node: psycopg2 (Debian's
//! python3-psycopg2) and psycopg 3 (from PyPI) run the scripts in
//! `clients/python/`, which check parameters, type adaptation, COPY,
//! transactions, server-side cursors and errors (psycopg 3 also binary
//! results and pipeline mode).
//!
//! The interpreter is `DUET_PYTHON` (`.ci/run` sets it to a virtualenv with
//! both drivers), else `python3`. With `DUET_EXTERNAL_URL` the scripts run
//! against that server instead (how they were checked against PostgreSQL).

use std::process::Command;

use duet_tests::{tests_dir, TestServer};

fn python() -> String {
    std::env::var("DUET_PYTHON").unwrap_or_else(|_| "python3".into())
}

async fn run_script(script: &str, driver: &str) {
    let server = TestServer::start(&format!("python_{}", script.replace(['.', '-'], "_"))).await;
    let path = tests_dir().join("clients/python").join(script);
    let out = Command::new(python())
        .arg(&path)
        .arg(server.url())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{script} failed (needs {driver} importable by {}):\n{text}",
        python()
    );
    assert!(text.contains("checks passed"), "{text}");
}

#[tokio::test]
async fn psycopg2() {
    run_script(
        "check_psycopg2.py",
        "psycopg2: apt-get install python3-psycopg2",
    )
    .await;
}

#[tokio::test]
async fn psycopg3() {
    run_script(
        "check_psycopg3.py",
        "psycopg 3: pip install 'psycopg[binary]'",
    )
    .await;
}
