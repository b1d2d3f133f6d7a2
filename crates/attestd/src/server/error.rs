//! Every way a request can fail, each with one HTTP status and one stable snake_case code.
//!
//! Bodies are `{"code", "message", "details"}`. Client mistakes are 4xx with a precise code;
//! server-side failures are 5xx with a generic message, the cause going to the log only.

use attest_core::VerifyError;
use attest_core::android::AndroidError;
use attest_core::apple::AppleError;
use attest_store::StoreError;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::telemetry::{ErrorCode, Severity, server_failure};

/// What a client should do about a key the server does not accept any more.
const REATTEST_REQUIRED: &str = "reattest_required";

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON expected (syntax, types, missing fields, bad base64).
    #[error("malformed request: {message}")]
    MalformedRequest {
        /// What was wrong, for the client.
        message: String,
        /// The offending field, when known.
        field: Option<&'static str>,
    },
    /// hyper could not parse the request head: the request line, a header, or their size
    /// (answered by the listener, not the router; the connection is then closed).
    #[error("{}", http_malformed_message(*status))]
    HttpMalformed {
        /// 400 (syntax), 414 (request target too long) or 431 (headers too large).
        status: StatusCode,
    },
    /// The body is larger than the configured limit.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not `application/json`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// `platform` / `format` name something other than iOS App Attest.
    #[error("unsupported {field} {value:?}")]
    UnsupportedPlatform {
        /// `platform` or `format`.
        field: &'static str,
        /// What the client sent.
        value: String,
    },
    /// No configured app has this App ID (or several are configured and none was named).
    #[error("unknown app {0:?}")]
    UnknownApp(String),
    /// The challenge is unknown, expired, already used, or issued for another app, purpose or
    /// key.
    #[error("challenge is unknown, expired, already used or not valid for this request")]
    ChallengeInvalid,
    /// The core rejected the attestation or assertion (the platform's stable code).
    #[error("{0}")]
    Verification(#[from] VerifyError),
    /// An attested Android key that cannot sign requests the server can verify: it lacks the
    /// SIGN purpose, or its algorithm is not one signed requests use (EC P-256, RSA).
    #[error("the attested key cannot sign requests: {reason}")]
    KeyUnsupported {
        /// `purpose` or `algorithm`.
        reason: &'static str,
    },
    /// An Android attestation whose `keyId` is not SHA-256 of the leaf's SubjectPublicKeyInfo.
    #[error("keyId is not the SHA-256 of the attested key")]
    KeyIdMismatch,
    /// A signed request (Android) whose signature is not the stored key's over the payload.
    #[error("the signature does not verify with the attested key")]
    SignatureInvalid,
    /// An attestation whose `linkToken` does not verify (see `server::link`).
    #[error("link token invalid: {0}")]
    LinkTokenInvalid(#[from] crate::server::link::LinkTokenRejection),
    /// An attestation for a key id that is already registered.
    #[error("this key is already attested")]
    KeyAlreadyAttested,
    /// An assertion for a key the server does not know.
    #[error("unknown key: attest it first")]
    KeyUnknown,
    /// An assertion for a revoked key.
    #[error("this key has been revoked: attest a new key")]
    KeyRevoked,
    /// An assertion for a key that a re-attestation of the same device or user replaced.
    #[error("this key has been replaced by a newer key: use it, or attest a new key")]
    KeySuperseded,
    /// An assertion for a key unused for longer than the idle expiry.
    #[error("this key expired after being unused for too long: attest a new key")]
    KeyExpired,
    /// The assertion's counter equals the stored one: the same assertion sent again (or a
    /// lost race between two requests carrying the same counter).
    #[error("assertion counter {counter} is not greater than the stored counter {stored}")]
    CounterInvalid {
        /// The assertion's counter.
        counter: u32,
        /// The stored counter.
        stored: u32,
    },
    /// The assertion's counter is lower than the stored one: the key state went backwards
    /// (a device restored from a backup, a cloned key state or an old relayed assertion).
    #[error(
        "assertion counter {counter} is lower than the stored counter {stored}: attest a new key"
    )]
    CounterRegressed {
        /// The assertion's counter.
        counter: u32,
        /// The stored counter.
        stored: u32,
    },
    /// The request verified, but the app's policy (enforce mode) denies it.
    #[error("denied by the app's policy: {}", reasons.join(", "))]
    PolicyDenied {
        /// The failed rules' codes.
        reasons: Vec<&'static str>,
        /// The hosted-service code enforcing returns (ATT_002/3/4), if any.
        hosted_code: Option<attest_policy::HostedCode>,
    },
    /// An error of a request that was assessed: the same status and code as `error`, with the
    /// risk score, factors and decision added to the details.
    #[error("{error}")]
    Assessed {
        /// The underlying refusal.
        error: Box<ApiError>,
        /// `riskScore`, `riskBand`, `riskFactors`, `decision`, `permissions`.
        risk: Box<Map<String, Value>>,
    },
    /// `POST /v1/device-checks` for an app that does not accept DeviceCheck-only devices.
    #[error("this app does not accept DeviceCheck instead of App Attest (device_check_fallback)")]
    DeviceCheckDisabled,
    /// Apple does not recognise the DeviceCheck token.
    #[error("Apple does not recognise this DeviceCheck token")]
    DeviceTokenInvalid,
    /// The DeviceCheck token was already presented: each `DCDevice.generateToken` result works
    /// once.
    #[error("this DeviceCheck token was already used: generate a new one")]
    DeviceTokenReused,
    /// Missing or wrong admin bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// No such route (or the admin API is disabled).
    #[error("not found")]
    NotFound,
    /// The admin API has no device with this key id.
    #[error("no device with this key id")]
    DeviceNotFound,
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A rate limit refused the request before it was processed; retry after
    /// `retry_after_seconds` (also in `Retry-After`).
    #[error("too many requests: retry after {retry_after_seconds} s")]
    RateLimited {
        /// `address` or `key`: which limit.
        limit: &'static str,
        /// When a retry may pass.
        retry_after_seconds: u64,
    },
    /// The request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// The database is unreachable; retry later.
    #[error("service temporarily unavailable")]
    Unavailable,
    /// `/readyz`: this instance cannot commit writes (the database refused or timed out the
    /// readiness write); send traffic elsewhere.
    #[error("not ready: the database does not commit writes")]
    NotReady {
        /// `database_write_failed` or `database_write_timeout`.
        reason: &'static str,
    },
    /// A server-side bug or inconsistency; details are in the log.
    #[error("internal error")]
    Internal,
}

fn http_malformed_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::URI_TOO_LONG => "the request target is too long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request headers are too large",
        _ => "the request line or a header is not valid HTTP/1.1",
    }
}

/// The JSON error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code (see docs/api.md).
    #[schema(example = "challenge_invalid")]
    pub code: &'static str,
    /// Human-readable explanation; may change between versions.
    pub message: String,
    /// Code-specific fields, e.g. `action`, `field`, `reason`.
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
}

impl ApiError {
    /// The error itself, without the [`ApiError::Assessed`] wrapper.
    pub fn inner(&self) -> &Self {
        match self {
            Self::Assessed { error, .. } => error.inner(),
            other => other,
        }
    }

    /// Whether this is a server-side failure (database down, bug) rather than a refusal.
    pub fn is_server_side(&self) -> bool {
        matches!(
            self.inner(),
            Self::Unavailable | Self::Internal | Self::Timeout
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Assessed { error, .. } => error.status(),
            Self::MalformedRequest { .. }
            | Self::UnsupportedPlatform { .. }
            | Self::ChallengeInvalid => StatusCode::BAD_REQUEST,
            Self::HttpMalformed { status } => *status,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UnknownApp(_) | Self::KeyUnknown | Self::NotFound | Self::DeviceNotFound => {
                StatusCode::NOT_FOUND
            }
            Self::Verification(_)
            | Self::KeyUnsupported { .. }
            | Self::KeyIdMismatch
            | Self::SignatureInvalid
            | Self::LinkTokenInvalid(_)
            | Self::CounterInvalid { .. }
            | Self::CounterRegressed { .. }
            | Self::DeviceTokenInvalid => StatusCode::UNPROCESSABLE_ENTITY,
            Self::KeyAlreadyAttested | Self::DeviceTokenReused => StatusCode::CONFLICT,
            Self::DeviceCheckDisabled
            | Self::KeyRevoked
            | Self::KeySuperseded
            | Self::KeyExpired
            | Self::PolicyDenied { .. } => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout | Self::Unavailable | Self::NotReady { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Assessed { error, .. } => error.code(),
            Self::MalformedRequest { .. } => "malformed_request",
            Self::HttpMalformed { status } => match *status {
                StatusCode::URI_TOO_LONG => "uri_too_long",
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
                _ => "malformed_http",
            },
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::UnsupportedPlatform { .. } => "unsupported_platform",
            Self::UnknownApp(_) => "unknown_app",
            Self::ChallengeInvalid => "challenge_invalid",
            Self::Verification(error) => error.code(),
            Self::KeyUnsupported { .. } => "key_unsupported",
            Self::KeyIdMismatch => "key_id_mismatch",
            Self::SignatureInvalid => "signature_invalid",
            Self::LinkTokenInvalid(_) => "link_token_invalid",
            Self::KeyAlreadyAttested => "key_already_attested",
            Self::KeyUnknown => "key_unknown",
            Self::KeyRevoked => "key_revoked",
            Self::KeySuperseded => "key_superseded",
            Self::KeyExpired => "key_expired",
            Self::CounterInvalid { .. } => "counter_invalid",
            Self::CounterRegressed { .. } => "counter_regressed",
            Self::PolicyDenied { .. } => "policy_denied",
            Self::DeviceCheckDisabled => "device_check_disabled",
            Self::DeviceTokenInvalid => "device_token_invalid",
            Self::DeviceTokenReused => "device_token_reused",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::DeviceNotFound => "device_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::NotReady { .. } => "not_ready",
            Self::Internal => "internal_error",
        }
    }

    /// Every code [`code`](Self::code) can return besides the core's verification codes.
    pub const CODES: &'static [&'static str] = &[
        "malformed_request",
        "malformed_http",
        "uri_too_long",
        "headers_too_large",
        "body_too_large",
        "unsupported_media_type",
        "unsupported_platform",
        "unknown_app",
        "challenge_invalid",
        "link_token_invalid",
        "key_already_attested",
        "key_unknown",
        "key_revoked",
        "key_superseded",
        "key_expired",
        "counter_invalid",
        "counter_regressed",
        "policy_denied",
        "device_check_disabled",
        "device_token_invalid",
        "device_token_reused",
        "unauthorized",
        "not_found",
        "device_not_found",
        "method_not_allowed",
        "rate_limited",
        "timeout",
        "unavailable",
        "not_ready",
        "internal_error",
    ];

    /// Code-specific fields of the body.
    pub fn details(&self) -> Map<String, Value> {
        let details = match self {
            Self::MalformedRequest {
                field: Some(field), ..
            } => json!({ "field": field }),
            Self::BodyTooLarge { limit } => json!({ "limitBytes": limit }),
            Self::NotReady { reason } => json!({ "reason": reason }),
            Self::RateLimited {
                limit,
                retry_after_seconds,
            } => json!({ "limit": limit, "retryAfterSeconds": retry_after_seconds }),
            Self::UnsupportedPlatform { field, value } => json!({ "field": field, "value": value }),
            Self::UnknownApp(app_id) => json!({ "appId": app_id }),
            Self::Verification(VerifyError::Apple(AppleError::ReceiptInvalid(receipt))) => {
                json!({ "reason": receipt.reason() })
            }
            Self::KeyUnsupported { reason } => json!({ "reason": reason }),
            Self::LinkTokenInvalid(rejection) => json!({ "reason": rejection.reason() }),
            Self::KeyUnknown | Self::KeyRevoked | Self::KeySuperseded | Self::KeyExpired => {
                json!({ "action": REATTEST_REQUIRED })
            }
            Self::CounterInvalid { counter, stored } => {
                json!({ "counter": counter, "storedCounter": stored, "anomaly": "replay" })
            }
            Self::CounterRegressed { counter, stored } => json!({
                "counter": counter,
                "storedCounter": stored,
                "anomaly": "regression",
                "action": REATTEST_REQUIRED,
            }),
            Self::PolicyDenied {
                reasons,
                hosted_code,
            } => json!({ "reasons": reasons, "hostedCode": hosted_code.map(|c| c.as_str()) }),
            Self::Assessed { error, risk } => {
                let mut details = error.details();
                details.extend(risk.iter().map(|(k, v)| (k.clone(), v.clone())));
                return details;
            }
            _ => json!({}),
        };
        match details {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// The body sent to the client.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            details: self.details(),
        }
    }

    /// Maps axum's JSON rejection: 413 stays `body_too_large`, 415 `unsupported_media_type`,
    /// everything else (syntax, wrong types, missing fields) is `malformed_request`.
    pub fn from_json_rejection(rejection: &JsonRejection, limit: usize) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::BodyTooLarge { limit },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            _ => Self::MalformedRequest {
                message: rejection.body_text(),
                field: None,
            },
        }
    }

    /// A malformed field.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::MalformedRequest {
            message: message.into(),
            field: Some(field),
        }
    }
}

impl From<AppleError> for ApiError {
    fn from(error: AppleError) -> Self {
        Self::Verification(error.into())
    }
}

impl From<AndroidError> for ApiError {
    fn from(error: AndroidError) -> Self {
        Self::Verification(error.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                server_failure(Severity::Dependency, "database unavailable", &error);
                Self::Unavailable
            }
            error => {
                server_failure(Severity::Bug, "store failure", &error);
                Self::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(self.body())).into_response();
        // Logged once per request, by the telemetry middleware.
        response.extensions_mut().insert(ErrorCode {
            code: self.code(),
            logged: !matches!(self.inner(), Self::NotReady { .. }),
        });
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::RateLimited {
            retry_after_seconds,
            ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reattest_errors_tell_the_client_what_to_do() {
        for error in [
            ApiError::KeyUnknown,
            ApiError::KeyRevoked,
            ApiError::KeySuperseded,
            ApiError::KeyExpired,
            ApiError::CounterRegressed {
                counter: 1,
                stored: 5,
            },
        ] {
            assert_eq!(error.details()["action"], "reattest_required", "{error}");
        }
        let replay = ApiError::CounterInvalid {
            counter: 5,
            stored: 5,
        };
        assert!(replay.details().get("action").is_none());
        assert_eq!(ApiError::KeyUnknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(ApiError::KeyRevoked.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn assessed_errors_keep_the_inner_status_and_code_and_add_the_risk() {
        let mut risk = Map::new();
        risk.insert("riskScore".into(), json!(65));
        let error = ApiError::Assessed {
            error: Box::new(ApiError::KeyRevoked),
            risk: Box::new(risk),
        };
        assert_eq!(error.status(), StatusCode::FORBIDDEN);
        assert_eq!(error.code(), "key_revoked");
        assert!(matches!(error.inner(), ApiError::KeyRevoked));
        let details = error.details();
        assert_eq!(details["action"], "reattest_required");
        assert_eq!(details["riskScore"], 65);
    }

    #[test]
    fn verification_failures_carry_the_core_code() {
        let error = ApiError::from(AppleError::NonceMismatch);
        assert_eq!(error.code(), "nonce_mismatch");
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn client_codes_are_all_listed() {
        let errors = [
            ApiError::field("keyId", "x"),
            ApiError::BodyTooLarge { limit: 1 },
            ApiError::HttpMalformed {
                status: StatusCode::BAD_REQUEST,
            },
            ApiError::HttpMalformed {
                status: StatusCode::URI_TOO_LONG,
            },
            ApiError::HttpMalformed {
                status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            },
            ApiError::UnsupportedMediaType,
            ApiError::UnknownApp("a".into()),
            ApiError::ChallengeInvalid,
            ApiError::LinkTokenInvalid(crate::server::link::LinkTokenRejection::Expired),
            ApiError::KeyAlreadyAttested,
            ApiError::KeyUnknown,
            ApiError::KeyRevoked,
            ApiError::CounterInvalid {
                counter: 1,
                stored: 1,
            },
            ApiError::KeySuperseded,
            ApiError::KeyExpired,
            ApiError::CounterRegressed {
                counter: 1,
                stored: 2,
            },
            ApiError::PolicyDenied {
                reasons: vec!["risk_above_max"],
                hosted_code: None,
            },
            ApiError::Unauthorized,
            ApiError::NotFound,
            ApiError::DeviceNotFound,
            ApiError::MethodNotAllowed,
            ApiError::RateLimited {
                limit: "address",
                retry_after_seconds: 1,
            },
            ApiError::Timeout,
            ApiError::Unavailable,
            ApiError::NotReady {
                reason: "database_write_failed",
            },
            ApiError::Internal,
        ];
        for error in errors {
            assert!(ApiError::CODES.contains(&error.code()), "{}", error.code());
        }
    }
}
