#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod android;
pub mod apple;
pub mod challenge;

pub use rustls_pki_types::UnixTime;

use attest_types::Platform;

/// A refusal by any platform's verifier: one type for callers that serve several platforms,
/// whose [`code`](VerifyError::code) is the platform error's own stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// App Attest.
    #[error(transparent)]
    Apple(#[from] apple::AppleError),
    /// Android Key Attestation.
    #[error(transparent)]
    Android(#[from] android::AndroidError),
}

impl VerifyError {
    /// The platform error's stable code (`nonce_mismatch`, `certificate_revoked`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Apple(error) => error.code(),
            Self::Android(error) => error.code(),
        }
    }

    /// The platform whose verifier refused.
    pub fn platform(&self) -> Platform {
        match self {
            Self::Apple(_) => Platform::Ios,
            Self::Android(_) => Platform::Android,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_the_platform_error_code() {
        let apple = VerifyError::from(apple::AppleError::KeyIdMismatch);
        assert_eq!(
            (apple.code(), apple.platform()),
            ("key_id_mismatch", Platform::Ios)
        );
        let android = VerifyError::from(android::AndroidError::ChallengeMismatch);
        assert_eq!(
            (android.code(), android.platform()),
            ("challenge_mismatch", Platform::Android)
        );
        assert_eq!(
            android.to_string(),
            android::AndroidError::ChallengeMismatch.to_string()
        );
    }
}
