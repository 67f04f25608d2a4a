//! Runs every `sql/**/*.slt` file as its own trial, once over the simple and
//! once over the extended query protocol: `simple::types`,
//! `extended::types`, ... (filter like any cargo test: `cargo test -p
//! duet-tests --test sqllogictest -- types`).
//!
//! Each trial gets a fresh duet node, so files are independent. With
//! `DUET_SLT_URL=postgresql://...` the files run instead against that server
//! (each in a freshly created database), which is how the corpus is checked
//! against PostgreSQL 15: see `sql/run-against-postgres.sh`.
//!
//! Records can be made conditional with `onlyif duet` / `skipif postgres`
//! and `onlyif postgres-simple` / `skipif postgres-extended`.

use std::path::{Path, PathBuf};

use duet_tests::slt::{PgEngine, Protocol, SltError};
use duet_tests::{tail, TestNode};
use sqllogictest::harness::{self, Arguments, Failed, Trial};
use sqllogictest::Runner;

fn main() {
    let args = Arguments::from_args();
    let pattern = format!("{}/sql/**/*.slt", duet_tests::tests_dir().display());
    let files: Vec<PathBuf> = harness::glob(&pattern)
        .expect("glob")
        .map(|entry| entry.expect("glob entry"))
        .collect();
    assert!(!files.is_empty(), "no .slt files match {pattern}");

    let mut trials = Vec::new();
    for protocol in [Protocol::Simple, Protocol::Extended] {
        for file in &files {
            let file = file.clone();
            let name = format!("{protocol}::{}", test_name(&file));
            trials.push(Trial::test(name, move || run_file(protocol, &file)));
        }
    }
    harness::run(&args, trials).exit();
}

/// `sql/types.slt` -> `types`, `sql/pg/x.slt` -> `pg/x`.
fn test_name(file: &Path) -> String {
    let root = duet_tests::tests_dir().join("sql");
    let relative = file.strip_prefix(&root).unwrap_or(file);
    relative.with_extension("").to_string_lossy().into_owned()
}

fn run_file(protocol: Protocol, file: &Path) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match std::env::var("DUET_SLT_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => runtime.block_on(run_on_external(&url, protocol, file)),
        None => {
            let node = TestNode::insecure();
            let result =
                runtime.block_on(run_records(node.pg_config("root"), protocol, file, "duet"));
            result.map_err(|e| {
                let logs = node.logs();
                Failed::from(format!(
                    "{e}\n\nend of the node's log:\n{}",
                    tail(&logs, 4000)
                ))
            })
        }
    }
}

/// Runs the file in a freshly created database on an existing server.
async fn run_on_external(url: &str, protocol: Protocol, file: &Path) -> Result<(), Failed> {
    let admin: tokio_postgres::Config = url.parse().map_err(|e| format!("DUET_SLT_URL: {e}"))?;
    let db = format!(
        "slt_{protocol}_{}",
        test_name(file).replace(['/', '-', '.'], "_")
    );
    let client = duet_tests::try_connect(&admin)
        .await
        .map_err(SltError::from)?;
    let execute = |sql: String| {
        let client = &client;
        async move { client.batch_execute(&sql).await.map_err(SltError::from) }
    };
    execute(format!("DROP DATABASE IF EXISTS {db}")).await?;
    execute(format!("CREATE DATABASE {db}")).await?;
    let mut config = admin.clone();
    config.dbname(&db);
    run_records(config, protocol, file, "postgres").await?;
    execute(format!("DROP DATABASE {db}")).await?;
    Ok(())
}

async fn run_records(
    config: tokio_postgres::Config,
    protocol: Protocol,
    file: &Path,
    server_label: &str,
) -> Result<(), String> {
    let mut runner = Runner::new(move || {
        let config = config.clone();
        async move { PgEngine::connect(&config, protocol).await }
    });
    runner.add_label(server_label);
    runner.add_label(protocol.name());
    let result = runner.run_file_async(file).await;
    runner.shutdown_async().await;
    result.map_err(|e| e.display(false).to_string())
}
