//! The HTTP routes and the middleware stack around them.

pub mod admin;
pub mod hosted;
pub mod insights;
pub mod ops;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use super::state::AppState;
use super::telemetry;

/// The `X-App-Id` header, when present and valid UTF-8.
pub fn app_id_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-app-id")
        .and_then(|value| value.to_str().ok())
}

/// Every route, with body limit, timeout, metrics and request tracing.
pub fn router(state: Arc<AppState>) -> Router {
    let admin = Router::new()
        .route("/admin/v1/devices", get(admin::list_devices))
        .route("/admin/v1/devices/{keyId}", get(admin::device))
        .route(
            "/admin/v1/devices/{keyId}/revoke",
            post(admin::revoke_device),
        )
        .route("/admin/v1/devices/{keyId}/link", post(admin::link_device))
        .route(
            "/admin/v1/signing-keys/rotate",
            post(admin::rotate_signing_key),
        )
        .route("/admin/v1/decisions", get(insights::decisions))
        .route("/admin/v1/apps/{appId}/summary", get(insights::app_summary))
        .route("/admin/v1/apps/{appId}/senders", get(admin::app_senders))
        .route("/admin/v1/senders/{address}", get(admin::sender))
        .route(
            "/admin/v1/webhooks/deliveries",
            get(insights::webhook_deliveries),
        )
        .merge(super::apple::admin::admin_routes())
        .merge(super::android::admin::admin_routes())
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            admin::require_admin,
        ));

    let body_limit = state.config.body_limit;
    Router::new()
        .route("/v1/challenges", post(v1::create_challenge))
        .route("/v1/attestations", post(v1::create_attestation))
        .route("/v1/assertions", post(v1::create_assertion))
        .route("/v1/tokens", post(v1::create_token))
        .route("/v1/device-checks", post(v1::create_device_check))
        .route("/api/v1/attestation/challenge", get(hosted::challenge))
        .route("/api/v1/attestation/validate", post(hosted::validate))
        .route("/.well-known/jwks.json", get(ops::jwks))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .merge(admin)
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            telemetry::enforce_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            super::limits::limit_addresses,
        ))
        .layer(middleware::from_fn(telemetry::record_request))
        // DEBUG spans and events only: a 5xx is logged once, by `record_request`, not also as
        // the trace layer's ERROR, which any client could trigger.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}
