//! Why an Android Key Attestation verification failed.

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
