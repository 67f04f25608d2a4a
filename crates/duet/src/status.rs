//! `duet status --url URL`: what a running node says about itself, read
//! with the SQL it already answers (SHOW REPLICATION STATUS and the
//! pg_stat_* views) over the replication crate's client, so the URL, TLS
//! and password rules are exactly those of `REPLICATE SET PRIMARY`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use duet_replication::client::{self, ConnectError, PrimaryConnection, QueryRows};
use duet_replication::url::{PrimaryUrl, SslMode};
use serde::Serialize;

use crate::follow;

/// The node `duet status` asks when no --url is given.
pub const DEFAULT_URL: &str = "postgresql://root@localhost:26257/defaultdb";

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// libpq URL of the node, as REPLICATE SET PRIMARY takes it (sslmode,
    /// sslrootcert, sslcert, sslkey, password, connect_timeout). Without a
    /// password in the URL: PGPASSWORD, then ~/.pgpass (or PGPASSFILE)
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Fill in what the URL leaves out from DIR: sslrootcert=DIR/ca.crt with
    /// sslmode=verify-full, and DIR/client.USER.crt/.key if they exist
    #[arg(long, value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// On a secondary: show the initial copy and the catch-up as a progress
    /// bar until the node streams and has caught up, then print the status
    /// and exit 0
    #[arg(long, alias = "wait-copy")]
    pub follow: bool,
    /// With --follow: give up (exit 1) after SECS seconds [default: wait]
    #[arg(long, value_name = "SECS", requires = "follow")]
    pub timeout: Option<u64>,
}

/// Initial-copy progress of a secondary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyProgress {
    pub copied_bytes: u64,
    pub total_bytes: u64,
    pub done: bool,
}

/// One secondary as its primary sees it (pg_stat_replication).
#[derive(Debug, Clone, Serialize)]
pub struct Secondary {
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sent_lsn: Option<String>,
    pub write_lsn: Option<String>,
    pub flush_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    /// LSNs the primary is ahead of what this secondary replayed.
    pub lag_lsn: Option<u64>,
    pub replay_lag_ms: Option<f64>,
    pub sync_state: Option<String>,
    pub reply_time: Option<String>,
}

/// A replication slot on a primary (pg_replication_slots).
#[derive(Debug, Clone, Serialize)]
pub struct Slot {
    pub name: String,
    pub active: bool,
    pub restart_lsn: Option<String>,
    /// "reserved", or "lost" once it fell past max_slot_wal_keep_size.
    pub wal_status: Option<String>,
    /// LSNs of WAL the slot keeps (the node's LSN minus restart_lsn).
    pub wal_retained_lsn: Option<u64>,
}

/// Everything `duet status` prints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeStatus {
    /// The node asked, password masked.
    pub url: String,
    pub role: String,
    pub epoch: i64,
    pub service: String,
    /// The secondary's stream: starting, copying, streaming, stopped, error.
    pub stream: Option<String>,
    /// The primary a secondary follows, password masked.
    pub primary_url: Option<String>,
    /// A secondary's slot on its primary.
    pub slot: Option<String>,
    /// The node's latest LSN.
    pub lsn: String,
    pub received_lsn: Option<String>,
    pub flushed_lsn: Option<String>,
    pub applied_lsn: Option<String>,
    /// The primary's LSN as the secondary last heard it.
    pub primary_lsn: Option<String>,
    /// On a secondary: LSNs its primary is ahead of what it applied.
    pub lag_lsn: Option<u64>,
    /// Replication lag in milliseconds where the node measures it.
    pub lag_ms: Option<f64>,
    pub last_message: Option<String>,
    /// How long ago that was: the lag figures are as of then.
    pub last_message_age_ms: Option<f64>,
    pub last_error: Option<String>,
    /// What the last re-copy discarded of this node's own history.
    pub discarded: Option<String>,
    pub copy: Option<CopyProgress>,
    pub secondaries: Vec<Secondary>,
    pub slots: Vec<Slot>,
}

impl NodeStatus {
    pub fn is_secondary(&self) -> bool {
        self.role == "SECONDARY"
    }
}

use duet_storage::parse_lsn;

/// Milliseconds since a timestamptz as the node prints it
/// (`2026-01-02 03:04:05.123456+00`).
fn age_ms(timestamp: &str) -> Option<f64> {
    let at = chrono::DateTime::parse_from_str(timestamp, "%Y-%m-%d %H:%M:%S%.f%#z").ok()?;
    let age = chrono::Utc::now().signed_duration_since(at);
    Some(age.num_microseconds()? as f64 / 1000.0)
}

/// `copy_progress` of SHOW REPLICATION STATUS: "COPIED/TOTAL bytes".
fn parse_copy(text: &str) -> Option<CopyProgress> {
    let (copied, total) = text.strip_suffix(" bytes")?.split_once('/')?;
    let (copied_bytes, total_bytes) = (copied.parse().ok()?, total.parse().ok()?);
    Some(CopyProgress {
        copied_bytes,
        total_bytes,
        done: total_bytes > 0 && copied_bytes >= total_bytes,
    })
}

/// An interval as pg_stat_replication prints a lag: `HH:MM:SS.ffffff`.
fn parse_interval_ms(text: &str) -> Option<f64> {
    let mut parts = text.splitn(3, ':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(((hours * 60.0 + minutes) * 60.0 + seconds) * 1000.0)
}

fn owned(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

/// The URL `duet status` connects with: the --url, completed from
/// --certs-dir and PGPASSWORD.
pub fn node_url(args: &StatusArgs) -> anyhow::Result<PrimaryUrl> {
    let mut url = PrimaryUrl::parse(&args.url).map_err(|e| {
        // The parser speaks of the primary URL; here it is --url.
        let text = e.to_string();
        let detail = text.strip_prefix("invalid primary URL: ").unwrap_or(&text);
        anyhow!("invalid --url: {detail}")
    })?;
    if url.password().is_none() {
        let password = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty());
        url.set_password(password);
    }
    if let Some(dir) = &args.certs_dir {
        if url.sslrootcert.is_none() {
            url.sslrootcert = Some(dir.join("ca.crt"));
            if !args.url.contains("sslmode=") {
                url.sslmode = SslMode::VerifyFull;
            }
        }
        let cert = dir.join(format!("client.{}.crt", url.user));
        let key = dir.join(format!("client.{}.key", url.user));
        if url.sslcert.is_none() && cert.is_file() && key.is_file() {
            url.sslcert = Some(cert);
            url.sslkey = Some(key);
        }
    }
    Ok(url)
}

/// Says what failed and what to check, for the node (the client's own
/// messages speak of a primary).
pub fn explain_connect_error(e: ConnectError) -> anyhow::Error {
    match e {
        ConnectError::Connect { address, reason } => anyhow!(
            "cannot connect to the node at {address}: {reason}; is duet running and listening \
             there? (check the host and port in --url)"
        ),
        ConnectError::Tls { address, reason } => {
            let hint = if reason.contains("does not accept TLS") {
                "; the node runs with --insecure: add sslmode=disable to the URL"
            } else if reason.contains("certificate") || reason.contains("Certificate") {
                "; sslrootcert (or --certs-dir) must hold the CA that signed the node's \
                 certificate, and with sslmode=verify-full the URL's host must be one of its names"
            } else {
                ""
            };
            anyhow!("TLS handshake with the node at {address} failed: {reason}{hint}")
        }
        ConnectError::Certificate {
            param,
            path,
            reason,
        } => anyhow!("cannot use {param} file {path}: {reason}"),
        ConnectError::Auth {
            user,
            code,
            message,
        } => anyhow!(
            "the node rejected user \"{user}\": {message} (SQLSTATE {code}); give a password \
             (in the URL, PGPASSWORD or ~/.pgpass) or a client certificate (sslcert/sslkey, or \
             --certs-dir with client.{user}.crt)"
        ),
        ConnectError::Server { code, message } => {
            anyhow!("the node returned an error: {message} (SQLSTATE {code})")
        }
        ConnectError::Protocol(message) => anyhow!("{}", message.replace("primary", "node")),
    }
}

/// Opens a session on the node.
pub async fn connect(url: &PrimaryUrl) -> anyhow::Result<PrimaryConnection> {
    let mut url = url.clone();
    // Names this session in the node's logs (not in the URL shown).
    url.application_name
        .get_or_insert_with(|| "duet status".into());
    client::connect(&url, false)
        .await
        .map_err(explain_connect_error)
}

async fn query(conn: &mut PrimaryConnection, sql: &str) -> anyhow::Result<QueryRows> {
    conn.query(sql)
        .await
        .map_err(explain_connect_error)
        .with_context(|| format!("running {sql:?} on the node"))
}

/// Reads the node's status (four queries on one session).
pub async fn fetch(conn: &mut PrimaryConnection, url: &PrimaryUrl) -> anyhow::Result<NodeStatus> {
    let show = query(conn, "SHOW REPLICATION STATUS").await?;
    let local = (0..show.rows.len())
        .find(|&i| show.get(i, "node") == Some("local"))
        .ok_or_else(|| anyhow!("SHOW REPLICATION STATUS returned no row for the node itself"))?;
    let get = |column: &str| owned(show.get(local, column));
    let mut status = NodeStatus {
        url: url.masked(),
        role: get("role").unwrap_or_default(),
        epoch: get("epoch").and_then(|e| e.parse().ok()).unwrap_or(0),
        service: get("service").unwrap_or_default(),
        stream: get("stream").filter(|s| s != "-" && !s.is_empty()),
        primary_url: get("primary_url"),
        slot: get("slot"),
        lsn: get("lsn").unwrap_or_default(),
        last_error: get("last_error"),
        discarded: get("discarded"),
        copy: show.get(local, "copy_progress").and_then(parse_copy),
        ..NodeStatus::default()
    };
    let node_lsn = parse_lsn(&status.lsn);
    if status.is_secondary() {
        status.flushed_lsn = get("flushed_lsn");
        status.applied_lsn = get("applied_lsn");
        status.lag_lsn = get("lag_lsn").and_then(|l| l.parse().ok());
        status.lag_ms = get("lag_ms").and_then(|l| l.parse().ok());
        status.last_message = get("last_message");
        status.last_message_age_ms = status.last_message.as_deref().and_then(age_ms);
        let receiver = query(
            conn,
            "SELECT written_lsn, latest_end_lsn FROM pg_stat_wal_receiver",
        )
        .await?;
        status.received_lsn = owned(receiver.get(0, "written_lsn"));
        status.primary_lsn = owned(receiver.get(0, "latest_end_lsn"));
    }

    let senders = query(
        conn,
        "SELECT application_name, client_addr, state, sent_lsn, write_lsn, flush_lsn, \
         replay_lsn, replay_lag, sync_state, reply_time FROM pg_stat_replication",
    )
    .await?;
    for i in 0..senders.rows.len() {
        let get = |column: &str| owned(senders.get(i, column));
        let replay_lsn = get("replay_lsn");
        let replayed = replay_lsn.as_deref().and_then(parse_lsn);
        status.secondaries.push(Secondary {
            application_name: get("application_name"),
            client_addr: get("client_addr"),
            state: get("state"),
            sent_lsn: get("sent_lsn"),
            write_lsn: get("write_lsn"),
            flush_lsn: get("flush_lsn"),
            lag_lsn: node_lsn.zip(replayed).map(|(n, r)| n.saturating_sub(r)),
            replay_lsn,
            replay_lag_ms: get("replay_lag").as_deref().and_then(parse_interval_ms),
            sync_state: get("sync_state"),
            reply_time: get("reply_time"),
        });
    }

    let slots = query(
        conn,
        "SELECT slot_name, active, restart_lsn, wal_status FROM pg_replication_slots",
    )
    .await?;
    for i in 0..slots.rows.len() {
        let get = |column: &str| owned(slots.get(i, column));
        let restart_lsn = get("restart_lsn");
        let wal_status = get("wal_status");
        let kept = wal_status.as_deref() != Some("lost");
        let restart = restart_lsn.as_deref().and_then(parse_lsn).filter(|_| kept);
        status.slots.push(Slot {
            name: get("slot_name").unwrap_or_default(),
            active: get("active").as_deref() == Some("t"),
            wal_retained_lsn: node_lsn.zip(restart).map(|(n, r)| n.saturating_sub(r)),
            restart_lsn,
            wal_status,
        });
    }
    Ok(status)
}

/// Bytes in binary units, for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn describe_copy(copy: &CopyProgress) -> String {
    if copy.total_bytes == 0 {
        return "starting".into();
    }
    let percent = copy.copied_bytes as f64 * 100.0 / copy.total_bytes as f64;
    let done = if copy.done { ", done" } else { "" };
    format!(
        "{} of {} ({percent:.0}%){done}",
        human_bytes(copy.copied_bytes),
        human_bytes(copy.total_bytes)
    )
}

fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

/// The status as text, one `key: value` line per fact.
pub fn render_text(s: &NodeStatus) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<13} {value}\n"));
    line("node:", s.url.clone());
    let role = match s.role.as_str() {
        "DEFAULT" => format!("DEFAULT, epoch {} (standalone: no replication)", s.epoch),
        role => format!("{role}, epoch {}", s.epoch),
    };
    line("role:", role);
    if s.is_secondary() {
        line("primary:", or_dash(&s.primary_url).into());
        line("service:", s.service.clone());
        let mut stream = or_dash(&s.stream).to_string();
        if let Some(at) = &s.last_message {
            let ago = s
                .last_message_age_ms
                .map(|ms| format!(", {:.1} s ago", ms / 1000.0))
                .unwrap_or_default();
            stream.push_str(&format!(" (last message from the primary {at}{ago})"));
        }
        line("stream:", stream);
        line(
            "LSN:",
            format!(
                "applied {}, flushed {}, received {}, primary at {}",
                or_dash(&s.applied_lsn),
                or_dash(&s.flushed_lsn),
                or_dash(&s.received_lsn),
                or_dash(&s.primary_lsn),
            ),
        );
        let lag = match (s.lag_lsn, s.lag_ms) {
            (Some(0), _) if s.stream.as_deref() == Some("streaming") => {
                "0 LSNs behind the primary (caught up as of its last message)".to_string()
            }
            (Some(lsns), Some(ms)) => format!("{lsns} LSNs, {ms:.1} ms behind the primary"),
            (Some(lsns), None) => format!(
                "{lsns} LSNs behind the primary (the time lag is measured on the primary: \
                 run duet status there)"
            ),
            (None, _) => "-".into(),
        };
        line("lag:", lag);
        line(
            "slot:",
            match &s.slot {
                Some(slot) => format!("{slot} (on the primary)"),
                None => "-".into(),
            },
        );
        if let Some(copy) = &s.copy {
            line("initial copy:", describe_copy(copy));
        }
        if let Some(error) = &s.last_error {
            line("last error:", error.clone());
        }
        if let Some(discarded) = &s.discarded {
            line("discarded:", discarded.clone());
        }
    } else {
        // Copy progress and stream errors of an earlier life as a
        // secondary stay in JSON only.
        line("LSN:", s.lsn.clone());
    }
    if s.role == "PRIMARY" || !s.secondaries.is_empty() {
        line("secondaries:", s.secondaries.len().to_string());
    }
    for r in &s.secondaries {
        let lag_ms = r
            .replay_lag_ms
            .map(|ms| format!(", replay lag {ms:.1} ms"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} ({}): {}, sent {}, flushed {}, replayed {}, {} LSNs behind{lag_ms}, {}\n",
            or_dash(&r.client_addr),
            or_dash(&r.application_name),
            or_dash(&r.state),
            or_dash(&r.sent_lsn),
            or_dash(&r.flush_lsn),
            or_dash(&r.replay_lsn),
            r.lag_lsn.map_or("?".into(), |l| l.to_string()),
            or_dash(&r.sync_state),
        ));
    }
    if !s.slots.is_empty() || s.role == "PRIMARY" {
        out.push_str(&format!("{:<13} {}\n", "slots:", s.slots.len()));
    }
    for slot in &s.slots {
        let retained = match slot.wal_retained_lsn {
            Some(n) => format!(", WAL retained: {n} LSNs"),
            None => String::new(),
        };
        out.push_str(&format!(
            "  {}: {}, {}, restart LSN {}{retained}\n",
            slot.name,
            if slot.active { "active" } else { "inactive" },
            or_dash(&slot.wal_status),
            or_dash(&slot.restart_lsn),
        ));
    }
    out
}

/// `duet status`: prints the node's status, or with --follow waits for a
/// secondary to stream first.
pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let url = node_url(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let status = runtime.block_on(async {
        let mut conn = connect(&url).await?;
        let status = if args.follow {
            let timeout = args.timeout.map(Duration::from_secs);
            follow::follow(&mut conn, &url, timeout).await?
        } else {
            fetch(&mut conn, &url).await?
        };
        // Best effort: the status is already read.
        let _ = conn.close().await;
        anyhow::Ok(status)
    })?;
    if args.json {
        let text = serde_json::to_string_pretty(&status).context("encoding the status")?;
        println!("{text}");
    } else {
        print!("{}", render_text(&status));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_node_prints() {
        assert_eq!(parse_lsn("0/1F4"), Some(500));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("x"), None);
        assert_eq!(
            parse_copy("512/1024 bytes"),
            Some(CopyProgress {
                copied_bytes: 512,
                total_bytes: 1024,
                done: false
            })
        );
        assert!(parse_copy("7/7 bytes").is_some_and(|c| c.done));
        assert!(parse_copy("0/0 bytes").is_some_and(|c| !c.done));
        assert_eq!(parse_interval_ms("00:00:01.500000"), Some(1500.0));
        assert_eq!(parse_interval_ms("01:02:03.000000"), Some(3_723_000.0));
        let age = age_ms(
            &(chrono::Utc::now() - chrono::Duration::seconds(2))
                .format("%Y-%m-%d %H:%M:%S%.6f+00")
                .to_string(),
        );
        assert!(
            age.is_some_and(|ms| (1900.0..3000.0).contains(&ms)),
            "{age:?}"
        );
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    fn args(url: &str, certs_dir: Option<&str>) -> StatusArgs {
        StatusArgs {
            url: url.into(),
            certs_dir: certs_dir.map(PathBuf::from),
            json: false,
            follow: false,
            timeout: None,
        }
    }

    #[test]
    fn certs_dir_fills_in_what_the_url_leaves_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().to_str().expect("utf-8");
        for name in ["client.root.crt", "client.root.key"] {
            std::fs::write(dir.path().join(name), "x").expect("write");
        }
        let url = node_url(&args(DEFAULT_URL, Some(certs))).expect("url");
        assert_eq!(url.sslmode, SslMode::VerifyFull);
        assert_eq!(url.sslrootcert, Some(dir.path().join("ca.crt")));
        assert_eq!(url.sslcert, Some(dir.path().join("client.root.crt")));
        // An explicit sslmode stays; no client certificate for another user.
        let url =
            node_url(&args("postgresql://app@h/db?sslmode=require", Some(certs))).expect("url");
        assert_eq!(url.sslmode, SslMode::Require);
        assert_eq!(url.sslcert, None);
        let err = node_url(&args("mysql://h", None)).expect_err("scheme");
        assert!(err.to_string().starts_with("invalid --url: "), "{err}");
    }

    #[test]
    fn text_masks_and_explains() {
        let status = NodeStatus {
            url: "postgresql://root:********@h:26258/defaultdb?sslmode=disable".into(),
            role: "SECONDARY".into(),
            epoch: 2,
            service: "RUNNING".into(),
            stream: Some("copying".into()),
            lag_lsn: Some(12),
            copy: parse_copy("1048576/4194304 bytes"),
            ..NodeStatus::default()
        };
        let text = render_text(&status);
        assert!(text.contains("role:         SECONDARY, epoch 2"), "{text}");
        assert!(text.contains("1.0 MiB of 4.0 MiB (25%)"), "{text}");
        assert!(text.contains("12 LSNs behind the primary"), "{text}");
        assert!(text.contains("********"), "{text}");
    }
}
