//! The admin API under `/admin/v1`, behind a bearer token (absent token setting: 404).

use std::sync::Arc;

use attest_store::{
    DecisionFilter, FailureSubject, KeyFilter, MAX_PAGE_SIZE, SenderFilter, Store, StoreError,
};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use time::OffsetDateTime;

use crate::server::dto::{
    DecisionLogView, DeviceDetail, DeviceIntelligence, DeviceList, DeviceQuery, DeviceView,
    RotatedKey, SenderList, SenderQuery, history_order, rfc3339, senders_of,
};
use crate::server::error::{ApiError, ErrorBody};
use crate::server::extract::{ApiPath, decode_key_id};
use crate::server::flows::now;
use crate::server::state::AppState;

const DEFAULT_PAGE_SIZE: u32 = 100;

/// A page's `limit`: 1 to [`MAX_PAGE_SIZE`] (100 when absent); anything else is 400, as the
/// document's bounds say (it used to be clamped, which made a schema-violating request pass).
pub(super) fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit @ 1..=MAX_PAGE_SIZE) => Ok(limit),
        Some(_) => Err(ApiError::field(
            "limit",
            format!("limit must be 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

/// A page's `offset`: 0 to `i64::MAX` (what a database offset holds).
fn page_offset(offset: Option<u64>) -> Result<u64, ApiError> {
    let offset = offset.unwrap_or(0);
    if i64::try_from(offset).is_err() {
        return Err(ApiError::field(
            "offset",
            format!("offset must be 0 to {}", i64::MAX),
        ));
    }
    Ok(offset)
}
/// Decisions shown with a device.
const RECENT_DECISIONS: u32 = 20;

/// Middleware: 404 when no admin token is configured, 401 unless the request carries
/// `Authorization: Bearer <token>` (compared in constant time).
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(ApiError::NotFound);
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token)
            if verify_slices_are_equal(token.as_bytes(), expected.expose().as_bytes()).is_ok() =>
        {
            Ok(next.run(request).await)
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// Lists attested keys, oldest first; `userId` / `deviceId` list one user's or one device's keys
/// over time (superseded and revoked ones included).
#[utoipa::path(
    get,
    path = "/admin/v1/devices",
    tag = "admin",
    params(DeviceQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of keys", body = DeviceList),
        (status = 400, description = "malformed_request: a filter holds a NUL character", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found: the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn list_devices(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DeviceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeviceList>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::MalformedRequest {
        message: rejection.body_text(),
        field: None,
    })?;
    query.check_text()?;
    let limit = page_size(query.limit)?;
    let offset = page_offset(query.offset)?;
    let keys = if query.user_id.is_some() || query.device_id.is_some() {
        let filter = KeyFilter {
            app_id: query.app_id.clone(),
            user_id: query.user_id.clone(),
            device_id: query.device_id.clone(),
            ..KeyFilter::default()
        };
        // A user's or device's history is short; the filter query has no offset.
        let mut keys = state.store.find_device_keys(&filter, MAX_PAGE_SIZE).await?;
        keys.drain(
            ..usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(keys.len()),
        );
        keys.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        keys
    } else {
        state
            .store
            .list_device_keys(query.app_id.as_deref(), limit, offset)
            .await?
    };
    Ok(Json(DeviceList {
        devices: keys.iter().map(DeviceView::from).collect(),
        limit,
        offset,
    }))
}

/// One attested key with its device's intelligence, key history (the supersession chain) and
/// recent decisions. The key id goes in the path as base64url (or percent-encoded base64).
#[utoipa::path(
    get,
    path = "/admin/v1/devices/{keyId}",
    tag = "admin",
    params(("keyId" = crate::server::dto::wire::KeyId, Path, description = "Key id, base64url or percent-encoded base64")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The key and its device", body = DeviceDetail),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "device_not_found, or not_found when the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn device(
    State(state): State<Arc<AppState>>,
    ApiPath(key_id): ApiPath<String>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let key_id = decode_key_id("keyId", &key_id)?;
    let device = state
        .store
        .device_key(key_id)
        .await?
        .ok_or(ApiError::DeviceNotFound)?;
    let keys = state
        .store
        .find_device_keys(
            &KeyFilter {
                app_id: Some(device.app_id.clone()),
                device_id: Some(device.device_id.clone()),
                ..KeyFilter::default()
            },
            MAX_PAGE_SIZE,
        )
        .await?;
    // Refusals that proved possession of one of the device's keys; those that proved nothing
    // are their senders' (`GET /admin/v1/senders/{address}`).
    let subject = FailureSubject::Device {
        app_id: device.app_id.clone(),
        device_id: device.device_id.clone(),
    };
    let failures = state
        .store
        .tallied_failures(&subject, time::OffsetDateTime::UNIX_EPOCH)
        .await?;
    let filter = DecisionFilter {
        app_id: Some(device.app_id.clone()),
        device_id: Some(device.device_id.clone()),
        ..DecisionFilter::default()
    };
    let decisions = state
        .store
        .list_decisions(&filter, RECENT_DECISIONS)
        .await?;
    Ok(Json(DeviceDetail {
        key: DeviceView::from(&device),
        intelligence: DeviceIntelligence::of(&device, &keys, &failures),
        keys: history_order(keys).iter().map(DeviceView::from).collect(),
        recent_decisions: decisions.iter().map(DecisionLogView::from).collect(),
    }))
}

/// Revokes a key: its assertions are refused from now on (`key_revoked`).
#[utoipa::path(
    post,
    path = "/admin/v1/devices/{keyId}/revoke",
    tag = "admin",
    params(("keyId" = crate::server::dto::wire::KeyId, Path, description = "Key id, base64url or percent-encoded base64")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The revoked key", body = DeviceView),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "device_not_found, or not_found when the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn revoke_device(
    State(state): State<Arc<AppState>>,
    ApiPath(key_id): ApiPath<String>,
) -> Result<Json<DeviceView>, ApiError> {
    let key_id = decode_key_id("keyId", &key_id)?;
    match state.store.revoke_device_key(key_id, now()).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(ApiError::DeviceNotFound),
        Err(error) => return Err(error.into()),
    }
    tracing::info!(key_id = %hex::encode(key_id.0), "device key revoked");
    let device = state
        .store
        .device_key(key_id)
        .await?
        .ok_or(ApiError::DeviceNotFound)?;
    Ok(Json(DeviceView::from(&device)))
}

/// Starts signing with a new key; earlier keys stay in the JWKS until their tokens expire.
#[utoipa::path(
    post,
    path = "/admin/v1/signing-keys/rotate",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Rotated", body = RotatedKey),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found: the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn rotate_signing_key(
    State(state): State<Arc<AppState>>,
) -> Result<Json<RotatedKey>, ApiError> {
    let rotated = state.tokens.rotate(&state.store).await?;
    tracing::info!(kid = %rotated.kid, "JWT signing key rotated");
    Ok(Json(rotated))
}

/// Links a key to a user and/or device on the operator's (or backend's) word, for a key
/// attested before its backend could vouch with a link token (see docs/api.md, "Linking"). The
/// key joins the device, whose lineage settles as after an attestation: the key stored last
/// stays active, the others of its environment are superseded (`key.superseded` webhooks).
#[utoipa::path(
    post,
    path = "/admin/v1/devices/{keyId}/link",
    tag = "admin",
    params(("keyId" = crate::server::dto::wire::KeyId, Path, description = "Key id, base64url or percent-encoded base64")),
    request_body = crate::server::dto::LinkKeyBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The linked key and the keys it superseded", body = crate::server::dto::LinkedKeyView),
        (status = 400, description = "malformed_request (neither userId nor deviceId, bad id)", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "key_revoked, key_superseded, key_expired: a retired key is never moved", body = ErrorBody),
        (status = 404, description = "device_not_found, unknown_app (the key's app is no longer configured), or not_found when the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn link_device(
    State(state): State<Arc<AppState>>,
    ApiPath(key_id): ApiPath<String>,
    crate::server::extract::ApiJson(body): crate::server::extract::ApiJson<
        crate::server::dto::LinkKeyBody,
    >,
) -> Result<Json<crate::server::dto::LinkedKeyView>, ApiError> {
    use crate::server::context::client_id;
    let input = crate::server::flows::LinkKeyInput {
        key_id: decode_key_id("keyId", &key_id)?,
        user_id: client_id("userId", body.user_id.as_deref())?,
        device_id: client_id("deviceId", body.device_id.as_deref())?,
    };
    let linked = crate::server::flows::link_key(&state, input).await?;
    Ok(Json(crate::server::dto::LinkedKeyView {
        key: DeviceView::from(&linked.device),
        supersedes: linked
            .superseded
            .iter()
            .map(crate::server::extract::encode_key_id)
            .collect(),
    }))
}

/// The refusals counted against one client address, per app, in the counting windows since
/// `since`: what a sender tried, including what it sent in other keys' names (those refusals
/// never count against the keys' devices).
#[utoipa::path(
    get,
    path = "/admin/v1/senders/{address}",
    tag = "admin",
    params(("address" = String, Path, description = "An IPv4 or IPv6 address"), SenderQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The address's refusals, one entry per app", body = SenderList),
        (status = 400, description = "malformed_request: not an address, or a bad since", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found: the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn sender(
    State(state): State<Arc<AppState>>,
    ApiPath(address): ApiPath<String>,
    query: Result<Query<SenderQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SenderList>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::MalformedRequest {
        message: rejection.body_text(),
        field: None,
    })?;
    let address: std::net::IpAddr = address
        .trim()
        .parse()
        .map_err(|_| ApiError::field("address", "not an IPv4 or IPv6 address"))?;
    let limit = page_size(query.limit)?;
    let since = sender_since(&state, query.since.as_deref())?;
    // The address as the server stores it (see `RequestContext::ip_text`).
    let address = address.to_canonical().to_string();
    let mut lines = Vec::new();
    // A sender is an address and an app: the configured apps, and "" for requests that named
    // no configured app (unknown keys).
    for app_id in state.apps.ids().into_iter().chain([""]) {
        let filter = SenderFilter {
            app_id: app_id.to_owned(),
            client_ip: Some(address.clone()),
            since,
            limit: MAX_PAGE_SIZE,
        };
        lines.extend(state.store.sender_failures(&filter).await?);
    }
    Ok(Json(SenderList {
        since: rfc3339(since),
        senders: senders_of(&lines, usize::try_from(limit).unwrap_or(usize::MAX)),
    }))
}

/// The senders of an app's refusals, most refusals first: who is probing the app, and with
/// what codes.
#[utoipa::path(
    get,
    path = "/admin/v1/apps/{appId}/senders",
    tag = "admin",
    params(("appId" = String, Path, description = "A configured App ID"), SenderQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The app's senders", body = SenderList),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "unknown_app, or not_found when the admin API is disabled", body = ErrorBody),
    )
)]
pub async fn app_senders(
    State(state): State<Arc<AppState>>,
    ApiPath(app_id): ApiPath<String>,
    query: Result<Query<SenderQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SenderList>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::MalformedRequest {
        message: rejection.body_text(),
        field: None,
    })?;
    crate::server::dto::check_text(&[("appId", Some(&app_id))])?;
    if state.apps.get(&app_id).is_none() {
        return Err(ApiError::UnknownApp(app_id));
    }
    let since = sender_since(&state, query.since.as_deref())?;
    let filter = SenderFilter {
        app_id,
        client_ip: None,
        since,
        limit: MAX_PAGE_SIZE,
    };
    let lines = state.store.sender_failures(&filter).await?;
    let limit = page_size(query.limit)?;
    Ok(Json(SenderList {
        since: rfc3339(since),
        senders: senders_of(&lines, usize::try_from(limit).unwrap_or(usize::MAX)),
    }))
}

/// `since` of the sender routes, or the start of the failure window's counting windows.
fn sender_since(state: &AppState, since: Option<&str>) -> Result<OffsetDateTime, ApiError> {
    crate::server::dto::check_text(&[("since", since)])?;
    match super::insights::parse_since(since)? {
        Some(since) => Ok(since),
        None => Ok(crate::server::risk::gather::tally_since(
            &state.config,
            now(),
        )),
    }
}
