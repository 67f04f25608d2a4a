//! Resolves the node configuration for `duet start` by layering, lowest
//! precedence first: built-in defaults, the TOML file, `DUET_*` environment
//! variables, command-line flags.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use duet_server::{hba, Config};

#[derive(Args, Debug, Default)]
pub struct StartArgs {
    /// TOML config file (see config/duet.toml) [env: DUET_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// SQL listen address [env: DUET_LISTEN] [default: 127.0.0.1:26257]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// HTTP listen address (metrics, health) [env: DUET_HTTP_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// Data directory [env: DUET_DATA_DIR] [default: ./duet-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory holding ca.crt, node.crt, node.key [env: DUET_CERTS_DIR] [default: ./certs]
    #[arg(long, value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// No TLS, trust authentication: local development only [env: DUET_INSECURE]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub insecure: Option<bool>,
    /// Maximum client connections [env: DUET_MAX_CONNECTIONS] [default: 100]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Seconds a client may take to authenticate [env: DUET_AUTHENTICATION_TIMEOUT] [default: 60]
    #[arg(long, value_name = "SECS")]
    pub authentication_timeout: Option<u64>,
    /// Microseconds a session alone on its shard polls its socket after a
    /// reply before sleeping; 0: never [env: DUET_BUSY_POLL_US] [default: 200]
    #[arg(long, value_name = "MICROSECONDS")]
    pub busy_poll_us: Option<u64>,
    /// Stack a statement may use, kB: deeper recursion fails with 54001
    /// [env: DUET_MAX_STACK_DEPTH_KB] [default: 16384]
    #[arg(long, value_name = "KB")]
    pub max_stack_depth_kb: Option<u64>,
    /// Log format [env: DUET_LOG_FORMAT] [default: human]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Default commit mode on a primary: off, local, remote_write, on,
    /// remote_apply [env: DUET_REPLICATION_SYNCHRONOUS_COMMIT] [default: off]
    #[arg(long, value_name = "MODE")]
    pub synchronous_commit: Option<String>,
    /// Milliseconds a synchronous commit waits for the secondary
    /// [env: DUET_REPLICATION_SYNC_TIMEOUT_MS] [default: 10000]
    #[arg(long, value_name = "MS")]
    pub sync_timeout_ms: Option<u64>,
    /// After that timeout: error or async [env: DUET_REPLICATION_SYNC_FALLBACK] [default: error]
    #[arg(long, value_name = "WHAT")]
    pub sync_fallback: Option<String>,
    /// Most WAL a primary keeps for its replication slots, MB
    /// [env: DUET_REPLICATION_MAX_SLOT_WAL_KEEP_SIZE_MB] [default: 1024]
    #[arg(long, value_name = "MB")]
    pub max_slot_wal_keep_size_mb: Option<u64>,
    /// Directory a primary copies WAL files to before deleting them
    /// [env: DUET_REPLICATION_ARCHIVE_DIR] [default: none]
    #[arg(long, value_name = "DIR")]
    pub archive_dir: Option<PathBuf>,
    /// File holding root's password, used when the data directory is first
    /// created [env: DUET_ROOT_PASSWORD holds the password itself]
    #[arg(long, value_name = "FILE")]
    pub root_password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

impl LogFormat {
    fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} not found", path.display())]
    FileNotFound { path: PathBuf },
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // The message names the offending key; see describe_toml_error.
    #[error(
        "invalid config file {}{}: {message}",
        .path.display(),
        .line.map(|l| format!(", line {l}")).unwrap_or_default()
    )]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("invalid {name}={value:?}: expected {expected}")]
    Env {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("invalid log_format {0:?}: expected \"human\" or \"json\"")]
    LogFormat(String),
    #[error("max_connections must be at least 1")]
    MaxConnections,
    #[error("invalid {key} {value:?}: expected {expected}")]
    Value {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot read the root password file {}: {source}", path.display())]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the root password file {} is empty", path.display())]
    EmptyPassword { path: PathBuf },
    #[error(transparent)]
    Hba(#[from] hba::HbaError),
}

/// Builds the node's configuration; `env` looks up an environment variable
/// (a parameter so tests need not touch the process environment).
pub fn resolve(
    args: &StartArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    // An empty variable counts as unset, as most tools treat it.
    let env = |name: &str| env(name).filter(|v| !v.is_empty());

    let file = args
        .config
        .clone()
        .or_else(|| env("DUET_CONFIG").map(PathBuf::from));
    let mut config = match &file {
        Some(path) => load_file(path)?,
        None => Config::default(),
    };

    // Environment.
    if let Some(v) = env("DUET_LISTEN") {
        config.listen = v;
    }
    if let Some(v) = env("DUET_HTTP_LISTEN") {
        config.http_listen = v;
    }
    if let Some(v) = env("DUET_DATA_DIR") {
        config.data_dir = v.into();
    }
    if let Some(v) = env("DUET_CERTS_DIR") {
        config.certs_dir = v.into();
    }
    if let Some(v) = env("DUET_INSECURE") {
        config.insecure = parse_bool(&v).ok_or(ConfigError::Env {
            name: "DUET_INSECURE",
            value: v,
            expected: "true or false",
        })?;
    }
    if let Some(v) = env_number(&env, "DUET_MAX_CONNECTIONS", "a positive integer")? {
        config.max_connections = v;
    }
    if let Some(v) = env_number(&env, "DUET_AUTHENTICATION_TIMEOUT", "a number of seconds")? {
        config.authentication_timeout = v;
    }
    if let Some(v) = env_number(&env, "DUET_BUSY_POLL_US", "a number of microseconds")? {
        config.busy_poll_us = v;
    }
    if let Some(v) = env_number(&env, "DUET_MAX_STACK_DEPTH_KB", "a number of kilobytes")? {
        config.max_stack_depth_kb = v;
    }
    if let Some(v) = env("DUET_LOG_FORMAT") {
        config.log_format = v;
    }
    if let Some(v) = env("DUET_REPLICATION_SYNCHRONOUS_COMMIT") {
        config.replication.synchronous_commit = v;
    }
    if let Some(v) = env_number(
        &env,
        "DUET_REPLICATION_SYNC_TIMEOUT_MS",
        "a number of milliseconds",
    )? {
        config.replication.sync_timeout_ms = v;
    }
    if let Some(v) = env("DUET_REPLICATION_SYNC_FALLBACK") {
        config.replication.sync_fallback = v;
    }
    if let Some(v) = env("DUET_REPLICATION_ARCHIVE_DIR") {
        config.replication.archive_dir = Some(v.into());
    }
    if let Some(v) = env_number(
        &env,
        "DUET_REPLICATION_MAX_SLOT_WAL_KEEP_SIZE_MB",
        "a number of megabytes",
    )? {
        config.replication.max_slot_wal_keep_size_mb = v;
    }

    // Flags.
    if let Some(v) = &args.listen {
        config.listen = v.clone();
    }
    if let Some(v) = &args.http_listen {
        config.http_listen = v.clone();
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = &args.certs_dir {
        config.certs_dir = v.clone();
    }
    if let Some(v) = args.insecure {
        config.insecure = v;
    }
    if let Some(v) = args.max_connections {
        config.max_connections = v;
    }
    if let Some(v) = args.authentication_timeout {
        config.authentication_timeout = v;
    }
    if let Some(v) = args.busy_poll_us {
        config.busy_poll_us = v;
    }
    if let Some(v) = args.max_stack_depth_kb {
        config.max_stack_depth_kb = v;
    }
    if let Some(v) = args.log_format {
        config.log_format = v.as_str().to_owned();
    }
    if let Some(v) = &args.synchronous_commit {
        config.replication.synchronous_commit = v.clone();
    }
    if let Some(v) = args.sync_timeout_ms {
        config.replication.sync_timeout_ms = v;
    }
    if let Some(v) = &args.sync_fallback {
        config.replication.sync_fallback = v.clone();
    }
    if let Some(v) = args.max_slot_wal_keep_size_mb {
        config.replication.max_slot_wal_keep_size_mb = v;
    }
    if let Some(v) = &args.archive_dir {
        config.replication.archive_dir = Some(v.clone());
    }

    // Never from the config file, so it does not end up in a checked-in file.
    config.root_password = match &args.root_password_file {
        Some(path) => Some(read_password(path)?),
        None => env("DUET_ROOT_PASSWORD"),
    }
    .map(duet_server::config::Secret);

    if LogFormat::from_str(&config.log_format, true).is_err() {
        return Err(ConfigError::LogFormat(config.log_format));
    }
    config.log_format = config.log_format.to_ascii_lowercase();
    if config.max_connections == 0 {
        return Err(ConfigError::MaxConnections);
    }
    let mode = config.replication.synchronous_commit.to_ascii_lowercase();
    if !["off", "local", "remote_write", "on", "remote_apply"].contains(&mode.as_str()) {
        return Err(ConfigError::Value {
            key: "replication.synchronous_commit",
            value: config.replication.synchronous_commit,
            expected: "off, local, remote_write, on or remote_apply",
        });
    }
    config.replication.synchronous_commit = mode;
    let fallback = config.replication.sync_fallback.to_ascii_lowercase();
    if !["error", "async"].contains(&fallback.as_str()) {
        return Err(ConfigError::Value {
            key: "replication.sync_fallback",
            value: config.replication.sync_fallback,
            expected: "error or async",
        });
    }
    config.replication.sync_fallback = fallback;
    if config.hba.is_empty() {
        config.hba = hba::default_rules(config.insecure);
    } else {
        hba::validate_rules(&config.hba)?;
    }
    Ok(config)
}

fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::FileNotFound {
                path: path.to_path_buf(),
            }
        } else {
            ConfigError::ReadFile {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    toml::from_str(&text).map_err(|e| {
        let (line, message) = describe_toml_error(&text, &e);
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        }
    })
}

/// The line of a TOML error and a one-line message; an unknown key is
/// named with its table, the nearest valid key and the valid ones.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> (Option<usize>, String) {
    let offset = e.span().map(|span| span.start.min(text.len()));
    let line = offset.map(|at| text[..at].matches('\n').count() + 1);
    let message = e.message().trim().replace('\n', "; ");
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return (line, message);
    };
    let Some((key, expected)) = rest.split_once('`') else {
        return (line, message);
    };
    let valid: Vec<&str> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.is_empty())
        .collect();
    // The [table] or [[table]] header above the error, if any.
    let table = offset
        .and_then(|at| {
            text[..at].lines().rev().find_map(|l| {
                let l = l.trim();
                (l.starts_with('[') && l.ends_with(']')).then(|| l.to_string())
            })
        })
        .map(|t| format!(" in {t}"))
        .unwrap_or_default();
    let mut out = format!("unknown key \"{key}\"{table}");
    if key == "root_password" {
        out.push_str(
            "; the root password is never read from the config file: set DUET_ROOT_PASSWORD \
             or pass --root-password-file FILE",
        );
        return (line, out);
    }
    if let Some(near) = valid
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) || key.starts_with(k) || k.starts_with(key))
        .min()
    {
        out.push_str(&format!(" (did you mean \"{}\"?)", near.1));
    }
    if !valid.is_empty() {
        out.push_str(&format!("; valid keys here: {}", valid.join(", ")));
    }
    (line, out)
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A numeric `DUET_*` variable, if set.
fn env_number<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    env(name)
        .map(|value| {
            value.trim().parse().map_err(|_| ConfigError::Env {
                name,
                value,
                expected,
            })
        })
        .transpose()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn read_password(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    // Editors and `echo` add a final newline that is not part of the password.
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(ConfigError::EmptyPassword {
            path: path.to_path_buf(),
        });
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use duet_server::config::{AuthMethod, ConnType};
    use std::collections::HashMap;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        start: StartArgs,
    }

    fn args(flags: &[&str]) -> StartArgs {
        let mut argv = vec!["duet-start"];
        argv.extend_from_slice(flags);
        TestCli::try_parse_from(argv).expect("flags").start
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn defaults() {
        let config = resolve(&args(&[]), env_of(&[])).expect("config");
        assert_eq!(config.listen, "127.0.0.1:26257");
        assert_eq!(config.http_listen, "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./duet-data"));
        assert_eq!(config.certs_dir, PathBuf::from("./certs"));
        assert!(!config.insecure);
        assert_eq!(config.max_connections, 100);
        assert_eq!(config.busy_poll_us, 200);
        assert_eq!(config.log_format, "human");
        assert_eq!(config.root_password, None);
        assert_eq!(config.hba, hba::default_rules(false));
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            dir.path(),
            "duet.toml",
            r#"
listen = "127.0.0.1:1111"
http_listen = "127.0.0.1:2222"
data_dir = "/from/file"
max_connections = 7
busy_poll_us = 50
log_format = "json"
"#,
        );
        let file_arg = file.to_str().expect("utf-8 path");

        // File over defaults.
        let config = resolve(&args(&["--config", file_arg]), env_of(&[])).expect("config");
        assert_eq!(config.listen, "127.0.0.1:1111");
        assert_eq!(config.http_listen, "127.0.0.1:2222");
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.busy_poll_us, 50);
        assert_eq!(config.log_format, "json");
        assert_eq!(config.certs_dir, PathBuf::from("./certs"), "default kept");

        // Environment over file.
        let env = env_of(&[
            ("DUET_LISTEN", "127.0.0.1:3333"),
            ("DUET_DATA_DIR", "/from/env"),
            ("DUET_MAX_CONNECTIONS", "8"),
            ("DUET_BUSY_POLL_US", "0"),
            ("DUET_INSECURE", "true"),
            ("DUET_CERTS_DIR", "/certs/env"),
        ]);
        let config = resolve(&args(&["--config", file_arg]), &env).expect("config");
        assert_eq!(config.listen, "127.0.0.1:3333");
        assert_eq!(config.http_listen, "127.0.0.1:2222", "file value kept");
        assert_eq!(config.data_dir, PathBuf::from("/from/env"));
        assert_eq!(config.max_connections, 8);
        assert_eq!(config.busy_poll_us, 0);
        assert!(config.insecure);
        assert_eq!(config.certs_dir, PathBuf::from("/certs/env"));
        assert_eq!(config.hba, hba::default_rules(true));

        // Flags over environment.
        let flags = args(&[
            "--config",
            file_arg,
            "--listen",
            "127.0.0.1:4444",
            "--max-connections",
            "9",
            "--busy-poll-us",
            "300",
            "--insecure=false",
            "--log-format",
            "human",
        ]);
        let config = resolve(&flags, &env).expect("config");
        assert_eq!(config.listen, "127.0.0.1:4444");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from/env"),
            "env value kept"
        );
        assert_eq!(config.max_connections, 9);
        assert_eq!(config.busy_poll_us, 300);
        assert!(!config.insecure);
        assert_eq!(config.log_format, "human");
        assert_eq!(config.hba, hba::default_rules(false));
    }

    #[test]
    fn config_file_from_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(dir.path(), "a.toml", "listen = \"127.0.0.1:5555\"\n");
        let env = env_of(&[("DUET_CONFIG", file.to_str().expect("utf-8"))]);
        assert_eq!(
            resolve(&args(&[]), &env).expect("config").listen,
            "127.0.0.1:5555"
        );
        // --config wins over DUET_CONFIG.
        let other = write(dir.path(), "b.toml", "listen = \"127.0.0.1:6666\"\n");
        let flags = args(&["--config", other.to_str().expect("utf-8")]);
        assert_eq!(
            resolve(&flags, &env).expect("config").listen,
            "127.0.0.1:6666"
        );
    }

    #[test]
    fn insecure_flag_forms() {
        assert_eq!(args(&["--insecure"]).insecure, Some(true));
        assert_eq!(args(&["--insecure=true"]).insecure, Some(true));
        assert_eq!(args(&["--insecure=false"]).insecure, Some(false));
        assert_eq!(args(&[]).insecure, None);
        let config =
            resolve(&args(&["--insecure"]), env_of(&[("DUET_INSECURE", "0")])).expect("config");
        assert!(config.insecure);
        assert_eq!(config.hba[0].method, AuthMethod::Trust);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            dir.path(),
            "bad.toml",
            "listen = \"127.0.0.1:1\"\nlisten_adress = \"x\"\n",
        );
        let err = resolve(
            &args(&["--config", file.to_str().expect("utf-8")]),
            env_of(&[]),
        )
        .expect_err("unknown key");
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{msg}");
        assert!(msg.contains("bad.toml, line 2: "), "{msg}");
        assert!(msg.contains("unknown key \"listen_adress\""), "{msg}");
        assert!(msg.contains("did you mean \"listen\"?"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");

        // A key of a table is named with its table.
        let file = write(
            dir.path(),
            "bad_repl.toml",
            "# comment\n[replication]\nsynchronous_comit = \"on\"\n",
        );
        let msg = resolve(
            &args(&["--config", file.to_str().expect("utf-8")]),
            env_of(&[]),
        )
        .expect_err("unknown replication key")
        .to_string();
        assert!(
            msg.contains("line 3: unknown key \"synchronous_comit\" in [replication]")
                && msg.contains("did you mean \"synchronous_commit\"?"),
            "{msg}"
        );

        // Unknown keys inside an [[hba]] table are errors too.
        let file = write(
            dir.path(),
            "bad_hba.toml",
            "[[hba]]\ntype = \"hostssl\"\nmethod = \"cert\"\nnetmask = \"255.0.0.0\"\n",
        );
        let msg = resolve(
            &args(&["--config", file.to_str().expect("utf-8")]),
            env_of(&[]),
        )
        .expect_err("unknown hba key")
        .to_string();
        assert!(
            msg.contains("netmask") && msg.contains("bad_hba.toml"),
            "{msg}"
        );

        // The password is never read from the file.
        let file = write(dir.path(), "pw.toml", "root_password = \"hunter2\"\n");
        let msg = resolve(
            &args(&["--config", file.to_str().expect("utf-8")]),
            env_of(&[]),
        )
        .expect_err("root_password")
        .to_string();
        assert!(
            msg.contains("root_password") && msg.contains("DUET_ROOT_PASSWORD"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert_eq!(edit_distance("lisen", "listen"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn missing_file_and_bad_values() {
        let err = resolve(&args(&["--config", "/nonexistent/duet.toml"]), env_of(&[]))
            .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "config file /nonexistent/duet.toml not found"
        );

        let err =
            resolve(&args(&[]), env_of(&[("DUET_MAX_CONNECTIONS", "many")])).expect_err("bad env");
        assert_eq!(
            err.to_string(),
            "invalid DUET_MAX_CONNECTIONS=\"many\": expected a positive integer"
        );
        let err =
            resolve(&args(&[]), env_of(&[("DUET_INSECURE", "perhaps")])).expect_err("bad bool");
        assert!(err.to_string().contains("DUET_INSECURE"), "{err}");
        let err =
            resolve(&args(&[]), env_of(&[("DUET_LOG_FORMAT", "xml")])).expect_err("bad format");
        assert!(err.to_string().contains("\"xml\""), "{err}");
        let err = resolve(&args(&["--max-connections", "0"]), env_of(&[])).expect_err("zero");
        assert!(matches!(err, ConfigError::MaxConnections));
        assert!(TestCli::try_parse_from(["duet-start", "--log-format", "xml"]).is_err());

        // Empty variables count as unset.
        let config = resolve(
            &args(&[]),
            env_of(&[("DUET_LISTEN", ""), ("DUET_INSECURE", "")]),
        )
        .expect("config");
        assert_eq!(config.listen, "127.0.0.1:26257");
        assert!(!config.insecure);
    }

    #[test]
    fn hba_rules_from_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(
            dir.path(),
            "hba.toml",
            r#"
[[hba]]
type = "hostssl"
database = "replication"
user = "repl"
address = "10.0.0.0/8"
method = "cert"

[[hba]]
type = "host"
method = "scram-sha-256"
"#,
        );
        let config = resolve(
            &args(&["--config", file.to_str().expect("utf-8")]),
            env_of(&[]),
        )
        .expect("config");
        assert_eq!(config.hba.len(), 2, "configured rules replace the defaults");
        assert_eq!(config.hba[0].conn_type, ConnType::Hostssl);
        assert_eq!(config.hba[0].database, "replication");
        assert_eq!(config.hba[0].method, AuthMethod::Cert);
        assert_eq!(config.hba[1].address, "all");
        assert_eq!(config.hba[1].method, AuthMethod::ScramSha256);

        let bad = write(
            dir.path(),
            "bad_addr.toml",
            "[[hba]]\ntype = \"host\"\naddress = \"localhost\"\nmethod = \"trust\"\n",
        );
        let err = resolve(
            &args(&["--config", bad.to_str().expect("utf-8")]),
            env_of(&[]),
        )
        .expect_err("bad addr");
        assert!(err.to_string().contains("localhost"), "{err}");
    }

    #[test]
    fn root_password_sources() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = env_of(&[("DUET_ROOT_PASSWORD", "from-env")]);
        assert_eq!(
            resolve(&args(&[]), &env)
                .expect("config")
                .root_password
                .map(|s| s.0)
                .as_deref(),
            Some("from-env")
        );
        let file = write(dir.path(), "pw", "from file\n");
        let flags = args(&["--root-password-file", file.to_str().expect("utf-8")]);
        assert_eq!(
            resolve(&flags, &env)
                .expect("config")
                .root_password
                .map(|s| s.0)
                .as_deref(),
            Some("from file")
        );
        let empty = write(dir.path(), "empty", "\n");
        let flags = args(&["--root-password-file", empty.to_str().expect("utf-8")]);
        assert!(matches!(
            resolve(&flags, &env),
            Err(ConfigError::EmptyPassword { .. })
        ));
        let flags = args(&["--root-password-file", "/nonexistent/pw"]);
        assert!(matches!(
            resolve(&flags, &env),
            Err(ConfigError::PasswordFile { .. })
        ));
    }

    #[test]
    fn pair_configs_differ_in_ports_and_data_dir_only() {
        let load = |name: &str| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../config/{name}"));
            let flags = args(&["--config", path.to_str().expect("utf-8")]);
            resolve(&flags, env_of(&[])).expect(name)
        };
        let (primary, secondary) = (load("primary.toml"), load("secondary.toml"));
        assert_eq!(
            (primary.listen.as_str(), primary.http_listen.as_str()),
            ("127.0.0.1:26257", "127.0.0.1:8080")
        );
        assert_eq!(
            (secondary.listen.as_str(), secondary.http_listen.as_str()),
            ("127.0.0.1:26258", "127.0.0.1:8081")
        );
        assert_eq!(primary.data_dir, PathBuf::from("./duet-primary"));
        assert_eq!(secondary.data_dir, PathBuf::from("./duet-secondary"));
        assert_eq!(primary.certs_dir, secondary.certs_dir);
        assert!(!primary.insecure && !secondary.insecure);
        assert_eq!(primary.replication, secondary.replication);
        assert_eq!(primary.hba, secondary.hba);
    }

    #[test]
    fn shipped_example_config_parses() {
        // config/duet.toml documents every key with its default.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/duet.toml");
        let flags = args(&["--config", path.to_str().expect("utf-8")]);
        let config = resolve(&flags, env_of(&[])).expect("config/duet.toml");
        let defaults = Config::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.http_listen, defaults.http_listen);
        assert_eq!(config.data_dir, defaults.data_dir);
        assert_eq!(config.certs_dir, defaults.certs_dir);
        assert_eq!(config.insecure, defaults.insecure);
        assert_eq!(config.max_connections, defaults.max_connections);
        assert_eq!(
            config.authentication_timeout,
            defaults.authentication_timeout
        );
        assert_eq!(config.busy_poll_us, defaults.busy_poll_us);
        assert_eq!(config.log_format, defaults.log_format);
        assert_eq!(config.hba, hba::default_rules(false));

        // The commented [[hba]] example is valid once uncommented.
        let text = std::fs::read_to_string(&path).expect("read");
        let start = text.find("# [[hba]]").expect("example");
        let example: String = text[start..]
            .lines()
            .map(|line| line.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(dir.path(), "example.toml", &example);
        let config = resolve(
            &args(&["--config", file.to_str().expect("utf-8")]),
            env_of(&[]),
        )
        .expect("example");
        assert_eq!(config.hba.len(), 2);
        assert_eq!(config.hba[1].method, AuthMethod::CertOrScramSha256);
    }
}
