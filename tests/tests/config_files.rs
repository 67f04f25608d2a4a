//! config/primary.toml and config/secondary.toml work as written: both
//! nodes start from copies of them (only the ports moved to free ones, so
//! parallel tests do not collide), in one working directory with one
//! ./certs, and pair with the KWDB statements exactly as docs/deploy.md
//! types them.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use duet_tests::{duet_bin, free_ports, psql_rows, wait_for, ROOT_PASSWORD};

const START: Duration = Duration::from_secs(60);

/// A node started with `duet start --config FILE` in `dir`; killed on drop,
/// its log printed if the test failed.
struct ConfigNode {
    name: &'static str,
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl ConfigNode {
    fn start(dir: &Path, name: &'static str, port: u16) -> ConfigNode {
        let mut cmd = Command::new(duet_bin());
        cmd.args(["start", "--config", &format!("{name}.toml")])
            .current_dir(dir);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DUET_") {
                cmd.env_remove(key);
            }
        }
        let log = File::create(dir.join(format!("{name}.log"))).expect("log file");
        let child = cmd
            .env("DUET_ROOT_PASSWORD", ROOT_PASSWORD)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn duet start");
        let mut node = ConfigNode {
            name,
            dir: dir.to_path_buf(),
            port,
            child,
        };
        wait_for(&format!("{name} to answer"), START, || {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("{name} exited ({status}):\n{}", node.log());
            }
            let out = duet_tests::psql(&node.url(), &["SELECT 1"]);
            out.success().then_some(())
        });
        node
    }

    /// root with its client certificate, verifying the node's.
    fn url(&self) -> String {
        let c = self.dir.join("certs");
        format!(
            "postgresql://root@localhost:{}/defaultdb?sslmode=verify-full&sslrootcert={c}/ca.crt&sslcert={c}/client.root.crt&sslkey={c}/client.root.key",
            self.port,
            c = c.display()
        )
    }

    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        psql_rows(&self.url(), None, sql)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join(format!("{}.log", self.name))).unwrap_or_default()
    }
}

impl Drop for ConfigNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("===== {} =====\n{}", self.name, self.log());
        }
    }
}

/// Copies config/NAME.toml into `dir` with its two ports replaced.
fn copy_config(dir: &Path, name: &str, ports: [(u16, u16); 2]) -> String {
    let source = duet_tests::tests_dir().join(format!("../config/{name}.toml"));
    let mut text = fs::read_to_string(&source).expect("config file");
    for (from, to) in ports {
        let from = format!("\"127.0.0.1:{from}\"");
        assert!(text.contains(&from), "{from} not in {}", source.display());
        text = text.replace(&from, &format!("\"127.0.0.1:{to}\""));
    }
    fs::write(dir.join(format!("{name}.toml")), &text).expect("write config");
    text
}

#[test]
fn primary_and_secondary_configs_pair_on_one_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let [p_sql, p_http, s_sql, s_http] = free_ports::<4>();
    let primary_toml = copy_config(root, "primary", [(26257, p_sql), (8080, p_http)]);
    let secondary_toml = copy_config(root, "secondary", [(26258, s_sql), (8081, s_http)]);
    for text in [&primary_toml, &secondary_toml] {
        assert!(text.contains("certs_dir = \"./certs\""), "{text}");
    }

    // docs/deploy.md: one CA and node certificate in ./certs for both.
    duet_tests::create_certs(&root.join("certs"));

    let primary = ConfigNode::start(root, "primary", p_sql);
    let secondary = ConfigNode::start(root, "secondary", s_sql);
    assert!(root.join("duet-primary").is_dir() && root.join("duet-secondary").is_dir());

    let out = duet_tests::psql(
        &primary.url(),
        &[
            "CREATE TABLE accounts (id int primary key, owner text)",
            "INSERT INTO accounts VALUES (1, 'ada'), (2, 'grace')",
            "REPLICATE SET ROLE PRIMARY;",
        ],
    );
    out.assert_ok();
    // The KWDB statements; ./certs is relative to the secondary's
    // working directory, the one it was started in.
    let set_primary = format!(
        "REPLICATE SET PRIMARY postgresql://root@localhost:{p_sql}/defaultdb?sslmode=verify-ca&sslcert=./certs/client.root.crt&sslkey=./certs/client.root.key&sslrootcert=./certs/ca.crt;"
    );
    duet_tests::psql(
        &secondary.url(),
        &[
            &set_primary,
            "REPLICATE SET SERVICE CREATE;",
            "REPLICATE SET SERVICE START;",
        ],
    )
    .assert_ok();

    duet_tests::psql(
        &primary.url(),
        &["INSERT INTO accounts VALUES (3, 'edsger')"],
    )
    .assert_ok();
    wait_for("the row on the secondary", Duration::from_secs(30), || {
        (secondary.query("SELECT count(*) FROM accounts") == [["3"]]).then_some(())
    });
    assert_eq!(secondary.query("SELECT pg_is_in_recovery()"), [["t"]]);

    // The HTTP ports from the files answer the load balancer checks.
    assert_eq!(duet_tests::http_get(p_http, "/primary").0, 200);
    assert_eq!(duet_tests::http_get(s_http, "/primary").0, 503);
    wait_for("/replica on the secondary", Duration::from_secs(30), || {
        (duet_tests::http_get(s_http, "/replica").0 == 200).then_some(())
    });

    // duet status, as docs/deploy.md runs it from the same directory.
    let out = Command::new(duet_bin())
        .args([
            "status",
            "--url",
            &format!("postgresql://root@localhost:{s_sql}/defaultdb"),
            "--certs-dir",
            "certs",
        ])
        .current_dir(root)
        .output()
        .expect("duet status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("role:         SECONDARY")
            && text.contains("stream:       streaming"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
