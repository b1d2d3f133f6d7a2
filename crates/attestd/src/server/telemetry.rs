//! Logs, Prometheus metrics and the per-request middleware that feeds them.
//!
//! A request that fails on the server side is logged once: [`record_request`] writes one line
//! per 5xx answer (WARN when a dependency failed or timed out, ERROR for a server bug), with
//! every cause that code deeper down noted with [`server_failure`] while serving it. Causes
//! noted during a request that was still answered (a 4xx refusal whose decision could not be
//! logged) make one line too. Client errors are never logged above DEBUG.

use std::cell::RefCell;
use std::fmt;
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
    metrics::describe_gauge!(
        "attestd_connections_open",
        "Client connections open (at most max_connections)"
    );
    metrics::describe_counter!(
        "attestd_connections_timed_out_total",
        "Connections closed by the listener, by timeout (header_read: no complete request \
         head in time; idle: no request on a keep-alive connection in time)"
    );
    metrics::describe_counter!(
        "attestd_accept_errors_total",
        "Failed accepts that paused the listener (out of file descriptors or memory)"
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

/// How bad a server-side failure is, which decides the level of its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A dependency failed or was too slow (database, Apple): WARN. Operators fix the
    /// dependency; the request may be retried.
    Dependency,
    /// A server bug or an inconsistency in stored data: ERROR.
    Bug,
}

/// The stable code of an error answer, attached to the response for [`record_request`]'s log
/// line.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode {
    /// The body's `code`.
    pub code: &'static str,
    /// Whether a 5xx with this code is logged per request. `/readyz`'s `not_ready` is not: a
    /// load balancer polls it, and the probe logs when readiness changes.
    pub logged: bool,
}

/// The server-side failures noted while one request is served.
#[derive(Debug, Default)]
struct Failures {
    severity: Option<Severity>,
    /// What failed and the error, in the order they happened.
    causes: Vec<(&'static str, String)>,
}

/// At most this many causes are kept per request: the first one is the one that matters.
const MAX_CAUSES: usize = 4;

tokio::task_local! {
    static FAILURES: RefCell<Failures>;
}

/// Notes a server-side failure: `what` failed with `error`. Inside a request it becomes part of
/// that request's one log line (see [`record_request`]); elsewhere (background tasks) it is
/// logged at once.
pub fn server_failure(severity: Severity, what: &'static str, error: &dyn fmt::Display) {
    let noted = FAILURES.try_with(|failures| {
        let mut failures = failures.borrow_mut();
        failures.severity = failures.severity.max(Some(severity));
        if failures.causes.len() < MAX_CAUSES {
            failures.causes.push((what, error.to_string()));
        }
    });
    if noted.is_err() {
        match severity {
            Severity::Dependency => tracing::warn!(error = %error, "{what}"),
            Severity::Bug => tracing::error!(error = %error, "{what}"),
        }
    }
}

/// Middleware: counts every request and times it, labelled by route template (never the raw
/// path, which holds key ids) and status code; logs a server-side failure once (see the module
/// documentation).
pub async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let (response, failures) = FAILURES
        .scope(RefCell::new(Failures::default()), async move {
            let response = next.run(request).await;
            (response, FAILURES.with(RefCell::take))
        })
        .await;
    let status = response.status();
    let error = response.extensions().get::<ErrorCode>().copied();
    log_failure(method.as_str(), &route, status, error, failures);
    let code = status.as_u16().to_string();
    metrics::counter!("attestd_requests_total", "route" => route.clone(), "code" => code)
        .increment(1);
    metrics::histogram!("attestd_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The level of a request's log line, and whether the request itself failed: `None` when it
/// gets no line (answered, nothing noted; 4xx; `not_ready`).
fn line_severity(
    status: axum::http::StatusCode,
    error: Option<ErrorCode>,
    noted: Option<Severity>,
) -> Option<(Severity, bool)> {
    let answer = if !status.is_server_error() || error.is_some_and(|error| !error.logged) {
        None
    } else if status == axum::http::StatusCode::INTERNAL_SERVER_ERROR {
        Some(Severity::Bug)
    } else {
        Some(Severity::Dependency)
    };
    answer
        .max(noted)
        .map(|severity| (severity, answer.is_some()))
}

/// The one log line of a request that failed on the server side, or that noted a failure.
fn log_failure(
    method: &str,
    route: &str,
    status: axum::http::StatusCode,
    error: Option<ErrorCode>,
    failures: Failures,
) {
    let Some((severity, failed)) = line_severity(status, error, failures.severity) else {
        return;
    };
    let code = error.map_or("", |error| error.code);
    let mut causes = failures.causes.into_iter();
    let (cause, error) = causes.next().unwrap_or(("", String::new()));
    let also: Vec<String> = causes
        .map(|(what, error)| format!("{what}: {error}"))
        .collect();
    let also = also.join("; ");
    let status = status.as_u16();
    let message = if failed {
        "request failed on the server side"
    } else {
        "request answered, but a side effect failed on the server side"
    };
    match severity {
        Severity::Dependency => {
            tracing::warn!(method, route, status, code, cause, error, also, "{message}");
        }
        Severity::Bug => {
            tracing::error!(method, route, status, code, cause, error, also, "{message}");
        }
    }
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_request_gets_one_line_at_the_level_of_its_worst_failure() {
        let code = |code, logged| Some(ErrorCode { code, logged });
        let (dependency, bug) = (Some(Severity::Dependency), Some(Severity::Bug));
        for (status, error, noted, expected) in [
            // Server side: a bug is ERROR, a dependency (database, timeout) WARN.
            (
                500,
                code("internal_error", true),
                None,
                Some((Severity::Bug, true)),
            ),
            (
                503,
                code("unavailable", true),
                dependency,
                Some((Severity::Dependency, true)),
            ),
            (
                503,
                code("timeout", true),
                None,
                Some((Severity::Dependency, true)),
            ),
            (
                503,
                code("unavailable", true),
                bug,
                Some((Severity::Bug, true)),
            ),
            // Readiness answers are logged when readiness changes, not per poll.
            (503, code("not_ready", false), None, None),
            // Client errors and successes: no line, unless a side effect failed.
            (400, code("malformed_request", true), None, None),
            (404, code("not_found", true), None, None),
            (200, None, None, None),
            (
                403,
                code("policy_denied", true),
                dependency,
                Some((Severity::Dependency, false)),
            ),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                line_severity(status, error, noted),
                expected,
                "{status} {error:?}"
            );
        }
    }

    #[test]
    fn failures_outside_a_request_are_logged_at_once_and_inside_one_are_kept() {
        // Outside a request scope: logged directly (no panic, nothing kept).
        server_failure(Severity::Dependency, "background", &"error");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let failures = runtime.block_on(FAILURES.scope(RefCell::new(Failures::default()), async {
            for n in 0..6 {
                server_failure(Severity::Dependency, "first", &n);
            }
            server_failure(Severity::Bug, "worse", &"bug");
            FAILURES.with(RefCell::take)
        }));
        assert_eq!(failures.severity, Some(Severity::Bug));
        assert_eq!(failures.causes.len(), MAX_CAUSES);
        assert_eq!(failures.causes[0], ("first", "0".to_owned()));
    }
}
