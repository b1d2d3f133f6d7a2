//! App Attest receipts: PKCS#7 / CMS SignedData from Apple, chained to Apple Root CA - G3.
//!
//! A receipt is a CMS `SignedData` (usually BER, with indefinite lengths and a chunked eContent;
//! some are DER) whose eContent is a DER `SET OF SEQUENCE { INTEGER type, INTEGER version,
//! OCTET STRING value }`. [`parse_receipt`] takes it apart without verifying anything;
//! [`ReceiptVerifier`] checks the signing chain, that the signer is Apple's receipt signer, and the
//! signature.
//!
//! # Verification
//!
//! 1. Exactly one SignerInfo, digest SHA-256, signature ecdsa-with-SHA256.
//! 2. The signer certificate is the one the SignerInfo names (issuerAndSerialNumber or
//!    subjectKeyIdentifier); the receipt's other certificates are intermediates, except
//!    self-signed ones (Apple includes Apple Root CA - G3 itself), which are dropped: the only
//!    roots are the pinned ones.
//! 3. The chain validates at the given time to a pinned root (webpki; validated chains are
//!    remembered, so a receipt from a known signer costs one P-256 verification plus parsing).
//! 4. The signer carries Apple's receipt-signer marker extension ([`RECEIPT_SIGNER_MARKER_OID`]),
//!    so no other certificate under Apple Root CA - G3 can sign receipts.
//! 5. The signature verifies with the signer's P-256 key; see [`SignatureForm`] for the three
//!    forms accepted and why.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use rustls_pki_types::UnixTime;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid;
use x509_parser::extensions::ParsedExtension;

use super::chain::{AnchorScope, ChainError, ChainVerifier, LeafUsage, Root};
use super::error::{ChainFailure, ValidityFailure};
use super::roots;

mod cms;
mod payload;
#[cfg(test)]
mod tests;

/// Largest receipt accepted, in bytes.
///
/// Every receipt seen (28 standalone and 36 embedded, 2020-2026) is 3.7-4.0 KB: three
/// certificates (~2.1 KB) plus a ~1.1-1.3 KB payload that holds the ~0.8 KB attested
/// certificate. 64 KiB leaves more than ten times that for a longer chain or new payload fields,
/// while bounding the memory and decoding work an attacker can make one request cost.
pub const MAX_RECEIPT_LEN: usize = 64 * 1024;

/// Marker extension that every receipt-signing certificate carries (value NULL, non-critical):
/// 1.2.840.113635.100.12.15. It is present in all five "Application Attestation Fraud Receipt
/// Signing" certificates seen (2020-05 to 2027-02 validity) and absent from the intermediate
/// ("Apple Application Integration CA 5 - G1", which carries 1.2.840.113635.100.6.2.3 instead).
pub const RECEIPT_SIGNER_MARKER_OID: &str = "1.2.840.113635.100.12.15";

/// DER content octets of [`RECEIPT_SIGNER_MARKER_OID`]. Apple's receipt signers have no extended
/// key usage; one that has an EKU must list this OID, so a certificate issued for some other
/// purpose (TLS, code signing, ...) is never a receipt signer.
const RECEIPT_SIGNER_EKU: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x63, 0x64, 0x0c, 0x0f];

/// 2021-01-01T00:00:00Z. Only signers issued before this date may use the legacy signature form
/// ([`SignatureForm::LegacyContentWithSignedAttributes`]).
const LEGACY_SIGNER_CUTOFF: i64 = 1_609_459_200;

/// How many signing-certificate sets are remembered (Apple rotates its signer yearly).
const SIGNER_CACHE_CAPACITY: usize = 16;

/// Why a receipt failed parsing or verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not a well-formed receipt (CMS envelope or payload).
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// Larger than [`MAX_RECEIPT_LEN`].
    #[error("receipt larger than {MAX_RECEIPT_LEN} bytes")]
    TooLarge,
    /// The digest or signature algorithm is not SHA-256 / ecdsa-with-SHA256 (or the signer key is
    /// not P-256).
    #[error("receipt uses an unsupported digest or signature algorithm")]
    UnsupportedAlgorithm,
    /// The signing chain does not lead to a pinned root (Apple Root CA - G3).
    #[error("receipt signing chain invalid: {0}")]
    ChainInvalid(ChainFailure),
    /// A certificate of the signing chain is outside its validity at the verification time.
    #[error("receipt signing certificate {0} at the verification time")]
    CertificateExpired(ValidityFailure),
    /// The signer chains to a pinned root but is not a receipt-signing certificate (it lacks
    /// [`RECEIPT_SIGNER_MARKER_OID`]).
    #[error("receipt signer is not a receipt-signing certificate")]
    NotReceiptSigner,
    /// The signed attributes' messageDigest is not SHA-256 of the payload.
    #[error("receipt messageDigest does not match the payload")]
    DigestMismatch,
    /// The signature does not verify.
    #[error("receipt signature does not verify")]
    SignatureInvalid,
    /// The receipt's creation time (field 12) is later than allowed.
    #[error("receipt created in the future")]
    CreatedInFuture,
    /// The receipt's creation time (field 12) is outside the validity of the attested credential
    /// certificate, so it was not made for that certificate.
    #[error("receipt created outside the credential certificate's validity")]
    CreatedOutsideCertificateValidity,
    /// The receipt's type (field 6) is not the one expected.
    #[error("receipt has the wrong type")]
    WrongType,
    /// The receipt's App ID (field 2) is not the attestation's.
    #[error("receipt App ID differs from the attestation's")]
    AppIdMismatch,
    /// The receipt's attested key (field 3) is not the attestation's credential key.
    #[error("receipt attested key differs from the credential certificate's")]
    PublicKeyMismatch,
}

impl ReceiptError {
    /// A stable snake_case sub-reason (the top-level code is always `receipt_invalid`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "receipt_malformed",
            Self::TooLarge => "receipt_too_large",
            Self::UnsupportedAlgorithm => "receipt_unsupported_algorithm",
            Self::ChainInvalid(_) => "receipt_chain_invalid",
            Self::CertificateExpired(_) => "receipt_certificate_expired",
            Self::NotReceiptSigner => "receipt_not_receipt_signer",
            Self::DigestMismatch => "receipt_digest_mismatch",
            Self::SignatureInvalid => "receipt_signature_invalid",
            Self::CreatedInFuture => "receipt_created_in_future",
            Self::CreatedOutsideCertificateValidity => {
                "receipt_created_outside_certificate_validity"
            }
            Self::WrongType => "receipt_wrong_type",
            Self::AppIdMismatch => "receipt_app_id_mismatch",
            Self::PublicKeyMismatch => "receipt_public_key_mismatch",
        }
    }

    /// Every reason [`reason`](Self::reason) can return, for documentation and metrics.
    pub const ALL_REASONS: &'static [&'static str] = &[
        "receipt_malformed",
        "receipt_too_large",
        "receipt_unsupported_algorithm",
        "receipt_chain_invalid",
        "receipt_certificate_expired",
        "receipt_not_receipt_signer",
        "receipt_digest_mismatch",
        "receipt_signature_invalid",
        "receipt_created_in_future",
        "receipt_created_outside_certificate_validity",
        "receipt_wrong_type",
        "receipt_app_id_mismatch",
        "receipt_public_key_mismatch",
    ];
}

/// Receipt type (field 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptType {
    /// `ATTEST`: the receipt embedded in an attestation.
    Attest,
    /// `RECEIPT`: a receipt returned by Apple's attestation-data endpoint (carries a risk metric).
    Receipt,
    /// Anything else, as found.
    Other(String),
}

impl ReceiptType {
    /// The type as written in the receipt.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Attest => "ATTEST",
            Self::Receipt => "RECEIPT",
            Self::Other(other) => other,
        }
    }
}

/// The decoded payload of a receipt.
///
/// Fields 2, 3, 6 and 12 are mandatory; 4 and 5 are empty when absent. Field numbers this type
/// does not know are skipped. Field 4 of `RECEIPT` receipts is not a hash (Apple fills it with
/// UTF-8 replacement characters); do not rely on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Field 2: `TEAMID.bundle.id`.
    pub app_id: String,
    /// Field 3: the attested credential certificate (DER).
    pub attested_certificate: Vec<u8>,
    /// Field 4: the attestation's clientDataHash (`ATTEST`); garbage in `RECEIPT` receipts.
    pub client_hash: Vec<u8>,
    /// Field 5: the token Apple's attestation-data endpoint identifies the key by.
    pub token: String,
    /// Field 6.
    pub receipt_type: ReceiptType,
    /// Field 7 (undocumented environment, `sandbox` or `production`), when present.
    pub environment: Option<String>,
    /// Field 12.
    pub creation_time: OffsetDateTime,
    /// Field 17 (`RECEIPT` only): attested keys on the device in the past 30 days.
    pub risk_metric: Option<u32>,
    /// Field 19 (`RECEIPT` only): do not ask Apple for a new receipt before this.
    pub not_before: Option<OffsetDateTime>,
    /// Field 21.
    pub expiration_time: Option<OffsetDateTime>,
}

impl Receipt {
    /// Decodes a receipt payload (the CMS eContent) without any envelope or verification.
    pub fn from_payload(payload: &[u8]) -> Result<Self, ReceiptError> {
        payload::decode(payload)
    }

    /// The SubjectPublicKeyInfo (DER) of the attested certificate (field 3), or `None` if field
    /// 3 is not an X.509 certificate.
    pub fn attested_public_key(&self) -> Option<Vec<u8>> {
        let (_, cert) = x509_parser::parse_x509_certificate(&self.attested_certificate).ok()?;
        Some(cert.public_key().raw.to_vec())
    }
}

/// A receipt taken apart but not verified: the envelope's pieces and the decoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReceipt {
    envelope: cms::Envelope,
    receipt: Receipt,
}

impl ParsedReceipt {
    /// The decoded payload (unverified).
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
    }

    /// The decoded payload (unverified).
    pub fn into_receipt(self) -> Receipt {
        self.receipt
    }

    /// The certificates in the SignedData (DER), in the order given.
    pub fn certificates(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.envelope.certificates.iter().map(Vec::as_slice)
    }

    /// The eContent (the payload bytes), reassembled if it was chunked.
    pub fn content(&self) -> &[u8] {
        &self.envelope.content
    }

    /// The SignerInfo's signature (DER ECDSA).
    pub fn signature(&self) -> &[u8] {
        &self.envelope.signature
    }

    /// Whether the SignerInfo carries signed attributes.
    pub fn has_signed_attributes(&self) -> bool {
        self.envelope.signed_attrs.is_some()
    }
}

/// Decodes a receipt (BER or DER CMS SignedData) and its payload without verifying anything.
///
/// Checks the envelope's shape: ContentInfo of type SignedData, eContentType id-data with
/// eContent present, at least one certificate, exactly one SignerInfo with digest SHA-256 and
/// signature ecdsa-with-SHA256, and, if signed attributes are present, exactly one contentType
/// (id-data) and one messageDigest. No trailing bytes are allowed.
pub fn parse_receipt(bytes: &[u8]) -> Result<ParsedReceipt, ReceiptError> {
    if bytes.len() > MAX_RECEIPT_LEN {
        return Err(ReceiptError::TooLarge);
    }
    let envelope = cms::decode(bytes)?;
    let receipt = payload::decode(&envelope.content)?;
    Ok(ParsedReceipt { envelope, receipt })
}

/// Which bytes the receipt's signature turned out to cover.
///
/// # The 2020 quirk, and why it is accepted
///
/// Receipts Apple created from 2020-08 to 2020-10 carry correct CMS signed attributes
/// (contentType, signingTime, CMSAlgorithmProtection, and a messageDigest equal to SHA-256 of the
/// payload), but their ECDSA signature covers the raw eContent instead of the DER signed
/// attributes, so standard CMS verification (OpenSSL, BouncyCastle) rejects them. Receipts from
/// 2020-10-22 on have no signed attributes and verify normally.
///
/// [`LegacyContentWithSignedAttributes`](Self::LegacyContentWithSignedAttributes) is accepted only
/// when all of these hold:
/// - the signed attributes are present and well formed, and their messageDigest equals SHA-256 of
///   the eContent (checked before any signature);
/// - the standard signature over the signed attributes does not verify;
/// - the signature verifies over the eContent with the key of the signer certificate, which has
///   already validated to the pinned root and carries the receipt-signer marker;
/// - that certificate's notBefore is before 2021-01-01: only the 2020-05 -> 2021-06 generation
///   signed this way, so a later signer producing this form is rejected.
///
/// This is safe because what it proves is what a receipt needs: Apple's receipt-signing key
/// signed exactly these payload bytes (the signature is over the very bytes that are decoded),
/// so the payload cannot have been altered. Nothing an attacker controls is trusted: the signed
/// attributes carry no information the verifier uses beyond the digest, which is checked anyway.
/// Nor can another message signed by that key pass as a payload: the DER signed attributes of a
/// standard receipt are a `SET OF SEQUENCE { OID, SET }`, which does not decode as receipt
/// fields, and verification at the receipt's time still requires the signer chain to be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureForm {
    /// Standard CMS: signature over the DER signed attributes, whose messageDigest matches.
    SignedAttributes,
    /// No signed attributes: signature over the eContent (Apple's form since 2020-10-22).
    Content,
    /// Signed attributes present and consistent, but the signature covers the eContent
    /// (Apple's 2020 receipts; see above).
    LegacyContentWithSignedAttributes,
}

/// A receipt whose chain, signer and signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The payload.
    pub receipt: Receipt,
    /// Which bytes the signature covered.
    pub signature_form: SignatureForm,
}

/// What a certificate set says about its signer; derived only from certificate bytes, so it
/// can be remembered (the chain itself is re-checked at every call, validity included).
struct KnownSigner {
    /// The receipt's certificates exactly as given (the cache key, with `sid`).
    certificates: Vec<Vec<u8>>,
    sid: cms::SignerId,
    /// Index of the signer certificate in `certificates`.
    signer: usize,
    /// Indexes of the intermediates (neither the signer nor self-signed).
    intermediates: Vec<usize>,
    /// The signer's P-256 key, or `None` if it is not a P-256 key.
    key: Option<ParsedPublicKey>,
    /// The signer certificate's notBefore (Unix seconds).
    not_before: i64,
    /// Whether the signer carries [`RECEIPT_SIGNER_MARKER_OID`].
    receipt_signer: bool,
}

impl std::fmt::Debug for KnownSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownSigner")
            .field("certificates", &self.certificates.len())
            .field("signer", &self.signer)
            .field("intermediates", &self.intermediates)
            .field("p256_key", &self.key.is_some())
            .field("not_before", &self.not_before)
            .field("receipt_signer", &self.receipt_signer)
            .finish_non_exhaustive()
    }
}

/// Verifies receipts against pinned roots; caches validated signing chains.
///
/// Cheap to share: verification takes `&self` (caches sit behind locks).
#[derive(Debug)]
pub struct ReceiptVerifier {
    /// `None` only if the roots could not be loaded; every verification then fails closed.
    chain: Option<ChainVerifier>,
    /// The pinned roots (DER), to drop them from a receipt's certificates cheaply.
    roots: Vec<Vec<u8>>,
    signers: RwLock<Vec<Arc<KnownSigner>>>,
}

impl ReceiptVerifier {
    /// A verifier anchored at the pinned Apple Root CA - G3.
    pub fn apple() -> Self {
        let roots = vec![Root {
            der: roots::APPLE_ROOT_CA_G3.to_vec(),
            scope: AnchorScope::AllEnvironments,
        }];
        // The pinned root always parses (tested); if it ever did not, fail closed.
        let chain = new_chain(roots.clone()).ok();
        Self::of(chain, roots)
    }

    /// A verifier anchored at `roots` (DER certificates) only, e.g. a test CA standing in for
    /// Apple's root (receipts of keys of every environment).
    pub fn with_roots(roots: Vec<Vec<u8>>) -> Result<Self, ChainFailure> {
        Self::scoped(Root::all(roots, AnchorScope::AllEnvironments).collect())
    }

    /// A verifier anchored at Apple Root CA - G3 and `extra` roots (DER certificates). An
    /// [`AttestationVerifier`](super::attestation::AttestationVerifier) holding it accepts a
    /// receipt chained to an extra root for development keys only.
    pub fn with_extra_roots(extra: Vec<Vec<u8>>) -> Result<Self, ChainFailure> {
        let roots = std::iter::once(Root {
            der: roots::APPLE_ROOT_CA_G3.to_vec(),
            scope: AnchorScope::AllEnvironments,
        })
        .chain(Root::all(extra, AnchorScope::DevelopmentOnly))
        .collect();
        Self::scoped(roots)
    }

    fn scoped(roots: Vec<Root>) -> Result<Self, ChainFailure> {
        let chain = new_chain(roots.clone())?;
        Ok(Self::of(Some(chain), roots))
    }

    fn of(chain: Option<ChainVerifier>, roots: Vec<Root>) -> Self {
        Self {
            chain,
            roots: roots.into_iter().map(|root| root.der).collect(),
            signers: RwLock::new(Vec::new()),
        }
    }

    /// Parses and verifies `receipt` at `time`.
    pub fn verify(&self, receipt: &[u8], time: UnixTime) -> Result<VerifiedReceipt, ReceiptError> {
        let parsed = parse_receipt(receipt)?;
        let (signature_form, _) = self.verify_scoped(&parsed, time)?;
        Ok(VerifiedReceipt {
            receipt: parsed.into_receipt(),
            signature_form,
        })
    }

    /// Parses `receipt` and verifies it at its own creation time (field 12), after checking that
    /// the creation time is not later than `latest` + `max_skew_secs`.
    ///
    /// For the receipt embedded in an attestation: its signing certificate was valid when Apple
    /// signed it, even if it has expired since. The creation time is compared to the second.
    pub fn verify_at_creation(
        &self,
        receipt: &[u8],
        latest: UnixTime,
        max_skew_secs: u64,
    ) -> Result<VerifiedReceipt, ReceiptError> {
        self.verify_scoped_at_creation(receipt, latest, max_skew_secs)
            .map(|(verified, _)| verified)
    }

    /// [`verify_at_creation`](Self::verify_at_creation), with the scope of the root the
    /// signing chain ends at.
    pub(crate) fn verify_scoped_at_creation(
        &self,
        receipt: &[u8],
        latest: UnixTime,
        max_skew_secs: u64,
    ) -> Result<(VerifiedReceipt, AnchorScope), ReceiptError> {
        let parsed = parse_receipt(receipt)?;
        let created = parsed.receipt.creation_time;
        let limit = i128::from(latest.as_secs()).saturating_add(i128::from(max_skew_secs));
        if i128::from(created.unix_timestamp()) > limit {
            return Err(ReceiptError::CreatedInFuture);
        }
        let secs = u64::try_from(created.unix_timestamp())
            .map_err(|_| ReceiptError::Malformed("creation time (field 12) is before 1970"))?;
        let time = UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let (signature_form, anchor) = self.verify_scoped(&parsed, time)?;
        let verified = VerifiedReceipt {
            receipt: parsed.into_receipt(),
            signature_form,
        };
        Ok((verified, anchor))
    }

    /// Verifies an already parsed receipt at `time`: chain, signer marker and signature.
    pub fn verify_parsed(
        &self,
        parsed: &ParsedReceipt,
        time: UnixTime,
    ) -> Result<SignatureForm, ReceiptError> {
        self.verify_scoped(parsed, time).map(|(form, _)| form)
    }

    fn verify_scoped(
        &self,
        parsed: &ParsedReceipt,
        time: UnixTime,
    ) -> Result<(SignatureForm, AnchorScope), ReceiptError> {
        let chain = self
            .chain
            .as_ref()
            .ok_or(ReceiptError::ChainInvalid(ChainFailure::UnknownIssuer))?;
        let envelope = &parsed.envelope;

        let (signer, cached) = match self.cached_signer(envelope) {
            Some(signer) => (signer, true),
            None => (Arc::new(self.identify_signer(envelope)?), false),
        };
        let leaf = envelope
            .certificates
            .get(signer.signer)
            .ok_or(ReceiptError::Malformed("signer certificate missing"))?;
        let intermediates: Vec<&[u8]> = signer
            .intermediates
            .iter()
            .filter_map(|&i| envelope.certificates.get(i).map(Vec::as_slice))
            .collect();
        let anchor = chain
            .verify(leaf, &intermediates, time)
            .map_err(|e| match e {
                ChainError::Invalid(failure) => ReceiptError::ChainInvalid(failure),
                ChainError::Validity(failure) => ReceiptError::CertificateExpired(failure),
            })?;
        if !cached {
            self.remember(Arc::clone(&signer));
        }

        if !signer.receipt_signer {
            return Err(ReceiptError::NotReceiptSigner);
        }
        let key = signer
            .key
            .as_ref()
            .ok_or(ReceiptError::UnsupportedAlgorithm)?;
        check_signature(envelope, key, signer.not_before).map(|form| (form, anchor))
    }

    fn cached_signer(&self, envelope: &cms::Envelope) -> Option<Arc<KnownSigner>> {
        let signers = self.signers.read().ok()?;
        signers
            .iter()
            .find(|known| {
                known.sid == envelope.signer && known.certificates == envelope.certificates
            })
            .cloned()
    }

    fn remember(&self, signer: Arc<KnownSigner>) {
        if let Ok(mut signers) = self.signers.write() {
            let duplicate = signers
                .iter()
                .any(|k| k.sid == signer.sid && k.certificates == signer.certificates);
            if !duplicate {
                if signers.len() >= SIGNER_CACHE_CAPACITY {
                    signers.remove(0);
                }
                signers.push(signer);
            }
        }
    }

    /// Finds the signer certificate and the intermediates (cache miss: parses every certificate).
    fn identify_signer(&self, envelope: &cms::Envelope) -> Result<KnownSigner, ReceiptError> {
        let mut signer = None;
        let mut intermediates = Vec::new();
        for (index, der) in envelope.certificates.iter().enumerate() {
            let (_, cert) = x509_parser::parse_x509_certificate(der)
                .map_err(|_| ReceiptError::Malformed("a receipt certificate is not X.509"))?;
            if signer.is_none() && names_certificate(&envelope.signer, &cert) {
                signer = Some((index, SignerFacts::of(&cert)));
                continue;
            }
            let self_signed = self.roots.iter().any(|root| root == der)
                || cert.subject().as_raw() == cert.issuer().as_raw();
            if !self_signed {
                intermediates.push(index);
            }
        }
        let (signer, facts) = signer.ok_or(ReceiptError::Malformed(
            "no certificate matches the SignerInfo",
        ))?;
        Ok(KnownSigner {
            certificates: envelope.certificates.clone(),
            sid: envelope.signer.clone(),
            signer,
            intermediates,
            key: facts.key,
            not_before: facts.not_before,
            receipt_signer: facts.receipt_signer,
        })
    }
}

fn new_chain(roots: Vec<Root>) -> Result<ChainVerifier, ChainFailure> {
    ChainVerifier::new(
        roots,
        LeafUsage::RequiredIfPresent(RECEIPT_SIGNER_EKU),
        true,
    )
}

/// Whether `cert` is the certificate the SignerInfo's identifier names.
fn names_certificate(sid: &cms::SignerId, cert: &X509Certificate<'_>) -> bool {
    match sid {
        cms::SignerId::IssuerAndSerial { issuer, serial } => {
            cert.issuer().as_raw() == issuer.as_slice()
                && cert.tbs_certificate.raw_serial() == serial.as_slice()
        }
        cms::SignerId::SubjectKeyId(id) => cert.extensions().iter().any(|ext| {
            matches!(ext.parsed_extension(), ParsedExtension::SubjectKeyIdentifier(ski) if ski.0 == id.as_slice())
        }),
    }
}

struct SignerFacts {
    key: Option<ParsedPublicKey>,
    not_before: i64,
    receipt_signer: bool,
}

impl SignerFacts {
    fn of(cert: &X509Certificate<'_>) -> Self {
        let spki = cert.public_key();
        let is_p256 = spki.algorithm.algorithm == oid!(1.2.840.10045.2.1)
            && spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|curve| curve == oid!(1.2.840.10045.3.1.7));
        let key = is_p256
            .then(|| {
                ParsedPublicKey::new(
                    &ECDSA_P256_SHA256_ASN1,
                    spki.subject_public_key.data.as_ref(),
                )
                .ok()
            })
            .flatten();
        let receipt_signer = matches!(
            cert.get_extension_unique(&oid!(1.2.840.113635.100.12.15)),
            Ok(Some(_))
        );
        Self {
            key,
            not_before: cert.validity().not_before.timestamp(),
            receipt_signer,
        }
    }
}

/// Verifies the SignerInfo signature; see [`SignatureForm`] for the forms accepted.
fn check_signature(
    envelope: &cms::Envelope,
    key: &ParsedPublicKey,
    signer_not_before: i64,
) -> Result<SignatureForm, ReceiptError> {
    let content: &[u8] = &envelope.content;
    let signature: &[u8] = &envelope.signature;
    let Some(attrs) = &envelope.signed_attrs else {
        return key
            .verify_sig(content, signature)
            .map(|()| SignatureForm::Content)
            .map_err(|_| ReceiptError::SignatureInvalid);
    };
    if digest::digest(&digest::SHA256, content).as_ref() != attrs.message_digest.as_slice() {
        return Err(ReceiptError::DigestMismatch);
    }
    if key.verify_sig(&attrs.der, signature).is_ok() {
        return Ok(SignatureForm::SignedAttributes);
    }
    if signer_not_before < LEGACY_SIGNER_CUTOFF && key.verify_sig(content, signature).is_ok() {
        return Ok(SignatureForm::LegacyContentWithSignedAttributes);
    }
    Err(ReceiptError::SignatureInvalid)
}
