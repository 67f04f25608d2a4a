//! SIGHUP reloads the configuration (`systemctl reload duet`): changed hba
//! rules and certificates apply to new connections, open sessions go on,
//! and a configuration that does not load leaves the running one in place.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use duet_tests::{psql_with_password, run_duet, wait_for, TestNode};

const ALICE_PASSWORD: &str = "alice-secret";

fn write_config(path: &Path, rules: &str) {
    std::fs::write(path, rules).expect("write config");
}

const ALLOW_ALL: &str = r#"
[[hba]]
type = "hostssl"
method = "cert-or-scram-sha-256"
"#;

const REJECT_ALICE: &str = r#"
[[hba]]
type = "hostssl"
user = "alice"
method = "reject"

[[hba]]
type = "hostssl"
method = "cert-or-scram-sha-256"
"#;

/// Lines the node logged about SIGHUP so far.
fn reloads(node: &TestNode) -> usize {
    node.logs().matches("SIGHUP: ").count()
}

/// Sends SIGHUP and waits until the node has logged the outcome.
fn sighup(node: &TestNode) -> String {
    let before = reloads(node);
    let pid = node.pid().expect("running");
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -HUP {pid}");
    wait_for("the reload to be logged", Duration::from_secs(20), || {
        (reloads(node) > before).then_some(())
    });
    let logs = node.logs();
    let last = logs.lines().rfind(|l| l.contains("SIGHUP: "));
    last.unwrap_or_default().to_string()
}

/// The subject alternative names of the certificate the node presents.
fn presented_names(node: &TestNode) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -starttls postgres -connect 127.0.0.1:{} </dev/null 2>/dev/null \
             | openssl x509 -noout -ext subjectAltName",
            node.port()
        ))
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sighup_applies_new_hba_rules_and_certificates_without_dropping_sessions() {
    if duet_tests::skip_if_external("reload") {
        return;
    }
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let conf = conf_dir.path().join("duet.toml");
    write_config(&conf, ALLOW_ALL);
    let node = TestNode::secure_with_env(&[("DUET_CONFIG", conf.to_str().expect("utf-8"))]);
    node.psql(&[&format!(
        "CREATE USER alice LOGIN PASSWORD '{ALICE_PASSWORD}'"
    )])
    .assert_ok();
    let alice = node.url("alice");
    psql_with_password(&alice, ALICE_PASSWORD, &["SELECT 1"]).assert_ok();

    // alice opens a session; the rules change under it and the node
    // reloads (from inside her session, so it is open throughout); her
    // session goes on.
    write_config(&conf, REJECT_ALICE);
    let log = node.dir().join("logs").join("duet.1.stderr");
    let pid = node.pid().expect("running");
    let reload_from_session = format!(
        "\\! kill -HUP {pid}; for i in $(seq 400); do grep -q 'SIGHUP: ' {} && break; sleep 0.05; done",
        log.display()
    );
    let session = psql_with_password(
        &alice,
        ALICE_PASSWORD,
        &[
            "SELECT 'before reload'",
            &reload_from_session,
            "SELECT 'after reload: ' || current_user",
        ],
    );
    session.assert_ok();
    assert!(
        session.stdout.contains("after reload: alice"),
        "{}",
        session.stdout
    );
    assert!(node.logs().contains("SIGHUP: reloaded"), "{}", node.logs());
    // New sessions get the new rule; others are unaffected.
    psql_with_password(&alice, ALICE_PASSWORD, &["SELECT 1"]).assert_err("rejects connection");
    node.psql(&["SELECT 1"]).assert_ok();

    // A rule that does not load is reported, and the running rules stay.
    write_config(
        &conf,
        "[[hba]]\ntype = \"hostssl\"\nmethod = \"sometimes\"\n",
    );
    let outcome = sighup(&node);
    assert!(outcome.contains("not reloaded"), "{outcome}");
    psql_with_password(&alice, ALICE_PASSWORD, &["SELECT 1"]).assert_err("rejects connection");
    node.psql(&["SELECT 1"]).assert_ok();

    // A new node certificate (same CA, one more name) is presented to new
    // connections after the reload.
    write_config(&conf, ALLOW_ALL);
    assert!(!presented_names(&node).contains("renamed.example"));
    let certs = node.certs_dir();
    run_duet(&[
        "cert",
        "create-node",
        "localhost",
        "127.0.0.1",
        "renamed.example",
        "--overwrite",
        "--certs-dir",
        certs.to_str().expect("utf-8"),
    ]);
    let outcome = sighup(&node);
    assert!(outcome.contains("SIGHUP: reloaded"), "{outcome}");
    let names = presented_names(&node);
    assert!(names.contains("renamed.example"), "{names}");
    psql_with_password(&alice, ALICE_PASSWORD, &["SELECT 1"]).assert_ok();
}
