//! Finding (and building) the `duet` binary the tests run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// This crate's directory (`tests/`) in the checkout being tested. cargo
/// sets CARGO_MANIFEST_DIR when it runs a test; the compile-time value can
/// name another checkout when several share a target directory (cargo
/// reuses a test executable built there from identical sources).
pub fn tests_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|p| p.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The duet binary under test; see the module docs.
/// Panics (in every test that needs it) if it cannot be found or built.
pub fn duet_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_duet_bin) {
        Ok(bin) => bin,
        Err(why) => panic!("{why}"),
    }
}

fn locate_duet_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("DUET_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            return Err(format!("DUET_BIN={} is not a file", bin.display()));
        }
        return Ok(bin);
    }
    // <target>/<profile>/deps/<test-exe>  ->  <target>/<profile>/duet
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable is not in <target>/<profile>/deps");
    if std::env::var_os("CARGO").is_some() && std::env::var_os("DUET_NO_BUILD").is_none() {
        // The exact binary cargo built from this checkout: the copy at
        // <profile>/duet can be another checkout's when several share a
        // target directory (CI clones do).
        if let Some(bin) = build_duet(profile_dir)? {
            if built_from_this_checkout(&bin) {
                return Ok(bin);
            }
            // Another checkout sharing the target directory left its copy at
            // <profile>/duet and cargo, seeing ours fresh, did not replace
            // it: rebuild ours.
            clean_duet(profile_dir)?;
            if let Some(bin) = build_duet(profile_dir)? {
                return Ok(bin);
            }
        }
    }
    let bin = profile_dir.join("duet");
    if !bin.is_file() {
        return Err(format!(
            "duet binary not found at {}: run `cargo build -p duet` first (or set DUET_BIN)",
            bin.display()
        ));
    }
    Ok(bin)
}

/// `cargo test` builds no binary of another package, so build (or refresh)
/// the server with the same cargo, profile and target directory (cargo has
/// released its build lock by the time tests run).
///
/// The first try builds the workspace's binaries and tests together, so
/// that features resolve as in `cargo test --workspace` and the binary
/// shares every compiled dependency with the test build; if some other
/// crate's tests do not compile, the binary alone is built.
fn build_duet(profile_dir: &Path) -> Result<Option<PathBuf>, String> {
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let manifest = tests_dir().join("../Cargo.toml");
    let cargo = |args: &[&str]| {
        let mut cmd = Command::new(std::env::var_os("CARGO").expect("CARGO"));
        cmd.arg("build")
            .args(args)
            .args(["--quiet", "--message-format=json", "--profile", profile])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(target_dir);
        cmd
    };
    eprintln!("duet-tests: building duet (profile {profile})");
    let unified = cargo(&["--workspace", "--bins", "--tests"])
        .output()
        .map_err(|e| format!("failed to run cargo: {e}"))?;
    if unified.status.success() {
        return Ok(built_executable(&unified.stdout));
    }
    let single = cargo(&["-p", "duet", "--bin", "duet"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("failed to run cargo: {e}"))?;
    if !single.status.success() {
        return Err(format!(
            "`cargo build -p duet` failed ({}); see its output above",
            single.status
        ));
    }
    Ok(built_executable(&single.stdout))
}

/// Whether `bin` was built from the checkout these tests belong to.
fn built_from_this_checkout(bin: &Path) -> bool {
    let expected = tests_dir().join("../crates/duet");
    let Ok(out) = Command::new(bin)
        .arg("version")
        .env("DUET_PRINT_SOURCE_DIR", "1")
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let source = text
        .lines()
        .find_map(|l| l.strip_prefix("source: "))
        .map(PathBuf::from);
    match (
        source.and_then(|s| s.canonicalize().ok()),
        expected.canonicalize().ok(),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn clean_duet(profile_dir: &Path) -> Result<(), String> {
    let target_dir = profile_dir.parent().expect("target dir");
    let manifest = tests_dir().join("../Cargo.toml");
    let status = Command::new(std::env::var_os("CARGO").expect("CARGO"))
        .args(["clean", "--quiet", "-p", "duet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .map_err(|e| format!("failed to run cargo clean: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo clean -p duet` failed ({status})"))
    }
}

/// The `duet` executable named in cargo's JSON build messages.
fn built_executable(json_lines: &[u8]) -> Option<PathBuf> {
    String::from_utf8_lossy(json_lines)
        .lines()
        .filter(|l| {
            l.contains("\"reason\":\"compiler-artifact\"") && l.contains("\"kind\":[\"bin\"]")
        })
        // The binary itself, not the test harness of its unit tests.
        .filter(|l| l.contains("\"name\":\"duet\"") && l.contains("\"test\":false"))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = start + l[start..].find('"')?;
            Some(PathBuf::from(&l[start..end]))
        })
}
