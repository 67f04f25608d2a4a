//! Clients find the primary by themselves: libpq multi-host URLs with
//! `target_session_attrs` (psql) and pgjdbc's `targetServerType` pick the
//! right node of a pair before and after a failover, and the HTTP checks a
//! load balancer uses follow every role change.

use duet_tests::java::{compile, run_class};
use duet_tests::pair::{kwdb_url, pair, scalar, wait_for_value};
use duet_tests::{psql_rows, TestNode};

const APP_PASSWORD: &str = "routing-secret";

/// The port of the node a libpq URL with `attrs` lands on, hosts tried in
/// the order given.
fn libpq_lands_on(nodes: &[&TestNode], attrs: &str) -> u16 {
    let hosts: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let url = format!(
        "postgresql://root@{}/defaultdb?target_session_attrs={attrs}&sslmode=verify-full&sslrootcert={c}/ca.crt&sslcert={c}/client.root.crt&sslkey={c}/client.root.key",
        hosts.join(","),
        c = nodes[0].certs_dir().display()
    );
    let rows = psql_rows(&url, None, "SELECT inet_server_port()");
    rows[0][0].parse().expect("a port")
}

/// The port of the node pgjdbc lands on with `targetServerType=kind`.
fn jdbc_lands_on(classes: &std::path::Path, nodes: &[&TestNode], kind: &str) -> u16 {
    let hosts: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let url = format!(
        "jdbc:postgresql://{}/defaultdb?targetServerType={kind}&user=app&password={APP_PASSWORD}&sslmode=verify-full&sslrootcert={}&connectTimeout=10",
        hosts.join(","),
        nodes[0].certs_dir().join("ca.crt").display()
    );
    let out = run_class(classes, "DuetRouting", &[&url]);
    let port = out
        .lines()
        .find_map(|l| l.strip_prefix("port="))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no port in {out}"));
    port.parse().expect("a port")
}

/// (/primary, /replica, /health) status codes of a node.
fn health(node: &TestNode) -> (u16, u16, u16) {
    (
        node.http_get("/primary").0,
        node.http_get("/replica").0,
        node.http_get("/health").0,
    )
}

#[test]
fn multi_host_urls_follow_the_primary_through_a_failover() {
    if duet_tests::skip_if_external("routing") {
        return;
    }
    let classes = tempfile::tempdir().expect("tempdir");
    compile("DuetRouting", classes.path());

    let (mut n1, n2) = pair();
    n1.psql(&[
        &format!("CREATE USER app WITH PASSWORD '{APP_PASSWORD}'"),
        "GRANT admin TO app",
    ])
    .assert_ok();
    wait_for_value(
        &n2,
        "SELECT count(*) FROM pg_roles WHERE rolname = 'app'",
        "1",
    );
    let (p1, p2) = (n1.port(), n2.port());

    // n1 primary, n2 secondary; each host order tried.
    for order in [[&n1, &n2], [&n2, &n1]] {
        assert_eq!(libpq_lands_on(&order, "read-write"), p1);
        assert_eq!(libpq_lands_on(&order, "primary"), p1);
        assert_eq!(libpq_lands_on(&order, "read-only"), p2);
        assert_eq!(libpq_lands_on(&order, "standby"), p2);
        assert_eq!(jdbc_lands_on(classes.path(), &order, "primary"), p1);
        assert_eq!(jdbc_lands_on(classes.path(), &order, "secondary"), p2);
        assert_eq!(jdbc_lands_on(classes.path(), &order, "preferSecondary"), p2);
    }
    assert_eq!(health(&n1), (200, 503, 200));
    assert_eq!(health(&n2), (503, 200, 200));

    // n1 dies; n2 is promoted. The same URLs now land on n2.
    n1.kill9();
    n2.psql(&["REPLICATE SET ROLE PRIMARY;"]).assert_ok();
    assert_eq!(health(&n2), (200, 503, 200));
    let metrics = n2.http_get("/metrics").1;
    assert!(
        metrics.contains("duet_role 1") && metrics.contains("duet_epoch 1"),
        "{metrics}"
    );
    assert_eq!(libpq_lands_on(&[&n1, &n2], "read-write"), p2);
    assert_eq!(libpq_lands_on(&[&n1, &n2], "primary"), p2);
    assert_eq!(jdbc_lands_on(classes.path(), &[&n1, &n2], "primary"), p2);
    // With no secondary left, preferSecondary settles for the primary.
    assert_eq!(
        jdbc_lands_on(classes.path(), &[&n1, &n2], "preferSecondary"),
        p2
    );

    // n1 comes back and is re-attached as n2's secondary: the roles have
    // swapped, and so have the answers.
    n1.restart();
    let url = kwdb_url(&n2, &n1.certs_dir());
    n1.psql(&[
        "REPLICATE SET ROLE SECONDARY;",
        &format!("REPLICATE SET PRIMARY {url};"),
        "REPLICATE SET SERVICE CREATE;",
        "REPLICATE SET SERVICE START;",
    ])
    .assert_ok();
    assert_eq!(scalar(&n1, "SELECT pg_is_in_recovery()"), "t");
    duet_tests::wait_for("n1 to stream", duet_tests::pair::CATCH_UP, || {
        (health(&n1) == (503, 200, 200)).then_some(())
    });
    for order in [[&n1, &n2], [&n2, &n1]] {
        assert_eq!(libpq_lands_on(&order, "read-write"), p2);
        assert_eq!(libpq_lands_on(&order, "standby"), p1);
        assert_eq!(jdbc_lands_on(classes.path(), &order, "primary"), p2);
        assert_eq!(jdbc_lands_on(classes.path(), &order, "secondary"), p1);
    }
    assert_eq!(health(&n2), (200, 503, 200));
    assert!(n1.http_get("/metrics").1.contains("duet_role 2"));
}
