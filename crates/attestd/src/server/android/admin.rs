//! The admin route of `server::android`: the status list held. Mounted behind the admin bearer
//! token.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::revocation::age;
use crate::server::dto::rfc3339;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::state::AppState;

/// Every admin route of `server::android`.
pub fn admin_routes() -> Router<Arc<AppState>> {
    Router::new().route("/admin/v1/android/revocation-list", get(revocation_list))
}

/// The Android attestation status list this instance verifies with.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationListView {
    /// Whether this instance fetches the list (`[android] revocation_list_enabled`).
    pub enabled: bool,
    /// Where it is fetched.
    pub source_url: String,
    /// RFC 3339 time the list held was fetched (or confirmed by a 304); `null` before the
    /// first list.
    pub fetched_at: Option<String>,
    /// Seconds since then; `null` before the first list.
    pub age_seconds: Option<u64>,
    /// Older than this, Android attestations fail closed (`revocation_list_stale`).
    pub max_age_seconds: u64,
    /// Whether Android attestations fail closed now: no list, or one older than the maximum
    /// age.
    pub stale: bool,
    /// Listed certificates (revoked, suspended or other); `null` before the first list.
    pub entries: Option<usize>,
    /// The list's ETag, sent as `If-None-Match` by the next fetch.
    pub etag: Option<String>,
    /// RFC 3339 time of the last fetch attempt of any instance sharing the database (as read
    /// last by this one).
    pub last_attempt_at: Option<String>,
    /// `fetched`, `not_modified` or the error code of that attempt (`timeout`, `connect`,
    /// `transport`, `http_500`, `http_4xx`, ..., `too_large`, `unparsable`).
    pub last_attempt_status: Option<String>,
}

/// The status list held: its age, size and the last fetch attempt.
#[utoipa::path(
    get,
    path = "/admin/v1/android/revocation-list",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The status list held", body = RevocationListView),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found when the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn revocation_list(
    State(state): State<Arc<AppState>>,
) -> Result<Json<RevocationListView>, ApiError> {
    let lists = &state.android.revocation;
    let settings = lists.settings();
    let now = time::OffsetDateTime::now_utc();
    let held = lists.held();
    let age = held.as_ref().map(|held| age(held.fetched_at, now));
    let attempt = lists.last_attempt();
    Ok(Json(RevocationListView {
        enabled: settings.enabled,
        source_url: settings.url.clone(),
        fetched_at: held.as_ref().map(|held| rfc3339(held.fetched_at)),
        age_seconds: age.map(|age| age.as_secs()),
        max_age_seconds: settings.max_age.as_secs(),
        stale: age.is_none_or(|age| age > settings.max_age),
        entries: held.as_ref().map(|held| held.list.len()),
        etag: held.as_ref().and_then(|held| held.etag.clone()),
        last_attempt_at: attempt.as_ref().map(|attempt| rfc3339(attempt.at)),
        last_attempt_status: attempt.map(|attempt| attempt.status),
    }))
}
