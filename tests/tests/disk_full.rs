//! The data directory fills up: writes fail with PostgreSQL's disk_full
//! error (53100), reads keep working, and writes work again once space
//! returns, without a restart. The data directory is a small tmpfs
//! mounted for the test (root only; elsewhere the test says it skipped).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use duet_tests::pair::scalar;
use duet_tests::TestNode;

/// A tmpfs of `mb` MB at `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mb: u32) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

#[test]
fn a_full_data_directory_refuses_writes_serves_reads_and_recovers() {
    let mut node = TestNode::insecure();
    node.psql(&[
        "CREATE TABLE t (id serial PRIMARY KEY, payload text)",
        "INSERT INTO t (payload) SELECT 'before' FROM generate_series(1, 100)",
    ])
    .assert_ok();
    // Move the data directory onto a 256 MB tmpfs.
    node.terminate();
    let data = node.data_dir();
    let saved = node.dir().join("data-saved");
    std::fs::rename(&data, &saved).unwrap();
    std::fs::create_dir(&data).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&data, 256) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    copy_dir(&saved, &data);
    node.restart();

    // Leave a few MB free, then write until the disk is full.
    let filler = data.join("filler");
    let free_mb = {
        let out = Command::new("df")
            .arg("-m")
            .arg("--output=avail")
            .arg(&data)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap()
    };
    let status = Command::new("fallocate")
        .args(["-l", &format!("{}M", free_mb.saturating_sub(6))])
        .arg(&filler)
        .status()
        .unwrap();
    assert!(status.success(), "fallocate");
    let mut error = None;
    for _ in 0..40 {
        let out = node.psql(&[
            "\\set VERBOSITY verbose",
            "INSERT INTO t (payload) SELECT repeat(md5(g::text), 1000) FROM generate_series(1, 20) g",
        ]);
        if !out.success() {
            error = Some(out.stderr);
            break;
        }
    }
    let error = error.expect("the disk never filled up");
    assert!(error.contains("53100"), "{error}");
    assert!(error.contains("No space left"), "{error}");

    // Reads keep working, and the session survives.
    let rows: u64 = scalar(&node, "SELECT count(*) FROM t").parse().unwrap();
    assert!(rows >= 100, "{rows}");
    node.psql(&["SELECT count(*) FROM t WHERE payload = 'before'"])
        .assert_ok();

    // Space comes back: writes work again, no restart needed (RocksDB
    // retries every 5 s once the free space would hold a memtable).
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = node.psql(&["INSERT INTO t (payload) VALUES ('after')"]);
        if out.success() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let log = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "grep -ih 'error\\|recover\\|space' {}/db*/LOG | tail -40",
                    data.display()
                ))
                .output()
                .unwrap();
            panic!(
                "writes never worked again: {}\nRocksDB LOG:\n{}",
                out.stderr,
                String::from_utf8_lossy(&log.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        scalar(&node, "SELECT count(*) FROM t WHERE payload = 'after'"),
        "1"
    );
    // Nothing committed before was lost.
    node.restart();
    let after: u64 = scalar(&node, "SELECT count(*) FROM t").parse().unwrap();
    assert_eq!(after, rows + 1);
    node.kill9();
}
