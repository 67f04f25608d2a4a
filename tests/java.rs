//! Java client programs under `clients/java/`, compiled with javac and run
//! against Debian's pgjdbc jar (libpostgresql-jdbc-java).

use std::path::Path;
use std::process::Command;

use crate::tests_dir;

/// Where Debian's libpostgresql-jdbc-java puts the driver.
pub const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// Runs a command to success and returns what it printed (stdout, stderr).
pub fn run(cmd: &mut Command, what: &str) -> String {
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

/// Compiles `clients/java/<class>.java` into `out_dir`.
pub fn compile(class: &str, out_dir: &Path) {
    assert!(
        Path::new(JDBC_JAR).exists(),
        "{JDBC_JAR} is missing (apt-get install libpostgresql-jdbc-java)"
    );
    let source = tests_dir().join(format!("clients/java/{class}.java"));
    run(
        Command::new("javac").arg("-d").arg(out_dir).arg(&source),
        &format!("javac {class}.java"),
    );
}

/// Runs a compiled class with pgjdbc on the class path.
pub fn run_class(classes: &Path, class: &str, args: &[&str]) -> String {
    let classpath = format!("{}:{JDBC_JAR}", classes.display());
    run(
        Command::new("java")
            .arg("-cp")
            .arg(&classpath)
            .arg(class)
            .args(args),
        &format!("java {class}"),
    )
}
