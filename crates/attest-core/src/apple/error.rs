//! Why an App Attest verification failed: one variant per failed step, each with a stable code.

use super::receipt::ReceiptError;

/// A failed App Attest verification.
///
/// Every variant maps to one of Apple's numbered validation steps (or to the parse that comes
/// before them) and carries a stable snake_case [`code`](AppleError::code). The codes are part
/// of attestd's public contract: the CLI, the HTTP API, logs and metrics all use them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppleError {
    /// The input is not a well-formed attestation or assertion object (bad CBOR, wrong types,
    /// missing fields, duplicate keys, indefinite lengths, trailing bytes, size limits).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which structure failed to parse (`attestation`, `assertion`, `authenticator data`, ...).
        what: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The attestation's `fmt` is not `apple-appattest`.
    #[error("unsupported attestation format (expected \"apple-appattest\")")]
    UnsupportedFormat,
    /// Step 1: the certificate chain does not lead to a trusted App Attest root.
    #[error("certificate chain invalid: {0}")]
    CertificateChainInvalid(ChainFailure),
    /// Step 1: a certificate of the chain is outside its validity period at the verification time.
    #[error("certificate {0} at the verification time")]
    CertificateExpired(ValidityFailure),
    /// Steps 2–4: SHA-256(authData ‖ clientDataHash) differs from the leaf's nonce extension.
    #[error(
        "nonce mismatch: the credential certificate does not commit to this authData and client data hash"
    )]
    NonceMismatch,
    /// Step 5: SHA-256 of the credential public key differs from the key identifier.
    #[error("key id mismatch: the credential certificate's key does not hash to the key id")]
    KeyIdMismatch,
    /// Step 6 (attestation) / step 4 (assertion): rpIdHash is not SHA-256 of an accepted App ID.
    #[error("app id mismatch: rpIdHash is not SHA-256 of any accepted App ID")]
    AppIdMismatch,
    /// Step 7 (attestation: counter must be 0) / step 5 (assertion: must exceed the stored one).
    #[error("counter invalid: got {counter}, {expectation}")]
    CounterInvalid {
        /// The counter found in the authenticator data.
        counter: u32,
        /// What it should have been.
        expectation: CounterExpectation,
    },
    /// Step 8: the AAGUID names an environment the caller does not accept (or no known one).
    #[error("environment mismatch: authenticator is {found}, accepted: {accepted}")]
    EnvironmentMismatch {
        /// The environment named by the AAGUID, or `unknown`.
        found: &'static str,
        /// What the caller's environment policy accepts.
        accepted: &'static str,
    },
    /// Step 9: the credential id in authData differs from the key identifier.
    #[error("credential id mismatch: authData's credential id is not the key id")]
    CredentialIdMismatch,
    /// The COSE public key in authData is not the credential certificate's key.
    #[error(
        "credential key mismatch: authData's COSE key differs from the credential certificate's key"
    )]
    CredentialKeyMismatch,
    /// Assertion steps 1–3: the signature does not verify over the nonce with the stored key.
    #[error("signature invalid: the assertion is not signed by this key over this client data")]
    SignatureInvalid,
    /// The receipt embedded in the attestation (or given alone) failed verification.
    #[error("receipt invalid: {0}")]
    ReceiptInvalid(#[from] ReceiptError),
    /// The caller passed an unusable argument (not attacker input): e.g. a public key that is not
    /// a P-256 SPKI, or an empty App ID list.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl AppleError {
    /// The stable snake_case code of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::UnsupportedFormat => "unsupported_format",
            Self::CertificateChainInvalid(_) => "certificate_chain_invalid",
            Self::CertificateExpired(_) => "certificate_expired",
            Self::NonceMismatch => "nonce_mismatch",
            Self::KeyIdMismatch => "key_id_mismatch",
            Self::AppIdMismatch => "app_id_mismatch",
            Self::CounterInvalid { .. } => "counter_invalid",
            Self::EnvironmentMismatch { .. } => "environment_mismatch",
            Self::CredentialIdMismatch => "credential_id_mismatch",
            Self::CredentialKeyMismatch => "credential_key_mismatch",
            Self::SignatureInvalid => "signature_invalid",
            Self::ReceiptInvalid(_) => "receipt_invalid",
            Self::InvalidArgument(_) => "invalid_argument",
        }
    }

    /// Every code [`code`](Self::code) can return, for documentation and metrics pre-registration.
    pub const ALL_CODES: &'static [&'static str] = &[
        "malformed",
        "unsupported_format",
        "certificate_chain_invalid",
        "certificate_expired",
        "nonce_mismatch",
        "key_id_mismatch",
        "app_id_mismatch",
        "counter_invalid",
        "environment_mismatch",
        "credential_id_mismatch",
        "credential_key_mismatch",
        "signature_invalid",
        "receipt_invalid",
        "invalid_argument",
    ];

    pub(crate) const fn malformed(what: &'static str, reason: &'static str) -> Self {
        Self::Malformed { what, reason }
    }
}

/// Why a certificate chain did not validate (the part of webpki's answer worth showing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainFailure {
    /// No path from the leaf to a trust anchor (wrong or missing intermediate, untrusted root).
    UnknownIssuer,
    /// A signature in the path does not verify.
    BadSignature,
    /// A certificate could not be parsed.
    BadEncoding,
    /// A certificate is used outside its allowed role (CA as leaf, leaf as CA, path length).
    InvalidRole,
    /// The leaf carries an extended key usage that is not App Attest's.
    WrongKeyUsage,
    /// The leaf or intermediate has an unsupported critical extension or algorithm.
    Unsupported,
    /// The chain has too few or too many certificates.
    WrongLength,
    /// Any other webpki failure.
    Other,
}

impl std::fmt::Display for ChainFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownIssuer => "no path to a trusted root",
            Self::BadSignature => "a signature in the chain does not verify",
            Self::BadEncoding => "a certificate is not valid DER",
            Self::InvalidRole => "a certificate is used outside its CA / end-entity role",
            Self::WrongKeyUsage => "the leaf's extended key usage is not App Attest's",
            Self::Unsupported => "unsupported critical extension or signature algorithm",
            Self::WrongLength => "x5c must hold the credential certificate and its intermediate",
            Self::Other => "path validation failed",
        })
    }
}

/// Which side of a validity period the verification time fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityFailure {
    /// The certificate's notAfter is before the verification time.
    Expired,
    /// The certificate's notBefore is after the verification time.
    NotYetValid,
}

impl std::fmt::Display for ValidityFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Expired => "has expired",
            Self::NotYetValid => "is not yet valid",
        })
    }
}

/// What a rejected counter should have been.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterExpectation {
    /// Attestations must carry counter 0.
    Zero,
    /// Assertions must carry a counter strictly greater than the stored one.
    GreaterThan(u32),
}

impl std::fmt::Display for CounterExpectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Zero => f.write_str("an attestation must have counter 0"),
            Self::GreaterThan(previous) => {
                write!(f, "must be greater than the stored counter {previous}")
            }
        }
    }
}
