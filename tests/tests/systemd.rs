//! systemd's service protocol, as a `Type=notify` unit with `WatchdogSec`
//! sees it: the node sends READY=1 once it listens, WATCHDOG=1 pings, and
//! STOPPING=1 when SIGTERM starts its shutdown; then it exits.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use duet_tests::{wait_for, TestNode};

/// The next notification (one datagram), or None after `timeout`.
fn next(socket: &UnixDatagram, timeout: Duration) -> Option<String> {
    socket.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buf = [0u8; 1024];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    if duet_tests::skip_if_external("systemd") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    let mut node = TestNode::secure_with_env(&[
        ("NOTIFY_SOCKET", path.to_str().expect("utf-8 path")),
        ("WATCHDOG_USEC", "200000"),
    ]);
    // The node answers queries, so it told systemd it was ready first.
    assert_eq!(
        next(&socket, Duration::from_secs(10)).as_deref(),
        Some("READY=1")
    );
    // Then the watchdog pings, at half the interval.
    for _ in 0..2 {
        assert_eq!(
            next(&socket, Duration::from_secs(10)).as_deref(),
            Some("WATCHDOG=1")
        );
    }

    let pid = node.pid().expect("running");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match next(&socket, Duration::from_secs(1)) {
            Some(m) if m == "STOPPING=1" => break,
            Some(m) => seen.push(m),
            None => {}
        }
    }
    assert!(
        seen.iter().all(|m| m == "WATCHDOG=1"),
        "unexpected notifications before STOPPING=1: {seen:?}"
    );
    wait_for(
        "the node to exit after SIGTERM",
        Duration::from_secs(30),
        || node.has_exited(),
    );
}

/// `config/duet.service` passes `systemd-analyze verify` (with ExecStart
/// pointed at the binary under test), where systemd-analyze exists.
#[test]
fn the_unit_file_verifies() {
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        eprintln!("skipped: no systemd-analyze on this machine");
        return;
    }
    let unit = std::fs::read_to_string(duet_tests::tests_dir().join("../config/duet.service"))
        .expect("config/duet.service");
    assert!(
        unit.contains("Type=notify") && unit.contains("WatchdogSec="),
        "{unit}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("duet.service");
    let bin = duet_tests::duet_bin();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/duet", &bin.display().to_string()),
    )
    .expect("write unit");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("duet.service:"),
        "systemd-analyze verify:\n{text}"
    );
}
