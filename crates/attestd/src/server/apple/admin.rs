//! The admin routes of `server::apple`: a key's receipt refresh state, and DeviceCheck (see
//! [`super::device_check`]). Mounted behind the admin bearer token.

use std::sync::Arc;

use attest_store::{ReceiptRefreshState, RefreshStore, Store};
use attest_types::KeyId;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::device_check;
use crate::server::dto::rfc3339;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::extract::{ApiPath, decode_key_id, encode_key_id};
use crate::server::state::AppState;

/// Every admin route of `server::apple`.
pub fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/admin/v1/devices/{keyId}/receipt-refresh",
            get(receipt_refresh),
        )
        .route(
            "/admin/v1/devicecheck/validate",
            post(device_check::validate),
        )
        .route("/admin/v1/devicecheck/query", post(device_check::query))
        .route("/admin/v1/devicecheck/update", post(device_check::update))
}

/// Where a key stands in the receipt refresh schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptRefreshView {
    /// Key id (standard base64).
    pub key_id: String,
    /// Whether the key is in the schedule yet (new keys join within one poll interval).
    pub enrolled: bool,
    /// RFC 3339 time of the next exchange with Apple; `null` once refreshing stopped (revoked
    /// key, unreadable receipt) or before enrolment.
    pub next_refresh_at: Option<String>,
    /// Failed exchanges since Apple last answered with a receipt or 304.
    pub attempts: u32,
    /// RFC 3339 time of the last exchange.
    pub last_attempt_at: Option<String>,
    /// `refreshed`, `not_modified`, `key_revoked` or the error code of the last exchange.
    pub last_status: Option<String>,
    /// Receipts obtained from Apple so far.
    pub refreshes: u64,
    /// RFC 3339 time the last receipt arrived.
    pub last_refreshed_at: Option<String>,
    /// Apple's risk metric from the latest receipt (also the device's `receiptRiskMetric`).
    pub risk_metric: Option<i64>,
    /// RFC 3339 time that metric was received.
    pub risk_metric_at: Option<String>,
    /// RFC 3339 creation, Not Before and Expiration of the stored receipt.
    pub receipt_created_at: Option<String>,
    /// Apple answers 304 to an exchange before this time.
    pub receipt_not_before: Option<String>,
    /// After this time the receipt can no longer be exchanged.
    pub receipt_expires_at: Option<String>,
    /// The instance that handled the key last.
    pub lease_owner: Option<String>,
    /// RFC 3339 end of the current claim, while an instance works on the key.
    pub lease_until: Option<String>,
}

impl ReceiptRefreshView {
    fn of(key_id: &KeyId, state: Option<&ReceiptRefreshState>) -> Self {
        let when = |at: Option<time::OffsetDateTime>| at.map(rfc3339);
        Self {
            key_id: encode_key_id(key_id),
            enrolled: state.is_some(),
            next_refresh_at: when(state.and_then(|s| s.next_refresh_at)),
            attempts: state.map_or(0, |s| s.attempts),
            last_attempt_at: when(state.and_then(|s| s.last_attempt_at)),
            last_status: state.and_then(|s| s.last_status.clone()),
            refreshes: state.map_or(0, |s| s.refreshes),
            last_refreshed_at: when(state.and_then(|s| s.last_refreshed_at)),
            risk_metric: state.and_then(|s| s.risk_metric),
            risk_metric_at: when(state.and_then(|s| s.risk_metric_at)),
            receipt_created_at: when(state.and_then(|s| s.receipt_created_at)),
            receipt_not_before: when(state.and_then(|s| s.receipt_not_before)),
            receipt_expires_at: when(state.and_then(|s| s.receipt_expires_at)),
            lease_owner: state.and_then(|s| s.lease_owner.clone()),
            lease_until: when(state.and_then(|s| s.lease_until)),
        }
    }
}

/// A key's receipt refresh state: schedule, last outcome, risk metric.
#[utoipa::path(
    get,
    path = "/admin/v1/devices/{keyId}/receipt-refresh",
    tag = "admin",
    params(("keyId" = crate::server::dto::wire::KeyId, Path, description = "Key id, base64url or percent-encoded base64")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The key's refresh state", body = ReceiptRefreshView),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "device_not_found, or not_found when the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn receipt_refresh(
    State(state): State<Arc<AppState>>,
    ApiPath(key_id): ApiPath<String>,
) -> Result<Json<ReceiptRefreshView>, ApiError> {
    let key_id = decode_key_id("keyId", &key_id)?;
    if state.store.device_key(key_id).await?.is_none() {
        return Err(ApiError::DeviceNotFound);
    }
    let refresh = state.store.refresh_state(key_id).await?;
    Ok(Json(ReceiptRefreshView::of(&key_id, refresh.as_ref())))
}
