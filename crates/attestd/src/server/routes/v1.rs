//! The native API: `/v1/challenges`, `/v1/attestations`, `/v1/assertions`.

use std::sync::Arc;

use crate::server::challenge::ChallengePurpose;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::app_id_header;
use crate::server::apple::device_check::{DeviceCheckError, device_token, optional_device_token};
use crate::server::context::{ClientIp, RequestContext};
use crate::server::dto::{
    AssertionBody, AssertionResponse, AttestationBody, AttestationResponse, ChallengeRequest,
    ChallengeResponse, DeviceCheckBody, DeviceCheckResponse, LinkView, PurposeBody, RiskView,
    TokenResponse, rfc3339,
};
use crate::server::error::{ApiError, ErrorBody};
use crate::server::extract::{
    ApiJson, DEVICE_CHECK_FORMAT, OptionalJson, check_platform, decode_key_id, encode_key_id,
};
use crate::server::flows::{self, AssertInput, AttestInput, DeviceCheckInput};
use crate::server::link::LinkRequest;
use crate::server::platform::{AssertionProof, AttestationProof, Format};
use crate::server::state::AppState;

/// Issues a one-time challenge.
#[utoipa::path(
    post,
    path = "/v1/challenges",
    tag = "app-attest",
    request_body(content = Option<ChallengeRequest>, description = "Optional; may be empty"),
    params(("X-App-Id" = Option<String>, Header, description = "App ID, if not in the body")),
    responses(
        (status = 201, description = "Challenge issued", body = ChallengeResponse),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 404, description = "unknown_app", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
    )
)]
pub async fn create_challenge(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ChallengeRequest>,
) -> Result<(StatusCode, Json<ChallengeResponse>), ApiError> {
    let body = body.unwrap_or_default();
    let app_id = body.app_id.as_deref().or(app_id_header(&headers));
    let app = state.apps.resolve(app_id)?;
    let (purpose, key_id) = match body.purpose {
        PurposeBody::Attestation if body.key_id.is_some() => {
            return Err(ApiError::field(
                "keyId",
                "keyId is only for assertion challenges",
            ));
        }
        PurposeBody::Attestation => (ChallengePurpose::Attestation, None),
        PurposeBody::Assertion => {
            let key_id = body
                .key_id
                .as_deref()
                .map(|text| decode_key_id("keyId", text));
            (ChallengePurpose::Assertion, key_id.transpose()?)
        }
    };
    let issued = flows::issue_challenge(&state, app, purpose, key_id)?;
    Ok((StatusCode::CREATED, Json(ChallengeResponse::from(&issued))))
}

/// Registers a key from an App Attest attestation and issues a JWT.
#[utoipa::path(
    post,
    path = "/v1/attestations",
    tag = "app-attest",
    request_body = AttestationBody,
    params(("X-App-Id" = Option<String>, Header, description = "App ID, if not in the body")),
    responses(
        (status = 201, description = "Key registered (decision allow or allow_monitored)", body = AttestationResponse),
        (status = 400, description = "malformed_request, unsupported_platform, challenge_invalid", body = ErrorBody),
        (status = 403, description = "policy_denied: the app enforces a rule this request fails (details: decision, riskScore, riskFactors)", body = ErrorBody),
        (status = 404, description = "unknown_app", body = ErrorBody),
        (status = 409, description = "key_already_attested", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "verification failed: the core's code (nonce_mismatch, certificate_chain_invalid, ...); link_token_invalid (details.reason)", body = ErrorBody),
        (status = 503, description = "unavailable, timeout", body = ErrorBody),
    )
)]
pub async fn create_attestation(
    State(state): State<Arc<AppState>>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AttestationBody>,
) -> Result<(StatusCode, Json<AttestationResponse>), ApiError> {
    let format = Format::parse(&body.platform, &body.format)?;
    let key_id = decode_key_id("keyId", &body.key_id)?;
    let proof = AttestationProof::decode(format, body.proof_fields())?;
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
    let attested = flows::attest(&state, "/v1/attestations", input).await?;
    let response = AttestationResponse {
        device_id: attested.device.device_id.clone(),
        key_id: encode_key_id(&attested.device.key_id),
        token: attested.token.token,
        expires_at: rfc3339(attested.token.expires_at),
        device_intelligence: attested.intelligence,
        supersedes: attested.superseded.iter().map(encode_key_id).collect(),
        link: LinkView::from(&attested.link),
        next_challenge: ChallengeResponse::from(&attested.next_challenge),
        risk: RiskView::from(&attested.verdict),
    };
    Ok((StatusCode::CREATED, Json(response)))
}

/// Verifies an assertion from an attested key.
#[utoipa::path(
    post,
    path = "/v1/assertions",
    tag = "app-attest",
    request_body = AssertionBody,
    responses(
        (status = 200, description = "Assertion accepted (decision allow or allow_monitored)", body = AssertionResponse),
        (status = 400, description = "malformed_request, unsupported_platform, challenge_invalid", body = ErrorBody),
        (status = 403, description = "key_revoked, key_superseded, key_expired (details.action = reattest_required); policy_denied", body = ErrorBody),
        (status = 404, description = "key_unknown (details.action = reattest_required), unknown_app", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "counter_regressed (details.action = reattest_required), counter_invalid (replay), signature_invalid, app_id_mismatch, malformed", body = ErrorBody),
        (status = 503, description = "unavailable, timeout", body = ErrorBody),
    )
)]
pub async fn create_assertion(
    State(state): State<Arc<AppState>>,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<AssertionBody>,
) -> Result<Json<AssertionResponse>, ApiError> {
    let asserted = assertion(&state, "/v1/assertions", client_ip, &body).await?;
    Ok(Json(assertion_response(asserted)))
}

/// Decodes an assertion body and runs the assertion flow.
async fn assertion(
    state: &Arc<AppState>,
    route: &'static str,
    client_ip: Option<std::net::IpAddr>,
    body: &AssertionBody,
) -> Result<flows::Asserted, ApiError> {
    let format = Format::parse(&body.platform, &body.format)?;
    let key_id = decode_key_id("keyId", &body.key_id)?;
    let proof = AssertionProof::decode(format, body.proof_fields())?;
    let input = AssertInput {
        key_id,
        payload: &body.payload,
        proof,
        context: RequestContext::from_ip(client_ip),
    };
    flows::assert(state, route, input).await
}

fn assertion_response(asserted: flows::Asserted) -> AssertionResponse {
    AssertionResponse {
        valid: true,
        device_id: asserted.device.device_id,
        counter: asserted.counter,
        next_challenge: ChallengeResponse::from(&asserted.next_challenge),
        risk: RiskView::from(&asserted.verdict),
    }
}

/// Verifies an assertion exactly as `POST /v1/assertions` does and issues a fresh JWT: how an
/// app renews its token, with claims (risk score, `apple_risk_metric`, permissions) computed
/// now, not at attestation.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "app-attest",
    request_body = AssertionBody,
    responses(
        (status = 200, description = "Assertion accepted and token issued", body = TokenResponse),
        (status = 400, description = "malformed_request, unsupported_platform, challenge_invalid", body = ErrorBody),
        (status = 403, description = "key_revoked, key_superseded, key_expired (details.action = reattest_required); policy_denied", body = ErrorBody),
        (status = 404, description = "key_unknown (details.action = reattest_required), unknown_app", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "counter_regressed, counter_invalid, signature_invalid, app_id_mismatch, malformed", body = ErrorBody),
        (status = 503, description = "unavailable, timeout", body = ErrorBody),
    )
)]
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    ClientIp(client_ip): ClientIp,
    ApiJson(body): ApiJson<AssertionBody>,
) -> Result<Json<TokenResponse>, ApiError> {
    let asserted = assertion(&state, "/v1/tokens", client_ip, &body).await?;
    let app = state
        .apps
        .get(&asserted.device.app_id)
        .ok_or_else(|| ApiError::UnknownApp(asserted.device.app_id.clone()))?;
    let token = state.tokens.issue(
        &state.config.issuer,
        app,
        &asserted.device,
        flows::now(),
        asserted.verdict.claims_for(&asserted.device),
    )?;
    Ok(Json(TokenResponse {
        token: token.token,
        expires_at: rfc3339(token.expires_at),
        assertion: assertion_response(asserted),
    }))
}

/// The DeviceCheck fallback for devices without App Attest: asks Apple about a DeviceCheck
/// token, then scores, decides and logs it (decision kind `device_check`). Opt-in per app
/// (`device_check_fallback = true`); answers a verdict for the caller's backend, no JWT.
#[utoipa::path(
    post,
    path = "/v1/device-checks",
    tag = "app-attest",
    request_body = DeviceCheckBody,
    params(("X-App-Id" = Option<String>, Header, description = "App ID, if not in the body")),
    responses(
        (status = 200, description = "Apple accepted the token (decision allow or allow_monitored)", body = DeviceCheckResponse),
        (status = 400, description = "malformed_request, unsupported_platform", body = ErrorBody),
        (status = 403, description = "device_check_disabled (the app has no device_check_fallback); policy_denied", body = ErrorBody),
        (status = 404, description = "unknown_app", body = ErrorBody),
        (status = 409, description = "device_token_reused: each token works once; apple_not_configured: the server has no Apple credentials", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 422, description = "device_token_invalid: Apple does not recognise the token", body = ErrorBody),
        (status = 502, description = "apple_unauthorized, apple_server_error, ...: Apple refused our request or failed", body = ErrorBody),
        (status = 503, description = "apple_unreachable, apple_rate_limited; unavailable, timeout", body = ErrorBody),
    )
)]
pub async fn create_device_check(
    State(state): State<Arc<AppState>>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DeviceCheckBody>,
) -> Result<Json<DeviceCheckResponse>, DeviceCheckError> {
    check_platform(&body.platform, &body.format, DEVICE_CHECK_FORMAT)?;
    let device_token = device_token("deviceToken", &body.device_token)?;
    // Checked for form as before, then ignored: nothing vouches for them.
    let link =
        LinkRequest::from_body(body.user_id.as_deref(), body.device_id.as_deref(), None)?.ignored();
    let app = state
        .apps
        .resolve(body.app_id.as_deref().or(app_id_header(&headers)))?;
    let input = DeviceCheckInput {
        app,
        device_token,
        environment: body.environment,
        context: RequestContext::from_ip(client_ip),
    };
    let checked = flows::device_check(&state, "/v1/device-checks", input).await?;
    let bits = checked.answer.bits;
    Ok(Json(DeviceCheckResponse {
        valid: true,
        assurance: "device_check",
        environment: body.environment,
        bit0: bits.map(|[bit0, _]| bit0),
        bit1: bits.map(|[_, bit1]| bit1),
        link: LinkView::from(&link),
        risk: RiskView::from(&checked.verdict),
    }))
}
