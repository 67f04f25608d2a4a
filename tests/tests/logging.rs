//! Structured logs: with `log_format = "json"` every line is one JSON
//! object, and a session's lines carry its span (client, pid, user,
//! database).

use std::time::Duration;

use duet_tests::{wait_for, TestNode};

#[test]
fn json_lines_carry_the_session_span() {
    if duet_tests::skip_if_external("logging") {
        return;
    }
    let node = TestNode::secure_with_env(&[
        ("DUET_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,duet_server=debug"),
    ]);
    node.psql(&["SELECT 1"]).assert_ok();
    let started = wait_for("a logged session start", Duration::from_secs(20), || {
        node.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "session started")
    });
    let span = &started["span"];
    assert_eq!(span["name"], "session", "{started}");
    assert_eq!(span["user"], "root", "{started}");
    assert_eq!(span["db"], "defaultdb", "{started}");
    assert!(span["pid"].as_i64().is_some_and(|p| p > 0), "{started}");
    assert!(
        span["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{started}"
    );
    // Every line on stderr is JSON.
    let stderr =
        std::fs::read_to_string(node.dir().join("logs").join("duet.1.stderr")).expect("stderr log");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}
