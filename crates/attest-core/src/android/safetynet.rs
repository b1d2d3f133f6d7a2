//! SafetyNet Attestation (**legacy**): verify a captured SafetyNet JWS, for migration only.
//!
//! Google deprecated SafetyNet in 2022 and turned it down in January 2025; Play Integrity
//! replaces it. attestd reads SafetyNet responses so that devices registered with it can be
//! recognised and moved over, and nothing more: a SafetyNet verdict is **never** hardware
//! backed ([`VerifiedSafetyNet::hardware_backed`] is always `false`), whatever its
//! `evaluationType` says, because no key of the device is attested to us: Google signed a
//! statement about its own evaluation.
//!
//! A response is a compact JWS, `{"alg":"RS256","x5c":[leaf, intermediates...]}` over a JSON
//! payload (`nonce`, `timestampMs`, `apkPackageName`, `apkDigestSha256`,
//! `apkCertificateDigestSha256`, `ctsProfileMatch`, `basicIntegrity`, `evaluationType`,
//! `advice`, `deprecationInformation`). [`SafetyNetVerifier::verify`] runs the checks in the
//! order of the shared vector set (`tests/data/android/README.md`, § safetynet):
//!
//! 1. **Format**: three base64url parts, a header with `alg` and `x5c` (leaf first). `alg` must
//!    be `RS256` (`unsupported_algorithm`); no `crit`.
//! 2. **Signature**: RS256 (RSASSA-PKCS1-v1_5, SHA-256) with the leaf's RSA key over
//!    `header.payload` as received.
//! 3. **Chain**: x5c chains to a pinned GlobalSign root (Root CA R1, or Root CA - R2 before
//!    its expiry) with rustls-webpki, like the Apple path. Unlike Android Key Attestation
//!    chains (see `chain.rs`), these are ordinary Web PKI TLS server chains: CA:TRUE
//!    intermediates, a serverAuth leaf, so webpki's RFC 5280 rules fit them exactly.
//! 4. **Hostname**: the leaf is for `attest.android.com` (a SAN dNSName, or the CN when the leaf
//!    has no SAN dNSName).
//! 5. **Validity**: every certificate of the path, the root included, is valid at the given
//!    time. (The vectors use the payload's `timestampMs`; a server passes its clock.)
//! 6. **Payload**: parsed into typed facts only now that it is authenticated.
//! 7. **Nonce**: the payload's `nonce` string equals the expected one exactly.
//! 8. **Package** (optional): `apkPackageName` equals the expected package.
//!
//! Pure: bytes, trust anchors and a time in, [`VerifiedSafetyNet`] out; no clock, no network.

use std::fmt;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use serde::Deserialize;
use webpki::{EndEntityCert, KeyUsage, aws_lc_rs as algs};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;

use super::error::ValidityFailure;
use super::roots;

/// The largest JWS accepted, in bytes. Real responses are 5-9 KB (two or three certificates of
/// about 1.5 KB, inflated by 4/3 twice over: base64 in x5c, base64url of the header, plus a
/// payload under 1 KB); 64 KiB leaves room for longer chains and nonces and bounds the work
/// done before the signature is checked.
pub const MAX_JWS_LEN: usize = 64 * 1024;

/// The most certificates x5c may hold. Google's chains have two or three (leaf, issuing CA,
/// optionally the cross-signed GTS Root R1).
pub const MAX_X5C_LEN: usize = 8;

/// The hostname Google's attestation signing certificates are issued for.
pub const ATTESTATION_HOSTNAME: &str = "attest.android.com";

/// Signature algorithms of Web PKI chains: RSA (Google's SafetyNet chains are all RSA) and
/// ECDSA (for GTS's later ECDSA intermediates, and test roots).
static CHAIN_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
];

/// A failed SafetyNet verification: one variant per check, in check order, each with a stable
/// snake_case [`code`](Self::code) (part of attestd's public contract, like
/// [`AndroidError`](super::AndroidError)'s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SafetyNetError {
    /// 1, 6. Not a compact JWS with a usable header, certificates and payload.
    #[error("malformed SafetyNet response: {0}")]
    Malformed(&'static str),
    /// 1. The header's `alg` is not `RS256`.
    #[error("unsupported JWS algorithm: SafetyNet responses are RS256")]
    UnsupportedAlgorithm,
    /// 2. The RS256 signature does not verify with the leaf certificate's key (or the leaf's
    ///    key is not RSA).
    #[error("the JWS signature does not verify with the leaf certificate's key")]
    SignatureInvalid,
    /// 3. x5c does not chain to a pinned GlobalSign root (or the caller's roots).
    #[error("certificate chain invalid: {0}")]
    CertificateChainInvalid(SafetyNetChainFailure),
    /// 4. The leaf is not issued for `attest.android.com`.
    #[error("the signing certificate is not issued for attest.android.com")]
    HostnameMismatch,
    /// 5. A certificate of the path (root included) is outside its validity period at the
    ///    verification time.
    #[error("a certificate of the chain {0} at the verification time")]
    CertificateExpired(ValidityFailure),
    /// 7. The payload's nonce is not the expected one.
    #[error("nonce mismatch: the response was not made for this nonce")]
    NonceMismatch,
    /// 8. apkPackageName is missing or not the expected package.
    #[error("package mismatch: apkPackageName is not the expected package")]
    PackageMismatch,
    /// The caller passed an unusable argument (not attacker input): an empty expected nonce,
    /// a root that is not a certificate.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl SafetyNetError {
    /// The stable snake_case code of this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::SignatureInvalid => "signature_invalid",
            Self::CertificateChainInvalid(_) => "certificate_chain_invalid",
            Self::HostnameMismatch => "hostname_mismatch",
            Self::CertificateExpired(_) => "certificate_expired",
            Self::NonceMismatch => "nonce_mismatch",
            Self::PackageMismatch => "package_mismatch",
            Self::InvalidArgument(_) => "invalid_argument",
        }
    }

    /// Every code [`code`](Self::code) can return, in check order.
    pub const ALL_CODES: &'static [&'static str] = &[
        "malformed",
        "unsupported_algorithm",
        "signature_invalid",
        "certificate_chain_invalid",
        "hostname_mismatch",
        "certificate_expired",
        "nonce_mismatch",
        "package_mismatch",
        "invalid_argument",
    ];
}

/// Why x5c did not chain to a trusted root (webpki's verdict, grouped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SafetyNetChainFailure {
    /// No path from the leaf to a trusted root (untrusted root, missing intermediate).
    UnknownIssuer,
    /// A certificate signature in the path does not verify.
    BadSignature,
    /// A certificate is not valid DER.
    BadEncoding,
    /// A certificate is used outside its role (CA as leaf, leaf as CA, path length).
    InvalidRole,
    /// The leaf's extended key usage does not allow TLS server authentication.
    WrongKeyUsage,
    /// An unsupported critical extension or signature algorithm.
    Unsupported,
    /// Any other path validation failure.
    Other,
}

impl fmt::Display for SafetyNetChainFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownIssuer => "no path to a trusted GlobalSign root",
            Self::BadSignature => "a signature in the chain does not verify",
            Self::BadEncoding => "a certificate is not valid DER",
            Self::InvalidRole => "a certificate is used outside its CA / end-entity role",
            Self::WrongKeyUsage => "the leaf is not a TLS server certificate",
            Self::Unsupported => "unsupported critical extension or signature algorithm",
            Self::Other => "path validation failed",
        })
    }
}

/// Which root a verified response's chain ended at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SafetyNetAnchor {
    /// GlobalSign Root CA (R1): chains from 2021 on.
    GlobalSignRootCa,
    /// GlobalSign Root CA - R2 (expired 2021-12-15): chains from 2017 to 2021.
    GlobalSignRootCaR2,
    /// A root the caller configured ([`SafetyNetVerifier::with_roots`], tests).
    Caller,
}

impl SafetyNetAnchor {
    /// A stable name for output: `globalsign_root_ca`, `globalsign_root_ca_r2`, `caller`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GlobalSignRootCa => "globalsign_root_ca",
            Self::GlobalSignRootCaR2 => "globalsign_root_ca_r2",
            Self::Caller => "caller",
        }
    }
}

/// What the response must match.
#[derive(Debug, Clone, Copy)]
pub struct SafetyNetRequest<'a> {
    /// The nonce **string exactly as the payload carries it**: SafetyNet puts the standard
    /// base64 (with padding) of the nonce bytes the app passed to `attest()`. For WebAuthn
    /// `android-safetynet` that is base64(SHA-256(authenticatorData || clientDataHash)). The
    /// comparison is exact: no decoding, no padding or alphabet tolerance. Must not be empty.
    pub nonce: &'a str,
    /// The expected apkPackageName; `None` skips the check.
    pub package_name: Option<&'a str>,
    /// The verification time (certificate validity).
    pub time: UnixTime,
}

/// A SHA-256 digest from the payload (apkDigestSha256, apkCertificateDigestSha256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

/// One entry of `evaluationType` (a comma-separated list in the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvaluationType {
    /// `BASIC`: Google's software evaluation.
    Basic,
    /// `HARDWARE_BACKED`: Google's evaluation used hardware-backed signals on the device. This
    /// says how Google reached its verdict; it does **not** make the response hardware backed
    /// for attestd (no device key is attested to us).
    HardwareBacked,
    /// A value this version does not name, kept verbatim.
    Other(String),
}

impl EvaluationType {
    fn parse(text: &str) -> Self {
        match text {
            "BASIC" => Self::Basic,
            "HARDWARE_BACKED" => Self::HardwareBacked,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The payload's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Basic => "BASIC",
            Self::HardwareBacked => "HARDWARE_BACKED",
            Self::Other(other) => other,
        }
    }
}

/// The attestation statement, typed. Only reachable through [`VerifiedSafetyNet`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SafetyNetPayload {
    /// `nonce`, as carried (standard base64 of the app's nonce bytes).
    pub nonce: String,
    /// `timestampMs`: when Google's server made the response (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// `apkPackageName`, absent when Google could not evaluate the app.
    pub apk_package_name: Option<String>,
    /// `apkDigestSha256`: SHA-256 of the APK.
    pub apk_digest_sha256: Option<Sha256Digest>,
    /// `apkCertificateDigestSha256`: SHA-256 of each APK signing certificate (empty if absent).
    pub apk_certificate_digest_sha256: Vec<Sha256Digest>,
    /// `ctsProfileMatch`: the device passed Android compatibility testing.
    pub cts_profile_match: bool,
    /// `basicIntegrity`: the device was not found tampered with (a weaker signal).
    pub basic_integrity: bool,
    /// `evaluationType` (2020+), empty when absent.
    pub evaluation_type: Vec<EvaluationType>,
    /// `advice` (e.g. `RESTORE_TO_FACTORY_ROM`, `LOCK_BOOTLOADER`), empty when absent.
    pub advice: Vec<String>,
    /// `deprecationInformation` (added November 2022): text, or the compact JSON of a
    /// non-string value.
    pub deprecation_information: Option<String>,
}

/// A SafetyNet response that passed every check. Only [`SafetyNetVerifier::verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedSafetyNet {
    payload: SafetyNetPayload,
    anchor: SafetyNetAnchor,
    package_checked: bool,
}

impl VerifiedSafetyNet {
    /// The payload's facts.
    pub fn payload(&self) -> &SafetyNetPayload {
        &self.payload
    }

    /// The root the chain ended at.
    pub fn anchor(&self) -> SafetyNetAnchor {
        self.anchor
    }

    /// Whether apkPackageName was compared with an expected package.
    pub fn package_checked(&self) -> bool {
        self.package_checked
    }

    /// `ctsProfileMatch && basicIntegrity`: Google's strongest SafetyNet device verdict.
    pub fn meets_integrity(&self) -> bool {
        self.payload.cts_profile_match && self.payload.basic_integrity
    }

    /// Always `false`: SafetyNet attests no device key, so it is never counted as hardware
    /// backed, not even with `evaluationType` `HARDWARE_BACKED`.
    pub fn hardware_backed(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct Root {
    anchor: TrustAnchor<'static>,
    kind: SafetyNetAnchor,
    not_before: i64,
    not_after: i64,
}

impl Root {
    fn parse(der: &[u8], kind: SafetyNetAnchor) -> Option<Self> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let certificate = CertificateDer::from(der);
        let anchor = webpki::anchor_from_trusted_cert(&certificate)
            .ok()?
            .to_owned();
        Some(Self {
            anchor,
            kind,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// Verifies SafetyNet responses against fixed roots. Cheap to build; share one per process.
#[derive(Debug)]
pub struct SafetyNetVerifier {
    roots: Vec<Root>,
}

impl SafetyNetVerifier {
    /// Anchored at the pinned GlobalSign roots (Root CA R1 and Root CA - R2).
    pub fn google() -> Self {
        // Both pinned roots parse (unit test below); were one not to, it would anchor nothing
        // and verification would fail closed.
        let roots = [
            (roots::GLOBALSIGN_ROOT_CA, SafetyNetAnchor::GlobalSignRootCa),
            (
                roots::GLOBALSIGN_ROOT_CA_R2,
                SafetyNetAnchor::GlobalSignRootCaR2,
            ),
        ]
        .into_iter()
        .filter_map(|(der, kind)| Root::parse(der, kind))
        .collect();
        Self { roots }
    }

    /// Anchored at `roots` (DER certificates) **in place of** GlobalSign's: for tests whose CA
    /// plays Google's.
    pub fn with_roots(roots: Vec<Vec<u8>>) -> Result<Self, SafetyNetError> {
        let roots = roots
            .iter()
            .map(|der| {
                Root::parse(der, SafetyNetAnchor::Caller).ok_or(SafetyNetError::InvalidArgument(
                    "a root is not a DER X.509 certificate",
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { roots })
    }

    /// Verifies the compact JWS `jws` (ASCII bytes, no surrounding whitespace) for `request`.
    pub fn verify(
        &self,
        jws: &[u8],
        request: &SafetyNetRequest<'_>,
    ) -> Result<VerifiedSafetyNet, SafetyNetError> {
        if request.nonce.is_empty() {
            return Err(SafetyNetError::InvalidArgument(
                "the expected nonce is empty",
            ));
        }

        // Step 1 — format: three base64url parts, a header with alg RS256 and x5c.
        let token = Compact::split(jws)?;
        let header = Header::parse(token.header)?;
        if header.alg != "RS256" {
            return Err(SafetyNetError::UnsupportedAlgorithm);
        }
        let chain = header.certificates()?;
        let (leaf_der, intermediates) = chain
            .split_first()
            .ok_or(SafetyNetError::Malformed("x5c is empty"))?;
        let leaf = parse_certificate(leaf_der)?;
        let signature = decode_part(token.signature, "the signature is not base64url")?;

        // Step 2 — signature: RS256 with the leaf's key over `header.payload` as received.
        verify_signature(&leaf, token.signing_input, &signature)?;

        // Step 3 — chain to a pinned root (and, step 5, validity at the time).
        let validity = self.verify_chain(leaf_der, intermediates, request.time)?;

        // Step 4 — hostname: the leaf is attest.android.com's.
        if !is_for_hostname(&leaf, ATTESTATION_HOSTNAME) {
            return Err(SafetyNetError::HostnameMismatch);
        }

        // Step 5 — validity of every certificate of the path, root included.
        let anchor = validity.map_err(SafetyNetError::CertificateExpired)?;

        // Step 6 — the payload, now authenticated, into typed facts.
        let payload = parse_payload(token.payload)?;

        // Step 7 — nonce: exactly the expected string.
        if payload.nonce != request.nonce {
            return Err(SafetyNetError::NonceMismatch);
        }

        // Step 8 — package (optional).
        if let Some(expected) = request.package_name
            && payload.apk_package_name.as_deref() != Some(expected)
        {
            return Err(SafetyNetError::PackageMismatch);
        }

        Ok(VerifiedSafetyNet {
            payload,
            anchor,
            package_checked: request.package_name.is_some(),
        })
    }

    /// Steps 3 and 5. `Err` when no path exists; `Ok(Err(..))` when a path exists but a
    /// certificate of it is outside its validity at `time` (reported after the hostname check,
    /// in the vector set's order); `Ok(Ok(anchor))` when the chain is valid at `time`.
    fn verify_chain(
        &self,
        leaf: &[u8],
        intermediates: &[Vec<u8>],
        time: UnixTime,
    ) -> Result<Result<SafetyNetAnchor, ValidityFailure>, SafetyNetError> {
        let anchors: Vec<TrustAnchor<'_>> = self.roots.iter().map(|r| r.anchor.clone()).collect();
        let intermediate_ders: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect();
        let leaf_der = CertificateDer::from(leaf);
        let end_entity = EndEntityCert::try_from(&leaf_der).map_err(|e| chain_error(&e))?;
        let verify_at = |at: UnixTime| {
            end_entity
                .verify_for_usage(
                    CHAIN_ALGORITHMS,
                    &anchors,
                    &intermediate_ders,
                    at,
                    KeyUsage::server_auth(),
                    None,
                    None,
                )
                .map(|path| self.roots.iter().find(|root| &root.anchor == path.anchor()))
        };
        match verify_at(time) {
            Ok(Some(root)) => Ok(root_validity(root, time).map(|()| root.kind)),
            Ok(None) => Err(SafetyNetError::CertificateChainInvalid(
                SafetyNetChainFailure::Other,
            )),
            Err(error) => {
                let Some(failure) = validity_failure(&error) else {
                    return Err(chain_error(&error));
                };
                // webpki checks validity while it builds the path, so an expired certificate
                // hides whether a path exists at all. Build it again at the moment every x5c
                // certificate has begun: if that fails too, the chain is what is wrong.
                let probe = latest_not_before(leaf, intermediates).unwrap_or(time);
                match verify_at(probe) {
                    Ok(Some(_)) => Ok(Err(failure)),
                    Ok(None) => Err(SafetyNetError::CertificateChainInvalid(
                        SafetyNetChainFailure::Other,
                    )),
                    Err(again) if validity_failure(&again).is_some() => Ok(Err(failure)),
                    Err(again) => Err(chain_error(&again)),
                }
            }
        }
    }
}

/// The three parts of a compact JWS, borrowed from the input.
struct Compact<'a> {
    header: &'a [u8],
    payload: &'a [u8],
    signing_input: &'a [u8],
    signature: &'a [u8],
}

impl<'a> Compact<'a> {
    fn split(jws: &'a [u8]) -> Result<Self, SafetyNetError> {
        if jws.len() > MAX_JWS_LEN {
            return Err(SafetyNetError::Malformed("longer than 64 KiB"));
        }
        let mut parts = jws.split(|&b| b == b'.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SafetyNetError::Malformed(
                "not a compact JWS of three parts",
            ));
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(SafetyNetError::Malformed("a JWS part is empty"));
        }
        let signing_input =
            jws.get(..header.len() + 1 + payload.len())
                .ok_or(SafetyNetError::Malformed(
                    "not a compact JWS of three parts",
                ))?;
        Ok(Self {
            header,
            payload,
            signing_input,
            signature,
        })
    }
}

fn decode_part(part: &[u8], what: &'static str) -> Result<Vec<u8>, SafetyNetError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| SafetyNetError::Malformed(what))
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    x5c: Option<Vec<String>>,
    crit: Option<serde::de::IgnoredAny>,
}

impl Header {
    fn parse(part: &[u8]) -> Result<Self, SafetyNetError> {
        let bytes = decode_part(part, "the header is not base64url")?;
        let header: Self = serde_json::from_slice(&bytes)
            .map_err(|_| SafetyNetError::Malformed("the header is not a JWS header object"))?;
        if header.crit.is_some() {
            return Err(SafetyNetError::Malformed(
                "the header has critical extensions",
            ));
        }
        Ok(header)
    }

    /// x5c as DER, leaf first (standard base64 per RFC 7515 § 4.1.6).
    fn certificates(&self) -> Result<Vec<Vec<u8>>, SafetyNetError> {
        let x5c = self
            .x5c
            .as_ref()
            .ok_or(SafetyNetError::Malformed("the header has no x5c"))?;
        if x5c.len() > MAX_X5C_LEN {
            return Err(SafetyNetError::Malformed(
                "x5c holds more than 8 certificates",
            ));
        }
        x5c.iter()
            .map(|text| {
                STANDARD
                    .decode(text)
                    .map_err(|_| SafetyNetError::Malformed("an x5c entry is not base64"))
            })
            .collect()
    }
}

fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, SafetyNetError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(SafetyNetError::Malformed(
            "x5c[0] is not a DER X.509 certificate",
        )),
    }
}

fn verify_signature(
    leaf: &X509Certificate<'_>,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), SafetyNetError> {
    let spki = leaf.public_key();
    if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
        return Err(SafetyNetError::SignatureInvalid);
    }
    // The subjectPublicKey of an rsaEncryption SPKI is the PKCS#1 RSAPublicKey aws-lc-rs takes.
    UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.data.as_ref(),
    )
    .verify(signing_input, signature)
    .map_err(|_| SafetyNetError::SignatureInvalid)
}

fn is_for_hostname(leaf: &X509Certificate<'_>, hostname: &str) -> bool {
    let dns_names: Vec<&str> = match leaf.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(*dns),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        // A duplicate or unparseable SAN: no name can be trusted.
        Err(_) => return false,
    };
    if dns_names.is_empty() {
        // No SAN dNSName: the CN (the pre-SAN convention SafetyNet clients checked).
        leaf.subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .any(|cn| cn.eq_ignore_ascii_case(hostname))
    } else {
        dns_names
            .iter()
            .any(|dns| dns.eq_ignore_ascii_case(hostname))
    }
}

fn unix_seconds(time: UnixTime) -> i64 {
    i64::try_from(time.as_secs()).unwrap_or(i64::MAX)
}

/// webpki does not look at a trust anchor's validity; the vector set's rule (and RFC 5280's
/// for a root the relying party still ships) is that an expired root vouches for nothing.
fn root_validity(root: &Root, time: UnixTime) -> Result<(), ValidityFailure> {
    let now = unix_seconds(time);
    if now < root.not_before {
        Err(ValidityFailure::NotYetValid)
    } else if now > root.not_after {
        Err(ValidityFailure::Expired)
    } else {
        Ok(())
    }
}

fn latest_not_before(leaf: &[u8], intermediates: &[Vec<u8>]) -> Option<UnixTime> {
    let latest = std::iter::once(leaf)
        .chain(intermediates.iter().map(Vec::as_slice))
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| cert.validity().not_before.timestamp())
        .max()?;
    let seconds = u64::try_from(latest).unwrap_or(0);
    Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        seconds,
    )))
}

fn validity_failure(error: &webpki::Error) -> Option<ValidityFailure> {
    match error {
        webpki::Error::CertExpired { .. } => Some(ValidityFailure::Expired),
        webpki::Error::CertNotValidYet { .. } => Some(ValidityFailure::NotYetValid),
        _ => None,
    }
}

fn chain_error(error: &webpki::Error) -> SafetyNetError {
    use webpki::Error as E;
    SafetyNetError::CertificateChainInvalid(match error {
        E::UnknownIssuer => SafetyNetChainFailure::UnknownIssuer,
        E::InvalidSignatureForPublicKey
        | E::SignatureAlgorithmMismatch
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            SafetyNetChainFailure::BadSignature
        }
        E::BadDer | E::BadDerTime | E::TrailingData(_) | E::UnsupportedCertVersion => {
            SafetyNetChainFailure::BadEncoding
        }
        E::CaUsedAsEndEntity | E::EndEntityUsedAsCa | E::PathLenConstraintViolated => {
            SafetyNetChainFailure::InvalidRole
        }
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            SafetyNetChainFailure::WrongKeyUsage
        }
        E::UnsupportedCriticalExtension | E::UnsupportedSignatureAlgorithmContext(_) => {
            SafetyNetChainFailure::Unsupported
        }
        _ => SafetyNetChainFailure::Other,
    })
}

/// The payload as JSON gives it. serde's derive rejects a member given twice (one parse, one
/// meaning); unknown members are ignored (Google added members over the years).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPayload {
    nonce: String,
    timestamp_ms: u64,
    apk_package_name: Option<String>,
    apk_digest_sha256: Option<String>,
    apk_certificate_digest_sha256: Option<Vec<String>>,
    cts_profile_match: bool,
    basic_integrity: bool,
    evaluation_type: Option<String>,
    advice: Option<String>,
    deprecation_information: Option<serde_json::Value>,
}

impl SafetyNetPayload {
    /// Parses payload JSON (the decoded second JWS part) into facts **without authenticating
    /// it**: for inspection tools and fuzzing. [`SafetyNetVerifier::verify`] is the only way to
    /// facts that may be trusted.
    pub fn from_unverified_json(json: &[u8]) -> Result<Self, SafetyNetError> {
        payload_from_json(json)
    }
}

fn parse_payload(part: &[u8]) -> Result<SafetyNetPayload, SafetyNetError> {
    let bytes = decode_part(part, "the payload is not base64url")?;
    payload_from_json(&bytes)
}

fn payload_from_json(bytes: &[u8]) -> Result<SafetyNetPayload, SafetyNetError> {
    let raw: RawPayload = serde_json::from_slice(bytes).map_err(|_| {
        SafetyNetError::Malformed(
            "the payload is not a SafetyNet statement (nonce, timestampMs, ctsProfileMatch, basicIntegrity)",
        )
    })?;
    let digest = |text: &str| {
        STANDARD
            .decode(text)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .map(Sha256Digest)
            .ok_or(SafetyNetError::Malformed(
                "an APK digest is not a base64 SHA-256 digest",
            ))
    };
    let list = |text: Option<String>| -> Vec<String> {
        text.map(|text| {
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    Ok(SafetyNetPayload {
        nonce: raw.nonce,
        timestamp_ms: raw.timestamp_ms,
        apk_package_name: raw.apk_package_name,
        apk_digest_sha256: raw.apk_digest_sha256.as_deref().map(digest).transpose()?,
        apk_certificate_digest_sha256: raw
            .apk_certificate_digest_sha256
            .unwrap_or_default()
            .iter()
            .map(|text| digest(text))
            .collect::<Result<_, _>>()?,
        cts_profile_match: raw.cts_profile_match,
        basic_integrity: raw.basic_integrity,
        evaluation_type: list(raw.evaluation_type)
            .iter()
            .map(|item| EvaluationType::parse(item))
            .collect(),
        advice: list(raw.advice),
        deprecation_information: raw.deprecation_information.map(|value| match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_globalsign_roots_are_usable_anchors() {
        let verifier = SafetyNetVerifier::google();
        let kinds: Vec<_> = verifier.roots.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                SafetyNetAnchor::GlobalSignRootCa,
                SafetyNetAnchor::GlobalSignRootCaR2
            ]
        );
        // R2 expired on 2021-12-15.
        let r2 = &verifier.roots[1];
        assert_eq!(r2.not_after, 1_639_555_200);
    }

    #[test]
    fn every_error_has_a_listed_code() {
        for error in [
            SafetyNetError::Malformed("x"),
            SafetyNetError::UnsupportedAlgorithm,
            SafetyNetError::SignatureInvalid,
            SafetyNetError::CertificateChainInvalid(SafetyNetChainFailure::Other),
            SafetyNetError::HostnameMismatch,
            SafetyNetError::CertificateExpired(ValidityFailure::Expired),
            SafetyNetError::NonceMismatch,
            SafetyNetError::PackageMismatch,
            SafetyNetError::InvalidArgument("x"),
        ] {
            assert!(SafetyNetError::ALL_CODES.contains(&error.code()), "{error}");
        }
    }

    #[test]
    fn compact_jws_needs_exactly_three_non_empty_parts() {
        for bad in [&b"a.b"[..], b"a.b.c.d", b"a..c", b".b.c", b"a.b.", b""] {
            assert!(
                matches!(Compact::split(bad), Err(SafetyNetError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let ok = Compact::split(b"aa.bb.cc").unwrap();
        assert_eq!(ok.signing_input, b"aa.bb");
        assert_eq!(ok.signature, b"cc");
    }

    #[test]
    fn payload_lists_split_on_commas_and_duplicates_are_refused() {
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"nonce":"n","timestampMs":1,"ctsProfileMatch":false,"basicIntegrity":true,
                "evaluationType":"BASIC,HARDWARE_BACKED","advice":"LOCK_BOOTLOADER, RESTORE_TO_FACTORY_ROM",
                "deprecationInformation":{"a":1}}"#,
        );
        let parsed = parse_payload(payload.as_bytes()).unwrap();
        assert_eq!(
            parsed.evaluation_type,
            [EvaluationType::Basic, EvaluationType::HardwareBacked]
        );
        assert_eq!(parsed.advice, ["LOCK_BOOTLOADER", "RESTORE_TO_FACTORY_ROM"]);
        assert_eq!(
            parsed.deprecation_information.as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert!(parsed.apk_certificate_digest_sha256.is_empty());

        let twice = URL_SAFE_NO_PAD.encode(
            br#"{"nonce":"n","nonce":"m","timestampMs":1,"ctsProfileMatch":true,"basicIntegrity":true}"#,
        );
        assert!(matches!(
            parse_payload(twice.as_bytes()),
            Err(SafetyNetError::Malformed(_))
        ));
    }
}
