//! `duet cert` end to end: runs the built binary, then checks the files with
//! the openssl CLI the way libpq will use them.

use std::path::Path;
use std::process::{Command, Output};

fn duet(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_duet"))
        .args(args)
        .arg("--certs-dir")
        .arg(dir)
        .env_remove("DUET_CERTS_DIR")
        .output()
        .expect("run duet")
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "duet failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "openssl {args:?} failed: {text}");
    text
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn ca_node_and_client_certificates_verify() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet: create-ca makes it.
    let dir = tmp.path().join("certs");

    let out = ok(duet(&dir, &["cert", "create-ca"]));
    assert!(out.contains("ca.crt") && out.contains("ca.key"), "{out}");
    ok(duet(
        &dir,
        &["cert", "create-node", "localhost", "127.0.0.1", "::1"],
    ));
    ok(duet(&dir, &["cert", "create-client", "root"]));

    for file in [
        "ca.crt",
        "ca.key",
        "node.crt",
        "node.key",
        "client.root.crt",
        "client.root.key",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }

    // Chains to the CA, for the purpose each is used for.
    let out = openssl(&dir, &["verify", "-CAfile", "ca.crt", "node.crt"]);
    assert!(out.contains("node.crt: OK"), "{out}");
    openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslserver",
            "node.crt",
        ],
    );
    let out = openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslclient",
            "client.root.crt",
        ],
    );
    assert!(out.contains("client.root.crt: OK"), "{out}");

    // What sslmode=verify-full checks: the host is a SAN of the node cert.
    openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-verify_hostname",
            "localhost",
            "node.crt",
        ],
    );
    openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-verify_ip",
            "127.0.0.1",
            "node.crt",
        ],
    );
    openssl(
        &dir,
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-verify_ip",
            "::1",
            "node.crt",
        ],
    );
    let wrong = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "ca.crt",
            "-verify_hostname",
            "example.com",
            "node.crt",
        ])
        .current_dir(&dir)
        .output()
        .expect("run openssl");
    assert!(
        !wrong.status.success(),
        "node.crt must not be valid for example.com"
    );

    // Subjects: CN = first host, CN = user.
    let subject = openssl(&dir, &["x509", "-in", "node.crt", "-noout", "-subject"]);
    assert!(subject.contains("CN = localhost"), "{subject}");
    let subject = openssl(
        &dir,
        &["x509", "-in", "client.root.crt", "-noout", "-subject"],
    );
    assert!(subject.contains("CN = root"), "{subject}");
    let ca = openssl(&dir, &["x509", "-in", "ca.crt", "-noout", "-text"]);
    assert!(ca.contains("CA:TRUE"), "{ca}");

    // Keys: PKCS#8 PEM, P-256, each matching its certificate.
    for (cert, key) in [
        ("ca.crt", "ca.key"),
        ("node.crt", "node.key"),
        ("client.root.crt", "client.root.key"),
    ] {
        let pem = std::fs::read_to_string(dir.join(key)).expect("read key");
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{key} is not PKCS#8"
        );
        let text = openssl(&dir, &["pkey", "-in", key, "-noout", "-text"]);
        assert!(
            text.contains("prime256v1") || text.contains("P-256"),
            "{key}: {text}"
        );
        let from_key = openssl(&dir, &["pkey", "-in", key, "-pubout"]);
        let from_cert = openssl(&dir, &["x509", "-in", cert, "-noout", "-pubkey"]);
        assert_eq!(from_key, from_cert, "{key} does not match {cert}");
    }

    // libpq refuses keys readable by group or others.
    #[cfg(unix)]
    for key in ["ca.key", "node.key", "client.root.key"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    #[cfg(unix)]
    assert_eq!(mode(&dir.join("node.crt")), 0o644);
}

#[test]
fn existing_files_need_overwrite() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    ok(duet(dir, &["cert", "create-ca"]));
    ok(duet(dir, &["cert", "create-client", "alice"]));
    let before = std::fs::read(dir.join("client.alice.key")).expect("read");

    for args in [
        &["cert", "create-ca"][..],
        &["cert", "create-client", "alice"][..],
    ] {
        let output = duet(dir, args);
        assert!(!output.status.success(), "{args:?} replaced existing files");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("already exists") && stderr.contains("--overwrite"),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read(dir.join("client.alice.key")).expect("read"),
        before
    );

    ok(duet(
        dir,
        &["cert", "create-client", "alice", "--overwrite"],
    ));
    assert_ne!(
        std::fs::read(dir.join("client.alice.key")).expect("read"),
        before
    );
    openssl(dir, &["verify", "-CAfile", "ca.crt", "client.alice.crt"]);
    #[cfg(unix)]
    assert_eq!(mode(&dir.join("client.alice.key")), 0o600);
}

#[test]
fn node_and_client_need_the_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let output = duet(tmp.path(), &["cert", "create-node", "localhost"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("duet cert create-ca"), "{stderr}");
    assert!(!tmp.path().join("node.key").exists());

    let output = duet(tmp.path(), &["cert", "create-node"]);
    assert!(
        !output.status.success(),
        "create-node without HOST must fail"
    );
}

#[test]
fn version() {
    let output = Command::new(env!("CARGO_BIN_EXE_duet"))
        .arg("version")
        .output()
        .expect("run duet");
    assert!(output.status.success());
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(out.trim(), format!("duet {}", env!("CARGO_PKG_VERSION")));
}
