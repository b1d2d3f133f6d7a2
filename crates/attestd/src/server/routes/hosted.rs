//! The hosted-service API shape (`/api/v1/attestation/...`) for teams migrating from a hosted
//! App Attest validation service: same routes, bodies and `ATT_00x` error codes.

use std::sync::Arc;

use attest_core::VerifyError;
use attest_core::apple::AppleError;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::app_id_header;
use crate::server::apple::device_check::optional_device_token;
use crate::server::challenge::ChallengePurpose;
use crate::server::context::{ClientIp, RequestContext};
use crate::server::dto::{
    ChallengeResponse, DecisionView, FactorView, LinkView, RiskView, rfc3339, wire,
};
use crate::server::error::ApiError;
use crate::server::extract::{ApiJson, decode_base64, decode_key_id};
use crate::server::flows::{self, AttestInput};
use crate::server::link::LinkRequest;
use crate::server::platform::AttestationProof;
use crate::server::state::AppState;
use attest_policy::{Band, HostedCode};

/// `POST /api/v1/attestation/validate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateBody {
    /// The key id.
    #[schema(value_type = wire::KeyId)]
    pub key_id: String,
    /// The attestation object.
    #[schema(value_type = wire::Base64)]
    pub attestation: String,
    /// The challenge from `GET /api/v1/attestation/challenge`.
    #[schema(value_type = wire::Challenge)]
    pub challenge: String,
    /// App ID; defaults to `X-App-Id` or the only configured app.
    pub app_id: Option<String>,
    /// Optional link token from the app's backend (see `POST /v1/attestations`): the only way
    /// to link the key to a user or device.
    #[schema(value_type = Option<wire::LinkToken>)]
    pub link_token: Option<String>,
    /// Optional user id, ignored unless `linkToken` vouches for it (see `POST /v1/attestations`).
    #[schema(value_type = Option<wire::ClientId>)]
    pub user_id: Option<String>,
    /// Optional device id, ignored unless `linkToken` vouches for it.
    #[schema(value_type = Option<wire::ClientId>)]
    pub device_id: Option<String>,
    /// Optional DeviceCheck token (see `POST /v1/attestations`).
    #[schema(value_type = Option<wire::DeviceToken>)]
    pub device_check_token: Option<String>,
}

/// Device intelligence in the hosted shape.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostedDeviceIntelligence {
    /// The server's id for the device.
    pub device_id: String,
    /// 0 (trusted) to 100.
    pub risk_score: u8,
    /// `low`, `medium`, `high` or `critical`.
    pub risk_band: &'static str,
    /// The band's opposite: `high` (low risk), `medium`, or `low` (high or critical risk).
    pub device_integrity: &'static str,
    /// Always `false`: App Attest does not report jailbreaks.
    pub jailbreak_detected: bool,
    /// Keys attested for the device.
    pub attestation_count: u64,
    /// RFC 3339: the device's first attestation.
    pub first_seen: String,
    /// RFC 3339: the device's last accepted request.
    pub last_seen: String,
    /// The names of the risk factors that triggered.
    pub risk_factors: Vec<&'static str>,
    /// The same factors with their points and evidence.
    pub risk_factor_details: Vec<FactorView>,
    /// What the app's policy made of the request.
    pub decision: DecisionView,
}

/// `200` answer of `POST /api/v1/attestation/validate`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    /// ES256 JWT.
    pub token: String,
    /// RFC 3339 expiry of the token.
    pub expires_at: String,
    /// What the server knows about the device.
    pub device_intelligence: HostedDeviceIntelligence,
    /// The permissions of the risk band (the `permissions` claim).
    pub permissions: Vec<String>,
    /// What the key was linked with (see `POST /v1/attestations`).
    pub link: LinkView,
}

/// The hosted error body: `{error, message, code: "ATT_00x", details: {reason}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostedErrorBody {
    /// snake_case error name (`invalid_challenge`, `invalid_attestation`, `bundle_mismatch`).
    pub error: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// `ATT_001` … `ATT_004`, or `ATT_000` for server-side failures.
    pub code: &'static str,
    /// `reason`: attestd's own stable code (see docs/api.md).
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
}

/// An [`ApiError`] rendered in the hosted shape.
#[derive(Debug)]
pub struct HostedError(pub ApiError);

impl From<ApiError> for HostedError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl HostedError {
    /// The hosted error name and `ATT_` code.
    pub fn classify(&self) -> (&'static str, &'static str) {
        match self.0.inner() {
            ApiError::ChallengeInvalid => ("invalid_challenge", "ATT_001"),
            ApiError::PolicyDenied {
                hosted_code: Some(HostedCode::Att004),
                ..
            } => ("high_risk_device", "ATT_004"),
            ApiError::PolicyDenied {
                hosted_code: Some(HostedCode::Att003),
                ..
            } => ("bundle_mismatch", "ATT_003"),
            ApiError::Verification(VerifyError::Apple(AppleError::AppIdMismatch))
            | ApiError::UnknownApp(_) => ("bundle_mismatch", "ATT_003"),
            error if error.status().is_server_error() => ("server_error", "ATT_000"),
            _ => ("invalid_attestation", "ATT_002"),
        }
    }

    fn body(&self) -> HostedErrorBody {
        let (error, code) = self.classify();
        let mut details = self.0.details();
        let reason = match self.0.inner() {
            ApiError::PolicyDenied { reasons, .. } => {
                reasons.first().copied().unwrap_or("policy_denied")
            }
            error => error.code(),
        };
        details.insert("reason".into(), json!(reason));
        if let ApiError::Verification(VerifyError::Apple(AppleError::ReceiptInvalid(receipt))) =
            self.0.inner()
        {
            details.insert("receiptReason".into(), json!(receipt.reason()));
        }
        if let ApiError::LinkTokenInvalid(rejection) = self.0.inner() {
            details.insert("linkReason".into(), json!(rejection.reason()));
        }
        HostedErrorBody {
            error,
            message: self.0.to_string(),
            code,
            details,
        }
    }
}

impl IntoResponse for HostedError {
    fn into_response(self) -> Response {
        let body = Json(self.body());
        // The status, the headers (`Retry-After`, `WWW-Authenticate`) and the extensions (the
        // error code the telemetry middleware logs) are the error's own; only the body differs.
        let (parts, _) = self.0.into_response().into_parts();
        (parts, body).into_response()
    }
}

/// Issues a one-time attestation challenge (hosted shape).
#[utoipa::path(
    get,
    path = "/api/v1/attestation/challenge",
    tag = "hosted-compatible",
    params(("X-App-Id" = Option<String>, Header, description = "App ID; defaults to the only configured app")),
    responses(
        (status = 200, description = "Challenge issued", body = ChallengeResponse),
        (status = 400, description = "ATT_002 (several apps, none named)", body = HostedErrorBody),
        (status = 404, description = "ATT_003 unknown app", body = HostedErrorBody),
    )
)]
pub async fn challenge(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<ChallengeResponse>, HostedError> {
    let app = state.apps.resolve(app_id_header(&headers))?;
    let issued = flows::issue_challenge(&state, app, ChallengePurpose::Attestation, None)?;
    Ok(Json(ChallengeResponse::from(&issued)))
}

/// Validates an attestation and issues a JWT with device intelligence (hosted shape).
#[utoipa::path(
    post,
    path = "/api/v1/attestation/validate",
    tag = "hosted-compatible",
    request_body = ValidateBody,
    params(("X-App-Id" = Option<String>, Header, description = "App ID, if not in the body")),
    responses(
        (status = 200, description = "Attestation valid", body = ValidateResponse),
        (status = 400, description = "ATT_001 invalid challenge; ATT_002 malformed request", body = HostedErrorBody),
        (status = 403, description = "ATT_004 high-risk device (details: reason risk_above_max, riskScore, riskFactors); ATT_002 other enforced policy rules", body = HostedErrorBody),
        (status = 404, description = "ATT_003 unknown app", body = HostedErrorBody),
        (status = 409, description = "ATT_002 key already attested", body = HostedErrorBody),
        (status = 422, description = "ATT_002 invalid attestation (details.reason = core code, or link_token_invalid with details.linkReason); ATT_003 bundle mismatch", body = HostedErrorBody),
        (status = 503, description = "ATT_000 server-side failure", body = HostedErrorBody),
    )
)]
pub async fn validate(
    State(state): State<Arc<AppState>>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Result<ApiJson<ValidateBody>, ApiError>,
) -> Result<Json<ValidateResponse>, HostedError> {
    let ApiJson(body) = body?;
    let key_id = decode_key_id("keyId", &body.key_id)?;
    let proof = AttestationProof::AppleAppAttest(decode_base64("attestation", &body.attestation)?);
    let link = LinkRequest::from_body(
        body.user_id.as_deref(),
        body.device_id.as_deref(),
        body.link_token.as_deref(),
    )?;
    let app = state
        .apps
        .resolve(body.app_id.as_deref().or(app_id_header(&headers)))?;
    let device_check_token = optional_device_token(body.device_check_token.as_deref())?;
    let input = AttestInput {
        app,
        key_id,
        challenge: &body.challenge,
        proof,
        context: RequestContext::from_ip(client_ip),
        link,
        device_check_token,
    };
    let attested = flows::attest(&state, "/api/v1/attestation/validate", input).await?;
    let intelligence = &attested.intelligence;
    let risk = RiskView::from(&attested.verdict);
    let band = attested.verdict.assessment.band;
    Ok(Json(ValidateResponse {
        token: attested.token.token,
        expires_at: rfc3339(attested.token.expires_at),
        device_intelligence: HostedDeviceIntelligence {
            device_id: intelligence.device_id.clone(),
            risk_score: risk.risk_score,
            risk_band: risk.risk_band,
            device_integrity: integrity(band),
            jailbreak_detected: false,
            attestation_count: intelligence.attestation_count,
            first_seen: intelligence.first_seen.clone(),
            last_seen: intelligence.last_seen.clone(),
            risk_factors: risk.risk_factors.iter().map(|f| f.name).collect(),
            risk_factor_details: risk.risk_factors,
            decision: risk.decision,
        },
        permissions: risk.permissions,
        link: LinkView::from(&attested.link),
    }))
}

/// `deviceIntegrity`: how far the device can be trusted, the band read the other way round.
fn integrity(band: Band) -> &'static str {
    match band {
        Band::Low => "high",
        Band::Medium => "medium",
        Band::High | Band::Critical => "low",
    }
}
