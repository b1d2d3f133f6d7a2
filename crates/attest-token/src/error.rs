//! Why issuing or verifying a token failed.

/// An error of attest-token. Each variant has a stable [`code`](TokenError::code) for HTTP
/// responses, metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The system could not generate a key pair.
    #[error("could not generate a signing key")]
    KeyGeneration,
    /// The bytes are not a PKCS#8 P-256 private key.
    #[error("not a PKCS#8 P-256 private key")]
    InvalidKey,
    /// An extra claim uses a name the token already defines (it would shadow that claim).
    #[error("extra claim {0:?} would shadow a registered claim")]
    ReservedClaim(String),
    /// Signing failed.
    #[error("could not sign the token")]
    Signing,
    /// The token is longer than any token this crate issues.
    #[error("token too large")]
    TooLarge,
    /// The token is not three base64url parts with a JSON header.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than ES256 (`none` and `HS256` included).
    #[error("unsupported token algorithm")]
    UnsupportedAlgorithm,
    /// The header names no key, or a key that is not (or no longer) in the keyring.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The signature does not match the header and payload.
    #[error("bad token signature")]
    BadSignature,
    /// The signed payload lacks a claim or has one of the wrong type.
    #[error("invalid token claims")]
    InvalidClaims,
    /// The token was issued for another App ID.
    #[error("token issued for another audience")]
    WrongAudience,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The token claims to be issued later than now (beyond the allowed clock skew).
    #[error("token issued in the future")]
    IssuedInFuture,
}

impl TokenError {
    /// The stable snake_case code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyGeneration => "key_generation_failed",
            Self::InvalidKey => "invalid_signing_key",
            Self::ReservedClaim(_) => "reserved_claim",
            Self::Signing => "signing_failed",
            Self::TooLarge => "token_too_large",
            Self::Malformed => "token_malformed",
            Self::UnsupportedAlgorithm => "token_algorithm_unsupported",
            Self::UnknownKey => "token_key_unknown",
            Self::BadSignature => "token_signature_invalid",
            Self::InvalidClaims => "token_claims_invalid",
            Self::WrongAudience => "token_audience_mismatch",
            Self::Expired => "token_expired",
            Self::IssuedInFuture => "token_issued_in_future",
        }
    }
}
