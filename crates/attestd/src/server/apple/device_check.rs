//! DeviceCheck through the admin API (`/admin/v1/devicecheck/*`, bearer admin token):
//! validate a device token, query and update the two bits Apple keeps per device for the team.
//! Also [`Apple::device_check_signal`], DeviceCheck as a risk input for devices without App
//! Attest.
//!
//! Apple's failures become JSON errors with Apple's stable code (`apple_invalid_device_token`,
//! `apple_rate_limited`, ...): 422 for a device token Apple refuses, 503 when Apple is
//! unreachable, rate limiting or unavailable (with `Retry-After` when Apple gave one), 502 for
//! anything else Apple got wrong or refused of ours (credentials, request fields, odd answers);
//! 409 `apple_not_configured` when the server has no Apple credentials (a setting the operator
//! has not made: no retry helps).

use std::sync::Arc;

use attest_apple::{Error, TwoBits};
use attest_core::UnixTime;
use attest_policy::DeviceCheck;
use attest_types::Environment;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, json};
use utoipa::ToSchema;

use super::Apple;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::extract::{ApiJson, decode_base64};
use crate::server::state::AppState;

/// `attestd_devicecheck_requests_total{operation, result}`: admin DeviceCheck calls by outcome
/// (`ok` or Apple's error code).
pub const DEVICE_CHECK_COUNTER: &str = "attestd_devicecheck_requests_total";

/// Longest device token accepted (Apple's are about 2–3 KB of base64).
pub const MAX_DEVICE_TOKEN_LEN: usize = 16 * 1024;

/// The DeviceCheck service a request asks when it names none: production. Apps built for
/// development talk to Apple's development service and say `development`.
pub const fn default_environment() -> Environment {
    Environment::Production
}

/// `POST /admin/v1/devicecheck/validate` and `/query`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceTokenBody {
    /// The token from `DCDevice.generateToken` (base64, line breaks allowed).
    #[schema(value_type = crate::server::dto::wire::DeviceToken)]
    pub device_token: String,
    /// `production` (default) or `development`.
    #[serde(default = "default_environment")]
    #[schema(value_type = crate::server::dto::wire::DeviceCheckEnvironment)]
    pub environment: Environment,
}

/// `POST /admin/v1/devicecheck/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBitsBody {
    /// The token from `DCDevice.generateToken` (base64, line breaks allowed).
    #[schema(value_type = crate::server::dto::wire::DeviceToken)]
    pub device_token: String,
    /// The new bit 0.
    pub bit0: bool,
    /// The new bit 1.
    pub bit1: bool,
    /// `production` (default) or `development`.
    #[serde(default = "default_environment")]
    #[schema(value_type = crate::server::dto::wire::DeviceCheckEnvironment)]
    pub environment: Environment,
}

/// Apple accepted the device token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    /// Always `true` (a refused token is a 422 `apple_invalid_device_token`).
    pub valid: bool,
    /// The service asked.
    #[schema(value_type = crate::server::dto::wire::DeviceCheckEnvironment)]
    pub environment: Environment,
}

/// The device's two bits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    /// `false` when the bits were never set for this device (Apple's plain-text "bit state not
    /// found" answer); the bits are then `null`.
    pub found: bool,
    /// Bit 0.
    pub bit0: Option<bool>,
    /// Bit 1.
    pub bit1: Option<bool>,
    /// Month of the last update, `YYYY-MM`, as Apple gives it.
    pub last_update_time: Option<String>,
    /// The service asked.
    #[schema(value_type = crate::server::dto::wire::DeviceCheckEnvironment)]
    pub environment: Environment,
}

/// The bits were set.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateResponse {
    /// Always `true`.
    pub updated: bool,
    /// The bit 0 now stored.
    pub bit0: bool,
    /// The bit 1 now stored.
    pub bit1: bool,
    /// The service asked.
    #[schema(value_type = crate::server::dto::wire::DeviceCheckEnvironment)]
    pub environment: Environment,
}

/// Why a DeviceCheck admin request failed.
#[derive(Debug)]
pub enum DeviceCheckError {
    /// The request itself (body, token format).
    Request(ApiError),
    /// No Apple credentials are configured.
    NotConfigured,
    /// Apple refused or failed.
    Apple(Error),
}

impl From<ApiError> for DeviceCheckError {
    fn from(error: ApiError) -> Self {
        Self::Request(error)
    }
}

/// The HTTP status for one of Apple's failures (see the module documentation).
pub fn apple_error_status(error: &Error) -> StatusCode {
    match error {
        Error::InvalidDeviceToken => StatusCode::UNPROCESSABLE_ENTITY,
        Error::RateLimited { .. } | Error::Transport(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::ServerError { status: 503 } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl IntoResponse for DeviceCheckError {
    fn into_response(self) -> Response {
        let (status, body, retry_after) = match self {
            Self::Request(error) => return error.into_response(),
            // A setting the operator has not made, not an outage: retrying cannot help.
            Self::NotConfigured => (
                StatusCode::CONFLICT,
                ErrorBody {
                    code: "apple_not_configured",
                    message: "DeviceCheck needs Apple credentials: set [apple] team_id, key_id \
                              and private_key_path"
                        .to_owned(),
                    details: Map::new(),
                },
                None,
            ),
            Self::Apple(error) => {
                let mut details = Map::new();
                details.insert("upstream".into(), json!("devicecheck"));
                if let Error::ServerError { status } | Error::UnexpectedStatus { status } = &error {
                    details.insert("appleStatus".into(), json!(status));
                }
                if let Some(wait) = error.retry_after() {
                    details.insert("retryAfterSeconds".into(), json!(wait.as_secs()));
                }
                (
                    apple_error_status(&error),
                    ErrorBody {
                        code: error.code(),
                        message: error.to_string(),
                        details,
                    },
                    error.retry_after(),
                )
            }
        };
        let code = body.code;
        let mut response = (status, Json(body)).into_response();
        // Logged once per request, by the telemetry middleware.
        response
            .extensions_mut()
            .insert(crate::server::telemetry::ErrorCode { code, logged: true });
        if let Some(wait) = retry_after
            && let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// What became of a DeviceCheck token a request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCheckSignal {
    /// Apple answered: the token is valid (with the bits, if ever set) or not.
    Answered(DeviceCheck),
    /// Apple did not answer (in time) or refused our request: no signal, which must not be
    /// read as "valid".
    Unavailable(Error),
    /// No Apple credentials are configured, so Apple was not asked.
    NotConfigured,
}

impl DeviceCheckSignal {
    /// The risk input, when Apple answered.
    pub fn answer(&self) -> Option<DeviceCheck> {
        match self {
            Self::Answered(answer) => Some(*answer),
            Self::Unavailable(_) | Self::NotConfigured => None,
        }
    }

    /// `ok`, `invalid`, or why there is no answer (`apple_unreachable`,
    /// `apple_rate_limited`, `apple_not_configured`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Answered(DeviceCheck { valid: true, .. }) => "ok",
            Self::Answered(_) => "invalid",
            Self::Unavailable(error) => error.code(),
            Self::NotConfigured => "apple_not_configured",
        }
    }
}

impl Apple {
    /// One DeviceCheck query made for a request (attestation risk input, `/v1/device-checks`):
    /// a token Apple refuses is `valid: false`; Apple unreachable, rate limiting, refusing our
    /// credentials or slower than `[apple] device_check_signal_timeout_ms` is
    /// [`DeviceCheckSignal::Unavailable`], as is a server without credentials. Counted in
    /// `attestd_devicecheck_requests_total{operation="signal"}`.
    pub async fn device_check_signal(
        &self,
        device_token: &str,
        environment: Environment,
    ) -> DeviceCheckSignal {
        let Some(client) = self.device_check(environment) else {
            return DeviceCheckSignal::NotConfigured;
        };
        let query = client.query_two_bits(device_token, UnixTime::now());
        let result =
            match tokio::time::timeout(self.config().device_check_signal_timeout, query).await {
                Ok(result) => result,
                Err(_) => Err(Error::Transport(
                    "no answer within the signal timeout".into(),
                )),
            };
        self.health().observe(&result);
        let signal = match result {
            Ok(TwoBits::Found(bits)) => DeviceCheckSignal::Answered(DeviceCheck {
                valid: true,
                bits: Some([bits.bit0, bits.bit1]),
            }),
            Ok(TwoBits::NotFound) => DeviceCheckSignal::Answered(DeviceCheck {
                valid: true,
                bits: None,
            }),
            Err(Error::InvalidDeviceToken) => DeviceCheckSignal::Answered(DeviceCheck {
                valid: false,
                bits: None,
            }),
            Err(error) => DeviceCheckSignal::Unavailable(error),
        };
        let outcome = match &signal {
            DeviceCheckSignal::Answered(DeviceCheck { valid: false, .. }) => {
                Error::InvalidDeviceToken.code()
            }
            other => other.code(),
        };
        metrics::counter!(DEVICE_CHECK_COUNTER, "operation" => "signal", "result" => outcome)
            .increment(1);
        signal
    }
}

/// The cleaned device token and the DeviceCheck client of `environment`, as every route needs.
fn token_and_client<'a>(
    state: &'a AppState,
    device_token_text: &str,
    environment: Environment,
) -> Result<(String, &'a attest_apple::DeviceCheckClient), DeviceCheckError> {
    let token = device_token("deviceToken", device_token_text)?;
    let client = state
        .apple
        .device_check(environment)
        .ok_or(DeviceCheckError::NotConfigured)?;
    Ok((token, client))
}

/// The token as Apple wants it: no whitespace, bounded, decoded (either base64 alphabet, padded
/// or not) and re-encoded as standard padded base64, so that one token has one spelling: what
/// Apple is sent and what the replay guard remembers (`flows::device_check`) do not depend on
/// how the client spelt it. `field` names it in errors.
pub fn device_token(field: &'static str, text: &str) -> Result<String, ApiError> {
    let token: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    // The bound is on the text as sent (whitespace included), as the document's `maxLength`.
    if token.is_empty() || text.len() > MAX_DEVICE_TOKEN_LEN {
        return Err(ApiError::field(
            field,
            format!("{field} must be 1 to {MAX_DEVICE_TOKEN_LEN} characters of base64"),
        ));
    }
    let bytes = decode_base64(field, &token)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The optional `deviceCheckToken` of an attestation body, cleaned as [`device_token`] does.
pub fn optional_device_token(text: Option<&str>) -> Result<Option<String>, ApiError> {
    text.map(|text| device_token("deviceCheckToken", text))
        .transpose()
}

/// Runs one call, feeding the health state and the metric.
async fn call<T>(
    state: &AppState,
    operation: &'static str,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, DeviceCheckError> {
    let result = call.await;
    state.apple.health().observe(&result);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) => error.code(),
    };
    metrics::counter!(DEVICE_CHECK_COUNTER, "operation" => operation, "result" => outcome)
        .increment(1);
    result.map_err(DeviceCheckError::Apple)
}

/// Asks Apple whether a DeviceCheck token comes from a genuine device running the team's app.
#[utoipa::path(
    post,
    path = "/admin/v1/devicecheck/validate",
    tag = "admin",
    request_body = DeviceTokenBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Apple accepted the token", body = ValidateResponse),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 422, description = "apple_invalid_device_token: Apple refused the token", body = ErrorBody),
        (status = 502, description = "apple_unauthorized, apple_server_error, ...: Apple refused our request or failed", body = ErrorBody),
        (status = 409, description = "apple_not_configured: the server has no Apple credentials ([apple] team_id, key_id, private_key_path)", body = ErrorBody),
        (status = 503, description = "apple_unreachable, apple_rate_limited: Apple is unreachable, rate limiting or unavailable (Retry-After when Apple gave one); timeout", body = ErrorBody),
    )
)]
pub async fn validate(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<DeviceTokenBody>,
) -> Result<Json<ValidateResponse>, DeviceCheckError> {
    let (token, client) = token_and_client(&state, &body.device_token, body.environment)?;
    call(
        &state,
        "validate",
        client.validate_device_token(&token, UnixTime::now()),
    )
    .await?;
    Ok(Json(ValidateResponse {
        valid: true,
        environment: body.environment,
    }))
}

/// Reads the two bits Apple keeps for the device (shared by all the team's apps on it).
#[utoipa::path(
    post,
    path = "/admin/v1/devicecheck/query",
    tag = "admin",
    request_body = DeviceTokenBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The bits (found: false when never set)", body = QueryResponse),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 422, description = "apple_invalid_device_token", body = ErrorBody),
        (status = 502, description = "Apple refused our request or failed", body = ErrorBody),
        (status = 409, description = "apple_not_configured: the server has no Apple credentials ([apple] team_id, key_id, private_key_path)", body = ErrorBody),
        (status = 503, description = "apple_unreachable, apple_rate_limited: Apple is unreachable, rate limiting or unavailable (Retry-After when Apple gave one); timeout", body = ErrorBody),
    )
)]
pub async fn query(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<DeviceTokenBody>,
) -> Result<Json<QueryResponse>, DeviceCheckError> {
    let (token, client) = token_and_client(&state, &body.device_token, body.environment)?;
    let bits = call(
        &state,
        "query",
        client.query_two_bits(&token, UnixTime::now()),
    )
    .await?;
    let environment = body.environment;
    Ok(Json(match bits {
        TwoBits::Found(bits) => QueryResponse {
            found: true,
            bit0: Some(bits.bit0),
            bit1: Some(bits.bit1),
            last_update_time: bits.last_update_time,
            environment,
        },
        TwoBits::NotFound => QueryResponse {
            found: false,
            bit0: None,
            bit1: None,
            last_update_time: None,
            environment,
        },
    }))
}

/// Sets the two bits Apple keeps for the device.
#[utoipa::path(
    post,
    path = "/admin/v1/devicecheck/update",
    tag = "admin",
    request_body = UpdateBitsBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The bits were set", body = UpdateResponse),
        (status = 400, description = "malformed_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 422, description = "apple_invalid_device_token", body = ErrorBody),
        (status = 502, description = "Apple refused our request or failed", body = ErrorBody),
        (status = 409, description = "apple_not_configured: the server has no Apple credentials ([apple] team_id, key_id, private_key_path)", body = ErrorBody),
        (status = 503, description = "apple_unreachable, apple_rate_limited: Apple is unreachable, rate limiting or unavailable (Retry-After when Apple gave one); timeout", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<UpdateBitsBody>,
) -> Result<Json<UpdateResponse>, DeviceCheckError> {
    let (token, client) = token_and_client(&state, &body.device_token, body.environment)?;
    call(
        &state,
        "update",
        client.update_two_bits(&token, body.bit0, body.bit1, UnixTime::now()),
    )
    .await?;
    tracing::info!(
        bit0 = body.bit0,
        bit1 = body.bit1,
        environment = ?body.environment,
        "DeviceCheck bits updated"
    );
    Ok(Json(UpdateResponse {
        updated: true,
        bit0: body.bit0,
        bit1: body.bit1,
        environment: body.environment,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use serde_json::Value;

    /// The status and `Retry-After` of an Apple failure's answer.
    fn status_of(error: Error) -> (u16, Value) {
        let response = DeviceCheckError::Apple(error).into_response();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        (status, json!(retry))
    }

    #[test]
    fn apple_failures_map_to_4xx_502_503() {
        assert_eq!(status_of(Error::InvalidDeviceToken).0, 422);
        assert_eq!(status_of(Error::Transport("x".into())).0, 503);
        assert_eq!(status_of(Error::ServerError { status: 503 }).0, 503);
        assert_eq!(status_of(Error::ServerError { status: 500 }).0, 502);
        assert_eq!(status_of(Error::Unauthorized).0, 502);
        assert_eq!(status_of(Error::InvalidBits).0, 502);
        assert_eq!(status_of(Error::MalformedResponse("x")).0, 502);
        assert_eq!(
            status_of(Error::RateLimited {
                retry_after: Some(Duration::from_secs(30))
            }),
            (503, json!("30"))
        );
    }

    #[test]
    fn device_tokens_are_base64_without_whitespace() {
        let token = |text: &str| device_token("deviceToken", text);
        assert_eq!(token("QUJD\nREVG\n").unwrap(), "QUJDREVG");
        // One spelling per token: URL-safe, unpadded, or broken by whitespace.
        for spelling in ["+/+/QUI=", "-_-_QUI", "+/+/ QUI", "-_-_\r\nQUI="] {
            assert_eq!(token(spelling).unwrap(), "+/+/QUI=", "{spelling}");
        }
        assert!(token("").is_err());
        assert!(token("not base64!").is_err());
        assert!(token(&"A".repeat(MAX_DEVICE_TOKEN_LEN + 4)).is_err());
    }
}
