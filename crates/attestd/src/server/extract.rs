//! Request extractors whose rejections are [`ApiError`]s, and decoding of request fields.

use std::sync::Arc;

use attest_core::apple::KeyId;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;

/// `Json<T>` whose failures are `malformed_request`, `body_too_large` or
/// `unsupported_media_type` JSON bodies instead of axum's plain-text ones.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::from_json_rejection(
                &rejection,
                state.config.body_limit,
            )),
        }
    }
}

/// `Path<T>` whose failures (a segment that is not UTF-8 once percent-decoded, ...) are
/// `malformed_request` JSON bodies instead of axum's plain-text ones.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<Arc<AppState>> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::MalformedRequest {
                message: rejection.body_text(),
                field: None,
            }),
        }
    }
}

/// An optional JSON body: an empty (or `null`) body is `None`, whatever the content type.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::BodyTooLarge {
                        limit: state.config.body_limit,
                    }
                } else {
                    ApiError::MalformedRequest {
                        message: rejection.body_text(),
                        field: None,
                    }
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        // `null` is no body too, as the document's `oneOf: [body, null]` says.
        serde_json::from_slice::<Option<T>>(&bytes)
            .map(Self)
            .map_err(|error| ApiError::MalformedRequest {
                message: error.to_string(),
                field: None,
            })
    }
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 as apps send it: standard (Apple's SDK) or URL-safe, padded or not.
pub fn decode_base64(field: &'static str, text: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| ApiError::field(field, format!("{field} is not valid base64")))
}

/// Decodes a key id: 32 bytes of base64 (either alphabet).
pub fn decode_key_id(field: &'static str, text: &str) -> Result<KeyId, ApiError> {
    let bytes = decode_base64(field, text)?;
    KeyId::from_slice(&bytes)
        .ok_or_else(|| ApiError::field(field, format!("{field} must be 32 bytes of base64")))
}

/// A key id as Apple's SDK prints it: standard base64 with padding.
pub fn encode_key_id(key_id: &KeyId) -> String {
    base64::engine::general_purpose::STANDARD.encode(key_id.as_bytes())
}

/// `format` of `POST /v1/device-checks`.
pub const DEVICE_CHECK_FORMAT: &str = "apple-devicecheck";

/// Checks `platform` (`ios`) and `format` (`expected_format`) of a request that only one
/// format serves (DeviceCheck); attestations and assertions use `platform::Format::parse`.
pub fn check_platform(platform: &str, format: &str, expected_format: &str) -> Result<(), ApiError> {
    if platform != "ios" {
        return Err(ApiError::UnsupportedPlatform {
            field: "platform",
            value: platform.into(),
        });
    }
    if format != expected_format {
        return Err(ApiError::UnsupportedPlatform {
            field: "format",
            value: format.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_accepted_in_both_alphabets_with_or_without_padding() {
        let bytes: Vec<u8> = (0..=255).collect();
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            assert_eq!(decode_base64("x", &engine.encode(&bytes)).unwrap(), bytes);
        }
        assert!(decode_base64("x", "not base64!").is_err());
    }

    #[test]
    fn key_ids_must_be_32_bytes() {
        let id = encode_key_id(&KeyId([7; 32]));
        assert_eq!(decode_key_id("keyId", &id).unwrap(), KeyId([7; 32]));
        let short = base64::engine::general_purpose::STANDARD.encode([1; 31]);
        assert_eq!(
            decode_key_id("keyId", &short).unwrap_err().code(),
            "malformed_request"
        );
    }
}
