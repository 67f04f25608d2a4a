//! TLS and authentication on a secure node, through the real psql:
//! certificate and SCRAM logins, the errors PostgreSQL gives for bad ones,
//! and admin-only user management.

use duet_tests::{psql, psql_command, psql_rows, psql_with_password, run_duet, run_psql};
use duet_tests::{skip_if_external, TestNode, ROOT_PASSWORD};

fn secure_node(test: &str) -> Option<TestNode> {
    if skip_if_external(test) {
        return None;
    }
    Some(TestNode::secure())
}

#[test]
fn root_logs_in_with_its_client_certificate() {
    let Some(node) = secure_node("root_logs_in_with_its_client_certificate") else {
        return;
    };
    // verify-full: the node certificate is checked against ca.crt and
    // 127.0.0.1; the client certificate's CN says who we are.
    let url = node.cert_url("root");
    assert!(url.contains("sslmode=verify-full"));
    let rows = psql_rows(&url, None, "SELECT current_user, current_database()");
    assert_eq!(rows, [["root", "defaultdb"]]);
}

#[test]
fn scram_password_logins() {
    let Some(node) = secure_node("scram_password_logins") else {
        return;
    };
    let url = node.url("root");

    let rows = psql_rows(&url, Some(ROOT_PASSWORD), "SELECT current_user");
    assert_eq!(rows, [["root"]]);

    psql_with_password(&url, "not-the-password", &["SELECT 1"])
        .assert_err(r#"password authentication failed for user "root""#);

    // An unknown user gets the same answer as a wrong password.
    psql_with_password(&node.url("nosuchuser"), "whatever", &["SELECT 1"])
        .assert_err(r#"password authentication failed for user "nosuchuser""#);

    // A user created with a password can log in with it.
    node.psql(&["CREATE USER alice LOGIN PASSWORD 'alice-secret'"])
        .assert_ok();
    let rows = psql_rows(
        &node.url("alice"),
        Some("alice-secret"),
        "SELECT current_user",
    );
    assert_eq!(rows, [["alice"]]);
    psql_with_password(&node.url("alice"), ROOT_PASSWORD, &["SELECT 1"])
        .assert_err(r#"password authentication failed for user "alice""#);
}

#[test]
fn client_certificate_from_another_ca_is_rejected() {
    let Some(node) = secure_node("client_certificate_from_another_ca_is_rejected") else {
        return;
    };
    let other = tempfile::tempdir().unwrap();
    let other_dir = other.path().to_str().unwrap();
    run_duet(&["cert", "create-ca", "--certs-dir", other_dir]);
    run_duet(&["cert", "create-client", "root", "--certs-dir", other_dir]);

    // The server is verified as usual; the client presents a certificate
    // for CN=root signed by a CA the node does not trust.
    let url = format!(
        "{}&sslcert={other_dir}/client.root.crt&sslkey={other_dir}/client.root.key",
        node.url("root")
    );
    let out = psql(&url, &["SELECT 1"]);
    assert!(
        !out.success(),
        "a foreign client certificate was accepted:\n{}",
        out.stdout
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "psql should fail to connect: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn plain_tcp_is_rejected_by_hba() {
    let Some(node) = secure_node("plain_tcp_is_rejected_by_hba") else {
        return;
    };
    let url = format!(
        "postgresql://root@127.0.0.1:{}/defaultdb?sslmode=disable",
        node.port()
    );
    psql_with_password(&url, ROOT_PASSWORD, &["SELECT 1"]).assert_err(
        r#"no pg_hba.conf entry for host "127.0.0.1", user "root", database "defaultdb", no encryption"#,
    );
}

#[test]
fn only_admins_manage_users() {
    let Some(node) = secure_node("only_admins_manage_users") else {
        return;
    };
    node.psql(&["CREATE USER bob LOGIN PASSWORD 'bob-secret'"])
        .assert_ok();

    // VERBOSITY=verbose makes psql print the SQLSTATE.
    let mut cmd = psql_command(&node.url("bob"));
    cmd.env("PGPASSWORD", "bob-secret")
        .arg("--set=VERBOSITY=verbose");
    let out = run_psql(cmd, &["CREATE USER mallory PASSWORD 'x'"]);
    out.assert_err("42501");

    // Nothing was created: mallory cannot log in.
    psql_with_password(&node.url("mallory"), "x", &["SELECT 1"])
        .assert_err(r#"password authentication failed for user "mallory""#);

    // A client certificate for bob logs in as bob (CN = user name).
    node.create_client_cert("bob");
    let rows = psql_rows(&node.cert_url("bob"), None, "SELECT current_user");
    assert_eq!(rows, [["bob"]]);
}

#[test]
fn table_privileges_follow_grant_and_revoke() {
    let Some(node) = secure_node("table_privileges_follow_grant_and_revoke") else {
        return;
    };
    node.psql(&[
        "CREATE USER carol LOGIN PASSWORD 'carol-secret'",
        "CREATE TABLE ledger (id int PRIMARY KEY, amount int)",
        "INSERT INTO ledger VALUES (1, 10)",
    ])
    .assert_ok();
    let as_carol = |sql: &str| {
        let mut cmd = psql_command(&node.url("carol"));
        cmd.env("PGPASSWORD", "carol-secret")
            .arg("--set=VERBOSITY=verbose");
        run_psql(cmd, &[sql])
    };

    as_carol("SELECT amount FROM ledger").assert_err("42501");
    node.psql(&["GRANT SELECT ON ledger TO carol"]).assert_ok();
    as_carol("SELECT amount FROM ledger").assert_ok();
    as_carol("INSERT INTO ledger VALUES (2, 20)").assert_err("permission denied for table ledger");

    node.psql(&["GRANT INSERT, UPDATE ON ledger TO carol"])
        .assert_ok();
    as_carol("INSERT INTO ledger VALUES (2, 20)").assert_ok();
    as_carol("UPDATE ledger SET amount = 0 WHERE id = 2").assert_ok();
    as_carol("DELETE FROM ledger WHERE id = 2").assert_err("42501");

    // Membership in admin grants everything; revoking it takes it away.
    node.psql(&[
        "REVOKE SELECT, INSERT, UPDATE ON ledger FROM carol",
        "GRANT admin TO carol",
    ])
    .assert_ok();
    as_carol("DELETE FROM ledger WHERE id = 2").assert_ok();
    node.psql(&["REVOKE admin FROM carol"]).assert_ok();
    as_carol("SELECT amount FROM ledger").assert_err("42501");

    let rows = psql_rows(
        &node.cert_url("root"),
        None,
        "SELECT id, amount FROM ledger ORDER BY id",
    );
    assert_eq!(rows, [["1", "10"]]);
}
