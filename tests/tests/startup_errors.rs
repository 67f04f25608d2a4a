//! `duet start` refuses to start with a message that names the problem and
//! its fix: a port in use, a data directory another node holds, an unknown
//! config key, a missing or unreadable certificate, a certificate that is
//! not valid for the listen address. Each runs the real binary.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use duet_tests::{duet_bin, free_ports, run_duet, wait_for, TestNode};

/// Kills the process on drop, so a node that unexpectedly starts does not
/// outlive its test.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn duet_start(args: &[&str]) -> Guard {
    let mut cmd = Command::new(duet_bin());
    cmd.arg("start").args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DUET_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd
        .env("DUET_ROOT_PASSWORD", duet_tests::ROOT_PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn duet start");
    Guard(child)
}

/// Runs `duet start ARGS`, which must fail; returns its error line.
#[track_caller]
fn start_fails(args: &[&str]) -> String {
    let mut node = duet_start(args);
    let status = wait_for("duet start to fail", Duration::from_secs(60), || {
        node.0.try_wait().ok().flatten()
    });
    let mut stderr = String::new();
    if let Some(mut pipe) = node.0.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("read stderr");
    }
    assert!(
        !status.success(),
        "duet start {args:?} succeeded:\n{stderr}"
    );
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    error.to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn port_in_use_names_the_address_and_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let [free] = free_ports::<1>();
    let free = format!("127.0.0.1:{free}");

    let sql = start_fails(&[
        "--insecure",
        "--data-dir",
        path(&data),
        "--listen",
        &taken,
        "--http-listen",
        &free,
    ]);
    assert!(
        sql.contains(&format!("the SQL address {taken} is already in use"))
            && sql.contains("--listen HOST:PORT")
            && sql.contains("duet status --url"),
        "{sql}"
    );

    let http = start_fails(&[
        "--insecure",
        "--data-dir",
        path(&data),
        "--listen",
        &free,
        "--http-listen",
        &taken,
    ]);
    assert!(
        http.contains(&format!("the HTTP address {taken} is already in use"))
            && http.contains("--http-listen HOST:PORT"),
        "{http}"
    );
}

#[test]
fn data_dir_in_use_names_the_other_process() {
    let node = TestNode::insecure();
    let pid = node.pid().expect("running");
    let [port, http] = free_ports::<2>();
    let error = start_fails(&[
        "--insecure",
        "--data-dir",
        path(&node.data_dir()),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--http-listen",
        &format!("127.0.0.1:{http}"),
    ]);
    let expected = format!(
        "the data directory {} is in use by another duet process (pid {pid}",
        node.data_dir().display()
    );
    assert!(
        error.contains(&expected) && error.contains("--data-dir"),
        "{error}"
    );
    // The first node is unharmed.
    node.psql(&["SELECT 1"]).assert_ok();
}

#[test]
fn unknown_config_key_names_key_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "# a node\nlisten = \"127.0.0.1:26257\"\nlisten_adress = \"127.0.0.1:1\"\n",
    )
    .expect("write");
    let error = start_fails(&["--config", path(&file)]);
    assert!(
        error.contains(&format!("{}, line 3:", file.display()))
            && error.contains("unknown key \"listen_adress\"")
            && error.contains("did you mean \"listen\"?"),
        "{error}"
    );

    std::fs::write(&file, "[replication]\nsync_timeout = 5\n").expect("write");
    let error = start_fails(&["--config", path(&file)]);
    assert!(
        error.contains("line 2: unknown key \"sync_timeout\" in [replication]")
            && error.contains("did you mean \"sync_timeout_ms\"?"),
        "{error}"
    );
}

#[test]
fn missing_or_unreadable_certificates_name_the_path_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let data = dir.path().join("data");
    let [port] = free_ports::<1>();
    let listen = format!("127.0.0.1:{port}");
    let start = |certs: &Path| {
        start_fails(&[
            "--certs-dir",
            path(certs),
            "--data-dir",
            path(&data),
            "--listen",
            &listen,
        ])
    };

    let error = start(&certs);
    assert!(
        error.contains(&format!("{} not found", certs.join("ca.crt").display()))
            && error.contains(&format!(
                "duet cert create-ca --certs-dir {}",
                certs.display()
            ))
            && error.contains("--insecure"),
        "{error}"
    );

    run_duet(&["cert", "create-ca", "--certs-dir", path(&certs)]);
    let error = start(&certs);
    assert!(
        error.contains(&format!("{} not found", certs.join("node.crt").display()))
            && error.contains(&format!(
                "duet cert create-node localhost 127.0.0.1 --certs-dir {}",
                certs.display()
            )),
        "{error}"
    );

    run_duet(&[
        "cert",
        "create-node",
        "localhost",
        "127.0.0.1",
        "--certs-dir",
        path(&certs),
    ]);
    let key = certs.join("node.key");
    std::fs::write(&key, "not a key\n").expect("write");
    let error = start(&certs);
    assert!(
        error.contains(&key.display().to_string())
            && error.contains("PRIVATE KEY")
            && error.contains("--overwrite"),
        "{error}"
    );

    // Unreadable: permissions do not stop root, so only as another user.
    if !running_as_root() {
        run_duet(&[
            "cert",
            "create-node",
            "localhost",
            "--certs-dir",
            path(&certs),
            "--overwrite",
        ]);
        set_mode(&key, 0o000);
        let error = start(&certs);
        set_mode(&key, 0o600);
        assert!(
            error.contains(&format!("cannot read {}: permission denied", key.display())),
            "{error}"
        );
    }
}

#[cfg(unix)]
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(unix)]
fn set_mode(file: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn certificate_must_name_the_listen_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let data = dir.path().join("data");
    run_duet(&["cert", "create-ca", "--certs-dir", path(&certs)]);
    run_duet(&[
        "cert",
        "create-node",
        "localhost",
        "--certs-dir",
        path(&certs),
    ]);
    let [port, http] = free_ports::<2>();

    // 127.0.0.2 is a loopback address the certificate does not name.
    let error = start_fails(&[
        "--certs-dir",
        path(&certs),
        "--data-dir",
        path(&data),
        "--listen",
        &format!("127.0.0.2:{port}"),
        "--http-listen",
        &format!("127.0.0.1:{http}"),
    ]);
    assert!(
        error.contains(&format!(
            "node certificate {} is not valid for the listen address 127.0.0.2: it names localhost",
            certs.join("node.crt").display()
        )) && error.contains(&format!(
            "duet cert create-node 127.0.0.2 localhost --certs-dir {} --overwrite",
            certs.display()
        )),
        "{error}"
    );

    // 127.0.0.1 is fine: clients reach it as localhost, which the
    // certificate names.
    let mut node = duet_start(&[
        "--certs-dir",
        path(&certs),
        "--data-dir",
        path(&data),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--http-listen",
        &format!("127.0.0.1:{http}"),
    ]);
    wait_for("the node to listen", Duration::from_secs(60), || {
        if let Ok(Some(status)) = node.0.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = node.0.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("duet exited ({status}):\n{stderr}");
        }
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
}
