//! pgjdbc, the Debian package (libpostgresql-jdbc-java), against a secure
//! duet node: `clients/java/DuetJdbcTest.java` is compiled with javac and
//! run with a `sslmode=verify-full` URL and a password (SCRAM over TLS).
//! The program checks prepared statements past prepareThreshold, batches,
//! transactions and savepoints, generated keys, type round trips and
//! DatabaseMetaData; see its comments.

use std::path::{Path, PathBuf};
use std::process::Command;

use duet_tests::{tests_dir, TestNode};

const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: {e} (apt-get install default-jdk-headless libpostgresql-jdbc-java)")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn compile(out_dir: &Path) {
    let source: PathBuf = tests_dir().join("clients/java/DuetJdbcTest.java");
    run(
        Command::new("javac").arg("-d").arg(out_dir).arg(&source),
        "javac DuetJdbcTest.java",
    );
}

#[test]
fn pgjdbc_over_verify_full_tls() {
    if duet_tests::skip_if_external("pgjdbc_over_verify_full_tls") {
        return;
    }
    assert!(
        Path::new(JDBC_JAR).exists(),
        "{JDBC_JAR} is missing (apt-get install libpostgresql-jdbc-java)"
    );
    let classes = tempfile::tempdir().expect("tempdir");
    compile(classes.path());

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
    let classpath = format!("{}:{JDBC_JAR}", classes.path().display());
    let out = run(
        Command::new("java")
            .arg("-cp")
            .arg(&classpath)
            .arg("DuetJdbcTest")
            .arg(&url),
        "java DuetJdbcTest",
    );
    assert!(out.contains("all checks passed"), "{out}");
    eprintln!(
        "pgjdbc: {} checks passed",
        out.lines().filter(|l| l.starts_with("ok:")).count()
    );
}
