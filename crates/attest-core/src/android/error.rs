//! Why an Android Key Attestation verification failed: one variant per check, each with a stable
//! code.

use super::key_description::{SecurityLevel, VerifiedBootState};
use super::revocation::RevocationStatus;

/// A failed Android Key Attestation verification.
///
/// The variants follow the checks in the order they run (see the module documentation); the
/// first failing check is the error. Each carries a stable snake_case [`code`](Self::code), part
/// of attestd's public contract (CLI, HTTP API, logs, metrics).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AndroidError {
    /// 1. Not a usable chain: fewer than two certificates, too many, or a certificate that is not
    ///    an X.509 certificate.
    #[error("malformed certificate chain: {0}")]
    Malformed(&'static str),
    /// 2. Names or signatures do not chain from the leaf to a pinned Google root key (or to a
    ///    root the caller configured).
    #[error("certificate chain invalid: {0}")]
    CertificateChainInvalid(ChainFailure),
    /// 3. The chain ends at an Android Keystore *software* attestation root: the key is not in
    ///    secure hardware (emulators, userdebug builds, some rooted devices).
    #[error("the chain ends at the Android Keystore software attestation root")]
    SoftwareRoot,
    /// 4. The leaf has no KeyDescription extension (1.3.6.1.4.1.11129.2.1.17), or it does not
    ///    parse.
    #[error("key description missing: {0}")]
    KeyDescriptionMissing(&'static str),
    /// 5. The chain goes on past what a Key Attestation chain may hold: a KeyDescription in a
    ///    certificate other than the leaf (a chain-extension attack, or ATTEST_KEY certificates
    ///    the policy does not allow), more certificates than the chain's provisioning type has,
    ///    or certificates after the root.
    #[error("chain extended: {0}")]
    ChainExtended(ExtendedBy),
    /// 6. A certificate above the leaf is not yet valid, or has expired on a chain that is not
    ///    factory-provisioned (the leaf's validity is never checked).
    #[error("certificate {index} of the chain {failure} at the verification time")]
    CertificateExpired {
        /// Index of the certificate in the chain as given (0 = leaf).
        index: usize,
        /// Which side of its validity period the verification time fell on.
        failure: ValidityFailure,
    },
    /// 7. A certificate's serial is on Google's status list (REVOKED or SUSPENDED, or any other
    ///    status: the list only holds certificates that must not be trusted).
    #[error("certificate {index} of the chain (serial {serial}) is listed as {status}")]
    CertificateRevoked {
        /// Index of the certificate in the chain as given (0 = leaf).
        index: usize,
        /// Its serial, lowercase hex without leading zeros (the list's key).
        serial: String,
        /// The status the list gives.
        status: RevocationStatus,
    },
    /// 7. The revocation list is older than the caller allows: fail closed.
    #[error(
        "revocation list too old: fetched {age_secs} s before the verification time, at most {max_age_secs} s allowed"
    )]
    RevocationListStale {
        /// How old the list was at the verification time.
        age_secs: u64,
        /// The allowed age.
        max_age_secs: u64,
    },
    /// 8. attestationChallenge differs from the expected challenge.
    #[error("challenge mismatch: the key was not attested for this challenge")]
    ChallengeMismatch,
    /// 9. The attestation or KeyMint security level is software, the two differ, or they are
    ///    below the policy's minimum.
    #[error(
        "security level insufficient: attestation {attestation}, KeyMint {keymint}, at least {required} required"
    )]
    SecurityLevelInsufficient {
        /// attestationSecurityLevel.
        attestation: SecurityLevel,
        /// keyMintSecurityLevel (keymasterSecurityLevel before KeyMint).
        keymint: SecurityLevel,
        /// The policy's minimum.
        required: SecurityLevel,
    },
    /// 10. hardwareEnforced.origin is missing or not GENERATED: the key was imported or
    ///     derived, so the hardware does not vouch that it never left it.
    #[error("key origin invalid: the key was not generated in secure hardware")]
    KeyOriginInvalid,
    /// 11. hardwareEnforced.rootOfTrust is missing.
    #[error("root of trust missing from the hardware-enforced authorizations")]
    RootOfTrustMissing,
    /// 12. The attested application is not the expected package, or its signing certificates
    ///     are not the allowed ones.
    #[error("package mismatch: {0}")]
    PackageMismatch(PackageFailure),
    /// 13. The policy requires a verified boot on a locked device and the root of trust says
    ///     otherwise.
    #[error(
        "verified boot required: boot state {state}, device {}",
        if *locked { "locked" } else { "unlocked" }
    )]
    VerifiedBootRequired {
        /// verifiedBootState.
        state: VerifiedBootState,
        /// deviceLocked.
        locked: bool,
    },
    /// The caller passed an unusable argument (not attacker input), e.g. an empty package list
    /// or a root that is not a certificate.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl AndroidError {
    /// The stable snake_case code of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::CertificateChainInvalid(_) => "certificate_chain_invalid",
            Self::SoftwareRoot => "software_root",
            Self::KeyDescriptionMissing(_) => "key_description_missing",
            Self::ChainExtended(_) => "chain_extended",
            Self::CertificateExpired { .. } => "certificate_expired",
            Self::CertificateRevoked { .. } => "certificate_revoked",
            Self::RevocationListStale { .. } => "revocation_list_stale",
            Self::ChallengeMismatch => "challenge_mismatch",
            Self::SecurityLevelInsufficient { .. } => "security_level_insufficient",
            Self::KeyOriginInvalid => "key_origin_invalid",
            Self::RootOfTrustMissing => "root_of_trust_missing",
            Self::PackageMismatch(_) => "package_mismatch",
            Self::VerifiedBootRequired { .. } => "verified_boot_required",
            Self::InvalidArgument(_) => "invalid_argument",
        }
    }

    /// Every code [`code`](Self::code) can return, in check order, for documentation and
    /// metrics pre-registration.
    pub const ALL_CODES: &'static [&'static str] = &[
        "malformed",
        "certificate_chain_invalid",
        "software_root",
        "key_description_missing",
        "chain_extended",
        "certificate_expired",
        "certificate_revoked",
        "revocation_list_stale",
        "challenge_mismatch",
        "security_level_insufficient",
        "key_origin_invalid",
        "root_of_trust_missing",
        "package_mismatch",
        "verified_boot_required",
        "invalid_argument",
    ];
}

/// Why the names and signatures did not chain to a trusted root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainFailure {
    /// Certificate `index` names an issuer that is not the next certificate's subject (and no
    /// trusted root's).
    NameChaining {
        /// Index of the certificate in the chain as given (0 = leaf).
        index: usize,
    },
    /// Certificate `index`'s signature does not verify with the next certificate's key.
    BadSignature {
        /// Index of the certificate in the chain as given (0 = leaf).
        index: usize,
    },
    /// Certificate `index` uses a signature algorithm (or its issuer a key type) the walker
    /// does not support.
    UnsupportedAlgorithm {
        /// Index of the certificate in the chain as given (0 = leaf).
        index: usize,
    },
    /// The last certificate is not issued by a trusted root key.
    UnknownIssuer,
    /// The path from the leaf to the root holds a single certificate (the leaf would be signed
    /// by the root itself, or the chain is given root first).
    TooShort,
    /// A certificate in a path to a Google root is signed with an RSA key shorter than 2048
    /// bits (only software chains use those).
    WeakKey {
        /// Index of the certificate in the chain as given (0 = leaf).
        index: usize,
    },
}

impl std::fmt::Display for ChainFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NameChaining { index } => write!(
                f,
                "certificate {index} names an issuer that is not the next certificate's subject"
            ),
            Self::BadSignature { index } => write!(
                f,
                "certificate {index}'s signature does not verify with its issuer's key"
            ),
            Self::UnsupportedAlgorithm { index } => {
                write!(
                    f,
                    "certificate {index} uses an unsupported signature algorithm"
                )
            }
            Self::UnknownIssuer => f.write_str("the chain does not end at a trusted root key"),
            Self::TooShort => f.write_str(
                "no certificate between the leaf and the root (or the chain is not leaf first)",
            ),
            Self::WeakKey { index } => write!(
                f,
                "certificate {index} is signed with an RSA key shorter than 2048 bits"
            ),
        }
    }
}

/// How a chain goes on past what a Key Attestation chain may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtendedBy {
    /// Certificate `index` (not the leaf) carries a KeyDescription and is not an allowed
    /// ATTEST_KEY attestation.
    KeyDescriptionAboveLeaf {
        /// Index of the certificate in the chain as given.
        index: usize,
    },
    /// The path holds `found` certificates below the root; this provisioning type has at most
    /// `allowed`.
    TooLong {
        /// Certificates from the leaf to the one the root signed.
        found: usize,
        /// The most this chain's provisioning type has.
        allowed: usize,
    },
    /// `count` certificates follow the one the root key signed and are not just the root's own
    /// self-issued certificate.
    AfterRoot {
        /// How many certificates follow.
        count: usize,
    },
}

impl std::fmt::Display for ExtendedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::KeyDescriptionAboveLeaf { index } => write!(
                f,
                "certificate {index} carries a KeyDescription but is not the leaf"
            ),
            Self::TooLong { found, allowed } => write!(
                f,
                "{found} certificates below the root where this chain's provisioning has at most {allowed}"
            ),
            Self::AfterRoot { count } => {
                write!(f, "{count} certificate(s) after the root")
            }
        }
    }
}

/// Which side of a validity period the verification time fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityFailure {
    /// notAfter is before the verification time.
    Expired,
    /// notBefore is after the verification time.
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

/// What did not match in the attested application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PackageFailure {
    /// The KeyDescription carries no attestationApplicationId.
    NoApplicationId,
    /// None of the expected package names is among the attested packages.
    Package,
    /// The attested signing-certificate digests are not the allowed ones.
    SigningCertificate,
}

impl std::fmt::Display for PackageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoApplicationId => "the key description names no application",
            Self::Package => "the attested package is not the expected one",
            Self::SigningCertificate => {
                "the attested signing certificates are not the allowed ones"
            }
        })
    }
}
