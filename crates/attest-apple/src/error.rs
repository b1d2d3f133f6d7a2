//! One error type for both APIs, with a stable code per variant.

use std::time::Duration;

use attest_core::apple::receipt::ReceiptError;

use crate::credentials::CredentialsError;

/// Why a call to Apple failed.
///
/// Each variant has a stable snake_case [`code`](Self::code) for HTTP answers, metrics and logs.
/// Apple's answer texts are logged (`tracing`, target `attest_apple`), not kept here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Receipt API, 400 "Incorrect Environment": a development receipt sent to production or
    /// the other way round. Not retryable: use the other base URL.
    #[error("Apple: the receipt belongs to the other environment (400 Incorrect Environment)")]
    IncorrectEnvironment,
    /// Receipt API, 400 "Bad Payload" (or any other 400): the body is missing or is not a
    /// base64 receipt.
    #[error("Apple: missing or malformed receipt (400 Bad Payload)")]
    BadPayload,
    /// DeviceCheck, 400 "Missing or incorrectly formatted device token payload".
    #[error("Apple: missing or incorrectly formatted device token (400)")]
    InvalidDeviceToken,
    /// DeviceCheck, 400 "Missing or incorrectly formatted bits".
    #[error("Apple: missing or incorrectly formatted bits (400)")]
    InvalidBits,
    /// DeviceCheck, 400 "Missing or incorrectly formatted time stamp".
    #[error("Apple: missing or incorrectly formatted time stamp (400)")]
    InvalidTimestamp,
    /// DeviceCheck, 400 "Invalid or missing transaction id".
    #[error("Apple: invalid or missing transaction id (400)")]
    InvalidTransactionId,
    /// DeviceCheck, 400 with a text not listed above.
    #[error("Apple: bad request (400)")]
    BadRequest,
    /// 401: the token could not be verified (wrong key, key without DeviceCheck, wrong team or
    /// key id, `iat` older than an hour) or does not match the receipt.
    #[error("Apple: authorization token rejected (401)")]
    Unauthorized,
    /// Receipt API, 404 "No Data Found": Apple has no data for this receipt's key.
    #[error("Apple: no data for this receipt (404)")]
    NoData,
    /// 429: too many requests; wait `retry_after` if Apple said how long.
    #[error("Apple: rate limited (429)")]
    RateLimited {
        /// From the `Retry-After` header (seconds or HTTP date), if present and readable.
        retry_after: Option<Duration>,
    },
    /// 5xx: Apple's side failed (500 Server Error, 503 Service Unavailable, ...). Retryable.
    #[error("Apple: server error ({status})")]
    ServerError {
        /// The HTTP status.
        status: u16,
    },
    /// A status neither API documents (403, 405, 3xx other than 304, ...).
    #[error("Apple: unexpected HTTP status {status}")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
    },
    /// A 200 answer whose body could not be read as the documented format.
    #[error("Apple: malformed answer: {0}")]
    MalformedResponse(&'static str),
    /// No answer: connection refused or reset, DNS, TLS, timeout. Retryable.
    #[error("Apple unreachable: {0}")]
    Transport(String),
    /// Receipt API, 200, but the new receipt failed verification or is not a `RECEIPT` for the
    /// same App ID and attested key as the receipt sent.
    #[error("Apple returned a receipt that does not verify: {0}")]
    InvalidReceiptFromApple(ReceiptError),
    /// The receipt to refresh could not be parsed, so nothing was sent.
    #[error("the receipt to refresh is malformed: {0}")]
    InvalidPreviousReceipt(ReceiptError),
    /// The credentials could not sign a token.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The client could not be built (base URL, TLS setup).
    #[error("invalid client configuration: {0}")]
    InvalidConfiguration(&'static str),
}

impl Error {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IncorrectEnvironment => "apple_incorrect_environment",
            Self::BadPayload => "apple_bad_payload",
            Self::InvalidDeviceToken => "apple_invalid_device_token",
            Self::InvalidBits => "apple_invalid_bits",
            Self::InvalidTimestamp => "apple_invalid_timestamp",
            Self::InvalidTransactionId => "apple_invalid_transaction_id",
            Self::BadRequest => "apple_bad_request",
            Self::Unauthorized => "apple_unauthorized",
            Self::NoData => "apple_no_data",
            Self::RateLimited { .. } => "apple_rate_limited",
            Self::ServerError { .. } => "apple_server_error",
            Self::UnexpectedStatus { .. } => "apple_unexpected_status",
            Self::MalformedResponse(_) => "apple_malformed_response",
            Self::Transport(_) => "apple_unreachable",
            Self::InvalidReceiptFromApple(_) => "apple_invalid_receipt",
            Self::InvalidPreviousReceipt(_) => "invalid_previous_receipt",
            Self::Credentials(_) => "apple_credentials_invalid",
            Self::InvalidConfiguration(_) => "apple_client_configuration_invalid",
        }
    }

    /// Every code [`code`](Self::code) can return, for documentation and metrics.
    pub const ALL_CODES: &'static [&'static str] = &[
        "apple_incorrect_environment",
        "apple_bad_payload",
        "apple_invalid_device_token",
        "apple_invalid_bits",
        "apple_invalid_timestamp",
        "apple_invalid_transaction_id",
        "apple_bad_request",
        "apple_unauthorized",
        "apple_no_data",
        "apple_rate_limited",
        "apple_server_error",
        "apple_unexpected_status",
        "apple_malformed_response",
        "apple_unreachable",
        "apple_invalid_receipt",
        "invalid_previous_receipt",
        "apple_credentials_invalid",
        "apple_client_configuration_invalid",
    ];

    /// Whether trying again later may succeed: 429, 5xx and transport failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::ServerError { .. } | Self::Transport(_)
        )
    }

    /// How long Apple asked to wait (429 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in Error::ALL_CODES {
            assert!(seen.insert(code), "duplicate {code}");
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
            );
        }
        let samples = [
            Error::IncorrectEnvironment,
            Error::BadPayload,
            Error::InvalidDeviceToken,
            Error::InvalidBits,
            Error::InvalidTimestamp,
            Error::InvalidTransactionId,
            Error::BadRequest,
            Error::Unauthorized,
            Error::NoData,
            Error::RateLimited { retry_after: None },
            Error::ServerError { status: 503 },
            Error::UnexpectedStatus { status: 403 },
            Error::MalformedResponse("x"),
            Error::Transport("x".into()),
            Error::InvalidReceiptFromApple(ReceiptError::WrongType),
            Error::InvalidPreviousReceipt(ReceiptError::TooLarge),
            Error::Credentials(CredentialsError::SigningFailed),
            Error::InvalidConfiguration("x"),
        ];
        assert_eq!(samples.len(), Error::ALL_CODES.len());
        for error in samples {
            assert!(Error::ALL_CODES.contains(&error.code()), "{error:?}");
        }
    }

    #[test]
    fn only_rate_limits_server_errors_and_transport_are_retryable() {
        assert!(Error::RateLimited { retry_after: None }.is_retryable());
        assert!(Error::ServerError { status: 500 }.is_retryable());
        assert!(Error::Transport("reset".into()).is_retryable());
        assert!(!Error::Unauthorized.is_retryable());
        assert!(!Error::BadPayload.is_retryable());
        assert!(!Error::NoData.is_retryable());
        assert!(!Error::InvalidReceiptFromApple(ReceiptError::WrongType).is_retryable());
    }
}
