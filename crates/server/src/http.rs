//! The HTTP endpoint (`http_listen`): role-aware health checks for load
//! balancers and Prometheus metrics.
//!
//! * `GET /health`: 200 while the node serves SQL.
//! * `GET /primary`: 200 on a node that accepts writes (PRIMARY, or a
//!   standalone DEFAULT node), 503 on a secondary.
//! * `GET /replica`: 200 on a secondary whose stream from its primary is
//!   up (streaming), 503 otherwise.
//! * `GET /metrics`: Prometheus text format.
//!
//! The body of each check names the role (and the stream state), for
//! people reading it with curl.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use duet_replication::{Replication, Role};

/// The process's metrics recorder (one per process: the `metrics` facade
/// has one global recorder).
pub(crate) fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 10.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_gauge!("duet_connections", "Client connections open now");
    metrics::describe_counter!("duet_connections_total", "Client connections accepted");
    metrics::describe_counter!("duet_commits_total", "Transactions committed");
    metrics::describe_histogram!(
        "duet_commit_seconds",
        "Commit latency: the write, its fsync and any synchronous replication wait"
    );
    metrics::describe_counter!("duet_statements_total", "Statements executed, by kind");
    metrics::describe_gauge!(
        "duet_role",
        "Replication role: 0 DEFAULT, 1 PRIMARY, 2 SECONDARY"
    );
    metrics::describe_gauge!(
        "duet_epoch",
        "Replication epoch (bumped by every promotion)"
    );
    metrics::describe_gauge!(
        "duet_lsn",
        "The node's latest LSN (RocksDB sequence number)"
    );
    metrics::describe_gauge!(
        "duet_replication_lag_lsn",
        "On a secondary: LSNs its primary is ahead of what it applied"
    );
    metrics::describe_gauge!(
        "duet_replication_secondaries",
        "On a primary: secondaries connected now"
    );
    metrics::describe_gauge!(
        "duet_replication_replay_lag_seconds",
        "On a primary, per secondary: time from sending a batch until the secondary applied it (last measured)"
    );
    metrics::describe_gauge!(
        "duet_replication_last_message_age_seconds",
        "On a secondary: seconds since the last message from its primary"
    );
    metrics::describe_gauge!(
        "duet_slot_wal_retained_bytes",
        "Bytes of WAL kept for each replication slot"
    );
    metrics::describe_gauge!(
        "duet_initial_copy_bytes",
        "On a secondary copying from its primary: bytes received so far"
    );
    metrics::describe_gauge!(
        "duet_initial_copy_total_bytes",
        "On a secondary copying from its primary: bytes to copy in all"
    );
}

/// Serves HTTP on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    replication: Arc<Replication>,
    mut shutdown: watch::Receiver<bool>,
) {
    let handle = metrics_handle();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("HTTP accept failed: {e}");
                continue;
            }
        };
        let replication = replication.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let replication = replication.clone();
                async move { Ok::<_, Infallible>(respond(&req, &replication, handle)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, "HTTP connection ended: {e}");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

fn respond(
    req: &Request<Incoming>,
    replication: &Replication,
    metrics: &PrometheusHandle,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    let role = replication.role();
    let stream = match replication.status.receiver().state {
        s if s.is_empty() || role != Role::Secondary => "-".to_string(),
        s => s,
    };
    let text = |ok: bool, body: String| {
        let status = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        reply(status, "text/plain; charset=utf-8", body)
    };
    match req.uri().path() {
        "/health" => text(true, format!("ok: {role}\n")),
        "/primary" => text(role != Role::Secondary, format!("role: {role}\n")),
        "/replica" => {
            let streaming = role == Role::Secondary && stream == "streaming";
            text(streaming, format!("role: {role}, stream: {stream}\n"))
        }
        "/metrics" => {
            record_replication(replication);
            duet_sql::session::metrics::publish();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Replication gauges, read when Prometheus scrapes.
fn record_replication(replication: &Replication) {
    let state = replication.state();
    let receiver = replication.status.receiver();
    metrics::gauge!("duet_role").set(match state.role {
        Role::Default => 0.0,
        Role::Primary => 1.0,
        Role::Secondary => 2.0,
    });
    metrics::gauge!("duet_epoch").set(state.epoch as f64);
    metrics::gauge!("duet_lsn").set(replication.local_lsn() as f64);
    metrics::gauge!("duet_replication_lag_lsn")
        .set(receiver.primary_lsn.saturating_sub(receiver.applied_lsn) as f64);
    let senders = replication.status.senders();
    metrics::gauge!("duet_replication_secondaries").set(senders.len() as f64);
    for sender in &senders {
        if let Some(lag) = sender.replay_lag {
            metrics::gauge!("duet_replication_replay_lag_seconds", "application_name" => sender.application_name.clone())
                .set(lag.as_secs_f64());
        }
    }
    if let Some(age) = receiver.last_message.and_then(|t| t.elapsed().ok()) {
        metrics::gauge!("duet_replication_last_message_age_seconds").set(age.as_secs_f64());
    }
    for (slot, bytes) in replication.status.slot_wal_bytes() {
        metrics::gauge!("duet_slot_wal_retained_bytes", "slot" => slot).set(bytes as f64);
    }
    if let Some((done, total)) = receiver.copy_progress {
        metrics::gauge!("duet_initial_copy_bytes").set(done as f64);
        metrics::gauge!("duet_initial_copy_total_bytes").set(total as f64);
    }
}
