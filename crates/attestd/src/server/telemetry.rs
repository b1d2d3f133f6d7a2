//! Logs, Prometheus metrics and the per-request middleware that feeds them.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use super::config::{Config, LogFormat};
use super::error::ApiError;
use super::state::AppState;

/// Request latency buckets in seconds: assertions take well under a millisecond of CPU,
/// attestations a few milliseconds; the tail is the database.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Risk score buckets: the band edges (20, 50, 75) and a few steps inside each band.
const RISK_SCORE_BUCKETS: &[f64] = &[
    0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 75.0, 90.0, 100.0,
];

/// Installs the global `tracing` subscriber (text or JSON lines on stderr). Later calls do
/// nothing, so tests may start several servers in one process.
pub fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // An error only means a subscriber is already installed.
    drop(result);
}

/// The process-wide Prometheus recorder. The `metrics` facade has one global recorder, so
/// every server in the process (tests start several) shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets_for_metric(
                    Matcher::Full("attestd_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("attestd_risk_score".into()),
                        RISK_SCORE_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "attestd_requests_total",
        "HTTP requests by route and status"
    );
    metrics::describe_histogram!(
        "attestd_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route"
    );
    metrics::describe_counter!(
        "attestd_verifications_total",
        "Attestation and assertion verifications by kind and result code (ok on success)"
    );
    metrics::describe_counter!(
        "attestd_decisions_total",
        "Policy decisions by app, outcome and failed rule (reason=none when none failed); a \
         decision with several failed rules is counted once per rule"
    );
    metrics::describe_histogram!(
        "attestd_risk_score",
        "Risk scores (0-100) of attestations and assertions by app and kind"
    );
    metrics::describe_counter!(
        "attestd_risk_factors_total",
        "Risk factors that triggered, by app and factor"
    );
    metrics::describe_counter!(
        "attestd_keys_superseded_total",
        "Keys replaced by a re-attestation of the same device or user"
    );
    metrics::describe_counter!(
        "attestd_keys_expired_total",
        "Keys expired after being unused longer than key_idle_expiry"
    );
    metrics::describe_counter!(
        "attestd_refusals_total",
        "Refused requests by app, proof (possession: counted against the key's device too; \
         none: against the sender only) and logged (full, or counted only)"
    );
    metrics::describe_counter!(
        "attestd_rate_limited_total",
        "Requests answered 429 rate_limited, by limit (address, key)"
    );
    metrics::describe_gauge!(
        "attestd_rate_limit_instances",
        "Instances the rate limits are split between"
    );
    metrics::describe_counter!(
        "attestd_webhook_deliveries_total",
        "Webhook delivery attempts by event and result (delivered, retry, failed)"
    );
}

/// Counts one verification outcome: `kind` is `attestation` or `assertion`, `result` is `ok`
/// or the stable error code.
pub fn count_verification(kind: &'static str, result: &'static str) {
    metrics::counter!("attestd_verifications_total", "kind" => kind, "result" => result)
        .increment(1);
}

/// Middleware: counts every request and times it, labelled by route template (never the raw
/// path, which holds key ids) and status code.
pub async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status().as_u16().to_string();
    metrics::counter!("attestd_requests_total", "route" => route.clone(), "code" => code)
        .increment(1);
    metrics::histogram!("attestd_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Middleware: answers 503 `timeout` when a request runs longer than the configured limit.
pub async fn enforce_timeout(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(state.config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}
