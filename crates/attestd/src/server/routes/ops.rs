//! Operational routes: health, readiness, metrics, JWKS and the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::Value;
use utoipa::OpenApi;

use crate::server::dto::Health;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::openapi::ApiDoc;
use crate::server::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        apple: state.apple.health_view(),
    })
}

/// Readiness: the database commits a write (a one-row probe; one result a second is shared by
/// every caller).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "not_ready: the database does not commit writes (details.reason: database_write_failed or database_write_timeout)", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Health>, ApiError> {
    state
        .readiness
        .check(&state.store)
        .await
        .map_err(|not_ready| ApiError::NotReady {
            reason: not_ready.reason(),
        })?;
    Ok(Json(Health {
        status: "ready",
        apple: state.apple.health_view(),
    }))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    state.metrics.run_upkeep();
    // The list's age grows between fetches: measured at each scrape.
    state
        .android
        .revocation
        .publish(attest_store::whole_seconds(time::OffsetDateTime::now_utc()));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The public keys that verify issued JWTs (RFC 7517 JWK Set).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "JWK Set", body = Object)))]
pub async fn jwks(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(state.tokens.jwks())
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Known routes, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
