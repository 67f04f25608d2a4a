//! `duet status --follow`: a secondary's initial copy and catch-up as a
//! progress bar, until it streams with no lag. The bar is drawn on stderr
//! when that is a terminal; each change of phase is also printed as a
//! line, so logs and scripts see the progress too.

use std::time::{Duration, Instant};

use anyhow::bail;
use duet_replication::client::PrimaryConnection;
use duet_replication::url::PrimaryUrl;
use indicatif::{ProgressBar, ProgressStyle};

use crate::status::{connect, describe_copy, fetch, human_bytes, NodeStatus};

/// How often the node is asked; its status boards change continuously.
const POLL: Duration = Duration::from_millis(250);

/// What the secondary is doing, as far as --follow cares.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// SERVICE CREATE (or START after a STOP) has not run yet.
    Waiting(&'static str),
    /// The initial copy: bytes so far and in all (0 while unknown).
    Copying { copied: u64, total: u64 },
    /// The copy is done; SERVICE START has not run yet.
    Copied { total: u64 },
    /// Connecting to the primary (or reconnecting after an error).
    Connecting(Option<String>),
    /// Streaming, this many LSNs behind.
    CatchingUp(u64),
    /// Streaming with no lag as of a keepalive older than the stream: the
    /// next one tells whether it is caught up.
    Confirming,
    /// Streaming and caught up.
    Streaming,
}

impl Phase {
    fn of(s: &NodeStatus) -> Phase {
        let stream = s.stream.as_deref().unwrap_or("");
        if let Some(copy) = s.copy.as_ref().filter(|_| stream == "copying") {
            if !copy.done {
                return Phase::Copying {
                    copied: copy.copied_bytes,
                    total: copy.total_bytes,
                };
            }
            if s.service != "RUNNING" {
                return Phase::Copied {
                    total: copy.total_bytes,
                };
            }
        }
        match (s.service.as_str(), stream) {
            ("NONE", _) => Phase::Waiting("REPLICATE SET SERVICE CREATE"),
            ("CREATED", _) => Phase::Waiting("REPLICATE SET SERVICE START"),
            ("STOPPED", _) => {
                Phase::Waiting("REPLICATE SET SERVICE START (the service is stopped)")
            }
            (_, "streaming") => match s.lag_lsn.unwrap_or(0) {
                0 => Phase::Streaming,
                lag => Phase::CatchingUp(lag),
            },
            (_, "error") => Phase::Connecting(s.last_error.clone()),
            _ => Phase::Connecting(None),
        }
    }

    /// Phases whose change is worth a line of its own.
    fn kind(&self) -> u8 {
        match self {
            Phase::Waiting(_) => 0,
            Phase::Copying { total: 0, .. } => 1,
            Phase::Copying { .. } => 2,
            Phase::Copied { .. } => 3,
            Phase::Connecting(None) => 4,
            Phase::Connecting(Some(_)) => 5,
            Phase::CatchingUp(_) => 6,
            Phase::Confirming => 7,
            Phase::Streaming => 8,
        }
    }

    fn announce(&self, s: &NodeStatus) -> String {
        match self {
            Phase::Waiting(what) => format!("waiting for {what} on the node"),
            Phase::Copying { total: 0, .. } => "initial copy from the primary: starting".into(),
            Phase::Copying { total, .. } => {
                format!("initial copy from the primary: {}", human_bytes(*total))
            }
            Phase::Copied { total } => format!(
                "initial copy done ({}); waiting for REPLICATE SET SERVICE START",
                human_bytes(*total)
            ),
            Phase::Connecting(None) => "connecting to the primary".into(),
            Phase::Connecting(Some(error)) => {
                format!("stream error (the node retries by itself): {error}")
            }
            Phase::CatchingUp(lag) => format!("streaming, catching up: {lag} LSNs behind"),
            Phase::Confirming => "streaming; waiting for the primary's next keepalive".into(),
            Phase::Streaming => format!(
                "streaming, caught up at LSN {}",
                s.applied_lsn.as_deref().unwrap_or(&s.lsn)
            ),
        }
    }
}

const COPY_TEMPLATE: &str =
    "{spinner} initial copy [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)";
const CATCH_UP_TEMPLATE: &str = "{spinner} catching up [{bar:40}] {msg}";
const SPINNER_TEMPLATE: &str = "{spinner} {msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Polls the node until its stream is up and caught up; returns the last
/// status. Fails if the node is not a secondary, the connection breaks or
/// `timeout` passes.
pub async fn follow(
    conn: &mut PrimaryConnection,
    url: &PrimaryUrl,
    timeout: Option<Duration>,
) -> anyhow::Result<NodeStatus> {
    let started = Instant::now();
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut last_kind = None;
    // The largest lag seen while catching up: the bar's length.
    let mut max_lag = 0;
    // The primary's last message when streaming was first seen: the lag is
    // measured against the LSN the primary last reported, which is only
    // current once a keepalive arrived on this stream.
    let mut streaming_baseline: Option<Option<String>> = None;
    loop {
        let status = match fetch(conn, url).await {
            Ok(status) => status,
            // A node that installs a fresh copy ends the sessions it had
            // (40001, conflict with recovery): connect again, once.
            Err(first) => match connect(url).await {
                Ok(fresh) => {
                    *conn = fresh;
                    fetch(conn, url).await?
                }
                Err(_) => return Err(first),
            },
        };
        if !status.is_secondary() {
            bar.finish_and_clear();
            bail!(
                "the node is {}, not a SECONDARY: --follow shows a secondary's initial copy and \
                 catch-up (run REPLICATE SET PRIMARY <url> on it first, or drop --follow)",
                status.role
            );
        }
        let mut phase = Phase::of(&status);
        if matches!(phase, Phase::Streaming | Phase::CatchingUp(_)) {
            let baseline = streaming_baseline.get_or_insert_with(|| status.last_message.clone());
            if phase == Phase::Streaming && status.last_message == *baseline {
                phase = Phase::Confirming;
            }
        } else {
            streaming_baseline = None;
        }
        if last_kind != Some(phase.kind()) {
            last_kind = Some(phase.kind());
            let line = phase.announce(&status);
            bar.suspend(|| eprintln!("{line}"));
            match &phase {
                Phase::Copying { total, .. } if *total > 0 => {
                    bar.set_style(style(COPY_TEMPLATE));
                    bar.set_length(*total);
                    bar.reset_eta();
                }
                Phase::CatchingUp(_) => {
                    bar.set_style(style(CATCH_UP_TEMPLATE));
                }
                _ => bar.set_style(style(SPINNER_TEMPLATE)),
            }
        }
        match &phase {
            Phase::Copying { copied, total } if *total > 0 => {
                bar.set_length(*total);
                bar.set_position(*copied);
            }
            Phase::Copying { .. } => bar.set_message("initial copy: starting"),
            Phase::CatchingUp(lag) => {
                max_lag = max_lag.max(*lag);
                bar.set_length(max_lag);
                bar.set_position(max_lag - lag);
                bar.set_message(format!("{lag} LSNs behind"));
            }
            Phase::Streaming => {
                bar.finish_and_clear();
                return Ok(status);
            }
            other => bar.set_message(other.announce(&status)),
        }
        if let Some(limit) = timeout.filter(|t| started.elapsed() >= *t) {
            bar.finish_and_clear();
            let copy = status.copy.as_ref().map(describe_copy);
            bail!(
                "timed out after {} s: {}{}",
                limit.as_secs(),
                phase.announce(&status),
                copy.map(|c| format!(" (initial copy {c})"))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::CopyProgress;

    fn secondary(service: &str, stream: &str) -> NodeStatus {
        NodeStatus {
            role: "SECONDARY".into(),
            service: service.into(),
            stream: Some(stream.into()),
            ..NodeStatus::default()
        }
    }

    #[test]
    fn bar_templates_parse() {
        for template in [COPY_TEMPLATE, CATCH_UP_TEMPLATE, SPINNER_TEMPLATE] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn phases_follow_the_service_and_the_stream() {
        let mut s = secondary("NONE", "-");
        assert!(matches!(Phase::of(&s), Phase::Waiting(w) if w.ends_with("CREATE")));
        s.stream = Some("copying".into());
        s.copy = Some(CopyProgress {
            copied_bytes: 5,
            total_bytes: 10,
            done: false,
        });
        assert_eq!(
            Phase::of(&s),
            Phase::Copying {
                copied: 5,
                total: 10
            }
        );
        s.copy = Some(CopyProgress {
            copied_bytes: 10,
            total_bytes: 10,
            done: true,
        });
        s.service = "CREATED".into();
        assert_eq!(Phase::of(&s), Phase::Copied { total: 10 });
        let mut s = secondary("RUNNING", "streaming");
        s.lag_lsn = Some(3);
        assert_eq!(Phase::of(&s), Phase::CatchingUp(3));
        s.lag_lsn = Some(0);
        assert_eq!(Phase::of(&s), Phase::Streaming);
        let mut s = secondary("RUNNING", "error");
        s.last_error = Some("refused".into());
        assert_eq!(Phase::of(&s), Phase::Connecting(Some("refused".into())));
        assert_eq!(
            Phase::of(&secondary("RUNNING", "starting")),
            Phase::Connecting(None)
        );
    }
}
