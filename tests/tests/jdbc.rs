//! pgjdbc, the Debian package (libpostgresql-jdbc-java), against a secure
//! duet node: `clients/java/DuetJdbcTest.java` is compiled with javac and
//! run with a `sslmode=verify-full` URL and a password (SCRAM over TLS).
//! The program checks prepared statements past prepareThreshold, batches,
//! transactions and savepoints, generated keys, type round trips and
//! DatabaseMetaData; see its comments.

use duet_tests::java::{compile, run_class};
use duet_tests::TestNode;

#[test]
fn pgjdbc_over_verify_full_tls() {
    if duet_tests::skip_if_external("pgjdbc_over_verify_full_tls") {
        return;
    }
    let classes = tempfile::tempdir().expect("tempdir");
    compile("DuetJdbcTest", classes.path());

    let node = TestNode::secure();
    node.psql(&[
        "CREATE USER app WITH PASSWORD 'jdbc-secret' CREATEDB",
        "GRANT admin TO app",
    ])
    .assert_ok();
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/defaultdb?user=app&password=jdbc-secret&sslmode=verify-full&sslrootcert={}",
        node.port(),
        node.certs_dir().join("ca.crt").display()
    );
    let out = run_class(classes.path(), "DuetJdbcTest", &[&url]);
    assert!(out.contains("all checks passed"), "{out}");
    eprintln!(
        "pgjdbc: {} checks passed",
        out.lines().filter(|l| l.starts_with("ok:")).count()
    );
}
