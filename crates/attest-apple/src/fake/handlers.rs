//! The fake's routes: token check, receipt exchange, DeviceCheck bits.

use std::sync::Arc;
use std::time::Duration;

use attest_core::apple::Environment;
use attest_core::apple::receipt::{Receipt, parse_receipt};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response, header};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use time::OffsetDateTime;

use super::server::reply;
use super::{Shared, StoredBits};
use crate::http::AuthorizationScheme;

/// Largest body a handler reads (the server already capped it; this is the same bound).
const MAX_BODY: usize = 256 * 1024;

/// How far in the future a token's `iat` may be (clock skew between client and Apple).
const IAT_SKEW_SECS: i64 = 60;

/// How far a DeviceCheck `timestamp` may be from the fake's clock. Apple does not document its
/// window; an hour catches tokens built from a wrong clock or in seconds instead of ms.
const TIMESTAMP_WINDOW_MS: i128 = 60 * 60 * 1000;

const DEVICE_TOKEN_TEXT: &str = "Missing or incorrectly formatted device token payload";
const BITS_TEXT: &str = "Missing or incorrectly formatted bits";
const TIMESTAMP_TEXT: &str = "Missing or incorrectly formatted time stamp";
const TRANSACTION_TEXT: &str = "Invalid or missing transaction id";
const NOT_FOUND_TEXT: &str = "Failed to find bit state";

/// A scripted risk metric for this one request.
#[derive(Debug, Clone, Copy)]
pub(super) struct RiskOverride(pub u64);

/// Which API a path belongs to (Apple's texts differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FakeApi {
    Receipt,
    DeviceCheck,
}

impl FakeApi {
    pub(super) fn of(path: &str) -> Self {
        if path == crate::ATTESTATION_DATA_PATH {
            Self::Receipt
        } else {
            Self::DeviceCheck
        }
    }
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(crate::ATTESTATION_DATA_PATH, post(attestation_data))
        .route(
            crate::VALIDATE_DEVICE_TOKEN_PATH,
            post(validate_device_token),
        )
        .route(crate::QUERY_TWO_BITS_PATH, post(query_two_bits))
        .route(crate::UPDATE_TWO_BITS_PATH, post(update_two_bits))
        .with_state(shared)
}

/// Apple's text for `status` on `api`.
fn apple_text(api: FakeApi, status: u16) -> &'static str {
    match (status, api) {
        (304, _) => "",
        (400, FakeApi::Receipt) => "Bad Payload",
        (400, FakeApi::DeviceCheck) => DEVICE_TOKEN_TEXT,
        (401, FakeApi::Receipt) => "Unauthorized",
        (401, FakeApi::DeviceCheck) => "Unable to verify authorization token",
        (404, _) => "No Data Found",
        (405, _) => "Method Not Allowed",
        (429, _) => "Too Many Requests",
        (500, _) => "Server Error",
        (503, _) => "Service Unavailable",
        _ => "",
    }
}

/// `status` with Apple's text, and `Retry-After: <seconds>` if given.
pub(super) fn canned(api: FakeApi, status: u16, retry_after: Option<Duration>) -> Response<Body> {
    let headers = retry_after
        .map(|wait| vec![("retry-after".to_owned(), wait.as_secs().to_string())])
        .unwrap_or_default();
    reply(status, headers, apple_text(api, status).as_bytes().to_vec())
}

fn text(status: u16, body: &str) -> Response<Body> {
    reply(
        status,
        vec![("content-type".to_owned(), "text/plain".to_owned())],
        body.as_bytes().to_vec(),
    )
}

/// Whether the `Authorization` header holds a valid token in an accepted form.
fn authorized(shared: &Shared, headers: &HeaderMap, accepted: &[AuthorizationScheme]) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let token = match value.strip_prefix("Bearer ") {
        Some(token) => accepted
            .contains(&AuthorizationScheme::Bearer)
            .then_some(token),
        None => accepted
            .contains(&AuthorizationScheme::Raw)
            .then_some(value),
    };
    token.is_some_and(|token| token_is_valid(shared, token))
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    iat: i64,
}

/// ES256 by the trusted key, `kid` and `iss` as configured, `iat` fresh.
fn token_is_valid(shared: &Shared, token: &str) -> bool {
    let config = &shared.config;
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return false;
    };
    if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(config.key_id.as_str()) {
        return false;
    }
    // Apple's tokens have no exp/nbf/aud; freshness is judged by iat below.
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let key = DecodingKey::from_ec_der(&config.public_key);
    let Ok(data) = jsonwebtoken::decode::<Claims>(token, &key, &validation) else {
        return false;
    };
    let now = shared.now().unix_timestamp();
    let max_age = i64::try_from(config.max_token_age.as_secs()).unwrap_or(i64::MAX);
    data.claims.iss == config.team_id
        && data.claims.iat <= now.saturating_add(IAT_SKEW_SECS)
        && now.saturating_sub(data.claims.iat) <= max_age
}

fn unauthorized(shared: &Shared, api: FakeApi) -> Response<Body> {
    shared.state().counts.unauthorized += 1;
    canned(api, 401, None)
}

async fn attestation_data(State(shared): State<Arc<Shared>>, request: Request) -> Response<Body> {
    let accepted = match shared.config.receipt_scheme {
        Some(scheme) => vec![scheme],
        None => vec![AuthorizationScheme::Raw, AuthorizationScheme::Bearer],
    };
    if !authorized(&shared, request.headers(), &accepted) {
        return unauthorized(&shared, FakeApi::Receipt);
    }
    let risk_override = request.extensions().get::<RiskOverride>().map(|r| r.0);
    let bad_payload = || canned(FakeApi::Receipt, 400, None);
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_BODY).await else {
        return bad_payload();
    };
    let base64: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let Ok(old) = STANDARD.decode(base64) else {
        return bad_payload();
    };
    let Ok(old) = parse_receipt(&old) else {
        return bad_payload();
    };
    let old = old.into_receipt();

    let environment = shared.config.environment;
    let same_environment = match old.environment.as_deref() {
        Some("sandbox") => environment == Environment::Development,
        Some("production") => environment == Environment::Production,
        _ => true,
    };
    if !same_environment {
        return text(400, "Incorrect Environment");
    }

    let now = shared.now();
    let key_id = key_id_of(&old);
    let (metric, revoked) = {
        let state = shared.state();
        let for_key = key_id.and_then(|id| state.risk_by_key.get(&id).copied());
        (
            risk_override.or(for_key).unwrap_or(state.risk_metric),
            key_id.is_some_and(|id| state.revoked.contains(&id)),
        )
    };
    if revoked {
        return canned(FakeApi::Receipt, 404, None);
    }
    if old.not_before.is_some_and(|not_before| now < not_before) {
        return canned(FakeApi::Receipt, 304, None);
    }

    let new = shared
        .config
        .receipt_ca
        .receipt()
        .receipt_type(attest_sim::ReceiptType::Receipt)
        .app_id(old.app_id)
        .attested_certificate(old.attested_certificate)
        .client_hash(old.client_hash)
        .token(old.token)
        .environment(environment)
        .created_at(now)
        .risk_metric(metric)
        .ber()
        .build();
    text(200, &STANDARD.encode(new))
}

/// SHA-256 of the attested key's uncompressed point: the key id the app reports.
fn key_id_of(receipt: &Receipt) -> Option<attest_core::apple::KeyId> {
    let spki = receipt.attested_public_key()?;
    // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
    let point = spki.get(spki.len().checked_sub(65)?..)?;
    Some(attest_core::apple::KeyId::of_public_point(point))
}

/// A DeviceCheck request body, checked like Apple does.
struct DeviceRequest {
    device_token: String,
    bits: Option<(bool, bool)>,
}

fn read_device_request(
    body: &[u8],
    now: OffsetDateTime,
    with_bits: bool,
) -> Result<DeviceRequest, &'static str> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| DEVICE_TOKEN_TEXT)?;
    let device_token = value
        .get("device_token")
        .and_then(serde_json::Value::as_str)
        .filter(|token| !token.is_empty() && STANDARD.decode(token).is_ok())
        .ok_or(DEVICE_TOKEN_TEXT)?;
    value
        .get("transaction_id")
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or(TRANSACTION_TEXT)?;
    let timestamp = value
        .get("timestamp")
        .and_then(serde_json::Value::as_i64)
        .ok_or(TIMESTAMP_TEXT)?;
    let now_ms = now.unix_timestamp_nanos() / 1_000_000;
    if (i128::from(timestamp) - now_ms).abs() > TIMESTAMP_WINDOW_MS {
        return Err(TIMESTAMP_TEXT);
    }
    let bits = if with_bits {
        let bit = |name| value.get(name).and_then(serde_json::Value::as_bool);
        Some((bit("bit0").ok_or(BITS_TEXT)?, bit("bit1").ok_or(BITS_TEXT)?))
    } else {
        None
    };
    Ok(DeviceRequest {
        device_token: device_token.to_owned(),
        bits,
    })
}

/// Token check and body parsing shared by the three DeviceCheck routes.
async fn device_request(
    shared: &Shared,
    request: Request,
    with_bits: bool,
) -> Result<DeviceRequest, Response<Body>> {
    if !authorized(shared, request.headers(), &[AuthorizationScheme::Bearer]) {
        return Err(unauthorized(shared, FakeApi::DeviceCheck));
    }
    let body: Bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| text(400, DEVICE_TOKEN_TEXT))?;
    read_device_request(&body, shared.now(), with_bits).map_err(|reason| text(400, reason))
}

async fn validate_device_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Response<Body> {
    match device_request(&shared, request, false).await {
        Ok(_) => reply(200, Vec::new(), Vec::new()),
        Err(response) => response,
    }
}

async fn query_two_bits(State(shared): State<Arc<Shared>>, request: Request) -> Response<Body> {
    let device = match device_request(&shared, request, false).await {
        Ok(device) => device,
        Err(response) => return response,
    };
    let stored = shared.state().bits.get(&device.device_token).cloned();
    match stored {
        None => text(200, NOT_FOUND_TEXT),
        Some(stored) => {
            let body = serde_json::json!({
                "bit0": stored.bit0,
                "bit1": stored.bit1,
                "last_update_time": stored.month,
            });
            reply(
                200,
                vec![("content-type".to_owned(), "application/json".to_owned())],
                body.to_string().into_bytes(),
            )
        }
    }
}

async fn update_two_bits(State(shared): State<Arc<Shared>>, request: Request) -> Response<Body> {
    let device = match device_request(&shared, request, true).await {
        Ok(device) => device,
        Err(response) => return response,
    };
    let Some((bit0, bit1)) = device.bits else {
        return text(400, BITS_TEXT);
    };
    let now = shared.now();
    let month = format!("{:04}-{:02}", now.year(), u8::from(now.month()));
    shared
        .state()
        .bits
        .insert(device.device_token, StoredBits { bit0, bit1, month });
    reply(200, Vec::new(), Vec::new())
}
