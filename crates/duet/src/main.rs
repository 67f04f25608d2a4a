//! The `duet` command: runs a node (`duet start`), reports on a running
//! one (`duet status`) and creates TLS certificates (`duet cert ...`).

mod cert;
mod config;
mod follow;
mod logging;
mod preflight;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::StartArgs;

/// See Cargo.toml: mimalloc for the many small per-statement allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "duet",
    version,
    about = "duet: a PostgreSQL-compatible SQL server with built-in primary-secondary replication"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a node: SQL (PostgreSQL protocol) and HTTP endpoints.
    Start(Box<StartArgs>),
    /// Show a running node's role, epoch, replication stream, lag, slots and
    /// initial-copy progress (--follow: wait for a secondary to stream).
    Status(status::StatusArgs),
    /// Prepare a data directory (it is also initialized on first start).
    Init(InitArgs),
    /// Print the version.
    Version,
    /// Create the CA, node and client certificates in the certs directory.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Args, Debug)]
struct InitArgs {
    /// Data directory [env: DUET_DATA_DIR] [default: ./duet-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum CertCommand {
    /// Create the certificate authority: ca.crt and ca.key.
    #[command(name = "create-ca")]
    Ca(CertOptions),
    /// Create node.crt and node.key for this node, signed by the CA. Every
    /// HOST (DNS name or IP address clients connect to) goes into the
    /// certificate's subject alternative names; the first is also its CN.
    #[command(name = "create-node")]
    Node {
        #[arg(required = true, value_name = "HOST")]
        hosts: Vec<String>,
        #[command(flatten)]
        options: CertOptions,
    },
    /// Create client.USER.crt and client.USER.key (CN = USER), signed by the
    /// CA, for certificate authentication as USER.
    #[command(name = "create-client")]
    Client {
        #[arg(value_name = "USER")]
        user: String,
        #[command(flatten)]
        options: CertOptions,
    },
}

#[derive(Args, Debug)]
struct CertOptions {
    /// Directory for certificates and keys
    #[arg(
        long,
        value_name = "DIR",
        env = "DUET_CERTS_DIR",
        hide_env_values = true,
        default_value = "./certs"
    )]
    certs_dir: PathBuf,
    /// Replace files that already exist
    #[arg(long)]
    overwrite: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain of causes on one line.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Start(args) => start(*args),
        Command::Status(args) => status::run(args),
        Command::Init(args) => {
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let dir = args
                .data_dir
                .or_else(|| env("DUET_DATA_DIR").map(PathBuf::from))
                .unwrap_or_else(|| duet_server::Config::default().data_dir);
            println!(
                "duet initializes the data directory {} on its first start: run `duet start --data-dir {}` \
                 (set DUET_ROOT_PASSWORD or --root-password-file to give `root` a password)",
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        Command::Version => {
            println!("duet {}", env!("CARGO_PKG_VERSION"));
            // For the test harness: which checkout this binary was built from.
            if std::env::var_os("DUET_PRINT_SOURCE_DIR").is_some() {
                println!("source: {}", env!("CARGO_MANIFEST_DIR"));
            }
            Ok(())
        }
        Command::Cert(cmd) => {
            let written = match cmd {
                CertCommand::Ca(o) => cert::create_ca(&o.certs_dir, o.overwrite)?,
                CertCommand::Node { hosts, options: o } => {
                    cert::create_node(&o.certs_dir, &hosts, o.overwrite)?
                }
                CertCommand::Client { user, options: o } => {
                    cert::create_client(&o.certs_dir, &user, o.overwrite)?
                }
            };
            for path in written {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}

fn start(args: StartArgs) -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let config = config::resolve(&args, env)?;
    let startup = preflight::Startup::of(&config);
    logging::init(&config.log_format)?;
    if !config.insecure {
        // Fail before opening the database, with the fix in the message.
        duet_server::tls::load_server_tls(&config.certs_dir)
            .map_err(|e| preflight::explain_tls(e, &startup))?;
        preflight::check_certificate_host(&startup)?;
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %config.listen,
        http_listen = %config.http_listen,
        data_dir = %config.data_dir.display(),
        certs_dir = %config.certs_dir.display(),
        max_connections = config.max_connections,
        hba_rules = config.hba.len(),
        "starting duet"
    );
    if config.insecure {
        tracing::warn!(
            "insecure mode: no TLS and trust authentication; for local development only"
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // SIGHUP re-reads the file, environment and flags, as at startup.
    let reload: duet_server::Reloader = Box::new(move || {
        config::resolve(&args, |name: &str| std::env::var(name).ok()).map_err(|e| e.to_string())
    });
    runtime
        .block_on(duet_server::run_with_reload(config, Some(reload)))
        .map_err(|e| preflight::explain_server_error(e, &startup))
}
