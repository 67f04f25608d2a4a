//! Log output via tracing: human-readable or JSON lines on stderr, filtered
//! by `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use anyhow::Context;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `format` is "human" or "json" (already
/// validated by the config).
pub fn init(format: &str) -> anyhow::Result<()> {
    // An invalid RUST_LOG is an error rather than silently logging nothing.
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .context("invalid RUST_LOG")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if format == "json" {
        builder.json().try_init()
    } else {
        // No colour codes when stderr goes to a file or the journal.
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
