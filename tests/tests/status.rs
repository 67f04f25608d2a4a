//! `duet status` against real nodes: a secure pair set up with the KWDB
//! statements, read as text and JSON from both sides; `--follow` waiting
//! through SERVICE CREATE and START; an unreachable node.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use duet_tests::{duet_bin, free_ports, wait_for, TestNode, ROOT_PASSWORD};
use serde_json::Value;

/// `duet status ARGS`, with no DUET_* or PG* settings from the developer.
fn status_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(duet_bin());
    cmd.arg("status").args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("DUET_") || key_text.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn status(args: &[&str]) -> Output {
    status_command(args).output().expect("run duet status")
}

#[track_caller]
fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "duet status failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
fn json(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).expect("JSON")
}

/// The node's URL without credentials: --certs-dir supplies them.
fn bare_url(node: &TestNode) -> String {
    format!("postgresql://root@localhost:{}/defaultdb", node.port())
}

fn certs(node: &TestNode) -> String {
    node.certs_dir().display().to_string()
}

/// Makes `secondary` follow `primary` with the KWDB statements; with
/// `service`, also SERVICE CREATE and START.
fn pair(primary: &TestNode, secondary: &TestNode, service: bool) {
    primary
        .psql(&[
            "CREATE TABLE t (id int primary key, v text)",
            "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g",
            "REPLICATE SET ROLE PRIMARY;",
        ])
        .assert_ok();
    let c = secondary.certs_dir();
    let set_primary = format!(
        "REPLICATE SET PRIMARY postgresql://root@localhost:{}/defaultdb?sslmode=verify-ca&sslcert={c}/client.root.crt&sslkey={c}/client.root.key&sslrootcert={c}/ca.crt;",
        primary.port(),
        c = c.display()
    );
    secondary.psql(&[&set_primary]).assert_ok();
    if service {
        secondary
            .psql(&[
                "REPLICATE SET SERVICE CREATE;",
                "REPLICATE SET SERVICE START;",
            ])
            .assert_ok();
    }
}

#[test]
fn status_of_a_pair_in_text_and_json() {
    let primary = TestNode::secure();
    let secondary = TestNode::secure_sharing_certs(&primary);
    pair(&primary, &secondary, true);
    let (p_url, s_url) = (bare_url(&primary), bare_url(&secondary));
    let (p_certs, s_certs) = (certs(&primary), certs(&secondary));

    // The secondary, once streaming and caught up.
    let s = wait_for("the secondary to stream", Duration::from_secs(30), || {
        let s = json(&status(&[
            "--url",
            &s_url,
            "--certs-dir",
            &s_certs,
            "--json",
        ]));
        (s["stream"] == "streaming" && s["lag_lsn"] == 0).then_some(s)
    });
    assert_eq!(s["role"], "SECONDARY");
    assert_eq!(s["service"], "RUNNING");
    let primary_url = s["primary_url"].as_str().expect("primary_url");
    assert!(
        primary_url.contains(&format!("localhost:{}", primary.port()))
            && primary_url.contains("sslmode=verify-ca"),
        "{s}"
    );
    let slot = s["slot"].as_str().expect("slot").to_string();
    assert_eq!(s["applied_lsn"], s["lsn"], "{s}");
    let text = ok(&status(&["--url", &s_url, "--certs-dir", &s_certs]));
    for line in [
        "role:         SECONDARY, epoch ",
        "service:      RUNNING",
        "stream:       streaming",
        "lag:          0 LSNs behind the primary",
        &format!("slot:         {slot} (on the primary)"),
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }

    // The primary: its secondary and the slot that keeps WAL for it.
    let p = wait_for(
        "the primary to see its secondary",
        Duration::from_secs(30),
        || {
            let p = json(&status(&[
                "--url",
                &p_url,
                "--certs-dir",
                &p_certs,
                "--json",
            ]));
            (p["secondaries"][0]["state"] == "streaming").then_some(p)
        },
    );
    assert_eq!(p["role"], "PRIMARY");
    assert_eq!(p["secondaries"].as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!(p["secondaries"][0]["sync_state"], "async");
    assert_eq!(p["slots"][0]["name"], slot.as_str(), "{p}");
    assert_eq!(p["slots"][0]["active"], true);
    assert_eq!(p["slots"][0]["wal_status"], "reserved");
    assert!(p["slots"][0]["wal_retained_lsn"].is_u64(), "{p}");
    let text = ok(&status(&["--url", &p_url, "--certs-dir", &p_certs]));
    assert!(
        text.contains("role:         PRIMARY, epoch ")
            && text.contains("secondaries:  1")
            && text.contains(&format!("  {slot}: active, reserved, restart LSN ")),
        "{text}"
    );

    // A password from the URL is masked; PGPASSWORD works as in libpq.
    let ca = format!("sslmode=verify-full&sslrootcert={p_certs}/ca.crt");
    let with_password = format!(
        "postgresql://root:{ROOT_PASSWORD}@localhost:{}/defaultdb?{ca}",
        primary.port()
    );
    let out = ok(&status(&["--url", &with_password]));
    assert!(
        out.contains("root:********@") && !out.contains(ROOT_PASSWORD),
        "{out}"
    );
    let without = format!("{p_url}?{ca}");
    let out = status_command(&["--url", &without])
        .env("PGPASSWORD", ROOT_PASSWORD)
        .output()
        .expect("run duet status");
    assert!(ok(&out).contains("PRIMARY"));
    let out = status(&["--url", &without]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("password authentication failed"),
        "{stderr}"
    );
}

#[test]
fn follow_waits_through_service_create_and_start() {
    let primary = TestNode::secure();
    let secondary = TestNode::secure_sharing_certs(&primary);
    pair(&primary, &secondary, false);
    let dir = tempfile::tempdir().expect("tempdir");
    let progress: PathBuf = dir.path().join("follow.stderr");
    let mut follow = status_command(&[
        "--url",
        &bare_url(&secondary),
        "--certs-dir",
        &certs(&secondary),
        "--follow",
        "--timeout",
        "120",
        "--json",
    ])
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&progress).expect("create"))
    .spawn()
    .expect("spawn duet status --follow");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    wait_for(
        "--follow to wait for SERVICE CREATE",
        Duration::from_secs(30),
        || {
            read(&progress)
                .contains("waiting for REPLICATE SET SERVICE CREATE")
                .then_some(())
        },
    );
    assert!(
        follow.try_wait().expect("try_wait").is_none(),
        "exited early"
    );

    secondary
        .psql(&[
            "REPLICATE SET SERVICE CREATE;",
            "REPLICATE SET SERVICE START;",
        ])
        .assert_ok();
    let exit = wait_for("--follow to finish", Duration::from_secs(60), || {
        follow.try_wait().expect("try_wait")
    });
    let output = follow.wait_with_output().expect("output");
    let lines = read(&progress);
    assert!(exit.success(), "exit {exit}:\n{lines}");
    let s: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        (s["stream"].as_str(), s["lag_lsn"].as_u64()),
        (Some("streaming"), Some(0))
    );
    assert!(lines.contains("streaming, caught up at LSN"), "{lines}");

    // --follow is for secondaries.
    let out = status(&[
        "--url",
        &bare_url(&primary),
        "--certs-dir",
        &certs(&primary),
        "--follow",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.contains("the node is PRIMARY, not a SECONDARY"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_node_is_an_error_that_says_so() {
    let [port] = free_ports::<1>();
    let url = format!("postgresql://root@127.0.0.1:{port}/defaultdb?sslmode=disable");
    for extra in [None, Some("--follow")] {
        let mut args = vec!["--url", url.as_str()];
        args.extend(extra);
        let out = status(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: cannot connect to the node at 127.0.0.1:{port}: "
            )) && stderr.contains("is duet running"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = status(&["--url", "mysql://localhost"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: invalid --url: "), "{stderr}");
}
