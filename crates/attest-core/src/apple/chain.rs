//! Certificate path validation with rustls-webpki, plus the fast paths that make it cheap.
//!
//! A full path validation costs two P-384 signature checks for an attestation chain. Both
//! signatures above the leaf never change for a given intermediate (Apple App Attestation
//! CA 1 is the same for every device), so once webpki has validated a path through an
//! intermediate, that intermediate is remembered and later leaves are validated with it as
//! the anchor: one signature check instead of two. Signatures do not depend on time, but
//! validity does, so the remembered certificates' validity periods are checked on every call.
//!
//! For receipt signing chains even the leaf (the yearly "Fraud Receipt Signing" certificate) is
//! shared by every receipt, so whole chains can be remembered (`remember_leaf`).
//!
//! The caches are bounded (a handful of entries: Apple rotates these certificates yearly) and
//! are plain data inside the verifier: no globals, no I/O.
//!
//! Every root carries an [`AnchorScope`], and a validation answers the scope of the root the
//! path ended at (remembered with the cached intermediates and chains), so the verifiers above
//! can refuse what a root may not vouch for: an extra (test) root vouches for development keys
//! only.

use std::sync::RwLock;

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter, aws_lc_rs as algs};

use super::error::{ChainFailure, ValidityFailure};

/// Signature algorithms seen in Apple's chains: P-256 leaves signed by the P-384 App Attest
/// CA (`ECDSA_P384_SHA256`), that CA signed by the root (`ECDSA_P384_SHA384`), and the P-256
/// receipt chain (`ECDSA_P256_SHA256`), plus the remaining ECDSA combinations for caller roots.
static SUPPORTED_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
];

/// How many intermediates / whole chains are remembered. Apple has one App Attest intermediate
/// and rotates the receipt signer yearly; callers' own test roots add a few more.
const CACHE_CAPACITY: usize = 16;

/// What a trust anchor may vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnchorScope {
    /// Apple's pinned roots, or roots a caller explicitly puts in their place
    /// (`with_roots`): keys of every environment.
    AllEnvironments,
    /// Roots added to Apple's (`with_extra_roots`: simulators, quick start): development keys
    /// only, whatever the caller's environment policy allows.
    DevelopmentOnly,
}

/// A root certificate (DER) and what it vouches for.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    pub(crate) der: Vec<u8>,
    pub(crate) scope: AnchorScope,
}

impl Root {
    /// Every root of `ders` with the same `scope`.
    pub(crate) fn all(ders: Vec<Vec<u8>>, scope: AnchorScope) -> impl Iterator<Item = Self> {
        ders.into_iter().map(move |der| Self { der, scope })
    }
}

/// Why a chain did not validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainError {
    /// No valid path.
    Invalid(ChainFailure),
    /// A path exists but a certificate is outside its validity period.
    Validity(ValidityFailure),
}

/// Which extended key usages a leaf may carry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeafUsage {
    /// No EKU, or an EKU list that contains this OID (DER content bytes of the OID).
    RequiredIfPresent(&'static [u8]),
}

impl ExtendedKeyUsageValidator for LeafUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let Self::RequiredIfPresent(oid) = *self;
        webpki::KeyUsage::required_if_present(oid).validate(iter)
    }
}

#[derive(Debug)]
struct Validity {
    not_before: i64,
    not_after: i64,
}

impl Validity {
    fn of(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(Self {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    fn check(&self, time: UnixTime) -> Result<(), ValidityFailure> {
        let now = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
        if now < self.not_before {
            Err(ValidityFailure::NotYetValid)
        } else if now > self.not_after {
            Err(ValidityFailure::Expired)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
struct TrustedIntermediate {
    der: Vec<u8>,
    validity: Validity,
    /// The scope of the root it was validated under.
    scope: AnchorScope,
}

#[derive(Debug)]
struct TrustedChain {
    /// Leaf followed by intermediates, exactly as presented.
    ders: Vec<Vec<u8>>,
    validities: Vec<Validity>,
    /// The scope of the root it was validated under.
    scope: AnchorScope,
}

/// Validates leaf + intermediates against a fixed set of roots, remembering what it proved.
#[derive(Debug)]
pub(crate) struct ChainVerifier {
    roots: Vec<Root>,
    usage: LeafUsage,
    remember_leaf: bool,
    intermediates: RwLock<Vec<TrustedIntermediate>>,
    chains: RwLock<Vec<TrustedChain>>,
}

impl ChainVerifier {
    /// `roots` are DER certificates; each must parse as a webpki trust anchor.
    pub(crate) fn new(
        roots: Vec<Root>,
        usage: LeafUsage,
        remember_leaf: bool,
    ) -> Result<Self, ChainFailure> {
        for root in &roots {
            let der = CertificateDer::from(root.der.as_slice());
            webpki::anchor_from_trusted_cert(&der).map_err(|_| ChainFailure::BadEncoding)?;
        }
        Ok(Self::pinned(roots, usage, remember_leaf))
    }

    /// For the pinned roots, which tests prove are usable anchors.
    pub(crate) fn pinned(roots: Vec<Root>, usage: LeafUsage, remember_leaf: bool) -> Self {
        Self {
            roots,
            usage,
            remember_leaf,
            intermediates: RwLock::new(Vec::new()),
            chains: RwLock::new(Vec::new()),
        }
    }

    /// Validates `leaf` (issued through `intermediates`) at `time`; answers the scope of the
    /// root the path ends at.
    pub(crate) fn verify(
        &self,
        leaf: &[u8],
        intermediates: &[&[u8]],
        time: UnixTime,
    ) -> Result<AnchorScope, ChainError> {
        // Fast path 1: this exact chain was validated before; only validity can change.
        if self.remember_leaf
            && let Ok(chains) = self.chains.read()
        {
            let hit = chains.iter().find(|chain| {
                chain.ders.len() == intermediates.len() + 1
                    && chain.ders.first().is_some_and(|d| d == leaf)
                    && chain
                        .ders
                        .iter()
                        .skip(1)
                        .zip(intermediates)
                        .all(|(a, b)| a == b)
            });
            if let Some(chain) = hit {
                for validity in &chain.validities {
                    validity.check(time).map_err(ChainError::Validity)?;
                }
                return Ok(chain.scope);
            }
        }

        let cert = CertificateDer::from(leaf);
        let end_entity =
            EndEntityCert::try_from(&cert).map_err(|e| ChainError::Invalid(map_failure(&e)))?;

        // Fast path 2: the single intermediate was validated before; use it as the anchor.
        if let [intermediate] = intermediates {
            let known = self.intermediates.read().ok().and_then(|cache| {
                cache
                    .iter()
                    .find(|known| known.der.as_slice() == *intermediate)
                    .map(|known| (known.validity.check(time), known.der.clone(), known.scope))
            });
            if let Some((validity, der, scope)) = known {
                let der = CertificateDer::from(der);
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| ChainError::Invalid(map_failure(&e)))?;
                end_entity
                    .verify_for_usage(
                        SUPPORTED_ALGORITHMS,
                        &[anchor],
                        &[],
                        time,
                        self.usage,
                        None,
                        None,
                    )
                    .map_err(|e| map_error(&e))?;
                validity.map_err(ChainError::Validity)?;
                self.remember_chain(leaf, intermediates, scope);
                return Ok(scope);
            }
        }

        // Full validation to the pinned roots.
        let root_ders: Vec<(CertificateDer<'_>, AnchorScope)> = self
            .roots
            .iter()
            .map(|r| (CertificateDer::from(r.der.as_slice()), r.scope))
            .collect();
        let scoped: Vec<(TrustAnchor<'_>, AnchorScope)> = root_ders
            .iter()
            .filter_map(|(der, scope)| Some((webpki::anchor_from_trusted_cert(der).ok()?, *scope)))
            .collect();
        let anchors: Vec<TrustAnchor<'_>> = scoped.iter().map(|(a, _)| a.clone()).collect();
        let intermediate_ders: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|i| CertificateDer::from(*i))
            .collect();
        let path = end_entity
            .verify_for_usage(
                SUPPORTED_ALGORITHMS,
                &anchors,
                &intermediate_ders,
                time,
                self.usage,
                None,
                None,
            )
            .map_err(|e| map_error(&e))?;
        // The scope of the anchor the path ended at (subject and key compared, so a root that
        // merely shares Apple's name is not Apple's). If two roots were identical anchors, the
        // narrower scope wins.
        let scope = scoped
            .iter()
            .filter(|(anchor, _)| anchor == path.anchor())
            .map(|(_, scope)| *scope)
            .min_by_key(|scope| match scope {
                AnchorScope::DevelopmentOnly => 0,
                AnchorScope::AllEnvironments => 1,
            })
            .ok_or(ChainError::Invalid(ChainFailure::Other))?;

        // Remember the intermediate that sits directly under a root.
        let used: Vec<CertificateDer<'_>> =
            path.intermediate_certificates().map(|c| c.der()).collect();
        if let [intermediate] = used.as_slice() {
            let intermediate: &[u8] = intermediate.as_ref();
            if let (Some(validity), Ok(mut cache)) =
                (Validity::of(intermediate), self.intermediates.write())
                && !cache
                    .iter()
                    .any(|known| known.der.as_slice() == intermediate)
            {
                if cache.len() >= CACHE_CAPACITY {
                    cache.remove(0);
                }
                cache.push(TrustedIntermediate {
                    der: intermediate.to_vec(),
                    validity,
                    scope,
                });
            }
        }
        self.remember_chain(leaf, intermediates, scope);
        Ok(scope)
    }

    fn remember_chain(&self, leaf: &[u8], intermediates: &[&[u8]], scope: AnchorScope) {
        if !self.remember_leaf {
            return;
        }
        let ders: Vec<Vec<u8>> = std::iter::once(leaf)
            .chain(intermediates.iter().copied())
            .map(<[u8]>::to_vec)
            .collect();
        let Some(validities) = ders
            .iter()
            .map(|d| Validity::of(d))
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        if let Ok(mut chains) = self.chains.write()
            && !chains.iter().any(|c| c.ders == ders)
        {
            if chains.len() >= CACHE_CAPACITY {
                chains.remove(0);
            }
            chains.push(TrustedChain {
                ders,
                validities,
                scope,
            });
        }
    }
}

fn map_error(error: &webpki::Error) -> ChainError {
    match error {
        webpki::Error::CertExpired { .. } => ChainError::Validity(ValidityFailure::Expired),
        webpki::Error::CertNotValidYet { .. } => ChainError::Validity(ValidityFailure::NotYetValid),
        other => ChainError::Invalid(map_failure(other)),
    }
}

fn map_failure(error: &webpki::Error) -> ChainFailure {
    use webpki::Error as E;
    match error {
        E::UnknownIssuer => ChainFailure::UnknownIssuer,
        E::InvalidSignatureForPublicKey
        | E::SignatureAlgorithmMismatch
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => ChainFailure::BadSignature,
        E::BadDer | E::BadDerTime | E::TrailingData(_) | E::UnsupportedCertVersion => {
            ChainFailure::BadEncoding
        }
        E::CaUsedAsEndEntity | E::EndEntityUsedAsCa | E::PathLenConstraintViolated => {
            ChainFailure::InvalidRole
        }
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => ChainFailure::WrongKeyUsage,
        E::UnsupportedCriticalExtension | E::UnsupportedSignatureAlgorithmContext(_) => {
            ChainFailure::Unsupported
        }
        _ => ChainFailure::Other,
    }
}
