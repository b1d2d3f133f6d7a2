//! Attestation objects: Apple's nine validation steps, in order.
//!
//! ```text
//! { "fmt": "apple-appattest", "attStmt": { "x5c": [credCert, intermediate], "receipt": bstr },
//!   "authData": bstr }
//! ```

use aws_lc_rs::digest;
use rustls_pki_types::UnixTime;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::ber::BerObjectContent;
use x509_parser::der_parser::oid;

use super::authenticator_data::{AuthenticatorData, Context, Extensions};
use super::cbor::Value;
use super::chain::{AnchorScope, ChainError, ChainVerifier, LeafUsage, Root};
use super::error::{AppleError, ChainFailure, CounterExpectation};
use super::receipt::{ReceiptError, ReceiptType, ReceiptVerifier, VerifiedReceipt};
use super::roots;
use super::types::{AppId, EnvironmentPolicy};
use attest_types::evidence::{AppleEvidence, ReceiptStatus};
use attest_types::{Environment, KeyId};

/// Upper bound on an attestation object. Apple's are 5–10 KB (two certificates, a ~4 KB
/// receipt, authData); 64 KiB bounds parsing work on hostile input with a wide margin.
pub const MAX_ATTESTATION_LEN: usize = 64 * 1024;

/// x5c holds the credential certificate and Apple's intermediate; a caller's own CA may add
/// one more level. More than four certificates is never legitimate.
const MAX_X5C: usize = 4;

/// The EKU Apple puts on iOS 27 credential certificates: 1.2.840.113635.100.4.24.
const APP_ATTEST_EKU: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x63, 0x64, 0x04, 0x18];

/// How far in the future (relative to the verification time) an embedded receipt's creation
/// time may be: Apple's clock and the server's differ by seconds, rarely minutes.
const RECEIPT_CLOCK_SKEW_SECS: u64 = 300;

const WHAT: &str = "attestation";

/// `accepted` of the `environment_mismatch` of a production key whose chain ends at an extra
/// root.
const DEVELOPMENT_ONLY_ANCHOR: &str = "development (the chain ends at an extra root)";

/// The parts of an attestation object, parsed but not verified (see [`AttestationVerifier`]).
#[derive(Debug, Clone)]
pub struct AttestationObject<'a> {
    /// `fmt`; always `apple-appattest` once parsed.
    pub format: &'a str,
    /// `attStmt.x5c`: the credential certificate first, then intermediates (DER).
    pub x5c: Vec<&'a [u8]>,
    /// `attStmt.receipt`, if present.
    pub receipt: Option<&'a [u8]>,
    /// `authData`, parsed.
    pub auth_data: AuthenticatorData<'a>,
}

impl<'a> AttestationObject<'a> {
    /// Parses the CBOR attestation object strictly (no verification).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AppleError> {
        let malformed = |reason| AppleError::malformed(WHAT, reason);
        if bytes.len() > MAX_ATTESTATION_LEN {
            return Err(malformed("larger than 64 KiB"));
        }
        let root = Value::decode_exact(bytes).map_err(malformed)?;
        root.as_map().ok_or(malformed("not a CBOR map"))?;
        let format = root
            .get("fmt")
            .ok_or(malformed("missing fmt"))?
            .as_text()
            .ok_or(malformed("fmt is not a text string"))?;
        if format != "apple-appattest" {
            return Err(AppleError::UnsupportedFormat);
        }
        let statement = root.get("attStmt").ok_or(malformed("missing attStmt"))?;
        statement
            .as_map()
            .ok_or(malformed("attStmt is not a map"))?;
        let x5c = match statement
            .get("x5c")
            .ok_or(malformed("missing attStmt.x5c"))?
        {
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_bytes()
                        .ok_or(malformed("x5c entry is not a byte string"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(malformed("x5c is not an array")),
        };
        if x5c.len() < 2 || x5c.len() > MAX_X5C {
            return Err(malformed("x5c must hold 2 to 4 certificates"));
        }
        let receipt = match statement.get("receipt") {
            None => None,
            Some(value) => Some(
                value
                    .as_bytes()
                    .ok_or(malformed("receipt is not a byte string"))?,
            ),
        };
        let auth_data = root
            .get("authData")
            .ok_or(malformed("missing authData"))?
            .as_bytes()
            .ok_or(malformed("authData is not a byte string"))?;
        let auth_data = AuthenticatorData::parse(auth_data, Context::Attestation)?;
        Ok(Self {
            format,
            x5c,
            receipt,
            auth_data,
        })
    }
}

/// What to do with the receipt embedded in an attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiptPolicy {
    /// The receipt must verify (signature, chain at its creation time, App ID, attested key,
    /// type ATTEST); otherwise the attestation fails with `receipt_invalid`.
    #[default]
    Require,
    /// Verify it, but report a failure in [`VerifiedAttestation::receipt`] instead of failing.
    /// For servers whose policy decides what an invalid receipt costs.
    Report,
}

/// The inputs of an attestation verification besides the object itself.
#[derive(Debug, Clone)]
pub struct AttestationRequest<'a> {
    /// The key id the app reported (base64-decoded).
    pub key_id: KeyId,
    /// The exact bytes the app passed to `attestKey` as clientDataHash. Usually SHA-256 of the
    /// challenge (see [`hash_challenge`]), but any length is accepted: Apple's own samples pass
    /// the raw challenge.
    pub client_data_hash: &'a [u8],
    /// App IDs accepted (at least one).
    pub app_ids: &'a [AppId],
    /// Environments accepted.
    pub environment: EnvironmentPolicy,
    /// The instant at which certificates must be valid.
    pub time: UnixTime,
    /// What an invalid embedded receipt does.
    pub receipt: ReceiptPolicy,
}

impl<'a> AttestationRequest<'a> {
    /// A request with the strict defaults: production only, receipt required.
    pub fn new(
        key_id: KeyId,
        client_data_hash: &'a [u8],
        app_ids: &'a [AppId],
        time: UnixTime,
    ) -> Self {
        Self {
            key_id,
            client_data_hash,
            app_ids,
            environment: EnvironmentPolicy::Production,
            time,
            receipt: ReceiptPolicy::Require,
        }
    }
}

/// SHA-256 of a challenge: the clientDataHash a client computes with `SHA256(challenge)`.
pub fn hash_challenge(challenge: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, challenge).as_ref());
    out
}

/// The outcome of the embedded receipt's verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptCheck {
    /// It verified and belongs to this attestation.
    Verified(Box<VerifiedReceipt>),
    /// It failed ([`ReceiptPolicy::Report`] only).
    Failed(ReceiptError),
    /// The attestation carried none ([`ReceiptPolicy::Report`] only).
    Missing,
}

/// A verified attestation. Only [`AttestationVerifier::verify`] constructs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAttestation {
    key_id: KeyId,
    public_key: Vec<u8>,
    app_id: AppId,
    environment: Environment,
    receipt_bytes: Vec<u8>,
    receipt: ReceiptCheck,
    leaf_not_before: OffsetDateTime,
    leaf_not_after: OffsetDateTime,
    extensions: Option<Extensions>,
}

impl VerifiedAttestation {
    /// The key id (SHA-256 of the credential's public point).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }
    /// The credential public key as SubjectPublicKeyInfo DER (store this for assertions).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
    /// Which accepted App ID matched.
    pub fn app_id(&self) -> &AppId {
        &self.app_id
    }
    /// The environment named by the AAGUID.
    pub fn environment(&self) -> Environment {
        self.environment
    }
    /// The embedded receipt exactly as received (empty if absent); keep it for risk refreshes.
    pub fn receipt_bytes(&self) -> &[u8] {
        &self.receipt_bytes
    }
    /// What receipt verification found.
    pub fn receipt(&self) -> &ReceiptCheck {
        &self.receipt
    }
    /// The credential certificate's notBefore.
    pub fn leaf_not_before(&self) -> OffsetDateTime {
        self.leaf_not_before
    }
    /// The credential certificate's notAfter.
    pub fn leaf_not_after(&self) -> OffsetDateTime {
        self.leaf_not_after
    }
    /// The authenticator data extension map (iOS 27 and later).
    pub fn extensions(&self) -> Option<&Extensions> {
        self.extensions.as_ref()
    }
    /// iOS 27 bundle version, when present.
    pub fn bundle_version(&self) -> Option<&str> {
        self.extensions.as_ref()?.bundle_version()
    }
    /// iOS 27 launch validation category bytes, when present.
    pub fn validation_category(&self) -> Option<&[u8]> {
        self.extensions.as_ref()?.validation_category()
    }
    /// What the attestation proved besides the key, as kept with the key.
    pub fn evidence(&self) -> AppleEvidence {
        let (receipt_status, receipt_reason, receipt_created_at) = match &self.receipt {
            ReceiptCheck::Verified(receipt) => (
                ReceiptStatus::Valid,
                None,
                Some(receipt.receipt.creation_time.unix_timestamp()),
            ),
            ReceiptCheck::Failed(error) => (
                ReceiptStatus::Invalid,
                Some(error.reason().to_owned()),
                None,
            ),
            ReceiptCheck::Missing => (ReceiptStatus::Missing, None, None),
        };
        AppleEvidence {
            leaf_not_after: Some(self.leaf_not_after.unix_timestamp()),
            bundle_version: self.bundle_version().map(str::to_owned),
            validation_category: self.validation_category().map(<[u8]>::to_vec),
            receipt_status: Some(receipt_status),
            receipt_reason,
            receipt_created_at,
        }
    }
}

/// Verifies attestation objects. Build one per process and share it: it remembers validated
/// intermediates so each later attestation costs one certificate signature check, not two.
#[derive(Debug)]
pub struct AttestationVerifier {
    chain: ChainVerifier,
    receipts: ReceiptVerifier,
}

impl AttestationVerifier {
    /// Anchored at the pinned Apple App Attestation Root CA (receipts: Apple Root CA - G3).
    pub fn apple() -> Self {
        // The pinned root is a constant that `tests::pinned_roots_are_usable_anchors` checks.
        Self {
            chain: ChainVerifier::pinned(
                vec![Root {
                    der: roots::APPLE_APP_ATTESTATION_ROOT_CA.to_vec(),
                    scope: AnchorScope::AllEnvironments,
                }],
                LeafUsage::RequiredIfPresent(APP_ATTEST_EKU),
                false,
            ),
            receipts: ReceiptVerifier::apple(),
        }
    }

    /// Anchored at `attestation_roots` (DER) only, with `receipts` for embedded receipts. These
    /// roots stand in for Apple's: they vouch for keys of **every** environment, production
    /// included. For tests whose CA plays Apple; to trust a test CA *in addition to* Apple's,
    /// use [`with_extra_roots`](Self::with_extra_roots), which limits it to development keys.
    pub fn with_roots(
        attestation_roots: Vec<Vec<u8>>,
        receipts: ReceiptVerifier,
    ) -> Result<Self, AppleError> {
        Self::scoped(
            Root::all(attestation_roots, AnchorScope::AllEnvironments).collect(),
            receipts,
        )
    }

    /// Apple's pinned root plus `extra_roots` (DER) for attestations, Apple Root CA - G3 plus
    /// `extra_receipt_roots` for receipts (see [`ReceiptVerifier::with_extra_roots`]): for
    /// development against a simulator's test CA.
    ///
    /// An extra root only ever vouches for **development** keys: a chain that ends at one and
    /// whose AAGUID names production fails step 8 (`environment_mismatch`) whatever
    /// [`AttestationRequest::environment`] accepts, and a production key's receipt must chain
    /// to Apple's root (`receipt_chain_invalid` otherwise). Whoever holds an extra root's key
    /// can mint development keys, never production ones.
    pub fn with_extra_roots(
        extra_roots: Vec<Vec<u8>>,
        extra_receipt_roots: Vec<Vec<u8>>,
    ) -> Result<Self, AppleError> {
        let roots = std::iter::once(Root {
            der: roots::APPLE_APP_ATTESTATION_ROOT_CA.to_vec(),
            scope: AnchorScope::AllEnvironments,
        })
        .chain(Root::all(extra_roots, AnchorScope::DevelopmentOnly))
        .collect();
        let receipts = ReceiptVerifier::with_extra_roots(extra_receipt_roots).map_err(|_| {
            AppleError::InvalidArgument("a receipt root is not a usable DER certificate")
        })?;
        Self::scoped(roots, receipts)
    }

    fn scoped(roots: Vec<Root>, receipts: ReceiptVerifier) -> Result<Self, AppleError> {
        let chain = ChainVerifier::new(roots, LeafUsage::RequiredIfPresent(APP_ATTEST_EKU), false)
            .map_err(|_| AppleError::InvalidArgument("a root is not a usable DER certificate"))?;
        Ok(Self { chain, receipts })
    }

    /// Verifies `attestation` (CBOR bytes) for `request`, following Apple's steps in order; the
    /// first failing step is the error.
    pub fn verify(
        &self,
        attestation: &[u8],
        request: &AttestationRequest<'_>,
    ) -> Result<VerifiedAttestation, AppleError> {
        if request.app_ids.is_empty() {
            return Err(AppleError::InvalidArgument("no App ID to accept"));
        }
        let object = AttestationObject::parse(attestation)?;
        self.verify_object(&object, request)
    }

    /// Verifies an already parsed attestation object (see [`verify`](Self::verify)).
    pub fn verify_object(
        &self,
        object: &AttestationObject<'_>,
        request: &AttestationRequest<'_>,
    ) -> Result<VerifiedAttestation, AppleError> {
        let (leaf_der, intermediates) = object
            .x5c
            .split_first()
            .ok_or(AppleError::malformed(WHAT, "empty x5c"))?;

        // Step 1 — the credential certificate chains to a trusted root at the given time.
        let anchor = self
            .chain
            .verify(leaf_der, intermediates, request.time)
            .map_err(|e| match e {
                ChainError::Invalid(failure) => AppleError::CertificateChainInvalid(failure),
                ChainError::Validity(failure) => AppleError::CertificateExpired(failure),
            })?;
        let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der)
            .map_err(|_| AppleError::CertificateChainInvalid(ChainFailure::BadEncoding))?;

        // Steps 2–4 — nonce = SHA256(authData ‖ clientDataHash) equals the leaf's
        // 1.2.840.113635.100.8.2 extension.
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(object.auth_data.raw);
        context.update(request.client_data_hash);
        let nonce = context.finish();
        if nonce_extension(&leaf).as_ref().map(<[u8; 32]>::as_slice) != Some(nonce.as_ref()) {
            return Err(AppleError::NonceMismatch);
        }

        // Step 5 — SHA256(credential public key point) is the key id.
        let (public_key, point) = p256_public_key(&leaf)?;
        if KeyId::of_public_point(point) != request.key_id {
            return Err(AppleError::KeyIdMismatch);
        }

        // Steps 6–9 — App ID, counter, environment, credential id.
        let (app_id, environment) = check_attested_auth_data(
            &object.auth_data,
            &request.key_id,
            request.app_ids,
            request.environment,
        )?;
        // ... and step 8 once more for the root of step 1: an extra root vouches for
        // development keys only, whatever the request accepts.
        if anchor == AnchorScope::DevelopmentOnly && environment == Environment::Production {
            return Err(AppleError::EnvironmentMismatch {
                found: Environment::Production.as_str(),
                accepted: DEVELOPMENT_ONLY_ANCHOR,
            });
        }
        // ... and the COSE key in authData is the certificate's key.
        let credential_key = object
            .auth_data
            .attested_credential
            .as_ref()
            .map(|credential| credential.public_key.uncompressed_point());
        if credential_key.as_ref().map(<[u8; 65]>::as_slice) != Some(point) {
            return Err(AppleError::CredentialKeyMismatch);
        }

        let leaf_not_before = leaf.validity().not_before.to_datetime();
        let leaf_not_after = leaf.validity().not_after.to_datetime();

        // Receipt — Apple's step 9 says keep it; attestd also checks it belongs here.
        let receipt_bytes = object.receipt.filter(|r| !r.is_empty());
        let receipt = match receipt_bytes {
            None => Err(ReceiptError::Malformed(
                "the attestation carries no receipt",
            )),
            Some(bytes) => self.check_receipt(
                bytes,
                request.time,
                (app_id, environment),
                public_key,
                (leaf_not_before, leaf_not_after),
            ),
        };
        let receipt = match (receipt, request.receipt) {
            (Ok(verified), _) => ReceiptCheck::Verified(Box::new(verified)),
            (Err(error), ReceiptPolicy::Require) => return Err(AppleError::ReceiptInvalid(error)),
            (Err(_), ReceiptPolicy::Report) if receipt_bytes.is_none() => ReceiptCheck::Missing,
            (Err(error), ReceiptPolicy::Report) => ReceiptCheck::Failed(error),
        };

        Ok(VerifiedAttestation {
            key_id: request.key_id,
            public_key: public_key.to_vec(),
            app_id: app_id.clone(),
            environment,
            receipt_bytes: receipt_bytes.unwrap_or_default().to_vec(),
            receipt,
            leaf_not_before,
            leaf_not_after,
            extensions: object.auth_data.extensions.clone(),
        })
    }

    fn check_receipt(
        &self,
        bytes: &[u8],
        time: UnixTime,
        (app_id, environment): (&AppId, Environment),
        public_key: &[u8],
        (leaf_not_before, leaf_not_after): (OffsetDateTime, OffsetDateTime),
    ) -> Result<VerifiedReceipt, ReceiptError> {
        // The receipt is verified at its own creation time: Apple signed it then, with the
        // signing certificate of that year, which may have expired since.
        let (verified, anchor) =
            self.receipts
                .verify_scoped_at_creation(bytes, time, RECEIPT_CLOCK_SKEW_SECS)?;
        // A production key's receipt must come from Apple: an extra receipt root vouches for
        // development keys only (the receipt is not covered by the attestation's nonce, so
        // anyone could swap one in).
        if anchor == AnchorScope::DevelopmentOnly && environment == Environment::Production {
            return Err(ReceiptError::ChainInvalid(ChainFailure::UnknownIssuer));
        }
        let receipt = &verified.receipt;
        if receipt.receipt_type != ReceiptType::Attest {
            return Err(ReceiptError::WrongType);
        }
        if receipt.app_id != app_id.as_str() {
            return Err(ReceiptError::AppIdMismatch);
        }
        if receipt.attested_public_key().as_deref() != Some(public_key) {
            return Err(ReceiptError::PublicKeyMismatch);
        }
        // Apple creates the receipt while the credential certificate is valid; a receipt
        // created outside that window was not made for this certificate.
        if receipt.creation_time < leaf_not_before || receipt.creation_time > leaf_not_after {
            return Err(ReceiptError::CreatedOutsideCertificateValidity);
        }
        Ok(verified)
    }
}

/// Apple's steps 6–9 on attestation authenticator data alone: rpIdHash names an accepted App
/// ID, the counter is 0, the AAGUID names an accepted environment and the credential id is the
/// key id. Returns the App ID that matched and the environment.
pub fn check_attested_auth_data<'a>(
    auth_data: &AuthenticatorData<'_>,
    key_id: &KeyId,
    app_ids: &'a [AppId],
    environment: EnvironmentPolicy,
) -> Result<(&'a AppId, Environment), AppleError> {
    let credential = auth_data
        .attested_credential
        .as_ref()
        .ok_or(AppleError::malformed(WHAT, "no attested credential data"))?;

    // Step 6 — rpIdHash is SHA256(App ID) for an accepted App ID.
    let app_id = app_ids
        .iter()
        .find(|app| app.rp_id_hash() == &auth_data.rp_id_hash)
        .ok_or(AppleError::AppIdMismatch)?;

    // Step 7 — a fresh key's counter is 0.
    if auth_data.counter != 0 {
        return Err(AppleError::CounterInvalid {
            counter: auth_data.counter,
            expectation: CounterExpectation::Zero,
        });
    }

    // Step 8 — the AAGUID names an accepted environment.
    let found = credential.aaguid.environment();
    let environment = match found {
        Some(found) if environment.accepts(found) => found,
        _ => {
            return Err(AppleError::EnvironmentMismatch {
                found: found.map_or("unknown", Environment::as_str),
                accepted: environment.as_str(),
            });
        }
    };

    // Step 9 — the credential id is the key id.
    if credential.credential_id != key_id.as_bytes() {
        return Err(AppleError::CredentialIdMismatch);
    }
    Ok((app_id, environment))
}

/// The 32-byte nonce in extension 1.2.840.113635.100.8.2, which is exactly
/// `SEQUENCE { [1] EXPLICIT { OCTET STRING (32) } }`; any other shape is `None`.
fn nonce_extension(leaf: &X509Certificate<'_>) -> Option<[u8; 32]> {
    use x509_parser::der_parser::der::parse_der;
    let extension = leaf
        .get_extension_unique(&oid!(1.2.840.113635.100.8.2))
        .ok()
        .flatten()?;
    let (rest, sequence) = parse_der(extension.value).ok()?;
    let BerObjectContent::Sequence(items) = &sequence.content else {
        return None;
    };
    let [tagged] = items.as_slice() else {
        return None;
    };
    if !rest.is_empty() || tagged.header.tag().0 != 1 || !tagged.header.is_contextspecific() {
        return None;
    }
    let BerObjectContent::Unknown(any) = &tagged.content else {
        return None;
    };
    let (rest, octets) = parse_der(any.data).ok()?;
    match octets.content {
        BerObjectContent::OctetString(bytes) if rest.is_empty() => bytes.try_into().ok(),
        _ => None,
    }
}

/// The leaf's SubjectPublicKeyInfo DER and its uncompressed P-256 point.
fn p256_public_key<'a>(leaf: &'a X509Certificate<'_>) -> Result<(&'a [u8], &'a [u8]), AppleError> {
    let spki = leaf.public_key();
    let is_p256 = spki.algorithm.algorithm == oid!(1.2.840.10045.2.1)
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|curve| curve == oid!(1.2.840.10045.3.1.7));
    let point: &[u8] = &spki.subject_public_key.data;
    if !is_p256 || point.len() != 65 || point.first() != Some(&0x04) {
        return Err(AppleError::KeyIdMismatch);
    }
    Ok((spki.raw, point))
}
