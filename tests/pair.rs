//! A primary-secondary pair of secure nodes set up with the KWDB
//! statements, and small query helpers for tests that use one.

use std::path::Path;
use std::time::Duration;

use crate::{psql_rows, wait_for, TestNode};

/// How long a secondary may take to catch up in tests.
pub const CATCH_UP: Duration = Duration::from_secs(30);

/// The primary URL as the KWDB reference writes it: bare, verify-ca,
/// root's client certificate.
pub fn kwdb_url(primary: &TestNode, certs: &Path) -> String {
    format!(
        "postgresql://root@localhost:{}/defaultdb?sslmode=verify-ca&sslcert={c}/client.root.crt&sslkey={c}/client.root.key&sslrootcert={c}/ca.crt",
        primary.port(),
        c = certs.display()
    )
}

/// Rows of `sql` run as root on `node`.
pub fn query(node: &TestNode, sql: &str) -> Vec<Vec<String>> {
    psql_rows(&node.root_url(), None, sql)
}

/// The first column of the first row of `sql` on `node` ("" if none).
pub fn scalar(node: &TestNode, sql: &str) -> String {
    query(node, sql)
        .first()
        .and_then(|r| r.first().cloned())
        .unwrap_or_default()
}

/// Waits until `sql` on `node` returns `expected`.
#[track_caller]
pub fn wait_for_value(node: &TestNode, sql: &str, expected: &str) {
    wait_for(&format!("{sql} = {expected}"), CATCH_UP, || {
        (scalar(node, sql) == expected).then_some(())
    });
}

/// Primary n1 with the seed table, secondary n2 streaming from it.
pub fn pair() -> (TestNode, TestNode) {
    pair_with(&[])
}

/// Like [`pair`], the primary with extra `DUET_*` settings.
pub fn pair_with(primary_env: &[(&str, &str)]) -> (TestNode, TestNode) {
    let primary = TestNode::secure_with_env(primary_env);
    let secondary = TestNode::secure_sharing_certs(&primary);
    primary
        .psql(&[
            "CREATE TABLE replication_test (id serial primary key, test_data text, created_at timestamptz default now());",
            "INSERT INTO replication_test (test_data) VALUES ('hello replication');",
            "REPLICATE SET ROLE PRIMARY;",
        ])
        .assert_ok();
    let url = kwdb_url(&primary, &secondary.certs_dir());
    let set_primary = format!("REPLICATE SET PRIMARY {url};");
    let out = secondary.psql(&[
        &set_primary,
        "REPLICATE SET SERVICE CREATE;",
        "REPLICATE SET SERVICE START;",
    ]);
    out.assert_ok();
    assert!(out.stderr.contains("initial copy done"), "{}", out.stderr);
    (primary, secondary)
}
